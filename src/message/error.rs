//! Codec errors. All are `Copy`, allocation-free and implement
//! `core::error::Error`.

use core::fmt;

use super::Header;

/// Why a datagram is not a well-formed CoAP message (RFC 7252 §3, §4.1).
///
/// ```
/// use coap_proto::{Message, ParseErrorKind};
/// let err = Message::parse(&[0x49, 0x01, 0x00, 0x01]).unwrap_err();
/// assert_eq!(err.kind, ParseErrorKind::InvalidTokenLength);
/// assert_eq!(err.kind.as_str(), "invalid_token_length");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// Fewer than the 4 bytes of the fixed header.
    TooShort,
    /// A version other than 1. RFC 7252 §3 says to silently ignore these.
    UnsupportedVersion,
    /// A token length of 9 to 15 (reserved, §3).
    InvalidTokenLength,
    /// An Empty message (code 0.00) with a token, options or payload (§4.1).
    EmptyMessageNotEmpty,
    /// The datagram ends inside the token.
    TokenTruncated,
    /// An option delta nibble of 15 outside the payload marker (§3.1).
    ReservedOptionDelta,
    /// An option length nibble of 15 (§3.1).
    ReservedOptionLength,
    /// An extended delta or length byte lies past the end of the datagram.
    OptionHeaderTruncated,
    /// The option number (the running sum of deltas) exceeds 65535.
    OptionNumberOverflow,
    /// An option value runs past the end of the datagram.
    OptionValueTruncated,
    /// A payload marker followed by a zero-length payload (§3).
    EmptyPayload,
}

impl ParseErrorKind {
    /// A stable `snake_case` name, as used in `vectors/` and `coap decode`.
    ///
    /// ```
    /// # use coap_proto::ParseErrorKind;
    /// assert_eq!(ParseErrorKind::EmptyPayload.as_str(), "empty_payload");
    /// ```
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TooShort => "too_short",
            Self::UnsupportedVersion => "unsupported_version",
            Self::InvalidTokenLength => "invalid_token_length",
            Self::EmptyMessageNotEmpty => "empty_message_not_empty",
            Self::TokenTruncated => "token_truncated",
            Self::ReservedOptionDelta => "reserved_option_delta",
            Self::ReservedOptionLength => "reserved_option_length",
            Self::OptionHeaderTruncated => "option_header_truncated",
            Self::OptionNumberOverflow => "option_number_overflow",
            Self::OptionValueTruncated => "option_value_truncated",
            Self::EmptyPayload => "empty_payload",
        }
    }

    /// Every kind, for exhaustive tests and tooling.
    pub const ALL: &'static [ParseErrorKind] = &[
        Self::TooShort,
        Self::UnsupportedVersion,
        Self::InvalidTokenLength,
        Self::EmptyMessageNotEmpty,
        Self::TokenTruncated,
        Self::ReservedOptionDelta,
        Self::ReservedOptionLength,
        Self::OptionHeaderTruncated,
        Self::OptionNumberOverflow,
        Self::OptionValueTruncated,
        Self::EmptyPayload,
    ];

    /// The inverse of [`as_str`](Self::as_str).
    ///
    /// ```
    /// # use coap_proto::ParseErrorKind;
    /// assert_eq!(ParseErrorKind::from_name("too_short"), Some(ParseErrorKind::TooShort));
    /// ```
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for ParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message format error: what is wrong, where, and the header if it could
/// be read.
///
/// `offset` is the index of the first byte of the faulty element: 0 for the
/// header, 4 for the token, the option's first byte for option errors, and
/// the payload marker for [`ParseErrorKind::EmptyPayload`].
///
/// When the 4-byte header was present, [`header`](Self::header) gives its
/// type, code and message ID, so that a receiver can answer a malformed
/// Confirmable message with a Reset (RFC 7252 §4.2).
///
/// ```
/// use coap_proto::{Message, MessageType, ParseErrorKind};
/// // CON GET, MID 0x1234, then an option byte with delta nibble 15.
/// let err = Message::parse(&[0x40, 0x01, 0x12, 0x34, 0xf0]).unwrap_err();
/// assert_eq!(err.kind, ParseErrorKind::ReservedOptionDelta);
/// assert_eq!(err.offset, 4);
/// let header = err.header.unwrap();
/// assert_eq!((header.ty, header.message_id), (MessageType::Con, 0x1234));
/// assert_eq!(err.to_string(), "reserved_option_delta at offset 4");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ParseError {
    /// What is wrong.
    pub kind: ParseErrorKind,
    /// Where: the index of the first byte of the faulty element.
    pub offset: usize,
    /// The fixed header, when the datagram had at least 4 bytes.
    pub header: Option<Header>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {}", self.kind, self.offset)
    }
}

impl core::error::Error for ParseError {}

/// Why an encode operation failed. The encoder's state and the output buffer
/// contents before the failed call are unchanged.
///
/// ```
/// use coap_proto::{Code, EncodeError, Encoder, MessageType};
/// let mut buf = [0u8; 3];
/// let err = Encoder::new(&mut buf, MessageType::Con, Code::GET, 1, &[]).unwrap_err();
/// assert_eq!(err, EncodeError::BufferTooSmall { required: 4 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EncodeError {
    /// The buffer is too small; `required` bytes would have been enough for
    /// what was asked (for a whole-message encode, the exact message size).
    BufferTooSmall {
        /// The buffer length that would have made the call succeed.
        required: usize,
    },
    /// Options must be added in ascending number order (equal numbers repeat
    /// an option).
    OutOfOrder {
        /// The number of the option written last.
        previous: u16,
        /// The number that was refused.
        next: u16,
    },
    /// A token longer than 8 bytes (RFC 7252 §3).
    TokenTooLong {
        /// The length that was given.
        len: usize,
    },
    /// An option value longer than the framing can express (65804 bytes).
    ValueTooLong {
        /// The length that was given.
        len: usize,
    },
    /// An Empty message (code 0.00) cannot carry a token, options or a
    /// payload (RFC 7252 §4.1).
    EmptyMessageNotEmpty,
    /// An option was added after the payload.
    OptionAfterPayload,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BufferTooSmall { required } => {
                write!(f, "buffer too small: {required} bytes required")
            }
            Self::OutOfOrder { previous, next } => {
                write!(f, "option {next} added after option {previous}")
            }
            Self::TokenTooLong { len } => write!(f, "token of {len} bytes (at most 8)"),
            Self::ValueTooLong { len } => {
                write!(f, "option value of {len} bytes (at most 65804)")
            }
            Self::EmptyMessageNotEmpty => {
                f.write_str("an Empty message carries no token, options or payload")
            }
            Self::OptionAfterPayload => f.write_str("option added after the payload"),
        }
    }
}

impl core::error::Error for EncodeError {}

/// Why an option value does not decode as the requested type.
///
/// ```
/// use coap_proto::{Block, ValueError};
/// assert_eq!(Block::from_value(&[0x07]), Err(ValueError::ReservedSzx));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ValueError {
    /// The value is longer than the type allows.
    TooLong,
    /// The value is shorter than the type allows.
    TooShort,
    /// A string option that is not valid UTF-8.
    InvalidUtf8,
    /// A Block option with SZX 7, which is reserved (RFC 7959 §2.2).
    ReservedSzx,
    /// A number outside the type's range.
    OutOfRange,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooLong => "option value too long",
            Self::TooShort => "option value too short",
            Self::InvalidUtf8 => "option value is not UTF-8",
            Self::ReservedSzx => "block option with reserved SZX 7",
            Self::OutOfRange => "option value out of range",
        })
    }
}

impl core::error::Error for ValueError {}
