//! The push server's module (`src/push/`) compiled as a crate outside
//! wsreactor compiles it: its `crate::` paths resolve to the crate's
//! public modules, re-exported below, so anything it used that is not
//! public (a `pub(crate)` item of the reactor, of the session, of `app`)
//! would fail this build. Then the server it makes answers over loopback,
//! so the copy is the push server and not a stub.

mod common;

pub use wsreactor::{app, auth, config, load, protocol, pubsub, reactor, stats, sys};

#[path = "../src/push/mod.rs"]
#[allow(unused)]
mod push;

use common::*;
use wsreactor::reactor::Builder;

#[test]
fn the_push_server_built_outside_the_crate_serves() {
    let handle = Builder::new(settings())
        .app(push::standard())
        .threads(1)
        .start("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let server = Server::from_handle(handle);
    let mut c = Client::connect(server.addr);
    assert_eq!(c.request("GET", "/healthz", &[], b"").status, 200);
    let (mut ws, _) = Client::upgrade_at(server.addr, "/ws/outside", "");
    let id = publish(&mut c, "outside", "hello")["id"].as_u64().unwrap();
    assert_eq!(ws.recv().payload, b"hello");
    let poll = c.request("GET", &format!("/poll/outside?since={}&wait=0", id - 1), &[], b"");
    assert_eq!(poll.status, 200, "{poll:?}");
    assert!(String::from_utf8(poll.body).unwrap().contains("hello"));
}
