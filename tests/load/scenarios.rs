//! Slow readers, reconnect storms, fan-out completion and the metrics
//! endpoint against `wsreactor serve`, each run a few seconds.

use crate::{metrics, run, subscribe, Serve};
use std::io::{Read, Write};
use std::time::Duration;
use wsreactor::load::scenario::chosen;
use wsreactor::load::{Options, ReconnectStorm, Scenario, SlowReaders, Transport};
use wsreactor::protocol::MessageKind;

#[test]
fn slow_readers_are_dropped_by_the_server_and_the_others_miss_nothing() {
    // A 64 KiB queue (and the default 128 KiB of unsent bytes in the
    // kernel) against readers whose sockets hold 16 KiB, fed 300 KB/s.
    let config = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("slow-readers.toml");
    std::fs::write(&config, "[limits]\nwrite_buffer_limit = 65536\n").unwrap();
    let server = Serve::start(&["--config", config.to_str().unwrap()]);
    let subscribers = 50;
    let s = run(&Options {
        size: 1024,
        scenario: Scenario {
            slow: Some(SlowReaders {
                share: 0.1,
                pause: Duration::from_secs(2),
                rcvbuf: Some(16384),
            }),
            storm: None,
        },
        ..subscribe(server.url("slow"), subscribers, 300.0, 3.0)
    });
    let [dropped] = metrics(server.addr, ["wsreactor_slow_subscribers_dropped_total"]);
    drop(server);
    let sub = s.subscribe.as_ref().unwrap();
    let slow = sub.slow_readers.as_ref().unwrap();
    let chosen = (0..subscribers).filter(|&i| chosen(i, 0.1)).count() as u64;
    assert!(chosen > 0);
    // Every slow reader was dropped by the server's rule, and said so.
    assert_eq!((slow.readers, slow.dropped), (chosen, chosen), "{slow:?}");
    assert_eq!(dropped, chosen, "the server's own count");
    assert!(
        slow.dropped_by.keys().all(|k| k == "close 1013" || k == "close 1006"),
        "{slow:?}"
    );
    // Served a while after they stopped, not the whole pause, and not
    // everything.
    assert!(slow.served_ms.max < 2000, "{slow:?}");
    assert!(slow.received.max < sub.published.accepted, "{slow:?}");
    assert!(slow.latency_us.count > 0);
    // The others: everything, once, no error; their latency is the run's.
    let d = &sub.deliveries;
    assert_eq!(s.errors.total, 0, "{:?}", s.errors);
    assert_eq!(d.subscribers, subscribers as u64 - chosen);
    assert_eq!((d.missing, d.duplicates), (0, 0), "{d:?}");
    assert_eq!(d.complete_subscribers, d.subscribers);
    assert_eq!(s.latency_us.count, d.received);
    assert_eq!(slow.others_us, s.latency_us);
    // Every publish reached every other subscriber.
    let f = &sub.fanout;
    assert_eq!((f.complete, f.incomplete), (sub.published.accepted, 0), "{f:?}");
    assert!(f.completion_us.p50 >= s.latency_us.p50, "{f:?}");
    assert!(s.table().contains("slow readers"), "{}", s.table());
}

#[test]
fn slow_readers_over_http_end_as_their_transport_lets_the_server_end_them() {
    // An event stream is ended (the reader resumes from Last-Event-ID
    // later); a long poller's answer waits whole, and the reader catches
    // up from the history when it asks again: never dropped.
    let config = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("slow-http.toml");
    std::fs::write(&config, "[limits]\nwrite_buffer_limit = 65536\n").unwrap();
    let server = Serve::start(&["--config", config.to_str().unwrap()]);
    for transport in [Transport::Sse, Transport::LongPoll] {
        let s = run(&Options {
            url: format!("http://{}/", server.addr),
            channel: Some(format!("slow-{}", transport.name())),
            transport,
            kind: MessageKind::Text,
            size: 1024,
            scenario: Scenario {
                slow: Some(SlowReaders {
                    share: 0.1,
                    pause: Duration::from_secs(2),
                    rcvbuf: Some(16384),
                }),
                storm: None,
            },
            ..subscribe(String::new(), 50, 300.0, 3.0)
        });
        let sub = s.subscribe.as_ref().unwrap();
        let (slow, d) = (sub.slow_readers.as_ref().unwrap(), &sub.deliveries);
        let name = transport.name();
        assert_eq!(s.errors.total, 0, "{name}: {:?}", s.errors);
        assert_eq!((d.missing, d.duplicates), (0, 0), "{name}: {d:?}");
        assert_eq!(d.complete_subscribers, d.subscribers, "{name}");
        assert!(slow.readers > 0, "{name}: {slow:?}");
        match transport {
            Transport::Sse => {
                assert_eq!(slow.dropped, slow.readers, "{name}: {slow:?}");
                assert_eq!(slow.dropped_by.keys().collect::<Vec<_>>(), ["eof"], "{name}: {slow:?}");
            }
            _ => assert_eq!(slow.dropped, 0, "{name}: {slow:?}"),
        }
    }
    drop(server);
}

