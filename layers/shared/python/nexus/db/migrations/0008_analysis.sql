-- AI analyses of conversations: one row per run (queued by the dashboard, the CLI or the idle
-- schedule; run by the Step Functions pipeline or nexus dev's runner), the analysis when done.

CREATE TABLE analyses (
    id uuid PRIMARY KEY,
    conversation_id uuid NOT NULL,
    team text,                             -- the conversation's (daily caps count per team)
    trigger text NOT NULL,                 -- manual | cli | auto
    status text NOT NULL,                  -- queued | running | done | failed
    prompt_version text,
    input_hash text,                       -- prompt version + model + condensed transcript
    reason text,                           -- why it failed
    analysis jsonb,                        -- schema.StoredAnalysis when done
    outcome text,                          -- copied out of the analysis for list filters
    task_success smallint,
    prompt_clarity smallint,
    efficiency smallint,
    model text,
    input_tokens integer NOT NULL DEFAULT 0,
    output_tokens integer NOT NULL DEFAULT 0,
    cost_usd numeric(18, 8),
    calls integer NOT NULL DEFAULT 0,
    chunk_count integer,
    source_tokens integer,
    condensed_tokens integer,
    request_count integer,                 -- the conversation's requests when loaded
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    CHECK (status IN ('queued', 'running', 'done', 'failed'))
);
CREATE INDEX analyses_conversation ON analyses (conversation_id, created_at DESC);
-- At most one run in flight per conversation: a second request joins it.
CREATE UNIQUE INDEX analyses_in_flight ON analyses (conversation_id) WHERE status IN ('queued', 'running');
CREATE INDEX analyses_queued ON analyses (created_at) WHERE status = 'queued';
-- Idempotency: the newest done analysis of a conversation for a given input.
CREATE INDEX analyses_input ON analyses (conversation_id, prompt_version, input_hash) WHERE status = 'done';
CREATE INDEX analyses_team_day ON analyses (team, created_at) WHERE trigger = 'auto';

-- The condensed transcript of a run, one row per chunk: steps pass chunk numbers, not text (state
-- machine payloads stay small).
CREATE TABLE analysis_chunks (
    analysis_id uuid NOT NULL REFERENCES analyses (id) ON DELETE CASCADE,
    index integer NOT NULL,
    text text NOT NULL,
    PRIMARY KEY (analysis_id, index)
);

-- Each conversation's newest finished analysis, for list filters (outcome, lowest score).
CREATE VIEW conversation_analysis AS
    SELECT DISTINCT ON (conversation_id) conversation_id, outcome,
        least(task_success, prompt_clarity, efficiency) AS lowest_score, finished_at
    FROM analyses WHERE status = 'done' ORDER BY conversation_id, finished_at DESC;
