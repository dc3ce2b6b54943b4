//! Delivery through a faulty network: a test peer between the forwarder
//! and the real lake answers each call, at random, with throttling, 5xx,
//! a timeout, a connection dropped after the lake stored the batch, a
//! partial per-entry failure, or a permission refusal, and otherwise passes
//! it through. In the end every event is in the lake, exactly once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use auditlake_cloudtrail::client::setup;
use auditlake_core::integration::CloudTrailConfig;
use auditlake_core::{Actor, NewEvent, Scope};
use auditlake_forwarder::{Backoff, ForwarderConfig, Target};
use auditlake_lake::testing::{key, LocalLake, OWNER, PARTNER};
use auditlake_store::store_test;
use auditlake_testkit::wait_until;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rand::Rng as _;
use serde_json::{json, Value};

/// The faults the peer plays, in order of `Peer::counts`.
const FAULTS: [&str; 7] = [
    "pass",
    "throttle",
    "5xx",
    "timeout",
    "drop_after_store",
    "partial",
    "permission",
];

/// How long the forwarder may take to deliver the 1,000 events through
/// the faults; a real database and a real lake take part, so this is real
/// time.
const DRAIN_WITHIN: Duration = Duration::from_secs(60);

/// How long the lake may take to count them.
const QUERY_WITHIN: Duration = Duration::from_secs(30);

struct Peer {
    lake: String,
    http: reqwest::Client,
    counts: [AtomicUsize; 7],
    /// Calls are answered in blocks of seven, each block a random
    /// permutation of the seven behaviours: random order, and every fault
    /// is played however few calls the run takes.
    schedule: std::sync::Mutex<Vec<usize>>,
}

impl Peer {
    async fn forward(
        &self,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> (StatusCode, HeaderMap, Bytes) {
        // The request is passed on byte for byte, Host included: it is
        // part of the SigV4 signature the lake checks.
        let url = format!(
            "{}{}",
            self.lake,
            uri.path_and_query().map_or("/", |p| p.as_str())
        );
        let mut rb = self.http.request(method, url).body(body);
        for (k, v) in headers {
            rb = rb.header(k, v);
        }
        let res = rb.send().await.expect("the lake answers");
        let status = res.status();
        let headers = res.headers().clone();
        (status, headers, res.bytes().await.unwrap())
    }

    async fn handle(
        self: Arc<Self>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let fault = {
            let mut schedule = self.schedule.lock().unwrap();
            if schedule.is_empty() {
                use rand::seq::SliceRandom as _;
                let mut block: Vec<usize> = (0..FAULTS.len()).collect();
                block.shuffle(&mut rand::rng());
                *schedule = block;
            }
            schedule.pop().unwrap()
        };
        self.counts[fault].fetch_add(1, Ordering::Relaxed);
        let aws_error = |status: StatusCode, code: &str, message: &str| {
            (
                status,
                [
                    ("x-amzn-errortype", code),
                    ("content-type", "application/json"),
                ],
                json!({"message": message}).to_string(),
            )
                .into_response()
        };
        match FAULTS[fault] {
            "throttle" => aws_error(
                StatusCode::BAD_REQUEST,
                "ThrottlingException",
                "Rate exceeded",
            ),
            "5xx" => aws_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalFailure",
                "try again",
            ),
            "permission" => aws_error(
                StatusCode::FORBIDDEN,
                "ChannelInsufficientPermission",
                "the channel's policy refuses the caller",
            ),
            "timeout" => {
                // No answer ever comes: the forwarder's own call timeout
                // ends the call, however long that timeout is.
                std::future::pending().await
            }
            "drop_after_store" => {
                // The lake stores the batch, the answer never arrives.
                let _ = self.forward(method, &uri, &headers, body).await;
                let broken = futures::stream::once(async {
                    Err::<Bytes, _>(std::io::Error::other("connection reset"))
                });
                Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", "application/json")
                    .body(Body::from_stream(broken))
                    .unwrap()
            }
            "partial" => {
                // Stored, but some entries are reported failed (a lost
                // per-entry acknowledgement): they are resent alone.
                let (status, headers, bytes) = self.forward(method, &uri, &headers, body).await;
                let mut v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                if let Some(ok) = v["successful"]
                    .as_array()
                    .cloned()
                    .filter(|a| !a.is_empty())
                {
                    let cut = rand::rng().random_range(0..ok.len());
                    let failed: Vec<Value> = ok[cut..]
                        .iter()
                        .map(|e| json!({"id": e["id"], "errorCode": "InternalFailure", "errorMessage": "retry me"}))
                        .collect();
                    v["successful"] = json!(ok[..cut]);
                    v["failed"] = json!(failed);
                }
                let mut res = (status, v.to_string()).into_response();
                if let Some(ct) = headers.get("content-type") {
                    res.headers_mut().insert("content-type", ct.clone());
                }
                res
            }
            _ => {
                let (status, headers, bytes) = self.forward(method, &uri, &headers, body).await;
                let mut res = (status, bytes).into_response();
                if let Some(ct) = headers.get("content-type") {
                    res.headers_mut().insert("content-type", ct.clone());
                }
                res
            }
        }
    }
}

