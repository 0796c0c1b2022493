#!/usr/bin/env bash
# wsreactor side by side with tokio-tungstenite and fastwebsockets (issue 6),
# and with uWebSockets (issue 31) where its prebuilt echo server is at
# ../shared/peers/uwebsockets/uws-echo (UWS_DIR): plain workloads only, it
# is built without TLS. The floor (src/bin/floor_echo.rs: one read and one
# write per readable connection, nothing else) runs the plain echo
# workloads in the same rounds, and the table gives wsreactor's ratio to
# it (server CPU per message against the floor's).
#
#   bash benches/compare/run.sh            # ROUNDS=3 DURATION=5 by default
#   ROUNDS=5 DURATION=10 bash benches/compare/run.sh
#   WORKLOADS="a c" bash benches/compare/run.sh   # a subset
#   WORKLOADS="ta tc td te" bash benches/compare/run.sh   # the TLS ones only
#   BEFORE=/tmp/old/wsreactor SERVERS="wsreactor wsreactor-before" bash benches/compare/run.sh
#                                          # this build against an older one (no regression check);
#                                          # the table then goes to the run's out/ directory
#
# Builds wsreactor and the peers' echo servers (release), then for each
# workload runs every server in turn, interleaved (A B C A B C ...), ROUNDS
# rounds, each measurement on a freshly started server: the server pinned to
# core 0 with one worker thread, the client (`wsreactor load`, one thread, or
# benches/idle_rss.py for memory) pinned to core 1. measure.py samples both
# processes' CPU time; table.py prints the medians, wsreactor's ratio to the
# best peer, and writes them to benches/compare/results.md (the plain
# workloads) and benches/compare/results-tls.md (the TLS ones), each file
# only when the run measured some of its workloads, each with its own date,
# commit and load average.
#
# Workloads (all on 127.0.0.1):
#   a  100 connections, 20 B text, 1 in flight each: messages/s, p99
#   b  the same with 16 in flight each (pipelined): messages/s
#   c  10 connections, 16 KiB binary, 1 in flight each: MB/s of echoed payload
#   d  new connections/s, each doing a handshake, one echo (20 B text) and a
#      close: churn mode, 50 slots in a closed loop (each starts its next
#      connection as soon as the last one is closed), cycles completed in the
#      window per second. 50 in progress stay far below every server's listen
#      backlog. All three servers close the TCP connection first (RFC 6455
#      §7.1.1), so TIME_WAIT lands on the server's side and the client's
#      ephemeral ports are reused at once (a SYN into a TIME_WAIT socket with
#      a later timestamp is accepted); the client reports a server that does
#      not (churn.server_kept_open), and --source-ips would spread its ports
#      over more addresses if one ever did
#   e  server RSS per idle connection at 1,000 and 19,000 connections, each
#      echoed once (benches/idle_rss.py): VmRSS growth / connections, after
#      100 warm-up connections opened, echoed and closed, so that what a
#      fresh server does once (page in its code, start its runtime) is not
#      counted per connection
#   f  10,000 connections at 1 message/s each (20 B text): p99, p99.9 from
#      the scheduled send time; opened at 2,000/s, which every server keeps
#      up with, and measured once all are open
#   u  uWebSockets' own load client ($UWS_DIR/uws-load-test, its
#      benchmarks/load_test.c: 100 connections, 20 B, each sending its next
#      message when its echo came) through uws_load_test.py: the median of
#      its "Msg/sec" reports after the first (which covers the connecting);
#      skipped when the binary is absent
#
# The same over TLS (wss://), in the same run and interleaved alike: every
# server serves TLS on its listener with one certificate made for the run
# (openssl: self-signed, ECDSA P-256 key, ecdsa-with-SHA256, in out/), the
# peers through tokio-rustls, wsreactor with its own rustls; all three with
# rustls 0.23 and the ring provider, rustls's defaults (TLS 1.3 and 1.2,
# its cipher suites, key exchange groups and session cache), ALPN http/1.1.
# The client is `wsreactor load wss://... --insecure` (rustls, ring, its
# default session resumption), so TLS 1.3, X25519 and TLS_AES_256_GCM_SHA384
# are what is negotiated:
#   ta  (a) over TLS: 100 connections, 20 B text, 1 in flight: messages/s, p99
#   tc  (c) over TLS: 10 connections, 16 KiB binary: MB/s echoed
#   td  (d) over TLS: new connections/s, each a TCP connect, TLS handshake,
#      WebSocket handshake, one echo and a close, 50 slots in a closed loop.
#      The client's rustls resumes a session whenever its cache holds one of
#      the tickets every server sends (TLS 1.3 PSK with X25519: no
#      certificate, no server signature), so part of the handshakes are
#      resumed ones; measure.py's server_io (bytes the server wrote) tells
#      how many, and table.py prints it per cycle
#   te  server RSS per idle TLS connection at 10,000 connections, each
#      echoed once, after 100 warm-up connections (idle_rss_tls.py here: the
#      idle_rss.py measurement with Python's ssl as the TLS client)
#
# Everything it starts is stopped by pid on exit. Raw records go to
# benches/compare/out/ (git-ignored).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
UWS_DIR=${UWS_DIR:-$(cd "$(dirname "$0")/../../.." && pwd)/shared/peers/uwebsockets}
WORKLOADS=${WORKLOADS:-"a b c d e f$([ -x "$UWS_DIR/uws-load-test" ] && echo " u") ta tc td te"}
PEERS="wsreactor tokio-tungstenite fastwebsockets"
[ -x "$UWS_DIR/uws-echo" ] && PEERS+=" uws"
# The floor (src/bin/floor_echo.rs): only the system calls an echo needs.
PEERS+=" floor"
SERVERS=${SERVERS:-$PEERS}
BEFORE=${BEFORE:-}
SERVER_CORE=${SERVER_CORE:-0}
CLIENT_CORE=${CLIENT_CORE:-1}

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
wsr=$root/target/release/wsreactor
peers=$here/target/release
out=$here/out/$(date +%Y%m%d-%H%M%S)
records=$out/records.jsonl
mkdir -p "$out"

