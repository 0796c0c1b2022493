//! docs/protocols.md's JavaScript client snippet, run as written in a page
//! of the server's origin (as a module, which its `import` needs): a
//! message published to `news` is logged as it says, channel, id, data.

use super::common::chromium::{Cdp, Chromium};
use super::common::{publish, settings, Client, Server};
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn the_client_snippet_logs_what_is_published() {
    let doc = include_str!("../../docs/protocols.md");
    let section = doc.split("\n### The JavaScript client\n").nth(1).expect("the section");
    let block = section.split("```js\n").nth(1).expect("its snippet");
    let snippet = &block[..block.find("```").unwrap()];
    let server = Server::start(settings());
    let chromium = Chromium::launch();
    let mut cdp = Cdp::open_page(&chromium.devtools_url);
    cdp.call("Page.navigate", json!({ "url": format!("http://{}/", server.addr) }));
    cdp.wait_for(
        "the page loaded",
        "document.readyState === 'complete'",
        Duration::from_secs(20),
    );
    cdp.eval("window.logged = []; console.log = (...a) => window.logged.push(a.join(' ')); true");
    let run = format!(
        "const s = document.createElement('script'); s.type = 'module'; s.textContent = {}; \
         document.head.appendChild(s); true",
        json!(snippet)
    );
    cdp.eval(&run);
    // Published until the client, once subscribed, has logged one.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (id, logged) = loop {
        let id = publish(&mut Client::connect(server.addr), "news", "hello")["id"]
            .as_u64()
            .unwrap();
        let logged = cdp.eval("window.logged.join('\\n')");
        if let Some(line) = logged.as_str().filter(|l| !l.is_empty()) {
            break (id, line.to_owned());
        }
        assert!(Instant::now() < deadline, "the snippet logged nothing");
        std::thread::sleep(Duration::from_millis(200));
    };
    let first = logged.lines().next().unwrap();
    let (channel, rest) = first.split_once(' ').unwrap();
    let (got_id, data) = rest.split_once(' ').unwrap();
    assert_eq!((channel, data), ("news", "hello"), "{logged}");
    assert!(got_id.parse::<u64>().is_ok_and(|n| n <= id), "{logged}");
}
