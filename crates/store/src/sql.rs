//! SQL text shared by SQLite's statements that write the log: placeholder
//! lists and the chunk size that keeps a statement under SQLite's parameter
//! limit. (PostgreSQL's writes send arrays and `COPY` rows instead.)

/// Rows per multi-row INSERT: 13 parameters each stays far below SQLite's
/// parameter limit.
pub(crate) const INSERT_CHUNK: usize = 500;

/// `rows` groups of `cols` anonymous placeholders, `(?,?),(?,?)`. Not
/// numbered: binding numbered parameters costs SQLite a linear name lookup
/// per parameter, quadratic over a 6,500-parameter insert, enough to
/// dominate ingest.
pub(crate) fn placeholders(rows: usize, cols: usize) -> String {
    let row = format!("({})", vec!["?"; cols].join(","));
    vec![row; rows].join(",")
}
