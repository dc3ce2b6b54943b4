//! Configuration: one set of clap flags for every source.
//!
//! A *setting* (what a deployment configures: addresses, directories,
//! limits, keys) is a flag with an environment variable, `AUDITLAKE_` and
//! the flag's name, and a key of the TOML file named by `--config`, the
//! flag's name with underscores. Its one default sits on the flag. A
//! command's operands (an email, a query, `--json`) are flags only.
//!
//! The file is applied by making its values the flags' defaults before the
//! command line is parsed, so clap converts and checks a file's values as it
//! does the flags', and the precedence is clap's own: flag, environment,
//! file, default. [`Parsed::source`] says which of them gave a value.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Args, Command, CommandFactory, FromArgMatches};
use serde::Serialize;

use auditlake_store::Store;

/// The id of `--config`, which only the command line and the environment
/// can give.
const CONFIG: &str = "config";

/// Where the state lives.
#[derive(Debug, Clone, Args)]
pub struct DataDir {
    /// Directory for the embedded database, the lake and other state
    #[arg(
        long,
        env = "AUDITLAKE_DATA_DIR",
        global = true,
        default_value = "./data"
    )]
    pub data_dir: PathBuf,
}

/// Where the database lives.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// Database URL: postgres://user@host/db, or sqlite://path [default: SQLite under --data-dir]
    #[arg(
        long,
        env = "AUDITLAKE_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,
}

impl DbArgs {
    /// The database URL: the one given, or SQLite under the data directory.
    pub fn url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                self.dir.data_dir.join("auditlake.db").display()
            )
        })
    }

    /// Opens the store, creating the data directory for SQLite and running
    /// migrations.
    pub async fn open_store(&self) -> anyhow::Result<Store> {
        if self.database_url.is_none() {
            let dir = &self.dir.data_dir;
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating data directory {}", dir.display()))?;
        }
        let url = self.url();
        tracing::info!(database = %auditlake_store::redact(&url), "opening database");
        Ok(Store::connect(&url).await?)
    }
}

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The command line.
    Flag,
    /// The environment.
    Env,
    /// The configuration file.
    File,
    /// The flag's default.
    Default,
    /// Nothing: the setting has no value.
    Unset,
}

/// The command line, parsed over the environment and the file.
#[derive(Debug)]
pub struct Parsed<T> {
    /// The parsed command.
    pub cli: T,
    /// clap's matches, which know each value's source.
    pub matches: ArgMatches,
    /// The keys the file set.
    pub file_keys: BTreeSet<String>,
}

impl<T> Parsed<T> {
    /// Where the value of setting `id` in `matches` (the top level's or a
    /// subcommand's) came from.
    pub fn source(&self, matches: &ArgMatches, id: &str) -> Source {
        match matches.value_source(id) {
            Some(ValueSource::CommandLine) => Source::Flag,
            Some(ValueSource::EnvVariable) => Source::Env,
            Some(ValueSource::DefaultValue) if self.file_keys.contains(id) => Source::File,
            Some(ValueSource::DefaultValue) => Source::Default,
            _ => Source::Unset,
        }
    }
}

/// A setting: a flag with an environment variable.
pub fn is_setting(arg: &clap::Arg) -> bool {
    arg.get_env().is_some() && arg.get_id() != CONFIG
}

/// Parses `args` (the program name first) as `T`, with the configuration
/// file that `--config` or `AUDITLAKE_CONFIG` names. A bad flag is a
/// `clap::Error` (printed by the caller with `exit`); a bad file is an
/// ordinary error.
pub fn parse_from<T, I>(args: I) -> Result<Parsed<T>, ParseError>
where
    T: CommandFactory + FromArgMatches,
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let mut command = T::command();
    let mut file_keys = BTreeSet::new();
    if let Some(path) = config_path(&command, &args) {
        (command, file_keys) = apply_file(command, &path).map_err(ParseError::File)?;
    }
    let matches = command.try_get_matches_from(&args)?;
    let cli = T::from_arg_matches(&matches)?;
    Ok(Parsed {
        cli,
        matches,
        file_keys,
    })
}

/// Why the configuration could not be read.
#[derive(Debug)]
pub enum ParseError {
    /// The command line or the environment, as clap reports it.
    Clap(clap::Error),
    /// The configuration file.
    File(anyhow::Error),
}

