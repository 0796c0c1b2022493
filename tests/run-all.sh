#!/usr/bin/env bash
# Runs every test of wsreactor: the one command for CI and for a fresh machine.
#
#   1. cargo build --release
#   2. target/test-venv                     (Python `websockets` for tests/deflate.rs)
#      cargo test --profile ci --all-targets (unit, integration, bins, and the benches,
#                                            compiled and run once each in test mode;
#                                            profile ci: release without LTO, see Cargo.toml)
#      cargo test --profile ci --doc        (doc tests; --all-targets leaves them out)
#   3. cargo rustc --lib --no-default-features -- -D warnings
#                                           (the library without the CLI's dependencies,
#                                            without a warning)
#      cargo doc --no-deps                  (the API docs build without a warning)
#      bash tests/install.sh                (cargo install --locked --path . into a temporary
#                                            root; the Debian package built with cargo-deb,
#                                            installed, run, removed and purged: as root)
#   4. python3 benches/idle_rss.py ...      (10,000 idle connections cost < 1 KiB of server RSS each)
#      python3 benches/declared_length.py   (1,000 connections declaring 16 MiB and sending 1 byte
#                                            cost < 64 KiB of server RSS each)
#   5. bash tests/autobahn.sh               (Autobahn TestSuite against the release binary)
#      bash tests/autobahn.sh --tls         (the same over TLS, through tests/tls_relay.py, without
#                                            the permessage-deflate sections 12 and 13)
#
# Installs what it needs on a fresh Debian machine: python3 venv support,
# nginx-light (tests/facing/nginx_documented.rs),
# Chromium (for tests/browser/, which drives it headless), redis-server
# (tests/redis.rs starts its own on a free loopback port) and Node (for
# tests/js_client.rs) via apt-get (only
# when missing, and only as root); tests/autobahn.sh makes its own
# virtualenv with kosoku. Each step is bounded in time (STEP_TIMEOUT seconds,
# default 1200); exits non-zero on the first failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

STEP_TIMEOUT=${STEP_TIMEOUT:-1200}
RUN_START=$(date +%s)
STEP_TIMES=()

step() {
    echo
    echo "=== run-all: [$(date +%H:%M:%S)] $*"
}

# run NAME CMD...: one step, bounded in time, reported with its duration
run() {
    local name=$1; shift
    step "$name: $*"
    local t0 rc=0
    t0=$(date +%s)
    timeout -k 30 "$STEP_TIMEOUT" "$@" || rc=$?
    local dt=$(( $(date +%s) - t0 ))
    STEP_TIMES+=("$name ${dt}s")
    if [ "$rc" != 0 ]; then
        [ "$rc" = 124 ] && echo "=== run-all: $name did not finish within ${STEP_TIMEOUT}s" >&2
        echo "=== run-all: FAILED at step '$name' (exit status $rc, ${dt}s)" >&2
        exit "$rc"
    fi
    echo "=== run-all: $name passed (${dt}s)"
}

# --- what a fresh Debian machine may lack ------------------------------------------
apt_install() {
    if [ "$(id -u)" != 0 ]; then
        echo "=== run-all: missing $*; install it (apt-get install -y $*) or run as root" >&2
        exit 1
    fi
    if [ -z "${APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive timeout 600 apt-get update -q
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -q "$@"
}

step "checking the tools"
command -v cargo >/dev/null || { echo "=== run-all: cargo not found (a Rust toolchain is needed)" >&2; exit 1; }
command -v timeout >/dev/null || { echo "=== run-all: timeout (coreutils) not found" >&2; exit 1; }
if ! command -v python3 >/dev/null; then
    step "installing python3"
    apt_install python3 python3-venv
fi
# Debian's python3 has venv but not ensurepip (so no working `python3 -m venv`)
# until python3-venv is installed.
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    step "installing python3-venv (python3 -m venv is not usable)"
    apt_install python3-venv
    python3 -c 'import venv, ensurepip' || {
        echo "=== run-all: python3 -m venv still unusable after installing python3-venv" >&2; exit 1; }
fi
# tests/browser/ drives Debian's Chromium headless against the demo page, and
# fails (rather than skipping) without it.
if [ ! -x /usr/bin/chromium ]; then
    step "installing chromium (tests/browser/ drives it headless)"
    apt_install chromium
    [ -x /usr/bin/chromium ] || { echo "=== run-all: /usr/bin/chromium still missing after installing chromium" >&2; exit 1; }
fi
# tests/redis.rs starts redis-server itself (a loopback port of its own,
# stopped by pid), and fails rather than skipping without it.
if ! command -v redis-server >/dev/null; then
    step "installing redis-server (tests/redis.rs runs nodes on one Redis)"
    apt_install redis-server
    command -v redis-server >/dev/null || { echo "=== run-all: redis-server still missing after installing it" >&2; exit 1; }
fi
# tests/tls.rs uses curl as an https peer.
if ! command -v curl >/dev/null; then
    step "installing curl (tests/tls.rs publishes, polls and streams over https with it)"
    apt_install curl
    command -v curl >/dev/null || { echo "=== run-all: curl still missing after installing it" >&2; exit 1; }
fi
# tests/js_client.rs runs the JavaScript client under Node (18 or later:
# its fetch and web streams).
if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -lt 18 ]; then
    step "installing nodejs (tests/js_client.rs runs clients/js under Node)"
    apt_install nodejs
    command -v node >/dev/null || { echo "=== run-all: node still missing after installing nodejs" >&2; exit 1; }
