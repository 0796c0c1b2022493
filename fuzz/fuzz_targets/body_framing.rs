//! The one function that frames every request's body
//! (`RequestHead::check`, RFC 9112 §6.3), fed header lines the input makes.
//! Whatever it decides must agree with the headers: a length only when
//! every `Content-Length` item is that very number in digits, never a
//! length past a `Transfer-Encoding`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsreactor::protocol::http::{BodyFraming, HttpError, RequestHead, MAX_HEADERS};

fuzz_target!(|data: &[u8]| {
    // The input is the header block; the request line is fixed.
    let mut raw = b"POST /pub/c HTTP/1.1\r\n".to_vec();
    raw.extend_from_slice(data);
    raw.extend_from_slice(b"\r\n\r\n");
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let Ok(head) = RequestHead::parse(&raw, &mut headers) else {
        return;
    };
    let items: Vec<&[u8]> = head
        .values("content-length")
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .collect();
    let has_te = head.values("transfer-encoding").next().is_some();
    match head.check() {
        Ok(framing) => {
            assert!(!has_te, "a body framed past Transfer-Encoding");
            match framing {
                BodyFraming::None => assert!(items.is_empty()),
                BodyFraming::Length(n) => {
                    assert!(!items.is_empty());
                    for item in &items {
                        assert!(item.iter().all(u8::is_ascii_digit) && !item.is_empty(), "{item:?}");
                        let v: u128 = std::str::from_utf8(item).unwrap().parse().unwrap();
                        assert_eq!(v, u128::from(n));
                    }
                }
            }
        }
        Err(HttpError::TransferEncoding) => assert!(has_te),
        Err(HttpError::ContentLength) | Err(HttpError::BodyTooLarge) => assert!(!items.is_empty()),
        Err(HttpError::Host) => {}
        Err(e) => panic!("check gave {e:?}"),
    }
});
