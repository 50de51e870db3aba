"""The JSON API's response shapes (``schemas.py``) against what the read models build: FastAPI
validates a response against its shape and serialises it through the shape, which drops any key the
shape does not list and turns an int into a float where it says float. These tests keep the shapes
and the read models in step: the same keys, and the same JSON as the untyped dicts'."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nexus.access import AccessStore
from nexus.secret_store import LocalSecretStore
from nexus_dashboard import conversation_view, keys, queries, ratelimits, schemas
from pydantic import TypeAdapter

UNTYPED = TypeAdapter(Any)
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def same_json(shape: Any, value: Any) -> bytes:
    """``value`` as FastAPI sends it for a route annotated with ``shape``; it must be the JSON the
    value makes on its own."""
    typed = TypeAdapter(shape)
    sent = typed.dump_json(typed.validate_python(value))
    assert sent == UNTYPED.dump_json(value)
    return sent


def columns(fields: str) -> list[str]:
    """The names a SELECT list gives its columns (``x AS y`` is y, ``x::text`` is x)."""
    out = []
    for item in fields.split(","):
        item = item.strip()
        out.append(item.split(" AS ")[-1] if " AS " in item else item.split("::")[0])
    return out


def test_the_row_shapes_list_the_columns_the_queries_select() -> None:
    assert list(schemas.RequestSummary.__annotations__) == columns(queries.LIST_FIELDS)
    assert list(schemas.ConversationSummary.__annotations__) == [
        *columns(queries.CONVERSATION_FIELDS),
        "context_window",
        "context_fill",
    ]


def request_row(i: int, parent: int | None, branch: str | None, at_s: float, **extra: Any) -> dict:
    row: dict[str, Any] = dict.fromkeys(schemas.RequestSummary.__annotations__)
    row.update(
        id=f"r{i}",
        received_at=T0 + timedelta(seconds=at_s),
        kind="messages",
        path="/v1/messages",
        input_tokens=3,
        cost_usd=0.25,
        duration_ms=1500.0,
        ttfb_ms=120.5,
        message_count=2 * i + 1,
        body_size=900,
        is_subtask=False,
        parent_request_id=f"r{parent}" if parent is not None else None,
        branch=branch,
        stop_reason="tool_use",
        answer_text="ok",
        tool_names=["Bash", None],
        **extra,
    )
    return row


def test_a_laid_out_conversation_keeps_its_json() -> None:
    conv: dict[str, Any] = dict.fromkeys(schemas.ConversationSummary.__annotations__)
    conv.update(
        id="c1",
        title="t",
        models=["m"],
        session_ids=["s"],
        request_count=3,
        input_tokens=9,
        output_tokens=0,
        cache_creation_input_tokens=0,
        cache_read_input_tokens=0,
        cost_usd=0.75,
        first_at=T0,
        last_at=T0,
        branch_count=1,
        subagent_count=0,
        compaction_count=0,
        latest_context_tokens=1000,
        context_window=200_000,
        context_fill=0.005,
    )
    branch = {
        "kind": "main",
        "fork_request_id": None,
        "request_count": 2,
        "input_tokens": 6,
        "output_tokens": 0,
        "cost_usd": 0.5,
        "first_at": T0,
        "last_at": T0,
    }
    conv["branches"] = [{"name": "main", **branch}, {"name": "branch_1", **branch, "fork_request_id": "r1"}]
    conv["requests"] = [
        request_row(1, None, None, 0),
        request_row(2, 1, None, 10),
        request_row(3, 1, "branch_1", 20),
    ]
    for branch_filter in (None, "branch_1"):
        laid_out = conversation_view.layout({**conv, "requests": list(conv["requests"])}, branch_filter)
        same_json(schemas.Conversation, laid_out)
    assert laid_out["time"]["tool_ms"] == 27_000  # rounded milliseconds: an int, sent as 27000 (not 27000.0)


@pytest.mark.parametrize(
    "headers",
    [
        {  # a subscription
            "anthropic-ratelimit-unified-status": "allowed_warning",
            "anthropic-ratelimit-unified-5h-utilization": "0.91",
            "anthropic-ratelimit-unified-5h-reset": "1795984543",
            "anthropic-ratelimit-unified-7d-utilization": "n/a",  # not a number: kept as text
            "anthropic-ratelimit-unified-7d-reset": "next week",
        },
        {  # an API key: per-minute limits
            "anthropic-ratelimit-tokens-limit": "1000",
            "anthropic-ratelimit-tokens-remaining": "250",
            "anthropic-ratelimit-tokens-reset": "2026-11-01T00:01:00Z",
            "anthropic-ratelimit-requests-limit": "50",  # remaining not sent
            "retry-after": "7",
        },
        {},
    ],
)
def test_a_rate_limit_reading_keeps_its_json(headers: dict[str, str]) -> None:
    same_json(schemas.Reading, ratelimits.reading(headers))


def test_key_responses_keep_their_json(tmp_path) -> None:
    access = AccessStore(LocalSecretStore(tmp_path / "secrets.json"))
    audited: list[tuple[str, str]] = []
    key, record = keys.create_key(
        access,
        {"team": "web", "user": "ann", "name": " laptop "},
        lambda a, t, d=None: audited.append((a, t)),
    )
    same_json(schemas.CreatedKey, {"key": key, "record": record})
    revoked_at = keys.revoke_key(access, record["id"], lambda a, t, d=None: audited.append((a, t)))
    same_json(schemas.RevokedKey, {"id": record["id"], "revoked_at": revoked_at})
    assert audited == [("key.create", record["id"]), ("key.revoke", record["id"])]


def test_both_session_shapes_keep_their_json() -> None:
    bearer = {"auth": "bearer", "principal": "token:ab12", "role": "viewer", "teams": ["web"]}
    assert same_json(schemas.Session, bearer) == (
        b'{"auth":"bearer","principal":"token:ab12","role":"viewer","teams":["web"]}'
    )
    browser = {
        "auth": "session",
        "principal": "dashboard-key",
        "role": "admin",
        "teams": None,
        "csrf_token": "c",
        "expires_at": 1_795_000_000,
    }
    same_json(schemas.Session, browser)
    with pytest.raises(ValueError):
        TypeAdapter(schemas.Session).validate_python({"auth": "session"})  # a session says who and its token


def test_a_shape_drops_a_key_it_does_not_list() -> None:
    """Why the tests above matter: a key the read model adds but the shape lacks is not sent."""
    typed = TypeAdapter(schemas.RevokedKey)
    assert b"extra" not in typed.dump_json(typed.validate_python({"id": "k", "revoked_at": "x", "extra": 1}))
