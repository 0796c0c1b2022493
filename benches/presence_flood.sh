#!/bin/bash
# Presence flood: 10,000 connections joining and leaving one presence channel
# (churn at /ws/room-1, closed loop) while a watcher counts join/leave events
# per second (SSE, join_leave=1), the API's answer time is sampled, and the
# server's RSS is read every second. Every process it starts it stops by
# its pid. Usage: BIN=target/release/wsreactor benches/presence_flood.sh [local|redis] [SECONDS]
B=${BIN:-target/release/wsreactor}
MODE=${1:-local}; SECS=${2:-20}; PORT=19411; KEY=flood-api-key-0123456789
OUT=${OUT_DIR:-/tmp/wsreactor-presence}/flood-$MODE; rm -rf $OUT; mkdir -p $OUT
cat > $OUT/cfg.toml <<CFG
[server]
threads = 1
[presence]
channels = ["room-*"]
max_events_per_second = 100
ttl = "30s"
[api]
key = "$KEY"
CFG
RP=""
if [ "$MODE" = redis ]; then
  redis-server --port 16411 --save '' --appendonly no --daemonize no > $OUT/redis.log 2>&1 &
  RP=$!; sleep 0.5
  BROKER="--broker redis://127.0.0.1:16411/0"
fi
taskset -c 1 $B serve --bind 127.0.0.1:$PORT --config $OUT/cfg.toml $BROKER > $OUT/server.log 2>&1 &
SP=$!; sleep 1
# The watcher: one event stream with join_leave, its events stamped by second.
( { curl -sN "http://127.0.0.1:$PORT/sse/room-1?join_leave=1" & echo $! > $OUT/curl.pid; wait; } | while IFS= read -r line; do
    case "$line" in "event: join"|"event: leave") echo "$(date +%s) $line";; esac
  done > $OUT/events.txt ) &
WP=$!
# RSS every second.
( while kill -0 $SP 2>/dev/null; do echo "$(date +%s) $(awk '/VmRSS/{print $2}' /proc/$SP/status)"; sleep 1; done > $OUT/rss.txt ) &
RSSP=$!
# The API every 200 ms: the presence's stats and list.
( end=$((SECONDS+SECS+2)); while [ $SECONDS -lt $end ]; do
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -H "X-API-Key: $KEY" http://127.0.0.1:$PORT/api/presence/room-1/stats
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -H "X-API-Key: $KEY" http://127.0.0.1:$PORT/api/presence/room-1
    sleep 0.2
  done > $OUT/api.txt ) &
AP=$!
sleep 1
taskset -c 0 $B load --url ws://127.0.0.1:$PORT/ws/room-1 --mode churn --close-on-open \
  --connections 10000 --duration ${SECS}s --timeout 10s > $OUT/load.txt 2>&1
echo "load exit $?"
sleep 2
curl -s http://127.0.0.1:$PORT/metrics | grep -E '^wsreactor_presence_events_total' > $OUT/metrics.txt
curl -s -H "X-API-Key: $KEY" http://127.0.0.1:$PORT/api/presence/room-1/stats > $OUT/final_stats.txt
kill $AP $(cat $OUT/curl.pid) 2>/dev/null; kill $SP; wait $SP 2>/dev/null; kill $RSSP 2>/dev/null
wait $WP 2>/dev/null
[ -n "$RP" ] && kill $RP && wait $RP 2>/dev/null
echo "== load"; grep -E "^cycles|^ +[0-9]+ started|^errors|^latency" -A0 $OUT/load.txt | head -8
echo "== events per second (max, and the seconds over 100)"; awk '{print $1}' $OUT/events.txt | uniq -c | sort -n | tail -3
awk '{print $1}' $OUT/events.txt | uniq -c | awk '$1>100{n++} END{print n+0, "seconds over 100"}'
echo "== metrics"; cat $OUT/metrics.txt
echo "== api: answers, non-200, max time"; awk '{n++; if($1!=200)bad++; if($2>m)m=$2} END{print n, bad+0, m}' $OUT/api.txt
echo "== rss kB: first, max, last"; awk 'NR==1{f=$2} {if($2>m)m=$2; l=$2} END{print f, m, l}' $OUT/rss.txt
echo "== final presence"; cat $OUT/final_stats.txt; echo
