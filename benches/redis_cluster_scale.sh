#!/usr/bin/env bash
# Redis Cluster's sharded pub/sub against one shard (issue 28): the same
# load on a cluster of one master (every slot) and on one of SHARDS
# masters, in the same run, interleaved. Each cluster has its own
# `wsreactor serve` node on it (--broker redis+cluster://); `wsreactor
# load` opens SUBS WebSocket connections to a node, each subscribed with
# wsreactor.mux to the same K channels (scale.0 .. scale.K-1, spread over
# the masters by their slots), and publishes to each channel in turn as
# fast as the publishes are answered (PUBLISHERS in flight). It prints, per
# run and as medians side by side: deliveries a second, publishes a
# second, publish p99 (POST to answer) and delivery p99. A bench script,
# not a test.
#
#   bash benches/redis_cluster_scale.sh
#   ROUNDS=5 SUBS=200 K=50 DURATION=10s bash benches/redis_cluster_scale.sh
#
# On one machine the node, the load generator and every Redis share its
# cores: what a second master buys here is bounded by them, not by Redis.
# Everything is on loopback; every process it starts is stopped by its pid.
# Exit status: 0 when every run delivered every accepted message, 1
# otherwise, 2 on a setup error.
set -euo pipefail

BIN=${BIN:-target/release/wsreactor}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
SHARDS=${SHARDS:-3}
ROUNDS=${ROUNDS:-3}
SUBS=${SUBS:-100}
K=${K:-100}
PUBLISHERS=${PUBLISHERS:-8}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-1}

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
cluster_node() { # port
    "$REDIS_SERVER" --bind 127.0.0.1 --port "$1" --save '' --appendonly no --dir "$work" \
        --cluster-enabled yes --cluster-config-file "nodes-$1.conf" --cluster-node-timeout 5000 \
        --cluster-require-full-coverage no >"$work/redis-$1.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do redis-cli -p "$1" ping 2>/dev/null | grep -q PONG && return 0; sleep 0.1; done
    echo "redis-server did not start on $1" >&2
    exit 2
}
make_cluster() { # masters; sets seed (not in a subshell: pids stays this shell's)
    local masters=$1 ports=() addrs=()
    for _ in $(seq "$masters"); do
        local p
        p=$(free_port)
        while [ "$p" -gt 55535 ]; do p=$(free_port); done # the cluster bus is the port + 10000
        cluster_node "$p"
        ports+=("$p")
        addrs+=("127.0.0.1:$p")
    done
    if [ "$masters" -eq 1 ]; then
        redis-cli -p "${ports[0]}" cluster addslotsrange 0 16383 >/dev/null
    else
        redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
    fi
    for p in "${ports[@]}"; do
        for _ in $(seq 300); do
            redis-cli -p "$p" cluster info | grep -q cluster_state:ok && break
            sleep 0.1
        done
    done
    seed=${ports[0]}
}

declare -A node_port
for shards in 1 "$SHARDS"; do
    make_cluster "$shards"
    port=$(free_port)
    "$BIN" serve --bind "127.0.0.1:$port" --threads "$THREADS" --broker "redis+cluster://127.0.0.1:$seed" \
        >"$work/node-$shards.log" 2>&1 &
    pids+=($!)
    wait_for "http://127.0.0.1:$port/readyz" 20 ||
        { echo "the node on $shards shard(s) did not start" >&2; cat "$work/node-$shards.log" >&2; exit 2; }
    node_port[$shards]=$port
done

for round in $(seq "$ROUNDS"); do
    order="1 $SHARDS"
    [ $((round % 2)) -eq 0 ] && order="$SHARDS 1"
    for shards in $order; do
        "$BIN" load --mode subscribe --url "ws://127.0.0.1:${node_port[$shards]}/ws" --channel "scale$round" \
            --channels-per-connection "$K" --connections "$SUBS" --publishers "$PUBLISHERS" \
            --duration "$DURATION" --quiet --json "$work/run-$shards-$round.json" \
            >"$work/run-$shards-$round.out" 2>&1 || true
    done
done

python3 - "$work" "$ROUNDS" "$SHARDS" "$SUBS" "$K" "$DURATION" <<'EOF'
import json, os, statistics, sys
work, rounds, shards, subs, k, duration = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
ok = True
cols = {}
print(f"{subs} WebSocket subscribers x {k} channels each (wsreactor.mux), publishing as fast as answered, {duration}, {rounds} rounds")
print(f"{'masters':>7} {'round':>5} {'deliveries/s':>13} {'publishes/s':>12} {'missing':>8} {'pub p99':>8} {'dlv p99':>8}  (ms)")
for s in (1, shards):
    for n in range(1, rounds + 1):
        path = os.path.join(work, f"run-{s}-{n}.json")
        if not os.path.exists(path):
            print(f"{s:>7} {n:>5} no result: {open(os.path.join(work, f'run-{s}-{n}.out')).read()[-400:]}")
            ok = False
            continue
        d = json.load(open(path))
        sub = d["subscribe"]
        dl = sub["deliveries"]
        missing = dl["missing"] + dl["duplicates"] + dl["out_of_order"]
        if missing:
            print(f"        {s} master(s), round {n}: {json.dumps(dl)}; {open(os.path.join(work, f'run-{s}-{n}.out')).read()[-600:]}")
        ok &= missing == 0 and sub["published"]["accepted"] > 0
        row = (dl["per_second"], sub["published"]["per_second"], sub["publish_us"]["p99"] / 1e3, d["latency_us"]["p99"] / 1e3)
        cols.setdefault(s, []).append(row)
        print(f"{s:>7} {n:>5} {row[0]:>13.0f} {row[1]:>12.0f} {missing:>8} {row[2]:>8.2f} {row[3]:>8.2f}")
if len(cols) == 2:
    med = {s: [statistics.median(c[i] for c in cols[s]) for i in range(4)] for s in cols}
    print("medians:")
    for s in (1, shards):
        m = med[s]
        print(f"{s:>7} {'':>5} {m[0]:>13.0f} {m[1]:>12.0f} {'':>8} {m[2]:>8.2f} {m[3]:>8.2f}")
    a, b = med[1], med[shards]
    print(f"ratio {shards}/1:    " + " ".join(f"{y / x:>12.2f}" if x else "           -" for x, y in zip(a, b)))
sys.exit(0 if ok else 1)
EOF
