#!/usr/bin/env python3
"""A length a peer declares must not size the server's memory.

Opens N connections to a wsreactor server on 127.0.0.1: half send a publish
head declaring a 16 MiB body (`POST /pub/...` with `Content-Length: 16777216`),
half complete a WebSocket handshake and send a frame header announcing a
16 MiB payload. Once the server has read those, each sends one more byte,
which the server reads into whatever buffer the declaration made it
prepare. Then the server's RSS growth per connection is measured and
checked against --max-bytes-per-conn (default 64 KiB). A server that sized
its buffers by the declarations would grow by 16 MiB per connection.

    python3 benches/declared_length.py --spawn target/release/wsreactor
    python3 benches/declared_length.py --server-pid PID --port 9001

Exits 0 when the growth is under the bound, 1 when not, 2 on a setup error.
Loopback only; bounded in time (--timeout) and count; stops the server it
started by its pid.
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import idle_rss  # noqa: E402  (the server spawning and /proc helpers)

HOST = "127.0.0.1"
DECLARED = 16 << 20
MASK = b"\x37\xfa\x21\x3d"


def log(msg: str) -> None:
    print(f"declared_length: {msg}", file=sys.stderr, flush=True)


def upgrade(port: int, deadline: float) -> socket.socket:
    s = socket.create_connection((HOST, port), timeout=5)
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET / HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for a 101")
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("EOF before the 101")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"no 101: {head[:80]!r}")
    return s


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--spawn", metavar="BINARY", help="start this wsreactor binary on a free port and stop it after")
    who.add_argument("--server-pid", type=int, metavar="PID", help="measure this running server (needs --port)")
    p.add_argument("--port", type=int)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--connections", "-n", type=int, default=1000, help="connections in all, half of each kind (default 1000)")
    p.add_argument("--max-bytes-per-conn", type=int, default=64 << 10)
    p.add_argument("--timeout", type=float, default=120.0, help="seconds for the whole run (default 120)")
    args = p.parse_args(argv)
    deadline = time.monotonic() + args.timeout
    idle_rss.raise_nofile_limit(args.connections + 64)

    proc = None
    if args.spawn:
        port = args.port or idle_rss.free_port()
        log_path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"declared_length-{os.getpid()}.log")
        try:
            proc = idle_rss.spawn_server(args.spawn, port, args.threads, deadline, log_path)
        except (RuntimeError, idle_rss.SetupError) as e:
            log(str(e))
            return 2
        pid = proc.pid
    else:
        if not args.port:
            log("--server-pid needs --port")
            return 2
        pid, port = args.server_pid, args.port

    socks: list[socket.socket] = []
    try:
        # Warm up: a few connections page in the code paths and the pool.
        for _ in range(20):
            upgrade(port, deadline).close()
        time.sleep(0.3)
        before = idle_rss.read_status(pid)
        bodies = args.connections // 2
        frames = args.connections - bodies
        for i in range(bodies):
            s = socket.create_connection((HOST, port), timeout=5)
            s.sendall(f"POST /pub/declared{i % 10} HTTP/1.1\r\nHost: {HOST}\r\n"
                      f"Content-Length: {DECLARED}\r\n\r\n".encode())
            socks.append(s)
        for _ in range(frames):
            s = upgrade(port, deadline)
            # A masked binary frame header announcing 16 MiB (RFC 6455 §5.2).
            s.sendall(bytes([0x82, 0x80 | 127]) + struct.pack("!Q", DECLARED) + MASK)
            socks.append(s)
        time.sleep(0.5)
        # The one byte each, read into whatever the declaration prepared.
        for i, s in enumerate(socks):
            s.sendall(b"x" if i < bodies else bytes([ord("y") ^ MASK[0]]))
        time.sleep(1.0)
        after = idle_rss.read_status(pid)
        if time.monotonic() > deadline:
            log("ran out of time")
            return 2
        open_now = sum(1 for s in socks if s.fileno() >= 0)
        grown = after["VmRSS"] - before["VmRSS"]
        anon = after["RssAnon"] - before["RssAnon"]
        per = grown / len(socks)
        print(f"connections: {len(socks)} ({bodies} declaring a {DECLARED >> 20} MiB body, "
              f"{frames} a {DECLARED >> 20} MiB frame), each then sent 1 byte; {open_now} open")
        print(f"server VmRSS: {before['VmRSS']} -> {after['VmRSS']} bytes (+{grown}; RssAnon +{anon})")
        print(f"per connection: {per:.0f} bytes (bound {args.max_bytes_per_conn}; "
              f"a buffer sized by the declaration would be {DECLARED})")
        if per >= args.max_bytes_per_conn:
            print("FAIL: the server's memory grew with what peers declared")
            return 1
        print("OK")
        return 0
    except (OSError, RuntimeError) as e:
        log(f"error: {e}")
        return 2
    finally:
        for s in socks:
            s.close()
        if proc is not None:
            idle_rss.stop_server(proc)


if __name__ == "__main__":
    sys.exit(main())
