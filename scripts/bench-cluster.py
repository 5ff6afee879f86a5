#!/usr/bin/env python3
"""bench-cluster.py: the cluster figures of docs/benchmarks.md (issue 5).

  scripts/bench-cluster.py [--kills 10] [--idle-secs 600] [--count 200000] [--rounds 3]
                           [--no-build] [--only forward,detect,converge,idle,load,replicated]

Starts real `swarmmq node` processes on 127.0.0.1 (fresh data dirs, free ports, one
shared master key), measures, and stops every process it started by its PID (also on
Ctrl-C). Every step is bounded by a count and a timeout.

- forward:  publish throughput through a node that does not own the partition / straight
            to the owner (swarmmq bench produce, alternating, --rounds times; medians).
- detect:   SIGKILL a node (not the metadata leader), time until every other node's
            /v1/admin/cluster says "dead"; restart it, wait until all alive; --kills times.
- converge: 6 nodes running, start a 7th; time from its /health answering until all 6
            others list it alive.
- idle:     5 nodes, no traffic, --idle-secs: every node polled every 250 ms; any node
            seen not alive is a false positive.
- load:     the same watch while `swarmmq bench produce` runs against the cluster.
- replicated: publish throughput to a 3-replica partition (cluster.replication: raft,
            acks=all) / to one single node, alternating (opt-in: not in the default list).
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "swarmmq")
KEY = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
PROCS = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http_json(addr, path, timeout=1.0):
    try:
        with urllib.request.urlopen(f"http://{addr}{path}", timeout=timeout) as r:
            return json.loads(r.read())
    except Exception:
        return None


class Node:
    def __init__(self, work, i, internal_ports, extra=""):
        self.i = i
        self.id = f"node-{i}"
        self.port = free_port()
        self.http_port = free_port()
        self.dir = os.path.join(work, self.id)
        self.log = os.path.join(work, f"{self.id}.log")
        self.cfg = os.path.join(work, f"{self.id}.yaml")
        lines = [f"node:\n  id: {self.id}\n"]
        if internal_ports:
            lines.append(
                f"cluster:\n  name: bench\n  internal_port: {internal_ports[i - 1]}\n  nodes:\n")
            for j, p in enumerate(internal_ports):
                lines.append(f"    - id: node-{j + 1}\n      address: \"127.0.0.1:{p}\"\n")
            lines.append(extra)
        with open(self.cfg, "w") as f:
            f.write("".join(lines))
        self.proc = None

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    @property
    def http(self):
        return f"127.0.0.1:{self.http_port}"

    def start(self):
        env = dict(os.environ, SWARMMQ_MASTER_KEY=KEY, SWARMMQ_LOG_LEVEL="warn", NO_COLOR="1")
        log = open(self.log, "a")
        self.proc = subprocess.Popen(
            [BIN, "node", "--config", self.cfg, "--port", str(self.port),
             "--http-port", str(self.http_port), "--data-dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=log, env=env)
        PROCS.append(self.proc)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                with open(self.log) as f:
                    tail = f.read()[-3000:]
                sys.exit(f"{self.id} exited; its log ends:\n{tail}")
            if http_json(self.http, "/health"):
                return time.time()
            time.sleep(0.02)
        sys.exit(f"{self.id} not healthy in 30 s")

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill9()

    def states(self):
        s = http_json(self.http, "/v1/admin/cluster")
        if not s:
            return None, None
        return {n["id"]: n["state"] for n in s.get("nodes", [])}, s


def cli(*args, timeout=600):
    out = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        sys.exit(f"swarmmq {' '.join(args)} failed: {out.stderr}")
    return out.stdout


def wait_until(check, what, timeout=60, step=0.02):
    start = time.time()
    while time.time() - start < timeout:
        if check():
            return time.time() - start
        time.sleep(step)
    sys.exit(f"timed out waiting for {what}")


def start_cluster(work, n, start=None, extra=""):
    internal = [free_port() for _ in range(n)]
    nodes = [Node(work, i + 1, internal, extra) for i in range(n)]
    for node in nodes[: (start or n)]:
        node.start()
    return nodes


def all_alive(nodes, running):
    for node in running:
        st, s = node.states()
        if not st or s.get("leader") is None:
            return False
        if any(st.get(m.id) != "alive" for m in running):
            return False
    return True


def leader_of(nodes):
    for node in nodes:
        st, s = node.states()
        if s and s.get("leader"):
            return s["leader"]
    return None


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def forward(work, args):
    nodes = start_cluster(work, 5)
    wait_until(lambda: all_alive(nodes, nodes), "5 alive")
    direct, forwarded = [], []
    for r in range(args.rounds):
        name = f"fwd{r}"
        cli("topic", "create", name, "--partitions", "1", "--node", nodes[0].addr)
        d = json.loads(cli("topic", "describe", name, "--node", nodes[0].addr, "--json"))
        owner = d["partitions"][0]["leader"]
        o = next(n for n in nodes if n.id == owner)
        other = next(n for n in nodes if n.id != owner)
        for label, target, sink in [("direct", o, direct), ("forwarded", other, forwarded)]:
            res = json.loads(cli("bench", "produce", "-d", name, "--count", str(args.count),
                                 "--node", target.addr, "--json", "--quiet"))
            rate = res.get("msgs_per_sec") or res.get("rate") or res.get("messages_per_sec")
            sink.append(rate)
            print(f"  round {r + 1} {label} via {target.id} (owner {owner}): {rate:,.0f} msg/s", flush=True)
    for n in nodes:
        n.stop()
    ratio = [f / d for f, d in zip(forwarded, direct)]
    return {"direct_median": median(direct), "forwarded_median": median(forwarded),
            "ratio_median": median(ratio), "ratios": ratio}


def bench_rate(name, node, count):
    res = json.loads(cli("bench", "produce", "-d", name, "--count", str(count),
                         "--node", node.addr, "--json", "--quiet"))
    return res.get("msgs_per_sec")


def replicated(work, args):
    """Publish throughput of a 3-replica partition (acks=all, replication raft) against
    one single node, alternating, --rounds times (1 KiB, fsync always)."""
    single_rates, repl_rates = [], []
    for r in range(args.rounds):
        d = os.path.join(work, f"single-{r}")
        os.makedirs(d, exist_ok=True)
        single = Node(d, 1, [])
        single.start()
        cli("topic", "create", "s", "--partitions", "1", "--node", single.addr)
        single_rates.append(bench_rate("s", single, args.count))
        single.stop()
        d = os.path.join(work, f"repl-{r}")
        os.makedirs(d, exist_ok=True)
        nodes = start_cluster(d, 3, extra="  replication: raft\n  replication_factor: 3\n")
        wait_until(lambda: all_alive(nodes, nodes), "3 alive")
        cli("topic", "create", "r", "--partitions", "1", "--node", nodes[0].addr)

        def leader_known():
            desc = json.loads(cli("topic", "describe", "r", "--node", nodes[0].addr, "--json"))
            return desc["partitions"][0]["leader"]

        time.sleep(2)  # the partition group elects its leader
        lead = next(n for n in nodes if n.id == leader_known())
        repl_rates.append(bench_rate("r", lead, args.count))
        for n in nodes:
            n.stop()
        print(f"  round {r + 1}: single node {single_rates[-1]:,.0f} msg/s, "
              f"3 replicas via leader {lead.id} {repl_rates[-1]:,.0f} msg/s", flush=True)
    ratio = [b / a for a, b in zip(single_rates, repl_rates)]
    return {"single_median": median(single_rates), "replicated_median": median(repl_rates),
            "ratio_median": median(ratio), "ratios": ratio}


def detect(work, args):
    nodes = start_cluster(work, 5)
    wait_until(lambda: all_alive(nodes, nodes), "5 alive")
    times = []
    for k in range(args.kills):
        leader = leader_of(nodes)
        candidates = [n for n in nodes if n.id != leader]
        victim = candidates[k % len(candidates)]
        others = [n for n in nodes if n is not victim]
        victim.kill9()
        t0 = time.time()

        def dead_everywhere():
            for n in others:
                st, _ = n.states()
                if not st or st.get(victim.id) != "dead":
                    return False
            return True

        wait_until(dead_everywhere, f"{victim.id} dead on all", timeout=60, step=0.01)
        t = time.time() - t0
        times.append(t)
        print(f"  kill {k + 1}: {victim.id} dead on all 4 others after {t:.2f} s", flush=True)
        victim.start()
        wait_until(lambda: all_alive(nodes, nodes), "all alive after restart")
    for n in nodes:
        n.stop()
    return {"median_s": median(times), "max_s": max(times), "times_s": times}


def converge(work, args):
    nodes = start_cluster(work, 7, start=6)
    wait_until(lambda: all_alive(nodes, nodes[:6]), "6 alive")
    ready = nodes[6].start()

    def seen():
        return all((n.states()[0] or {}).get("node-7") == "alive" for n in nodes[:6])

    wait_until(seen, "node-7 alive on all", timeout=60, step=0.01)
    t = time.time() - ready
    print(f"  node-7 alive on all 6 others {t:.2f} s after its /health answered", flush=True)
    for n in nodes:
        n.stop()
    return {"seconds": t}


def watch(nodes, secs, load_cmd=None):
    fp, polls = [], 0
    end = time.time() + secs
    load = None
    if load_cmd:
        load = subprocess.Popen(load_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        PROCS.append(load)
    while time.time() < end:
        for n in nodes:
            st, _ = n.states()
            polls += 1
            if st:
                for m, state in st.items():
                    if state != "alive":
                        fp.append((round(time.time(), 2), n.id, m, state))
        if load and load.poll() is not None:
            if load_cmd:
                load = subprocess.Popen(load_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                PROCS.append(load)
        time.sleep(0.25)
    if load and load.poll() is None:
        load.send_signal(signal.SIGTERM)
        load.wait(timeout=30)
    return {"seconds": secs, "polls": polls, "false_positives": len(fp), "samples": fp[:20]}


def idle(work, args):
    nodes = start_cluster(work, 5)
    wait_until(lambda: all_alive(nodes, nodes), "5 alive")
    r = watch(nodes, args.idle_secs)
    for n in nodes:
        n.stop()
    print(f"  idle {args.idle_secs} s: {r['false_positives']} false positives in {r['polls']} polls", flush=True)
    return r


def load(work, args):
    nodes = start_cluster(work, 5)
    wait_until(lambda: all_alive(nodes, nodes), "5 alive")
    cli("topic", "create", "load", "--partitions", "10", "--node", nodes[0].addr)
    cmd = [BIN, "bench", "produce", "-d", "load", "--count", str(args.count), "--node", nodes[1].addr, "--quiet"]
    r = watch(nodes, args.load_secs, load_cmd=cmd)
    for n in nodes:
        n.stop()
    print(f"  under load {args.load_secs} s: {r['false_positives']} false positives in {r['polls']} polls", flush=True)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--idle-secs", type=int, default=600)
    ap.add_argument("--load-secs", type=int, default=120)
    ap.add_argument("--count", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--only", default="forward,detect,converge,idle,load")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "swarmmq-cli"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
    print(f"machine: {os.cpu_count()} cores, {cpu}, {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    results = {}
    for part in args.only.split(","):
        work = tempfile.mkdtemp(prefix=f"swarmmq-bench-{part}-")
        print(f"== {part}", flush=True)
        try:
            results[part] = globals()[part](work, args)
        finally:
            for p in PROCS:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            PROCS.clear()
            shutil.rmtree(work, ignore_errors=True)
        print(f"  {json.dumps(results[part])}", flush=True)
    out = os.path.join(ROOT, "bench-out")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, time.strftime("cluster-%Y%m%dT%H%M%SZ.json", time.gmtime()))
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    print(f"results: {path}")


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.kill()
                p.wait()
