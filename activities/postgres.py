"""What every asyncpg pool of temporal-dsl sets up on each new connection.

Two pools talk to PostgreSQL: `sql.query`'s (`activities.builtin`, on `TDSL_SQL_URL`)
and the registry and run history's (`interpreter.history.store`, on `DATABASE_URL`).
Both hand json and jsonb columns over as Python values, never as JSON text, so the
codec is defined once, here: `interpreter/` may import `activities/`, never the
reverse, so this is the one place both can reach.
"""

from __future__ import annotations

import json

import asyncpg

__all__ = ["init_json_codec"]


async def init_json_codec(conn: asyncpg.Connection) -> None:
    """Encode and decode `json` and `jsonb` with the standard `json` module.

    Meant as `asyncpg.create_pool(..., init=init_json_codec)`: a value read is a dict,
    list, str, number, bool or None, and a parameter is serialised with `json.dumps`.
    """
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