die() { echo "run.sh: $*" >&2; exit 2; }
log() { echo "run.sh: $*" >&2; }

command -v taskset >/dev/null || die "taskset is needed (util-linux)"
command -v prlimit >/dev/null || die "prlimit is needed (util-linux)"
command -v python3 >/dev/null || die "python3 is needed"
[ "$(nproc)" -ge 2 ] || die "two cores are needed (server on one, client on the other)"
nofile=$(ulimit -Hn)
[ "$nofile" = unlimited ] && nofile=1048576
[ "$nofile" -ge 20000 ] || die "the descriptor hard limit is $nofile; workload e needs 20000"

is_tls() { [[ $1 == t* ]]; }
plain_workloads= tls_workloads=
for w in $WORKLOADS; do
    if is_tls "$w"; then tls_workloads+=" $w"; else plain_workloads+=" $w"; fi
done

# One certificate for every server, so that the handshakes cost the same
# to make: self-signed, an ECDSA key on P-256 (prime256v1). The client
# (--insecure, Python's ssl with CERT_NONE) does not check the chain, but it
# still verifies the handshake's signature.
tls_cert=$out/tls-cert.pem tls_key=$out/tls-key.pem tls_desc=
if [ -n "$tls_workloads" ]; then
    command -v openssl >/dev/null || die "openssl is needed for the TLS workloads' certificate"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
        -addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout "$tls_key" -out "$tls_cert" 2>"$out/openssl.log" ||
        die "openssl could not make the certificate (see $out/openssl.log)"
    tls_desc="self-signed, $(openssl x509 -in "$tls_cert" -noout -text |
        awk -F': *' '/Public Key Algorithm/ { k = $2 } /ASN1 OID/ { o = $2 } /NIST CURVE/ { c = $2 }
                     /Signature Algorithm/ { s = $2 } END { printf "%s %s (%s) key, signed %s", k, c, o, s }')"
fi

log "building wsreactor and the peers (release)"
(cd "$root" && cargo build --release --quiet --bin wsreactor)
if [[ " $SERVERS " == *" tokio-tungstenite "* || " $SERVERS " == *" fastwebsockets "* || " $SERVERS " == *" floor "* ]]; then
    (cd "$here" && cargo build --release --quiet)
fi

# name -> port; each server has its own port so that TIME_WAIT entries left
# by one never meet another's connections.
read -ra servers <<<"$SERVERS"
declare -A port=([wsreactor]=19501 [tokio-tungstenite]=19502 [fastwebsockets]=19503 [wsreactor-before]=19504 [uws]=19505
    [floor]=19506)
