//! Subscribe mode over every transport against `wsreactor serve`: no
//! message missing or twice, and the bytes on the wire counted.

use crate::{run, subscribe, Serve};
use std::time::Duration;
use wsreactor::load::report::Summary;
use wsreactor::load::{Options, Transport};
use wsreactor::protocol::MessageKind;

/// 20 subscribers of channel `channel` over `transport`, 50 text messages
/// of 64 B a second for a second, the server's pid given.
fn over(server: &Serve, channel: &str, transport: Transport, keep_alive: bool) -> Summary {
    run(&Options {
        url: format!("http://{}/", server.addr),
        channel: Some(channel.into()),
        transport,
        keep_alive,
        poll_interval: Duration::from_millis(200),
        kind: MessageKind::Text,
        size: 64,
        server_pid: Some(server.child.id()),
        ..subscribe(String::new(), 20, 50.0, 1.0)
    })
}

/// Everything accepted reached every subscriber once, in order, with no error.
fn assert_complete(s: &Summary) {
    let sub = s.subscribe.as_ref().unwrap();
    let (p, d) = (&sub.published, &sub.deliveries);
    assert_eq!(s.errors.total, 0, "{:?}", s.errors);
    assert_eq!(s.connections.opened, 20);
    assert_eq!((p.sent, p.accepted), (50, 50), "{p:?}");
    assert_eq!(d.expected, 50 * 20);
    assert_eq!(d.received, d.expected, "{d:?}");
    assert_eq!((d.missing, d.duplicates, d.out_of_order), (0, 0, 0));
    assert_eq!(d.complete_subscribers, 20);
    assert_eq!(s.latency_us.count, d.received);
}

#[test]
fn every_transport_delivers_every_message_once_and_counts_its_bytes() {
    let server = Serve::start(&[]);
    let ws = over(&server, "t-ws", Transport::Ws, true);
    let sse = over(&server, "t-sse", Transport::Sse, true);
    let long = over(&server, "t-long", Transport::LongPoll, true);
    let poll = over(&server, "t-poll", Transport::Poll, true);
    drop(server);
    for s in [&ws, &sse, &long, &poll] {
        assert_complete(s);
    }
    let t = |s: &Summary| s.subscribe.as_ref().unwrap().transport.clone();
    let (ws, sse, long, poll) = (t(&ws), t(&sse), t(&long), t(&poll));
    assert_eq!(
        [ws.transport, sse.transport, long.transport, poll.transport],
        ["ws", "sse", "longpoll", "poll"]
    );
    // A WebSocket delivery is its 64 bytes and a 2-byte frame head (the
    // close handshake adds a little); nothing is requested.
    assert!((66.0..72.0).contains(&ws.bytes_in_per_delivery), "{ws:?}");
    assert_eq!((ws.requests, ws.connects), (0, 0), "{ws:?}");
    // An event: `id: N`, `data: ` and the blank line around the payload.
    assert!((72.0..100.0).contains(&sse.bytes_in_per_delivery), "{sse:?}");
    assert_eq!(sse.requests, 0, "{sse:?}");
    // A long poll pays a request and a response head per answer, and at
    // 50/s each answer carries about one message.
    assert!(long.bytes_in_per_delivery > 2.0 * sse.bytes_in_per_delivery, "{long:?}");
    assert!(long.bytes_out_per_delivery > 20.0, "{long:?}");
    // A short poll's answer carries what came in its interval (about ten).
    assert!(poll.bytes_in_per_delivery > sse.bytes_in_per_delivery, "{poll:?}");
    assert!(poll.bytes_out_per_delivery < long.bytes_out_per_delivery, "{poll:?}");
    for p in [&long, &poll] {
        assert_eq!(p.connects, 0, "kept alive: {p:?}");
    }
    // Every 200 ms for a second and a bit: about six polls per subscriber.
    assert!((80..=200).contains(&poll.requests), "{poll:?}");
    assert_eq!(poll.poll_interval_s, Some(0.2));
    // The server's side, from /proc.
    for t in [&ws, &sse, &long, &poll] {
        let server = t.server.unwrap();
        assert!(server.rss_bytes > 1 << 20, "{server:?}");
        assert!(server.cpu_us_per_delivery >= 0.0 && server.cpu_s < 5.0, "{server:?}");
    }
}

