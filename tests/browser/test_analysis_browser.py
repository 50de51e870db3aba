"""Analysis and live updates in a real browser: the conversation page's Analyse button runs the
pipeline and shows its panel (scores, summary, a tip linking to the request it quotes); the overview
and an open conversation update themselves as requests arrive, by conditional polling (304 while
nothing changed), paused while the tab is hidden."""

from __future__ import annotations

import time
from typing import Any

import anthropic
from playwright.sync_api import expect

from tests.browser.conftest import Browse
from tests.support.stack import Stack

TOOLS: list[Any] = [
    {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {}}}
]


def say(stack: Stack, messages: list[dict[str, Any]], text: str, session: str) -> str:
    """One more turn through the proxy; the conversation's id."""
    client = anthropic.Anthropic(base_url=stack.proxy_url, api_key="sk-ant-user", max_retries=0)
    messages.append({"role": "user", "content": text})
    with client.messages.stream(
        model="claude-sonnet-5",
        max_tokens=50,
        messages=messages,
        tools=TOOLS,
        extra_headers={"x-claude-code-session-id": session},
    ) as s:
        reply = s.get_final_message()
    messages.append({"role": "assistant", "content": reply.content[0].text})  # type: ignore[union-attr]
    rows = stack.wait_count(len(messages) // 2, session_id=session)
    return str(rows[0]["conversation_id"])


def version_polls(b: Browse) -> list[int]:
    statuses: list[int] = []
    b.page.on("response", lambda r: statuses.append(r.status) if r.url.endswith("/version") else None)
    return statuses


def test_the_overview_updates_as_requests_arrive(b: Browse, stack: Stack) -> None:
    page = b.page
    statuses = version_polls(b)
    b.login()
    before = page.locator("[data-total=requests]").inner_text()
    deadline = time.monotonic() + 15
    while 304 not in statuses and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert 304 in statuses, statuses  # polls are conditional: nothing new, nothing sent
    say(stack, [], "a request while the overview is open", "live-overview")
    expect(page.locator("[data-total=requests]")).not_to_have_text(before, timeout=15_000)
    assert page.locator("main").get_attribute("data-refreshed") is not None
    assert page.url.endswith("/")  # updated in place, not reloaded by navigation
    b.shot("overview-live")


def test_polling_pauses_while_the_tab_is_hidden(b: Browse, stack: Stack) -> None:
    page = b.page
    statuses = version_polls(b)
    b.login()
    page.wait_for_timeout(500)
    page.evaluate(
        "Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    page.wait_for_timeout(300)
    seen = len(statuses)
    page.wait_for_timeout(7_000)  # two poll periods
    assert len(statuses) == seen, "polled while hidden"
    page.evaluate(
        "Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    page.wait_for_timeout(1_000)
    assert len(statuses) > seen  # visible again: polled at once


def test_analyse_a_conversation_from_its_page(b: Browse, stack: Stack) -> None:
    for args, stdin in (
        (("teams", "set-mode", "browser-review", "team-key"), None),
        (("teams", "set-api-key", "browser-review"), "sk-ant-api03-browser"),
        (("analysis", "setup", "--team", "browser-review"), None),
    ):
        done = stack.nexus(*args, input=stdin)
        assert done.returncode == 0, done.stderr
    history: list[dict[str, Any]] = []
    cid = say(stack, history, "Add a --verbose flag to the CLI", "browser-analysis")
    page = b.page
    b.login()
    b.goto(f"/conversations/{cid}")
    panel = page.locator("section#analysis")
    expect(panel).to_contain_text("Not analysed yet.")
    with page.expect_navigation():
        panel.locator("button[type=submit]").click()
    expect(page.locator("section#analysis")).to_contain_text("Task success", timeout=20_000)
    tip = page.locator("section#analysis ul.tips li").first
    expect(tip).to_contain_text("“Add a --verbose flag”")
    b.shot("conversation-analysis")

    # a new turn arrives while the page is open: the tree grows in place and the analysis is stale
    say(stack, history, "now make it the default", "browser-analysis")
    expect(page.locator("ol.tree li.row")).to_have_count(2, timeout=15_000)
    expect(page.locator("section#analysis")).to_contain_text("new requests since this analysis")

    with page.expect_navigation():
        tip.locator("a").click()
    assert b.path().startswith("/requests/")

    b.goto("/analysis")
    expect(page.locator("table.tips-table")).to_contain_text("Say which test proves it works.")