for name in "${servers[@]}"; do
    [ -n "${port[$name]:-}" ] || die "unknown server $name"
done
if [[ " ${servers[*]} " == *" uws "* ]]; then
    [ -x "$UWS_DIR/uws-echo" ] || die "uws needs $UWS_DIR/uws-echo (UWS_DIR)"
fi
if [[ " ${servers[*]} " == *" wsreactor-before "* ]]; then
    [ -x "$BEFORE" ] || die "wsreactor-before needs BEFORE=path to an older wsreactor binary"
fi

server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Start server $1 on core SERVER_CORE with one worker thread, serving TLS
# for a TLS workload $2; set server_pid. taskset and prlimit exec the
# server, so $! is the server's own pid.
start_server() {
    local name=$1 w=$2 p=${port[$1]} cmd tls=()
    is_tls "$w" && tls=(--tls-cert "$tls_cert" --tls-key "$tls_key")
    case $name in
        wsreactor) cmd=("$wsr" serve --bind "127.0.0.1:$p" --threads 1 "${tls[@]}") ;;
        wsreactor-before) cmd=("$BEFORE" serve --bind "127.0.0.1:$p" --threads 1 "${tls[@]}") ;;
        tokio-tungstenite) cmd=("$peers/tokio_tungstenite_echo" --port "$p" --threads 1 "${tls[@]}") ;;
        fastwebsockets) cmd=("$peers/fastwebsockets_echo" --port "$p" --threads 1 "${tls[@]}") ;;
        # One thread, 127.0.0.1 (echo.cpp).
        uws) cmd=("$UWS_DIR/uws-echo" "$p") ;;
        floor) cmd=("$peers/floor_echo" --port "$p") ;;
    esac
    # wsreactor raises its soft limit itself; the peers get it here.
    taskset -c "$SERVER_CORE" prlimit --nofile=20000:20000 "${cmd[@]}" \
        >"$out/$name.server.log" 2>&1 &
    server_pid=$!
    local i
    for i in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            return 0
        fi
        kill -0 "$server_pid" 2>/dev/null || die "$name exited at start (see $out/$name.server.log)"
        sleep 0.05
    done
    die "$name does not accept on 127.0.0.1:$p"
}

stop_server() {
    kill -TERM "$server_pid" 2>/dev/null || true
    # wsreactor closes its connections with 1001 and waits up to 5 s.
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}

# measure WORKLOAD ROUND SERVER KIND WINDOW SAMPLE CLIENT-ARGS...
measure() {
    local w=$1 r=$2 name=$3 kind=$4 window=$5 sample=$6 p=${port[$3]}
    shift 6
    local json=$out/$w.$name.$r.$((++nrec)).json cmd
    if [ "$kind" = uws ]; then
        cmd=(python3 "$here/uws_load_test.py" --bin "$UWS_DIR/uws-load-test" --port "$p" --json "$json" "$@")
    elif [ "$kind" = rss ] && is_tls "$w"; then
        cmd=(python3 "$here/idle_rss_tls.py" --server-pid "$server_pid" --port "$p" --json "$json" "$@")
    elif [ "$kind" = rss ]; then
        cmd=(python3 "$root/benches/idle_rss.py" --server-pid "$server_pid" --port "$p" --json "$json" "$@")
    elif is_tls "$w"; then
        cmd=("$wsr" load --url "wss://127.0.0.1:$p/" --insecure --threads 1 --quiet --json "$json" "$@")
    else
        cmd=("$wsr" load --url "ws://127.0.0.1:$p/" --threads 1 --quiet --json "$json" "$@")
    fi
    # The sampler runs on the client's core, so that it never takes the server's.
    taskset -c "$CLIENT_CORE" python3 "$here/measure.py" --server-pid "$server_pid" \
        --server "$name" --workload "$w" --round "$r" --kind "$kind" --window "$window" \
        --server-core "$SERVER_CORE" --client-core "$CLIENT_CORE" --sample "$sample" --client-json "$json" --out "$records" \
        -- taskset -c "$CLIENT_CORE" "${cmd[@]}" ||
        log "$w/$name round $r: the client exited with $? (see $json.log)"
}

