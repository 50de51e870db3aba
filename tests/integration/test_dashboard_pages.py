"""The dashboard's pages and their JSON twins on a real Claude Code session (sub-agent, compaction,
fork) recorded through `nexus dev`, checked against the database's own numbers."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from urllib.parse import quote

import psycopg
import pytest

from tests.integration.http import CLAUDE_HEADERS, Response, post, request
from tests.support.scenario import FIRST_PROMPT, Scenario, run_scenario
from tests.support.stack import Stack

pytestmark = pytest.mark.cli


@pytest.fixture(scope="module")
def scenario(stack: Stack, tmp_path_factory) -> Scenario:
    return run_scenario(stack, tmp_path_factory.mktemp("scenario"))


def page(stack: Stack, path: str) -> Response:
    return request(
        stack.dashboard_url, "GET", path, headers={"authorization": f"Bearer {stack.dashboard_key}"}
    )


def html(stack: Stack, path: str, status: int = 200) -> str:
    r = page(stack, path)
    assert r.status == status, (path, r.status, r.body[:500])
    assert (r.header("content-type") or "").startswith("text/html")
    return r.body.decode()


def api(stack: Stack, path: str) -> dict:
    status, body = stack.api(path)
    assert status == 200, (path, body)
    return body


def db_totals(stack: Stack) -> dict:
    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT conversation_id), sum(input_tokens), sum(output_tokens),"
            " sum(cache_read_input_tokens), sum(cost_usd)::float8 FROM requests"
        ).fetchone()
    keys = (
        "requests",
        "conversations",
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cost_usd",
    )
    return dict(zip(keys, row, strict=True))


def test_overview_totals_activity_and_list_match_the_database(stack, scenario) -> None:
    d = api(stack, "/api/overview?period=24h")
    expected = db_totals(stack)
    t = d["totals"]
    for k in ("requests", "conversations", "input_tokens", "output_tokens", "cache_read_input_tokens"):
        assert t[k] == expected[k], k
    assert t["cost_usd"] == pytest.approx(expected["cost_usd"])
    assert t["active_users"] >= 1
    assert sum(b["requests"] for b in d["activity"]) == expected["requests"] and d["bucket"] == "hour"
    listed = {c["id"]: c for c in d["conversations"]}
    mine = listed[scenario.id]
    assert mine["title"] == FIRST_PROMPT and mine["subagent_count"] == 1 and mine["compaction_count"] == 1
    assert mine["branch_count"] >= 1 and 0 < mine["context_fill"] < 1
    body = html(stack, "/?period=24h")
    assert FIRST_PROMPT in body and f'href="/conversations/{scenario.id}"' in body
    assert f'data-total="requests">{expected["requests"]:,}<' in body


def test_overview_search_filters_and_pagination(stack, scenario) -> None:
    hits = api(stack, "/api/overview?q=compaction")["conversations"]
    assert scenario.id in {c["id"] for c in hits}
    assert api(stack, "/api/overview?q=xylophone")["conversations"] == []
    assert "No conversations match" in html(stack, "/?q=xylophone")
    assert api(stack, "/api/overview?team=no-such-team")["totals"]["requests"] == 0
    assert api(stack, f"/api/overview?model={scenario.conversation['models'][0]}")["conversations"]
    one = api(stack, "/api/conversations?limit=1&offset=0")
    assert len(one["conversations"]) == 1 and one["total"] >= 1


def test_bad_filters_get_a_readable_400_in_each_shape(stack) -> None:
    status, body = stack.api("/api/overview?period=fortnight")
    assert status == 400 and "period" in body["error"]["message"] and "'7d'" in body["error"]["message"]
    text = html(stack, "/?period=fortnight", 400)
    assert "period" in text and "Traceback" not in text
    status, body = stack.api("/api/usage?bucket=hour&period=90d")
    assert status == 400 and "bucket=hour" in body["error"]["message"]
    assert "bucket=hour" in html(stack, "/usage?bucket=hour&period=90d", 400)
    assert "page" in html(stack, "/?page=0", 400)


def test_unknown_ids_get_404_pages(stack, scenario) -> None:
    for path in (
        "/conversations/00000000-0000-0000-0000-000000000000",
        "/conversations/not-a-uuid",
        "/requests/00000000-0000-0000-0000-000000000000",
        "/requests/nope",
        "/no/such/page",
    ):
        assert "404" in html(stack, path, 404)
    assert "no such branch" in html(stack, f"/conversations/{scenario.id}?branch=branch_99", 400)
    status, body = stack.api(f"/api/conversations/{scenario.id}?branch=branch_99")
    assert status == 400 and "no such branch" in body["error"]["message"]
    status, body = stack.api("/api/conversations/00000000-0000-0000-0000-000000000000")
    assert status == 404 and "no conversation" in body["error"]["message"]


def test_conversation_tree_links_every_node_and_the_sub_agent_to_its_tool_call(stack, scenario) -> None:
    c = api(stack, f"/api/conversations/{scenario.id}")
    reqs = c["requests"]
    assert [r["n"] for r in reqs] == list(range(1, len(reqs) + 1))
    body = html(stack, f"/conversations/{scenario.id}")
    for r in reqs:
        assert f'href="/requests/{r["id"]}"' in body
    sub = scenario.requests_on("subtask")[0]
    assert f'href="/requests/{sub["parent_task_request_id"]}#tool-{sub["task_tool_use_id"]}"' in body
    assert "badge k-compact" in body and "badge k-subtask" in body
    assert c["lane_count"] >= 2 and len({r["lane"] for r in reqs}) == c["lane_count"]
    # Time split: model time is the requests' own durations; tool time the gaps after tool_use answers.
    assert c["time"]["model_ms"] == pytest.approx(sum(r["duration_ms"] or 0 for r in reqs), abs=len(reqs))
    assert c["time"]["tool_ms"] > 0
    per_branch = {b["name"]: b for b in c["branches"]}
    assert sum(b["model_ms"] for b in per_branch.values()) == pytest.approx(c["time"]["model_ms"], abs=5)


def test_branch_filter_and_timeline(stack, scenario) -> None:
    compact = scenario.branch("compact")["name"]
    only = api(stack, f"/api/conversations/{scenario.id}?branch={compact}")["requests"]
    assert only and {r["branch"] for r in only} == {compact}
    body = html(stack, f"/conversations/{scenario.id}?branch={compact}")
    assert body.count('<li class="row') == len(only)
    timeline = html(stack, f"/conversations/{scenario.id}?view=timeline")
    assert "a turn after compaction" in timeline and "a forked turn" in timeline
    assert 'class="badge tool-name">Bash<' in timeline  # the sub-agent's tool call, rendered
    t = api(stack, f"/api/conversations/{scenario.id}/timeline")
    assert len(t["entries"]) == len(scenario.conversation["requests"])
    assert any(e["prompt"] and e["response"] for e in t["entries"])


def test_request_page_renders_messages_pairs_tool_calls_and_hides_reminders(stack, scenario) -> None:
    invoking = next(r for r in scenario.conversation["requests"] if r["stop_reason"] == "tool_use")
    back = next(
        r
        for r in scenario.conversation["requests"]
        if r["parent_request_id"] == invoking["id"] and r["branch"] == "main"
    )
    body = html(stack, f"/requests/{back['id']}")
    tool_ids = re.findall(r'<details class="tool" id="tool-(toolu_[^"]+)"', body)
    assert tool_ids, "the tool call is rendered with an anchor"
    assert f'href="#tool-{tool_ids[0]}"' in body  # the result in the next message points back to it
    assert "<h4>Result</h4>" in body
    assert 'id="m0"' in body and 'href="#m0"' in body  # deep links to messages
    messages = json.dumps(api(stack, f"/api/requests/{back['id']}")["request_body"]["messages"])
    if "</system-reminder>" in messages:  # Claude Code injects them into user messages
        assert '<details class="reminder">' in body
    assert f'data-src="/api/requests/{back["id"]}/raw/request"' in body
    raw = request(
        stack.dashboard_url,
        "GET",
        f"/api/requests/{back['id']}/raw/request",
        headers={"authorization": f"Bearer {stack.dashboard_key}"},
    )
    assert json.loads(raw.body)["messages"]
    assert "Traceback" not in body
    scripts = re.findall(r"<script[^>]*>", body)
    assert len(scripts) == 1 and re.fullmatch(
        r'<script src="/static/nexus\.js\?v=[0-9a-f]{12}" defer>', scripts[0]
    )


def test_static_assets_are_cached_by_content_hash_and_pages_never(stack, scenario) -> None:
    overview = page(stack, "/")
    assert overview.header("cache-control") == "no-store"
    css = re.search(r'href="(/static/nexus\.css\?v=[0-9a-f]{12})"', overview.body.decode()).group(1)
    asset = request(stack.dashboard_url, "GET", css)
    assert asset.status == 200 and b".tree" in asset.body
    assert asset.header("cache-control") == "public, max-age=31536000, immutable"
    assert "default-src 'self'" in (asset.header("content-security-policy") or "")


def test_usage_numbers_add_up_and_download_as_csv(stack, scenario) -> None:
    expected = db_totals(stack)
    for group in ("model", "team", "user"):
        d = api(stack, f"/api/usage?group={group}&period=7d&bucket=hour")
        assert sum(g["requests"] for g in d["groups"]) == expected["requests"]
        assert sum(g["output_tokens"] for g in d["groups"]) == expected["output_tokens"]
    r = page(stack, "/api/usage.csv?group=model&period=7d")
    assert r.status == 200 and "attachment" in (r.header("content-disposition") or "")
    rows = list(csv.DictReader(io.StringIO(r.body.decode())))
    assert sum(int(row["requests"]) for row in rows) == expected["requests"]
    assert sum(float(row["cost_usd"]) for row in rows) == pytest.approx(expected["cost_usd"], abs=1e-5)
    body = html(stack, "/usage?group=model")
    assert "<svg" in body and scenario.conversation["models"][0] in body and "Download CSV" in body


def test_rate_limits_show_the_latest_reading_per_account(stack, scenario) -> None:
    d = api(stack, "/api/ratelimits")
    assert d["accounts"], "the scripted upstream sends unified rate-limit headers"
    a = d["accounts"][0]
    windows = {w["window"]: w for w in a["latest"]["windows"]}
    assert windows["5h"]["utilization"] == pytest.approx(0.12) and windows["7d"][
        "utilization"
    ] == pytest.approx(0.34)
    assert windows["5h"]["reset"].startswith("2027-")  # epoch seconds shown as a date
    assert a["latest"]["status"] == "allowed" and not a["latest"]["warning"] and a["history"]
    body = html(stack, "/ratelimits")
    assert a["account"] in body and "34%" in body


def _form(stack: Stack, path: str, fields: str, cookie: str) -> Response:
    headers = {"cookie": cookie, "content-type": "application/x-www-form-urlencoded"}
    return request(stack.dashboard_url, "POST", path, fields.encode(), headers)


def _login(stack: Stack) -> tuple[str, str]:
    r = request(
        stack.dashboard_url,
        "POST",
        "/login",
        f"key={quote(stack.dashboard_key)}".encode(),
        {"content-type": "application/x-www-form-urlencoded"},
    )
    cookie = next(v for k, v in r.headers if k.lower() == "set-cookie").split(";")[0]
    me = request(stack.dashboard_url, "GET", "/api/session", headers={"cookie": cookie})
    return cookie, me.json()["csrf_token"]


def test_keys_create_once_use_revoke(stack, scenario, upstream) -> None:
    cookie, csrf = _login(stack)
    assert _form(stack, "/keys", "team=web&user=ann", cookie).status == 403  # no CSRF token
    bad = _form(stack, "/keys", f"csrf_token={csrf}&team=&user=ann", cookie)
    assert bad.status == 400 and b"team is required" in bad.body
    made = _form(stack, "/keys", f"csrf_token={csrf}&team=web&user=ann&name=laptop", cookie)
    assert made.status == 201
    key = re.search(rb'id="new-key">(nxk_[A-Za-z0-9_-]+)<', made.body).group(1).decode()
    key_id = key.split("_")[1]
    again = request(stack.dashboard_url, "GET", "/keys", headers={"cookie": cookie})
    assert key.encode() not in again.body and f'id="key-{key_id}"'.encode() in again.body

    def send() -> int:
        body = {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        return post(stack.proxy_url, "/v1/messages", body, {**CLAUDE_HEADERS, "x-nexus-key": key}).status

    # The key works at the proxy at once and its use shows up against it.
    assert send() == 200
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        listed = {k["id"]: k for k in api(stack, "/api/keys")["keys"]}
        if listed[key_id]["usage"]:
            break
        time.sleep(0.2)
    assert listed[key_id]["usage"]["requests"] == 1 and "hash" not in listed[key_id]

    gone = _form(stack, f"/keys/{key_id}/revoke", f"csrf_token={csrf}", cookie)
    assert gone.status == 303
    assert {k["id"]: k for k in api(stack, "/api/keys")["keys"]}[key_id]["revoked_at"]
    deadline = time.monotonic() + 5  # proxies pick a revocation up within a second locally
    while send() != 401:
        assert time.monotonic() < deadline, "the revoked key still works"
        time.sleep(0.2)
    assert _form(stack, "/keys/nope/revoke", f"csrf_token={csrf}", cookie).status == 404
    r = request(
        stack.dashboard_url, "POST", "/api/keys/nope/revoke", b"", {"cookie": cookie, "x-csrf-token": csrf}
    )
    assert r.status == 404 and r.json()["error"]["message"] == "no key 'nope'"


def test_no_page_or_api_answers_without_auth(stack, scenario) -> None:
    spec = api(stack, "/api/openapi.json")
    paths = [p for p, ops in spec["paths"].items() if "get" in ops]
    assert {
        "/api/overview",
        "/api/usage",
        "/api/ratelimits",
        "/api/keys",
        "/api/conversations/{conversation_id}",
    } <= set(paths)
    for p in paths:
        concrete = p.replace("{conversation_id}", scenario.id).replace("{request_id}", scenario.id)
        r = request(stack.dashboard_url, "GET", concrete)
        assert r.status == 401 and r.json()["error"]["status"] == 401, p
    for p in ("/", "/usage", "/ratelimits", "/keys", "/api-reference", f"/conversations/{scenario.id}"):
        r = request(stack.dashboard_url, "GET", p)
        assert r.status == 303 and r.header("location") == "/login", p
    assert request(stack.dashboard_url, "GET", "/api/openapi.json").status == 401
    assert request(stack.dashboard_url, "GET", "/docs").status in (303, 404)
    r = request(
        stack.dashboard_url,
        "POST",
        "/api/keys",
        b'{"team":"x","user":"y"}',
        {"content-type": "application/json"},
    )
    assert r.status == 401
