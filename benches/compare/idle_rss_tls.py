#!/usr/bin/env python3
"""benches/idle_rss.py over TLS (wss://), for run.sh's workload te: a
running server's resident memory per idle TLS connection.

    idle_rss_tls.py --server-pid PID --port PORT [--connections N] [--warmup W] [--json FILE]

The same measurement as idle_rss.py --server-pid (whose helpers it uses:
the /proc readings, the handshake request and its check, the frames):
VmRSS and RssAnon of PID are read, N connections are opened to
127.0.0.1:PORT (non-blocking sockets and a selector, at most --batch in
progress at once), each does a TLS handshake (Python's ssl module, i.e.
OpenSSL, as the client: TLS 1.2 or 1.3, ALPN http/1.1, no SNI, the
server's certificate not checked: a self-signed test certificate), the
RFC 6455 opening handshake (101 and Sec-WebSocket-Accept checked), one
masked text frame and its echo (unless --no-echo); then they stay idle for
--settle seconds and the RSS is read again:

    bytes per connection = (VmRSS after - VmRSS before) / N

With --warmup W, W connections are first opened, echoed and closed before
the first reading (what a fresh server does once is not counted). The
JSON it writes (--json) has idle_rss.py's fields, bytes_per_conn and
rssanon_bytes_per_conn among them, so that table.py reads both alike.

It does not spawn a server (run.sh starts it with its certificate).
Exit status: 0 on success; 1 if fewer than N connections completed or the
server closed one while idle; 2 on a usage or setup error. Standard
library only; loopback only; bounded by --timeout.
"""

from __future__ import annotations

import argparse
import base64
import errno
import json
import os
import selectors
import signal
import socket
import ssl
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import idle_rss as base  # noqa: E402  benches/idle_rss.py

HOST = base.HOST

# a connection's states: TCP connect, TLS handshake, send (then `then`), read 101, read echo, idle
CONNECTING, TLS, SENDING, READ_HEAD, READ_ECHO, DONE = range(6)


def log(msg: str) -> None:
    print(f"idle_rss_tls: {msg}", file=sys.stderr, flush=True)


class Conn:
    __slots__ = ("sock", "state", "then", "out", "inbuf", "key", "payload", "extensions", "events")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.state = CONNECTING
        self.then = READ_HEAD
        self.out = b""
        self.inbuf = b""
        self.key = b""
        self.payload = b""
        self.extensions = None
        self.events = selectors.EVENT_WRITE


def client_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # a self-signed test certificate
    ctx.set_alpn_protocols(["http/1.1"])  # as wsreactor load sends
    return ctx


