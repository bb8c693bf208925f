"""Which marks were issued: one row per (site, epoch), kept forever so every mark stays verifiable.

A site's current mark is its latest epoch. A new epoch starts when the user rotates the mark, when the site's
rotation period has passed since the epoch began, or when the site's mark family changes.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import numpy as np

from .. import db
from ..vault import Vault
from . import imported
from .families import render
from .keys import MarkName, mark_id, seed


@dataclass(frozen=True)
class IssuedMark:
    mark_id: str
    site: str
    epoch: int
    family: str
    started: str

    @property
    def name(self) -> MarkName:
        return MarkName(self.site, self.epoch, self.family)

    def to_json(self) -> dict:
        return asdict(self)


def _latest(conn: sqlite3.Connection, site: str) -> IssuedMark | None:
    row = conn.execute("SELECT mark_id, site, epoch, family, started FROM marks WHERE site = ?"
                       " ORDER BY epoch DESC LIMIT 1", (site,)).fetchone()
    return IssuedMark(**row) if row else None


def _expired(mark: IssuedMark, family: str, rotation_seconds: int | None, at: datetime) -> bool:
    if mark.family != family and mark.family != imported.FAMILY:
        return True
    if rotation_seconds is None:
        return False
    return (at - datetime.fromisoformat(mark.started)).total_seconds() >= rotation_seconds


def current(conn: sqlite3.Connection, vault: Vault, site: str, family: str,
            rotation_seconds: int | None = None, at: datetime | None = None) -> IssuedMark:
    """The site's mark for an upload now, issuing a new epoch if the current one is due for rotation."""
    at = at or datetime.now(timezone.utc)
    mark = _latest(conn, site)
    if mark is not None and not _expired(mark, family, rotation_seconds, at):
        return mark
    with db.transaction(conn):
        mark = _latest(conn, site)  # another process may have rotated meanwhile
        if mark is not None and not _expired(mark, family, rotation_seconds, at):
            return mark
        return _insert(conn, vault, site, family, mark.epoch + 1 if mark else 0, at)


def rotate(conn: sqlite3.Connection, vault: Vault, site: str, family: str) -> IssuedMark:
    """Start a new epoch for the site now."""
    with db.transaction(conn):
        mark = _latest(conn, site)
        return _insert(conn, vault, site, family, mark.epoch + 1 if mark else 0, datetime.now(timezone.utc))


def import_image(conn: sqlite3.Connection, vault: Vault, site: str, data: bytes) -> IssuedMark:
    """Make the user's own image the site's mark from now on (a new epoch); stored encrypted."""
    pixels = imported.normalise(data)
    with db.transaction(conn):
        previous = _latest(conn, site)
        epoch = previous.epoch + 1 if previous else 0
        imported.store(vault, mark_id(vault, MarkName(site, epoch, imported.FAMILY)), pixels)
        return _insert(conn, vault, site, imported.FAMILY, epoch, datetime.now(timezone.utc))


def _insert(conn, vault, site, family, epoch, at) -> IssuedMark:
    mark = IssuedMark(mark_id=mark_id(vault, MarkName(site, epoch, family)), site=site, epoch=epoch,
                      family=family, started=at.isoformat(timespec="seconds"))
    conn.execute("INSERT INTO marks (mark_id, site, epoch, family, started) VALUES (?, ?, ?, ?, ?)",
                 (mark.mark_id, mark.site, mark.epoch, mark.family, mark.started))
    return mark


def issued(conn: sqlite3.Connection, site: str | None = None) -> list[IssuedMark]:
    """Every mark ever issued (for one site, or all), oldest first."""
    query = "SELECT mark_id, site, epoch, family, started FROM marks"
    rows = conn.execute(query + (" WHERE site = ?" if site else "") + " ORDER BY site, epoch",
                        (site,) if site else ())
    return [IssuedMark(**row) for row in rows]


def summary(conn: sqlite3.Connection, site: str | None = None) -> list[dict]:
    """Every mark issued, as JSON objects with whether it is the site's current one and its upload count."""
    counts = dict(conn.execute("SELECT mark_id, COUNT(*) FROM uploads WHERE status = 'marked' GROUP BY mark_id"))
    marks = issued(conn, site)
    latest = {mark.site: mark.epoch for mark in marks}
    return [mark.to_json() | {"current": latest[mark.site] == mark.epoch, "uploads": counts.get(mark.mark_id, 0)}
            for mark in marks]


def by_id(conn: sqlite3.Connection, mark_id_: str) -> IssuedMark | None:
    row = conn.execute("SELECT mark_id, site, epoch, family, started FROM marks WHERE mark_id = ?",
                       (mark_id_,)).fetchone()
    return IssuedMark(**row) if row else None


def pixels(vault: Vault, mark: IssuedMark) -> np.ndarray:
    """The mark's image: re-rendered from the secret, or decrypted if the user imported it."""
    if mark.family == imported.FAMILY:
        return imported.load(vault, mark.mark_id)
    return render(mark.family, seed(vault, mark.name))
