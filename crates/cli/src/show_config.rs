//! `auditlake config`: the configuration `serve` would run with, checked as
//! `serve` checks it, with each setting's value and where it came from.
//! Secrets show only whether they are set; a database URL shows without its
//! password.

use clap::{Args, Command};
use serde::Serialize;

use crate::config::{Parsed, Source};
use crate::serve::ServeArgs;

/// Flags of `config`: those of `serve`, to see what they change.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

/// One setting as `config` prints it.
#[derive(Debug, Serialize)]
struct Row {
    /// The file's key, and the flag's name with dashes.
    key: String,
    /// The environment variable.
    env: String,
    /// The effective value; `None` when unset.
    value: Option<String>,
    source: Source,
}

/// Runs `config`; `command` is the whole command tree that `parsed` came
/// from.
pub fn run<T>(args: &ConfigArgs, command: &Command, parsed: &Parsed<T>) -> anyhow::Result<()> {
    let serve = &args.serve;
    serve.lake.query_limits()?;
    serve.lake.key()?;
    let forwarding = serve.forward.plan()?;

    let sub_command = command
        .find_subcommand("config")
        .expect("the config command exists");
    let sub_matches = parsed
        .matches
        .subcommand_matches("config")
        .expect("running the config command");
    let levels = [(command, &parsed.matches), (sub_command, sub_matches)];
    let mut rows = Vec::new();
    for (command, matches) in levels {
        for arg in command.get_arguments() {
            let Some(env) = arg.get_env() else { continue };
            let id = arg.get_id().as_str();
            let mut source = parsed.source(matches, id);
            let mut value = matches
                .get_raw(id)
                .map(|v| v.map(|s| s.to_string_lossy()).collect::<Vec<_>>().join(","));
            // Defaults that follow from other settings.
            let derived = match id {
                "database_url" => Some(serve.db.url()),
                "lake_dir" => Some(serve.lake.dir(&serve.db.dir.data_dir).display().to_string()),
                "event_source" => forwarding.as_ref().map(|f| f.event_source.clone()),
                _ => None,
            };
            if value.is_none() && derived.is_some() {
                (value, source) = (derived, Source::Default);
            }
            if id == "database_url" {
                value = value.map(|url| auditlake_store::redact(&url));
            } else if arg.is_hide_env_values_set() && value.is_some() {
                value = Some("(set, not shown)".to_owned());
            }
            rows.push(Row {
                key: id.to_owned(),
                env: env.to_string_lossy().into_owned(),
                value,
                source,
            });
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    // The environment variable is AUDITLAKE_ and the key in capitals: the
    // table leaves it out to stay narrow.
    let mut table = crate::output::table(["SETTING", "VALUE", "SOURCE"]);
    for row in &rows {
        let source = serde_json::to_value(row.source)?;
        table.add_row([
            row.key.as_str(),
            row.value.as_deref().unwrap_or("-"),
            source.as_str().unwrap_or_default(),
        ]);
    }
    println!("{table}");
    Ok(())
}
