#!/usr/bin/env bash
# Redis fan-out bench: the same fan-out load through the Redis broker
# (`serve --broker redis://...`) and through the local hub, in one run, in
# interleaved rounds, so that the two are measured on the same machine
# state. A bench script, not a test.
#
#   bash benches/redis_fanout.sh                       # 1,000 and 10,000 subscribers, 3 rounds, 20/s for 15 s
#   SUBSCRIBERS="200 1000" ROUNDS=1 DURATION=4s bash benches/redis_fanout.sh    # smoke test
#   RATE=500 SAT_PUBLISHERS=16 bash benches/redis_fanout.sh
#   KEEP_WORK=1 bash benches/redis_fanout.sh          # keep each run's JSON summary and server log
#
# It starts its own `redis-server` on a free loopback port (no persistence,
# its own temporary directory) and, for every measurement, a fresh
#
#   taskset -c 0 $BIN serve --threads 1 --bind 127.0.0.1:PORT [--broker redis://127.0.0.1:RPORT/0]
#
# on a fresh channel, with Redis emptied (FLUSHALL) before each one. Two
# measurements per broker and round, the broker order alternating from
# round to round (local, redis / redis, local):
#
#   fan-out      for each N in SUBSCRIBERS: $BIN load --mode subscribe
#                --connections N --size SIZE --rate RATE --duration DURATION;
#                deliveries/s, publish-to-receive latency p50/p99 (from each
#                message's scheduled time, so a publisher held up is charged
#                for it), and CPU seconds (user + system, /proc/PID/stat) of
#                the server and of redis-server over the whole load run
#                (ramp and handshakes included), per delivery.
#   closed loop  the same without --rate, SAT_PUBLISHERS keep-alive
#                publishers each with one POST in flight, SAT_SUBSCRIBERS
#                subscribers: the publishes per second one channel sustains
#                (published.accepted / time.measured_s) and deliveries/s.
#
# CPU placement (the machine this was written for has two cores): the
# server, with all its threads (the worker and, with Redis, the broker's
# command and pubsub threads), is pinned to CPU SERVER_CPU (0); the load
# generator and redis-server are both pinned to CPU LOAD_CPU / REDIS_CPU (1),
# so with the Redis broker the load generator shares its core with Redis.
# The load generator sees one CPU and so runs one worker thread.
#
# Medians over the rounds are printed at the end as Markdown tables, with
# the ratio redis/local. Every process it starts is stopped by its pid;
# every load run is bounded by `timeout`. Exit status: 0 when every run
# had every subscriber get every accepted message, no errors and no
# publisher falling behind its rate; 1 otherwise; 2 on a setup error.
set -euo pipefail

BIN=${BIN:-target/release/wsreactor}
SUBSCRIBERS=${SUBSCRIBERS:-1000 10000}
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-20}
DURATION=${DURATION:-15s}
SIZE=${SIZE:-64}
CONNECT_RATE=${CONNECT_RATE:-5000}
SAT_SUBSCRIBERS=${SAT_SUBSCRIBERS:-1000}
SAT_PUBLISHERS=${SAT_PUBLISHERS:-8}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
REDIS_CPU=${REDIS_CPU:-1}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CLI=${REDIS_CLI:-redis-cli}
KEEP_WORK=${KEEP_WORK:-}

