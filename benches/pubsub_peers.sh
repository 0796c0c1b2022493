#!/usr/bin/env bash
# Pub/sub over WebSocket against uWebSockets and nchan (issue 31): the rows
# of the issue's table, each server in turn, interleaved (A B C A B C ...),
# ROUNDS rounds, each run on a freshly started server pinned to core 0 with
# the load generator (`wsreactor load compare --transports ws`, one thread)
# pinned to core 1. The servers:
#   wsreactor  `wsreactor serve --threads 1`, on its embedded defaults (a
#              history of 1,000 messages per channel and all)
#   wsreactor-nohistory
#              the same with `[pubsub] history_size = 0`: no history, as uWS
#              and nchan's WebSocket keep none (memory per subscriber is
#              then what a subscriber holds, not the channel's last 1,000
#              messages over 1,000 subscribers)
#   uws        ../shared/peers/uwebsockets/uws-pubsub (UWS_DIR): GET /ws/CH
#              subscribes, POST /pub/CH publishes through uWS's own corked
#              publish; no history, no ids. Skipped when absent
#   nchan      nginx with nchan (benches/nchan/nginx.conf.in), when its
#              module is installed (bash benches/nchan.sh installs it)
#   floor      benches/compare/src/bin/floor_pubsub.rs: the same URLs as
#              uws-pubsub, and only the system calls a delivery needs (one
#              write per subscriber per message); each wsreactor CPU row is
#              also given as its ratio to the floor's
# Each fresh server first serves a warm-up (10 subscribers, 20 messages, on
# a channel of its own), so that what it does once (page in its code, grow
# its runtime) is not counted per subscriber, as benches/idle_rss.py's
# --warmup does for idle connections.
# The workloads (64 B text messages, published over HTTP by one publisher):
#   fast   1,000 subscribers, each publish as soon as the last was answered:
#          deliveries/s, server CPU per delivery
#   r100   1,000 subscribers at 100 messages/s: p99 publish to receive;
#          server memory per subscriber (VmRSS and its anonymous part,
#          RssAnon, grown from before the subscribers came to the end)
#   r10k   10,000 subscribers at 10 messages/s: p99
#
#   bash benches/pubsub_peers.sh                # ROUNDS=3 DURATION=10
#   SERVERS="wsreactor uws" WORKLOADS="r100" ROUNDS=5 bash benches/pubsub_peers.sh
#
# Writes target/pubsub_peers/{WORKLOAD}-{SERVER}-{ROUND}.json and
# target/pubsub_peers/results.md (the medians and wsreactor ÷ uWS). Every
# process it starts is stopped by pid.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WORKLOADS=${WORKLOADS:-"fast r100 r10k"}
SERVERS=${SERVERS:-"wsreactor wsreactor-nohistory uws nchan floor"}
UWS_DIR=${UWS_DIR:-../shared/peers/uwebsockets}
BIN=${BIN:-target/release/wsreactor}
OUT=target/pubsub_peers
PORT=${PORT:-9211}
MODULE=/usr/lib/nginx/modules/ngx_nchan_module.so

[ -x "$BIN" ] || cargo build --release
FLOOR=benches/compare/target/release/floor_pubsub
if [[ " $SERVERS " == *" floor "* ]]; then
    cargo build --release --quiet --manifest-path benches/compare/Cargo.toml --bin floor_pubsub
