//! The chat example (`examples/chat.rs`), run as a program and spoken to
//! over loopback: the public API is enough to build an application.

mod common;

use common::example::Example;
use common::*;
use std::time::Duration;

fn start() -> Example {
    Example::start("chat")
}

fn line(c: &mut Client) -> String {
    let f = c.recv();
    assert_eq!(f.opcode, TEXT, "{f:?}");
    String::from_utf8(f.payload).unwrap()
}

#[test]
fn members_of_a_room_hear_each_other_and_no_one_else() {
    let chat = start();
    let (mut alice, _) = Client::upgrade_at(chat.addr, "/chat/lobby?name=alice", "");
    assert_eq!(line(&mut alice), "* alice joined");
    let (mut bob, _) = Client::upgrade_at(chat.addr, "/chat/lobby?name=bob", "");
    assert_eq!(line(&mut bob), "* bob joined");
    assert_eq!(line(&mut alice), "* bob joined");
    let (mut carol, _) = Client::upgrade_at(chat.addr, "/chat/kitchen?name=carol", "");
    assert_eq!(line(&mut carol), "* carol joined");

    bob.send(TEXT, b"hello, lobby");
    assert_eq!(line(&mut alice), "bob: hello, lobby");
    assert_eq!(line(&mut bob), "bob: hello, lobby");
    assert!(
        carol.recv_within(Duration::from_millis(300)).is_none(),
        "another room hears nothing"
    );

    drop(bob);
    assert_eq!(line(&mut alice), "* bob left");

    // A binary message is not chat: the handler closes with 1003.
    alice.send(BINARY, b"\x00\x01");
    alice.expect_close(1003);
}

#[test]
fn a_bad_room_name_is_refused_with_400() {
    let chat = start();
    let mut c = Client::connect(chat.addr);
    let request = upgrade_request().replacen("GET / ", "GET /chat/a%20b ", 1);
    c.write(request.as_bytes());
    assert_eq!(c.read_response().status, 400);
    let mut c = Client::connect(chat.addr);
    c.write(upgrade_request().as_bytes());
    assert_eq!(c.read_response().status, 404, "only /chat/ is served");
}
