"""How the proxy is served, defined once for every entry (Lambda's ``run.sh``, ``nexus dev``, the
benchmarks): uvicorn on uvloop with the proxy's own HTTP protocol, no access log, no headers of its
own (the upstream's pass through), and a keep-alive longer than clients' pools stay idle, so a client
never reuses a socket the proxy just closed.

    python -m nexus_proxy.serve --host 127.0.0.1 --port 8080 [more uvicorn options]
"""

from __future__ import annotations

import sys

FACTORY = "nexus_proxy.app:create_app"
OPTIONS = (
    "--loop",
    "uvloop",
    "--http",
    "nexus_proxy.http_server:ProxyHttpProtocol",
    "--no-access-log",
    "--no-server-header",
    "--no-date-header",
    "--timeout-keep-alive",
    "75",
)


def argv(host: str, port: int, *more: str) -> list[str]:
    """uvicorn's arguments for the proxy on ``host:port`` (``more`` after the shared ones)."""
    return ["--factory", FACTORY, "--host", host, "--port", str(port), *OPTIONS, *more]


def main() -> None:
    # In this process: no second interpreter start on the way (Lambda pays every cold start).
    from uvicorn.main import main as uvicorn

    uvicorn(["--factory", FACTORY, *OPTIONS, *sys.argv[1:]])


if __name__ == "__main__":
    main()