fi
mkdir -p "$OUT"
rm -f "$OUT"/*.json

servers=()
for s in $SERVERS; do
    case $s in
        uws) [ -x "$UWS_DIR/uws-pubsub" ] && servers+=(uws) || echo "pubsub_peers.sh: no $UWS_DIR/uws-pubsub: uws skipped" >&2 ;;
        nchan) { command -v nginx >/dev/null && [ -f "$MODULE" ]; } && servers+=(nchan) \
            || echo "pubsub_peers.sh: nginx with nchan is not installed (bash benches/nchan.sh installs it): nchan skipped" >&2 ;;
        wsreactor | wsreactor-nohistory | floor) servers+=("$s") ;;
        *) echo "pubsub_peers.sh: unknown server $s" >&2; exit 2 ;;
    esac
done

SERVER_PID=
PREFIX=
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        # nginx's master stops its workers on SIGTERM (SIGKILL would orphan them).
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
    if [ -n "$PREFIX" ]; then rm -rf "$PREFIX"; fi
    PREFIX=
}
trap cleanup EXIT

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "pubsub_peers.sh: nothing listens on 127.0.0.1:$PORT" >&2
    exit 1
}

# start SERVER: sets SERVER_PID, PROBE (whose CPU and memory count), CURSOR.
start() {
    CURSOR=wsreactor
    case $1 in
        wsreactor)
            RUST_LOG=warn taskset -c 0 "$BIN" serve --bind "127.0.0.1:$PORT" --threads 1 &
            SERVER_PID=$!
            ;;
        wsreactor-nohistory)
            PREFIX=$(mktemp -d /tmp/wsreactor-nohistory.XXXXXX)
            printf '[pubsub]\nhistory_size = 0\n' > "$PREFIX/nohistory.toml"
            RUST_LOG=warn taskset -c 0 "$BIN" serve --bind "127.0.0.1:$PORT" --threads 1 --config "$PREFIX/nohistory.toml" &
            SERVER_PID=$!
            ;;
        uws)
            taskset -c 0 "$UWS_DIR/uws-pubsub" "$PORT" >/dev/null &
            SERVER_PID=$!
            ;;
        floor)
            taskset -c 0 "$FLOOR" --port "$PORT" &
            SERVER_PID=$!
            ;;
        nchan)
            PREFIX=$(mktemp -d /tmp/wsreactor-nchan.XXXXXX)
            sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@PORT@|$PORT|g" -e "s|@MODULE@|$MODULE|g" \
                benches/nchan/nginx.conf.in > "$PREFIX/nginx.conf"
            taskset -c 0 nginx -p "$PREFIX" -c "$PREFIX/nginx.conf" -e "$PREFIX/error.log" &
            SERVER_PID=$!
            CURSOR=nchan
            ;;
    esac
    wait_port
    PROBE=$SERVER_PID
    # nginx: the worker's CPU and memory (the master only waits).
    if [ "$1" = nchan ]; then PROBE=$(pgrep -P "$SERVER_PID" | head -1); fi
}

run=0
for round in $(seq "$ROUNDS"); do
    for workload in $WORKLOADS; do
        case $workload in
            fast) subs=1000; rate=() ;;
            r100) subs=1000; rate=(--rate 100) ;;
            r10k) subs=10000; rate=(--rate 10) ;;
            *) echo "pubsub_peers.sh: unknown workload $workload" >&2; exit 2 ;;
        esac
        for server in "${servers[@]}"; do
            run=$((run + 1))
            start "$server"
            echo "pubsub_peers.sh: round $round of $ROUNDS, $workload, $server" >&2
            taskset -c 1 "$BIN" load compare --url "http://127.0.0.1:$PORT/" --channel "warmup-$run" \
                --connections 10 --connect-rate 0 --threads 1 --rate 20 --size 64 --text --duration 1s \
                --rounds 1 --transports ws --cursor "$CURSOR" --quiet > /dev/null
            taskset -c 1 "$BIN" load compare --url "http://127.0.0.1:$PORT/" --channel "bench-$run" \
                --connections "$subs" --connect-rate 2000 --threads 1 "${rate[@]}" --size 64 --text \
                --duration "$DURATION" --rounds 1 --transports ws --cursor "$CURSOR" \
                --server-pid "$PROBE" --quiet --json "$OUT/$workload-$server-$round.json" > /dev/null
            cleanup
        done
    done
done

python3 - "$OUT" "$WORKLOADS" "${servers[*]}" "$ROUNDS" "$DURATION" <<'PY'
import json, statistics, sys, pathlib, subprocess, datetime
out, workloads, servers = pathlib.Path(sys.argv[1]), sys.argv[2].split(), sys.argv[3].split()
rounds, duration = sys.argv[4], sys.argv[5]

def rows(workload, server):
    return [json.loads(f.read_text())["rows"][0] for f in sorted(out.glob(f"{workload}-{server}-*.json"))]

def med(workload, server, key):
    vals = [r[key] for r in rows(workload, server) if r.get(key) is not None]
    return statistics.median(vals) if vals else None

# The last field: a CPU row, also given against the floor's.
FIGURES = [
    ("fast", "1,000 subscribers, publish as fast as answered: deliveries/s ↑", "deliveries_per_second", 1, "{:,.0f}", True, False),
    ("fast", "the same: server CPU per delivery, µs ↓", "server_cpu_us_per_delivery", 1, "{:.2f}", False, True),
    ("r100", "1,000 subscribers at 100 messages/s: p99 publish to receive, ms ↓", "p99_us", 1e-3, "{:.2f}", False, False),
    ("r100", "the same: server CPU per delivery, µs ↓", "server_cpu_us_per_delivery", 1, "{:.2f}", False, True),
    ("r100", "the same: server memory per subscriber (VmRSS), B ↓", "server_rss_bytes_per_subscriber", 1, "{:,.0f}", False, False),
    ("r100", "the same: its anonymous part (RssAnon: heap, not program pages), B ↓", "server_rss_anon_bytes_per_subscriber", 1, "{:,.0f}", False, False),
    ("r10k", "10,000 subscribers at 10 messages/s: p99 publish to receive, ms ↓", "p99_us", 1e-3, "{:.2f}", False, False),
    ("r10k", "the same: server CPU per delivery, µs ↓", "server_cpu_us_per_delivery", 1, "{:.2f}", False, True),
]
ours = [s for s in ("wsreactor", "wsreactor-nohistory") if s in servers and "uws" in servers]
floored = [s for s in ("wsreactor", "wsreactor-nohistory") if s in servers and "floor" in servers]
head = ("| figure | " + " | ".join(servers) + " |" + "".join(f" {s} ÷ uws |" for s in ours)
        + "".join(f" {s} ÷ floor |" for s in floored))
lines = [head, "|" + "---|" * (head.count("|") - 1)]
for workload, label, key, scale, fmt, higher, cpu in FIGURES:
    if workload not in workloads:
        continue
    vals = {s: med(workload, s, key) for s in servers}
    cells = ["n/a" if v is None else fmt.format(v * scale) for v in vals.values()]
    line = f"| {label} | " + " | ".join(cells) + " |"
    for s in ours:
        w, u = vals[s], vals["uws"]
        if w is None or u is None or u == 0:
            line += " n/a |"
        else:
            ratio = w / u
            better = ratio >= 1 if higher else ratio <= 1
            line += f" {ratio:.2f}× ({'better' if better else 'worse'}) |"
    for s in floored:
        w, f = vals[s], vals["floor"]
        line += f" {w / f:.2f}× |" if cpu and w is not None and f else " |"
    lines.append(line)
bad = [(w, s, r["missing"], r["errors"]) for w in workloads for s in servers for r in rows(w, s) if r["missing"] or r["errors"]]
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
load = open("/proc/loadavg").read().split()[:3]
text = (f"# Pub/sub over WebSocket: wsreactor, uWebSockets, nchan, the floor\n\n`bash benches/pubsub_peers.sh`: "
        f"{datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, commit {commit}, load average at the end {' '.join(load)}; "
        f"medians of {rounds} interleaved rounds of {duration} s, a fresh server per run on core 0, "
        f"the load generator on core 1; 64 B text messages.\n\n" + "\n".join(lines) + "\n\n"
        + ("Runs with missing messages or errors: " + ", ".join(f"{w} {s}: {m} missing, {e} errors" for w, s, m, e in bad)
           if bad else "No run missed a message or had an error.") + "\n")
(out / "results.md").write_text(text)
print(text)
sys.exit(1 if bad else 0)
PY
