"""Crafted query strings get a clear 400 from the dashboard, never a 500: control characters in text
filters (PostgreSQL refuses NUL in text), numbers past what the database holds, timestamps that are
not RFC 3339; and a wrong method says which methods the path takes."""

from __future__ import annotations

import pytest

from tests.integration.http import Response, request
from tests.support.stack import Stack

pytestmark = pytest.mark.shared_stack

FILTERED = (
    "/api/overview",
    "/api/conversations",
    "/api/usage",
    "/api/usage.csv",
    "/api/ratelimits",
    "/api/keys",
)
PAGES = ("/", "/usage", "/ratelimits", "/keys")
TEXT_FILTERS = ("q", "team", "user", "model")


def get(stack: Stack, path: str) -> Response:
    return request(
        stack.dashboard_url, "GET", path, headers={"authorization": f"Bearer {stack.dashboard_key}"}
    )


def api_error(stack: Stack, path: str, status: int = 400) -> str:
    r = get(stack, path)
    assert r.status == status, (path, r.status, r.body[:300])
    assert (r.header("content-type") or "").startswith("application/json"), path
    error = r.json()["error"]
    assert error["status"] == status
    return error["message"]


@pytest.mark.parametrize("char", ["%00", "%01", "%1F", "%7F", "%C2%85"])
def test_control_characters_in_text_filters_get_400_on_every_endpoint(stack, char) -> None:
    for path in FILTERED:
        for name in TEXT_FILTERS:
            message = api_error(stack, f"{path}?{name}=a{char}b")
            assert name in message and "control character" in message, (path, name, message)
    assert "control character" in api_error(stack, f"/api/requests?session_id=x{char}")
    ok = get(stack, "/api/overview?q=caf%C3%A9%20%22exact%20phrase%22&team=web%20team")
    assert ok.status == 200  # printable text, spaces and quotes included, is fine


def test_control_characters_on_pages_get_an_html_400(stack) -> None:
    for path in PAGES:
        for name in TEXT_FILTERS:
            r = get(stack, f"{path}?{name}=%00")
            assert r.status == 400, (path, name, r.status)
            assert (r.header("content-type") or "").startswith("text/html")
            body = r.body.decode()
            assert "control character" in body and "Traceback" not in body


def test_numbers_past_what_the_database_holds_get_400(stack) -> None:
    message = api_error(stack, "/api/conversations?offset=9223372036854775808")
    assert "offset" in message
    assert get(stack, "/api/conversations?offset=9223372036854775807").status == 200
    assert "offset" in api_error(stack, "/api/conversations?offset=-1")
    assert "limit" in api_error(stack, "/api/requests?limit=99999999999999999999")


@pytest.mark.parametrize(
    "since",
    ["-1", "0", "1700000000", "-9999999999", "1969-12-31T23:59:59Z", "yesterday", "2025-13-01T00:00:00Z"],
)
def test_since_must_be_an_rfc3339_time_from_1970_on(stack, since) -> None:
    message = api_error(stack, f"/api/requests?since={since}")
    assert "since" in message and "RFC 3339" in message, message


@pytest.mark.parametrize(
    "since", ["2025-01-02T03:04:05Z", "2025-01-02T03:04:05.123456%2B02:00", "1970-01-01T00:00:00Z"]
)
def test_a_good_since_is_accepted(stack, since) -> None:
    assert get(stack, f"/api/requests?since={since}").status == 200


def test_a_wrong_method_says_which_methods_the_path_takes(stack) -> None:
    auth = {"authorization": f"Bearer {stack.dashboard_key}"}
    r = request(stack.dashboard_url, "DELETE", "/api/overview", headers=auth)
    assert r.status == 405 and r.header("allow") == "GET"
    assert r.json()["error"]["status"] == 405
    # GET and POST of one path are separate routes; Allow names both
    assert request(stack.dashboard_url, "PUT", "/api/keys", headers=auth).header("allow") == "GET, POST"
    page = request(stack.dashboard_url, "DELETE", "/keys", headers=auth)
    assert page.status == 405 and page.header("allow") == "GET, POST"
    assert (page.header("content-type") or "").startswith("text/html")


def test_a_key_name_with_a_control_character_is_refused(stack) -> None:
    auth = {"authorization": f"Bearer {stack.dashboard_key}", "content-type": "application/json"}
    for body, field in (
        (b'{"team": "web\\u0000", "user": "ann"}', "team"),
        (b'{"team": "web", "user": "ann\\nbob"}', "user"),
        (b'{"team": "web", "user": "ann", "name": "\\t"}', "name"),
        (b'{"team": "web\\u0085", "user": "ann"}', "team"),  # NEL: a C1 control, and a line break
        (b'{"team": "web", "user": "ann\\u00a0"}', "user"),  # no-break space: spaces only
        (b'{"user": "ann"}', "team"),
    ):
        r = request(stack.dashboard_url, "POST", "/api/keys", body, auth)
        assert r.status == 400 and field in r.json()["error"]["message"], (body, r.body)
    keys = get(stack, "/api/keys").json()["keys"]
    assert not [k for k in keys if k["user"].startswith("ann")]
