"""The operator's Ed25519 signing key: generated, stored and loaded with care.

The private key signs evidence manifests; whoever holds it can vouch for a package, so it is
written with mode 0600 into a 0700 folder and refused when it has become readable by others (as
OpenSSH refuses a loose key). It may be encrypted with a passphrase taken from the environment
variable ``MAMORI_KEY_PASSPHRASE`` (never from the command line, which other users can see in
the process list). The public key is what the operator hands to a court or partner so they can
check signatures; its fingerprint (SHA-256 of the raw 32-byte key) is how people compare it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PASSPHRASE_ENV = "MAMORI_KEY_PASSPHRASE"
KEY_ENV = "MAMORI_SIGNING_KEY"
PRIVATE_NAME = "signing-key.pem"
PUBLIC_NAME = "signing-key.pub.pem"


class KeyStoreError(Exception):
    """A key could not be made, read or used; the message names the file and why."""


@dataclass(frozen=True)
class KeyInfo:
    private_path: Path
    public_path: Path
    fingerprint: str
    encrypted: bool


def default_key_path() -> Path:
    """``MAMORI_SIGNING_KEY`` if set, else ``$XDG_DATA_HOME/mamori/keys/signing-key.pem``
    (beside the state database, so one data home holds an operator's whole identity)."""
    if os.environ.get(KEY_ENV):
        return Path(os.environ[KEY_ENV])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mamori" / "keys" / PRIVATE_NAME


def public_path_of(private: Path) -> Path:
    name = private.name.removesuffix(".pem") + ".pub.pem"
    return private.with_name(name)


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public(key)).hexdigest()


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _passphrase() -> bytes | None:
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode() if value else None


def generate(path: Path | None = None, *, force: bool = False) -> KeyInfo:
    """Make a new key pair at ``path`` (private, 0600) and beside it ``*.pub.pem``; encrypted
    when ``MAMORI_KEY_PASSPHRASE`` is set. An existing key is never overwritten unless forced:
    losing it means no one can tell new signatures from the old ones' signer."""
    path = path or default_key_path()
    if path.exists() and not force:
        raise KeyStoreError(f"{path}: a key already exists (use --force to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    secret = _passphrase()
    algorithm = (
        serialization.BestAvailableEncryption(secret) if secret else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, algorithm
    )
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.replace(tmp, path)
    pub = public_path_of(path)
    pub.write_bytes(public_pem(key.public_key()))
    return KeyInfo(path, pub, fingerprint(key.public_key()), secret is not None)


def load_private(path: Path | None = None) -> Ed25519PrivateKey:
    path = path or default_key_path()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyStoreError(f"{path}: no signing key (run `mamori keys generate`)") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyStoreError(
            f"{path}: permissions {stat.S_IMODE(mode):04o} are too open; "
            f"the private key must be readable by its owner only (chmod 600)"
        )
    data = path.read_bytes()
    encrypted = b"ENCRYPTED" in data.split(b"\n", 1)[0]
    secret = _passphrase()
    if encrypted and secret is None:
        raise KeyStoreError(f"{path}: the key is encrypted; set {PASSPHRASE_ENV}")
    try:
        key = serialization.load_pem_private_key(data, password=secret if encrypted else None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        reason = "wrong passphrase" if encrypted else f"not a PEM private key ({exc})"
        raise KeyStoreError(f"{path}: {reason}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyStoreError(f"{path}: not an Ed25519 key")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyStoreError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyStoreError(f"{path}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyStoreError(f"{path}: not an Ed25519 public key")
    return key


def info(path: Path | None = None) -> KeyInfo:
    path = path or default_key_path()
    key = load_private(path)
    encrypted = b"ENCRYPTED" in path.read_bytes().split(b"\n", 1)[0]
    return KeyInfo(path, public_path_of(path), fingerprint(key.public_key()), encrypted)


def sign(key: Ed25519PrivateKey, data: bytes) -> str:
    """A detached signature, base64 (text, so it travels in mail and prints on paper)."""
    return base64.b64encode(key.sign(data)).decode()


def check(key: Ed25519PublicKey, data: bytes, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), data)
    except (InvalidSignature, ValueError):
        return False
    return True
