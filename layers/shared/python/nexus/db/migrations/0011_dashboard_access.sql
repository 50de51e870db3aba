-- Access for people (ADR 0025): dashboard users with roles, service tokens, sessions that carry the
-- principal's role and teams, and the audit log of admin actions.

-- Local accounts (`nexus users add`). OIDC users have no row: their role comes from the ID token.
CREATE TABLE dashboard_users (
    name text PRIMARY KEY,
    password_hash text NOT NULL,          -- argon2id, PHC string
    role text NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
    teams text[] NOT NULL DEFAULT '{}',   -- member: their teams; viewer: the teams they may read
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A session is issued to a principal with a role and teams, fixed for its life: changing a user's
-- role or removing them revokes their sessions. Sessions from before this migration were issued to
-- the dashboard key, an admin.
ALTER TABLE dashboard_sessions
    ADD COLUMN role text NOT NULL DEFAULT 'admin' CHECK (role IN ('admin', 'member', 'viewer')),
    ADD COLUMN teams text[];              -- NULL: every team (admins)

-- API credentials for automation: `nxt_<id>_<secret>` as Bearer, with their own role and expiry.
CREATE TABLE dashboard_tokens (
    id text PRIMARY KEY,
    secret_hash bytea NOT NULL,           -- SHA-256 of the whole token
    name text NOT NULL,
    role text NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
    teams text[],                         -- NULL: every team (admins)
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);

-- Who did what: every admin action, written in the transaction that does it where it is a database
-- change, and also emitted as a JSON log line.
CREATE TABLE dashboard_audit (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,                  -- a principal: user:ann, oidc:..., token:..., dashboard-key, cli:...
    action text NOT NULL,                 -- key.create, key.revoke, budget.set, user.add, ...
    target text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}',
    client_address text
);
CREATE INDEX dashboard_audit_at ON dashboard_audit (at DESC, id DESC);
