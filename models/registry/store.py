"""Model registry: fitted models kept on disk, versioned, each with its model card.

A model is saved with ``skops.io`` (never pickle) as ``<root>/<name>/v<n>/model.skops``,
beside its card (``card.json``, and ``card.md`` rendered for people): what data it
learned from, how well it did, against what oracle, with which library versions,
seed, parameters and training time. ``<root>/<name>/index.json`` lists the
versions of a name with the sha256 of each file, and which one is active. Cards
are built in ``models.registry.cards``; the names are re-exported here.

Files are not trusted because they sit in the registry. On load the file's sha256
must still be the one recorded when it was registered, and every type inside it
that skops does not trust by default must be on the registry's allow-list
(``DEFAULT_TRUSTED`` plus what is passed as ``trusted=``). Writes go to a temporary
file that then replaces the old one, so a crash leaves the previous index whole;
registering and activating hold a lock file per name (``fcntl.flock``), so two
processes never take the same version number or lose each other's update.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from models.registry.cards import (
    ModelCard,
    _jsonable,
    _type_name,
    defect_card,
    describe_data,
    describe_estimator,
    library_versions,
    render_card,
)
from twin.lazy import HEAVY_IMPORTS

# Our own estimators that may be saved in the registry. They are refused on load
# unless listed: skops rebuilds an object of any importable class it is told to.
PROJECT_TYPES: tuple[str, ...] = (
    "models.defect.QuantileBinner",
    "models.defect.RateAnchor",
    "models.candidates.FeatureCrosses",
    "models.candidates.LogitBlend",
    "models.candidates.PlattScaled",
    "models.candidates.SplineBasis",
)
# Tree storage that skops does not trust by default: a crafted file can point its
# node indices out of bounds. Our defect model (HistGradientBoosting) needs it; the
# sha256 check makes sure the file is the one we wrote, which is what trusting it
# relies on.
SKLEARN_TREE_TYPES: tuple[str, ...] = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)
# A calibrated model (``models.defect.calibrate``) holds one calibrator per class
# (a slope and an intercept in plain attributes, no code and no indices) and the
# splitter it was given as a parameter (a fold count).
SKLEARN_CALIBRATION_TYPES: tuple[str, ...] = (
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.model_selection._split.KFold",
)
DEFAULT_TRUSTED: tuple[str, ...] = PROJECT_TYPES + SKLEARN_TREE_TYPES + SKLEARN_CALIBRATION_TYPES

MODEL_FILE = "model.skops"
CARD_FILE = "card.json"
CARD_MARKDOWN = "card.md"
INDEX_FILE = "index.json"
LOCK_FILE = ".lock"
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_VERSION_DIR = re.compile(r"v([0-9]+)")


class RegistryError(Exception):
    """A registry operation that cannot be done; the message names model, version and file."""


class ModelVersion(BaseModel):
    """One registered version of a model: where its file is, its hash, its card."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: int
    path: Path
    sha256: str
    card: dict[str, Any]
    active: bool
    created_at: datetime


def default_registry_path() -> Path:
    """``$XDG_DATA_HOME/factory-twin/models`` (``~/.local/share`` when
    ``XDG_DATA_HOME`` is unset). The API and the command line pass the registry
    they were configured with (``FACTORY_TWIN_MODELS_PATH``); this is the default."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "factory-twin" / "models"


def _dumps(value: Any) -> bytes:
    return (json.dumps(value, indent=2, allow_nan=False) + "\n").encode()


def _write_atomic(path: Path, data: bytes) -> None:
    """Write a temporary file beside ``path``, flush it to disk, then rename it over."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # releases the lock


def _skops_io() -> Any:
    """``skops.io``, imported on first use: it imports scikit-learn and SciPy (about a
    second), which listing models, reading cards and starting the API never need."""
    with HEAVY_IMPORTS:
        import skops.io

    return skops.io


