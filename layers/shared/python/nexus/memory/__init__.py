"""Memory for the gateway (ADR 0024): earlier turns of a user (or of their team, when it shares),
indexed when they complete and recalled into a later turn when they are relevant to it.

- ``scoring``: how relevant an earlier turn is (pure);
- ``policy``: whether a request uses memory (team, key, request; pure);
- ``touched``: which files a turn's tool calls named (pure);
- ``context``: the marked block injected into the prompt (pure);
- ``store``: the index in PostgreSQL (migration 0010), recall and search.
"""
