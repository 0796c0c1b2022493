#!/usr/bin/env bash
# Several nodes on one Redis (issue 14): NODES `wsreactor serve` processes,
# each its own process under its own descriptor limit, share one channel
# through one `redis-server`; PER_NODE WebSocket subscribers of that one
# channel on each node, opened by one `wsreactor load` process per node
# (each from its own loopback source addresses, --source-ips). One of them
# publishes RATE messages per second for DURATION; the others only
# subscribe (--observe) and measure the same messages. The on-machine
# rehearsal of "more machines, more subscribers". A bench script, not a
# test.
#
#   bash benches/redis_scale.sh                  # 5 nodes x 18,000 = 90,000 subscribers, 1/s for 30 s
#   NODES=2 PER_NODE=1000 DURATION=5s bash benches/redis_scale.sh
#
# What it checks and prints:
# - every subscriber of every process got every accepted message once and
#   in order (no missing, duplicate or out-of-order delivery; each
#   observer saw exactly as many messages as the publisher had accepted);
# - publish-to-receive latency per process (from the time each message was
#   due; payloads carry wall-clock times, so a subscriber in another
#   process measures it too), and the worst p50/p99 over the processes;
# - memory per subscriber once all are connected: the nodes' RSS (VmRSS,
#   RssAnon) over the subscribers, Redis's RSS, and the kernel's share
#   (Slab and TCP buffer pages from /proc/meminfo and /proc/net/sockstat,
#   after minus before; on loopback both ends of each connection are this
#   machine's, so that figure counts the client's socket too).
#
# Everything is on loopback; every process it starts is stopped by its pid.
# Exit status: 0 when every check holds, 1 otherwise, 2 on a setup error.
set -euo pipefail

