//! `auditlake verify`: checks tenants' hash chains over the stored audit log
//! (see `auditlake_core::chain`) and reports the first break of each. Exits
//! non-zero when any chain is broken, so it can run from cron or CI.

use std::io::IsTerminal as _;

use anyhow::{bail, Context as _};
use clap::Args;
use uuid::Uuid;

use auditlake_store::{ChainReport, Page, Store};

use crate::config::DbArgs;

/// Flags of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Verify this organization's chain
    #[arg(long, conflicts_with = "group")]
    org: Option<Uuid>,
    /// Verify this group's own chain and the chains of the orgs now in it
    #[arg(long)]
    group: Option<Uuid>,
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

/// Runs `verify`.
pub async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let store = args.db.open_store().await?;
    let result = verify(&store, &args).await;
    store.close().await;
    let reports = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        print_table(&reports);
    }
    let broken = reports.iter().filter(|r| !r.intact()).count();
    if broken > 0 {
        bail!("{broken} of {} chains are broken", reports.len());
    }
    Ok(())
}

async fn verify(store: &Store, args: &VerifyArgs) -> anyhow::Result<Vec<ChainReport>> {
    let chains = match (args.org, args.group) {
        (Some(org), _) => {
            store
                .org(org)
                .await?
                .with_context(|| format!("no organization {org}"))?;
            vec![org]
        }
        (None, Some(group)) => {
            store
                .group(group)
                .await?
                .with_context(|| format!("no group {group}"))?;
            let mut chains = vec![group];
            let mut page = Page {
                limit: 100,
                ..Page::default()
            };
            loop {
                let orgs = store.group_orgs(group, page).await?;
                chains.extend(orgs.items.iter().map(|o| o.id));
                match (orgs.has_more, orgs.items.last()) {
                    (true, Some(last)) => page.after = Some(last.id),
                    _ => break,
                }
            }
            chains
        }
        (None, None) => store.chains().await?,
    };
    let progress = std::io::stderr().is_terminal() && chains.len() > 1;
    let mut reports = Vec::with_capacity(chains.len());
    for (i, chain) in chains.iter().enumerate() {
        if progress {
            eprint!("\rverifying chain {} of {}", i + 1, chains.len());
        }
        reports.push(store.verify_chain(*chain).await?);
    }
    if progress {
        eprintln!();
    }
    Ok(reports)
}

fn print_table(reports: &[ChainReport]) {
    let mut table = crate::output::table(["CHAIN", "EVENTS", "HEAD SEQ", "RESULT", "FIRST BREAK"]);
    for r in reports {
        let chain = if r.chain.is_nil() {
            "platform".to_owned()
        } else {
            r.chain.to_string()
        };
        let (result, at) = match &r.first_break {
            None => ("intact".to_owned(), String::new()),
            Some(b) => (
                "BROKEN".to_owned(),
                format!(
                    "seq {}{}: {}",
                    b.seq,
                    b.event_id.map(|id| format!(" ({id})")).unwrap_or_default(),
                    b.problem
                ),
            ),
        };
        table.add_row([
            chain,
            r.events.to_string(),
            r.head_seq.map(|s| s.to_string()).unwrap_or_default(),
            result,
            at,
        ]);
    }
    println!("{table}");
}
