//! The load generator against real sockets on 127.0.0.1: our own server
//! in-process, and tiny misbehaving servers on std threads. Every run is
//! bounded by its duration and time-outs.

mod charts;
#[path = "../common/mod.rs"]
mod common;
mod distributed;
mod documented;
mod readme;
mod scenarios;
mod transports;
mod verdict;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;
use wsreactor::load::{self, report::Summary, Mode, Options};
use wsreactor::protocol::handshake::accept_key;
use wsreactor::protocol::MessageKind;
use wsreactor::reactor::{self, settings::Settings, ServerHandle};

fn server() -> ServerHandle {
    reactor::start("127.0.0.1:0".parse().unwrap(), 1, 1024, Settings::default()).unwrap()
}

fn stop(server: ServerHandle) {
    server.shutdown();
    server.join().unwrap();
}

fn options(addr: SocketAddr) -> Options {
    Options {
        url: format!("ws://{addr}/"),
        connections: 10,
        connect_rate: 0.0,
        threads: 2,
        duration: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
        ..Options::default()
    }
}

fn run(o: &Options) -> Summary {
    let summary = load::run(o).unwrap();
    eprintln!("{}", summary.table());
    summary
}

#[test]
fn echo_counts_round_trips_without_errors() {
    let server = server();
    let s = run(&Options {
        connections: 20,
        pipeline: 2,
        ..options(server.local_addr())
    });
    stop(server);
    assert_eq!(s.connections.opened, 20);
    assert_eq!(s.connections.peak_open, 20);
    assert_eq!(s.errors.total, 0, "{:?}", s.errors);
    assert!(s.messages.sent > 100, "{:?}", s.messages);
    assert_eq!(s.messages.received, s.messages.sent);
    assert_eq!(s.latency_us.count, s.messages.received);
    assert_eq!(s.latency_from, "send");
    assert_eq!(s.handshake_us.count, 20);
    assert!(s.latency_us.p50 > 0 && s.latency_us.p50 <= s.latency_us.max);
}

#[test]
fn rate_times_duration_messages_are_sent() {
    let server = server();
    let (rate, secs) = (400.0, 2.0);
    let s = run(&Options {
        connections: 8,
        rate: Some(rate),
        duration: Duration::from_secs_f64(secs),
        kind: MessageKind::Text,
        ..options(server.local_addr())
    });
    stop(server);
    let expected = rate * secs;
    let sent = s.messages.sent as f64;
    assert!(
        (sent - expected).abs() <= expected * 0.05,
        "sent {sent}, expected {expected}"
    );
    assert_eq!(s.messages.received, s.messages.sent);
    assert_eq!(s.errors.total, 0, "{:?}", s.errors);
    assert_eq!(s.latency_from, "schedule");
}

#[test]
fn connect_mode_opens_and_holds() {
    let server = server();
    let s = run(&Options {
        mode: Mode::Connect,
        connections: 50,
        connect_rate: 500.0,
        duration: Duration::from_millis(300),
        ..options(server.local_addr())
    });
    stop(server);
    assert_eq!((s.connections.opened, s.connections.peak_open), (50, 50));
    assert_eq!((s.connect_us.count, s.handshake_us.count), (50, 50));
    // 50 connections at 500/s: the ramp takes about 0.1 s.
    assert!(s.time.ramp_s >= 0.09, "{:?}", s.time);
    assert_eq!(s.messages.sent, 0);
    assert_eq!(s.errors.total, 0, "{:?}", s.errors);
}

#[test]
fn refused_connections_are_counted() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    // The listener is gone: nothing listens on the port.
    let s = run(&Options {
        connections: 5,
        ..options(port)
    });
    assert_eq!(s.errors.by_kind.refused, 5, "{:?}", s.errors);
    assert_eq!(s.errors.total, 5);
    assert_eq!((s.connections.attempted, s.connections.opened), (5, 0));
    // Nothing opened: no window to wait out.
    assert_eq!(s.time.measured_s, 0.0);
}

/// Accept `n` connections on a std listener; answer each request head with
/// `answer(key)` and close.
fn fake_server(n: usize, answer: fn(&str) -> Vec<u8>) -> SocketAddr {
    fake_server_holding(n, answer, Duration::ZERO)
}

