-- The per-tenant hash chain (auditlake_core::chain): each event's link, as
-- 64 hex digits, and the head of every chain, so that removing a chain's
-- last events is evident too.
ALTER TABLE audit_events ADD COLUMN chain_hash TEXT;

CREATE TABLE chain_heads (
    chain_id TEXT PRIMARY KEY,
    seq      BIGINT NOT NULL,
    hash     TEXT NOT NULL
);

-- Events stored before this migration are linked once, by the first process
-- that connects (`chain::backfill`); this row says that is still to do.
INSERT INTO chain_heads (chain_id, seq, hash)
SELECT 'backfill', 0, '' WHERE EXISTS (SELECT 1 FROM audit_events);
