//! TLS end to end with the real binary: `certs init`, a node serving TLS and mutual
//! TLS, what is (not) visible on the wire and on disk, reloads, and the refusals.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::*;

/// `swarmmq certs init --dir <dir>` into a fresh directory.
fn certs_init(dir: &Path) -> PathBuf {
    ok(&swarmmq(
        &["certs", "init", "--dir", dir.to_str().unwrap()],
        None,
    ));
    dir.to_path_buf()
}

fn p(path: &Path, file: &str) -> String {
    path.join(file).to_str().unwrap().to_string()
}

fn tls_node(data: &Path, certs: &Path, mutual: bool, env: &[(&str, &str)]) -> NodeProcess {
    let (cert, key, ca) = (
        p(certs, "node.pem"),
        p(certs, "node.key"),
        p(certs, "ca.pem"),
    );
    let mut flags = vec!["--tls-cert", cert.as_str(), "--tls-key", key.as_str()];
    if mutual {
        flags.extend(["--tls-ca", ca.as_str()]);
    }
    NodeProcess::start_tls(data, &flags, env, &certs.join("ca.pem"))
}

fn one_error_line(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

fn client_addr(node: &NodeProcess) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], node.port))
}

/// The node's log without terminal colour codes.
fn log_of(node: &NodeProcess) -> String {
    let raw = node.log_text();
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A valid plaintext SwarmMQ `Health` request frame (opcode 9, no body).
fn health_frame() -> Vec<u8> {
    let mut f = b"SQ\x01\x09\x00\x00\x00\x00".to_vec();
    f.extend_from_slice(&7u32.to_be_bytes());
    f.extend_from_slice(&0u32.to_be_bytes());
    f
}

#[test]
fn certs_init_writes_private_keys_0600_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let out = ok(&swarmmq(
        &[
            "certs",
            "init",
            "--dir",
            certs.to_str().unwrap(),
            "--host",
            "broker.internal",
            "--host",
            "10.1.2.3",
        ],
        None,
    ));
    assert!(out.contains("broker.internal, 10.1.2.3"), "{out}");
    for f in ["ca.pem", "node.pem", "client.pem"] {
        let text = std::fs::read_to_string(certs.join(f)).unwrap();
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----"), "{f}");
    }
    for f in ["ca.key", "node.key", "client.key"] {
        let mode = std::fs::metadata(certs.join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
        let text = std::fs::read_to_string(certs.join(f)).unwrap();
        assert!(text.contains("PRIVATE KEY"), "{f}");
    }
    let before = std::fs::read(certs.join("ca.pem")).unwrap();
    let err = one_error_line(&swarmmq(
        &["certs", "init", "--dir", certs.to_str().unwrap()],
        None,
    ));
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(certs.join("ca.pem")).unwrap(), before);
    // Loosened permissions are tightened again on --force.
    std::fs::set_permissions(
        certs.join("node.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    ok(&swarmmq(
        &["certs", "init", "--dir", certs.to_str().unwrap(), "--force"],
        None,
    ));
    assert_ne!(std::fs::read(certs.join("ca.pem")).unwrap(), before);
    let mode = std::fs::metadata(certs.join("node.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let err = one_error_line(&swarmmq(
        &[
            "certs",
            "init",
            "--dir",
            certs.to_str().unwrap(),
            "--force",
            "--host",
            "bad host",
        ],
        None,
    ));
    assert!(err.contains("bad host"), "{err}");
}

