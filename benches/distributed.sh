#!/usr/bin/env bash
# A distributed load run rehearsed on one machine (issue 29): AGENTS
# agents (`wsreactor load agent --coordinator redis://...`), each in a
# network namespace of its own with an address of its own, against one
# `wsreactor serve`, coordinated through a Redis of the script's own
# (`wsreactor load --coordinator ... --agents N`). The script makes the
# namespaces, a bridge and the veth pairs, and removes them (and stops
# what it started, by pid) however it ends. Needs root (ip netns).
#
#   sudo bash benches/distributed.sh                 # about 2 minutes
#   AGENTS=2 CONNECTIONS=4000 CHANNELS=1 sudo bash benches/distributed.sh
#
# 40,000 subscribers in all: CONNECTIONS (10,000) WebSocket connections,
# each subscribed to CHANNELS (4) channels at once (the wsreactor.mux
# subprotocol), so that the server holds 40,000 subscriptions on 10,000
# descriptors: one process may open 20,000 files on the machine this was
# written on (a hard limit root cannot raise there), below 40,000
# connections. CHANNELS=1 makes every subscriber a connection of its own.
#
# What it prints and checks (and writes under OUT): the merged report
# (report.json, the table in report.txt, the charts report.svg); each
# agent's own line (agent-N.json); the server's connections by peer
# address while the run holds them (one address per agent); that the
# report's agents are what each agent printed and that their sums are the
# run's; nothing missing. (That the run's percentiles are those of the
# agents' histograms added together, tests/load/distributed.rs checks on
# loopback in CI.)
#
# Knobs (defaults): AGENTS (4), CONNECTIONS (10000), CHANNELS (4), RATE
# (2 messages/s per channel), SIZE (64), DURATION (20s), CONNECT_RATE
# (4000/s in all), PORT (9411), REDIS_PORT (6411), SUBNET (10.77.0: the
# host is .1, agent i is .(10+i)), BIN (target/release/wsreactor), OUT
# (target/distributed).
set -euo pipefail
cd "$(dirname "$0")/.."

AGENTS=${AGENTS:-4}
CONNECTIONS=${CONNECTIONS:-10000}
CHANNELS=${CHANNELS:-4}
RATE=${RATE:-2}
SIZE=${SIZE:-64}
DURATION=${DURATION:-20s}
CONNECT_RATE=${CONNECT_RATE:-4000}
PORT=${PORT:-9411}
REDIS_PORT=${REDIS_PORT:-6411}
SUBNET=${SUBNET:-10.77.0}
BIN=${BIN:-target/release/wsreactor}
OUT=${OUT:-target/distributed}
HOST="$SUBNET.1"
BRIDGE=wsrd-br0
NS=wsrd-agent

if [ "$(id -u)" != 0 ]; then
    echo "benches/distributed.sh: needs root (ip netns)" >&2
    exit 2
fi
command -v redis-server >/dev/null || apt-get install -y redis-server >/dev/null
[ -x "$BIN" ] || cargo build --release --quiet
mkdir -p "$OUT"
rm -f "$OUT"/agent-*.json "$OUT"/agent-*.log

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for i in $(seq 0 $((AGENTS - 1))); do
        ip netns del "$NS$i" 2>/dev/null || true
        ip link del "wsrd-h$i" 2>/dev/null || true
    done
    ip link del "$BRIDGE" 2>/dev/null || true
}
trap cleanup EXIT

# The network: a bridge on the host, one namespace per agent behind a veth
# pair, every address in one /24.
ip link add "$BRIDGE" type bridge
ip addr add "$HOST/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
for i in $(seq 0 $((AGENTS - 1))); do
    ip netns add "$NS$i"
    ip link add "wsrd-h$i" type veth peer name "wsrd-n$i"
    ip link set "wsrd-h$i" master "$BRIDGE" up
    ip link set "wsrd-n$i" netns "$NS$i"
    ip -n "$NS$i" addr add "$SUBNET.$((10 + i))/24" dev "wsrd-n$i"
    ip -n "$NS$i" link set lo up
    ip -n "$NS$i" link set "wsrd-n$i" up
done

wait_for() { # what, command...
    local what=$1
    shift
    for _ in $(seq 100); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "benches/distributed.sh: $what did not come up" >&2
    exit 1
}