#[test]
fn polls_without_keep_alive_open_a_connection_each_and_miss_nothing() {
    let server = Serve::start(&[]);
    let long = over(&server, "c-long", Transport::LongPoll, false);
    let poll = over(&server, "c-poll", Transport::Poll, false);
    drop(server);
    for s in [&long, &poll] {
        assert_complete(s);
        let t = &s.subscribe.as_ref().unwrap().transport;
        assert!(!t.keep_alive);
        // One connection per request, the ramp's first excepted.
        assert!(t.connects > 0 && t.connects.abs_diff(t.requests) <= 20, "{t:?}");
        assert_eq!(t.reconnects, 0, "{t:?}");
    }
}

#[test]
fn binary_payloads_arrive_whole_over_sse_and_polls_through_base64() {
    let server = Serve::start(&[]);
    for (channel, transport) in [("b-sse", Transport::Sse), ("b-long", Transport::LongPoll)] {
        let s = run(&Options {
            url: format!("http://{}/", server.addr),
            channel: Some(channel.into()),
            transport,
            size: 100,
            ..subscribe(String::new(), 5, 50.0, 0.5)
        });
        let d = &s.subscribe.as_ref().unwrap().deliveries;
        assert_eq!(s.errors.total, 0, "{:?}", s.errors);
        assert_eq!((d.received, d.missing), (25 * 5, 0), "{d:?}");
    }
}

#[test]
fn a_subscriber_the_server_refuses_is_counted_by_status() {
    // A private channel with no token: 403 before any stream or poll.
    let server = Serve::start(&[]);
    let s = run(&Options {
        url: format!("http://{}/", server.addr),
        channel: Some("private-x".into()),
        transport: Transport::Sse,
        ..subscribe(String::new(), 3, 10.0, 0.2)
    });
    drop(server);
    assert_eq!(s.connections.opened, 0);
    assert_eq!(s.errors.by_kind.handshake_status.get(&403), Some(&3), "{:?}", s.errors);
}

#[test]
fn compare_runs_every_transport_in_rounds_and_tables_the_medians() {
    let server = Serve::start(&[]);
    let url = format!("http://{}/", server.addr);
    let pid = server.child.id().to_string();
    let chart = crate::verdict::tmp("compare.svg");
    let _ = std::fs::remove_file(&chart);
    let args = [
        "compare",
        "--url",
        &url,
        "--channel",
        "cmp",
        "--connections",
        "10",
        "--connect-rate",
        "0",
        "--rate",
        "40",
        "--size",
        "64",
        "--duration",
        "0.5",
        "--poll-interval",
        "100ms",
        "--rounds",
        "2",
        "--timeout",
        "5s",
        "--server-pid",
        &pid,
        "--plot",
    ];
    let mut args: Vec<&str> = args.to_vec();
    let chart_arg = chart.display().to_string();
    args.push(&chart_arg);
    let (out, v) = crate::verdict::load("compare.json", &args);
    drop(server);
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{table}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One row per transport, in the default order, each from two runs.
    let rows = v["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["transport"].as_str().unwrap()).collect();
    assert_eq!(names, ["poll", "longpoll", "sse", "ws"]);
    for r in rows {
        assert_eq!(r["rounds"], 2, "{r}");
        assert_eq!((r["missing"].as_u64(), r["errors"].as_u64()), (Some(0), Some(0)), "{r}");
        assert!(r["bytes_in_per_delivery"].as_f64().unwrap() > 64.0, "{r}");
        assert!(r["server_cpu_us_per_delivery"].as_f64().is_some(), "{r}");
        assert!(
            table.lines().any(|l| l.starts_with(r["transport"].as_str().unwrap())),
            "{table}"
        );
    }
    // Eight runs, interleaved: the second round starts with the second transport.
    let runs = v["runs"].as_array().unwrap();
    let ran: Vec<&str> = runs
        .iter()
        .map(|r| r["subscribe"]["transport"]["transport"].as_str().unwrap())
        .collect();
    assert_eq!(ran, ["poll", "longpoll", "sse", "ws", "longpoll", "sse", "ws", "poll"]);
    assert!(runs.iter().all(|r| r["messages"]["kind"] == "text"));
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("longpoll"),
        "{}",
        &svg[..200.min(svg.len())]
    );
}
