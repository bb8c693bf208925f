"""A user's own image used as a site's mark, kept encrypted in the vault directory."""

from __future__ import annotations

import io
import os
import secrets

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from PIL import Image, ImageOps

from .. import paths
from ..vault import Vault, VaultCorrupt
from .families import BASE_SIZE

FAMILY = "imported"


def _file(mark_id: str):
    folder = paths.vault_dir() / "imported"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / f"{mark_id}.mark"


def normalise(data: bytes) -> np.ndarray:
    """The image as a mark: upright, RGB, centre-cropped to a square of the mark size."""
    with Image.open(io.BytesIO(data)) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
    return np.asarray(ImageOps.fit(image, (BASE_SIZE, BASE_SIZE), Image.Resampling.LANCZOS))


def store(vault: Vault, mark_id: str, pixels: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, "PNG")
    nonce = secrets.token_bytes(12)
    sealed = nonce + AESGCM(vault.derive("imported-mark-key")).encrypt(nonce, buffer.getvalue(), mark_id.encode())
    target = _file(mark_id)
    tmp = target.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(sealed)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, target)
    paths.fsync_dir(target.parent)


def load(vault: Vault, mark_id: str) -> np.ndarray:
    try:
        sealed = _file(mark_id).read_bytes()
        plain = AESGCM(vault.derive("imported-mark-key")).decrypt(sealed[:12], sealed[12:], mark_id.encode())
    except FileNotFoundError:
        raise VaultCorrupt(f"the imported mark {mark_id} is missing from the vault") from None
    except (InvalidTag, ValueError):
        raise VaultCorrupt(f"the imported mark {mark_id} is damaged") from None
    with Image.open(io.BytesIO(plain)) as image:
        return np.asarray(image.convert("RGB"))
