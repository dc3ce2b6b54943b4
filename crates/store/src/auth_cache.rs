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
//!   it past that; when full, `quick_cache` evicts the entries least likely
//!   to be asked for again. A tenant that does not exist is not kept (random
//!   IDs in paths would only fill it).
//!
//! The entries live in `quick_cache` (a sharded cache with a weigher), which
//! answers a hit as fast as one mutex around a map and evicts entry by entry;
//! the TTL and the generation are checked here, since it has neither.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use auditlake_core::time_fmt;

use crate::tokens::{Authenticated, NamedTenant, TenantRef};

/// Total weight kept at most (see the module docs): about 100,000
/// memberships, a few MiB.
pub const MAX_WEIGHT: usize = 100_000;

/// How long an entry may be served when no local change came in between.
pub const DEFAULT_TTL: Duration = Duration::from_secs(1);

type Key = (String, Option<TenantRef>);

#[derive(Clone)]
struct Entry {
    at: Instant,
    generation: u64,
    auth: Authenticated,
}

/// An entry's share of [`MAX_WEIGHT`].
#[derive(Clone)]
struct Weight;

impl quick_cache::Weighter<Key, Entry> for Weight {
    fn weight(&self, _: &Key, entry: &Entry) -> u64 {
        weight(&entry.auth) as u64
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
    entries: quick_cache::sync::Cache<Key, Entry, Weight>,
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
            // The first argument only sizes the table up front.
            entries: quick_cache::sync::Cache::with_weighter(1024, MAX_WEIGHT as u64, Weight),
        }
    }

    pub(crate) fn set_ttl(&self, ttl: Duration) {
        self.ttl_us.store(micros(ttl), Ordering::Relaxed);
        self.entries.clear();
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
        self.entries.clear();
    }

    /// The cached authentication of `hash` for `named`, if still good.
    pub(crate) fn get(&self, hash: &str, named: Option<TenantRef>) -> Option<Authenticated> {
        let ttl = self.ttl();
        if ttl.is_zero() {
            return None;
        }
        let generation = self.generation();
        let e = self.entries.get(&(hash.to_owned(), named))?;
        let fresh = e.generation == generation
            && e.at.elapsed() < ttl
            && e.auth.token.is_usable_at(time_fmt::now_micros());
        fresh.then_some(e.auth)
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
        if ttl.is_zero() || missing || weight(auth) > MAX_WEIGHT || generation != self.generation()
        {
            return;
        }
        let entry = Entry {
            at: Instant::now(),
            generation,
            auth: auth.clone(),
        };
        self.entries.insert((hash, named), entry);
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
        let key = ("h".to_owned(), None);
        let mut entry = cache.entries.peek(&key).expect("kept");
        entry.at = aged;
        cache.entries.insert(key, entry);
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
        assert!(cache.entries.is_empty());
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
        let memberships: usize = cache
            .entries
            .iter()
            .map(|(_, e)| 1 + e.auth.access.group_admin.len())
            .sum();
        assert!(memberships <= MAX_WEIGHT, "{memberships}");
        assert_eq!(cache.entries.weight(), memberships as u64);
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
