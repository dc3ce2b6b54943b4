//! SQL text shared by the statements that write the log: placeholder
//! lists and the chunk sizes that keep a statement under both backends'
//! parameter limits.

use crate::Backend;

/// Rows per multi-row INSERT: 11 parameters each stays far below both
/// backends' parameter limits.
pub(crate) const INSERT_CHUNK: usize = 500;

/// Rows per JSON parameter of a PostgreSQL bulk statement.
pub(crate) const PG_JSON_CHUNK: usize = 5_000;

/// `rows` groups of `cols` placeholders, `(..),(..)`, numbered from
/// `first`. SQLite gets anonymous `?`: binding numbered parameters costs it
/// a linear name lookup per parameter, quadratic over a 5,500-parameter
/// insert, enough to dominate ingest. PostgreSQL needs `$n`.
pub(crate) fn placeholders(backend: Backend, rows: usize, cols: usize, first: usize) -> String {
    let mut sql = String::with_capacity(rows * cols * 6);
    let mut n = first;
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push(',');
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&n.to_string());
                }
            }
            n += 1;
        }
        sql.push(')');
    }
    sql
}
