//! A published message and the wire forms it takes, each encoded once.
//!
//! Every subscriber of one encoding gets the same bytes: the reactor queues
//! an `Arc<Message>` and writes [`Message::encoded`] straight from it, so a
//! publish to 10,000 subscribers encodes each form at most once and copies
//! the payload into no subscriber's buffer.

use super::Gap;
use crate::protocol::{FrameHeader, MessageKind, OpCode};
use base64::Engine;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// A join or a leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A member came.
    Join,
    /// A member went.
    Leave,
}

impl Change {
    /// `join` or `leave`: the event's name on every transport.
    pub fn name(self) -> &'static str {
        match self {
            Change::Join => "join",
            Change::Leave => "leave",
        }
    }
}

/// The wire forms of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// A WebSocket frame carrying the raw payload (text or binary as published).
    Frame,
    /// A WebSocket text frame carrying the `wsreactor.json` envelope.
    JsonFrame,
    /// A Server-Sent Events event: `id:` and `data:` lines.
    SseEvent,
    /// One element of a long-poll answer's `messages` array.
    PollItem,
    /// The `wsreactor.json` envelope as JSON text, unframed: an element of
    /// a poll on several channels, an event stream's `data` on several.
    Envelope,
}

/// The forms other than [`Encoding::Frame`], made only for the
/// subscribers that ask for them.
const OTHER_FORMS: usize = 4;

/// The rarer forms, each made by the first subscriber that asks for it.
type OtherForms = [OnceLock<Arc<[u8]>>; OTHER_FORMS];

/// One message of one channel.
///
/// Kept small, since a channel's history holds up to `history_size` of
/// them: the payload lives inside its frame form (one allocation, the
/// header in front), and the rarer forms behind one box made when the
/// first of them is asked for.
#[derive(Debug)]
pub struct Message {
    /// Its id: per channel, one more per accepted publish, from
    /// `epoch_start + 1`.
    pub id: u64,
    /// The channel it was published to.
    pub channel: Arc<str>,
    /// When it was published (for the history's age limit).
    pub published: Instant,
    /// The id after which its channel's current numbering (its epoch)
    /// began: 0 for a channel numbered from 1, as on the local hub. A
    /// channel the Redis broker lost and made again starts a new numbering
    /// above every id it gave before; a subscriber whose cursor is of
    /// another numbering is told of the reset, never silently moved on.
    pub epoch_start: u64,
    /// The payload as a WebSocket frame: its header, then the payload as
    /// published ([`Message::payload`]).
    framed: Arc<[u8]>,
    /// Where the payload starts in `framed`: at most
    /// [`FrameHeader::MAX_LEN`].
    header_len: u8,
    /// Text (valid UTF-8) or binary.
    pub kind: MessageKind,
    /// A presence event rather than a published message: id 0, no place
    /// in the numbering, and its payload is the event's JSON
    /// ([`Message::presence`]).
    pub event: Option<Change>,
    /// Shared as they are by every output queue that sends them.
    others: OnceLock<Box<OtherForms>>,
}

impl Message {
    /// A new message; its frame form is made now, the others when first
    /// asked for.
    pub fn new(id: u64, channel: Arc<str>, kind: MessageKind, payload: &[u8], published: Instant) -> Self {
        let mut header = [0; FrameHeader::MAX_LEN];
        let header_len = FrameHeader::new(kind.opcode(), payload.len() as u64).encode(&mut header);
        // One allocation of the exact size: a chain of slices knows its length.
        let framed: Arc<[u8]> = header[..header_len].iter().chain(payload).copied().collect();
        Message {
            id,
            channel,
            published,
            epoch_start: 0,
            framed,
            header_len: header_len as u8,
            kind,
            event: None,
            others: OnceLock::new(),
        }
    }

    /// The payload as published.
    pub fn payload(&self) -> &[u8] {
        &self.framed[usize::from(self.header_len)..]
    }

