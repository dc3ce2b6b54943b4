//! The harness every API test shares: a real server on `127.0.0.1:0` over a
//! fresh database, a tenant bootstrapped through the store, and an HTTP
//! client speaking to it over real sockets.
//!
//! `api_test!(name, |h| async move { .. })` defines `name::sqlite` and
//! `name::postgres`. Each run gets its own database ([`TestDb`]), starts
//! [`auditlake_api::serve`] exactly as the binary does, and afterwards shuts
//! the server down gracefully through a oneshot, closes the store and drops
//! the database, also when the body panicked.
//!
//! Every response passes through [`Api::send`], which checks the invariants
//! that hold for all of them: under `/rest` a request ID, the JSON:API media
//! type and a well-formed document (errors included); under `/v1` plain JSON
//! and v1's error shape.

use std::future::Future;
use std::net::SocketAddr;
use std::ops::Deref;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::time::Duration;

use futures::FutureExt as _;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub use auditlake_core::{time_fmt, Actor, AuditEvent, Group, Org, Scope, User};
pub use auditlake_lake::testing::{LocalLake, OWNER};
pub use auditlake_store::testing::TestDb;
pub use auditlake_store::{Backend, Store};

/// The version the helpers add to `/rest` paths: on or after every
/// resource's first release.
pub const VERSION: &str = "2024-10-15";
/// JSON:API media type.
pub const JSONAPI: &str = "application/vnd.api+json";
/// The user agent of the test client, expected on recorded events.
pub const UA: &str = "auditlake-api-tests/1.0";

/// Defines one test per backend: `api_test!(name, |h| async move { .. })`
/// expands to `name::sqlite` and `name::postgres`; `h` is a `&Harness`.
/// `api_test!(name, with_lake, |h| ..)` runs a local lake beside the server
/// (see [`Harness::lake`]); `api_test!(name, with_defaults, |h| ..)` runs
/// the server with the defaults the harness otherwise loosens (see
/// [`Options`]).
macro_rules! api_test {
    ($name:ident, |$h:ident| $body:expr) => {
        $crate::common::api_test!(
            $name,
            $crate::common::Options {
                lake: false,
                defaults: false
            },
            |$h| $body
        );
    };
    ($name:ident, with_lake, |$h:ident| $body:expr) => {
        $crate::common::api_test!(
            $name,
            $crate::common::Options {
                lake: true,
                defaults: false
            },
            |$h| $body
        );
    };
    ($name:ident, with_defaults, |$h:ident| $body:expr) => {
        $crate::common::api_test!(
            $name,
            $crate::common::Options {
                lake: false,
                defaults: true
            },
            |$h| $body
        );
    };
    ($name:ident, $lake:expr, |$h:ident| $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($h: &$crate::common::Harness) {
                $body.await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::common::Harness::run($crate::common::Backend::Sqlite, $lake, |h| {
                    Box::pin(run(h))
                })
                .await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::common::Harness::run($crate::common::Backend::Postgres, $lake, |h| {
                    Box::pin(run(h))
                })
                .await
            }
        }
    };
}
pub(crate) use api_test;

/// How a test's server is set up.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// A local lake beside the server, for the query console.
    pub lake: bool,
    /// The server's own defaults. Otherwise the harness opens a long import
    /// window for ingested events and lets admins add any user, so that
    /// most tests can date events freely and add users they just made.
    pub defaults: bool,
}

