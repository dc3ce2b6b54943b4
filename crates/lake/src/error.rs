//! The lake's one error type. Every failure a client can see carries the
//! AWS error code its SDK turns into a typed error; rendering it as the
//! control plane's JSON 1.1 shape or the data plane's REST-JSON shape
//! happens in `server`, in one place.

use std::fmt;

/// A failure of a lake operation.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// A client error with its AWS error code, e.g. `ChannelNotFound`.
    #[error("{code}: {message}")]
    Aws {
        /// The AWS error code (`__type` / `x-amzn-ErrorType`).
        code: &'static str,
        /// HTTP status to answer with.
        status: u16,
        /// Human-readable explanation.
        message: String,
    },
    /// The catalog database failed.
    #[error("catalog database: {0}")]
    Db(#[from] sqlx::Error),
    /// The object store holding Parquet files failed.
    #[error("object store: {0}")]
    Storage(#[from] object_store::Error),
    /// Writing or reading Parquet failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Building Arrow data failed.
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// The query engine failed outside of a query's own error.
    #[error("query engine: {0}")]
    Engine(#[from] datafusion::error::DataFusionError),
    /// A file of the lake's directory could not be read or written.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Stored JSON could not be decoded.
    #[error("stored JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The catalog holds (or was about to store) a value that breaks one of
    /// its invariants, such as an `eventID` that is not a UUID.
    #[error("catalog invariant: {0}")]
    Invariant(String),
    /// Work moved to a blocking thread panicked.
    #[error("background work: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<auditlake_cloudtrail::policy::PolicyError> for LakeError {
    fn from(e: auditlake_cloudtrail::policy::PolicyError) -> Self {
        Self::bad("ResourcePolicyNotValidException", e)
    }
}

impl LakeError {
    /// A client error answered with HTTP 400.
    pub fn bad(code: &'static str, message: impl fmt::Display) -> Self {
        Self::Aws {
            code,
            status: 400,
            message: message.to_string(),
        }
    }

    /// A client error with an explicit status.
    pub fn with_status(status: u16, code: &'static str, message: impl fmt::Display) -> Self {
        Self::Aws {
            code,
            status,
            message: message.to_string(),
        }
    }

    /// `InvalidParameterException`, the control plane's validation error.
    pub fn invalid(message: impl fmt::Display) -> Self {
        Self::bad("InvalidParameterException", message)
    }

    /// The AWS error code; server-side failures are `InternalFailure`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Aws { code, .. } => code,
            _ => "InternalFailure",
        }
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Aws { status, .. } => *status,
            _ => 500,
        }
    }

    /// The message a client sees. Internal details stay in the logs.
    pub fn client_message(&self) -> String {
        match self {
            Self::Aws { message, .. } => message.clone(),
            _ => "An internal error occurred.".to_owned(),
        }
    }
}

/// Shorthand for lake results.
pub type Result<T, E = LakeError> = std::result::Result<T, E>;
