#!/bin/sh
# The client's size as shipped (not minified: comments and all) and
# gzipped (gzip -9). A minifier would only make it smaller; the figure in
# README.md is this one, and tests/js_client.rs keeps it under 8 KB.
cd "$(dirname "$0")"
raw=$(wc -c < wsreactor.js)
gz=$(gzip -9c wsreactor.js | wc -c)
echo "wsreactor.js: $raw bytes, $gz bytes gzipped"
