//! Fuzz target bodies. The `fuzz/` crate's targets are one-line calls into
//! these, and `tests/fuzz_replay.rs` runs every corpus and artifact file
//! through them on stable, so `cargo test` exercises the corpus.
//!
//! Each body panics only when an oracle is violated.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::missing_panics_doc
)]

use alloc::vec::Vec;
use core::fmt::{self, Write};

use arbitrary::{Arbitrary, Unstructured};

use crate::message::{
    Block, Code, ContentFormat, EncodeError, Encoder, Message, MessageBuf, MessageType, Observe,
    OptionNumber, decode_uint, encode_uint,
};

/// A `fmt::Write` sink that counts bytes, to drive `Display` without
/// allocating.
struct Sink(usize);

impl Write for Sink {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

/// `parse`: never panics; if it accepts, every accessor and the option walk
/// stay consistent with the bytes.
pub fn parse(data: &[u8]) {
    // The single-pass fold accepts exactly what parse accepts, with the
    // same error, and folds exactly the options the iterator walks.
    let folded = Message::parse_fold(data, (0usize, 0u16, true), |(n, last, ordered), o| {
        (n + 1, o.number.0, ordered && o.number.0 >= last)
    });
    let parsed = Message::parse(data);
    match (&folded, &parsed) {
        (Ok((fm, (n, _, ordered))), Ok(m)) => {
            assert_eq!(fm, m);
            assert_eq!(*n, m.options().count());
            assert!(*ordered, "parse_fold: options out of order");
        }
        (Err(fe), Err(e)) => assert_eq!(fe, e),
        _ => panic!("parse_fold and parse disagree"),
    }
    let Ok(msg) = parsed else {
        return;
    };
    assert!(msg.token().len() <= 8);
    let mut last = 0u16;
    let mut walked = 4 + msg.token().len();
    let mut prev: Option<u16> = None;
    for opt in msg.options() {
        assert!(opt.number.0 >= last, "options out of order");
        walked += crate::message::encoded_option_len(opt.number.0 - last, opt.value.len());
        last = opt.number.0;
        let _ = opt.as_uint();
        let _ = opt.as_str();
        let _ = opt.as_block();
        prev = Some(opt.number.0);
    }
    let _ = prev;
    assert_eq!(walked, msg.options_bytes().len() + 4 + msg.token().len());
    let marker = usize::from(!msg.payload().is_empty());
    assert_eq!(walked + marker + msg.payload().len(), data.len());
    let _ = msg.invalid_options().count();
    let _ = (
        msg.observe(),
        msg.block1(),
        msg.block2(),
        msg.content_format(),
        msg.accept(),
    );
    let mut sink = Sink(0);
    write!(sink, "{msg} {msg:?}").unwrap();
    assert!(sink.0 > 0);
}

/// `roundtrip`: every accepted datagram re-encodes byte-identically, through
/// the slice encoder and through the owned builder.
pub fn roundtrip(data: &[u8]) {
    let Ok(msg) = Message::parse(data) else {
        return;
    };
    let mut out = alloc::vec![0u8; data.len()];
    let n = msg.encode(&mut out).expect("re-encode");
    assert_eq!(&out[..n], data, "Encoder is not canonical");
    if !data.is_empty() {
        let short = msg.encode(&mut out[..data.len() - 1]);
        assert_eq!(
            short,
            Err(EncodeError::BufferTooSmall {
                required: data.len()
            })
        );
    }
    let owned = MessageBuf::from(msg);
    assert_eq!(owned.encoded_len(), data.len());
    assert_eq!(
        owned.to_bytes().unwrap(),
        data,
        "MessageBuf is not canonical"
    );
}

/// A structured message for the `encode` target.
#[derive(Debug, Arbitrary)]
struct EncodeInput {
    ty: MessageType,
    code: Code,
    message_id: u16,
    token: Vec<u8>,
    options: Vec<(u16, Vec<u8>)>,
    payload: Vec<u8>,
    buf_len: u16,
}

/// `encode`: an arbitrary message encodes (or fails with an exact, honest
/// error) and parses back equal.
pub fn encode(data: &[u8]) {
    let Ok(input) = EncodeInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut options = input.options;
    // The slice encoder wants ascending numbers; a stable sort keeps the
    // order of repeated options, exactly like MessageBuf does.
    options.sort_by_key(|o| o.0);
    let mut owned = MessageBuf::new(input.ty, input.code);
    owned.set_message_id(input.message_id);
    let token_ok = owned.set_token(&input.token).is_ok();
    for (n, v) in &options {
        owned.add_option(OptionNumber(*n), v);
    }
    owned.set_payload(input.payload.clone());

    let mut buf = alloc::vec![0u8; usize::from(input.buf_len)];
    let result = (|| -> Result<usize, EncodeError> {
        let mut enc = Encoder::new(
            &mut buf,
            input.ty,
            input.code,
            input.message_id,
            &input.token,
        )?;
        for (n, v) in &options {
            enc.option(OptionNumber(*n), v)?;
        }
        enc.payload(&input.payload)?;
        Ok(enc.finish())
    })();
    match result {
        Ok(n) => {
            let msg = Message::parse(&buf[..n]).expect("encoded message must parse");
            assert_eq!(msg.ty(), input.ty);
            assert_eq!(msg.code(), input.code);
            assert_eq!(msg.message_id(), input.message_id);
            assert_eq!(msg.token(), &input.token[..]);
            assert!(
                msg.options()
                    .map(|o| (o.number.0, o.value))
                    .eq(options.iter().map(|(n, v)| (*n, &v[..])))
            );
            assert_eq!(msg.payload(), &input.payload[..]);
            assert_eq!(owned.encoded_len(), n);
            assert_eq!(owned.to_bytes().unwrap(), &buf[..n]);
            assert_eq!(MessageBuf::from(msg), owned);
        }
        Err(EncodeError::BufferTooSmall { required }) => {
            assert!(required > buf.len(), "BufferTooSmall with enough room");
            // The whole-message encoder reports the exact total.
            if token_ok {
                match owned.encode(&mut buf) {
                    Err(EncodeError::BufferTooSmall { required: total }) => {
                        assert!(total >= required);
                        let mut big = alloc::vec![0u8; total];
                        assert_eq!(owned.encode(&mut big), Ok(total));
                    }
                    Err(EncodeError::EmptyMessageNotEmpty) => {}
                    other => panic!("whole-message encode disagrees: {other:?}"),
                }
            }
        }
        Err(EncodeError::TokenTooLong { len }) => assert!(len > 8 && !token_ok),
        Err(EncodeError::EmptyMessageNotEmpty) => {
            assert!(input.code.is_empty());
            assert!(owned.to_bytes().is_err());
        }
        Err(e) => panic!("unexpected encode error {e:?}"),
    }
}

/// `option_values`: typed option values decode, re-encode minimally and
/// decode to the same value.
pub fn option_values(data: &[u8]) {
    if let Ok(n) = decode_uint(data) {
        let min = encode_uint(n);
        assert_eq!(decode_uint(&min), Ok(n));
        assert!(min.first() != Some(&0), "uint not minimal");
        let significant = data.iter().skip_while(|b| **b == 0).count();
        assert_eq!(min.len(), significant);
    } else {
        assert!(data.iter().skip_while(|b| **b == 0).count() > 4);
    }
    if let Ok(b) = Block::from_value(data) {
        assert!(b.szx() <= 6 && b.num() <= Block::MAX_NUM);
        let again = Block::from_value(&encode_uint(b.to_uint())).unwrap();
        assert_eq!(again, b);
        assert_eq!(b.offset(), b.num() as usize * b.size());
    }
    if let Ok(o) = Observe::from_value(data) {
        assert!(o.0 <= Observe::MAX);
        assert_eq!(Observe::from_value(&encode_uint(o.0)), Ok(o));
    }
    if let Ok(cf) = ContentFormat::from_value(data) {
        assert_eq!(ContentFormat::from_value(&encode_uint(cf.0.into())), Ok(cf));
        if let Some(m) = cf.media_type() {
            let mut s = alloc::string::String::from(m);
            if let Some(c) = cf.content_coding() {
                s.push('@');
                s.push_str(c);
            }
            assert_eq!(ContentFormat::from_media_type(&s), Some(cf));
        }
    }
    if let Ok(s) = core::str::from_utf8(data) {
        if let Some(cf) = ContentFormat::from_media_type(s) {
            assert!(cf.media_type().is_some());
        }
        let _ = OptionNumber::from_name(s);
    }
}
