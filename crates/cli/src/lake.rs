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

use crate::admin::print;
use crate::config::FileConfig;

/// Where the lake lives and which key it accepts.
#[derive(Debug, Clone, Args)]
pub struct LakeOptions {
    /// Address of the lake listener (CloudTrail Lake API) [default: 127.0.0.1:8081]
    #[arg(long, env = "AUDITLAKE_LAKE_LISTEN")]
    pub lake_listen: Option<String>,
    /// Directory of the lake's catalog and Parquet files [default: DATA_DIR/lake]
    #[arg(long, env = "AUDITLAKE_LAKE_DIR")]
    pub lake_dir: Option<PathBuf>,
    /// Access key ID the lake accepts (with the secret and account below)
    #[arg(long, env = "AUDITLAKE_LAKE_ACCESS_KEY_ID")]
    pub lake_access_key_id: Option<String>,
    /// Secret of that key
    #[arg(long, env = "AUDITLAKE_LAKE_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub lake_secret_access_key: Option<String>,
    /// 12-digit account ID of that key
    #[arg(long, env = "AUDITLAKE_LAKE_ACCOUNT_ID")]
    pub lake_account_id: Option<String>,
    /// Memory one lake query's process may allocate, in MiB [default: 1024]
    #[arg(long, env = "AUDITLAKE_QUERY_MEMORY_MIB")]
    pub query_memory_mib: Option<usize>,
    /// Lake queries running at once; more wait as QUEUED [default: 2]
    #[arg(long, env = "AUDITLAKE_QUERY_CONCURRENCY")]
    pub query_concurrency: Option<usize>,
    /// Lake queries of one account running at once, below --query-concurrency [default: 1]
    #[arg(long, env = "AUDITLAKE_QUERY_CONCURRENCY_PER_ACCOUNT")]
    pub query_concurrency_per_account: Option<usize>,
    /// Seconds a lake query may run before it ends as TIMED_OUT [default: 120]
    #[arg(long, env = "AUDITLAKE_QUERY_TIMEOUT_SECS")]
    pub query_timeout_secs: Option<u64>,
    /// Most rows a lake query may return [default: 1000000]
    #[arg(long, env = "AUDITLAKE_QUERY_MAX_ROWS")]
    pub query_max_rows: Option<usize>,
    /// Most MiB of results a lake query may return [default: 64]
    #[arg(long, env = "AUDITLAKE_QUERY_MAX_RESULT_MIB")]
    pub query_max_result_mib: Option<usize>,
    /// Whether a lake group-by on event names may count dictionary codes
    /// instead of running DataFusion's own operator (false: rule them out
    /// when an answer looks wrong) [default: true]
    #[arg(long, env = "AUDITLAKE_QUERY_GROUP_ON_CODES")]
    pub query_group_on_codes: Option<bool>,
    /// Seconds a client of the API or the lake may send nothing (headers,
    /// body, or between requests) before it is dropped [default: 10]
    #[arg(long, env = "AUDITLAKE_READ_TIMEOUT_SECS")]
    pub read_timeout_secs: Option<u64>,
    /// Connections one client address may hold on each listener; 0: no
    /// cap [default: 64]
    #[arg(long, env = "AUDITLAKE_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
}

impl LakeOptions {
    /// The listen address.
    pub fn listen(&self, file: &FileConfig) -> String {
        self.lake_listen
            .clone()
            .or_else(|| file.lake_listen.clone())
            .unwrap_or_else(|| "127.0.0.1:8081".to_owned())
    }

    /// The lake directory, under `data_dir` unless given.
    pub fn dir(&self, file: &FileConfig, data_dir: &Path) -> PathBuf {
        self.lake_dir
            .clone()
            .or_else(|| file.lake_dir.clone())
            .unwrap_or_else(|| data_dir.join("lake"))
    }

