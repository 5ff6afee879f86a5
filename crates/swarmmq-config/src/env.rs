//! `SWARMMQ_<SECTION>_<KEY>` environment overrides, laid over the YAML tree.

use std::collections::BTreeMap;

use crate::error::ConfigError;
use crate::tree::Node;

const PREFIX: &str = "SWARMMQ_";
/// The short name operators expect for the one secret; same as `SWARMMQ_SECURITY_MASTER_KEY`.
const MASTER_KEY_ALIAS: &str = "SWARMMQ_MASTER_KEY";
const MASTER_KEY_FULL: &str = "SWARMMQ_SECURITY_MASTER_KEY";
/// Variables of the client commands that look like a section: `SWARMMQ_NODE` is the
/// address `produce`/`consume` talk to, and a node (or `swarmmq auth`) must not read it
/// as the `node` section.
const CLIENT_VARS: &[&str] = &["SWARMMQ_NODE"];

/// Sets every `SWARMMQ_<SECTION>_<KEY>` whose SECTION is one of `sections` in `root`.
///
/// SECTION is the first underscore-separated word after the prefix, KEY the rest, both
/// lowercased. Variables of other sections are left alone (clients use names such as
/// `SWARMMQ_API_KEY`, and `SWARMMQ_NODE` is theirs too); an unknown KEY in a known section is refused later, when the tree
/// is deserialized, with the variable's name.
pub(crate) fn overlay(
    root: &mut Node,
    sections: &[&str],
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    // Sorted so that the outcome does not depend on the environment's order.
    let vars: BTreeMap<String, String> = env
        .into_iter()
        .filter(|(name, _)| name.starts_with(PREFIX))
        .collect();

    if let Some(alias) = vars.get(MASTER_KEY_ALIAS) {
        if vars.get(MASTER_KEY_FULL).is_some_and(|full| full != alias) {
            return Err(ConfigError::MasterKeyConflict);
        }
        root.set(
            "security",
            "master_key",
            Node::from_env(MASTER_KEY_ALIAS, alias),
        );
    }

    for (name, value) in &vars {
        if name == MASTER_KEY_ALIAS {
            continue;
        }
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        if CLIENT_VARS.contains(&name.as_str()) {
            continue;
        }
        let (section, key) = rest.split_once('_').unwrap_or((rest, ""));
        let section = section.to_ascii_lowercase();
        if !sections.contains(&section.as_str()) {
            continue;
        }
        root.set(
            &section,
            &key.to_ascii_lowercase(),
            Node::from_env(name, value),
        );
    }
    Ok(())
}
