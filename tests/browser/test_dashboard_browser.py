"""The dashboard in a real browser (headless Debian chromium via Playwright) on a real Claude Code
session (sub-agent, compaction, fork) recorded through `nexus dev`: log in, read every page, click
through the conversation, open raw JSON, make and revoke a key, log out. Every test also fails on a
console error, an uncaught exception or a CSP violation (the `b` fixture), and writes a full-page
screenshot of each page it visits to test-output/screenshots/."""

from __future__ import annotations

import csv
import io
import re
import secrets

import psycopg
import pytest
from nexus import accounts
from playwright.sync_api import expect

from tests.browser.conftest import Browse
from tests.support.scenario import FIRST_PROMPT, MODEL, TEAM, Scenario, run_scenario
from tests.support.stack import Stack

pytestmark = pytest.mark.cli


@pytest.fixture(scope="module")
def scenario(stack: Stack, tmp_path_factory) -> Scenario:
    return run_scenario(stack, tmp_path_factory.mktemp("scenario"))


def assert_lanes_drawn(rows) -> None:
    """Each tree row starts with its lanes as an SVG drawing (not its source shown as text)."""
    first = rows.first
    assert first.locator("> svg.lanes").count() == 1 and "<svg" not in first.inner_text(), (
        "the tree's lane drawing is escaped into text: " + first.inner_text()[:120]
    )


def keys_of(stack: Stack) -> dict[str, dict]:
    status, body = stack.api("/api/keys")
    assert status == 200, body
    return {k["id"]: k for k in body["keys"]}


def spawn_target(sub: dict) -> str:
    return f"/requests/{sub['parent_task_request_id']}#tool-{sub['task_tool_use_id']}"


def test_without_a_session_every_page_ends_at_the_login_page(b: Browse, scenario) -> None:
    page = b.page
    for path in ("/", "/keys", f"/conversations/{scenario.id}"):
        b.goto(path)  # 303 → /login, which answers 200
        assert b.path() == "/login", (path, page.url)
        assert page.locator("form[action='/login'] input[name=password]").is_visible()
    assert page.locator("header.top").count() == 0  # no navigation before logging in
    b.shot("login")

    b.allowed_statuses.add(401)
    page.fill("input[name=password]", "nxd_not_the_key")  # no user: the dashboard key
    with page.expect_navigation():
        page.click("form[action='/login'] button[type=submit]")
    assert page.get_by_role("alert").inner_text() == "That is not the dashboard key."
    assert not [c for c in page.context.cookies() if c["name"] == "nexus_session"]
    b.shot("login-wrong-key")


def test_log_in_and_search_the_overview(b: Browse, scenario) -> None:
    page = b.page
    b.login()
    assert page.locator("h1").inner_text() == "Overview"
    assert page.locator("nav[aria-label=main] a[aria-current=page]").inner_text() == "Overview"
    assert int(page.locator("[data-total=requests]").inner_text().replace(",", "")) >= len(
        scenario.conversation["requests"]
    )
    assert page.locator("section[aria-label=activity] svg").count() >= 2  # cost and token charts
    link = page.locator(f"table.conversations a[href='/conversations/{scenario.id}']")
    assert link.inner_text() == FIRST_PROMPT
    b.shot("overview")

    page.fill("input[name=q]", "scenario")
    with page.expect_navigation():
        page.press("input[name=q]", "Enter")
    assert "q=scenario" in page.url
    assert (
        page.locator("section[aria-label=conversations] h2").inner_text()
        == "Conversations matching “scenario”"
    )
    assert link.is_visible() and link.inner_text() == FIRST_PROMPT
    b.shot("overview-search-hit")

    page.fill("input[name=q]", "xylophone")
    with page.expect_navigation():
        page.click("form.filters button[type=submit]")
    assert page.locator("p.empty").inner_text() == "No conversations match these filters."
    assert link.count() == 0
    b.shot("overview-search-none")