    /// A join or leave of `member` (its JSON, [`super::Member::json`]) in
    /// `channel`, for the subscribers that asked for them: `{"channel":
    /// "c","join":{member}}` in every form (under `event: join` or `leave`
    /// in an event stream, with no `id:`, so that an EventSource's cursor
    /// stays the last message's). Never numbered, never in the history,
    /// and skipped by every [`super::Cursor`].
    pub fn presence(channel: Arc<str>, change: Change, member: &str, published: Instant) -> Self {
        let mut json = String::from("{\"channel\":");
        push_json_string(&channel, &mut json);
        json.push_str(",\"");
        json.push_str(change.name());
        json.push_str("\":");
        json.push_str(member);
        json.push('}');
        let mut message = Message::new(0, channel, MessageKind::Text, json.as_bytes(), published);
        message.event = Some(change);
        message
    }

    /// The bytes of one wire form, made by the first caller and shared after.
    pub fn encoded(&self, encoding: Encoding) -> &[u8] {
        self.form(encoding)
    }

    /// One wire form as shared bytes, for an output queue: a reference
    /// count, never a copy of the payload.
    pub fn shared(&self, encoding: Encoding) -> Arc<[u8]> {
        self.form(encoding).clone()
    }

    fn form(&self, encoding: Encoding) -> &Arc<[u8]> {
        // Which of the rarer forms, and how it is written. A presence
        // event's payload is already its JSON: framed as text (its frame
        // form) in either framing, and as it is in a poll or an envelope.
        let (slot, write): (usize, fn(&Message, &mut Vec<u8>)) = match (encoding, self.event) {
            (Encoding::Frame, _) | (Encoding::JsonFrame, Some(_)) => return &self.framed,
            (Encoding::JsonFrame, None) => (0, Message::write_json_frame),
            (Encoding::SseEvent, None) => (1, Message::write_sse),
            (Encoding::SseEvent, Some(_)) => (1, Message::write_event_sse),
            (Encoding::PollItem, None) => (2, Message::write_poll_item),
            (Encoding::PollItem, Some(_)) => (2, Message::write_payload),
            (Encoding::Envelope, None) => (3, Message::write_envelope),
            (Encoding::Envelope, Some(_)) => (3, Message::write_payload),
        };
        self.others.get_or_init(Default::default)[slot].get_or_init(|| {
            let mut out = Vec::new();
            write(self, &mut out);
            Arc::from(out)
        })
    }

    /// `data` as a JSON value plus its `encoding` member for binary data.
    fn json_data(&self, out: &mut String) {
        match self.kind {
            MessageKind::Text => {
                // Published text was checked to be UTF-8.
                let text = std::str::from_utf8(self.payload()).unwrap_or_default();
                push_json_string(text, out);
            }
            MessageKind::Binary => {
                out.push('"');
                base64::engine::general_purpose::STANDARD.encode_string(self.payload(), out);
                out.push_str("\",\"encoding\":\"base64\"");
            }
        }
    }

    fn json_envelope(&self) -> String {
        let mut s = format!("{{\"id\":{},\"channel\":", self.id);
        push_json_string(&self.channel, &mut s);
        s.push_str(",\"data\":");
        self.json_data(&mut s);
        s.push('}');
        s
    }

    fn write_poll_item(&self, out: &mut Vec<u8>) {
        let mut s = format!("{{\"id\":{},\"data\":", self.id);
        self.json_data(&mut s);
        s.push('}');
        out.extend_from_slice(s.as_bytes());
    }

    fn write_json_frame(&self, out: &mut Vec<u8>) {
        write_frame(OpCode::Text, self.json_envelope().as_bytes(), out);
    }