fi
# tests/facing/nginx_documented.rs runs docs/operating.md's nginx in front
# of the server, and fails rather than skipping without it.
if [ ! -x /usr/sbin/nginx ]; then
    step "installing nginx-light (tests/facing/nginx_documented.rs runs the documented proxy)"
    apt_install nginx-light
    [ -x /usr/sbin/nginx ] || { echo "=== run-all: /usr/sbin/nginx still missing after installing nginx-light" >&2; exit 1; }
fi
# tests/autobahn.sh --tls makes its certificate with openssl.
if ! command -v openssl >/dev/null; then
    step "installing openssl (tests/autobahn.sh --tls makes a certificate with it)"
    apt_install openssl
    command -v openssl >/dev/null || { echo "=== run-all: openssl still missing after installing it" >&2; exit 1; }
fi
cargo --version
python3 --version
/usr/bin/chromium --version 2>/dev/null
redis-server --version

# --- the steps -----------------------------------------------------------------------
run build cargo build --release
# The Python `websockets` client of tests/deflate.rs (the test creates this
# virtualenv itself when it is missing; done here as a step of its own so that
# a PyPI failure is reported as such).
run test-venv bash -c '
    [ -x target/test-venv/bin/python ] || python3 -m venv target/test-venv
    target/test-venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/requirements-deflate.txt
    target/test-venv/bin/python -c "import websockets.sync.client, websockets; print(\"websockets\", websockets.__version__)"'
# The benches are among --all-targets: they compile here (a separate
# `cargo bench --no-run` built them all again, 270 s, for nothing more).
run test cargo test --profile ci --all-targets
if cargo metadata --no-deps --format-version 1 \
    | python3 -c 'import json, sys; pkgs = json.load(sys.stdin)["packages"]; sys.exit(0 if any("lib" in t["kind"] for p in pkgs for t in p["targets"]) else 1)'
then
    run doctest cargo test --profile ci --doc
else
    step "doctest: skipped (the package has no library target)"
fi
# A library user's build: none of the command line's dependencies
# (clap, env_logger, humantime, indicatif, plotters) are needed.
# ... and without a warning of ours, against the dependencies in Cargo.lock
# (kept at the newest compatible versions: `cargo update`, what a library
# user's build picks): -D warnings on this crate alone, no dependency rebuilt.
run lib-only cargo rustc --release --lib --no-default-features -- -D warnings
run doc env RUSTDOCFLAGS="-D warnings" cargo doc --no-deps
run install bash tests/install.sh
run idle-rss python3 benches/idle_rss.py --spawn target/release/wsreactor --connections 10000 --max-bytes-per-conn 1024
run declared-length python3 benches/declared_length.py --spawn target/release/wsreactor --connections 1000
run autobahn bash tests/autobahn.sh
# Over TLS: every section but permessage-deflate's (12, 13), which add six
# minutes and nothing TLS would change (compression sits above framing).
run autobahn-tls env AUTOBAHN_INCLUDE="1.* 2.* 3.* 4.* 5.* 6.* 7.* 9.* 10.*" AUTOBAHN_OUTDIR=reports/clients-tls \
    bash tests/autobahn.sh --tls

step "all steps passed in $(( $(date +%s) - RUN_START ))s: ${STEP_TIMES[*]}"
