//! `swarmmq auth`: create, list and revoke API keys in the key file. Works on the file
//! directly, whether or not a node runs; a running node picks changes up by itself
//! (it polls the file, and reloads at once on SIGHUP).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use swarmmq_auth::{AuthError, KeyRecord, KeyStore};
use swarmmq_config::{Config, process_env};

#[derive(Args, Debug)]
pub struct AuthArgs {
    #[command(subcommand)]
    pub command: AuthCommand,
}

/// Which key file: found as the node finds it.
#[derive(Args, Debug, Clone)]
pub struct KeysFile {
    /// The API key file itself
    #[arg(long, conflicts_with_all = ["data_dir", "config"])]
    pub keys_file: Option<PathBuf>,
    /// The node's data directory (its api-keys.json, unless the config names another file)
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The node's YAML config (security.api_keys_file, else <storage.data_dir>/api-keys.json)
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum AuthCommand {
    /// Create an API key and print it; it is shown this once and never again
    CreateKey {
        /// A unique name for the key (e.g. the service using it)
        #[arg(long)]
        name: String,
        /// A permission: produce:<pattern>, consume:<pattern> or admin; `*` in a pattern matches any run of characters (repeatable)
        #[arg(long = "allow", required = true, value_name = "PERMISSION")]
        allow: Vec<String>,
        #[command(flatten)]
        file: KeysFile,
    },
    /// List API keys: id, name, permissions, created, revoked (never secrets or hashes)
    List {
        /// One JSON array instead of a table
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        file: KeysFile,
    },
    /// Revoke an API key by name or id; a running node refuses it within a second
    Revoke {
        /// The key's name or its 12-character id
        name_or_id: String,
        #[command(flatten)]
        file: KeysFile,
    },
}

impl KeysFile {
    /// `--keys-file`, else the node's resolution: config file and `SWARMMQ_*`
    /// environment, with `--data-dir` over `storage.data_dir`.
    pub fn path(&self) -> anyhow::Result<PathBuf> {
        if let Some(f) = &self.keys_file {
            return Ok(f.clone());
        }
        let mut config = Config::load(self.config.as_deref(), process_env())?;
        if let Some(d) = &self.data_dir {
            config.storage.data_dir = d.clone();
        }
        Ok(config.api_keys_file())
    }
}

fn time(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn permissions(r: &KeyRecord) -> String {
    r.permissions
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn record_json(r: &KeyRecord) -> serde_json::Value {
    serde_json::json!({
        "id": r.id,
        "name": r.name,
        "permissions": r.permissions.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "created_at": time(r.created_at),
        "revoked_at": r.revoked_at.map(time),
    })
}

pub fn run(args: AuthArgs) -> anyhow::Result<()> {
    match args.command {
        AuthCommand::CreateKey { name, allow, file } => {
            let path = file.path()?;
            let key = KeyStore::update(&path, |store| store.create_key(&name, &allow))
                .with_context(|| format!("cannot create the key in {}", path.display()))?;
            println!("{}", key.key.as_str());
            eprintln!(
                "created API key {:?} (id {}) allowed {} in {}",
                key.name,
                key.id,
                allow.join(", "),
                path.display()
            );
            eprintln!(
                "store it now: it cannot be shown again (the file keeps only a salted hash). \
                 Clients pass it with --api-key or SWARMMQ_API_KEY."
            );
        }
        AuthCommand::List { json, file } => {
            let path = file.path()?;
            let store = match KeyStore::load(&path) {
                Ok(s) => s,
                Err(AuthError::Missing { .. }) => {
                    eprintln!(
                        "no API key file at {} (create a key with: swarmmq auth create-key)",
                        path.display()
                    );
                    KeyStore::new()
                }
                Err(e) => return Err(e.into()),
            };
            if json {
                let all: Vec<_> = store.records().iter().map(record_json).collect();
                println!("{}", serde_json::Value::Array(all));
                return Ok(());
            }
            if store.is_empty() {
                return Ok(());
            }
            let name_width = store
                .records()
                .iter()
                .map(|r| r.name.len())
                .max()
                .unwrap_or(4)
                .max(4);
            println!(
                "{:<12}  {:<name_width$}  {:<20}  {:<20}  PERMISSIONS",
                "ID", "NAME", "CREATED", "REVOKED"
            );
            for r in store.records() {
                println!(
                    "{:<12}  {:<name_width$}  {:<20}  {:<20}  {}",
                    r.id,
                    r.name,
                    time(r.created_at),
                    r.revoked_at.map(time).unwrap_or_else(|| "-".into()),
                    permissions(r)
                );
            }
        }
        AuthCommand::Revoke { name_or_id, file } => {
            let path = file.path()?;
            let record = KeyStore::update(&path, |store| store.revoke(&name_or_id))
                .with_context(|| format!("cannot revoke in {}", path.display()))?;
            eprintln!(
                "revoked API key {:?} (id {}) in {}; a running node refuses it within a second",
                record.name,
                record.id,
                path.display()
            );
        }
    }
    Ok(())
}
