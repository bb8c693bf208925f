"""The user's marks as the engine tests them: every mark issued for the chosen sites that marked at least one
upload, rendered from the vault, at the strength its uploads were blended with."""

from __future__ import annotations

import sqlite3
from functools import partial

from ..marks import imported, registry
from ..marks.families import render
from ..settings import get as site_settings
from ..vault import Vault
from .engine import MarkUnderTest


def _strength(conn: sqlite3.Connection, mark: registry.IssuedMark) -> float:
    """The strength most of the mark's uploads used (the site's setting when none is recorded)."""
    row = conn.execute("SELECT alpha, COUNT(*) AS uses FROM uploads WHERE mark_id = ? AND status = 'marked' "
                       "AND alpha IS NOT NULL GROUP BY alpha ORDER BY uses DESC, alpha LIMIT 1",
                       (mark.mark_id,)).fetchone()
    return float(row["alpha"]) if row else site_settings(conn, mark.site).alpha


def used_marks(vault: Vault, conn: sqlite3.Connection, sites: list[str] | None = None) -> list[MarkUnderTest]:
    """Marks of `sites` (all sites when None) that marked at least one upload, oldest first."""
    used = {row[0] for row in conn.execute("SELECT DISTINCT mark_id FROM uploads WHERE status = 'marked'")}
    chosen = [mark for mark in registry.issued(conn)
              if mark.mark_id in used and (sites is None or mark.site in sites)]
    return [MarkUnderTest(mark_id=mark.mark_id, site=mark.site, epoch=mark.epoch, family=mark.family,
                          pixels=registry.pixels(vault, mark), alpha=_strength(conn, mark), started=mark.started,
                          panel=None if mark.family == imported.FAMILY else partial(render, mark.family))
            for mark in chosen]
