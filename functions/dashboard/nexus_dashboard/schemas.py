"""The JSON API's response shapes, as the read models build them: FastAPI validates each response
against its shape, serialises it, and documents it in the OpenAPI document.

TypedDicts rather than models: the read models return plain dicts (rows from psycopg), and a
TypedDict validates them without building a model object per row. Every key is always sent (its
value may be null) unless marked ``NotRequired``; keys are declared in the order the read models
produce them, so the JSON is the same byte for byte as the dicts'. Numbers keep their kind:
``float`` where the value is a float (a float column, a ratio, a sum that starts at 0.0), ``int``
where it is an integer (counts, tokens, rounded milliseconds): a ``float`` field would turn ``3``
into ``3.0``. tests/unit/test_dashboard_schemas.py holds the shapes to the read models.

The read models are annotated with these shapes, so mypy checks what they build and what the pages
read. A row that comes straight from psycopg (a ``dict[str, Any]``) becomes its shape through a
``typing.cast`` at one place in its read model, which says so: FastAPI checks it at run time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import Field
from typing_extensions import TypedDict

from nexus_dashboard.filters import Bucket, Period

Group = Literal["model", "team", "user"]
# A timestamp as the access store wrote it (ISO 8601 with an offset, to the second), not re-encoded.
IsoTime = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
HeaderPair = Annotated[list[str], Field(min_length=2, max_length=2, description="[name, value]")]
JsonObject = dict[str, Any]


# --- overview and conversations list ---------------------------------------------------------------


class UsageSums(TypedDict):
    """Requests, tokens and cost summed over a set of requests."""

    requests: int
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cost_usd: float


class Totals(UsageSums):
    """The period's totals (from the hourly rollup: whole hours)."""

    active_users: int
    errors: int
    conversations: int
    cache_hit_ratio: Annotated[
        float | None, Field(description="share of prompt tokens read from the cache; null without any")
    ]


class Activity(TypedDict):
    """One hour or day of the period: its start and its sums."""

    at: datetime
    requests: int
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cost_usd: float


class ConversationSummary(TypedDict):
    """A conversation's totals, as listed."""

    id: str
    team: str | None
    user: str | None
    title: str
    models: list[str]
    session_ids: list[str]
    request_count: int
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cost_usd: float
    first_at: datetime
    last_at: datetime
    branch_count: int
    subagent_count: int
    compaction_count: int
    latest_context_tokens: int | None
    latest_model: str | None
    context_window: Annotated[int | None, Field(description="the latest model's; null if unknown")]
    context_fill: Annotated[
        float | None, Field(description="latest_context_tokens / context_window; null if either is")
    ]


class Choices(TypedDict):
    """What the filter menus offer: values seen in conversations."""

    teams: list[str]
    users: list[str]
    models: list[str]


class Overview(TypedDict):
    period: Period
    since: Annotated[datetime | None, Field(description="the period's start; null for period=all")]
    totals: Totals
    bucket: Bucket
    activity: list[Activity]
    conversations: list[ConversationSummary]
    conversation_total: int
    conversation_total_capped: Annotated[
        bool, Field(description="a search matched more: conversation_total is the cap, not the count")
    ]
    page: int
    page_size: int
    choices: Choices


class ConversationList(TypedDict):
    conversations: list[ConversationSummary]
    total: int
    total_capped: bool


# --- requests --------------------------------------------------------------------------------------


class RequestSummary(TypedDict):
    """A recorded request's metadata, usage and timings."""

    id: str
    received_at: datetime
    team: str | None
    user: str | None
    session_id: str | None
    agent_id: str | None
    model: str | None
    kind: str
    path: str
    stream: bool | None
    status: int | None
    error: str | None
    stop_reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    cache_creation_input_tokens: int | None
    cache_creation_5m_tokens: int | None
    cache_creation_1h_tokens: int | None
    cache_read_input_tokens: int | None
    cost_usd: float | None
    cost_flag: str | None
    price_version: str | None
    ttfb_ms: float | None
    duration_ms: float | None
    message_count: int
    body_size: int
    conversation_id: str | None
    parent_request_id: str | None
    link: str | None
    branch: str | None
    is_subtask: bool
    parent_task_request_id: str | None
    task_tool_use_id: str | None
    context_tokens: int | None


