//! The lake query console: CloudTrail Lake SQL against the stores an org's
//! integrations feed in the lake this server runs, with the seed's query
//! prefilled, results as a table (and a chart for grouped results), a CSV
//! download, and the lake's own error messages.
//!
//! The console queries as the lake's account, which can read every store of
//! that account; so every store ID in a statement must be one the org's
//! integrations feed, or the statement is refused before it reaches the
//! lake. The lake itself allows nothing but a single read-only `SELECT`.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use aws_sdk_cloudtrail as ct;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{json, Value};

use auditlake_cloudtrail::client;
use auditlake_cloudtrail::policy::Policy;
use auditlake_cloudtrail::AccessKey;
use auditlake_core::{Org, Scope};

use super::pages::{org_for, store_failed};
use super::{Form, Page, Signed};
use crate::AppState;

/// Where the console sends queries: the lake this process runs.
#[derive(Debug, Clone)]
pub struct LakeConsole {
    /// The lake's endpoint URL.
    pub endpoint: String,
    /// A key of the lake's account (stores of other accounts are not
    /// reachable); its `Debug` hides the secret.
    pub key: AccessKey,
}

impl LakeConsole {
    fn client(&self) -> ct::Client {
        client::control(&self.endpoint, &self.key, "us-east-1")
    }
}

/// Most rows shown or downloaded.
const MAX_ROWS: usize = 1_000;
/// Longest one request of the console waits for a query. A query still
/// running then is shown as running, on a page that reloads itself until
/// the lake ends it: the lake's own limits (its timeout above all) decide
/// how long a query may take, here as through the API.
const WAIT: Duration = Duration::from_secs(20);

