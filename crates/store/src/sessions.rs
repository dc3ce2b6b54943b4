//! Dashboard sessions: a random secret in an HttpOnly cookie, stored as its
//! SHA-256 with the user and a CSRF token for the session's forms. Signing
//! in and out are audit events of the user.
//!
//! Local users may also have a password, stored as an argon2id hash (PHC
//! string, OWASP's default parameters); checking one runs on a blocking
//! thread, and an unknown email costs the same as a wrong password.

use auditlake_core::tenant::Access;
use auditlake_core::{time_fmt, Actor, Scope, User};
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Row;
use subtle::ConstantTimeEq;

use crate::batch::insert_events;
use crate::{rows, Store, StoreError};

/// How long a session lasts, in seconds.
pub const SESSION_SECS: i64 = 12 * 3600;
const SESSION_US: i64 = SESSION_SECS * 1_000_000;

/// What a session was opened with; it lives no longer than that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedInWith {
    /// The API token with this ID: the session dies when the token is
    /// revoked or expires.
    Token(uuid::Uuid),
    /// The user's password: the session dies when another is set.
    Password,
}

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
    /// Opens a session for `user`, signed in `with` a token or the
    /// password (`user.login`).
    pub async fn create_session(
        &self,
        user: &User,
        with: SignedInWith,
        actor: &Actor,
    ) -> Result<NewSession, StoreError> {
        let new = NewSession {
            secret: random_token(),
            csrf: random_token(),
        };
        let now = time_fmt::now_micros();
        let mut tx = self.write.begin().await?;
        let token_id = match with {
            SignedInWith::Token(id) => Some(id.to_string()),
            SignedInWith::Password => None,
        };
        sqlx::query(
            "INSERT INTO sessions (hash, user_id, csrf, created_us, expires_us, token_id) VALUES ($1,$2,$3,$4,$5,$6)",
        )
        .bind(hash(&new.secret))
        .bind(user.id.to_string())
        .bind(new.csrf.clone())
        .bind(now)
        .bind(now + SESSION_US)
        .bind(token_id)
        .execute(&mut tx)
        .await?;
        // Expired sessions of the user go with each new one.
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND expires_us < $2")
            .bind(user.id.to_string())
            .bind(now)
            .execute(&mut tx)
            .await?;
        let ev = actor.event(
            "user.login",
            Scope::User,
            json!({"userPublicId": user.id, "method": "dashboard"}),
        );
        insert_events(&mut tx, &[ev]).await?;
        self.commit(tx).await?;
        Ok(new)
    }

    /// The live session behind a cookie secret: not expired, and what
    /// opened it still valid (the token neither revoked nor expired; for a
    /// password sign-in, no password set since).
    pub async fn session(&self, secret: &str) -> Result<Option<Session>, StoreError> {
        if secret.len() != 64 {
            return Ok(None);
        }
        let wanted = hash(secret);
        let row = sqlx::query(
            "SELECT s.hash, s.user_id, s.csrf, s.created_us, s.expires_us, s.token_id, \
                    t.id AS token_row, t.expires_us AS token_expires_us, \
                    t.revoked_us AS token_revoked_us, \
                    u.password_set_us \
             FROM sessions s \
             JOIN users u ON u.id = s.user_id \
             LEFT JOIN tokens t ON t.id = s.token_id \
             WHERE s.hash = $1",
        )
        .bind(wanted.clone())
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let stored: String = row.try_get("hash")?;
        let now = time_fmt::now_micros();
        if !bool::from(stored.as_bytes().ct_eq(wanted.as_bytes()))
            || row.try_get::<i64, _>("expires_us")? <= now
        {
            return Ok(None);
        }
        let origin_alive = match row.try_get::<Option<String>, _>("token_id")? {
            Some(_) => {
                row.try_get::<Option<String>, _>("token_row")?.is_some()
                    && row.try_get::<Option<i64>, _>("token_revoked_us")?.is_none()
                    && row
                        .try_get::<Option<i64>, _>("token_expires_us")?
                        .is_none_or(|expires| expires > now)
            }
            None => {
                let created: i64 = row.try_get("created_us")?;
                row.try_get::<Option<i64>, _>("password_set_us")?
                    .is_none_or(|set| set <= created)
            }
        };
        if !origin_alive {
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
            .execute(&mut tx)
            .await?
            .rows_affected();
        if gone > 0 {
            let ev = actor.event("user.logout", Scope::User, json!({"method": "dashboard"}));
            insert_events(&mut tx, &[ev]).await?;
        }
        self.commit(tx).await?;
        Ok(())
    }
}

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;

fn argon2() -> argon2::Argon2<'static> {
    argon2::Argon2::default()
}

/// A hash of a made-up password, checked when the email is unknown so that
/// the answer takes as long as for a known one.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password, never valid").expect("hashing works"))
}

fn hash_password(password: &str) -> Result<String, StoreError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Invalid(format!("cannot hash the password: {e}")))
}

fn password_matches(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(phc)
        .map(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

impl Store {
    /// Sets (or replaces) a user's password (`user.password.set`; the
    /// event holds no trace of the password).
    pub async fn set_password(
        &self,
        user: uuid::Uuid,
        password: &str,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        if password.chars().count() < MIN_PASSWORD_LEN {
            return Err(StoreError::Invalid(format!(
                "a password needs at least {MIN_PASSWORD_LEN} characters"
            )));
        }
        let owned = password.to_owned();
        let phc = tokio::task::spawn_blocking(move || hash_password(&owned))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))??;
        let mut tx = self.write.begin().await?;
        // The new password ends the sessions the old one opened.
        let done =
            sqlx::query("UPDATE users SET password_hash = $1, password_set_us = $2 WHERE id = $3")
                .bind(phc)
                .bind(time_fmt::now_micros())
                .bind(user.to_string())
                .execute(&mut tx)
                .await?
                .rows_affected();
        if done == 0 {
            return Err(StoreError::NotFound("user"));
        }
        let ev = actor.event(
            "user.password.set",
            Scope::User,
            json!({"userPublicId": user}),
        );
        insert_events(&mut tx, &[ev]).await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// The user with this email and password, if they match.
    pub async fn check_password(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT id, password_hash FROM users WHERE email = $1")
            .bind(email.trim().to_lowercase())
            .fetch_optional(&self.read)
            .await?;
        let (id, phc) = match &row {
            Some(r) => (
                Some(rows::uuid(r, "id")?),
                r.try_get::<Option<String>, _>("password_hash")?,
            ),
            None => (None, None),
        };
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| decoy_hash().to_owned());
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || password_matches(&password, &phc))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        match (ok && known, id) {
            (true, Some(id)) => self.user(id).await,
            _ => Ok(None),
        }
    }
}