class RequestList(TypedDict):
    requests: list[RequestSummary]


class RequestDetail(RequestSummary):
    """One request: its metadata, usage and timings, headers and bodies."""

    method: str
    query: str
    auth_mode: str | None
    key_id: str | None
    account: str | None
    upstream: str | None
    response_headers: list[HeaderPair]
    ratelimit: Annotated[
        dict[str, str] | None, Field(description="the anthropic-ratelimit-* and retry-after headers")
    ]
    response: Annotated[
        JsonObject | None, Field(description="the response message (rebuilt from a stream) or error")
    ]
    request_headers: list[HeaderPair]
    request_body: Annotated[
        Any, Field(description="the request body decoded: JSON, or text when it is not JSON; null if none")
    ]


# --- one conversation ------------------------------------------------------------------------------


class TimeSpent(TypedDict):
    """Milliseconds: the model answering, the client running tools, a person reading and typing."""

    model_ms: int
    tool_ms: int
    user_ms: int


class Branch(TypedDict):
    name: str
    kind: str
    fork_request_id: str | None
    request_count: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    first_at: datetime
    last_at: datetime
    model_ms: int
    tool_ms: int
    user_ms: int


class TreeRequest(RequestSummary):
    """A request as a row of the conversation's tree."""

    answer_text: Annotated[str | None, Field(description="the start of the answer's text")]
    tool_names: Annotated[list[str | None] | None, Field(description="tools the answer calls")]
    n: Annotated[int, Field(description="1-based position in the conversation")]
    parent_n: Annotated[int | None, Field(description="the parent's n; null if none or not shown")]
    task_parent_n: Annotated[int | None, Field(description="n of the request that started this sub-agent")]
    gap_ms: Annotated[float | None, Field(description="time between the parent's answer and this request")]
    gap_kind: Annotated[Literal["tool", "user"] | None, Field(description="who spent the gap")]
    lane: int
    lanes: Annotated[list[int], Field(description="lanes whose line crosses this row")]
    lane_starts: bool
    lane_ends: bool
    parent_lane: int | None


class Conversation(ConversationSummary):
    """One conversation: its requests as a tree (one lane per concurrent branch), its branches, and
    where the time went."""

    branches: list[Branch]
    requests: list[TreeRequest]
    lane_count: int
    time: TimeSpent
    branch_filter: Annotated[str | None, Field(description="the branch the requests are narrowed to")]


class TimelineEntry(TypedDict):
    request_id: str
    n: int
    received_at: datetime
    branch: str | None
    prompt: Annotated[
        JsonObject | None, Field(description="the newest user or assistant message the request sent")
    ]
    response: JsonObject | None


class Timeline(TypedDict):
    id: str
    branch_filter: str | None
    entries: list[TimelineEntry]


# --- usage -----------------------------------------------------------------------------------------


class UsageRow(TypedDict):
    """One group's sums in one hour or day."""

    at: datetime
    key: Annotated[str, Field(description="the team, user or model; '(none)' where it is not known")]
    requests: int
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cost_usd: float


class UsageGroup(TypedDict):
    """One team, user or model over the whole period; groups come most expensive first."""

    key: str
    requests: int
    cost_usd: float
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cache_hit_ratio: float | None


class Usage(TypedDict):
    group: Group
    bucket: Bucket
    rows: list[UsageRow]
    groups: list[UsageGroup]


# --- rate limits -----------------------------------------------------------------------------------


class Window(TypedDict):
    """One limit: a unified window (5h, 7d) or a per-minute API limit (with ``limit``/``remaining``)."""

    window: str
    label: str
    utilization: float | None
    reset: Annotated[
        datetime | str | None, Field(description="when it resets; the header as sent if not a time")
    ]
    limit: NotRequired[float]
    remaining: NotRequired[float | None]


