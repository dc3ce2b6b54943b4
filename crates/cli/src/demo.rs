//! `auditlake demo`: the server on the embedded default with demo tenants,
//! and a generator that acts as a few users through the real HTTP API, so
//! the log fills with realistic events (settings edits with before/after,
//! members added and removed, projects from another application through
//! the ingest API, and `api.access` for every call).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use rand::seq::IndexedRandom;
use rand::Rng;
use serde_json::{json, Value};
use uuid::Uuid;

use auditlake_core::{Actor, Role, Scope};
use auditlake_store::{Page, Store};

use crate::config::{DataDir, DbArgs};
use crate::forward::{Endpoint, ForwardOptions};
use crate::lake::LakeOptions;
use crate::serve::{serve_on, Bound, LakeRun, LimitOptions, DEFAULT_LISTEN};

/// Flags of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address to listen on
    #[arg(long, env = "AUDITLAKE_LISTEN", default_value = DEFAULT_LISTEN)]
    listen: String,
    /// Directory for the demo's database and lake: apart from --data-dir,
    /// so that a demo never writes into a deployment's state
    #[arg(
        long = "data-dir",
        id = "demo_data_dir",
        env = "AUDITLAKE_DEMO_DATA_DIR",
        default_value = "./data/demo"
    )]
    data_dir: PathBuf,
    /// Actions per second the demo users perform (0: none)
    #[arg(long, default_value_t = 2.0)]
    rate: f64,
    #[command(flatten)]
    lake: LakeOptions,
    #[command(flatten)]
    forward: ForwardOptions,
    #[command(flatten)]
    limits: LimitOptions,
}

const ADMIN_EMAIL: &str = "admin@demo.auditlake.test";

/// The demo world.
struct World {
    group: Uuid,
    orgs: Vec<(Uuid, String)>,
    /// (user id, email, token) of each demo user.
    users: Vec<(Uuid, String, String)>,
}

async fn world(store: &Store) -> anyhow::Result<World> {
    let admin = match store.user_by_email(ADMIN_EMAIL).await? {
        Some(u) => u,
        None => create_world(store).await?,
    };
    let group = store
        .groups_of(admin.id, Page::default())
        .await?
        .items
        .into_iter()
        .next()
        .context("the demo admin has no group; delete the demo data directory")?;
    let mut orgs: Vec<(Uuid, String)> = store
        .orgs_of(
            admin.id,
            Page {
                limit: 100,
                ..Page::default()
            },
        )
        .await?
        .items
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect();
    orgs.sort_by(|a, b| a.1.cmp(&b.1));
    let mut users = Vec::new();
    for email in [
        ADMIN_EMAIL,
        "alice@demo.auditlake.test",
        "bob@demo.auditlake.test",
    ] {
        let u = store
            .user_by_email(email)
            .await?
            .context("demo user missing")?;
        let t = store
            .create_token(u.id, "demo", None, &Actor::user(u.id))
            .await?;
        users.push((u.id, u.email, t.secret));
    }
    Ok(World {
        group: group.id,
        orgs,
        users,
    })
}

async fn create_world(store: &Store) -> anyhow::Result<auditlake_core::User> {
    let admin = store.create_user(ADMIN_EMAIL, "Dana Admin").await?;
    let actor = Actor::user(admin.id);
    let group = store.create_group("Acme Corp", &actor).await?;
    let payments = store.create_org("Payments", Some(group.id), &actor).await?;
    let platform = store.create_org("Platform", Some(group.id), &actor).await?;
    // A standalone org that joins the group later, as in the seed's story.
    let labs = store.create_org("Labs", None, &actor).await?;
    store.add_org_to_group(group.id, labs.id, &actor).await?;
    let alice = store
        .create_user("alice@demo.auditlake.test", "Alice Developer")
        .await?;
    let bob = store
        .create_user("bob@demo.auditlake.test", "Bob Security")
        .await?;
    store
        .add_member(Scope::Org(payments.id), alice.id, Role::OrgAdmin, &actor)
        .await?;
    store
        .add_member(Scope::Org(platform.id), alice.id, Role::OrgMember, &actor)
        .await?;
    store
        .add_member(Scope::Org(payments.id), bob.id, Role::OrgMember, &actor)
        .await?;
    store
        .add_member(Scope::Org(platform.id), bob.id, Role::OrgAdmin, &actor)
        .await?;
    Ok(admin)
}

