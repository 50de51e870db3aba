-- The alerts log: one row per alert raised (budgets, rate limits, credential failures, error rates),
-- with what it said and where it went. See docs/adr/0018-alerts.md.
--
-- De-duplication: an event whose dedup_key has a row younger than its window is not raised again;
-- the row counts it in `repeats` instead. nexus.db.alerts.claim decides under a transaction-scoped
-- advisory lock on the key, so concurrent ingest invocations raise one alert, not two.
CREATE TABLE alerts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    kind text NOT NULL,                   -- nexus.alert_events kinds: rate_limit, error_rate, ...
    level text NOT NULL CHECK (level IN ('info', 'warning', 'critical')),
    team text,                            -- NULL: the stage's operators
    subject text NOT NULL,                -- what it is about: 'team:web', 'key:ab12cd34ef', ...
    message text NOT NULL,
    facts jsonb NOT NULL DEFAULT '{}',    -- the numbers behind the message
    dedup_key text NOT NULL,
    window_s integer NOT NULL CHECK (window_s > 0),
    repeats integer NOT NULL DEFAULT 0,   -- the same event again inside the window, not re-sent
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    delivered text[] NOT NULL DEFAULT '{}',  -- channels that took it: 'slack', 'sns'
    errors jsonb NOT NULL DEFAULT '{}',   -- channel -> why it failed (never a secret)
    delivered_at timestamptz              -- when delivery was attempted (NULL: not yet, or nowhere to)
);
CREATE INDEX alerts_dedup ON alerts (dedup_key, created_at DESC);
CREATE INDEX alerts_created ON alerts (created_at DESC);
CREATE INDEX alerts_team ON alerts (team, created_at DESC);
