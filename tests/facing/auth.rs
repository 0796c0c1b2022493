//! Subscriber tokens over real sockets: refusals before the 101 or the
//! response head, a WebSocket subscriber closed with 4001 when its token
//! ends, a refresh that keeps it, an event stream that ends, a long poll
//! checked on every poll, and the secret from the environment.

use crate::common::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wsreactor::auth::Auth;
use wsreactor::reactor::settings::Settings;

const SECRET: &str = "integration-test-secret-32-bytes";

fn private_settings() -> Settings {
    Settings {
        auth: Auth::new(vec!["private-*".into()], SECRET.as_bytes()),
        ..settings()
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn token(channel: &str, exp: u64) -> String {
    jwt(SECRET, json!({"exp": exp, "channel": channel}))
}

/// The first status line a raw request gets.
fn answer(addr: std::net::SocketAddr, request: &str) -> String {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    c.write_all(request.as_bytes()).unwrap();
    let mut text = String::new();
    let _ = c.read_to_string(&mut text);
    text
}

#[test]
fn every_transport_refuses_a_missing_or_bad_token_before_its_head() {
    let server = Server::start(private_settings());
    let expired = token("private-a", now() - 1);
    let other = token("private-b", now() + 60);
    let upgrade = format!(
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for route in ["ws", "poll", "sse"] {
        let extra = if route == "ws" { upgrade.as_str() } else { "" };
        for (query, why) in [
            (String::new(), "send a token"),
            (format!("?token={expired}"), "expired"),
            (format!("?token={other}"), "does not grant"),
        ] {
            let text = answer(
                server.addr,
                &format!("GET /{route}/private-a{query} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"),
            );
            assert!(text.starts_with("HTTP/1.1 403 "), "{route}{query}: {text}");
            assert!(text.contains(why), "{route}: {text}");
        }
    }
    // A public channel needs nothing.
    let (_c, _) = Client::upgrade_at(server.addr, "/ws/news", "");
}

#[test]
fn a_websocket_subscriber_is_closed_with_4001_when_its_token_ends() {
    let server = Server::start(private_settings());
    let exp = now() + 2;
    let (mut sub, _) = Client::upgrade_at(
        server.addr,
        &format!("/ws/private-a?token={}", token("private-a", exp)),
        "",
    );
    let mut publisher = Client::connect(server.addr);
    publish(&mut publisher, "private-a", "before");
    assert_eq!(sub.recv().payload, b"before");
    let frame = sub.recv_within(Duration::from_secs(4)).expect("no close after exp");
    assert_eq!(frame.close_code(), Some(4001));
    // Within a second of exp (whole seconds on the wall clock).
    assert!(now() >= exp && now() <= exp + 1);
}

#[test]
fn a_refreshed_token_keeps_the_subscription() {
    let server = Server::start(private_settings());
    let first = now() + 2;
    let (mut sub, _) = Client::upgrade_at(
        server.addr,
        &format!("/ws/private-a?token={}", token("private-a", first)),
        "",
    );
    sub.send(
        TEXT,
        json!({"token": token("private-a", first + 3)}).to_string().as_bytes(),
    );
    // Past the first exp, still subscribed.
    assert!(
        sub.recv_within(Duration::from_millis(3_200)).is_none(),
        "closed despite the refresh"
    );
    let mut publisher = Client::connect(server.addr);
    publish(&mut publisher, "private-a", "after");
    assert_eq!(sub.recv().payload, b"after");
    let frame = sub
        .recv_within(Duration::from_secs(4))
        .expect("no close after the new exp");
    assert_eq!(frame.close_code(), Some(4001));
}

#[test]
fn an_event_stream_ends_and_a_long_poll_is_checked_on_every_poll() {
    let server = Server::start(private_settings());
    let exp = now() + 2;
    let t = token("private-a", exp);
    let mut sse = std::net::TcpStream::connect(server.addr).unwrap();
    sse.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(sse, "GET /sse/private-a?token={t} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut poll = Client::connect(server.addr);
    let auth = format!("Authorization: Bearer {t}");
    let r = poll.request("GET", "/poll/private-a?since=0", &[&auth], b"");
    assert_eq!(r.status, 204, "{r:?}");
    let started = Instant::now();
    let mut stream = String::new();
    let _ = sse.read_to_string(&mut stream);
    assert!(stream.starts_with("HTTP/1.1 200 "), "{stream}");
    assert!(stream.ends_with("event: expired\ndata: token expired\n\n"), "{stream}");
    assert!(started.elapsed() < Duration::from_secs(4));
    let r = poll.request("GET", "/poll/private-a?since=0", &[&auth], b"");
    assert_eq!(r.status, 403, "{r:?}");
}

/// `wsreactor serve` with the environment `env`; its address and log.
fn spawn(
    env: &[(&str, &str)],
) -> (
    std::process::Child,
    std::net::SocketAddr,
    BufReader<std::process::ChildStderr>,
) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wsreactor"));
    cmd.args(["serve", "--bind", "127.0.0.1:0", "--threads", "1"])
        .env("RUST_LOG", "debug")
        .env_remove("WSREACTOR_AUTH_SECRET")
        .env_remove("WSREACTOR_AUTH_SECRET_FILE")
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "the server exited");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split(' ').next().unwrap().trim().parse().unwrap();
        }
    };
    (child, addr, stderr)
}

