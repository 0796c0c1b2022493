#!/usr/bin/env bash
# Fanout bench (issue 4): N WebSocket subscribers on one channel of
# `wsreactor serve`, SIZE-byte messages published over HTTP at a steady
# RATE; deliveries per second and publish-to-receive latency. A bench
# script, not a test.
#
#   bash benches/fanout.sh                     # 10,000 subscribers, 64 B, 100/s for 20 s
#   RATE=500 DURATION=30s bash benches/fanout.sh
#   bash benches/fanout.sh --publishers 1      # extra arguments go to wsreactor load
#
# It starts `$BIN serve` on a free loopback port and runs
#
#   $BIN load --url ws://127.0.0.1:PORT/ws/fanout --mode subscribe --connections N
#             --size SIZE --rate RATE --duration DURATION [extra arguments]
#
# Latency is from the time each message was due to be published (so a
# server that holds the publisher up is charged for it) to its arrival at a
# subscriber, over every delivery. Both programs raise their own descriptor
# soft limit; the server is stopped by its pid. Exit status: 0 when every
# subscriber got every accepted message and nothing failed, 1 otherwise,
# 2 on a setup error.
set -euo pipefail

BIN=${BIN:-target/release/wsreactor}
N=${N:-10000}
SIZE=${SIZE:-64}
RATE=${RATE:-100}
DURATION=${DURATION:-20s}
CONNECT_RATE=${CONNECT_RATE:-5000}
SERVER_THREADS=${SERVER_THREADS:-0}
SERVER_ARGS=${SERVER_ARGS:-}

[ -x "$BIN" ] || { echo "no $BIN: cargo build --release first" >&2; exit 2; }
work=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# shellcheck disable=SC2086 # SERVER_ARGS is a list of words
"$BIN" serve --bind "127.0.0.1:$port" --threads "$SERVER_THREADS" $SERVER_ARGS >"$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.1
done
curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || { echo "server did not start" >&2; cat "$work/serve.log" >&2; exit 2; }

# CPU seconds (user + system) the server has used so far.
server_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) / hz }' "/proc/$server_pid/stat"; }
cpu_before=$(server_cpu)
TIMEFORMAT="load generator: %R s wall, %U s user + %S s system CPU"
set -x
time "$BIN" load --url "ws://127.0.0.1:$port/ws/fanout" --mode subscribe --connections "$N" \
    --connect-rate "$CONNECT_RATE" --size "$SIZE" --rate "$RATE" --duration "$DURATION" \
    --json "$work/fanout.json" --quiet "$@"
{ set +x; } 2>/dev/null
echo "server: $(awk -v a="$cpu_before" -v b="$(server_cpu)" 'BEGIN { printf "%.1f", b - a }') s CPU during the run"

python3 - "$work/fanout.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
s, lat, e = r["subscribe"], r["latency_us"], r["errors"]
p, d = s["published"], s["deliveries"]
ms = lambda us: us / 1000
print(f"\nfanout: {d['subscribers']} subscribers, {r['messages']['size']} B at {p['rate']}/s for {r['time']['measured_s']:.1f} s: "
      f"{p['accepted']} published ({p['unsent']} due and unsent), {d['received']} of {d['expected']} deliveries, "
      f"{d['missing']} missing, {d['duplicates']} duplicate, {d['out_of_order']} out of order; "
      f"the server counted {p['subscribers_min']} to {p['subscribers_max']} subscribers per publish")
print(f"deliveries/s {d['per_second']:,.0f}; publish to receive (from schedule) p50 {ms(lat['p50']):.2f} ms, "
      f"p99 {ms(lat['p99']):.2f} ms, p99.9 {ms(lat['p99_9']):.2f} ms, max {ms(lat['max']):.2f} ms; "
      f"POST p50 {ms(s['publish_us']['p50']):.2f} ms, p99 {ms(s['publish_us']['p99']):.2f} ms; errors {e['total']}")
ok = e["total"] == 0 and d["missing"] == 0 and d["complete_subscribers"] == d["subscribers"] and not p["fell_behind"]
sys.exit(0 if ok else 1)
EOF
