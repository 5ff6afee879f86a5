//! [`NetnsLab`]: the network of a `--netns` run. Each node gets its own network
//! namespace `smq-<run>-<i>` with `lo` up and one veth whose outer end sits on a
//! bridge in the root namespace; node i is `10.213.<y>.<i>/24`, the root namespace is
//! `.254` on the same bridge (so the harness and its clients reach every node). A
//! partition moves the minority's outer veth ends to a second bridge: nodes on one
//! bridge still talk, the two bridges do not, and the root namespace stays with the
//! majority. Healing moves them back.
//!
//! Everything is done with the `ip` tool (iproute2) and needs root. Only names this
//! lab created are ever deleted: each is recorded after its `add` succeeded, and
//! [`NetnsLab::cleanup`] (also run on drop) deletes exactly those. A run killed by
//! SIGKILL leaves them behind (`ip netns list`, `ip link show type bridge`: the names
//! start with `smq`).

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use crate::error::ChaosError;

/// The /16 the lab's /24 is carved from (a private range unlikely to be in use).
const NET_A: u8 = 10;
const NET_B: u8 = 213;
/// The root namespace's host number on the bridge.
const ROOT_HOST: u8 = 254;
/// Longest interface name Linux accepts (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;

/// Runs `ip <args>`, its output captured; the error carries its stderr.
fn ip(args: &[&str]) -> Result<String, ChaosError> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ChaosError::io("cannot run `ip` (iproute2): --netns needs it", e))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(ChaosError::Netns(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Whether network namespaces can be used here: root, `ip` present, and a probe
/// namespace can be created (and is deleted again). The error says why not.
pub fn netns_available() -> Result<(), ChaosError> {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(ChaosError::Netns(
            "--netns needs root (it creates network namespaces, veths and bridges)".into(),
        ));
    }
    let probe = format!("smq-probe-{}", std::process::id());
    ip(&["netns", "add", &probe])?;
    ip(&["netns", "del", &probe])?;
    Ok(())
}

/// What the lab created, in creation order, so cleanup deletes exactly these.
#[derive(Debug, Default)]
struct Created {
    links: Vec<String>,
    bridges: Vec<String>,
    namespaces: Vec<String>,
}

/// The namespaces, veths and bridges of one run.
#[derive(Debug)]
pub struct NetnsLab {
    run: String,
    subnet: u8,
    nodes: usize,
    created: Created,
    /// Node indexes (0-based) on the second bridge now.
    isolated: Vec<usize>,
}

impl NetnsLab {
    /// Creates the network for `nodes` nodes (1 to 253). Fails with a clear error when
    /// not root or without `ip`; whatever was created before a failure is deleted.
    pub fn create(nodes: usize) -> Result<NetnsLab, ChaosError> {
        if nodes == 0 || nodes >= usize::from(ROOT_HOST) {
            return Err(ChaosError::Config(format!(
                "a network-namespace lab holds 1 to 253 nodes, not {nodes}"
            )));
        }
        netns_available()?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let seed = nanos ^ std::process::id().rotate_left(12);
        let run = format!("{:06x}", seed & 0xff_ffff);
        let subnet = free_subnet(&ip(&["-4", "-o", "addr", "show"])?, seed)?;
        let mut lab = NetnsLab {
            run,
            subnet,
            nodes,
            created: Created::default(),
            isolated: Vec::new(),
        };
        // On an error, `lab` drops here and deletes what it made.
        lab.build()?;
        Ok(lab)
    }

    fn build(&mut self) -> Result<(), ChaosError> {
        let (a, b) = (self.bridge(false), self.bridge(true));
        for br in [&a, &b] {
            ip(&["link", "add", br, "type", "bridge"])?;
            self.created.bridges.push(br.clone());
            ip(&["link", "set", br, "up"])?;
        }
        let root = format!("{}/24", self.root_ip());
        ip(&["addr", "add", &root, "dev", &a])?;
        for i in 0..self.nodes {
            let ns = self.namespace(i);
            ip(&["netns", "add", &ns])?;
            self.created.namespaces.push(ns.clone());
            let outer = self.outer(i);
            let peer = format!("smq{}p{}", self.run, i + 1);
            ip(&["link", "add", &outer, "type", "veth", "peer", "name", &peer])?;
            self.created.links.push(outer.clone());
            // Inside its namespace the peer is only reachable through it, so it can
            // take a plain name.
            ip(&["link", "set", &peer, "netns", &ns])?;
            ip(&["-n", &ns, "link", "set", &peer, "name", "eth0"])?;
            let addr = format!("{}/24", self.node_ip(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["link", "set", &outer, "master", &a, "up"])?;
        }
        Ok(())
    }

    /// `smq<run>a` (everyone, the root namespace included) or `smq<run>b` (the
    /// isolated side of a partition).
    fn bridge(&self, second: bool) -> String {
        format!("smq{}{}", self.run, if second { 'b' } else { 'a' })
    }

    /// The root-namespace end of node `i`'s veth.
    fn outer(&self, i: usize) -> String {
        let name = format!("smq{}v{}", self.run, i + 1);
        debug_assert!(name.len() <= MAX_IFNAME);
        name
    }

    /// How many nodes it has a namespace for.
    pub fn len(&self) -> usize {
        self.nodes
    }

    pub fn is_empty(&self) -> bool {
        self.nodes == 0
    }

    /// The namespace node `i` (0-based) runs in: `smq-<run>-<i+1>`.
    pub fn namespace(&self, i: usize) -> String {
        format!("smq-{}-{}", self.run, i + 1)
    }

    /// Node `i`'s (0-based) address: `10.213.<y>.<i+1>`.
    pub fn node_ip(&self, i: usize) -> Ipv4Addr {
        let host = u8::try_from(i + 1).unwrap_or(ROOT_HOST - 1);
        Ipv4Addr::new(NET_A, NET_B, self.subnet, host)
    }

    /// The root namespace's address on the bridge.
    pub fn root_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(NET_A, NET_B, self.subnet, ROOT_HOST)
    }

    /// Node indexes cut off now (empty when whole).
    pub fn isolated(&self) -> &[usize] {
        &self.isolated
    }

    /// Cuts `minority` (0-based node indexes) off from the rest and from the root
    /// namespace: their veths move to the second bridge. Heals any earlier partition
    /// first.
    pub fn partition(&mut self, minority: &[usize]) -> Result<(), ChaosError> {
        self.heal()?;
        let b = self.bridge(true);
        for &i in minority {
            if i >= self.nodes {
                return Err(ChaosError::Config(format!(
                    "no node #{i} (the lab has {})",
                    self.nodes
                )));
            }
            // Recorded first: a half-done move is still undone by heal().
            self.isolated.push(i);
            ip(&["link", "set", &self.outer(i), "master", &b])?;
        }
        Ok(())
    }

    /// Moves every isolated node back to the main bridge.
    pub fn heal(&mut self) -> Result<(), ChaosError> {
        let a = self.bridge(false);
        while let Some(&i) = self.isolated.last() {
            ip(&["link", "set", &self.outer(i), "master", &a])?;
            self.isolated.pop();
        }
        Ok(())
    }

    /// Deletes every link, bridge and namespace this lab created (and only those).
    /// Returns the deletions that failed.
    pub fn cleanup(&mut self) -> Vec<String> {
        let mut failed = Vec::new();
        self.isolated.clear();
        // A veth's peer goes with it; deleting the links first leaves the namespaces
        // empty.
        for link in self.created.links.drain(..).rev() {
            if let Err(e) = ip(&["link", "del", &link]) {
                failed.push(e.to_string());
            }
        }
        for br in self.created.bridges.drain(..).rev() {
            if let Err(e) = ip(&["link", "del", &br]) {
                failed.push(e.to_string());
            }
        }
        for ns in self.created.namespaces.drain(..).rev() {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                failed.push(e.to_string());
            }
        }
        failed
    }
}

