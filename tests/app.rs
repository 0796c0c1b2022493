//! The handler API in-process: user data, a subprotocol choice, and a
//! `Sender` reaching a connection and a topic from another thread.

mod common;

use common::*;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;
use wsreactor::app::{Accept, App, Conn, ConnId, Handler, Message, Refusal, Reply, Upgrade};
use wsreactor::protocol::http::Status;
use wsreactor::protocol::CloseCode;
use wsreactor::push::PushServer;
use wsreactor::reactor::Builder;

/// Counts each connection's messages in its user data, answers with the
/// count, and tells the test each connection's id and close.
struct Counter {
    ids: Mutex<mpsc::Sender<ConnId>>,
    closes: Mutex<mpsc::Sender<Option<u16>>>,
}

impl Handler for Counter {
    type Data = u32;

    fn open(&self, upgrade: &Upgrade<'_, '_>) -> Result<Accept<u32>, Refusal> {
        if upgrade.query() == Some("no") {
            return Err(Refusal::new(Status::FORBIDDEN, "not you"));
        }
        let mut accept = Accept::new().data(0u32).subscribe("news");
        if upgrade.protocols().contains(&"count.v1") {
            accept = accept.protocol("count.v1");
        }
        Ok(accept)
    }

    fn opened(&self, conn: &mut Conn<'_, u32>) {
        self.ids.lock().unwrap().send(conn.id()).unwrap();
    }

    fn message(&self, conn: &mut Conn<'_, u32>, _: Message<'_>) -> Reply {
        *conn.data() += 1;
        let n = *conn.data();
        conn.send_text(&n.to_string());
        Reply::Done
    }

    fn close(&self, _: &mut Conn<'_, u32>, code: Option<CloseCode>) {
        self.closes.lock().unwrap().send(code.map(|c| c.0)).unwrap();
    }
}

#[test]
fn a_handler_keeps_data_per_connection_and_is_reached_from_any_thread() {
    let (ids_tx, ids) = mpsc::channel();
    let (closes_tx, closes) = mpsc::channel();
    let app = App::new().websocket(
        "/count",
        Counter {
            ids: Mutex::new(ids_tx),
            closes: Mutex::new(closes_tx),
        },
    );
    let handle = Builder::new(settings())
        .app(app)
        .threads(2)
        .start("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let sender = handle.sender();
    let server = Server::from_handle(handle);
    let (mut a, r) = Client::upgrade_at(server.addr, "/count", "Sec-WebSocket-Protocol: other, count.v1\r\n");
    assert_eq!(r.header("sec-websocket-protocol"), Some("count.v1"));
    let (mut b, r) = Client::upgrade_at(server.addr, "/count", "");
    assert_eq!(r.header("sec-websocket-protocol"), None);
    let a_id = ids.recv_timeout(Duration::from_secs(5)).unwrap();
    let _b_id = ids.recv_timeout(Duration::from_secs(5)).unwrap();

    // Each connection counts its own messages.
    for want in ["1", "2"] {
        a.send(TEXT, b"x");
        assert_eq!(a.recv().payload, want.as_bytes());
    }
    b.send(TEXT, b"x");
    assert_eq!(b.recv().payload, b"1");

    // From another thread: to one connection, and to a topic.
    std::thread::spawn(move || {
        sender.send(a_id, Message::Text("just you"));
        sender.publish("news", Message::Binary(b"everyone"));
    })
    .join()
    .unwrap();
    assert_eq!(a.recv().payload, b"just you");
    let news = a.recv();
    assert_eq!((news.opcode, news.payload.as_slice()), (BINARY, b"everyone".as_slice()));
    let news = b.recv();
    assert_eq!((news.opcode, news.payload.as_slice()), (BINARY, b"everyone".as_slice()));
    assert!(
        b.recv_within(Duration::from_millis(200)).is_none(),
        "the send was to a only"
    );

    // The handler hears the peer's close code once.
    a.close(1000);
    assert_eq!(closes.recv_timeout(Duration::from_secs(5)).unwrap(), Some(1000));
    drop(b);
    assert_eq!(closes.recv_timeout(Duration::from_secs(5)).unwrap(), None);
    assert!(closes.recv_timeout(Duration::from_millis(200)).is_err(), "once each");

    // A refusal is the handler's status.
    let mut c = Client::connect(server.addr);
    c.write(upgrade_request().replacen("GET / ", "GET /count?no ", 1).as_bytes());
    assert_eq!(c.read_response().status, 403);
}

/// Subscribes every upgrade to the topic named by the rest of its path, unchecked.
struct AnyTopic;

impl Handler for AnyTopic {
    type Data = ();

    fn open(&self, upgrade: &Upgrade<'_, '_>) -> Result<Accept, Refusal> {
        Ok(Accept::new().subscribe(upgrade.rest()))
    }

    fn message(&self, _: &mut Conn<'_, ()>, _: Message<'_>) -> Reply {
        Reply::Done
    }
}

#[test]
fn a_handler_gets_the_rest_of_its_prefix_and_cannot_subscribe_to_what_no_route_names() {
    let handle = Builder::new(settings())
        .app(App::new().websocket("/t/", AnyTopic).push_server())
        .start("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let server = Server::from_handle(handle);
    // `rest()` is the whole rest: `a.b` is a channel the HTTP routes name too.
    let (mut sub, _) = Client::upgrade_at(server.addr, "/t/a.b", "");
    let mut publisher = Client::connect(server.addr);
    assert_eq!(publish(&mut publisher, "a.b", "hi")["subscribers"], 1);
    assert_eq!(sub.recv().payload, b"hi");
    // A topic outside the channel names is refused before the 101.
    for target in ["/t/a/b", "/t/..", "/t/a%3Ab"] {
        let mut c = Client::connect(server.addr);
        let request = upgrade_request().replacen("GET / ", &format!("GET {target} "), 1);
        c.write(request.as_bytes());
        let r = c.read_response();
        assert_eq!(r.status, 400, "{target}: {r:?}");
    }
}