/// The future of one test body, borrowing the harness.
pub type Body<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// A running server, its database and the first tenant.
pub struct Harness {
    /// Client of the bootstrapped user.
    api: Api,
    /// The server's store, for set-up the API cannot do and for looking at
    /// what was stored.
    pub store: Store,
    /// The bootstrapped user.
    pub user: User,
    /// The user's API token.
    pub token: String,
    /// A group the user administers.
    pub group: Group,
    /// An org inside `group`.
    pub org: Org,
    /// The lake the dashboard's console queries, as [`OWNER`]; only in
    /// tests declared `with_lake`.
    pub lake: Option<LocalLake>,
    /// The lake's directory.
    _lake_dir: Option<tempfile::TempDir>,
    /// Fires the server's graceful shutdown.
    shutdown: Option<oneshot::Sender<()>>,
    /// The server task.
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl Deref for Harness {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Harness {
    /// Runs `body` against a fresh server on `backend`, then tears it all
    /// down; a panic in `body` is re-raised after the clean-up.
    /// With `lake`, a local lake runs beside it for the query console.
    pub async fn run(
        backend: Backend,
        options: Options,
        body: impl for<'a> FnOnce(&'a Harness) -> Body<'a>,
    ) {
        let db = TestDb::new(backend).await;
        let h = Harness::start(&db, options).await;
        let outcome = AssertUnwindSafe(body(&h)).catch_unwind().await;
        h.stop().await;
        db.cleanup().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    async fn start(db: &TestDb, options: Options) -> Harness {
        let with_lake = options.lake;
        let store = db.store().await;
        let user = store
            .create_user("owner@example.com", "Owner")
            .await
            .expect("create user");
        let actor = Actor::user(user.id);
        let group = store
            .create_group("Acme Group", &actor)
            .await
            .expect("create group");
        let org = store
            .create_org("Acme", Some(group.id), &actor)
            .await
            .expect("create org");
        let token = store
            .create_token(user.id, "tests", None, &actor)
            .await
            .expect("create token")
            .secret;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let mut state = auditlake_api::AppState::new(store.clone());
        if !options.defaults {
            state.ingest_import_window_us = 20 * 366 * 86_400_000_000;
            state.membership_adds = auditlake_api::MembershipAdds::Anyone;
        }
        let (lake, lake_dir) = if with_lake {
            let dir = tempfile::tempdir().expect("lake directory");
            // Limits small enough for a test to meet them quickly.
            let limits = auditlake_lake::QueryLimits {
                timeout: Duration::from_secs(4),
                memory_limit: 256 << 20,
                ..Default::default()
            };
            let lake = LocalLake::start_with(dir.path(), limits).await;
            let key = auditlake_lake::testing::key(OWNER);
            state.lake = Some(auditlake_api::LakeConsole {
                endpoint: lake.url.clone(),
                key,
            });
            (Some(lake), Some(dir))
        } else {
            (None, None)
        };
        let server = tokio::spawn(auditlake_api::serve(listener, state, async move {
            let _ = rx.await;
        }));
        let http = reqwest::Client::builder()
            .user_agent(UA)
            .no_proxy()
            .build()
            .expect("client");
        Harness {
            api: Api {
                http,
                base: format!("http://{addr}"),
                token: Some(token.clone()),
            },
            store,
            user,
            token,
            group,
            org,
            lake,
            _lake_dir: lake_dir,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            // A bound, not a sleep: a server that does not stop fails the
            // test instead of hanging it.
            match tokio::time::timeout(Duration::from_secs(30), server).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => panic!("server failed: {e}"),
                Ok(Err(e)) => panic!("server task failed: {e}"),
                Err(_) => panic!("server did not shut down within 30 s"),
            }
        }
        self.store.close().await;
    }

    /// A new user with an API token, and a client acting as them.
    pub async fn new_user(&self, email: &str) -> (User, Api) {
        let user = self
            .store
            .create_user(email, &format!("User {email}"))
            .await
            .expect("create user");
        let token = self
            .store
            .create_token(user.id, "tests", None, &Actor::user(user.id))
            .await
            .expect("create token");
        (user, self.api.with_token(&token.secret))
    }

    /// A new user who is a member of the harness's org, with a client.
    pub async fn new_member(&self, email: &str) -> (User, Api) {
        let (user, api) = self.new_user(email).await;
        self.store
            .add_member(
                Scope::Org(self.org.id),
                user.id,
                auditlake_core::Role::OrgMember,
                &Actor::user(self.user.id),
            )
            .await
            .expect("add member");
        (user, api)
    }

    /// The ID of the harness user's token: the mark ingested events carry.
    pub async fn token_id(&self) -> uuid::Uuid {
        self.store
            .authenticate(&self.token)
            .await
            .expect("authenticate")
            .expect("a valid token")
            .1
            .id
    }

    /// A second tenant: a user with a standalone org of their own.
    pub async fn new_tenant(&self, email: &str, org_name: &str) -> Tenant {
        let (user, api) = self.new_user(email).await;
        let org = self
            .store
            .create_org(org_name, None, &Actor::user(user.id))
            .await
            .expect("create org");
        Tenant { user, api, org }
    }

    /// A standalone org of the bootstrapped user, made through the store.
    pub async fn standalone_org(&self, name: &str) -> Org {
        self.store
            .create_org(name, None, &Actor::user(self.user.id))
            .await
            .expect("create org")
    }

    /// The newest `seq` of the log.
    pub async fn head(&self) -> i64 {
        self.store.head().await.expect("head")
    }

    /// Events appended after `seq`, in append order.
    pub async fn log_since(&self, seq: i64) -> Vec<AuditEvent> {
        self.store.read_log(seq, 1_000_000).await.expect("read log")
    }

    /// Events appended after `seq` other than `api.access`.
    pub async fn changes_since(&self, seq: i64) -> Vec<AuditEvent> {
        self.log_since(seq)
            .await
            .into_iter()
            .filter(|e| e.event != "api.access")
            .collect()
    }
}

/// Another user with a standalone org.
pub struct Tenant {
    /// The user.
    pub user: User,
    /// A client acting as the user.
    pub api: Api,
    /// The user's org.
    pub org: Org,
}

/// An HTTP client of the server, acting as one user (or nobody).
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    token: Option<String>,
}

