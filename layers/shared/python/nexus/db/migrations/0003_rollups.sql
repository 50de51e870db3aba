-- Rollups maintained at ingest, so the dashboard's totals, charts and per-key/per-account stats read
-- a few thousand small rows instead of scanning requests (bench/dashboard.py: 0.4 s of database time
-- per overview at 100k requests before this).

-- Hour-aligned usage per team, user, model, Nexus key and upstream account.
CREATE TABLE usage_hourly (
    hour timestamptz NOT NULL,
    team text,
    user_id text,
    model text,
    key_id text,
    account text,
    requests integer NOT NULL,
    errors integer NOT NULL,           -- status >= 400 or a proxy-side error
    rate_limited integer NOT NULL,     -- status 429
    input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    cache_creation_input_tokens bigint NOT NULL,
    cache_read_input_tokens bigint NOT NULL,
    cost_usd numeric(18, 8) NOT NULL,
    last_at timestamptz NOT NULL,
    CONSTRAINT usage_hourly_key UNIQUE NULLS NOT DISTINCT (hour, team, user_id, model, key_id, account)
);
CREATE INDEX usage_hourly_hour ON usage_hourly (hour);

-- The newest anthropic-ratelimit-* reading per upstream account, and the highest share used per hour.
CREATE TABLE ratelimit_latest (
    account text PRIMARY KEY,
    received_at timestamptz NOT NULL,
    status integer,
    ratelimit jsonb NOT NULL
);
CREATE TABLE ratelimit_hourly (
    account text NOT NULL,
    hour timestamptz NOT NULL,
    u5h real,                          -- unified 5-hour utilisation (subscription accounts)
    u7d real,                          -- unified 7-day utilisation
    tokens real,                       -- 1 - remaining/limit of the per-minute token limit (API keys)
    requests real,                     -- the same for the request limit
    PRIMARY KEY (account, hour)
);

-- A header value as a number, or NULL when it is not one (one odd header must not fail an ingest).
CREATE FUNCTION nexus_num(v text) RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN v ~ '^[0-9]+(\.[0-9]+)?$' THEN v::double precision END $$;

-- Add requests to the rollups: the given ids (ingest, once per newly stored request), or every request
-- (NULL: the backfill below). Rows are upserted in key order so concurrent batches cannot deadlock.
CREATE FUNCTION nexus_roll_up(ids uuid[]) RETURNS void LANGUAGE sql AS $$
    INSERT INTO usage_hourly AS u (hour, team, user_id, model, key_id, account, requests, errors,
        rate_limited, input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens,
        cost_usd, last_at)
    SELECT date_trunc('hour', received_at), team, user_id, model, key_id, account, count(*),
        count(*) FILTER (WHERE status >= 400 OR error IS NOT NULL), count(*) FILTER (WHERE status = 429),
        coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),
        coalesce(sum(cache_creation_input_tokens), 0), coalesce(sum(cache_read_input_tokens), 0),
        coalesce(sum(cost_usd), 0), max(received_at)
    FROM requests WHERE ids IS NULL OR id = ANY(ids)
    GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT ON CONSTRAINT usage_hourly_key DO UPDATE SET
        requests = u.requests + EXCLUDED.requests,
        errors = u.errors + EXCLUDED.errors,
        rate_limited = u.rate_limited + EXCLUDED.rate_limited,
        input_tokens = u.input_tokens + EXCLUDED.input_tokens,
        output_tokens = u.output_tokens + EXCLUDED.output_tokens,
        cache_creation_input_tokens = u.cache_creation_input_tokens + EXCLUDED.cache_creation_input_tokens,
        cache_read_input_tokens = u.cache_read_input_tokens + EXCLUDED.cache_read_input_tokens,
        cost_usd = u.cost_usd + EXCLUDED.cost_usd,
        last_at = greatest(u.last_at, EXCLUDED.last_at);

    INSERT INTO ratelimit_hourly AS h (account, hour, u5h, u7d, tokens, requests)
    SELECT account, date_trunc('hour', received_at),
        max(nexus_num(ratelimit->>'anthropic-ratelimit-unified-5h-utilization')),
        max(nexus_num(ratelimit->>'anthropic-ratelimit-unified-7d-utilization')),
        max(1 - nexus_num(ratelimit->>'anthropic-ratelimit-tokens-remaining')
            / nullif(nexus_num(ratelimit->>'anthropic-ratelimit-tokens-limit'), 0)),
        max(1 - nexus_num(ratelimit->>'anthropic-ratelimit-requests-remaining')
            / nullif(nexus_num(ratelimit->>'anthropic-ratelimit-requests-limit'), 0))
    FROM requests WHERE (ids IS NULL OR id = ANY(ids)) AND ratelimit IS NOT NULL AND account IS NOT NULL
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (account, hour) DO UPDATE SET
        u5h = greatest(h.u5h, EXCLUDED.u5h), u7d = greatest(h.u7d, EXCLUDED.u7d),
        tokens = greatest(h.tokens, EXCLUDED.tokens), requests = greatest(h.requests, EXCLUDED.requests);

    INSERT INTO ratelimit_latest AS l (account, received_at, status, ratelimit)
    SELECT DISTINCT ON (account) account, received_at, status, ratelimit
    FROM requests WHERE (ids IS NULL OR id = ANY(ids)) AND ratelimit IS NOT NULL AND account IS NOT NULL
    ORDER BY account, received_at DESC
    ON CONFLICT (account) DO UPDATE SET
        received_at = EXCLUDED.received_at, status = EXCLUDED.status, ratelimit = EXCLUDED.ratelimit
        WHERE EXCLUDED.received_at > l.received_at;
$$;

SELECT nexus_roll_up(NULL);
