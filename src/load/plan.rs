//! The options checked and resolved into what the workers and the
//! publisher share read-only.

use super::feed::{FeedPlan, Transport};
use super::scenario::Scenario;
use super::schedule::{ConnectSchedule, MessageSchedule};
use super::{subscribe, LoadError, Mode, Options, Target};
use crate::protocol::{MessageKind, ReadLimits};
use crate::pubsub::{channel_name, valid_channel};
use crate::push::{JSON_PROTOCOL, MUX_PROTOCOL};
use crate::reactor::tls::TlsTarget;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Subscribe mode's publishing, resolved.
#[derive(Debug, Clone)]
pub struct PublishPlan {
    /// The channel, from the URL's `/ws/{channel}`.
    pub channel: String,
    /// `/pub/{channel}`; with `--channels-per-connection K`, one per
    /// channel (`/pub/{channel}.{j}`), posted to in turn.
    pub paths: Vec<String>,
    /// The `Host` header.
    pub host: String,
    /// HTTP connections to post over.
    pub lanes: usize,
    /// Messages per second in all; `None` posts as fast as answers come.
    pub rate: Option<f64>,
    /// Another process publishes: this run only subscribes.
    pub observe: bool,
    /// The server is nchan (`--cursor nchan`): a publish is accepted with
    /// 201 or 202 and answered in nchan's JSON.
    pub nchan: bool,
    /// Headers of every publish: `--header`s and the token's.
    pub headers: Vec<(String, String)>,
}

impl PublishPlan {
    /// The ordered streams of messages: a lane's messages to one channel
    /// (`lane * channels + channel`). A server orders each channel's
    /// messages; across channels it need not (a Redis Cluster's masters
    /// each send their own channels), so each stream is numbered and
    /// checked on its own.
    pub fn streams(&self) -> usize {
        self.lanes * self.paths.len()
    }

    /// The stream of `lane`'s messages to channel `channel`.
    pub fn stream(&self, lane: usize, channel: usize) -> usize {
        lane * self.paths.len() + channel
    }
}

/// Subscribe mode's channel: `--channel`, or the URL's path
/// `/ws/CHANNEL` (also `/sse/` and `/poll/`).
fn channel_of(o: &Options, target: &Target) -> Result<String, String> {
    let usage =
        "subscribe mode needs --url ws://HOST:PORT/ws/CHANNEL, or --url http://HOST:PORT/ with --channel CHANNEL \
                 (CHANNEL: 1 to 128 of A-Z a-z 0-9 _ . : -)";
    let path = target.path.split('?').next().unwrap_or_default();
    let named = match &o.channel {
        Some(c) => Some(c.as_str()),
        None => ["/ws/", "/sse/", "/poll/"].iter().find_map(|p| path.strip_prefix(p)),
    };
    named
        .and_then(channel_name)
        .map(|c| c.into_owned())
        .ok_or_else(|| usage.to_owned())
}

impl PublishPlan {
    fn new(o: &Options, target: &Target, channel: &str) -> Result<PublishPlan, String> {
        if o.publishers == 0 || o.publishers > subscribe::MAX_LANES {
            return Err(format!("--publishers must be 1 to {}", subscribe::MAX_LANES));
        }
        let least = match o.kind {
            MessageKind::Binary => subscribe::HEADER,
            MessageKind::Text => subscribe::TEXT_HEADER,
        };
        if o.size < least {
            return Err(format!(
                "subscribe mode publishes payloads of at least {} bytes (binary), {} (text)",
                subscribe::HEADER,
                subscribe::TEXT_HEADER
            ));
        }
        // A payload numbers its stream in 16 bits ([`subscribe::Stamp`]).
        let streams = o.publishers * o.channels_per_connection.unwrap_or(1);
        if streams > usize::from(u16::MAX) + 1 {
            return Err(format!(
                "--publishers times --channels-per-connection is at most 65536, got {streams}"
            ));
        }
        Ok(PublishPlan {
            channel: channel.to_owned(),
            paths: match o.channels_per_connection {
                Some(k) => (0..k).map(|j| format!("/pub/{channel}.{j}")).collect(),
                None => vec![format!("/pub/{channel}")],
            },
            host: target.host.clone(),
            lanes: o.publishers,
            rate: o.rate,
            observe: o.observe,
            nchan: o.cursor == super::feed::CursorStyle::Nchan,
            headers: {
                let mut headers = o.headers.clone();
                if let Some(token) = &o.publish_token {
                    headers.push(("Authorization".into(), format!("Bearer {token}")));
                }
                if o.cursor == super::feed::CursorStyle::Nchan {
                    headers.push(("Accept".into(), "application/json".into()));
                }
                headers
            },
        })
    }
}

