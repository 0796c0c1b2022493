//! Origins and CORS answers on the routes a page on another origin uses.

use super::*;
use crate::auth::Auth;

const APP: &str = "https://app.example";

/// A bench that lists one origin.
fn listed() -> Bench {
    let mut b = Bench::new();
    b.settings.allowed_origins = Some(vec![APP.into()]);
    b
}

fn from(origin: &str) -> String {
    format!("Origin: {origin}\r\n")
}

fn request(method: &str, path: &str, extra: &str) -> Vec<u8> {
    format!("{method} {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n").into_bytes()
}

#[test]
fn test_poll_answer_carries_the_listed_origin() {
    let mut b = listed();
    b.settings.allow_credentials = true;
    let mut s = subscriber(
        &mut b,
        "/poll/c",
        &from("https://APP.example"),
        subscribed(0, vec![], None),
    );
    b.deliver(&mut s, &message(1, "one"));
    let answer = b.text(&mut s);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    for header in [
        "Access-Control-Allow-Origin: https://app.example\r\n",
        "Vary: Origin\r\n",
        "Access-Control-Allow-Credentials: true\r\n",
        "Access-Control-Expose-Headers: X-Last-Id\r\n",
    ] {
        assert!(answer.contains(header), "{header} missing: {answer}");
    }
}

#[test]
fn test_request_any_origin_is_star_and_no_origin_no_cors() {
    let mut b = Bench::new();
    let mut s = subscriber(
        &mut b,
        "/sse/c",
        &from("https://any.example"),
        subscribed(0, vec![], None),
    );
    let head = b.text(&mut s);
    assert!(head.contains("Access-Control-Allow-Origin: *\r\n"), "{head}");
    assert!(!head.contains("Credentials") && !head.contains("Vary"), "{head}");
    let mut s = subscriber(&mut b, "/sse/c", "", subscribed(0, vec![], None));
    assert!(!b.text(&mut s).contains("Access-Control"));
}

#[test]
fn test_request_preflight_is_answered_per_route() {
    let mut b = listed();
    let ask = "Access-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: authorization\r\n";
    for (path, methods) in [("/poll/c", "GET"), ("/sse/c", "GET"), ("/pub/c", "POST")] {
        let mut s = Session::new(b.now);
        b.input(&mut s, &request("OPTIONS", path, &format!("{}{ask}", from(APP))));
        let answer = b.text(&mut s);
        assert!(answer.starts_with("HTTP/1.1 204 "), "{answer}");
        assert!(
            answer.contains(&format!("Access-Control-Allow-Methods: {methods}\r\n")),
            "{answer}"
        );
        assert!(
            answer.contains("Access-Control-Allow-Headers: Authorization, Content-Type, Last-Event-ID\r\n"),
            "{answer}"
        );
        assert!(
            answer.contains("Access-Control-Allow-Origin: https://app.example\r\n"),
            "{answer}"
        );
        // Kept alive, and nothing was subscribed or published.
        assert!(is(&s, Transport::Http) && b.actions.is_empty());
    }
}

#[test]
fn test_request_other_origins_are_refused_everywhere_preflight_included() {
    for (method, path) in [
        ("OPTIONS", "/poll/c"),
        ("GET", "/poll/c"),
        ("GET", "/sse/c"),
        ("OPTIONS", "/pub/c"),
        ("POST", "/pub/c"),
    ] {
        let mut b = listed();
        let mut s = Session::new(b.now);
        let extra = format!("{}Content-Length: 0\r\n", from("https://evil.example"));
        b.input(&mut s, &request(method, path, &extra));
        let answer = b.text(&mut s);
        assert!(answer.starts_with("HTTP/1.1 403 "), "{method} {path}: {answer}");
        assert!(!answer.contains("Access-Control-Allow-Origin"), "{answer}");
        assert!(b.actions.is_empty(), "{method} {path} went through");
    }
}

#[test]
fn test_request_a_preflight_with_a_body_is_refused_and_closed() {
    let mut b = listed();
    let mut s = Session::new(b.now);
    let mut bytes = request("OPTIONS", "/pub/c", &format!("{}Content-Length: 38\r\n", from(APP)));
    bytes.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n...");
    b.input(&mut s, &bytes);
    let answer = b.text(&mut s);
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(!answer.contains("ok\n"), "the body was read as a request: {answer}");
    assert!(is(&s, Transport::Closing));
}

#[test]
fn test_request_publish_from_a_listed_origin_is_readable() {
    let mut b = listed();
    let mut s = Session::new(b.now);
    b.input(
        &mut s,
        &request("POST", "/pub/c", &format!("{}Content-Length: 2\r\n", from(APP))),
    );
    b.input(&mut s, b"hi");
    assert!(matches!(b.submitted(), Request::Publish { .. }));
    b.answer(
        &mut s,
        Answer::Published(Ok(Receipt {
            id: 1,
            subscribers: 0,
            duplicate: false,
        })),
    );
    let answer = b.text(&mut s);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(
        answer.contains("Access-Control-Allow-Origin: https://app.example\r\n"),
        "{answer}"
    );
}

#[test]
fn test_request_a_refusal_is_readable_and_cors_does_not_outlive_its_request() {
    let mut b = listed();
    b.settings.auth = Auth::new(vec!["c".into()], b"");
    let mut s = Session::new(b.now);
    // A private channel without a secret: 403, which the page may read.
    b.input(&mut s, &request("GET", "/poll/c", &from(APP)));
    let answer = b.text(&mut s);
    assert!(
        answer.starts_with("HTTP/1.1 403 ") && answer.contains("Access-Control-Allow-Origin"),
        "{answer}"
    );
    // A kept-alive connection: the next request's answer has no CORS.
    let mut b = listed();
    let mut s = Session::new(b.now);
    b.input(&mut s, &request("OPTIONS", "/poll/c", &from(APP)));
    b.output(&mut s);
    b.input(&mut s, &request("GET", "/healthz", ""));
    let answer = b.text(&mut s);
    assert!(
        answer.starts_with("HTTP/1.1 200 ") && !answer.contains("Access-Control"),
        "{answer}"
    );
}
