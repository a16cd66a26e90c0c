"""Schema changes on PostgreSQL, one process at a time.

Two processes starting together (a server and a projection runner, say) both create the
ledger's tables, functions and triggers. PostgreSQL deadlocks on concurrent `CREATE OR
REPLACE` of the same trigger and can fail concurrent `CREATE TABLE IF NOT EXISTS` on a
catalogue index, so every schema change first takes a transaction-scoped advisory lock
named after the schema.
"""

from __future__ import annotations

from typing import Any

from psycopg.sql import SQL, Identifier

LOCK_NAME = "dutyledger:ddl:{schema}"


def lock_schema(cursor: Any, schema: str) -> None:
    """Wait for `schema`'s change lock (held until the transaction ends); create the schema if absent.

    The schema is only created when missing: `CREATE SCHEMA IF NOT EXISTS` would need the
    CREATE privilege on the database even when the schema is already there.
    """
    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (LOCK_NAME.format(schema=schema),))
    cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
    if cursor.fetchone() is None:
        cursor.execute(SQL("CREATE SCHEMA {}").format(Identifier(schema)))
