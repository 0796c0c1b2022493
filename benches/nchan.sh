#!/usr/bin/env bash
# The transports compared, wsreactor and nchan side by side in one run:
# `wsreactor load compare` against `wsreactor serve` and against nginx with
# nchan (Debian's nginx-light and libnginx-mod-nchan, installed here when
# missing, as root), each on a loopback port of its own with a configuration
# of its own (benches/nchan/nginx.conf.in), the servers pinned to core 0 and
# the load generator to core 1. Each run (one server, one transport, one
# size) gets a server process of its own, so that its memory per subscriber
# is what that run made it grow by (a server that ran before would reuse
# what its allocator kept); the servers alternate, and the transports'
# order rotates each round. The table gives the medians.
#
#   bash benches/nchan.sh                       # SUBS=1000 RATE=10 SIZES="64 4096" ROUNDS=3 DURATION=10
#   SERVERS=wsreactor bash benches/nchan.sh     # only one of them
#
# Writes target/nchan/{SERVER}-{SIZE}-{ROUND}-{TRANSPORT}.json (and each
# run's own chart beside it), target/nchan/results.md (the table), and per
# size target/nchan/transports-{SIZE}.svg: the medians of every server and
# transport side by side. Stops every process it started, by pid.
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

SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
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

# start SERVER: a fresh server on its port; sets SERVER_PID, PORT, PROBE
# (the process whose CPU and memory count) and CURSOR.
start() {
    case $1 in
        wsreactor)
            RUST_LOG=warn taskset -c 0 "$BIN" serve --bind "127.0.0.1:$WS_PORT" --threads 1 &
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
            # -p: everything nginx writes stays under the prefix; the master
            # and its one worker both stay on core 0.
            taskset -c 0 nginx -p "$PREFIX" -c "$PREFIX/nginx.conf" -e "$PREFIX/error.log" &
            SERVER_PID=$!
            PORT=$NCHAN_PORT
            CURSOR=nchan
            wait_port "$PORT"
            # CPU and memory are the worker's: the master only waits.
            PROBE=$(pgrep -P "$SERVER_PID" | head -1)
            ;;
    esac
}

