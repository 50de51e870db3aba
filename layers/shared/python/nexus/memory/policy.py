"""Whether a gateway request uses memory: decided from the team's setting, the key's (which wins
when set), and what the request asks.

Modes (``nexus teams set-memory``, ``nexus keys set-memory``):

- ``off`` (the default): nothing is remembered or recalled; a request asking for memory is refused.
- ``on``: every completed turn is remembered and relevant earlier turns are recalled into new ones;
  a request may say ``off`` for itself (then it is neither recalled into nor remembered).
- ``per-request``: every completed turn is remembered, and recalled into requests that ask.

Sharing (a team setting) widens what is recalled from the caller's own turns (same team, same
user) to every turn of the team. Memory never crosses teams, and needs a Nexus key: callers without
one (keys optional on localhost) have no user or team to remember for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nexus.access import MEMORY_MODES

__all__ = ["MEMORY_MODES", "Refused", "Use", "asked", "decide", "mode_of"]

_ON = ("on", "true", "1", "yes")
_OFF = ("off", "false", "0", "no")


class Refused(Exception):
    """The request asks for memory it may not use; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Use:
    recall: bool  # earlier turns are recalled into this one
    remember: bool  # this turn is indexed when it completes
    shared: bool  # recall from the whole team, not only the caller's own turns

    @property
    def any(self) -> bool:
        return self.recall or self.remember


NONE = Use(recall=False, remember=False, shared=False)


def mode_of(team: dict[str, Any], key_mode: str | None) -> str:
    """The caller's mode: the key's when set, else the team's, else off."""
    mode = key_mode or team.get("memory") or "off"
    return mode if mode in MEMORY_MODES else "off"


def asked(header: str | None, body: bool | None) -> bool | None:
    """What the request asks: the ``X-Nexus-Memory`` header (on/off) and the body's
    ``nexus_memory`` (true/false); None when it says nothing. ValueError for a value that is
    neither, or for the two disagreeing."""
    from_header: bool | None = None
    if header is not None and header.strip():
        word = header.strip().lower()
        if word in _ON:
            from_header = True
        elif word in _OFF:
            from_header = False
        else:
            raise ValueError(f"X-Nexus-Memory: {header.strip()!r} is neither on nor off")
    if from_header is not None and body is not None and from_header != body:
        raise ValueError("X-Nexus-Memory and nexus_memory disagree: send one of them")
    return body if body is not None else from_header


def decide(mode: str, shared: bool, wants: bool | None, identified: bool) -> Use:
    """What memory does for this request. Raises Refused when the request asks for memory it may
    not use."""
    if not identified:
        if wants:
            raise Refused(
                "memory needs a Nexus key (it belongs to a user in a team): "
                "send Authorization: Bearer nxk_..."
            )
        return NONE
    if mode == "off":
        if wants:
            raise Refused(
                "memory is off for this key: an admin turns it on with `nexus teams set-memory TEAM on` "
                "(or per-request), or for one key with `nexus keys set-memory KEY_ID on`"
            )
        return NONE
    if wants is False:
        return NONE
    if mode == "on" or wants:
        return Use(recall=True, remember=True, shared=shared)
    return Use(recall=False, remember=True, shared=shared)  # per-request, and this one did not ask
