#!/bin/sh
# Lambda Web Adapter entry: the same ASGI app as `nexus dev`, served the same way (nexus_proxy.serve)
# on the adapter's port. Layers unpack under /opt/python, which a process started from this script
# must be told about.
export PYTHONPATH="/opt/python:${LAMBDA_TASK_ROOT:-.}${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -m nexus_proxy.serve --host 127.0.0.1 --port "${AWS_LWA_PORT:-${PORT:-8080}}" --log-level warning
