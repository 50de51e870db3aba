"""The models the gateway offers: ids, aliases, and the 404 for anything else.

The list is the price table's current models (a model Nexus cannot cost is not offered). Aliases
follow Claude Code's own (``opus``, ``sonnet``, ``haiku``) and name the newest of each family.
"""

from __future__ import annotations

from dataclasses import dataclass

from nexus.pricing import context_window, normalise

from nexus_gateway.errors import GatewayError

# Newest first within a family: the first is what the alias means.
MODELS: tuple[str, ...] = (
    "claude-opus-5-5",
    "claude-opus-4-8",
    "claude-opus-4-5",
    "claude-sonnet-5-5",
    "claude-sonnet-4-6",
    "claude-sonnet-4-5",
    "claude-haiku-5-5",
    "claude-haiku-4-5",
)
ALIASES: dict[str, str] = {
    "opus": "claude-opus-5-5",
    "sonnet": "claude-sonnet-5-5",
    "haiku": "claude-haiku-5-5",
}
CREATED = 1_764_547_200  # a fixed date: clients cache the list; it must not change per call
OWNER = "anthropic"


@dataclass(frozen=True, slots=True)
class Model:
    id: str  # as the client named it (alias or id)
    upstream: str  # what Claude Code is asked to use

    @property
    def context_window(self) -> int | None:
        return context_window(self.upstream)


def resolve(name: str) -> Model:
    """The model a request names, or 404 ``model_not_found`` as OpenAI answers it."""
    key = name.strip()
    if key.lower() in ALIASES:
        return Model(key, ALIASES[key.lower()])
    if normalise(key) in MODELS:
        return Model(key, key)  # dated ids pass as given: Claude Code sends them on unchanged
    raise GatewayError(
        404,
        f"The model `{name}` does not exist or you do not have access to it. "
        f"Models: {', '.join([*ALIASES, *MODELS])}.",
        param="model",
        code="model_not_found",
    )


def listing() -> list[dict[str, object]]:
    return [entry(m) for m in (*MODELS, *ALIASES)]


def entry(model_id: str) -> dict[str, object]:
    return {"id": model_id, "object": "model", "created": CREATED, "owned_by": OWNER}
