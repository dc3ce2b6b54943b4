//! After the load: waiting for delivery to drain, the exact delivery check
//! per integration, and the report (the machine, the numbers, Markdown).

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{json, Value};

use auditlake_core::Integration;
use auditlake_store::{Page, Store};
use auditlake_testkit::try_wait_until;

/// Every integration the store holds.
pub(super) async fn integrations(store: &Store) -> anyhow::Result<Vec<Integration>> {
    let mut out = Vec::new();
    let mut page = Page {
        limit: 100,
        ..Page::default()
    };
    loop {
        let got = store.all_integrations(page).await?;
        out.extend(got.items.iter().cloned());
        match (got.has_more, got.items.last()) {
            (true, Some(last)) => page.after = Some(last.id),
            _ => return Ok(out),
        }
    }
}

/// Waits until no integration has an event waiting. It reads the database
/// directly rather than through REST: a REST read is itself an audited
/// `api.access` event in the integration's scope, so polling the API would
/// keep making new work for the forwarder.
pub(super) async fn drain(store: &Store, limit: Duration) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let waiting = std::cell::Cell::new(0);
    let drained = try_wait_until(limit, Duration::from_millis(200), || async {
        let mut n = 0;
        for i in integrations(store).await? {
            n += store.lag(&i).await?.events;
        }
        waiting.set(n);
        anyhow::Ok((n == 0).then_some(()))
    })
    .await?;
    match drained {
        Some(()) => Ok(start.elapsed()),
        None => bail!("{} events still waiting after {limit:?}", waiting.get()),
    }
}

/// One integration's delivery check.
#[derive(Debug)]
pub(super) struct Delivery {
    pub(super) name: String,
    pub(super) scope: String,
    pub(super) store_id: String,
    /// Events of the log the integration should have received.
    pub(super) expected: usize,
    /// Rows in its store.
    pub(super) rows: usize,
    pub(super) missing: usize,
    pub(super) duplicates: usize,
    /// Rows whose ID is not among the expected events.
    pub(super) unexpected: usize,
    pub(super) status: String,
}

impl Delivery {
    pub(super) fn ok(&self) -> bool {
        self.missing == 0 && self.duplicates == 0 && self.unexpected == 0
    }
}

pub(super) fn machine() -> Value {
    let mem_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": model,
        "memory_gib": mem_kb as f64 / 1024.0 / 1024.0,
    })
}

pub(super) fn mib(b: u64) -> f64 {
    b as f64 / 1024.0 / 1024.0
}

/// The report as Markdown (also printed as the terminal table).
pub(super) fn markdown(r: &Value) -> String {
    let mut s = String::new();
    let num = |v: &Value| v.as_f64().unwrap_or(0.0);
    s.push_str(&format!(
        "# Soak: {}\n\nDate {}; machine: {} cores ({}), {:.1} GiB; command: `{}`.\n\n",
        if r["pass"].as_bool() == Some(true) {
            "PASS"
        } else {
            "FAIL"
        },
        r["date"].as_str().unwrap_or(""),
        r["machine"]["nproc"],
        r["machine"]["cpu"].as_str().unwrap_or(""),
        num(&r["machine"]["memory_gib"]),
        r["command"].as_str().unwrap_or(""),
    ));
    s.push_str(&format!(
        "Load: {:.0} s; {} orgs in the group, 1 standalone org, the group itself. \
         Events in the log afterwards: {}; acknowledged by ingest: {} (missing from the log: {}).\n\n",
        num(&r["load_seconds"]),
        r["orgs_in_group"],
        r["events_in_log"],
        r["accepted_events"],
        r["accepted_missing_from_log"],
    ));
    s.push_str("| operation | ok | errors | per s | events/s | p50 ms | p99 ms | max ms |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for o in r["operations"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "| {} | {} | {} | {:.1} | {} | {:.1} | {:.1} | {:.1} |\n",
            o["operation"].as_str().unwrap_or(""),
            o["ok"],
            o["errors"],
            num(&o["per_s"]),
            o["events_per_s"]
                .as_f64()
                .map_or("".into(), |v| format!("{v:.0}")),
            num(&o["p50_ms"]),
            num(&o["p99_ms"]),
            num(&o["max_ms"]),
        ));
    }
    for o in r["operations"].as_array().into_iter().flatten() {
        for e in o["error_samples"].as_array().into_iter().flatten() {
            s.push_str(&format!(
                "\n- error ({}): {}",
                o["operation"].as_str().unwrap_or(""),
                e.as_str().unwrap_or("")
            ));
        }
    }
    s.push_str(&format!(
        "\n\nCatch-up after the load: {}.\n\n",
        match r["drain_seconds"].as_f64() {
            Some(d) => format!("every integration at lag 0 after {d:.1} s"),
            None => format!("NOT drained: {}", r["drain_error"].as_str().unwrap_or("")),
        }
    ));
    s.push_str("| integration | scope | status | expected | stored | missing | duplicates | unexpected | ok |\n| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |\n");
    for d in r["deliveries"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            d["integration"].as_str().unwrap_or(""),
            d["scope"].as_str().unwrap_or(""),
            d["status"].as_str().unwrap_or(""),
            d["expected"],
            d["stored"],
            d["missing"],
            d["duplicates"],
            d["unexpected"],
            if d["ok"].as_bool() == Some(true) {
                "yes"
            } else {
                "**no**"
            },
        ));
    }
    s.push_str(&format!(
        "\nHash chains (`auditlake verify`): {} chains, {} broken ({}).\n\n",
        r["verify"]["chains"],
        r["verify"]["broken"],
        if r["verify"]["ok"].as_bool() == Some(true) {
            "intact"
        } else {
            "**not verified**"
        },
    ));
    let series: Vec<String> = r["rss"]["series"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| format!("{}s {}", p[0], p[1]))
        .collect();
    s.push_str(&format!(
        "Server RSS every 10 s (MiB): min {:.1}, max {:.1}, kernel peak (VmHWM) {:.1} (bound {}: {}).\n\nSeries (seconds since the load started, MiB): {}\n",
        num(&r["rss"]["min_mib"]),
        num(&r["rss"]["max_mib"]),
        num(&r["rss"]["peak_hwm_mib"]),
        r["rss"]["bound_mib"],
        if r["rss"]["within_bound"].as_bool() == Some(true) {
            "within"
        } else {
            "EXCEEDED"
        },
        series.join(", "),
    ));
    s
}
