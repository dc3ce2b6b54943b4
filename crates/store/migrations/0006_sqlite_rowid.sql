-- SQLite only (PostgreSQL runs 0006_noop.sql). `seq BIGINT PRIMARY KEY`
-- is not an alias of SQLite's rowid (only the exact type INTEGER is), so
-- every event went into the table's rowid B-tree and into a separate
-- index on seq as well. As `seq INTEGER PRIMARY KEY` the log order is the
-- rowid itself: one B-tree less to update on every append, and reads by
-- seq go straight to the rows. The table is rebuilt once, in the
-- migration's transaction.
CREATE TABLE audit_events_v6 (
    seq         INTEGER PRIMARY KEY,
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
    chain_hash  TEXT
);
INSERT INTO audit_events_v6
    (seq, id, created_us, event, org_id, group_id, user_id, project_id, content,
     source_ip, user_agent, chain_hash)
SELECT seq, id, created_us, event, org_id, group_id, user_id, project_id, content,
       source_ip, user_agent, chain_hash
FROM audit_events ORDER BY seq;
DROP TABLE audit_events;
ALTER TABLE audit_events_v6 RENAME TO audit_events;
CREATE INDEX audit_events_org ON audit_events (org_id, created_us, seq);
CREATE INDEX audit_events_group ON audit_events (group_id, created_us, seq);
CREATE INDEX audit_events_org_seq ON audit_events (org_id, seq);
CREATE INDEX audit_events_group_seq ON audit_events (group_id, seq);