/// As [`fake_server`], keeping each connection open for `hold` after the
/// answer (the connections are held one after another).
fn fake_server_holding(n: usize, answer: fn(&str) -> Vec<u8>, hold: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for _ in 0..n {
            let Ok((stream, _)) = listener.accept() else { return };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = BufReader::new(stream);
            let mut key = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("sec-websocket-key") {
                        key = value.trim().to_string();
                    }
                }
                line.clear();
            }
            let mut stream = reader.into_inner();
            let _ = stream.write_all(&answer(&key));
            std::thread::sleep(hold);
            // Dropped here: the TCP connection closes.
        }
    });
    addr
}

#[test]
fn handshake_status_is_counted() {
    let addr = fake_server(4, |_| b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec());
    let s = run(&Options {
        connections: 4,
        ..options(addr)
    });
    assert_eq!(s.errors.by_kind.handshake_status.get(&404), Some(&4), "{:?}", s.errors);
    assert_eq!(s.errors.total, 4);
    assert_eq!(s.connections.opened, 0);
}

#[test]
fn close_without_a_close_frame_counts_as_1006() {
    let addr = fake_server(3, switching_protocols);
    let s = run(&Options {
        connections: 3,
        ..options(addr)
    });
    assert_eq!(s.connections.opened, 3);
    assert_eq!(s.errors.by_kind.close_codes.get(&1006), Some(&3), "{:?}", s.errors);
    assert_eq!(s.errors.total, 3);
}

fn switching_protocols(key: &str) -> Vec<u8> {
    let accept = accept_key(key.as_bytes());
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        std::str::from_utf8(&accept).unwrap()
    )
    .into_bytes()
}

#[test]
fn a_handshake_never_answered_times_out() {
    // Accepts one connection and keeps it without a word for 3 s.
    let addr = fake_server_holding(1, |_| Vec::new(), Duration::from_secs(3));
    let s = run(&Options {
        connections: 1,
        threads: 1,
        timeout: Duration::from_millis(300),
        ..options(addr)
    });
    assert_eq!(s.errors.by_kind.timed_out.handshake, 1, "{:?}", s.errors);
    assert_eq!(s.errors.total, 1);
    assert!(s.time.elapsed_s < 2.0, "{:?}", s.time);
}

#[test]
fn a_masked_frame_from_the_server_is_a_protocol_error() {
    // §5.1: a server must not mask; an empty masked text frame follows the 101.
    let addr = fake_server(2, |key| {
        let mut answer = switching_protocols(key);
        answer.extend_from_slice(b"\x81\x80\0\0\0\0");
        answer
    });
    let s = run(&Options {
        connections: 2,
        ..options(addr)
    });
    assert_eq!(s.connections.opened, 2);
    assert_eq!(
        s.errors.by_kind.protocol.get("masked_frame"),
        Some(&2),
        "{:?}",
        s.errors
    );
    assert_eq!(s.errors.total, 2);
}

#[test]
fn source_addresses_are_used_in_turn() {
    let server = server();
    let s = run(&Options {
        mode: Mode::Connect,
        connections: 30,
        duration: Duration::from_millis(100),
        source_ips: load::parse_source_ips("127.0.0.2-127.0.0.4").unwrap(),
        ..options(server.local_addr())
    });
    stop(server);
    assert_eq!((s.connections.opened, s.errors.total), (30, 0), "{:?}", s.errors);
}

/// An echo server on std threads (tungstenite) that stalls once, for
/// `stall`, before echoing message number `at`.
fn stalling_echo_server(at: usize, stall: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else { return };
        stream.set_nodelay(true).unwrap();
        let Ok(mut ws) = tungstenite::accept(stream) else {
            return;
        };
        let mut count = 0;
        while let Ok(msg) = ws.read() {
            if msg.is_text() || msg.is_binary() {
                count += 1;
                if count == at {
                    std::thread::sleep(stall);
                }
                if ws.send(msg).is_err() {
                    return;
                }
            }
        }
    });
    addr
}

