"""Per-site settings: whether marking is on, strength, fraction of photos marked, rotation, fail-safe."""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, replace

from . import db
from .marks.families import DEFAULT_FAMILY, FAMILIES

DEFAULT_ALPHA = 0.3
"""Blend strength a. The preliminary measurement here (shared notes, detection.md) found a = 0.3 the best of
0.2-0.4 for procedural marks on Fashion-MNIST; the reproduction harness refines it (docs/results/)."""

ON_FAILURE = ("block", "original")


@dataclass(frozen=True)
class SiteSettings:
    site: str
    enabled: bool = False
    alpha: float = DEFAULT_ALPHA
    fraction: float = 1.0
    rotation_seconds: int | None = None
    family: str = DEFAULT_FAMILY
    on_failure: str = "block"

    def __post_init__(self):
        if not 0 < self.alpha < 1:
            raise ValueError(f"strength alpha must be between 0 and 1 (exclusive), got {self.alpha}")
        if not 0 <= self.fraction <= 1:
            raise ValueError(f"fraction must be between 0 and 1, got {self.fraction}")
        if self.rotation_seconds is not None and self.rotation_seconds <= 0:
            raise ValueError("the rotation period must be positive")
        if self.family not in FAMILIES:
            raise ValueError(f"unknown mark family {self.family!r}; known: {', '.join(sorted(FAMILIES))}")
        if self.on_failure not in ON_FAILURE:
            raise ValueError(f"on_failure must be one of {', '.join(ON_FAILURE)}")

    def to_json(self) -> dict:
        return asdict(self)


def get(conn: sqlite3.Connection, site: str) -> SiteSettings:
    """The site's settings; defaults for a site never configured."""
    row = conn.execute("SELECT * FROM sites WHERE site = ?", (site,)).fetchone()
    if row is None:
        return SiteSettings(site=site)
    return SiteSettings(site=site, enabled=bool(row["enabled"]),
                        alpha=row["alpha"] if row["alpha"] is not None else DEFAULT_ALPHA,
                        fraction=row["fraction"], rotation_seconds=row["rotation_seconds"],
                        family=row["family"] or DEFAULT_FAMILY, on_failure=row["on_failure"])


def put(conn: sqlite3.Connection, settings: SiteSettings) -> None:
    with db.transaction(conn):
        conn.execute(
            "INSERT INTO sites (site, enabled, alpha, fraction, rotation_seconds, family, on_failure, updated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site) DO UPDATE SET enabled = excluded.enabled,"
            " alpha = excluded.alpha, fraction = excluded.fraction, rotation_seconds = excluded.rotation_seconds,"
            " family = excluded.family, on_failure = excluded.on_failure, updated = excluded.updated",
            (settings.site, int(settings.enabled), settings.alpha, settings.fraction, settings.rotation_seconds,
             settings.family, settings.on_failure, db.now()))


def update(conn: sqlite3.Connection, site: str, **changes) -> SiteSettings:
    """Change some settings of a site and return the result."""
    settings = replace(get(conn, site), **changes)
    put(conn, settings)
    return settings


def all_sites(conn: sqlite3.Connection) -> list[SiteSettings]:
    return [get(conn, row["site"]) for row in conn.execute("SELECT site FROM sites ORDER BY site")]
