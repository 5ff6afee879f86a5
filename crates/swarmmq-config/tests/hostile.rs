//! Hostile configuration text and environment through the real loader: random bytes,
//! structured YAML built from the real keys with wild values, single mutations and
//! every truncation of the shipped example, YAML bombs, and `SWARMMQ_*` overrides.
//! Loading and validating must never panic, every refusal is a `ConfigError` with a
//! text, and a configuration that validates gives sane limits.
//!
//! Cases per property: 256 by default; `SWARMMQ_FUZZ_CASES=200000` for a long run.

use std::io::Write;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use swarmmq_config::{Config, ConfigError, MAX_FILE_BYTES};

/// `default_cases`, or `SWARMMQ_FUZZ_CASES` when set.
fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("SWARMMQ_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The real keys of every section (`tests/refusals.rs` pins the same lists).
const SECTIONS: &[(&str, &[&str])] = &[
    ("node", &["id", "bind", "port", "http_port", "grpc_port"]),
    (
        "cluster",
        &[
            "name",
            "nodes",
            "seeds",
            "replication_factor",
            "join_timeout",
            "internal_port",
        ],
    ),
    (
        "performance",
        &[
            "max_message_size",
            "batch_size",
            "ack_timeout",
            "max_connections",
            "max_frame_size",
            "max_inflight_bytes",
            "frame_timeout",
            "idle_timeout",
        ],
    ),
    (
        "storage",
        &[
            "data_dir",
            "max_disk_usage",
            "fsync",
            "fsync_interval",
            "segment_size",
            "segment_age",
            "retention_age",
            "retention_bytes",
            "default_partitions",
            "auto_create_destinations",
            "read_cache_size",
        ],
    ),
    (
        "delivery",
        &["max_delivery_attempts", "dedup_window", "dedup_max_ids"],
    ),
    (
        "security",
        &[
            "master_key",
            "tls_cert",
            "tls_key",
            "tls_ca",
            "auth_enabled",
            "allow_insecure",
        ],
    ),
    ("log", &["level", "format"]),
];

fn example() -> String {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/single-node.yaml");
    std::fs::read_to_string(path).unwrap()
}

/// Loads `yaml` from a real file with `env` on top, validates, and checks the rules.
fn check(yaml: &str, env: Vec<(String, String)>) {
    let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    f.write_all(yaml.as_bytes()).unwrap();
    f.flush().unwrap();
    check_result(Config::load(Some(f.path()), env));
}

fn check_result(loaded: Result<Config, ConfigError>) {
    match loaded {
        Ok(config) => match config.validate() {
            Ok(()) => {
                let limits = config.limits();
                assert!(limits.max_frame_bytes > 0);
                assert!(limits.max_message_bytes < limits.max_frame_bytes);
                assert!(limits.max_connections >= 1);
                assert!(!config.performance.frame_timeout.is_zero());
                assert!(!config.performance.idle_timeout.is_zero());
                // What every partition log will require (64 MiB is the storage
                // format's largest batch, `swarmmq_storage::MAX_BATCH_LEN`): a batch
                // made from one frame fits, and a segment plus one batch stays below
                // 4 GiB. Valid configs that broke this made every partition fail.
                let max_batch = 64 * 1024 * 1024u64;
                assert!(u64::from(limits.max_frame_bytes) < max_batch);
                let segment = config.storage.segment_size.as_u64();
                assert!(segment + max_batch <= u64::from(u32::MAX));
            }
            Err(e) => check_error(&e),
        },
        Err(e) => check_error(&e),
    }
}

fn check_error(e: &ConfigError) {
    assert!(
        !matches!(e, ConfigError::Read { .. }),
        "a readable file was refused as unreadable: {e}"
    );
    let text = e.to_string();
    assert!(!text.is_empty());
    assert!(text.len() < 8 * 1024, "error text of {} bytes", text.len());
}

/// Scalars a hostile or careless file could hold.
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        Just("18446744073709551616".to_owned()),
        Just("-0".to_owned()),
        Just("1e309".to_owned()),
        Just(".nan".to_owned()),
        Just("~".to_owned()),
        Just("null".to_owned()),
        Just("yes".to_owned()),
        Just("true".to_owned()),
        Just("\"\"".to_owned()),
        (
            0u64..u64::MAX,
            prop::sample::select(vec!["B", "KB", "KiB", "MiB", "GiB", "TiB", "EiB", "XB", ""])
        )
            .prop_map(|(n, unit)| format!("{n}{unit}")),
        (
            0u64..u64::MAX,
            prop::sample::select(vec!["ms", "s", "m", "h", "d", "y", "ns", "fortnight"])
        )
            .prop_map(|(n, unit)| format!("{n}{unit}")),
        prop::sample::select(vec![
            "always",
            "interval",
            "never",
            "text",
            "json",
            "127.0.0.1",
            "::1",
            "0.0.0.0",
            "node-1"
        ])
        .prop_map(str::to_owned),
        "[ -~]{0,24}".prop_map(|s| format!("{s:?}")),
        "[a-zA-Z0-9=+/]{0,60}",
        Just("[1, 2, 3]".to_owned()),
        Just("{a: 1}".to_owned()),
        Just("&anchor 5".to_owned()),
        Just("*anchor".to_owned()),
        Just("!!binary aGk=".to_owned()),
        Just("|\n    multi\n    line".to_owned()),
    ]
}