setup_error() { echo "redis_fanout: $*" >&2; exit 2; }
[ -x "$BIN" ] || setup_error "no $BIN: cargo build --release first"
for tool in "$REDIS_SERVER" "$REDIS_CLI" taskset timeout curl python3; do
    command -v "$tool" >/dev/null || setup_error "$tool is not installed"
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || setup_error "ROUNDS=$ROUNDS is not a positive number"
for n in $SUBSCRIBERS $SAT_SUBSCRIBERS; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || setup_error "subscriber count $n is not a positive number"
done
# DURATION in whole seconds (for the time bound of each load run).
duration_s=$(python3 -c '
import re, sys
m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", sys.argv[1])
if not m: sys.exit(1)
print(int(float(m[1]) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[m[2]]) + 1)' "$DURATION") \
    || setup_error "DURATION=$DURATION is not a duration like 15s or 1m"

work=$(mktemp -d)
redis_pid=""
server_pid=""

# Stop a process we started, by pid: SIGTERM, then SIGKILL after 10 s.
stop_pid() {
    local pid=$1
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    if [ -n "$server_pid" ]; then stop_pid "$server_pid"; fi
    if [ -n "$redis_pid" ]; then stop_pid "$redis_pid"; fi
    if [ -n "$KEEP_WORK" ]; then
        echo "redis_fanout: summaries and logs kept in $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# CPU seconds (user + system) process $1 has used so far.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"; }

# Redis, for the whole run. `taskset` execs it, so $! is redis-server.
rport=$(free_port)
mkdir "$work/redis"
taskset -c "$REDIS_CPU" "$REDIS_SERVER" --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --dir "$work/redis" >"$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 100); do
    [ "$("$REDIS_CLI" -p "$rport" ping 2>/dev/null)" = PONG ] && break
    sleep 0.1
done
[ "$("$REDIS_CLI" -p "$rport" ping 2>/dev/null)" = PONG ] || { cat "$work/redis.log" >&2; setup_error "redis-server did not start"; }
redis_version=$("$REDIS_CLI" -p "$rport" info server | sed -n 's/^redis_version:\([^\r]*\).*/\1/p')

# One measurement: run_one BROKER KIND N ROUND; KIND is fanout or closed.
# Appends one line of JSON (what was run, where its summary is, the CPU
# seconds, the exit status) to $work/runs.jsonl and prints one line.
seq_no=0
run_one() {
    local broker=$1 kind=$2 n=$3 round=$4
    seq_no=$((seq_no + 1))
    local tag="$seq_no-$kind-$broker-$n-r$round"
    local channel="rfo-$$-$seq_no-$kind-$broker-$n"
    local port broker_args=() load_args=()
    port=$(free_port)
    [ "$broker" = redis ] && broker_args=(--broker "redis://127.0.0.1:$rport/0")
    if [ "$kind" = fanout ]; then
        load_args=(--rate "$RATE")
    else
        load_args=(--publishers "$SAT_PUBLISHERS")
    fi

    "$REDIS_CLI" -p "$rport" flushall >/dev/null || setup_error "FLUSHALL failed"
    taskset -c "$SERVER_CPU" "$BIN" serve --threads 1 --bind "127.0.0.1:$port" "${broker_args[@]}" \
        >"$work/$tag.serve.log" 2>&1 &
    server_pid=$!
    # /readyz: 200 once the broker can carry out requests (the Redis
    # broker has both of its connections up).
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
        sleep 0.1
    done
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null \
        || { cat "$work/$tag.serve.log" >&2; setup_error "server ($broker) did not become ready"; }

    local s0 r0 s1 r1 rc=0 bound
    bound=$((duration_s + n / CONNECT_RATE + 60))
    s0=$(cpu_of "$server_pid")
    r0=$(cpu_of "$redis_pid")
    timeout -k 10 "$bound" taskset -c "$LOAD_CPU" "$BIN" load --url "ws://127.0.0.1:$port/ws/$channel" \
        --mode subscribe --connections "$n" --connect-rate "$CONNECT_RATE" --size "$SIZE" \
        "${load_args[@]}" --duration "$DURATION" --json "$work/$tag.json" --quiet \
        >"$work/$tag.load.log" 2>&1 || rc=$?
    s1=$(cpu_of "$server_pid" 2>/dev/null || echo nan)
    r1=$(cpu_of "$redis_pid")
    local alive=1
    kill -0 "$server_pid" 2>/dev/null || alive=0
    stop_pid "$server_pid"
    server_pid=""

    python3 - "$work" "$tag" "$broker" "$kind" "$n" "$round" "$s0" "$s1" "$r0" "$r1" "$rc" "$alive" <<'EOF'
import json, os, sys
work, tag, broker, kind, n, rnd, s0, s1, r0, r1, rc, alive = sys.argv[1:]
run = dict(tag=tag, broker=broker, kind=kind, n=int(n), round=int(rnd),
           server_cpu=float(s1) - float(s0), redis_cpu=float(r1) - float(r0),
           rc=int(rc), alive=alive == "1", json=os.path.join(work, tag + ".json"))
problems = []
if run["rc"]:
    problems.append(f"load exit status {rc}" + (" (timed out)" if run["rc"] in (124, 137) else ""))
if not run["alive"]:
    problems.append("server died")
try:
    r = json.load(open(run["json"]))
except (OSError, ValueError) as err:
    problems.append(f"no summary: {err}")
    r = None
if r:
    s, e = r["subscribe"], r["errors"]
    p, d = s["published"], s["deliveries"]
    if e["total"]:
        kinds = []
        for key, value in e.items():
            if key == "total" or not value:
                continue
            if isinstance(value, dict):
                value = {k: v for k, v in value.items() if v}
                if not value:
                    continue
            kinds.append(f"{key} {value}")
        problems.append(f"{e['total']} errors ({', '.join(kinds)})")
    if r["connections"]["opened"] != r["connections"]["target"]:
        problems.append(f"{r['connections']['opened']} of {r['connections']['target']} connections opened")
    if d["missing"]:
        problems.append(f"{d['missing']} missing")
    if d["complete_subscribers"] != d["subscribers"]:
        problems.append(f"{d['complete_subscribers']} of {d['subscribers']} subscribers complete")
    if p["rejected"] or p["unconfirmed"]:
        problems.append(f"{p['rejected']} rejected, {p['unconfirmed']} unconfirmed publishes")
    if p["fell_behind"]:
        problems.append(f"publisher fell behind ({p['unsent']} due and unsent)")
    secs = r["time"]["measured_s"]
    lat = r["latency_us"]
    run.update(deliveries_s=d["per_second"], received=d["received"], missing=d["missing"],
               duplicates=d["duplicates"], out_of_order=d["out_of_order"], errors=e["total"],
               accepted=p["accepted"], publishes_s=p["accepted"] / secs if secs else 0.0,
               p50_ms=lat["p50"] / 1000, p99_ms=lat["p99"] / 1000,
               post_p99_ms=s["publish_us"]["p99"] / 1000,
               subscribers_min=p["subscribers_min"], subscribers_max=p["subscribers_max"])
run["problems"] = problems
with open(os.path.join(work, "runs.jsonl"), "a") as f:
    f.write(json.dumps(run) + "\n")
line = f"round {rnd} {kind:6} {broker:5} N={n:<6}"
if r:
    per = lambda cpu: f"{cpu / run['received'] * 1e6:.2f}" if run["received"] else "-"
    line += (f" {run['publishes_s']:8,.1f} publishes/s {run['deliveries_s']:11,.0f} deliveries/s"
             f"  p50 {run['p50_ms']:7.2f} ms p99 {run['p99_ms']:7.2f} ms"
             f"  CPU server {run['server_cpu']:5.2f} s ({per(run['server_cpu'])} µs/delivery)"
             f" redis {run['redis_cpu']:5.2f} s ({per(run['redis_cpu'])} µs/delivery)"
             f"  subscribers/publish {run['subscribers_min']}..{run['subscribers_max']}")
print(line + ("  FAILED: " + "; ".join(problems) if problems else ""), flush=True)
EOF
    if [ "$rc" -ne 0 ] || [ "$alive" -eq 0 ]; then
        echo "--- load output ($tag)" >&2; tail -n 30 "$work/$tag.load.log" >&2
        echo "--- server log ($tag)" >&2; tail -n 30 "$work/$tag.serve.log" >&2
    fi
    # Broker trouble shows in the server log (warnings and errors).
    if grep -E ' (WARN|ERROR) ' "$work/$tag.serve.log" >"$work/$tag.warn" 2>/dev/null; then
        echo "    server log of $tag: $(wc -l <"$work/$tag.warn") warning/error lines, first: $(head -n 1 "$work/$tag.warn")"
    fi
}

echo "redis_fanout: $BIN, redis-server $redis_version on 127.0.0.1:$rport (pid $redis_pid, CPU $REDIS_CPU);" \
    "server --threads 1 on CPU $SERVER_CPU, load generator on CPU $LOAD_CPU"
echo "fan-out: subscribers $SUBSCRIBERS, $SIZE B at $RATE/s for $DURATION; closed loop: $SAT_SUBSCRIBERS subscribers," \
    "$SAT_PUBLISHERS publishers, $DURATION; $ROUNDS rounds"
echo
for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then order=(local redis); else order=(redis local); fi
    for n in $SUBSCRIBERS; do
        for broker in "${order[@]}"; do run_one "$broker" fanout "$n" "$round"; done
    done
    for broker in "${order[@]}"; do run_one "$broker" closed "$SAT_SUBSCRIBERS" "$round"; done
done

python3 - "$work/runs.jsonl" "$RATE" "$SIZE" "$DURATION" "$SAT_PUBLISHERS" <<'EOF'
import json, statistics, sys
path, rate, size, duration, publishers = sys.argv[1:]
runs = [json.loads(line) for line in open(path)]
good = [r for r in runs if "deliveries_s" in r]
med = lambda xs: statistics.median(xs) if xs else float("nan")

def group(kind, broker, n):
    return [r for r in good if r["kind"] == kind and r["broker"] == broker and r["n"] == n]

def stats(rs):
    if not rs:
        return None
    m = lambda key: med([r[key] for r in rs])
    per = lambda key: med([r[key] / r["received"] * 1e6 for r in rs if r["received"]])
    return dict(rounds=len(rs), deliveries_s=m("deliveries_s"), publishes_s=m("publishes_s"),
                p50=m("p50_ms"), p99=m("p99_ms"), server_us=per("server_cpu"), redis_us=per("redis_cpu"))

def ratio(a, b):
    return f"{a / b:.2f}" if a == a and b == b and b else "-"

ns = sorted({r["n"] for r in runs if r["kind"] == "fanout"})
print(f"\n### Fan-out, {size} B at {rate}/s for {duration} (medians over rounds)\n")
print("| broker | subscribers | rounds | deliveries/s | p50 ms | p99 ms | server CPU µs/delivery "
      "| Redis CPU µs/delivery | deliveries/s redis/local | p99 redis/local |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for n in ns:
    local = stats(group("fanout", "local", n))
    for broker in ("local", "redis"):
        s = stats(group("fanout", broker, n))
        if s is None:
            print(f"| {broker} | {n:,} | 0 | - | - | - | - | - | - | - |")
            continue
        redis_us = f"{s['redis_us']:.3f}" if broker == "redis" else "-"
        d_ratio = ratio(s["deliveries_s"], local["deliveries_s"]) if broker == "redis" and local else ""
        p_ratio = ratio(s["p99"], local["p99"]) if broker == "redis" and local else ""
        print(f"| {broker} | {n:,} | {s['rounds']} | {s['deliveries_s']:,.0f} | {s['p50']:.2f} | {s['p99']:.2f} "
              f"| {s['server_us']:.3f} | {redis_us} | {d_ratio} | {p_ratio} |")

sat_ns = sorted({r["n"] for r in runs if r["kind"] == "closed"})
print(f"\n### Closed loop: publishes per second one channel sustains, {publishers} publishers, {duration} (medians over rounds)\n")
print("| broker | subscribers | rounds | publishes/s | deliveries/s | p50 ms | p99 ms | server CPU µs/delivery "
      "| Redis CPU µs/delivery | publishes/s redis/local |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for n in sat_ns:
    local = stats(group("closed", "local", n))
    for broker in ("local", "redis"):
        s = stats(group("closed", broker, n))
        if s is None:
            print(f"| {broker} | {n:,} | 0 | - | - | - | - | - | - | - |")
            continue
        redis_us = f"{s['redis_us']:.3f}" if broker == "redis" else "-"
        ratio_s = ratio(s["publishes_s"], local["publishes_s"]) if broker == "redis" and local else ""
        print(f"| {broker} | {n:,} | {s['rounds']} | {s['publishes_s']:,.1f} | {s['deliveries_s']:,.0f} "
              f"| {s['p50']:.2f} | {s['p99']:.2f} | {s['server_us']:.3f} | {redis_us} | {ratio_s} |")
print("\nLatency: fan-out from each message's scheduled time; closed loop from its send. "
      "CPU: user + system over the whole load run (ramp included) / deliveries received.")

bad = [r for r in runs if r["problems"]]
if bad:
    print(f"\n{len(bad)} of {len(runs)} runs FAILED:")
    for r in bad:
        print(f"  round {r['round']} {r['kind']} {r['broker']} N={r['n']}: {'; '.join(r['problems'])}")
    sys.exit(1)
print(f"\nall {len(runs)} runs clean: every subscriber got every accepted message, no errors")
EOF
