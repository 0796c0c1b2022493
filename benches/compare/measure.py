#!/usr/bin/env python3
"""One measurement of run.sh: run a client command against a running server,
sample both processes' CPU time, and append one JSON record to a file.

    measure.py --server-pid PID --server NAME --workload W --round R \
               --kind load|rss --window run|ramp --out results.jsonl \
               --client-json FILE -- COMMAND...

COMMAND is the client (`wsreactor load ... --json FILE` for --kind load,
`idle_rss.py --server-pid PID ... --json FILE` for --kind rss), already
pinned by the caller; it must write its summary to --client-json FILE.

While it runs, the CPU time of the server and of the client is read every
--sample seconds (default 0.05): the sum over the process's threads of /proc/PID/task/TID/schedstat
(nanoseconds on the CPU; the same as utime+stime of /proc/PID/stat but
without its 10 ms ticks, which matter for windows of a tenth of a second).
CPU use is the growth of that time over a window divided by the window's
wall time, in % of one core (interpolated between samples). Each core's busy
share is read from /proc/stat too: it also counts the kernel's softirq work
(loopback TCP) that no process is charged for, and other jobs on the
machine. The window is taken from the load generator's summary: the
measurement window (`run`: after the ramp, `time.measured_s` long), or the
ramp (`ramp`: from the generator's start until every connection has opened,
less its 20 ms start margin); the generator's start is placed at its exit
less `time.elapsed_s`. For --kind rss the window is the
client's whole life. The kernel's TCP counters that tell of dropped
connection attempts (ListenOverflows, ListenDrops, TCPSynRetrans) are read
before and after; they are machine-wide, so other jobs can add to them.
The server's rchar and wchar of /proc/PID/io (bytes through read/write
system calls, sockets included, over the client's whole life) are read
before and after too: over TLS they tell how many bytes of handshake
records the server sent.

Standard library only. Exit status: the client's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")
# wsreactor load starts its window 20 ms after the last connection resolved.
START_MARGIN = 0.02
NET_COUNTERS = ("ListenOverflows", "ListenDrops", "TCPSynRetrans")


def cpu_seconds(pid: int) -> float | None:
    """CPU time of all of pid's threads so far, in seconds."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    total, seen = 0, False
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
                seen = True
        except (OSError, ValueError, IndexError):
            continue  # a thread that just ended
    if seen:
        return total / 1e9
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # Fields after the command name (which may hold spaces) start at state (3).
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime (14) + stime (15)


def core_times() -> dict[str, tuple[int, int]]:
    """(busy, total) jiffies of each core, from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *v = line.split()
                v = [int(x) for x in v]
                idle = v[3] + v[4]  # idle + iowait
                out[name] = (sum(v[:8]) - idle, sum(v[:8]))
    return out


def rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def io_bytes(pid: int) -> dict[str, int]:
    """rchar and wchar of /proc/PID/io (empty if it cannot be read)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name in ("rchar", "wchar"):
                    out[name] = int(value)
    except (OSError, ValueError):
        pass
    return out


def net_counters() -> dict[str, int]:
    out: dict[str, int] = {}
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            for n, v in zip(names.split()[1:], values.split()[1:]):
                if n in NET_COUNTERS:
                    out[n] = int(v)
    return out


def at(samples: list[tuple[float, float | None]], t: float) -> float | None:
    """The CPU time at wall time t, interpolated between samples."""
    known = sorted((ts, v) for ts, v in samples if v is not None)
    if not known or t < known[0][0] or t > known[-1][0]:
        return None
    for (t0, v0), (t1, v1) in zip(known, known[1:]):
        if t0 <= t <= t1:
            return v0 if t1 == t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    return known[-1][1]


def usage(samples, a: float, b: float) -> float | None:
    """% of one core used between wall times a and b."""
    if b - a <= 0:
        return None
    va, vb = at(samples, a), at(samples, b)
    if va is None or vb is None:
        return None
    return round(100.0 * (vb - va) / (b - a), 1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--server", required=True)
    p.add_argument("--workload", required=True)
    p.add_argument("--round", type=int, required=True)
    p.add_argument("--kind", choices=("load", "rss", "uws"), required=True)
    p.add_argument("--window", choices=("run", "ramp"), default="run")
    p.add_argument("--client-json", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--server-core", type=int, default=0)
    p.add_argument("--client-core", type=int, default=1)
    p.add_argument("--sample", type=float, default=0.05, help="seconds between two readings")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("no client command")

    net_before = net_counters()
    rss_before = rss_bytes(args.server_pid)
    io_before = io_bytes(args.server_pid)
    server: list[tuple[float, float | None]] = []
    client: list[tuple[float, float | None]] = []
    cores: list[tuple[float, dict[str, tuple[int, int]]]] = []
    with open(args.client_json + ".log", "w") as log:
        start = time.monotonic()
        server.append((start, cpu_seconds(args.server_pid)))
        # A process just spawned has used no CPU time yet.
        client.append((start, 0.0))
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        done = threading.Event()

        def sample() -> None:
            while True:
                now = time.monotonic()
                server.append((now, cpu_seconds(args.server_pid)))
                client.append((now, cpu_seconds(proc.pid)))
                cores.append((now, core_times()))
                if done.wait(args.sample):
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        # wait4 hands back the client's final CPU time, which /proc no longer
        # shows once it has been reaped: the last sample, at its exit.
        _, status, rusage = os.wait4(proc.pid, 0)
        end = time.monotonic()
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
        done.set()
        sampler.join()
        client.append((end, rusage.ru_utime + rusage.ru_stime))
        server.append((end, cpu_seconds(args.server_pid)))
        io_after = io_bytes(args.server_pid)

    record = {
        "server": args.server,
        "workload": args.workload,
        "round": args.round,
        "kind": args.kind,
        "rc": rc,
        "wall_s": round(end - start, 3),
        "server_rss_before": rss_before,
        "server_rss_after": rss_bytes(args.server_pid),
        "net": {k: net_counters().get(k, 0) - v for k, v in net_before.items()},
        "server_io": {k: io_after[k] - v for k, v in io_before.items() if k in io_after},
        "loadavg": open("/proc/loadavg").read().split()[:3],
    }
    try:
        with open(args.client_json) as f:
            summary = json.load(f)
    except (OSError, ValueError) as e:
        summary = None
        record["error"] = f"no client summary: {e}"
    record["client"] = summary

    if summary is not None and args.kind == "load":
        t = summary["time"]
        # The generator's clock starts after the process has started and
        # stops just before it exits: place it from the end.
        t0 = max(start, end - t["elapsed_s"])
        if args.window == "ramp":
            a, b = t0, t0 + max(t["ramp_s"] - START_MARGIN, 0.0)
        else:
            a = t0 + t["ramp_s"]
            b = a + t["measured_s"]
    else:
        a, b = start, end
    record["window_s"] = round(b - a, 3)
    record["client_cpu"] = usage(client, a, b)
    record["server_cpu"] = usage(server, a, b)
    # Busy share of each core between the samples nearest the window's ends.
    inside = [c for c in cores if a - args.sample <= c[0] <= b + args.sample] or cores
    if len(inside) >= 2:
        (_, first), (_, last) = inside[0], inside[-1]
        def busy(core: int) -> float | None:
            name = f"cpu{core}"
            if name not in first or name not in last:
                return None
            return round(100.0 * (last[name][0] - first[name][0]) / max(last[name][1] - first[name][1], 1), 1)
        record["server_core_busy"] = busy(args.server_core)
        record["client_core_busy"] = busy(args.client_core)

    with open(args.out, "a") as f:
        f.write(json.dumps(record) + "\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
