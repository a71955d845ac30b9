#![doc = include_str!("../README.md")]
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod message;

#[cfg(feature = "_internal")]
#[doc(hidden)]
pub mod _internal;

pub use message::{
    Block, Code, ContentFormat, EncodeError, Encoder, Header, Message, MessageType, Observe,
    OptionFormat, OptionInfo, OptionNumber, OptionRef, Options, ParseError, ParseErrorKind,
    ValueError,
};
#[cfg(feature = "alloc")]
pub use message::MessageBuf;
