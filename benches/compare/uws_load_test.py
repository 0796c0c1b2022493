#!/usr/bin/env python3
"""uWebSockets' own load client (benchmarks/load_test.c, prebuilt as
uws-load-test) against an echo server, as a client of measure.py.

Runs `uws-load-test CONNECTIONS 127.0.0.1 PORT 0 0 SIZE` (no TLS, no
deflate) for --samples of its reports plus the first one, which covers the
connecting and is dropped. The client prints "Msg/sec: X" every 4 seconds;
the figure is the median of the kept reports. It never stops by itself: it
is sent SIGTERM once enough reports came, or after --timeout seconds.

Writes --json FILE: {"uws_load_test": {"per_second": X, "samples": [...],
"connections": N, "size": B}}. Exit status 0 when every report came, 1
otherwise (the JSON is then written with what came, if anything).
"""
import argparse
import json
import re
import signal
import statistics
import subprocess
import sys
import threading


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", required=True, help="the uws-load-test binary")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--connections", type=int, default=100)
    p.add_argument("--size", type=int, default=20)
    p.add_argument("--samples", type=int, default=3, help="reports kept after the first")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--json", required=True)
    args = p.parse_args()

    # stdbuf: the client's stdout is a pipe here, and it never exits on
    # its own, so its reports must not wait in a stdio buffer.
    cmd = ["stdbuf", "-oL", args.bin, str(args.connections), "127.0.0.1", str(args.port), "0", "0", str(args.size)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    timer = threading.Timer(args.timeout, lambda: proc.send_signal(signal.SIGTERM))
    timer.start()
    reports = []
    try:
        for raw in proc.stdout:
            m = re.match(rb"Msg/sec: ([0-9.]+)", raw)
            if m:
                reports.append(float(m.group(1)))
                if len(reports) >= args.samples + 1:
                    break
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait()
    kept = reports[1:]
    summary = {
        "uws_load_test": {
            "per_second": statistics.median(kept) if kept else None,
            "samples": reports,
            "connections": args.connections,
            "size": args.size,
        }
    }
    with open(args.json, "w") as f:
        json.dump(summary, f)
    return 0 if len(kept) >= args.samples else 1


if __name__ == "__main__":
    sys.exit(main())
