//! Users, groups, organizations and memberships. Every change appends its
//! audit event in the same transaction.

use std::collections::HashSet;

use auditlake_core::tenant::Access;
use auditlake_core::{time_fmt, Actor, Group, Org, Role, Scope, User};
use serde_json::{json, Map, Value};
use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

use crate::append::WriteTx;
use crate::batch::insert_events;
use crate::{rows, Store, StoreError};

/// A window of a list ordered by ID (IDs are time-ordered UUIDs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Items with IDs greater than this.
    pub after: Option<Uuid>,
    /// Items with IDs smaller than this (ignored when `after` is set).
    pub before: Option<Uuid>,
    /// How many items at most.
    pub limit: u32,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            after: None,
            before: None,
            limit: 10,
        }
    }
}

/// One page of a list, in ascending ID order.
#[derive(Debug, Clone, PartialEq)]
pub struct PageOf<T> {
    /// The items.
    pub items: Vec<T>,
    /// Whether more items lie beyond the page in the direction of travel
    /// (after the last item, or before the first when paging backwards).
    pub has_more: bool,
}

/// A user's membership of a group or an org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Membership ID.
    pub id: Uuid,
    /// The member.
    pub user_id: Uuid,
    /// The member's email.
    pub email: String,
    /// The member's name.
    pub name: String,
    /// Role held.
    pub role: Role,
    /// When it was granted.
    pub created_us: i64,
}

fn member(row: &AnyRow) -> Result<Member, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(Member {
        id: rows::uuid(row, "id")?,
        user_id: rows::uuid(row, "user_id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role {role}")))?,
        created_us: row.try_get("created_us")?,
    })
}

impl Store {
    /// Runs a keyset-paginated query. `select` ends in a `WHERE` clause with
    /// `$1` as its only parameter; `id_col` is the ordering column.
    pub(crate) async fn page<T>(
        &self,
        select: &str,
        arg: String,
        id_col: &str,
        page: Page,
        decode: fn(&AnyRow) -> Result<T, StoreError>,
    ) -> Result<PageOf<T>, StoreError> {
        let limit = i64::from(page.limit.max(1)) + 1;
        let (sql, cursor, backwards) = match (page.after, page.before) {
            (Some(a), _) => (
                format!("{select} AND {id_col} > $2 ORDER BY {id_col} LIMIT $3"),
                Some(a),
                false,
            ),
            (None, Some(b)) => (
                format!("{select} AND {id_col} < $2 ORDER BY {id_col} DESC LIMIT $3"),
                Some(b),
                true,
            ),
            (None, None) => (format!("{select} ORDER BY {id_col} LIMIT $2"), None, false),
        };
        let mut q = sqlx::query(&sql).bind(arg);
        if let Some(c) = cursor {
            q = q.bind(c.to_string());
        }
        let rows = q.bind(limit).fetch_all(&self.read).await?;
        let has_more = rows.len() as i64 == limit;
        let mut items = rows
            .iter()
            .take(page.limit.max(1) as usize)
            .map(decode)
            .collect::<Result<Vec<_>, _>>()?;
        if backwards {
            items.reverse();
        }
        Ok(PageOf { items, has_more })
    }

    // ---- users ----

