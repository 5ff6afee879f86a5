#!/usr/bin/env bash
# bench-node.sh: the single-node figures of docs/benchmarks.md, each run R times (median).
#
#   scripts/bench-node.sh [--rounds R] [--count N] [--no-build]
#
# Every node is started fresh (empty data dir, free ports on 127.0.0.1) and stopped by its
# PID, also on exit. Every step is bounded by a count or a duration and a timeout.
# Prints a markdown table and writes bench-out/node-<date>.json.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
R=3; N=1000000; BUILD=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) R="$2"; shift 2 ;;
    --count) N="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cd "$ROOT"
[[ $BUILD == 1 ]] && cargo build --release -p swarmmq-cli >/dev/null 2>&1
S="$ROOT/target/release/swarmmq"
OUT="$ROOT/bench-out"; mkdir -p "$OUT"
WORK="$(mktemp -d)"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$OUT/node-$STAMP.jsonl"
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && kill -TERM "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

NODE_PID=""; NODE_ADDR=""; NODE_HTTP=""
start_node() { # $1 = fsync policy
  local dir="$WORK/data-$RANDOM" port http
  port=$(free_port); http=$(free_port)
  SWARMMQ_STORAGE_FSYNC="$1" SWARMMQ_LOG_LEVEL=warn "$S" node --data-dir "$dir" --port "$port" --http-port "$http" \
    > "$WORK/node.log" 2>&1 &
  NODE_PID=$!; PIDS+=("$NODE_PID"); NODE_ADDR="127.0.0.1:$port"; NODE_HTTP="127.0.0.1:$http"
  NODE_DIR="$dir"
  for _ in $(seq 100); do curl -sf "http://$NODE_HTTP/health" >/dev/null && return 0; sleep 0.1; done
  echo "node did not start" >&2; cat "$WORK/node.log" >&2; exit 1
}
stop_node() {
  kill -TERM "$NODE_PID" 2>/dev/null || true
  for _ in $(seq 300); do kill -0 "$NODE_PID" 2>/dev/null || break; sleep 0.1; done
  # A round writes ~15 GB; keep only one node's data on disk at a time.
  rm -rf "$NODE_DIR"
}
hwm_kib() { awk '/VmHWM/ {print $2}' "/proc/$NODE_PID/status"; }
record() { # name json
  echo "{\"name\": \"$1\", \"result\": $2}" >> "$RESULTS"
}
b() { timeout 600 "$S" bench "$@" --node "$NODE_ADDR" --json --quiet; }

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), kernel $(uname -r), $(date -u)" | tee "$OUT/node-$STAMP.machine"

for r in $(seq "$R"); do
  # Publish and consume, fsync always (the default), one producer, one consumer.
  start_node always
  record produce "$(b produce -d p --count "$N")"
  record consume "$(b consume -d p --count "$N")"
  record rss_kib_produce_consume "$(hwm_kib)"
  # Shared with one ack request per message vs ordered, same data.
  record consume_ordered "$(b consume -d p --count "$N" --mode ordered)"
  record consume_shared_ack_each "$(b consume -d p --count "$N" --mode shared --ack each)"
  record consume_shared_ack_each_request "$(b consume -d p --count $(( N / 5 )) --mode shared --ack each-request)"
  # Disk overhead per 100-byte message.
  b produce -d small --message-size 100 --count "$N" >/dev/null
  bytes=$(find "$NODE_DIR/destinations/small/partitions" -type f \( -name '*.log' -o -name '*.index' -o -name '*.timeindex' \) -printf '%s\n' | awk '{s+=$1} END {print s}')
  record overhead_bytes_per_msg "$(python3 -c "print(($bytes - $N*100)/$N)")"
  stop_node

  # Mixed: publish alone; publish while a consumer tails the same destination with the
  # node acknowledging on delivery (no ack requests); and with an ack request per pull
  # (group log append + group-committed fsync). The last two differ only in the ack path.
  start_node always
  record mixed_publish_alone "$(b produce -d m1 --duration 15s)"
  for ack in auto batch; do
    (timeout 60 "$S" bench consume --node "$NODE_ADDR" -d "m-$ack" --count 100000000 --ack "$ack" --json --quiet > "$WORK/mixed-consume.json" 2>/dev/null) &
    cpid=$!; PIDS+=("$cpid")
    sleep 0.5
    record "mixed_publish_consumer_ack_$ack" "$(b produce -d "m-$ack" --duration 15s)"
    kill -TERM "$cpid" 2>/dev/null || true; wait "$cpid" 2>/dev/null || true
  done
  stop_node

  # Publish-to-consume latency at a steady 10k msg/s, fsync always and interval.
  for policy in always interval; do
    start_node "$policy"
    record "e2e_$policy" "$(b e2e -d e --rate 10000 --duration 10s)"
    record "rss_kib_e2e_$policy" "$(hwm_kib)"
    stop_node
  done
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def vals(name, f):
    return [f(r["result"]) for r in rows if r["name"] == name]
def med(xs): return statistics.median(xs) if xs else float("nan")
def tput(name): return med(vals(name, lambda x: x["msgs_per_sec"]))
def lat(name, q): return med(vals(name, lambda x: x["latency_us"][q] / 1000))
print("| figure | median | runs |")
print("|---|---:|---:|")
for n in ["produce", "consume", "consume_ordered", "consume_shared_ack_each", "consume_shared_ack_each_request", "mixed_publish_alone", "mixed_publish_consumer_ack_auto", "mixed_publish_consumer_ack_batch"]:
    v = vals(n, lambda x: x["msgs_per_sec"])
    print(f"| {n} msg/s | {med(v):,.0f} | {', '.join(f'{x:,.0f}' for x in v)} |")
for p in ["always", "interval"]:
    for q in ["p50", "p99", "p999"]:
        v = vals(f"e2e_{p}", lambda x: x["latency_us"][q] / 1000)
        print(f"| e2e 10k msg/s fsync {p} {q} ms | {med(v):.2f} | {', '.join(f'{x:.2f}' for x in v)} |")
for n in ["rss_kib_produce_consume", "rss_kib_e2e_always", "rss_kib_e2e_interval"]:
    v = vals(n, lambda x: x / 1024)
    print(f"| {n.replace('kib','MiB')} peak | {max(v):.0f} | {', '.join(f'{x:.0f}' for x in v)} |")
v = vals("overhead_bytes_per_msg", lambda x: x)
print(f"| disk overhead bytes per 100-byte message | {med(v):.1f} | {', '.join(f'{x:.1f}' for x in v)} |")
print()
print(f"shared (ack per message) / ordered consume = {tput('consume_shared_ack_each')/tput('consume_ordered'):.2f}")
print(f"publish beside an acking consumer / beside a consumer without ack requests = {tput('mixed_publish_consumer_ack_batch')/tput('mixed_publish_consumer_ack_auto'):.2f}")
print(f"publish beside an acking consumer / publish alone = {tput('mixed_publish_consumer_ack_batch')/tput('mixed_publish_alone'):.2f}")
PY
echo "raw results: $RESULTS"