def _refuse_untrusted(data: bytes, trusted: Iterable[str], what: str) -> list[str]:
    """The untrusted types in a skops file that ``trusted`` allows; a RegistryError
    naming the others, or when the bytes are not a skops file at all."""
    try:
        found = sorted(_skops_io().get_untrusted_types(data=data))
    except Exception as error:  # skops raises whatever zipfile or json met on garbage
        raise RegistryError(
            f"{what} is not a readable skops model file ({type(error).__name__}: {error})"
        ) from error
    allowed = set(trusted)
    refused = [name for name in found if name not in allowed]
    if refused:
        raise RegistryError(
            f"{what} holds types that are not trusted: {', '.join(refused)}. If you have "
            "reviewed them, pass trusted=[...] to ModelRegistry or load"
        )
    return found


def read_model(
    path: str | Path, *, trusted: Iterable[str] = DEFAULT_TRUSTED, sha256: str | None = None
) -> Any:
    """Load a skops file with the registry's checks: its sha256 (when given) and the
    types inside it (skops' defaults plus ``trusted``). Raises ``RegistryError``."""
    return _read(Path(path), trusted=tuple(trusted), sha256=sha256, label=f"file {path}")


def _read(path: Path, *, trusted: tuple[str, ...], sha256: str | None, label: str) -> Any:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise RegistryError(f"{label}: cannot read {path} ({error})") from error
    actual = hashlib.sha256(data).hexdigest()
    if sha256 is not None and actual != sha256:
        raise RegistryError(
            f"{label}: file {path} was changed after it was registered "
            f"(sha256 {actual}, registered {sha256})"
        )
    allowed = _refuse_untrusted(data, trusted, f"{label}: file {path}")
    try:
        return _skops_io().loads(data, trusted=allowed)
    except Exception as error:  # a zip whose entries do not describe an object
        raise RegistryError(
            f"{label}: file {path} is not a readable skops model file "
            f"({type(error).__name__}: {error})"
        ) from error


