//! Dashboard sessions: a random secret in an HttpOnly cookie, stored as its
//! SHA-256 with the user and a CSRF token for the session's forms. Signing
//! in and out are audit events of the user.

use auditlake_core::tenant::Access;
use auditlake_core::{time_fmt, Actor, Scope, User};
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Row;
use subtle::ConstantTimeEq;

use crate::append::insert_events;
use crate::{rows, Store, StoreError};

/// How long a session lasts, in seconds.
pub const SESSION_SECS: i64 = 12 * 3600;
const SESSION_US: i64 = SESSION_SECS * 1_000_000;

/// A new session: the cookie secret (shown once) and its CSRF token.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Goes into the cookie.
    pub secret: String,
    /// Goes into every form of the session.
    pub csrf: String,
}

/// A signed-in session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who.
    pub user: User,
    /// Their memberships.
    pub access: Access,
    /// The session's CSRF token.
    pub csrf: String,
}

fn random_token() -> String {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    hex::encode(raw)
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Store {
    /// Opens a session for `user` (`user.login`).
    pub async fn create_session(
        &self,
        user: &User,
        actor: &Actor,
    ) -> Result<NewSession, StoreError> {
        let new = NewSession {
            secret: random_token(),
            csrf: random_token(),
        };
        let now = time_fmt::now_micros();
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO sessions (hash, user_id, csrf, created_us, expires_us) VALUES ($1,$2,$3,$4,$5)",
        )
        .bind(hash(&new.secret))
        .bind(user.id.to_string())
        .bind(new.csrf.clone())
        .bind(now)
        .bind(now + SESSION_US)
        .execute(&mut *tx)
        .await?;
        // Expired sessions of the user go with each new one.
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND expires_us < $2")
            .bind(user.id.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let ev = actor.event(
            "user.login",
            Scope::User,
            json!({"userPublicId": user.id, "method": "dashboard"}),
        );
        insert_events(&mut tx, self.backend, &[ev]).await?;
        self.commit(tx).await?;
        Ok(new)
    }

    /// The live session behind a cookie secret.
    pub async fn session(&self, secret: &str) -> Result<Option<Session>, StoreError> {
        if secret.len() != 64 {
            return Ok(None);
        }
        let wanted = hash(secret);
        let row =
            sqlx::query("SELECT hash, user_id, csrf, expires_us FROM sessions WHERE hash = $1")
                .bind(wanted.clone())
                .fetch_optional(&self.read)
                .await?;
        let Some(row) = row else { return Ok(None) };
        let stored: String = row.try_get("hash")?;
        let expires: i64 = row.try_get("expires_us")?;
        if !bool::from(stored.as_bytes().ct_eq(wanted.as_bytes()))
            || expires <= time_fmt::now_micros()
        {
            return Ok(None);
        }
        let user_id = rows::uuid(&row, "user_id")?;
        let Some(user) = self.user(user_id).await? else {
            return Ok(None);
        };
        Ok(Some(Session {
            access: self.access(user.id).await?,
            user,
            csrf: row.try_get("csrf")?,
        }))
    }

    /// Ends a session (`user.logout`).
    pub async fn delete_session(&self, secret: &str, actor: &Actor) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
        let gone = sqlx::query("DELETE FROM sessions WHERE hash = $1")
            .bind(hash(secret))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone > 0 {
            let ev = actor.event("user.logout", Scope::User, json!({"method": "dashboard"}));
            insert_events(&mut tx, self.backend, &[ev]).await?;
        }
        self.commit(tx).await?;
        Ok(())
    }
}
