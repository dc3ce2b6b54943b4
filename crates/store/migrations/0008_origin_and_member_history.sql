-- The API token that ingested an event; NULL for the platform's own events.
ALTER TABLE audit_events ADD COLUMN ingested_by TEXT;

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
INSERT INTO member_history (scope_kind, scope_id, user_id)
    SELECT scope_kind, scope_id, user_id FROM memberships;
