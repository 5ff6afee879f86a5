use std::fmt;
use std::str::FromStr;

/// Why a name was refused. The text names the rule so a user can fix the name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{kind} name is empty")]
    Empty { kind: &'static str },
    #[error("{kind} name is {len} bytes long; the limit is {max}")]
    TooLong {
        kind: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{kind} name {name:?} has the character {ch:?}; allowed are a-z A-Z 0-9 . _ -")]
    BadChar {
        kind: &'static str,
        name: String,
        ch: char,
    },
    #[error("{kind} name may not be \".\" or \"..\"")]
    Dots { kind: &'static str },
}

fn validate(kind: &'static str, name: &str, max: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if name.len() > max {
        return Err(NameError::TooLong {
            kind,
            len: name.len(),
            max,
        });
    }
    // Names become directory names on disk, so "." and ".." would escape the data dir.
    if name == "." || name == ".." {
        return Err(NameError::Dots { kind });
    }
    if let Some(ch) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(NameError::BadChar {
            kind,
            name: name.chars().take(64).collect(),
            ch,
        });
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $kind:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $ty(String);

        impl $ty {
            pub const MAX_LEN: usize = $max;

            pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
                let name = name.into();
                validate($kind, &name, Self::MAX_LEN)?;
                Ok(Self(name))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A destination (topic) name: `[a-zA-Z0-9._-]{1,249}`, never `.` or `..`.
    DestinationName,
    "destination",
    249
);
name_type!(
    /// A consumer group name, with the same rules as a destination name.
    GroupName,
    "group",
    249
);
name_type!(
    /// A node's id in its cluster, such as `node-1`: `[a-zA-Z0-9._-]{1,64}`.
    NodeId,
    "node id",
    64
);

impl Default for NodeId {
    /// `node-1`, the id of a node started without configuration.
    fn default() -> Self {
        NodeId("node-1".to_string())
    }
}

impl DestinationName {
    /// The dead-letter destination of this one: `<name>.dlq`.
    ///
    /// Returns `None` when the suffix would push the name past the length limit.
    pub fn dlq(&self) -> Option<DestinationName> {
        DestinationName::new(format!("{}.dlq", self.0)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        assert!(DestinationName::new("orders.eu-west_1").is_ok());
        assert!(DestinationName::new("a".repeat(249)).is_ok());
        assert_eq!(NodeId::new("node-1"), Ok(NodeId::default()));
    }

    #[test]
    fn refuses_with_a_reason() {
        assert_eq!(
            DestinationName::new(""),
            Err(NameError::Empty {
                kind: "destination"
            })
        );
        assert!(matches!(
            DestinationName::new("a".repeat(250)),
            Err(NameError::TooLong { len: 250, .. })
        ));
        assert!(matches!(
            DestinationName::new("a/b"),
            Err(NameError::BadChar { ch: '/', .. })
        ));
        assert!(matches!(
            DestinationName::new(".."),
            Err(NameError::Dots { .. })
        ));
        assert!(matches!(
            GroupName::new("g roup"),
            Err(NameError::BadChar { ch: ' ', .. })
        ));
        let err = DestinationName::new("bad name").unwrap_err().to_string();
        assert!(err.contains("' '"), "{err}");
    }

    #[test]
    fn dlq_name() {
        let d = DestinationName::new("orders").unwrap();
        assert_eq!(d.dlq().unwrap().as_str(), "orders.dlq");
        assert!(
            DestinationName::new("a".repeat(249))
                .unwrap()
                .dlq()
                .is_none()
        );
    }
}
