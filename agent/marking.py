"""One upload's path through the agent: site settings -> the site's current mark -> blend -> ledger row.

``Marker.prepare`` does the work and returns the outcome with the output bytes; ``Marker.record`` appends the
ledger row. They are separate so a caller that writes files can stage the output first, record it, and only
then move it into place: an output file that exists always has its ledger row.
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import db, ledger, settings
from .blending import BlendFailed, Unmarkable, blend_photo
from .marks import registry
from .marks.registry import IssuedMark
from .vault import Vault


@dataclass(frozen=True)
class Outcome:
    """What happened to one image. ``data`` is what to upload: the marked photo, the unchanged input for a
    skipped one, and None when marking failed."""

    upload: ledger.Upload
    data: bytes | None
    problem: str | None = None  # why it was not marked: "not_an_image", "unmarkable" or "image_damaged"

    @property
    def status(self) -> str:
        return self.upload.status


class Marker:
    """Marks photos for a vault and a database; safe to share between threads."""

    MARK_CACHE_SIZE = 8

    def __init__(self, vault: Vault, conn: sqlite3.Connection):
        self.vault = vault
        self.conn = conn
        self._lock = threading.Lock()
        self._marks: OrderedDict[str, np.ndarray] = OrderedDict()

    def prepare(self, data: bytes, site: str, *, origin: str | None = None, name: str | None = None,
                alpha: float | None = None) -> Outcome:
        """Mark `data` for `site` (no ledger row yet)."""
        digest_in = _digests.submit(_sha256, data)  # hashed on another core while the photo decodes
        with self._lock:
            site_settings = settings.get(self.conn, site)

        def outcome(data_out: bytes | None, problem: str | None = None, **fields) -> Outcome:
            upload = ledger.Upload(time=db.now(), site=site, origin=origin, name=name, size_in=len(data),
                                   sha256_in=digest_in.result(), **fields)
            return Outcome(upload, data_out, problem)

        if site_settings.fraction < 1 and not self._selected(digest_in.result(), site_settings.fraction):
            return outcome(data, status="skipped", reason=f"not selected: this site marks "
                           f"{site_settings.fraction:.0%} of photos, chosen by content", **_passthrough(data))
        with self._lock:
            mark = registry.current(self.conn, self.vault, site, site_settings.family,
                                    site_settings.rotation_seconds)
        strength = site_settings.alpha if alpha is None else alpha
        settings.check_alpha(strength)
        try:
            photo = blend_photo(data, lambda: self._pixels(mark), strength)
        except Unmarkable as exc:
            return outcome(data, exc.code, status="skipped", reason=str(exc), **_passthrough(data))
        except BlendFailed as exc:
            return outcome(None, exc.code, status="failed", reason=str(exc))
        return outcome(photo.data, status="marked", reason=photo.note, mark_id=mark.mark_id, epoch=mark.epoch,
                       alpha=strength, sha256_out=_sha256(photo.data), phash=photo.phash, width=photo.width,
                       height=photo.height, size_out=len(photo.data), format=photo.format)

    def record(self, outcome: Outcome) -> ledger.Upload:
        with self._lock:
            return ledger.record(self.conn, outcome.upload)

    def mark(self, data: bytes, site: str, **options) -> tuple[ledger.Upload, bytes | None]:
        """prepare + record: the ledger row and the bytes to upload."""
        outcome = self.prepare(data, site, **options)
        return self.record(outcome), outcome.data

    def _selected(self, sha256_in: str, fraction: float) -> bool:
        """Whether this photo is in the marked fraction: a keyed hash of its content, so the same photo always
        gets the same answer and nobody without the secret can predict which photos are marked."""
        if fraction >= 1:
            return True
        digest = hmac.new(self.vault.derive("fraction"), bytes.fromhex(sha256_in), "sha256").digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < fraction

    def _pixels(self, mark: IssuedMark) -> np.ndarray:
        with self._lock:
            cached = self._marks.get(mark.mark_id)
            if cached is not None:
                self._marks.move_to_end(mark.mark_id)
                return cached
        pixels = registry.pixels(self.vault, mark)
        with self._lock:
            self._marks[mark.mark_id] = pixels
            while len(self._marks) > self.MARK_CACHE_SIZE:
                self._marks.popitem(last=False)
        return pixels


_digests = ThreadPoolExecutor(max_workers=2, thread_name_prefix="isotopes-digest")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _passthrough(data: bytes) -> dict:
    return {"sha256_out": _sha256(data), "size_out": len(data)}
