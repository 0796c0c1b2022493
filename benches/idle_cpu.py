#!/usr/bin/env python3
"""What idle connections cost a server in CPU: open N WebSocket
connections to a freshly spawned wsreactor, echo once on each, then leave
them idle and measure the server's CPU time over a window, from the
kernel's per-thread scheduler accounting (/proc/PID/task/*/schedstat, in
nanoseconds: clock ticks are too coarse for a fraction of a percent).

Two or more binaries are compared in interleaved rounds (A B A B ...), each
on a fresh server, and the median per binary and the ratio to the first
are printed:

    python3 benches/idle_cpu.py --spawn /tmp/before/target/release/wsreactor \\
        --spawn target/release/wsreactor --connections 19000 --rounds 3 --window 20

Loopback only; bounded by --timeout; stops each server it started by pid.
Exits 0 when every round ran, 2 on a setup error.
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import idle_rss  # noqa: E402  (spawning, connections, /proc)


def log(msg: str) -> None:
    print(f"idle_cpu: {msg}", file=sys.stderr, flush=True)


def cpu_ns(pid: int) -> int:
    """On-CPU time of every thread of PID so far, in nanoseconds."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def one_round(binary: str, args, deadline: float) -> float:
    port = idle_rss.free_port()
    log_path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"idle_cpu-{os.getpid()}.log")
    proc = idle_rss.spawn_server(binary, port, args.threads, deadline, log_path)
    socks = []
    try:
        socks, failures, _ = idle_rss.open_connections(
            port, args.connections, 500, True, deadline, lambda: proc.poll() is None)
        if failures:
            raise RuntimeError(f"connections failed: {dict(failures)}")
        # Let the opening burst's work finish.
        time.sleep(args.settle)
        t0, c0 = time.monotonic(), cpu_ns(proc.pid)
        time.sleep(args.window)
        t1, c1 = time.monotonic(), cpu_ns(proc.pid)
        open_now = len(socks) - idle_rss.count_closed(socks)
        if open_now != len(socks):
            raise RuntimeError(f"{len(socks) - open_now} connections closed while idle")
        return (c1 - c0) / 1e9 / (t1 - t0)
    finally:
        for s in socks:
            s.close()
        idle_rss.stop_server(proc)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spawn", action="append", required=True, metavar="BINARY",
                   help="a wsreactor binary; give two or more to compare them")
    p.add_argument("--connections", "-n", type=int, default=19000)
    p.add_argument("--threads", type=int, default=1, help="server worker threads (default 1)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--window", type=float, default=20.0, help="seconds measured per round (default 20)")
    p.add_argument("--settle", type=float, default=3.0, help="seconds after opening before measuring")
    p.add_argument("--timeout", type=float, default=900.0)
    args = p.parse_args(argv)
    deadline = time.monotonic() + args.timeout
    idle_rss.raise_nofile_limit(args.connections + 64)
    results: dict[str, list[float]] = {b: [] for b in args.spawn}
    try:
        for r in range(args.rounds):
            for b in args.spawn:
                share = one_round(b, args, deadline)
                results[b].append(share)
                log(f"round {r + 1}: {b}: {share * 100:.4f} % of a core")
    except (RuntimeError, OSError, idle_rss.SetupError) as e:
        log(f"error: {e}")
        return 2
    base = statistics.median(results[args.spawn[0]])
    print(f"{args.connections} idle connections, {args.threads} worker thread(s), "
          f"{args.window:.0f} s windows, {args.rounds} rounds interleaved; server CPU, median:")
    for b, shares in results.items():
        med = statistics.median(shares)
        ratio = f"{med / base:.2f}x the first" if base > 0 else "n/a"
        rounds = ", ".join(f"{s * 100:.4f}" for s in shares)
        print(f"  {b}: {med * 100:.4f} % of a core ({med * 1e3:.3f} ms/s; {ratio}; rounds {rounds})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
