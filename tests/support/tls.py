"""A throwaway PKI for TLS tests, made with the ``openssl`` command line.

One CA signs a server certificate (SAN ``IP:127.0.0.1``, so hostname checking passes for
the address the tests connect to) and a client certificate for mutual TLS. The client key
also exists encrypted with a passphrase, for ``ssl_password``. A second, unrelated CA
signs a "stranger" client certificate the server must refuse.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

DAYS = "2"
KEY_PASSPHRASE = "tls-key-passphrase-7e1f"  # a test secret the tests look for in outputs


@dataclass(frozen=True)
class Pki:
    """Paths of the files :func:`make_pki` wrote."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_key_encrypted: Path
    stranger_cert: Path
    stranger_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{done.stderr}")


def _ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key.name, cwd=directory)
    _openssl(
        "req", "-x509", "-new", "-key", key.name, "-sha256", "-days", DAYS,
        "-subj", f"/CN=jobkit test {name}", "-out", cert.name,
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    return cert, key


def _leaf(directory: Path, name: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    """A key and a certificate for ``name`` signed by ``ca`` with the given v3 extensions."""
    key, csr, cert = (directory / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
    ext_file = directory / f"{name}.ext"
    ext_file.write_text(extensions)
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key.name, cwd=directory)
    _openssl(
        "req", "-new", "-key", key.name, "-subj", f"/CN={name}", "-out", csr.name, cwd=directory
    )
    _openssl(
        "x509", "-req", "-in", csr.name, "-CA", ca[0].name, "-CAkey", ca[1].name,
        "-CAcreateserial", "-days", DAYS, "-sha256", "-extfile", ext_file.name,
        "-out", cert.name,
        cwd=directory,
    )  # fmt: skip
    return cert, key


def make_pki(directory: Path) -> Pki:
    """Write a CA, a server and a client certificate (and a stranger's) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca(directory, "ca")
    server = _leaf(
        directory,
        "server",
        ca,
        # clientAuth too: redis-server presents this pair when it is a client (replication),
        # and the test harness logs in with it on a server that requires client certificates.
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    client = _leaf(directory, "client", ca, "extendedKeyUsage=clientAuth\n")
    encrypted = directory / "client-encrypted.key"
    _openssl(
        "pkcs8", "-topk8", "-in", client[1].name, "-out", encrypted.name,
        "-v2", "aes-256-cbc", "-passout", f"pass:{KEY_PASSPHRASE}",
        cwd=directory,
    )  # fmt: skip
    other_ca = _ca(directory, "other-ca")
    stranger = _leaf(directory, "stranger", other_ca, "extendedKeyUsage=clientAuth\n")
    for path in directory.iterdir():
        if path.suffix == ".key":
            path.chmod(0o600)  # redis-server and OpenSSL do not mind, but keys stay private
    return Pki(
        ca=ca[0],
        server_cert=server[0],
        server_key=server[1],
        client_cert=client[0],
        client_key=client[1],
        client_key_encrypted=encrypted,
        stranger_cert=stranger[0],
        stranger_key=stranger[1],
    )
