-- Dashboard sign-in state, in the database because dashboard processes share nothing else (many
-- Lambda instances at once in AWS). See docs/adr/0011-dashboard-sessions-and-throttling.md.

-- One row per browser session. The cookie carries a random token; only its SHA-256 is kept, so this
-- table cannot be replayed as cookies.
CREATE TABLE dashboard_sessions (
    token_hash bytea PRIMARY KEY,
    principal text NOT NULL,              -- who signed in: 'dashboard-key' until per-person logins
    key_fingerprint bytea NOT NULL,       -- the dashboard key that issued it: a rotated key ends it
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL DEFAULT now(),   -- updated at most once a minute
    revoked_at timestamptz,               -- logged out
    client_address text,
    user_agent text
);
CREATE INDEX dashboard_sessions_principal ON dashboard_sessions (principal, created_at DESC);
CREATE INDEX dashboard_sessions_expires ON dashboard_sessions (expires_at);

-- Failed sign-in attempts per client address and per account, for throttling.
CREATE TABLE dashboard_auth_throttle (
    scope text NOT NULL CHECK (scope IN ('address', 'account')),
    subject text NOT NULL,                -- an IPv4 address or IPv6 /64; an account ('dashboard-key')
    failures integer NOT NULL,            -- in the window that began at window_start
    window_start timestamptz NOT NULL,
    last_failure_at timestamptz NOT NULL,
    lockouts integer NOT NULL DEFAULT 0,  -- lockouts in a row: each lasts twice the one before
    locked_until timestamptz,
    PRIMARY KEY (scope, subject)
);
CREATE INDEX dashboard_auth_throttle_last_failure ON dashboard_auth_throttle (last_failure_at);
