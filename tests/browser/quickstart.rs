//! The README's "Push in five minutes", run as written: its shell snippets
//! (with Python's `websockets` client in place of `websocat` when that is
//! not installed) and its browser snippets in headless Chromium, against a
//! server on a free port in place of 127.0.0.1:9001.

use crate::common::chromium::{Cdp, Chromium};
use crate::common::{settings, Server};
use serde_json::json;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use wsreactor::stats::Transport;

const WAIT: Duration = Duration::from_secs(20);

/// The section's code blocks, in order: (language, text).
fn snippets() -> Vec<(String, String)> {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("## Push in five minutes")
        .expect("the README has its push quick start");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if let Some(lang) = line.strip_prefix("```") {
            let body: Vec<&str> = lines.by_ref().take_while(|l| !l.starts_with("```")).collect();
            blocks.push((lang.to_owned(), body.join("\n")));
        }
    }
    blocks
}

fn open(server: &Server, t: Transport) -> i64 {
    server
        .handle()
        .stats()
        .iter()
        .map(|s| s.open_by[t as usize].load(Relaxed))
        .sum()
}

fn wait_open(server: &Server, t: Transport, n: i64) {
    let deadline = Instant::now() + WAIT;
    while open(server, t) < n {
        assert!(Instant::now() < deadline, "{n} {t:?} subscribers never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn shell(line: &str) -> Command {
    let mut c = Command::new("bash");
    c.arg("-c").arg(line);
    c
}

fn output_of(mut child: Child) -> String {
    let _ = child.kill();
    let _ = child.wait();
    let mut text = String::new();
    let _ = child.stdout.take().unwrap().read_to_string(&mut text);
    text
}

#[test]
fn the_push_quick_start_works_as_written() {
    let server = Server::start(settings());
    let here = |text: &str| text.replace("127.0.0.1:9001", &server.addr.to_string());
    let blocks = snippets();
    let langs: Vec<&str> = blocks.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        langs,
        ["sh", "sh", "sh", "js", "js"],
        "the section's blocks changed: update this test"
    );

    // Subscribers, each as written.
    let mut subscribers = Vec::new();
    let python = crate::common::venv::venv_python();
    let have_websocat = Command::new("websocat").arg("--version").output().is_ok();
    for line in blocks[0].1.lines() {
        let line = here(line);
        let mut cmd = match line.split_whitespace().next() {
            Some("websocat") if !have_websocat => continue,
            Some("python3") => {
                let mut c = Command::new(&python);
                c.args(line.split_whitespace().skip(1));
                c
            }
            _ => shell(&line),
        };
        // An interactive client ends at EOF on its input: keep it open.
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        subscribers.push((line, child));
    }
    let websockets = subscribers.iter().filter(|(l, _)| l.contains("ws://")).count() as i64;
    wait_open(&server, Transport::WebSocket, websockets);
    wait_open(&server, Transport::Sse, 1);

    // The publishes, each as written: two accepted messages, both text.
    for (i, line) in blocks[1].1.lines().enumerate() {
        let out = shell(&here(line)).output().unwrap();
        let answer: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{line}: {e}: {}", String::from_utf8_lossy(&out.stdout)));
        assert_eq!(answer["id"], i as u64 + 1, "{line}");
        assert_eq!(answer["subscribers"], websockets as u64 + 1, "{line}");
    }
    let poll = shell(&here(&blocks[2].1)).output().unwrap();
    let poll: serde_json::Value = serde_json::from_slice(&poll.stdout).unwrap();
    assert_eq!(poll["messages"][0]["data"], "hello, subscribers", "{poll}");
    assert_eq!(
        poll["messages"][1]["data"], "also text: curl -d sends a form type",
        "{poll}"
    );
    std::thread::sleep(Duration::from_millis(300));
    for (line, child) in subscribers {
        let seen = output_of(child);
        for message in ["hello, subscribers", "also text: curl -d sends a form type"] {
            assert!(seen.contains(message), "{line} did not print {message:?}:\n{seen}");
        }
    }

    // The browser snippets, on the demo page's origin.
    let chromium = Chromium::launch();
    let mut cdp = Cdp::open_page(&chromium.devtools_url);
    cdp.call("Page.navigate", json!({ "url": format!("http://{}/", server.addr) }));
    cdp.wait_for("the page loaded", "document.readyState === 'complete'", WAIT);
    cdp.eval("window.logged = []; console.log = (...a) => window.logged.push(a.join(' ')); true");
    // Every WebSocket the snippet makes, kept, so that the test can close one.
    cdp.eval(
        "window.sockets = []; const Native = WebSocket; \
         window.WebSocket = function (...a) { const s = new Native(...a); window.sockets.push(s); return s; }; true",
    );
    cdp.eval(&format!("{}\ntrue", here(&blocks[3].1)));
    cdp.eval(&format!("{}\ntrue", here(&blocks[4].1)));
    wait_open(&server, Transport::Sse, 1);
    wait_open(&server, Transport::WebSocket, 1);
    let mut publisher = crate::common::Client::connect(server.addr);
    let id = crate::common::publish(&mut publisher, "news", "to the browser")["id"]
        .as_u64()
        .unwrap();
    cdp.wait_for(
        "both snippets printed the message",
        &format!("window.logged.includes('sse {id} to the browser') && window.logged.includes('ws to the browser')"),
        WAIT,
    );
    // The WebSocket snippet reconnects after a close and resumes after the
    // last id it saw: what was published while it was away arrives, once.
    cdp.eval("window.sockets[0].close(); true");
    crate::common::publish(&mut publisher, "news", "while away");
    cdp.wait_for(
        "the reconnect",
        "window.sockets.length === 2 && window.sockets[1].readyState === 1",
        WAIT,
    );
    cdp.wait_for("the missed message", "window.logged.includes('ws while away')", WAIT);
    let url = cdp.eval("window.sockets[1].url");
    assert!(url.as_str().unwrap().ends_with(&format!("?since={id}")), "{url}");
    let times = cdp.eval("window.logged.filter((l) => l === 'ws while away').length");
    assert_eq!(times, json!(1));
}
