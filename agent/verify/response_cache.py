"""The disk cache of model API answers (agent/verify/http_model.py), so that a rerun never pays for the same
query twice.
"""

from __future__ import annotations

import sqlite3

import numpy as np

from .. import paths


class ResponseCache:
    """Parsed answer rows of model APIs, keyed by (model key, sha256 of the image's pixels), in SQLite."""

    def __init__(self):
        folder = paths.data_dir() / "cache"
        folder.mkdir(mode=0o700, exist_ok=True)
        self.connection = sqlite3.connect(folder / "model-responses.db", timeout=60, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode = WAL")
        self.connection.execute("PRAGMA synchronous = NORMAL")  # a cache: a power cut may cost the last answers
        self.connection.execute("CREATE TABLE IF NOT EXISTS answers (model TEXT NOT NULL, image TEXT NOT NULL, "
                                "row BLOB NOT NULL, PRIMARY KEY (model, image))")

    def rows(self, model: str, images: list[str]) -> dict[str, np.ndarray]:
        """The cached row of each of these image digests that has one, by digest."""
        found = {}
        for image in images:
            row = self.connection.execute("SELECT row FROM answers WHERE model = ? AND image = ?",
                                          (model, image)).fetchone()
            if row is not None:
                found[image] = np.frombuffer(row[0], np.float64)
        return found

    def store(self, model: str, rows: dict[str, np.ndarray]) -> None:
        """Keep these rows (image digest -> row) of this model, in one transaction."""
        if not rows:
            return
        self.connection.execute("BEGIN")
        try:
            self.connection.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?)",
                                        [(model, image, row.astype(np.float64).tobytes())
                                         for image, row in rows.items()])
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")

    def close(self) -> None:
        """Close the database."""
        self.connection.close()
