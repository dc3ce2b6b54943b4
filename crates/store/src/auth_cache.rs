//! A short-lived cache of API authentications, so that a client sending many
//! requests with one token does not cost a database round trip per request.
//!
//! # Why
//!
//! Every API request reads its token, its user's memberships and the tenant
//! its path names ([`crate::Store::authenticate_request`]). For small
//! requests (single-event ingest) that read was the largest cost left on
//! PostgreSQL: a round trip and a five-table join per request, more
//! database time than the request's own write, which group commit shares
//! among many requests.
//!
//! # Invariants
//!
//! - Only successful authentications are kept, keyed by the token's hash
//!   (never the secret) and the tenant the path names; an unknown, revoked
//!   or expired token always goes to the database.
//! - Expiry is checked on every hit against the cached `expires_us`.
//! - Every commit of a state change in this process (token revoked,
//!   membership added, org moved to a group, anything through
//!   `Store::commit`) starts a new generation, and entries of an older
//!   generation are never served: within one process a change is seen by
//!   the next request, exactly as without the cache. The generation is read
//!   *before* the database read an entry comes from, so a read racing a
//!   change is stored already stale.
//! - Changes made by another process on the same database (a second server
//!   on PostgreSQL, `auditlake admin` beside a running server) are seen
//!   after at most the TTL. A TTL of zero turns the cache off.
//! - Memory is bounded by weight, not by entry count: an entry weighs one
//!   plus the caller's memberships plus the named org's settings keys, and the
//!   cache holds at most [`MAX_WEIGHT`]. A token that names many tenants
//!   (each a separate entry holding a copy of the memberships) cannot grow
//!   it past that; when full it drops what has expired, and everything if
//!   that is not enough. A tenant that does not exist is not kept (random
//!   IDs in paths would only fill it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use auditlake_core::time_fmt;

use crate::tokens::{Authenticated, NamedTenant, TenantRef};

/// Total weight kept at most (see the module docs): about 100,000
/// memberships, a few MiB.
pub const MAX_WEIGHT: usize = 100_000;

/// How long an entry may be served when no local change came in between.
pub const DEFAULT_TTL: Duration = Duration::from_secs(1);

type Key = (String, Option<TenantRef>);

struct Entry {
    at: Instant,
    generation: u64,
    weight: usize,
    auth: Authenticated,
}

#[derive(Default)]
struct Entries {
    map: HashMap<Key, Entry>,
    /// Sum of the entries' weights.
    weight: usize,
}

impl Entries {
    fn clear(&mut self) {
        self.map.clear();
        self.weight = 0;
    }

    fn retain(&mut self, keep: impl Fn(&Entry) -> bool) {
        self.map.retain(|_, e| keep(e));
        self.weight = self.map.values().map(|e| e.weight).sum();
    }
}

/// How much of the bound an authentication takes.
fn weight(auth: &Authenticated) -> usize {
    let settings = match &auth.tenant {
        Some(NamedTenant::Org(_, Some(org))) => org.settings.len(),
        _ => 0,
    };
    1 + auth.access.group_admin.len() + auth.access.org_roles.len() + settings
}

/// See the module docs.
pub(crate) struct AuthCache {
    /// Microseconds; shared by every clone of the store.
    ttl_us: AtomicU64,
    generation: AtomicU64,
    entries: Mutex<Entries>,
}

impl Default for AuthCache {
    fn default() -> Self {
        AuthCache::new(DEFAULT_TTL)
    }
}

