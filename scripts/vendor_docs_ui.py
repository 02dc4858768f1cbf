"""Vendor the API docs' browser assets (Swagger UI, Redoc) into ``api/docs_ui/vendor``.

``/docs`` and ``/redoc`` serve their JavaScript, CSS and favicon from the package,
so that they work on a plant network with no internet. The files come from the
npm registry's packages ``swagger-ui-dist`` and ``redoc``, fetched with npm's own
client (``npm pack``), each with its licence files. ``versions.json`` beside them
records the versions, the integrity npm reported, each file's SHA-256 and the
files changed here (``PATCHES``: one URL in Redoc, so that it makes no request
off the machine).

Update: change a version below (or pass ``--swagger-ui`` / ``--redoc``), run
``make vendor-docs`` (or ``python scripts/vendor_docs_ui.py``), check ``/docs`` and
``/redoc`` (``tests/api/dashboard/test_docs_offline.py`` opens both with every non-local
request blocked), and commit the changed files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENDOR = REPO / "api" / "docs_ui" / "vendor"
# package -> (version, files to take: path in the package tarball -> name here).
# Swagger UI 5 and Redoc 2 are the majors FastAPI's docs pages are written for.
PACKAGES: dict[str, tuple[str, dict[str, str]]] = {
    "swagger-ui-dist": (
        "5.35.0",
        {
            "package/swagger-ui-bundle.js": "swagger-ui-bundle.js",
            "package/swagger-ui.css": "swagger-ui.css",
            "package/favicon-32x32.png": "favicon-32x32.png",
            "package/LICENSE": "LICENSE",
            "package/NOTICE": "NOTICE",
            "package/swagger-ui-bundle.js.LICENSE.txt": "swagger-ui-bundle.js.LICENSE.txt",
        },
    ),
    "redoc": (
        "2.5.4",
        {
            "package/bundles/redoc.standalone.js": "redoc.standalone.js",
            "package/LICENSE": "LICENSE",
            "package/bundles/redoc.standalone.js.LICENSE.txt": "redoc.standalone.js.LICENSE.txt",
        },
    ),
}
# The one change to a vendored file: Redoc's sidebar credit shows a logo from
# Redocly's CDN, the only request the page makes off the machine. An empty image
# instead: Redoc hides the logo when it does not load, and keeps the credit's text.
PATCHES: dict[tuple[str, str], tuple[bytes, bytes]] = {
    ("redoc", "redoc.standalone.js"): (b"https://cdn.redoc.ly/redoc/logo-mini.svg", b"data:,"),
}


def pack(package: str, version: str, workdir: Path) -> tuple[Path, str]:
    """The package's tarball (``npm pack``) and the integrity npm reported."""
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("npm is needed to fetch the packages (Debian: apt-get install npm)")
    found = subprocess.run(
        [npm, "pack", f"{package}@{version}", "--json", "--pack-destination", str(workdir)],
        capture_output=True,
        text=True,
        check=True,
    )
    (info,) = json.loads(found.stdout)
    return workdir / info["filename"], str(info["integrity"])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swagger-ui", help="swagger-ui-dist version (default: as pinned)")
    parser.add_argument("--redoc", help="redoc version (default: as pinned)")
    args = parser.parse_args()
    wanted = dict(PACKAGES)
    for package, version in (("swagger-ui-dist", args.swagger_ui), ("redoc", args.redoc)):
        if version:
            wanted[package] = (version, wanted[package][1])
    manifest: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="vendor-docs-") as scratch:
        for package, (version, files) in wanted.items():
            tarball, integrity = pack(package, version, Path(scratch))
            target = VENDOR / package
            if target.exists():
                shutil.rmtree(target)
            target.mkdir(parents=True)
            with tarfile.open(tarball) as archive:
                for member, name in files.items():
                    source = archive.extractfile(member)
                    if source is None:
                        sys.exit(f"{package}@{version} has no file {member}")
                    content = source.read()
                    patch = PATCHES.get((package, name))
                    if patch is not None:
                        if content.count(patch[0]) != 1:
                            sys.exit(f"{package}@{version} {name}: {patch[0]!r} not found once")
                        content = content.replace(*patch)
                    (target / name).write_bytes(content)
            manifest[package] = {
                "version": version,
                "integrity": integrity,  # of the package as npm sent it
                "patched": sorted(name for (owner, name) in PATCHES if owner == package),
                "files": {name: sha256(target / name) for name in files.values()},
            }
            print(f"{package}@{version}: {len(files)} files into {target.relative_to(REPO)}")
    (VENDOR / "versions.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
