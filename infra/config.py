"""Typed per-stage settings. Constructs receive a StageConfig; none of them reads the environment."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from nexus.prompts.sync import TOKEN_SECRET
from nexus.secrets_manager import stage_prefix

# Lambda Web Adapter layer, published by AWS in account 753240598075 in every commercial region.
WEB_ADAPTER_ACCOUNT = "753240598075"


@dataclass(frozen=True)
class Alarms:
    """Alarm thresholds; each alarm publishes to the stage's SNS topic."""

    proxy_5xx_percent: float = 1.0  # answers the proxy itself failed (not upstream errors passed on)
    upstream_5xx_percent: float = 5.0
    upstream_429_percent: float = 10.0
    queue_age_s: int = 300  # oldest record waiting for ingest
    db_cpu_percent: float = 80.0
    db_free_storage_gib: float = 2.0
    gateway_5xx_count: int = 5  # answers the gateway failed itself (and front function errors), per period
    gateway_rejected_count: int = 10  # turns refused with 429 (every worker full), per period
    gateway_first_delta_p95_ms: int = 15_000  # request -> first streamed token, p95
    gateway_worker_starts: int = 3  # task starts per period beyond scaling: crashes, failed health checks
    gateway_busy_per_task: float = 7.0  # average busy sessions per task: scaling is not keeping up
    gateway_missing_tasks: float = 0.5  # desired - running tasks, averaged over each period
    period_minutes: int = 5
    evaluation_periods: int = 3


@dataclass(frozen=True)
class StageConfig:
    name: str
    account: str | None = None  # None: the account and region of the deploying credentials
    region: str | None = None

    # Lambda platform. The layer of dependencies is built for exactly this (ADR 0009).
    architecture: str = "arm64"
    python_version: str = "3.14"
    web_adapter_layer_version: int = 28

    proxy_memory_mb: int = 512  # I/O-bound: billed for wall time while streaming (docs/cost.md)
    proxy_timeout_s: int = 900  # the streaming limit of a function URL
    proxy_reserved_concurrency: int | None = 50
    upstream_url: str = "https://api.anthropic.com"
    oauth_token_url: str = "https://console.anthropic.com/v1/oauth/token"  # team OAuth refreshes
    access_refresh_s: int = 30  # key revocations apply within this; each check is a Secrets Manager call

    ingest_memory_mb: int = 1024
    ingest_timeout_s: int = 60
    ingest_batch_size: int = 10  # the FIFO maximum
    ingest_max_concurrency: int = 4  # bounds database connections from ingest
    queue_retention_days: int = 14
    max_receive_count: int = 5  # deliveries before a record goes to the dead-letter queue
    large_record_retention_days: int = 30  # S3 copies of records too large for a message

    dashboard_memory_mb: int = 1024
    allowed_origins: tuple[str, ...] = ()  # CORS for the dashboard URL; empty: same origin only
    # Sign-in for people (ADR 0025, docs/deploy.md). None: the dashboard key and local users only.
    # "cognito": a user pool in the stack (groups admin, member, viewer; team:<name> for teams), its
    # hosted UI at cognito_domain_prefix (default nexus-<stage>-dashboard; unique per region).
    # "external": any OIDC issuer; register the dashboard URL + /login/oidc/callback with it.
    dashboard_login: Literal["cognito", "external"] | None = None
    cognito_domain_prefix: str | None = None
    oidc_issuer: str | None = None  # external: the issuer URL (https)
    oidc_client_id: str | None = None  # external
    oidc_client_secret_name: str | None = None  # external, a confidential client: the secret's name
    oidc_groups_claim: str = "cognito:groups"  # the claim listing role and team:<name> groups
    oidc_label: str = "your identity provider"  # on the login page's button

    # The gateway (ADR 0015): front and router Lambdas, worker tasks on Fargate.
    gateway_front_memory_mb: int = 512  # I/O-bound like the proxy: billed for the turn's wall time
    gateway_router_memory_mb: int = 256  # only relays bytes; runs for the whole turn too
    gateway_timeout_s: int = 900  # the streaming limit of a function URL, and Lambda's maximum
    gateway_worker_cpu: int = 1024  # Fargate CPU units per task (1024 = 1 vCPU)
    gateway_worker_memory_mb: int = 4096  # Claude Code processes are memory-hungry (~300-500 MB each)
    gateway_sessions_per_task: int = 8  # the worker's max_sessions: the busy target below is a share of it
    gateway_busy_target: float = 4.0  # target-tracking: average busy sessions per task
    gateway_min_tasks: int = 1  # 0 allows scale to zero: the first turn then waits for a task (ADR 0015)
    gateway_max_tasks: int = 4  # at most 8: a private DNS answer names at most 8 tasks (ADR 0015)
    gateway_scale_out_cooldown_s: int = 60
    gateway_scale_in_cooldown_s: int = 600  # longer than scale-out: a stopping task ends its turns first
    # How the workers reach the internet (the proxy's public URL, ECR, CloudWatch Logs):
    # "public-ip": public subnets with a public IP per task, no inbound rule but the router's (no cost);
    # "nat": private subnets behind one NAT gateway per AZ (~$33/month each + $0.045/GB).
    gateway_egress: Literal["public-ip", "nat"] = "public-ip"

    db_instance_class: str = "t4g.micro"
    db_allocated_storage_gib: int = 20
    db_max_allocated_storage_gib: int = 100
    db_multi_az: bool = False
    db_backup_retention_days: int = 7
    db_secret_rotation_days: int = 30
    # Restore: an RDS snapshot (identifier or ARN) the stage's database is created from. Setting it
    # (or changing it) and deploying replaces the database with a new instance restored from that
    # snapshot, under a new name and with a new generated secret; the old instance is left to be
    # deleted by hand once the restored one is checked (docs/deploy.md, "Restore the database").
    db_snapshot_identifier: str | None = None
    deletion_protection: bool = False
    max_azs: int = 2

    # AI analysis: None sends its model calls through the stage's Nexus proxy (recorded and costed
    # under the analysis team). A region sends them to Amazon Bedrock there instead: the model
    # function is granted bedrock:InvokeModel on Anthropic models, and the analysis settings' model
    # must be a Bedrock model id or inference profile (us.anthropic.claude-sonnet-4-5-20250929-v1:0).
    analysis_bedrock_region: str | None = None

    # The prompt library (ADR 0023): synced from this Git repository over HTTPS every
    # prompts_sync_minutes by two functions (fetch outside the VPC, apply inside). None: no sync
    # resources. A private repository's token goes in the stage's secret STAGE/nexus/prompts/token.
    prompts_repo: str | None = None
    prompts_ref: str | None = None  # a branch, tag or full commit id; None: the repository's HEAD
    prompts_path: str = ""  # the folder of the prompts in the repository; "": all of it
    prompts_sync_minutes: int = 15

    log_retention_days: int = 30
    alarm_email: str | None = None
    alarms: Alarms = field(default_factory=Alarms)


