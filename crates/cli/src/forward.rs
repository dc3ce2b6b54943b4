//! Forwarding: the flags that point the forwarder at AWS, another endpoint
//! or the lake this process runs, and `auditlake integrations` (list,
//! replay) for operators.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use uuid::Uuid;

use auditlake_core::{time_fmt, Actor, Integration, Scope};
use auditlake_forwarder::{ForwarderConfig, Target};
use auditlake_lake::AccessKey;
use auditlake_store::{Page, Store};

use crate::config::DbArgs;

/// Flags of the forwarder, shared by `serve` and `demo`.
#[derive(Debug, Clone, Args)]
pub struct ForwardOptions {
    /// Send PutAuditEvents to this endpoint instead of AWS (the region still
    /// comes from each channel ARN); `local` sends to the lake this process
    /// runs, signed with the lake's own key [default: AWS]
    #[arg(long, env = "AUDITLAKE_CLOUDTRAIL_ENDPOINT")]
    pub cloudtrail_endpoint: Option<String>,
    /// eventData.eventSource of forwarded events [default: this machine's host name]
    #[arg(long, env = "AUDITLAKE_EVENT_SOURCE")]
    pub event_source: Option<String>,
    /// Do not forward in this process (another process does)
    #[arg(long, env = "AUDITLAKE_NO_FORWARDER")]
    pub no_forwarder: bool,
    /// Seconds a process holds an integration without renewing: how soon
    /// another process sharing the database takes over from a dead one
    #[arg(long, env = "AUDITLAKE_FORWARDER_LEASE_SECS", default_value_t = 30.0,
          value_parser = positive_secs)]
    pub forwarder_lease_secs: f64,
    /// Most integrations this process delivers at once
    #[arg(long, env = "AUDITLAKE_FORWARDER_WORKERS", default_value_t = 256,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub forwarder_workers: u16,
}

fn positive_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.2..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds from 0.2 to 3600")),
    }
}

/// Where the forwarder sends, before the local lake's address is known.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// AWS, with the standard credential chain.
    Aws,
    /// Another endpoint, with the standard credential chain.
    Url(String),
    /// The lake this process runs, with its key.
    Local,
}

/// What the forwarder of a process should be.
#[derive(Debug, Clone)]
pub struct Forwarding {
    /// Where to.
    pub endpoint: Endpoint,
    /// `eventData.eventSource`.
    pub event_source: String,
    /// See `--forwarder-lease-secs`.
    pub lease_ttl: Duration,
    /// See `--forwarder-workers`.
    pub workers: usize,
}

impl ForwardOptions {
    /// The forwarding plan, or `None` when this process does not forward.
    pub fn plan(&self) -> anyhow::Result<Option<Forwarding>> {
        if self.no_forwarder {
            return Ok(None);
        }
        let endpoint = match self.cloudtrail_endpoint.clone() {
            None => Endpoint::Aws,
            Some(e) if e == "local" => Endpoint::Local,
            Some(e) => {
                let url = reqwest::Url::parse(&e)
                    .with_context(|| format!("--cloudtrail-endpoint {e:?} is not a URL"))?;
                anyhow::ensure!(
                    matches!(url.scheme(), "http" | "https"),
                    "--cloudtrail-endpoint must be an http(s) URL or `local`"
                );
                Endpoint::Url(e)
            }
        };
        let event_source = self.event_source.clone().unwrap_or_else(host_name);
        Ok(Some(Forwarding {
            endpoint,
            event_source,
            lease_ttl: Duration::from_secs_f64(self.forwarder_lease_secs),
            workers: usize::from(self.forwarder_workers),
        }))
    }
}