def open_connections(ctx: ssl.SSLContext, port: int, n: int, batch: int, echo: bool, deadline: float,
                     server_alive) -> tuple[list[ssl.SSLSocket], Counter, Counter]:
    """Open N TLS WebSocket connections; return the established sockets, the
    failure reasons and the TLS versions negotiated."""
    sel = selectors.DefaultSelector()
    done: list[ssl.SSLSocket] = []
    failures: Counter = Counter()
    versions: Counter = Counter()
    started = 0
    in_flight = 0
    last_report = time.monotonic()

    def forget(c: Conn) -> None:
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass

    def fail(c: Conn, reason: str) -> None:
        nonlocal in_flight
        failures[reason] += 1
        in_flight -= 1
        forget(c)
        c.sock.close()

    def finish(c: Conn) -> None:
        nonlocal in_flight
        in_flight -= 1
        forget(c)
        c.state = DONE
        done.append(c.sock)
        versions[f"{c.sock.version()} {c.sock.cipher()[0]}, ALPN {c.sock.selected_alpn_protocol()}"] += 1

    def want(c: Conn, events: int) -> None:
        if events != c.events:
            sel.modify(c.sock, events, c)
            c.events = events

    def start_one(i: int) -> None:
        nonlocal in_flight
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        c = Conn(s)
        c.key = base64.b64encode(os.urandom(16))
        c.payload = b"idle-rss %d" % i
        in_flight += 1
        err = s.connect_ex((HOST, port))
        if err not in (0, errno.EINPROGRESS):
            fail(c, f"connect: {os.strerror(err)}")
            return
        sel.register(s, selectors.EVENT_WRITE, c)

    def connected(c: Conn) -> None:
        err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            fail(c, f"connect: {os.strerror(err)}")
            return
        # wrap_socket takes over the descriptor: register the TLS socket instead.
        sel.unregister(c.sock)
        c.sock = ctx.wrap_socket(c.sock, server_side=False, do_handshake_on_connect=False)
        c.state = TLS
        sel.register(c.sock, selectors.EVENT_WRITE, c)
        c.events = selectors.EVENT_WRITE
        advance(c)

    def advance(c: Conn) -> None:
        """Go as far as the socket lets; then wait for what it wants."""
        try:
            while True:
                if c.state == TLS:
                    c.sock.do_handshake()
                    c.state, c.then = SENDING, READ_HEAD
                    c.out = base.handshake_request(port, c.key)
                elif c.state == SENDING:
                    sent = c.sock.send(c.out)
                    c.out = c.out[sent:]
                    if not c.out:
                        c.state = c.then
                elif c.state in (READ_HEAD, READ_ECHO):
                    data = c.sock.recv(65536)
                    if not data:
                        fail(c, "closed by server during " + ("handshake" if c.state == READ_HEAD else "echo"))
                        return
                    c.inbuf += data
                    if c.state == READ_HEAD:
                        end = c.inbuf.find(b"\r\n\r\n")
                        if end < 0:
                            if len(c.inbuf) > base.MAX_RESPONSE_HEAD:
                                fail(c, "response head too long")
                                return
                            continue
                        head, c.inbuf = c.inbuf[:end], c.inbuf[end + 4:]
                        why = base.check_response(head, c.key, c)
                        if why:
                            fail(c, f"handshake: {why}")
                            return
                        if not echo:
                            finish(c)
                            return
                        c.state, c.then = SENDING, READ_ECHO
                        c.out = base.masked_text_frame(c.payload)
                        continue
                    # READ_ECHO: skip pings/pongs, expect our text back
                    while True:
                        try:
                            frame = base.parse_frame(c.inbuf)
                        except ValueError as e:
                            fail(c, f"echo: {e}")
                            return
                        if frame is None:
                            break
                        fin, rsv, opcode, payload, c.inbuf = frame
                        if opcode in (0x9, 0xA):
                            continue
                        if opcode != 0x1 or not fin or rsv:
                            fail(c, f"echo: unexpected frame (opcode {opcode}, fin {fin}, rsv {rsv})")
                        elif payload != c.payload:
                            fail(c, "echo: payload differs")
                        else:
                            finish(c)
                        return
                else:
                    return
        except ssl.SSLWantReadError:
            want(c, selectors.EVENT_READ)
        except ssl.SSLWantWriteError:
            want(c, selectors.EVENT_WRITE)
        except (BlockingIOError, InterruptedError):
            want(c, selectors.EVENT_READ if c.state in (READ_HEAD, READ_ECHO) else selectors.EVENT_WRITE)
        except ssl.SSLError as e:
            fail(c, f"TLS: {e.reason or e}")
        except OSError as e:
            fail(c, f"{type(e).__name__}: {e.strerror or e}")

    def on_event(c: Conn) -> None:
        if c.state == CONNECTING:
            connected(c)
        else:
            advance(c)

    while len(done) + sum(failures.values()) < n:
        while started < n and in_flight < batch:
            start_one(started)
            started += 1
        now = time.monotonic()
        if now >= deadline:
            break
        if now - last_report >= 5:
            log(f"  {len(done)} established, {in_flight} in progress, {sum(failures.values())} failed")
            last_report = now
            if not server_alive():
                log("  the server process is gone")
                break
        for key, _ in sel.select(timeout=min(1.0, deadline - now)):
            on_event(key.data)

    for key in list(sel.get_map().values()):
        failures["timed out (--timeout)"] += 1
        sel.unregister(key.fileobj)
        key.fileobj.close()
    if n - started:
        failures["not attempted (--timeout)"] += n - started
    sel.close()
    return done, failures, versions