class Reading(TypedDict):
    status: Annotated[str | None, Field(description="anthropic-ratelimit-unified-status")]
    windows: list[Window]
    warning: bool
    headers: dict[str, str]


class RateLimitPoint(TypedDict):
    """The hour's highest utilisation per limit (0..1)."""

    at: datetime
    u5h: float | None
    u7d: float | None
    tokens: float | None
    requests: float | None


class Account(TypedDict):
    account: Annotated[str, Field(description="a fingerprint of the upstream credential")]
    at: Annotated[datetime, Field(description="when the latest reading was taken")]
    latest: Reading
    requests: int
    rejected_429: int
    teams: list[str]
    users: list[str]
    history: list[RateLimitPoint]


class RateLimits(TypedDict):
    accounts: list[Account]
    warn_at: float


# --- budgets ---------------------------------------------------------------------------------------


class Budget(TypedDict):
    """One cap of a team or key against its spend in the current UTC month or day."""

    subject: Annotated[str, Field(description="team:NAME or key:KEY_ID")]
    kind: Literal["team", "key"]
    name: str
    team: Annotated[str | None, Field(description="the team itself, or the key's team")]
    period: Literal["monthly", "daily"]
    period_id: Annotated[str, Field(description="the UTC month (2026-05) or day (2026-05-14)")]
    spend_usd: float
    cap_usd: float
    share: Annotated[float, Field(description="spend / cap")]
    warn_at: Annotated[float, Field(description="share of the cap at which a warning is raised")]
    state: Annotated[Literal["ok", "warning", "over"], Field(description="from the spend read now")]
    refused: Annotated[
        bool, Field(description="the proxies refuse this subject (the evaluator's last state document)")
    ]
    resets_at: datetime


class BudgetCap(TypedDict):
    """A cap as stored."""

    kind: Literal["team", "key"]
    name: str
    monthly_usd: float
    daily_usd: float | None
    warn_at: float
    team: Annotated[str | None, Field(description="a key's team (alerts go there)")]


class BudgetList(TypedDict):
    budgets: Annotated[list[Budget], Field(description="teams, then keys, by name; monthly before daily")]
    evaluated_at: datetime


# --- keys and session ------------------------------------------------------------------------------


class KeyUsage(TypedDict):
    requests: int
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cost_usd: float
    last_used_at: datetime


class Key(TypedDict):
    id: str
    team: str
    user: str
    created_at: datetime
    revoked_at: datetime | None
    name: str | None
    usage: Annotated[KeyUsage | None, Field(description="in the period; null if the key was not used")]


class KeyList(TypedDict):
    keys: Annotated[list[Key], Field(description="active keys first, then by team, user, creation")]


class KeyRecord(TypedDict):
    id: str
    team: str
    user: str
    created_at: IsoTime
    revoked_at: IsoTime | None
    name: str | None


class CreatedKey(TypedDict):
    key: Annotated[str, Field(description="the key itself: shown this once, never stored")]
    record: KeyRecord


class RevokedKey(TypedDict):
    id: str
    revoked_at: IsoTime


class TeamCredential(TypedDict):
    """A team's upstream credential as shown: never the secret itself."""

    team: str
    mode: Annotated[str, Field(description="passthrough or team-key")]
    kind: Annotated[str | None, Field(description="oauth, api-key, or null (members' own credentials)")]
    status: Annotated[
        str, Field(description="ok, expired, relogin_needed, missing, or members' own (pass-through)")
    ]
    fingerprint: Annotated[str | None, Field(description="a fingerprint of the current secret")]
    expires_at: IsoTime | None
    refreshed_at: IsoTime | None
    set_at: IsoTime | None
    error: Annotated[str | None, Field(description="why the last refresh failed")]


class CredentialList(TypedDict):
    credentials: list[TeamCredential]


RoleName = Literal["admin", "member", "viewer"]
Teams = Annotated[list[str] | None, Field(description="the teams it may read; null: every team (admins)")]


