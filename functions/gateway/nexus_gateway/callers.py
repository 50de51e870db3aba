"""Who is calling the gateway, and what the engine's Claude sends the Nexus proxy on their behalf.

Clients authenticate with their Nexus key as OpenAI clients send keys (``Authorization: Bearer
nxk_...``); keys are optional on localhost only, exactly as for the proxy. Upstream credentials come
from the caller's team mode, as for the proxy:

- team-key teams: the proxy is sent the caller's Nexus key and swaps in the team's Anthropic key;
- pass-through teams: the caller's own Anthropic credential travels with the request
  (``X-Anthropic-Api-Key``, or ``X-Anthropic-Auth-Token`` for an OAuth token) and the Nexus key goes
  in ``X-Nexus-Key``;
- no key (localhost): the caller's Anthropic header if sent, else the gateway's own
  ``ANTHROPIC_API_KEY``.

The most one request may spend is the team's ``gateway_request_cap_usd`` (``nexus teams
set-request-cap``), else the gateway's ``max_budget_usd``. Memory (ADR 24) is the key's setting,
else the team's (``nexus keys set-memory``, ``nexus teams set-memory``).
"""

from __future__ import annotations

from nexus.access import KEY_PREFIX, Authenticator, AuthError
from nexus.headers import NEXUS_KEY_HEADER
from nexus.memory import policy

from nexus_gateway.engine.pool import Caller
from nexus_gateway.errors import GatewayError

ANTHROPIC_KEY_HEADER = "x-anthropic-api-key"
ANTHROPIC_TOKEN_HEADER = "x-anthropic-auth-token"


def _unauthorized(message: str) -> GatewayError:
    return GatewayError(401, message, code="invalid_api_key", headers={"www-authenticate": "Bearer"})


def _own_credential(headers: dict[str, str]) -> dict[str, str] | None:
    if headers.get(ANTHROPIC_KEY_HEADER):
        return {"x-api-key": headers[ANTHROPIC_KEY_HEADER].strip()}
    if headers.get(ANTHROPIC_TOKEN_HEADER):
        return {"authorization": "Bearer " + headers[ANTHROPIC_TOKEN_HEADER].strip()}
    return None


def identify(
    auth: Authenticator,
    headers: dict[str, str],
    default_cap: float | None = None,
    open_api_key: str | None = None,
) -> Caller:
    """``headers``: lower-cased request headers. Raises a 401 GatewayError with a safe message.

    ``open_api_key``: the Anthropic credential for a caller without one, where keys are optional."""
    bearer = headers.get("authorization", "")
    token = bearer[7:].strip() if bearer[:7].lower() == "bearer " else None
    if token and token.startswith(KEY_PREFIX):
        try:
            key, team = auth.identify(token)
        except AuthError as exc:
            raise _unauthorized(str(exc)) from None
        mode = team["mode"]
        cap = team.get("gateway_request_cap_usd", default_cap)
        if mode == "team-key":
            creds = {"x-api-key": token}
        else:
            own = _own_credential(headers)
            if own is None:
                raise _unauthorized(
                    f"team {key.team!r} uses pass-through: send your own Anthropic credential in "
                    f"{ANTHROPIC_KEY_HEADER} (or {ANTHROPIC_TOKEN_HEADER} for an OAuth token)"
                )
            creds = {**own, NEXUS_KEY_HEADER: token}
        return Caller(
            key.id,
            key.team,
            key.user,
            creds,
            cap,
            memory=policy.mode_of(team, key.memory),
            memory_shared=bool(team.get("memory_sharing")),
            memory_keep_days=team.get("memory_keep_days") or None,
        )
    if auth.require_keys:
        raise _unauthorized(
            "missing Nexus key: send Authorization: Bearer nxk_... (create one with `nexus keys create`)"
            if not token
            else "that is not a Nexus key: send Authorization: Bearer nxk_..."
        )
    creds = _own_credential(headers) or {"x-api-key": open_api_key or "no-key"}
    return Caller("open", None, None, creds, default_cap)