#[test]
fn the_secret_comes_from_the_environment_or_a_file_and_is_never_logged() {
    let dir = std::env::temp_dir().join(format!("wsreactor-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let file = file.to_str().unwrap();
    for env in [("WSREACTOR_AUTH_SECRET", SECRET), ("WSREACTOR_AUTH_SECRET_FILE", file)] {
        let (mut child, addr, mut stderr) = spawn(&[env]);
        let good = token("private-a", now() + 60);
        let published = answer(
            addr,
            "POST /pub/private-a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        );
        assert!(published.starts_with("HTTP/1.1 200 "), "{published}");
        let poll = |query: &str| {
            answer(
                addr,
                &format!("GET /poll/private-a?since=0{query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            )
        };
        let (refused, granted) = (poll(""), poll(&format!("&token={good}")));
        let _ = child.kill();
        let _ = child.wait();
        let mut log = String::new();
        let _ = stderr.read_to_string(&mut log);
        assert!(refused.starts_with("HTTP/1.1 403 "), "{}: {refused}", env.0);
        assert!(
            granted.starts_with("HTTP/1.1 200 ") && granted.contains("\"aGk=\""),
            "{}: {granted}",
            env.0
        );
        assert!(!log.contains(SECRET), "the secret is in the log:\n{log}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_wsreactor"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("WSREACTOR_AUTH_SECRET_FILE", dir.join("missing"))
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("WSREACTOR_AUTH_SECRET_FILE") && stderr.contains("auth.secret"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A token whose JOSE header is `header` (JSON), signed with the secret.
fn token_with_header(header: &str, claims: serde_json::Value) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use jsonwebtoken::{Algorithm, EncodingKey};
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let signature = jsonwebtoken::crypto::sign(signed.as_bytes(), &key, Algorithm::HS256).unwrap();
    format!("{signed}.{signature}")
}

/// The status code of a raw answer ("" for none).
fn status(answer: &str) -> &str {
    answer.split(' ').nth(1).unwrap_or_default()
}

#[test]
fn a_token_with_crit_in_its_header_is_refused_like_a_bad_token_on_subscribe_and_publish() {
    let mut settings = private_settings();
    settings.pubsub.publish_token = Some("static-publish-token".into());
    let server = Server::start(settings);
    let claims = json!({"exp": now() + 60, "channels": ["private-a", "news"], "scope": "pub"});
    let plain = token_with_header(r#"{"alg":"HS256","typ":"JWT"}"#, claims.clone());
    let upgrade = format!(
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
    );
    let subscribe = |route: &str, token: &str| {
        let extra = if route == "ws" { upgrade.as_str() } else { "" };
        answer(
            server.addr,
            &format!(
                "GET /{route}/private-a?since=0&token={token} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"
            ),
        )
    };
    let publish = |token: &str| {
        answer(
            server.addr,
            &format!(
                "POST /pub/news HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
            ),
        )
    };
    // The same claims without crit are good: the refusals below are crit's.
    let (_ws, _) = Client::upgrade_at(server.addr, &format!("/ws/private-a?token={plain}"), "");
    assert!(publish(&plain).starts_with("HTTP/1.1 200 "));
    let published = answer(
        server.addr,
        "POST /pub/private-a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer static-publish-token\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    );
    assert!(published.starts_with("HTTP/1.1 200 "), "{published}");
    assert!(subscribe("poll", &plain).starts_with("HTTP/1.1 200 "));
    let bad = token_with_header(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        json!({"exp": now() - 1, "channel": "x"}),
    );
    for crit in [
        r#""crit":["x-unknown"],"x-unknown":1"#,
        r#""crit":["exp"]"#,
        r#""crit":[]"#,
        r#""crit":7"#,
    ] {
        let t = token_with_header(&format!(r#"{{"alg":"HS256","typ":"JWT",{crit}}}"#), claims.clone());
        let (refused, as_bad) = (publish(&t), publish(&bad));
        assert_eq!(status(&refused), status(&as_bad), "publish {crit}: {refused}");
        assert!(
            refused.starts_with("HTTP/1.1 403 ") && refused.contains("crit"),
            "publish {crit}: {refused}"
        );
        for route in ["ws", "poll", "sse"] {
            let (refused, as_bad) = (subscribe(route, &t), subscribe(route, &bad));
            assert_eq!(status(&refused), status(&as_bad), "{route} {crit}: {refused}");
            assert!(
                refused.starts_with("HTTP/1.1 403 ") && refused.contains("crit"),
                "{route} {crit}: {refused}"
            );
        }
    }
}
