#!/usr/bin/env bash
# Many concurrent connections between one `wsreactor load` and one
# `wsreactor serve` (issue 5, Must show 1). A bench script, not a test.
#
#   bash benches/connections.sh            # 19,000 connections from 127.0.0.1-127.0.0.4
#   N=5000 SOURCE_IPS=127.0.0.1-127.0.0.8 CONNECT_RATE=10000 bash benches/connections.sh
#
# It starts `$SERVER_BIN serve` (default: $BIN) on a free loopback port, then runs
#
#   $BIN load --mode echo --connections N --connect-rate CONNECT_RATE --rate N
#             --duration DURATION --source-ips SOURCE_IPS
#
# so every connection echoes once a second (at least once: DURATION >= 1s),
# and, while the N connections are held, checks ON THE SERVER SIDE (ss, the
# established sockets whose local port is the server's) that they come from
# at least MIN_SOURCES distinct addresses. It prints the connect rate
# (connections opened / ramp time, from the load generator's JSON), and
# the resident memory per held connection (VmRSS from /proc/PID/status):
#
#   server: (RSS with N held - RSS idle after a warm-up run) / N
#   client: (RSS with N held - RSS with N0 held) / (N - N0), two runs alike
#
# Neither program is given a limit: each raises its own descriptor soft
# limit to the hard one. Both processes are stopped by their pid. Exit
# status 0 when every connection opened and echoed with no error and the
# server saw enough source addresses, 1 otherwise, 2 on a setup error.
set -euo pipefail

BIN=${BIN:-target/release/wsreactor}
# The server measured (another build of it, say); the load generator is $BIN.
SERVER_BIN=${SERVER_BIN:-$BIN}
N=${N:-19000}
N0=${N0:-100}
SOURCE_IPS=${SOURCE_IPS:-127.0.0.1-127.0.0.4}
MIN_SOURCES=${MIN_SOURCES:-4}
CONNECT_RATE=${CONNECT_RATE:-5000}
DURATION=${DURATION:-10s}
SERVER_THREADS=${SERVER_THREADS:-0}
LOAD_THREADS=${LOAD_THREADS:-0}
# How long to wait for the N connections to be established.
HOLD_TIMEOUT=${HOLD_TIMEOUT:-120}

[ -x "$BIN" ] || { echo "no $BIN: cargo build --release first" >&2; exit 2; }
work=$(mktemp -d)
server_pid=""
load_pid=""
cleanup() {
    [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null || true
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
established() { ss -Htn state established "( sport = :$port )" | wc -l; }

"$SERVER_BIN" serve --bind "127.0.0.1:$port" --threads "$SERVER_THREADS" >"$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.1
done
curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || { echo "server did not start" >&2; cat "$work/serve.log" >&2; exit 2; }

# Start a load run of $1 connections in the background (sets load_pid).
start_load() {
    "$BIN" load --url "ws://127.0.0.1:$port/" --mode echo --connections "$1" \
        --connect-rate "$CONNECT_RATE" --rate "$1" --duration "$DURATION" \
        --source-ips "$SOURCE_IPS" --threads "$LOAD_THREADS" \
        --json "$work/load-$1.json" --quiet >"$work/load-$1.txt" 2>&1 &
    load_pid=$!
}

# Wait until the server holds $1 established connections; 1 on time-out.
wait_held() {
    local deadline=$((SECONDS + HOLD_TIMEOUT))
    while [ "$(established)" -lt "$1" ]; do
        [ "$SECONDS" -lt "$deadline" ] && kill -0 "$load_pid" 2>/dev/null || return 1
        sleep 0.2
    done
    sleep 1 # every connection echoes once a second: let each do one
}

finish_load() {
    wait "$load_pid" || { echo "load run failed:" >&2; cat "$work/load-$1.txt" >&2; exit 1; }
    load_pid=""
}

# Warm-up run with N0 connections: the client's baseline, and the server's
# pools and thread stacks touched before its baseline is read.
start_load "$N0"
wait_held "$N0" || { echo "the $N0-connection run never held them all" >&2; exit 1; }
client_small=$(rss_kb "$load_pid")
finish_load "$N0"
sleep 1
server_idle=$(rss_kb "$server_pid")

start_load "$N"
started=$SECONDS
held=ok
wait_held "$N" || held=no
server_held=$(rss_kb "$server_pid")
client_held=$(rss_kb "$load_pid")
ss -Htn state established "( sport = :$port )" >"$work/ss.txt"
finish_load "$N"

count=$(wc -l <"$work/ss.txt")
# Columns: Recv-Q Send-Q Local:Port Peer:Port; the peer without its port.
awk '{ sub(/:[0-9]+$/, "", $4); print $4 }' "$work/ss.txt" | sort | uniq -c | sort -k2 >"$work/peers.txt"
sources=$(wc -l <"$work/peers.txt")

sed -n '/^errors/,$p' "$work/load-$N.txt"
python3 - "$work/load-$N.json" "$N" "$N0" "$count" "$sources" "$MIN_SOURCES" "$held" \
    "$server_idle" "$server_held" "$client_small" "$client_held" "$work/peers.txt" <<'EOF'
import json, sys
path, n, n0, count, sources, min_sources, held = sys.argv[1:8]
server_idle, server_held, client_small, client_held = map(int, sys.argv[8:12])
n, n0, count, sources, min_sources = map(int, (n, n0, count, sources, min_sources))
r = json.load(open(path))
c, m, e, t, lat = r["connections"], r["messages"], r["errors"], r["time"], r["latency_us"]
rate = c["opened"] / t["ramp_s"] if t["ramp_s"] > 0 else float("inf")
print(f"wsreactor load --mode echo --connections {n}: {c['opened']} opened, {c['peak_open']} open at most, "
      f"ramp {t['ramp_s']:.2f} s: {rate:,.0f} connections/s")
print(f"echo: {m['sent']} sent, {m['received']} received over {t['measured_s']:.1f} s (rate {m['rate']:.0f}/s in all), "
      f"p50 {lat['p50'] / 1000:.2f} ms, p99 {lat['p99'] / 1000:.2f} ms, max {lat['max'] / 1000:.2f} ms from the schedule; "
      f"errors {e['total']}")
print(f"server side (ss): {count} established connections from {sources} distinct source addresses:")
for line in open(sys.argv[12]):
    k, ip = line.split()
    print(f"    {ip:<16}{int(k):>8}")
per = lambda a, b, k: (b - a) * 1024 / k
print(f"server RSS: {server_idle} kB idle, {server_held} kB with {n} held: "
      f"{per(server_idle, server_held, n):,.0f} bytes per connection")
print(f"client RSS: {client_small} kB with {n0} held, {client_held} kB with {n} held: "
      f"{per(client_small, client_held, n - n0):,.0f} bytes per connection")
ok = (held == "ok" and c["opened"] == n and e["total"] == 0 and m["received"] == m["sent"] >= n
      and count >= n and sources >= min_sources)
print("OK" if ok else "FAILED")
sys.exit(0 if ok else 1)
EOF
