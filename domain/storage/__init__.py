"""Where events are kept: one SQLite file by default, PostgreSQL at scale."""

from domain.storage.commands import CommandLog, CommandRecord
from domain.storage.url import store_env

__all__ = ["CommandLog", "CommandRecord", "store_env"]
