-- A dashboard session dies with what opened it: the API token it signed in
-- with (once revoked or expired), or, for a password sign-in (token_id
-- NULL), the password (once another is set).
ALTER TABLE sessions ADD COLUMN token_id TEXT REFERENCES tokens(id);
ALTER TABLE users ADD COLUMN password_set_us BIGINT;
