#!/usr/bin/env bash
# Memory per idle connection, TLS against plain TCP (issue 15): N
# WebSocket connections opened by `wsreactor load --mode connect` and held
# idle, to `wsreactor serve` once plain and once with --tls-cert/--tls-key
# (a certificate made for the run with openssl), in interleaved rounds. The
# server's VmRSS and RssAnon are read before the connections open and
# while they are held; the difference over N is the figure. A bench
# script, not a test.
#
#   bash benches/tls_idle.sh                  # 10,000 connections, 3 rounds
#   N=2000 ROUNDS=1 bash benches/tls_idle.sh
#
# Loopback only; every process it starts is stopped by its pid. Exit
# status: 0 when every connection opened in every run, 1 otherwise, 2 on a
# setup error.
set -euo pipefail

BIN=${BIN:-target/release/wsreactor}
N=${N:-10000}
ROUNDS=${ROUNDS:-3}
HOLD=${HOLD:-12s}
CONNECT_RATE=${CONNECT_RATE:-4000}

[ -x "$BIN" ] || { echo "no $BIN: cargo build --release first" >&2; exit 2; }
command -v openssl >/dev/null || { echo "openssl is needed to make the test certificate" >&2; exit 2; }
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# An authority and a certificate for 127.0.0.1 it signed (rustls takes no
# self-signed authority as the server's own certificate).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=bench CA" \
    -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$work/key.pem" -out "$work/req.pem" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$work/ext"
openssl x509 -req -in "$work/req.pem" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 1 \
    -extfile "$work/ext" -out "$work/cert.pem" 2>/dev/null

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
rss_kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }

# One measurement: prints "VmRSS-bytes-per-connection RssAnon-bytes-per-connection opened".
measure() { # kind
    local kind=$1 port scheme args=() server load_pid
    port=$(free_port)
    if [ "$kind" = tls ]; then
        scheme=wss
        args=(--tls-cert "$work/cert.pem" --tls-key "$work/key.pem")
    else
        scheme=ws
    fi
    "$BIN" serve --bind "127.0.0.1:$port" --threads 1 "${args[@]}" >"$work/serve-$kind.log" 2>&1 &
    server=$!
    pids+=("$server")
    for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    # Warm up: what a fresh server does once (code paged in, the pool) is
    # not counted per connection.
    "$BIN" load --url "$scheme://127.0.0.1:$port/" --insecure --mode connect --connections 200 \
        --connect-rate 0 --duration 1s --quiet >/dev/null 2>&1 || true
    sleep 1
    local rss0 anon0 rss1 anon1
    rss0=$(rss_kib "$server" VmRSS)
    anon0=$(rss_kib "$server" RssAnon)
    "$BIN" load --url "$scheme://127.0.0.1:$port/" --insecure --mode connect --connections "$N" \
        --connect-rate "$CONNECT_RATE" --duration "$HOLD" --json "$work/load-$kind.json" --quiet \
        >"$work/load-$kind.out" 2>&1 &
    load_pid=$!
    pids+=("$load_pid")
    # Read while held: after the ramp and a settle.
    local ramp
    ramp=$(python3 -c "print($N / $CONNECT_RATE + 4)")
    sleep "$ramp"
    rss1=$(rss_kib "$server" VmRSS)
    anon1=$(rss_kib "$server" RssAnon)
    wait "$load_pid" || true
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    local opened
    opened=$(python3 -c "import json; print(json.load(open('$work/load-$kind.json'))['connections']['opened'])")
    python3 -c "print(($rss1 - $rss0) * 1024 / $N, ($anon1 - $anon0) * 1024 / $N, $opened)"
}

results="$work/results"
: >"$results"
for round in $(seq "$ROUNDS"); do
    order="plain tls"
    [ $((round % 2)) -eq 0 ] && order="tls plain"
    for kind in $order; do
        line=$(measure "$kind")
        echo "round $round $kind: $line (VmRSS B/conn, RssAnon B/conn, opened)"
        echo "$kind $line" >>"$results"
    done
done

python3 - "$results" "$N" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
n = int(sys.argv[2])
ok = True
print(f"\n| transport | rounds | VmRSS per idle connection | RssAnon per idle connection |")
print("|---|---:|---:|---:|")
med = {}
for kind in ("plain", "tls"):
    rs = [r for r in rows if r[0] == kind]
    ok = ok and all(int(r[3]) == n for r in rs)
    rss = statistics.median(float(r[1]) for r in rs)
    anon = statistics.median(float(r[2]) for r in rs)
    med[kind] = rss
    print(f"| {kind} | {len(rs)} | {rss:,.0f} B | {anon:,.0f} B |")
if med.get("plain"):
    print(f"\nTLS / plain: {med['tls'] / med['plain']:.1f}x ({n:,} connections each; medians)")
print("every connection opened" if ok else "SOME CONNECTIONS FAILED")
sys.exit(0 if ok else 1)
EOF
