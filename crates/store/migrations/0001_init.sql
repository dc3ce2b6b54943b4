-- Tenants, memberships, tokens and the audit log. The same SQL runs on
-- SQLite and PostgreSQL; a later migration that must differ gets one file
-- per backend (see MIGRATIONS in lib.rs).
CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    email       TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_us  BIGINT NOT NULL
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

-- seq is assigned by the single writer as max+1, so it is gapless and
-- follows commit order (see append.rs).
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
    user_agent  TEXT
);
CREATE INDEX audit_events_org ON audit_events (org_id, created_us, seq);
CREATE INDEX audit_events_group ON audit_events (group_id, created_us, seq);

-- Client idempotency IDs of ingested events, per target tenant.
CREATE TABLE ingest_ids (
    scope_id       TEXT NOT NULL,
    idempotency_id TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    request_hash   TEXT NOT NULL,
    PRIMARY KEY (scope_id, idempotency_id)
);
