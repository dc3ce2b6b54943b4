//! Personal API tokens. The secret is shown once at creation; the database
//! keeps only its SHA-256 hash (the secret has 256 bits of entropy, so a
//! plain hash is enough and lookups stay one index probe). The final check
//! compares hashes in constant time.

use auditlake_core::tenant::Access;
use auditlake_core::{time_fmt, Actor, Group, Org, Scope, Token, User};
use base64::Engine as _;
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Row;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::batch::insert_events;
use crate::tenants::{Page, PageOf};
use crate::{rows, Store, StoreError};

/// Prefix of every secret, so leaked tokens are easy to scan for.
pub const TOKEN_PREFIX: &str = "alk_";

/// The tenant a request names in its path, to read along with the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TenantRef {
    /// An organization ID.
    Org(Uuid),
    /// A group ID.
    Group(Uuid),
}

/// The named tenant as read with the caller: the ID asked for and the row,
/// `None` when no such tenant exists.
#[derive(Debug, Clone, PartialEq)]
pub enum NamedTenant {
    /// The org asked for.
    Org(Uuid, Option<Org>),
    /// The group asked for.
    Group(Uuid, Option<Group>),
}

/// An authenticated API caller (see [`Store::authenticate_request`]).
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Who.
    pub user: User,
    /// The token used.
    pub token: Token,
    /// The user's memberships.
    pub access: Access,
    /// The tenant the request named, when it named one.
    pub tenant: Option<NamedTenant>,
}

