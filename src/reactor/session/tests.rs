//! The session driven without a socket or a clock: bytes in, bytes and
//! actions out, stamps made up. One test per transition of the diagram in
//! `mod.rs`, named `test_<state>_<event>` (smoltcp's style).

use super::*;
use crate::protocol::{Event, MessageKind, Read as FrameRead, ReadLimits};
use crate::pubsub::{Gap, HubError, Message, Receipt, Snapshot};
use crate::stats::PerIpStats;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The server, as the tests make it up: three channels, a ready broker.
struct FakeServer {
    all_stats: Vec<Arc<WorkerStats>>,
}

impl ServerInfo for FakeServer {
    fn worker_stats(&self) -> &[Arc<WorkerStats>] {
        &self.all_stats
    }

    fn channels(&self) -> usize {
        3
    }

    fn ready(&self) -> Result<(), &'static str> {
        Ok(())
    }

    fn broker_stats(&self) -> Option<crate::pubsub::BrokerStats> {
        None
    }

    fn per_ip_stats(&self) -> PerIpStats {
        PerIpStats::default()
    }
}

/// A worker's lendings for one session, owned by the test.
struct Bench {
    pool: BufferPool,
    settings: Settings,
    stats: WorkerStats,
    server: FakeServer,
    date: HttpDate,
    actions: Vec<Action>,
    app: App,
    now: Stamp,
    wall: Duration,
    per_ip: PerIp,
    epoch: Instant,
}

impl Bench {
    fn new() -> Self {
        let settings = Settings::default();
        let per_ip = PerIp::new(settings.per_ip.clone());
        Bench {
            pool: BufferPool::new(settings.read_buffer_size, 4),
            settings,
            stats: WorkerStats::default(),
            server: FakeServer {
                all_stats: vec![Arc::default()],
            },
            date: HttpDate::from_unix(0),
            actions: Vec::new(),
            app: crate::push::standard(),
            now: Stamp::default(),
            wall: Duration::ZERO,
            per_ip,
            epoch: Instant::now(),
        }
    }

    fn env(&mut self) -> Env<'_> {
        Env {
            pool: &mut self.pool,
            settings: &self.settings,
            stats: &self.stats,
            server: &self.server,
            stamp: self.now,
            date: &self.date,
            actions: &mut self.actions,
            app: &self.app,
            me: Address {
                worker: 0,
                key: 0,
                generation: 0,
            },
            per_ip: &self.per_ip,
            instant: self.epoch + self.wall,
        }
    }

    /// Time passes, on the worker's clock and on the wall clock (whose
    /// date, in whole seconds, is what tokens are checked against).
    fn later(&mut self, d: Duration) {
        self.now = self.now.plus(d);
        self.wall += d;
        self.date = HttpDate::from_unix(self.wall.as_secs());
    }

    /// Bytes arrive, in pieces as small as the buffer asks for.
    fn input(&mut self, s: &mut Session, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let room = s.receive_buffer(&mut self.pool);
            let n = room.len().min(bytes.len());
            room[..n].copy_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            s.handle_received(n, &mut self.env());
            s.handle_input(&mut self.env());
        }
        s.input_paused(&mut self.pool);
    }

    /// Everything the session queued, as the peer would read it.
    fn output(&mut self, s: &mut Session) -> Vec<u8> {
        let mut wire = Vec::new();
        while !s.output().is_empty() {
            s.output().write_to(&mut wire, &mut self.pool).unwrap();
        }
        s.handle_flushed(&mut self.env());
        wire
    }

    fn text(&mut self, s: &mut Session) -> String {
        String::from_utf8(self.output(s)).unwrap()
    }

    fn timeout(&mut self, s: &mut Session) -> Step {
        s.handle_timeout(&mut self.env())
    }

    fn answer(&mut self, s: &mut Session, answer: Answer) {
        s.handle_answer(answer, &mut self.env());
    }

    fn deliver(&mut self, s: &mut Session, msg: &Arc<Message>) -> Delivered {
        let d = s.handle_delivery(msg, &mut self.env());
        s.handle_deliveries_done(&mut self.env());
        d
    }

    /// The one request submitted since the last look.
    fn submitted(&mut self) -> Request {
        match std::mem::take(&mut self.actions).as_slice() {
            [Action::Submit(r)] => r.clone(),
            other => panic!("one submit expected, got {other:?}"),
        }
    }

    fn unsubscribed(&mut self) -> Arc<str> {
        match std::mem::take(&mut self.actions).pop() {
            Some(Action::Unsubscribe(sub)) => sub.channel().clone(),
            other => panic!("an unsubscribe expected, got {other:?}"),
        }
    }
}

const UPGRADE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n").into_bytes()
}

fn masked(kind: MessageKind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    WebSocket::client(ReadLimits::default(), 7).send(kind, payload, &mut out);
    out
}