/// Runs `demo`.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let db = DbArgs {
        dir: DataDir {
            data_dir: args.data_dir.clone(),
        },
        database_url: None,
    };
    let store = db.open_store().await?;
    let world = world(&store).await?;
    let lake = args.lake.open(&args.data_dir).await?;
    let notice = crate::lake::credentials_notice(&lake);
    let key = args.lake.client_key(&args.data_dir)?;
    let run = LakeRun {
        lake,
        listen: args.lake.lake_listen.clone(),
        key: key.clone(),
    };
    // The demo forwards into its own lake unless told otherwise.
    let mut forwarding = args.forward.plan()?;
    if let Some(f) = forwarding.as_mut() {
        if args.forward.cloudtrail_endpoint.is_none() {
            f.endpoint = Endpoint::Local;
        }
    }
    let local = matches!(
        forwarding.as_ref().map(|f| &f.endpoint),
        Some(Endpoint::Local)
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<Bound>();
    let server = tokio::spawn({
        let store = store.clone();
        let listen = args.listen.clone();
        let limits = args.limits.clone();
        let serve_limits = args.lake.serve_limits();
        async move {
            serve_on(
                store,
                &listen,
                Some(run),
                forwarding,
                &limits,
                serve_limits,
                move |bound| {
                    let _ = tx.send(bound);
                },
            )
            .await
        }
    });
    let bound = match rx.await {
        Ok(bound) => bound,
        Err(_) => return server.await?,
    };
    let lake_store = match (bound.lake, local) {
        (Some(lake_addr), true) => Some(
            connect_group(&store, &world, bound.api, lake_addr, &key)
                .await
                .context("registering the demo group with the local lake")?,
        ),
        _ => None,
    };
    banner(bound.api, &world, args.limits.metrics_token.is_some());
    if let (Some(eds), Some(lake_addr)) = (lake_store, bound.lake) {
        lake_banner(&eds, lake_addr, &args.data_dir);
    }
    if let Some(notice) = notice {
        say!("{notice}");
    }
    if args.rate > 0.0 {
        tokio::spawn(generate(format!("http://{}", bound.api), world, args.rate));
    }
    server.await?
}

/// Makes sure the demo group streams into the local lake: a store, a
/// channel with the group's External ID and a group registration made
/// with the seed's REST request. Returns the event data store ID.
async fn connect_group(
    store: &Store,
    w: &World,
    api: SocketAddr,
    lake: SocketAddr,
    key: &auditlake_lake::AccessKey,
) -> anyhow::Result<String> {
    let lake_url = format!("http://{lake}");
    let control = auditlake_cloudtrail::client::control(&lake_url, key, "us-east-1");
    let existing = store
        .integrations_of(Scope::Group(w.group), Page::default())
        .await?
        .items
        .into_iter()
        .next();
    if let Some(reg) = &existing {
        // Restarted: the registration's channel still feeds a store.
        if let Ok(ch) = control
            .get_channel()
            .channel(&reg.config.channel_arn)
            .send()
            .await
        {
            if let Some(loc) = ch.destinations().first().map(|d| d.location()) {
                return Ok(loc.rsplit('/').next().unwrap_or(loc).to_owned());
            }
        }
    }
    let setup = auditlake_cloudtrail::client::setup(
        &control,
        "auditlake-demo",
        &w.group.to_string(),
        &key.account_id,
        90,
    )
    .await?;
    let (_, _, token) = &w.users[0];
    let body = json!({"data": {"type": "group_registration", "attributes": {
        "type": "aws-cloudtrail",
        "name": "Demo lake",
        "config": {"account_id": key.account_id, "channel_arn": setup.channel_arn}}}});
    let base = format!(
        "http://{api}/rest/groups/{}/cloud_events/group_registrations",
        w.group
    );
    let http = reqwest::Client::new();
    let req = match &existing {
        // The lake was wiped: point the registration at the new channel.
        Some(reg) => {
            let mut body = body;
            body["data"]["id"] = json!(reg.id);
            http.patch(format!("{base}/{}?version=2023-01-25~experimental", reg.id))
                .body(body.to_string())
        }
        None => http
            .post(format!("{base}?version=2023-01-25~experimental"))
            .body(body.to_string()),
    };
    let res = req
        .header("authorization", format!("token {token}"))
        .header("content-type", "application/vnd.api+json")
        .send()
        .await?;
    anyhow::ensure!(
        res.status().is_success(),
        "the group registration request failed: {} {}",
        res.status(),
        res.text().await.unwrap_or_default()
    );
    Ok(setup.event_data_store_id)
}

fn lake_banner(eds: &str, lake: SocketAddr, data_dir: &std::path::Path) {
    let sql = format!(
        "select eventtime, eventdata.useridentity, eventdata.eventname, \
         eventdata.additionaleventdata from {eds} order by eventTime desc limit 10"
    );
    say!(
        "The group's events stream into the local CloudTrail Lake (http://{lake}),\n\
         event data store {eds}. The seed's query:\n\n  \
         auditlake lake query --data-dir {dir} --endpoint http://{lake} \"{sql}\"\n",
        dir = data_dir.display()
    );
}