/// Sizes across the whole range: powers of two and their neighbours in bytes, and
/// counts of every unit.
fn size_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..64, -1i64..=1)
            .prop_map(|(k, d)| format!("{}", (1u64 << k).saturating_add_signed(d))),
        (
            1u64..5000,
            prop::sample::select(vec![
                "B", "KB", "KiB", "MB", "MiB", "GB", "GiB", "TB", "TiB"
            ])
        )
            .prop_map(|(n, unit)| format!("{n}{unit}")),
    ]
}

/// Durations across the whole range humantime accepts.
fn duration_text() -> impl Strategy<Value = String> {
    (
        0u64..1 << 40,
        prop::sample::select(vec!["ms", "s", "m", "h", "d", "w", "y"]),
    )
        .prop_map(|(n, unit)| format!("{n}{unit}"))
}

fn key_of(known: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        9 => prop::sample::select(known).prop_map(str::to_owned),
        1 => "[a-z_]{1,12}",
    ]
}

/// One section with a few keys; sometimes a section that does not exist, or a scalar
/// where the section's mapping should be.
fn section() -> impl Strategy<Value = String> {
    prop::sample::select(SECTIONS).prop_flat_map(|(name, keys)| {
        prop_oneof![
            8 => prop::collection::vec((key_of(keys), scalar()), 0..5).prop_map(move |entries| {
                let mut s = format!("{name}:\n");
                for (k, v) in entries {
                    s.push_str(&format!("  {k}: {v}\n"));
                }
                s
            }),
            1 => scalar().prop_map(move |v| format!("{name}: {v}\n")),
            1 => "[a-z]{1,8}".prop_map(|n| format!("{n}:\n  x: 1\n")),
        ]
    })
}

fn structured_yaml() -> impl Strategy<Value = String> {
    prop::collection::vec(section(), 0..5).prop_map(|sections| sections.concat())
}

fn env_entry() -> impl Strategy<Value = (String, String)> {
    let name = prop_oneof![
        8 => prop::sample::select(SECTIONS).prop_flat_map(|(section, keys)| {
            key_of(keys).prop_map(move |k| format!("SWARMMQ_{}_{}", section.to_uppercase(), k.to_uppercase()))
        }),
        1 => Just("SWARMMQ_MASTER_KEY".to_owned()),
        1 => "SWARMMQ_[A-Z_]{0,20}",
    ];
    let value = prop_oneof![scalar(), "[ -~]{0,16}", Just(String::new())];
    (name, value)
}