impl From<clap::Error> for ParseError {
    fn from(e: clap::Error) -> Self {
        Self::Clap(e)
    }
}

/// The file `--config` names, read by a lenient first parse: the real parse
/// needs the file's values first.
fn config_path(command: &Command, args: &[OsString]) -> Option<PathBuf> {
    let matches = command
        .clone()
        .ignore_errors(true)
        .try_get_matches_from(args)
        .ok()?;
    matches.get_one::<PathBuf>(CONFIG).cloned()
}

/// Makes the file's values the defaults of the settings they name, in every
/// command that has them. Returns the keys it set.
fn apply_file(mut command: Command, path: &Path) -> anyhow::Result<(Command, BTreeSet<String>)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))?;
    let mut settings = Vec::new();
    collect_settings(&command, &mut settings);
    let mut keys = BTreeSet::new();
    for (key, value) in table {
        let in_file = || format!("config file {}: `{key}`", path.display());
        let Some((owner, arg)) = settings.iter().find(|(_, a)| a.get_id() == key.as_str()) else {
            let mut known: Vec<&str> = settings.iter().map(|(_, a)| a.get_id().as_str()).collect();
            known.sort_unstable();
            known.dedup();
            anyhow::bail!(
                "{}: no such setting (settings: {})",
                in_file(),
                known.join(", ")
            );
        };
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => anyhow::bail!(
                "{}: expected a string, number or boolean, found {}",
                in_file(),
                other.type_str()
            ),
        };
        // Checked here, so that a bad value names the file and its key
        // rather than the flag.
        let long = arg.get_long().unwrap_or(key.as_str());
        let probe = Command::new(owner.clone())
            .no_binary_name(true)
            .arg(arg.clone().action(ArgAction::Set));
        if let Err(e) = probe.try_get_matches_from([format!("--{long}={value}")]) {
            // clap's message without its pointer to `--help`, on one line.
            let message = e.render().to_string();
            let lines: Vec<&str> = message
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
                .collect();
            anyhow::bail!(
                "{}: {}",
                in_file(),
                lines.join(" ").trim_start_matches("error: ")
            );
        }
        command = set_default(command, &key, &value);
        keys.insert(key);
    }
    Ok((command, keys))
}

/// Every setting of `command` and its subcommands, with its command's name.
fn collect_settings(command: &Command, out: &mut Vec<(String, clap::Arg)>) {
    for arg in command.get_arguments().filter(|a| is_setting(a)) {
        out.push((command.get_name().to_owned(), arg.clone()));
    }
    for sub in command.get_subcommands() {
        collect_settings(sub, out);
    }
}

