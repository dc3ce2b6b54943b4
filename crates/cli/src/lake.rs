//! `auditlake lake ...` and the lake listener that `serve` and `demo` start
//! beside the API.
//!
//! The client commands (`query`, `setup`) talk to a running lake over HTTP
//! with the official AWS SDK, exactly as any CloudTrail Lake script would;
//! they read the same credentials the server uses (flags, environment,
//! config file, or the key the lake generated in its directory).

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aws_sdk_cloudtrail as ct;
use clap::{Args, Subcommand};
use serde_json::json;

use auditlake_lake::{AccessKey, Lake, LakeConfig, QueryLimits, ServeLimits};

use crate::config::DataDir;
use crate::output::print;

/// Where the lake lives and which key it accepts.
#[derive(Debug, Clone, Args)]
pub struct LakeOptions {
    /// Address of the lake listener (CloudTrail Lake API)
    #[arg(long, env = "AUDITLAKE_LAKE_LISTEN", default_value = "127.0.0.1:8081")]
    pub lake_listen: String,
    /// Directory of the lake's catalog and Parquet files [default: DATA_DIR/lake]
    #[arg(long, env = "AUDITLAKE_LAKE_DIR")]
    pub lake_dir: Option<PathBuf>,
    /// Access key ID the lake accepts (with the secret and account below)
    /// [default: a key the lake generates in its directory]
    #[arg(long, env = "AUDITLAKE_LAKE_ACCESS_KEY_ID")]
    pub lake_access_key_id: Option<String>,
    /// Secret of that key
    #[arg(long, env = "AUDITLAKE_LAKE_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub lake_secret_access_key: Option<String>,
    /// 12-digit account ID of that key
    #[arg(long, env = "AUDITLAKE_LAKE_ACCOUNT_ID")]
    pub lake_account_id: Option<String>,
    /// Memory one lake query's process may allocate, in MiB
    #[arg(long, env = "AUDITLAKE_QUERY_MEMORY_MIB",
          default_value_t = QueryLimits::default().memory_limit >> 20)]
    pub query_memory_mib: usize,
    /// Lake queries running at once; more wait as QUEUED
    #[arg(long, env = "AUDITLAKE_QUERY_CONCURRENCY",
          default_value_t = QueryLimits::default().max_concurrent)]
    pub query_concurrency: usize,
    /// Lake queries of one account running at once, below --query-concurrency
    #[arg(long, env = "AUDITLAKE_QUERY_CONCURRENCY_PER_ACCOUNT",
          default_value_t = QueryLimits::default().max_concurrent_per_account)]
    pub query_concurrency_per_account: usize,
    /// Seconds a lake query may run before it ends as TIMED_OUT
    #[arg(long, env = "AUDITLAKE_QUERY_TIMEOUT_SECS",
          default_value_t = QueryLimits::default().timeout.as_secs())]
    pub query_timeout_secs: u64,
    /// Most rows a lake query may return
    #[arg(long, env = "AUDITLAKE_QUERY_MAX_ROWS",
          default_value_t = QueryLimits::default().max_result_rows)]
    pub query_max_rows: usize,
    /// Most MiB of results a lake query may return
    #[arg(long, env = "AUDITLAKE_QUERY_MAX_RESULT_MIB",
          default_value_t = QueryLimits::default().max_result_bytes >> 20)]
    pub query_max_result_mib: usize,
    /// Whether a lake group-by on event names may count dictionary codes
    /// instead of running DataFusion's own operator (false: rule them out
    /// when an answer looks wrong)
    #[arg(long, env = "AUDITLAKE_QUERY_GROUP_ON_CODES", action = clap::ArgAction::Set,
          default_value_t = QueryLimits::default().group_on_codes)]
    pub query_group_on_codes: bool,
    /// Seconds a client of the API or the lake may send nothing (headers,
    /// body, or between requests) before it is dropped
    #[arg(long, env = "AUDITLAKE_READ_TIMEOUT_SECS",
          default_value_t = ServeLimits::default().read_timeout.as_secs())]
    pub read_timeout_secs: u64,
    /// Connections one client address may hold on each listener; 0: no cap
    #[arg(long, env = "AUDITLAKE_MAX_CONNECTIONS_PER_IP",
          default_value_t = ServeLimits::default().max_connections_per_ip)]
    pub max_connections_per_ip: usize,
}

