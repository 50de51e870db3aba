"""How the proxy is served, defined once for every entry (Lambda's ``run.sh``, ``nexus dev``, the
benchmarks): uvicorn on uvloop with the proxy's own HTTP protocol, no access log, no headers of its
own (the upstream's pass through), and a keep-alive longer than clients' pools stay idle, so a client
never reuses a socket the proxy just closed.

    python -m nexus_proxy.serve --host 127.0.0.1 --port 8080 [--log-level warning]
        [--timeout-graceful-shutdown S] [--backlog N]

uvicorn's server is run from here rather than through its command line: on Lambda every new sandbox
pays the start, and the command line (click) is a tenth of the proxy's start budget.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from uvicorn.config import Config

FACTORY = "nexus_proxy.app:create_app"
PROTOCOL = "nexus_proxy.http_server:ProxyHttpProtocol"
KEEP_ALIVE_S = 75


def _uvicorn_without_its_cli() -> None:
    """Make ``import uvicorn.config`` not run uvicorn's package ``__init__``, which only re-exports
    ``Config``, ``Server`` and its command line, and so imports click and ``uvicorn.main`` (about
    25 ms). The package is registered bare and given the two names its own modules import from it."""
    if "uvicorn" in sys.modules:
        return
    spec = importlib.util.find_spec("uvicorn")
    assert spec is not None and spec.submodule_search_locations is not None, "uvicorn is not installed"
    package = importlib.util.module_from_spec(spec)
    sys.modules["uvicorn"] = package
    from uvicorn.config import Config
    from uvicorn.server import Server

    package.Config = Config  # type: ignore[attr-defined]  # uvicorn.lifespan.on imports it from the package
    package.Server = Server  # type: ignore[attr-defined]


def parse(args: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m nexus_proxy.serve", description="Serve the Nexus proxy.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    ap.add_argument("--timeout-graceful-shutdown", type=int, default=None, metavar="S")
    ap.add_argument("--backlog", type=int, default=2048)
    return ap.parse_args(args)


def config(args: argparse.Namespace) -> Config:
    _uvicorn_without_its_cli()
    from uvicorn.config import Config

    return Config(
        FACTORY,
        factory=True,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http=PROTOCOL,
        access_log=False,
        server_header=False,
        date_header=False,
        timeout_keep_alive=KEEP_ALIVE_S,
        log_level=args.log_level,
        timeout_graceful_shutdown=args.timeout_graceful_shutdown,
        backlog=args.backlog,
    )


def main(argv: list[str] | None = None) -> None:
    # In this process: no second interpreter start on the way (Lambda pays every cold start).
    _uvicorn_without_its_cli()
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.server import Server

    server = Server(config(parse(sys.argv[1:] if argv is None else argv)))
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


if __name__ == "__main__":
    main()
