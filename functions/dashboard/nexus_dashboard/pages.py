"""The HTML pages. Each renders the same read model as its JSON twin in ``api.py``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from nexus.access import AccessStore, UnknownKey
from nexus.budgets import BudgetInputError

from nexus_dashboard import (
    alerts,
    analysis,
    budgets,
    charts,
    conversation_view,
    credentials,
    keys,
    overview,
    prompts,
    queries,
    ratelimits,
    render,
    schemas,
    usage,
)
from nexus_dashboard.audit_log import AuditTrail
from nexus_dashboard.auth import Scoped, form_fields
from nexus_dashboard.deps import (
    Access,
    Conn,
    Launch,
    conversation_id_or_404,
    conversation_or_404,
    request_or_404,
)
from nexus_dashboard.filters import BranchName, Filters, ListFilters, Name, SearchText
from nexus_dashboard.templating import dur, qs, templates, tokens, usd

router = APIRouter(include_in_schema=False)
TIMELINE_CLIP = 4_000  # characters of each text shown in the timeline; the request page has all
# The rate-limits page's chart: a line per limit, named, from its column of the account's history.
LIMITS: tuple[tuple[str, Literal["u5h", "u7d", "tokens", "requests"]], ...] = (
    ("5-hour", "u5h"),
    ("7-day", "u7d"),
    ("tokens/min", "tokens"),
    ("requests/min", "requests"),
)


def page(request: Request, name: str, nav: str | None = None, status: int = 200, **ctx: Any) -> HTMLResponse:
    session = getattr(request.state, "session", None)
    ctx.setdefault("live", None)
    who = getattr(request.state, "principal", None)
    ctx.update(request=request, nav=nav, csrf=session.csrf if session else None, who=who)
    return templates.TemplateResponse(request, name, ctx, status_code=status)


def _token_chart(rows: Sequence[Mapping[str, Any]], bucket: str) -> tuple[Markup, Markup]:
    chart = charts.stacked_bars(
        rows, usage.TOKEN_KEYS, names=usage.TOKEN_NAMES, fmt=tokens, bucket=bucket, title="tokens by kind"
    )
    return chart, charts.legend(usage.TOKEN_NAMES)


@router.get("/")
def overview_page(request: Request, conn: Conn, f: ListFilters) -> HTMLResponse:
    d = overview.overview_data(conn, f)
    token_chart, token_legend = _token_chart(d["activity"], f.bucket)
    return page(
        request,
        "overview.html",
        "/",
        f=f,
        d=d,
        cost_chart=charts.stacked_bars(
            d["activity"], ["cost_usd"], names=["cost"], fmt=usd, bucket=f.bucket, title="cost"
        ),
        token_chart=token_chart,
        token_legend=token_legend,
        page_link=lambda n: "/?" + qs(f.query(page=n)),
        live="/api/version",
    )


@router.get("/conversations/{conversation_id}")
def conversation_page(
    request: Request,
    conn: Conn,
    scope: Scoped,
    conversation_id: str,
    view: Literal["tree", "timeline"] = "tree",
    branch: Annotated[BranchName | None, Query()] = None,
) -> HTMLResponse:
    c = conversation_or_404(conn, scope, conversation_id, branch)
    numbers = {r["id"]: f"#{r['n']}" for r in c["requests"]}
    timeline = _timeline(conn, c) if view == "timeline" else []
    time_bar = charts.split_bar(
        [("model", c["time"]["model_ms"]), ("tools", c["time"]["tool_ms"]), ("user", c["time"]["user_ms"])],
        fmt=dur,
        title="where the time went",
    )
    return page(
        request,
        "conversation.html",
        c=c,
        view=view,
        numbers=numbers,
        timeline=timeline,
        time_bar=time_bar,
        svg=partial(conversation_view.tree_svg, lane_count=c["lane_count"]),
        a=analysis.status(conn, c["id"]),
        live=f"/api/conversations/{c['id']}/version",
    )


@router.post("/conversations/{conversation_id}/analysis")
def analyse_page(conn: Conn, scope: Scoped, launcher: Launch, conversation_id: str) -> Response:
    cid = conversation_id_or_404(conn, scope, conversation_id)
    analysis.request(conn, launcher, cid, "manual")
    return RedirectResponse(f"/conversations/{cid}#analysis", 303)


def _timeline(conn: psycopg.Connection, c: schemas.Conversation) -> list[dict[str, Any]]:
    """Timeline entries with their messages rendered; tool calls pair with results across entries."""
    calls: dict[str, dict[str, Any]] = {}
    out = []
    for row in queries.timeline(conn, c):
        e: dict[str, Any] = dict(row)  # the template's entry: the row with its messages rendered
        prompt, answer = e.pop("prompt"), e.pop("response")
        e.update(prompt=None, answer=None, prompt_role=None)
        if isinstance(prompt, dict):
            e["prompt_role"] = prompt.get("role", "user")
            e["prompt"] = render.message_parts(prompt, TIMELINE_CLIP, calls)
        if isinstance(answer, dict) and answer.get("type") == "message":
            e["answer"] = render.message_parts(answer, TIMELINE_CLIP, calls)
        out.append(e)
    return out


@router.get("/requests/{request_id}")
def request_page(request: Request, conn: Conn, scope: Scoped, request_id: str) -> HTMLResponse:
    r = request_or_404(conn, scope, request_id)
    body = r["request_body"] if isinstance(r["request_body"], dict) else {}
    view = render.conversation(body, r["response"])
    response_json = (
        render.pretty_json(r["response"]) if r["response"] is not None and view["answer"] is None else ""
    )
    return page(request, "request.html", r=r, view=view, response_json=response_json)


@router.get("/usage")
def usage_page(
    request: Request,
    conn: Conn,
    f: ListFilters,
    group: schemas.Group = "model",
    bucket: usage.BucketParam = None,
) -> HTMLResponse:
    d = usage.usage_data(conn, f, group, bucket)
    series = usage.series_names(d["groups"])
    token_chart, token_legend = _token_chart(usage.token_rows(d["rows"]), d["bucket"])
    return page(
        request,
        "usage.html",
        "/usage",
        f=f,
        d=d,
        choices=overview.choices(conn, f.scope),
        csv_query={**f.query(page=None), "group": d["group"], "bucket": d["bucket"]},
        cost_chart=charts.stacked_bars(
            usage.chart_rows(d["rows"], series, "cost_usd"), series, fmt=usd, bucket=d["bucket"], title="cost"
        ),
        cost_legend=charts.legend(series),
        token_chart=token_chart,
        token_legend=token_legend,
    )


@router.get("/ratelimits")
def ratelimits_page(request: Request, conn: Conn, f: ListFilters) -> HTMLResponse:
    d = ratelimits.ratelimits(conn, f)
    rendered = {}
    legends = {}
    for a in d["accounts"]:
        series: dict[str, list[tuple[datetime, float]]] = {
            name: [(h["at"], v) for h in a["history"] if (v := h[k]) is not None] for name, k in LIMITS
        }
        drawn = {k: v for k, v in series.items() if v}
        rendered[a["account"]] = charts.lines(drawn, warn_at=d["warn_at"], title="utilisation")
        legends[a["account"]] = charts.legend(list(drawn))
    return page(request, "ratelimits.html", "/ratelimits", f=f, d=d, charts=rendered, legends=legends)


@router.get("/alerts")
def alerts_page(
    request: Request,
    conn: Conn,
    scope: Scoped,
    team: Annotated[Name | None, Query()] = None,
    kind: Annotated[Name | None, Query()] = None,
) -> HTMLResponse:
    d = alerts.alerts_data(conn, request.app.state.secret_store, scope, team or None, kind or None, 200)
    return page(request, "alerts.html", "/alerts", d=d, team=team or "", kind=kind or "")


@router.get("/prompts")
def prompts_page(
    request: Request,
    conn: Conn,
    q: Annotated[SearchText | None, Query()] = None,
    removed: bool = False,
) -> HTMLResponse:
    d = prompts.library_data(conn, q or None, removed)
    mcp_url = str(request.base_url).rstrip("/") + "/mcp"
    return page(request, "prompts.html", "/prompts", d=d, q=q or "", removed=removed, mcp_url=mcp_url)


@router.get("/prompts/{name}")
def prompt_page(
    request: Request,
    conn: Conn,
    scope: Scoped,
    name: Annotated[Name, Path()],
    version: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None,
) -> HTMLResponse:
    p = prompts.prompt_data(conn, name, scope, version)
    if p is None:
        raise HTTPException(404, f"no prompt {name!r}" + (f" version {version}" if version else ""))
    return page(request, "prompt.html", "/prompts", p=p)


def _keys_page(
    request: Request,
    conn: psycopg.Connection,
    access: AccessStore,
    f: Filters,
    status: int = 200,
    **ctx: Any,
) -> HTMLResponse:
    ctx.setdefault("form", {})
    return page(request, "keys.html", "/keys", status, f=f, keys=keys.list_keys(access, conn, f), **ctx)


@router.get("/keys")
def keys_page(request: Request, conn: Conn, access: Access, f: ListFilters) -> HTMLResponse:
    return _keys_page(request, conn, access, f)


@router.post("/keys")
async def create_key_page(
    request: Request, conn: Conn, access: Access, log: AuditTrail, f: ListFilters
) -> HTMLResponse:
    fields = await form_fields(request)
    try:
        key, record = keys.create_key(access, fields, log)
    except keys.KeyInputError as exc:
        return _keys_page(request, conn, access, f, 400, error=str(exc), form=fields)
    # Rendered, not redirected: the key must not travel in a URL or survive a reload.
    return _keys_page(request, conn, access, f, 201, created={"key": key, "record": record})


@router.post("/keys/{key_id}/revoke")
def revoke_key_page(access: Access, log: AuditTrail, key_id: str) -> Response:
    try:
        keys.revoke_key(access, key_id, log)
    except UnknownKey:
        raise HTTPException(404, f"no key {key_id!r}") from None
    return RedirectResponse(f"/keys#key-{key_id}", 303)


def _credentials_page(request: Request, access: AccessStore, status: int = 200, **ctx: Any) -> HTMLResponse:
    ctx.setdefault("form", {})
    rows = credentials.list_credentials(access)
    return page(request, "credentials.html", "/credentials", status, credentials=rows, **ctx)


@router.get("/credentials")
def credentials_page(request: Request, access: Access) -> HTMLResponse:
    return _credentials_page(request, access)


@router.post("/credentials")
async def store_oauth_page(request: Request, access: Access, log: AuditTrail) -> HTMLResponse:
    fields = await form_fields(request)
    try:
        stored = credentials.store_oauth(
            access, fields.get("team") or "", fields.get("credential") or "", log
        )
    except credentials.CredentialInputError as exc:
        # The team is kept for the retry; the credential is not echoed back into the page.
        return _credentials_page(request, access, 400, error=str(exc), form={"team": fields.get("team")})
    return _credentials_page(request, access, 201, stored=stored)


def _budgets_page(
    request: Request, conn: psycopg.Connection, access: AccessStore, status: int = 200, **ctx: Any
) -> HTMLResponse:
    ctx.setdefault("form", {})
    d = budgets.budgets_data(access.store, conn)
    return page(request, "budgets.html", "/budgets", status, d=d, **ctx)


@router.get("/budgets")
def budgets_page(request: Request, conn: Conn, access: Access) -> HTMLResponse:
    return _budgets_page(request, conn, access)


@router.post("/budgets")
async def set_budget_page(request: Request, conn: Conn, access: Access, log: AuditTrail) -> Response:
    fields = await form_fields(request)
    try:
        cap = budgets.set_cap(access.store, fields, log)
    except BudgetInputError as exc:
        return _budgets_page(request, conn, access, 400, error=str(exc), form=fields)
    return RedirectResponse(f"/budgets#budget-{cap['kind']}-{cap['name']}-monthly", 303)


@router.post("/budgets/{kind}/{name}/clear")
def clear_budget_page(access: Access, log: AuditTrail, kind: str, name: str) -> Response:
    try:
        budgets.clear_cap(access.store, kind, name, log)
    except BudgetInputError as exc:
        raise HTTPException(404, str(exc)) from None
    return RedirectResponse("/budgets", 303)


@router.get("/analysis")
def analysis_page(request: Request, conn: Conn, f: ListFilters) -> HTMLResponse:
    return page(
        request,
        "analysis.html",
        "/analysis",
        f=f,
        d=analysis.top_tips(conn, f.team, f.since, f.scope),
        choices=overview.choices(conn, f.scope),
    )


@router.get("/api-reference")
def api_reference(request: Request) -> HTMLResponse:
    return page(request, "api_reference.html", "/api-reference", spec=request.app.openapi())
