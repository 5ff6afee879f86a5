//! Runs the real `nats-bench` binary against a real `nats-server -js` on a free local
//! port. Skipped (with a note on stderr) where no `nats-server` is on PATH; the
//! comparison script installs it with apt-get.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_nats-bench");

struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Option<Server> {
    if Command::new("nats-server")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("nats-server not on PATH: skipping");
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(Server {
        child,
        url: format!("nats://127.0.0.1:{port}"),
        _dir: dir,
    })
}

fn run(args: &[&str]) -> serde_json::Value {
    let out = Command::new(BIN).args(args).arg("--json").output().unwrap();
    assert!(
        out.status.success(),
        "nats-bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn produce(s: &Server, count: u64) -> serde_json::Value {
    run(&[
        "produce",
        "--server",
        &s.url,
        "--stream",
        "t",
        "--subject",
        "t.x",
        "--message-size",
        "100",
        "--count",
        &count.to_string(),
        "--in-flight",
        "64",
    ])
}

fn consume(s: &Server, count: u64, ack: &str) -> serde_json::Value {
    run(&[
        "consume",
        "--server",
        &s.url,
        "--stream",
        "t",
        "--count",
        &count.to_string(),
        "--batch",
        "500",
        "--in-flight",
        "2",
        "--ack",
        ack,
    ])
}

#[test]
fn produce_then_consume_counts_every_message_once() {
    let Some(s) = start_server() else { return };
    let p = produce(&s, 3_000);
    assert_eq!(p["mode"], "produce");
    assert_eq!(p["messages"], 3_000);
    assert_eq!(p["errors"], 0);
    assert_eq!(p["payload_bytes"], 300_000);
    assert_eq!(p["latency_us"]["samples"], 3_000);
    assert_eq!(p["settings"]["in_flight"], 64);

    let c = consume(&s, 3_000, "batch");
    assert_eq!(c["mode"], "consume");
    assert_eq!(c["messages"], 3_000);
    assert_eq!(c["payload_bytes"], 300_000);
    assert_eq!(c["errors"], 0);
    // 3000 messages in pulls of 500: six round trips, no pull beyond the count.
    assert_eq!(c["latency_us"]["samples"], 6);

    // The durable consumer is recreated, so a second run reads from the start again.
    let again = consume(&s, 3_000, "each");
    assert_eq!(again["messages"], 3_000);
    assert_eq!(again["errors"], 0);
}

#[test]
fn produce_recreates_the_stream_and_consume_stops_when_idle() {
    let Some(s) = start_server() else { return };
    produce(&s, 1_000);
    produce(&s, 1_000);
    // Only the second run's messages are stored; asking for more ends after the idle
    // wait with what there is, and the idle time is not counted.
    let started = Instant::now();
    let c = consume(&s, 1_500, "batch");
    assert_eq!(c["messages"], 1_000);
    assert_eq!(c["errors"], 0);
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(c["seconds"].as_f64().unwrap() < started.elapsed().as_secs_f64() - 1.5);
}

#[test]
fn consume_without_a_stream_fails_with_a_message() {
    let Some(s) = start_server() else { return };
    let out = Command::new(BIN)
        .args([
            "consume", "--server", &s.url, "--stream", "missing", "--count", "10",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no stream missing"), "{err}");
}
