#!/usr/bin/env bash
# Autobahn TestSuite conformance run against the wsreactor server.
#
# Drives the Autobahn TestSuite case files with `kosoku` (a PyPI package:
# a Rust runner that executes Autobahn's own Python case files) against a
# freshly started `wsreactor serve` on a free loopback port, then reads the
# Autobahn-format report (index.json) and prints a summary.
#
# Usage: tests/autobahn.sh [--build] [--server BIN] [--threads N]
#                          [--parallelism P] [--timeout SECS] [--outdir DIR]
#                          [--port PORT] [--tls]
#
# --tls: the server speaks TLS (a certificate made at run time with
# openssl), and kosoku (which knows only ws://) reaches it through
# tests/tls_relay.py, which carries each of its connections over a TLS
# connection of its own: the cases run through the server's TLS transport.
#
# Environment (each option above wins over its variable):
#   AUTOBAHN_EXCLUDE      case globs to skip, space separated (default "": the
#                         whole suite, permessage-deflate sections 12.* 13.* included)
#   WSREACTOR_CONFIG      server config file (default config/autobahn.toml)
#   AUTOBAHN_INCLUDE      case globs to run, space separated (default: all)
#   AUTOBAHN_STRICT_CLOSE 1 = also fail on a closing-handshake verdict other than
#                         OK / INFORMATIONAL (default 0: only behaviorClose FAILED fails)
#   WSREACTOR_BIN         server binary (default target/release/wsreactor)
#   WSREACTOR_THREADS     --threads passed to the server (default: not passed)
#   AUTOBAHN_PARALLELISM  kosoku -p (default 2)
#   AUTOBAHN_TIMEOUT      time bound of the kosoku run in seconds (default 900)
#   AUTOBAHN_OUTDIR       report directory (default reports/clients)
#   AUTOBAHN_VENV         virtualenv holding kosoku (default target/autobahn-venv)
#   KOSOKU_VERSION        kosoku version to install (default 0.1.0, the one whose
#                         report format this script was checked against)
#
# Verdict: exit 1 if any case's behavior is FAILED or ERROR (or any value this
# script does not know), if its behaviorClose is FAILED, if the report is
# missing or empty, or if the server died during the run; exit 0 otherwise.
# Last line: `autobahn: N passed, M failed`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

BUILD=0
SERVER_BIN=${WSREACTOR_BIN:-target/release/wsreactor}
THREADS=${WSREACTOR_THREADS:-}
PARALLELISM=${AUTOBAHN_PARALLELISM:-2}
RUN_TIMEOUT=${AUTOBAHN_TIMEOUT:-900}
OUTDIR=${AUTOBAHN_OUTDIR:-reports/clients}
VENV=${AUTOBAHN_VENV:-target/autobahn-venv}
KOSOKU_VERSION=${KOSOKU_VERSION:-0.1.0}
EXCLUDE=${AUTOBAHN_EXCLUDE-}
SERVER_CONFIG=${WSREACTOR_CONFIG:-config/autobahn.toml}
INCLUDE=${AUTOBAHN_INCLUDE:-}
STRICT_CLOSE=${AUTOBAHN_STRICT_CLOSE:-0}
PORT=
TLS=${AUTOBAHN_TLS:-0}
RELAY_PID=
GRACE=10            # seconds between SIGTERM and SIGKILL when stopping the server
STARTUP_TIMEOUT=30  # seconds for the server to accept on its port

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "autobahn: error: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --build) BUILD=1 ;;
        --server) SERVER_BIN=${2:?--server needs a path}; shift ;;
        --threads) THREADS=${2:?--threads needs a number}; shift ;;
        --parallelism|-p) PARALLELISM=${2:?}; shift ;;
        --timeout) RUN_TIMEOUT=${2:?}; shift ;;
        --outdir|-o) OUTDIR=${2:?}; shift ;;
        --port) PORT=${2:?}; shift ;;
        --tls) TLS=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "autobahn: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

