//! Destination patterns: a destination name in which `*` matches any run of characters.

use std::fmt;

/// Longest pattern: the longest destination name.
pub const MAX_PATTERN_BYTES: usize = 249;

/// A validated destination pattern such as `orders.*`, `*.dlq` or `payments`.
///
/// `*` matches any run of characters, dots included, so `orders.*` matches `orders.eu`
/// and `orders.eu.dlq` (a consumer of a topic family may read its dead letters). Every
/// other character matches itself. `*` alone matches every destination.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pattern(String);

impl Pattern {
    /// Checks `text`: 1 to 249 bytes of `a-z A-Z 0-9 . _ -` and `*`.
    pub fn new(text: &str) -> Result<Pattern, String> {
        if text.is_empty() {
            return Err("the destination pattern is empty".into());
        }
        if text.len() > MAX_PATTERN_BYTES {
            return Err(format!(
                "the destination pattern is {} bytes; at most {MAX_PATTERN_BYTES}",
                text.len()
            ));
        }
        if let Some(c) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*')))
        {
            return Err(format!(
                "the destination pattern has the character {c:?}; allowed are a-z A-Z 0-9 . _ - and * (any run of characters)"
            ));
        }
        Ok(Pattern(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` matches. Linear in practice; worst case `O(pattern * name)`,
    /// both bounded by 249 bytes.
    pub fn matches(&self, name: &str) -> bool {
        glob(self.0.as_bytes(), name.as_bytes())
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Wildcard match with `*` only: on a mismatch, retry from the last `*` with it
/// swallowing one more character. Earlier stars never need revisiting, because a
/// later star can absorb whatever they would have.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0usize, 0usize);
    // (position of the last star in the pattern, name position it is matched up to)
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match (pattern.get(p), name.get(n)) {
            (Some(b'*'), _) => {
                star = Some((p, n));
                p += 1;
            }
            (Some(pc), Some(nc)) if pc == nc => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    while pattern.get(p) == Some(&b'*') {
        p += 1;
    }
    p == pattern.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(p: &str, n: &str) -> bool {
        Pattern::new(p).unwrap().matches(n)
    }

    #[test]
    fn examples() {
        assert!(m("orders.*", "orders.eu"));
        assert!(m("orders.*", "orders.eu.dlq"));
        assert!(m("orders.*", "orders."));
        assert!(!m("orders.*", "orders"));
        assert!(!m("orders.*", "xorders.eu"));
        assert!(m("orders", "orders"));
        assert!(!m("orders", "orders2"));
        assert!(!m("orders", "order"));
        assert!(m("*", "anything"));
        assert!(m("*.dlq", "orders.eu.dlq"));
        assert!(!m("*.dlq", "orders.eu"));
        assert!(m("a*b*c", "aXbYc"));
        assert!(m("a*b*c", "abc"));
        assert!(!m("a*b*c", "acb"));
        assert!(m("**", "x"));
    }

    #[test]
    fn invalid_patterns_say_why() {
        assert!(Pattern::new("").unwrap_err().contains("empty"));
        assert!(
            Pattern::new("orders/eu")
                .unwrap_err()
                .contains("character '/'")
        );
        assert!(Pattern::new("a b").unwrap_err().contains("' '"));
        let long = "a".repeat(250);
        assert!(Pattern::new(&long).unwrap_err().contains("250 bytes"));
        assert!(Pattern::new(&"a".repeat(249)).is_ok());
    }

    /// The obvious recursive definition; exponential, fine for short inputs.
    fn model(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|i| model(rest, &n[i..])),
            Some((c, rest)) => n.first() == Some(c) && model(rest, &n[1..]),
        }
    }

    proptest! {
        #[test]
        fn matcher_agrees_with_the_model(p in "[ab.*]{1,8}", n in "[ab.]{0,10}") {
            prop_assert_eq!(Pattern::new(&p).unwrap().matches(&n), model(p.as_bytes(), n.as_bytes()));
        }

        #[test]
        fn a_pattern_without_star_matches_only_itself(p in "[a-z.]{1,10}", n in "[a-z.]{0,10}") {
            prop_assert_eq!(Pattern::new(&p).unwrap().matches(&n), p == n);
        }

        #[test]
        fn prefix_star_matches_every_extension(p in "[a-z.]{1,10}", tail in "[a-z.]{0,10}") {
            let pat = Pattern::new(&format!("{p}*")).unwrap();
            let name = format!("{p}{tail}");
            prop_assert!(pat.matches(&name));
        }
    }
}
