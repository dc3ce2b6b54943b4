//! Results: a table for the terminal, a Markdown file for BENCHMARKS.md and
//! a JSON file for machines.

use serde_json::{json, Value};

/// A target of issue 3.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// The value must be at least this.
    AtLeast(f64),
    /// The value must be under this.
    Below(f64),
}

impl Target {
    fn met(self, v: f64) -> bool {
        match self {
            Target::AtLeast(t) => v >= t,
            Target::Below(t) => v < t,
        }
    }
}

/// One measured number.
#[derive(Debug, Clone)]
pub struct Metric {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// Scenario name.
    pub scenario: &'static str,
    /// What was measured.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: &'static str,
    /// The raw-database baseline of the same run, when there is one.
    pub baseline: Option<f64>,
    /// The target, when there is one.
    pub target: Option<Target>,
    /// How it was measured.
    pub note: Option<String>,
}

impl Metric {
    /// A metric without baseline or target.
    pub fn new(
        backend: &'static str,
        scenario: &'static str,
        name: &str,
        value: f64,
        unit: &'static str,
    ) -> Self {
        Metric {
            backend,
            scenario,
            name: name.to_owned(),
            value,
            unit,
            baseline: None,
            target: None,
            note: None,
        }
    }

    /// With a baseline.
    pub fn baseline(mut self, b: f64) -> Self {
        self.baseline = Some(b);
        self
    }

    /// With a target.
    pub fn target(mut self, t: Target) -> Self {
        self.target = Some(t);
        self
    }

    /// With a note.
    pub fn note(mut self, n: String) -> Self {
        self.note = Some(n);
        self
    }

    /// Whether the target is met (`None`: no target).
    pub fn met(&self) -> Option<bool> {
        self.target.map(|t| t.met(self.value))
    }
}

/// `1234567.8` as `1,234,568`.
fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let out = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(",");
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// A value with its unit, rounded for people.
fn show(v: f64, unit: &str) -> String {
    match unit {
        "events/s" | "req/s" => format!("{} {unit}", thousands(v)),
        "ms" => format!("{v:.2} ms"),
        "MiB" => format!("{v:.1} MiB"),
        "x" => format!("{v:.2}"),
        _ => format!("{v:.2} {unit}"),
    }
}

fn show_target(t: Option<Target>, unit: &str) -> String {
    match t {
        None => String::new(),
        Some(Target::AtLeast(x)) => format!(">= {}", show(x, unit)),
        Some(Target::Below(x)) => format!("< {}", show(x, unit)),
    }
}

fn row(m: &Metric) -> [String; 7] {
    [
        m.backend.to_owned(),
        m.scenario.to_owned(),
        m.name.clone(),
        show(m.value, m.unit),
        m.baseline.map(|b| show(b, m.unit)).unwrap_or_default(),
        show_target(m.target, m.unit),
        match m.met() {
            None => String::new(),
            Some(true) => "yes".to_owned(),
            Some(false) => "NO".to_owned(),
        },
    ]
}

const HEAD: [&str; 7] = [
    "backend",
    "scenario",
    "metric",
    "auditlake",
    "raw baseline",
    "target",
    "met",
];

/// An aligned plain-text table.
pub fn table(metrics: &[Metric]) -> String {
    let rows: Vec<[String; 7]> = metrics.iter().map(row).collect();
    let mut width = HEAD.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        cells
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = line(&HEAD.map(str::to_owned));
    out.push('\n');
    out.push_str(&"-".repeat(width.iter().sum::<usize>() + 2 * (width.len() - 1)));
    out.push('\n');
    for r in &rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    out
}

/// The run's context: machine, commit, sizes.
pub type Meta = Vec<(&'static str, String)>;

/// The results as Markdown: context, the table, how each was measured.
pub fn markdown(meta: &Meta, metrics: &[Metric], failures: &[String]) -> String {
    let mut out = String::from("## auditlake-bench results\n\n");
    for (k, v) in meta {
        out.push_str(&format!("- {k}: {v}\n"));
    }
    out.push_str(&format!("\n| {} |\n|", HEAD.join(" | ")));
    for h in HEAD {
        out.push_str(if h == "metric" || h == "backend" || h == "scenario" {
            " --- |"
        } else {
            " ---: |"
        });
    }
    out.push('\n');
    for m in metrics {
        let mut r = row(m);
        if r[6] == "NO" {
            r[6] = "**no**".to_owned();
        }
        out.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    let notes: Vec<&Metric> = metrics.iter().filter(|m| m.note.is_some()).collect();
    if !notes.is_empty() {
        out.push_str("\nHow:\n\n");
        for m in notes {
            out.push_str(&format!(
                "- {} / {}: {}\n",
                m.backend,
                m.scenario,
                m.note.as_deref().unwrap_or_default()
            ));
        }
    }
    if !failures.is_empty() {
        out.push_str("\nFailed:\n\n");
        for f in failures {
            out.push_str(&format!("- {f}\n"));
        }
    }
    out
}

/// The results as JSON.
pub fn to_json(meta: &Meta, metrics: &[Metric], failures: &[String]) -> Value {
    let meta: serde_json::Map<String, Value> = meta
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    let metrics: Vec<Value> = metrics
        .iter()
        .map(|m| {
            json!({
                "backend": m.backend,
                "scenario": m.scenario,
                "metric": m.name,
                "value": m.value,
                "unit": m.unit,
                "baseline": m.baseline,
                "target": m.target.map(|t| match t {
                    Target::AtLeast(x) => json!({">=": x}),
                    Target::Below(x) => json!({"<": x}),
                }),
                "met": m.met(),
                "note": m.note,
            })
        })
        .collect();
    json!({ "meta": meta, "metrics": metrics, "failures": failures })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        assert_eq!(thousands(1_234_567.8), "1,234,568");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(show(52_000.0, "events/s"), "52,000 events/s");
        assert_eq!(show(0.61234, "x"), "0.61");
    }

    #[test]
    fn targets() {
        let m = Metric::new("sqlite", "s", "p99", 24.9, "ms").target(Target::Below(25.0));
        assert_eq!(m.met(), Some(true));
        let m = Metric::new("sqlite", "s", "r", 4_999.0, "req/s").target(Target::AtLeast(5e3));
        assert_eq!(m.met(), Some(false));
        assert!(table(&[m]).contains("NO"));
    }
}
