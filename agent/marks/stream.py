"""Random numbers that never change across platforms or library versions.

A mark must be re-creatable from the secret for as long as the user may want to verify, so its
randomness comes from SHAKE-256 (a fixed standard), not from a library generator whose streams may
change between releases.
"""

from __future__ import annotations

import hashlib

import numpy as np


class Stream:
    """Independent uniform draws in [0, 1), addressed by label: the same (seed, label) gives the same numbers."""

    def __init__(self, seed: bytes):
        self._seed = seed

    def uniform(self, label: str, shape: tuple[int, ...] | int) -> np.ndarray:
        count = int(np.prod(shape))
        raw = hashlib.shake_256(self._seed + b"/" + label.encode()).digest(4 * count)
        return (np.frombuffer(raw, dtype="<u4") / 2.0**32).reshape(shape)

    def integers(self, label: str, low: int, high: int, shape: tuple[int, ...] | int) -> np.ndarray:
        """Integers in [low, high)."""
        return (low + np.floor(self.uniform(label, shape) * (high - low))).astype(np.int64)
