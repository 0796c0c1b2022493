//! docs/protocols.md's `wsreactor.mux` transcript, run as written: each
//! `→` line sent as it stands, each `←` line the frame that must come
//! next. The document numbers a channel's messages from 1 for reading;
//! a server numbers them from its own start ("ids never go back"), so the
//! document's id k of a channel is the server's k-th id of it here, both
//! ways.

use super::*;
use crate::common::mux::MuxClient;
use crate::common::services::Proc;
use std::collections::HashMap;

/// The transcript: (sent, line) pairs, sent true for `→`.
fn transcript() -> Vec<(bool, String)> {
    let doc = include_str!("../../docs/protocols.md");
    let section = doc
        .split("\n### Many channels on one connection\n")
        .nth(1)
        .expect("the section");
    let block = section.split("```text\n").nth(1).expect("its transcript");
    block[..block.find("```").unwrap()]
        .lines()
        .map(|l| match (l.strip_prefix("→ "), l.strip_prefix("← ")) {
            (Some(sent), _) => (true, sent.to_owned()),
            (_, Some(got)) => (false, got.to_owned()),
            _ => panic!("a transcript line is → or ←: {l:?}"),
        })
        .collect()
}

/// Each channel's ids as the server gives them, by the document's number.
#[derive(Default)]
struct Ids(HashMap<String, Vec<u64>>);

impl Ids {
    /// Publish `data` to `channel`: the server's id, kept as the next number.
    fn publish(&mut self, addr: SocketAddr, channel: &str, data: &str) {
        let id = publish(&mut Client::connect(addr), channel, data)["id"]
            .as_u64()
            .unwrap();
        self.0.entry(channel.to_owned()).or_default().push(id);
    }

    /// The server's id of the document's `n` of `channel`.
    fn server(&self, channel: &str, n: u64) -> u64 {
        self.0[channel][n as usize - 1]
    }
}

#[test]
fn the_mux_transcript_is_what_the_server_says() {
    let server = Server::start(settings());
    let lines = transcript();
    let json = |s: &str| -> Value { serde_json::from_str(s).unwrap_or_else(|e| panic!("{s}: {e}")) };
    // What the channels hold before the transcript starts: up to what a
    // `since` names, and the messages shown right after a subscribe with
    // a `since` (the history's, sent on that subscribe).
    let mut history: HashMap<String, Vec<(u64, String)>> = HashMap::new();
    let (mut resumed, mut subscribed): (Option<String>, Option<String>) = (None, None);
    for (sent, line) in &lines {
        let v = json(line);
        if *sent {
            resumed = None;
            subscribed = v["subscribe"].as_str().map(str::to_owned);
            if let (Some(c), Some(since)) = (v["subscribe"].as_str(), v["since"].as_u64()) {
                resumed = Some(c.to_owned());
                history.entry(c.to_owned()).or_default().push((since, String::new()));
            }
        } else if let (Some(c), Some(last)) = (&subscribed, v["last_id"].as_u64()) {
            // A subscribe's reply names the channel's latest id: it held that many.
            history.entry(c.clone()).or_default().push((last, String::new()));
        } else if let (Some(c), Some(n), Some(data)) = (v["channel"].as_str(), v["id"].as_u64(), v["data"].as_str()) {
            if resumed.as_deref() == Some(c) {
                history.entry(c.to_owned()).or_default().push((n, data.to_owned()));
            }
        }
    }
    let mut ids = Ids::default();
    for (channel, held) in &history {
        let last = held.iter().map(|(n, _)| *n).max().unwrap_or(0);
        for n in 1..=last {
            let shown = held.iter().find(|(k, d)| *k == n && !d.is_empty());
            let data = shown.map_or(format!("{channel} {n}"), |(_, d)| d.clone());
            ids.publish(server.addr, channel, &data);
        }
    }
    let mut m = MuxClient::connect(server.addr, "");
    let mut subscribing = None;
    for (i, (sent, line)) in lines.iter().enumerate() {
        let mut v = json(line);
        if *sent {
            subscribing = v["subscribe"].as_str().map(str::to_owned);
            if let (Some(c), Some(since)) = (v["subscribe"].as_str(), v["since"].as_u64()) {
                v["since"] = serde_json::json!(ids.server(c, since));
            }
            m.c.send(TEXT, v.to_string().as_bytes());
            continue;
        }
        if let (Some(c), Some(last)) = (&subscribing, v["last_id"].as_u64().filter(|&l| l > 0)) {
            v["last_id"] = serde_json::json!(ids.server(c, last));
        }
        if let (Some(c), Some(n), Some(data)) = (v["channel"].as_str(), v["id"].as_u64(), v["data"].as_str()) {
            // A live message: every one of the channel before it, then it.
            let have = ids.0.get(c).map_or(0, Vec::len) as u64;
            for k in have + 1..=n {
                let text = if k == n { data.to_owned() } else { format!("{c} {k}") };
                ids.publish(server.addr, c, &text);
            }
            v["id"] = serde_json::json!(ids.server(c, n));
        }
        let got = m.next();
        assert_eq!(got, v, "transcript line {i}: {line}");
    }
}

