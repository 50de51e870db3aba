-- The OpenAI-compatible gateway: Claude Code session transcripts (the SDK's SessionStore), the
-- histories they hold (so a stateless client that resends its conversation resumes it), and the
-- conversations clients can list. See docs/adr/0013-gateway-engine.md.

-- One row per transcript line the CLI wrote, in append order. Entries are opaque to us.
CREATE TABLE gateway_transcript_entries (
    seq bigserial PRIMARY KEY,
    project_key text NOT NULL,
    session_id text NOT NULL,
    subpath text NOT NULL DEFAULT '',      -- '' = the main transcript; else e.g. subagents/agent-x
    uuid text,                             -- idempotency key when the entry has one
    entry jsonb NOT NULL
);
CREATE INDEX gateway_transcript_entries_key ON gateway_transcript_entries (project_key, session_id, subpath, seq);
CREATE UNIQUE INDEX gateway_transcript_entries_uuid
    ON gateway_transcript_entries (project_key, session_id, subpath, uuid) WHERE uuid IS NOT NULL;

-- Per transcript: its storage write time (the SDK's mtime).
CREATE TABLE gateway_transcripts (
    project_key text NOT NULL,
    session_id text NOT NULL,
    subpath text NOT NULL DEFAULT '',
    mtime bigint NOT NULL,                 -- epoch milliseconds, strictly increasing per write
    PRIMARY KEY (project_key, session_id, subpath)
);

-- What a session holds: the hash of a client-visible history (caller and configuration in the
-- seed) -> the session that continues it, and where in its transcript.
CREATE TABLE gateway_states (
    key bytea PRIMARY KEY,
    session_id text NOT NULL,
    conversation_id text NOT NULL,
    config_key text NOT NULL,
    project text NOT NULL,                 -- the sessions' working directory (the transcript key)
    entry_uuid text,                       -- the session's newest transcript entry at this state
    latest boolean NOT NULL DEFAULT true,  -- false once the session moved on (resuming it then forks)
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX gateway_states_session ON gateway_states (session_id);

-- Conversations as /v1/conversations lists them.
CREATE TABLE gateway_conversations (
    id text PRIMARY KEY,                   -- conv_...
    session_id text NOT NULL,              -- the session holding its latest turn
    scope text NOT NULL,                   -- the caller: a Nexus key id, or 'open'
    team text,
    user_id text,
    model text NOT NULL,
    system text,
    config_key text NOT NULL,
    state_key bytea,                       -- the history its latest turn left
    turns integer NOT NULL DEFAULT 0,
    prompt_tokens bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    cached_tokens bigint NOT NULL DEFAULT 0,
    cost_usd numeric(14, 8) NOT NULL DEFAULT 0,
    metadata jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX gateway_conversations_scope ON gateway_conversations (scope, last_used_at DESC);

-- Responses API objects, for previous_response_id and GET /v1/responses/{id}.
CREATE TABLE gateway_responses (
    id text PRIMARY KEY,                   -- resp_...
    scope text NOT NULL,
    conversation_id text NOT NULL,
    state_key bytea,                       -- the history this response left
    body jsonb NOT NULL,                   -- the response object as returned
    created_at timestamptz NOT NULL DEFAULT now()
);
