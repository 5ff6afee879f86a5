use crate::{Action, Permission};

/// Who a connection acts as once its key (or client certificate) is accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The key's id (12 hex characters); the node re-checks it against the current key
    /// store so that a revocation reaches connections that are already open.
    pub key_id: String,
    /// The key's name.
    pub name: String,
    pub permissions: Vec<Permission>,
}

impl Principal {
    /// Whether any permission allows `action` on `destination`.
    pub fn allows(&self, action: Action, destination: &str) -> bool {
        self.permissions
            .iter()
            .any(|p| p.allows(action, destination))
    }

    pub fn is_admin(&self) -> bool {
        self.permissions.contains(&Permission::Admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_permission_suffices() {
        let p = Principal {
            key_id: "0123456789ab".into(),
            name: "svc".into(),
            permissions: vec!["produce:a.*".parse().unwrap(), "consume:b".parse().unwrap()],
        };
        assert!(p.allows(Action::Produce, "a.x"));
        assert!(p.allows(Action::Consume, "b"));
        assert!(!p.allows(Action::Consume, "a.x"));
        assert!(!p.allows(Action::Produce, "b"));
        assert!(!p.allows(Action::Admin, "a.x"));
        assert!(!p.is_admin());
        let none = Principal {
            permissions: vec![],
            ..p
        };
        assert!(!none.allows(Action::Produce, "a.x"));
    }
}