/// The document's multi-channel curl session: its two commands run as
/// written (the address swapped, and the document's ids for the
/// server's), their output as shown.
#[test]
fn the_multi_channel_curl_session_prints_what_is_shown() {
    let doc = include_str!("../../docs/protocols.md");
    let block = doc
        .split("\n#### Several channels on an event stream or a poll\n")
        .nth(1)
        .and_then(|s| s.split("```text\n").nth(1))
        .expect("the curl session");
    let block = &block[..block.find("```").unwrap()];
    let parts: Vec<&str> = block.split("$ ").skip(1).collect();
    assert_eq!(parts.len(), 2, "a stream and a poll: {block}");
    let (sse_command, sse_shown) = parts[0].split_once('\n').unwrap();
    let (poll_command, poll_shown) = parts[1].split_once('\n').unwrap();
    let server = Server::start(settings());
    let mut ids = Ids::default();
    for n in 1..=41 {
        ids.publish(server.addr, "news", &format!("news {n}"));
    }
    for n in 1..=7 {
        ids.publish(server.addr, "sport", &format!("sport {n}"));
    }
    // The document's ids as the server's, in text: `news=42`, `"id":42`.
    let server_ids = |text: &str, ids: &Ids| {
        let mut text = text.replace("127.0.0.1:9001", &server.addr.to_string());
        for (channel, n) in [("news", 42), ("news", 41), ("sport", 8), ("sport", 7)] {
            let Some(&id) = ids.0[channel].get(n as usize - 1) else {
                continue;
            };
            text = text.replace(&format!("{channel}={n}"), &format!("{channel}={id}"));
            text = text.replace(
                &format!("{{\"id\":{n},\"channel\":\"{channel}\""),
                &format!("{{\"id\":{id},\"channel\":\"{channel}\""),
            );
        }
        text
    };
    let stream = std::process::Command::new("bash")
        .args(["-c", &format!("exec {}", server_ids(sse_command, &ids))])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The stream is live once it has sent its first line.
    let mut stream = Proc(stream);
    let mut out = std::io::BufReader::new(stream.0.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut out, &mut first).unwrap();
    ids.publish(server.addr, "news", "rain");
    let mut rest = String::new();
    for _ in 0..4 {
        std::io::BufRead::read_line(&mut out, &mut rest).unwrap();
    }
    drop(stream);
    assert_eq!(
        format!("{first}{rest}"),
        server_ids(sse_shown.trim_end_matches('\n'), &ids) + "\n\n"
    );
    ids.publish(server.addr, "sport", "goal");
    let poll = std::process::Command::new("bash")
        .args(["-c", &server_ids(poll_command, &ids)])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&poll.stdout).trim(),
        server_ids(poll_shown.trim(), &ids)
    );
}