/// What a client reads from the server's frames: (kind, payload) of data
/// messages, and close codes as ("close", code).
fn frames(mut wire: Vec<u8>) -> Vec<(String, Vec<u8>)> {
    let mut client = WebSocket::client(ReadLimits::default(), 1);
    let mut got = Vec::new();
    let mut at = 0;
    while at < wire.len() {
        let mut replies = Vec::new();
        match client.read(&mut wire[at..], &mut replies).unwrap() {
            FrameRead::Frame { consumed, event } => {
                match event {
                    Some(Event::Message(kind, p)) => got.push((format!("{kind:?}"), p.to_vec())),
                    Some(Event::Ping(p)) => got.push(("ping".into(), p.to_vec())),
                    Some(Event::Pong(p)) => got.push(("pong".into(), p.to_vec())),
                    Some(Event::Close(c)) => {
                        got.push(("close".into(), c.code.map_or(0, |c| c.0).to_be_bytes().to_vec()))
                    }
                    None => {}
                }
                at += consumed;
            }
            FrameRead::Incomplete { .. } => panic!("partial frame in {wire:?}"),
        }
    }
    got
}

fn close_code(code: u16) -> (String, Vec<u8>) {
    ("close".into(), code.to_be_bytes().to_vec())
}

fn message(id: u64, text: &str) -> Arc<Message> {
    Arc::new(Message::new(
        id,
        "c".into(),
        MessageKind::Text,
        text.as_bytes(),
        Instant::now(),
    ))
}

fn subscribed(last_id: u64, replay: Vec<Arc<Message>>, gap: Option<Gap>) -> Answer {
    subscribed_in(0, last_id, replay, gap)
}

/// Message `id` of `channel`.
fn message_of(channel: &str, id: u64, text: &str) -> Arc<Message> {
    Arc::new(Message::new(
        id,
        channel.into(),
        MessageKind::Text,
        text.as_bytes(),
        Instant::now(),
    ))
}

/// A subscription to `channel` answered: nothing missed but `replay`
/// and `gap`, up to `last_id`.
fn live(channel: &str, last_id: u64, replay: Vec<Arc<Message>>, gap: Option<Gap>) -> Answer {
    let snapshot = Snapshot {
        replay,
        gap,
        last_id,
        epoch_start: 0,
    };
    Answer::Subscribed(Ok((Subscription::new(channel.into(), 0), snapshot)))
}

/// A snapshot of a numbering that began after `epoch_start`.
fn subscribed_in(epoch_start: u64, last_id: u64, replay: Vec<Arc<Message>>, gap: Option<Gap>) -> Answer {
    let snapshot = Snapshot {
        replay,
        gap,
        last_id,
        epoch_start,
    };
    Answer::Subscribed(Ok((Subscription::new("c".into(), 0), snapshot)))
}

/// Message `id` of a numbering that began after `epoch_start`.
fn message_in(epoch_start: u64, id: u64, text: &str) -> Arc<Message> {
    let mut m = Message::new(id, "c".into(), MessageKind::Text, text.as_bytes(), Instant::now());
    m.epoch_start = epoch_start;
    Arc::new(m)
}

fn is(s: &Session, t: Transport) -> bool {
    s.transport() == t
}

/// A session in `Open` on the echo endpoint, its 101 read.
fn open_echo(b: &mut Bench) -> Session {
    let mut s = Session::new(b.now);
    b.input(&mut s, &get("/", UPGRADE));
    assert!(b.text(&mut s).starts_with("HTTP/1.1 101 "));
    s
}

/// A session subscribed to channel `c` through the given route, its
/// answer head read.
fn subscriber(b: &mut Bench, path: &str, extra: &str, answer: Answer) -> Session {
    let mut s = Session::new(b.now);
    b.input(&mut s, &get(path, extra));
    assert!(matches!(b.submitted(), Request::Subscribe { .. }));
    b.answer(&mut s, answer);
    s
}

// Request

#[test]
fn test_request_get_answers_and_keeps_alive() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    b.input(&mut s, &get("/healthz", ""));
    let out = b.text(&mut s);
    assert!(
        out.starts_with("HTTP/1.1 200 OK\r\n") && out.ends_with("\r\n\r\nok\n"),
        "{out}"
    );
    assert!(matches!(s.state, State::Request { .. }));
    assert_eq!(s.poll_end(), None);
}

#[test]
fn test_request_pipelined_requests_are_answered_in_order() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    let mut two = get("/healthz", "");
    two.extend(get("/nope", ""));
    b.input(&mut s, &two);
    let out = b.text(&mut s);
    let (first, second) = out.split_once("ok\n").unwrap();
    assert!(first.starts_with("HTTP/1.1 200 "));
    assert!(second.starts_with("HTTP/1.1 404 "), "{second}");
    assert!(is(&s, Transport::Closing));
}

#[test]
fn test_request_connection_close_goes_closing() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    b.input(&mut s, &get("/healthz", "Connection: close\r\n"));
    assert!(b.text(&mut s).contains("Connection: close\r\n"));
    assert!(is(&s, Transport::Closing));
    assert_eq!(s.poll_end(), Some(End::Linger), "flushed: shut the write side");
    assert_eq!(s.poll_end(), None, "once");
}

