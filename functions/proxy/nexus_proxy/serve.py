"""How the proxy is served, defined once for every entry (Lambda's ``run.sh``, ``nexus dev``, the
benchmarks): uvicorn on uvloop with the proxy's own HTTP protocol, no access log, no headers of its
own (the upstream's pass through), and a keep-alive longer than clients' pools stay idle, so a client
never reuses a socket the proxy just closed.

    python -m nexus_proxy.serve --host 127.0.0.1 --port 8080 [--log-level warning]
        [--timeout-graceful-shutdown S] [--backlog N]

No websockets: an upgrade request is served as plain HTTP (the protocol says so in the log).

uvicorn's server is run from here rather than through its command line: on Lambda every new sandbox
pays the start, and the command line (click) is a tenth of the proxy's start budget.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from uvicorn.config import Config

FACTORY = "nexus_proxy.app:create_app"
PROTOCOL = "nexus_proxy.http_server:ProxyHttpProtocol"
KEEP_ALIVE_S = 75
USAGE = "[--host H] [--port N] [--log-level L] [--timeout-graceful-shutdown S] [--backlog N]"


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


@dataclass(frozen=True, slots=True)
class Options:
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "info"
    timeout_graceful_shutdown: int | None = None
    backlog: int = 2048


LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def parse(args: list[str]) -> Options:
    """``--name value`` pairs for the fields of ``Options`` (argparse is not worth its import here)."""
    types = {f.name: f.type for f in fields(Options)}
    values: dict[str, object] = {}
    pairs = iter(args)
    for flag in pairs:
        name = flag.removeprefix("--").replace("-", "_")
        value = next(pairs, None)
        if not flag.startswith("--") or name not in types or value is None:
            raise SystemExit(f"usage: python -m nexus_proxy.serve {USAGE}\nbad argument: {flag}")
        try:
            values[name] = value if types[name] == "str" else int(value)
        except ValueError:
            raise SystemExit(f"{flag}: not a whole number: {value!r}") from None
    if values.get("log_level", "info") not in LOG_LEVELS:
        raise SystemExit(f"--log-level: one of {', '.join(LOG_LEVELS)}")
    return Options(**values)  # type: ignore[arg-type]


def config(args: Options) -> Config:
    _uvicorn_without_its_cli()
    from uvicorn.config import Config

    return Config(
        FACTORY,
        factory=True,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http=PROTOCOL,
        ws="none",  # nor does it import a websockets library at start
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
