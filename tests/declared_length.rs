//! A length a peer declares is a claim, not a size to allocate: a publish
//! that declares a 16 MiB body, or a frame header that announces 16 MiB, and
//! then sends one byte must not make the server hold 16 MiB.
//!
//! The server runs in this process, so its memory is this process's RSS;
//! one test in this binary, so no other test moves it.

mod common;

use common::*;
use std::time::Duration;

/// This process's resident set, in bytes (Linux).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

const DECLARED: usize = 16 << 20;
const EACH: usize = 8;

#[test]
fn declared_lengths_do_not_size_buffers() {
    let server = Server::start(settings());
    // Warm up: the pool's first buffers and the code paths.
    let mut warm = Client::upgrade(server.addr);
    warm.echo(TEXT, b"warm");
    let before = rss();
    let mut clients = Vec::new();
    for _ in 0..EACH {
        let mut c = Client::connect(server.addr);
        c.write(format!("POST /pub/big HTTP/1.1\r\nHost: x\r\nContent-Length: {DECLARED}\r\n\r\n").as_bytes());
        clients.push(c);
        let mut w = Client::upgrade(server.addr);
        // A masked binary frame header announcing 16 MiB, then one payload byte.
        let mut header = vec![0x82, 0x80 | 127];
        header.extend_from_slice(&(DECLARED as u64).to_be_bytes());
        header.extend_from_slice(&MASK);
        w.write(&header);
        clients.push(w);
    }
    // The one byte each comes after the server has read the declaration,
    // so it is read into whatever buffer the declaration made.
    std::thread::sleep(Duration::from_millis(200));
    for (i, c) in clients.iter_mut().enumerate() {
        c.write(if i % 2 == 0 { b"x" } else { &[b'y' ^ MASK[0]] });
    }
    // Let the server read them, then take the largest growth seen.
    let mut grown = 0;
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(100));
        grown = grown.max(rss().saturating_sub(before));
    }
    // 16 connections declaring 16 MiB each: 256 MiB if the declarations
    // sized the buffers. A read buffer each (16 KiB) is what they may cost.
    let per_conn = grown / (2 * EACH) as u64;
    assert!(
        per_conn < 64 << 10,
        "RSS grew {grown} bytes ({per_conn} per connection)"
    );
    drop(clients);
}