impl Api {
    /// The same server, acting with `token`.
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// The API token this client sends.
    pub fn token(&self) -> &str {
        self.token.as_deref().expect("a client with a token")
    }

    /// The same server, without credentials.
    pub fn anonymous(&self) -> Api {
        Api {
            token: None,
            ..self.clone()
        }
    }

    /// The absolute URL of `path`, with `version` added to `/rest` paths
    /// that do not name one.
    pub fn url(&self, path: &str) -> String {
        let has_version = path
            .split_once('?')
            .is_some_and(|(_, q)| q.split('&').any(|kv| kv.starts_with("version=")));
        if path.starts_with("/rest") && !has_version {
            let sep = if path.contains('?') { '&' } else { '?' };
            format!("{}{path}{sep}version={VERSION}", self.base)
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// A request to `path` exactly as given (no version added), with the
    /// client's credentials.
    pub fn raw(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.authed(self.http.request(method, format!("{}{path}", self.base)))
    }

    /// A request to `path` with the version added, with credentials.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.authed(self.http.request(method, self.url(path)))
    }

    fn authed(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => rb.header("authorization", format!("token {t}")),
            None => rb,
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Resp {
        send(self.request(Method::GET, path)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Resp {
        send(self.request(Method::DELETE, path)).await
    }

    /// `POST path` with a JSON:API body.
    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        send(self.with_body(Method::POST, path, body)).await
    }

    /// `PATCH path` with a JSON:API body.
    pub async fn patch(&self, path: &str, body: &Value) -> Resp {
        send(self.with_body(Method::PATCH, path, body)).await
    }

    fn with_body(&self, method: Method, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.request(method, path)
            .header("content-type", JSONAPI)
            .body(body.to_string())
    }

    /// `POST /v1/...` with `application/json`.
    pub async fn v1(&self, path: &str, body: &Value) -> Resp {
        send(
            self.raw(Method::POST, path)
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    /// Ingests `data` (one event or an array) into the tenant at `base`
    /// (`/rest/orgs/{id}` or `/rest/groups/{id}`).
    pub async fn ingest(&self, base: &str, data: Value) -> Resp {
        self.post(
            &format!("{base}/audit_logs/events"),
            &json!({ "data": data }),
        )
        .await
    }

    /// One page of an audit search of the tenant at `base`, which must
    /// succeed; `query` is appended as is.
    pub async fn search(&self, base: &str, query: &str) -> Resp {
        let r = self.get(&format!("{base}/audit_logs/search?{query}")).await;
        r.expect(200);
        r
    }

    /// The items of one search page.
    pub async fn search_items(&self, base: &str, query: &str) -> Vec<Value> {
        items(&self.search(base, query).await)
    }

    /// Every item of a search, following `links.next` to the end.
    pub async fn search_all(&self, base: &str, query: &str) -> Vec<Value> {
        let mut r = self.search(base, query).await;
        let mut all = items(&r);
        while let Some(next) = r.body["links"]["next"].as_str() {
            r = self.get(next).await;
            r.expect(200);
            all.extend(items(&r));
        }
        all
    }
}

/// The items of a search answer.
pub fn items(r: &Resp) -> Vec<Value> {
    r.body["data"]["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no data.items in {}", r.text))
        .clone()
}

/// An audit event to ingest.
pub fn event(idem: &str, name: &str, content: Value) -> Value {
    json!({
        "type": "audit_event",
        "attributes": { "idempotency_id": idem, "event": name, "content": content }
    })
}

/// [`event`] with more attributes merged in.
pub fn event_with(idem: &str, name: &str, content: Value, extra: Value) -> Value {
    let mut e = event(idem, name, content);
    for (k, v) in extra.as_object().expect("extra is an object") {
        e["attributes"][k] = v.clone();
    }
    e
}

/// Now, epoch microseconds.
pub fn now_us() -> i64 {
    time_fmt::now_micros()
}

/// `us` as RFC 3339, the way the API renders times.
pub fn at(us: i64) -> String {
    time_fmt::format_micros(us)
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    serde_urlencoded::to_string([("", s)]).expect("encode")[1..].to_owned()
}

/// An event's payload, parsed.
pub fn content(e: &AuditEvent) -> Value {
    serde_json::from_str(&e.content).expect("content is JSON")
}

/// The names of `events`, in order.
pub fn names(events: &[AuditEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event.as_str()).collect()
}

/// A field of each item, as a string.
pub fn field(items: &[Value], name: &str) -> Vec<String> {
    items
        .iter()
        .map(|i| i[name].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    /// `METHOD url`, for messages.
    pub request: String,
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body as text.
    pub text: String,
    /// Body parsed as JSON; `Null` when empty or not JSON.
    pub body: Value,
}

/// A client that shows redirects instead of following them, as the
/// dashboard's tests need.
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of cookie `name` among a response's `Set-Cookie` headers,
/// with the whole header (for its attributes).
pub fn set_cookie(res: &reqwest::Response, name: &str) -> Option<(String, String)> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| {
            let value = c[name.len() + 1..].split(';').next().unwrap().to_owned();
            (value, c.to_owned())
        })
}

/// Submits the dashboard's sign-in form with `fields` (`token`, or
/// `email` and `password`) and the login CSRF cookie and field a browser
/// would send; returns the answer (a 303 with the session cookie when the
/// credentials are good).
pub async fn sign_in_answer(
    http: &reqwest::Client,
    base: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let page = http.get(format!("{base}/login")).send().await.unwrap();
    let (csrf, _) = set_cookie(&page, "auditlake_login_csrf").expect("login CSRF cookie");
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    http.post(format!("{base}/login"))
        .header("cookie", format!("auditlake_login_csrf={csrf}"))
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// Sends `rb` and checks the invariants every answer keeps.
pub async fn send(rb: reqwest::RequestBuilder) -> Resp {
    let (client, req) = rb.build_split();
    let req = req.expect("request");
    let request = format!("{} {}", req.method(), req.url());
    let path = req.url().path().to_owned();
    let res = client
        .execute(req)
        .await
        .unwrap_or_else(|e| panic!("{request}: {e}"));
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("{request}: {e}"));
    let text = String::from_utf8(bytes.to_vec())
        .unwrap_or_else(|_| panic!("{request}: body is not UTF-8"));
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    let r = Resp {
        request,
        status,
        headers,
        text,
        body,
    };
    if path.starts_with("/rest/") {
        r.check_rest();
    } else if path.starts_with("/v1/") {
        r.check_v1();
    }
    r
}

impl Resp {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("header is text"))
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "{}: expected {status}, got {}: {}",
            self.request, self.status, self.text
        );
        self
    }

