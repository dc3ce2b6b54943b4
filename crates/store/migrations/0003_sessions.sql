-- Dashboard sign-in sessions. The cookie holds a random secret; only its
-- SHA-256 is stored, like API tokens.
CREATE TABLE sessions (
    hash        TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    csrf        TEXT NOT NULL,
    created_us  BIGINT NOT NULL,
    expires_us  BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