#[test]
fn test_request_bad_head_is_refused_and_closes() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    b.input(&mut s, b"\x16\x03\x01 hello");
    assert!(b.text(&mut s).starts_with("HTTP/1.1 400 "));
    assert!(is(&s, Transport::Closing));
}

#[test]
fn test_request_head_too_large_is_refused() {
    let mut b = Bench::new();
    b.settings.max_request_head = 64;
    let mut s = Session::new(b.now);
    b.input(&mut s, format!("GET /{} HTTP/1.1\r\n", "a".repeat(100)).as_bytes());
    assert!(b.text(&mut s).starts_with("HTTP/1.1 431 "));
    assert!(is(&s, Transport::Closing));
}

#[test]
fn test_request_upgrade_opens_the_echo_endpoint() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    b.input(&mut s, &get("/", UPGRADE));
    let out = b.text(&mut s);
    assert!(out.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{out}");
    assert!(out.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert!(is(&s, Transport::WebSocket) && s.subscription().is_none());
    assert!(b.actions.is_empty(), "the echo asks nothing of the broker");
}

#[test]
fn test_request_subscribe_waits_for_the_broker_before_the_101() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    b.input(&mut s, &get("/ws/c?since=4", UPGRADE));
    assert!(b.output(&mut s).is_empty(), "no 101 before the subscription is live");
    let request = b.submitted();
    assert_eq!(request, Request::subscribe("c", Some(4)));
    assert!(matches!(s.state, State::Waiting { .. }));
}

#[test]
fn test_request_publish_head_reads_the_body() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    b.input(
        &mut s,
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhe",
    );
    assert!(matches!(s.state, State::Body { .. }));
    assert!(b.actions.is_empty());
}

#[test]
fn test_request_poll_and_sse_wait_for_the_broker() {
    for path in ["/poll/c", "/sse/c"] {
        let mut b = Bench::new();
        let mut s = Session::new(b.now);
        b.input(&mut s, &get(path, ""));
        assert!(matches!(b.submitted(), Request::Subscribe { since: None, .. }));
        assert!(matches!(s.state, State::Waiting { .. }), "{path}");
        assert!(b.output(&mut s).is_empty());
    }
}

#[test]
fn test_request_timeout_silent_drops() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    assert_eq!(s.deadline(&b.settings), b.now.plus(b.settings.handshake_timeout));
    b.later(b.settings.handshake_timeout);
    assert_eq!(b.timeout(&mut s), Err(Dead));
}

#[test]
fn test_request_timeout_partial_head_is_408() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    b.input(&mut s, b"GET /health HTTP/1.1\r\n");
    b.later(b.settings.handshake_timeout - Duration::from_millis(1));
    assert_eq!(b.timeout(&mut s), Ok(()));
    assert!(b.output(&mut s).is_empty(), "not yet");
    b.later(Duration::from_millis(1));
    assert_eq!(b.timeout(&mut s), Ok(()));
    assert!(b.text(&mut s).starts_with("HTTP/1.1 408 "));
    assert!(is(&s, Transport::Closing));
}

// Body

#[test]
fn test_body_complete_submits_the_publish() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    b.input(
        &mut s,
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhe",
    );
    b.input(&mut s, b"llo");
    assert_eq!(
        b.submitted(),
        Request::Publish {
            channel: "c".into(),
            kind: MessageKind::Text,
            payload: b"hello".as_slice().into(),
            idempotency_key: None,
        }
    );
    assert!(matches!(s.state, State::Waiting { .. }));
}

#[test]
fn test_body_empty_submits_at_once() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    b.input(&mut s, b"POST /pub/c HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert!(matches!(b.submitted(), Request::Publish { payload, .. } if payload.is_empty()));
}

#[test]
fn test_body_not_utf8_is_refused() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    b.input(
        &mut s,
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n\xff\xfe",
    );
    assert!(b.text(&mut s).starts_with("HTTP/1.1 400 "));
    assert!(b.actions.is_empty() && is(&s, Transport::Closing));
}

#[test]
fn test_body_timeout_counts_from_the_request_start() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    let start = b.now;
    b.later(Duration::from_secs(1));
    b.input(&mut s, b"POST /pub/c HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nh");
    assert_eq!(s.deadline(&b.settings), start.plus(b.settings.request_timeout));
    b.now = start.plus(b.settings.request_timeout);
    assert_eq!(b.timeout(&mut s), Ok(()));
    assert!(b.text(&mut s).starts_with("HTTP/1.1 408 "));
    assert!(is(&s, Transport::Closing));
}

// Waiting

fn publishing(b: &mut Bench, extra: &str) -> Session {
    let mut s = Session::new(b.now);
    let head = format!("POST /pub/c HTTP/1.1\r\nHost: t\r\n{extra}Content-Length: 1\r\n\r\nx");
    b.input(&mut s, head.as_bytes());
    b.submitted();
    s
}

