use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ConfigError;

/// A number of bytes, written by people as `1MiB`, `512KB`, `10 GB` or `1048576`.
///
/// Units are case-insensitive: `B`; `KB`, `MB`, `GB`, `TB` (powers of 1000); `KiB`, `MiB`,
/// `GiB`, `TiB` (powers of 1024). Only whole numbers are accepted so every size is exact.
/// `Display` picks the unit that gives the shortest exact number, so it parses back to
/// the same value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

const KIB: u64 = 1024;
const MIB: u64 = KIB * 1024;
const GIB: u64 = MIB * 1024;
const TIB: u64 = GIB * 1024;

/// Units tried by `Display`, binary first so that a tie (such as 0) prefers them.
const UNITS: [(&str, u64); 8] = [
    ("TiB", TIB),
    ("GiB", GIB),
    ("MiB", MIB),
    ("KiB", KIB),
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
];

impl ByteSize {
    pub const fn b(n: u64) -> Self {
        ByteSize(n)
    }
    pub const fn kib(n: u64) -> Self {
        ByteSize(n * KIB)
    }
    pub const fn mib(n: u64) -> Self {
        ByteSize(n * MIB)
    }
    pub const fn gib(n: u64) -> Self {
        ByteSize(n * GIB)
    }
    pub const fn mb(n: u64) -> Self {
        ByteSize(n * 1_000_000)
    }
    pub const fn gb(n: u64) -> Self {
        ByteSize(n * 1_000_000_000)
    }

    /// The number of bytes.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        let best = UNITS
            .iter()
            .filter(|(_, mult)| n != 0 && n.is_multiple_of(*mult))
            .min_by_key(|(_, mult)| n / mult);
        match best {
            Some((unit, mult)) => write!(f, "{}{unit}", n / mult),
            None => write!(f, "{n}B"),
        }
    }
}

impl FromStr for ByteSize {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let not_a_size = || ConfigError::NotASize(text.to_owned());
        let trimmed = text.trim();
        let digits_end = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (digits, unit) = trimmed.split_at(digits_end);
        if digits.is_empty() {
            return Err(not_a_size());
        }
        let unit = unit.trim_start();
        let mult = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            "kib" => KIB,
            "mib" => MIB,
            "gib" => GIB,
            "tib" => TIB,
            _ => return Err(not_a_size()),
        };
        // Only ASCII digits remain, so a parse failure can only be overflow.
        let count: u64 = digits
            .parse()
            .map_err(|_| ConfigError::SizeTooLarge(text.to_owned()))?;
        count
            .checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| ConfigError::SizeTooLarge(text.to_owned()))
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ByteSizeVisitor)
    }
}

struct ByteSizeVisitor;

impl Visitor<'_> for ByteSizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size such as 1MiB, 512KB or 1048576")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
        u64::try_from(v)
            .map(ByteSize)
            .map_err(|_| E::custom(ConfigError::NotASize(v.to_string())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ByteSize, E> {
        Err(E::custom(ConfigError::NotASize(v.to_string())))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
        v.parse().map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_unit_case_insensitively() {
        let cases = [
            ("0", 0),
            ("1048576", 1_048_576),
            ("17B", 17),
            ("1MB", 1_000_000),
            ("1MiB", 1_048_576),
            ("64KiB", 65_536),
            ("64kib", 65_536),
            ("10GB", 10_000_000_000),
            ("2 GiB", 2 * GIB),
            ("3tb", 3_000_000_000_000),
            ("1TiB", TIB),
            ("5kb", 5_000),
            (" 7 mb ", 7_000_000),
        ];
        for (text, bytes) in cases {
            assert_eq!(text.parse::<ByteSize>().unwrap(), ByteSize(bytes), "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_size() {
        for text in ["", "MB", "12XB", "1.5MB", "-1", "1 M B", "0x10", "1e6"] {
            assert_eq!(
                text.parse::<ByteSize>(),
                Err(ConfigError::NotASize(text.to_owned())),
                "{text}"
            );
        }
        assert_eq!(
            "20000000TiB".parse::<ByteSize>(),
            Err(ConfigError::SizeTooLarge("20000000TiB".to_owned()))
        );
        assert_eq!(
            "99999999999999999999".parse::<ByteSize>(),
            Err(ConfigError::SizeTooLarge("99999999999999999999".to_owned()))
        );
    }

    #[test]
    fn displays_the_shortest_exact_form() {
        assert_eq!(ByteSize(0).to_string(), "0B");
        assert_eq!(ByteSize(1500).to_string(), "1500B");
        assert_eq!(ByteSize(1_000_000).to_string(), "1MB");
        assert_eq!(ByteSize::mib(1).to_string(), "1MiB");
        assert_eq!(ByteSize::mib(16).to_string(), "16MiB");
        assert_eq!(ByteSize(16 * MIB - 64 * KIB).to_string(), "16320KiB");
        assert_eq!(ByteSize::gb(10).to_string(), "10GB");
        assert_eq!(ByteSize(u64::MAX).to_string(), "18446744073709551615B");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn display_parses_back(n in any::<u64>()) {
            let size = ByteSize(n);
            prop_assert_eq!(size.to_string().parse::<ByteSize>(), Ok(size));
        }

        #[test]
        fn round_number_of_units_round_trips(count in 0u64..100_000, unit in 0usize..UNITS.len()) {
            let (name, mult) = UNITS[unit];
            let size = ByteSize(count * mult);
            prop_assert_eq!(format!("{count}{name}").parse::<ByteSize>(), Ok(size));
            prop_assert_eq!(size.to_string().parse::<ByteSize>(), Ok(size));
        }
    }
}