    /// The configured key, if any part of one is given.
    pub fn key(&self, file: &FileConfig) -> anyhow::Result<Option<AccessKey>> {
        let id = self
            .lake_access_key_id
            .clone()
            .or_else(|| file.lake_access_key_id.clone());
        let secret = self
            .lake_secret_access_key
            .clone()
            .or_else(|| file.lake_secret_access_key.clone());
        let account = self
            .lake_account_id
            .clone()
            .or_else(|| file.lake_account_id.clone());
        match (id, secret, account) {
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

    /// What one client may hold of each listener: flags, environment,
    /// file, defaults.
    pub fn serve_limits(&self, file: &FileConfig) -> ServeLimits {
        let d = ServeLimits::default();
        ServeLimits {
            read_timeout: self
                .read_timeout_secs
                .or(file.read_timeout_secs)
                .map_or(d.read_timeout, Duration::from_secs),
            max_connections_per_ip: self
                .max_connections_per_ip
                .or(file.max_connections_per_ip)
                .unwrap_or(d.max_connections_per_ip),
        }
    }

    /// The query limits: flags, environment, file, defaults.
    pub fn query_limits(&self, file: &FileConfig) -> QueryLimits {
        let d = QueryLimits::default();
        let pick = |flag: Option<usize>, key: Option<usize>, default: usize| {
            flag.or(key).unwrap_or(default)
        };
        QueryLimits {
            max_concurrent: pick(
                self.query_concurrency,
                file.query_concurrency,
                d.max_concurrent,
            ),
            max_concurrent_per_account: pick(
                self.query_concurrency_per_account,
                file.query_concurrency_per_account,
                d.max_concurrent_per_account,
            ),
            timeout: self
                .query_timeout_secs
                .or(file.query_timeout_secs)
                .map_or(d.timeout, Duration::from_secs),
            max_result_rows: pick(self.query_max_rows, file.query_max_rows, d.max_result_rows),
            max_result_bytes: pick(
                self.query_max_result_mib,
                file.query_max_result_mib,
                d.max_result_bytes >> 20,
            )
            .saturating_mul(1 << 20),
            memory_limit: pick(
                self.query_memory_mib,
                file.query_memory_mib,
                d.memory_limit >> 20,
            )
            .saturating_mul(1 << 20),
            group_on_codes: self
                .query_group_on_codes
                .or(file.query_group_on_codes)
                .unwrap_or(d.group_on_codes),
        }
    }

    /// Opens the lake. When it generated its own key, say where with
    /// [`credentials_notice`] once the listening lines are out.
    pub async fn open(&self, file: &FileConfig, data_dir: &Path) -> anyhow::Result<Lake> {
        let dir = self.dir(file, data_dir);
        let mut config = LakeConfig::new(&dir);
        config.keys = self.key(file)?.into_iter().collect();
        config.limits = self.query_limits(file);
        config.serve = self.serve_limits(file);
        config
            .limits
            .validate()
            .map_err(|e| anyhow::anyhow!("lake query limits: {e}"))?;
        Lake::open(config)
            .await
            .with_context(|| format!("opening the lake in {}", dir.display()))
    }

    /// The key a client command signs with.
    pub fn client_key(&self, file: &FileConfig, data_dir: &Path) -> anyhow::Result<AccessKey> {
        if let Some(key) = self.key(file)? {
            return Ok(key);
        }
        let path = self
            .dir(file, data_dir)
            .join(auditlake_lake::GENERATED_KEY_FILE);
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
    /// Directory for state [default: ./data]
    #[arg(long, env = "AUDITLAKE_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// TOML configuration file
    #[arg(long, env = "AUDITLAKE_CONFIG", global = true)]
    config: Option<PathBuf>,
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
        /// Address to listen on [default: --lake-listen, or 127.0.0.1:8081]
        #[arg(long)]
        listen: Option<String>,
    },
    /// Run a CloudTrail Lake SQL query against a running lake and print the rows
    Query {
        /// The statement, e.g. "select eventtime from STORE_ID limit 10"
        sql: String,
        /// The lake's URL [default: http://LAKE_LISTEN]
        #[arg(long, env = "AUDITLAKE_LAKE_ENDPOINT")]
        endpoint: Option<String>,
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
        /// The lake's URL [default: http://LAKE_LISTEN]
        #[arg(long, env = "AUDITLAKE_LAKE_ENDPOINT")]
        endpoint: Option<String>,
    },
    /// Print the lake's access key as environment variables for the AWS CLI and SDKs
    Credentials,
    /// Run one query that the lake hands over on standard input (the lake
    /// starts these itself)
    #[command(hide = true)]
    QueryWorker,
}

impl LakeArgs {
    /// Whether this is the lake's own query worker.
    pub fn is_query_worker(&self) -> bool {
        matches!(self.command, LakeCommand::QueryWorker)
    }
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
    let file = FileConfig::load(args.config.as_deref())?;
    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("./data"));
    let endpoint = |given: Option<String>| {
        given.unwrap_or_else(|| format!("http://{}", args.lake.listen(&file)))
    };
    match args.command {
        LakeCommand::Serve { listen } => {
            let lake = args.lake.open(&file, &data_dir).await?;
            let listen = listen.unwrap_or_else(|| args.lake.listen(&file));
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
            serve_lake(lake, listener, crate::serve::shutdown_signal()).await
        }
        LakeCommand::Query { sql, endpoint: e } => {
            let key = args.lake.client_key(&file, &data_dir)?;
            let client = client(&endpoint(e), &key);
            query(&client, &sql, args.json).await
        }
        LakeCommand::Setup {
            external_id,
            name,
            partner_account,
            retention_days,
            endpoint: e,
        } => {
            let key = args.lake.client_key(&file, &data_dir)?;
            let client = client(&endpoint(e), &key);
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
            let key = args.lake.client_key(&file, &data_dir)?;
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
        LakeCommand::QueryWorker => {
            anyhow::bail!("the query worker runs only when the lake starts it")
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
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
        table.set_header(columns.clone());
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