class ModelRegistry:
    """Versioned models under ``root``, one active version per name."""

    def __init__(self, root: str | Path, *, trusted: Iterable[str] = ()) -> None:
        self.root = Path(root)
        self.trusted = DEFAULT_TRUSTED + tuple(trusted)

    # -- reading ---------------------------------------------------------------------------
    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(path.parent.name for path in self.root.glob(f"*/{INDEX_FILE}"))

    def versions(self, name: str) -> list[ModelVersion]:
        index = self._index(name)
        return [self._version(name, entry, index) for entry in index["versions"]]

    def active(self, name: str) -> ModelVersion | None:
        index = self._index(name)
        if index["active"] is None:
            return None
        return self._version(name, self._entry(name, index, index["active"]), index)

    def active_version(self, name: str) -> int | None:
        """The active version number of ``name``, None when it has none or no such
        model exists: one small read, for watching the registry."""
        try:
            index = self._read_index(name) if _NAME.fullmatch(name) else None
        except RegistryError:
            return None
        if index is None:
            return None
        active = index.get("active")
        return active if isinstance(active, int) else None

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """A version, or the active one for ``None``."""
        if version is None:
            found = self.active(name)
            if found is None:
                raise RegistryError(f"model {name!r} has no active version in {self.root}")
            return found
        index = self._index(name)
        return self._version(name, self._entry(name, index, version), index)

    def load(
        self, name: str, version: int | None = None, *, trusted: Iterable[str] = ()
    ) -> tuple[Any, ModelVersion]:
        """The model of a version (the active one for ``None``), checked: its file must
        have the sha256 it was registered with, and hold trusted types only."""
        found = self.get(name, version)
        model = _read(
            found.path,
            trusted=self.trusted + tuple(trusted),
            sha256=found.sha256,
            label=f"model {name!r} v{found.version}",
        )
        return model, found

    # -- writing ---------------------------------------------------------------------------
    def register(
        self,
        name: str,
        model: Any,
        card: ModelCard | Mapping[str, Any],
        *,
        activate: bool = True,
    ) -> ModelVersion:
        """Save ``model`` as the next version of ``name``, with ``card``; it becomes the
        active version unless ``activate`` is false."""
        if not _NAME.fullmatch(name):
            raise RegistryError(
                f"model name {name!r} must be lowercase letters, digits, '-' or '_' "
                "(at most 64, starting with a letter or digit)"
            )
        try:
            data = _skops_io().dumps(model)
        except Exception as error:
            raise RegistryError(
                f"model {name!r}: skops cannot save a {_type_name(model)} ({error})"
            ) from error
        # Refuse now what load would refuse later.
        _refuse_untrusted(data, self.trusted, f"model {name!r} ({_type_name(model)})")
        stored = _jsonable(card.model_dump(mode="json") if isinstance(card, ModelCard) else card)
        created_at = datetime.now(UTC)
        stored.setdefault("versions", library_versions())
        stored.setdefault("created_at", created_at.isoformat())
        sha256 = hashlib.sha256(data).hexdigest()
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        with _locked(folder / LOCK_FILE):
            index = self._read_index(name) or {"name": name, "active": None, "versions": []}
            # Past the directories too: a crash may have left one the index never got.
            taken = [entry["version"] for entry in index["versions"]] + [
                int(match.group(1))
                for path in folder.iterdir()
                if (match := _VERSION_DIR.fullmatch(path.name))
            ]
            version = max(taken, default=0) + 1
            directory = folder / f"v{version}"
            directory.mkdir()
            own = {"name": name, "version": version, "sha256": sha256}
            stored = own | {key: value for key, value in stored.items() if key not in own}
            _write_atomic(directory / MODEL_FILE, data)
            _write_atomic(directory / CARD_FILE, _dumps(stored))
            _write_atomic(directory / CARD_MARKDOWN, render_card(stored).encode())
            entry = {"version": version, "sha256": sha256, "created_at": created_at.isoformat()}
            index["versions"].append(entry)
            if activate:
                index["active"] = version
            _write_atomic(folder / INDEX_FILE, _dumps(index))
        return self._version(name, entry, index)

    def activate(self, name: str, version: int) -> ModelVersion:
        """Make ``version`` the active version of ``name``."""
        self._index(name)  # an unknown name is an error, not a new folder
        with _locked(self.root / name / LOCK_FILE):
            index = self._index(name)
            entry = self._entry(name, index, version)
            index["active"] = version
            _write_atomic(self.root / name / INDEX_FILE, _dumps(index))
        return self._version(name, entry, index)

    # -- the index -------------------------------------------------------------------------
    def _read_index(self, name: str) -> dict[str, Any] | None:
        path = self.root / name / INDEX_FILE
        try:
            index: dict[str, Any] = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise RegistryError(f"model {name!r}: index {path} is unreadable ({error})") from error
        if not isinstance(index, dict) or not isinstance(index.get("versions"), list):
            raise RegistryError(f"model {name!r}: index {path} is not a registry index")
        index.setdefault("active", None)
        return index

    def _index(self, name: str) -> dict[str, Any]:
        index = self._read_index(name) if _NAME.fullmatch(name) else None
        if index is None:
            known = ", ".join(self.names()) or "none"
            raise RegistryError(f"no model named {name!r} in {self.root} (models: {known})")
        return index

    def _entry(self, name: str, index: Mapping[str, Any], version: int) -> dict[str, Any]:
        for entry in index["versions"]:
            if entry["version"] == version:
                found: dict[str, Any] = entry
                return found
        known = ", ".join(str(entry["version"]) for entry in index["versions"])
        raise RegistryError(f"model {name!r} has no version {version} (versions: {known})")

    def _version(
        self, name: str, entry: Mapping[str, Any], index: Mapping[str, Any]
    ) -> ModelVersion:
        directory = self.root / name / f"v{entry['version']}"
        card_path = directory / CARD_FILE
        try:
            card = json.loads(card_path.read_bytes())
        except (OSError, ValueError) as error:
            raise RegistryError(
                f"model {name!r} v{entry['version']}: card {card_path} is unreadable ({error})"
            ) from error
        return ModelVersion(
            name=name,
            version=entry["version"],
            path=directory / MODEL_FILE,
            sha256=entry["sha256"],
            card=card,
            active=index["active"] == entry["version"],
            created_at=datetime.fromisoformat(entry["created_at"]),
        )


__all__ = [
    "DEFAULT_TRUSTED",
    "PROJECT_TYPES",
    "SKLEARN_CALIBRATION_TYPES",
    "SKLEARN_TREE_TYPES",
    "ModelCard",
    "ModelRegistry",
    "ModelVersion",
    "RegistryError",
    "default_registry_path",
    "defect_card",
    "describe_data",
    "describe_estimator",
    "library_versions",
    "read_model",
    "render_card",
]