#[test]
fn test_waiting_published_answers_the_id_and_keeps_alive() {
    let mut b = Bench::new();
    let mut s = publishing(&mut b, "");
    b.answer(
        &mut s,
        Answer::Published(Ok(Receipt {
            id: 9,
            subscribers: 2,
            duplicate: false,
        })),
    );
    let out = b.text(&mut s);
    assert!(
        out.starts_with("HTTP/1.1 200 ") && out.ends_with("{\"id\":9,\"subscribers\":2}"),
        "{out}"
    );
    assert!(matches!(s.state, State::Request { .. }));
}

#[test]
fn test_waiting_refused_by_the_broker_is_503() {
    let mut b = Bench::new();
    let mut s = publishing(&mut b, "");
    b.answer(&mut s, Answer::Published(Err(HubError::TooManyChannels)));
    assert!(b.text(&mut s).starts_with("HTTP/1.1 503 "));
    assert!(is(&s, Transport::Closing));
}

#[test]
fn test_waiting_pipelined_request_resumes_after_the_answer() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    let mut bytes = b"POST /pub/c HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx".to_vec();
    bytes.extend(get("/healthz", ""));
    b.input(&mut s, &bytes);
    b.submitted();
    assert!(!s.poll_resume());
    b.answer(
        &mut s,
        Answer::Published(Ok(Receipt {
            id: 1,
            subscribers: 0,
            duplicate: false,
        })),
    );
    assert!(s.poll_resume(), "the held request is the reactor's to process now");
    s.handle_input(&mut b.env());
    let out = b.text(&mut s);
    assert!(out.contains("{\"id\":1,") && out.ends_with("ok\n"), "{out}");
}

#[test]
fn test_waiting_subscribed_upgrade_sends_101_then_replay() {
    let mut b = Bench::new();
    let gap = Gap::trimmed(1, 2);
    let answer = subscribed(3, vec![message(3, "three")], Some(gap));
    let mut s = subscriber(
        &mut b,
        "/ws/c?since=0",
        &format!("{UPGRADE}Sec-WebSocket-Protocol: wsreactor.json\r\n"),
        answer,
    );
    let wire = b.output(&mut s);
    let head_end = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = std::str::from_utf8(&wire[..head_end]).unwrap();
    assert!(head.starts_with("HTTP/1.1 101 ") && head.contains("Sec-WebSocket-Protocol: wsreactor.json\r\n"));
    let got = frames(wire[head_end..].to_vec());
    assert_eq!(got.len(), 2);
    assert!(String::from_utf8_lossy(&got[0].1).contains("\"gap\""), "{got:?}");
    assert!(String::from_utf8_lossy(&got[1].1).contains("three"));
    assert!(is(&s, Transport::WebSocket));
    assert_eq!(s.subscription().map(|s| s.channel().as_ref()), Some("c"));
}

#[test]
fn test_waiting_subscribed_poll_parks_when_nothing_is_new() {
    let mut b = Bench::new();
    let mut s = subscriber(&mut b, "/poll/c", "", subscribed(5, vec![], None));
    assert!(b.output(&mut s).is_empty());
    assert!(is(&s, Transport::Poll));
}

#[test]
fn test_waiting_subscribed_poll_answers_history_at_once() {
    let mut b = Bench::new();
    let mut s = subscriber(
        &mut b,
        "/poll/c?since=1",
        "",
        subscribed(2, vec![message(2, "two")], None),
    );
    let out = b.text(&mut s);
    assert!(
        out.starts_with("HTTP/1.1 200 ") && out.contains("\"last_id\":2,\"gap\":false}"),
        "{out}"
    );
    assert_eq!(&*b.unsubscribed(), "c");
    assert!(matches!(s.state, State::Request { .. }));
}

#[test]
fn test_waiting_subscribed_events_opens_the_stream() {
    let mut b = Bench::new();
    let mut s = subscriber(&mut b, "/sse/c", "", subscribed(2, vec![message(2, "two")], None));
    let out = b.text(&mut s);
    assert!(
        out.starts_with("HTTP/1.1 200 ") && out.contains("text/event-stream"),
        "{out}"
    );
    assert!(out.ends_with("id: 2\ndata: two\n\n"), "{out}");
    assert!(is(&s, Transport::Sse));
}

#[test]
fn test_waiting_timeout_is_503_and_a_late_answer_is_given_back() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    b.input(&mut s, &get("/sse/c", ""));
    b.submitted();
    b.later(b.settings.request_timeout);
    assert_eq!(b.timeout(&mut s), Ok(()));
    assert!(b.text(&mut s).starts_with("HTTP/1.1 503 "));
    b.answer(&mut s, subscribed(0, vec![], None));
    assert_eq!(&*b.unsubscribed(), "c", "the subscription nobody waits for goes back");
    assert!(is(&s, Transport::Closing));
}

