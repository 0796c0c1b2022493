#!/usr/bin/env bash
# A rehearsal across hosts on one machine (issue 28): every process in a
# network namespace of its own, with an address of its own on a bridge
# the script makes (and removes, with the namespaces, when it ends):
#
#   10.88.1.1-3   a Redis Cluster of three masters (redis-server, port 6379)
#   10.88.2.1-5   five `wsreactor serve --broker redis+cluster://...` nodes
#   10.88.3.1-5   five `wsreactor load` processes, one per node
#
# Each load process opens CONNS WebSocket connections to its node, each
# subscribed (wsreactor.mux) to the same K channels (`rehearsal.0` ..
# `rehearsal.K-1`, spread over the masters by their slots): 5 x CONNS x K
# subscribers in all (the defaults: 5 x 10,000 x 2 = 100,000; a process
# may hold 20,000 descriptors here, so no node could hold 20,000
# connections). The first load process publishes RATE messages a second
# for DURATION, to each channel in turn, through its node; the others only
# subscribe (--observe) and measure the same messages. Needs root (ip
# netns). A bench script, not a test.
#
#   sudo bash benches/rehearsal.sh
#   CONNS=2000 K=2 DURATION=10s bash benches/rehearsal.sh
#
# It checks and prints: every subscriber of every process got every
# accepted message once and in order per channel; publish-to-receive
# latency per process; memory per subscriber (the nodes' RSS growth over
# the subscribers, and each Redis's RSS).
# Every process it starts is stopped by its pid. Exit status: 0 when every
# check holds, 1 otherwise, 2 on a setup error.
set -euo pipefail

BIN=$(realpath "${BIN:-target/release/wsreactor}")
REDIS_SERVER=${REDIS_SERVER:-redis-server}
CONNS=${CONNS:-10000}
K=${K:-2}
RATE=${RATE:-1}
SIZE=${SIZE:-64}
DURATION=${DURATION:-30s}
CONNECT_RATE=${CONNECT_RATE:-2500}
NODES=5
MASTERS=3

