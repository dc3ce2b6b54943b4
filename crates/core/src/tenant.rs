//! Tenants and who may do what with them.
//!
//! A group holds organizations; an organization belongs to at most one group
//! and may join one later. Rights come from memberships: a group admin
//! administers the group and every org in it; an org admin administers the
//! org; an org member reads it. [`Access`] answers every rights question in
//! one place so that handlers never improvise a check.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Which tenant an event or a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// An organization; the store adds its parent group.
    Org(Uuid),
    /// A group-level action (org added to group, user added to group).
    Group(Uuid),
    /// Not tied to a tenant (a user's own token list, for example).
    User,
}

/// A membership role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Administers a group and every org in it.
    GroupAdmin,
    /// Administers one org.
    OrgAdmin,
    /// Reads one org.
    OrgMember,
}

impl Role {
    /// The role's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::GroupAdmin => "group_admin",
            Role::OrgAdmin => "org_admin",
            Role::OrgMember => "org_member",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "group_admin" => Some(Role::GroupAdmin),
            "org_admin" => Some(Role::OrgAdmin),
            "org_member" => Some(Role::OrgMember),
            _ => None,
        }
    }

    /// Whether the role applies to an org (as opposed to a group).
    pub fn is_org_role(self) -> bool {
        !matches!(self, Role::GroupAdmin)
    }
}

/// A person (or service account) who acts on the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// User ID; the `principalId` forwarded to CloudTrail Lake.
    pub id: Uuid,
    /// Email, unique.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Creation time, epoch microseconds.
    pub created_us: i64,
}

/// A group of organizations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Group ID; the External ID of a group registration.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Creation time, epoch microseconds.
    pub created_us: i64,
}

/// An organization.
#[derive(Debug, Clone, PartialEq)]
pub struct Org {
    /// Organization ID; the External ID of an org integration.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// URL-friendly unique name.
    pub slug: String,
    /// Parent group, if any.
    pub group_id: Option<Uuid>,
    /// Settings, a JSON object of setting name to value.
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// Creation time, epoch microseconds.
    pub created_us: i64,
}

/// A personal API token's metadata (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Token ID.
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// A label chosen by the owner.
    pub name: String,
    /// The first characters of the secret, to tell tokens apart.
    pub prefix: String,
    /// Creation time, epoch microseconds.
    pub created_us: i64,
    /// Expiry, if any.
    pub expires_us: Option<i64>,
    /// When it was revoked, if it was.
    pub revoked_us: Option<i64>,
}

impl Token {
    /// Whether the token may authenticate at `now_us`: not revoked and not
    /// expired.
    pub fn is_usable_at(&self, now_us: i64) -> bool {
        self.revoked_us.is_none() && self.expires_us.is_none_or(|e| e > now_us)
    }
}

/// A caller's memberships, loaded once per request.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// The caller.
    pub user_id: Uuid,
    /// Groups the caller administers.
    pub group_admin: Vec<Uuid>,
    /// Role per org the caller is a direct member of.
    pub org_roles: HashMap<Uuid, Role>,
}

impl Access {
    /// Whether the caller administers `group`.
    pub fn is_group_admin(&self, group: Uuid) -> bool {
        self.group_admin.contains(&group)
    }

    /// Whether the caller may read `org` (member, admin, or admin of its group).
    pub fn can_read_org(&self, org: &Org) -> bool {
        self.org_roles.contains_key(&org.id) || self.admins_parent(org)
    }

    /// Whether the caller may change `org`.
    pub fn can_admin_org(&self, org: &Org) -> bool {
        self.org_roles.get(&org.id) == Some(&Role::OrgAdmin) || self.admins_parent(org)
    }

    fn admins_parent(&self, org: &Org) -> bool {
        org.group_id.is_some_and(|g| self.is_group_admin(g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(group: Option<Uuid>) -> Org {
        Org {
            id: Uuid::now_v7(),
            name: "o".into(),
            slug: "o".into(),
            group_id: group,
            settings: Default::default(),
            created_us: 0,
        }
    }

    #[test]
    fn a_token_is_usable_until_revoked_or_expired() {
        let t = Token {
            id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            name: "t".into(),
            prefix: "alk_abcd".into(),
            created_us: 0,
            expires_us: None,
            revoked_us: None,
        };
        assert!(t.is_usable_at(i64::MAX));
        let expiring = Token {
            expires_us: Some(100),
            ..t.clone()
        };
        assert!(expiring.is_usable_at(99));
        assert!(!expiring.is_usable_at(100));
        let revoked = Token {
            revoked_us: Some(5),
            ..t
        };
        assert!(!revoked.is_usable_at(0));
    }

    #[test]
    fn rights_follow_memberships() {
        let g = Uuid::now_v7();
        let in_group = org(Some(g));
        let standalone = org(None);
        let admin = Access {
            group_admin: vec![g],
            ..Default::default()
        };
        assert!(admin.can_admin_org(&in_group));
        assert!(!admin.can_read_org(&standalone));

        let mut member = Access::default();
        member.org_roles.insert(standalone.id, Role::OrgMember);
        assert!(member.can_read_org(&standalone));
        assert!(!member.can_admin_org(&standalone));
        assert!(!member.can_read_org(&in_group));
        assert!(!member.is_group_admin(g));
    }

    #[test]
    fn role_names_round_trip() {
        for r in [Role::GroupAdmin, Role::OrgAdmin, Role::OrgMember] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
