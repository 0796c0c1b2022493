#!/usr/bin/env bash
# The cost of `[pubsub] broker_replicas` (issue 28): a Redis master with
# REPLICAS replicas, and two `wsreactor serve` nodes on it, one with
# broker_replicas = 0 (a publish is answered once the master has it) and
# one with broker_replicas = 1 (once a replica has it too, by WAIT). In
# each of ROUNDS rounds, `wsreactor load` runs the same subscribe load
# (SUBS WebSocket subscribers, RATE publishes a second for DURATION) on
# each node in turn, the order swapped every round; it prints each run and
# the medians side by side: publish round trip (POST to answer) p50 and
# p99, and publish-to-delivery p50 and p99. A bench script, not a test.
#
#   bash benches/redis_durability.sh
#   ROUNDS=5 RATE=2000 bash benches/redis_durability.sh
#
# Everything is on loopback; every process it starts is stopped by its pid.
# Exit status: 0 when every run delivered every accepted message, 1
# otherwise, 2 on a setup error.
set -euo pipefail

BIN=${BIN:-target/release/wsreactor}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REPLICAS=${REPLICAS:-1}
ROUNDS=${ROUNDS:-3}
SUBS=${SUBS:-100}
RATE=${RATE:-1000}
DURATION=${DURATION:-10s}

[ -x "$BIN" ] || { echo "no $BIN: cargo build --release first" >&2; exit 2; }
command -v "$REDIS_SERVER" >/dev/null || { echo "no $REDIS_SERVER (Debian: apt-get install redis-server)" >&2; exit 2; }
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # URL, seconds
    for _ in $(seq $(($2 * 10))); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done
    return 1
}
start_redis() { # port, extra arguments...
    local port=$1
    shift
    "$REDIS_SERVER" --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$work" \
        --dbfilename "dump-$port.rdb" "$@" >"$work/redis-$port.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0; sleep 0.1; done
    echo "redis-server did not start on $port" >&2
    exit 2
}

master=$(free_port)
start_redis "$master"
for _ in $(seq "$REPLICAS"); do
    start_redis "$(free_port)" --replicaof 127.0.0.1 "$master"
done
for _ in $(seq 100); do
    n=$(redis-cli -p "$master" info replication | awk -F: '/^connected_slaves:/ { print $2 + 0 }')
    [ "${n:-0}" -ge "$REPLICAS" ] && break
    sleep 0.1
done
broker="redis://127.0.0.1:$master/0"

ports=()
for replicas in 0 1; do
    port=$(free_port)
    printf '[pubsub]\nbroker_replicas = %s\nbroker_replicas_timeout = "1s"\n' "$replicas" >"$work/node$replicas.toml"
    "$BIN" serve --config "$work/node$replicas.toml" --bind "127.0.0.1:$port" --threads 1 --broker "$broker" \
        >"$work/node$replicas.log" 2>&1 &
    pids+=($!)
    ports[replicas]=$port
done
for replicas in 0 1; do
    wait_for "http://127.0.0.1:${ports[replicas]}/readyz" 10 ||
        { echo "node $replicas did not start" >&2; cat "$work/node$replicas.log" >&2; exit 2; }
done

for round in $(seq "$ROUNDS"); do
    order="0 1"
    [ $((round % 2)) -eq 0 ] && order="1 0"
    for replicas in $order; do
        "$BIN" load --mode subscribe --url "ws://127.0.0.1:${ports[replicas]}/ws/durability$round" \
            --connections "$SUBS" --rate "$RATE" --duration "$DURATION" --publishers 4 --quiet \
            --json "$work/run-$replicas-$round.json" >"$work/run-$replicas-$round.out" 2>&1 || true
    done
done

python3 - "$work" "$ROUNDS" "$REPLICAS" "$SUBS" "$RATE" "$DURATION" <<'EOF'
import json, os, statistics, sys
work, rounds, replicas, subs, rate, duration = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
ok = True
cols = {}
print(f"redis master + {replicas} replica(s); {subs} subscribers, {rate} publishes/s for {duration}, {rounds} rounds")
print(f"{'broker_replicas':>15} {'round':>5} {'accepted':>9} {'missing':>8} {'pub p50':>8} {'pub p99':>8} {'dlv p50':>8} {'dlv p99':>8}  (ms)")
for r in (0, 1):
    for n in range(1, rounds + 1):
        path = os.path.join(work, f"run-{r}-{n}.json")
        if not os.path.exists(path):
            print(f"{r:>15} {n:>5} no result: {open(os.path.join(work, f'run-{r}-{n}.out')).read()[-400:]}")
            ok = False
            continue
        d = json.load(open(path))
        s = d["subscribe"]
        pub, dlv = s["publish_us"], d["latency_us"]
        missing = s["deliveries"]["missing"] + s["deliveries"]["duplicates"] + s["deliveries"]["out_of_order"]
        ok &= missing == 0 and s["published"]["accepted"] > 0
        row = (pub["p50"] / 1e3, pub["p99"] / 1e3, dlv["p50"] / 1e3, dlv["p99"] / 1e3)
        cols.setdefault(r, []).append(row)
        print(f"{r:>15} {n:>5} {s['published']['accepted']:>9} {missing:>8} " + " ".join(f"{v:>8.3f}" for v in row))
if len(cols) == 2:
    med = {r: [statistics.median(c[i] for c in cols[r]) for i in range(4)] for r in cols}
    print("medians:")
    for r in (0, 1):
        print(f"{r:>15} {'':>5} {'':>9} {'':>8} " + " ".join(f"{v:>8.3f}" for v in med[r]))
    print("ratio 1/0:" + " " * 27 + " ".join(f"{b / a:>8.2f}" if a else "       -" for a, b in zip(med[0], med[1])))
sys.exit(0 if ok else 1)
EOF
