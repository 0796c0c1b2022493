#!/usr/bin/env bash
# The transports compared, wsreactor and nchan side by side in one run:
# `wsreactor load compare` against `wsreactor serve` and against nginx with
# nchan (Debian's nginx-light and libnginx-mod-nchan, installed here when
# missing, as root), each on a loopback port of its own with a configuration
# of its own (benches/nchan/nginx.conf.in), the servers pinned to core 0 and
# the load generator to core 1. Rounds alternate the servers, and the
# transports' order rotates each round; the table gives the medians.
#
#   bash benches/nchan.sh                       # SUBS=1000 RATE=10 SIZES="64 4096" ROUNDS=3 DURATION=10
#   SERVERS=wsreactor bash benches/nchan.sh     # only one of them
#
# Writes target/nchan/{SERVER}-{SIZE}-{ROUND}.json, target/nchan/results.md
# and, per size, target/nchan/compare-{SERVER}-{SIZE}.svg (the last round's
# chart). Stops every process it started, by pid.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUBS=${SUBS:-1000}
RATE=${RATE:-10}
SIZES=${SIZES:-"64 4096"}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
SERVERS=${SERVERS:-"wsreactor nchan"}
TRANSPORTS=(poll longpoll sse ws)
BIN=${BIN:-target/release/wsreactor}
OUT=target/nchan
WS_PORT=${WS_PORT:-9201}
NCHAN_PORT=${NCHAN_PORT:-9202}

[ -x "$BIN" ] || cargo build --release
mkdir -p "$OUT"

MODULE=/usr/lib/nginx/modules/ngx_nchan_module.so
if [[ " $SERVERS " == *" nchan "* ]] && { ! command -v nginx >/dev/null || [ ! -f "$MODULE" ]; }; then
    if [ "$(id -u)" != 0 ]; then
        echo "nchan.sh: nginx and libnginx-mod-nchan are missing; install them or run as root" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get update -q
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -q nginx-light libnginx-mod-nchan
fi

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap cleanup EXIT

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nchan.sh: nothing listens on 127.0.0.1:$1" >&2
    exit 1
}

if [[ " $SERVERS " == *" wsreactor "* ]]; then
    RUST_LOG=warn taskset -c 0 "$BIN" serve --bind "127.0.0.1:$WS_PORT" --threads 1 &
    PIDS+=($!)
    WS_PID=$!
    wait_port "$WS_PORT"
fi
if [[ " $SERVERS " == *" nchan "* ]]; then
    PREFIX=$(mktemp -d /tmp/wsreactor-nchan.XXXXXX)
    sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@PORT@|$NCHAN_PORT|g" -e "s|@MODULE@|$MODULE|g" \
        benches/nchan/nginx.conf.in > "$PREFIX/nginx.conf"
    # -p: everything nginx writes stays under the prefix; the master and its
    # one worker both stay on core 0.
    taskset -c 0 nginx -p "$PREFIX" -c "$PREFIX/nginx.conf" -e "$PREFIX/error.log" &
    PIDS+=($!)
    NCHAN_PID=$!
    wait_port "$NCHAN_PORT"
    # CPU and memory are the worker's: the master only waits.
    NCHAN_WORKER=$(pgrep -P "$NCHAN_PID" | head -1)
fi

run=0
for size in $SIZES; do
    for round in $(seq "$ROUNDS"); do
        # Rotate the transports one a round.
        by=$(( (round - 1) % ${#TRANSPORTS[@]} ))
        order=("${TRANSPORTS[@]:$by}" "${TRANSPORTS[@]:0:$by}")
        order=$(IFS=,; echo "${order[*]}")
        for server in $SERVERS; do
            run=$((run + 1))
            case $server in
                wsreactor) port=$WS_PORT; pid=$WS_PID; cursor=wsreactor ;;
                nchan) port=$NCHAN_PORT; pid=$NCHAN_WORKER; cursor=nchan ;;
            esac
            echo "nchan.sh: $server, $size B, round $round of $ROUNDS ($order)" >&2
            taskset -c 1 "$BIN" load compare --url "http://127.0.0.1:$port/" --channel "bench-$run" \
                --connections "$SUBS" --connect-rate 2000 --threads 1 --rate "$RATE" --size "$size" \
                --duration "$DURATION" --rounds 1 --transports "$order" --cursor "$cursor" \
                --server-pid "$pid" --quiet --max-errors 1000000000 \
                --json "$OUT/$server-$size-$round.json" --plot "$OUT/compare-$server-$size.svg"
        done
    done
done

python3 - "$OUT" "$SIZES" "$SERVERS" <<'PY'
import json, statistics, sys, pathlib
out, sizes, servers = pathlib.Path(sys.argv[1]), sys.argv[2].split(), sys.argv[3].split()
lines = ["| server | size | transport | deliveries/s | p50 ms | p99 ms | p99.9 ms | B in/msg | B out/msg | req/s | connects | server CPU µs/msg | server RSS B/sub | missing | errors |",
         "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
for size in sizes:
    for server in servers:
        rows = {}
        for f in sorted(out.glob(f"{server}-{size}-*.json")):
            for r in json.loads(f.read_text())["rows"]:
                rows.setdefault(r["transport"], []).append(r)
        for t in ["poll", "longpoll", "sse", "ws"]:
            rs = rows.get(t, [])
            if not rs:
                continue
            med = lambda k: statistics.median([r[k] for r in rs if r[k] is not None] or [0])
            lines.append(f"| {server} | {size} B | {t} | {med('deliveries_per_second'):.0f} | {med('p50_us')/1000:.2f} | "
                         f"{med('p99_us')/1000:.2f} | {med('p99_9_us')/1000:.2f} | {med('bytes_in_per_delivery'):.0f} | "
                         f"{med('bytes_out_per_delivery'):.0f} | {med('requests_per_second'):.0f} | {med('connects'):.0f} | "
                         f"{med('server_cpu_us_per_delivery'):.2f} | {med('server_rss_bytes_per_subscriber'):.0f} | "
                         f"{sum(r['missing'] for r in rs)} | {sum(r['errors'] for r in rs)} |")
text = "\n".join(lines) + "\n"
(out / "results.md").write_text(text)
print(text)
PY