#[test]
fn tls_clients_work_and_plaintext_and_tls12_clients_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs_init(&dir.path().join("certs"));
    let other = certs_init(&dir.path().join("other"));
    let node = tls_node(&dir.path().join("data"), &certs, false, &[]);
    let addr = node.addr();
    let ca = p(&certs, "ca.pem");

    // The CLI end to end over TLS, by IP and by name.
    ok(&swarmmq(
        &[
            "produce", "-n", &addr, "--tls-ca", &ca, "-d", "t", "-m", "over tls",
        ],
        None,
    ));
    let by_name = format!("localhost:{}", node.port);
    let out = ok(&swarmmq(
        &[
            "consume", "-n", &by_name, "--tls-ca", &ca, "-d", "t", "--max", "1",
        ],
        None,
    ));
    assert_eq!(out, "over tls\n");

    // HTTPS health.
    let (status, body) = tls::https_get(node.http(), "/health", &certs.join("ca.pem")).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"status\""), "{body}");
    // Plain HTTP gets a notice, not the health document.
    let (status, body) = http_get(node.http(), "/health").unwrap();
    assert_eq!(status, 400);
    assert!(body.contains("HTTPS"), "{body}");

    // A TLS 1.2-only client fails the handshake; a TLS 1.3 one succeeds.
    let tls12 = tls::client_config(&certs.join("ca.pem"), &[&rustls::version::TLS12], None);
    let err = tls::handshake(client_addr(&node), tls12).unwrap_err();
    assert!(
        err.to_lowercase().contains("protocol") || err.contains("Version"),
        "{err}"
    );
    let tls13 = tls::client_config(&certs.join("ca.pem"), &[&rustls::version::TLS13], None);
    tls::handshake(client_addr(&node), tls13).unwrap();

    // A plaintext client sending a valid frame is told to use TLS and closed.
    let mut plain = TcpStream::connect(client_addr(&node)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain.write_all(&health_frame()).unwrap();
    let mut answer = Vec::new();
    plain.read_to_end(&mut answer).unwrap();
    assert!(contains(&answer, b"requires TLS"), "{answer:?}");
    assert!(!contains(&answer, b"node-1"), "no health answer in clear");
    let err = one_error_line(&swarmmq(&["topic", "list", "-n", &addr], None));
    assert!(err.contains("requires TLS"), "{err}");

    // A client trusting another CA refuses the node.
    let err = one_error_line(&swarmmq(
        &[
            "topic",
            "list",
            "-n",
            &addr,
            "--tls-ca",
            &p(&other, "ca.pem"),
        ],
        None,
    ));
    assert!(err.contains("UnknownIssuer"), "{err}");
    // A name the certificate does not carry is refused.
    let err = one_error_line(&swarmmq(
        &[
            "topic",
            "list",
            "-n",
            &addr,
            "--tls-ca",
            &ca,
            "--tls-server-name",
            "elsewhere",
        ],
        None,
    ));
    assert!(err.contains("not valid for name"), "{err}");

    // The node is still up and serving TLS clients; the failures were logged.
    let out = ok(&swarmmq(
        &["topic", "list", "-n", &addr, "--tls-ca", &ca],
        None,
    ));
    assert!(out.contains('t'), "{out}");
    assert!(log_of(&node).contains("TLS handshake failed"));
}

#[test]
fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs_init(&dir.path().join("certs"));
    let other = certs_init(&dir.path().join("other"));
    let node = tls_node(
        &dir.path().join("data"),
        &certs,
        true,
        &[("SWARMMQ_LOG_LEVEL", "info,swarmmq_server::session=debug")],
    );
    let addr = node.addr();
    let ca = p(&certs, "ca.pem");

    let err = one_error_line(&swarmmq(
        &[
            "produce", "-n", &addr, "--tls-ca", &ca, "-d", "m", "-m", "x",
        ],
        None,
    ));
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    let err = one_error_line(&swarmmq(
        &[
            "topic",
            "list",
            "-n",
            &addr,
            "--tls-ca",
            &ca,
            "--tls-cert",
            &p(&other, "client.pem"),
            "--tls-key",
            &p(&other, "client.key"),
        ],
        None,
    ));
    assert!(err.contains("lost") || err.contains("TLS"), "{err}");
    let err = one_error_line(&swarmmq(
        &[
            "topic",
            "list",
            "-n",
            &addr,
            "--tls-ca",
            &ca,
            "--tls-cert",
            &p(&certs, "client.pem"),
        ],
        None,
    ));
    assert!(err.contains("--tls-key"), "{err}");

    let (cert, key) = (p(&certs, "client.pem"), p(&certs, "client.key"));
    let with_cert = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend([
            "-n",
            &addr,
            "--tls-ca",
            &ca,
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ]);
        ok(&swarmmq(&all, None))
    };
    with_cert(&["produce", "-d", "m", "-m", "mutual"]);
    assert_eq!(with_cert(&["consume", "-d", "m", "--max", "1"]), "mutual\n");
    // The verified subject CN reached the session.
    assert!(
        log_of(&node).contains("identity=\"client\""),
        "{}",
        log_of(&node)
    );
    // HTTPS health needs no client certificate.
    let (status, _) = tls::https_get(node.http(), "/health", &certs.join("ca.pem")).unwrap();
    assert_eq!(status, 200);
}

