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

-- The forwarder reads a tenant's events in log order after its cursor.
CREATE INDEX audit_events_org_seq ON audit_events (org_id, seq);
CREATE INDEX audit_events_group_seq ON audit_events (group_id, seq);
