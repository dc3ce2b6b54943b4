//! `auditlake admin`: create users, tokens, groups and orgs directly in the
//! database (for the first admin, and for scripts). Every change writes its
//! audit event like the API does.

use clap::{Args, Subcommand};
use serde_json::json;
use uuid::Uuid;

use auditlake_core::{time_fmt, Actor};
use auditlake_store::Store;

use crate::config::DbArgs;
use crate::output::print;

/// Flags of `admin`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Print JSON instead of a table
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create an admin user with a token, a group it administers and an org in it
    Bootstrap {
        /// The admin's email
        #[arg(long, default_value = "admin@example.com")]
        email: String,
        /// The admin's name
        #[arg(long, default_value = "Admin")]
        name: String,
        /// The group's name
        #[arg(long, default_value = "Default Group")]
        group_name: String,
        /// The org's name
        #[arg(long, default_value = "Default Org")]
        org_name: String,
    },
    /// Create a user
    CreateUser {
        /// Email (unique)
        #[arg(long)]
        email: String,
        /// Display name
        #[arg(long)]
        name: String,
    },
    /// Set a user's dashboard password, read from AUDITLAKE_PASSWORD or the first line of standard input
    SetPassword {
        /// The user's email
        #[arg(long)]
        email: String,
    },
    /// Create an API token for a user (the secret is printed once)
    CreateToken {
        /// The user's email
        #[arg(long)]
        email: String,
        /// A label for the token
        #[arg(long, default_value = "cli")]
        name: String,
        /// Expire after this many days
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Create a group administered by a user
    CreateGroup {
        /// Group name
        #[arg(long)]
        name: String,
        /// Email of the group's admin
        #[arg(long)]
        admin_email: String,
    },
    /// Create an org, standalone (administered by the user) or in a group
    CreateOrg {
        /// Org name
        #[arg(long)]
        name: String,
        /// Email of the acting user
        #[arg(long)]
        admin_email: String,
        /// Parent group
        #[arg(long)]
        group_id: Option<Uuid>,
    },
}

async fn user_by_email(store: &Store, email: &str) -> anyhow::Result<auditlake_core::User> {
    store
        .user_by_email(email)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user with email {email}"))
}

/// What `bootstrap` creates.
pub struct Bootstrap {
    /// The admin user.
    pub user_id: Uuid,
    /// Their token's secret.
    pub token: String,
    /// The group.
    pub group_id: Uuid,
    /// The org in the group.
    pub org_id: Uuid,
}

/// Creates an admin user with a token, a group and an org in it.
pub async fn bootstrap(
    store: &Store,
    email: &str,
    name: &str,
    group: &str,
    org: &str,
) -> anyhow::Result<Bootstrap> {
    let user = store.create_user(email, name).await?;
    let actor = Actor::user(user.id);
    let token = store
        .create_token(user.id, "bootstrap", None, &actor)
        .await?;
    let group = store.create_group(group, &actor).await?;
    let org = store.create_org(org, Some(group.id), &actor).await?;
    Ok(Bootstrap {
        user_id: user.id,
        token: token.secret,
        group_id: group.id,
        org_id: org.id,
    })
}

/// Runs `admin`.
pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let store = args.db.open_store().await?;
    let out = match args.command {
        AdminCommand::Bootstrap {
            email,
            name,
            group_name,
            org_name,
        } => {
            let b = bootstrap(&store, &email, &name, &group_name, &org_name).await?;
            json!({"user_id": b.user_id, "token": b.token, "group_id": b.group_id, "org_id": b.org_id})
        }
        AdminCommand::CreateUser { email, name } => {
            let u = store.create_user(&email, &name).await?;
            json!({"user_id": u.id, "email": u.email, "name": u.name})
        }
        AdminCommand::CreateToken {
            email,
            name,
            expires_in_days,
        } => {
            let u = user_by_email(&store, &email).await?;
            let expires =
                expires_in_days.map(|d| time_fmt::now_micros() + i64::from(d) * 86_400_000_000);
            let t = store
                .create_token(u.id, &name, expires, &Actor::user(u.id))
                .await?;
            json!({"token_id": t.token.id, "token": t.secret, "user_id": u.id,
                   "expires_at": expires.map(time_fmt::format_micros)})
        }
        AdminCommand::SetPassword { email } => {
            let u = user_by_email(&store, &email).await?;
            let password = match std::env::var("AUDITLAKE_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            store
                .set_password(u.id, &password, &Actor::user(u.id))
                .await?;
            json!({"user_id": u.id, "email": u.email, "password": "set"})
        }
        AdminCommand::CreateGroup { name, admin_email } => {
            let u = user_by_email(&store, &admin_email).await?;
            let g = store.create_group(&name, &Actor::user(u.id)).await?;
            json!({"group_id": g.id, "name": g.name})
        }
        AdminCommand::CreateOrg {
            name,
            admin_email,
            group_id,
        } => {
            let u = user_by_email(&store, &admin_email).await?;
            let o = store
                .create_org(&name, group_id, &Actor::user(u.id))
                .await?;
            json!({"org_id": o.id, "name": o.name, "slug": o.slug, "group_id": o.group_id})
        }
    };
    store.close().await;
    print(&out, args.json);
    Ok(())
}