def count_closed(socks: list[ssl.SSLSocket]) -> int:
    """How many of the idle TLS sockets the server has closed (EOF, alert or error)."""
    closed = 0
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    for key, _ in sel.select(timeout=0):
        try:
            while True:
                if key.fileobj.recv(65536) == b"":
                    closed += 1
                    break
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            pass  # records that are no data (a session ticket), or none: still open
        except OSError:
            closed += 1
    sel.close()
    return closed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server-pid", type=int, required=True, metavar="PID")
    p.add_argument("--port", type=int, required=True, help="the server's TLS port on 127.0.0.1")
    p.add_argument("--connections", "-n", type=int, default=10000, help="idle connections to open (default 10000)")
    p.add_argument("--batch", type=int, default=500, help="connections in progress at once (default 500)")
    p.add_argument("--no-echo", dest="echo", action="store_false",
                   help="do not send a text frame and read its echo on each connection")
    p.add_argument("--warmup", type=int, default=0, metavar="N",
                   help="first open (and echo), then close N connections before the baseline (default 0)")
    p.add_argument("--settle", type=float, default=2.0,
                   help="seconds to let the connections sit idle before the second reading (default 2)")
    p.add_argument("--timeout", type=float, default=180.0, help="bound on the whole run, seconds (default 180)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = p.parse_args(argv)
    if args.connections < 1 or args.batch < 1 or args.warmup < 0:
        p.error("--connections and --batch must be positive, --warmup 0 or more")

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    deadline = time.monotonic() + args.timeout
    pid, port = args.server_pid, args.port
    ctx = client_context()
    socks: list[ssl.SSLSocket] = []
    try:
        log(f"RLIMIT_NOFILE soft limit {base.raise_nofile_limit(args.connections + 64)}")
        if not base.process_alive(pid):
            raise base.SetupError(f"no running process with pid {pid}")
        if not base.port_accepts(port):
            raise base.SetupError(f"nothing accepts on {HOST}:{port}")
        if base.holds_listener(pid, port) is False:
            raise base.SetupError(f"process {pid} does not hold the listening socket of {HOST}:{port}")
        limit = base.nofile_soft_limit(pid)
        if limit is not None and limit < args.connections + 16:
            log(f"warning: the server's open-files limit is {limit}, below {args.connections} connections")

        alive = lambda: base.process_alive(pid)  # noqa: E731
        if args.warmup:
            log(f"warm-up: {args.warmup} TLS connections opened and closed before the baseline")
            warm, failures, _ = open_connections(ctx, port, args.warmup, args.batch, args.echo, deadline, alive)
            for s in warm:
                s.close()
            if len(warm) < args.warmup:
                reasons = ", ".join(f"{k} x {r}" for r, k in failures.most_common())
                raise RuntimeError(f"only {len(warm)} of {args.warmup} warm-up connections opened: {reasons}")
            time.sleep(1.0)  # let the server see the EOFs and drop them

        before = base.read_status(pid)
        log(f"server pid {pid} on {HOST}:{port}: VmRSS {base.fmt_bytes(before['VmRSS'])}, "
            f"RssAnon {base.fmt_bytes(before.get('RssAnon', 0))} before")
        log(f"opening {args.connections} TLS connections ({args.batch} at a time"
            f"{', with one echoed text frame each' if args.echo else ''})")
        t0 = time.monotonic()
        socks, failures, versions = open_connections(ctx, port, args.connections, args.batch, args.echo,
                                                     deadline, alive)
        connect_s = time.monotonic() - t0
        log(f"{len(socks)} connections established in {connect_s:.1f} s")
        ok = len(socks)
        if ok < args.connections:
            print(f"idle_rss_tls: FAIL: only {ok} of {args.connections} TLS and WebSocket handshakes"
                  f"{' and echoes' if args.echo else ''} succeeded", file=sys.stderr)
            for reason, count in failures.most_common():
                print(f"idle_rss_tls:   {count} x {reason}", file=sys.stderr)
            return 1

        settle = max(0.0, min(args.settle, deadline - time.monotonic()))
        time.sleep(settle)
        after = base.read_status(pid)
        closed = count_closed(socks)
        if closed:
            print(f"idle_rss_tls: FAIL: the server closed {closed} of the {ok} idle connections "
                  "before the measurement", file=sys.stderr)
            return 1

        delta = after["VmRSS"] - before["VmRSS"]
        delta_anon = after.get("RssAnon", 0) - before.get("RssAnon", 0)
        for v, count in versions.most_common():
            print(f"idle_rss_tls: negotiated {count} x {v}")
        print(f"idle_rss_tls: connections {ok} idle over TLS (echo {'on' if args.echo else 'off'}), "
              f"server pid {pid}, {after.get('Threads', '?')} threads")
        print(f"idle_rss_tls: VmRSS   before {base.fmt_bytes(before['VmRSS']):>10}  after "
              f"{base.fmt_bytes(after['VmRSS']):>10}  delta {base.fmt_bytes(delta):>10}")
        print(f"idle_rss_tls: RssAnon before {base.fmt_bytes(before.get('RssAnon', 0)):>10}  after "
              f"{base.fmt_bytes(after.get('RssAnon', 0)):>10}  delta {base.fmt_bytes(delta_anon):>10}")
        print(f"idle_rss_tls: bytes per idle connection: {delta / ok:.0f} (VmRSS), {delta_anon / ok:.0f} (RssAnon)")
        result = {
            "connections": ok,
            "tls": True,
            "tls_negotiated": dict(versions),
            "echo": args.echo,
            "server_pid": pid,
            "server_threads": after.get("Threads"),
            "port": port,
            "connect_seconds": round(connect_s, 3),
            "warmup_connections": args.warmup,
            "settle_seconds": settle,
            "before": before,
            "after": after,
            "delta_vmrss_bytes": delta,
            "delta_rssanon_bytes": delta_anon,
            "bytes_per_conn": round(delta / ok, 1),
            "rssanon_bytes_per_conn": round(delta_anon / ok, 1),
            "passed": True,
        }
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2)
                f.write("\n")
            log(f"wrote {args.json}")
        return 0
    except base.SetupError as e:
        print(f"idle_rss_tls: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f"idle_rss_tls: FAIL: {e}", file=sys.stderr)
        return 1
    finally:
        for s in socks:
            s.close()


if __name__ == "__main__":
    sys.exit(main())
