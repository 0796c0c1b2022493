//! The opening handshake (RFC 6455 §4.2): finding and parsing a browser-like
//! request head, validating it and computing `Sec-WebSocket-Accept`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use wsreactor::protocol::handshake::{accept_key, validate_upgrade, write_switching_protocols};
use wsreactor::protocol::http::{HeadScanner, RequestHead, MAX_HEADERS};

const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
Host: 127.0.0.1:9001\r\n\
Connection: Upgrade\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n\
Upgrade: websocket\r\n\
Origin: http://127.0.0.1:9001\r\n\
Sec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";

fn bench_handshake(c: &mut Criterion) {
    c.bench_function("handshake/accept_key", |b| {
        b.iter(|| accept_key(black_box(b"dGhlIHNhbXBsZSBub25jZQ==")))
    });
    c.bench_function("handshake/parse_validate_respond", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            let mut scanner = HeadScanner::default();
            let len = scanner.scan(black_box(REQUEST), 8192).unwrap().unwrap();
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let head = RequestHead::parse(&REQUEST[..len], &mut headers).unwrap();
            let upgrade = validate_upgrade(&head).unwrap();
            out.clear();
            write_switching_protocols(&mut out, &upgrade, None, None);
            out.len()
        })
    });
}

criterion_group!(benches, bench_handshake);
criterion_main!(benches);
