#!/usr/bin/env bash
# start-cluster.sh: a local N-node cluster, as `swarmmq dev` starts it, for people who
# prefer a script.
#
#   scripts/start-cluster.sh [N] [DIR]        N 1..7 (default 5), DIR default ./swarmmq-dev
#
# Environment: BASE_PORT (default 19000); SWARMMQ_BIN (default target/release/swarmmq,
# built with `cargo build --release` when missing).
#
# Layout (the same as `swarmmq dev`): node i listens on 127.0.0.1 with HTTP BASE+10i,
# client BASE+10i+1, internal (link + gossip) BASE+10i+2, gRPC BASE+10i+3; its config,
# log and data are DIR/node-i/{config.yaml,node.log,data}. One master key for all nodes
# is kept in DIR/master.key (mode 0600) and reused on the next start, like the data.
# When every node's /health answers 200, DIR/cluster.json lists each node's id, pid,
# client, http and internal addresses, data dir and log. Ctrl-C or SIGTERM stops every
# node by its PID (SIGTERM, then SIGKILL after 20 s); nothing is removed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N="${1:-5}"
DIR="${2:-swarmmq-dev}"
BASE="${BASE_PORT:-19000}"
CLUSTER=swarmmq-dev

[[ "$N" =~ ^[1-7]$ ]] || { echo "error: N must be 1 to 7, not $N" >&2; exit 2; }
[[ "$BASE" =~ ^[0-9]+$ ]] && (( BASE + N * 10 + 3 <= 65535 )) \
  || { echo "error: BASE_PORT $BASE leaves no room for $N nodes" >&2; exit 2; }

BIN="${SWARMMQ_BIN:-$ROOT/target/release/swarmmq}"
if [[ ! -x "$BIN" ]]; then
  echo "building $BIN ..." >&2
  (cd "$ROOT" && cargo build --release -p swarmmq-cli >&2)
fi

mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
KEY_FILE="$DIR/master.key"
if [[ ! -f "$KEY_FILE" ]]; then
  (umask 077 && head -c 32 /dev/urandom | base64 > "$KEY_FILE")
fi
KEY="$(tr -d '[:space:]' < "$KEY_FILE")"

port() { echo $(( BASE + $1 * 10 + $2 )); }   # node index, offset (0 http 1 client 2 internal 3 grpc)

# A port taken now would fail a node later with a less clear message.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for i in $(seq 1 "$N"); do
  for o in 0 1 2; do
    p="$(port "$i" "$o")"
    port_free "$p" || { echo "error: port $p (node-$i) is in use; set BASE_PORT or stop what holds it" >&2; exit 1; }
  done
done

for i in $(seq 1 "$N"); do
  d="$DIR/node-$i"; mkdir -p "$d"
  {
    echo "# Written by scripts/start-cluster.sh at every start; edits are overwritten."
    echo "node:"
    echo "  id: node-$i"
    echo "  bind: 127.0.0.1"
    echo "  port: $(port "$i" 1)"
    echo "  http_port: $(port "$i" 0)"
    echo "  grpc_port: $(port "$i" 3)"
    echo "cluster:"
    echo "  name: $CLUSTER"
    echo "  internal_port: $(port "$i" 2)"
    echo "  nodes:"
    for j in $(seq 1 "$N"); do
      echo "    - { id: node-$j, address: \"127.0.0.1:$(port "$j" 2)\" }"
    done
    echo "storage:"
    echo "  data_dir: \"$d/data\""
  } > "$d/config.yaml"
done

PIDS=()
stop() {
  trap - INT TERM EXIT
  echo "stopping ${#PIDS[@]} nodes ..." >&2
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 1 200); do
    left=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && left=1; done
    (( left == 0 )) && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "every node stopped" >&2
}
trap 'stop; exit 0' INT TERM
trap 'stop' EXIT

# The environment outranks the config file: only the log settings are passed on.
for i in $(seq 1 "$N"); do
  env $(env | sed -n 's/^\(SWARMMQ_[A-Z0-9_]*\)=.*/-u \1/p' | grep -v -e SWARMMQ_LOG_LEVEL -e SWARMMQ_LOG_FORMAT) \
    SWARMMQ_MASTER_KEY="$KEY" NO_COLOR=1 \
    "$BIN" node --config "$DIR/node-$i/config.yaml" >> "$DIR/node-$i/node.log" 2>&1 &
  PIDS+=("$!")
done

health() {   # prints the HTTP status of GET /health on port $1
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  head -n 1 <&3 | cut -d' ' -f2
  exec 3<&-
}
deadline=$(( SECONDS + 60 ))
for i in $(seq 1 "$N"); do
  until [[ "$(health "$(port "$i" 0)" 2>/dev/null)" == 200 ]]; do
    if ! kill -0 "${PIDS[$((i - 1))]}" 2>/dev/null; then
      echo "--- last lines of $DIR/node-$i/node.log ---" >&2
      tail -n 20 "$DIR/node-$i/node.log" >&2
      echo "error: node-$i exited during startup" >&2
      exit 1
    fi
    (( SECONDS < deadline )) || { echo "error: node-$i not healthy after 60 s" >&2; exit 1; }
    sleep 0.1
  done
done

{
  echo "{"
  echo "  \"cluster\": \"$CLUSTER\","
  echo "  \"dir\": \"$DIR\","
  echo "  \"master_key_file\": \"$KEY_FILE\","
  echo "  \"nodes\": ["
  for i in $(seq 1 "$N"); do
    sep=","; (( i == N )) && sep=""
    echo "    {\"id\": \"node-$i\", \"pid\": ${PIDS[$((i - 1))]}, \"client\": \"127.0.0.1:$(port "$i" 1)\", \"http\": \"127.0.0.1:$(port "$i" 0)\", \"internal\": \"127.0.0.1:$(port "$i" 2)\", \"data_dir\": \"$DIR/node-$i/data\", \"config\": \"$DIR/node-$i/config.yaml\", \"log\": \"$DIR/node-$i/node.log\"}$sep"
  done
  echo "  ]"
  echo "}"
} > "$DIR/cluster.json.tmp" && mv "$DIR/cluster.json.tmp" "$DIR/cluster.json"

echo "$N nodes of cluster $CLUSTER are up in $DIR"
for i in $(seq 1 "$N"); do
  echo "  node-$i  client 127.0.0.1:$(port "$i" 1)  http 127.0.0.1:$(port "$i" 0)  internal 127.0.0.1:$(port "$i" 2)  pid ${PIDS[$((i - 1))]}"
done
echo "Reach it with:"
echo "  export SWARMMQ_NODE=127.0.0.1:$(port 1 1)"
echo "  $BIN cluster status"
echo "For scripts: $DIR/cluster.json; Ctrl-C stops every node (the data stays)."

# Wait until a signal (the trap stops the nodes) or until every node has exited.
while :; do
  left=0
  for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && left=1; done
  (( left == 1 )) || { echo "every node exited" >&2; trap - EXIT; exit 1; }
  sleep 1 &
  wait $! || true
done
