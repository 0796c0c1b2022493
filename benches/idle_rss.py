#!/usr/bin/env python3
"""Measure a WebSocket server's resident memory per idle connection.

Reads the server's VmRSS and RssAnon from /proc/PID/status, opens N
connections to it on 127.0.0.1 (non-blocking sockets and a selector, at most
--batch of them in progress at once), does the RFC 6455 opening handshake on
each (checking the 101 status and Sec-WebSocket-Accept), by default sends one
masked text frame on each and reads its echo (so that each connection's
buffers have been used once), leaves them all idle for --settle seconds, and
reads the RSS again:

    bytes per connection = (VmRSS after - VmRSS before) / N

With --warmup W, W connections are first opened (and echoed) and closed
before the first reading, so that what a fresh server does once (paging in
its code, setting up its runtime) is not counted per connection.

Kernel socket buffers are not part of a process's RSS, so this is the
server's own per-connection memory (its connection table, buffers, etc.).

Either measure a running server:
    benches/idle_rss.py --server-pid PID --port PORT
or let the script start one (`BINARY serve --bind 127.0.0.1:PORT --threads N`)
and stop it afterwards (SIGTERM, then SIGKILL after 10 s):
    benches/idle_rss.py --spawn target/release/wsreactor

With --deflate, each handshake offers permessage-deflate (RFC 7692:
"permessage-deflate; client_max_window_bits") and the 101 must accept it;
the echoed message is then a compressible JSON text of a few hundred bytes,
sent compressed (RSV1, raw DEFLATE without its 00 00 ff ff tail), and its
echo must come back compressed and inflate to the same text. So each
connection has used its compressor and decompressor once, and what it keeps
of them (per the server's context-takeover policy) is in the figure. Pass
the server a configuration with --config FILE (only with --spawn), e.g. a
[deflate] section that turns context takeover on:
    benches/idle_rss.py --spawn target/release/wsreactor --deflate --config takeover.toml

Exit status: 0 on success; 1 if fewer than N connections completed (or a
connection was closed while idle), or if --max-bytes-per-conn is exceeded;
2 on a usage or setup error. Standard library only; loopback only; every run
is bounded by --timeout.
"""

from __future__ import annotations

import argparse
import base64
import errno
import hashlib
import json
import os
import resource
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter

HOST = "127.0.0.1"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_RESPONSE_HEAD = 16 * 1024
STOP_GRACE = 10.0


class SetupError(Exception):
    """A problem that is not the server's fault: bad arguments, limits, etc."""


def log(msg: str) -> None:
    print(f"idle_rss: {msg}", file=sys.stderr, flush=True)


# --- /proc ------------------------------------------------------------------

