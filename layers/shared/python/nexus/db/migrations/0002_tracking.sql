-- Conversation tracking: links between requests, conversations and branches kept at ingest.

ALTER TABLE requests
    ADD COLUMN scope_key bytea,
    ADD COLUMN prefix_key bytea,           -- = the parent's tail_key
    ADD COLUMN tail_key bytea,             -- history + response: the next turn's prefix_key
    ADD COLUMN messages_key bytea,         -- whole history: identical retries share it
    ADD COLUMN start_key bytea,            -- first-turn requests: opening prompt (sub-agent lookup)
    ADD COLUMN continuation_key bytea,     -- post-compaction requests: summary head
    ADD COLUMN summary_key bytea,          -- compaction requests: summary head of the answer
    ADD COLUMN conversation_id uuid,
    ADD COLUMN parent_request_id uuid,
    ADD COLUMN link text,                  -- root | continue | retry | subtask | compact
    ADD COLUMN branch text,
    ADD COLUMN is_subtask boolean NOT NULL DEFAULT false,
    ADD COLUMN parent_task_request_id uuid,
    ADD COLUMN task_tool_use_id text,
    ADD COLUMN context_tokens integer;

CREATE INDEX requests_tail_key ON requests (tail_key) WHERE tail_key IS NOT NULL;
CREATE INDEX requests_orphan_prefix ON requests (prefix_key) WHERE parent_request_id IS NULL AND prefix_key IS NOT NULL;
CREATE INDEX requests_orphan_start ON requests (start_key) WHERE parent_request_id IS NULL AND start_key IS NOT NULL;
CREATE INDEX requests_orphan_continuation ON requests (continuation_key)
    WHERE parent_request_id IS NULL AND continuation_key IS NOT NULL;
CREATE INDEX requests_summary_key ON requests (summary_key) WHERE summary_key IS NOT NULL;
CREATE INDEX requests_parent ON requests (parent_request_id) WHERE parent_request_id IS NOT NULL;
CREATE INDEX requests_task ON requests (parent_task_request_id, task_tool_use_id) WHERE link = 'subtask';
CREATE INDEX requests_conversation ON requests (conversation_id, received_at);

-- Agent/Task tool calls seen in responses, numbered per conversation in invocation order.
CREATE TABLE subtask_invocations (
    request_id uuid NOT NULL,
    conversation_id uuid NOT NULL,         -- the invoking request's (kept on merges)
    tool_use_id text NOT NULL,
    position integer NOT NULL,             -- index of the tool_use block in the response
    start_key bytea NOT NULL,              -- matches the sub-agent's first request start_key
    received_at timestamptz NOT NULL,
    PRIMARY KEY (request_id, tool_use_id)
);
CREATE INDEX subtask_invocations_start ON subtask_invocations (start_key);
CREATE INDEX subtask_invocations_conversation ON subtask_invocations (conversation_id, received_at, position);

CREATE TABLE conversations (
    id uuid PRIMARY KEY,                   -- the id of its root request
    scope_key bytea NOT NULL,
    team text,
    user_id text,
    title text NOT NULL DEFAULT '',
    models text[] NOT NULL DEFAULT '{}',
    session_ids text[] NOT NULL DEFAULT '{}',
    request_count integer NOT NULL DEFAULT 0,
    input_tokens bigint NOT NULL DEFAULT 0,
    output_tokens bigint NOT NULL DEFAULT 0,
    cache_creation_input_tokens bigint NOT NULL DEFAULT 0,
    cache_read_input_tokens bigint NOT NULL DEFAULT 0,
    cost_usd numeric(18, 8) NOT NULL DEFAULT 0,
    first_at timestamptz NOT NULL,
    last_at timestamptz NOT NULL,
    branch_count integer NOT NULL DEFAULT 0,     -- forks and edits (besides main)
    subagent_count integer NOT NULL DEFAULT 0,
    compaction_count integer NOT NULL DEFAULT 0,
    latest_context_tokens integer,
    latest_model text
);
CREATE INDEX conversations_last_at ON conversations (last_at DESC);
CREATE INDEX conversations_team_user ON conversations (team, user_id, last_at DESC);
CREATE INDEX conversations_models ON conversations USING gin (models);

-- Full-text search over prompts and answers: one row per request (written once, never rewritten,
-- so a long conversation costs no more per turn than a short one).
CREATE TABLE conversation_text (
    request_id uuid PRIMARY KEY,
    conversation_id uuid NOT NULL,
    tsv tsvector NOT NULL
);
-- A small pending list: the GIN fast-update list is merged by whichever insert fills it; at the 4 MB
-- default that insert stalled ~40 ms once every ~1,300 requests (bench/tracking.py).
CREATE INDEX conversation_text_tsv ON conversation_text USING gin (tsv) WITH (gin_pending_list_limit = 256);
CREATE INDEX conversation_text_conversation ON conversation_text (conversation_id);

CREATE TABLE branches (
    conversation_id uuid NOT NULL,
    name text NOT NULL,                    -- main | branch_N | subtask_N | compact_N
    kind text NOT NULL,                    -- main | branch | subtask | compact
    fork_request_id uuid,                  -- the request it continues from (NULL for main)
    request_count integer NOT NULL DEFAULT 0,
    input_tokens bigint NOT NULL DEFAULT 0,
    output_tokens bigint NOT NULL DEFAULT 0,
    cost_usd numeric(18, 8) NOT NULL DEFAULT 0,
    first_at timestamptz NOT NULL,
    last_at timestamptz NOT NULL,
    PRIMARY KEY (conversation_id, name)
);