    /// Creates a user. Emails are unique (case-insensitive).
    pub async fn create_user(&self, email: &str, name: &str) -> Result<User, StoreError> {
        let user = User {
            id: auditlake_core::new_id(),
            email: email.to_lowercase(),
            name: name.to_owned(),
            created_us: time_fmt::now_micros(),
        };
        let mut tx = self.write.begin().await?;
        let res =
            sqlx::query("INSERT INTO users (id, email, name, created_us) VALUES ($1,$2,$3,$4)")
                .bind(user.id.to_string())
                .bind(user.email.clone())
                .bind(user.name.clone())
                .bind(user.created_us)
                .execute(&mut tx)
                .await;
        match res {
            Err(e) if StoreError::is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "a user with email {:?} already exists",
                    user.email
                )))
            }
            other => other?,
        };
        let ev = Actor::user(user.id).event(
            "user.create",
            Scope::User,
            json!({"userPublicId": user.id, "email": user.email}),
        );
        insert_events(&mut tx, &[ev]).await?;
        self.commit(tx).await?;
        Ok(user)
    }

    /// A user by ID.
    pub async fn user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {} FROM users WHERE id = $1", rows::USER_COLS);
        sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(rows::user)
            .transpose()
    }

    /// A user by email (case-insensitive).
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {} FROM users WHERE email = $1", rows::USER_COLS);
        sqlx::query(&sql)
            .bind(email.to_lowercase())
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(rows::user)
            .transpose()
    }

    /// Which of `users` are or were members of `scope`'s tenant: of the org
    /// or of its group, for an org; of the group or of one of its orgs, for
    /// a group. Only these users are named in a tenant's pages or may be
    /// the user of an event ingested into it.
    pub async fn members_ever(
        &self,
        scope: Scope,
        users: &[Uuid],
    ) -> Result<HashSet<Uuid>, StoreError> {
        let mut found = HashSet::new();
        let (tenant, kind) = match scope {
            Scope::Org(id) => (id, "org"),
            Scope::Group(id) => (id, "group"),
            Scope::User => return Ok(found),
        };
        // The tenant's own history, and its group's (an org) or its orgs'
        // (a group).
        let related = match kind {
            "org" => {
                "(h.scope_kind = 'org' AND h.scope_id = $1) \
                 OR (h.scope_kind = 'group' AND h.scope_id = (SELECT group_id FROM orgs WHERE id = $1))"
            }
            _ => {
                "(h.scope_kind = 'group' AND h.scope_id = $1) \
                 OR (h.scope_kind = 'org' AND h.scope_id IN (SELECT id FROM orgs WHERE group_id = $1))"
            }
        };
        for chunk in users.chunks(500) {
            // `$1` first: SQLite numbers named parameters as they appear.
            let list: Vec<String> = (2..2 + chunk.len()).map(|n| format!("${n}")).collect();
            let sql = format!(
                "SELECT DISTINCT h.user_id FROM member_history h \
                 WHERE ({related}) AND h.user_id IN ({})",
                list.join(",")
            );
            let mut q = sqlx::query(&sql).bind(tenant.to_string());
            for u in chunk {
                q = q.bind(u.to_string());
            }
            for row in q.fetch_all(&self.read).await? {
                found.insert(rows::uuid(&row, "user_id")?);
            }
        }
        Ok(found)
    }

    /// The user with `email`, if they are or were a member of `scope`'s
    /// tenant ([`Store::members_ever`]): an unknown email and one outside
    /// the tenant look the same.
    pub async fn member_by_email(
        &self,
        scope: Scope,
        email: &str,
    ) -> Result<Option<User>, StoreError> {
        let Some(user) = self.user_by_email(email).await? else {
            return Ok(None);
        };
        Ok(self
            .members_ever(scope, &[user.id])
            .await?
            .contains(&user.id)
            .then_some(user))
    }

    /// Whether `user` is now a member of the group `scope` belongs to (the
    /// group itself, or an org whose group it is): who may be added to a
    /// tenant directly. A standalone org belongs to no group.
    pub async fn in_group_of(&self, scope: Scope, user: Uuid) -> Result<bool, StoreError> {
        let group = match scope {
            Scope::Group(id) => Some(id),
            Scope::Org(id) => self.org(id).await?.and_then(|o| o.group_id),
            Scope::User => None,
        };
        let Some(group) = group else {
            return Ok(false);
        };
        let row = sqlx::query(
            "SELECT 1 AS hit FROM memberships m WHERE m.user_id = $1 AND \
             ((m.scope_kind = 'group' AND m.scope_id = $2) \
              OR (m.scope_kind = 'org' AND m.scope_id IN (SELECT id FROM orgs WHERE group_id = $2))) \
             LIMIT 1",
        )
        .bind(user.to_string())
        .bind(group.to_string())
        .fetch_optional(&self.read)
        .await?;
        Ok(row.is_some())
    }

    /// The caller's memberships, for rights checks.
    pub async fn access(&self, user_id: Uuid) -> Result<Access, StoreError> {
        let rows =
            sqlx::query("SELECT scope_kind, scope_id, role FROM memberships WHERE user_id = $1")
                .bind(user_id.to_string())
                .fetch_all(&self.read)
                .await?;
        let mut access = Access {
            user_id,
            ..Access::default()
        };
        for row in rows {
            grant_of(&mut access, &row)?;
        }
        Ok(access)
    }

    // ---- groups ----

    /// Creates a group; the creator (if any) becomes its admin.
    pub async fn create_group(&self, name: &str, actor: &Actor) -> Result<Group, StoreError> {
        let group = Group {
            id: auditlake_core::new_id(),
            name: name.to_owned(),
            created_us: time_fmt::now_micros(),
        };
        let mut tx = self.write.begin().await?;
        sqlx::query("INSERT INTO groups_ (id, name, created_us) VALUES ($1,$2,$3)")
            .bind(group.id.to_string())
            .bind(group.name.clone())
            .bind(group.created_us)
            .execute(&mut tx)
            .await?;
        let mut events = vec![actor.event(
            "group.create",
            Scope::Group(group.id),
            json!({"groupPublicId": group.id, "name": group.name}),
        )];
        if let Some(user) = actor.user_id {
            events.push(
                grant(
                    &mut tx,
                    Scope::Group(group.id),
                    user,
                    Role::GroupAdmin,
                    actor,
                )
                .await?
                .1,
            );
        }
        insert_events(&mut tx, &events).await?;
        self.commit(tx).await?;
        Ok(group)
    }

    /// A group by ID.
    pub async fn group(&self, id: Uuid) -> Result<Option<Group>, StoreError> {
        let sql = format!("SELECT {} FROM groups_ WHERE id = $1", rows::GROUP_COLS);
        sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(rows::group)
            .transpose()
    }

    /// Groups the user administers.
    pub async fn groups_of(&self, user_id: Uuid, page: Page) -> Result<PageOf<Group>, StoreError> {
        let select = format!(
            "SELECT {} FROM groups_ WHERE id IN (SELECT scope_id FROM memberships \
             WHERE scope_kind = 'group' AND user_id = $1)",
            rows::GROUP_COLS
        );
        self.page(&select, user_id.to_string(), "id", page, rows::group)
            .await
    }

    /// Orgs of a group.
    pub async fn group_orgs(&self, group: Uuid, page: Page) -> Result<PageOf<Org>, StoreError> {
        let select = format!("SELECT {} FROM orgs WHERE group_id = $1", rows::ORG_COLS);
        self.page(&select, group.to_string(), "id", page, rows::org)
            .await
    }

    /// Moves a standalone org into `group` (`group.org.add`). From now on the
    /// org's events carry the group.
    pub async fn add_org_to_group(
        &self,
        group: Uuid,
        org: Uuid,
        actor: &Actor,
    ) -> Result<Org, StoreError> {
        let mut tx = self.write.begin().await?;
        scope_exists(&mut tx, Scope::Group(group)).await?;
        let mut current = org_in(&mut tx, org).await?;
        match current.group_id {
            Some(g) if g == group => {
                return Err(StoreError::Conflict(
                    "the organization is already in this group".into(),
                ))
            }
            Some(_) => {
                return Err(StoreError::Conflict(
                    "the organization belongs to another group".into(),
                ))
            }
            None => {}
        }
        sqlx::query("UPDATE orgs SET group_id = $1 WHERE id = $2")
            .bind(group.to_string())
            .bind(org.to_string())
            .execute(&mut tx)
            .await?;
        current.group_id = Some(group);
        let ev = actor.event(
            "group.org.add",
            Scope::Group(group),
            json!({"orgPublicId": org, "orgName": current.name}),
        );
        insert_events(&mut tx, &[ev]).await?;
        self.commit(tx).await?;
        Ok(current)
    }

    // ---- orgs ----

    /// Creates an org, standalone or inside `group`. A standalone org's
    /// creator becomes its admin.
    pub async fn create_org(
        &self,
        name: &str,
        group: Option<Uuid>,
        actor: &Actor,
    ) -> Result<Org, StoreError> {
        let id = auditlake_core::new_id();
        let org = Org {
            id,
            name: name.to_owned(),
            slug: slug(name, id),
            group_id: group,
            settings: Map::new(),
            created_us: time_fmt::now_micros(),
        };
        let mut tx = self.write.begin().await?;
        if let Some(g) = group {
            let exists = sqlx::query("SELECT id FROM groups_ WHERE id = $1")
                .bind(g.to_string())
                .fetch_optional(&mut tx)
                .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound("group"));
            }
        }
        sqlx::query(
            "INSERT INTO orgs (id, name, slug, group_id, settings, created_us) VALUES ($1,$2,$3,$4,$5,$6)",
        )
        .bind(org.id.to_string())
        .bind(org.name.clone())
        .bind(org.slug.clone())
        .bind(group.map(|g| g.to_string()))
        .bind("{}")
        .bind(org.created_us)
        .execute(&mut tx)
        .await?;
        let mut events = vec![actor.event(
            "org.create",
            Scope::Org(org.id),
            json!({"orgPublicId": org.id, "name": org.name, "slug": org.slug, "groupPublicId": group}),
        )];
        if let (None, Some(user)) = (group, actor.user_id) {
            events.push(
                grant(&mut tx, Scope::Org(org.id), user, Role::OrgAdmin, actor)
                    .await?
                    .1,
            );
        }
        insert_events(&mut tx, &events).await?;
        self.commit(tx).await?;
        Ok(org)
    }

    /// An org by ID.
    pub async fn org(&self, id: Uuid) -> Result<Option<Org>, StoreError> {
        let sql = format!("SELECT {} FROM orgs WHERE id = $1", rows::ORG_COLS);
        sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(rows::org)
            .transpose()
    }

    /// Orgs the user can read: direct memberships and orgs of groups the
    /// user administers.
    pub async fn orgs_of(&self, user_id: Uuid, page: Page) -> Result<PageOf<Org>, StoreError> {
        let select = format!(
            "SELECT {} FROM orgs WHERE (id IN (SELECT scope_id FROM memberships \
             WHERE scope_kind = 'org' AND user_id = $1) OR group_id IN (SELECT scope_id \
             FROM memberships WHERE scope_kind = 'group' AND user_id = $1))",
            rows::ORG_COLS
        );
        self.page(&select, user_id.to_string(), "id", page, rows::org)
            .await
    }

    /// Renames an org and/or merges `settings` into its settings (a JSON
    /// merge patch: `null` removes a key). Writes `org.edit` for the name and
    /// `org.settings.edit` with `before`/`after` of the changed keys.
    pub async fn update_org(
        &self,
        id: Uuid,
        name: Option<&str>,
        settings: Option<&Map<String, Value>>,
        actor: &Actor,
    ) -> Result<Org, StoreError> {
        let mut tx = self.write.begin().await?;
        let mut org = org_in(&mut tx, id).await?;
        let mut events = Vec::new();
        if let Some(name) = name.filter(|n| *n != org.name) {
            events.push(actor.event(
                "org.edit",
                Scope::Org(id),
                json!({"before": {"name": org.name}, "after": {"name": name}}),
            ));
            org.name = name.to_owned();
        }
        if let Some(patch) = settings {
            let (mut before, mut after) = (Map::new(), Map::new());
            for (k, v) in patch {
                let old = org.settings.get(k).cloned().unwrap_or(Value::Null);
                if old == *v {
                    continue;
                }
                before.insert(k.clone(), old);
                after.insert(k.clone(), v.clone());
                if v.is_null() {
                    org.settings.remove(k);
                } else {
                    org.settings.insert(k.clone(), v.clone());
                }
            }
            if !after.is_empty() {
                events.push(actor.event(
                    "org.settings.edit",
                    Scope::Org(id),
                    json!({"before": before, "after": after}),
                ));
            }
        }
        if events.is_empty() {
            return Ok(org);
        }
        sqlx::query("UPDATE orgs SET name = $1, settings = $2 WHERE id = $3")
            .bind(org.name.clone())
            .bind(Value::Object(org.settings.clone()).to_string())
            .bind(id.to_string())
            .execute(&mut tx)
            .await?;
        insert_events(&mut tx, &events).await?;
        self.commit(tx).await?;
        Ok(org)
    }

    // ---- memberships ----

    /// Grants `role` on a group or an org (`group.user.add` / `org.user.add`).
    pub async fn add_member(
        &self,
        scope: Scope,
        user: Uuid,
        role: Role,
        actor: &Actor,
    ) -> Result<Member, StoreError> {
        let mut tx = self.write.begin().await?;
        let target = sqlx::query(&format!(
            "SELECT {} FROM users WHERE id = $1",
            rows::USER_COLS
        ))
        .bind(user.to_string())
        .fetch_optional(&mut tx)
        .await?
        .as_ref()
        .map(rows::user)
        .transpose()?
        .ok_or(StoreError::NotFound("user"))?;
        scope_exists(&mut tx, scope).await?;
        let (id, ev) = grant(&mut tx, scope, user, role, actor).await?;
        let stored = insert_events(&mut tx, std::slice::from_ref(&ev)).await?;
        self.commit(tx).await?;
        Ok(Member {
            id,
            user_id: user,
            email: target.email,
            name: target.name,
            role,
            created_us: stored[0].created_us,
        })
    }

    /// Revokes a membership (`group.user.remove` / `org.user.remove`).
    pub async fn remove_member(
        &self,
        scope: Scope,
        user: Uuid,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let (kind, id, name) = scope_parts(scope)?;
        let mut tx = self.write.begin().await?;
        let done = sqlx::query(
            "DELETE FROM memberships WHERE scope_kind = $1 AND scope_id = $2 AND user_id = $3",
        )
        .bind(kind)
        .bind(id.to_string())
        .bind(user.to_string())
        .execute(&mut tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("membership"));
        }
        let event = if name == "group" {
            "group.user.remove"
        } else {
            "org.user.remove"
        };
        let ev = actor.event(event, scope, json!({"userPublicId": user}));
        insert_events(&mut tx, &[ev]).await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// One membership of a group or an org, by membership ID.
    pub async fn member(&self, scope: Scope, id: Uuid) -> Result<Option<Member>, StoreError> {
        let (kind, scope_id, _) = scope_parts(scope)?;
        sqlx::query(
            "SELECT m.id AS id, m.user_id AS user_id, u.email AS email, u.name AS name, \
             m.role AS role, m.created_us AS created_us FROM memberships m \
             JOIN users u ON u.id = m.user_id \
             WHERE m.scope_kind = $1 AND m.scope_id = $2 AND m.id = $3",
        )
        .bind(kind)
        .bind(scope_id.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.read)
        .await?
        .as_ref()
        .map(member)
        .transpose()
    }

    /// Members of a group or an org.
    pub async fn members(&self, scope: Scope, page: Page) -> Result<PageOf<Member>, StoreError> {
        let (kind, id, _) = scope_parts(scope)?;
        let select = format!(
            "SELECT m.id AS id, m.user_id AS user_id, u.email AS email, u.name AS name, \
             m.role AS role, m.created_us AS created_us FROM memberships m \
             JOIN users u ON u.id = m.user_id WHERE m.scope_kind = '{kind}' AND m.scope_id = $1"
        );
        self.page(&select, id.to_string(), "m.id", page, member)
            .await
    }
}