/// A token just created: its metadata and the secret, shown once.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Metadata as stored.
    pub token: Token,
    /// The secret to put in `Authorization: token <secret>`.
    pub secret: String,
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Store {
    /// Creates a token for `user_id` (`user.token.create`).
    pub async fn create_token(
        &self,
        user_id: Uuid,
        name: &str,
        expires_us: Option<i64>,
        actor: &Actor,
    ) -> Result<NewToken, StoreError> {
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let secret = format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
        );
        let token = Token {
            id: auditlake_core::new_id(),
            user_id,
            name: name.to_owned(),
            prefix: secret[..TOKEN_PREFIX.len() + 6].to_owned(),
            created_us: time_fmt::now_micros(),
            expires_us,
            revoked_us: None,
        };
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO tokens (id, user_id, name, prefix, hash, created_us, expires_us) \
             VALUES ($1,$2,$3,$4,$5,$6,$7)",
        )
        .bind(token.id.to_string())
        .bind(user_id.to_string())
        .bind(token.name.clone())
        .bind(token.prefix.clone())
        .bind(hash(&secret))
        .bind(token.created_us)
        .bind(expires_us)
        .execute(&mut tx)
        .await?;
        let ev = actor.event(
            "user.token.create",
            Scope::User,
            json!({"tokenPublicId": token.id, "name": token.name, "userPublicId": user_id}),
        );
        insert_events(&mut tx, &[ev]).await?;
        self.commit(tx).await?;
        Ok(NewToken { token, secret })
    }

    /// The user's tokens, revoked ones included.
    pub async fn tokens(&self, user_id: Uuid, page: Page) -> Result<PageOf<Token>, StoreError> {
        let select = format!("SELECT {} FROM tokens WHERE user_id = $1", rows::TOKEN_COLS);
        self.page(&select, user_id.to_string(), "id", page, rows::token)
            .await
    }

    /// One of the user's tokens.
    pub async fn token(&self, user_id: Uuid, id: Uuid) -> Result<Option<Token>, StoreError> {
        let sql = format!(
            "SELECT {} FROM tokens WHERE user_id = $1 AND id = $2",
            rows::TOKEN_COLS
        );
        sqlx::query(&sql)
            .bind(user_id.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(rows::token)
            .transpose()
    }

    /// Revokes one of the user's tokens (`user.token.revoke`); revoking a
    /// revoked token changes nothing.
    pub async fn revoke_token(
        &self,
        user_id: Uuid,
        id: Uuid,
        actor: &Actor,
    ) -> Result<Token, StoreError> {
        let mut tx = self.write.begin().await?;
        let now = time_fmt::now_micros();
        let done = sqlx::query(
            "UPDATE tokens SET revoked_us = $1 WHERE user_id = $2 AND id = $3 AND revoked_us IS NULL",
        )
        .bind(now)
        .bind(user_id.to_string())
        .bind(id.to_string())
        .execute(&mut tx)
        .await?;
        if done.rows_affected() == 1 {
            let ev = actor.event(
                "user.token.revoke",
                Scope::User,
                json!({"tokenPublicId": id, "userPublicId": user_id}),
            );
            insert_events(&mut tx, &[ev]).await?;
        }
        let sql = format!(
            "SELECT {} FROM tokens WHERE user_id = $1 AND id = $2",
            rows::TOKEN_COLS
        );
        let token = sqlx::query(&sql)
            .bind(user_id.to_string())
            .bind(id.to_string())
            .fetch_optional(&mut tx)
            .await?
            .as_ref()
            .map(rows::token)
            .transpose()?
            .ok_or(StoreError::NotFound("token"))?;
        self.commit(tx).await?;
        Ok(token)
    }

    /// The user behind a secret, if the token exists, is not revoked and has
    /// not expired.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<(User, Token)>, StoreError> {
        Ok(self
            .authenticate_caller(secret)
            .await?
            .map(|(u, t, _)| (u, t)))
    }

    /// [`Store::authenticate`] and the user's memberships, in one query.
    pub async fn authenticate_caller(
        &self,
        secret: &str,
    ) -> Result<Option<(User, Token, Access)>, StoreError> {
        Ok(self
            .authenticate_request(secret, None)
            .await?
            .map(|a| (a.user, a.token, a.access)))
    }

    /// The per-request authentication of the API: the token's user, their
    /// memberships and, when the request names a tenant, that tenant's row,
    /// all in one query. Reading the tenant here rather than after saves a
    /// round trip on every tenant route (most of them); the rights check
    /// itself stays with the caller. A success is kept for the next
    /// requests with the same token and tenant (see `auth_cache`).
    pub async fn authenticate_request(
        &self,
        secret: &str,
        named: Option<TenantRef>,
    ) -> Result<Option<Authenticated>, StoreError> {
        if !secret.starts_with(TOKEN_PREFIX) || secret.len() > 128 {
            return Ok(None);
        }
        let wanted = hash(secret);
        if let Some(auth) = self.auth_cache.get(&wanted, named) {
            return Ok(Some(auth));
        }
        let generation = self.auth_cache.generation();
        let found = self.read_authentication(&wanted, named).await?;
        if let Some(auth) = &found {
            self.auth_cache.put(wanted, named, generation, auth);
        }
        Ok(found)
    }

    /// [`Store::authenticate_request`] from the database.
    async fn read_authentication(
        &self,
        wanted: &str,
        named: Option<TenantRef>,
    ) -> Result<Option<Authenticated>, StoreError> {
        let (org_id, group_id) = match named {
            Some(TenantRef::Org(id)) => (Some(id.to_string()), None),
            Some(TenantRef::Group(id)) => (None, Some(id.to_string())),
            None => (None, None),
        };
        // The tenant joins on a bound ID, not on the token: each row of the
        // membership fan-out carries the same tenant columns, NULL when the
        // ID names nothing (or no ID was given).
        let sql = "SELECT t.hash AS hash, t.id AS id, t.user_id AS user_id, t.name AS name, \
             t.prefix AS prefix, t.created_us AS created_us, t.expires_us AS expires_us, \
             t.revoked_us AS revoked_us, u.email AS email, u.name AS user_name, \
             u.created_us AS user_created_us, \
             m.scope_kind AS scope_kind, m.scope_id AS scope_id, m.role AS role, \
             o.id AS o_id, o.name AS o_name, o.slug AS o_slug, o.group_id AS o_group_id, \
             o.settings AS o_settings, o.created_us AS o_created_us, \
             g.id AS g_id, g.name AS g_name, g.created_us AS g_created_us \
             FROM tokens t JOIN users u ON u.id = t.user_id \
             LEFT JOIN memberships m ON m.user_id = t.user_id \
             LEFT JOIN orgs o ON o.id = $2 \
             LEFT JOIN groups_ g ON g.id = $3 \
             WHERE t.hash = $1";
        let rows = sqlx::query(sql)
            .bind(wanted)
            .bind(org_id)
            .bind(group_id)
            .fetch_all(&self.read)
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let stored: String = row.try_get("hash")?;
        if !bool::from(stored.as_bytes().ct_eq(wanted.as_bytes())) {
            return Ok(None);
        }
        let token = rows::token(row)?;
        if !token.is_usable_at(time_fmt::now_micros()) {
            return Ok(None);
        }
        let user = User {
            id: token.user_id,
            email: row.try_get("email")?,
            name: row.try_get("user_name")?,
            created_us: row.try_get("user_created_us")?,
        };
        let mut access = Access {
            user_id: user.id,
            ..Access::default()
        };
        for row in &rows {
            if row.try_get::<Option<String>, _>("scope_kind")?.is_some() {
                crate::tenants::grant_of(&mut access, row)?;
            }
        }
        let tenant = match named {
            None => None,
            Some(TenantRef::Org(id)) => {
                let org = match row.try_get::<Option<String>, _>("o_id")? {
                    Some(_) => Some(rows::org_prefixed(row, "o_")?),
                    None => None,
                };
                Some(NamedTenant::Org(id, org))
            }
            Some(TenantRef::Group(id)) => {
                let group = match row.try_get::<Option<String>, _>("g_id")? {
                    Some(_) => Some(rows::group_prefixed(row, "g_")?),
                    None => None,
                };
                Some(NamedTenant::Group(id, group))
            }
        };
        Ok(Some(Authenticated {
            user,
            token,
            access,
            tenant,
        }))
    }
}
