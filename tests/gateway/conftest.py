"""A running `nexus dev` whose gateway the tests drive with the clients its users run."""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from openai import AsyncOpenAI, OpenAI

from tests.support.secret_scan import GATEWAY_TEAM_KEY
from tests.support.stack import Stack, running_stack

TEAM_KEY = GATEWAY_TEAM_KEY


@dataclass
class Gateway:
    stack: Stack
    key: str  # a Nexus key of team "gw" (team-key mode), user "ada"

    @property
    def url(self) -> str:
        return self.stack.gateway_url

    def client(self, **kw: object) -> OpenAI:
        kw.setdefault("api_key", self.key)
        return OpenAI(base_url=self.url, max_retries=0, **kw)  # type: ignore[arg-type]

    def async_client(self) -> AsyncOpenAI:
        return AsyncOpenAI(base_url=self.url, api_key=self.key, max_retries=0)

    def stats(self) -> dict:
        req = urllib.request.Request(self.url.removesuffix("/v1") + "/stats")
        req.add_header("authorization", f"Bearer {self.key}")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def wait_idle(self, timeout: float = 20) -> dict:
        """Until no session is busy (a turn that ended has released its worker)."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.stats()
            if s["pool"]["busy"] == 0 or time.monotonic() > deadline:
                return s
            time.sleep(0.05)


def _make_key(stack: Stack) -> str:
    out = stack.nexus("keys", "create", "--team", "gw", "--user", "ada")
    assert out.returncode == 0, out.stderr
    key = re.search(r"nxk_\S+", out.stdout)
    assert key, out.stdout
    assert stack.nexus("teams", "set-mode", "gw", "team-key").returncode == 0
    assert stack.nexus("teams", "set-api-key", "gw", input=TEAM_KEY).returncode == 0
    return key.group(0)


@contextlib.contextmanager
def gateway_stack(pg_server, fake_upstream, root: Path, env: dict[str, str]) -> Iterator[Gateway]:
    """`nexus dev` with its gateway, these NEXUS_GATEWAY_* settings, and a key of team "gw"."""
    keys: list[str] = []
    with running_stack(
        pg_server,
        fake_upstream,
        root,
        env=env,
        gateway=True,
        before_start=lambda s: keys.append(_make_key(s)),
    ) as s:
        yield Gateway(s, keys[0])


@pytest.fixture(scope="module")
def gateway(pg_server, fake_upstream, tmp_path_factory) -> Iterator[Gateway]:
    with gateway_stack(
        pg_server, fake_upstream, tmp_path_factory.mktemp("gw"), {"NEXUS_GATEWAY_WARM_SPARES": "1"}
    ) as g:
        yield g