# Reached from the namespaces, without a password: only on the bridge,
# which the script made and removes.
redis-server --bind "$HOST" --port "$REDIS_PORT" --protected-mode no --save "" --appendonly no >"$OUT/redis.log" 2>&1 &
PIDS+=($!)
wait_for "redis-server" redis-cli -h "$HOST" -p "$REDIS_PORT" ping
"$BIN" serve --bind "$HOST:$PORT" >"$OUT/server.log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
wait_for "wsreactor serve" curl -sf "http://$HOST:$PORT/readyz"

REDIS="redis://$HOST:$REDIS_PORT"
for i in $(seq 0 $((AGENTS - 1))); do
    ip netns exec "$NS$i" "$BIN" load agent --coordinator "$REDIS" --name "agent-$i@$SUBNET.$((10 + i))" \
        --runs 1 >"$OUT/agent-$i.json" 2>"$OUT/agent-$i.log" &
    PIDS+=($!)
done

# The server's connections by peer address, while the window runs.
(
    for _ in $(seq 60); do
        sleep 1
        n=$(ss -Htn state established "( sport = :$PORT )" | wc -l)
        if [ "$n" -ge "$CONNECTIONS" ]; then
            sleep 2
            ss -Htn state established "( sport = :$PORT )" |
                awk '{ split($4, a, ":"); n[a[1]]++ } END { for (ip in n) print "  " ip ": " n[ip] " connections" }' |
                sort >"$OUT/peers.txt"
            curl -s "http://$HOST:$PORT/metrics" | grep -E '^wsreactor_(connections|channels) ' >>"$OUT/peers.txt" || true
            break
        fi
    done
) &
PIDS+=($!)

CHANNEL_FLAGS=()
if [ "$CHANNELS" -gt 1 ]; then CHANNEL_FLAGS=(--channels-per-connection "$CHANNELS"); fi
set +e
timeout 300 "$BIN" load --coordinator "$REDIS" --agents "$AGENTS" --mode subscribe \
    --url "http://$HOST:$PORT/" --channel dist "${CHANNEL_FLAGS[@]}" --text \
    --connections "$CONNECTIONS" --connect-rate "$CONNECT_RATE" --rate "$RATE" --size "$SIZE" \
    --duration "$DURATION" --timeout 10s --server-pid "$SERVER" --quiet \
    --json "$OUT/report.json" --plot "$OUT/report.svg" | tee "$OUT/report.txt"
status=${PIPESTATUS[0]}
set -e
sleep 1
if [ "$status" != 0 ]; then
    echo "benches/distributed.sh: the coordinator exited $status" >&2
    exit "$status"
fi
echo
echo "server connections by peer address during the window:"
cat "$OUT/peers.txt" 2>/dev/null || echo "  (not seen)"

python3 - "$OUT" "$AGENTS" "$CHANNELS" <<'EOF'
import json, sys
out, agents, channels = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = json.load(open(f"{out}/report.json"))
own = [json.loads(open(f"{out}/agent-{i}.json").read().splitlines()[-1]) for i in range(agents)]
own.sort(key=lambda l: l["index"])
ok = True
def check(what, cond):
    global ok
    print(("  ok    " if cond else "  WRONG ") + what)
    ok &= bool(cond)
for part, line in zip(r["agents"], own):
    same = all(part[k] == line[k] for k in ["index", "name", "attempted", "opened", "received", "errors", "latency_us"])
    check(f"agent {line['index']} ({line['name']}): the report says what it printed", same)
s = lambda k: sum(p[k] for p in r["agents"])
check("connections opened = the agents' sum", r["connections"]["opened"] == s("opened"))
check("deliveries = the agents' sum", r["messages"]["received"] == s("received"))
check("latency samples = the agents' sum", r["latency_us"]["count"] == sum(p["latency_us"]["count"] for p in r["agents"]))
d = r["subscribe"]["deliveries"]
check(f"missing {d['missing']}, duplicates {d['duplicates']}", d["missing"] == 0 and d["duplicates"] == 0)
p = r["subscribe"]["published"]
print(f"  subscribers per channel as the server answered the publishes: {p['subscribers_min']}..{p['subscribers_max']},"
      f" {channels} channel(s): {channels * (p['subscribers_min'] or 0)} subscriptions in all")
for a in r["agents"]:
    print(f"  {a['name']}: clock {a['clock_offset_us']:+} ±{a['clock_error_us']} µs from the coordinator's")
sys.exit(0 if ok else 1)
EOF
checked=$?
echo "coordinator exit $status"
[ "$status" = 0 ] && [ "$checked" = 0 ]