async fn start_peer(lake: &str) -> (String, Arc<Peer>) {
    let peer = Arc::new(Peer {
        lake: lake.to_owned(),
        http: reqwest::Client::new(),
        counts: Default::default(),
        schedule: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let p = peer.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            p.clone().handle(method, uri, headers, body)
        },
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, peer)
}

store_test!(
    every_event_arrives_exactly_once_through_random_faults,
    |store| async move {
        let dir = tempfile::tempdir().unwrap();
        let lake = LocalLake::start(dir.path()).await;
        let (peer_url, peer) = start_peer(&lake.url).await;

        let admin = store.create_user("a@example.com", "A").await.unwrap();
        let actor = Actor::user(admin.id);
        let group = store.create_group("G", &actor).await.unwrap();
        let org = store.create_org("O", Some(group.id), &actor).await.unwrap();
        let s = setup(
            &lake.control(OWNER),
            "faults",
            &group.id.to_string(),
            PARTNER,
            30,
        )
        .await
        .unwrap();
        let i = store
            .create_integration(
                Scope::Group(group.id),
                "faulty",
                CloudTrailConfig::new(OWNER, &s.channel_arn).unwrap(),
                &actor,
            )
            .await
            .unwrap();
        let events: Vec<NewEvent> = (0..1_000)
            .map(|n| {
                NewEvent::now(
                    "org.project.test",
                    Scope::Org(org.id),
                    Some(admin.id),
                    json!({"n": n}),
                )
            })
            .collect();
        store.append(&events).await.unwrap();
        let expected = store.lag(&i).await.unwrap().events;

        let k = key(PARTNER);
        let mut target = Target::with_key(peer_url, k.access_key_id, k.secret_access_key);
        target.timeout = Duration::from_millis(500);
        let mut config = ForwarderConfig::new("auditlake.test", target);
        config.poll = Duration::from_millis(100);
        config.retry = Backoff {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(50),
        };
        config.failing = Backoff {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(50),
        };
        let fwd = auditlake_forwarder::spawn(store.clone(), config).await;

        let done = wait_until("every event is delivered", DRAIN_WITHIN, || async {
            let now = store.integration(i.scope, i.id).await.unwrap().unwrap();
            if store.lag(&now).await.unwrap().events == 0 {
                Ok(now)
            } else {
                Err(now)
            }
        })
        .await;
        fwd.shutdown().await;

        let counts: Vec<(&str, usize)> = FAULTS
            .iter()
            .zip(&peer.counts)
            .map(|(f, c)| (*f, c.load(Ordering::Relaxed)))
            .collect();
        for (fault, n) in &counts {
            assert!(*n > 0, "the peer never played {fault}: {counts:?}");
        }
        assert!(done.failed > 0, "entry failures are counted: {done:?}");

        let ct = lake.control(OWNER);
        let q = ct
            .start_query()
            .query_statement(format!(
                "select count(*) as c, count(distinct eventdata.uid) as u from {}",
                s.event_data_store_id
            ))
            .send()
            .await
            .unwrap();
        let id = q.query_id().unwrap().to_owned();
        let rows = wait_until("the count finishes", QUERY_WITHIN, || async {
            let r = ct.get_query_results().query_id(&id).send().await.unwrap();
            match r.query_status().map(|s| s.as_str()) {
                Some("FINISHED") => Some(r.query_result_rows().to_vec()),
                Some("QUEUED" | "RUNNING") => None,
                other => panic!("the query ended {other:?}"),
            }
        })
        .await;
        let cell = |k: &str| -> i64 {
            rows[0]
                .iter()
                .find_map(|c| c.get(k))
                .unwrap()
                .parse()
                .unwrap()
        };
        assert_eq!(cell("u"), expected, "every event arrived ({counts:?})");
        assert_eq!(cell("c"), expected, "none twice");
        lake.crash();
    }
);