/// A storm at 1 s of a 3 s window, every subscriber (or `share`) back
/// within `jitter`, over `transport`.
fn storm(
    server: &Serve,
    channel: &str,
    transport: Transport,
    share: f64,
    jitter: Duration,
) -> wsreactor::load::report::Summary {
    run(&Options {
        url: format!("http://{}/", server.addr),
        channel: Some(channel.into()),
        transport,
        kind: MessageKind::Text,
        size: 64,
        scenario: Scenario {
            slow: None,
            storm: Some(ReconnectStorm {
                at: Duration::from_secs(1),
                share,
                jitter,
            }),
        },
        ..subscribe(String::new(), 100, 200.0, 3.0)
    })
}

#[test]
fn a_reconnect_storm_loses_nothing_on_every_transport() {
    let server = Serve::start(&[]);
    for (transport, share, jitter) in [
        (Transport::Ws, 1.0, Duration::ZERO),
        (Transport::Ws, 0.5, Duration::from_millis(800)),
        (Transport::Sse, 1.0, Duration::from_millis(500)),
        (Transport::LongPoll, 1.0, Duration::from_millis(500)),
    ] {
        let name = format!("storm-{}-{}", transport.name(), (share * 100.0) as u32);
        let s = storm(&server, &name, transport, share, jitter);
        let sub = s.subscribe.as_ref().unwrap();
        let (d, st) = (&sub.deliveries, sub.reconnect_storm.as_ref().unwrap());
        let picked = (0..100).filter(|&i| chosen(i, share)).count() as u64;
        assert_eq!(s.errors.total, 0, "{name}: {:?}", s.errors);
        assert_eq!(
            (st.dropped, st.reconnected, st.caught_up),
            (picked, picked, picked),
            "{name}: {st:?}"
        );
        assert_eq!((d.missing, d.duplicates), (0, 0), "{name}: {d:?}");
        assert_eq!(d.complete_subscribers, 100, "{name}");
        assert_eq!(d.received, d.expected, "{name}: {d:?}");
        // Everyone back and caught up within the jitter and a second.
        let all = st.all_caught_up_s.unwrap();
        assert!(all < jitter.as_secs_f64() + 1.0, "{name}: {st:?}");
        // What was published while they were away came from their cursors.
        // All at once, they may be back within the 5 ms between two
        // messages (nothing to recover); a jittered storm keeps them away
        // for hundreds of milliseconds.
        if !jitter.is_zero() {
            assert!(st.recovered > 0, "{name}: {st:?}");
        }
        assert_eq!(sub.fanout.incomplete, 0, "{name}: {:?}", sub.fanout);
    }
}

#[test]
fn the_metrics_endpoint_shows_the_run_while_it_runs() {
    let server = Serve::start(&[]);
    let bind = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let scrape = std::thread::spawn(move || {
        let get = || {
            let mut stream = std::net::TcpStream::connect(bind).ok()?;
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            write!(stream, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
            let mut page = String::new();
            stream.read_to_string(&mut page).ok()?;
            Some(page)
        };
        // Scrape until the page shows the window with deliveries in it
        // (it is rendered once a second), for at most the run's length.
        let mut page = String::new();
        for _ in 0..40 {
            std::thread::sleep(Duration::from_millis(100));
            page = get().unwrap_or_default();
            let received = page
                .lines()
                .any(|l| l.starts_with("wsreactor_load_received_total ") && !l.ends_with(" 0"));
            if received && page.contains("wsreactor_load_phase{phase=\"run\"} 1") {
                break;
            }
        }
        page
    });
    let s = run(&Options {
        metrics_bind: Some(bind),
        server_pid: Some(server.child.id()),
        ..subscribe(server.url("watched"), 20, 100.0, 2.5)
    });
    let page = scrape.join().unwrap();
    drop(server);
    let value = |name: &str| -> f64 {
        let line = page
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in {page}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert_eq!(value("wsreactor_load_connections_open"), 20.0);
    let received = value("wsreactor_load_received_total");
    assert!(received > 0.0 && received < s.messages.received as f64, "{received}");
    assert!(value("wsreactor_load_latency_seconds_count") > 0.0);
    assert!(value("wsreactor_load_server_resident_bytes") > 0.0);
    assert!(value("wsreactor_load_server_open_fds") >= 20.0);
    assert!(page.contains("wsreactor_load_phase{phase=\"run\"} 1"), "{page}");
    // Gone with the run.
    assert!(std::net::TcpStream::connect(bind).is_err());
}
