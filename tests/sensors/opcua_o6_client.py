"""An OPC UA client that is not ours: open62541 (the ``o6`` package), run as a child
process by the tests (``o6`` without a licence runs for ten minutes per process,
so it never lives in the test process).

Usage: python opcua_o6_client.py '<json job>'; prints one JSON object.

The job: ``url``; optional ``username``/``password`` (then Basic256Sha256 sign and
encrypt); ``line_path`` (site/area/line); ``namespace_uri``; ``read`` (string node
ids' identifiers to read); ``subscribe`` (one identifier, and ``changes``, how many
data changes to wait for); ``call`` ([object identifier, method identifier, args]).
It browses the address space from Objects along the line path first and reports
what it found there, so that the test compares it with the documented map.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import o6

CLIENT_URI = "urn:factory-twin:tests:o6-client"


def client_certificate() -> tuple[bytes, bytes]:
    """A throwaway self-signed client certificate (DER) and key (PEM): an encrypted
    channel needs one on both ends, as UaExpert makes its own on first start."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "o6 test client")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(CLIENT_URI)]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.DER), pem


def main() -> int:
    job = json.loads(sys.argv[1])
    report: dict[str, Any] = {}
    kwargs: dict[str, Any] = {}
    if job.get("username"):
        certificate, key = client_certificate()
        kwargs.update(
            username=job["username"],
            password=job["password"],
            securityMode=3,  # SignAndEncrypt
            securityPolicy="http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256",
            certificate=certificate,
            privateKey=key,
            applicationUri=CLIENT_URI,
        )
    client = o6.Client(job["url"], **kwargs)
    if job.get("username"):
        # The server's certificate is self-signed and made on its first start: the
        # test trusts it by giving its file, as a user would in UaExpert.
        cert = job.get("server_cert")
        if cert:
            client.config.trustList = [cert]
    try:
        client.connect()
    except Exception as exc:  # refused: the test asserts it
        print(json.dumps({"connected": False, "error": f"{type(exc).__name__}: {exc}"}))  # noqa: T201
        return 0
    report["connected"] = True
    try:
        namespaces = client.read("ns=0;i=2255")  # Server_NamespaceArray
        uri = job["namespace_uri"]
        report["namespace_index"] = list(namespaces).index(uri)

        # By the namespace's URI: the client numbers namespaces its own way.
        def node(identifier: str) -> str:
            return f"nsu={uri};s={identifier}"

        def target(ref: Any) -> str:
            identifier = ref.nodeId.id
            return node(identifier) if isinstance(identifier, str) else f"i={identifier}"

        # Browse from Objects along site, area and line.
        current = "ns=0;i=85"
        for name in job["line_path"].split("/"):
            refs = client.browse(current)
            match = [r for r in refs if str(r.browseName.name) == name]
            if not match:
                report["browse_error"] = f"{name!r} not under {current}"
                break
            current = target(match[0])
        report["line_children"] = sorted(str(r.browseName.name) for r in client.browse(current))
        stations = {}
        for ref in client.browse(current):
            child = target(ref)
            names = sorted(str(r.browseName.name) for r in client.browse(child))
            if "SetSetpoint" in names:
                stations[str(ref.browseName.name)] = names
        report["stations"] = stations
        values = {}
        for identifier in job.get("read", []):
            try:
                value = client.read(node(identifier))
                if hasattr(value, "text"):  # LocalizedText
                    value = str(value.text)
                elif hasattr(value, "item"):  # a numpy scalar (UInt64 and kin)
                    value = value.item()
                elif not isinstance(value, bool | int | float | str):
                    value = repr(value)
                values[identifier] = value
            except Exception as exc:
                values[identifier] = f"ERROR {type(exc).__name__}: {exc}"
        report["values"] = values
        units = {}
        for identifier in job.get("units", []):
            eu = client.read(node(identifier + "/EngineeringUnits"))
            rng = client.read(node(identifier + "/EURange"))
            units[identifier] = {
                "unit_id": int(eu.unitId),
                "symbol": str(eu.displayName.text),
                "low": float(rng.low),
                "high": float(rng.high),
            }
        report["units"] = units
        if job.get("subscribe"):
            seen: list[Any] = []
            done = threading.Event()

            def changed(item: Any, value: Any) -> None:
                seen.append(value)
                if len(seen) >= job["changes"]:
                    done.set()

            client.monitor(node(job["subscribe"]), changed, 50.0, queueSize=100)
            deadline = time.monotonic() + job.get("timeout_s", 60)
            while not done.is_set() and time.monotonic() < deadline:
                client.iterate(100) if hasattr(client, "iterate") else time.sleep(0.1)
            report["changes"] = [v if isinstance(v, int | float | str) else repr(v) for v in seen]
        if job.get("call"):
            obj, method, args = job["call"]
            result = client.call(node(obj), node(method), args)
            report["call"] = {
                "status": str(result[0]),
                "good": not bool(int(result[0])) if isinstance(result[0], int) else None,
                "outputs": [
                    r if isinstance(r, bool | int | float | str) else str(r) for r in result[1:]
                ],
            }
    finally:
        client.disconnect()
    print(json.dumps(report))  # noqa: T201 - the report, for the test
    return 0


if __name__ == "__main__":
    sys.exit(main())
