"""Where the agent keeps the user's data: one directory, private to the user."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

HOME_ENV = "ISOTOPES_HOME"


def data_dir() -> Path:
    """The data directory ($ISOTOPES_HOME, else the platform's user data dir), created 0700 if missing."""
    override = os.environ.get(HOME_ENV)
    path = Path(override) if override else platformdirs.user_data_path("isotopes", appauthor=False)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def vault_dir() -> Path:
    path = data_dir() / "vault"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def vault_file() -> Path:
    return vault_dir() / "vault.json"


def database_file() -> Path:
    return data_dir() / "isotopes.db"


def fsync_dir(path: Path) -> None:
    """Make a rename or link inside `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
