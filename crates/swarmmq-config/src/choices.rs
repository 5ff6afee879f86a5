//! The lowercase word-valued settings. Hand-written serde (instead of derive) so that a
//! wrong word is refused with the list of right ones in our own words.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ConfigError;

macro_rules! choice {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every spelling, comma-separated, as shown in errors.
            pub const EXPECTED: &'static str = concat_words!($($text),+);

            /// The lowercase word of this value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = ConfigError;
            fn from_str(s: &str) -> Result<Self, ConfigError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ConfigError::UnknownValue {
                        value: s.chars().take(64).collect(),
                        expected: Self::EXPECTED,
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "one of {}", $name::EXPECTED)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                deserializer.deserialize_str(V)
            }
        }
    };
}

macro_rules! concat_words {
    ($first:literal $(, $rest:literal)*) => { concat!($first $(, ", ", $rest)*) };
}

choice!(
    /// When the storage layer fsyncs appended batches before acknowledging them.
    FsyncPolicy {
        /// Before every acknowledgement (group commit): no acknowledged message is lost.
        Always => "always",
        /// Every `storage.fsync_interval`; a crash may lose the last interval.
        Interval => "interval",
        /// Never; the OS decides. For tests and throwaway data.
        Never => "never",
    }
);

choice!(
    /// How log lines are written.
    LogFormat {
        /// Human-readable lines.
        Text => "text",
        /// One JSON object per line.
        Json => "json",
    }
);

choice!(
    /// What a cluster node does (seed design's roles).
    NodeRole {
        /// Accepts publishes.
        Producer => "producer",
        /// Serves pulls.
        Consumer => "consumer",
        /// Forwards requests to the owning node.
        Router => "router",
    }
);

choice!(
    /// How a cluster keeps copies of a partition.
    ReplicationMode {
        /// One copy, on the partition's owner (the first replica of its set).
        None => "none",
        /// Every replica of the set holds the partition; each partition is a Raft
        /// group and a publish is acknowledged once a majority has it.
        Raft => "raft",
    }
);

impl NodeRole {
    /// Every role; the default of a cluster node that names none.
    pub const ALL: [NodeRole; 3] = [NodeRole::Producer, NodeRole::Consumer, NodeRole::Router];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_unknown_words_list_the_choices() {
        for p in [
            FsyncPolicy::Always,
            FsyncPolicy::Interval,
            FsyncPolicy::Never,
        ] {
            assert_eq!(p.as_str().parse::<FsyncPolicy>(), Ok(p));
        }
        assert_eq!(FsyncPolicy::EXPECTED, "always, interval, never");
        assert_eq!(LogFormat::EXPECTED, "text, json");
        assert_eq!(ReplicationMode::EXPECTED, "none, raft");
        assert_eq!(
            "Always".parse::<FsyncPolicy>().unwrap_err().to_string(),
            r#"unknown value "Always", expected one of always, interval, never"#
        );
    }
}
