//! Resource policies on channels, and their evaluation for
//! `PutAuditEvents`.
//!
//! A partner integration's policy allows the partner's principal
//! `cloudtrail-data:PutAuditEvents` on the channel with the condition
//! `StringEquals {"cloudtrail:ExternalId": "<External ID>"}`. The lake
//! evaluates exactly that language: `Effect`, `Principal` (`*`, an account
//! ID, or an IAM ARN of the account), `Action`, `Resource`, and
//! `StringEquals` / `StringEqualsIgnoreCase` on `cloudtrail:ExternalId`. A
//! policy using anything else is refused when it is put, rather than
//! silently not enforced.
//!
//! Without a policy only the owning account may write. With one, a write
//! must be allowed by a statement (the owner counts as a principal of every
//! statement) and denied by none; the statement's conditions bind the owner
//! too, so a wrong External ID is caught even when one account does
//! everything, as on a single local lake.

use serde_json::Value;

const PUT: &str = "cloudtrail-data:putauditevents";
const EXTERNAL_ID: &str = "cloudtrail:externalid";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone)]
struct Statement {
    effect: Effect,
    principals: Vec<String>,
    actions: Vec<String>,
    /// `None`: no condition. `Some((values, ignore_case))`.
    external_id: Option<(Vec<String>, bool)>,
}

/// A parsed, checked channel policy.
#[derive(Debug, Clone)]
pub struct Policy {
    statements: Vec<Statement>,
}

/// Why a policy document is refused: CloudTrail's
/// `ResourcePolicyNotValidException`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

fn not_valid(message: impl std::fmt::Display) -> PolicyError {
    PolicyError(message.to_string())
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>, PolicyError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| not_valid(format!("{what} must hold strings")))
            })
            .collect(),
        _ => Err(not_valid(format!(
            "{what} must be a string or a list of strings"
        ))),
    }
}

fn account_of(principal: &str) -> Option<&str> {
    if principal.len() == 12 && principal.bytes().all(|b| b.is_ascii_digit()) {
        return Some(principal);
    }
    // arn:aws:iam::123456789012:root, :user/x, :role/y
    let rest = principal.strip_prefix("arn:")?;
    let mut parts = rest.splitn(5, ':');
    let (_partition, service, _region, account) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (service == "iam" || service == "sts").then_some(account)
}

impl Policy {
    /// Parses and checks a policy document for the channel `channel_arn`.
    pub fn parse(text: &str, channel_arn: &str) -> Result<Self, PolicyError> {
        let doc: Value = serde_json::from_str(text)
            .map_err(|e| not_valid(format!("the policy is not valid JSON: {e}")))?;
        let statements = match doc.get("Statement") {
            Some(Value::Array(s)) if !s.is_empty() => s.clone(),
            Some(s @ Value::Object(_)) => vec![s.clone()],
            _ => return Err(not_valid("the policy needs a Statement list")),
        };
        let mut parsed = Vec::with_capacity(statements.len());
        for s in statements {
            let effect = match s.get("Effect").and_then(Value::as_str) {
                Some("Allow") => Effect::Allow,
                Some("Deny") => Effect::Deny,
                _ => return Err(not_valid("each statement's Effect must be Allow or Deny")),
            };
            let principals = match s.get("Principal") {
                Some(Value::String(star)) if star == "*" => vec!["*".to_owned()],
                Some(Value::Object(map)) => {
                    let aws = map
                        .get("AWS")
                        .ok_or_else(|| not_valid("Principal must name AWS principals"))?;
                    let list = strings(aws, "Principal.AWS")?;
                    for p in &list {
                        if p != "*" && account_of(p).is_none() {
                            return Err(not_valid(format!(
                                "Principal {p:?} is not an account ID or an IAM ARN"
                            )));
                        }
                    }
                    list
                }
                _ => return Err(not_valid("each statement needs a Principal")),
            };
            let actions = strings(
                s.get("Action")
                    .ok_or_else(|| not_valid("each statement needs an Action"))?,
                "Action",
            )?
            .into_iter()
            .map(|a| a.to_ascii_lowercase())
            .collect();
            if let Some(resource) = s.get("Resource") {
                for r in strings(resource, "Resource")? {
                    if r != "*" && r != channel_arn {
                        return Err(not_valid(format!(
                            "Resource {r:?} is not this channel's ARN"
                        )));
                    }
                }
            }
            let external_id = match s.get("Condition") {
                None => None,
                Some(Value::Object(ops)) => {
                    let mut found = None;
                    for (op, keys) in ops {
                        let ignore_case = match op.as_str() {
                            "StringEquals" => false,
                            "StringEqualsIgnoreCase" => true,
                            other => {
                                return Err(not_valid(format!(
                                    "condition operator {other} is not supported; use StringEquals"
                                )))
                            }
                        };
                        let Value::Object(keys) = keys else {
                            return Err(not_valid("a condition maps keys to values"));
                        };
                        for (key, values) in keys {
                            if key.to_ascii_lowercase() != EXTERNAL_ID {
                                return Err(not_valid(format!(
                                    "condition key {key} is not supported; only cloudtrail:ExternalId is"
                                )));
                            }
                            found = Some((strings(values, "cloudtrail:ExternalId")?, ignore_case));
                        }
                    }
                    found
                }
                Some(_) => return Err(not_valid("Condition must be an object")),
            };
            parsed.push(Statement {
                effect,
                principals,
                actions,
                external_id,
            });
        }
        Ok(Self { statements: parsed })
    }

