"""The registry of units and cadres."""

from domain.registry.cadre import Cadre, Posting
from domain.registry.unit import Unit

__all__ = ["Cadre", "Posting", "Unit"]
