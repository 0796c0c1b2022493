//! The load client's session without a socket: bytes and made-up time in,
//! bytes and figures out, one test per transition (`test_<state>_<event>`),
//! as the server's `reactor/session/tests.rs`.

use super::*;
use crate::load::stats::{histogram, Stats};
use crate::load::{Options, Transport as Via};
use crate::protocol::frame::{FrameHeader, OpCode};
use crate::protocol::handshake::accept_key;
use crate::protocol::ReadLimits;
use crate::reactor::buffer::BufferPool;
use hdrhistogram::Histogram;

/// A session, its buffers, and what a worker would lend it.
struct Fx {
    plan: Plan,
    stats: Stats,
    interval: Histogram<u64>,
    pool: BufferPool,
    rng: u64,
    now: Instant,
    window: Option<(Instant, Instant)>,
    bufs: Bufs,
    s: Session,
}

fn fx(options: Options) -> Fx {
    let t0 = Instant::now();
    Fx {
        plan: Plan::new(&options, t0).unwrap(),
        stats: Stats::default(),
        interval: histogram(),
        pool: BufferPool::new(4096, 4),
        rng: 7,
        now: t0,
        window: Some((t0, t0 + Duration::from_secs(10))),
        bufs: Bufs::default(),
        s: Session::new(0, t0),
    }
}

/// Echo mode, one message of 32 bytes in flight.
fn echo() -> Fx {
    fx(Options::default())
}

/// Subscribe mode over short polls without keep-alive.
fn poll() -> Fx {
    fx(Options {
        url: "http://127.0.0.1:9001/".into(),
        channel: Some("news".into()),
        mode: Mode::Subscribe,
        transport: Via::Poll,
        keep_alive: false,
        ..Options::default()
    })
}

impl Fx {
    /// Run `f` with the session, its buffers and a [`Ctx`] at `self.now`.
    fn with<R>(&mut self, f: impl FnOnce(&mut Session, &mut Bufs, &mut Ctx<'_>) -> R) -> R {
        let mut ctx = Ctx {
            plan: &self.plan,
            stats: &mut self.stats,
            interval: &mut self.interval,
            pool: &mut self.pool,
            rng: &mut self.rng,
            now: self.now,
            window: self.window,
        };
        f(&mut self.s, &mut self.bufs, &mut ctx)
    }

    fn later(&mut self, d: Duration) {
        self.now += d;
    }

    fn connected(&mut self) {
        self.with(|s, b, ctx| s.handle_connected(b, ctx));
    }

    /// Bytes from the server, as a read would leave them.
    fn input(&mut self, bytes: &[u8]) -> Step {
        let mut at = 0;
        while at < bytes.len() {
            let spare = self.bufs.spare(&mut self.pool);
            let n = spare.len().min(bytes.len() - at);
            spare[..n].copy_from_slice(&bytes[at..at + n]);
            self.bufs.filled_by(n);
            at += n;
        }
        self.with(|s, b, ctx| s.handle_input(b, ctx))
    }

    fn eof(&mut self) -> Step {
        self.with(|s, _, ctx| s.handle_eof(ctx))
    }

    fn timeout(&mut self) -> Step {
        self.with(|s, _, ctx| s.handle_timeout(ctx))
    }

    fn pump(&mut self) {
        self.with(|s, b, ctx| s.pump(b, ctx));
    }

    /// What the session queued to send since last asked.
    fn sent(&mut self) -> Vec<u8> {
        let out = self.bufs.out(&mut self.pool);
        let sent = out.clone();
        out.clear();
        sent
    }

    /// The 101 a server would answer the upgrade request queued.
    fn switching_protocols(&mut self, accept: Option<&str>) -> Vec<u8> {
        let request = String::from_utf8(self.sent()).unwrap();
        answer_to(&request, accept)
    }

    /// Connected, upgraded: `Open`.
    fn open(&mut self) {
        self.connected();
        let answer = self.switching_protocols(None);
        assert_eq!(self.input(&answer), Ok(()));
        assert!(self.s.opened() && !self.s.pending());
    }
}

/// The 101 a server would answer `request` with (`accept`: a wrong
/// `Sec-WebSocket-Accept` instead of the right one).
fn answer_to(request: &str, accept: Option<&str>) -> Vec<u8> {
    let key = request
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .expect("a key in the upgrade request");
    let right = String::from_utf8(accept_key(key.as_bytes()).to_vec()).unwrap();
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept.unwrap_or(&right)
    )
    .into_bytes()
}

