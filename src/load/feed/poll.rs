//! A wsreactor poll's body: `{"messages":[{"id":N,"data":"..."}, ...],
//! "last_id":N,"gap":false}`, binary data as base64 with
//! `"encoding":"base64"` beside it (the README's "Long polling").

use base64::Engine as _;
use serde::Deserialize;

/// What one poll brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The payloads, in the order given.
    pub messages: Vec<Vec<u8>>,
    /// The cursor for the next poll.
    pub last_id: u64,
}

#[derive(Deserialize)]
struct Body {
    messages: Vec<Item>,
    last_id: u64,
}

#[derive(Deserialize)]
struct Item {
    data: String,
    #[serde(default)]
    encoding: Option<String>,
}

/// Read a 200's body; the error names what was wrong.
pub fn read_batch(body: &[u8]) -> Result<Batch, &'static str> {
    let body: Body = serde_json::from_slice(body).map_err(|_| "bad_poll_body")?;
    let messages = body
        .messages
        .into_iter()
        .map(|item| match item.encoding.as_deref() {
            None => Ok(item.data.into_bytes()),
            Some("base64") => base64::engine::general_purpose::STANDARD
                .decode(item.data)
                .map_err(|_| "bad_base64"),
            Some(_) => Err("bad_poll_body"),
        })
        .collect::<Result<_, _>>()?;
    Ok(Batch {
        messages,
        last_id: body.last_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_read_text_and_base64_items() {
        let body = br#"{"messages":[{"id":3,"data":"a\nb"},{"id":4,"data":"AAE=","encoding":"base64"}],"last_id":4,"gap":false}"#;
        let batch = read_batch(body).unwrap();
        assert_eq!(batch.messages, vec![b"a\nb".to_vec(), vec![0, 1]]);
        assert_eq!(batch.last_id, 4);
        assert_eq!(
            read_batch(br#"{"messages":[],"last_id":9,"gap":true}"#)
                .unwrap()
                .last_id,
            9
        );
        assert_eq!(read_batch(b"{}"), Err("bad_poll_body"));
        assert_eq!(
            read_batch(br#"{"messages":[{"data":"!","encoding":"base64"}],"last_id":1}"#),
            Err("bad_base64")
        );
        assert_eq!(
            read_batch(br#"{"messages":[{"data":"x","encoding":"rot13"}],"last_id":1}"#),
            Err("bad_poll_body")
        );
    }
}
