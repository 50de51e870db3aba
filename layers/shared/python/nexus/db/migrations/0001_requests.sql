-- Recorded requests, content-addressed bodies.

-- Each distinct piece of a request body (a message, the system prompt, the tools list, a header set)
-- stored once, keyed by the SHA-256 of its exact bytes.
CREATE TABLE blobs (
    hash bytea PRIMARY KEY,
    data bytea NOT NULL
);

-- Message lists as a prefix tree: a node is "the list up to here". A request points at its last
-- node; consecutive turns share every node of their common prefix, so storage grows linearly.
CREATE TABLE message_chains (
    id bytea PRIMARY KEY,            -- sha256(parent_id || message_hash)
    parent_id bytea,                 -- NULL for the first message
    message_hash bytea NOT NULL,
    depth integer NOT NULL
);

CREATE TABLE requests (
    id uuid PRIMARY KEY,             -- assigned by the proxy: re-ingesting a record is a no-op
    received_at timestamptz NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    team text,
    user_id text,
    key_id text,
    auth_mode text,
    account text,                    -- fingerprint of the upstream credential
    session_id text,
    agent_id text,
    method text NOT NULL,
    path text NOT NULL,
    query text NOT NULL DEFAULT '',
    model text,
    kind text NOT NULL,
    stream boolean,
    status integer,
    error text,
    stop_reason text,
    input_tokens integer,
    output_tokens integer,
    cache_creation_input_tokens integer,
    cache_creation_5m_tokens integer,
    cache_creation_1h_tokens integer,
    cache_read_input_tokens integer,
    cost_usd numeric(18, 8),
    cost_flag text,                  -- e.g. 'unknown_model': cost left NULL on purpose
    price_version text,
    ttfb_ms real,
    duration_ms real,
    upstream text,
    request_headers bytea REFERENCES blobs (hash),
    response_headers jsonb NOT NULL DEFAULT '[]',
    ratelimit jsonb,                 -- anthropic-ratelimit-* and retry-after, for quick reads
    body_layout jsonb,               -- how to reassemble the exact request body from blobs
    messages_chain bytea,
    message_count integer NOT NULL DEFAULT 0,
    body_size integer NOT NULL DEFAULT 0,
    response jsonb,                  -- the message (rebuilt from SSE for streams) or error JSON
    response_raw bytea               -- exact response bytes as received (TOAST-compressed)
);

CREATE INDEX requests_received_at ON requests (received_at DESC);
CREATE INDEX requests_session ON requests (session_id, received_at);
CREATE INDEX requests_team_user ON requests (team, user_id, received_at);
CREATE INDEX requests_account ON requests (account, received_at) WHERE ratelimit IS NOT NULL;
