#!/usr/bin/env bash
# The push scenarios, wsreactor and nchan side by side: `wsreactor load
# --mode subscribe` with slow readers and with reconnect storms, against
# `wsreactor serve` (its built-in defaults unless WS_CONFIG names a file)
# and against nginx with nchan (Debian's nginx-light and
# libnginx-mod-nchan, installed here when missing, as root; the
# configuration of benches/nchan.sh, benches/nchan/nginx.conf.in, whose
# worker_connections 19000 / worker_rlimit_nofile 20000 hold 10,000
# subscribers). Every run gets a fresh server process, pinned to core 0,
# the load generator (one thread) to core 1. Per server:
#
#   slow               SLOW_SUBS WebSocket subscribers, SLOW_SHARE of them
#                      stop reading for SLOW_PAUSE (receive buffer
#                      SLOW_RCVBUF) while SLOW_RATE messages/s of SLOW_SIZE
#                      bytes go out for SLOW_DURATION; the tool first runs
#                      the same load without them (its baseline). For
#                      wsreactor, /metrics' slow_subscribers_dropped_total
#                      (summed) after the run.
#   storm-ws-burst     STORM_SUBS WebSocket subscribers, STORM_RATE
#                      messages/s of STORM_SIZE bytes (text) for
#                      STORM_DURATION; STORM_AT into the window all of them
#                      drop and reconnect at once, with their cursor.
#   storm-ws-jitter    the same, each reconnecting after a delay uniform
#                      below STORM_JITTER;
#   storm-sse-jitter   the same over Server-Sent Events (Last-Event-ID);
#   storm-longpoll-jitter  and over long polling (since; nchan: --cursor
#                      nchan, Etag / Last-Modified).
#
# nchan's WebSocket subscriber gives no message ids, so its WebSocket
# storms come back with no cursor: what they miss is the finding, not a
# fault of the run (the table says "none" in its cursor column). In the
# copy of the nchan configuration each run gets, the WebSocket location
# has `nchan_subscriber_first_message newest` (a subscriber that comes
# with no cursor waits for the next message; NCHAN_WS_FIRST) instead of
# the template's (and nchan's default) oldest: the slow-reader run and the
# tool's baseline before it share one channel, and with oldest every
# subscriber of the second run is first sent the baseline's messages; a
# storm's WebSocket subscribers would be sent the channel's whole buffer
# again. NCHAN_WS_FIRST=oldest keeps the template's.
#
#   bash benches/push_scenarios.sh                    # about 5 minutes
#   SERVERS=wsreactor bash benches/push_scenarios.sh  # only one of them
#   SERVERS=wsreactor SCENARIOS="storm-ws-burst storm-ws-jitter" STORM_RATE=20 \
#       OUT=target/push_scenarios/rate20 bash benches/push_scenarios.sh
#
# Knobs (defaults): SERVERS ("wsreactor nchan"), SCENARIOS (all five
# above), SLOW_SUBS (2000), SLOW_SHARE (10%), SLOW_RATE (16), SLOW_SIZE
# (8192), SLOW_DURATION (20s), SLOW_PAUSE (20s), SLOW_RCVBUF (65536),
# STORM_SUBS (10000), STORM_RATE (2), STORM_SIZE (64), STORM_DURATION
# (15s), STORM_AT (5s), STORM_JITTER (2s), WS_CONFIG (a wsreactor TOML,
# default none: the built-in defaults), WS_PORT (9311), NCHAN_PORT (9312),
# NCHAN_WS_FIRST (newest), BIN (target/release/wsreactor), OUT
# (target/push_scenarios). Each run is bounded by `timeout`.
#
# Why these rates, on a 2-core machine with one core per side: a slow
# reader must be sent more than wsreactor's default write_buffer_limit
# (1 MiB) plus what the two kernels hold (TCP_NOTSENT_LOWAT 128 KiB, the
# reader's receive buffer) within its pause: at 50/s of 1 KiB it is sent
# ~750 KB in 15 s and never dropped; 16/s of 8 KiB (131 KB/s) is dropped
# within 3 to 8 s. nchan (this configuration) answers 400 to a publish of 12 KiB,
# so 8 KiB is the largest size; at 25/s of 8 KiB (50,000 deliveries/s)
# either server's baseline may already run seconds behind when the
# machine is busy. The pause is the whole window: readers that resume
# inside it make the load generator itself read and check their backlog
# (200 readers x ~1,000 messages at once on its one thread), which delays
# its measuring of the others by a few hundred ms that are not the
# server's (a run with a 15 s pause showed a p99 of 440 ms in that one
# second and ~25 ms in every other). In the storms, 10,000 subscribers at 5/s are already
# more than one nchan worker keeps up with over SSE and long polls before
# any storm (so what it then misses is backlog, not the storm); at 2/s
# (20,000 deliveries/s) both keep up and the storm is what is measured.
#
# Writes OUT/{SERVER}-{SCENARIO}.json (the tool's --json), .txt (its
# table and stderr), wsreactor-slow.metrics (the slow-subscriber lines of
# /metrics), runs.tsv (exit status and wall time of every run) and
# OUT/results.md: one table per scenario, one row per server. Stops every
# process it started, by pid.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SERVERS=${SERVERS:-"wsreactor nchan"}
SCENARIOS=${SCENARIOS:-"slow storm-ws-burst storm-ws-jitter storm-sse-jitter storm-longpoll-jitter"}
SLOW_SUBS=${SLOW_SUBS:-2000}
SLOW_SHARE=${SLOW_SHARE:-10%}
SLOW_RATE=${SLOW_RATE:-16}
SLOW_SIZE=${SLOW_SIZE:-8192}
SLOW_DURATION=${SLOW_DURATION:-20s}
SLOW_PAUSE=${SLOW_PAUSE:-20s}
SLOW_RCVBUF=${SLOW_RCVBUF:-65536}
STORM_SUBS=${STORM_SUBS:-10000}
STORM_RATE=${STORM_RATE:-2}
STORM_SIZE=${STORM_SIZE:-64}
STORM_DURATION=${STORM_DURATION:-15s}
STORM_AT=${STORM_AT:-5s}
STORM_JITTER=${STORM_JITTER:-2s}
WS_CONFIG=${WS_CONFIG:-}
WS_PORT=${WS_PORT:-9311}
NCHAN_PORT=${NCHAN_PORT:-9312}
NCHAN_WS_FIRST=${NCHAN_WS_FIRST:-newest}
BIN=${BIN:-target/release/wsreactor}
OUT=${OUT:-target/push_scenarios}