#[test]
fn a_stall_shows_in_p99_when_measured_from_the_schedule() {
    let stall = Duration::from_secs(1);
    let addr = stalling_echo_server(30, stall);
    // One message every 10 ms for 3 s: about 100 of the 300 are due during
    // the stall and wait for it.
    let s = run(&Options {
        connections: 1,
        threads: 1,
        rate: Some(100.0),
        duration: Duration::from_secs(3),
        ..options(addr)
    });
    assert_eq!(s.errors.total, 0, "{:?}", s.errors);
    assert_eq!(s.messages.received, 300);
    let stall_us = stall.as_micros() as u64;
    // From the schedule, the stall is in the tail...
    assert!(s.latency_us.p99 >= stall_us * 9 / 10, "{:?}", s.latency_us);
    assert!(s.latency_us.max >= stall_us, "{:?}", s.latency_us);
    assert!(s.latency_us.p90 >= stall_us / 2, "{:?}", s.latency_us);
    // ...while from the send only the one stalled message saw it.
    assert!(s.service_us.max >= stall_us, "{:?}", s.service_us);
    assert!(s.service_us.p99 < stall_us / 2, "{:?}", s.service_us);
}

/// Run the binary, `wsreactor load ARGS --quiet --json FILE`, and assert
/// that it exits 0 (with its output if not). Its stdout, and the JSON file
/// parsed.
fn load_json(file: &str, args: &[&str]) -> (String, serde_json::Value) {
    let json = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(file);
    let _ = std::fs::remove_file(&json);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsreactor"))
        .arg("load")
        .args(args)
        .arg("--quiet")
        .arg("--json")
        .arg(&json)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&json).unwrap();
    (stdout, serde_json::from_str(&text).unwrap())
}

#[test]
fn the_binary_writes_the_documented_json_and_a_chart() {
    let server = server();
    let svg = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("load-latency.svg");
    let _ = std::fs::remove_file(&svg);
    let url = format!("ws://{}/", server.local_addr());
    let (stdout, v) = load_json(
        "load-summary.json",
        &[
            "--url",
            &url,
            "--connections",
            "4",
            "--duration",
            "500ms",
            "--rate",
            "200",
            "--plot",
            svg.to_str().unwrap(),
        ],
    );
    stop(server);
    assert!(stdout.contains("round trip from schedule [latency_us]"), "{stdout}");
    for field in [
        "url",
        "mode",
        "threads",
        "connections",
        "time",
        "messages",
        "latency_from",
        "errors",
    ] {
        assert!(v.get(field).is_some(), "no {field} in {v}");
    }
    for h in ["latency_us", "service_us", "connect_us", "handshake_us"] {
        for p in ["count", "min", "mean", "p50", "p90", "p99", "p99_9", "max"] {
            assert!(v[h][p].is_number(), "no {h}.{p} in {v}");
        }
    }
    for f in ["target", "attempted", "opened", "failed", "peak_open"] {
        assert!(v["connections"][f].is_number(), "no connections.{f}");
    }
    for f in ["sent", "received", "lost", "per_second", "rate", "size", "pipeline"] {
        assert!(v["messages"][f].is_number(), "no messages.{f}");
    }
    let errors = &v["errors"];
    for f in ["total", "refused"] {
        assert!(errors[f].is_number(), "no errors.{f}");
    }
    for f in ["connect", "handshake", "message", "close"] {
        assert!(errors["timed_out"][f].is_number(), "no errors.timed_out.{f}");
    }
    for f in [
        "handshake_status",
        "handshake_invalid",
        "close_codes",
        "protocol",
        "echo",
        "io",
    ] {
        assert!(errors[f].is_object(), "no errors.{f}");
    }
    assert_eq!(v["messages"]["sent"], 100);
    assert_eq!(v["latency_from"], "schedule");
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(
        chart.starts_with("<svg") && chart.contains("percentile"),
        "{}",
        &chart[..200.min(chart.len())]
    );
}

#[test]
fn the_binary_refuses_bad_options_with_status_2() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsreactor"))
        .args(["load", "--url", "http://127.0.0.1:1/", "--quiet"])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ws://"));
}

/// `wsreactor serve` (the binary this test was built with, release under
/// `cargo test --release`) on a free loopback port; killed when dropped.
pub(crate) struct Serve {
    pub(crate) child: std::process::Child,
    pub(crate) addr: SocketAddr,
}

impl Serve {
    fn start(args: &[&str]) -> Serve {
        // A port nobody holds now; the server binds it a moment later.
        let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_wsreactor"))
            .args(["serve", "--bind", &addr.to_string(), "--threads", "2"])
            .args(args)
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap();
        let serve = Serve { child, addr };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "wsreactor serve did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        serve
    }

