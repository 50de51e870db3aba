"""A deployed stage's dashboard API, as CLI commands reach it. The stage's database is in its VPC,
so commands that read or queue what lives there go through the dashboard, with the stage's dashboard
key (read from Secrets Manager with your AWS credentials) as the Bearer key."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from nexus_cli.common import CLIError, stage_output, store_for


class StageAPI:
    def __init__(self, args: argparse.Namespace, timeout_s: float = 30) -> None:
        from nexus.access import DASHBOARD_KEY_SECRET

        self.stage: str = args.stage
        self.url = stage_output(self.stage, "DashboardUrl").rstrip("/")
        key = store_for(args).get(DASHBOARD_KEY_SECRET)
        if not key:
            raise CLIError(f"stage {self.stage!r} has no dashboard key in Secrets Manager")
        self._key = key
        self._timeout = timeout_s

    def call(self, method: str, path: str, query: dict[str, Any] | None = None) -> tuple[int, Any]:
        """(status, JSON body) of one call; a 4xx/5xx is returned, not raised (its body says why).
        The dashboard unreachable, or an answer that is not JSON, is a CLIError."""
        qs = "?" + urllib.parse.urlencode({k: v for k, v in (query or {}).items() if v}) if query else ""
        req = urllib.request.Request(f"{self.url}{path}{qs}", method=method)
        req.add_header("Authorization", f"Bearer {self._key}")
        req.add_header("Accept", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self._timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read() or b"null")
            except ValueError:
                return exc.code, None
        except (urllib.error.URLError, TimeoutError, ValueError) as exc:
            raise CLIError(f"stage {self.stage!r}: the dashboard at {self.url} failed: {exc}") from None

    def ok(self, method: str, path: str, query: dict[str, Any] | None = None) -> Any:
        """The body of a call that must succeed; otherwise a CLIError with the dashboard's message."""
        status, body = self.call(method, path, query)
        if status >= 400:
            raise CLIError(f"stage {self.stage!r}: {method} {path}: {status} {error_message(body)}")
        return body


def error_message(body: Any) -> str:
    """The dashboard's ``{"error": {"message": ...}}``, or whatever came."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message") or "")
    return "" if body is None else json.dumps(body)[:200]