def test_conversation_tree_timeline_and_branch_filter(b: Browse, scenario) -> None:
    page = b.page
    b.login()
    with page.expect_navigation():
        page.click(f"table.conversations a[href='/conversations/{scenario.id}']")
    assert b.path() == f"/conversations/{scenario.id}"
    assert page.locator("h1.conv-title").inner_text() == FIRST_PROMPT
    requests = scenario.conversation["requests"]
    rows = page.locator("ol.tree > li.row")
    assert rows.count() == len(requests)
    assert_lanes_drawn(rows)

    kinds = page.locator("table.branches td .badge").all_inner_texts()
    assert {"main", "subtask", "compact", "branch"} <= set(kinds), kinds
    tree = page.locator("ol.tree")
    for kind in ("subtask", "compact"):
        assert tree.locator(f".badge.k-{kind}").first.is_visible(), kind
    fork = scenario.branch("branch")["name"]
    assert tree.locator(".badge:not([class*='k-'])", has_text=fork).first.is_visible()
    sub = scenario.requests_on("subtask")[0]
    spawn = tree.locator("a.spawn", has_text="spawned by")
    assert spawn.count() == 1
    assert spawn.get_attribute("href") == spawn_target(sub)
    b.shot("conversation-tree")

    with page.expect_navigation():
        page.click("nav.tabs a:text-is('Timeline')")
    assert "view=timeline" in page.url
    assert page.locator("nav.tabs a[aria-current=page]").inner_text() == "Timeline"
    timeline = page.locator("ol.timeline")
    assert timeline.locator("> li").count() == len(requests)
    assert timeline.get_by_text("a turn after compaction").first.is_visible()
    assert timeline.get_by_text("a forked turn").first.is_visible()
    b.shot("conversation-timeline")
    with page.expect_navigation():
        page.click("nav.tabs a:text-is('Tree')")
    assert "view=tree" in page.url and rows.count() == len(requests)

    compact = scenario.branch("compact")["name"]
    with page.expect_navigation():
        page.select_option("select[name=branch]", compact)  # submits itself (data-autosubmit)
    assert f"branch={compact}" in page.url
    assert rows.count() == len(scenario.requests_on("compact"))
    assert page.locator("table.branches tr.current td:first-child").inner_text() == compact
    assert page.locator("select[name=branch]").input_value() == compact
    b.shot("conversation-branch-compact")
    with page.expect_navigation():
        page.select_option("select[name=branch]", "")
    assert rows.count() == len(requests)

    with page.expect_navigation():
        spawn.click()
    assert b.path() == spawn_target(sub)
    tool = page.locator(f"details.tool#tool-{sub['task_tool_use_id']}")
    assert tool.is_visible() and "Agent" in tool.locator("summary").inner_text()


def test_request_page_toggles_and_raw_json_tree(b: Browse, scenario) -> None:
    page = b.page
    reqs = scenario.conversation["requests"]
    invoking = next(r for r in reqs if r["stop_reason"] == "tool_use")
    back = next(r for r in reqs if r["parent_request_id"] == invoking["id"] and r["branch"] == "main")
    b.login()
    b.goto(f"/conversations/{scenario.id}")
    assert_lanes_drawn(page.locator("ol.tree > li.row"))
    with page.expect_navigation():
        page.click(f"#r{back['n']} a.node")
    assert b.path() == f"/requests/{back['id']}"
    assert page.locator("main > h1").inner_text().startswith("POST /v1/messages")
    b.shot("request")

    # The two toggle buttons open every matching <details>, and a second click closes them again.
    assert page.locator("details.tool").count() > 0, "the tool call and its result are rendered"
    for selector, label in (
        ("details.tool", "expand tool calls"),
        ("details.reminder", "show system reminders"),
    ):
        items = page.locator(selector)
        if items.count() == 0:
            continue  # Claude Code injects reminders, but not in every version
        button = page.locator(f"button[data-toggle='{selector}']")
        assert button.inner_text() == label
        button.click()
        assert all(items.evaluate_all("els => els.map(e => e.open)")), selector
        expect(items.first.locator("> *:not(summary)").first).to_be_visible()
        button.click()
        assert not any(items.evaluate_all("els => els.map(e => e.open)")), selector

    raw = page.locator(f"details.raw[data-src='/api/requests/{back['id']}/raw/request']")
    tree = raw.locator(".jsontree")
    assert tree.inner_text() == ""
    raw.locator("> summary").click(position={"x": 30, "y": 8})  # on its text, not the download link
    root = tree.locator("> details[open]")
    root.wait_for()
    assert re.fullmatch(r"\{ \d+ keys", root.locator("> summary").inner_text())
    model = root.locator("> .leaf", has=page.locator(".key", has_text='"model"'))
    assert model.locator(".str").inner_text() == f'"{MODEL}"'
    messages = root.locator("> details", has=page.locator("> summary > .key", has_text='"messages"'))
    assert messages.locator("> details, > .leaf").count() == 0  # children are built when it opens
    messages.locator("> summary").click()
    count = int(re.search(r"\[ (\d+) items", messages.locator("> summary").inner_text()).group(1))
    first = messages.locator("> details").first
    first.wait_for()
    assert messages.locator("> details, > .leaf").count() == count == back["message_count"]
    first.locator("> summary").click()
    expect(first.locator("> .leaf .key", has_text='"role"')).to_be_visible()
    b.shot("request-raw-json")


