//! What a key may do: produce to, or consume from, destinations matching a pattern, or
//! everything (admin).

use std::fmt;
use std::str::FromStr;

use crate::{AuthError, Pattern};

/// What a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Publish to a destination.
    Produce,
    /// Pull, acknowledge, and take part in a consumer group of a destination.
    Consume,
    /// Create and delete destinations, manage keys: everything.
    Admin,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Produce => "produce",
            Action::Consume => "consume",
            Action::Admin => "admin",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One permission of a key, written `produce:<pattern>`, `consume:<pattern>` or `admin`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    Produce(Pattern),
    Consume(Pattern),
    /// Everything, on every destination.
    Admin,
}

impl Permission {
    /// Whether this permission alone allows `action` on `destination` (ignored for
    /// [`Action::Admin`], which only `admin` allows).
    pub fn allows(&self, action: Action, destination: &str) -> bool {
        match (self, action) {
            (Permission::Admin, _) => true,
            (Permission::Produce(p), Action::Produce)
            | (Permission::Consume(p), Action::Consume) => p.matches(destination),
            _ => false,
        }
    }
}

const HINT: &str = "use produce:<pattern>, consume:<pattern> or admin (e.g. produce:orders.*)";

impl FromStr for Permission {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Permission, AuthError> {
        let bad = |reason: String| AuthError::InvalidPermission {
            permission: s.chars().take(300).collect(),
            reason,
        };
        if s == "admin" {
            return Ok(Permission::Admin);
        }
        let (kind, pattern) = s
            .split_once(':')
            .ok_or_else(|| bad(format!("not a permission; {HINT}")))?;
        let pattern = Pattern::new(pattern).map_err(bad)?;
        match kind {
            "produce" => Ok(Permission::Produce(pattern)),
            "consume" => Ok(Permission::Consume(pattern)),
            "admin" => Err(bad("admin takes no pattern; write just admin".into())),
            other => Err(bad(format!(
                "unknown action {:?}; {HINT}",
                other.chars().take(32).collect::<String>()
            ))),
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Permission::Produce(p) => write!(f, "produce:{p}"),
            Permission::Consume(p) => write!(f, "consume:{p}"),
            Permission::Admin => f.write_str("admin"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(s: &str) -> Permission {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_display_round_trip() {
        for s in ["admin", "produce:orders.*", "consume:*", "consume:a-b_c.d"] {
            assert_eq!(perm(s).to_string(), s);
        }
    }

    #[test]
    fn bad_permissions_are_refused_with_a_reason() {
        let cases = [
            ("", "not a permission"),
            ("write:orders", "unknown action \"write\""),
            ("produce:", "empty"),
            ("produce:or ders", "character ' '"),
            ("admin:orders", "admin takes no pattern"),
            ("Admin", "not a permission"),
            ("produce", "not a permission"),
        ];
        for (text, expected) in cases {
            let err = text.parse::<Permission>().unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(err.starts_with("invalid permission"), "{err}");
        }
    }

    #[test]
    fn actions_are_separate() {
        let p = perm("produce:a.*");
        assert!(p.allows(Action::Produce, "a.x"));
        assert!(!p.allows(Action::Produce, "b.x"));
        assert!(!p.allows(Action::Consume, "a.x"));
        assert!(!p.allows(Action::Admin, "a.x"));
        let c = perm("consume:a.*");
        assert!(c.allows(Action::Consume, "a.x"));
        assert!(!c.allows(Action::Produce, "a.x"));
        let a = perm("admin");
        for action in [Action::Produce, Action::Consume, Action::Admin] {
            assert!(a.allows(action, "anything"));
        }
    }
}
