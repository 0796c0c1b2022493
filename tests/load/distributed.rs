//! A distributed run on one host: a Redis of the test's own, `wsreactor
//! serve`, agents and the coordinator as processes (`wsreactor load agent
//! --coordinator`, `wsreactor load --coordinator --agents N`). The merged
//! report must add up to what each agent printed of its own part, and its
//! percentiles must be those of the agents' histograms added together.

use crate::common::services::{cli, free_port, redis_server, Proc, TempDir};
use crate::Serve;
use base64::Engine as _;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use serde_json::Value;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_wsreactor");

/// An agent serving one part, its stdout piped.
fn agent(redis: &str, name: &str) -> Proc {
    let child = Command::new(BIN)
        .args(["load", "agent", "--coordinator", redis, "--name", name, "--runs", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Proc(child)
}

/// Wait (at most `within`) for `p` to exit; its status and stdout.
fn finish(p: &mut Proc, within: Duration) -> (i32, String) {
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = p.0.try_wait().unwrap() {
            break status;
        }
        assert!(t0.elapsed() < within, "the process did not end within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    if let Some(mut stdout) = p.0.stdout.take() {
        stdout.read_to_string(&mut out).unwrap();
    }
    (status.code().unwrap_or(-1), out)
}

/// The coordinator: `load` with `args`, its stdout and stderr captured.
fn coordinator(args: &[&str]) -> Proc {
    let child = Command::new(BIN)
        .arg("load")
        .args(args)
        .arg("--quiet")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Proc(child)
}

fn decode(b64: &str) -> Histogram<u64> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    Deserializer::new().deserialize(&mut bytes.as_slice()).unwrap()
}

#[test]
fn the_merged_report_adds_up_the_agents_and_their_histograms() {
    let dir = TempDir::new("distributed");
    let port = free_port();
    let _redis = redis_server(port, &dir.0, &[]);
    let redis = format!("redis://127.0.0.1:{port}");
    let server = Serve::start(&[]);
    let mut agents: Vec<Proc> = (0..3).map(|i| agent(&redis, &format!("agent-{i}"))).collect();
    let json = dir.0.join("report.json");
    let mut run = coordinator(&[
        "--coordinator",
        &redis,
        "--agents",
        "3",
        "--mode",
        "subscribe",
        "--url",
        &server.url("distributed"),
        "--connections",
        "61",
        "--rate",
        "200",
        "--duration",
        "2s",
        "--json",
        json.to_str().unwrap(),
    ]);
    let (status, table) = finish(&mut run, Duration::from_secs(60));
    eprintln!("{table}");
    assert_eq!(status, 0, "the coordinator's exit status");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    // What each agent printed of its own part.
    let mut own = Vec::new();
    for a in &mut agents {
        let (status, out) = finish(a, Duration::from_secs(10));
        assert_eq!(status, 0, "an agent's exit status");
        let line: Value = serde_json::from_str(out.lines().last().expect("an agent's line")).unwrap();
        own.push(line);
    }
    own.sort_by_key(|l| l["index"].as_u64());
    let parts = report["agents"].as_array().expect("the report's agents");
    assert_eq!(parts.len(), 3);
    let mut merged: Option<Histogram<u64>> = None;
    let mut sums = [0u64; 4];
    for (part, line) in parts.iter().zip(&own) {
        for key in [
            "index",
            "name",
            "attempted",
            "opened",
            "received",
            "errors",
            "latency_us",
        ] {
            assert_eq!(
                part[key], line[key],
                "agent {}'s {key}: the report and the agent",
                line["index"]
            );
        }
        let h = decode(part["latency_histogram"].as_str().unwrap());
        assert_eq!(h.len(), part["latency_us"]["count"].as_u64().unwrap());
        assert_eq!(h.value_at_quantile(0.99), part["latency_us"]["p99"].as_u64().unwrap());
        match merged.as_mut() {
            Some(m) => m.add(&h).unwrap(),
            None => merged = Some(h),
        }
        for (sum, key) in sums.iter_mut().zip(["attempted", "opened", "received", "errors"]) {
            *sum += part[key].as_u64().unwrap();
        }
        // One host: the clocks are one clock, to within the round trips.
        let offset = part["clock_offset_us"].as_i64().unwrap().unsigned_abs();
        assert!(offset <= part["clock_error_us"].as_u64().unwrap() + 1000, "{part}");
    }
    // 61 over 3: 21, 20, 20.
    let given: Vec<u64> = parts.iter().map(|p| p["connections"].as_u64().unwrap()).collect();
    assert_eq!(given, [21, 20, 20]);
    let c = &report["connections"];
    assert_eq!(c["target"], 61);
    assert_eq!(
        [c["attempted"].as_u64(), c["opened"].as_u64()],
        [Some(sums[0]), Some(sums[1])]
    );
    assert_eq!(sums[1], 61);
    assert_eq!(report["messages"]["received"].as_u64(), Some(sums[2]));
    // The run's errors are the agents' and the publisher's: none here.
    assert_eq!((report["errors"]["total"].as_u64(), sums[3]), (Some(0), 0));
    let d = &report["subscribe"]["deliveries"];
    assert_eq!(
        (d["missing"].as_u64(), d["duplicates"].as_u64()),
        (Some(0), Some(0)),
        "{d}"
    );
    let accepted = report["subscribe"]["published"]["accepted"].as_u64().unwrap();
    assert!(accepted >= 300, "{accepted} accepted");
    assert_eq!(sums[2], accepted * 61);
    // The run's percentiles are the merged histogram's, to the microsecond.
    let merged = merged.unwrap();
    let l = &report["latency_us"];
    assert_eq!(l["count"].as_u64(), Some(merged.len()));
    for (key, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99_9", 0.999)] {
        assert_eq!(l[key].as_u64(), Some(merged.value_at_quantile(q)), "{key}");
    }
    assert_eq!(
        (l["min"].as_u64(), l["max"].as_u64()),
        (Some(merged.min()), Some(merged.max()))
    );
    // Nothing of the run is left in Redis.
    assert_eq!(cli(port, &["KEYS", "wsreactor:load:*"]).trim(), "");
}

#[test]
fn missing_agents_fail_the_run_and_their_parts_are_withdrawn() {
    let dir = TempDir::new("distributed-missing");
    let port = free_port();
    let _redis = redis_server(port, &dir.0, &[]);
    let redis = format!("redis://127.0.0.1:{port}");
    let server = Serve::start(&[]);
    let mut run = coordinator(&[
        "--coordinator",
        &redis,
        "--agents",
        "2",
        "--agents-wait",
        "1s",
        "--url",
        &format!("ws://{}/", server.addr),
        "--connections",
        "4",
        "--duration",
        "1s",
    ]);
    let (status, _) = finish(&mut run, Duration::from_secs(20));
    assert_eq!(status, 1);
    // No part is left for an agent that comes later.
    assert_eq!(cli(port, &["LLEN", "wsreactor:load:jobs"]).trim(), "0");
}
