//! The end summary as a plain-text table.

use super::{ErrorReport, Messages, SubscribeReport, Summary};
use crate::load::stats::{TimedOut, CERTIFICATE_REFUSED};
use crate::load::Mode;
use std::collections::BTreeMap;
use std::fmt::Write as _;

impl Summary {
    /// The summary as a plain-text table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let c = &self.connections;
        let m = &self.messages;
        let t = &self.time;
        let _ = writeln!(
            s,
            "wsreactor load: {} {}, worker threads: {}",
            self.mode, self.url, self.threads
        );
        let _ = writeln!(
            s,
            "connections  {} asked, {} tried, {} opened, {} failed, {} open at most",
            c.target, c.attempted, c.opened, c.failed, c.peak_open
        );
        let _ = writeln!(
            s,
            "time         ramp {:.2} s, measured {:.2} s of {:.2} s, {:.2} s in all",
            t.ramp_s, t.measured_s, t.duration_s, t.elapsed_s
        );
        if let Some(sub) = &self.subscribe {
            subscribe_lines(&mut s, sub, m);
        }
        if let Some(churn) = &self.churn {
            churn.lines(&mut s, m.size, m.kind);
        }
        if self.mode == Mode::Echo.name() {
            let rate = m.rate.map_or("unpaced".into(), |r| {
                format!("{r}/s in all, {:.3}/s per connection", r / c.target as f64)
            });
            let _ = writeln!(
                s,
                "messages     {} B {}, pipeline {}, rate {rate}",
                m.size, m.kind, m.pipeline
            );
            let _ = writeln!(
                s,
                "             {} sent, {} received, {} lost, {:.1}/s",
                m.sent, m.received, m.lost, m.per_second
            );
        }
        let _ = writeln!(
            s,
            "\n{:<40}{:>9}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
            "(ms)", "count", "mean", "p50", "p90", "p99", "p99.9", "max"
        );
        let mut rows = Vec::new();
        if self.mode == Mode::Echo.name() {
            rows.push((
                format!("round trip from {} [latency_us]", self.latency_from),
                self.latency_us,
            ));
            if self.latency_from == "schedule" {
                rows.push(("round trip from send [service_us]".into(), self.service_us));
            }
        }
        if let Some(sub) = &self.subscribe {
            rows.push((
                format!("delivery from {} [latency_us]", self.latency_from),
                self.latency_us,
            ));
            if self.latency_from == "schedule" && self.service_us.count > 0 {
                rows.push(("delivery from send [service_us]".into(), self.service_us));
            }
            rows.push(("publish POST to answer [publish_us]".into(), sub.publish_us));
            if sub.fanout.complete > 0 {
                rows.push(("fan-out: each publish to its last".into(), sub.fanout.completion_us));
            }
            if let Some(slow) = &sub.slow_readers {
                rows.push(("delivery to the slow readers".into(), slow.latency_us));
                if let Some(b) = slow.baseline_us {
                    rows.push(("delivery, run without slow readers".into(), b));
                }
            }
            if let Some(storm) = &sub.reconnect_storm {
                rows.push(("storm: drop to caught up".into(), storm.caught_up_us));
            }
        }
        if let Some(churn) = &self.churn {
            rows.push((
                format!("cycle from {} [latency_us]", self.latency_from),
                self.latency_us,
            ));
            if self.latency_from == "schedule" {
                rows.push(("cycle from connect [service_us]".into(), self.service_us));
            }
            rows.push(("echo round trip [churn.echo_us]".into(), churn.echo_us));
        }
        rows.push(("connect [connect_us]".into(), self.connect_us));
        rows.push(("handshake [handshake_us]".into(), self.handshake_us));
        for (name, p) in rows {
            let ms = |us: u64| us as f64 / 1000.0;
            let _ = writeln!(
                s,
                "{name:<40}{:>9}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}",
                p.count,
                p.mean / 1000.0,
                ms(p.p50),
                ms(p.p90),
                ms(p.p99),
                ms(p.p99_9),
                ms(p.max)
            );
        }
        super::agents::lines(&mut s, &self.agents);
        s.push('\n');
        s.push_str(&error_lines(&self.errors));
        if let Some(v) = &self.verdict {
            if v.passed {
                s.push_str("verdict      passed\n");
            } else {
                let _ = writeln!(s, "verdict      FAILED (exit {})", v.exit_code);
                for f in &v.failures {
                    let _ = writeln!(s, "  {f}");
                }
            }
        }
        s
    }
}

fn published_lines(s: &mut String, sub: &SubscribeReport, m: &Messages) {
    let p = &sub.published;
    let rate = p.rate.map_or("unpaced".into(), |r| format!("rate {r}/s"));
    let _ = writeln!(
        s,
        "published    {} B {} to {} over {} connection{}, {rate}",
        m.size,
        m.kind,
        sub.publish_url,
        sub.publishers,
        if sub.publishers == 1 { "" } else { "s" }
    );
    let due = p.due.map_or(String::new(), |d| format!("{d} due, "));
    let ids = match (p.first_id, p.last_id) {
        (Some(a), Some(b)) => format!(", ids {a}..{b}"),
        _ => String::new(),
    };
    let reconnects = match p.reconnects {
        0 => String::new(),
        n => format!(", {n} reconnects after idle closes"),
    };
    let _ = writeln!(
        s,
        "             {due}{} sent, {} accepted, {} rejected, {} unconfirmed, {:.1}/s{ids}{reconnects}",
        p.sent, p.accepted, p.rejected, p.unconfirmed, p.per_second
    );
    if p.unsent > 0 {
        let asked = p.rate.unwrap_or(0.0);
        let _ = writeln!(
            s,
            "             {}publisher behind: {} due messages never sent ({:.1}/s sent of {asked}/s asked)",
            if p.fell_behind { "FELL BEHIND, " } else { "" },
            p.unsent,
            p.per_second
        );
    }
}

