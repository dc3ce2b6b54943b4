//! A real lake on a loopback port with fixed test keys, for the tests of
//! this crate and of the crates that send to it (the forwarder, the CLI).
//! Nothing here is used by the server itself.

use std::path::Path;

use crate::storage::record::Stamp;
use crate::{AccessKey, Lake, LakeConfig, QueryLimits, QueryWorker};

/// The region test clients sign for.
pub const REGION: &str = "us-east-1";
/// The account that owns the test stores and channels.
pub const OWNER: &str = "111111111111";
/// A second account, the partner of the console's integration flow.
pub const PARTNER: &str = "222222222222";

/// What a channel stamps on its records, at a fixed instant, for tests
/// and fuzz targets that build records without a lake.
pub const STAMP: Stamp<'static> = Stamp {
    account: "123456789012",
    region: REGION,
    channel_arn: "arn:aws:cloudtrail:us-east-1:123456789012:channel/c",
    now_ms: 1_700_000_000_000,
};

/// The fixed test key of `account`.
pub fn key(account: &str) -> AccessKey {
    AccessKey {
        access_key_id: format!("AKIATEST{account}"),
        secret_access_key: format!("secret-for-{account}-000000000000"),
        account_id: account.to_owned(),
    }
}

/// The lake's query worker binary (`auditlake-query-worker`), which cargo
/// builds beside the test binaries (`target/<profile>/`) when it tests the
/// workspace or this crate; `AUDITLAKE_QUERY_WORKER` names another.
pub fn query_worker() -> QueryWorker {
    let program = match std::env::var_os("AUDITLAKE_QUERY_WORKER") {
        Some(path) => path.into(),
        None => {
            let exe = std::env::current_exe().expect("the test binary's path");
            // target/<profile>/deps/<test> -> target/<profile>/
            let profile = exe
                .parent()
                .and_then(|deps| deps.parent())
                .expect("a test binary under target/<profile>/deps");
            profile.join("auditlake-query-worker")
        }
    };
    assert!(
        program.exists(),
        "no query worker at {}: build it with `cargo build -p auditlake-lake --bin auditlake-query-worker` \
         (`cargo test --workspace` does)",
        program.display()
    );
    QueryWorker {
        program,
        args: Vec::new(),
    }
}

/// A lake serving on `127.0.0.1:<free port>`, keyed for [`OWNER`] and
/// [`PARTNER`].
pub struct LocalLake {
    /// The lake.
    pub lake: Lake,
    /// Its endpoint URL.
    pub url: String,
    server: tokio::task::JoinHandle<()>,
}

impl LocalLake {
    /// Opens the lake in `dir` (creating or reopening it) and serves it.
    pub async fn start(dir: &Path) -> Self {
        Self::start_with(dir, QueryLimits::default()).await
    }

    /// [`LocalLake::start`] with these query limits.
    pub async fn start_with(dir: &Path, limits: QueryLimits) -> Self {
        let mut config = LakeConfig::new(dir);
        config.keys = vec![key(OWNER), key(PARTNER)];
        config.worker = query_worker();
        config.limits = limits;
        let lake = Lake::open(config).await.expect("open the test lake");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let served = lake.clone();
        let server = tokio::spawn(async move {
            crate::wire::server::serve(listener, served, std::future::pending())
                .await
                .expect("serve the test lake");
        });
        Self { lake, url, server }
    }

    /// Stops serving without flushing or closing anything, as a crash
    /// would.
    pub fn crash(self) {
        self.server.abort();
    }

    /// A control-plane client as `account`.
    pub fn control(&self, account: &str) -> aws_sdk_cloudtrail::Client {
        auditlake_cloudtrail::client::control(&self.url, &key(account), REGION)
    }

    /// A data-plane client as `account`.
    pub fn data(&self, account: &str) -> aws_sdk_cloudtraildata::Client {
        auditlake_cloudtrail::client::data(&self.url, &key(account), REGION)
    }
}
