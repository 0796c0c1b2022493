#!/usr/bin/env python3
"""permessage-deflate echo check with the `websockets` client (PyPI).

    deflate_client.py URL [--expect-extension VALUE] [--min-size N]
                          [--takeover | --no-takeover]

Connects to the echo server at URL offering permessage-deflate
(`websockets`' default offer: "permessage-deflate; client_max_window_bits"),
then checks, and exits 1 with a message on stderr at the first failure:

- the 101 carried a Sec-WebSocket-Extensions header (printed on stdout as
  `extensions: VALUE`), equal to VALUE when --expect-extension is given;
- text and binary messages of many sizes (0 B to 1 MiB of JSON-like text)
  come back exactly;
- each echo of N >= --min-size bytes arrived compressed (RSV1 set) and each
  shorter one uncompressed;
- with --takeover, a repeated 4 KiB message compresses much better the
  second time (the server kept its LZ77 window); with --no-takeover, it
  compresses to exactly the same size both times.

Every operation is bounded in time (--timeout seconds for each receive).
Used by tests/deflate.rs.
"""

from __future__ import annotations

import argparse
import json
import sys

from websockets.extensions import permessage_deflate
from websockets.frames import Opcode
from websockets.sync.client import connect

# First frame of each data message the client decoded: (rsv1, wire size).
RECEIVED: list[tuple[bool, int]] = []

_decode = permessage_deflate.PerMessageDeflate.decode


def _recording_decode(self, frame, *, max_size=None):
    if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
        RECEIVED.append((frame.rsv1, len(frame.data)))
    return _decode(self, frame, max_size=max_size)


permessage_deflate.PerMessageDeflate.decode = _recording_decode


def fail(msg: str) -> None:
    print(f"deflate_client: FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def json_text(size: int) -> str:
    """JSON-like text of exactly `size` characters (ASCII)."""
    parts = []
    n = 0
    i = 0
    while n < size:
        item = json.dumps({"id": i, "user": f"user{i % 97}", "event": "price_update",
                           "symbol": ["ABC", "XYZ", "QRS"][i % 3], "price": 100 + (i * 37) % 1000 / 100})
        parts.append(item)
        n += len(item) + 1
        i += 1
    return ("[" + ",".join(parts))[:size]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("url")
    p.add_argument("--expect-extension", metavar="VALUE")
    p.add_argument("--min-size", type=int, default=64)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--takeover", dest="takeover", action="store_const", const=True)
    mode.add_argument("--no-takeover", dest="takeover", action="store_const", const=False)
    p.add_argument("--timeout", type=float, default=20.0)
    args = p.parse_args()

    with connect(args.url, compression="deflate", max_size=16 * 2**20,
                 open_timeout=args.timeout, close_timeout=args.timeout) as ws:
        header = ws.response.headers.get("Sec-WebSocket-Extensions")
        print(f"extensions: {header}", flush=True)
        if header is None:
            fail("the server did not accept permessage-deflate")
        if args.expect_extension is not None and header != args.expect_extension:
            fail(f"Sec-WebSocket-Extensions {header!r}, expected {args.expect_extension!r}")
        if not any(isinstance(e, permessage_deflate.PerMessageDeflate) for e in ws.protocol.extensions):
            fail(f"no permessage-deflate among the client's active extensions {ws.protocol.extensions}")

        def echo(msg, what: str) -> tuple[bool, int]:
            before = len(RECEIVED)
            ws.send(msg)
            got = ws.recv(timeout=args.timeout)
            if type(got) is not type(msg) or got != msg:
                fail(f"{what}: echo differs ({len(msg)} sent, {len(got)} received)")
            if len(RECEIVED) != before + 1:
                fail(f"{what}: {len(RECEIVED) - before} data frames decoded for one echo")
            rsv1, wire = RECEIVED[-1]
            compressed = len(msg) >= args.min_size
            if rsv1 != compressed:
                fail(f"{what}: {len(msg)} bytes echoed with RSV1={rsv1}, expected {compressed} "
                     f"(min_size {args.min_size})")
            return rsv1, wire

        sizes = [0, 1, 2, args.min_size - 1, args.min_size, args.min_size + 1, 125, 126, 200,
                 4096, 65535, 65536, 100_000, 2**20]
        for size in sorted(set(s for s in sizes if s >= 0)):
            text = json_text(size)
            _, wire = echo(text, f"text {size}")
            echo(text.encode(), f"binary {size}")
            print(f"echoed {size}: {wire} bytes on the wire", flush=True)
        # Not ASCII: 2-, 3- and 4-byte UTF-8 sequences.
        echo("héllo wörld ✓ 𝄞 " * 50, "text utf-8")

        # Context takeover: the second copy can point back into the first.
        msg = json_text(4096)
        _, first = echo(msg, "takeover 1")
        _, second = echo(msg, "takeover 2")
        print(f"repeated 4096: {first} then {second} bytes on the wire", flush=True)
        if args.takeover is True and not second * 4 < first:
            fail(f"context takeover: the repeat took {second} bytes, the first {first}")
        if args.takeover is False and second != first:
            fail(f"no context takeover: the repeat took {second} bytes, the first {first}")
    print("ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
