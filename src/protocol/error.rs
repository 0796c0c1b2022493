//! Protocol errors: one variant per way a peer can break RFC 6455. Each is
//! mapped to a close code in exactly one place, beside the codes
//! (`impl From<&ProtocolError> for CloseCode` in `close.rs`), so this file
//! knows nothing of close codes.

use std::fmt;

/// A peer violated the protocol; the connection must be failed (§7.1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// An opcode reserved for future use (§5.2).
    ReservedOpcode(u8),
    /// RSV bits set with no extension negotiated that defines them (§5.2).
    ReservedBits,
    /// A client frame without a mask (§5.1).
    UnmaskedFrame,
    /// A server frame with a mask (§5.1).
    MaskedFrame,
    /// A control frame with more than 125 bytes of payload (§5.5).
    ControlFrameTooLong,
    /// A control frame without FIN (§5.5).
    FragmentedControlFrame,
    /// A continuation frame with no message in progress (§5.4).
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is in progress (§5.4).
    ExpectedContinuation,
    /// A 64-bit payload length with its top bit set (§5.2).
    InvalidLength,
    /// A frame larger than the configured limit.
    FrameTooLarge,
    /// A message larger than the configured limit (§10.4).
    MessageTooLarge,
    /// A text message or close reason that is not UTF-8 (§8.1).
    InvalidUtf8,
    /// A close code that may not be sent (§7.4).
    InvalidCloseCode(u16),
    /// A close payload of exactly one byte (§5.5.1).
    InvalidClosePayload,
    /// A compressed message that does not inflate (RFC 7692 §8).
    BadCompression,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::ReservedBits => f.write_str("RSV bits set without an extension"),
            ProtocolError::UnmaskedFrame => f.write_str("client frame not masked"),
            ProtocolError::MaskedFrame => f.write_str("server frame masked"),
            ProtocolError::ControlFrameTooLong => f.write_str("control frame over 125 bytes"),
            ProtocolError::FragmentedControlFrame => f.write_str("fragmented control frame"),
            ProtocolError::UnexpectedContinuation => f.write_str("continuation with no message in progress"),
            ProtocolError::ExpectedContinuation => f.write_str("new message while a fragmented one is in progress"),
            ProtocolError::InvalidLength => f.write_str("payload length with the top bit set"),
            ProtocolError::FrameTooLarge => f.write_str("frame too large"),
            ProtocolError::MessageTooLarge => f.write_str("message too large"),
            ProtocolError::InvalidUtf8 => f.write_str("invalid UTF-8"),
            ProtocolError::InvalidCloseCode(c) => write!(f, "invalid close code {c}"),
            ProtocolError::InvalidClosePayload => f.write_str("one-byte close payload"),
            ProtocolError::BadCompression => f.write_str("compressed data does not inflate"),
        }
    }
}

impl std::error::Error for ProtocolError {}

impl ProtocolError {
    /// A short stable name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ProtocolError::ReservedOpcode(_) => "reserved_opcode",
            ProtocolError::ReservedBits => "reserved_bits",
            ProtocolError::UnmaskedFrame => "unmasked_frame",
            ProtocolError::MaskedFrame => "masked_frame",
            ProtocolError::ControlFrameTooLong => "control_too_long",
            ProtocolError::FragmentedControlFrame => "fragmented_control",
            ProtocolError::UnexpectedContinuation => "unexpected_continuation",
            ProtocolError::ExpectedContinuation => "expected_continuation",
            ProtocolError::InvalidLength => "invalid_length",
            ProtocolError::FrameTooLarge => "frame_too_large",
            ProtocolError::MessageTooLarge => "message_too_large",
            ProtocolError::InvalidUtf8 => "invalid_utf8",
            ProtocolError::InvalidCloseCode(_) => "invalid_close_code",
            ProtocolError::InvalidClosePayload => "invalid_close_payload",
            ProtocolError::BadCompression => "bad_compression",
        }
    }
}
