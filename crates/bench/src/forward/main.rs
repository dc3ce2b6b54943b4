//! `auditlake-forward-bench`: measures the forwarder against issue 5's
//! targets, delivering to the local lake over loopback through the AWS
//! SDK, with the baseline the issue names taken in the same run:
//!
//! 1. one busy integration: a backlog of N events drained (target at least
//!    20,000 events/s), next to a sender making one `PutAuditEvents` call
//!    per event (the ratio is reported);
//! 2. fan-out: 1,000 integrations with 1,000 events each, drained (target
//!    under 60 s);
//! 3. latency: events appended at 1,000 per second; the time from the
//!    append to the lake's acknowledgement (target p99 under 2 s).
//!
//! Store, forwarder and lake run in this process (a release build), on
//! SQLite by default. Every phase is bounded by a deadline.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use serde_json::json;
use uuid::Uuid;

use auditlake_core::integration::{event_data, CloudTrailConfig};
use auditlake_core::{time_fmt, Actor, Integration, NewEvent, Scope};
use auditlake_forwarder::{ForwarderConfig, Target};
use auditlake_lake::testing::{key, LocalLake, OWNER, REGION};
use auditlake_store::{Page, Store};
use auditlake_testkit::try_wait_until;

/// Benchmarks the forwarder (issue 5's targets).
#[derive(Debug, Parser)]
#[command(name = "auditlake-forward-bench", version, about)]
struct Args {
    /// Database URL [default: SQLite in a temporary directory]
    #[arg(long)]
    database_url: Option<String>,
    /// Where results go
    #[arg(long, default_value = "bench-out")]
    out: std::path::PathBuf,
    /// Busy integration: backlog size
    #[arg(long, default_value_t = 200_000)]
    busy_events: usize,
    /// Baseline: events sent one per call
    #[arg(long, default_value_t = 2_000)]
    single_events: usize,
    /// Fan-out: integrations
    #[arg(long, default_value_t = 1_000)]
    integrations: usize,
    /// Fan-out: events per integration
    #[arg(long, default_value_t = 1_000)]
    events_each: usize,
    /// Latency: events per second
    #[arg(long, default_value_t = 1_000)]
    rate: usize,
    /// Latency: seconds of load
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Longest any phase may run, in seconds
    #[arg(long, default_value_t = 600)]
    deadline: u64,
}

/// A payload of about 300 bytes, like a settings edit.
fn content(n: usize) -> serde_json::Value {
    json!({"before": {"severity_threshold": "low", "note": "x".repeat(100)},
           "after": {"severity_threshold": "high", "note": "y".repeat(100)}, "n": n})
}

async fn append_for(
    store: &Store,
    orgs: &[Uuid],
    per_org: usize,
    user: Uuid,
) -> anyhow::Result<()> {
    let mut batch = Vec::with_capacity(5_000);
    for n in 0..per_org {
        for org in orgs {
            batch.push(NewEvent::now(
                "org.settings.edit",
                Scope::Org(*org),
                Some(user),
                content(n),
            ));
            if batch.len() == 5_000 {
                store.append(&batch).await?;
                batch.clear();
            }
        }
    }
    if !batch.is_empty() {
        store.append(&batch).await?;
    }
    Ok(())
}

/// Channels in the lake (no policy: the owner sends).
async fn channels(
    lake: &LocalLake,
    stores: usize,
    per_store: usize,
) -> anyhow::Result<Vec<String>> {
    use aws_sdk_cloudtrail::types::{
        AdvancedEventSelector, AdvancedFieldSelector, Destination, DestinationType,
    };
    let ct = lake.control(OWNER);
    let mut out = Vec::new();
    for s in 0..stores {
        let selector = AdvancedEventSelector::builder()
            .name("Integration events")
            .field_selectors(
                AdvancedFieldSelector::builder()
                    .field("eventCategory")
                    .equals("ActivityAuditLog")
                    .build()?,
            )
            .build()?;
        let eds = ct
            .create_event_data_store()
            .name(format!("bench-{s}-{}", Uuid::new_v4().simple()))
            .advanced_event_selectors(selector)
            .send()
            .await?;
        let arn = eds.event_data_store_arn().context("store ARN")?.to_owned();
        for c in 0..per_store {
            let ch = ct
                .create_channel()
                .name(format!("bench-{s}-{c}-{}", Uuid::new_v4().simple()))
                .source("auditlake")
                .destinations(
                    Destination::builder()
                        .r#type(DestinationType::EventDataStore)
                        .location(&arn)
                        .build()?,
                )
                .send()
                .await?;
            out.push(ch.channel_arn().context("channel ARN")?.to_owned());
        }
    }
    Ok(out)
}

