//! The store's error type. The API maps it to HTTP in one place.

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named thing does not exist (or the caller may not know it does).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The change clashes with existing state.
    #[error("{0}")]
    Conflict(String),
    /// The input breaks a rule the store enforces.
    #[error("{0}")]
    Invalid(String),
    /// Bad configuration, such as an unsupported database URL.
    #[error("{0}")]
    Config(String),
    /// Stored data that cannot be read back (a bug or a tampered row).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The store cannot take writes now (shutting down, or a failed group
    /// commit); nothing was stored, the caller may retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The database failed. Failures to reach it at all are
    /// [`StoreError::Unavailable`].
    #[error("database error: {0}")]
    Database(String),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(String),
    /// The database records a migration this build does not have: it was
    /// made by a pre-release build (whose migrations were folded into the
    /// initial schema) or by a newer one.
    #[error(
        "the database records migration {0}, which this build does not know: it was made by \
         a pre-release or a newer build of auditlake; start from a new database"
    )]
    UnknownMigration(i64),
}

/// The driver's errors stay inside the store: each is classified here, so
/// that callers match on what happened, not on the driver.
impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(err.to_string())
            }
            other => StoreError::Database(other.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(err.to_string())
    }
}

impl StoreError {
    /// Whether a unique constraint refused the write.
    pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
        match err {
            sqlx::Error::Database(db) => {
                db.is_unique_violation()
                    || db.message().contains("UNIQUE constraint failed")
                    || db.code().as_deref() == Some("23505")
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_database_is_unavailable_and_other_failures_are_database_errors() {
        for err in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        ] {
            let e = StoreError::from(err);
            assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
        }
        let e = StoreError::from(sqlx::Error::RowNotFound);
        assert!(matches!(e, StoreError::Database(_)), "{e:?}");
    }
}