def read_status(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon, RssFile, RssShmem, VmHWM and Threads of PID (sizes in bytes)."""
    wanted = {"VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM", "Threads"}
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name in wanted:
                    parts = value.split()
                    n = int(parts[0])
                    out[name] = n * 1024 if len(parts) > 1 and parts[1] == "kB" else n
    except FileNotFoundError:
        raise RuntimeError(f"server process {pid} is gone") from None
    return out


def process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return False


def nofile_soft_limit(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    v = line.split()[3]
                    return None if v == "unlimited" else int(v)
    except OSError:
        pass
    return None


def listening_inodes(port: int) -> set[str]:
    """Socket inodes of the TCP listeners on PORT (IPv4 and IPv6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, state, inode = fields[1], fields[3], fields[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        inodes.add(inode)
        except OSError:
            pass
    return inodes


def holds_listener(pid: int, port: int) -> bool | None:
    """Whether PID has the listening socket of PORT open (None: cannot tell)."""
    inodes = listening_inodes(port)
    if not inodes:
        return None
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return True
    except OSError:
        return None
    return False


def raise_nofile_limit(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SetupError(
            f"RLIMIT_NOFILE hard limit is {hard}, but {needed} descriptors are needed; "
            "lower --connections"
        )
    return soft


def fmt_bytes(n: float) -> str:
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{sign}{n:.0f} {unit}" if unit == "B" else f"{sign}{n:.1f} {unit}"
        n /= 1024
    return f"{sign}{n}"


# --- the server, when we spawn it ---------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def spawn_server(binary: str, port: int, threads: int, deadline: float, log_path: str,
                 config: str | None = None):
    args = [binary, "serve", "--bind", f"{HOST}:{port}", "--threads", str(threads)]
    if config:
        args += ["--config", config]
    log(f"starting {' '.join(args)} (stderr to {log_path})")
    logf = open(log_path, "wb")
    try:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
    except OSError as e:
        raise SetupError(f"cannot start {binary}: {e}") from None
    finally:
        logf.close()
    startup_deadline = min(deadline, time.monotonic() + 30)
    while time.monotonic() < startup_deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} at startup; see {log_path}")
        if port_accepts(port):
            return proc
        time.sleep(0.1)
    stop_server(proc)
    raise RuntimeError(f"server did not accept on {HOST}:{port} within 30 s; see {log_path}")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_GRACE)
        log(f"server (pid {proc.pid}) stopped by SIGTERM, status {proc.returncode}")
    except subprocess.TimeoutExpired:
        log(f"server (pid {proc.pid}) still running {STOP_GRACE:.0f} s after SIGTERM; sending SIGKILL")
        proc.kill()
        proc.wait()


# --- the clients ---------------------------------------------------------------

# a connection's states: TCP connect, send handshake, read 101, send frame, read echo, idle
CONNECTING, SENDING_HANDSHAKE, READ_HEAD, SENDING_FRAME, READ_ECHO, DONE = range(6)


class Conn:
    __slots__ = ("sock", "state", "out", "inbuf", "key", "payload", "extensions")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.state = CONNECTING
        self.out = b""
        self.inbuf = b""
        self.key = b""
        self.payload = b""
        self.extensions = None


DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"
DEFLATE_TAIL = b"\x00\x00\xff\xff"


def handshake_request(port: int, key: bytes, deflate: bool = False) -> bytes:
    return (
        f"GET / HTTP/1.1\r\n"
        f"Host: {HOST}:{port}\r\n"
        f"Upgrade: websocket\r\n"
        f"Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\n"
        f"Sec-WebSocket-Version: 13\r\n"
        + (f"Sec-WebSocket-Extensions: {DEFLATE_OFFER}\r\n" if deflate else "")
        + "\r\n"
    ).encode()


def json_message(i: int) -> bytes:
    """A compressible JSON text of a few hundred bytes, different on each connection."""
    return json.dumps({
        "type": "price_update", "connection": i, "sequence": i * 7,
        "quotes": [{"symbol": s, "bid": 100.25 + k, "ask": 100.5 + k, "currency": "EUR"}
                   for k, s in enumerate(["ABC", "DEF", "GHI", "JKL"])],
    }).encode()


def deflate_message(payload: bytes) -> bytes:
    """Raw DEFLATE of one message (RFC 7692 §7.2.1): sync flush, tail removed."""
    c = zlib.compressobj(wbits=-15)
    data = c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(DEFLATE_TAIL)
    return data[:-4]


def inflate_message(data: bytes) -> bytes:
    d = zlib.decompressobj(wbits=-15)
    return d.decompress(data + DEFLATE_TAIL) + d.flush()


def expected_accept(key: bytes) -> str:
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()


def check_response(head: bytes, key: bytes, c: Conn | None = None, deflate: bool = False) -> str | None:
    """None if HEAD is a valid 101 answer to KEY, else why not. With DEFLATE,
    it must accept permessage-deflate; the value goes to C.extensions."""
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or not status[0].startswith("HTTP/1.") or status[1] != "101":
        return f"status {lines[0][:60]!r}"
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if headers.get("upgrade", "").lower() != "websocket":
        return "missing Upgrade: websocket"
    if "upgrade" not in [t.strip().lower() for t in headers.get("connection", "").split(",")]:
        return "missing Connection: Upgrade"
    if headers.get("sec-websocket-accept") != expected_accept(key):
        return "wrong Sec-WebSocket-Accept"
    ext = headers.get("sec-websocket-extensions")
    if c is not None:
        c.extensions = ext
    if deflate and (ext is None or ext.split(";")[0].strip() != "permessage-deflate"):
        return f"permessage-deflate not accepted (Sec-WebSocket-Extensions: {ext})"
    if not deflate and ext is not None:
        return f"an extension accepted that was not offered ({ext})"
    return None


def masked_text_frame(payload: bytes, rsv1: bool = False) -> bytes:
    assert len(payload) < 65536
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    head = bytes([0xC1 if rsv1 else 0x81])
    if len(payload) < 126:
        head += bytes([0x80 | len(payload)])
    else:
        head += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    return head + mask + body


def parse_frame(buf: bytes):
    """(fin, rsv, opcode, payload, rest) for a complete unmasked frame at the start of BUF, or None."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    if b1 & 0x80:
        raise ValueError("server frame is masked")
    n, pos = b1 & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, pos = struct.unpack("!H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, pos = struct.unpack("!Q", buf[2:10])[0], 10
    if len(buf) < pos + n:
        return None
    return bool(b0 & 0x80), (b0 >> 4) & 0x7, b0 & 0x0F, buf[pos:pos + n], buf[pos + n:]


def open_connections(port: int, n: int, batch: int, echo: bool, deadline: float,
                     server_alive, deflate: bool = False) -> tuple[list[socket.socket], Counter, Counter]:
    """Open N WebSocket connections; return the established sockets, the
    failure reasons and the Sec-WebSocket-Extensions values of the 101s."""
    sel = selectors.DefaultSelector()
    done: list[socket.socket] = []
    failures: Counter = Counter()
    extensions: Counter = Counter()
    started = 0
    in_flight = 0
    last_report = time.monotonic()

    def fail(c: Conn, reason: str) -> None:
        nonlocal in_flight
        failures[reason] += 1
        in_flight -= 1
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()

    def finish(c: Conn) -> None:
        nonlocal in_flight
        in_flight -= 1
        sel.unregister(c.sock)
        c.state = DONE
        done.append(c.sock)
        extensions[c.extensions] += 1

    def start_one(i: int) -> None:
        nonlocal in_flight
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        c = Conn(s)
        c.key = base64.b64encode(os.urandom(16))
        c.payload = json_message(i) if deflate else b"idle-rss %d" % i
        in_flight += 1
        err = s.connect_ex((HOST, port))
        if err not in (0, errno.EINPROGRESS):
            fail(c, f"connect: {os.strerror(err)}")
            return
        sel.register(s, selectors.EVENT_WRITE, c)

    def on_writable(c: Conn) -> None:
        if c.state == CONNECTING:
            err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                fail(c, f"connect: {os.strerror(err)}")
                return
            c.state = SENDING_HANDSHAKE
            c.out = handshake_request(port, c.key, deflate)
        sent = c.sock.send(c.out)
        c.out = c.out[sent:]
        if not c.out:
            c.state = READ_HEAD if c.state == SENDING_HANDSHAKE else READ_ECHO
            sel.modify(c.sock, selectors.EVENT_READ, c)

    def on_readable(c: Conn) -> None:
        data = c.sock.recv(65536)
        if not data:
            fail(c, "closed by server during " + ("handshake" if c.state == READ_HEAD else "echo"))
            return
        c.inbuf += data
        if c.state == READ_HEAD:
            end = c.inbuf.find(b"\r\n\r\n")
            if end < 0:
                if len(c.inbuf) > MAX_RESPONSE_HEAD:
                    fail(c, "response head too long")
                return
            head, c.inbuf = c.inbuf[:end], c.inbuf[end + 4:]
            why = check_response(head, c.key, c, deflate)
            if why:
                fail(c, f"handshake: {why}")
                return
            if not echo:
                finish(c)
                return
            c.state = SENDING_FRAME
            if deflate:
                c.out = masked_text_frame(deflate_message(c.payload), rsv1=True)
            else:
                c.out = masked_text_frame(c.payload)
            sel.modify(c.sock, selectors.EVENT_WRITE, c)
            return
        # READ_ECHO: skip pings/pongs, expect our text back
        while True:
            try:
                frame = parse_frame(c.inbuf)
            except ValueError as e:
                fail(c, f"echo: {e}")
                return
            if frame is None:
                return
            fin, rsv, opcode, payload, c.inbuf = frame
            if opcode in (0x9, 0xA):
                continue
            if opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                fail(c, f"echo: server sent close ({code})")
                return
            if opcode != 0x1 or not fin or rsv != (4 if deflate else 0):
                fail(c, f"echo: unexpected frame (opcode {opcode}, fin {fin}, rsv {rsv})")
                return
            if deflate:
                try:
                    payload = inflate_message(payload)
                except zlib.error as e:
                    fail(c, f"echo: does not inflate: {e}")
                    return
            if payload != c.payload:
                fail(c, "echo: payload differs")
            else:
                finish(c)
            return

    def on_event(c: Conn, mask: int) -> None:
        try:
            if mask & selectors.EVENT_WRITE:
                on_writable(c)
            elif mask & selectors.EVENT_READ:
                on_readable(c)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as e:
            fail(c, f"{type(e).__name__}: {e.strerror or e}")

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
        for key, mask in sel.select(timeout=min(1.0, deadline - now)):
            on_event(key.data, mask)

    # whatever is still in progress at the deadline counts as failed
    for key in list(sel.get_map().values()):
        failures["timed out (--timeout)"] += 1
        sel.unregister(key.fileobj)
        key.fileobj.close()
    unstarted = n - started
    if unstarted:
        failures["not attempted (--timeout)"] += unstarted
    sel.close()
    return done, failures, extensions


def count_closed(socks: list[socket.socket]) -> int:
    """How many of the idle sockets the server has closed (EOF or error pending)."""
    closed = 0
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    for key, _ in sel.select(timeout=0):
        try:
            if key.fileobj.recv(65536, socket.MSG_PEEK) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    sel.close()
    return closed


# --- main ----------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Measure a WebSocket server's RSS per idle connection (loopback only).",
    )
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--server-pid", type=int, metavar="PID", help="measure this running server (needs --port)")
    who.add_argument("--spawn", metavar="BINARY",
                     help="start `BINARY serve --bind 127.0.0.1:PORT --threads N`, measure it, stop it")
    p.add_argument("--port", type=int, help="server port on 127.0.0.1 (default with --spawn: a free port)")
    p.add_argument("--threads", type=int, default=2, help="--threads for the spawned server (default 2)")
    p.add_argument("--connections", "-n", type=int, default=10000, help="idle connections to open (default 10000)")
    p.add_argument("--batch", type=int, default=500,
                   help="connections in progress at once (default 500)")
    p.add_argument("--no-echo", dest="echo", action="store_false",
                   help="do not send a text frame and read its echo on each connection")
    p.add_argument("--warmup", type=int, default=0, metavar="N",
                   help="first open (and echo, unless --no-echo), then close N connections before "
                        "the baseline, so that what a fresh server sets up once is not counted (default 0)")
    p.add_argument("--settle", type=float, default=2.0,
                   help="seconds to let the connections sit idle before the second reading (default 2)")
    p.add_argument("--timeout", type=float, default=120.0, help="bound on the whole run, seconds (default 120)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    p.add_argument("--max-bytes-per-conn", type=float, metavar="B",
                   help="exit 1 if the VmRSS growth per connection exceeds B bytes (target: 1024)")
    p.add_argument("--server-log", metavar="FILE", help="stderr of the spawned server (default: a temp file)")
    p.add_argument("--deflate", action="store_true",
                   help="offer permessage-deflate, require it accepted, and echo a compressed JSON text")
    p.add_argument("--config", metavar="FILE", help="--config FILE for the spawned server")
    args = p.parse_args(argv)
    if args.config is not None and not args.spawn:
        p.error("--config needs --spawn")
    if args.deflate and not args.echo:
        p.error("--deflate needs the echo (leave out --no-echo)")
    if args.server_pid is not None and args.port is None:
        p.error("--server-pid needs --port")
    if args.warmup < 0:
        p.error("--warmup must be 0 or more")
    if args.connections < 1 or args.batch < 1 or args.threads < 1:
        p.error("--connections, --batch and --threads must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.monotonic()
    deadline = t_start + args.timeout
    proc = None
    temp_log = None  # the spawned server's log, when we chose the file
    verdict = 1
    socks: list[socket.socket] = []

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    try:
        limit = raise_nofile_limit(args.connections + 64)
        log(f"RLIMIT_NOFILE soft limit {limit}")
        if args.spawn:
            port = args.port or free_port()
            log_path = args.server_log
            if not log_path:
                fd, log_path = tempfile.mkstemp(prefix="idle_rss-server-", suffix=".log")
                os.close(fd)
                temp_log = log_path
            proc = spawn_server(args.spawn, port, args.threads, deadline, log_path, args.config)
            pid = proc.pid
            time.sleep(0.5)  # let it finish starting up before the baseline
        else:
            pid, port = args.server_pid, args.port
            if not process_alive(pid):
                raise SetupError(f"no running process with pid {pid}")
            if not port_accepts(port):
                raise SetupError(f"nothing accepts on {HOST}:{port}")
        if holds_listener(pid, port) is False:
            raise SetupError(f"process {pid} does not hold the listening socket of {HOST}:{port}; "
                             "is it the server's own pid (not a shell or wrapper around it)?")
        server_limit = nofile_soft_limit(pid)
        if server_limit is not None and server_limit < args.connections + 16:
            log(f"warning: the server's open-files limit is {server_limit}, below {args.connections} connections")

        if args.warmup:
            # A fresh server pages in its code and sets up its runtime on its
            # first connections; that one-time cost is not per connection.
            log(f"warm-up: {args.warmup} connections opened and closed before the baseline")
            warm, failures, _ = open_connections(port, args.warmup, args.batch, args.echo, deadline,
                                                 lambda: process_alive(pid), args.deflate)
            for s in warm:
                s.close()
            if len(warm) < args.warmup:
                reasons = ", ".join(f"{n} x {r}" for r, n in failures.most_common())
                raise RuntimeError(f"only {len(warm)} of {args.warmup} warm-up connections opened: {reasons}")
            time.sleep(1.0)  # let the server see the EOFs and drop them

        before = read_status(pid)
        log(f"server pid {pid} on {HOST}:{port}: VmRSS {fmt_bytes(before['VmRSS'])}, "
            f"RssAnon {fmt_bytes(before.get('RssAnon', 0))} before")

        log(f"opening {args.connections} connections ({args.batch} at a time"
            f"{', with one echoed text frame each' if args.echo else ''}"
            f"{', permessage-deflate' if args.deflate else ''})")
        t0 = time.monotonic()
        socks, failures, extensions = open_connections(port, args.connections, args.batch, args.echo,
                                                       deadline, lambda: process_alive(pid), args.deflate)
        connect_s = time.monotonic() - t0
        log(f"{len(socks)} connections established in {connect_s:.1f} s")

        ok = len(socks)
        if ok < args.connections:
            print(f"idle_rss: FAIL: only {ok} of {args.connections} WebSocket handshakes"
                  f"{' and echoes' if args.echo else ''} succeeded", file=sys.stderr)
            for reason, count in failures.most_common():
                print(f"idle_rss:   {count} x {reason}", file=sys.stderr)
            if not process_alive(pid):
                print(f"idle_rss:   the server process {pid} has died", file=sys.stderr)
            return 1

        settle = max(0.0, min(args.settle, deadline - time.monotonic()))
        time.sleep(settle)
        after = read_status(pid)
        closed = count_closed(socks)
        if closed:
            print(f"idle_rss: FAIL: the server closed {closed} of the {ok} idle connections "
                  f"before the measurement", file=sys.stderr)
            return 1

        delta = after["VmRSS"] - before["VmRSS"]
        delta_anon = after.get("RssAnon", 0) - before.get("RssAnon", 0)
        per_conn = delta / ok
        per_conn_anon = delta_anon / ok
        print(f"idle_rss: connections        {ok} idle (echo {'on' if args.echo else 'off'}), "
              f"server pid {pid}, {after.get('Threads', '?')} threads"
              f"{', config ' + args.config if args.config else ''}")
        for ext, count in extensions.most_common():
            print(f"idle_rss: extensions         {count} x {ext if ext is not None else '(none)'}")
        print(f"idle_rss: VmRSS   before {fmt_bytes(before['VmRSS']):>10}  after {fmt_bytes(after['VmRSS']):>10}"
              f"  delta {fmt_bytes(delta):>10}")
        print(f"idle_rss: RssAnon before {fmt_bytes(before.get('RssAnon', 0)):>10}  after "
              f"{fmt_bytes(after.get('RssAnon', 0)):>10}  delta {fmt_bytes(delta_anon):>10}")
        print(f"idle_rss: bytes per idle connection: {per_conn:.0f} (VmRSS), {per_conn_anon:.0f} (RssAnon)")

        result = {
            "connections": ok,
            "echo": args.echo,
            "deflate": args.deflate,
            "config": args.config,
            "extensions": {str(k): v for k, v in extensions.items()},
            "server_pid": pid,
            "spawned": bool(args.spawn),
            "threads_arg": args.threads if args.spawn else None,
            "server_threads": after.get("Threads"),
            "port": port,
            "connect_seconds": round(connect_s, 3),
            "warmup_connections": args.warmup,
            "settle_seconds": settle,
            "before": before,
            "after": after,
            "delta_vmrss_bytes": delta,
            "delta_rssanon_bytes": delta_anon,
            "bytes_per_conn": round(per_conn, 1),
            "rssanon_bytes_per_conn": round(per_conn_anon, 1),
            "max_bytes_per_conn": args.max_bytes_per_conn,
        }
        verdict = 0
        if args.max_bytes_per_conn is not None:
            if per_conn > args.max_bytes_per_conn:
                print(f"idle_rss: FAIL: {per_conn:.0f} bytes per connection is above the limit "
                      f"of {args.max_bytes_per_conn:.0f}")
                verdict = 1
            else:
                print(f"idle_rss: OK: {per_conn:.0f} bytes per connection is within the limit "
                      f"of {args.max_bytes_per_conn:.0f}")
        result["passed"] = verdict == 0
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2)
                f.write("\n")
            log(f"wrote {args.json}")
        return verdict
    except SetupError as e:
        print(f"idle_rss: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f"idle_rss: FAIL: {e}", file=sys.stderr)
        return 1
    finally:
        for s in socks:
            s.close()
        if proc is not None:
            stop_server(proc)
        if temp_log and verdict == 0:
            os.unlink(temp_log)  # kept for a look when the run failed


if __name__ == "__main__":
    sys.exit(main())