class BearerSession(TypedDict):
    """Asked with the dashboard key or a service token."""

    auth: Literal["bearer"]
    principal: str
    role: RoleName
    teams: Teams


class BrowserSession(TypedDict):
    """Asked from a signed-in browser."""

    auth: Literal["session"]
    principal: str
    role: RoleName
    teams: Teams
    csrf_token: Annotated[str, Field(description="send as X-CSRF-Token with state changes")]
    expires_at: Annotated[int, Field(description="epoch seconds")]


Session = Annotated[BearerSession | BrowserSession, Field(discriminator="auth")]


# --- alerts ----------------------------------------------------------------------------------------


class AlertRow(TypedDict):
    """One alert of the log (``nexus.db.alerts``): raised once per crossing, with where it went."""

    id: int
    created_at: datetime
    kind: Annotated[str, Field(description="rate_limit, error_rate, budget_warning, budget_exceeded, ...")]
    level: Literal["info", "warning", "critical"]
    team: Annotated[str | None, Field(description="null: the stage's operators")]
    subject: str
    message: str
    facts: JsonObject
    dedup_key: str
    window_s: Annotated[int, Field(description="the same dedup key inside this window is not re-sent")]
    repeats: Annotated[int, Field(description="how often it came again inside its window")]
    last_seen_at: datetime
    delivered: Annotated[list[str], Field(description="channels that took it: slack, sns")]
    errors: Annotated[dict[str, str], Field(description="channel -> why delivery failed")]
    delivered_at: datetime | None


class TeamChannels(TypedDict):
    """A team's alert settings; the Slack webhook only as a fingerprint, never the URL."""

    team: str
    slack: bool
    slack_fingerprint: str | None
    slack_set_at: IsoTime | None
    email: list[str]
    rate_limit_threshold: float
    error_rate_share: float
    error_rate_min_requests: int
    error_rate_window_s: int
    off: list[str]


class Alerts(TypedDict):
    alerts: Annotated[list[AlertRow], Field(description="newest first")]
    teams: Annotated[list[TeamChannels], Field(description="teams with alert settings, by name")]
    kinds: Annotated[list[str], Field(description="kinds in the log (for filtering)")]


# --- analysis ----------------------------------------------------------------------------------------


class AnalysisScore(TypedDict):
    value: Annotated[int, Field(ge=1, le=5)]
    reason: str


class AnalysisScores(TypedDict):
    task_success: AnalysisScore
    prompt_clarity: AnalysisScore
    efficiency: AnalysisScore


class AnalysisTip(TypedDict):
    advice: str
    request: Annotated[int, Field(description="the request's number #n in the conversation")]
    quote: str
    request_id: str | None


class AnalysisFacts(TypedDict):
    """What the analysis was computed from."""

    model: str
    prompt_version: str
    input_hash: str
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    calls: int
    chunks: int
    source_tokens: int
    condensed_tokens: int
    request_count: int


class Analysis(TypedDict):
    summary: str
    outcome: Literal["resolved", "partly", "not", "abandoned"]
    scores: AnalysisScores
    tips: list[AnalysisTip]
    went_well: list[str]
    sentiment: Literal["positive", "neutral", "negative", "mixed"]
    facts: AnalysisFacts


class AnalysisStatus(TypedDict):
    """The conversation's newest analysis run, and its newest finished analysis."""

    status: Literal["none", "queued", "running", "done", "failed"]
    run_id: str | None
    trigger: str | None
    reason: Annotated[str | None, Field(description="why the newest run failed")]
    run_cost_usd: Annotated[
        float | None,
        Field(description="what the newest run's model calls cost, a failed run's too (None: unpriced)"),
    ]
    stale: Annotated[bool, Field(description="the conversation has requests the analysis did not see")]
    analysed_at: datetime | None
    analysis: Analysis | None


class TipCount(TypedDict):
    advice: str
    count: int
    conversation_id: str
    request_id: str | None
    quote: str


class TeamTips(TypedDict):
    """The most frequent tips in a period's analyses (by team, or all)."""

    team: str | None
    analyses: int
    tips: list[TipCount]