STAGES: dict[str, StageConfig] = {
    # Staging scales its workers to zero: the first turn after a quiet spell waits for a task.
    "staging": StageConfig(name="staging", proxy_reserved_concurrency=20, gateway_min_tasks=0),
    "prod": StageConfig(
        name="prod",
        proxy_reserved_concurrency=200,
        ingest_max_concurrency=10,
        db_instance_class="t4g.small",
        db_multi_az=True,
        db_backup_retention_days=30,
        deletion_protection=True,
        log_retention_days=365,
        gateway_min_tasks=2,  # warm across two AZs: interactive turns never wait for a task start
        gateway_max_tasks=8,
    ),
}


def load_stage(name: str, **overrides: Any) -> StageConfig:
    """The named stage; ``overrides`` (from cdk context: account, region, alarm_email) win."""
    try:
        stage = STAGES[name]
    except KeyError:
        raise SystemExit(f"unknown stage {name!r}; choose one of {', '.join(STAGES)}") from None
    stage = replace(stage, **{k: v for k, v in overrides.items() if v is not None})
    check(stage)
    return stage


# Route 53 answers a multivalue query with at most 8 healthy records: with more tasks the router
# would see a different subset per lookup, and rendezvous hashing would lose its stickiness.
MAX_DNS_ANSWERS = 8


def check(stage: StageConfig) -> None:
    """Settings that would synthesize but not work."""
    if not 0 <= stage.gateway_min_tasks <= stage.gateway_max_tasks <= MAX_DNS_ANSWERS:
        raise SystemExit(
            f"{stage.name}: need 0 <= gateway_min_tasks <= gateway_max_tasks <= {MAX_DNS_ANSWERS}"
        )
    if not 0 < stage.gateway_busy_target <= stage.gateway_sessions_per_task:
        raise SystemExit(f"{stage.name}: gateway_busy_target must be in (0, gateway_sessions_per_task]")
    if stage.gateway_egress not in ("public-ip", "nat"):
        raise SystemExit(f"{stage.name}: gateway_egress must be 'public-ip' or 'nat'")
    if stage.dashboard_login not in (None, "cognito", "external"):
        raise SystemExit(f"{stage.name}: dashboard_login must be 'cognito', 'external' or unset")
    if stage.dashboard_login == "external" and not (
        stage.oidc_issuer and stage.oidc_issuer.startswith("https://") and stage.oidc_client_id
    ):
        raise SystemExit(
            f"{stage.name}: dashboard_login='external' needs oidc_issuer (https) and oidc_client_id"
        )
    check_prompts(stage)


def check_prompts(stage: StageConfig) -> None:
    """The prompt library's source: fetched by a Lambda function (dulwich, no git binary, no SSH key),
    so an HTTPS URL, with any token in the stage's secret rather than in the URL (which would be
    written into the template and the function's environment)."""
    if not stage.prompts_repo:
        if stage.prompts_ref or stage.prompts_path:
            raise SystemExit(f"{stage.name}: prompts_ref and prompts_path need prompts_repo")
        return
    url, secret = stage.prompts_repo, stage_prefix(stage.name) + TOKEN_SECRET
    if not url.startswith("https://"):
        raise SystemExit(
            f"{stage.name}: prompts_repo must be an https:// URL (the sync function fetches over HTTPS; "
            f"a private repository takes a token in the secret {secret}), "
            f"not {url!r}"
        )
    if "@" in url.split("://", 1)[1].split("/", 1)[0]:
        raise SystemExit(
            f"{stage.name}: prompts_repo must not carry credentials: put the token in the secret "
            f"{secret} (docs/deploy.md)"
        )
    if not 1 <= stage.prompts_sync_minutes <= 1440:
        raise SystemExit(f"{stage.name}: prompts_sync_minutes must be between 1 and 1440")
