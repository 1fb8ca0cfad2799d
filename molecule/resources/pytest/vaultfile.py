"""An ansible-vault encrypted vault.yml, made the way an operator makes one.

The names come from an inventory's vault.yml.example; every value is new and
random (passwords, the app's secret key, a TLS certificate and key for the
balancers), and only the encrypted file is written. Used by the production
scenario's prepare step and by its tests (which read it back and rotate
secrets in it, as an operator would with `ansible-vault edit`).

    python vaultfile.py create EXAMPLE VAULT PASSWORD_FILE HOSTNAME...
"""

from __future__ import annotations

import datetime
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import yaml

VAULT_BIN = Path(sys.executable).with_name("ansible-vault")
NAME = re.compile(r"^(vault_\w+):", re.MULTILINE)


def _vault(*args: str, stdin: str | None = None) -> str:
    """ansible-vault with the password file given here only (not also ANSIBLE_VAULT_PASSWORD_FILE)."""
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_VAULT_PASSWORD_FILE"}
    out = subprocess.run([str(VAULT_BIN), *args], input=stdin, text=True, check=True, capture_output=True, env=env)
    return out.stdout


def names(example: Path) -> list[str]:
    """The secret names an example vault lists."""
    return NAME.findall(example.read_text())


def password(length: int = 32) -> str:
    return secrets.token_hex(length // 2)


def certificate(hostnames: list[str]) -> tuple[str, str]:
    """A self-signed certificate (PEM) and its key, for the given names, localhost and 127.0.0.1."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0] if hostnames else "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    alt = [x509.DNSName(h) for h in [*hostnames, "localhost"]] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), pem_key.decode()


def generate(secret_names: list[str], hostnames: list[str]) -> dict[str, str]:
    """A new value for every name: 64 characters for the app's secret key, a certificate and key, else 32."""
    values: dict[str, str] = {}
    cert, key = certificate(hostnames)
    for name in secret_names:
        if name == "vault_tls_certificate":
            values[name] = cert
        elif name == "vault_tls_key":
            values[name] = key
        elif name == "vault_app_secret_key":
            values[name] = password(64)
        else:
            values[name] = password()
    return values


class _Literal(str):
    pass


def _dump(values: dict[str, str]) -> str:
    dumper = yaml.SafeDumper
    dumper.add_representer(_Literal, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style="|"))
    body = {k: _Literal(v) if "\n" in v else v for k, v in values.items()}
    return "---\n" + yaml.dump(body, Dumper=dumper, sort_keys=True, default_flow_style=False)


def write(vault: Path, values: dict[str, str], password_file: Path) -> None:
    """Encrypt the values into vault (no plain copy is ever written)."""
    vault.parent.mkdir(parents=True, exist_ok=True)
    _vault("encrypt", "--vault-password-file", str(password_file), "--output", str(vault), "-", stdin=_dump(values))
    vault.chmod(0o600)


def read(vault: Path, password_file: Path) -> dict[str, str]:
    return yaml.safe_load(_vault("view", "--vault-password-file", str(password_file), str(vault)))


def rotate(vault: Path, password_file: Path, rotated: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """New random values for the named secrets; returns the old and the new values."""
    old = read(vault, password_file)
    new = {**old, **{name: password(64 if name == "vault_app_secret_key" else 32) for name in rotated}}
    write(vault, new, password_file)
    return old, new


if __name__ == "__main__":
    if len(sys.argv) < 5 or sys.argv[1] != "create":
        sys.exit("usage: vaultfile.py create EXAMPLE VAULT PASSWORD_FILE HOSTNAME...")
    example, vault, password_file = (Path(a) for a in sys.argv[2:5])
    write(vault, generate(names(example), sys.argv[5:]), password_file)
    print(f"wrote {vault} (encrypted): {', '.join(names(example))}")
