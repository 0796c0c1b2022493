//! Close codes and close frame payloads (RFC 6455 §5.5.1, §7.4), and the
//! one mapping of a [`ProtocolError`] to its close code.

use super::error::ProtocolError;
use super::utf8::Utf8Validator;

/// A close status code (§7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no status code was present. Never sent on the wire.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: closed without a close frame. Never sent on the wire.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: message data inconsistent with its type (bad UTF-8).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: policy violation.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: an unexpected condition in the server.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1013: try again later (overload).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);

    /// May this code appear in a close frame? §7.4.1 reserves 1004-1006 and
    /// 1015 and everything below 1000; §7.4.2 leaves 1016-2999 to future
    /// RFCs and 3000-4999 to libraries and applications. 1012-1014 are
    /// registered with IANA (§11.7) and are valid.
    pub const fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

/// The one mapping of a protocol violation to the code its close frame
/// carries (§7.4.1): bad UTF-8 or compressed data is 1007, anything over a
/// configured limit 1009, every other violation 1002.
impl From<&ProtocolError> for CloseCode {
    fn from(e: &ProtocolError) -> CloseCode {
        match e {
            ProtocolError::InvalidUtf8 | ProtocolError::BadCompression => CloseCode::INVALID_PAYLOAD,
            ProtocolError::FrameTooLarge | ProtocolError::MessageTooLarge => CloseCode::MESSAGE_TOO_BIG,
            ProtocolError::ReservedOpcode(_)
            | ProtocolError::ReservedBits
            | ProtocolError::UnmaskedFrame
            | ProtocolError::MaskedFrame
            | ProtocolError::ControlFrameTooLong
            | ProtocolError::FragmentedControlFrame
            | ProtocolError::UnexpectedContinuation
            | ProtocolError::ExpectedContinuation
            | ProtocolError::InvalidLength
            | ProtocolError::InvalidCloseCode(_)
            | ProtocolError::InvalidClosePayload => CloseCode::PROTOCOL_ERROR,
        }
    }
}

/// The parsed payload of a received close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// The status code, `None` for an empty close payload.
    pub code: Option<CloseCode>,
    /// The UTF-8 reason, possibly empty.
    pub reason: &'a str,
}

impl<'a> CloseFrame<'a> {
    /// Parse and validate a close payload (§5.5.1): empty, or a 2-byte code
    /// followed by a UTF-8 reason.
    pub fn parse(payload: &'a [u8]) -> Result<CloseFrame<'a>, ProtocolError> {
        match payload {
            [] => Ok(CloseFrame { code: None, reason: "" }),
            [_] => Err(ProtocolError::InvalidClosePayload),
            [hi, lo, reason @ ..] => {
                let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
                if !code.is_sendable() {
                    return Err(ProtocolError::InvalidCloseCode(code.0));
                }
                Utf8Validator::validate(reason).map_err(|_| ProtocolError::InvalidUtf8)?;
                // Validated just above.
                let reason = std::str::from_utf8(reason).unwrap_or_default();
                Ok(CloseFrame {
                    code: Some(code),
                    reason,
                })
            }
        }
    }
}

/// Build a close payload: the code and a reason cut to fit the 125-byte
/// control frame limit at a character boundary.
pub fn close_payload(code: CloseCode, reason: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&code.0.to_be_bytes());
    let mut end = reason.len().min(super::frame::MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&reason.as_bytes()[..end]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sendable_codes_match_autobahn_cases_7_7_and_7_9() {
        for ok in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999,
        ] {
            assert!(CloseCode(ok).is_sendable(), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            assert!(!CloseCode(bad).is_sendable(), "{bad}");
        }
    }

    #[test]
    fn parses_close_payloads() {
        assert_eq!(CloseFrame::parse(&[]).unwrap().code, None);
        assert_eq!(CloseFrame::parse(&[3]), Err(ProtocolError::InvalidClosePayload));
        let f = CloseFrame::parse(b"\x03\xe8bye").unwrap();
        assert_eq!((f.code, f.reason), (Some(CloseCode::NORMAL), "bye"));
        assert_eq!(
            CloseFrame::parse(b"\x03\xed"),
            Err(ProtocolError::InvalidCloseCode(1005))
        );
        assert_eq!(CloseFrame::parse(b"\x03\xe8\xff"), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn close_payload_fits_a_control_frame() {
        let mut out = Vec::new();
        close_payload(CloseCode::GOING_AWAY, &"é".repeat(100), &mut out);
        assert!(out.len() <= 125);
        assert!(CloseFrame::parse(&out).is_ok());
    }
}
