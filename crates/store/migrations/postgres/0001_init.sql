-- PostgreSQL's schema (SQLite's is ../sqlite/0001_init.sql; they differ only
-- in the type of audit_events.seq). Tenants, memberships, tokens, sessions,
-- the audit log with its hash chains, and the cloud-event integrations.
CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    created_us      BIGINT NOT NULL,
    -- argon2id hash in PHC form, or NULL for token-only users.
    password_hash   TEXT,
    -- When the password was last set: sessions opened with an earlier one
    -- are dead.
    password_set_us BIGINT
);

CREATE TABLE groups_ (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_us  BIGINT NOT NULL
);

CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    slug        TEXT NOT NULL UNIQUE,
    group_id    TEXT REFERENCES groups_(id),
    settings    TEXT NOT NULL DEFAULT '{}',
    created_us  BIGINT NOT NULL
);
CREATE INDEX orgs_group ON orgs (group_id, id);

CREATE TABLE memberships (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    scope_kind  TEXT NOT NULL CHECK (scope_kind IN ('group', 'org')),
    scope_id    TEXT NOT NULL,
    role        TEXT NOT NULL,
    created_us  BIGINT NOT NULL,
    UNIQUE (scope_kind, scope_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

-- Who is or was a member of each tenant. Only those users are named by
-- email in the tenant's pages, and only they may be the user of an event
-- ingested into it.
CREATE TABLE member_history (
    scope_kind  TEXT NOT NULL CHECK (scope_kind IN ('group', 'org')),
    scope_id    TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users(id),
    PRIMARY KEY (scope_kind, scope_id, user_id)
);
CREATE INDEX member_history_user ON member_history (user_id);

-- API tokens: only the SHA-256 of the secret is stored.
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    name        TEXT NOT NULL,
    prefix      TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,
    created_us  BIGINT NOT NULL,
    expires_us  BIGINT,
    revoked_us  BIGINT
);
CREATE INDEX tokens_user ON tokens (user_id, id);

-- Dashboard sign-in sessions. The cookie holds a random secret; only its
-- SHA-256 is stored, like API tokens. A session dies with what opened it:
-- the API token it signed in with (once revoked or expired), or, for a
-- password sign-in (token_id NULL), the password (once another is set).
CREATE TABLE sessions (
    hash        TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    csrf        TEXT NOT NULL,
    created_us  BIGINT NOT NULL,
    expires_us  BIGINT NOT NULL,
    token_id    TEXT REFERENCES tokens(id)
);
CREATE INDEX sessions_user ON sessions (user_id);

-- The audit log. seq is assigned by the single writer as max+1, so it is
-- gapless and follows commit order (see writer.rs). chain_hash is the
-- event's link in its tenant's hash chain (auditlake_core::chain), as 64
-- hex digits.
CREATE TABLE audit_events (
    seq         BIGINT PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    created_us  BIGINT NOT NULL,
    event       TEXT NOT NULL,
    org_id      TEXT,
    group_id    TEXT,
    user_id     TEXT,
    project_id  TEXT,
    content     TEXT NOT NULL,
    source_ip   TEXT,
    user_agent  TEXT,
    chain_hash  TEXT,
    -- The API token that ingested the event; NULL for the platform's own.
    ingested_by TEXT
);
CREATE INDEX audit_events_org ON audit_events (org_id, created_us, seq);
CREATE INDEX audit_events_group ON audit_events (group_id, created_us, seq);
-- The forwarder reads a tenant's events in log order after its cursor.
CREATE INDEX audit_events_org_seq ON audit_events (org_id, seq);
CREATE INDEX audit_events_group_seq ON audit_events (group_id, seq);

-- The head of every hash chain, so that removing a chain's last events is
-- evident too.
CREATE TABLE chain_heads (
    chain_id TEXT PRIMARY KEY,
    seq      BIGINT NOT NULL,
    hash     TEXT NOT NULL
);

-- Client idempotency IDs of ingested events, per target tenant.
CREATE TABLE ingest_ids (
    scope_id       TEXT NOT NULL,
    idempotency_id TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    request_hash   TEXT NOT NULL,
    PRIMARY KEY (scope_id, idempotency_id)
);

-- Cloud event integrations and their delivery state. One row per
-- integration: the durable cursor, the counters and the lease live beside
-- the settings so that an acknowledgement is one conditional UPDATE.
CREATE TABLE integrations (
    id              TEXT PRIMARY KEY,
    scope_kind      TEXT NOT NULL CHECK (scope_kind IN ('group', 'org')),
    scope_id        TEXT NOT NULL,
    kind            TEXT NOT NULL,
    name            TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    channel_arn     TEXT NOT NULL,
    created_us      BIGINT NOT NULL,
    updated_us      BIGINT NOT NULL,
    -- Bumped by every change a user makes (settings, replay); a worker's
    -- acknowledgement only lands while the revision it read still holds.
    revision        BIGINT NOT NULL DEFAULT 0,
    -- seq of the last event the destination acknowledged.
    cursor_seq      BIGINT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    last_error      TEXT,
    last_error_us   BIGINT,
    last_success_us BIGINT,
    delivered       BIGINT NOT NULL DEFAULT 0,
    failed          BIGINT NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_until_us  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX integrations_scope ON integrations (scope_kind, scope_id, id);
