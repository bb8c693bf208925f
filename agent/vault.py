"""The vault: the user's 256-bit master secret, encrypted at rest.

File format (JSON, version 1, mode 0600)::

    {"format": "isotopes-vault", "version": 1,
     "kdf": {"name": "scrypt", "n": 131072, "r": 8, "p": 1, "salt": "<b64>"} | {"name": "none"},
     "cipher": "AES-256-GCM", "nonce": "<b64>", "ciphertext": "<b64>"}

The header (everything but nonce and ciphertext) is bound to the ciphertext as associated data, so a
tampered header fails to decrypt like a wrong passphrase would. The plaintext is JSON holding the secret.
A vault made with ``protected=False`` uses a fixed key: it is only obfuscated, and says so.

Everything the agent derives (mark seeds, mark ids, the key of imported marks) comes from the secret
through HKDF with a distinct label, so no derived value reveals the secret or another derived value.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from . import paths

FORMAT = "isotopes-vault"
VERSION = 1
SECRET_BYTES = 32
# OWASP's recommended scrypt cost: 128 MiB of memory, a few hundred ms to unlock.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
_UNPROTECTED_KEY = hashlib.sha256(b"isotopes vault v1: no passphrase").digest()


class VaultError(Exception):
    """A vault problem the user can act on; the message never contains secret material."""


class VaultMissing(VaultError):
    pass


class VaultExists(VaultError):
    pass


class WrongPassphrase(VaultError):
    pass


class VaultCorrupt(VaultError):
    pass


@dataclass(frozen=True)
class Vault:
    """An unlocked vault. The secret stays out of repr() so it cannot leak into logs."""

    secret: bytes = field(repr=False)
    protected: bool
    created: str

    def derive(self, label: str, length: int = 32) -> bytes:
        """A key for one purpose, independent of every other label's key."""
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None,
                    info=b"isotopes/v1/" + label.encode()).derive(self.secret)


def exists(path: Path | None = None) -> bool:
    return (path or paths.vault_file()).exists()


def is_protected(path: Path | None = None) -> bool:
    """Whether the vault on disk needs a passphrase (reads only the header)."""
    header, _, _ = _read(path or paths.vault_file())
    return header["kdf"]["name"] != "none"


def create(passphrase: str | None, path: Path | None = None) -> Vault:
    """Create a new vault; never replaces an existing one. ``passphrase=None`` makes an unprotected vault."""
    path = path or paths.vault_file()
    if path.exists():
        raise VaultExists(f"a vault already exists at {path}; refusing to replace it")
    if passphrase is not None and not passphrase:
        raise VaultError("the passphrase is empty; use --no-passphrase for a vault without one")
    secret = secrets.token_bytes(SECRET_BYTES)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if passphrase is None:
        kdf = {"name": "none"}
    else:
        kdf = {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
               "salt": _b64(secrets.token_bytes(16))}
    header = {"format": FORMAT, "version": VERSION, "kdf": kdf, "cipher": "AES-256-GCM"}
    key = _key(kdf, passphrase)
    nonce = secrets.token_bytes(12)
    plaintext = json.dumps({"secret": _b64(secret), "created": created}).encode()
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, _aad(header))
    document = dict(header, nonce=_b64(nonce), ciphertext=_b64(ciphertext))
    _write_new(path, json.dumps(document, indent=1).encode())
    return Vault(secret=secret, protected=passphrase is not None, created=created)


def unlock(passphrase: str | None, path: Path | None = None) -> Vault:
    """Open the vault; raises WrongPassphrase, VaultCorrupt or VaultMissing."""
    path = path or paths.vault_file()
    header, nonce, ciphertext = _read(path)
    kdf = header["kdf"]
    if kdf["name"] != "none" and not passphrase:
        raise WrongPassphrase("this vault needs its passphrase")
    try:
        plaintext = AESGCM(_key(kdf, passphrase)).decrypt(nonce, ciphertext, _aad(header))
    except InvalidTag:
        if kdf["name"] == "none":
            raise VaultCorrupt(f"the vault file {path} is damaged (authentication failed)") from None
        raise WrongPassphrase("wrong passphrase (or a damaged vault file)") from None
    try:
        body = json.loads(plaintext)
        secret = base64.b64decode(body["secret"], validate=True)
    except (ValueError, KeyError, TypeError):
        raise VaultCorrupt(f"the vault file {path} decrypted to an unreadable body") from None
    if len(secret) != SECRET_BYTES:
        raise VaultCorrupt(f"the vault file {path} holds a secret of the wrong size")
    return Vault(secret=secret, protected=kdf["name"] != "none", created=str(body.get("created", "")))


def _read(path: Path) -> tuple[dict, bytes, bytes]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise VaultMissing(f"no vault at {path}; run `isotopes init` first") from None
    try:
        document = json.loads(raw)
        if document.get("format") != FORMAT:
            raise ValueError("not an isotopes vault")
        if document.get("version") != VERSION:
            raise VaultCorrupt(f"vault format version {document.get('version')!r} is not supported "
                               f"by this version of isotopes (it reads version {VERSION})")
        kdf = document["kdf"]
        if kdf["name"] == "scrypt":
            for name in ("n", "r", "p"):
                if not isinstance(kdf[name], int) or kdf[name] < 1:
                    raise ValueError(f"bad scrypt parameter {name}")
            base64.b64decode(kdf["salt"], validate=True)
        elif kdf["name"] != "none":
            raise ValueError(f"unknown key derivation {kdf['name']!r}")
        if document["cipher"] != "AES-256-GCM":
            raise ValueError("unknown cipher")
        nonce = base64.b64decode(document["nonce"], validate=True)
        ciphertext = base64.b64decode(document["ciphertext"], validate=True)
    except VaultCorrupt:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise VaultCorrupt(f"the vault file {path} is damaged or truncated ({exc.__class__.__name__})") from None
    header = {k: document[k] for k in ("format", "version", "kdf", "cipher")}
    return header, nonce, ciphertext


def _key(kdf: dict, passphrase: str | None) -> bytes:
    if kdf["name"] == "none":
        return _UNPROTECTED_KEY
    salt = base64.b64decode(kdf["salt"])
    try:
        secret_bytes = passphrase.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no passphrase that was ever set can contain one
        raise WrongPassphrase("the passphrase contains characters that are not valid text") from None
    return Scrypt(salt=salt, length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"]).derive(secret_bytes)


def _aad(header: dict) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _write_new(path: Path, data: bytes) -> None:
    """Write `path` atomically, failing if it exists: temp file, fsync, hard link into place."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise VaultExists(f"a vault already exists at {path}; refusing to replace it") from None
        paths.fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