    fn write_envelope(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.json_envelope().as_bytes());
    }

    /// A presence event's JSON as it is (made by [`Message::presence`],
    /// one line).
    fn write_payload(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.payload());
    }

    /// A presence event in an event stream: under `event: join` or
    /// `leave`, with no `id:`.
    fn write_event_sse(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(self.event.map_or("", Change::name).as_bytes());
        out.extend_from_slice(b"\ndata: ");
        out.extend_from_slice(self.payload());
        out.extend_from_slice(b"\n\n");
    }

    /// An SSE event (WHATWG HTML §9.2.6): one `data:` line per payload line,
    /// since a line break inside a field would end it. Binary payloads go as
    /// base64 under `event: base64`, as the stream is UTF-8 text.
    fn write_sse(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("id: {}\n", self.id).as_bytes());
        match self.kind {
            MessageKind::Text => {
                let text = std::str::from_utf8(self.payload()).unwrap_or_default();
                // Split where an EventSource would: a CR left inside a data
                // line would end it there, and a publisher could append
                // forged `id:` and `event:` fields after it.
                for line in event_stream_lines(text) {
                    out.extend_from_slice(b"data: ");
                    out.extend_from_slice(line.as_bytes());
                    out.push(b'\n');
                }
            }
            MessageKind::Binary => {
                out.extend_from_slice(b"event: base64\ndata: ");
                let b64 = base64::engine::general_purpose::STANDARD.encode(self.payload());
                out.extend_from_slice(b64.as_bytes());
                out.push(b'\n');
            }
        }
        out.push(b'\n');
    }
}

/// The lines of `text` as an event stream's reader takes them (WHATWG HTML,
/// "interpreting an event stream": CRLF, LF and a lone CR each end a line).
/// Always at least one line, so an empty payload still dispatches an event.
fn event_stream_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let s = rest?;
        let Some(i) = s.find(['\r', '\n']) else {
            rest = None;
            return Some(s);
        };
        let end = if s[i..].starts_with("\r\n") { 2 } else { 1 };
        rest = Some(&s[i + end..]);
        Some(&s[..i])
    })
}

/// An unmasked, uncompressed server frame (RFC 6455 §5.2): a server may
/// leave any message uncompressed even when permessage-deflate was agreed
/// (RFC 7692 §6.1), so one frame suits every subscriber.
fn write_frame(opcode: OpCode, payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(FrameHeader::MAX_LEN + payload.len());
    FrameHeader::new(opcode, payload.len() as u64).write_to(out);
    out.extend_from_slice(payload);
}

