#!/usr/bin/env bash
# How evenly SO_REUSEPORT spreads work over the server's workers (issue 6):
# `wsreactor serve --threads 2` (no pinning) on a free loopback port, then for
# each N in COUNTS, `wsreactor load --mode echo --connections N` at RATE_PER
# messages per second per connection for DURATION, and, while the
# connections are held, the per-worker connection and message counts from
# /metrics. Prints one line per N with each worker's figures and the busiest
# worker's share over the least busy one's (the target is at most 1.3).
#
#   bash benches/fairness.sh                       # COUNTS="100 10000"
#   COUNTS="100 1000 10000" THREADS=2 bash benches/fairness.sh
#
# Exit status 0 when every ratio is at most MAX_RATIO (1.3), 1 otherwise,
# 2 on a setup error. The server is stopped by its pid.
set -euo pipefail

BIN=${BIN:-target/release/wsreactor}
COUNTS=${COUNTS:-"100 10000"}
THREADS=${THREADS:-2}
DURATION=${DURATION:-5}
RATE_PER=${RATE_PER:-10}
MAX_RATIO=${MAX_RATIO:-1.3}

[ -x "$BIN" ] || { echo "fairness.sh: build first (cargo build --release): $BIN" >&2; exit 2; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$BIN" serve --bind "127.0.0.1:$port" --threads "$THREADS" >/dev/null 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
done

# metric NAME: "worker value" lines of a per-worker counter or gauge
# (summed over its other labels).
metric() {
    curl -s "http://127.0.0.1:$port/metrics" |
        awk -v name="$1" '$1 ~ "^"name"\\{" {
            match($1, /worker="[0-9]+"/); w = substr($1, RSTART + 8, RLENGTH - 9); sum[w] += $2
        } END { for (w in sum) print w, sum[w] }' | sort -n
}

status=0
for n in $COUNTS; do
    before=$(metric wsreactor_messages_received_total)
    "$BIN" load --url "ws://127.0.0.1:$port/" --connections "$n" --connect-rate 5000 \
        --rate $((n * RATE_PER)) --duration "$((DURATION + 2))s" --size 20 --text --quiet \
        --source-ips 127.0.0.1-127.0.0.4 >/dev/null 2>&1 &
    load=$!
    # Sample while the connections are held: after the ramp, before the end.
    sleep $((n / 5000 + DURATION / 2 + 2))
    conns=$(metric 'wsreactor_connections' | awk '{print}')
    wait $load || true
    after=$(metric wsreactor_messages_received_total)
    python3 - "$n" "$MAX_RATIO" "$conns" "$before" "$after" <<'PY' || status=1
import sys
n, limit = int(sys.argv[1]), float(sys.argv[2])
parse = lambda text: {int(w): float(v) for w, v in (l.split() for l in text.splitlines() if l.strip())}
conns, before, after = parse(sys.argv[3]), parse(sys.argv[4]), parse(sys.argv[5])
msgs = {w: after[w] - before.get(w, 0) for w in after}
ratio = lambda d: max(d.values()) / max(min(d.values()), 1)
rc, rm = ratio(conns), ratio(msgs)
fmt = lambda d: " / ".join(f"{d[w]:,.0f}" for w in sorted(d))
print(f"{n:>6} connections: per worker {fmt(conns)} (busiest / least {rc:.2f}); "
      f"messages {fmt(msgs)} ({rm:.2f})")
sys.exit(0 if max(rc, rm) <= limit else 1)
PY
done
exit $status