    /// Whether `caller` may call `PutAuditEvents` with `external_id` on a
    /// channel owned by `owner`.
    pub fn allows_put(&self, caller: &str, owner: &str, external_id: Option<&str>) -> bool {
        let denied = self
            .statements
            .iter()
            .any(|s| s.effect == Effect::Deny && s.applies(caller, owner, external_id));
        let allowed = self
            .statements
            .iter()
            .any(|s| s.effect == Effect::Allow && s.applies(caller, owner, external_id));
        allowed && !denied
    }

    /// Whether the channel belongs to the tenant whose External ID is
    /// `external_id`, as far as `caller` is concerned: `caller` may put
    /// events with that External ID ([`Policy::allows_put`], the check
    /// `PutAuditEvents` makes), and every statement that would let it put
    /// events names the External IDs it accepts, so that no other tenant's
    /// External ID (or none) passes unnamed. A statement that names several
    /// External IDs binds the channel to each of them.
    pub fn binds_external_id(&self, caller: &str, owner: &str, external_id: &str) -> bool {
        self.allows_put(caller, owner, Some(external_id))
            && self.statements.iter().all(|s| {
                s.effect == Effect::Deny
                    || !s.admits_caller(caller, owner)
                    || s.external_id.is_some()
            })
    }
}

impl Statement {
    /// Whether the statement is about `caller` calling `PutAuditEvents`.
    fn admits_caller(&self, caller: &str, owner: &str) -> bool {
        let principal = caller == owner
            || self
                .principals
                .iter()
                .any(|p| p == "*" || account_of(p) == Some(caller));
        let action = self
            .actions
            .iter()
            .any(|a| a == PUT || a == "cloudtrail-data:*" || a == "*");
        principal && action
    }

    /// Whether the statement applies to `caller` putting events with
    /// `external_id`.
    fn applies(&self, caller: &str, owner: &str, external_id: Option<&str>) -> bool {
        let condition = match &self.external_id {
            None => true,
            Some((values, ignore_case)) => external_id.is_some_and(|given| {
                values.iter().any(|v| {
                    if *ignore_case {
                        v.eq_ignore_ascii_case(given)
                    } else {
                        v == given
                    }
                })
            }),
        };
        self.admits_caller(caller, owner) && condition
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:cloudtrail:us-east-1:111111111111:channel/c";

    fn partner_policy(external_id: &str) -> String {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"ChannelPolicy","Effect":"Allow",
            "Principal":{{"AWS":["arn:aws:iam::222222222222:root"]}},
            "Action":"cloudtrail-data:PutAuditEvents","Resource":"{ARN}",
            "Condition":{{"StringEquals":{{"cloudtrail:ExternalId":"{external_id}"}}}}}}]}}"#
        )
    }

    #[test]
    fn the_partner_policy_checks_account_and_external_id() {
        let p = Policy::parse(&partner_policy("org-1"), ARN).unwrap();
        assert!(p.allows_put("222222222222", "111111111111", Some("org-1")));
        assert!(!p.allows_put("222222222222", "111111111111", Some("org-2")));
        assert!(!p.allows_put("222222222222", "111111111111", None));
        assert!(!p.allows_put("333333333333", "111111111111", Some("org-1")));
        // The owner is a principal, but the External ID binds it too.
        assert!(p.allows_put("111111111111", "111111111111", Some("org-1")));
        assert!(!p.allows_put("111111111111", "111111111111", Some("nope")));
    }

    #[test]
    fn deny_wins_and_unsupported_conditions_are_refused() {
        let text = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*"},
            {"Effect":"Deny","Principal":{"AWS":"333333333333"},"Action":"cloudtrail-data:PutAuditEvents"}]}"#;
        let p = Policy::parse(text, ARN).unwrap();
        assert!(p.allows_put("222222222222", "111111111111", None));
        assert!(!p.allows_put("333333333333", "111111111111", None));

        let bad = partner_policy("x").replace("cloudtrail:ExternalId", "aws:SourceIp");
        assert!(Policy::parse(&bad, ARN)
            .unwrap_err()
            .0
            .contains("aws:SourceIp"));
        assert!(Policy::parse("not json", ARN).is_err());
        assert!(Policy::parse(
            &partner_policy("x").replace(ARN, "arn:aws:cloudtrail:us-east-1:1:channel/other"),
            ARN
        )
        .is_err());
    }

    #[test]
    fn a_channel_is_bound_only_to_the_external_ids_its_policy_names() {
        let p = Policy::parse(&partner_policy("org-1"), ARN).unwrap();
        let (owner, partner) = ("111111111111", "222222222222");
        assert!(p.binds_external_id(owner, owner, "org-1"));
        assert!(p.binds_external_id(partner, owner, "org-1"));
        assert!(!p.binds_external_id(owner, owner, "org-2"));
        assert!(!p.binds_external_id("333333333333", owner, "org-1"));

        // A statement without a condition lets any External ID in: the
        // channel is bound to no tenant, even to one another statement names.
        let with_first = |statement: &str| {
            partner_policy("org-1")
                .replace("\"Statement\":[", &format!("\"Statement\":[{statement},"))
        };
        let open = with_first(
            r#"{"Effect":"Allow","Principal":"*","Action":"cloudtrail-data:PutAuditEvents"}"#,
        );
        let open = Policy::parse(&open, ARN).unwrap();
        assert!(open.allows_put(owner, owner, Some("org-1")));
        assert!(!open.binds_external_id(owner, owner, "org-1"));

        // A statement for another caller does not loosen this caller's.
        let other =
            with_first(r#"{"Effect":"Allow","Principal":{"AWS":"444444444444"},"Action":"*"}"#);
        let other = Policy::parse(&other, ARN).unwrap();
        assert!(other.binds_external_id(partner, owner, "org-1"));
        assert!(!other.binds_external_id("444444444444", owner, "org-1"));
    }
}
