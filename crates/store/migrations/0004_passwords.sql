-- Local users may sign in to the dashboard with a password: its argon2id
-- hash in PHC form, or NULL for token-only users.
ALTER TABLE users ADD COLUMN password_hash TEXT;
