#!/bin/bash
# A presence query's time for a channel of 10,000 members: 10,000
# subscribers of /ws/room-1 held by `wsreactor load`, then 21 timed calls
# each of /api/presence/room-1 and /stats; medians. Every process it
# starts it stops by its pid. Usage: benches/presence_query.sh [local|redis]
B=${BIN:-target/release/wsreactor}
MODE=${1:-local}; PORT=19412; KEY=query-api-key-0123456789
OUT=${OUT_DIR:-/tmp/wsreactor-presence}/query-$MODE; rm -rf $OUT; mkdir -p $OUT
printf '[presence]\nchannels = ["room-*"]\n[api]\nkey = "%s"\n' $KEY > $OUT/cfg.toml
RP=""; BROKER=""
if [ "$MODE" = redis ]; then
  redis-server --port 16412 --save '' --appendonly no > $OUT/redis.log 2>&1 &
  RP=$!; sleep 0.5; BROKER="--broker redis://127.0.0.1:16412/0"
fi
taskset -c 1 $B serve --bind 127.0.0.1:$PORT --config $OUT/cfg.toml $BROKER > $OUT/server.log 2>&1 &
SP=$!; sleep 1
taskset -c 0 $B load --url http://127.0.0.1:$PORT/ --channel room-1 --mode subscribe --connections 10000 \
  --connect-rate 5000 --rate 1 --duration 60s > $OUT/load.txt 2>&1 &
LP=$!
for i in $(seq 60); do
  n=$(curl -s -H "X-API-Key: $KEY" http://127.0.0.1:$PORT/api/presence/room-1/stats | sed -E 's/.*"clients":([0-9]+).*/\1/')
  [ "$n" = 10000 ] && break; sleep 0.5
done
echo "members: $n"
for path in room-1 room-1/stats; do
  for i in $(seq 21); do
    curl -s -o $OUT/body -w '%{time_total} %{size_download}\n' -H "X-API-Key: $KEY" http://127.0.0.1:$PORT/api/presence/$path
  done | sort -n | awk -v p=$path '{t[NR]=$1; b=$2} END{printf "%s: median %.1f ms, min %.1f, max %.1f, %d bytes\n", p, t[11]*1000, t[1]*1000, t[21]*1000, b}'
done
kill -INT $LP; wait $LP; kill $SP; wait $SP 2>/dev/null
[ -n "$RP" ] && kill $RP && wait $RP 2>/dev/null
grep -E "^errors" $OUT/load.txt