/// A TCP forwarder on 127.0.0.1 that records every byte in each direction.
struct Recorder {
    addr: String,
    to_node: Arc<Mutex<Vec<u8>>>,
    from_node: Arc<Mutex<Vec<u8>>>,
}

fn pump(mut from: TcpStream, mut to: TcpStream, log: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                log.lock().unwrap().extend_from_slice(&buf[..n]);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

fn recorder(node: SocketAddr) -> Recorder {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let to_node = Arc::new(Mutex::new(Vec::new()));
    let from_node = Arc::new(Mutex::new(Vec::new()));
    let (up, down) = (Arc::clone(&to_node), Arc::clone(&from_node));
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(upstream) = TcpStream::connect(node) else {
                return;
            };
            let (c2, u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            let (up, down) = (Arc::clone(&up), Arc::clone(&down));
            std::thread::spawn(move || pump(client, upstream, up));
            std::thread::spawn(move || pump(u2, c2, down));
        }
    });
    Recorder {
        addr,
        to_node,
        from_node,
    }
}

/// Publishes and consumes `marker` through a recorder; returns (sent, received) bytes.
fn through_recorder(node: &NodeProcess, tls: &[&str], marker: &str) -> (Vec<u8>, Vec<u8>) {
    let rec = recorder(client_addr(node));
    let mut produce = vec![
        "produce",
        "-n",
        rec.addr.as_str(),
        "-d",
        "secret",
        "-m",
        marker,
    ];
    produce.extend_from_slice(tls);
    ok(&swarmmq(&produce, None));
    let mut consume = vec![
        "consume",
        "-n",
        rec.addr.as_str(),
        "-d",
        "secret",
        "--max",
        "1",
    ];
    consume.extend_from_slice(tls);
    assert_eq!(ok(&swarmmq(&consume, None)), format!("{marker}\n"));
    let sent = rec.to_node.lock().unwrap().clone();
    let received = rec.from_node.lock().unwrap().clone();
    assert!(!sent.is_empty() && !received.is_empty());
    (sent, received)
}

#[test]
fn a_marker_published_over_tls_is_not_on_the_wire_nor_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs_init(&dir.path().join("certs"));
    let marker = format!("MARKER-{}-must-never-appear-in-clear", std::process::id());

    // Control: without TLS the same recorder sees the marker both ways.
    let plain = NodeProcess::start(&dir.path().join("plain"));
    let (sent, received) = through_recorder(&plain, &[], &marker);
    assert!(
        contains(&sent, marker.as_bytes()),
        "control: publish in clear"
    );
    assert!(
        contains(&received, marker.as_bytes()),
        "control: delivery in clear"
    );

    let node = tls_node(&dir.path().join("data"), &certs, false, &[]);
    let ca = p(&certs, "ca.pem");
    let (sent, received) = through_recorder(&node, &["--tls-ca", &ca], &marker);
    assert!(
        !contains(&sent, marker.as_bytes()),
        "marker on the wire to the node"
    );
    assert!(
        !contains(&received, marker.as_bytes()),
        "marker on the wire from the node"
    );
    assert!(
        contains(&sent, &[0x16, 0x03]),
        "a TLS handshake went through"
    );

    // Not on disk either (payloads are sealed at rest).
    let files = files_under(&dir.path().join("data"));
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "log"))
    );
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !contains(&bytes, marker.as_bytes()),
            "marker in {}",
            f.display()
        );
    }
}