    /// Asserts a JSON:API error document with `status` and returns its one
    /// error object.
    #[track_caller]
    pub fn error(&self, status: u16) -> &Value {
        self.expect(status);
        let errors = self.body["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no errors member: {}", self.request, self.text));
        assert_eq!(errors.len(), 1, "{}", self.text);
        &errors[0]
    }

    /// Asserts a JSON:API error with `status` whose `source` is
    /// `{kind: value}` (`kind` is `pointer`, `parameter` or `header`).
    #[track_caller]
    pub fn error_at(&self, status: u16, kind: &str, value: &str) -> &Value {
        let e = self.error(status);
        assert_eq!(
            e["source"],
            json!({ kind: value }),
            "{}: wrong error source: {}",
            self.request,
            self.text
        );
        e
    }

    /// Asserts a JSON:API error with `status` and no `source`.
    #[track_caller]
    pub fn error_nowhere(&self, status: u16) -> &Value {
        let e = self.error(status);
        assert!(e.get("source").is_none(), "{}: {}", self.request, self.text);
        e
    }

    /// Asserts a v1 error `{"code","message","error"}` with `status`.
    #[track_caller]
    pub fn v1_error(&self, status: u16) -> &str {
        self.expect(status);
        let obj = self
            .body
            .as_object()
            .unwrap_or_else(|| panic!("{}", self.text));
        assert_eq!(obj.len(), 3, "{}", self.text);
        assert_eq!(self.body["code"], json!(status), "{}", self.text);
        assert!(
            self.body["error"].as_str().is_some_and(|s| !s.is_empty()),
            "{}",
            self.text
        );
        self.body["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{}", self.text))
    }

    /// Every `/rest` answer: a request ID; a JSON:API document of the
    /// JSON:API media type unless 204; errors well formed.
    #[track_caller]
    fn check_rest(&self) {
        let id = self
            .header("snyk-request-id")
            .unwrap_or_else(|| panic!("{}: no snyk-request-id", self.request));
        assert!(
            Uuid::parse_str(id).is_ok(),
            "{}: request id {id:?}",
            self.request
        );
        if self.status == 204 {
            assert!(self.text.is_empty(), "{}: 204 with a body", self.request);
            return;
        }
        assert_eq!(
            self.header("content-type"),
            Some(JSONAPI),
            "{}: content type of a {} answer",
            self.request,
            self.status
        );
        assert_eq!(
            self.body["jsonapi"],
            json!({"version": "1.0"}),
            "{}: not a JSON:API document: {}",
            self.request,
            self.text
        );
        if self.status >= 400 {
            let errors = self.body["errors"]
                .as_array()
                .unwrap_or_else(|| panic!("{}: error without errors: {}", self.request, self.text));
            assert!(!errors.is_empty());
            for e in errors {
                assert_eq!(e["status"], json!(self.status.to_string()), "{}", self.text);
                for member in ["detail", "title", "code", "id"] {
                    assert!(
                        e[member].as_str().is_some_and(|s| !s.is_empty()),
                        "{}: error without {member}: {}",
                        self.request,
                        self.text
                    );
                }
            }
            assert!(self.body.get("data").is_none(), "{}", self.text);
        } else {
            assert!(
                self.body.get("data").is_some(),
                "{}: no data: {}",
                self.request,
                self.text
            );
        }
    }

    /// Every `/v1` answer is JSON; errors have v1's shape.
    #[track_caller]
    fn check_v1(&self) {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{}: {}",
            self.request,
            self.text
        );
        if self.status >= 400 {
            self.v1_error(self.status);
        } else {
            assert!(self.body.is_array(), "{}: {}", self.request, self.text);
        }
    }
}