/// Adds the membership in `row` (`scope_kind`, `scope_id`, `role`) to
/// `access`.
pub(crate) fn grant_of(access: &mut Access, row: &AnyRow) -> Result<(), StoreError> {
    let kind: String = row.try_get("scope_kind")?;
    let id = rows::uuid(row, "scope_id")?;
    let role: String = row.try_get("role")?;
    match (kind.as_str(), Role::parse(&role)) {
        ("group", Some(Role::GroupAdmin)) => access.group_admin.push(id),
        ("org", Some(r)) if r.is_org_role() => {
            access.org_roles.insert(id, r);
        }
        _ => return Err(StoreError::Corrupt(format!("membership {kind}/{role}"))),
    }
    Ok(())
}

fn scope_parts(scope: Scope) -> Result<(&'static str, Uuid, &'static str), StoreError> {
    match scope {
        Scope::Group(g) => Ok(("group", g, "group")),
        Scope::Org(o) => Ok(("org", o, "org")),
        Scope::User => Err(StoreError::Invalid(
            "memberships belong to a group or an org".into(),
        )),
    }
}

/// Inserts a membership row and returns its ID and its audit event (not yet
/// appended).
async fn grant(
    conn: &mut WriteTx,
    scope: Scope,
    user: Uuid,
    role: Role,
    actor: &Actor,
) -> Result<(Uuid, auditlake_core::NewEvent), StoreError> {
    let (kind, id, _) = scope_parts(scope)?;
    if (kind == "group") == role.is_org_role() {
        return Err(StoreError::Invalid(format!(
            "role {} cannot be granted on a {kind}",
            role.as_str()
        )));
    }
    let membership = auditlake_core::new_id();
    let now = time_fmt::now_micros();
    let res = sqlx::query(
        "INSERT INTO memberships (id, user_id, scope_kind, scope_id, role, created_us) \
         VALUES ($1,$2,$3,$4,$5,$6)",
    )
    .bind(membership.to_string())
    .bind(user.to_string())
    .bind(kind)
    .bind(id.to_string())
    .bind(role.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await;
    match res {
        Err(e) if StoreError::is_unique_violation(&e) => {
            return Err(StoreError::Conflict(format!(
                "the user is already a member of this {kind}"
            )))
        }
        other => other?,
    };
    sqlx::query(
        "INSERT INTO member_history (scope_kind, scope_id, user_id) VALUES ($1,$2,$3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(kind)
    .bind(id.to_string())
    .bind(user.to_string())
    .execute(&mut *conn)
    .await?;
    let event = if kind == "group" {
        "group.user.add"
    } else {
        "org.user.add"
    };
    let mut ev = actor.event(
        event,
        scope,
        json!({"role": role.as_str(), "userPublicId": user, "membershipPublicId": membership}),
    );
    // The membership and its event share one time, so `Member::created_us`
    // (taken from the event) matches the stored membership.
    ev.created_us = now;
    Ok((membership, ev))
}

/// `NotFound` unless the group or org behind `scope` exists.
pub(crate) async fn scope_exists(conn: &mut WriteTx, scope: Scope) -> Result<(), StoreError> {
    let (sql, id, what) = match scope {
        Scope::Group(g) => ("SELECT id FROM groups_ WHERE id = $1", g, "group"),
        Scope::Org(o) => ("SELECT id FROM orgs WHERE id = $1", o, "organization"),
        Scope::User => return Ok(()),
    };
    sqlx::query(sql)
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .map(|_| ())
        .ok_or(StoreError::NotFound(what))
}

/// The org, locked until the end of the transaction (PostgreSQL; on SQLite
/// the single write connection already serializes writers), so that a
/// read-modify-write of the row cannot lose a concurrent change.
async fn org_in(conn: &mut WriteTx, id: Uuid) -> Result<Org, StoreError> {
    let lock = if matches!(conn, WriteTx::Postgres(_)) {
        " FOR UPDATE"
    } else {
        ""
    };
    let sql = format!("SELECT {} FROM orgs WHERE id = $1{lock}", rows::ORG_COLS);
    sqlx::query(&sql)
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(rows::org)
        .transpose()?
        .ok_or(StoreError::NotFound("organization"))
}

/// A URL-friendly name, made unique by a piece of the ID.
fn slug(name: &str, id: Uuid) -> String {
    let mut s: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s = s
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    s.truncate(48);
    let tail = id.simple().to_string();
    format!(
        "{}-{}",
        if s.is_empty() {
            "org"
        } else {
            s.trim_end_matches('-')
        },
        &tail[tail.len() - 6..]
    )
}