// Open

#[test]
fn test_open_message_is_echoed() {
    let mut b = Bench::new();
    let mut s = open_echo(&mut b);
    b.input(&mut s, &masked(MessageKind::Text, b"hi"));
    assert_eq!(frames(b.output(&mut s)), [("Text".to_string(), b"hi".to_vec())]);
}

#[test]
fn test_open_large_message_is_echoed_in_place() {
    let mut b = Bench::new();
    let mut s = open_echo(&mut b);
    let big = vec![b'x'; b.settings.read_buffer_size / 2];
    b.input(&mut s, &masked(MessageKind::Binary, &big));
    assert_eq!(frames(b.output(&mut s)), [("Binary".to_string(), big)]);
}

#[test]
fn test_open_ping_is_answered_with_a_pong() {
    let mut b = Bench::new();
    let mut s = open_echo(&mut b);
    let mut ping = Vec::new();
    WebSocket::client(ReadLimits::default(), 3).send_ping(b"p", &mut ping);
    b.input(&mut s, &ping);
    assert_eq!(frames(b.output(&mut s)), [("pong".to_string(), b"p".to_vec())]);
}

#[test]
fn test_open_peer_close_is_answered_and_goes_closing() {
    let mut b = Bench::new();
    let mut s = open_echo(&mut b);
    let mut close = Vec::new();
    WebSocket::client(ReadLimits::default(), 3).close(CloseCode::NORMAL, "", &mut close);
    b.input(&mut s, &close);
    assert_eq!(frames(b.output(&mut s)), [close_code(1000)]);
    assert!(is(&s, Transport::Closing));
    // The handshake is done: the connection closes without waiting for
    // the peer's EOF.
    assert_eq!(s.poll_end(), Some(End::Close));
}

/// A protocol error closes with a close frame too, but the peer may still
/// be sending: the connection lingers, so that no reset destroys the
/// close frame before the peer reads it.
#[test]
fn test_open_failure_lingers_after_its_close_frame() {
    let mut b = Bench::new();
    let mut s = open_echo(&mut b);
    // An unmasked frame from a client (RFC 6455 §5.1): 1002.
    b.input(&mut s, b"\x81\x02hi");
    assert_eq!(
        frames(b.output(&mut s)).first().map(|f| f.0.clone()),
        Some("close".to_string())
    );
    assert!(is(&s, Transport::Closing));
    assert_eq!(s.poll_end(), Some(End::Linger));
}

#[test]
fn test_open_protocol_error_fails_with_1002() {
    let mut b = Bench::new();
    let mut s = open_echo(&mut b);
    // An unmasked frame from a client (RFC 6455 §5.1).
    b.input(&mut s, &[0x81, 0x01, b'x']);
    assert_eq!(frames(b.output(&mut s)), [close_code(1002)]);
    assert!(is(&s, Transport::Closing));
}

#[test]
fn test_open_quiet_half_the_idle_time_is_pinged_then_closed() {
    let mut b = Bench::new();
    let mut s = open_echo(&mut b);
    let idle = b.settings.idle_timeout;
    assert_eq!(s.deadline(&b.settings), b.now.plus(idle / 2));
    b.later(idle / 2);
    assert_eq!(b.timeout(&mut s), Ok(()));
    assert_eq!(frames(b.output(&mut s)), [("ping".to_string(), vec![])]);
    assert_eq!(s.deadline(&b.settings), Stamp::default().plus(idle));
    b.later(idle / 2);
    assert_eq!(b.timeout(&mut s), Ok(()));
    assert_eq!(frames(b.output(&mut s)), [close_code(1001)]);
    // §7.1.1: then the peer has close_timeout to answer.
    b.later(b.settings.close_timeout);
    assert_eq!(b.timeout(&mut s), Err(Dead));
}

#[test]
fn test_open_input_resets_the_idle_timer() {
    let mut b = Bench::new();
    let mut s = open_echo(&mut b);
    b.later(b.settings.idle_timeout / 2);
    b.input(&mut s, &masked(MessageKind::Text, b"x"));
    assert_eq!(s.deadline(&b.settings), b.now.plus(b.settings.idle_timeout / 2));
}

#[test]
fn test_open_server_shutdown_closes_with_1001() {
    let mut b = Bench::new();
    let mut s = open_echo(&mut b);
    assert_eq!(s.handle_server_shutdown(&mut b.env()), Ok(()));
    assert_eq!(frames(b.output(&mut s)), [close_code(1001)]);
    assert_eq!(s.deadline(&b.settings), b.now.plus(b.settings.close_timeout));
}

