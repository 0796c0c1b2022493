#!/usr/bin/env bash
# Soak: one `wsreactor serve` under a load that never stops changing, for
# MINUTES (30), watched through the load generator's own Prometheus
# endpoint (`wsreactor load --metrics-bind`, which with --server-pid also
# reads the server's memory and descriptors). Push servers' trackers are
# full of slow leaks that only hours show; this is the half hour that
# looks for them.
#
#   bash benches/soak.sh                     # MINUTES=30 WARMUP=5 SAMPLE=10
#   MINUTES=3 WARMUP=1 bash benches/soak.sh  # a short rehearsal
#
# What runs at once:
# - the watcher: 50 WebSocket subscribers of channel soak-watch, 20
#   messages a second for the whole soak, --metrics-bind and --server-pid:
#   nothing may be missing at the end;
# - the churn, one run after another until the end, in turn: subscribers
#   of a NEW channel (soak-N: channels made, then forgotten once their
#   history's 20 s TTL passes) over WebSocket with a reconnect storm, SSE,
#   long polling and short polling; connections that open and close
#   (churn mode with an echo, and push subscribers that leave as their 101
#   comes); echo traffic. Each run must exit 0 (nothing missing, no error).
# - a sampler: every SAMPLE seconds, the watcher's endpoint: the server's
#   resident memory and open descriptors, into samples.csv.
#
# At the end the server idles 30 s (every soak-N channel forgotten), then:
# memory growth after the warm-up (WARMUP minutes) must be under 2 MiB
# (the median of the last tenth of the samples against the median of the
# first minute after the warm-up), and the descriptors must be back to
# the idle count measured before any load. Writes target/soak/samples.csv
# and target/soak/results.md; exit 0 when all of it holds, 1 otherwise,
# 2 on a setup error. Stops every process it started, by pid.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MINUTES=${MINUTES:-30}
WARMUP=${WARMUP:-5}
SAMPLE=${SAMPLE:-10}
BIN=${BIN:-target/release/wsreactor}
OUT=target/soak

[ -x "$BIN" ] || cargo build --release
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT/samples.csv" "$OUT/runs.log"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
mport=$(free_port)
cat >"$OUT/soak.toml" <<EOF
[pubsub]
# A channel with no subscribers is forgotten once its history is empty.
history_ttl = "20s"
EOF

pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

"$BIN" serve --bind "127.0.0.1:$port" --config "$OUT/soak.toml" >"$OUT/serve.log" 2>&1 &
server_pid=$!
pids+=("$server_pid")
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.1
done
curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || { echo "soak: the server did not start" >&2; cat "$OUT/serve.log" >&2; exit 2; }
fds() { find "/proc/$server_pid/fd" -mindepth 1 -maxdepth 1 | wc -l; }
rss() { awk '/^VmRSS/ { print $2 * 1024 }' "/proc/$server_pid/status"; }
idle_fds=$(fds)
idle_rss=$(rss)
echo "soak: server pid $server_pid on $port: $idle_fds descriptors, $((idle_rss / 1024)) KiB resident at idle"

start=$(date +%s)
deadline=$((start + MINUTES * 60))
L=("$BIN" load --quiet)
http="http://127.0.0.1:$port/"

# The watcher, for the whole soak.
"${L[@]}" --mode subscribe --url "$http" --channel soak-watch --connections 50 --rate 20 --size 64 --text \
    --duration "$((MINUTES * 60))s" --metrics-bind "127.0.0.1:$mport" --server-pid "$server_pid" \
    --json "$OUT/watch.json" >"$OUT/watch.txt" 2>&1 &
watcher=$!
pids+=("$watcher")

# The churn: a run at a time until the deadline; each failure is logged.
churn() {
    local i=0 status
    while [ "$(date +%s)" -lt $((deadline - 40)) ]; do
        i=$((i + 1))
        local c="soak-$i" args
        case $((i % 7)) in
            0) args=(--mode subscribe --url "$http" --channel "$c" --transport ws --connections 300 --rate 20
                     --duration 20s --reconnect-storm 8s --reconnect-jitter 2s) ;;
            1) args=(--mode subscribe --url "$http" --channel "$c" --transport sse --connections 300 --rate 20 --duration 15s) ;;
            2) args=(--mode subscribe --url "$http" --channel "$c" --transport longpoll --connections 200 --rate 20 --duration 15s) ;;
            3) args=(--mode subscribe --url "$http" --channel "$c" --transport poll --poll-interval 500ms
                     --connections 200 --rate 20 --duration 15s) ;;
            4) args=(--mode churn --url "ws://127.0.0.1:$port/" --connections 20 --duration 10s) ;;
            5) args=(--mode churn --close-on-open --url "ws://127.0.0.1:$port/ws/$c" --connections 20 --duration 10s) ;;
            6) args=(--mode echo --url "ws://127.0.0.1:$port/" --connections 100 --rate 1000 --duration 10s) ;;
        esac
        status=0
        "${L[@]}" --text --size 64 --json "$OUT/run-$((i % 7)).json" "${args[@]}" >"$OUT/run.txt" 2>&1 || status=$?
        echo "$(($(date +%s) - start)) run $i: ${args[*]}: exit $status" >>"$OUT/runs.log"
        if [ "$status" != 0 ]; then
            cp "$OUT/run.txt" "$OUT/failed-$i.txt"
        fi
    done
}
churn &
churner=$!
pids+=("$churner")

