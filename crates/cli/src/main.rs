//! The `auditlake` binary. Thin: parses flags, sets up logging and runs one
//! of the commands in the sibling modules.

/// `println!` for the long-running commands (`serve`, `demo`, `lake serve`):
/// a server must keep serving when whoever started it stops reading its
/// stdout (a closed pipe, `| head -1`), so a failed write is dropped where
/// `println!` would panic and take the server down.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, $($arg)*).and_then(|()| out.flush());
    }};
}

mod admin;
mod config;
mod demo;
mod forward;
mod lake;
mod output;
mod serve;
mod show_config;
mod signal;
mod verify;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

use config::ParseError;

/// Self-hosted audit logs for multi-tenant platforms, forwarded to
/// CloudTrail Lake.
#[derive(Debug, Parser)]
#[command(name = "auditlake", version, about)]
struct Cli {
    /// TOML configuration file: each setting's key is its long flag with
    /// underscores (`data_dir`, `query_timeout_secs`, ...)
    #[arg(long, env = "AUDITLAKE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Log format: text or json
    #[arg(
        long,
        env = "AUDITLAKE_LOG_FORMAT",
        global = true,
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server
    Serve(serve::ServeArgs),
    /// Run the server with demo tenants and a stream of realistic events
    Demo(demo::DemoArgs),
    /// Administrative commands (users, groups, tokens)
    Admin(admin::AdminArgs),
    /// The local CloudTrail Lake: serve it alone, query it, set up a channel
    Lake(lake::LakeArgs),
    /// Cloud event integrations: delivery status, lag, replay
    Integrations(forward::IntegrationsArgs),
    /// Check the tenants' hash chains over the audit log and report the first break
    Verify(verify::VerifyArgs),
    /// Print the configuration `serve` would run with, and where each value
    /// came from (flag, environment, file, default); secrets are not shown
    Config(show_config::ConfigArgs),
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AUDITLAKE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    // A query worker starts nothing before it has its job: the server sets
    // its limits and priority between the start and the job, and the
    // threads it makes afterwards inherit them.
    if args.get(1..) == Some(&["lake".into(), "query-worker".into()]) {
        return auditlake_lake::query::worker_main();
    }
    let parsed = match config::parse_from::<Cli, _>(args) {
        Ok(parsed) => parsed,
        Err(ParseError::Clap(e)) => e.exit(),
        Err(ParseError::File(e)) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(parsed))
}

async fn run(parsed: config::Parsed<Cli>) -> std::process::ExitCode {
    init_logging(parsed.cli.log_format);
    let result = match parsed.cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Admin(args) => admin::run(args).await,
        Command::Lake(args) => lake::run(args).await,
        Command::Integrations(args) => forward::run(args).await,
        Command::Verify(args) => verify::run(args).await,
        Command::Config(ref args) => show_config::run(args, &Cli::command(), &parsed),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