BIN=${BIN:-target/release/wsreactor}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
NODES=${NODES:-5}
PER_NODE=${PER_NODE:-18000}
RATE=${RATE:-1}
SIZE=${SIZE:-64}
DURATION=${DURATION:-30s}
CONNECT_RATE=${CONNECT_RATE:-3000}
CHANNEL=${CHANNEL:-scale}

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
rss_kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
kernel_kib() { # Slab + TCP buffer pages, KiB
    local slab pages
    slab=$(awk '$1 == "Slab:" { print $2 }' /proc/meminfo)
    pages=$(awk '$1 == "TCP:" { for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat)
    echo $((slab + pages * $(getconf PAGESIZE) / 1024))
}
nodes_kib() { # VmRSS and RssAnon of all the nodes, KiB
    local rss=0 anon=0 pid
    for pid in "${node_pids[@]}"; do
        rss=$((rss + $(rss_kib "$pid" VmRSS)))
        anon=$((anon + $(rss_kib "$pid" RssAnon)))
    done
    echo "$rss $anon"
}
open_ws() { # node index -> open WebSocket connections, from /metrics
    curl -sf "http://127.0.0.1:${ports[$1]}/metrics" |
        awk '/^wsreactor_connections\{.*transport="websocket"\}/ { n += $2 } END { print n + 0 }'
}

redis_port=$(free_port)
"$REDIS_SERVER" --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --dir "$work" \
    --daemonize no >"$work/redis.log" 2>&1 &
redis_pid=$!
pids+=("$redis_pid")
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break; sleep 0.1; done
broker="redis://127.0.0.1:$redis_port/0"

ports=()
node_pids=()
for i in $(seq 0 $((NODES - 1))); do
    ports[i]=$(free_port)
    "$BIN" serve --bind "127.0.0.1:${ports[i]}" --threads 1 --broker "$broker" >"$work/node$i.log" 2>&1 &
    node_pids[i]=$!
    pids+=("${node_pids[i]}")
done
for i in $(seq 0 $((NODES - 1))); do
    wait_for "http://127.0.0.1:${ports[i]}/readyz" 10 || { echo "node $i did not start" >&2; cat "$work/node$i.log" >&2; exit 2; }
done
sleep 1
kernel_before=$(kernel_kib)
read -r rss_before anon_before <<<"$(nodes_kib)"
redis_before=$(rss_kib "$redis_pid" VmRSS)

# Each load process connects from its own loopback addresses.
sources() { echo "127.0.$(($1 + 1)).1-127.0.$(($1 + 1)).4"; }
load_args=(--mode subscribe --connections "$PER_NODE" --connect-rate "$CONNECT_RATE" --size "$SIZE"
    --publishers 1 --quiet)
observer_pids=()
for i in $(seq 1 $((NODES - 1))); do
    # Ended by SIGINT once the publishing run is done.
    # --timeout 10s: four ramps at once queue the subscribes (one Redis
    # read each) behind each node's one command connection.
    "$BIN" load --url "ws://127.0.0.1:${ports[i]}/ws/$CHANNEL" "${load_args[@]}" --timeout 10s --observe --duration 1h \
        --source-ips "$(sources "$i")" --json "$work/observer$i.json" >"$work/observer$i.out" 2>&1 &
    observer_pids+=($!)
    pids+=($!)
done
want=$(((NODES - 1) * PER_NODE))
t0=$(date +%s)
last=-1 still=0
while :; do
    have=0
    for i in $(seq 1 $((NODES - 1))); do have=$((have + $(open_ws "$i"))); done
    [ "$have" -ge "$want" ] && break
    for i in "${!observer_pids[@]}"; do
        kill -0 "${observer_pids[i]}" 2>/dev/null || { echo "observer $((i + 1)) exited:" >&2; cat "$work/observer$((i + 1)).out" >&2; exit 2; }
    done
    # Connections that failed are not tried again: go on once no more open
    # (the observers' reports name the failures, and the check fails).
    if [ "$have" -eq "$last" ]; then still=$((still + 1)); else still=0; fi
    last=$have
    [ "$still" -lt 10 ] || break
    [ $(($(date +%s) - t0)) -lt 300 ] || { echo "only $have of $want observers connected" >&2; exit 1; }
    sleep 1
done
echo "observers: $have of $want subscribers open on nodes 1..$((NODES - 1)) after $(($(date +%s) - t0)) s"

# The publishing run, on node 0, with its own subscribers.
"$BIN" load --url "ws://127.0.0.1:${ports[0]}/ws/$CHANNEL" "${load_args[@]}" --timeout 5s --rate "$RATE" --duration "$DURATION" \
    --source-ips "$(sources 0)" --json "$work/publisher.json" >"$work/publisher.out" 2>&1 &
publisher_pid=$!
pids+=("$publisher_pid")
while [ "$(open_ws 0)" -lt "$PER_NODE" ]; do
    kill -0 "$publisher_pid" 2>/dev/null || break
    sleep 0.5
done
sleep 2
kernel_after=$(kernel_kib)
read -r rss_after anon_after <<<"$(nodes_kib)"
redis_after=$(rss_kib "$redis_pid" VmRSS)
total=0
for i in $(seq 0 $((NODES - 1))); do total=$((total + $(open_ws "$i"))); done
echo "all: $total subscribers open on $NODES nodes"

status=0
wait "$publisher_pid" || status=1
sleep 2
# One after another: 72,000 close handshakes at once on two cores would
# time out (close_timeout is at most 2 s) for want of CPU, not of a server.
for pid in "${observer_pids[@]}"; do
    kill -INT "$pid" 2>/dev/null || true
    # Stopped by the signal, as meant: 130 (wsreactor load's exit status
    # for a run cut short); anything else is a failed run.
    rc=0
    wait "$pid" || rc=$?
    [ "$rc" = 0 ] || [ "$rc" = 130 ] || status=1
done
cat "$work/publisher.out"

python3 - "$work" "$NODES" "$total" "$rss_before" "$rss_after" "$anon_before" "$anon_after" \
    "$kernel_before" "$kernel_after" "$redis_before" "$redis_after" "$status" <<'EOF'
import json, sys, os
work, nodes, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rss0, rss1, anon0, anon1, k0, k1, r0, r1, status = map(int, sys.argv[4:13])
runs = [("publisher", json.load(open(os.path.join(work, "publisher.json"))))]
runs += [(f"observer{i}", json.load(open(os.path.join(work, f"observer{i}.json")))) for i in range(1, nodes)]
accepted = runs[0][1]["subscribe"]["published"]["accepted"]
ok = status == 0 and accepted > 0
subscribers = 0
print(f"\n| process | failed to connect | subscribers | messages | deliveries | missing | duplicate | out of order | complete | p50 ms | p99 ms | max ms | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for name, r in runs:
    s, lat = r["subscribe"], r["latency_us"]
    d, seen = s["deliveries"], s["published"]["accepted"]
    subscribers += d["subscribers"]
    good = (r["connections"]["failed"] == 0 and seen == accepted and d["missing"] == 0 and d["duplicates"] == 0 and d["out_of_order"] == 0
            and d["complete_subscribers"] == d["subscribers"] and d["received"] == seen * d["subscribers"]
            and r["errors"]["total"] == 0)
    ok = ok and good
    print(f"| {name} | {r['connections']['failed']} | {d['subscribers']:,} | {seen} | {d['received']:,} | {d['missing']} | {d['duplicates']} | "
          f"{d['out_of_order']} | {d['complete_subscribers']:,} | {lat['p50']/1000:.1f} | {lat['p99']/1000:.1f} | "
          f"{lat['max']/1000:.1f} | {r['errors']['total']} |")
for name, r in runs:
    if r["errors"]["total"]:
        kinds = {k: v for k, v in r["errors"].items() if k != "total" and v}
        print(f"{name} errors: {json.dumps(kinds)}")
p50 = max(r["latency_us"]["p50"] for _, r in runs) / 1000
p99 = max(r["latency_us"]["p99"] for _, r in runs) / 1000
n = max(subscribers, 1)
print(f"\n{nodes} nodes, {subscribers:,} subscribers ({total:,} open on the nodes at the peak), {accepted} messages accepted: "
      f"every subscriber every message: {'yes' if ok else 'NO'}")
print(f"publish to receive (from schedule), worst process: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
print(f"memory per subscriber: nodes' VmRSS {(rss1 - rss0) * 1024 / n:,.0f} B (RssAnon {(anon1 - anon0) * 1024 / n:,.0f} B), "
      f"all {nodes} nodes {rss1 / 1024:,.0f} MiB in all; Redis {r1 / 1024:,.1f} MiB ({(r1 - r0) * 1024 / n:,.1f} B per subscriber); "
      f"kernel (both ends of each loopback connection) {(k1 - k0) * 1024 / n:,.0f} B")
sys.exit(0 if ok else 1)
EOF
