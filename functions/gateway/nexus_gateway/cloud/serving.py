"""How the front and the router are served: uvicorn on uvloop, no access log, no server headers,
a keep-alive longer than clients' pools idle out. One place, for ``front.sh``, ``router.sh`` and the
local cloud shape."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from nexus_gateway.cloud.settings import CloudSettings, CloudSettingsError


def load(what: str) -> CloudSettings:
    try:
        return CloudSettings.from_env()
    except CloudSettingsError as exc:
        sys.exit(f"{what}: {exc}")


def serve(app: Any, what: str, settings: CloudSettings, argv: list[str] | None = None) -> None:
    import uvicorn

    if settings.on_lambda:
        from nexus.logs import json_logging

        json_logging(f"nexus-gateway-{what}")

    p = argparse.ArgumentParser(prog=f"python -m nexus_gateway.cloud.{what}")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--log-level", default="warning")
    args = p.parse_args(argv)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        server_header=False,
        date_header=False,
        timeout_keep_alive=75,
        log_level=args.log_level,
        log_config=None if settings.on_lambda else uvicorn.config.LOGGING_CONFIG,
    )
