//! The chat example (`examples/chat.rs`), run as a program and spoken to
//! over loopback: the public API is enough to build an application.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The example's binary: cargo builds it beside this test for `cargo test`
/// (all targets); `cargo test --test chat` alone does not, so it is built
/// here then, with this test's profile.
fn example() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile_dir.join("examples").join("chat");
    if !path.exists() {
        let mut build = Command::new(env!("CARGO"));
        // The profile's directory is its name, but for `dev`'s (`debug`).
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev",
            Some(name) => name,
        };
        build.args(["build", "--example", "chat", "--profile", profile]);
        assert!(build.status().unwrap().success(), "cargo build --example chat");
    }
    path
}

/// The running example, stopped (by its pid) when dropped.
struct Chat {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Chat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Chat {
    let mut child = Command::new(example())
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .expect("the chat example is built with the tests");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // "chat on ws://127.0.0.1:PORT/chat/{room}?name=you"
    let addr = line.split("ws://").nth(1).and_then(|s| s.split('/').next()).unwrap();
    Chat {
        addr: addr.parse().unwrap(),
        child,
    }
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