[ -x "$BIN" ] || cargo build --release
mkdir -p "$OUT"

MODULE=/usr/lib/nginx/modules/ngx_nchan_module.so
if [[ " $SERVERS " == *" nchan "* ]] && { ! command -v nginx >/dev/null || [ ! -f "$MODULE" ]; }; then
    if [ "$(id -u)" != 0 ]; then
        echo "push_scenarios.sh: nginx and libnginx-mod-nchan are missing; install them or run as root" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get update -q
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -q nginx-light libnginx-mod-nchan
fi

SERVER_PID=
PREFIX=
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
    if [ -n "$PREFIX" ]; then
        rm -rf "$PREFIX"
    fi
    PREFIX=
}
trap cleanup EXIT

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "push_scenarios.sh: nothing listens on 127.0.0.1:$1" >&2
    exit 1
}

# start SERVER: a fresh server on its port; sets SERVER_PID, PORT, PROBE
# (the process whose CPU counts) and CURSOR.
start() {
    case $1 in
        wsreactor)
            local config=()
            [ -n "$WS_CONFIG" ] && config=(--config "$WS_CONFIG")
            RUST_LOG=warn taskset -c 0 "$BIN" serve "${config[@]}" --bind "127.0.0.1:$WS_PORT" --threads 1 &
            SERVER_PID=$!
            PORT=$WS_PORT
            CURSOR=wsreactor
            wait_port "$PORT"
            PROBE=$SERVER_PID
            ;;
        nchan)
            PREFIX=$(mktemp -d /tmp/wsreactor-nchan.XXXXXX)
            sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@PORT@|$NCHAN_PORT|g" -e "s|@MODULE@|$MODULE|g" \
                benches/nchan/nginx.conf.in > "$PREFIX/nginx.conf"
            # The WebSocket location's first message for a subscriber that
            # comes with no cursor: NCHAN_WS_FIRST (see the header).
            sed -i -e "/location ~ \^\/ws\//,/}/ s|nchan_subscriber_first_message oldest;|nchan_subscriber_first_message $NCHAN_WS_FIRST;|" \
                "$PREFIX/nginx.conf"
            # -p: everything nginx writes stays under the prefix; the master
            # and its one worker both stay on core 0.
            taskset -c 0 nginx -p "$PREFIX" -c "$PREFIX/nginx.conf" -e "$PREFIX/error.log" &
            SERVER_PID=$!
            PORT=$NCHAN_PORT
            CURSOR=nchan
            wait_port "$PORT"
            # CPU is the worker's: the master only waits.
            PROBE=$(pgrep -P "$SERVER_PID" | head -1)
            ;;
        *)
            echo "push_scenarios.sh: unknown server $1" >&2
            exit 2
            ;;
    esac
}