/// The access log hears who started the close, not the code of the frame
/// that came last: the peer's answer to our 1001 echoes 1001 (§5.5.1).
#[test]
fn test_open_close_tells_the_access_log_who_started_it() {
    use crate::protocol::websocket::ClosedBy;
    let closed = |b: &Bench| {
        b.actions.iter().find_map(|a| match a {
            Action::Access(Access::Closed(by)) => Some(*by),
            _ => None,
        })
    };
    let answer = |code| {
        let mut close = Vec::new();
        WebSocket::client(ReadLimits::default(), 3).close(code, "", &mut close);
        close
    };
    let mut b = Bench::new();
    b.settings.access_log = true;
    let mut s = open_echo(&mut b);
    assert_eq!(s.handle_server_shutdown(&mut b.env()), Ok(()));
    b.input(&mut s, &answer(CloseCode::GOING_AWAY));
    assert_eq!(closed(&b), Some(Some(ClosedBy::Us(Some(CloseCode::GOING_AWAY)))));

    let mut b = Bench::new();
    b.settings.access_log = true;
    let mut s = open_echo(&mut b);
    b.input(&mut s, &answer(CloseCode::NORMAL));
    assert_eq!(closed(&b), Some(Some(ClosedBy::Peer(Some(CloseCode::NORMAL)))));

    // The connection lost with no close frame either way.
    let mut b = Bench::new();
    b.settings.access_log = true;
    let mut s = open_echo(&mut b);
    s.handle_gone(&mut b.env());
    assert_eq!(closed(&b), Some(None));
}

/// RFC 6455 §7.1.1: after our close the peer has close_timeout to answer,
/// counted from our close; data it keeps sending does not extend it.
#[test]
fn test_open_input_after_our_close_does_not_extend_the_close_wait() {
    let mut b = Bench::new();
    let mut s = open_echo(&mut b);
    assert_eq!(s.handle_server_shutdown(&mut b.env()), Ok(()));
    let closed_at = b.now;
    b.output(&mut s);
    b.later(b.settings.close_timeout / 2);
    b.input(&mut s, &masked(MessageKind::Text, b"still here"));
    assert_eq!(s.deadline(&b.settings), closed_at.plus(b.settings.close_timeout));
    b.later(b.settings.close_timeout / 2);
    assert_eq!(b.timeout(&mut s), Err(Dead));
}

#[test]
fn test_open_delivery_reaches_a_subscriber_once() {
    let mut b = Bench::new();
    let mut s = subscriber(&mut b, "/ws/c", UPGRADE, subscribed(4, vec![], None));
    b.output(&mut s);
    assert_eq!(b.deliver(&mut s, &message(4, "old")), Delivered::Nothing);
    assert_eq!(b.deliver(&mut s, &message(5, "new")), Delivered::Queued);
    assert_eq!(frames(b.output(&mut s)), [("Text".to_string(), b"new".to_vec())]);
}

#[test]
fn test_open_delivery_after_a_reset_is_told_and_followed() {
    let mut b = Bench::new();
    let proto = format!("{UPGRADE}Sec-WebSocket-Protocol: wsreactor.json\r\n");
    let mut s = subscriber(&mut b, "/ws/c", &proto, subscribed(5, vec![], None));
    b.output(&mut s);
    // The broker lost the channel and numbers it anew after 1000: the
    // first message of the new numbering tells of the reset, naming no id
    // the client holds (none of the new numbering is missing: to < from).
    b.deliver(&mut s, &message_in(1000, 1001, "new"));
    let got = frames(b.output(&mut s));
    assert_eq!(got.len(), 2, "{got:?}");
    let gap: serde_json::Value = serde_json::from_slice(&got[0].1).unwrap();
    assert_eq!(
        gap,
        serde_json::json!({"channel": "c", "gap": {"from": 1001, "to": 1000, "reset": true}})
    );
    assert!(String::from_utf8_lossy(&got[1].1).contains("\"id\":1001"), "{got:?}");
    // And the new numbering is followed, told once.
    assert_eq!(b.deliver(&mut s, &message_in(1000, 1002, "next")), Delivered::Queued);
    let got = frames(b.output(&mut s));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(String::from_utf8_lossy(&got[0].1).contains("\"id\":1002"), "{got:?}");
}

#[test]
fn test_open_delivery_of_a_later_id_of_a_new_numbering_names_what_it_missed() {
    let mut b = Bench::new();
    let proto = format!("{UPGRADE}Sec-WebSocket-Protocol: wsreactor.json\r\n");
    let mut s = subscriber(&mut b, "/ws/c", &proto, subscribed(5, vec![], None));
    b.output(&mut s);
    b.deliver(&mut s, &message_in(1000, 1003, "third"));
    let got = frames(b.output(&mut s));
    let gap: serde_json::Value = serde_json::from_slice(&got[0].1).unwrap();
    assert_eq!(
        gap,
        serde_json::json!({"channel": "c", "gap": {"from": 1001, "to": 1002, "reset": true}})
    );
}