impl LakeOptions {
    /// The lake directory, under `data_dir` unless given.
    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        self.lake_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("lake"))
    }

    /// The configured key, if any part of one is given.
    pub fn key(&self) -> anyhow::Result<Option<AccessKey>> {
        match (
            self.lake_access_key_id.clone(),
            self.lake_secret_access_key.clone(),
            self.lake_account_id.clone(),
        ) {
            (None, None, None) => Ok(None),
            (Some(access_key_id), Some(secret_access_key), Some(account_id)) => {
                let key = AccessKey {
                    access_key_id,
                    secret_access_key,
                    account_id,
                };
                key.validate()
                    .map_err(|e| anyhow::anyhow!("lake key: {e}"))?;
                Ok(Some(key))
            }
            _ => anyhow::bail!(
                "a lake key needs all three of access key ID, secret access key and account ID"
            ),
        }
    }

    /// What one client may hold of each listener.
    pub fn serve_limits(&self) -> ServeLimits {
        ServeLimits {
            read_timeout: Duration::from_secs(self.read_timeout_secs),
            max_connections_per_ip: self.max_connections_per_ip,
        }
    }

    /// The query limits, checked.
    pub fn query_limits(&self) -> anyhow::Result<QueryLimits> {
        let limits = QueryLimits {
            max_concurrent: self.query_concurrency,
            max_concurrent_per_account: self.query_concurrency_per_account,
            timeout: Duration::from_secs(self.query_timeout_secs),
            max_result_rows: self.query_max_rows,
            max_result_bytes: self.query_max_result_mib.saturating_mul(1 << 20),
            memory_limit: self.query_memory_mib.saturating_mul(1 << 20),
            group_on_codes: self.query_group_on_codes,
        };
        limits
            .validate()
            .map_err(|e| anyhow::anyhow!("lake query limits: {e}"))?;
        Ok(limits)
    }

    /// Opens the lake. When it generated its own key, say where with
    /// [`credentials_notice`] once the listening lines are out.
    pub async fn open(&self, data_dir: &Path) -> anyhow::Result<Lake> {
        let dir = self.dir(data_dir);
        let mut config = LakeConfig::new(&dir);
        config.keys = self.key()?.into_iter().collect();
        config.limits = self.query_limits()?;
        config.serve = self.serve_limits();
        Lake::open(config)
            .await
            .with_context(|| format!("opening the lake in {}", dir.display()))
    }

    /// The key a client command signs with.
    pub fn client_key(&self, data_dir: &Path) -> anyhow::Result<AccessKey> {
        if let Some(key) = self.key()? {
            return Ok(key);
        }
        let path = self.dir(data_dir).join(auditlake_lake::GENERATED_KEY_FILE);
        let text = std::fs::read(&path).with_context(|| {
            format!(
                "no lake key configured and none generated at {} (start the lake once, or set AUDITLAKE_LAKE_ACCESS_KEY_ID and friends)",
                path.display()
            )
        })?;
        serde_json::from_slice(&text).with_context(|| format!("reading {}", path.display()))
    }
}

/// Serves the lake on `listener` until `shutdown`, with the maintenance
/// task (flush, compaction, retention) beside it.
pub async fn serve_lake(
    lake: Lake,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let maintenance = lake.spawn_maintenance(Duration::from_secs(5));
    auditlake_lake::wire::server::serve(listener, lake.clone(), shutdown).await?;
    maintenance.abort();
    lake.close().await;
    Ok(())
}

/// Flags of `lake`.
#[derive(Debug, Args)]
pub struct LakeArgs {
    #[command(flatten)]
    lake: LakeOptions,
    #[command(flatten)]
    dir: DataDir,
    /// The lake's URL for `query` and `setup` [default: http://LAKE_LISTEN]
    #[arg(
        long = "endpoint",
        id = "lake_endpoint",
        env = "AUDITLAKE_LAKE_ENDPOINT",
        global = true
    )]
    endpoint: Option<String>,
    /// Print JSON instead of a table
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: LakeCommand,
}

#[derive(Debug, Subcommand)]
enum LakeCommand {
    /// Run the lake alone
    Serve {
        /// Address to listen on [default: --lake-listen]
        #[arg(long)]
        listen: Option<String>,
    },
    /// Run a CloudTrail Lake SQL query against a running lake and print the rows
    Query {
        /// The statement, e.g. "select eventtime from STORE_ID limit 10"
        sql: String,
    },
    /// Create an event data store, a channel into it and the channel's
    /// policy for an External ID, as the AWS console's integration flow does
    Setup {
        /// The External ID: the Organization ID or Group ID that will send
        #[arg(long)]
        external_id: String,
        /// Name of the channel (the store is named NAME-store)
        #[arg(long, default_value = "auditlake")]
        name: String,
        /// Account allowed to send, besides the lake's own [default: the lake's account]
        #[arg(long)]
        partner_account: Option<String>,
        /// Days the store keeps events (7-3653)
        #[arg(long, default_value_t = 2557)]
        retention_days: i32,
    },
    /// Print the lake's access key as environment variables for the AWS CLI and SDKs
    Credentials,
}

/// The line that says where the lake's generated key is, when it made one.
/// Printed after the `listening on` lines: scripts wait for those as the
/// first lines of the output.
pub fn credentials_notice(lake: &Lake) -> Option<String> {
    lake.generated_key_file()
        .map(|path| format!("auditlake lake credentials: {}", path.display()))
}

