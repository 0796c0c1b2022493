#!/usr/bin/env python3
"""The comparison table from run.sh's records (one JSON object a line, as
measure.py writes them): the median of each figure per server over the
rounds, wsreactor's ratio to the best peer, the median CPU use of client
and server, and marks for rounds that cannot be trusted as they stand.

    table.py records.jsonl [--machine machine.txt] [--markdown results.md] [--group plain|tls]

Prints the table (markdown) on stdout; --markdown also writes it, with the
machine's description and every round's figure, to a file. --group tls
makes the table of the TLS workloads (ta, tc, td, te) instead of the plain
ones (the default); --tls-note says in its header what the certificate is.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict

SERVERS = ("wsreactor", "tokio-tungstenite", "fastwebsockets", "uws")
SATURATED = 90.0  # % of one core: the client is the limit
CORE_FULL = 95.0  # % busy of the client's core, whoever used it
EVEN = 0.03  # a ratio within 3 % of 1 is told as even


def per_second(r):
    return r["client"]["messages"]["per_second"]


def mb_per_second(r):
    m = r["client"]["messages"]
    return m["per_second"] * m["size"] / 1e6


def cycles_per_second(r):
    return r["client"]["churn"]["cycles_per_sec"]


def ms(field, pct):
    return lambda r: r["client"][field][pct] / 1000.0


def server_us(rate):
    """Server CPU time per message (or per connection), in µs: how much the
    server spent on each, whether or not the client was the limit."""
    return lambda r: r["server_cpu"] * 1e4 / rate(r)


def uws_per_second(r):
    return r["client"]["uws_load_test"]["per_second"]


def rss_per_conn(r):
    return r["client"]["bytes_per_conn"]


def anon_per_conn(r):
    """RssAnon growth per connection: VmRSS less the file-backed pages (the
    binary's code faulted in by the first connections, not per connection)."""
    return r["client"]["rssanon_bytes_per_conn"]


# (workload, label, higher is better, extract, format)
FIGURES = [
    ("a", "(a) 100 conns, 20 B text, 1 in flight: messages/s", True, per_second, "{:,.0f}"),
    ("a", "(a) the same: p99 round trip, ms", False, ms("latency_us", "p99"), "{:.2f}"),
    ("a", "(a) the same: server CPU per message, µs", False, server_us(per_second), "{:.2f}"),
    ("b", "(b) 100 conns, 20 B text, 16 in flight: messages/s", True, per_second, "{:,.0f}"),
    ("b", "(b) the same: server CPU per message, µs", False, server_us(per_second), "{:.2f}"),
    ("c", "(c) 10 conns, 16 KiB binary, 1 in flight: MB/s echoed", True, mb_per_second, "{:,.0f}"),
    ("c", "(c) the same: server CPU per message, µs", False, server_us(per_second), "{:.2f}"),
    ("d", "(d) new connections/s (handshake + echo + close), 50 at once", True, cycles_per_second, "{:,.0f}"),
    ("d", "(d) the same: p99 connect to server's close, ms", False, ms("latency_us", "p99"), "{:.2f}"),
    ("d", "(d) the same: server CPU per connection, µs", False, server_us(cycles_per_second), "{:.1f}"),
    ("e1k", "(e) RSS per idle conn (echoed once, after 100 warm-up conns), 1,000 conns: bytes", False, rss_per_conn, "{:,.0f}"),
    ("e1k", "(e) the same, anonymous memory only (RssAnon): bytes", False, anon_per_conn, "{:,.0f}"),
    ("e19k", "(e) RSS per idle conn, 19,000 conns: bytes", False, rss_per_conn, "{:,.0f}"),
    ("e19k", "(e) the same, anonymous memory only (RssAnon): bytes", False, anon_per_conn, "{:,.0f}"),
    ("f", "(f) 10,000 conns at 1 msg/s each: p99 from schedule, ms", False,
     ms("latency_us", "p99"), "{:.2f}"),
    ("f", "(f) the same: p99.9, ms", False, ms("latency_us", "p99_9"), "{:.2f}"),
    ("u", "(u) uWebSockets' own load_test client, 100 conns, 20 B: messages/s", True, uws_per_second, "{:,.0f}"),
    ("u", "(u) the same: server CPU per message, µs", False, server_us(uws_per_second), "{:.2f}"),
]

# The TLS workloads (wss://): the same figures as a, c, d and e.
TLS_FIGURES = [
    ("ta", "(ta) TLS: 100 conns, 20 B text, 1 in flight: messages/s", True, per_second, "{:,.0f}"),
    ("ta", "(ta) the same: p99 round trip, ms", False, ms("latency_us", "p99"), "{:.2f}"),
    ("ta", "(ta) the same: server CPU per message, µs", False, server_us(per_second), "{:.2f}"),
    ("tc", "(tc) TLS: 10 conns, 16 KiB binary, 1 in flight: MB/s echoed", True, mb_per_second, "{:,.0f}"),
    ("tc", "(tc) the same: server CPU per message, µs", False, server_us(per_second), "{:.2f}"),
    ("td", "(td) TLS: new connections/s (TLS + WebSocket handshake + echo + close), 50 at once", True,
     cycles_per_second, "{:,.0f}"),
    ("td", "(td) the same: p99 connect to server's close, ms", False, ms("latency_us", "p99"), "{:.2f}"),
    ("td", "(td) the same: server CPU per connection, µs", False, server_us(cycles_per_second), "{:.1f}"),
    ("te", "(te) TLS: RSS per idle conn (echoed once, after 100 warm-up conns), 10,000 conns: bytes", False,
     rss_per_conn, "{:,.0f}"),
    ("te", "(te) the same, anonymous memory only (RssAnon): bytes", False, anon_per_conn, "{:,.0f}"),
]


def trouble(r) -> list[str]:
    """Why a round's figure is suspect, if it is."""
    why = []
    if r.get("rc") not in (0, None):
        why.append(f"client exit {r['rc']}")
    c = r.get("client")
    if c is None:
        return why + [r.get("error", "no summary")]
    if r["kind"] == "rss":
        return why  # idle_rss.py fails (exit 1) unless every connection opened and echoed
    if r["kind"] == "uws":
        return why  # uws_load_test.py fails (exit 1) unless every report came
    e = c["errors"]
    # Close handshakes that time out come after the window and do not touch its figures.
    during = e["total"] - e["timed_out"]["close"]
    if during:
        why.append(f"{during} errors")
    if c["connections"]["failed"]:
        why.append(f"{c['connections']['failed']} conns failed")
    if c["messages"]["lost"]:
        why.append(f"{c['messages']['lost']} lost")
    drops = r.get("net", {}).get("ListenOverflows", 0)
    if drops:
        why.append(f"{drops} listen overflows (machine-wide counter)")
    kept = (c.get("churn") or {}).get("server_kept_open", 0)
    if kept:
        why.append(f"{kept} times the server kept TCP open after the close handshake")
    return why


def after_window(r) -> str | None:
    """What went wrong after the window: close handshakes that timed out."""
    c = r.get("client")
    if r["kind"] == "load" and c and c["errors"]["timed_out"]["close"]:
        return f"{c['errors']['timed_out']['close']} close handshakes timed out after the window"
    return None


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("records")
    p.add_argument("--machine")
    p.add_argument("--markdown")
    p.add_argument("--servers", default=" ".join(SERVERS),
                   help="the servers measured, wsreactor first (the ratio is to the best of the others)")
    p.add_argument("--group", choices=("plain", "tls"), default="plain",
                   help="the plain workloads' table (a-f, the default) or the TLS ones' (ta, tc, td, te)")
    p.add_argument("--tls-note", default="", help="what the TLS table's header says of the certificate")
    args = p.parse_args()
    tls = args.group == "tls"
    figures = TLS_FIGURES if tls else FIGURES
    servers = tuple(args.servers.split())
    # The floor (floor_echo) is no peer: wsreactor is measured against it
    # in a column of its own.
    peers = tuple(s for s in servers[1:] if s != "floor")
    floor = "floor" in servers

    by = defaultdict(list)  # (workload, server) -> records
    with open(args.records) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                by[(r["workload"], r["server"])].append(r)
    rounds = max((r["round"] for v in by.values() for r in v), default=0)

    head = ["figure", *servers, "wsreactor ÷ best peer", *(["wsreactor ÷ floor"] if floor else []),
            f"client CPU % ({' / '.join(servers)})", f"server CPU % ({' / '.join(servers)})"]
    rows, detail, notes, minor = [], [], [], []
    for w, label, higher, get, fmt in figures:
        cells, values, cpu_c, cpu_s = [], {}, [], []
        for s in servers:
            recs = [r for r in by.get((w, s), []) if r.get("client") is not None]
            vals = []
            for r in recs:
                try:
                    vals.append(get(r))
                except (KeyError, TypeError):
                    vals.append(None)
            v = median(vals)
            values[s] = v
            cc = median([r.get("client_cpu") for r in recs])
            sc = median([r.get("server_cpu") for r in recs])
            busy = median([r.get("client_core_busy") for r in recs])
            mark = ""
            # A timed client run (not a memory count): CPU figures apply.
            kind_load = recs and recs[0]["kind"] in ("load", "uws")
            if kind_load:
                if cc is not None and cc >= SATURATED:
                    mark += " †"
                elif busy is not None and busy >= CORE_FULL:
                    mark += " ‡"
            bad = sorted({f"round {r['round']}: " + ", ".join(t) for r in recs if (t := trouble(r))})
            if bad:
                mark += " !"
                notes.extend(f"{label} — {s}, {b}" for b in bad)
            later = sorted({f"round {r['round']}: {t}" for r in recs if (t := after_window(r))})
            minor.extend(f"{label} — {s}, {b}" for b in later)
            cells.append("n/a" if v is None else fmt.format(v) + mark)
            cpu_c.append(f"{cc:.0f}" if cc is not None and kind_load else "–")
            cpu_s.append(f"{sc:.0f}" if sc is not None and kind_load else "–")
            detail.append([
                label, s,
                ", ".join(fmt.format(x) if x is not None else "n/a" for x in vals),
                ", ".join(f"{r.get('client_cpu')}/{r.get('server_cpu')}" for r in recs) if kind_load else "–",
                ", ".join(f"{r.get('client_core_busy')}/{r.get('server_core_busy')}" for r in recs)
                if kind_load else "–",
                ", ".join(r["loadavg"][0] for r in recs),
            ])
        peer_vals = [values[s] for s in peers if values[s] is not None]
        ratio = "n/a"
        if values["wsreactor"] is not None and peer_vals:
            best = max(peer_vals) if higher else min(peer_vals)
            if best:
                q = values["wsreactor"] / best
                wins = q > 1 if higher else q < 1
                verdict = "even" if abs(q - 1) < EVEN else "better" if wins else "worse"
                ratio = f"{q:.2f}× ({verdict})"
        name = label + (" ↑" if higher else " ↓")
        to_floor = []
        if floor:
            w_v, f_v = values["wsreactor"], values["floor"]
            to_floor = [f"{w_v / f_v:.2f}×" if w_v is not None and f_v else "n/a"]
        rows.append([name, *cells, ratio, *to_floor, " / ".join(cpu_c), " / ".join(cpu_s)])

    def table(header, body):
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
        return "\n".join(out)

    legend = (f"Medians of {rounds} interleaved rounds. ↑ higher is better, ↓ lower is better; "
              "the ratio is wsreactor's figure divided by the best peer's (even: within 3 %); "
              "the floor (floor_echo: one read and one write per readable connection, nothing else) "
              "is no peer, and wsreactor ÷ floor is its own column where the floor ran. CPU is % of one core over "
              "the measurement window. † the client used "
              f"≥ {SATURATED:.0f} % of its core (median): it, not the server, may be the limit. "
              f"‡ the client used less, but its core was ≥ {CORE_FULL:.0f} % busy (median, from "
              "/proc/stat: softirq work for loopback TCP and other jobs on the machine count): "
              "the client may have been short of CPU all the same. "
              "! at least one round had errors, lost messages, failed connections or listen-queue "
              "overflows (listed below).")
    if tls:
        legend += (" Over TLS (wss://), every server on its listener with the same certificate"
                   + (f" ({args.tls_note})" if args.tls_note else "")
                   + "; rustls 0.23 with the ring provider in all three (the peers through "
                   "tokio-rustls) and in the client (`wsreactor load --insecure`), rustls's defaults on "
                   "both sides, ALPN http/1.1. (td): the client resumes a session whenever its cache "
                   "holds one of the tickets the servers send (TLS 1.3 PSK with X25519: no certificate, "
                   "no server signature), so part of the handshakes are resumed ones, a share that "
                   "neither side fixes; the bytes each server wrote per cycle (below) tell it, a full "
                   "handshake's server flight being about 500 B longer. (te): "
                   "benches/compare/idle_rss_tls.py, Python's ssl (OpenSSL) as the client.")
    io_notes = []
    if tls:
        per = []
        for s in servers:
            vals = []
            for r in by.get(("td", s), []):
                try:
                    vals.append(r["server_io"]["wchar"] / r["client"]["churn"]["started"])
                except (KeyError, TypeError, ZeroDivisionError):
                    pass
            if vals:
                per.append(f"{s} {median(vals):,.0f} ({', '.join(f'{v:,.0f}' for v in vals)})")
        if per:
            io_notes.append("(td) bytes the server wrote per cycle (write system calls, /proc/PID/io wchar, "
                            "over the client's life ÷ cycles started), median (rounds): " + "; ".join(per) + ".")
    main_table = table(head, rows)
    print(main_table)
    print()
    print(legend)
    for n in notes:
        print("!", n)
    for n in minor:
        print("-", n)
    for n in io_notes:
        print(n)

    if args.markdown:
        md = ["# wsreactor compared with tokio-tungstenite and fastwebsockets" + (" over TLS" if tls else ""), ""]
        if tls:
            md += ["TLS (wss://), the same certificate for all three servers"
                   + (f": {args.tls_note}" if args.tls_note else "")
                   + ". The plain workloads' table is in results.md, from its own run.", ""]
        if args.machine:
            md += ["```", open(args.machine).read().rstrip(), "```", ""]
        md += [main_table, "", legend, ""]
        if notes:
            md += ["Rounds marked !:", ""] + [f"- {n}" for n in notes] + [""]
        if minor:
            md += ["Not counted against a figure:", ""] + [f"- {n}" for n in minor] + [""]
        md += [n + "\n" for n in io_notes]
        md += ["Every measurement, in the order run. CPU: % of one "
               "core used by the client / the server process; core busy: % of the client's core / "
               "the server's core busy over the window, from /proc/stat in 10 ms ticks (rough "
               "over short windows), which also counts softirq work (loopback TCP) and other "
               "jobs on the machine.", "",
               table(["figure", "server", "values", "CPU client/server", "core busy client/server",
                      "load average (1 min)"], detail), ""]
        with open(args.markdown, "w") as f:
            f.write("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