    fn url(&self, channel: &str) -> String {
        format!("ws://{}/ws/{channel}", self.addr)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn subscribe(url: String, subscribers: usize, rate: f64, secs: f64) -> Options {
    Options {
        url,
        mode: Mode::Subscribe,
        connections: subscribers,
        connect_rate: 0.0,
        threads: 2,
        rate: Some(rate),
        duration: Duration::from_secs_f64(secs),
        timeout: Duration::from_secs(5),
        ..Options::default()
    }
}

#[test]
fn subscribe_every_subscriber_gets_every_message_in_order() {
    let server = Serve::start(&[]);
    let (subscribers, rate, secs) = (50, 200.0, 2.0);
    let s = run(&subscribe(server.url("load-test"), subscribers, rate, secs));
    drop(server);
    let sub = s.subscribe.as_ref().unwrap();
    let (p, d) = (&sub.published, &sub.deliveries);
    assert_eq!(s.errors.total, 0, "{:?}", s.errors);
    assert_eq!(s.connections.opened, subscribers as u64);
    // rate × duration messages due, all sent and accepted...
    assert_eq!(p.due, Some((rate * secs) as u64));
    assert_eq!((p.sent, p.accepted, p.unsent), (400, 400, 0), "{p:?}");
    assert_eq!(p.last_id.unwrap() - p.first_id.unwrap() + 1, 400, "{p:?}");
    assert_eq!((p.subscribers_min, p.subscribers_max), (Some(50), Some(50)));
    // ...and every subscriber got every one, once, in each lane's order.
    assert_eq!(d.subscribers, subscribers as u64);
    assert_eq!(d.expected, 400 * subscribers as u64);
    assert_eq!(d.received, d.expected, "{d:?}");
    assert_eq!((d.missing, d.duplicates, d.out_of_order), (0, 0, 0));
    assert_eq!(d.complete_subscribers, subscribers as u64);
    assert_eq!(s.latency_from, "schedule");
    assert_eq!(s.latency_us.count, d.received);
    assert!(s.latency_us.p50 > 0 && s.latency_us.p99 <= s.latency_us.max);
}

#[test]
fn several_channels_per_connection_each_subscriber_gets_every_message_of_each() {
    let server = Serve::start(&[]);
    let (subscribers, rate, secs) = (20, 150.0, 2.0);
    let options = Options {
        channels_per_connection: Some(3),
        ..subscribe(server.url("multi"), subscribers, rate, secs)
    };
    let s = run(&options);
    drop(server);
    let sub = s.subscribe.as_ref().unwrap();
    let (p, d) = (&sub.published, &sub.deliveries);
    assert_eq!(s.errors.total, 0, "{:?}", s.errors);
    // Ready only once each of its three subscribes was answered.
    assert_eq!(s.connections.opened, subscribers as u64);
    assert_eq!((p.sent, p.accepted, p.unsent), (300, 300, 0), "{p:?}");
    // Posted to multi.0, multi.1, multi.2 in turn: every subscriber of
    // the three gets each message once.
    assert_eq!((p.subscribers_min, p.subscribers_max), (Some(20), Some(20)));
    assert_eq!(d.expected, 300 * subscribers as u64);
    assert_eq!(d.received, d.expected, "{d:?}");
    assert_eq!((d.missing, d.duplicates, d.out_of_order), (0, 0, 0));
    assert_eq!(d.complete_subscribers, subscribers as u64);
}

#[test]
fn observe_subscribes_to_what_another_run_publishes_and_measures_it() {
    let server = Serve::start(&[]);
    let url = server.url("watched");
    // The observer subscribes first and for longer; the publishing run
    // comes once it is open, and ends first.
    let observer = {
        let o = Options {
            observe: true,
            publishers: 2,
            size: 64,
            // Its drain ends once every subscriber has what the best one
            // has (after a grace of 1 s), or after twice this.
            timeout: Duration::from_secs(2),
            ..subscribe(url.clone(), 20, 1.0, 3.0)
        };
        std::thread::spawn(move || run(&o))
    };
    std::thread::sleep(Duration::from_millis(500));
    let publisher = Options {
        publishers: 2,
        size: 64,
        ..subscribe(url, 10, 50.0, 1.0)
    };
    let published = run(&publisher);
    let observed = observer.join().unwrap();
    drop(server);
    let (p, o) = (
        published.subscribe.as_ref().unwrap(),
        observed.subscribe.as_ref().unwrap(),
    );
    assert_eq!(p.published.accepted, 50, "{:?}", p.published);
    assert!(o.observed && !p.observed);
    assert_eq!(observed.errors.total, 0, "{:?}", observed.errors);
    // Every one of the 50, to every one of the observer's 20 subscribers.
    assert_eq!(o.published.accepted, 50, "{:?}", o.published);
    assert_eq!(o.deliveries.received, 50 * 20, "{:?}", o.deliveries);
    assert_eq!(o.deliveries.complete_subscribers, 20);
    // Latency across the two runs, from the publisher's schedule: the
    // wall clock, not either run's own start.
    assert_eq!(observed.latency_from, "schedule");
    assert!(
        observed.latency_us.count == 1000 && observed.latency_us.max < 1_000_000,
        "{:?}",
        observed.latency_us
    );
}

#[test]
fn subscribe_counts_refused_publishes_and_misses_none() {
    // With a publish token and none sent, every publish is refused with 401
    // and delivered to nobody.
    let server = Serve::start(&["--publish-token", "secret"]);
    let s = run(&subscribe(server.url("closed"), 5, 50.0, 0.5));
    drop(server);
    let sub = s.subscribe.as_ref().unwrap();
    assert_eq!(
        (sub.published.sent, sub.published.accepted),
        (25, 0),
        "{:?}",
        sub.published
    );
    assert_eq!(sub.published.rejected, 25);
    assert_eq!(s.errors.by_kind.publish_status.get(&401), Some(&25), "{:?}", s.errors);
    assert_eq!(s.errors.total, 25, "{:?}", s.errors);
    assert_eq!((sub.deliveries.received, sub.deliveries.missing), (0, 0));
}

#[test]
fn subscribe_reports_a_publisher_that_falls_behind() {
    // One connection, one request at a time, cannot post a million a second:
    // the due messages it never sent are reported, and the ones it sent
    // are charged the wait from their scheduled time.
    let server = Serve::start(&[]);
    let s = run(&Options {
        publishers: 1,
        ..subscribe(server.url("behind"), 10, 1_000_000.0, 0.5)
    });
    drop(server);
    let p = &s.subscribe.as_ref().unwrap().published;
    assert_eq!(p.due, Some(500_000));
    assert!(p.fell_behind, "{p:?}");
    assert_eq!(p.unsent, 500_000 - p.sent);
    assert!(p.sent > 0 && p.per_second < 500_000.0, "{p:?}");
    assert!(s.latency_us.p50 >= 50_000, "{:?}", s.latency_us);
    assert!(s.service_us.p50 < s.latency_us.p50, "{:?}", s.service_us);
    assert!(s.table().contains("FELL BEHIND"), "{}", s.table());
    let d = &s.subscribe.as_ref().unwrap().deliveries;
    assert_eq!((d.missing, d.received), (0, p.accepted * 10), "{d:?}");
}

#[test]
fn the_binary_writes_subscribe_figures_as_json() {
    let server = Serve::start(&[]);
    let url = server.url("json");
    let (stdout, v) = load_json(
        "load-subscribe.json",
        &[
            "--url",
            &url,
            "--mode",
            "subscribe",
            "--connections",
            "4",
            "--duration",
            "500ms",
            "--rate",
            "100",
            "--size",
            "64",
            "--publishers",
            "1",
        ],
    );
    let addr = server.addr;
    drop(server);
    assert!(stdout.contains("delivery from schedule [latency_us]"), "{stdout}");
    assert_eq!(v["mode"], "subscribe");
    let sub = &v["subscribe"];
    assert_eq!(sub["channel"], "json");
    assert_eq!(sub["publish_url"], format!("http://{addr}/pub/json"));
    assert_eq!(sub["publishers"], 1);
    for f in [
        "due",
        "sent",
        "unsent",
        "accepted",
        "rejected",
        "unconfirmed",
        "per_second",
        "first_id",
        "last_id",
        "subscribers_min",
        "subscribers_max",
        "reconnects",
    ] {
        assert!(sub["published"][f].is_number(), "no subscribe.published.{f} in {sub}");
    }
    assert_eq!(sub["published"]["fell_behind"], false);
    for f in [
        "subscribers",
        "expected",
        "received",
        "missing",
        "duplicates",
        "out_of_order",
        "complete_subscribers",
        "per_second",
    ] {
        assert!(sub["deliveries"][f].is_number(), "no subscribe.deliveries.{f} in {sub}");
    }
    for p in ["count", "min", "mean", "p50", "p90", "p99", "p99_9", "max"] {
        assert!(sub["publish_us"][p].is_number(), "no subscribe.publish_us.{p}");
        assert!(v["latency_us"][p].is_number(), "no latency_us.{p}");
    }
    assert_eq!(sub["published"]["accepted"], 50);
    assert_eq!(sub["deliveries"]["expected"], 200);
    assert_eq!(sub["deliveries"]["received"], 200);
    assert_eq!(v["messages"]["lost"], 0);
    for f in ["publish_status", "publish", "delivery"] {
        assert!(v["errors"][f].is_object(), "no errors.{f}");
    }
    assert_eq!(v["errors"]["total"], 0);
}

#[test]
fn subscribe_reconnects_publishers_the_server_timed_out_while_idle() {
    // The server answers a keep-alive connection idle past the request
    // time-out with 408 and closes it; at 10/s the first publisher
    // connection takes every message and the other three sit idle.
    let config = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("short-request-timeout.toml");
    std::fs::write(&config, "[timeouts]\nhandshake = \"300ms\"\n").unwrap();
    let server = Serve::start(&["--config", config.to_str().unwrap()]);
    let s = run(&subscribe(server.url("idle"), 5, 10.0, 1.5));
    drop(server);
    let sub = s.subscribe.as_ref().unwrap();
    assert_eq!(s.errors.total, 0, "{:?}", s.errors);
    assert!(sub.published.reconnects >= 3, "{:?}", sub.published);
    assert_eq!((sub.published.accepted, sub.deliveries.missing), (15, 0));
    assert_eq!(sub.deliveries.received, 15 * 5);
}

/// Counters from the server's `/metrics` (one request), each summed over
/// the workers.
fn metrics<const N: usize>(addr: SocketAddr, names: [&str; N]) -> [u64; N] {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut page = String::new();
    stream.read_to_string(&mut page).unwrap();
    names.map(|name| {
        let values: Vec<u64> = page
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert!(!values.is_empty(), "no {name} in {page}");
        values.iter().sum()
    })
}

fn churn(addr: SocketAddr, slots: usize) -> Options {
    Options {
        mode: Mode::Churn,
        connections: slots,
        ..options(addr)
    }
}

#[test]
fn churn_cycles_are_what_the_server_saw() {
    let server = Serve::start(&[]);
    let counters = [
        "wsreactor_connections_accepted_total",
        "wsreactor_websocket_upgrades_total",
        "wsreactor_messages_echoed_total",
    ];
    let before = metrics(server.addr, counters);
    let url = format!("ws://{}/", server.addr);
    let (stdout, v) = load_json(
        "load-churn.json",
        &[
            "--url",
            &url,
            "--mode",
            "churn",
            "--connections",
            "20",
            "--duration",
            "1s",
            "--threads",
            "2",
        ],
    );
    let after = metrics(server.addr, counters);
    drop(server);
    assert!(stdout.contains("cycle from connect [latency_us]"), "{stdout}");
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"));
    let c = &v["churn"];
    let cycles = n(&c["cycles"]);
    assert_eq!(v["mode"], "churn");
    assert_eq!(v["errors"]["total"], 0, "{}", v["errors"]);
    assert!(cycles > 0, "{c}");
    let per_sec = c["cycles_per_sec"].as_f64().unwrap();
    let measured = v["time"]["measured_s"].as_f64().unwrap();
    assert!((per_sec * measured - cycles as f64).abs() < 1.0, "{c}");
    // Every cycle started was one connection, opened, echoed once and
    // completed, in the window or just after it.
    let attempted = n(&v["connections"]["attempted"]);
    assert_eq!(n(&c["started"]), attempted);
    assert_eq!(n(&v["connections"]["opened"]), attempted);
    assert_eq!(cycles + n(&c["completed_after_window"]), attempted, "{c}");
    assert_eq!(n(&c["failed"]), 0);
    // The server closed TCP first, and the client saw it at once.
    assert_eq!(n(&c["server_kept_open"]), 0);
    assert_eq!(n(&v["latency_us"]["count"]), attempted);
    assert_eq!(n(&c["echo_us"]["count"]), attempted);
    assert!(n(&v["connections"]["peak_open"]) <= 20);
    assert_eq!(v["latency_from"], "connect");
    // The server's own counters. Its accepts also count the second
    // /metrics request, and maybe the probe Serve::start made (taken by the
    // other worker, perhaps after the first /metrics was answered).
    let [accepted, upgrades, echoed] = [0, 1, 2].map(|i| after[i] - before[i]);
    eprintln!("server: {before:?} -> {after:?}; client: {attempted} connections");
    assert!(accepted >= cycles, "server accepted {accepted}, client cycles {cycles}");
    assert!(
        (attempted + 1..=attempted + 2).contains(&accepted),
        "accepted {accepted}"
    );
    assert_eq!(upgrades, attempted);
    assert_eq!(echoed, n(&v["messages"]["received"]));
}

#[test]
fn churn_at_a_rate_starts_cycles_at_that_rate() {
    let server = server();
    let (rate, secs) = (200.0, 2.0);
    let s = run(&Options {
        rate: Some(rate),
        duration: Duration::from_secs_f64(secs),
        ..churn(server.local_addr(), 20)
    });
    stop(server);
    let c = s.churn.as_ref().unwrap();
    assert_eq!(s.errors.total, 0, "{:?}", s.errors);
    assert_eq!(c.due, Some(400));
    assert_eq!((c.started, c.unstarted, c.late), (400, 0, 0), "{c:?}");
    assert!(!c.fell_behind);
    assert!((c.cycles_per_sec - rate).abs() <= rate * 0.1, "{c:?}");
    assert_eq!(s.latency_from, "schedule");
    assert_eq!(s.latency_us.count, c.cycles + c.completed_after_window);
    // Well under capacity: a cycle is short and slots are mostly idle.
    assert!(s.connections.peak_open < 20, "{:?}", s.connections);
}

#[test]
fn churn_against_a_refused_port_backs_off_and_ends() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let s = run(&churn(port, 20));
    let c = s.churn.as_ref().unwrap();
    assert_eq!(c.cycles, 0);
    assert!(s.errors.by_kind.refused > 0, "{:?}", s.errors);
    assert_eq!(s.errors.total, s.errors.by_kind.refused);
    assert_eq!(
        (c.failed, c.started),
        (s.connections.attempted, s.connections.attempted)
    );
    // Each slot rests 10 ms after a failure: at most about 100 tries a
    // second each, not a busy loop.
    assert!(s.connections.attempted <= 20 * 110, "{:?}", s.connections);
    assert!(s.time.elapsed_s < 2.0, "{:?}", s.time);
}

#[test]
fn churn_counts_a_404_and_an_unusable_source_address() {
    let server = server();
    let addr = server.local_addr();
    let s = run(&Options {
        url: format!("ws://{addr}/nowhere"),
        duration: Duration::from_millis(500),
        ..churn(addr, 4)
    });
    let c = s.churn.as_ref().unwrap();
    assert_eq!(c.cycles, 0);
    let status = s.errors.by_kind.handshake_status.get(&404).copied().unwrap_or(0);
    assert!(status > 0 && status == c.failed, "{:?} {c:?}", s.errors);
    assert_eq!(s.errors.total, status);
    // A source address that is not this machine's: bind fails at once
    // with EADDRNOTAVAIL, as it does when the ephemeral ports run out.
    let s = run(&Options {
        source_ips: vec!["192.0.2.1".parse().unwrap()],
        duration: Duration::from_millis(500),
        ..churn(addr, 4)
    });
    stop(server);
    let unavailable = s.errors.by_kind.io.get("address_unavailable").copied().unwrap_or(0);
    assert!(unavailable > 0, "{:?}", s.errors);
    assert_eq!(s.errors.total, unavailable);
    assert!(unavailable <= 4 * 60, "{:?}", s.connections);
    assert!(s.time.elapsed_s < 1.5, "{:?}", s.time);
}