printf 'server\tscenario\texit\twall_s\n' > "$OUT/runs.tsv"
started=$SECONDS
run=0
for scenario in $SCENARIOS; do
    for server in $SERVERS; do
        run=$((run + 1))
        args=(--mode subscribe --connect-rate 0 --threads 1 --quiet --max-errors 1000000000)
        case $scenario in
            slow)
                # Two runs in one: the baseline, then the slow readers.
                limit=240
                args+=(--transport ws --connections "$SLOW_SUBS" --rate "$SLOW_RATE" --size "$SLOW_SIZE"
                       --duration "$SLOW_DURATION" --slow-readers "$SLOW_SHARE"
                       --slow-reader-pause "$SLOW_PAUSE" --slow-reader-rcvbuf "$SLOW_RCVBUF")
                ;;
            storm-*-burst|storm-*-jitter)
                limit=150
                transport=${scenario#storm-}
                transport=${transport%-*}
                jitter=0s
                [[ $scenario == *-jitter ]] && jitter=$STORM_JITTER
                args+=(--transport "$transport" --connections "$STORM_SUBS" --rate "$STORM_RATE"
                       --size "$STORM_SIZE" --text --duration "$STORM_DURATION"
                       --reconnect-storm "$STORM_AT" --reconnect-jitter "$jitter")
                if [ "$server" = nchan ] && [ "$transport" = ws ]; then
                    echo "push_scenarios.sh: note: nchan's WebSocket subscriber gives no message ids:" \
                         "this storm reconnects with no cursor, its missing messages are the finding" >&2
                fi
                ;;
            *)
                echo "push_scenarios.sh: unknown scenario $scenario" >&2
                exit 2
                ;;
        esac
        start "$server"
        echo "push_scenarios.sh: [$run] $server, $scenario (at $((SECONDS - started)) s)" >&2
        t0=$SECONDS
        rc=0
        rm -f "$OUT/$server-$scenario.json"
        timeout -k 10 "$limit" taskset -c 1 "$BIN" load "${args[@]}" \
            --url "http://127.0.0.1:$PORT/" --channel "ps-$scenario-$run" --cursor "$CURSOR" \
            --server-pid "$PROBE" --json "$OUT/$server-$scenario.json" \
            > "$OUT/$server-$scenario.txt" 2>&1 || rc=$?
        printf '%s\t%s\t%s\t%s\n' "$server" "$scenario" "$rc" "$((SECONDS - t0))" >> "$OUT/runs.tsv"
        if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
            echo "push_scenarios.sh: $server $scenario timed out after $limit s (see $OUT/$server-$scenario.txt)" >&2
        elif [ "$rc" != 0 ]; then
            echo "push_scenarios.sh: $server $scenario: load exited $rc (see $OUT/$server-$scenario.txt)" >&2
        fi
        if [ "$server" = wsreactor ] && [ "$scenario" = slow ]; then
            # The baseline ran on this same server without slow readers, so
            # every drop counted here is the slow run's.
            curl -s --max-time 10 "http://127.0.0.1:$PORT/metrics" |
                grep '^wsreactor_slow_subscribers_dropped_total' > "$OUT/wsreactor-slow.metrics" || true
        fi
        cleanup
    done
done
echo "push_scenarios.sh: all runs done in $((SECONDS - started)) s" >&2

python3 - "$OUT" "$SERVERS" "$SCENARIOS" "$NCHAN_WS_FIRST" "$WS_CONFIG" <<'PY'
import json, pathlib, sys
out, servers, scenarios = pathlib.Path(sys.argv[1]), sys.argv[2].split(), sys.argv[3].split()
nchan_ws_first, ws_config = sys.argv[4], sys.argv[5]
status = {}
for line in (out / "runs.tsv").read_text().splitlines()[1:]:
    server, scenario, rc, wall = line.split("\t")
    status[(server, scenario)] = (rc, wall)

