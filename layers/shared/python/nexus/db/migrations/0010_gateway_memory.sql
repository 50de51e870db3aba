-- Memory for the gateway (docs/adr/0024-gateway-memory.md): every completed turn of a caller whose
-- memory is on, indexed for full-text search with where and when it happened, so relevant earlier
-- context can be recalled into a later turn of the same user (or of the team, when it shares).

CREATE TABLE gateway_memory (
    id text PRIMARY KEY,                   -- mem_...
    team text NOT NULL,
    user_id text NOT NULL,                 -- the key's user: memory belongs to a user in a team
    key_id text NOT NULL,                  -- the key that made it
    conversation_id text NOT NULL,         -- gateway_conversations.id
    state_key bytea NOT NULL,              -- the history the turn left (continuity chain key)
    cwd text,                              -- the client's working directory, when it said
    files text[] NOT NULL DEFAULT '{}',    -- files the turn's tool calls named
    prompt text NOT NULL,                  -- the user's text (capped at index time)
    answer text NOT NULL,                  -- the final answer's text (capped at index time)
    created_at timestamptz NOT NULL DEFAULT now(),
    -- What full-text search reads: the question weighs more than the answer (A over B).
    document tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', prompt), 'A') || setweight(to_tsvector('english', answer), 'B')
    ) STORED
);
CREATE INDEX gateway_memory_document ON gateway_memory USING gin (document);
CREATE INDEX gateway_memory_files ON gateway_memory USING gin (files);
CREATE INDEX gateway_memory_owner ON gateway_memory (team, user_id, created_at DESC);
CREATE INDEX gateway_memory_state ON gateway_memory (state_key);
CREATE INDEX gateway_memory_conversation ON gateway_memory (conversation_id);