log() { echo "autobahn: $*"; }

# --- kosoku in its own virtualenv -------------------------------------------
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    log "creating virtualenv $VENV"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV" || die "python3 -m venv failed (on Debian: apt-get install -y python3-venv)"
fi
if ! "$VENV/bin/python" -c 'import kosoku' 2>/dev/null || [ ! -x "$VENV/bin/kosoku" ]; then
    log "installing kosoku==$KOSOKU_VERSION into $VENV"
    timeout 600 "$VENV/bin/python" -m pip install --disable-pip-version-check -q \
        "kosoku==$KOSOKU_VERSION" || die "pip install kosoku failed"
fi

# --- the server binary --------------------------------------------------------
if [ "$BUILD" = 1 ] || [ ! -e "$SERVER_BIN" ]; then
    if [ "$BUILD" = 0 ] && [ "$SERVER_BIN" != target/release/wsreactor ]; then
        die "server binary $SERVER_BIN not found"
    fi
    log "cargo build --release"
    cargo build --release
fi
[ -x "$SERVER_BIN" ] || die "server binary $SERVER_BIN is missing or not executable"

mkdir -p "$OUTDIR"
SERVER_LOG="$OUTDIR/server.log"
KOSOKU_LOG="$OUTDIR/kosoku.log"
# Only files named by a fresh index.json are read, so stale case files are harmless.
rm -f "$OUTDIR/index.json"
if [ "$TLS" = 1 ]; then
    command -v openssl >/dev/null || die "--tls needs the openssl command"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
        -keyout "$OUTDIR/key.pem" -out "$OUTDIR/cert.pem" 2>/dev/null || die "openssl could not make a certificate"
fi

# --- start the server, and make sure it is stopped whatever happens -------------
SERVER_PID=
SERVER_STATUS=   # exit status once reaped
SERVER_KILLED=0  # 1 if it needed SIGKILL

server_alive() {
    [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null || return 1
    # a zombie (exited, not yet reaped) is not alive
    local state
    state=$(sed 's/.*) //' "/proc/$SERVER_PID/stat" 2>/dev/null) || return 1
    state=${state%% *}
    [ "$state" != Z ]
}

stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    if server_alive; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        local waited=0
        while server_alive && [ "$waited" -lt $((GRACE * 10)) ]; do
            sleep 0.1; waited=$((waited + 1))
        done
        if server_alive; then
            echo "autobahn: server (pid $SERVER_PID) still running ${GRACE}s after SIGTERM; sending SIGKILL" >&2
            kill -KILL "$SERVER_PID" 2>/dev/null || true
            SERVER_KILLED=1
        fi
    fi
    local rc=0
    wait "$SERVER_PID" 2>/dev/null || rc=$?
    SERVER_STATUS=$rc
    SERVER_PID=
}
KOSOKU_PID=
stop_relay() {
    if [ -n "$RELAY_PID" ]; then
        kill -TERM "$RELAY_PID" 2>/dev/null || true
        wait "$RELAY_PID" 2>/dev/null || true
        RELAY_PID=
    fi
}

