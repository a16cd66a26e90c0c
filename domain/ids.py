"""Deterministic identifiers derived inside the ledger's own namespace."""

from __future__ import annotations

from uuid import UUID, uuid5

LEDGER_NAMESPACE = UUID("5f0c7d1e-3b7a-5d53-9a51-64e2c0a6b1d4")
"""The namespace of every name-derived id in Duty Ledger; never change it."""


def derived_id(*parts: object) -> UUID:
    """A stable id for a name made of `parts` (e.g. the demo's units and cadres)."""
    return uuid5(LEDGER_NAMESPACE, "/".join(str(part) for part in parts))
