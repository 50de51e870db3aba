#!/bin/sh
# Lambda Web Adapter entry: the same ASGI app as `nexus dev`, served by uvicorn on the adapter's port.
exec python -m uvicorn --factory nexus_proxy.app:create_app --host 127.0.0.1 --port "${PORT:-8080}" \
  --loop uvloop --http httptools --no-access-log --no-server-header --no-date-header \
  --timeout-keep-alive 75 --log-level warning
