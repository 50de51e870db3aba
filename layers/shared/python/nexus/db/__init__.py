"""Postgres access: connections, migrations and the embedded local server."""
