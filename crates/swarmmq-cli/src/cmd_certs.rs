//! `swarmmq certs init`: a development certificate authority and the certificates a
//! node and a client need for TLS and mutual TLS. Not a production PKI: the CA key
//! sits next to the certificates it signed.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Args, Subcommand};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

#[derive(Args, Debug)]
pub struct CertsArgs {
    #[command(subcommand)]
    pub command: CertsCommand,
}

#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// Write a development CA, a node certificate and a client certificate (PEM)
    Init {
        /// Directory for ca.pem, ca.key, node.pem, node.key, client.pem, client.key
        #[arg(long, default_value = "swarmmq-certs")]
        dir: PathBuf,
        /// Extra name or IP address of the node (repeatable); localhost, 127.0.0.1 and
        /// ::1 are always included
        #[arg(long = "host", value_name = "NAME_OR_IP")]
        hosts: Vec<String>,
        /// Overwrite existing files
        #[arg(long)]
        force: bool,
    },
}

const FILES: [&str; 6] = [
    "ca.pem",
    "ca.key",
    "node.pem",
    "node.key",
    "client.pem",
    "client.key",
];
const CA_DAYS: u64 = 3650;
const LEAF_DAYS: u64 = 825;
const DAY: Duration = Duration::from_secs(86_400);

pub fn run(args: CertsArgs) -> anyhow::Result<()> {
    match args.command {
        CertsCommand::Init { dir, hosts, force } => init(&dir, &hosts, force),
    }
}

/// The node's subject alternative names: the loopback names and every `--host`, once each.
fn node_names(hosts: &[String]) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for h in hosts {
        let h = h.trim();
        let canonical = match h.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => {
                let valid = !h.is_empty()
                    && h.len() <= 253
                    && h.split('.').all(|label| {
                        !label.is_empty()
                            && label.len() <= 63
                            && label
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*')
                    });
                anyhow::ensure!(
                    valid,
                    "--host {h:?} is neither an IP address nor a DNS name"
                );
                h.to_ascii_lowercase()
            }
        };
        if !names.contains(&canonical) {
            names.push(canonical);
        }
    }
    Ok(names)
}

fn validity(params: &mut CertificateParams, days: u64) -> anyhow::Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    // An hour of slack for clocks a little behind this one.
    params.not_before = epoch + now.saturating_sub(Duration::from_secs(3600));
    params.not_after = epoch + now + DAY * days as u32;
    Ok(())
}

fn init(dir: &Path, hosts: &[String], force: bool) -> anyhow::Result<()> {
    let names = node_names(hosts)?;
    if !force {
        for f in FILES {
            let path = dir.join(f);
            anyhow::ensure!(
                !path.exists(),
                "{} exists; pass --force to overwrite the certificates in {}",
                path.display(),
                dir.display()
            );
        }
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;

    let ca_key = KeyPair::generate()?;
    // A name of its own per CA: verifiers find a certificate's issuer by name, and two
    // development CAs with one name would report a bad signature instead of an unknown CA.
    let tag: String = ca_key
        .public_key_raw()
        .iter()
        .skip(1)
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, format!("SwarmMQ development CA {tag}"));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut ca, CA_DAYS)?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = CertifiedIssuer::self_signed(ca, ca_key)?;

    let mut node = CertificateParams::new(names.clone())?;
    node.distinguished_name
        .push(DnType::CommonName, "swarmmq-node");
    node.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Client auth too: the same certificate identifies the node on links to its peers.
    node.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    validity(&mut node, LEAF_DAYS)?;
    let node_key = KeyPair::generate()?;
    let node_cert = node.signed_by(&node_key, &issuer)?;

    let mut client = CertificateParams::new(Vec::<String>::new())?;
    client.distinguished_name.push(DnType::CommonName, "client");
    client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    validity(&mut client, LEAF_DAYS)?;
    let client_key = KeyPair::generate()?;
    let client_cert = client.signed_by(&client_key, &issuer)?;

    write(dir, "ca.pem", &issuer.pem(), 0o644)?;
    write(dir, "ca.key", &ca_key_pem, 0o600)?;
    write(dir, "node.pem", &node_cert.pem(), 0o644)?;
    write(dir, "node.key", &node_key.serialize_pem(), 0o600)?;
    write(dir, "client.pem", &client_cert.pem(), 0o644)?;
    write(dir, "client.key", &client_key.serialize_pem(), 0o600)?;

    let d = dir.display();
    println!("wrote a development CA and certificates to {d}/");
    println!("  ca.pem      CA certificate: clients trust it (--tls-ca)");
    println!("  ca.key      CA private key: keep it away from nodes and clients");
    println!("  node.pem    node certificate for {}", names.join(", "));
    println!("  node.key    node private key");
    println!("  client.pem  client certificate, CN \"client\" (mutual TLS)");
    println!("  client.key  client private key");
    println!("start a node:  swarmmq node --tls-cert {d}/node.pem --tls-key {d}/node.key");
    println!("connect:       swarmmq topic list --tls-ca {d}/ca.pem");
    Ok(())
}

/// Writes `name` with `mode`, also when it already exists with looser permissions.
fn write(dir: &Path, name: &str, text: &str, mode: u32) -> anyhow::Result<()> {
    let path = dir.join(name);
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&path)
        .and_then(|mut f| {
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
            f.write_all(text.as_bytes())?;
            f.sync_all()
        });
    result.with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_always_cover_loopback_and_add_hosts_once() {
        let names =
            node_names(&["Broker.Example".into(), "10.1.2.3".into(), "::1".into()]).unwrap();
        assert_eq!(
            names,
            [
                "localhost",
                "127.0.0.1",
                "::1",
                "broker.example",
                "10.1.2.3"
            ]
        );
        assert!(node_names(&["bad name".into()]).is_err());
        assert!(node_names(&["a..b".into()]).is_err());
        assert!(node_names(&["".into()]).is_err());
    }
}