/// The stores the org's integrations feed in the local lake and the org
/// may read: those of channels whose resource policy binds them to the
/// org's External ID (its ID) for the console's account, by the check
/// `PutAuditEvents` makes ([`Policy::binds_external_id`]). Naming a
/// channel in an integration proves nothing, since channel ARNs are not
/// secret; a channel without a policy, or whose policy lets other External
/// IDs in, belongs to no tenant. The policy is read on every visit, so a
/// changed policy changes access at once.
async fn stores(state: &AppState, lake: &LakeConsole, org: &Org) -> Result<Vec<String>, Page> {
    let items = state
        .store
        .integrations_of(
            Scope::Org(org.id),
            auditlake_store::Page {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| store_failed(e, None))?
        .items;
    let client = lake.client();
    let account = &lake.key.account_id;
    let external_id = org.id.to_string();
    let mut out = BTreeSet::new();
    for i in items.iter().filter(|i| &i.config.account_id == account) {
        let arn = &i.config.channel_arn;
        // arn:aws:cloudtrail:<region>:<owner>:channel/<id>
        let Some(owner) = arn.split(':').nth(4) else {
            continue;
        };
        let Ok(policy) = client.get_resource_policy().resource_arn(arn).send().await else {
            continue;
        };
        // Parsed against the ARN as the lake spells it, which the policy's
        // `Resource` names.
        let canonical = policy.resource_arn().unwrap_or(arn);
        let bound = policy
            .resource_policy()
            .and_then(|text| Policy::parse(text, canonical).ok())
            .is_some_and(|p| p.binds_external_id(account, owner, &external_id));
        if !bound {
            continue;
        }
        if let Ok(ch) = client.get_channel().channel(arn).send().await {
            for d in ch.destinations() {
                out.insert(
                    d.location()
                        .rsplit('/')
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
        }
    }
    Ok(out.into_iter().collect())
}

fn seed_query(store: &str) -> String {
    format!(
        "select\n  eventtime,\n  eventdata.useridentity,\n  eventdata.eventname,\n  eventdata.additionaleventdata\nfrom {store}\norder by eventTime desc\nlimit 10"
    )
}

/// Every UUID-shaped word of `sql`: the store IDs it names.
fn named_ids(sql: &str) -> Vec<String> {
    sql.split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .filter(|w| uuid::Uuid::parse_str(w).is_ok() && w.len() == 36)
        .map(str::to_lowercase)
        .collect()
}

struct Outcome {
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
    error: Option<String>,
}

impl Outcome {
    fn failed(error: String) -> Self {
        Self {
            columns: Vec::new(),
            rows: Vec::new(),
            error: Some(error),
        }
    }
}

/// Where a query of the console stands.
enum Progress {
    /// It ended: its rows, or the lake's reason.
    Ended(Outcome),
    /// Still queued or running, by its ID.
    Running(String),
}

fn aws_message(e: &dyn ct::error::ProvideErrorMetadata) -> String {
    format!(
        "{}: {}",
        e.code().unwrap_or("Error"),
        e.message().unwrap_or("")
    )
}

/// Starts `sql` and follows it for up to [`WAIT`].
async fn run(lake: &LakeConsole, sql: &str) -> Progress {
    let client = lake.client();
    match client.start_query().query_statement(sql).send().await {
        Ok(started) => follow(&client, started.query_id().unwrap_or_default(), WAIT).await,
        Err(e) => Progress::Ended(Outcome::failed(match e.as_service_error() {
            Some(se) => aws_message(se),
            None => format!(
                "the lake did not answer: {}",
                ct::error::DisplayErrorContext(&e)
            ),
        })),
    }
}

/// Follows query `id` until it ends or `wait` has passed, polling as any
/// client does; an ended query comes with its rows or the lake's reason.
async fn follow(client: &ct::Client, id: &str, wait: Duration) -> Progress {
    let deadline = Instant::now() + wait;
    loop {
        match client.describe_query().query_id(id).send().await {
            Ok(d) => match d.query_status().map(|s| s.as_str()) {
                Some("FINISHED") => break,
                Some("QUEUED" | "RUNNING") => {}
                Some(other) => {
                    return Progress::Ended(Outcome::failed(format!(
                        "{other}: {}",
                        d.error_message().unwrap_or("the query did not finish")
                    )))
                }
                None => {
                    return Progress::Ended(Outcome::failed("the lake gave no query status".into()))
                }
            },
            Err(e) => {
                return Progress::Ended(Outcome::failed(format!(
                    "DescribeQuery: {}",
                    ct::error::DisplayErrorContext(&e)
                )))
            }
        }
        if Instant::now() >= deadline {
            return Progress::Running(id.to_owned());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut out = Outcome {
        columns: Vec::new(),
        rows: Vec::new(),
        error: None,
    };
    let mut token = None;
    loop {
        let page = match client
            .get_query_results()
            .query_id(id)
            .set_next_token(token)
            .send()
            .await
        {
            Ok(p) => p,
            Err(e) => {
                return Progress::Ended(Outcome::failed(format!(
                    "GetQueryResults: {}",
                    ct::error::DisplayErrorContext(&e)
                )))
            }
        };
        for row in page.query_result_rows() {
            if out.rows.len() >= MAX_ROWS {
                break;
            }
            let mut cells = Vec::with_capacity(row.len());
            for (i, cell) in row.iter().enumerate() {
                let (k, v) = cell
                    .iter()
                    .next()
                    .map_or((String::new(), String::new()), |(k, v)| {
                        (k.clone(), v.clone())
                    });
                if out.columns.len() <= i {
                    out.columns.push(k);
                }
                cells.push(v);
            }
            out.rows.push(cells);
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() || out.rows.len() >= MAX_ROWS {
            break;
        }
    }
    Progress::Ended(out)
}

/// Bars for a grouped result: two columns, the second numeric.
fn chart(o: &Outcome) -> Value {
    if o.columns.len() != 2 || o.rows.is_empty() {
        return Value::Null;
    }
    let values: Option<Vec<f64>> = o.rows.iter().map(|r| r[1].parse::<f64>().ok()).collect();
    let Some(values) = values else {
        return Value::Null;
    };
    let max = values.iter().copied().fold(0.0_f64, f64::max).max(1e-9);
    let bars: Vec<Value> = o
        .rows
        .iter()
        .zip(&values)
        .take(50)
        .map(|(r, v)| json!({"label": r[0], "value": r[1], "pct": (v / max * 100.0).round()}))
        .collect();
    json!(bars)
}

/// Why a statement may not run here, if it names another store.
fn refused(sql: &str, allowed: &[String]) -> Option<String> {
    let foreign: Vec<String> = named_ids(sql)
        .into_iter()
        .filter(|id| !allowed.contains(id))
        .collect();
    (!foreign.is_empty()).then(|| {
        format!(
            "AccessDeniedException: this console queries only the event data stores of this organization's integrations ({}); not {}",
            if allowed.is_empty() { "none yet".to_owned() } else { allowed.join(", ") },
            foreign.join(", ")
        )
    })
}

async fn setup(
    state: &AppState,
    s: &Signed,
    p: &HashMap<String, String>,
) -> Result<(Org, LakeConsole, Vec<String>), Page> {
    let org = org_for(state, s, p, false).await?;
    let Some(lake) = state.lake.clone() else {
        return Err(Page::error(
            StatusCode::NOT_FOUND,
            "No lake here",
            "This server runs no local lake (it was started with --no-lake), so there is nothing to query.",
            Some(s),
        ));
    };
    let ids = stores(state, &lake, &org).await?;
    Ok((org, lake, ids))
}

pub(crate) async fn page(
    State(state): State<AppState>,
    s: Signed,
    Path(p): Path<HashMap<String, String>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (org, lake, ids) = match setup(&state, &s, &p).await {
        Ok(v) => v,
        Err(page) => return page.into_response(),
    };
    let Some(id) = q.get("query") else {
        let sql = ids.first().map(|id| seed_query(id)).unwrap_or_default();
        return render(&s, &org, &ids, &sql, None).into_response();
    };
    // A query of this console: the lake's account runs every org's, so
    // one is shown only when every store it names is this org's.
    let client = lake.client();
    let sql = match client.describe_query().query_id(id).send().await {
        Ok(d) => d.query_string().unwrap_or_default().to_owned(),
        Err(_) => String::new(),
    };
    if sql.is_empty() || refused(&sql, &ids).is_some() {
        return Page::error(
            StatusCode::NOT_FOUND,
            "No such query",
            "This organization has no query with that ID.",
            Some(&s),
        )
        .into_response();
    }
    let progress = follow(&client, id, Duration::from_secs(2)).await;
    respond(
        &s,
        &org,
        &ids,
        &sql,
        progress,
        q.get("format").map(String::as_str),
    )
}

/// The answer for a query's progress: its page, or its CSV when asked for
/// and it finished.
fn respond(
    s: &Signed,
    org: &Org,
    ids: &[String],
    sql: &str,
    progress: Progress,
    format: Option<&str>,
) -> Response {
    match progress {
        Progress::Ended(outcome) if format == Some("csv") && outcome.error.is_none() => {
            csv(&outcome)
        }
        Progress::Ended(outcome) => render(s, org, ids, sql, Some(&outcome)).into_response(),
        Progress::Running(id) => {
            let mut ctx = s.ctx();
            ctx.insert("org".into(), json!({"id": org.id, "name": org.name}));
            ctx.insert("stores".into(), json!(ids));
            ctx.insert("sql".into(), json!(sql));
            ctx.insert("running".into(), json!(id));
            if format == Some("csv") {
                ctx.insert("csv".into(), json!(true));
            }
            Page::render("console.html", Value::Object(ctx)).into_response()
        }
    }
}

fn render(s: &Signed, org: &Org, ids: &[String], sql: &str, outcome: Option<&Outcome>) -> Page {
    let mut ctx = s.ctx();
    ctx.insert("org".into(), json!({"id": org.id, "name": org.name}));
    ctx.insert("stores".into(), json!(ids));
    ctx.insert("sql".into(), json!(sql));
    if let Some(o) = outcome {
        ctx.insert("columns".into(), json!(o.columns));
        ctx.insert("rows".into(), json!(o.rows));
        ctx.insert("ran".into(), json!(true));
        ctx.insert("lake_error".into(), json!(o.error));
        ctx.insert("chart".into(), chart(o));
    }
    let status = match outcome {
        Some(Outcome { error: Some(_), .. }) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    Page::render("console.html", Value::Object(ctx)).status(status)
}

pub(crate) async fn query(
    State(state): State<AppState>,
    s: Signed,
    Path(p): Path<HashMap<String, String>>,
    form: Form,
) -> Response {
    let (org, lake, ids) = match setup(&state, &s, &p).await {
        Ok(v) => v,
        Err(page) => return page.into_response(),
    };
    if let Err(page) = s.check_csrf(&form) {
        return page.into_response();
    }
    let sql = form.get("sql").trim().to_owned();
    let progress = if sql.is_empty() {
        Progress::Ended(Outcome::failed("Enter a query.".into()))
    } else if let Some(why) = refused(&sql, &ids) {
        Progress::Ended(Outcome::failed(why))
    } else {
        run(&lake, &sql).await
    };
    let format = form.get("format");
    if let Progress::Running(id) = &progress {
        // Followed from here by the page of the query, which reloads
        // itself until the query ends.
        let csv = if format == "csv" { "&format=csv" } else { "" };
        return Redirect::to(&format!("/orgs/{}/lake?query={id}{csv}", org.id)).into_response();
    }
    respond(&s, &org, &ids, &sql, progress, Some(format))
}

/// A cell as it goes into the CSV download. A cell that starts with `=`,
/// `+`, `-`, `@`, a tab or a carriage return is a formula to a spreadsheet,
/// and event data is written by whoever sends events: such a cell gets a
/// leading `'`, as OWASP's CSV injection advice says, so it opens as text.
fn neutralised(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

fn csv(o: &Outcome) -> Response {
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    // Writing to memory fails only if memory does.
    for line in std::iter::once(&o.columns).chain(&o.rows) {
        out.write_record(line.iter().map(|v| neutralised(v).into_owned()))
            .expect("writing CSV to memory");
    }
    let body = out.into_inner().expect("writing CSV to memory");
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"query-results.csv\"",
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_naming_other_stores_are_refused() {
        let mine = "0190f5b2-0000-7000-8000-000000000001".to_owned();
        let allowed = vec![mine.clone()];
        assert!(refused(&format!("select * from {mine}"), &allowed).is_none());
        assert!(refused(&format!("select * from {}", mine.to_uppercase()), &allowed).is_none());
        let other = "0190f5b2-0000-7000-8000-000000000002";
        let why = refused(
            &format!("select * from {mine} join {other} on true"),
            &allowed,
        )
        .unwrap();
        assert!(why.contains(other));
        assert!(refused(&format!("select * from \"{other}\""), &allowed).is_some());
    }

    #[tokio::test]
    async fn grouped_results_get_a_chart_and_csv_is_quoted() {
        let o = Outcome {
            columns: vec!["name".into(), "n".into()],
            rows: vec![
                vec!["a,b".into(), "4".into()],
                vec!["c\"d".into(), "2".into()],
            ],
            error: None,
        };
        let c = chart(&o);
        assert_eq!(c[0]["pct"], 100.0);
        assert_eq!(c[1]["pct"], 50.0);
        let res = csv(&o);
        assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        assert_eq!(body, "name,n\r\n\"a,b\",4\r\n\"c\"\"d\",2\r\n");
    }

    /// Cells a spreadsheet would run as formulas open as text (OWASP's
    /// CSV injection advice); others, negative numbers included, only
    /// where they start with one of the characters.
    #[tokio::test]
    async fn csv_cells_that_start_a_formula_are_neutralised() {
        let o = Outcome {
            columns: vec!["v".into()],
            rows: [
                "=HYPERLINK(\"http://x\")",
                "+1+1",
                "-2",
                "@SUM(A1)",
                "\tx",
                "\rx",
                "a=b",
                "ok",
            ]
            .iter()
            .map(|v| vec![(*v).to_owned()])
            .collect(),
            error: None,
        };
        let body = axum::body::to_bytes(csv(&o).into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert_eq!(
            text,
            "v\r\n\"'=HYPERLINK(\"\"http://x\"\")\"\r\n'+1+1\r\n'-2\r\n'@SUM(A1)\r\n'\tx\r\n\"'\rx\"\r\na=b\r\nok\r\n"
        );
    }
}