/// One edit of a text: a YAML-significant character put in, a character taken out, a
/// line repeated, or the text cut short.
#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, char),
    Insert(usize, char),
    Delete(usize),
    DuplicateLine(usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let significant = prop::sample::select(vec![
        ':', '-', '[', ']', '{', '}', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`', '\n',
        '\t', '#', ' ', '?', ',', '0', 'a', '\u{0}', '\u{feff}', 'é',
    ]);
    prop_oneof![
        (any::<usize>(), significant.clone()).prop_map(|(i, c)| Edit::Replace(i, c)),
        (any::<usize>(), significant).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::DuplicateLine),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(text: &str, e: &Edit) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = |i: usize| i % chars.len().max(1);
    let mut out = chars.clone();
    match *e {
        Edit::Replace(i, c) => {
            if let Some(slot) = out.get_mut(at(i)) {
                *slot = c;
            }
        }
        Edit::Insert(i, c) => out.insert(at(i), c),
        Edit::Delete(i) => {
            if !out.is_empty() {
                out.remove(at(i));
            }
        }
        Edit::DuplicateLine(i) => {
            let lines: Vec<&str> = text.lines().collect();
            let n = i % lines.len().max(1);
            let mut all: Vec<&str> = lines.clone();
            if let Some(l) = lines.get(n) {
                all.insert(n, l);
            }
            return all.join("\n");
        }
        Edit::Truncate(i) => out.truncate(at(i)),
    }
    out.into_iter().collect()
}

proptest! {
    #![proptest_config(config(256))]

    /// One real setting at a time, everything else at its default: most of these
    /// configs are valid, so the rules for valid configs are really exercised.
    #[test]
    fn one_setting_at_a_time_from_file_or_env(
        (section, key) in prop::sample::select(SECTIONS)
            .prop_flat_map(|(s, keys)| (Just(s), prop::sample::select(keys))),
        value in prop_oneof![3 => size_text(), 3 => duration_text(), 2 => scalar()],
        from_env: bool,
    ) {
        if from_env {
            let var = format!("SWARMMQ_{}_{}", section.to_uppercase(), key.to_uppercase());
            check_result(Config::load(None, vec![(var, value.trim_matches('"').to_owned())]));
        } else {
            check(&format!("{section}:\n  {key}: {value}\n"), Vec::new());
        }
    }

    #[test]
    fn random_text_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&String::from_utf8_lossy(&bytes), Vec::new());
    }

    #[test]
    fn structured_yaml_and_env_never_panic(
        yaml in structured_yaml(),
        env in prop::collection::vec(env_entry(), 0..6),
    ) {
        check(&yaml, env);
    }

    #[test]
    fn edited_example_never_panics(edits in prop::collection::vec(edit(), 1..3)) {
        let mut text = example();
        for e in &edits {
            text = apply(&text, e);
        }
        check_result(Config::from_yaml_str(&text));
    }
}

/// Every prefix of the shipped example parses or is refused cleanly (no file I/O, so
/// all ~3000 lengths stay fast).
#[test]
fn every_truncation_of_the_example_is_handled() {
    let text = example();
    let mut ok = 0;
    for n in (0..=text.len()).filter(|n| text.is_char_boundary(*n)) {
        let loaded = Config::from_yaml_str(&text[..n]);
        ok += usize::from(loaded.is_ok());
        check_result(loaded);
    }
    assert!(ok > 0, "no prefix loaded at all");
    assert_eq!(Config::from_yaml_str(&text).unwrap(), Config::default());
}

/// Runs `f` and fails if it takes longer than a generous bound: YAML bombs must be
/// refused by the parser's budget, not expanded.
fn quickly<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(20), "{what} took {took:?}");
    out
}

#[test]
fn yaml_bombs_are_refused_without_blowing_up() {
    // Billion laughs: each level refers to the previous one ten times.
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let err = quickly("alias bomb", || Config::from_yaml_str(&bomb)).unwrap_err();
    check_error(&err);

    // The same bomb inside a real section value.
    let inside = format!("storage:\n  data_dir: {}\n", bomb.replace('\n', " "));
    check_result(quickly("alias bomb in a value", || {
        Config::from_yaml_str(&inside)
    }));

    // Nesting far deeper than any config, in flow and block style.
    let deep = format!("node: {}{}", "[".repeat(100_000), "]".repeat(100_000));
    let err = quickly("deep flow nesting", || Config::from_yaml_str(&deep)).unwrap_err();
    check_error(&err);
    let mut block = String::new();
    for depth in 0..5_000 {
        block.push_str(&" ".repeat(depth));
        block.push_str("k:\n");
    }
    let err = quickly("deep block nesting", || Config::from_yaml_str(&block)).unwrap_err();
    check_error(&err);

    // Many documents, many keys, one huge scalar: bounded by the file limit.
    let docs = "---\nlog: {level: info}\n".repeat(20_000);
    check_result(quickly("many documents", || Config::from_yaml_str(&docs)));
    let keys: String = (0..40_000).map(|i| format!("k{i}: 1\n")).collect();
    let err = quickly("many keys", || Config::from_yaml_str(&keys)).unwrap_err();
    check_error(&err);
    let huge = format!(
        "log:\n  level: \"{}\"\n",
        "x".repeat(MAX_FILE_BYTES as usize)
    );
    let err = quickly("oversized text", || Config::from_yaml_str(&huge)).unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
}

#[test]
fn hostile_environment_values_are_refused_with_the_variable_named() {
    let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    for (name, value) in [
        ("SWARMMQ_PERFORMANCE_FRAME_TIMEOUT", "18446744073709551615y"),
        ("SWARMMQ_PERFORMANCE_IDLE_TIMEOUT", "-1s"),
        (
            "SWARMMQ_PERFORMANCE_MAX_FRAME_SIZE",
            "99999999999999999999999EiB",
        ),
        ("SWARMMQ_NODE_PORT", "65536"),
        ("SWARMMQ_NODE_BIND", "\u{0}"),
        ("SWARMMQ_CLUSTER_NODES", "[a]"),
        ("SWARMMQ_MASTER_KEY", "not base64 at all"),
        ("SWARMMQ_STORAGE_FSYNC", "\u{feff}always"),
    ] {
        let err = Config::load(None, env(&[(name, value)])).unwrap_err();
        check_error(&err);
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
}
