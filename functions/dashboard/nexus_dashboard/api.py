"""The JSON API: every page's data under ``/api/``, described by the OpenAPI document.

Routes are thin: read models live in ``overview``, ``queries``, ``conversation_view``, ``usage``,
``ratelimits``, ``keys``, ``budgets`` and ``alerts``; the pages (``pages.py``) call the same functions.
Each route's return annotation is its response shape (``schemas``): FastAPI documents it, validates
the read model's dict against it and serialises through it.
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import Response
from nexus.access import UnknownKey
from nexus.budgets import BudgetInputError

from nexus_dashboard import (
    alerts,
    analysis,
    budgets,
    credentials,
    keys,
    live,
    overview,
    prompts,
    queries,
    ratelimits,
    schemas,
    usage,
)
from nexus_dashboard.audit_log import AuditTrail
from nexus_dashboard.auth import Caller, Scoped
from nexus_dashboard.deps import (
    Access,
    Conn,
    Launch,
    conversation_id_or_404,
    conversation_or_404,
    request_id_or_404,
    request_or_404,
)
from nexus_dashboard.filters import (
    BIGINT_MAX,
    PAGE_SIZE,
    BranchName,
    ListFilters,
    Name,
    SearchText,
    Timestamp,
)

router = APIRouter(prefix="/api")


@router.get("/overview", summary="Totals, activity over time and the conversations list for a period")
def get_overview(conn: Conn, f: ListFilters) -> schemas.Overview:
    return overview.overview_data(conn, f)


@router.get("/conversations", summary="Conversations active in the period, newest activity first")
def list_conversations(
    conn: Conn,
    f: ListFilters,
    limit: Annotated[int, Query(ge=1, le=500)] = PAGE_SIZE,
    offset: Annotated[int | None, Query(ge=0, le=BIGINT_MAX, description="overrides page")] = None,
) -> schemas.ConversationList:
    listed = overview.conversations(conn, f, limit, offset)
    return {"conversations": listed.rows, "total": listed.total, "total_capped": listed.capped}


@router.get("/conversations/{conversation_id}", summary="One conversation: tree, branches, time split")
def get_conversation(
    conn: Conn, scope: Scoped, conversation_id: str, branch: Annotated[BranchName | None, Query()] = None
) -> schemas.Conversation:
    return conversation_or_404(conn, scope, conversation_id, branch)


@router.get("/conversations/{conversation_id}/timeline", summary="The conversation's messages in order")
def get_timeline(
    conn: Conn, scope: Scoped, conversation_id: str, branch: Annotated[BranchName | None, Query()] = None
) -> schemas.Timeline:
    conv = conversation_or_404(conn, scope, conversation_id, branch)
    return {
        "id": conv["id"],
        "branch_filter": conv["branch_filter"],
        "entries": [
            {
                "request_id": e["id"],
                "n": e["n"],
                "received_at": e["received_at"],
                "branch": e["branch"],
                "prompt": e["prompt"],
                "response": e["response"],
            }
            for e in queries.timeline(conn, conv)
        ],
    }


@router.get(
    "/conversations/{conversation_id}/analysis",
    summary="The conversation's AI analysis: the newest run's status and the newest finished analysis",
)
def get_analysis(conn: Conn, scope: Scoped, conversation_id: str) -> schemas.AnalysisStatus:
    return analysis.status(conn, conversation_id_or_404(conn, scope, conversation_id))


@router.post(
    "/conversations/{conversation_id}/analysis",
    status_code=202,
    summary="Analyse the conversation (joins a run in flight; an unchanged conversation is not re-analysed)",
)
def post_analysis(
    conn: Conn, scope: Scoped, launcher: Launch, conversation_id: str
) -> schemas.AnalysisStatus:
    found = analysis.request(conn, launcher, conversation_id_or_404(conn, scope, conversation_id), "manual")
    if found is None:
        raise HTTPException(404, f"no conversation {conversation_id!r}")
    return found


@router.get("/analysis/tips", summary="The most frequent tips of the period's analyses, by team or all")
def get_top_tips(conn: Conn, f: ListFilters) -> schemas.TeamTips:
    return analysis.top_tips(conn, f.team, f.since, f.scope)


def _versioned(request: Request, tag: str) -> Response:
    headers = {"etag": tag}
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers=headers)
    return Response(orjson.dumps({"version": tag}), media_type="application/json", headers=headers)


_POLL = (
    "Send the last ETag in If-None-Match: 304 while nothing changed. Pages poll it to update themselves "
    "as requests arrive (index reads only)."
)


@router.get(
    "/version",
    summary="A tag that changes when the data behind the overview changes",
    description=_POLL,
    responses={304: {"description": "unchanged since the ETag sent"}},
)
def get_version(request: Request, conn: Conn, scope: Scoped) -> Response:
    return _versioned(request, live.etag(conn, scope, None))


@router.get(
    "/conversations/{conversation_id}/version",
    summary="A tag that changes when the conversation or its analysis changes",
    description=_POLL,
    responses={304: {"description": "unchanged since the ETag sent"}},
)
def get_conversation_version(request: Request, conn: Conn, scope: Scoped, conversation_id: str) -> Response:
    return _versioned(request, live.etag(conn, scope, conversation_id_or_404(conn, scope, conversation_id)))


@router.get("/requests", summary="Recorded requests, newest first")
def list_requests(
    conn: Conn,
    scope: Scoped,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    session_id: Annotated[Name | None, Query()] = None,
    since: Annotated[
        Timestamp | None, Query(description="only requests received at or after this time")
    ] = None,
    team: Annotated[Name | None, Query()] = None,
    user: Annotated[Name | None, Query()] = None,
) -> schemas.RequestList:
    return {"requests": queries.list_requests(conn, limit, session_id, since, team, user, scope=scope)}


@router.get("/requests/{request_id}", summary="One request: metadata, usage, timings, headers, bodies")
def get_request(conn: Conn, scope: Scoped, request_id: str) -> schemas.RequestDetail:
    return request_or_404(conn, scope, request_id)


@router.get(
    "/requests/{request_id}/raw/request",
    summary="The request body exactly as sent",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}},
)
def raw_request(conn: Conn, scope: Scoped, request_id: str) -> Response:
    body = queries.raw_request_body(conn, request_id_or_404(conn, scope, request_id))
    if body is None:
        raise HTTPException(404, f"no request {request_id!r}")
    return Response(body, media_type="application/json")


@router.get(
    "/requests/{request_id}/raw/response",
    summary="The response body as received (or rebuilt), with its content type and encoding",
    response_class=Response,
    responses={200: {"content": {"*/*": {}}}},
)
def raw_response(conn: Conn, scope: Scoped, request_id: str) -> Response:
    found = queries.raw_response_body(conn, request_id_or_404(conn, scope, request_id))
    if found is None:
        raise HTTPException(404, f"no request {request_id!r}")
    body, headers = found
    return Response(body, headers=headers)


@router.get("/usage", summary="Tokens and cost per hour or day by team, user or model")
def get_usage(
    conn: Conn, f: ListFilters, group: schemas.Group = "model", bucket: usage.BucketParam = None
) -> schemas.Usage:
    return usage.usage_data(conn, f, group, bucket)


@router.get(
    "/usage.csv",
    summary="The usage numbers as CSV",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
def get_usage_csv(
    conn: Conn, f: ListFilters, group: schemas.Group = "model", bucket: usage.BucketParam = None
) -> Response:
    data = usage.usage_data(conn, f, group, bucket)
    name = f"nexus-usage-{f.period}-{data['group']}-{data['bucket']}.csv"
    return Response(
        usage.to_csv(data),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


@router.get("/ratelimits", summary="Per upstream account: latest rate-limit readings and history")
def get_ratelimits(conn: Conn, f: ListFilters) -> schemas.RateLimits:
    return ratelimits.ratelimits(conn, f)


@router.get("/alerts", summary="The alerts log, newest first, and each team's alert channels")
def list_alerts(
    request: Request,
    conn: Conn,
    scope: Scoped,
    team: Annotated[Name | None, Query(description="only this team's alerts")] = None,
    kind: Annotated[Name | None, Query(description="only alerts of this kind")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> schemas.Alerts:
    return alerts.alerts_data(conn, request.app.state.secret_store, scope, team, kind, limit)


@router.get("/prompts", summary="The prompt library: current versions, use counts, the last sync")
def list_prompts(
    conn: Conn,
    q: Annotated[SearchText | None, Query(description="search name, description and text")] = None,
    removed: Annotated[bool, Query(description="include prompts removed from the repository")] = False,
) -> schemas.PromptLibrary:
    return prompts.library_data(conn, q or None, removed)


@router.get("/prompts/{name}", summary="One prompt: a version's template and arguments, history, use")
def get_prompt(
    conn: Conn,
    scope: Scoped,
    name: Annotated[Name, Path()],
    version: Annotated[int | None, Query(ge=1, le=2_147_483_647, description="default: the current")] = None,
) -> schemas.PromptDetail:
    found = prompts.prompt_data(conn, name, scope, version)
    if found is None:
        raise HTTPException(404, f"no prompt {name!r}" + (f" version {version}" if version else ""))
    return found


@router.get("/keys", summary="Nexus keys with their usage in the period")
def list_keys(conn: Conn, access: Access, f: ListFilters) -> schemas.KeyList:
    return {"keys": keys.list_keys(access, conn, f)}


@router.post("/keys", status_code=201, summary="Create a key; the response is the only time it is shown")
def create_key(access: Access, log: AuditTrail, body: keys.NewKey) -> schemas.CreatedKey:
    try:
        key, record = keys.create_key(access, body.model_dump(), log)
    except keys.KeyInputError as exc:
        raise HTTPException(400, str(exc)) from None
    return {"key": key, "record": record}


@router.get("/credentials", summary="Teams' upstream credentials: kind, state, expiry; never the secret")
def list_credentials(access: Access) -> schemas.CredentialList:
    return {"credentials": credentials.list_credentials(access)}


@router.post(
    "/credentials/{team}/oauth",
    status_code=201,
    summary="Store a team's Claude subscription (OAuth) credential; the team switches to team-key with it",
)
def store_oauth(
    access: Access,
    log: AuditTrail,
    team: Annotated[str, Path(max_length=100, pattern=keys.ONE_LINE)],
    body: credentials.OAuthDocument,
) -> schemas.TeamCredential:
    try:
        return credentials.store_oauth(access, team, body.model_dump(), log)
    except credentials.CredentialInputError as exc:
        raise HTTPException(400, str(exc)) from None


@router.post("/keys/{key_id}/revoke", summary="Revoke a key: proxies refuse it within their refresh time")
def revoke_key(access: Access, log: AuditTrail, key_id: str) -> schemas.RevokedKey:
    try:
        revoked_at = keys.revoke_key(access, key_id, log)
    except UnknownKey:
        raise HTTPException(404, f"no key {key_id!r}") from None
    return {"id": key_id, "revoked_at": revoked_at}


@router.get("/budgets", summary="Caps per team and key against this UTC month's and day's spend")
def list_budgets(conn: Conn, access: Access) -> schemas.BudgetList:
    return budgets.budgets_data(access.store, conn)


@router.post(
    "/budgets/{kind}/{name}",
    status_code=201,
    summary="Set a team's or a key's cap (kind: team or key; raising a cap lifts a refusal)",
    responses={
        409: {
            "description": "The cap contradicts itself: a daily cap above the monthly one.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    },
)
def set_budget(
    access: Access, log: AuditTrail, kind: str, name: str, body: budgets.NewCap
) -> schemas.BudgetCap:
    try:
        return budgets.set_cap(access.store, {"kind": kind, "name": name, **body.model_dump()}, log)
    except budgets.NoSuchSubject as exc:
        raise HTTPException(404, str(exc)) from None
    except budgets.Contradiction as exc:
        raise HTTPException(409, str(exc)) from None
    except BudgetInputError as exc:
        raise HTTPException(400, str(exc)) from None


@router.post("/budgets/{kind}/{name}/clear", summary="Remove a team's or a key's cap (its refusal too)")
def clear_budget(access: Access, log: AuditTrail, kind: str, name: str) -> dict[str, str]:
    try:
        budgets.clear_cap(access.store, kind, name, log)
    except BudgetInputError as exc:
        raise HTTPException(404, str(exc)) from None
    return {"cleared": f"{kind}:{name}"}


@router.get("/session", summary="Who is asking; a browser session's CSRF token for state changes")
def session(request: Request, who: Caller) -> schemas.Session:
    s = getattr(request.state, "session", None)
    teams = None if who.teams is None else sorted(who.teams)
    if s is None:
        return {"auth": "bearer", "principal": who.name, "role": who.role, "teams": teams}
    return {
        "auth": "session",
        "principal": s.principal,
        "role": who.role,
        "teams": teams,
        "csrf_token": s.csrf,
        "expires_at": int(s.expires_at.timestamp()),
    }
