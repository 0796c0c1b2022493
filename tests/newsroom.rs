//! The newsroom example (`examples/newsroom.rs`): the standard push
//! server plus an HTTP route and a WebSocket route with typed data, all
//! on the public API, run as a program and spoken to over loopback.

mod common;

use common::example::Example;
use common::*;

fn text(c: &mut Client) -> String {
    let f = c.recv();
    assert_eq!(f.opcode, TEXT, "{f:?}");
    String::from_utf8(f.payload).unwrap()
}

#[test]
fn its_own_routes_run_beside_the_push_server() {
    let newsroom = Example::start("newsroom");
    let addr = newsroom.addr;

    // The push server is all there.
    let mut c = Client::connect(addr);
    assert_eq!(c.request("GET", "/healthz", &[], b"").status, 200);
    let (mut reader, _) = Client::upgrade_at(addr, "/ws/weather", "");
    let mut ids = Vec::new();
    for line in ["rain at noon", "sun <later> & wind"] {
        ids.push(publish(&mut c, "weather", line)["id"].as_u64().unwrap());
        assert_eq!(reader.recv().payload, line.as_bytes());
    }

    // The page lists the channel's last messages, escaped, with their ids.
    let page = c.request("GET", "/last/weather?n=1", &[], b"");
    assert_eq!(page.status, 200, "{page:?}");
    let html = String::from_utf8(page.body).unwrap();
    let item = format!("<li value=\"{}\">sun &lt;later&gt; &amp; wind</li>", ids[1]);
    assert!(html.contains(&item), "{html}");
    assert!(!html.contains("rain at noon"), "n=1 lists one: {html}");
    let page = c.request("GET", "/last/weather", &[], b"");
    assert!(String::from_utf8(page.body).unwrap().contains("rain at noon"));
    assert_eq!(c.request("GET", "/last/a%20b", &[], b"").status, 400);

    // Each reporter's lines are numbered in its own data, and published.
    let (mut ann, _) = Client::upgrade_at(addr, "/file/weather?name=ann", "");
    let (mut bo, _) = Client::upgrade_at(addr, "/file/weather?name=bo", "");
    ann.send(TEXT, b"fog");
    assert_eq!(text(&mut ann), "ann #1: fog");
    assert_eq!(text(&mut bo), "ann #1: fog");
    assert_eq!(reader.recv().payload, b"ann #1: fog");
    bo.send(TEXT, b"hail");
    assert_eq!(text(&mut bo), "bo #1: hail");
    ann.send(TEXT, b"clear");
    assert_eq!(text(&mut bo), "ann #2: clear");
    assert_eq!(text(&mut ann), "bo #1: hail");
    assert_eq!(text(&mut ann), "ann #2: clear");
}
