#!/usr/bin/env bash
# bench-ab.sh OLD_BINARY NEW_BINARY [ROUNDS]: two builds of swarmmq side by side, alternating
# on fresh nodes: `bench produce --count 1000000` (1 KiB), then `bench consume --mode
# ordered` of the same data while it is warm. Prints one line per build and round.
# Build an older commit with: git worktree add /tmp/old <commit> && (cd /tmp/old &&
# cargo build --release -p swarmmq-cli). Runs on 127.0.0.1; nodes are stopped by PID.
set -euo pipefail
OLD="$1"; NEW="$2"; R="${3:-3}"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
rate() { python3 -c 'import json,sys; print(round(json.load(sys.stdin)["msgs_per_sec"]))'; }
D="$(mktemp -d)"; N=""
trap '[[ -n "$N" ]] && kill -TERM "$N" 2>/dev/null; rm -rf "$D"' EXIT
for r in $(seq "$R"); do
  for v in old new; do
    B="$OLD"; [[ $v == new ]] && B="$NEW"
    port=$(free_port); http=$(free_port); rm -rf "$D/data"
    SWARMMQ_LOG_LEVEL=warn "$B" node --data-dir "$D/data" --port "$port" --http-port "$http" >"$D/node.log" 2>&1 &
    N=$!; sleep 1
    p=$(timeout 120 "$B" bench produce --node "127.0.0.1:$port" -d p --count 1000000 --json --quiet | rate)
    timeout 120 "$B" bench consume --node "127.0.0.1:$port" -d p --count 1000000 --json --quiet >/dev/null
    c=$(timeout 120 "$B" bench consume --node "127.0.0.1:$port" -d p --count 1000000 --mode ordered --json --quiet | rate)
    echo "round $r $v produce $p consume_ordered_warm $c load $(cut -d' ' -f1 /proc/loadavg)"
    kill -TERM "$N"; wait "$N" || true; N=""
  done
done