def load(server, scenario):
    f = out / f"{server}-{scenario}.json"
    return json.loads(f.read_text()) if f.exists() else None

ms = lambda us: "–" if us is None else f"{us / 1000:.1f}"
# A distribution's percentile, "–" when it holds nothing.
pct = lambda dist, k: ms(dist[k]) if dist and dist.get("count") else "–"
lines = [f"# Push scenarios ({' vs '.join(servers)})", "",
         f"wsreactor: {'--config ' + ws_config if ws_config else 'built-in defaults'}, `--threads 1`; "
         f"nchan: benches/nchan/nginx.conf.in, one worker, WebSocket location with "
         f"`nchan_subscriber_first_message {nchan_ws_first}`. Servers on core 0, the load (one thread) on core 1. "
         "Exit: the load's exit status (124: timed out). Latencies from each message's scheduled time.", ""]
for scenario in scenarios:
    runs = [(s, load(s, scenario)) for s in servers]
    some = next((d for _, d in runs if d), None)
    if some is None:
        lines += [f"## {scenario}", "", "no run wrote its JSON", ""]
        continue
    lines += [f"## {scenario}", "", f"`wsreactor {' '.join(some['command_line'][1:])}`", ""]
    if scenario == "slow":
        lines += ["| server | readers | dropped | dropped by | served ms p50 (min–max) | received p50 | others' p99 ms | baseline p99 ms | ratio | server slow_subscribers_dropped_total | missing (others) | errors | exit |",
                  "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for server, d in runs:
            rc, _ = status.get((server, scenario), ("?", "?"))
            if d is None:
                lines.append(f"| {server} | no JSON (exit {rc}) |" + " |" * 11)
                continue
            sr = d["subscribe"]["slow_readers"]
            by = ", ".join(f"{k}: {v}" for k, v in sr["dropped_by"].items()) or "–"
            metric = "–"
            if server == "wsreactor" and (out / "wsreactor-slow.metrics").exists():
                vals = [float(l.split()[-1]) for l in (out / "wsreactor-slow.metrics").read_text().splitlines() if l.strip()]
                metric = f"{sum(vals):.0f}" if vals else "?"
            sv = sr["served_ms"]
            served = f"{sv['p50']} ({sv['min']}–{sv['max']})" if sr["dropped"] else "–"
            ratio = "–" if sr.get("p99_ratio") is None else f"{sr['p99_ratio']:.2f}x"
            lines.append(f"| {server} | {sr['readers']} | {sr['dropped']} | {by} | {served} | {sr['received']['p50']} | "
                         f"{pct(sr['others_us'], 'p99')} | {pct(sr['baseline_us'], 'p99')} | {ratio} | "
                         f"{metric} | {d['subscribe']['deliveries']['missing']} | {d['errors']['total']} | {rc} |")
    else:
        lines += ["| server | transport | cursor | dropped | reconnected | caught up | not caught up | all caught up s | caught up p50 ms | caught up p99 ms | recovered | missing | duplicates | errors | delivery p99 ms | exit |",
                  "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for server, d in runs:
            rc, _ = status.get((server, scenario), ("?", "?"))
            if d is None:
                lines.append(f"| {server} | no JSON (exit {rc}) |" + " |" * 14)
                continue
            st, dl, tr = d["subscribe"]["reconnect_storm"], d["subscribe"]["deliveries"], d["subscribe"]["transport"]
            transport = tr["transport"]
            cursor = "none (nchan WS gives no ids)" if server == "nchan" and transport == "ws" else {
                "ws": "wsreactor.json id", "sse": "Last-Event-ID", "longpoll": "since" if server != "nchan" else "Etag/Last-Modified",
                "poll": "since"}.get(transport, "?")
            cu = st["caught_up_us"]
            acu = "never" if st["all_caught_up_s"] is None else f"{st['all_caught_up_s']:.2f}"
            lines.append(f"| {server} | {transport} | {cursor} | {st['dropped']} | {st['reconnected']} | {st['caught_up']} | "
                         f"{st['not_caught_up']} | {acu} | {pct(cu, 'p50')} | {pct(cu, 'p99')} | {st['recovered']} | "
                         f"{dl['missing']} | {dl['duplicates']} | {d['errors']['total']} | {pct(d['latency_us'], 'p99')} | {rc} |")
    lines.append("")
text = "\n".join(lines)
(out / "results.md").write_text(text)
print(text)
PY
