//! `swarmmq keys`: a node's master keys (status, rotate, retire) and new end-to-end
//! keys (new-e2e, a local file; no node involved).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use swarmmq_client::{Admin, E2eKey, KeysStatusResponse};

use crate::cli::Target;

#[derive(Args, Debug)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum KeysFormat {
    /// Aligned columns for people
    Table,
    /// One JSON document
    Json,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Active key id, and per key id its fingerprint and the bytes and batches stored under it
    Status {
        #[command(flatten)]
        target: Target,
        #[arg(long, value_enum, default_value_t = KeysFormat::Table)]
        format: KeysFormat,
    },
    /// Make a new master key active for new writes (older data stays readable)
    Rotate {
        #[command(flatten)]
        target: Target,
        #[arg(long, value_enum, default_value_t = KeysFormat::Table)]
        format: KeysFormat,
    },
    /// Remove a master key no stored data uses any more (refused otherwise)
    Retire {
        /// Key id (see `swarmmq keys status`)
        id: u32,
        #[command(flatten)]
        target: Target,
    },
    /// Write a new random end-to-end key to FILE (mode 0600; never overwrites)
    NewE2e {
        /// Where to write the key
        file: PathBuf,
    },
}

fn state(s: &KeysStatusResponse, id: u32, bytes: u64, retired: bool) -> &'static str {
    if retired {
        "retired"
    } else if id == s.active_id {
        "active"
    } else if bytes > 0 {
        "in use"
    } else {
        "unused"
    }
}

fn status_json(s: &KeysStatusResponse) -> serde_json::Value {
    serde_json::json!({
        "active_id": s.active_id,
        "keys": s.keys.iter().map(|k| serde_json::json!({
            "id": k.id,
            "fingerprint": k.fingerprint,
            "bytes": k.bytes,
            "batches": k.batches,
            "retired": k.retired,
            "active": k.id == s.active_id,
        })).collect::<Vec<_>>(),
    })
}

fn print_status(s: &KeysStatusResponse) {
    println!("active key id: {}", s.active_id);
    println!(
        "{:>6}  {:<32}  {:>16}  {:>12}  {:<8}",
        "ID", "FINGERPRINT", "BYTES", "BATCHES", "STATE"
    );
    for k in &s.keys {
        println!(
            "{:>6}  {:<32}  {:>16}  {:>12}  {:<8}",
            k.id,
            if k.fingerprint.is_empty() {
                "-"
            } else {
                &k.fingerprint
            },
            k.bytes,
            k.batches,
            state(s, k.id, k.bytes, k.retired)
        );
    }
}

async fn admin(target: &Target) -> anyhow::Result<Admin> {
    Admin::connect(target.connect_options()?)
        .await
        .with_context(|| format!("cannot reach a node at {}", target.node))
}

pub async fn run(args: KeysArgs) -> anyhow::Result<()> {
    match args.command {
        KeysCommand::Status { target, format } => {
            let s = admin(&target).await?.keys_status().await?;
            match format {
                KeysFormat::Json => println!("{}", status_json(&s)),
                KeysFormat::Table => print_status(&s),
            }
        }
        KeysCommand::Rotate { target, format } => {
            let id = admin(&target).await?.rotate_key().await?;
            match format {
                KeysFormat::Json => println!("{}", serde_json::json!({ "new_id": id })),
                KeysFormat::Table => {
                    println!("key id {id} is now active; back up the data dir's master-{id}.key")
                }
            }
        }
        KeysCommand::Retire { id, target } => {
            admin(&target)
                .await?
                .retire_key(id)
                .await
                .with_context(|| format!("cannot retire key id {id}"))?;
            println!("key id {id} retired");
        }
        KeysCommand::NewE2e { file } => {
            let key = E2eKey::create_file(&file)?;
            println!(
                "wrote a new end-to-end key to {} (fingerprint {}); keep it away from the nodes",
                file.display(),
                key.fingerprint()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmmq_client::KeyInfo;

    #[test]
    fn json_and_states() {
        let s = KeysStatusResponse {
            active_id: 2,
            keys: vec![
                KeyInfo {
                    id: 1,
                    fingerprint: "aa".into(),
                    bytes: 10,
                    batches: 1,
                    retired: false,
                },
                KeyInfo {
                    id: 2,
                    fingerprint: "bb".into(),
                    bytes: 0,
                    batches: 0,
                    retired: false,
                },
                KeyInfo {
                    id: 3,
                    fingerprint: "cc".into(),
                    bytes: 0,
                    batches: 0,
                    retired: true,
                },
            ],
        };
        let states: Vec<_> = s
            .keys
            .iter()
            .map(|k| state(&s, k.id, k.bytes, k.retired))
            .collect();
        assert_eq!(states, vec!["in use", "active", "retired"]);
        let j = status_json(&s);
        assert_eq!(j["active_id"], 2);
        assert_eq!(j["keys"][0]["bytes"], 10);
        assert_eq!(j["keys"][1]["active"], true);
        assert_eq!(j["keys"][2]["retired"], true);
    }
}