# The sampler: the watcher's endpoint, until the watcher ends.
echo "t_s,server_rss_bytes,server_open_fds,load_received_total" >"$OUT/samples.csv"
metric() { awk -v m="$1" '$1 == m { print $2 }' <<<"$2"; }
while kill -0 "$watcher" 2>/dev/null; do
    sleep "$SAMPLE"
    page=$(curl -sf --max-time 5 "http://127.0.0.1:$mport/metrics" || true)
    [ -n "$page" ] || continue
    r=$(metric wsreactor_load_server_resident_bytes "$page")
    f=$(metric wsreactor_load_server_open_fds "$page")
    n=$(metric wsreactor_load_received_total "$page")
    [ -n "$r" ] && echo "$(($(date +%s) - start)),$r,$f,$n" >>"$OUT/samples.csv"
done
watch_status=0
wait "$watcher" || watch_status=$?
wait "$churner" || true
# Every soak-N channel's history expires (20 s) and it is forgotten.
sleep 30
end_fds=$(fds)
end_rss=$(rss)
runs=$(wc -l <"$OUT/runs.log")
failed=$(grep -vc ": exit 0$" "$OUT/runs.log" || true)

python3 - "$OUT" "$WARMUP" "$idle_fds" "$end_fds" "$idle_rss" "$end_rss" "$watch_status" "$runs" "$failed" "$MINUTES" <<'EOF'
import csv, json, statistics, sys
out, warmup, idle_fds, end_fds, idle_rss, end_rss, watch_status, runs, failed, minutes = sys.argv[1:]
warmup, idle_fds, end_fds = int(warmup) * 60, int(idle_fds), int(end_fds)
idle_rss, end_rss, runs, failed = int(idle_rss), int(end_rss), int(runs), int(failed)
rows = [(int(r["t_s"]), int(r["server_rss_bytes"]), int(r["server_open_fds"])) for r in csv.DictReader(open(f"{out}/samples.csv"))]
after = [r for r in rows if r[0] >= warmup]
mib = lambda b: b / (1 << 20)
w = json.load(open(f"{out}/watch.json"))
d = w["subscribe"]["deliveries"]
lines = [f"# Soak: {minutes} minutes, warm-up {warmup // 60} min, {len(rows)} samples, {runs} churn runs ({failed} failed)", ""]
ok = failed == 0 and int(watch_status) == 0 and d["missing"] == 0 and end_fds == idle_fds
if len(after) >= 4:
    first = statistics.median(r[1] for r in after if r[0] < after[0][0] + 60)
    tail = statistics.median(r[1] for r in after[-max(2, len(after) // 10):])
    # Least squares slope of RSS over the samples after the warm-up.
    n = len(after)
    mt = sum(r[0] for r in after) / n
    mr = sum(r[1] for r in after) / n
    slope = sum((r[0] - mt) * (r[1] - mr) for r in after) / max(1e-9, sum((r[0] - mt) ** 2 for r in after))
    growth = tail - first
    ok = ok and growth < 2 * (1 << 20)
    lines += [
        "| | value |", "| --- | --- |",
        f"| server RSS at idle, before any load | {mib(idle_rss):.1f} MiB |",
        f"| after the warm-up (median of its first minute) | {mib(first):.1f} MiB |",
        f"| at the end of the load (median of the last tenth) | {mib(tail):.1f} MiB |",
        f"| growth after the warm-up | {growth / 1024:+.0f} KiB (limit 2 MiB) |",
        f"| trend after the warm-up | {slope * 3600 / 1024:+.0f} KiB/hour |",
        f"| highest | {mib(max(r[1] for r in rows)):.1f} MiB |",
        f"| after 30 s idle at the end | {mib(end_rss):.1f} MiB |",
        f"| descriptors: idle before, most during, idle after | {idle_fds}, {max(r[2] for r in rows)}, {end_fds} |",
    ]
else:
    ok = False
    lines.append(f"too few samples after the warm-up: {len(after)}")
lines += ["", f"watcher: {d['subscribers']} subscribers, {d['received']} of {d['expected']} deliveries, "
          f"{d['missing']} missing, {d['duplicates']} duplicate, errors {w['errors']['total']}, exit {watch_status}",
          f"verdict: {'passed' if ok else 'FAILED'}"]
open(f"{out}/results.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(0 if ok else 1)
EOF
