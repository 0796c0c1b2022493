//! Subscribe mode's cost per transport: bytes on the wire each way per
//! delivery, HTTP requests and connections, and with `--server-pid` the
//! server's CPU and memory.

use crate::load::feed::{CursorStyle, Transport};
use crate::load::server_usage::ServerReport;
use crate::load::stats::Wire;
use crate::load::Plan;
use serde::Serialize;

/// How the subscribers received the channel, and what it cost.
#[derive(Debug, Clone, Serialize)]
pub struct TransportReport {
    /// `ws`, `sse`, `longpoll` or `poll`.
    pub transport: &'static str,
    /// Short polling's interval (null for the others).
    pub poll_interval_s: Option<f64>,
    /// Polls on kept-alive connections (false: a connection per poll).
    pub keep_alive: bool,
    /// `wsreactor` (`since`) or `nchan` (`Etag`/`Last-Modified`).
    pub cursor: &'static str,
    /// Bytes read from the server, from the window's start to the end.
    pub bytes_in: u64,
    /// Bytes written to the server, the same time.
    pub bytes_out: u64,
    /// `bytes_in` over the deliveries.
    pub bytes_in_per_delivery: f64,
    /// `bytes_out` over the deliveries.
    pub bytes_out_per_delivery: f64,
    /// HTTP requests sent in that time.
    pub requests: u64,
    /// The same per second of the window.
    pub requests_per_second: f64,
    /// TCP connections established in that time.
    pub connects: u64,
    /// TCP connections established over the whole run.
    pub connections_opened: u64,
    /// The server ended an event stream or a kept-alive poll connection;
    /// the subscriber resumed from its cursor.
    pub reconnects: u64,
    /// With `--server-pid`.
    pub server: Option<ServerReport>,
}

impl TransportReport {
    /// From the merged counts; `deliveries` and `measured_s` as reported.
    pub fn new(plan: &Plan, wire: &Wire, connections_opened: u64, deliveries: u64, measured_s: f64) -> Self {
        let transport = plan.feed.as_ref().map_or(Transport::Ws, |f| f.transport);
        let per = |n: u64, d: f64| if d > 0.0 { n as f64 / d } else { 0.0 };
        TransportReport {
            transport: transport.name(),
            poll_interval_s: plan
                .feed
                .as_ref()
                .filter(|f| f.transport == Transport::Poll)
                .map(|f| f.interval.as_secs_f64()),
            keep_alive: plan.feed.as_ref().is_none_or(|f| f.keep_alive),
            cursor: match plan.feed.as_ref().map(|f| f.cursor) {
                Some(CursorStyle::Nchan) => "nchan",
                _ => "wsreactor",
            },
            bytes_in: wire.bytes_in,
            bytes_out: wire.bytes_out,
            bytes_in_per_delivery: per(wire.bytes_in, deliveries as f64),
            bytes_out_per_delivery: per(wire.bytes_out, deliveries as f64),
            requests: wire.requests,
            requests_per_second: per(wire.requests, measured_s),
            connects: wire.connects,
            connections_opened,
            reconnects: wire.reconnects,
            server: None,
        }
    }
}
