#!/bin/sh
# Lambda Web Adapter entry of the gateway's front (function URL, RESPONSE_STREAM, outside the VPC):
# relays each request to the router function (nexus_gateway.cloud.front). Layers unpack under
# /opt/python, which a process started from this script must be told about.
export PYTHONPATH="/opt/python:${LAMBDA_TASK_ROOT:-.}${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -m nexus_gateway.cloud.front --host 127.0.0.1 --port "${AWS_LWA_PORT:-${PORT:-8080}}"
