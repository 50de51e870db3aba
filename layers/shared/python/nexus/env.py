"""The names of the environment variables Nexus reads, in one place: the runtime reads them (through
each process's settings) and the CDK stack sets them, from these same constants, so the two cannot
drift apart."""

from __future__ import annotations

# Where things live.
DATA_DIR = "NEXUS_DATA_DIR"
DEFAULT_DATA_DIR = ".nexus"
DATABASE_URL = "DATABASE_URL"
DB_SECRET_ARN = "NEXUS_DB_SECRET_ARN"  # AWS: the RDS secret, instead of DATABASE_URL
STAGE = "NEXUS_STAGE"

# The proxy.
UPSTREAM_URL = "NEXUS_UPSTREAM_URL"
REQUIRE_KEYS = "NEXUS_REQUIRE_KEYS"
MAX_BODY_BYTES = "NEXUS_MAX_BODY_BYTES"
SPOOL_FSYNC = "NEXUS_SPOOL_FSYNC"
RECORD_HOLD_BYTES = "NEXUS_RECORD_HOLD_BYTES"
ACCESS_REFRESH_S = "NEXUS_ACCESS_REFRESH_S"
STRIP_PLATFORM_HEADERS = "NEXUS_STRIP_PLATFORM_HEADERS"
HEADER_TIMEOUT_S = "NEXUS_HEADER_TIMEOUT_S"
BODY_TIMEOUT_S = "NEXUS_BODY_TIMEOUT_S"
QUEUE_URL = "NEXUS_QUEUE_URL"  # AWS: records go to SQS (and S3 for large ones)
RECORD_BUCKET = "NEXUS_RECORD_BUCKET"
SECRETS_PREFIX = "NEXUS_SECRETS_PREFIX"  # AWS: keys and teams from Secrets Manager
# Alerts (ADR 0018): the stage's SNS alerts topic (ingest publishes there; locally optional).
ALERTS_TOPIC_ARN = "NEXUS_ALERTS_TOPIC_ARN"
LAMBDA_FUNCTION_NAME = "AWS_LAMBDA_FUNCTION_NAME"  # set by Lambda itself

# The dashboard.
DASHBOARD_KEY = "NEXUS_DASHBOARD_KEY"
# Dashboard sign-in through an OpenID Connect provider (ADR 0025).
OIDC_ISSUER = "NEXUS_OIDC_ISSUER"
OIDC_CLIENT_ID = "NEXUS_OIDC_CLIENT_ID"
OIDC_CLIENT_SECRET = "NEXUS_OIDC_CLIENT_SECRET"  # locally; in AWS the name of a secret holding it:
OIDC_CLIENT_SECRET_SECRET = "NEXUS_OIDC_CLIENT_SECRET_SECRET"
OIDC_GROUPS_CLAIM = "NEXUS_OIDC_GROUPS_CLAIM"
OIDC_LABEL = "NEXUS_OIDC_LABEL"
OIDC_CONFIG_SECRET = "NEXUS_OIDC_CONFIG_SECRET"  # AWS with Cognito: a secret {issuer, client_id, label}
DASHBOARD_KEY_SECRET = "NEXUS_DASHBOARD_KEY_SECRET"  # AWS: the dashboard key's secret

# The gateway in AWS: front (function URL, outside the VPC) -> router (in the VPC) -> workers (ECS).
GATEWAY_ROUTER_FUNCTION = "NEXUS_GATEWAY_ROUTER_FUNCTION"  # front: the router's function name
GATEWAY_ROUTER_URL = "NEXUS_GATEWAY_ROUTER_URL"  # front, without Lambda: the router's HTTP address
GATEWAY_WORKERS = "NEXUS_GATEWAY_WORKERS"  # router: the workers' DNS name (Cloud Map) or host:port,...
GATEWAY_WORKER_PORT = "NEXUS_GATEWAY_WORKER_PORT"  # router and worker: the workers' port
DEFAULT_GATEWAY_WORKER_PORT = 8081

# The OAuth refresher (team Claude subscription credentials).
OAUTH_TOKEN_URL = "NEXUS_OAUTH_TOKEN_URL"
OAUTH_CLIENT_ID = "NEXUS_OAUTH_CLIENT_ID"

# The analysis pipeline (AWS): the state machine queued runs start; the proxy URL model calls use.
ANALYSIS_STATE_MACHINE = "NEXUS_ANALYSIS_STATE_MACHINE"
ANALYSIS_PROXY_URL = "NEXUS_ANALYSIS_PROXY_URL"
# Set by a stage whose analysis calls go to Bedrock (infra: StageConfig.analysis_bedrock_region).
ANALYSIS_BEDROCK_REGION = "NEXUS_ANALYSIS_BEDROCK_REGION"

# The prompt library's sync in AWS (ADR 0023): the fetcher invokes this function (the applier, in the
# VPC). The source itself is NEXUS_PROMPTS_REPO, _REF, _PATH (nexus.prompts.sync), as in `nexus dev`.
PROMPTS_APPLIER = "NEXUS_PROMPTS_APPLIER"

# `nexus dev`.
HOST = "NEXUS_HOST"
PROXY_PORT = "NEXUS_PROXY_PORT"
DASHBOARD_PORT = "NEXUS_DASHBOARD_PORT"
GATEWAY_PORT = "NEXUS_GATEWAY_PORT"
GATEWAY = "NEXUS_GATEWAY"  # "off": no gateway
KEYS = "NEXUS_KEYS"
KEY = "NEXUS_KEY"  # `nexus claude`: the user's own Nexus key