impl Drop for NetnsLab {
    fn drop(&mut self) {
        for e in self.cleanup() {
            eprintln!("swarmmq chaos: cleanup: {e}");
        }
    }
}

/// A third octet `y` such that `10.213.y.0/24` overlaps no IPv4 address or network
/// in `ip -4 -o addr show` output; tried from `seed` on.
fn free_subnet(addr_show: &str, seed: u32) -> Result<u8, ChaosError> {
    let used: Vec<(u32, u32)> = addr_show
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "inet")
        .filter_map(|w| {
            let (addr, len) = w[1].split_once('/')?;
            let addr: Ipv4Addr = addr.parse().ok()?;
            let len: u32 = len.parse().ok()?;
            (len <= 32).then_some((u32::from(addr), len))
        })
        .collect();
    let mask = |len: u32| u32::MAX.checked_shl(32 - len).unwrap_or(0);
    for k in 0..=255u32 {
        let y = ((seed.wrapping_add(k)) & 0xff) as u8;
        let ours = u32::from(Ipv4Addr::new(NET_A, NET_B, y, 0));
        let clash = used.iter().any(|&(addr, len)| {
            // Two networks overlap when the shorter prefix matches both.
            let m = mask(len.min(24));
            addr & m == ours & m
        });
        if !clash {
            return Ok(y);
        }
    }
    Err(ChaosError::Netns(format!(
        "every {NET_A}.{NET_B}.y.0/24 is in use here"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_subnet_skips_networks_in_use() {
        let show = "1: lo    inet 127.0.0.1/8 scope host lo\n\
                    2: eth0    inet 10.213.5.7/24 brd 10.213.5.255 scope global eth0\n\
                    3: br0    inet 10.213.6.1/23 scope global br0\n";
        // 5 is taken; 6 and 7 are inside the /23 at 10.213.6.0.
        assert_eq!(free_subnet(show, 5).unwrap(), 8);
        assert_eq!(free_subnet(show, 4).unwrap(), 4);
        // A /8 over all of 10/8 leaves nothing.
        let all = "2: eth0    inet 10.0.0.1/8 scope global eth0\n";
        assert!(free_subnet(all, 0).is_err());
    }
}
