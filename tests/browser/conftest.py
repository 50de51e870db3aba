"""A real headless Chromium for the dashboard: Debian's `chromium` package driven by Playwright.

No browser is ever downloaded (`playwright install` is not used): the suite needs `/usr/bin/chromium`
(`apt-get install chromium`). Without it the suite skips with that hint, or fails under
NEXUS_NO_SKIP=1 (CI). One Playwright and one browser per session; a fresh context per test.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import strict_skips
from tests.support.stack import REPO, Stack

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = REPO / "test-output" / "screenshots"
TIMEOUT_MS = 10_000
FAILED_LOAD = re.compile(r"^Failed to load resource: the server responded with a status of (\d+)")


def chromium_path() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="package")  # torn down after tests/browser: its event loop must not outlive them
def browser():
    path = chromium_path()
    if path is None:
        reason = (
            "the browser suite needs Debian's chromium at /usr/bin/chromium "
            "(install it with `apt-get install chromium`; Playwright's own browser downloads are not used)"
        )
        if strict_skips():
            pytest.fail(reason + " [NEXUS_NO_SKIP=1]")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Browse:
    """One test's page, with what went wrong in it (console errors, uncaught exceptions, CSP
    violations all arrive as console errors in Chromium) and full-page screenshots by name."""

    def __init__(self, page, stack: Stack) -> None:
        self.page = page
        self.stack = stack
        self.errors: list[str] = []
        self.allowed_statuses: set[int] = set()
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught exception: {exc}"))

    def _console(self, msg) -> None:
        if msg.type != "error":
            return
        failed = FAILED_LOAD.match(msg.text)
        if failed and int(failed.group(1)) in self.allowed_statuses:
            return  # an error page the test asked for (the browser logs every non-2xx document)
        if failed and msg.location.get("url", "").endswith("/favicon.ico"):
            return  # the browser's own guess; the dashboard declares no icon
        self.errors.append(f"console error on {self.page.url}: {msg.text} {msg.location.get('url', '')}")

    def url(self, path: str = "/") -> str:
        return self.stack.dashboard_url + path

    def goto(self, path: str, status: int = 200) -> None:
        response = self.page.goto(self.url(path))
        assert response is not None and response.status == status, (path, response and response.status)

    def path(self) -> str:
        return self.page.url.removeprefix(self.stack.dashboard_url)

    def login(self, user: str = "", password: str | None = None) -> None:
        """Sign in through the form: as a user with their password, or (no user) with the key."""
        self.goto("/login")
        if user:
            self.page.fill("input[name=user]", user)
        self.page.fill("input[name=password]", password if password is not None else self.stack.dashboard_key)
        with self.page.expect_navigation():
            self.page.click("form[action='/login'] button[type=submit]")
        alert = self.page.get_by_role("alert")
        assert self.path() == "/", f"login ended at {self.page.url}: {alert.all_inner_texts()}"
        self.page.wait_for_selector("form.logout")

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        out = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(out), full_page=True)
        return out

    def assert_clean(self) -> None:
        assert not self.errors, "\n".join(self.errors)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.call_failed = report.failed
    return report


@pytest.fixture
def b(request, browser, stack: Stack) -> Iterator[Browse]:
    """A fresh context (no cookies) and page on the module's stack; a test that passes fails after
    all if its pages logged a console error (a failed test already says what went wrong)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    session = Browse(page, stack)
    try:
        yield session
        if not getattr(request.node, "call_failed", False):
            session.assert_clean()
    finally:
        context.close()