/// Subscribe mode with several channels on each connection
/// (`--channels-per-connection`): the `wsreactor.mux` commands each
/// connection sends once open, one subscribe per channel.
#[derive(Debug, Clone)]
pub struct MuxPlan {
    /// The subscribe commands, as JSON text.
    pub subscribes: Vec<String>,
}

impl MuxPlan {
    fn new(k: usize, channel: &str, transport: Transport) -> Result<MuxPlan, LoadError> {
        if transport != Transport::Ws {
            return Err(LoadError::Invalid(
                "--channels-per-connection needs --transport ws".into(),
            ));
        }
        if !(1..=10_000).contains(&k) {
            return Err(LoadError::Invalid(
                "--channels-per-connection must be 1 to 10000".into(),
            ));
        }
        let subscribes = (0..k)
            .map(|j| {
                let name = format!("{channel}.{j}");
                if valid_channel(&name) {
                    Ok(serde_json::json!({"id": j, "subscribe": name}).to_string())
                } else {
                    Err(LoadError::Invalid(format!(
                        "channel {name} is not a channel name: 1 to 128 of A-Z a-z 0-9 _ . : -"
                    )))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(MuxPlan { subscribes })
    }
}

/// Options resolved for the workers, shared read-only.
#[derive(Debug)]
pub struct Plan {
    /// The run's epoch.
    pub t0: Instant,
    /// `t0` as nanoseconds since the unix epoch: published payloads carry
    /// wall-clock times, so that a subscriber in another process on the
    /// same machine can measure them.
    pub t0_unix_ns: u64,
    /// Where to connect.
    pub target: Target,
    /// What each connection does.
    pub mode: Mode,
    /// Connections over the whole run.
    pub connections: usize,
    /// Worker threads.
    pub threads: usize,
    /// Messages in flight per connection at most.
    pub pipeline: usize,
    /// Send times when paced. In churn mode, cycle start times, with the
    /// workers in place of connections: cycle `k` of worker `w` is due at
    /// `offset(w, k)`, so that the run's cycles are due one every `1 / rate`.
    pub schedule: Option<MessageSchedule>,
    /// Connect times.
    pub connect: ConnectSchedule,
    /// Connect, handshake, echo and drain time-out.
    pub timeout: Duration,
    /// How long a close handshake and the server's EOF may take.
    pub close_timeout: Duration,
    /// Limits for what the server sends.
    pub read_limits: ReadLimits,
    /// Text or binary.
    pub kind: MessageKind,
    /// The message payload.
    pub payload: Vec<u8>,
    /// Source addresses, in turn.
    pub source_ips: Vec<IpAddr>,
    /// Size of the workers' pooled buffers.
    pub buffer_size: usize,
    /// Feed the progress line.
    pub progress: bool,
    /// Subscribe mode's publishing.
    pub publish: Option<PublishPlan>,
    /// Headers of every opening handshake (`--header`).
    pub headers: Vec<(String, String)>,
    /// `wss://`: TLS for every connection (and the publisher's).
    pub tls: Option<TlsTarget>,
    /// Subscribe mode over SSE or polls: what each subscriber asks.
    pub feed: Option<FeedPlan>,
    /// Subscribe mode with several channels per connection.
    pub mux: Option<MuxPlan>,
    /// Churn mode: each cycle closes as its 101 comes, with no echo.
    pub close_on_open: bool,
    /// Subscribe mode: slow readers and reconnect storms.
    pub scenario: Scenario,
    /// Subscribe mode over WebSocket: messages come in `wsreactor.json`
    /// envelopes, whose ids a subscriber resumes from after a drop.
    pub envelope: bool,
}

/// The wall clock at `t`, in nanoseconds since the unix epoch.
fn unix_ns_at(t: Instant) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    now.saturating_sub(t.elapsed().as_nanos() as u64)
}

impl Plan {
    pub(super) fn new(o: &Options, t0: Instant) -> Result<Plan, LoadError> {
        let invalid = |why: &str| Err(LoadError::Invalid(why.into()));
        if o.connections == 0 || o.pipeline == 0 {
            return invalid("--connections and --pipeline must be at least 1");
        }
        if o.close_on_open && o.mode != Mode::Churn {
            return invalid("--close-on-open is for churn mode");
        }
        let positive = |r: f64| r > 0.0 && r.is_finite();
        if o.rate.is_some_and(|r| !positive(r)) || o.connect_rate.is_nan() || o.connect_rate < 0.0 {
            return invalid("--rate must be above 0 and --connect-rate at least 0");
        }
        if o.size > 1 << 30 {
            return invalid("--size is at most 1 GiB");
        }
        let target = Target::parse(&o.url).map_err(LoadError::Invalid)?;
        let tls = match target.tls {
            true => Some(crate::reactor::tls::client_config(&target.name, o.insecure).map_err(LoadError::Invalid)?),
            false => None,
        };
        if o.source_ips.iter().any(|ip| ip.is_ipv4() != target.addr.is_ipv4()) {
            return invalid("--source-ips must be of the same family as the target");
        }
        let mut target = target;
        let mut headers = o.headers.clone();
        let mut mux = None;
        if o.channels_per_connection.is_some() && o.mode != Mode::Subscribe {
            return invalid("--channels-per-connection is for subscribe mode");
        }
        let (publish, feed) = match o.mode {
            Mode::Subscribe => {
                let channel = channel_of(o, &target).map_err(LoadError::Invalid)?;
                let publish = PublishPlan::new(o, &target, &channel).map_err(LoadError::Invalid)?;
                // The URL's query (a `token=`, say) goes with every subscription.
                let query = target
                    .path
                    .split_once('?')
                    .map(|(_, q)| format!("?{q}"))
                    .unwrap_or_default();
                if o.transport == Transport::Ws && (target.http || o.channel.is_some()) {
                    target.path = format!("{}{query}", Transport::Ws.path(&channel));
                }
                if let Some(k) = o.channels_per_connection {
                    mux = Some(MuxPlan::new(k, &channel, o.transport)?);
                    target.path = format!("/ws{query}");
                    headers.push(("Sec-WebSocket-Protocol".into(), MUX_PROTOCOL.into()));
                }
                let feed = (o.transport != Transport::Ws).then(|| FeedPlan {
                    transport: o.transport,
                    path: Transport::path(o.transport, &channel),
                    query: query.trim_start_matches('?').to_owned(),
                    host: target.host.clone(),
                    interval: o.poll_interval,
                    keep_alive: o.keep_alive,
                    cursor: o.cursor,
                    headers: o.headers.clone(),
                    // A poll gathers what came in a poll interval (or the
                    // server's history): room for thousands of messages.
                    max_body: (o.size * 4 / 3 + 256).saturating_mul(4096).clamp(1 << 20, 1 << 30),
                });
                (Some(publish), feed)
            }
            Mode::Echo | Mode::Connect | Mode::Churn if target.http => {
                return invalid("an http:// URL is for subscribe mode; echo, connect and churn need ws://");
            }
            Mode::Echo | Mode::Connect | Mode::Churn => (None, None),
        };
        if o.poll_interval.is_zero() {
            return invalid("--poll-interval must be above 0");
        }
        o.scenario
            .check(o.mode, o.transport, o.duration, o.channels_per_connection.is_some())
            .map_err(LoadError::Invalid)?;
        // A WebSocket subscriber resumes from the id of its latest message:
        // wsreactor says it in the `wsreactor.json` envelope.
        // (Not over a subprotocol the user asked for with --header.)
        let own_protocol = o
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("Sec-WebSocket-Protocol"));
        let envelope = o.scenario.storm.is_some()
            && o.transport == Transport::Ws
            && o.cursor == super::feed::CursorStyle::Wsreactor
            && mux.is_none()
            && !own_protocol;
        if envelope {
            headers.push(("Sec-WebSocket-Protocol".into(), JSON_PROTOCOL.into()));
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = if o.threads == 0 { cores } else { o.threads }.min(o.connections);
        let payload = match o.kind {
            MessageKind::Text => (0..o.size).map(|i| b'a' + (i % 26) as u8).collect(),
            MessageKind::Binary => (0..o.size).map(|i| (i * 31 + 7) as u8).collect(),
        };
        let defaults = ReadLimits::default();
        Ok(Plan {
            t0,
            t0_unix_ns: unix_ns_at(t0),
            target,
            mode: o.mode,
            connections: o.connections,
            threads,
            pipeline: o.pipeline,
            schedule: o.rate.and_then(|r| match o.mode {
                Mode::Echo => Some(MessageSchedule::new(r, o.connections)),
                Mode::Churn => Some(MessageSchedule::new(r, threads)),
                Mode::Connect | Mode::Subscribe => None,
            }),
            connect: ConnectSchedule::new(t0, o.connect_rate),
            timeout: o.timeout,
            close_timeout: o.timeout.min(Duration::from_secs(2)),
            read_limits: ReadLimits {
                max_frame_size: defaults.max_frame_size.max(o.size),
                max_message_size: defaults.max_message_size.max(o.size),
            },
            kind: o.kind,
            payload,
            source_ips: o.source_ips.clone(),
            buffer_size: (o.size + 14).clamp(4096, 1 << 16),
            progress: o.progress,
            publish,
            tls,
            headers,
            feed,
            mux,
            close_on_open: o.close_on_open,
            scenario: o.scenario,
            envelope,
        })
    }

    /// `t` as nanoseconds since the unix epoch (the payloads' clock).
    pub fn unix_ns(&self, t: Instant) -> u64 {
        self.t0_unix_ns + t.saturating_duration_since(self.t0).as_nanos() as u64
    }

    /// The source address for connection `index`.
    pub fn source_for(&self, index: usize) -> Option<IpAddr> {
        (!self.source_ips.is_empty()).then(|| self.source_ips[index % self.source_ips.len()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_refuse_bad_options() {
        let t0 = Instant::now();
        let subscribe = Options {
            mode: Mode::Subscribe,
            url: "ws://127.0.0.1:9001/ws/news".into(),
            ..Options::default()
        };
        let bad = [
            Options {
                mode: Mode::Subscribe,
                ..Options::default()
            },
            Options {
                url: "ws://127.0.0.1:9001/ws/a b".into(),
                ..subscribe.clone()
            },
            Options {
                size: 15,
                ..subscribe.clone()
            },
            Options {
                kind: MessageKind::Text,
                size: 31,
                ..subscribe.clone()
            },
            Options {
                channel: Some("a b".into()),
                url: "http://127.0.0.1:9001/".into(),
                ..subscribe.clone()
            },
            Options {
                url: "http://127.0.0.1:9001/".into(),
                ..subscribe.clone()
            },
            Options {
                poll_interval: Duration::ZERO,
                ..subscribe.clone()
            },
            Options {
                publishers: 0,
                ..subscribe.clone()
            },
            Options {
                connections: 0,
                ..Options::default()
            },
            Options {
                rate: Some(0.0),
                ..Options::default()
            },
            Options {
                url: "http://127.0.0.1/".into(),
                ..Options::default()
            },
        ];
        for o in bad {
            assert!(matches!(Plan::new(&o, t0), Err(LoadError::Invalid(_))), "{o:?}");
        }
        let plan = Plan::new(&Options::default(), t0).unwrap();
        assert_eq!(plan.payload.len(), 32);
        // The channel is percent-decoded, as the server decodes it.
        let plan = Plan::new(
            &Options {
                url: "ws://127.0.0.1:9001/ws/a.b%3AC-9_?since=3".into(),
                rate: Some(10.0),
                ..subscribe
            },
            t0,
        )
        .unwrap();
        let publish = plan.publish.unwrap();
        assert_eq!(
            (publish.channel.as_str(), publish.paths[0].as_str()),
            ("a.b:C-9_", "/pub/a.b:C-9_")
        );
        assert_eq!(publish.lanes, 4);
        // Subscribers send nothing: no per-connection schedule.
        assert!(plan.schedule.is_none());
        assert!(plan.feed.is_none());
    }

    #[test]
    fn every_transport_subscribes_to_the_channel_of_the_url_or_of_channel() {
        let t0 = Instant::now();
        let base = Options {
            mode: Mode::Subscribe,
            url: "http://127.0.0.1:9001/?token=t".into(),
            channel: Some("news".into()),
            ..Options::default()
        };
        let plan = Plan::new(&base, t0).unwrap();
        assert_eq!(plan.target.path, "/ws/news?token=t");
        assert_eq!(plan.publish.unwrap().paths, ["/pub/news"]);
        for (transport, path) in [
            (Transport::Sse, "/sse/news"),
            (Transport::LongPoll, "/poll/news"),
            (Transport::Poll, "/poll/news"),
        ] {
            let o = Options {
                transport,
                ..base.clone()
            };
            let feed = Plan::new(&o, t0).unwrap().feed.unwrap();
            assert_eq!((feed.path.as_str(), feed.query.as_str()), (path, "token=t"));
        }
        let o = Options {
            transport: Transport::Sse,
            url: "ws://127.0.0.1:9001/ws/sport".into(),
            channel: None,
            ..base
        };
        assert_eq!(Plan::new(&o, t0).unwrap().feed.unwrap().path, "/sse/sport");
    }
}