[ -x "$BIN" ] || { echo "no $BIN: cargo build --release first" >&2; exit 2; }
command -v "$REDIS_SERVER" >/dev/null || { echo "no $REDIS_SERVER (Debian: apt-get install redis-server)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "network namespaces need root" >&2; exit 2; }
work=$(mktemp -d)
tag="wr$$"
bridge="${tag}br"
pids=()
namespaces=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    ip link del "$bridge" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

ip link add "$bridge" type bridge
ip addr add 10.88.0.1/16 dev "$bridge"
ip link set "$bridge" up
host() { # name, address: a namespace on the bridge
    local ns="${tag}$1"
    ip netns add "$ns"
    namespaces+=("$ns")
    ip link add "${tag}v$1" type veth peer name eth0 netns "$ns"
    ip link set "${tag}v$1" master "$bridge" up
    ip -n "$ns" addr add "$2/16" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
}
wait_for() { # URL, seconds
    for _ in $(seq $(($2 * 10))); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done
    return 1
}
rss_kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
open_ws() { # node index -> open WebSocket connections, from /metrics
    curl -sf "http://10.88.2.$(($1 + 1)):8080/metrics" |
        awk '/^wsreactor_connections\{.*transport="websocket"\}/ { n += $2 } END { print n + 0 }'
}

# The cluster.
redis_pids=()
seeds=()
for m in $(seq 1 $MASTERS); do
    host "r$m" "10.88.1.$m"
    # Started by `ip netns exec` itself (it execs): $! is the process.
    ip netns exec "${tag}r$m" "$REDIS_SERVER" --bind "10.88.1.$m" --port 6379 --protected-mode no --save '' --appendonly no \
        --dir "$work" --dbfilename "dump-r$m.rdb" --cluster-enabled yes --cluster-config-file "nodes-r$m.conf" \
        --cluster-node-timeout 5000 >"$work/redis-r$m.log" 2>&1 &
    redis_pids+=($!)
    pids+=($!)
    seeds+=("10.88.1.$m:6379")
done
for m in $(seq 1 $MASTERS); do
    for _ in $(seq 100); do redis-cli -h "10.88.1.$m" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
done
redis-cli --cluster create "${seeds[@]}" --cluster-replicas 0 --cluster-yes >"$work/create.log" 2>&1 ||
    { echo "redis-cli --cluster create failed" >&2; cat "$work/create.log" >&2; exit 2; }
for m in $(seq 1 $MASTERS); do
    for _ in $(seq 300); do redis-cli -h "10.88.1.$m" cluster info | grep -q cluster_state:ok && break; sleep 0.1; done
done
broker="redis+cluster://$(IFS=,; echo "${seeds[*]}")"

# The nodes.
node_pids=()
for i in $(seq 0 $((NODES - 1))); do
    host "n$i" "10.88.2.$((i + 1))"
    ip netns exec "${tag}n$i" "$BIN" serve --bind "10.88.2.$((i + 1)):8080" --threads 1 --broker "$broker" >"$work/node$i.log" 2>&1 &
    node_pids[i]=$!
    pids+=($!)
done
for i in $(seq 0 $((NODES - 1))); do
    wait_for "http://10.88.2.$((i + 1)):8080/readyz" 20 ||
        { echo "node $i did not start" >&2; cat "$work/node$i.log" >&2; exit 2; }
done
sleep 1
rss_before=0
for pid in "${node_pids[@]}"; do rss_before=$((rss_before + $(rss_kib "$pid" VmRSS))); done
redis_before=0
for pid in "${redis_pids[@]}"; do redis_before=$((redis_before + $(rss_kib "$pid" VmRSS))); done

# The subscribers: observers on nodes 1..4 first, then the publishing run.
load_args=(--mode subscribe --channel rehearsal --channels-per-connection "$K" --connections "$CONNS"
    --connect-rate "$CONNECT_RATE" --size "$SIZE" --publishers 1 --quiet)
observer_pids=()
for i in $(seq 1 $((NODES - 1))); do
    host "l$i" "10.88.3.$((i + 1))"
    ip netns exec "${tag}l$i" "$BIN" load --url "ws://10.88.2.$((i + 1)):8080/ws" "${load_args[@]}" --timeout 10s --observe \
        --duration 1h --json "$work/observer$i.json" >"$work/observer$i.out" 2>&1 &
    observer_pids+=($!)
    pids+=($!)
done
want=$(((NODES - 1) * CONNS))
t0=$(date +%s)
last=-1 still=0
while :; do
    have=0
    for i in $(seq 1 $((NODES - 1))); do have=$((have + $(open_ws "$i"))); done
    [ "$have" -ge "$want" ] && break
    for i in "${!observer_pids[@]}"; do
        kill -0 "${observer_pids[i]}" 2>/dev/null || { echo "observer $((i + 1)) exited:" >&2; cat "$work/observer$((i + 1)).out" >&2; exit 2; }
    done
    if [ "$have" -eq "$last" ]; then still=$((still + 1)); else still=0; fi
    last=$have
    [ "$still" -lt 10 ] || break
    [ $(($(date +%s) - t0)) -lt 300 ] || { echo "only $have of $want observer connections open" >&2; exit 1; }
    sleep 1
done
echo "observers: $have of $want connections open on nodes 1..$((NODES - 1)) after $(($(date +%s) - t0)) s"

host "l0" "10.88.3.1"
ip netns exec "${tag}l0" "$BIN" load --url "ws://10.88.2.1:8080/ws" "${load_args[@]}" --timeout 10s --rate "$RATE" \
    --duration "$DURATION" --json "$work/publisher.json" >"$work/publisher.out" 2>&1 &
publisher_pid=$!
pids+=("$publisher_pid")
while [ "$(open_ws 0)" -lt "$CONNS" ]; do
    kill -0 "$publisher_pid" 2>/dev/null || break
    sleep 0.5
done
sleep 2
rss_after=0
for pid in "${node_pids[@]}"; do rss_after=$((rss_after + $(rss_kib "$pid" VmRSS))); done
redis_after=0
for pid in "${redis_pids[@]}"; do redis_after=$((redis_after + $(rss_kib "$pid" VmRSS))); done
total=0
for i in $(seq 0 $((NODES - 1))); do total=$((total + $(open_ws "$i"))); done
echo "all: $total connections open on $NODES nodes, $((total * K)) subscribers"

status=0
wait "$publisher_pid" || status=1
sleep 2
for pid in "${observer_pids[@]}"; do
    kill -INT "$pid" 2>/dev/null || true
    rc=0
    wait "$pid" || rc=$?
    [ "$rc" = 0 ] || [ "$rc" = 130 ] || status=1
done
cat "$work/publisher.out"

python3 - "$work" "$NODES" "$K" "$total" "$rss_before" "$rss_after" "$redis_before" "$redis_after" "$status" <<'EOF'
import json, sys, os
work, nodes, k, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rss0, rss1, r0, r1, status = map(int, sys.argv[5:10])
runs = [("publisher", json.load(open(os.path.join(work, "publisher.json"))))]
runs += [(f"observer{i}", json.load(open(os.path.join(work, f"observer{i}.json")))) for i in range(1, nodes)]
accepted = runs[0][1]["subscribe"]["published"]["accepted"]
ok = status == 0 and accepted > 0
subscribers = 0
print(f"\n| process | failed to connect | subscribers | messages | deliveries | missing | duplicate | out of order | p50 ms | p99 ms | max ms | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for name, r in runs:
    s, lat = r["subscribe"], r["latency_us"]
    d, seen = s["deliveries"], s["published"]["accepted"]
    subs = d["subscribers"] * k
    subscribers += subs
    good = (r["connections"]["failed"] == 0 and seen == accepted and d["missing"] == 0 and d["duplicates"] == 0
            and d["out_of_order"] == 0 and d["complete_subscribers"] == d["subscribers"]
            and d["received"] == seen * d["subscribers"] and r["errors"]["total"] == 0)
    ok = ok and good
    print(f"| {name} | {r['connections']['failed']} | {subs:,} | {seen} | {d['received']:,} | {d['missing']} | "
          f"{d['duplicates']} | {d['out_of_order']} | {lat['p50']/1000:.1f} | {lat['p99']/1000:.1f} | "
          f"{lat['max']/1000:.1f} | {r['errors']['total']} |")
for name, r in runs:
    if r["errors"]["total"]:
        kinds = {key: v for key, v in r["errors"].items() if key != "total" and v}
        print(f"{name} errors: {json.dumps(kinds)}")
p50 = max(r["latency_us"]["p50"] for _, r in runs) / 1000
p99 = max(r["latency_us"]["p99"] for _, r in runs) / 1000
n = max(subscribers, 1)
print(f"\n{nodes} nodes on a 3-master cluster, {subscribers:,} subscribers ({total:,} connections x {k} channels), "
      f"{accepted} messages accepted: every subscriber every message: {'yes' if ok else 'NO'}")
print(f"publish to receive (from schedule), worst process: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
print(f"memory per subscriber: the nodes' VmRSS {(rss1 - rss0) * 1024 / n:,.0f} B "
      f"({(rss1 - rss0) * 1024 / max(total, 1):,.0f} B per connection), {rss1 / 1024:,.0f} MiB in all; "
      f"the three Redis {r1 / 1024:,.1f} MiB in all")
sys.exit(0 if ok else 1)
EOF
