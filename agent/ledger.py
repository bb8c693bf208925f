"""The ledger: one row per image the agent processed, marked or not, and why.

Rows are only ever added. ``find`` answers "is this file one we marked?" for exact copies (sha256) and for
resized or re-encoded copies (perceptual hash distance).
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, fields

import imagehash

from . import db

STATUSES = ("marked", "skipped", "failed")
PHASH_MATCH_DISTANCE = 10
"""Hamming distance (of 64 bits) under which two pHashes are taken to show the same photo."""


@dataclass(frozen=True)
class Upload:
    time: str
    site: str
    status: str
    sha256_in: str
    size_in: int
    reason: str | None = None
    origin: str | None = None
    name: str | None = None
    mark_id: str | None = None
    epoch: int | None = None
    alpha: float | None = None
    sha256_out: str | None = None
    phash: str | None = None
    width: int | None = None
    height: int | None = None
    size_out: int | None = None
    format: str | None = None
    id: int | None = None

    def to_json(self) -> dict:
        return asdict(self)


_COLUMNS = [f.name for f in fields(Upload) if f.name != "id"]


def record(conn: sqlite3.Connection, upload: Upload) -> Upload:
    """Append the row in its own transaction; returns it with its id."""
    if upload.status not in STATUSES:
        raise ValueError(f"unknown status {upload.status!r}")
    values = [getattr(upload, name) for name in _COLUMNS]
    with db.transaction(conn):
        cursor = conn.execute(f"INSERT INTO uploads ({', '.join(_COLUMNS)}) VALUES "
                              f"({', '.join('?' for _ in _COLUMNS)})", values)
    return Upload(**{**upload.to_json(), "id": cursor.lastrowid})


def uploads(conn: sqlite3.Connection, site: str | None = None, limit: int | None = None) -> list[Upload]:
    """Rows, newest first, optionally for one site."""
    query = "SELECT * FROM uploads" + (" WHERE site = ?" if site else "") + " ORDER BY id DESC"
    params: tuple = (site,) if site else ()
    if limit is not None:
        query += " LIMIT ?"
        params += (limit,)
    return [Upload(**dict(row)) for row in conn.execute(query, params)]


def stats(conn: sqlite3.Connection) -> dict[str, dict]:
    """Per site: how many photos were marked, skipped and failed, and when the last one was processed."""
    result: dict[str, dict] = {}
    for site, status, count, last in conn.execute(
            "SELECT site, status, COUNT(*), MAX(time) FROM uploads GROUP BY site, status ORDER BY site"):
        entry = result.setdefault(site, {status: 0 for status in STATUSES} | {"last": None})
        entry[status] = count
        entry["last"] = max(filter(None, (entry["last"], last)))
    return result


@dataclass(frozen=True)
class Match:
    upload: Upload
    kind: str  # "exact" (the very bytes we produced), "original" (the input we marked), "similar"
    distance: int  # pHash Hamming distance; 0 for exact byte matches


def find(conn: sqlite3.Connection, sha256: str, phash: str | None) -> list[Match]:
    """Marked uploads this file is, or was made from, or looks like (closest first)."""
    matches: list[Match] = []
    seen: set[int] = set()
    for kind, column in (("exact", "sha256_out"), ("original", "sha256_in")):
        for row in conn.execute(f"SELECT * FROM uploads WHERE status = 'marked' AND {column} = ?", (sha256,)):
            matches.append(Match(Upload(**dict(row)), kind, 0))
            seen.add(row["id"])
    if phash:
        target = imagehash.hex_to_hash(phash)
        similar = []
        for row in conn.execute("SELECT * FROM uploads WHERE status = 'marked' AND phash IS NOT NULL"):
            distance = imagehash.hex_to_hash(row["phash"]) - target
            if row["id"] not in seen and distance <= PHASH_MATCH_DISTANCE:
                similar.append(Match(Upload(**dict(row)), "similar", int(distance)))
        matches += sorted(similar, key=lambda match: match.distance)
    return matches
