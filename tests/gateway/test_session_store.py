"""The gateway's PostgreSQL SessionStore passes the SDK's own conformance suite, on a real database."""

from __future__ import annotations

import asyncio

from claude_agent_sdk.testing import run_session_store_conformance
from nexus.db.migrate import migrate
from nexus_gateway.engine.session_store import BackgroundWrites, PostgresSessionStore
from psycopg_pool import AsyncConnectionPool


def test_postgres_session_store_passes_the_sdk_conformance_suite(database_url):
    migrate(database_url)

    async def run() -> None:
        async with AsyncConnectionPool(database_url, min_size=1, max_size=4, open=False) as pool:

            async def fresh() -> PostgresSessionStore:
                async with pool.connection() as conn:  # each contract starts from an empty store
                    await conn.execute("TRUNCATE gateway_transcript_entries, gateway_transcripts")
                return PostgresSessionStore(pool)

            await run_session_store_conformance(fresh)

            async def fresh_background() -> BackgroundWrites:  # what the gateway uses: appends written later
                return BackgroundWrites(await fresh())

            await run_session_store_conformance(fresh_background)

    asyncio.run(run())
