"""Throwaway TLS material for the TLS integration tests (AMQP and Redis).

``make_ca`` creates a self-signed CA, ``make_server_cert`` a server
certificate for ``localhost`` and 127.0.0.1 signed by it, both with the
``openssl`` CLI (EC P-256 keys, valid for two days). Import as
``from _tls import make_ca`` (tests/ is on sys.path: rootdir conftest).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest

__all__ = ["Pki", "make_ca", "make_pki", "make_server_cert", "openssl"]


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_ca(d: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA in ``d``: ``(d/name.pem, d/name.key)``."""
    key, cert = d / f"{name}.key", d / f"{name}.pem"
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
        "-subj", f"/CN=relayna test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return cert, key


def make_server_cert(d: Path, ca_cert: Path, ca_key: Path) -> tuple[Path, Path]:
    """A ``localhost``/127.0.0.1 server certificate signed by the CA: ``(cert, key)``."""
    key, csr, cert, ext = d / "server.key", d / "server.csr", d / "server.pem", d / "server.ext"
    ext.write_text(
        "basicConstraints = critical,CA:FALSE\n"
        "keyUsage = critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectAltName = DNS:localhost,IP:127.0.0.1\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid,issuer\n"
    )
    openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost",
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext),
    )  # fmt: skip
    key.chmod(0o644)  # readable by the server (same user here, but be explicit)
    return cert, key


class Pki(NamedTuple):
    ca: Path  # signed the server certificate
    other_ca: Path  # an unrelated CA: verification against it must fail
    cert: Path
    key: Path


def make_pki(d: Path) -> Pki:
    """A CA, an unrelated second CA and a server certificate signed by the first."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl CLI is required for the TLS integration tests")
    ca_cert, ca_key = make_ca(d, "ca")
    other_ca, _ = make_ca(d, "other-ca")
    cert, key = make_server_cert(d, ca_cert, ca_key)
    return Pki(ca_cert, other_ca, cert, key)
