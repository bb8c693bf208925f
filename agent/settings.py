"""Per-site settings: whether marking is on, strength, fraction of photos marked, rotation, fail-safe."""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, replace

from . import db
from .marks.families import DEFAULT_FAMILY, FAMILIES

DEFAULT_ALPHA = 0.4
"""Blend strength a: the lowest strength the reproduction harness found at the detection target (docs/results/,
`power/`: 19 of 20 models at a = 0.4 with the default test's 99 external marks, against 18 of 20 at 0.3).
Each site keeps the strength it was given, so a new default changes only sites enabled after it."""

ON_FAILURE = ("block", "original")
ALPHA_RANGE = (0.01, 0.99)
"""Below 0.01 a mark rounds away to nothing in 8-bit pixels; at 1 the photo would be replaced by the mark."""
MAX_ROTATION_SECONDS = 100 * 365 * 86400


def check_alpha(alpha: float) -> None:
    if not ALPHA_RANGE[0] <= alpha <= ALPHA_RANGE[1]:
        raise ValueError(f"strength alpha must be between {ALPHA_RANGE[0]} and {ALPHA_RANGE[1]}, got {alpha}")


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
        check_alpha(self.alpha)
        if not 0 <= self.fraction <= 1:
            raise ValueError(f"fraction must be between 0 and 1, got {self.fraction}")
        if self.rotation_seconds is not None and not 0 < self.rotation_seconds <= MAX_ROTATION_SECONDS:
            raise ValueError("the rotation period must be positive and at most 100 years")
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


def update(conn: sqlite3.Connection, site: str, **changes) -> SiteSettings:
    """Change some settings of a site and return the result; read and write in one transaction, so two
    writers changing different settings at once both keep their change."""
    with db.transaction(conn):
        settings = replace(get(conn, site), **changes)
        _write(conn, settings)
    return settings


def _write(conn: sqlite3.Connection, settings: SiteSettings) -> None:
    conn.execute(
        "INSERT INTO sites (site, enabled, alpha, fraction, rotation_seconds, family, on_failure, updated)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site) DO UPDATE SET enabled = excluded.enabled,"
        " alpha = excluded.alpha, fraction = excluded.fraction, rotation_seconds = excluded.rotation_seconds,"
        " family = excluded.family, on_failure = excluded.on_failure, updated = excluded.updated",
        (settings.site, int(settings.enabled), settings.alpha, settings.fraction, settings.rotation_seconds,
         settings.family, settings.on_failure, db.now()))


def all_sites(conn: sqlite3.Connection) -> list[SiteSettings]:
    return [get(conn, row["site"]) for row in conn.execute("SELECT site FROM sites ORDER BY site")]