run=0
for size in $SIZES; do
    for round in $(seq "$ROUNDS"); do
        # Rotate the transports one a round.
        by=$(( (round - 1) % ${#TRANSPORTS[@]} ))
        for transport in "${TRANSPORTS[@]:$by}" "${TRANSPORTS[@]:0:$by}"; do
            for server in $SERVERS; do
                run=$((run + 1))
                start "$server"
                echo "nchan.sh: $server, $size B, round $round of $ROUNDS, $transport" >&2
                taskset -c 1 "$BIN" load compare --url "http://127.0.0.1:$PORT/" --channel "bench-$run" \
                    --connections "$SUBS" --connect-rate 2000 --threads 1 --rate "$RATE" --size "$size" \
                    --duration "$DURATION" --rounds 1 --transports "$transport" --cursor "$CURSOR" \
                    --server-pid "$PROBE" --quiet --max-errors 1000000000 \
                    --json "$OUT/$server-$size-$round-$transport.json" \
                    --plot "$OUT/compare-$server-$size-$transport.svg" > /dev/null
                cleanup
            done
        done
    done
done

python3 - "$OUT" "$SIZES" "$SERVERS" "$SUBS" "$RATE" <<'PY'
import json, math, statistics, sys, pathlib
out, sizes, servers = pathlib.Path(sys.argv[1]), sys.argv[2].split(), sys.argv[3].split()
subs, rate = sys.argv[4], sys.argv[5]
TRANSPORTS = ["poll", "longpoll", "sse", "ws"]

def medians(server, size):
    """Per transport, the median of each figure over the rounds (sums for what went wrong)."""
    rows = {}
    for f in sorted(out.glob(f"{server}-{size}-*-*.json")):
        for r in json.loads(f.read_text())["rows"]:
            rows.setdefault(r["transport"], []).append(r)
    result = {}
    for t, rs in rows.items():
        # None where no round had the figure (a reused server has no memory per subscriber).
        med = lambda k: statistics.median(v) if (v := [r[k] for r in rs if r[k] is not None]) else None
        result[t] = {k: med(k) for k in rs[0] if isinstance(rs[0][k], (int, float)) or rs[0][k] is None}
        result[t]["missing"] = sum(r["missing"] for r in rs)
        result[t]["errors"] = sum(r["errors"] for r in rs)
        result[t]["rounds"] = len(rs)
    return result

def opt(v, digits):
    return "n/a" if v is None else f"{v:.{digits}f}"

lines = ["| server | size | transport | deliveries/s | p50 ms | p99 ms | p99.9 ms | B in/msg | B out/msg | req/s | connects | server CPU µs/msg | server RSS B/sub | missing | errors |",
         "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
for size in sizes:
    for server in servers:
        m = medians(server, size)
        for t in TRANSPORTS:
            if t not in m:
                continue
            r = m[t]
            lines.append(f"| {server} | {size} B | {t} | {r['deliveries_per_second']:.0f} | {r['p50_us']/1000:.2f} | "
                         f"{r['p99_us']/1000:.2f} | {r['p99_9_us']/1000:.2f} | {r['bytes_in_per_delivery']:.0f} | "
                         f"{r['bytes_out_per_delivery']:.0f} | {r['requests_per_second']:.0f} | {r['connects']:.0f} | "
                         f"{opt(r['server_cpu_us_per_delivery'], 2)} | {opt(r['server_rss_bytes_per_subscriber'], 0)} | "
                         f"{r['missing']} | {r['errors']} |")

    # The chart: per server and transport, p50/p99/p99.9 on a log scale (left), bytes per message each
    # way (right). Plain SVG, no plotting library.
    W, H, top, bottom = 1100, 420, 50, 60
    groups = [(server, t, medians(server, size).get(t)) for server in servers for t in TRANSPORTS]
    groups = [g for g in groups if g[2]]
    if not groups:
        continue
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{W/2}" y="22" text-anchor="middle" font-size="16">{subs} subscribers, {rate} messages/s of {size} B: '
           'the transports compared (medians; servers pinned to one core)</text>']
    def panel(x0, w, title, bars, scale, ticks, fmt, legend):
        h = H - top - bottom
        svg.append(f'<text x="{x0 + w/2}" y="{top - 8}" text-anchor="middle">{title}</text>')
        for k, (label, color) in enumerate(legend):
            svg.append(f'<rect x="{x0 + w - 70}" y="{top + 4 + 16 * k}" width="10" height="10" fill="{color}"/>')
            svg.append(f'<text x="{x0 + w - 56}" y="{top + 13 + 16 * k}">{label}</text>')
        svg.append(f'<line x1="{x0}" y1="{top + h}" x2="{x0 + w}" y2="{top + h}" stroke="black"/>')
        for v in ticks:
            y = top + h - scale(v) * h
            svg.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + w}" y2="{y:.1f}" stroke="#ddd"/>')
            svg.append(f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end">{fmt(v)}</text>')
        slot = w / len(groups)
        for i, (server, t, r) in enumerate(groups):
            vals = bars(r)
            bw = slot * 0.8 / len(vals)
            for j, (v, color) in enumerate(vals):
                bh = max(scale(v), 0) * h
                x = x0 + i * slot + slot * 0.1 + j * bw
                svg.append(f'<rect x="{x:.1f}" y="{top + h - bh:.1f}" width="{bw:.1f}" height="{bh:.1f}" fill="{color}"/>')
            svg.append(f'<text x="{x0 + i * slot + slot / 2:.1f}" y="{top + h + 16}" text-anchor="middle" font-size="10">{t}</text>')
            svg.append(f'<text x="{x0 + i * slot + slot / 2:.1f}" y="{top + h + 30}" text-anchor="middle" font-size="10" fill="#555">{server}</text>')
    lo, hi = 0.1, 10000.0
    log = lambda v: (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
    panel(70, 560, "publish to receive, ms (log): p50, p99, p99.9",
          lambda r: [(r["p50_us"] / 1000, "#1f77b4"), (r["p99_us"] / 1000, "#ff7f0e"), (r["p99_9_us"] / 1000, "#d62728")],
          log, [0.1, 1, 10, 100, 1000, 10000], lambda v: f"{v:g}",
          [("p50", "#1f77b4"), ("p99", "#ff7f0e"), ("p99.9", "#d62728")])
    top_b = max(max(r["bytes_in_per_delivery"], r["bytes_out_per_delivery"]) for _, _, r in groups) * 1.1
    step = 10 ** math.floor(math.log10(top_b))
    panel(720, 360, "bytes on the wire per delivered message: in, out",
          lambda r: [(r["bytes_in_per_delivery"], "#2ca02c"), (r["bytes_out_per_delivery"], "#9467bd")],
          lambda v: v / top_b, [k * step for k in range(int(top_b // step) + 1)], lambda v: f"{v:g}",
          [("in", "#2ca02c"), ("out", "#9467bd")])
    svg.append('</svg>')
    (out / f"transports-{size}.svg").write_text("\n".join(svg) + "\n")

text = "\n".join(lines) + "\n"
(out / "results.md").write_text(text)
print(text)
PY