/// Append `s` as a JSON string literal (RFC 8259 §7).
pub fn push_json_string(s: &str, out: &mut String) {
    // serde_json escapes exactly what RFC 8259 requires.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// The `wsreactor.json` (and `wsreactor.mux`) message telling a subscriber
/// of a [`Gap`] in `channel`: `{"channel":"c","gap":{"from":A,"to":B}}`,
/// with `"reset":true` inside when its cursor was not vouched for.
pub fn gap_json(channel: &str, gap: Gap) -> String {
    let mut s = String::from("{\"channel\":");
    push_json_string(channel, &mut s);
    s.push_str(",\"gap\":");
    s.push_str(&gap_object(gap));
    s.push('}');
    s
}

/// The gap as a JSON object, `{"from":A,"to":B}` (and `"reset":true`): the
/// same on every transport.
pub fn gap_object(gap: Gap) -> String {
    let reset = if gap.reset { ",\"reset\":true" } else { "" };
    format!("{{\"from\":{},\"to\":{}{reset}}}", gap.from, gap.to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::FrameHeader;

    fn msg(kind: MessageKind, payload: &[u8]) -> Message {
        Message::new(7, "news".into(), kind, payload, Instant::now())
    }

    #[test]
    fn frame_carries_the_raw_payload() {
        let m = msg(MessageKind::Binary, &[1, 2, 3]);
        let bytes = m.encoded(Encoding::Frame);
        let (header, len) = FrameHeader::decode(bytes).unwrap().unwrap();
        assert_eq!(header.opcode, OpCode::Binary);
        assert!(header.fin);
        assert_eq!(&bytes[len..], &[1, 2, 3]);
        // Encoded once: the same bytes on every call.
        assert!(std::ptr::eq(bytes, m.encoded(Encoding::Frame)));
    }

    /// A history of 1,000 messages is paid for per channel, whatever its
    /// subscribers: a message is two allocations (itself behind its `Arc`
    /// in glibc's 112-byte chunk, and its frame form with the payload in
    /// it), where five lazily made forms and a separate payload took
    /// three and about 300 bytes for a 20-byte payload (issue 31).
    #[test]
    fn a_message_fits_its_budget() {
        assert!(
            std::mem::size_of::<Message>() <= 88,
            "{}",
            std::mem::size_of::<Message>()
        );
        let m = msg(MessageKind::Text, b"0123456789");
        assert_eq!(m.payload(), b"0123456789");
        assert_eq!(m.encoded(Encoding::Frame).len(), 2 + 10);
        // Asking for the frame makes none of the others.
        assert!(m.others.get().is_none());
        assert_eq!(m.encoded(Encoding::PollItem), br#"{"id":7,"data":"0123456789"}"#);
        assert!(m.others.get().is_some());
    }

    #[test]
    fn json_envelope_escapes_and_base64s() {
        let m = msg(MessageKind::Text, b"say \"hi\"\n");
        let frame = m.encoded(Encoding::JsonFrame);
        let (_, len) = FrameHeader::decode(frame).unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&frame[len..]).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["channel"], "news");
        assert_eq!(v["data"], "say \"hi\"\n");
        assert!(v.get("encoding").is_none());
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(m.encoded(Encoding::Envelope)).unwrap(),
            v
        );

        let m = msg(MessageKind::Binary, &[0, 255]);
        let item: serde_json::Value = serde_json::from_slice(m.encoded(Encoding::PollItem)).unwrap();
        assert_eq!(item, serde_json::json!({"id": 7, "data": "AP8=", "encoding": "base64"}));
    }

    #[test]
    fn sse_event_has_a_data_line_per_payload_line() {
        let m = msg(MessageKind::Text, b"one\r\ntwo\nthree");
        assert_eq!(
            m.encoded(Encoding::SseEvent),
            b"id: 7\ndata: one\ndata: two\ndata: three\n\n"
        );
        let m = msg(MessageKind::Text, b"");
        assert_eq!(m.encoded(Encoding::SseEvent), b"id: 7\ndata: \n\n");
        // A lone CR ends a line for an EventSource: no field can be forged.
        let m = msg(MessageKind::Text, b"hello\rid: 999\revent: evil\r\rdata: x\n");
        assert_eq!(
            m.encoded(Encoding::SseEvent),
            &b"id: 7\ndata: hello\ndata: id: 999\ndata: event: evil\ndata: \ndata: data: x\ndata: \n\n"[..]
        );
        let m = msg(MessageKind::Binary, &[0, 255]);
        assert_eq!(m.encoded(Encoding::SseEvent), b"id: 7\nevent: base64\ndata: AP8=\n\n");
    }

    #[test]
    fn a_presence_event_is_json_in_every_form() {
        let m = Message::presence("room".into(), Change::Leave, "{\"client\":\"7\"}", Instant::now());
        let want = serde_json::json!({"channel": "room", "leave": {"client": "7"}});
        let frame = m.encoded(Encoding::JsonFrame);
        let (_, len) = FrameHeader::decode(frame).unwrap().unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&frame[len..]).unwrap(),
            want
        );
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(m.encoded(Encoding::PollItem)).unwrap(),
            want
        );
        let sse = std::str::from_utf8(m.encoded(Encoding::SseEvent)).unwrap();
        let data = sse
            .strip_prefix("event: leave\ndata: ")
            .unwrap()
            .strip_suffix("\n\n")
            .unwrap();
        assert_eq!(serde_json::from_str::<serde_json::Value>(data).unwrap(), want);
        assert_eq!((m.id, m.event), (0, Some(Change::Leave)));
    }

    #[test]
    fn gap_message_is_json() {
        let v: serde_json::Value = serde_json::from_str(&gap_json("n\"s", Gap::trimmed(3, 9))).unwrap();
        assert_eq!(v, serde_json::json!({"channel": "n\"s", "gap": {"from": 3, "to": 9}}));
        let reset = Gap {
            from: 1,
            to: 0,
            reset: true,
        };
        let v: serde_json::Value = serde_json::from_str(&gap_json("c", reset)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"channel": "c", "gap": {"from": 1, "to": 0, "reset": true}})
        );
    }
}