/// A frame as the server sends it: final, unmasked.
fn frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    FrameHeader::new(opcode, payload.len() as u64).write_to(&mut out);
    out.extend_from_slice(payload);
    out
}

/// A close frame with `code`.
fn close(code: u16) -> Vec<u8> {
    frame(OpCode::Close, &code.to_be_bytes())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn test_connecting_established() {
    let mut f = echo();
    f.later(ms(3));
    f.connected();
    assert!(f.s.pending() && !f.s.connecting() && f.s.can_send());
    assert_eq!(f.stats.connect.len(), 1);
    assert_eq!(f.stats.wire.connects, 1);
    let request = String::from_utf8(f.sent()).unwrap();
    assert!(request.starts_with("GET / HTTP/1.1\r\n"), "{request}");
    assert!(request.contains("Sec-WebSocket-Key: "), "{request}");
}

#[test]
fn test_connecting_refused() {
    let mut f = echo();
    let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
    assert_eq!(f.with(|s, _, ctx| s.handle_error(&refused, ctx)), Dead);
    assert_eq!(f.stats.errors.refused, 1);
}

#[test]
fn test_connecting_timeout() {
    let mut f = echo();
    assert!(f.s.connecting() && !f.s.can_send());
    f.later(f.plan.timeout - ms(1));
    assert_eq!(f.timeout(), Ok(()));
    f.later(ms(1));
    assert_eq!(f.timeout(), Err(Dead));
    assert_eq!(f.stats.errors.timed_out.connect, 1);
}

#[test]
fn test_connecting_begin_close() {
    // An early stop: nothing to close yet.
    let mut f = echo();
    assert_eq!(f.with(|s, b, ctx| s.begin_close(b, ctx)), Err(Dead));
}

#[test]
fn test_handshake_101() {
    let mut f = echo();
    f.open();
    assert_eq!((f.stats.opened, f.stats.handshake.len()), (1, 1));
    assert_eq!(f.bufs.want, 0);
    assert!(!f.bufs.has_input());
}

#[test]
fn test_handshake_101_split_anywhere() {
    let mut f = echo();
    f.connected();
    let answer = f.switching_protocols(None);
    let (head, rest) = answer.split_at(answer.len() / 2);
    assert_eq!(f.input(head), Ok(()));
    assert!(f.s.pending(), "half a head opens nothing");
    assert_eq!(f.bufs.want, MAX_RESPONSE_HEAD);
    assert_eq!(f.input(rest), Ok(()));
    assert!(f.s.opened());
}

#[test]
fn test_handshake_101_with_frames_after() {
    // The upgrade hands its leftover bytes to `Open`: the server's close
    // that came in the same read is read as a frame.
    let mut f = echo();
    f.connected();
    let mut answer = f.switching_protocols(None);
    answer.extend(close(1001));
    assert_eq!(f.input(&answer), Ok(()));
    assert_eq!(f.stats.errors.close_codes.get(&1001), Some(&1));
}

#[test]
fn test_handshake_101_with_wrong_accept() {
    let mut f = echo();
    f.connected();
    let answer = f.switching_protocols(Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    assert_eq!(f.input(&answer), Err(Dead));
    assert_eq!(f.stats.errors.handshake_invalid.get("bad_accept"), Some(&1));
    assert_eq!(f.stats.opened, 0);
}

#[test]
fn test_handshake_status_not_101() {
    let mut f = echo();
    f.connected();
    f.sent();
    let answer = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(f.input(answer), Err(Dead));
    assert_eq!(f.stats.errors.handshake_status.get(&403), Some(&1));
}

#[test]
fn test_handshake_eof() {
    let mut f = echo();
    f.connected();
    assert_eq!(f.eof(), Err(Dead));
    assert_eq!(f.stats.errors.handshake_invalid.get("no_response"), Some(&1));
}

#[test]
fn test_handshake_timeout() {
    let mut f = echo();
    f.connected();
    f.later(f.plan.timeout);
    assert_eq!(f.timeout(), Err(Dead));
    assert_eq!(f.stats.errors.timed_out.handshake, 1);
}

#[test]
fn test_open_timer_sends_what_is_due() {
    let mut f = echo();
    f.open();
    let start = f.window.unwrap().0;
    // Unpaced: the pipeline (1) fills at once, then nothing is due.
    assert_eq!(f.s.wake_at(&f.plan, f.window, f.now), Some(start));
    f.pump();
    assert_eq!((f.stats.sent, f.s.in_flight()), (1, 1));
    assert_eq!(f.sent().len(), 2 + 4 + 32, "one masked frame of 32 bytes");
    assert_eq!(f.s.wake_at(&f.plan, f.window, f.now), None);
}

#[test]
fn test_open_echo_matched() {
    let mut f = echo();
    f.open();
    f.pump();
    f.later(ms(1));
    let echo = frame(OpCode::Binary, &f.plan.payload.clone());
    assert_eq!(f.input(&echo), Ok(()));
    assert_eq!((f.stats.received, f.s.in_flight()), (1, 0));
    assert_eq!(f.stats.latency.len(), 1);
    assert!(f.stats.errors.echo.is_empty());
}

#[test]
fn test_open_echo_of_the_wrong_size() {
    let mut f = echo();
    f.open();
    f.pump();
    assert_eq!(f.input(&frame(OpCode::Binary, b"short")), Ok(()));
    assert_eq!(f.stats.errors.echo.get("wrong_size"), Some(&1));
}

#[test]
fn test_open_echo_timeout() {
    let mut f = echo();
    f.open();
    f.pump();
    f.later(f.plan.timeout);
    assert_eq!(f.timeout(), Err(Dead));
    assert_eq!(f.stats.errors.timed_out.message, 1);
}

#[test]
fn test_open_frame_split_anywhere() {
    let mut f = echo();
    f.open();
    f.pump();
    let echo = frame(OpCode::Binary, &f.plan.payload.clone());
    assert_eq!(f.input(&echo[..1]), Ok(()));
    assert_eq!(f.input(&echo[1..20]), Ok(()));
    assert_eq!(f.stats.received, 0);
    // The frame in progress is wanted whole at the front of the buffer.
    assert_eq!(f.bufs.want, echo.len());
    assert_eq!(f.input(&echo[20..]), Ok(()));
    assert_eq!((f.stats.received, f.bufs.want), (1, 0));
}

#[test]
fn test_open_server_close() {
    // §7.1.5: the server closed first; its code is the connection's, and
    // our close answers it (§5.5.1): both closes, so `Closing`.
    let mut f = echo();
    f.open();
    f.sent();
    assert_eq!(f.input(&close(1001)), Ok(()));
    assert_eq!(f.stats.errors.close_codes.get(&1001), Some(&1));
    let answer = f.sent();
    assert_eq!(answer[0], 0x88, "our close frame");
    assert!(f.s.can_send() && !f.s.awaits_close());
    // Closing: waits for the server's EOF.
    assert_eq!(f.eof(), Err(Dead));
    assert_eq!(f.stats.errors.total(), 1);
}

#[test]
fn test_open_eof() {
    // §7.1.5: closed without a close frame: 1006.
    let mut f = echo();
    f.open();
    assert_eq!(f.eof(), Err(Dead));
    assert_eq!(f.stats.errors.close_codes.get(&1006), Some(&1));
}

#[test]
fn test_open_reset() {
    let mut f = echo();
    f.open();
    let reset = io::Error::from_raw_os_error(libc::ECONNRESET);
    assert_eq!(f.with(|s, _, ctx| s.handle_error(&reset, ctx)), Dead);
    assert_eq!(f.stats.errors.close_codes.get(&1006), Some(&1));
}

#[test]
fn test_open_masked_frame() {
    // §5.1: a client MUST fail the connection on a masked frame; the
    // violation is counted, our close (1002) queued, nothing more read
    // (§7.1.7): `Closing`, waiting for the server's EOF.
    let mut f = echo();
    f.open();
    f.sent();
    let masked = [0x82, 0x81, 1, 2, 3, 4, 0];
    assert_eq!(f.input(&masked), Ok(()));
    assert_eq!(f.stats.errors.protocol.values().sum::<u64>(), 1);
    let answer = f.sent();
    assert_eq!(answer[0], 0x88, "close, final");
    assert!(!f.s.awaits_close() && !f.bufs.has_input());
    assert_eq!(f.eof(), Err(Dead));
    assert_eq!(f.stats.errors.close_codes.get(&1006), None);
}

#[test]
fn test_open_begin_close() {
    let mut f = echo();
    f.open();
    f.later(ms(5));
    assert_eq!(f.with(|s, b, ctx| s.begin_close(b, ctx)), Ok(()));
    assert_eq!(f.sent()[0], 0x88, "close, final");
    assert!(f.s.awaits_close());
    // Nothing more is sent while closing.
    f.pump();
    assert_eq!((f.stats.sent, f.sent().len()), (0, 0));
    assert_eq!(f.s.wake_at(&f.plan, f.window, f.now), None);
    // A second close is not sent.
    assert_eq!(f.with(|s, b, ctx| s.begin_close(b, ctx)), Ok(()));
    assert!(f.sent().is_empty());
}

#[test]
fn test_open_close_answered() {
    let mut f = echo();
    f.open();
    assert_eq!(f.with(|s, b, ctx| s.begin_close(b, ctx)), Ok(()));
    assert_eq!(f.input(&close(1000)), Ok(()));
    // Our close was first: the server's answer is no error.
    assert!(f.stats.errors.close_codes.is_empty());
    assert!(!f.s.awaits_close());
    assert_eq!(f.eof(), Err(Dead));
    assert_eq!(f.stats.errors.total(), 0);
}

#[test]
fn test_open_close_timeout() {
    let mut f = echo();
    f.open();
    assert_eq!(f.with(|s, b, ctx| s.begin_close(b, ctx)), Ok(()));
    f.later(f.plan.close_timeout);
    assert_eq!(f.timeout(), Err(Dead));
    assert_eq!(f.stats.errors.timed_out.close, 1);
}

/// Both closes exchanged: `Closing`.
fn closing() -> Fx {
    let mut f = echo();
    f.open();
    assert_eq!(f.with(|s, b, ctx| s.begin_close(b, ctx)), Ok(()));
    assert_eq!(f.input(&close(1000)), Ok(()));
    f.sent();
    f
}

#[test]
fn test_closing_input() {
    // After the close handshake input is read only to reach EOF.
    let mut f = closing();
    assert_eq!(f.input(b"anything"), Ok(()));
    assert!(!f.bufs.has_input());
    assert!(f.sent().is_empty());
}

#[test]
fn test_closing_eof() {
    let mut f = closing();
    assert_eq!(f.eof(), Err(Dead));
    assert_eq!(f.stats.errors.total(), 0);
}

#[test]
fn test_closing_timeout() {
    // §7.1.1: the server should have closed the TCP connection.
    let mut f = closing();
    f.later(f.plan.close_timeout - ms(1));
    assert_eq!(f.timeout(), Ok(()));
    f.later(ms(1));
    assert_eq!(f.timeout(), Err(Dead));
}

#[test]
fn test_closing_begin_close() {
    let mut f = closing();
    assert_eq!(f.with(|s, b, ctx| s.begin_close(b, ctx)), Ok(()));
    assert!(f.sent().is_empty());
}

#[test]
fn test_connecting_established_over_http() {
    let mut f = poll();
    f.connected();
    assert!(f.s.pending() && f.s.can_send());
    let request = String::from_utf8(f.sent()).unwrap();
    assert!(request.starts_with("GET /poll/news?wait=0 HTTP/1.1\r\n"), "{request}");
    assert_eq!(f.stats.wire.requests, 1);
}

/// A short poll's answer: nothing new, the cursor, and the server closes.
const NOTHING: &[u8] = b"HTTP/1.1 204 No Content\r\nX-Last-Id: 4\r\nConnection: close\r\n\r\n";

/// Polled, answered, and the server closed: `Redial`.
fn redial() -> Fx {
    let mut f = poll();
    f.connected();
    f.sent();
    assert_eq!(f.input(NOTHING), Ok(()));
    assert_eq!(f.eof(), Ok(()));
    f
}

#[test]
fn test_feed_answer() {
    // A poll without keep-alive: answered, the server closes, and the next
    // poll goes on a new connection one interval after this one.
    let mut f = poll();
    f.connected();
    f.sent();
    assert_eq!(f.input(NOTHING), Ok(()));
    assert!(f.s.opened() && !f.s.pending());
    assert_eq!((f.stats.opened, f.stats.handshake.len()), (1, 1));
    assert!(!f.s.parked(), "waits for the server's EOF");
}

#[test]
fn test_feed_status_not_200() {
    let mut f = poll();
    f.connected();
    let refused = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(f.input(refused), Err(Dead));
    assert_eq!(f.stats.errors.handshake_status.get(&403), Some(&1));
}

#[test]
fn test_feed_eof() {
    let f = redial();
    assert!(f.s.parked() && !f.s.can_send());
    let due = f.now + f.plan.feed.as_ref().unwrap().interval;
    assert!(!f.s.redial_due(due - ms(1)));
    assert!(f.s.redial_due(due));
    assert_eq!(f.s.wake_at(&f.plan, f.window, f.now), Some(due));
}

#[test]
fn test_feed_timeout() {
    let mut f = poll();
    f.connected();
    f.later(f.plan.timeout);
    assert_eq!(f.timeout(), Err(Dead));
    assert_eq!(f.stats.errors.timed_out.handshake, 1, "not yet answered");
}

#[test]
fn test_feed_begin_close() {
    // An HTTP subscriber has no close handshake: its connection just ends.
    let mut f = poll();
    f.connected();
    assert_eq!(f.with(|s, b, ctx| s.begin_close(b, ctx)), Err(Dead));
}

#[test]
fn test_redial_hung_up() {
    let mut f = redial();
    let due = f.now + f.plan.feed.as_ref().unwrap().interval;
    // Hung up before it is due: it waits, parked.
    assert_eq!(f.s.handle_hung_up(f.now), due);
    assert!(f.s.parked());
    // Due: a new connection, from `Connecting`, with the same cursor.
    f.now = due;
    assert_eq!(f.s.handle_hung_up(f.now), due);
    f.s.handle_redialed(f.now);
    assert!(f.s.connecting() && !f.s.parked());
    f.connected();
    let request = String::from_utf8(f.sent()).unwrap();
    assert!(
        request.starts_with("GET /poll/news?since=4&wait=0 HTTP/1.1\r\n"),
        "{request}"
    );
    assert_eq!(f.stats.wire.connects, 2);
}

#[test]
fn test_redial_begin_close() {
    let mut f = redial();
    assert_eq!(f.with(|s, b, ctx| s.begin_close(b, ctx)), Err(Dead));
}

#[test]
fn test_open_delivery() {
    // Subscribe mode over a WebSocket: each delivery is checked against its
    // lane's order and timed from when it was due.
    let mut f = fx(Options {
        url: "ws://127.0.0.1:9001/ws/news".into(),
        mode: Mode::Subscribe,
        ..Options::default()
    });
    f.open();
    let mut payload = Vec::new();
    let stamp = Stamp {
        lane: 0,
        seq: 0,
        scheduled_ns: f.plan.unix_ns(f.now),
        sent_ns: None,
    };
    stamp.write(f.plan.payload.len(), &mut payload);
    let delivery = frame(OpCode::Binary, &payload);
    assert_eq!(f.input(&delivery), Ok(()));
    assert_eq!((f.stats.received, f.s.received_unique()), (1, 1));
    assert_eq!(f.stats.latency.len(), 1);
    assert!(f.s.caught_up(1) && !f.s.caught_up(2));
    // The same message again: a duplicate, counted as such.
    assert_eq!(f.input(&delivery), Ok(()));
    assert_eq!(f.stats.errors.delivery.get("duplicate"), Some(&1));
    assert_eq!(f.s.received_unique(), 1);
    // Nothing is sent in subscribe mode.
    f.pump();
    assert!(f.sent().is_empty());
    assert_eq!(f.s.take_order().map(|o| o.unique), Some(1));
}

/// Subscribe mode with two channels per connection (`wsreactor.mux`).
fn mux() -> Fx {
    fx(Options {
        url: "http://127.0.0.1:9001/".into(),
        channel: Some("news".into()),
        mode: Mode::Subscribe,
        channels_per_connection: Some(2),
        ..Options::default()
    })
}

/// A binary delivery of lane 0's message `seq` in the mux envelope.
fn envelope(f: &Fx, seq: u64) -> Vec<u8> {
    use base64::Engine;
    let mut payload = Vec::new();
    let stamp = Stamp {
        lane: 0,
        seq,
        scheduled_ns: f.plan.unix_ns(f.now),
        sent_ns: None,
    };
    stamp.write(f.plan.payload.len(), &mut payload);
    let data = base64::engine::general_purpose::STANDARD.encode(&payload);
    let json = format!(
        "{{\"id\":{},\"channel\":\"news.{}\",\"data\":\"{data}\",\"encoding\":\"base64\"}}",
        seq + 1,
        seq % 2
    );
    frame(OpCode::Text, json.as_bytes())
}

#[test]
fn test_handshake_101_mux_subscribes_and_is_ready_at_the_last_answer() {
    let mut f = mux();
    f.connected();
    let request = String::from_utf8(f.sent()).unwrap();
    assert!(request.starts_with("GET /ws HTTP/1.1\r\n"), "{request}");
    assert!(
        request.contains("Sec-WebSocket-Protocol: wsreactor.mux\r\n"),
        "{request}"
    );
    let answer = String::from_utf8(answer_to(&request, None)).unwrap();
    let answer = answer.replacen("\r\n\r\n", "\r\nSec-WebSocket-Protocol: wsreactor.mux\r\n\r\n", 1);
    assert_eq!(f.input(answer.as_bytes()), Ok(()));
    // Two subscribes went out; not ready until both are answered.
    let mut server = WebSocket::server(ReadLimits::default());
    let mut sent = f.sent();
    let mut commands = Vec::new();
    let mut at = 0;
    while at < sent.len() {
        match server.read(&mut sent[at..], &mut Vec::new()).unwrap() {
            FrameRead::Frame {
                consumed,
                event: Some(Event::Message(_, p)),
            } => {
                commands.push(String::from_utf8(p.to_vec()).unwrap());
                at += consumed;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        commands,
        [r#"{"id":0,"subscribe":"news.0"}"#, r#"{"id":1,"subscribe":"news.1"}"#]
    );
    assert!(f.s.pending() && !f.s.opened());
    assert_eq!(f.input(&frame(OpCode::Text, br#"{"reply":0,"ok":true}"#)), Ok(()));
    assert!(f.s.pending());
    assert_eq!(f.input(&frame(OpCode::Text, br#"{"reply":1,"ok":true}"#)), Ok(()));
    assert!(f.s.opened() && !f.s.pending());
    assert_eq!(f.stats.opened, 1);
    // Deliveries of either channel, in the envelope, into one order.
    for seq in 0..3 {
        let e = envelope(&f, seq);
        assert_eq!(f.input(&e), Ok(()));
    }
    assert_eq!(f.s.received_unique(), 3);
    // One that comes after our close still counts, as a delivery: the
    // channel is not closed until the server answers.
    assert_eq!(f.with(|s, b, ctx| s.begin_close(b, ctx)), Ok(()));
    let e = envelope(&f, 3);
    assert_eq!(f.input(&e), Ok(()));
    assert_eq!(f.s.received_unique(), 4);
    assert!(f.stats.errors.delivery.is_empty(), "{:?}", f.stats.errors.delivery);
}

#[test]
fn test_handshake_101_mux_refused_subscribe_closes() {
    let mut f = mux();
    f.connected();
    let answer = f.switching_protocols(None);
    assert_eq!(f.input(&answer), Ok(()));
    f.sent();
    let refused = frame(OpCode::Text, br#"{"reply":0,"error":"too many channels"}"#);
    assert_eq!(f.input(&refused), Ok(()));
    assert_eq!(f.stats.errors.handshake_invalid.get("subscribe_refused"), Some(&1));
    assert!(f.s.awaits_close(), "it closes: never a subscriber of this run");
    assert!(!f.s.opened());
}

/// Subscribe mode over WebSocket at /ws/news?token=t&since=3, text
/// payloads of 32 bytes, with `scenario`.
fn scenario(scenario: crate::load::Scenario) -> Fx {
    let mut f = fx(Options {
        url: "ws://127.0.0.1:9001/ws/news?token=t&since=3".into(),
        mode: Mode::Subscribe,
        kind: MessageKind::Text,
        scenario,
        ..Options::default()
    });
    f.s = Session::new(0, f.now).with_disruption(f.plan.scenario.disruption(0));
    f
}

/// A message of lane 0 number `seq`, due `ago` before now, in the
/// `wsreactor.json` envelope with id `id`.
fn json_message(f: &Fx, id: u64, seq: u64, ago: Duration) -> Vec<u8> {
    let mut data = Vec::new();
    let stamp = Stamp {
        lane: 0,
        seq,
        scheduled_ns: f.plan.unix_ns(Instant::now()) - ago.as_nanos() as u64,
        sent_ns: None,
    };
    stamp.write_text(32, &mut data);
    let data = String::from_utf8(data).unwrap();
    frame(
        OpCode::Text,
        format!(r#"{{"id":{id},"channel":"news","data":"{data}"}}"#).as_bytes(),
    )
}

#[test]
fn test_open_storm_drops_and_comes_back_from_the_envelope_id() {
    use crate::load::{ReconnectStorm, Scenario};
    let mut f = scenario(Scenario {
        slow: None,
        storm: Some(ReconnectStorm {
            at: ms(1000),
            share: 1.0,
            jitter: Duration::ZERO,
        }),
    });
    f.connected();
    let request = String::from_utf8(f.sent()).unwrap();
    assert!(
        request.contains("\r\nSec-WebSocket-Protocol: wsreactor.json\r\n"),
        "{request}"
    );
    let answer = answer_to(&request, None);
    assert_eq!(f.input(&answer), Ok(()));
    assert_eq!(f.input(&json_message(&f, 41, 0, ms(1))), Ok(()));
    assert_eq!(f.stats.received, 1);
    // Not yet: the drop is due 1 s into the window, and the session wakes for it.
    let (start, _) = f.window.unwrap();
    assert_eq!(f.s.wake_at(&f.plan, f.window, f.now), Some(start + ms(1000)));
    assert!(!f.with(|s, _, ctx| s.storm_due(ctx)));
    f.later(ms(1000));
    assert!(f.with(|s, _, ctx| s.storm_due(ctx)));
    assert!(f.s.parked() && f.s.caught_up(1) && !f.s.caught_up(2));
    // Due back at once (no jitter); its connection is made 20 ms later,
    // from the id it had, the URL's own since dropped.
    let dropped = f.now;
    f.later(ms(20));
    assert_eq!(f.s.handle_hung_up(f.now), dropped);
    f.s.handle_redialed(f.now);
    f.connected();
    let request = String::from_utf8(f.sent()).unwrap();
    assert!(
        request.starts_with("GET /ws/news?token=t&since=41 HTTP/1.1\r\n"),
        "{request}"
    );
    let answer = answer_to(&request, None);
    assert_eq!(f.input(&answer), Ok(()));
    // The same subscriber: opened once, its order kept.
    assert_eq!((f.stats.opened, f.stats.handshake.len()), (1, 1));
    f.later(ms(10));
    assert_eq!(f.input(&json_message(&f, 42, 1, ms(15))), Ok(()));
    assert_eq!(f.input(&json_message(&f, 43, 2, Duration::ZERO)), Ok(()));
    let d = f.s.take_disruption().unwrap();
    let crate::load::scenario::Disruption::Storm(s) = &d else {
        panic!("a stormed subscriber")
    };
    // 42 was due while it was away; 43 after it was back, with nothing missing.
    assert_eq!(s.recovered, 1);
    assert!(s.caught_up.is_some_and(|t| t >= ms(30)), "{s:?}");
    assert_eq!(f.stats.errors.total(), 0, "{:?}", f.stats.errors);
}

#[test]
fn test_open_slow_reader_pauses_and_its_close_is_not_an_error() {
    use crate::load::{Scenario, SlowReaders};
    let mut f = scenario(Scenario {
        slow: Some(SlowReaders {
            share: 1.0,
            pause: ms(2000),
            rcvbuf: None,
        }),
        storm: None,
    });
    f.open();
    let w = f.window;
    assert!(!f.s.reading(w, f.now));
    assert_eq!(f.s.wake_at(&f.plan, w, f.now), Some(f.now + ms(2000)));
    assert!(!f.s.resume_due(w, f.now + ms(1999)));
    // Nothing times out while it does not read.
    f.later(ms(1500));
    assert_eq!(f.timeout(), Ok(()));
    f.later(ms(500));
    assert!(f.s.resume_due(w, f.now) && f.s.reading(w, f.now));
    assert!(!f.s.resume_due(w, f.now), "once");
    // What it reads now: the server's 1013, the scenario's figure.
    assert_eq!(f.input(&close(1013)), Ok(()));
    assert_eq!(f.stats.errors.total(), 0, "{:?}", f.stats.errors);
    assert!(f.s.caught_up(1_000), "the drain does not wait for a slow reader");
    let d = f.s.take_disruption().unwrap();
    assert_eq!(d.slow().unwrap().ended, Some(crate::load::scenario::End::Close(1013)));
}
