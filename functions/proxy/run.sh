#!/bin/sh
# Lambda Web Adapter entry: the same ASGI app as `nexus dev`, served by uvicorn on the adapter's port.
# Layers unpack under /opt/python, which a process started from this script must be told about.
export PYTHONPATH="/opt/python:${LAMBDA_TASK_ROOT:-.}${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -m uvicorn --factory nexus_proxy.app:create_app --host 127.0.0.1 --port "${AWS_LWA_PORT:-${PORT:-8080}}" \
  --loop uvloop --http nexus_proxy.http_server:ProxyHttpProtocol --no-access-log --no-server-header --no-date-header \
  --timeout-keep-alive 75 --log-level warning
