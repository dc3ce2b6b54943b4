//! Configuration: command-line flags, each with an environment-variable
//! fallback, over an optional TOML file, over defaults that work locally.
//! Precedence: flag > environment > file > default.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use serde::Deserialize;

/// Where the database lives.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Directory for the embedded database and other state [default: ./data]
    #[arg(long, env = "AUDITLAKE_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL: postgres://user@host/db, or sqlite://path [default: SQLite under --data-dir]
    #[arg(long, env = "AUDITLAKE_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// TOML configuration file (keys as the long flags, with underscores)
    #[arg(long, env = "AUDITLAKE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
}

/// The configuration file's keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// See `--database-url`.
    pub database_url: Option<String>,
    /// See `--listen`.
    pub listen: Option<String>,
    /// See `--lake-listen`.
    pub lake_listen: Option<String>,
    /// See `--lake-dir`.
    pub lake_dir: Option<PathBuf>,
    /// See `--lake-access-key-id`.
    pub lake_access_key_id: Option<String>,
    /// See `--lake-secret-access-key`.
    pub lake_secret_access_key: Option<String>,
    /// See `--lake-account-id`.
    pub lake_account_id: Option<String>,
    /// See `--cloudtrail-endpoint`.
    pub cloudtrail_endpoint: Option<String>,
    /// See `--event-source`.
    pub event_source: Option<String>,
    /// See `--query-memory-mib`.
    pub query_memory_mib: Option<usize>,
    /// See `--query-concurrency`.
    pub query_concurrency: Option<usize>,
    /// See `--query-concurrency-per-account`.
    pub query_concurrency_per_account: Option<usize>,
    /// See `--query-timeout-secs`.
    pub query_timeout_secs: Option<u64>,
    /// See `--query-max-rows`.
    pub query_max_rows: Option<usize>,
    /// See `--query-max-result-mib`.
    pub query_max_result_mib: Option<usize>,
    /// See `--query-group-on-codes`.
    pub query_group_on_codes: Option<bool>,
    /// See `--read-timeout-secs`.
    pub read_timeout_secs: Option<u64>,
    /// See `--max-connections-per-ip`.
    pub max_connections_per_ip: Option<usize>,
}

impl FileConfig {
    /// Reads `path`, or nothing when no file was named.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }
}

impl DbArgs {
    /// The data directory: flag, environment, file, or `./data`.
    pub fn data_dir(&self, file: &FileConfig) -> PathBuf {
        self.data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("./data"))
    }

    /// The resolved database URL, creating the data directory for SQLite.
    pub fn resolve(&self, file: &FileConfig) -> anyhow::Result<String> {
        if let Some(url) = self
            .database_url
            .clone()
            .or_else(|| file.database_url.clone())
        {
            return Ok(url);
        }
        let dir = self.data_dir(file);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?;
        Ok(format!("sqlite://{}", dir.join("auditlake.db").display()))
    }
}