fn subscribe_lines(s: &mut String, sub: &SubscribeReport, m: &Messages) {
    let p = &sub.published;
    if sub.observed {
        let _ = writeln!(
            s,
            "observed     {} B {} published by another process over {} lane{}: {} messages seen, {:.1}/s",
            m.size,
            m.kind,
            sub.publishers,
            if sub.publishers == 1 { "" } else { "s" },
            p.accepted,
            p.per_second
        );
    } else {
        published_lines(s, sub, m);
    }
    let d = &sub.deliveries;
    let _ = writeln!(
        s,
        "deliveries   {} subscribers: {} expected, {} received, {} missing, {} duplicate, {} out of order, {:.1}/s",
        d.subscribers, d.expected, d.received, d.missing, d.duplicates, d.out_of_order, d.per_second
    );
    let t = &sub.transport;
    let how = match (t.transport, t.poll_interval_s) {
        ("poll", Some(every)) => format!("poll every {every} s"),
        (name, _) => name.to_owned(),
    };
    let keep = if t.keep_alive { "" } else { ", a connection per poll" };
    let _ = writeln!(
        s,
        "transport    {how}{keep}: {:.0} B in and {:.0} B out per delivery, {} requests ({:.1}/s), {} connects in the window, {} reconnects",
        t.bytes_in_per_delivery, t.bytes_out_per_delivery, t.requests, t.requests_per_second, t.connects, t.reconnects
    );
    if let Some(server) = &t.server {
        let per_subscriber = match (server.rss_bytes_per_subscriber, server.rss_anon_bytes_per_subscriber) {
            (Some(b), Some(anon)) => format!("{b:.0} B per subscriber ({anon:.0} B anonymous)"),
            (Some(b), None) => format!("{b:.0} B per subscriber"),
            (None, _) => "n/a per subscriber (a reused server: its memory had already grown)".into(),
        };
        let _ = writeln!(
            s,
            "server       pid {}: {:.2} s CPU, {:.2} µs per delivery; RSS {:.1} MiB, {per_subscriber}",
            server.pid,
            server.cpu_s,
            server.cpu_us_per_delivery,
            server.rss_bytes as f64 / (1 << 20) as f64,
        );
    }
    if p.accepted == 0 {
        let _ = writeln!(s, "             no publish was accepted: nothing was there to deliver");
    } else {
        let f = &sub.fanout;
        let _ = writeln!(
            s,
            "             {} of {} subscribers got every accepted message; {} of {} publishes reached every subscriber",
            d.complete_subscribers, d.subscribers, f.complete, f.publishes
        );
    }
    if let Some(slow) = &sub.slow_readers {
        slow.lines(s);
    }
    if let Some(storm) = &sub.reconnect_storm {
        storm.lines(s);
    }
}

fn error_lines(errors: &ErrorReport) -> String {
    if errors.total == 0 {
        return "errors       none\n".into();
    }
    let mut s = format!("errors       {} in all\n", errors.total);
    let e = &errors.by_kind;
    let TimedOut {
        connect,
        handshake,
        message,
        close,
    } = e.timed_out;
    let mut line = |name: String, n: u64| {
        if n > 0 {
            let _ = writeln!(s, "  {name:<32}{n:>10}");
        }
    };
    line("refused".into(), e.refused);
    line("timed out: connect".into(), connect);
    line("timed out: handshake".into(), handshake);
    line("timed out: echo".into(), message);
    line("timed out: close".into(), close);
    e.handshake_status
        .iter()
        .for_each(|(k, n)| line(format!("handshake status {k}"), *n));
    e.handshake_invalid
        .iter()
        .for_each(|(k, n)| line(format!("handshake: {k}"), *n));
    e.close_codes
        .iter()
        .for_each(|(k, n)| line(format!("close code {k}"), *n));
    e.protocol.iter().for_each(|(k, n)| line(format!("protocol: {k}"), *n));
    e.echo.iter().for_each(|(k, n)| line(format!("echo: {k}"), *n));
    e.io.iter().for_each(|(k, n)| line(format!("socket: {k}"), *n));
    e.publish_status
        .iter()
        .for_each(|(k, n)| line(format!("publish status {k}"), *n));
    e.publish.iter().for_each(|(k, n)| line(format!("publish: {k}"), *n));
    e.delivery.iter().for_each(|(k, n)| line(format!("delivery: {k}"), *n));
    let refused = |m: &BTreeMap<&'static str, u64>| m.keys().any(|k| k.starts_with(CERTIFICATE_REFUSED));
    if refused(&e.io) || refused(&e.publish) {
        let _ = writeln!(
            s,
            "             the server's certificate is not trusted by this system's roots; \
             for a test certificate, --insecure skips the check"
        );
    }
    s
}