#[test]
fn test_open_delivery_of_a_new_numbering_is_no_reset_for_a_subscriber_already_in_it() {
    let mut b = Bench::new();
    let proto = format!("{UPGRADE}Sec-WebSocket-Protocol: wsreactor.json\r\n");
    // Subscribed after the loss: its snapshot is of the new numbering.
    let mut s = subscriber(&mut b, "/ws/c", &proto, subscribed_in(1000, 1001, vec![], None));
    b.output(&mut s);
    b.deliver(&mut s, &message_in(1000, 1002, "x"));
    let got = frames(b.output(&mut s));
    assert_eq!(got.len(), 1, "{got:?}");
    // A subscriber of a channel that did not exist yet held nothing: no reset.
    let mut s = subscriber(&mut b, "/ws/c", &proto, subscribed(0, vec![], None));
    b.output(&mut s);
    b.deliver(&mut s, &message_in(1000, 1001, "first"));
    let got = frames(b.output(&mut s));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(String::from_utf8_lossy(&got[0].1).contains("\"id\":1001"), "{got:?}");
}

#[test]
fn test_sse_delivery_after_a_reset_is_told() {
    let mut b = Bench::new();
    let mut s = subscriber(&mut b, "/sse/c", "", subscribed(5, vec![], None));
    b.text(&mut s);
    b.deliver(&mut s, &message_in(1000, 1001, "new"));
    let out = b.text(&mut s);
    assert!(
        out.starts_with("event: gap\ndata: {\"from\":1001,\"to\":1000,\"reset\":true}\n\nid: 1001\n"),
        "{out}"
    );
}

#[test]
fn test_poll_delivery_after_a_reset_is_told() {
    let mut b = Bench::new();
    let mut s = subscriber(&mut b, "/poll/c?since=5", "", subscribed(5, vec![], None));
    b.deliver(&mut s, &message_in(1000, 1001, "new"));
    let out = b.text(&mut s);
    assert!(out.contains("\"last_id\":1001,\"gap\":true,\"reset\":true}"), "{out}");
}

#[test]
fn test_open_slow_subscriber_is_closed_with_1013() {
    let mut b = Bench::new();
    b.settings.write_buffer_limit = 8;
    let mut s = subscriber(&mut b, "/ws/c", UPGRADE, subscribed(0, vec![], None));
    // The 101 is not read: output is over the limit.
    assert!(b.actions.is_empty());
    b.deliver(&mut s, &message(1, "a"));
    assert_eq!(&*b.unsubscribed(), "c");
    let wire = b.output(&mut s);
    let head_end = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(frames(wire[head_end..].to_vec()).last(), Some(&close_code(1013)));
    assert_eq!(b.stats.slow_consumers.load(Relaxed), 1);
}

// Poll

#[test]
fn test_poll_delivery_answers_and_returns_to_request() {
    let mut b = Bench::new();
    let mut s = subscriber(&mut b, "/poll/c", "", subscribed(1, vec![], None));
    b.deliver(&mut s, &message(2, "two"));
    let out = b.text(&mut s);
    assert!(out.contains("\"last_id\":2,\"gap\":false}"), "{out}");
    assert_eq!(&*b.unsubscribed(), "c");
    assert!(matches!(s.state, State::Request { .. }));
}

#[test]
fn test_poll_gap_is_told() {
    let mut b = Bench::new();
    let mut s = subscriber(&mut b, "/poll/c", "", subscribed(1, vec![], None));
    b.deliver(&mut s, &message(4, "four"));
    assert!(b.text(&mut s).contains("\"last_id\":4,\"gap\":true}"));
}

#[test]
fn test_poll_timeout_is_204_with_the_cursor() {
    let mut b = Bench::new();
    let mut s = subscriber(&mut b, "/poll/c", "", subscribed(7, vec![], None));
    b.later(b.settings.pubsub.poll_timeout);
    assert_eq!(b.timeout(&mut s), Ok(()));
    let out = b.text(&mut s);
    assert!(
        out.starts_with("HTTP/1.1 204 ") && out.contains("X-Last-Id: 7\r\n"),
        "{out}"
    );
    assert_eq!(&*b.unsubscribed(), "c");
    assert!(matches!(s.state, State::Request { .. }));
}

#[test]
fn test_poll_server_shutdown_drops() {
    let mut b = Bench::new();
    let mut s = subscriber(&mut b, "/poll/c", "", subscribed(7, vec![], None));
    assert_eq!(s.handle_server_shutdown(&mut b.env()), Err(Dead));
    assert!(s.take_subscription().is_some(), "the reactor gives it back");
}

// Sse

#[test]
fn test_sse_delivery_is_an_event() {
    let mut b = Bench::new();
    let mut s = subscriber(&mut b, "/sse/c", "", subscribed(1, vec![], None));
    b.output(&mut s);
    b.deliver(&mut s, &message(3, "three"));
    assert_eq!(
        b.text(&mut s),
        "event: gap\ndata: {\"from\":2,\"to\":2}\n\nid: 3\ndata: three\n\n"
    );
}

