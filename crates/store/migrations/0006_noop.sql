-- PostgreSQL's side of 0006_sqlite_rowid.sql: nothing to do (its BIGINT
-- primary key is an ordinary index either way).
SELECT 1;
