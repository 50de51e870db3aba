-- The prompt library (docs/adr/0023-prompt-library.md): templates synced from a Git repository,
-- every change kept as a version, each sync recorded, and each use through MCP logged.
CREATE TABLE prompt_syncs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    synced_at timestamptz NOT NULL DEFAULT now(),
    repo text NOT NULL,                   -- without credentials
    ref text,                             -- as asked for (NULL: the repository's HEAD)
    path text NOT NULL DEFAULT '',
    commit text NOT NULL,
    added integer NOT NULL DEFAULT 0,
    changed integer NOT NULL DEFAULT 0,
    removed integer NOT NULL DEFAULT 0,
    unchanged integer NOT NULL DEFAULT 0,
    errors jsonb NOT NULL DEFAULT '{}'    -- file path -> why it was skipped
);
CREATE INDEX prompt_syncs_at ON prompt_syncs (synced_at DESC);

-- One row per prompt name: where its current version is, and whether it is still in the library.
CREATE TABLE prompts (
    name text PRIMARY KEY,
    version integer NOT NULL,             -- the current (latest) version
    removed_at timestamptz,               -- gone from the repository (kept, with its history)
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every version of every prompt; a sync adds one only when the template's content changed.
CREATE TABLE prompt_versions (
    name text NOT NULL REFERENCES prompts (name),
    version integer NOT NULL,
    commit text NOT NULL,
    path text NOT NULL,
    description text,
    arguments jsonb NOT NULL DEFAULT '[]',  -- [{name, description, required}]
    body text NOT NULL,
    content_hash text NOT NULL,
    sync_id bigint REFERENCES prompt_syncs (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);

-- prompts/get through MCP: which version, by which key.
CREATE TABLE prompt_usage (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    used_at timestamptz NOT NULL DEFAULT now(),
    name text NOT NULL,
    version integer NOT NULL,
    key_id text,                          -- NULL: no key (keys optional on localhost)
    team text,
    "user" text,
    source text NOT NULL DEFAULT 'mcp'
);
CREATE INDEX prompt_usage_name ON prompt_usage (name, used_at DESC);