fn forwarder_config(lake: &LocalLake) -> ForwarderConfig {
    let k = key(OWNER);
    let mut c = ForwarderConfig::new(
        "bench.auditlake",
        Target::with_key(&lake.url, k.access_key_id, k.secret_access_key),
    );
    c.poll = Duration::from_millis(200);
    c
}

/// Waits until no integration has events after its cursor.
async fn drained(store: &Store, deadline: Duration) -> anyhow::Result<Duration> {
    let start = Instant::now();
    // An observer name that holds no lease, and a time at which every
    // lease has expired: every integration with work is listed.
    let drained = try_wait_until(deadline, Duration::from_millis(20), || async {
        let waiting = store
            .integrations_with_work("bench-observer", i64::MAX)
            .await?;
        anyhow::Ok(waiting.is_empty().then_some(()))
    })
    .await?;
    match drained {
        Some(()) => Ok(start.elapsed()),
        None => bail!("not drained after {deadline:?}"),
    }
}

async fn integration(
    store: &Store,
    org: Uuid,
    arn: &str,
    actor: &Actor,
) -> anyhow::Result<Integration> {
    Ok(store
        .create_integration(
            Scope::Org(org),
            "bench",
            CloudTrailConfig::new(OWNER, arn).map_err(|(_, e)| anyhow::anyhow!(e))?,
            actor,
        )
        .await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let deadline = Duration::from_secs(args.deadline);
    std::fs::create_dir_all(&args.out)?;
    let tmp = tempfile::tempdir()?;
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/bench.db", tmp.path().display()));
    let store = Store::connect(&url).await?;
    let lake_dir = tmp.path().join("lake");
    std::fs::create_dir_all(&lake_dir)?;
    let lake = LocalLake::start(&lake_dir).await;
    let admin = store.create_user("bench@example.com", "Bench").await?;
    let actor = Actor::user(admin.id);
    let mut results = serde_json::Map::new();

    // 1. One busy integration.
    let busy_org = store.create_org("busy", None, &actor).await?.id;
    let arns = channels(&lake, 1, 2).await?;
    integration(&store, busy_org, &arns[0], &actor).await?;
    eprintln!("busy: appending {} events", args.busy_events);
    append_for(&store, &[busy_org], args.busy_events, admin.id).await?;
    let fwd = auditlake_forwarder::spawn(store.clone(), forwarder_config(&lake)).await;
    let took = drained(&store, deadline).await?;
    fwd.shutdown().await;
    let busy_rate = args.busy_events as f64 / took.as_secs_f64();
    eprintln!("busy: {busy_rate:.0} events/s ({took:.2?})");

    // The baseline: one event per PutAuditEvents call, in sequence.
    let data = auditlake_cloudtrail::client::data(&lake.url, &key(OWNER), REGION);
    let log = store.read_log(0, args.single_events as i64).await?;
    let start = Instant::now();
    for e in &log {
        let body = event_data(e, OWNER, "bench.auditlake")?;
        data.put_audit_events()
            .channel_arn(&arns[1])
            .audit_events(
                aws_sdk_cloudtraildata::types::AuditEvent::builder()
                    .id(e.id.to_string())
                    .event_data(body)
                    .build()?,
            )
            .send()
            .await?;
    }
    let single_rate = log.len() as f64 / start.elapsed().as_secs_f64();
    eprintln!("one per call: {single_rate:.0} events/s");
    results.insert(
        "busy".into(),
        json!({"events": args.busy_events, "seconds": took.as_secs_f64(), "events_per_s": busy_rate,
               "one_per_call_events_per_s": single_rate, "ratio": busy_rate / single_rate}),
    );

    // 2. Fan-out: many integrations, each with a backlog.
    // 80 channels over 4 stores: the lake allows 100 channels and 10 stores.
    let fan_arns = channels(&lake, 4, 20).await?;
    let mut orgs = Vec::with_capacity(args.integrations);
    for n in 0..args.integrations {
        let org = store
            .create_org(&format!("fan {n}"), None, &actor)
            .await?
            .id;
        integration(&store, org, &fan_arns[n % fan_arns.len()], &actor).await?;
        orgs.push(org);
    }
    let total = args.integrations * args.events_each;
    eprintln!(
        "fan-out: appending {total} events for {} integrations",
        args.integrations
    );
    append_for(&store, &orgs, args.events_each, admin.id).await?;
    let fwd = auditlake_forwarder::spawn(store.clone(), forwarder_config(&lake)).await;
    let fan_took = drained(&store, deadline).await?;
    fwd.shutdown().await;
    eprintln!("fan-out: drained in {fan_took:.2?}");
    results.insert(
        "fan_out".into(),
        json!({"integrations": args.integrations, "events_each": args.events_each,
               "seconds": fan_took.as_secs_f64(), "events_per_s": total as f64 / fan_took.as_secs_f64()}),
    );

    // 3. Latency at a steady rate.
    let lat_org = store.create_org("latency", None, &actor).await?.id;
    let lat_arn = channels(&lake, 1, 1).await?;
    let lat = integration(&store, lat_org, &lat_arn[0], &actor).await?;
    let fwd = auditlake_forwarder::spawn(store.clone(), forwarder_config(&lake)).await;
    let ticks = args.seconds * 100;
    let per_tick = (args.rate / 100).max(1);
    let producer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut appended: Vec<(i64, Instant)> = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            for t in 0..ticks {
                tick.tick().await;
                let events: Vec<NewEvent> = (0..per_tick)
                    .map(|i| {
                        NewEvent::now(
                            "org.settings.edit",
                            Scope::Org(lat_org),
                            Some(admin.id),
                            content(t as usize * per_tick + i),
                        )
                    })
                    .collect();
                let stored = store.append(&events).await?;
                let now = Instant::now();
                appended.extend(stored.iter().map(|e| (e.seq, now)));
            }
            anyhow::Ok(appended)
        })
    };
    // Observe the cursor: an event is acknowledged once the cursor passed it.
    let mut acked: Vec<(i64, Instant)> = Vec::new();
    let observe_until = Instant::now() + Duration::from_secs(args.seconds) + deadline;
    let mut last_cursor = lat.cursor;
    loop {
        let i = store
            .integration(lat.scope, lat.id)
            .await?
            .context("latency integration")?;
        if i.cursor > last_cursor {
            acked.push((i.cursor, Instant::now()));
            last_cursor = i.cursor;
        }
        if producer.is_finished() && store.lag(&i).await?.events == 0 {
            break;
        }
        if Instant::now() > observe_until {
            bail!("latency phase not drained");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let appended = producer.await??;
    fwd.shutdown().await;
    let mut lat_ms: Vec<f64> = appended
        .iter()
        .filter_map(|(seq, at)| {
            // The cursor only grows, so the first observation at or past
            // `seq` is found by bisection.
            let ack = acked.get(acked.partition_point(|(c, _)| c < seq))?;
            Some(ack.1.saturating_duration_since(*at).as_secs_f64() * 1e3)
        })
        .collect();
    lat_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| lat_ms[((lat_ms.len() as f64 - 1.0) * p).round() as usize];
    let (p50, p99, max) = (pct(0.5), pct(0.99), *lat_ms.last().unwrap_or(&0.0));
    eprintln!(
        "latency at {} events/s: p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms",
        args.rate
    );
    results.insert(
        "latency".into(),
        json!({"rate": args.rate, "seconds": args.seconds, "events": lat_ms.len(),
               "p50_ms": p50, "p99_ms": p99, "max_ms": max}),
    );

    let integrations = store
        .all_integrations(Page {
            limit: 1,
            ..Page::default()
        })
        .await?;
    let report = json!({
        "date": time_fmt::format_micros(time_fmt::now_micros()),
        "database": auditlake_store::redact(&url),
        "machine": { "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0) },
        "results": results,
        "sample_integration_status": integrations.items.first().map(|i| i.status.as_str()),
    });
    std::fs::write(
        args.out.join("forward.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    store.close().await;
    lake.crash();
    Ok(())
}
