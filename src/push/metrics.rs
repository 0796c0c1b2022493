//! `GET /metrics`: the workers' counters in the Prometheus text exposition
//! format (version 0.0.4), one series per worker so an uneven spread of
//! connections over SO_REUSEPORT listeners shows.

use crate::pubsub::{BrokerStats, BrokerTopology, PresenceEvents};
use crate::stats::{PerIpStats, Transport, WorkerStats};
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// The `Content-Type` of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One metric family: its name, type and help, then its samples.
struct Family<'a> {
    out: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Family { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = write!(self.out, "{name}");
        for (i, (k, v)) in labels.iter().enumerate() {
            // The exposition format's escapes: a value may come from the
            // operator's configuration (a master's name).
            let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            let _ = write!(self.out, "{}{k}=\"{v}\"", if i == 0 { "{" } else { "," });
        }
        if !labels.is_empty() {
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// A counter or gauge with one sample per worker.
fn per_worker<T: std::fmt::Display>(
    out: &mut String,
    stats: &[Arc<WorkerStats>],
    name: &str,
    kind: &str,
    help: &str,
    value: impl Fn(&WorkerStats) -> T,
) {
    let mut f = Family::new(out, name, kind, help);
    for (i, s) in stats.iter().enumerate() {
        f.sample(name, &[("worker", &i.to_string())], value(s));
    }
}

/// A counter or gauge per worker and transport.
fn per_transport<A: Load>(
    out: &mut String,
    stats: &[Arc<WorkerStats>],
    name: &str,
    kind: &str,
    help: &str,
    transports: &[Transport],
    array: impl Fn(&WorkerStats) -> &[A; 5],
) {
    let mut f = Family::new(out, name, kind, help);
    for (i, s) in stats.iter().enumerate() {
        for &t in transports {
            f.sample(
                name,
                &[("worker", &i.to_string()), ("transport", t.name())],
                array(s)[t as usize].load_value(),
            );
        }
    }
}

trait Load {
    fn load_value(&self) -> i64;
}

impl Load for AtomicU64 {
    fn load_value(&self) -> i64 {
        self.load(Relaxed) as i64
    }
}

impl Load for AtomicI64 {
    fn load_value(&self) -> i64 {
        self.load(Relaxed)
    }
}

/// The whole page.
pub fn render(
    stats: &[Arc<WorkerStats>],
    channels: usize,
    broker: Option<BrokerStats>,
    per_ip: PerIpStats,
    presence: PresenceEvents,
    topology: Option<BrokerTopology>,
) -> String {
    let mut out = String::with_capacity(4096);
    let subscriber_transports = [Transport::WebSocket, Transport::Poll, Transport::Sse];
    per_transport(
        &mut out,
        stats,
        "wsreactor_connections",
        "gauge",
        "Open connections by transport.",
        &Transport::ALL,
        |s| &s.open_by,
    );
    per_worker(
        &mut out,
        stats,
        "wsreactor_connections_accepted_total",
        "counter",
        "Connections accepted.",
        |s| s.accepted.load(Relaxed),
    );
    per_worker(
        &mut out,
        stats,
        "wsreactor_connections_refused_total",
        "counter",
        "Connections refused with 503 over max_connections.",
        |s| s.refused.load(Relaxed),
    );
    per_worker(
        &mut out,
        stats,
        "wsreactor_websocket_upgrades_total",
        "counter",
        "Successful WebSocket handshakes.",
        |s| s.upgrades.load(Relaxed),
    );
    per_worker(
        &mut out,
        stats,
        "wsreactor_messages_received_total",
        "counter",
        "WebSocket data messages received.",
        |s| s.messages_in.load(Relaxed),
    );
    per_worker(
        &mut out,
        stats,
        "wsreactor_messages_echoed_total",
        "counter",
        "WebSocket data messages echoed.",
        |s| s.messages_out.load(Relaxed),
    );
    per_worker(
        &mut out,
        stats,
        "wsreactor_messages_published_total",
        "counter",
        "Publishes accepted (counted on the worker that took the request).",
        |s| s.published.load(Relaxed),
    );
    per_transport(
        &mut out,
        stats,
        "wsreactor_messages_delivered_total",
        "counter",
        "Channel messages queued to subscribers.",
        &subscriber_transports,
        |s| &s.delivered_by,
    );
    per_transport(
        &mut out,
        stats,
        "wsreactor_slow_subscribers_dropped_total",
        "counter",
        "Connections dropped for not reading their output.",
        &Transport::ALL,
        |s| &s.slow_by,
    );
    per_worker(
        &mut out,
        stats,
        "wsreactor_bytes_received_total",
        "counter",
        "Bytes read from sockets.",
        |s| s.bytes_in.load(Relaxed),
    );
    per_worker(
        &mut out,
        stats,
        "wsreactor_bytes_sent_total",
        "counter",
        "Bytes written to sockets.",
        |s| s.bytes_out.load(Relaxed),
    );
    let name = "wsreactor_http_errors_total";
    let mut f = Family::new(&mut out, name, "counter", "Requests refused, by status.");
    for (i, s) in stats.iter().enumerate() {
        for (status, n) in s.http_errors() {
            f.sample(name, &[("worker", &i.to_string()), ("status", &status.to_string())], n);
        }
    }
    let name = "wsreactor_protocol_errors_total";
    let mut f = Family::new(&mut out, name, "counter", "WebSocket connections failed, by violation.");
    for (i, s) in stats.iter().enumerate() {
        for (kind, n) in s.protocol_error_kinds() {
            f.sample(name, &[("worker", &i.to_string()), ("kind", kind)], n);
        }
    }
    let name = "wsreactor_build_info";
    Family::new(&mut out, name, "gauge", "The server's version, as a label; always 1.").sample(
        name,
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    let name = "wsreactor_channels";
    Family::new(&mut out, name, "gauge", "Channels with history or subscribers.").sample(name, &[], channels);
    let name = "wsreactor_per_ip_refused_total";
    let mut f = Family::new(
        &mut out,
        name,
        "counter",
        "Connections refused with 429 over a per-address limit ([limits] per_ip_connections, per_ip_connect_rate).",
    );
    f.sample(name, &[("limit", "connections")], per_ip.refused_connections);
    f.sample(name, &[("limit", "rate")], per_ip.refused_rate);
    let name = "wsreactor_per_ip_addresses";
    Family::new(&mut out, name, "gauge", "Client addresses the per-address limits keep.").sample(
        name,
        &[],
        per_ip.addresses,
    );
    let name = "wsreactor_presence_events_total";
    let mut f = Family::new(
        &mut out,
        name,
        "counter",
        "Join and leave events this node made: sent, or dropped over [presence] max_events_per_second.",
    );
    f.sample(name, &[("outcome", "sent")], presence.sent);
    f.sample(name, &[("outcome", "dropped")], presence.dropped);
    if let Some(b) = broker {
        broker_families(&mut out, &b);
    }
    if let Some(t) = topology {
        topology_families(&mut out, &t);
    }
    out
}

/// Which servers a network broker is connected to, and failovers seen.
fn topology_families(out: &mut String, t: &BrokerTopology) {
    let name = "wsreactor_broker_master";
    let mut f = Family::new(
        out,
        name,
        "gauge",
        "1 for each master the broker's requests go to, by address (a sentinel's or a cluster's as last found).",
    );
    for master in &t.masters {
        f.sample(name, &[("kind", t.kind), ("name", &t.name), ("address", master)], 1);
    }
    let name = "wsreactor_broker_failovers_total";
    let mut f = Family::new(
        out,
        name,
        "counter",
        "Times a master of the broker changed (a failover followed) since the node started.",
    );
    f.sample(name, &[], t.failovers);
}

/// A network broker's (Redis's) gauges and counters.
fn broker_families(out: &mut String, b: &BrokerStats) {
    let families: [(&str, &str, &str, f64); 7] = [
        (
            "wsreactor_broker_connected",
            "gauge",
            "1 while both connections to the broker's server are up.",
            f64::from(u8::from(b.connected)),
        ),
        (
            "wsreactor_broker_reconnects_total",
            "counter",
            "Connections to the broker's server made again after one failed.",
            b.reconnects as f64,
        ),
        (
            "wsreactor_broker_publishes_total",
            "counter",
            "Publishes the broker's server carried out.",
            b.publishes as f64,
        ),
        (
            "wsreactor_broker_publish_seconds_total",
            "counter",
            "Round trips of those publishes, in all (divide by the count for the mean).",
            b.publish_seconds,
        ),
        (
            "wsreactor_broker_publish_errors_total",
            "counter",
            "Publishes refused (503) because the broker's server could not be reached.",
            b.publish_errors as f64,
        ),
        (
            "wsreactor_broker_messages_in_total",
            "counter",
            "Messages from the broker's server for this node's subscribers.",
            b.messages_in as f64,
        ),
        (
            "wsreactor_broker_dropped_total",
            "counter",
            "Messages from the broker's server that could not be read, dropped.",
            b.dropped as f64,
        ),
    ];
    for (name, kind, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::http::Status;

    #[test]
    fn renders_every_family_with_worker_labels() {
        let stats: Vec<Arc<WorkerStats>> = (0..2).map(|_| Arc::default()).collect();
        stats[1].count_http_error(Status::NOT_FOUND);
        stats[0].count_protocol_error("invalid_utf8");
        stats[0].moved(None, Some(Transport::WebSocket));
        stats[0].count_delivered(Transport::Sse, 3);
        let per_ip = PerIpStats {
            refused_rate: 3,
            ..PerIpStats::default()
        };
        let presence = PresenceEvents { sent: 5, dropped: 2 };
        let page = render(&stats, 7, None, per_ip, presence, None);
        let build = format!("wsreactor_build_info{{version=\"{}\"}} 1\n", env!("CARGO_PKG_VERSION"));
        assert!(page.contains(&build), "{page}");
        assert!(
            page.contains("wsreactor_per_ip_refused_total{limit=\"rate\"} 3\n"),
            "{page}"
        );
        assert!(page.contains("wsreactor_connections{worker=\"0\",transport=\"websocket\"} 1\n"));
        assert!(page.contains("wsreactor_http_errors_total{worker=\"1\",status=\"404\"} 1\n"));
        assert!(page.contains("wsreactor_protocol_errors_total{worker=\"0\",kind=\"invalid_utf8\"} 1\n"));
        assert!(page.contains("wsreactor_messages_delivered_total{worker=\"0\",transport=\"sse\"} 3\n"));
        assert!(page.contains("wsreactor_channels 7\n"));
        assert!(page.contains("wsreactor_presence_events_total{outcome=\"dropped\"} 2\n"));
        // Every sample line belongs to a family declared before it.
        let mut declared = std::collections::HashSet::new();
        for line in page.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(declared.contains(name), "{line}");
            }
        }
    }
}
