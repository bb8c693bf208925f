"""The agent's SQLite database: site settings, issued marks, the upload ledger and the saved models, in one file.

WAL journal with synchronous=FULL: a committed row survives a killed process (and a power cut), and readers
never block the writer. Every write is one short ``BEGIN IMMEDIATE`` transaction, and a busy timeout lets
many processes (several tabs, several CLI runs) share the file.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from . import paths

SCHEMA_VERSION = 2
BUSY_TIMEOUT_S = 60

_SCHEMA = """
CREATE TABLE sites (
    site             TEXT PRIMARY KEY,
    enabled          INTEGER NOT NULL DEFAULT 0,
    alpha            REAL CHECK (alpha IS NULL OR (alpha > 0 AND alpha < 1)),
    fraction         REAL NOT NULL DEFAULT 1.0 CHECK (fraction >= 0 AND fraction <= 1),
    rotation_seconds INTEGER CHECK (rotation_seconds IS NULL OR rotation_seconds > 0),
    family           TEXT,
    on_failure       TEXT NOT NULL DEFAULT 'block' CHECK (on_failure IN ('block', 'original')),
    updated          TEXT NOT NULL
);
CREATE TABLE marks (
    mark_id TEXT PRIMARY KEY,
    site    TEXT NOT NULL,
    epoch   INTEGER NOT NULL,
    family  TEXT NOT NULL,
    started TEXT NOT NULL,
    UNIQUE (site, epoch)
);
CREATE TABLE uploads (
    id         INTEGER PRIMARY KEY,
    time       TEXT NOT NULL,
    site       TEXT NOT NULL,
    origin     TEXT,
    name       TEXT,
    mark_id    TEXT REFERENCES marks (mark_id),
    epoch      INTEGER,
    alpha      REAL,
    sha256_in  TEXT NOT NULL,
    sha256_out TEXT,
    phash      TEXT,
    width      INTEGER,
    height     INTEGER,
    size_in    INTEGER NOT NULL,
    size_out   INTEGER,
    format     TEXT,
    status     TEXT NOT NULL CHECK (status IN ('marked', 'skipped', 'failed')),
    reason     TEXT,
    CHECK (status != 'marked' OR (mark_id IS NOT NULL AND sha256_out IS NOT NULL))
);
CREATE INDEX uploads_sha256_out ON uploads (sha256_out);
CREATE INDEX uploads_sha256_in ON uploads (sha256_in);
CREATE INDEX uploads_site ON uploads (site, time);
"""

_SAVED_MODELS = """
CREATE TABLE saved_models (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL CHECK (kind IN ('http', 'onnx', 'torchscript')),
    location     TEXT NOT NULL,
    preset       TEXT,
    api_config   TEXT,
    api_document TEXT CHECK ((kind = 'http') = (api_document IS NOT NULL)),
    aux          TEXT NOT NULL,
    own          TEXT,
    label        TEXT NOT NULL DEFAULT 'auto',
    found        TEXT NOT NULL,
    added        TEXT NOT NULL,
    checked      TEXT NOT NULL
);
"""

_MIGRATIONS = {1: _SCHEMA, 2: _SAVED_MODELS}
"""The statements that take the database from the version before to each version."""


def now() -> str:
    """The current time as stored in the database: ISO 8601, UTC, seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def connect(path: Path | None = None) -> sqlite3.Connection:
    """Open (and if needed create or migrate) the database."""
    conn = sqlite3.connect(path or paths.database_file(), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                           check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
        with transaction(conn):
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"the database was written by a newer isotopes (schema {version}); upgrade isotopes")
            for step in range(version + 1, SCHEMA_VERSION + 1):
                # Statement by statement: executescript() would commit the open transaction first.
                for statement in _MIGRATIONS[step].split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction that takes the write lock up front, so it never deadlocks on upgrade."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
