//! `wsreactor load` in CI: its exit status says whether the run passed
//! (errors, nothing measured, thresholds, a stop by Ctrl-C), `--header`
//! reaches the server, `--publish-token` drives a server that needs one,
//! and the JSON holds the run second by second.

use crate::common::{settings, Server};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use wsreactor::reactor::settings::Settings;

pub(crate) fn tmp(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// `wsreactor load ARGS --quiet --json FILE`: its output and the JSON.
pub(crate) fn load(file: &str, args: &[&str]) -> (Output, serde_json::Value) {
    let json = tmp(file);
    let _ = std::fs::remove_file(&json);
    let out = Command::new(env!("CARGO_BIN_EXE_wsreactor"))
        .arg("load")
        .args(args)
        .args(["--quiet", "--json"])
        .arg(&json)
        .env("RUST_LOG", "off")
        .env_remove("WSREACTOR_PUBLISH_TOKEN")
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&json)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    (out, serde_json::from_str(&text).unwrap())
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failures(v: &serde_json::Value) -> String {
    v["verdict"]["failures"].to_string()
}

#[test]
fn a_healthy_run_exits_0_and_meets_its_thresholds() {
    let server = Server::start(settings());
    let url = format!("ws://{}/", server.addr);
    let (out, v) = load(
        "verdict-ok.json",
        &[
            "--url",
            &url,
            "--connections",
            "4",
            "--duration",
            "1",
            "--rate",
            "200",
            "--max-p99",
            "5s",
            "--min-rate",
            "50",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(v["verdict"]["passed"], true);
    assert!(stdout(&out).contains("verdict      passed"));
    assert!(v["tool"].as_str().unwrap().starts_with("wsreactor "));
    assert!(v["started_at"].as_str().unwrap().ends_with('Z'));
    assert!(v["command_line"].as_array().unwrap().iter().any(|a| a == "--max-p99"));
}

#[test]
fn no_connection_is_exit_3() {
    // A port nothing listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}/");
    let (out, v) = load(
        "verdict-refused.json",
        &["--url", &url, "--connections", "3", "--duration", "200ms"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(failures(&v).contains("no connection opened"), "{}", failures(&v));
    assert!(
        stdout(&out).contains("verdict      FAILED (exit 3)"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn every_handshake_refused_is_exit_3_unless_allowed_by_max_errors() {
    let server = Server::start(settings());
    // Not a WebSocket path: every upgrade gets 404.
    let url = format!("ws://{}/nope", server.addr);
    let (out, v) = load(
        "verdict-404.json",
        &["--url", &url, "--connections", "3", "--duration", "200ms"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert_eq!(v["errors"]["handshake_status"]["404"], 3);
    assert!(
        failures(&v).contains("3 errors, more than the 0 allowed"),
        "{}",
        failures(&v)
    );
    // Errors tolerated, but nothing opened is still a failure.
    let (out, _) = load(
        "verdict-404-allowed.json",
        &[
            "--url",
            &url,
            "--connections",
            "3",
            "--duration",
            "200ms",
            "--max-errors",
            "3",
        ],
    );
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn a_breached_threshold_is_exit_4_and_named() {
    let server = Server::start(settings());
    let url = format!("ws://{}/", server.addr);
    let (out, v) = load(
        "verdict-thresholds.json",
        &[
            "--url",
            &url,
            "--connections",
            "2",
            "--duration",
            "500ms",
            "--rate",
            "100",
            "--max-p99",
            "1us",
            "--max-p99.9",
            "1us",
            "--min-rate",
            "1000000",
        ],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
    let f = failures(&v);
    for name in ["--max-p99 ", "--max-p99.9", "--min-rate"] {
        assert!(f.contains(name), "{name} not named: {f}");
    }
    assert_eq!(v["verdict"]["exit_code"], 4);
}

#[test]
fn ctrl_c_still_reports_and_exits_130() {
    let server = Server::start(settings());
    let url = format!("ws://{}/", server.addr);
    let child = Command::new(env!("CARGO_BIN_EXE_wsreactor"))
        .args([
            "load",
            "--url",
            &url,
            "--connections",
            "2",
            "--duration",
            "30s",
            "--rate",
            "100",
            "--quiet",
        ])
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stdout(&out));
    assert!(stdout(&out).contains("stopped by a signal"), "{}", stdout(&out));
}

#[test]
fn headers_reach_the_handshake() {
    let server = Server::start(Settings {
        allowed_origins: Some(vec!["https://app.example".into()]),
        ..settings()
    });
    let url = format!("ws://{}/", server.addr);
    let args = |origin: &'static str| {
        vec![
            "--url".to_string(),
            url.clone(),
            "--connections".into(),
            "2".into(),
            "--duration".into(),
            "300ms".into(),
            "-H".into(),
            format!("Origin: {origin}"),
        ]
    };
    let run = |file: &str, a: Vec<String>| load(file, &a.iter().map(String::as_str).collect::<Vec<_>>());
    let (out, v) = run("header-refused.json", args("https://evil.example"));
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(v["errors"]["handshake_status"]["403"], 2, "{}", v["errors"]);
    let (out, _) = run("header-allowed.json", args("https://app.example"));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // A header that would inject another is a usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_wsreactor"))
        .args(["load", "--url", &url, "--header", "X-A: b\r\nX-B: c"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn subscribe_mode_fails_when_no_publish_is_accepted_and_passes_with_the_token() {
    let mut s = settings();
    s.pubsub.publish_token = Some("load-test-token".into());
    let server = Server::start(s);
    let url = format!("ws://{}/ws/guarded", server.addr);
    let base = [
        "--url",
        &url,
        "--mode",
        "subscribe",
        "--connections",
        "3",
        "--duration",
        "500ms",
        "--rate",
        "50",
    ];
    let (out, v) = load("subscribe-no-token.json", &base);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert_eq!(v["subscribe"]["published"]["accepted"], 0);
    assert!(failures(&v).contains("no publish was accepted"), "{}", failures(&v));
    assert!(stdout(&out).contains("no publish was accepted"), "{}", stdout(&out));
    let mut with = base.to_vec();
    with.extend(["--publish-token", "load-test-token"]);
    let (out, v) = load("subscribe-token.json", &with);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let accepted = v["subscribe"]["published"]["accepted"].as_u64().unwrap();
    assert!(accepted > 0);
    assert_eq!(v["subscribe"]["deliveries"]["received"], accepted * 3);
}

#[test]
fn the_json_holds_the_run_second_by_second_and_both_charts_are_written() {
    let server = Server::start(settings());
    let url = format!("ws://{}/", server.addr);
    let svg = tmp("series-latency.svg");
    let over_time = tmp("series-latency-over-time.svg");
    let _ = std::fs::remove_file(&svg);
    let _ = std::fs::remove_file(&over_time);
    let (out, v) = load(
        "series.json",
        &[
            "--url",
            &url,
            "--connections",
            "4",
            "--duration",
            "2.5",
            "--rate",
            "400",
            "--plot",
            svg.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let series = v["series"].as_array().unwrap();
    assert!(series.len() >= 3, "{series:?}");
    let mut t = 0.0;
    let mut received = 0.0;
    for s in series {
        let t_s = s["t_s"].as_f64().unwrap();
        assert!(t_s > t, "{series:?}");
        received += s["per_second"].as_f64().unwrap() * (t_s - t);
        t = t_s;
        for key in ["phase", "open", "p50_us", "p99_us", "errors"] {
            assert!(s.get(key).is_some(), "{key} missing in {s}");
        }
    }
    // The seconds add up to what was received, give or take rounding.
    let total = v["messages"]["received"].as_f64().unwrap();
    assert!((received - total).abs() <= total * 0.05 + 2.0, "{received} vs {total}");
    assert!(series
        .iter()
        .any(|s| s["phase"] == "run" && s["open"] == 4 && s["p99_us"].is_u64()));
    for chart in [&svg, &over_time] {
        let text = std::fs::read_to_string(chart).unwrap();
        assert!(
            text.starts_with("<svg") && text.contains("<polyline"),
            "{}",
            chart.display()
        );
    }
    assert!(std::fs::read_to_string(&over_time)
        .unwrap()
        .contains("open connections"));
}

#[test]
fn an_output_that_cannot_be_written_is_exit_1() {
    let server = Server::start(settings());
    let url = format!("ws://{}/", server.addr);
    let out = Command::new(env!("CARGO_BIN_EXE_wsreactor"))
        .args([
            "load",
            "--url",
            &url,
            "--connections",
            "1",
            "--duration",
            "200ms",
            "--quiet",
        ])
        .args(["--json", "/nonexistent-dir/out.json"])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent-dir/out.json"));
}
