#!/usr/bin/env bash
# Installing wsreactor, as a user would (issue 30), on this machine:
#
#   0. The README's first command as written, `cargo run --release -- serve`:
#      /readyz 200 on 127.0.0.1:9001 (the port must be free).
#   1. cargo install --locked --path . into a temporary root: the installed
#      `wsreactor` answers --version and serves /readyz on a loopback port.
#   2. The Debian package (contrib/debian/build.sh, with cargo-deb, which is
#      installed first when missing): dpkg -i; the binary, man page,
#      configuration, unit and system user are there; the installed
#      configuration passes check-config; the unit passes systemd-analyze
#      verify (where systemd-analyze is); the installed binary, run as the
#      package's user with the installed configuration on a free loopback
#      port, answers /readyz 200; dpkg -r leaves only the configuration;
#      dpkg -P leaves nothing (no file, no user).
#
# Step 2 needs root (dpkg), and refuses to run where a wsreactor package is
# installed already (it is not ours to remove). Every server it starts is
# stopped by its pid; the package is purged however the script ends.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CARGO_DEB_VERSION=${CARGO_DEB_VERSION:-3.8.0}
TMP=$(mktemp -d)
PIDS=()
INSTALLED=
cleanup() {
    for pid in "${PIDS[@]}"; do pkill -P "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "$INSTALLED" ]; then dpkg -P wsreactor >/dev/null 2>&1 || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
    echo "tests/install.sh: $*" >&2
    exit 1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ready PORT: /readyz answers 200 within 10 s.
ready() {
    for _ in $(seq 100); do
        if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/readyz")" = 200 ]; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

echo "--- the README's first command, as written: cargo run --release -- serve"
if curl -s -o /dev/null "http://127.0.0.1:9001/"; then
    fail "127.0.0.1:9001 is taken: the README's server cannot start there"
fi
cargo run --release -- serve >"$TMP/readme-serve.log" 2>&1 &
PIDS+=($!)
ready 9001 || fail "cargo run --release -- serve did not answer /readyz 200 on 9001: $(cat "$TMP/readme-serve.log")"
# cargo runs the server as its child: the server first, then cargo.
pkill -TERM -P "${PIDS[-1]}" || true
kill "${PIDS[-1]}" 2>/dev/null || true
wait "${PIDS[-1]}" 2>/dev/null || true
echo "ok: the README's server answers /readyz on 127.0.0.1:9001"

echo "--- cargo install --locked --path . (into $TMP/root)"
# The release build's own target directory: what is built already is reused.
CARGO_TARGET_DIR=target cargo install --locked --path . --root "$TMP/root" --quiet
"$TMP/root/bin/wsreactor" --version | grep -q "^wsreactor " || fail "the installed wsreactor gives no version"
port=$(free_port)
"$TMP/root/bin/wsreactor" serve --bind "127.0.0.1:$port" --threads 1 >"$TMP/installed.log" 2>&1 &
PIDS+=($!)
ready "$port" || fail "the cargo-installed wsreactor did not answer /readyz 200: $(cat "$TMP/installed.log")"
echo "ok: cargo install gives a wsreactor that serves /readyz"

if [ "$(id -u)" != 0 ]; then
    echo "--- the Debian package: SKIPPED (dpkg needs root)"
    exit 0
fi
if dpkg -s wsreactor >/dev/null 2>&1; then
    fail "a wsreactor package is installed here already; not touching it"
fi
if ! command -v cargo-deb >/dev/null; then
    echo "--- cargo install cargo-deb $CARGO_DEB_VERSION"
    cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION" --quiet
fi
echo "--- the Debian package"
rm -f target/debian/wsreactor_*.deb
deb=$(bash contrib/debian/build.sh)
deb=$(echo "$deb" | grep -o '[^ ]*\.deb$')
[ -f "$deb" ] || fail "no package built: $deb"
echo "built $deb"
INSTALLED=1
# As the README says it (the only package there now).
dpkg -i target/debian/wsreactor_*.deb
dpkg -s wsreactor | grep -q '^Status: install ok installed' || fail "dpkg does not say the package is installed"
for f in /usr/bin/wsreactor /usr/share/man/man1/wsreactor.1.gz /etc/wsreactor/wsreactor.toml \
    /lib/systemd/system/wsreactor.service; do
    [ -f "$f" ] || fail "$f is not installed"
done
grep -q '^# ' /etc/wsreactor/wsreactor.toml || fail "the installed configuration has no comments"
getent passwd wsreactor >/dev/null || fail "no system user wsreactor"
[ "$(getent passwd wsreactor | cut -d: -f3)" -lt 1000 ] || fail "the user wsreactor is not a system user"
/usr/bin/wsreactor check-config --config /etc/wsreactor/wsreactor.toml
if command -v systemd-analyze >/dev/null; then
    man=no
    command -v man >/dev/null && man=yes
    systemd-analyze verify --man=$man /lib/systemd/system/wsreactor.service
    echo "ok: systemd-analyze verify (--man=$man)"
else
    echo "systemd-analyze is not here: the unit was not verified"
fi
grep -q '^LimitNOFILE=' /lib/systemd/system/wsreactor.service || fail "the unit sets no LimitNOFILE"
grep -q '^ExecStartPre=/usr/bin/wsreactor check-config' /lib/systemd/system/wsreactor.service ||
    fail "the unit does not check the configuration before it starts"
# As the unit runs it: the package's user, the installed configuration
# (its bind moved to a free port, as --bind does).
port=$(free_port)
runuser -u wsreactor -- /usr/bin/wsreactor serve --config /etc/wsreactor/wsreactor.toml \
    --bind "127.0.0.1:$port" >"$TMP/package.log" 2>&1 &
PIDS+=($!)
ready "$port" || fail "the packaged wsreactor did not answer /readyz 200: $(cat "$TMP/package.log")"
kill "${PIDS[-1]}"
wait "${PIDS[-1]}" 2>/dev/null || true
echo "ok: the installed binary with the installed configuration serves /readyz as wsreactor"
dpkg -r wsreactor
[ ! -e /usr/bin/wsreactor ] || fail "dpkg -r left /usr/bin/wsreactor"
[ ! -e /lib/systemd/system/wsreactor.service ] || fail "dpkg -r left the unit"
[ -f /etc/wsreactor/wsreactor.toml ] || fail "dpkg -r removed the configuration (a conffile stays until purge)"
dpkg -s wsreactor | grep -q '^Status: deinstall ok config-files' || fail "after dpkg -r: $(dpkg -s wsreactor | grep Status)"
dpkg -P wsreactor
INSTALLED=
! dpkg -s wsreactor >/dev/null 2>&1 || fail "dpkg -P left the package known"
[ ! -e /etc/wsreactor ] || fail "dpkg -P left /etc/wsreactor"
! getent passwd wsreactor >/dev/null || fail "dpkg -P left the user wsreactor"
echo "ok: dpkg -r and dpkg -P leave nothing behind"
