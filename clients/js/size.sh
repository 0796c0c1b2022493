#!/bin/sh
# The client's size, gzipped (gzip -9): as shipped (comments and all), and
# with its comments and indentation stripped, a minifier's lightest work
# (full-line comments and leading spaces only: nothing in the code itself
# is touched). The figures in README.md are these; tests/js_client.rs keeps
# the shipped one under 8 KB.
cd "$(dirname "$0")"
raw=$(wc -c < wsreactor.js)
gz=$(gzip -9c wsreactor.js | wc -c)
stripped=$(sed -e 's/^[[:space:]]*//' -e '/^\/\//d' -e '/^\/\*\*.*\*\/$/d' -e '/^\/\*\*$/,/\*\/$/d' -e '/^$/d' wsreactor.js | gzip -9c | wc -c)
echo "wsreactor.js: $raw bytes; gzipped $gz bytes as shipped, $stripped bytes with comments and indentation stripped"