impl AuthCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        AuthCache {
            ttl_us: AtomicU64::new(micros(ttl)),
            generation: AtomicU64::new(0),
            entries: Mutex::new(Entries::default()),
        }
    }

    pub(crate) fn set_ttl(&self, ttl: Duration) {
        self.ttl_us.store(micros(ttl), Ordering::Relaxed);
        self.lock().clear();
    }

    fn ttl(&self) -> Duration {
        Duration::from_micros(self.ttl_us.load(Ordering::Relaxed))
    }

    /// The generation to stamp on an entry read from the database now;
    /// take it before the read.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Makes every entry stale: a state change committed. The entries go
    /// too; one being put concurrently carries the old generation and is
    /// never served.
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.lock().clear();
    }

    /// The cached authentication of `hash` for `named`, if still good.
    pub(crate) fn get(&self, hash: &str, named: Option<TenantRef>) -> Option<Authenticated> {
        let ttl = self.ttl();
        if ttl.is_zero() {
            return None;
        }
        let generation = self.generation();
        let entries = self.lock();
        let e = entries.map.get(&(hash.to_owned(), named))?;
        let fresh = e.generation == generation
            && e.at.elapsed() < ttl
            && e.auth.token.is_usable_at(time_fmt::now_micros());
        fresh.then(|| e.auth.clone())
    }

    /// Keeps `auth`, read from the database after `generation` was taken.
    pub(crate) fn put(
        &self,
        hash: String,
        named: Option<TenantRef>,
        generation: u64,
        auth: &Authenticated,
    ) {
        let ttl = self.ttl();
        let missing = matches!(
            auth.tenant,
            Some(NamedTenant::Org(_, None) | NamedTenant::Group(_, None))
        );
        let weight = weight(auth);
        if ttl.is_zero() || missing || weight > MAX_WEIGHT || generation != self.generation() {
            return;
        }
        let mut entries = self.lock();
        if entries.weight + weight > MAX_WEIGHT {
            entries.retain(|e| e.generation == generation && e.at.elapsed() < ttl);
            if entries.weight + weight > MAX_WEIGHT {
                entries.clear();
            }
        }
        let old = entries.map.insert(
            (hash, named),
            Entry {
                at: Instant::now(),
                generation,
                weight,
                auth: auth.clone(),
            },
        );
        entries.weight += weight;
        if let Some(old) = old {
            entries.weight -= old.weight;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use auditlake_core::tenant::Access;
    use auditlake_core::{Token, User};
    use uuid::Uuid;

    use super::*;

    fn auth(expires_us: Option<i64>) -> Authenticated {
        let user = Uuid::now_v7();
        Authenticated {
            user: User {
                id: user,
                email: "a@example.com".into(),
                name: "A".into(),
                created_us: 1,
            },
            token: Token {
                id: Uuid::now_v7(),
                user_id: user,
                name: "t".into(),
                prefix: "alk_abcd".into(),
                created_us: 1,
                expires_us,
                revoked_us: None,
            },
            access: Access {
                user_id: user,
                ..Access::default()
            },
            tenant: None,
        }
    }

    fn cached(cache: &AuthCache, key: &str, named: Option<TenantRef>) -> Option<Uuid> {
        cache.get(key, named).map(|a| a.user.id)
    }

    #[test]
    fn serves_what_it_was_given_for_the_same_token_and_tenant_only() {
        let cache = AuthCache::new(Duration::from_secs(60));
        let a = auth(None);
        let org = Some(TenantRef::Org(Uuid::now_v7()));
        cache.put("h1".into(), org, cache.generation(), &a);
        assert_eq!(cached(&cache, "h1", org), Some(a.user.id));
        assert_eq!(cached(&cache, "h1", None), None);
        assert_eq!(cached(&cache, "h2", org), None);
        assert_eq!(
            cached(&cache, "h1", Some(TenantRef::Org(Uuid::now_v7()))),
            None
        );
    }

    #[test]
    fn a_state_change_makes_every_entry_stale() {
        let cache = AuthCache::new(Duration::from_secs(60));
        cache.put("h".into(), None, cache.generation(), &auth(None));
        cache.invalidate();
        assert_eq!(cached(&cache, "h", None), None);
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let cache = AuthCache::new(Duration::from_secs(60));
        let before = cache.generation();
        cache.invalidate();
        cache.put("h".into(), None, before, &auth(None));
        assert_eq!(cached(&cache, "h", None), None);
    }

    #[test]
    fn an_entry_older_than_the_ttl_is_not_served() {
        let cache = AuthCache::new(Duration::from_secs(60));
        cache.put("h".into(), None, cache.generation(), &auth(None));
        let aged = Instant::now()
            .checked_sub(Duration::from_secs(61))
            .expect("uptime over a minute");
        cache.lock().map.values_mut().for_each(|e| e.at = aged);
        assert_eq!(cached(&cache, "h", None), None);
    }

    #[test]
    fn an_expired_token_is_not_served() {
        let cache = AuthCache::new(Duration::from_secs(60));
        let past = time_fmt::now_micros() - 1;
        cache.put("h".into(), None, cache.generation(), &auth(Some(past)));
        assert_eq!(cached(&cache, "h", None), None);
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let cache = AuthCache::new(Duration::ZERO);
        cache.put("h".into(), None, cache.generation(), &auth(None));
        assert_eq!(cached(&cache, "h", None), None);
        assert!(cache.lock().map.is_empty());
    }

    #[test]
    fn never_holds_more_than_max_weight() {
        let cache = AuthCache::new(Duration::from_secs(60));
        let a = auth(None);
        for i in 0..MAX_WEIGHT + 10 {
            cache.put(format!("h{i}"), None, cache.generation(), &a);
        }
        let last = format!("h{}", MAX_WEIGHT + 9);
        assert_eq!(cached(&cache, &last, None), Some(a.user.id));

        // One token naming many tenants, its memberships copied in each
        // entry: the bound is on memberships held, not on entries.
        let mut member = auth(None);
        member.access.group_admin = (0..1_000).map(|_| Uuid::now_v7()).collect();
        for _ in 0..1_000 {
            let named = Some(TenantRef::Group(Uuid::now_v7()));
            cache.put("m".into(), named, cache.generation(), &member);
        }
        let held = cache.lock();
        let memberships: usize = held
            .map
            .values()
            .map(|e| 1 + e.auth.access.group_admin.len())
            .sum();
        assert!(memberships <= MAX_WEIGHT, "{memberships}");
        assert_eq!(held.weight, memberships);
    }

    #[test]
    fn a_tenant_that_does_not_exist_is_not_kept() {
        let cache = AuthCache::new(Duration::from_secs(60));
        let id = Uuid::now_v7();
        for (named, tenant) in [
            (TenantRef::Org(id), NamedTenant::Org(id, None)),
            (TenantRef::Group(id), NamedTenant::Group(id, None)),
        ] {
            let mut a = auth(None);
            a.tenant = Some(tenant);
            cache.put("h".into(), Some(named), cache.generation(), &a);
            assert_eq!(cached(&cache, "h", Some(named)), None);
        }
    }
}
