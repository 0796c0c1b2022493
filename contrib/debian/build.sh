#!/usr/bin/env bash
# Builds wsreactor's Debian package into target/debian/ and prints its
# path: the release binary, its man page (`wsreactor man`), the commented
# configuration, the systemd unit and the maintainer scripts of this
# directory ([package.metadata.deb] in Cargo.toml says which goes where).
# Needs cargo-deb: cargo install cargo-deb --locked.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
command -v cargo-deb >/dev/null || {
    echo "contrib/debian/build.sh: cargo-deb is needed: cargo install cargo-deb --locked" >&2
    exit 1
}
cargo build --release --locked
mkdir -p target/man
target/release/wsreactor man >target/man/wsreactor.1
cargo deb --no-build --locked --strip "$@" | tail -n 1