#[test]
fn test_sse_quiet_stream_gets_a_heartbeat() {
    let mut b = Bench::new();
    let mut s = subscriber(&mut b, "/sse/c", "", subscribed(1, vec![], None));
    b.output(&mut s);
    b.later(b.settings.pubsub.sse_heartbeat);
    assert_eq!(b.timeout(&mut s), Ok(()));
    assert_eq!(b.text(&mut s), ": heartbeat\n\n");
}

#[test]
fn test_sse_slow_stream_closes() {
    let mut b = Bench::new();
    b.settings.write_buffer_limit = 8;
    let mut s = subscriber(&mut b, "/sse/c", "", subscribed(0, vec![], None));
    b.deliver(&mut s, &message(1, "a"));
    assert_eq!(&*b.unsubscribed(), "c");
    assert!(is(&s, Transport::Closing) && s.output().is_empty());
}

#[test]
fn test_sse_a_join_over_the_limit_is_dropped_and_the_stream_goes_on() {
    let mut b = Bench::new();
    b.settings.pubsub.presence_channels = vec!["c".into()];
    let mut s = subscriber(&mut b, "/sse/c?join_leave=1", "", subscribed(0, vec![], None));
    b.output(&mut s);
    let join = Arc::new(Message::presence(
        "c".into(),
        crate::pubsub::Change::Join,
        "{\"client\":\"1\"}",
        Instant::now(),
    ));
    // Under the limit: written, and not counted as a delivery.
    b.deliver(&mut s, &join);
    assert!(b.text(&mut s).starts_with("event: join\ndata: "));
    assert_eq!(b.stats.delivered_by[Transport::Sse as usize].load(Relaxed), 0);
    // Over it: dropped, and the stream is not taken for a slow one.
    b.settings.write_buffer_limit = 0;
    s.io.out.buf(&mut b.pool).extend_from_slice(b"unsent");
    b.deliver(&mut s, &join);
    assert!(is(&s, Transport::Sse), "still streaming");
    assert_eq!(b.stats.slow_consumers.load(Relaxed), 0);
}

// Closing

#[test]
fn test_closing_input_is_discarded_until_the_timeout() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    b.input(&mut s, &get("/nope", ""));
    b.output(&mut s);
    assert_eq!(s.poll_end(), Some(End::Linger));
    b.input(&mut s, b"more bytes after our last word");
    assert!(!s.has_input() && b.output(&mut s).is_empty());
    b.later(b.settings.close_timeout);
    assert_eq!(b.timeout(&mut s), Err(Dead));
}

#[test]
fn test_closing_waits_for_output_before_shutting() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    b.input(&mut s, &get("/healthz", "Connection: close\r\n"));
    assert_eq!(s.poll_end(), None, "the answer is not written yet");
    b.output(&mut s);
    assert_eq!(s.poll_end(), Some(End::Linger));
}

#[test]
fn test_refused_connection_answers_then_closes() {
    let mut b = Bench::new();
    let mut s = Session::refused(Status::SERVICE_UNAVAILABLE, "too many connections", &mut b.env());
    assert!(b.text(&mut s).starts_with("HTTP/1.1 503 "));
    assert!(is(&s, Transport::Closing));
}

#[test]
fn test_any_state_stalled_output_is_dropped() {
    let mut b = Bench::new();
    b.settings.write_buffer_limit = 8;
    let mut s = subscriber(&mut b, "/ws/c", UPGRADE, subscribed(0, vec![], None));
    s.handle_flushed(&mut b.env());
    b.later(b.settings.write_stall);
    assert_eq!(s.deadline(&b.settings), b.now);
    assert_eq!(b.timeout(&mut s), Err(Dead));
}

/// Idle memory: an open WebSocket's state is one allocation that fits
/// glibc's 96-byte chunk (an 88-byte request; the reader's fragments and
/// inflater share one rarely made box, its limits are `u32`s), 16 bytes
/// less than uWebSockets' idle connection costs beside ours (issue 31;
/// `benches/idle_rss.py` measures the whole).
#[test]
fn test_open_state_fits_its_allocation_budget() {
    assert!(std::mem::size_of::<Open>() <= 88, "{}", std::mem::size_of::<Open>());
}

/// Every connection, idle or not, holds a session inline: its flags and
/// small fields are packed, its per-address hold is 16 bytes (a proxy's
/// is boxed) and its read buffer, when it has one, a boxed slice, so that
/// the session stays at 112 bytes and the whole connection in the
/// worker's slab at 144.
#[test]
fn test_session_fits_its_budget() {
    use crate::reactor::connection::Connection;
    let (session, connection) = (std::mem::size_of::<Session>(), std::mem::size_of::<Connection>());
    assert!(session <= 112, "{session}");
    assert!(connection <= 144, "{connection}");
}

#[path = "token_tests.rs"]
mod token;

#[path = "handler_tests.rs"]
mod handler;

#[path = "cors_tests.rs"]
mod cors;

#[path = "client_tests.rs"]
mod client;

#[path = "poll_tests.rs"]
mod poll;

#[path = "several_tests.rs"]
mod several;

#[path = "mux_tests.rs"]
mod mux;
