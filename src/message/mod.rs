//! The CoAP message codec (RFC 7252 §3): zero-copy parsing, encoding into a
//! caller's buffer, and the registries of codes, options and content formats.
//!
//! The codec knows nothing about time, peers or state. [`Message::parse`]
//! validates a datagram once; after that every accessor is infallible and
//! returns slices that borrow the datagram. [`Encoder`] writes a message into
//! a `&mut [u8]`, and `MessageBuf` (feature `alloc`) is an owned builder on
//! top of the same encoder.
//!
//! ```
//! use coap_proto::message::{Code, Encoder, Message, MessageType, OptionNumber};
//!
//! let mut buf = [0u8; 64];
//! let mut enc = Encoder::new(&mut buf, MessageType::Con, Code::GET, 0x7d34, &[0x20, 0xfa])?;
//! enc.option(OptionNumber::URI_PATH, b"temp")?;
//! enc.option_uint(OptionNumber::ACCEPT, 50)?;
//! let len = enc.finish();
//!
//! let msg = Message::parse(&buf[..len])?;
//! assert_eq!(msg.code(), Code::GET);
//! assert_eq!(msg.option(OptionNumber::URI_PATH), Some(&b"temp"[..]));
//! assert_eq!(msg.to_string(), "CON GET mid=0x7d34 tok=20fa Uri-Path:temp Accept:50");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::std_instead_of_core,
    clippy::alloc_instead_of_core
)]

mod code;
mod display;
mod encode;
mod error;
pub mod link;
mod option;
#[cfg(feature = "alloc")]
mod owned;
mod parse;
pub mod uri;
mod value;

pub use code::{Code, MessageType};
pub use encode::{Encoder, encoded_option_len};
pub use error::{EncodeError, ParseError, ParseErrorKind, ValueError};
pub use link::{Filter, Link, LinkError, LinkFormat, LinkWriter};
pub use option::{OptionFormat, OptionInfo, OptionNumber};
#[cfg(feature = "alloc")]
pub use owned::MessageBuf;
pub use parse::{Header, Message, OptionProblem, OptionRef, Options, OptionsOf};
#[cfg(feature = "alloc")]
pub use uri::to_uri_string;
pub use uri::{
    ComposeError, Host, Scheme, Uri, UriError, UriErrorKind, UriOption, UriOptions, write_uri,
};
pub use value::{Block, ContentFormat, Observe, UintBytes, decode_uint, encode_uint};

/// The CoAP version this codec speaks (RFC 7252 §3: "Implementations of this
/// specification MUST set this field to 1").
pub const VERSION: u8 = 1;

/// The payload marker that separates options from the payload (RFC 7252 §3).
pub const PAYLOAD_MARKER: u8 = 0xFF;

/// The longest token RFC 7252 allows (TKL 0..=8, §3).
pub const MAX_TOKEN_LEN: usize = 8;

/// The largest option number a message can carry (the sum of the deltas is a
/// 16-bit value, RFC 7252 §3.1).
pub const MAX_OPTION_NUMBER: u16 = u16::MAX;

/// The longest option value the option framing can express: length nibble 14
/// plus a 16-bit extension plus 269 (RFC 7252 §3.1).
pub const MAX_OPTION_VALUE_LEN: usize = 65535 + 269;
