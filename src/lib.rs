#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "alloc")]
#[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
pub mod client;
#[cfg(feature = "alloc")]
#[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
pub mod endpoint;
pub mod message;
#[cfg(feature = "alloc")]
#[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
pub mod rd;
#[cfg(feature = "alloc")]
#[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
pub mod server;
pub mod time;

pub use time::Instant;

#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub mod udp;

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;

#[cfg(feature = "_internal")]
#[doc(hidden)]
pub mod _internal;

#[cfg(feature = "alloc")]
pub use message::MessageBuf;
pub use message::{
    Block, Code, ContentFormat, EncodeError, Encoder, Header, Message, MessageType, Observe,
    OptionFormat, OptionInfo, OptionNumber, OptionProblem, OptionRef, Options, ParseError,
    ParseErrorKind, ValueError, decode_uint, encode_uint,
};