cleanup() {
    if [ -n "$KOSOKU_PID" ]; then  # `timeout` passes the TERM on to kosoku
        kill -TERM "$KOSOKU_PID" 2>/dev/null || true
        wait "$KOSOKU_PID" 2>/dev/null || true
    fi
    stop_relay
    stop_server
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

port_accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_server() {
    local args=(serve --bind "127.0.0.1:$PORT")
    [ -n "$SERVER_CONFIG" ] && args+=(--config "$SERVER_CONFIG")
    [ -n "$THREADS" ] && args+=(--threads "$THREADS")
    [ "$TLS" = 1 ] && args+=(--tls-cert "$OUTDIR/cert.pem" --tls-key "$OUTDIR/key.pem")
    log "starting $SERVER_BIN ${args[*]} (log: $SERVER_LOG)"
    "$SERVER_BIN" "${args[@]}" </dev/null >"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    local waited=0
    while [ "$waited" -lt $((STARTUP_TIMEOUT * 10)) ]; do
        server_alive || return 1
        port_accepts "$PORT" && return 0
        sleep 0.1; waited=$((waited + 1))
    done
    return 1
}

FIXED_PORT=$PORT
started=0
for attempt in 1 2 3; do
    [ -n "$FIXED_PORT" ] || PORT=$(free_port)
    if start_server; then started=1; break; fi
    echo "autobahn: server did not come up on 127.0.0.1:$PORT (attempt $attempt); its log:" >&2
    tail -n 20 "$SERVER_LOG" >&2 || true
    stop_server
    [ -z "$FIXED_PORT" ] || break
done
[ "$started" = 1 ] || { echo "autobahn: could not start the server" >&2; echo "autobahn: 0 passed, 1 failed"; exit 1; }
log "server pid $SERVER_PID listening on 127.0.0.1:$PORT"
TARGET_PORT=$PORT
if [ "$TLS" = 1 ]; then
    TARGET_PORT=$(free_port)
    "$VENV/bin/python" tests/tls_relay.py "$TARGET_PORT" 127.0.0.1 "$PORT" </dev/null >"$OUTDIR/relay.log" 2>&1 &
    RELAY_PID=$!
    waited=0
    until port_accepts "$TARGET_PORT"; do
        kill -0 "$RELAY_PID" 2>/dev/null || die "the TLS relay did not start: $(cat "$OUTDIR/relay.log")"
        [ "$waited" -lt 100 ] || die "the TLS relay did not listen on $TARGET_PORT"
        sleep 0.1; waited=$((waited + 1))
    done
    log "relay pid $RELAY_PID: kosoku -> 127.0.0.1:$TARGET_PORT -> TLS 127.0.0.1:$PORT"
fi

# --- run the cases -----------------------------------------------------------
set -f  # the case globs must reach kosoku unexpanded
kosoku_args=(-p "$PARALLELISM" -o "$OUTDIR")
for pat in $INCLUDE; do kosoku_args+=(-i "$pat"); done
for pat in $EXCLUDE; do kosoku_args+=(-x "$pat"); done
set +f
log "kosoku ${kosoku_args[*]} 127.0.0.1:$TARGET_PORT (time bound ${RUN_TIMEOUT}s)"
start_time=$(date +%s)
kosoku_rc=0
# In the background + wait, so that a signal to this script is acted on at
# once (bash defers traps while a foreground child runs).
timeout -k 10 "$RUN_TIMEOUT" "$VENV/bin/kosoku" "${kosoku_args[@]}" "127.0.0.1:$TARGET_PORT" \
    </dev/null >"$KOSOKU_LOG" 2>&1 &
KOSOKU_PID=$!
wait "$KOSOKU_PID" || kosoku_rc=$?
KOSOKU_PID=
elapsed=$(( $(date +%s) - start_time ))
log "kosoku exited with status $kosoku_rc after ${elapsed}s (log: $KOSOKU_LOG)"
if [ "$kosoku_rc" = 124 ] || [ "$kosoku_rc" = 137 ]; then
    echo "autobahn: kosoku did not finish within ${RUN_TIMEOUT}s" >&2
fi
# kosoku exits 1 when a case did not pass by its own (stricter) rule; the
# verdict below is taken from the report. Show its last words if it failed.
if [ "$kosoku_rc" != 0 ]; then tail -n 5 "$KOSOKU_LOG" | cut -c1-300 >&2 || true; fi

stop_relay

# --- did the server survive the run? --------------------------------------------
server_crashed=0
if ! server_alive; then
    server_crashed=1
    stop_server  # reaps it and records its status
    echo "autobahn: FAIL: the server died during the run (exit status $SERVER_STATUS); last lines of its log:" >&2
    tail -n 30 "$SERVER_LOG" >&2 || true
else
    stop_server
    if [ "$SERVER_KILLED" = 1 ]; then
        echo "autobahn: warning: the server ignored SIGTERM for ${GRACE}s and was killed" >&2
    else
        log "server stopped by SIGTERM (exit status $SERVER_STATUS)"
    fi
fi

# --- summary -------------------------------------------------------------------
summary_rc=0
"$VENV/bin/python" - "$OUTDIR" "$STRICT_CLOSE" "$server_crashed" <<'PY' || summary_rc=$?
import json, os, sys
from collections import Counter

outdir, strict_close, crashed = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
if crashed:
    print("autobahn: FAIL: the server died during the run (see above)")
index_path = os.path.join(outdir, "index.json")
# index.json (kosoku 0.1.0, like Autobahn's):
#   {agent: {case_id: {"behavior", "behaviorClose", "remoteCloseCode",
#                      "duration", "reportfile"}}}
# the per-case report file carries "description", "expectation", "result",
# "resultClose" and the wire log.
try:
    with open(index_path) as f:
        index = json.load(f)
except (OSError, ValueError) as e:
    print(f"autobahn: FAIL: no usable report at {index_path}: {e}")
    print("autobahn: 0 passed, 1 failed")
    sys.exit(1)

cases = [(agent, cid, entry) for agent, per in index.items() for cid, entry in per.items()]
if not cases:
    print(f"autobahn: FAIL: {index_path} holds no case")
    print("autobahn: 0 passed, 1 failed")
    sys.exit(1)

def key(cid):
    return [int(p) if p.isdigit() else p for p in cid.split(".")]
cases.sort(key=lambda c: (c[0], key(c[1])))

PASS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED"]
FAIL = ["FAILED", "ERROR"]
CLOSE_FAIL = {"FAILED"}
CLOSE_OK = {"OK", "INFORMATIONAL"}

behaviors = Counter(e.get("behavior") for _, _, e in cases)
closes = Counter(e.get("behaviorClose") for _, _, e in cases)
agents = sorted({a for a, _, _ in cases})
print(f"autobahn: {len(cases)} cases reported for agent(s) {', '.join(map(repr, agents))}")
print("autobahn: behavior:      " + ", ".join(
    f"{b}={behaviors.get(b, 0)}" for b in PASS + FAIL) + "".join(
    f", {b}={n}" for b, n in behaviors.items() if b not in PASS + FAIL))
print("autobahn: behaviorClose: " + ", ".join(f"{b}={n}" for b, n in sorted(closes.items(), key=str)))

def details(entry):
    try:
        with open(os.path.join(outdir, entry["reportfile"])) as f:
            return json.load(f)
    except (OSError, ValueError, KeyError):
        return {}

def short(text, n=200):
    text = " ".join(str(text or "").split())
    return text if len(text) <= n else text[: n - 3] + "..."

failed, warned = [], []
for agent, cid, e in cases:
    b, bc = e.get("behavior"), e.get("behaviorClose")
    if b not in PASS or bc in CLOSE_FAIL or (strict_close and bc not in CLOSE_OK):
        failed.append((cid, e))
    elif bc not in CLOSE_OK:
        warned.append((cid, e))

for title, group in (("FAILED/ERROR", failed), ("closing-handshake warnings (not failures)", warned)):
    if not group:
        continue
    print(f"autobahn: {title}:")
    for cid, e in group:
        d = details(e)
        print(f"  case {cid}: behavior={e.get('behavior')} behaviorClose={e.get('behaviorClose')}"
              f" remoteCloseCode={e.get('remoteCloseCode')} ({e.get('reportfile')})")
        if d:
            print(f"    description: {short(d.get('description'))}")
            print(f"    result:      {short(d.get('result'))}")
            print(f"    resultClose: {short(d.get('resultClose'))}")

# a crash of the server counts as one more failure
print(f"autobahn: {len(cases) - len(failed)} passed, {len(failed) + crashed} failed")
sys.exit(1 if failed or crashed else 0)
PY

[ "$summary_rc" = 0 ] && [ "$server_crashed" = 0 ] || exit 1
exit 0
