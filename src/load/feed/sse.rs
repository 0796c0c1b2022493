//! An event stream read as an `EventSource` reads it (WHATWG HTML §9.2.6,
//! "interpreting an event stream"), without I/O: bytes in, events out. A
//! line ends at CRLF, LF or a lone CR; `data:` lines add to the event's
//! data, `id:` sets the last event id, `event:` the type, a line starting
//! with `:` is a comment, and an empty line dispatches the event. A line
//! longer than the limit given is an error, not a buffer that grows.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `event:`, or `message` when none was given.
    pub kind: String,
    /// The `data:` lines joined by LF.
    pub data: String,
    /// The last event id when it was dispatched (what `Last-Event-ID`
    /// sends on a reconnect).
    pub last_id: Option<String>,
}

/// A line was longer than the reader's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong;

/// The reader's state between pieces of the stream.
#[derive(Debug, Clone, Default)]
pub struct EventReader {
    line: Vec<u8>,
    /// The last piece ended with CR: an LF starting the next one is that
    /// CR's (CRLF is one line end).
    after_cr: bool,
    data: String,
    kind: String,
    has_data: bool,
    last_id: Option<String>,
    max_line: usize,
}

impl EventReader {
    /// A reader refusing lines over `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        EventReader {
            max_line,
            ..EventReader::default()
        }
    }

    /// The last event id seen, dispatched or not.
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Read `bytes`, handing each complete event to `dispatch`.
    pub fn read(&mut self, bytes: &[u8], dispatch: &mut dyn FnMut(Event)) -> Result<(), LineTooLong> {
        let mut rest = bytes;
        if self.after_cr {
            self.after_cr = false;
            rest = rest.strip_prefix(b"\n").unwrap_or(rest);
        }
        while let Some(i) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            if self.line.len() + i > self.max_line {
                return Err(LineTooLong);
            }
            self.line.extend_from_slice(&rest[..i]);
            let line = std::mem::take(&mut self.line);
            self.take_line(&line, dispatch);
            self.line = line;
            self.line.clear();
            if rest[i] == b'\r' {
                match rest.get(i + 1) {
                    Some(b'\n') => rest = &rest[i + 2..],
                    Some(_) => rest = &rest[i + 1..],
                    None => {
                        self.after_cr = true;
                        rest = &[];
                    }
                }
            } else {
                rest = &rest[i + 1..];
            }
        }
        if self.line.len() + rest.len() > self.max_line {
            return Err(LineTooLong);
        }
        self.line.extend_from_slice(rest);
        Ok(())
    }

    fn take_line(&mut self, line: &[u8], dispatch: &mut dyn FnMut(Event)) {
        if line.is_empty() {
            let kind = std::mem::take(&mut self.kind);
            if std::mem::take(&mut self.has_data) {
                dispatch(Event {
                    kind: if kind.is_empty() { "message".into() } else { kind },
                    data: std::mem::take(&mut self.data),
                    last_id: self.last_id.clone(),
                });
            }
            return;
        }
        if line[0] == b':' {
            return;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (&*line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.kind = value.to_owned(),
            // An id with NUL is ignored (the spec's rule).
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(reader: &mut EventReader, pieces: &[&[u8]]) -> Vec<Event> {
        let mut out = Vec::new();
        for p in pieces {
            reader.read(p, &mut |e| out.push(e)).unwrap();
        }
        out
    }

    fn event(kind: &str, data: &str, id: Option<&str>) -> Event {
        Event {
            kind: kind.into(),
            data: data.into(),
            last_id: id.map(Into::into),
        }
    }

    #[test]
    fn events_dispatch_on_blank_lines_with_every_line_ending() {
        let stream =
            b": hello\n\nid: 1\ndata: a\ndata: b\n\nid: 2\r\nevent: base64\r\ndata:QUI=\r\n\r\nid: 3\rdata: c\r\r";
        for step in [1, 2, 5, stream.len()] {
            let mut r = EventReader::new(1024);
            let pieces: Vec<&[u8]> = stream.chunks(step).collect();
            assert_eq!(
                events(&mut r, &pieces),
                [
                    event("message", "a\nb", Some("1")),
                    event("base64", "QUI=", Some("2")),
                    event("message", "c", Some("3")),
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn an_id_without_data_moves_the_cursor_but_dispatches_nothing() {
        let mut r = EventReader::new(64);
        assert!(events(&mut r, &[b"id: 9\n\n"]).is_empty());
        assert_eq!(r.last_id(), Some("9"));
        // A half line is kept for the next piece.
        assert!(events(&mut r, &[b"data: x"]).is_empty());
        assert_eq!(events(&mut r, &[b"y\n\n"]), [event("message", "xy", Some("9"))]);
    }

    #[test]
    fn a_line_over_the_limit_is_an_error() {
        let mut r = EventReader::new(8);
        assert_eq!(r.read(b"data: 123", &mut |_| {}), Err(LineTooLong));
        let mut r = EventReader::new(8);
        assert_eq!(r.read(b"data:", &mut |_| {}), Ok(()));
        assert_eq!(r.read(b"12345\n", &mut |_| {}), Err(LineTooLong));
    }
}
