//! The JavaScript client (`clients/js/`) under Node against a real server:
//! subscribed to 3 channels, every message once and in order across a
//! transport switch and a reconnect (tests/js/three_channels.mjs); and the
//! server hands the client out at `/client.js`, cacheable.

mod common;

use common::*;
use std::process::Command;

#[test]
fn the_client_under_node_gets_three_channels_once_and_in_order_across_switches() {
    let server = Server::start(settings());
    let out = Command::new("node")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js/three_channels.mjs"))
        .arg(server.addr.to_string())
        .output()
        .expect("node (tests/run-all.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("ok "),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It said which transports it was on: SSE first where Node has no
    // WebSocket, then long polling, then short polling after the switches.
    assert!(stdout.trim_end().ends_with("longpoll,poll"), "{stdout}");
}

#[test]
fn the_client_renews_its_token_before_it_ends_and_stops_when_refused_without_one() {
    const SECRET: &str = "the js client tests' secret, 32b";
    let mut s = settings();
    s.auth = wsreactor::auth::Auth::new(vec!["private-*".into()], SECRET.as_bytes());
    let server = Server::start(s);
    let out = Command::new("node")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js/tokens.mjs"))
        .arg(server.addr.to_string())
        .arg(SECRET)
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("ok "),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_server_hands_out_the_client_with_caching_headers() {
    let server = Server::start(settings());
    let mut c = Client::connect(server.addr);
    let r = c.request("GET", "/client.js", &[], b"");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("text/javascript; charset=utf-8"));
    assert!(r.header("cache-control").unwrap().contains("max-age"), "{r:?}");
    let file = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/clients/js/wsreactor.js")).unwrap();
    assert_eq!(r.body, file);
    let etag = r.header("etag").expect("an ETag").to_owned();
    let r = c.request("GET", "/client.js", &[&format!("If-None-Match: {etag}")], b"");
    assert_eq!((r.status, r.body.len()), (304, 0), "{r:?}");
}

#[test]
fn the_client_gzipped_is_under_8_kb() {
    let out = Command::new("gzip")
        .args(["-9c", concat!(env!("CARGO_MANIFEST_DIR"), "/clients/js/wsreactor.js")])
        .output()
        .expect("gzip");
    assert!(out.status.success());
    assert!(out.stdout.len() < 8 * 1024, "{} bytes gzipped", out.stdout.len());
}

#[test]
fn the_client_asks_nothing_of_any_host_but_the_server_it_is_given() {
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/clients/js/wsreactor.js")).unwrap();
    for needle in ["http://", "https://", "ws://", "wss://", "import("] {
        let hits: Vec<&str> = source
            .lines()
            .filter(|l| l.contains(needle) && !l.trim_start().starts_with("//"))
            .collect();
        assert!(hits.is_empty(), "{needle}: {hits:?}");
    }
}