/// `swarmmq consume --follow` running in the background, its lines on a channel.
struct Follower {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Follower {
    fn start(args: &[&str]) -> Follower {
        let mut child = Command::new(BIN)
            .args(args)
            .env_remove("SWARMMQ_NODE")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Follower { child, lines }
    }

    fn expect(&self, line: &str) {
        let got = self.lines.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(got, line);
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Retries `topic list` trusting `ca` until it works (a reload is asynchronous).
fn wait_trusted(addr: &str, ca: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if swarmmq(&["topic", "list", "-n", addr, "--tls-ca", ca], None)
            .status
            .success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "a client trusting {ca} never got in"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn replace_node_cert(live: &Path, from: &Path) {
    std::fs::copy(from.join("node.pem"), live.join("node.pem")).unwrap();
    std::fs::copy(from.join("node.key"), live.join("node.key")).unwrap();
}

#[test]
fn certificates_reload_on_sighup_and_on_file_change_without_dropping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let a = certs_init(&dir.path().join("a"));
    let b = certs_init(&dir.path().join("b"));
    let c = certs_init(&dir.path().join("c"));
    let live = dir.path().join("live");
    std::fs::create_dir(&live).unwrap();
    replace_node_cert(&live, &a);
    // Only for the test's readiness check over HTTPS; the node does not read it.
    std::fs::copy(a.join("ca.pem"), live.join("ca.pem")).unwrap();
    let node = tls_node(&dir.path().join("data"), &live, false, &[]);
    let addr = node.addr();
    let (ca_a, ca_b, ca_c) = (p(&a, "ca.pem"), p(&b, "ca.pem"), p(&c, "ca.pem"));

    // A connection made before any reload, trusting only CA a.
    ok(&swarmmq(
        &["topic", "create", "r", "-n", &addr, "--tls-ca", &ca_a],
        None,
    ));
    let follower = Follower::start(&[
        "consume", "-n", &addr, "--tls-ca", &ca_a, "-d", "r", "--follow",
    ]);
    ok(&swarmmq(
        &[
            "produce", "-n", &addr, "--tls-ca", &ca_a, "-d", "r", "-m", "before",
        ],
        None,
    ));
    follower.expect("before");

    // SIGHUP right after the files change: the signal, not the poll, reloads them.
    replace_node_cert(&live, &b);
    node.signal(1);
    wait_trusted(&addr, &ca_b, Duration::from_secs(10));
    let log = log_of(&node);
    assert!(
        log.lines()
            .any(|l| l.contains("TLS certificates reloaded") && l.contains("reload request")),
        "{log}"
    );
    assert!(
        !swarmmq(&["topic", "list", "-n", &addr, "--tls-ca", &ca_a], None)
            .status
            .success()
    );
    ok(&swarmmq(
        &[
            "produce",
            "-n",
            &addr,
            "--tls-ca",
            &ca_b,
            "-d",
            "r",
            "-m",
            "after sighup",
        ],
        None,
    ));
    follower.expect("after sighup");

    // A broken file: the reload fails with one error line, the node keeps serving b.
    std::fs::write(
        live.join("node.pem"),
        "-----BEGIN CERTIFICATE-----\nbroken\n",
    )
    .unwrap();
    node.signal(1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log_of(&node).contains("TLS reload failed") {
        assert!(Instant::now() < deadline, "no reload failure logged");
        std::thread::sleep(Duration::from_millis(50));
    }
    ok(&swarmmq(
        &["topic", "list", "-n", &addr, "--tls-ca", &ca_b],
        None,
    ));

    // No signal: the file-change poll picks up certificates from c.
    replace_node_cert(&live, &c);
    wait_trusted(&addr, &ca_c, Duration::from_secs(20));
    let log = log_of(&node);
    assert!(
        log.lines()
            .any(|l| l.contains("TLS certificates reloaded") && l.contains("file change")),
        "{log}"
    );
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("TLS reload failed"))
            .count(),
        1,
        "one error line for the broken file: {log}"
    );
    ok(&swarmmq(
        &[
            "produce",
            "-n",
            &addr,
            "--tls-ca",
            &ca_c,
            "-d",
            "r",
            "-m",
            "after poll",
        ],
        None,
    ));
    follower.expect("after poll");
}

#[test]
fn a_non_loopback_bind_without_tls_is_refused_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (port, http_port) = (free_port(), free_port());
    let out = Command::new(BIN)
        .args(["node", "--bind", "0.0.0.0", "--port", &port.to_string()])
        .args(["--http-port", &http_port.to_string(), "--data-dir"])
        .arg(&data)
        .env_remove("SWARMMQ_MASTER_KEY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = one_error_line(&out);
    assert!(
        err.contains("node.bind: 0.0.0.0 is not a loopback address"),
        "{err}"
    );
    assert!(
        err.contains("--insecure") && err.contains("--tls-cert"),
        "{err}"
    );
    assert!(
        !data.exists(),
        "the node stopped before touching its data dir"
    );
    assert!(out.stdout.is_empty());
}

/// Mutual TLS and API keys together: a client certificate whose CN names an API key
/// carries that key's permissions without `--api-key`; any other CN grants nothing.
#[test]
fn a_client_certificate_acts_as_the_api_key_of_its_cn() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs_init(&dir.path().join("certs"));
    let data = dir.path().join("data");
    // `certs init` gives the client certificate the CN "client".
    let created = ok(&swarmmq(
        &[
            "auth",
            "create-key",
            "--data-dir",
            data.to_str().unwrap(),
            "--name",
            "client",
            "--allow",
            "produce:a.*",
        ],
        None,
    ));
    assert!(created.trim().starts_with("smq_"));
    let node = tls_node(
        &data,
        &certs,
        true,
        &[("SWARMMQ_SECURITY_AUTH_ENABLED", "true")],
    );
    let addr = node.addr();
    let (ca, cert, key) = (
        p(&certs, "ca.pem"),
        p(&certs, "client.pem"),
        p(&certs, "client.key"),
    );
    let with_cert = |dest: &str| {
        swarmmq(
            &[
                "produce",
                "-n",
                &addr,
                "--tls-ca",
                &ca,
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "-d",
                dest,
                "-m",
                "hello",
            ],
            None,
        )
    };
    ok(&with_cert("a.x"));
    let err = one_error_line(&with_cert("b.x"));
    assert!(err.contains("FORBIDDEN"), "{err}");
    // The certificate grants produce on a.*, not consume.
    let err = one_error_line(&swarmmq(
        &[
            "consume",
            "-n",
            &addr,
            "--tls-ca",
            &ca,
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "-d",
            "a.x",
        ],
        None,
    ));
    assert!(err.contains("FORBIDDEN"), "{err}");
    // Revoking the key revokes what the certificate may do.
    ok(&swarmmq(
        &[
            "auth",
            "revoke",
            "client",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        None,
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = with_cert("a.x");
        if !out.status.success() {
            let err = one_error_line(&out);
            assert!(err.contains("UNAUTHENTICATED"), "{err}");
            break;
        }
        assert!(Instant::now() < deadline, "revocation never applied");
        std::thread::sleep(Duration::from_millis(200));
    }
}
