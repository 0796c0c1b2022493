//! Several channels on one event stream or one poll (`/sse?channel=a&channel=b`,
//! `/poll?channel=a&channel=b`) over real sockets: each channel's messages
//! once and in order, resumed from the combined cursor.

use super::*;
use serde_json::{json, Value};

/// The next SSE event with an id: (id, data as JSON).
fn event(c: &mut Client) -> (String, Value) {
    loop {
        let block = String::from_utf8(c.read_until(b"\n\n")).unwrap();
        let mut id = None;
        let mut data = None;
        for line in block.trim_end_matches('\n').split('\n') {
            if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str(v).unwrap());
            }
        }
        if let (Some(id), Some(data)) = (id, data) {
            return (id, data);
        }
    }
}

fn publish_each(addr: SocketAddr, channels: &[&str], range: std::ops::Range<u64>) {
    let mut p = Client::connect(addr);
    for i in range {
        for c in channels {
            publish(&mut p, c, &format!("{c}{i}"));
        }
    }
}

#[test]
fn an_event_stream_of_two_channels_gets_each_once_in_order_and_resumes_both_from_its_last_id() {
    let server = Server::start(settings());
    let mut sse = open_sse(server.addr, "/sse?channel=a&channel=b%3Ax", "");
    publish_each(server.addr, &["a", "b:x"], 1..11);
    let mut last = std::collections::HashMap::new();
    let mut last_id = String::new();
    for _ in 0..20 {
        let (id, data) = event(&mut sse);
        let channel = data["channel"].as_str().unwrap().to_owned();
        let n = data["id"].as_u64().unwrap();
        assert_eq!(
            n,
            last.get(&channel).copied().unwrap_or(0) + 1,
            "{channel}: once, in order"
        );
        assert_eq!(data["data"], json!(format!("{channel}{n}")));
        last.insert(channel, n);
        // The id is every channel's place.
        let want = format!(
            "a={},b:x={}",
            last.get("a").copied().unwrap_or(0),
            last.get("b:x").copied().unwrap_or(0)
        );
        assert_eq!(id, want);
        last_id = id;
    }
    drop(sse);
    // Away: 5 more on each; back with Last-Event-ID, exactly those.
    publish_each(server.addr, &["a", "b:x"], 11..16);
    let mut sse = open_sse(
        server.addr,
        "/sse?channel=a&channel=b%3Ax",
        &format!("Last-Event-ID: {last_id}\r\n"),
    );
    let mut got: Vec<(String, u64)> = (0..10)
        .map(|_| {
            let (_, data) = event(&mut sse);
            (
                data["channel"].as_str().unwrap().to_owned(),
                data["id"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    let want: Vec<(String, u64)> = ["a", "b:x"]
        .iter()
        .flat_map(|c| (11..16).map(move |i| (c.to_string(), i)))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_poll_of_two_channels_answers_from_its_cursor_and_parks_on_both() {
    let server = Server::start(settings());
    publish_each(server.addr, &["a", "b"], 1..4);
    let mut c = Client::connect(server.addr);
    let r = c.request("GET", "/poll?channel=a&channel=b&since=a=1,b=0", &[], b"");
    assert_eq!(r.status, 200, "{r:?}");
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    let ids: Vec<(String, u64)> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["channel"].as_str().unwrap().to_owned(), m["id"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        ids,
        [("a", 2), ("a", 3), ("b", 1), ("b", 2), ("b", 3)].map(|(c, i)| (c.to_owned(), i))
    );
    assert_eq!(body["cursor"], "a=3,b=3");
    assert_eq!(body["gaps"], json!([]));
    // Parked on both: a publish to b answers it.
    let waiting = std::thread::spawn({
        let addr = server.addr;
        move || Client::connect(addr).request("GET", "/poll?channel=a&channel=b&since=a=3,b=3", &[], b"")
    });
    wait_gauge(&server, Transport::Poll, 1);
    publish(&mut Client::connect(server.addr), "b", "b4");
    let r = waiting.join().unwrap();
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body,
        json!({"messages": [{"id": 4, "channel": "b", "data": "b4"}], "cursor": "a=3,b=4", "gaps": []})
    );
    // Nothing new: 204 with the cursor.
    let r = c.request("GET", "/poll?channel=a&channel=b&since=a=3,b=4&wait=0", &[], b"");
    assert_eq!((r.status, r.header("x-cursor")), (204, Some("a=3,b=4")), "{r:?}");
    // A cursor of another request, or a number, is refused.
    for bad in ["since=7", "since=c=1", "channel=a&since=a=1"] {
        let r = Client::connect(server.addr).request("GET", &format!("/poll?channel=a&channel=b&{bad}"), &[], b"");
        assert_eq!(r.status, 400, "{bad}: {r:?}");
    }
    let r = Client::connect(server.addr).request("GET", "/sse/a?channel=b", &[], b"");
    assert_ne!(r.status, 200, "a channel in the path takes none in the query: {r:?}");
}