def test_usage_and_rate_limits_pages(b: Browse, scenario) -> None:
    page = b.page
    b.login()
    with page.expect_navigation():
        page.click("nav[aria-label=main] a:text-is('Usage')")
    assert b.path() == "/usage"
    assert page.locator("svg.chart").count() >= 2  # cost and tokens
    model = scenario.conversation["models"][0]
    assert page.locator("table.usage td:first-child", has_text=model).is_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert model in {r["model"] for r in rows}, rows
    assert sum(int(r["requests"]) for r in rows) >= len(scenario.conversation["requests"])
    b.shot("usage")

    with page.expect_navigation():
        page.click("nav[aria-label=main] a:text-is('Rate limits')")
    assert b.path() == "/ratelimits"
    account = page.locator("section.account").first
    assert account.locator("meter").count() >= 2
    assert account.get_by_text("34%").first.is_visible() and account.get_by_text("12%").first.is_visible()
    b.shot("ratelimits")


def test_keys_are_shown_once_and_can_be_revoked(b: Browse) -> None:
    page = b.page
    name = "laptop-" + secrets.token_hex(3)
    b.login()
    with page.expect_navigation():
        page.click("nav[aria-label=main] a:text-is('Keys')")
    page.fill("form[action='/keys'] input[name=team]", "browser")
    page.fill("form[action='/keys'] input[name=user]", "bea")
    page.fill("form[action='/keys'] input[name=name]", name)
    with page.expect_navigation():
        page.click("form[action='/keys'] button[type=submit]")
    key = page.locator("code#new-key").inner_text()
    assert re.fullmatch(r"nxk_[A-Za-z0-9_-]+", key), key
    key_id = key.split("_")[1]
    row = page.locator(f"tr#key-{key_id}")
    assert row.is_visible() and name in row.inner_text()
    b.shot("keys-created")

    b.goto("/keys")  # a fresh load, not a re-POST
    assert page.locator("code#new-key").count() == 0 and key not in page.content()
    assert row.locator("td code").inner_text() == key_id and name in row.inner_text()

    revoke = row.locator("form[action$='/revoke'] button")
    messages: list[str] = []

    def answer(dialog, accept: bool) -> None:
        messages.append(dialog.message)
        if accept:
            dialog.accept()
        else:
            dialog.dismiss()

    page.once("dialog", lambda d: answer(d, False))
    revoke.click()  # confirm() says no: nothing is sent
    assert messages and key_id in messages[0] and revoke.is_visible()
    assert keys_of(b.stack)[key_id]["revoked_at"] is None

    page.once("dialog", lambda d: answer(d, True))
    with page.expect_navigation():
        revoke.click()
    assert b.path() == f"/keys#key-{key_id}"
    assert "revoked" in (row.get_attribute("class") or "")
    assert row.locator("td").last.inner_text().startswith("revoked ") and revoke.count() == 0
    assert keys_of(b.stack)[key_id]["revoked_at"]
    b.shot("keys-revoked")


def test_a_post_without_the_csrf_token_is_refused(b: Browse) -> None:
    page = b.page
    b.login()
    b.goto("/keys")
    before = set(keys_of(b.stack))
    b.allowed_statuses.add(403)
    post_form = """([action, fields]) => {
        const f = document.createElement("form");
        f.method = "post";
        f.action = action;
        for (const [k, v] of Object.entries(fields)) {
            const i = document.createElement("input");
            i.name = k; i.value = v; f.appendChild(i);
        }
        document.body.appendChild(f);
        f.submit();
    }"""
    with page.expect_navigation() as nav:
        page.evaluate(post_form, ["/keys", {"team": "mallory", "user": "mallory"}])
    assert nav.value.status == 403
    assert page.locator("h1").inner_text() == "403 · Forbidden"
    assert page.get_by_role("alert").inner_text() == "missing or wrong CSRF token for this session"
    b.shot("csrf-refused")

    # A page on another site posting the form, even with this session's token: the Lax cookie is
    # not sent with a cross-site POST, so the request is not logged in at all.
    b.goto("/keys")
    token = page.locator("form.logout input[name=csrf_token]").input_value()
    page.goto("about:blank")
    with page.expect_navigation():
        page.evaluate(
            post_form,
            [b.url("/keys"), {"csrf_token": token, "team": "mallory", "user": "mallory"}],
        )
    assert b.path() == "/login"
    assert set(keys_of(b.stack)) == before


