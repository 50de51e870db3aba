"""The worker's entry: the container's command (``python -m nexus_gateway.serve``, the CMD of
``functions/gateway/Dockerfile``). The whole gateway app, as ``nexus dev`` runs it, on the worker
port; behind the router in AWS.

Stopping drains: on SIGTERM (ECS stopping the task for a scale-in or a deploy) uvicorn closes the
listener at once, so the router sends new turns to other workers, lets the turns in flight finish
(up to ``DRAIN_S``, inside Fargate's 120 s stop timeout), then the app's shutdown closes the pool
and flushes the session store's writes.
"""

from __future__ import annotations

import sys

DRAIN_S = 110  # ECS sends SIGKILL 120 s after SIGTERM at most: leave time for the pool to close


def main() -> None:
    import uvicorn

    from nexus_gateway.settings import SettingsError, load

    try:
        settings = load()
    except SettingsError as exc:
        sys.exit(f"gateway: {exc}")
    aws = settings.publish_metrics  # set by the stack: a task in ECS
    if aws:
        from nexus.logs import json_logging

        json_logging("nexus-gateway")
    uvicorn.run(
        "nexus_gateway.app:create_from_env",
        factory=True,
        host=settings.host,
        port=settings.worker_port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        server_header=False,
        timeout_keep_alive=75,
        timeout_graceful_shutdown=DRAIN_S,
        log_level="info",
        log_config=None if aws else uvicorn.config.LOGGING_CONFIG,  # in ECS: the JSON lines above
    )


if __name__ == "__main__":
    main()