/// Runs `lake ...`.
pub async fn run(args: LakeArgs) -> anyhow::Result<()> {
    let data_dir = &args.dir.data_dir;
    let endpoint = args
        .endpoint
        .clone()
        .unwrap_or_else(|| format!("http://{}", args.lake.lake_listen));
    match args.command {
        LakeCommand::Serve { listen } => {
            let lake = args.lake.open(data_dir).await?;
            let listen = listen.unwrap_or_else(|| args.lake.lake_listen.clone());
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {listen} for the lake: {e}"))?;
            // Printed on stdout so scripts and tests can wait for the lake.
            say!(
                "auditlake lake listening on http://{}",
                listener.local_addr()?
            );
            if let Some(notice) = credentials_notice(&lake) {
                say!("{notice}");
            }
            serve_lake(lake, listener, crate::signal::shutdown()).await
        }
        LakeCommand::Query { sql } => {
            let key = args.lake.client_key(data_dir)?;
            let client = client(&endpoint, &key);
            query(&client, &sql, args.json).await
        }
        LakeCommand::Setup {
            external_id,
            name,
            partner_account,
            retention_days,
        } => {
            let key = args.lake.client_key(data_dir)?;
            let client = client(&endpoint, &key);
            let partner = partner_account.unwrap_or_else(|| key.account_id.clone());
            let out = auditlake_cloudtrail::client::setup(
                &client,
                &name,
                &external_id,
                &partner,
                retention_days,
            )
            .await?;
            let out = json!({
                "channel_arn": out.channel_arn,
                "event_data_store_id": out.event_data_store_id,
                "event_data_store_arn": out.event_data_store_arn,
                "external_id": external_id,
            });
            print(&out, args.json);
            Ok(())
        }
        LakeCommand::Credentials => {
            let key = args.lake.client_key(data_dir)?;
            if args.json {
                println!(
                    "{}",
                    json!({"access_key_id": key.access_key_id, "secret_access_key": key.secret_access_key, "account_id": key.account_id})
                );
            } else {
                println!("export AWS_ACCESS_KEY_ID={}", key.access_key_id);
                println!("export AWS_SECRET_ACCESS_KEY={}", key.secret_access_key);
                println!("export AWS_REGION=us-east-1");
                println!("# account ID: {}", key.account_id);
            }
            Ok(())
        }
    }
}

/// A CloudTrail client for the lake at `endpoint`.
fn client(endpoint: &str, key: &AccessKey) -> ct::Client {
    auditlake_cloudtrail::client::control(endpoint, key, "us-east-1")
}

fn sdk_error<E>(what: &str, err: ct::error::SdkError<E>) -> anyhow::Error
where
    E: ct::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match err.as_service_error() {
        Some(e) => anyhow::anyhow!(
            "{what}: {}: {}",
            e.code().unwrap_or("error"),
            e.message().unwrap_or("")
        ),
        None => anyhow::anyhow!("{what}: {}", ct::error::DisplayErrorContext(&err)),
    }
}

/// Runs `sql`, showing its state on a terminal, and prints the rows.
async fn query(client: &ct::Client, sql: &str, as_json: bool) -> anyhow::Result<()> {
    use ct::types::QueryStatus;
    let started = Instant::now();
    let id = client
        .start_query()
        .query_statement(sql)
        .send()
        .await
        .map_err(|e| sdk_error("StartQuery", e))?
        .query_id
        .context("StartQuery answered without a QueryId")?;
    let tty = std::io::stderr().is_terminal();
    let mut delay = Duration::from_millis(20);
    let described = loop {
        let d = client
            .describe_query()
            .query_id(&id)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeQuery", e))?;
        let status = d.query_status().cloned();
        if tty {
            eprint!(
                "\r{} {:.1}s ",
                status.as_ref().map_or("?", |s| s.as_str()),
                started.elapsed().as_secs_f64()
            );
            let _ = std::io::stderr().flush();
        }
        match status {
            Some(QueryStatus::Queued | QueryStatus::Running) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(500));
            }
            _ => break d,
        }
    };
    if tty {
        eprint!("\r\x1b[K");
    }
    if described.query_status() != Some(&QueryStatus::Finished) {
        anyhow::bail!(
            "query {id} {}: {}",
            described.query_status().map_or("?", |s| s.as_str()),
            described.error_message().unwrap_or("")
        );
    }
    let mut columns: Vec<String> = Vec::new();
    let mut rows: Vec<Vec<Option<String>>> = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .get_query_results()
            .query_id(&id)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| sdk_error("GetQueryResults", e))?;
        for row in page.query_result_rows() {
            let mut cells = Vec::with_capacity(row.len());
            for (i, col) in row.iter().enumerate() {
                let (name, value) = col
                    .iter()
                    .next()
                    .map_or((None, None), |(k, v)| (Some(k), Some(v.clone())));
                if columns.len() <= i {
                    columns.push(name.cloned().unwrap_or_default());
                }
                cells.push(value);
            }
            rows.push(cells);
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    if as_json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::Value::Object(
                    columns
                        .iter()
                        .zip(r)
                        .map(|(c, v)| (c.clone(), json!(v)))
                        .collect(),
                )
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        let mut table = crate::output::table(columns.clone());
        for r in &rows {
            table.add_row(r.iter().map(|v| v.clone().unwrap_or_else(|| "NULL".into())));
        }
        println!("{table}");
        eprintln!(
            "{} row(s) in {:.2}s",
            rows.len(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