def test_log_out_ends_the_session(b: Browse) -> None:
    page = b.page
    b.login()
    b.goto("/usage")
    with page.expect_navigation():
        page.click("form.logout button")
    assert b.path() == "/login"
    assert not [c for c in page.context.cookies() if c["name"] == "nexus_session"]
    for path in ("/", "/keys"):
        b.goto(path)
        assert b.path() == "/login", path
    b.shot("logged-out")


def test_the_console_watch_sees_csp_violations_and_script_errors(b: Browse) -> None:
    """The clean-console check of every other test is not vacuous: the page's CSP blocks inline
    script and style, and the watch reports both, and uncaught exceptions."""
    page = b.page
    b.goto("/login")
    with (
        page.expect_console_message(lambda m: "inline script" in m.text.lower()),
        page.expect_console_message(lambda m: "inline style" in m.text.lower()),
        page.expect_event("pageerror"),
    ):
        page.evaluate("""() => {
            const s = document.createElement("script");
            s.textContent = "window.ran = true";
            document.body.appendChild(s);
            document.body.insertAdjacentHTML("beforeend", '<p style="color: red">x</p>');
            setTimeout(() => { throw new Error("boom"); });
        }""")
    assert page.evaluate("() => window.ran") is None  # the inline script did not run
    text = "\n".join(b.errors)
    assert text.count("Content Security Policy") >= 2 and "boom" in text, text
    b.errors.clear()


PASSWORD = "browser suite passphrase"
PEOPLE = {
    "admin": ("root", []),
    "member": ("mia", [TEAM]),  # the scenario's team
    "viewer": ("val", ["elsewhere"]),  # another team: none of the scenario's data
}


@pytest.fixture(scope="module")
def people(stack: Stack) -> dict[str, str]:
    with psycopg.connect(stack.database_url) as conn:
        for role, (name, teams) in PEOPLE.items():
            accounts.add(conn, "cli:browser-suite", name, role, teams, PASSWORD)
    return {role: name for role, (name, _) in PEOPLE.items()}


@pytest.mark.parametrize("role", ["admin", "member", "viewer"])
def test_each_role_signs_in_and_sees_what_it_may(b: Browse, scenario, people, role: str) -> None:
    page = b.page
    b.login(people[role], PASSWORD)
    assert page.locator(".who").inner_text() == f"user:{people[role]} ({role})"
    nav = page.locator("nav[aria-label=main] a").all_inner_texts()
    admin_links = {"Keys", "Credentials", "Budgets", "Users", "Tokens", "Audit"}
    assert admin_links & set(nav) == (admin_links if role == "admin" else set())
    link = page.locator(f"table.conversations a[href='/conversations/{scenario.id}']")
    assert link.count() == (0 if role == "viewer" else 1)  # the viewer reads another team
    b.shot(f"role-{role}-overview")

    b.allowed_statuses = {403, 404}
    if role == "admin":
        b.goto("/users")
        rows = page.locator("table.users tbody tr").all_inner_texts()
        assert any(people["viewer"] in r and "viewer" in r for r in rows)
        b.goto("/audit")
        assert page.locator("table.audit").count() == 1
    else:
        b.goto("/keys", status=403)
        assert "admin role" in page.locator("main").inner_text()
    b.goto(f"/conversations/{scenario.id}", status=404 if role == "viewer" else 200)
    if role == "member":
        with page.expect_navigation():
            page.click("form[action$='/analysis'] button[type=submit]")
        assert page.url.endswith(f"/conversations/{scenario.id}#analysis")
    b.goto("/sessions")
    assert page.locator("table.sessions tbody tr").filter(has_text="(this browser)").count() == 1
    b.shot(f"role-{role}-sessions")