/// The demo's welcome: where it serves, as whom, and requests to try.
/// `/metrics` is mentioned only when it is on (`--metrics-token`).
fn banner(addr: SocketAddr, w: &World, metrics: bool) {
    let base = format!("http://{addr}");
    let metrics = if metrics {
        format!("    metrics: {base}/metrics (Authorization: Bearer <--metrics-token>)")
    } else {
        String::new()
    };
    let (_, email, token) = &w.users[0];
    let org = w.orgs.first().map(|o| o.0).unwrap_or_default();
    say!(
        "\nauditlake demo is running.\n\n\
         url:      {base}\n\
         token:    {token}   ({email}, admin of group \"Acme Corp\")\n\
         group_id: {group}\n",
        group = w.group
    );
    for (id, name) in &w.orgs {
        say!("org:      {id}   {name}");
    }
    say!(
        "\nTry:\n  \
         curl -s -H 'Authorization: token {token}' '{base}/rest/groups/{group}/audit_logs/search?version=2023-09-11&size=5'\n  \
         curl -s -H 'Authorization: token {token}' '{base}/rest/orgs/{org}/audit_logs/search?version=2023-09-11&events=api.access&size=5'\n  \
         curl -s -X POST -H 'Authorization: token {token}' -H 'Content-Type: application/json' '{base}/v1/org/{org}/audit' -d '{{\"filters\":{{}}}}'\n  \
         OpenAPI: {base}/openapi.json{metrics}\n  \
         Dashboard: {base}/ (sign in with the token)\n\n\
         Demo users act every few seconds; stop with Ctrl-C.\n",
        group = w.group
    );
}

/// Acts as the demo users at about `rate` actions per second, forever.
async fn generate(base: String, w: World, rate: f64) {
    let http = reqwest::Client::new();
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut tick = tokio::time::interval(period);
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        let action = {
            let mut rng = rand::rng();
            let (user, _, token) = w.users.choose(&mut rng).cloned().expect("demo users");
            let (org, _) = *w.orgs.choose(&mut rng).expect("demo orgs");
            let pick = rng.random_range(0..10u8);
            (user, token, org, pick, rng.random_range(1..=50u32))
        };
        let (user, token, org, pick, x) = action;
        let res = match pick {
            0..=2 => {
                let (key, value) = match x % 3 {
                    0 => ("require_mfa", json!(x % 2 == 0)),
                    1 => (
                        "default_severity_threshold",
                        json!(["low", "medium", "high"][(x % 3) as usize]),
                    ),
                    _ => ("retention_days", json!(30 + x)),
                };
                send(&http, reqwest::Method::PATCH, &base, &format!("/rest/orgs/{org}?version=2024-10-15"), &token,
                    Some(json!({"data": {"type": "org", "id": org, "attributes": {"settings": {key: value}}}})), false).await
            }
            3..=5 => {
                let event = [
                    "org.project.add",
                    "org.project.test",
                    "org.target.create",
                    "org.webhook.add",
                ][(x % 4) as usize];
                let project = format!("proj-{}", x % 7);
                send(
                    &http,
                    reqwest::Method::POST,
                    &base,
                    &format!("/rest/orgs/{org}/audit_logs/events?version=2024-10-15"),
                    &token,
                    Some(json!({"data": {"type": "audit_event", "attributes": {
                        "idempotency_id": format!("demo-{}", Uuid::now_v7()),
                        "event": event, "user_id": user, "project_id": project,
                        "content": {"projectName": project, "origin": "github", "run": n}}}})),
                    false,
                )
                .await
            }
            6..=8 => {
                send(
                    &http,
                    reqwest::Method::GET,
                    &base,
                    &format!("/rest/orgs/{org}/audit_logs/search?version=2023-09-11&size=10"),
                    &token,
                    None,
                    false,
                )
                .await
            }
            _ => {
                send(
                    &http,
                    reqwest::Method::POST,
                    &base,
                    &format!("/v1/org/{org}/audit"),
                    &token,
                    Some(json!({"filters": {"event": "org.settings.edit"}})),
                    true,
                )
                .await
            }
        };
        if let Err(e) = res {
            tracing::warn!(error = %e, "demo action failed");
        }
    }
}

async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    base: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
    v1: bool,
) -> anyhow::Result<()> {
    let mut req = http
        .request(method, format!("{base}{path}"))
        .header("authorization", format!("token {token}"))
        .header("user-agent", "auditlake-demo/1.0");
    if let Some(b) = body {
        let ct = if v1 {
            "application/json"
        } else {
            "application/vnd.api+json"
        };
        req = req.header("content-type", ct).body(b.to_string());
    }
    let res = req.send().await?;
    // 403/404 are expected when a member tries an admin action: that too
    // is an audited access.
    if res.status().is_server_error() {
        anyhow::bail!("{path}: {}", res.status());
    }
    Ok(())
}
