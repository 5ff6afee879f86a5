#!/usr/bin/env bash
# capture-check.sh: a marker payload published and consumed over TLS must appear neither
# in a loopback packet capture nor in the data dir; without TLS (the control) the capture
# shows it. Needs tcpdump and the right to capture on `lo` (root or CAP_NET_RAW).
#
#   scripts/capture-check.sh [--no-build]
#
# Everything runs on 127.0.0.1 with free ports; every process is stopped by its PID.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ "${1:-}" == "--no-build" ]] || cargo build --release -p swarmmq-cli >/dev/null 2>&1
S="$ROOT/target/release/swarmmq"
command -v tcpdump >/dev/null || { echo "tcpdump not found (apt-get install tcpdump)" >&2; exit 2; }
WORK="$(mktemp -d)"; PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && kill -TERM "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
"$S" certs init --dir "$WORK/certs" >/dev/null

run() { # plain|tls -> prints "<mode> <marker hits in capture> <files in data dir with marker>"
  local mode="$1" port http marker data node dump
  port=$(free_port); http=$(free_port); marker="MARKER-$mode-$RANDOM$RANDOM"; data="$WORK/data-$mode"
  local tls_node=() tls_client=()
  if [[ $mode == tls ]]; then
    tls_node=(--tls-cert "$WORK/certs/node.pem" --tls-key "$WORK/certs/node.key")
    tls_client=(--tls-ca "$WORK/certs/ca.pem")
  fi
  tcpdump -i lo -U -w "$WORK/$mode.pcap" "tcp port $port or tcp port $http" >/dev/null 2>&1 &
  dump=$!; PIDS+=("$dump"); sleep 1
  SWARMMQ_LOG_LEVEL=warn "$S" node --data-dir "$data" --port "$port" --http-port "$http" "${tls_node[@]}" \
    >"$WORK/node-$mode.log" 2>&1 &
  node=$!; PIDS+=("$node"); sleep 1.5
  timeout 30 "$S" produce -n "127.0.0.1:$port" "${tls_client[@]}" -d cap -m "$marker"
  [[ "$(timeout 30 "$S" consume -n "127.0.0.1:$port" "${tls_client[@]}" -d cap)" == "$marker" ]]
  kill -TERM "$node"; wait "$node" || true
  sleep 0.5; kill -INT "$dump"; wait "$dump" || true
  echo "$mode $(grep -a -c "$marker" "$WORK/$mode.pcap" || true) $(grep -r -l -a "$marker" "$data" | wc -l)"
}

read -r _ plain_wire plain_disk < <(run plain)
read -r _ tls_wire tls_disk < <(run tls)
echo "plain (control): marker in capture $plain_wire time(s), in $plain_disk data-dir file(s)"
echo "tls:             marker in capture $tls_wire time(s), in $tls_disk data-dir file(s)"
[[ $plain_wire -ge 1 && $tls_wire -eq 0 && $plain_disk -eq 0 && $tls_disk -eq 0 ]] && echo PASS || { echo FAIL; exit 1; }
