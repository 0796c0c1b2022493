//! What the load generator reads from the server it measures, which may be
//! anyone's: the answer to its opening handshake and the answers to its
//! publishes (a keep-alive stream of HTTP responses, parsed one after
//! another from the front of the buffer). Nothing may panic, and a parsed
//! response never claims more bytes than the buffer holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsreactor::load::publish::{published, read_response};
use wsreactor::protocol::handshake::ClientHandshake;

fuzz_target!(|data: &[u8]| {
    let handshake = ClientHandshake::new([7; 16]);
    if let Ok(Some(accepted)) = handshake.read_response(data, 8192) {
        assert!(accepted.head_len <= data.len());
    }
    let mut rest = data;
    while let Ok(Some(response)) = read_response(rest) {
        assert!(response.len() <= rest.len() && response.len() > 0);
        assert!(response.body.end <= response.len());
        let _ = published(&rest[response.body.clone()]);
        rest = &rest[response.len()..];
    }
});
