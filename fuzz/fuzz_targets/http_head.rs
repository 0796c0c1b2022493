//! The request head as the server reads it: found incrementally by
//! `HeadScanner` (here over two reads split where the input says), parsed
//! by httparse, checked (`Host`, body framing), routed, and, for an
//! upgrade, validated and answered. Nothing may panic, and the end found
//! must not depend on how the bytes were split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsreactor::http::{query_u64, route};
use wsreactor::protocol::handshake::{validate_upgrade, write_switching_protocols};
use wsreactor::protocol::http::{HeadScanner, RequestHead, MAX_HEADERS};

const LIMIT: usize = 8192;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let cut = (cut as usize * data.len()) / 255;
    let mut split = HeadScanner::default();
    let end = match split.scan(&data[..cut], LIMIT) {
        Ok(None) => split.scan(data, LIMIT),
        found => found,
    };
    let once = HeadScanner::default().scan(data, LIMIT);
    assert_eq!(end, once, "the end of the head depends on the split at {cut}");
    let Ok(Some(len)) = end else {
        return;
    };
    assert!(len <= LIMIT && len <= data.len());
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let Ok(head) = RequestHead::parse(&data[..len], &mut headers) else {
        return;
    };
    let _ = head.check().map_err(|e| e.status());
    let _ = route(head.path());
    let _ = query_u64(head.query(), "since");
    let _ = head.wants_close();
    if let Ok(upgrade) = validate_upgrade(&head) {
        let mut out = Vec::new();
        write_switching_protocols(&mut out, &upgrade, None, None);
        assert!(out.starts_with(b"HTTP/1.1 101 "));
    }
});
