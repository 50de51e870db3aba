"""The front's and the router's settings: one typed object each process reads once at start.

A dataclass, not pydantic-settings: both relays start in every new Lambda sandbox, on the turn's
path, and carry four values (the proxy makes the same choice, docs/adr/0021)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from nexus import env


class CloudSettingsError(ValueError):
    """A variable has a value the relay cannot run with; the message names it."""


@dataclass(frozen=True, slots=True)
class CloudSettings:
    router_function: str | None = None  # front, in AWS: the router's function name
    router_url: str | None = None  # front, without Lambda: the router's HTTP address
    workers: str | None = None  # router: the workers' DNS name, or host:port,...
    worker_port: int = env.DEFAULT_GATEWAY_WORKER_PORT
    on_lambda: bool = False  # Lambda sets AWS_LAMBDA_FUNCTION_NAME: log JSON lines

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CloudSettings:
        environ = os.environ if environ is None else environ
        port = environ.get(env.GATEWAY_WORKER_PORT) or str(env.DEFAULT_GATEWAY_WORKER_PORT)
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise CloudSettingsError(f"{env.GATEWAY_WORKER_PORT}: must be a port number, got {port!r}")
        return cls(
            router_function=environ.get(env.GATEWAY_ROUTER_FUNCTION) or None,
            router_url=environ.get(env.GATEWAY_ROUTER_URL) or None,
            workers=environ.get(env.GATEWAY_WORKERS) or None,
            worker_port=int(port),
            on_lambda=bool(environ.get(env.LAMBDA_FUNCTION_NAME)),
        )