impl Forwarding {
    /// The forwarder's configuration, given the running lake's URL and key
    /// (needed for [`Endpoint::Local`]).
    pub fn config(&self, lake: Option<(&str, &AccessKey)>) -> anyhow::Result<ForwarderConfig> {
        // A call must end well within the lease, or another process could
        // take the integration over while it is still in flight.
        let mut target = Target {
            endpoint: None,
            credentials: None,
            timeout: (self.lease_ttl / 2).min(Duration::from_secs(10)),
        };
        match &self.endpoint {
            Endpoint::Aws => {}
            Endpoint::Url(u) => target.endpoint = Some(u.clone()),
            Endpoint::Local => {
                let (url, key) = lake.context(
                    "--cloudtrail-endpoint local sends to this process's lake, which is off (--no-lake)",
                )?;
                target = Target {
                    timeout: target.timeout,
                    ..Target::with_key(url, &key.access_key_id, &key.secret_access_key)
                };
            }
        }
        let mut config = ForwarderConfig::new(self.event_source.clone(), target);
        config.lease_ttl = self.lease_ttl;
        config.max_workers = self.workers;
        Ok(config)
    }
}

/// The machine's host name, or `auditlake` when it cannot be read.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "auditlake".to_owned())
}

/// Flags of `integrations`.
#[derive(Debug, Args)]
pub struct IntegrationsArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Print JSON instead of a table
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: IntegrationsCommand,
}

#[derive(Debug, Subcommand)]
enum IntegrationsCommand {
    /// Every integration with its delivery status, lag and counts
    List,
    /// Send an integration's events from a point in time again
    Replay {
        /// The integration (or group registration) ID
        id: Uuid,
        /// RFC 3339 time to replay from, e.g. 2026-11-24T00:00:00Z
        #[arg(long)]
        from: String,
    },
}

/// Runs `integrations`.
pub async fn run(args: IntegrationsArgs) -> anyhow::Result<()> {
    let store = args.db.open_store().await?;
    let result = match args.command {
        IntegrationsCommand::List => list(&store, args.json).await,
        IntegrationsCommand::Replay { id, from } => {
            let from_us = time_fmt::parse_rfc3339(&from)
                .with_context(|| format!("--from {from:?} is not an RFC 3339 time"))?;
            let i = store
                .integration_by_id(id)
                .await?
                .with_context(|| format!("no integration {id}"))?;
            let i = store
                .replay_integration(i.scope, id, from_us, &Actor::default())
                .await?;
            crate::output::print(&row(&store, &i).await?, args.json);
            Ok(())
        }
    };
    store.close().await;
    result
}

async fn row(store: &Store, i: &Integration) -> anyhow::Result<Value> {
    let lag = store.lag(i).await?;
    let now = time_fmt::now_micros();
    let (level, tenant) = match i.scope {
        Scope::Group(g) => ("group", g),
        Scope::Org(o) => ("org", o),
        Scope::User => ("-", Uuid::nil()),
    };
    let at = |us: Option<i64>| us.map(time_fmt::format_micros);
    Ok(json!({
        "id": i.id,
        "name": i.name,
        "level": level,
        "external_id": tenant,
        "channel_arn": i.config.channel_arn,
        "status": i.status.as_str(),
        "lag_events": lag.events,
        "lag_seconds": lag.age_us(now) / 1_000_000,
        "delivered": i.delivered,
        "failed": i.failed,
        "last_success_at": at(i.last_success_us),
        "last_error": i.last_error,
        "last_error_at": at(i.last_error_us),
    }))
}

async fn list(store: &Store, as_json: bool) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    let mut page = Page {
        limit: 100,
        ..Page::default()
    };
    loop {
        let res = store.all_integrations(page).await?;
        for i in &res.items {
            rows.push(row(store, i).await?);
        }
        match (res.has_more, res.items.last()) {
            (true, Some(last)) => page.after = Some(last.id),
            _ => break,
        }
    }
    if as_json {
        println!("{}", Value::Array(rows));
        return Ok(());
    }
    let mut table = crate::output::table([
        "ID",
        "NAME",
        "LEVEL",
        "STATUS",
        "LAG",
        "LAG (s)",
        "DELIVERED",
        "FAILED",
        "LAST ERROR",
    ]);
    for r in &rows {
        let s = |k: &str| match &r[k] {
            Value::String(s) => s.clone(),
            Value::Null => "-".into(),
            v => v.to_string(),
        };
        table.add_row([
            s("id"),
            s("name"),
            s("level"),
            s("status"),
            s("lag_events"),
            s("lag_seconds"),
            s("delivered"),
            s("failed"),
            s("last_error"),
        ]);
    }
    println!("{table}");
    eprintln!("{} integration(s)", rows.len());
    Ok(())
}
