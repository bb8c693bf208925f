"""From the vault's secret to one site's mark: its seed (secret) and its public id.

A mark is named by (site, epoch, family). Its seed is an HKDF output under a label that names all three, so
every site and epoch gets an independent mark. Its ``mark_id`` is an HMAC of the same name under a separate
key: it identifies the mark in the ledger and in reports but reveals nothing about the mark's pixels.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass

from ..vault import Vault

MARK_ID_HEX = 20


@dataclass(frozen=True)
class MarkName:
    site: str
    epoch: int
    family: str

    def label(self) -> str:
        return f"{self.family}|{self.site}|{self.epoch}"


def seed(vault: Vault, name: MarkName) -> bytes:
    return vault.derive("mark-seed/" + name.label())


def mark_id(vault: Vault, name: MarkName) -> str:
    digest = hmac.new(vault.derive("mark-id"), name.label().encode(), "sha256").hexdigest()
    return digest[:MARK_ID_HEX]


def external_seeds(count: int) -> list[bytes]:
    """Fresh random seeds for external marks: never derived from the secret, never stored, never published."""
    return [os.urandom(32) for _ in range(count)]