nrec=0
d=${DURATION}s
workload() {
    local w=$1 r=$2 name=$3 i
    case $w in
        a) measure a "$r" "$name" load run 0.05 --connections 100 --connect-rate 0 --duration "$d" \
               --size 20 --text --pipeline 1 ;;
        b) measure b "$r" "$name" load run 0.05 --connections 100 --connect-rate 0 --duration "$d" \
               --size 20 --text --pipeline 16 ;;
        c) measure c "$r" "$name" load run 0.05 --connections 10 --connect-rate 0 --duration "$d" \
               --size 16384 --binary --pipeline 1 ;;
        d) measure d "$r" "$name" load run 0.05 --mode churn --connections 50 --duration "$d" \
               --size 20 --text ;;
        e) measure e1k "$r" "$name" rss run 0.05 --connections 1000 --warmup 100
           measure e19k "$r" "$name" rss run 0.05 --connections 19000 --warmup 100 ;;
        f) measure f "$r" "$name" load run 0.05 --connections 10000 --connect-rate 2000 \
               --duration "$d" --size 20 --text --rate 10000 --source-ips 127.0.0.1-127.0.0.4 ;;
        u) measure u "$r" "$name" uws run 0.05 --connections 100 --size 20 --samples 3 ;;
        # The same flags as a, c, d and e; the URL is wss:// (measure).
        ta) measure ta "$r" "$name" load run 0.05 --connections 100 --connect-rate 0 --duration "$d" \
               --size 20 --text --pipeline 1 ;;
        tc) measure tc "$r" "$name" load run 0.05 --connections 10 --connect-rate 0 --duration "$d" \
               --size 16384 --binary --pipeline 1 ;;
        td) measure td "$r" "$name" load run 0.05 --mode churn --connections 50 --duration "$d" \
               --size 20 --text ;;
        te) measure te "$r" "$name" rss run 0.05 --connections 10000 --warmup 100 ;;
        *) die "unknown workload $w" ;;
    esac
}

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit: $(cd "$root" && git rev-parse --short HEAD)$(cd "$root" && git diff --quiet HEAD -- src || echo ' (src modified)')"
    echo "nproc: $(nproc)"
    lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|CPU max MHz)' || true
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "rounds: $ROUNDS, duration: $DURATION s, server on core $SERVER_CORE, client on core $CLIENT_CORE"
    echo "workloads:$WORKLOADS"
    [ -z "$tls_desc" ] || echo "tls certificate: $tls_desc, the same for every server"
} >"$out/machine.txt"
cat "$out/machine.txt" >&2
if awk '{ exit !($1 > 1.0) }' /proc/loadavg; then
    log "warning: load average $(cut -d' ' -f1 /proc/loadavg) with $(nproc) cores: other jobs share the" \
        "cores the server and client are pinned to, and the figures will show it"
fi

for w in $WORKLOADS; do
    for r in $(seq "$ROUNDS"); do
        for name in "${servers[@]}"; do
            # uWS is built without TLS, the floor speaks none; the floor's
            # memory per connection (e) is no yardstick.
            if [ "$name" = uws ] && is_tls "$w"; then continue; fi
            if [ "$name" = floor ] && { is_tls "$w" || [ "$w" = e ]; }; then continue; fi
            log "workload $w, round $r/$ROUNDS: $name"
            start_server "$name" "$w"
            workload "$w" "$r" "$name"
            stop_server
        done
    done
done

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"
# The checked-in results are the comparison with the peers; any other set
# of servers keeps its tables in the run's directory. The plain workloads'
# table goes to results.md, the TLS ones' to results-tls.md, each only when
# this run measured some of its workloads: a TLS-only run leaves the plain
# table (and its date, commit and load) as it was, and the other way round.
dest=$here
[ "$SERVERS" = "$PEERS" ] || dest=$out
if [ -n "$plain_workloads" ]; then
    python3 "$here/table.py" "$records" --servers "$SERVERS" --machine "$out/machine.txt" \
        --group plain --markdown "$dest/results.md"
    log "records in $records; table in $dest/results.md"
fi
if [ -n "$tls_workloads" ]; then
    tls_servers=${SERVERS/ uws/}
    python3 "$here/table.py" "$records" --servers "${tls_servers/ floor/}" --machine "$out/machine.txt" \
        --group tls --tls-note "$tls_desc" --markdown "$dest/results-tls.md"
    log "records in $records; TLS table in $dest/results-tls.md"
fi