fn set_default(command: Command, id: &str, value: &str) -> Command {
    let has = command.get_arguments().any(|a| a.get_id() == id);
    let mut command = if has {
        command.mut_arg(id, |a| a.default_value(value.to_owned()))
    } else {
        command
    };
    let names: Vec<String> = command
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in names {
        command = command.mut_subcommand(name, |s| set_default(s, id, value));
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command as Cmd};

    fn settings() -> Vec<clap::Arg> {
        let mut out = Vec::new();
        collect_settings(&Cli::command(), &mut out);
        out.into_iter().map(|(_, a)| a).collect()
    }

    fn parse(file: &str, args: &[&str]) -> Result<Parsed<Cli>, ParseError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auditlake.toml");
        std::fs::write(&path, file).unwrap();
        let mut argv = vec!["auditlake".into(), "--config".into(), path.into_os_string()];
        argv.extend(args.iter().map(Into::into));
        parse_from::<Cli, _>(argv)
    }

    fn file_error(file: &str) -> String {
        match parse(file, &["config"]) {
            Err(ParseError::File(e)) => format!("{e:#}"),
            other => panic!("expected a file error, got {other:?}"),
        }
    }

    #[test]
    fn every_setting_is_named_after_its_key() {
        let settings = settings();
        assert!(settings.len() > 30, "{} settings", settings.len());
        for arg in settings {
            let id = arg.get_id().as_str();
            let env = arg.get_env().unwrap().to_string_lossy();
            assert_eq!(env, format!("AUDITLAKE_{}", id.to_uppercase()), "{id}");
            assert!(arg.get_long().is_some(), "{id} is a flag");
        }
    }

    #[test]
    fn the_readme_lists_every_setting() {
        let readme = include_str!("../../../README.md");
        for arg in settings() {
            let id = arg.get_id().as_str();
            let long = arg.get_long().unwrap();
            let env = arg.get_env().unwrap().to_string_lossy();
            let row = readme.lines().find(|l| {
                l.starts_with(&format!("| `--{long}`"))
                    && l.contains(&format!(" | `{env}` | `{id}` | "))
            });
            assert!(
                row.is_some(),
                "README has no row `| --{long} | {env} | {id} | ...`"
            );
        }
    }

    #[test]
    fn the_file_sets_what_no_flag_or_variable_sets() {
        let file = "listen = \"127.0.0.1:9\"\nquery_timeout_secs = 7\nno_lake = true\n\
                    membership_adds = \"anyone\"\nquery_group_on_codes = false\n";
        let parsed = parse(file, &["config", "--listen", "127.0.0.1:10"]).unwrap();
        let Cmd::Config(args) = &parsed.cli.command else {
            panic!("parsed {:?}", parsed.cli.command)
        };
        let serve = &args.serve;
        assert_eq!(serve.listen, "127.0.0.1:10");
        assert_eq!(serve.lake.query_timeout_secs, 7);
        assert!(serve.no_lake);
        assert!(!serve.lake.query_group_on_codes);
        assert!(matches!(
            serve.limits.membership_adds,
            crate::serve::MembershipAddsArg::Anyone
        ));
        assert_eq!(serve.lake.query_concurrency, 2);
        let m = parsed.matches.subcommand_matches("config").unwrap();
        assert_eq!(parsed.source(m, "listen"), Source::Flag);
        assert_eq!(parsed.source(m, "query_timeout_secs"), Source::File);
        assert_eq!(parsed.source(m, "no_lake"), Source::File);
        assert_eq!(parsed.source(m, "query_concurrency"), Source::Default);
        assert_eq!(parsed.source(m, "lake_dir"), Source::Unset);
    }

    #[test]
    fn the_file_applies_to_every_command_with_the_setting() {
        let parsed = parse("data_dir = \"/srv/auditlake\"\n", &["admin", "bootstrap"]).unwrap();
        let m = parsed.matches.subcommand_matches("admin").unwrap();
        assert_eq!(
            m.get_one::<PathBuf>("data_dir").unwrap(),
            Path::new("/srv/auditlake")
        );
        // The demo keeps its own directory: a deployment's file never
        // points it at the deployment's state.
        let parsed = parse("data_dir = \"/srv/auditlake\"\n", &["demo"]).unwrap();
        let m = parsed.matches.subcommand_matches("demo").unwrap();
        assert_eq!(
            m.get_one::<PathBuf>("demo_data_dir").unwrap(),
            Path::new("./data/demo")
        );
    }

    #[test]
    fn a_bad_file_names_the_file_and_the_key() {
        let e = file_error("listn = \"127.0.0.1:9\"\n");
        assert!(e.contains("`listn`: no such setting"), "{e}");
        assert!(e.contains("listen"), "lists the settings: {e}");
        let e = file_error("forwarder_workers = 0\n");
        assert!(e.contains("auditlake.toml: `forwarder_workers`"), "{e}");
        assert!(e.contains("invalid value"), "{e}");
        let e = file_error("membership_adds = \"everyone\"\n");
        assert!(
            e.contains("`membership_adds`") && e.contains("everyone"),
            "{e}"
        );
        assert!(
            e.contains("within-group, anyone"),
            "names what is possible: {e}"
        );
        let e = file_error("listen = [\"a\"]\n");
        assert!(
            e.contains("`listen`: expected a string, number or boolean, found array"),
            "{e}"
        );
        let e = file_error("config = \"other.toml\"\n");
        assert!(e.contains("`config`: no such setting"), "{e}");
        let e = file_error("listen = ");
        assert!(e.contains("parsing config file"), "{e}");
    }

    #[test]
    fn a_bad_flag_is_still_claps_error() {
        let e = parse("", &["serve", "--query-timeout-secs", "soon"]).unwrap_err();
        assert!(matches!(e, ParseError::Clap(_)), "{e:?}");
    }
}