# --- prompt library (ADR 0023) -----------------------------------------------------------------------


class PromptArgument(TypedDict):
    name: str
    description: str | None
    required: bool


class PromptSummary(TypedDict):
    """A prompt in the library: its current version, and how often it was used through MCP."""

    name: str
    version: Annotated[int, Field(description="the current version (1 for a prompt never changed)")]
    description: str | None
    arguments: list[PromptArgument]
    path: Annotated[str, Field(description="the template's file in the repository")]
    commit: str
    updated_at: Annotated[datetime, Field(description="when the current version was synced")]
    removed_at: Annotated[datetime | None, Field(description="gone from the repository (history kept)")]
    uses: Annotated[int, Field(description="prompts/get calls through MCP, all versions")]
    last_used_at: datetime | None


class PromptSync(TypedDict):
    id: int
    synced_at: datetime
    repo: str
    ref: str | None
    path: str
    commit: str
    added: int
    changed: int
    removed: int
    unchanged: int
    errors: Annotated[dict[str, str], Field(description="file path -> why it was skipped")]


class PromptLibrary(TypedDict):
    prompts: Annotated[list[PromptSummary], Field(description="by name")]
    last_sync: PromptSync | None


class PromptVersion(TypedDict):
    version: int
    commit: str
    path: str
    created_at: datetime
    uses: int


class PromptUse(TypedDict):
    used_at: datetime
    version: int
    key_id: str | None
    team: str | None
    user: str | None
    source: Annotated[str, Field(description="mcp: a prompts/get call")]


class PromptDetail(TypedDict):
    """One version of a prompt (the current one unless asked), its history and its recent use."""

    name: str
    version: int
    current_version: int
    description: str | None
    arguments: list[PromptArgument]
    body: Annotated[str, Field(description="the template, {{argument}} placeholders unfilled")]
    path: str
    commit: str
    created_at: datetime
    removed_at: datetime | None
    uses: Annotated[int, Field(description="uses of every version")]
    versions: Annotated[list[PromptVersion], Field(description="newest first")]
    recent_uses: Annotated[list[PromptUse], Field(description="newest first, at most 50")]


class SessionRow(TypedDict):
    """A sign-in session as listed: never its cookie."""

    id: Annotated[str, Field(description="hex SHA-256 of the cookie's token (cannot be turned into one)")]
    principal: str
    role: RoleName
    teams: Teams
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime
    revoked_at: datetime | None
    client_address: str | None
    user_agent: str | None
    live: bool
    current: Annotated[bool, Field(description="the session this request was made with")]


class SessionList(TypedDict):
    sessions: list[SessionRow]


class EndedSessions(TypedDict):
    ended: Annotated[int, Field(description="how many live sessions were ended")]


class UserRow(TypedDict):
    name: str
    principal: Annotated[str, Field(description="user:<name>: what sessions and the audit log call it")]
    role: RoleName
    teams: list[str]
    created_at: datetime
    updated_at: datetime
    live_sessions: int


class UserList(TypedDict):
    users: list[UserRow]


class TokenRow(TypedDict):
    """A service token as listed: never the token."""

    id: str
    name: str
    role: RoleName
    teams: Teams
    created_by: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    live: bool


class TokenList(TypedDict):
    tokens: list[TokenRow]


class CreatedToken(TypedDict):
    token: Annotated[str, Field(description="the token itself (nxt_...): shown this once, never stored")]
    record: TokenRow


class RevokedToken(TypedDict):
    id: str
    revoked_at: datetime


class AuditRow(TypedDict):
    id: int
    at: datetime
    actor: Annotated[
        str, Field(description="dashboard-key, user:<name>, oidc:<subject>, token:<id>, cli:<user>")
    ]
    action: Annotated[str, Field(description="key.create, key.revoke, budget.set, user.set-role, ...")]
    target: str
    detail: dict[str, Any]
    client_address: str | None


class AuditLog(TypedDict):
    entries: list[AuditRow]
