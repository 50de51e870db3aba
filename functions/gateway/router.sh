#!/bin/sh
# Lambda Web Adapter entry of the gateway's router (in the VPC, invoked by the front with
# InvokeWithResponseStream): picks the worker task for each request (nexus_gateway.cloud.router).
export PYTHONPATH="/opt/python:${LAMBDA_TASK_ROOT:-.}${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -m nexus_gateway.cloud.router --host 127.0.0.1 --port "${AWS_LWA_PORT:-${PORT:-8080}}"
