//! The codec's hot paths never allocate: parse, option iteration, typed
//! accessors, `Display` into a fixed buffer, and encoding into a slice.

use std::fmt::Write as _;

use coap_proto::{Block, Code, Encoder, Message, MessageType, OptionNumber};

#[path = "common/alloc.rs"]
mod alloc;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

use alloc::allocations;

/// A fixed-capacity `fmt::Write` target.
struct Fixed {
    buf: [u8; 2048],
    len: usize,
}

impl std::fmt::Write for Fixed {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(std::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn encode_request(buf: &mut [u8]) -> usize {
    let mut enc = Encoder::new(buf, MessageType::Con, Code::GET, 0x7d34, &[1, 2, 3, 4]).unwrap();
    enc.option_str(OptionNumber::URI_HOST, "example.org")
        .unwrap();
    enc.uri_path("/sensors/temp/1").unwrap();
    enc.option_str(OptionNumber::URI_QUERY, "unit=c").unwrap();
    enc.option_uint(OptionNumber::ACCEPT, 50).unwrap();
    enc.option_block(OptionNumber::BLOCK2, Block::new(3, true, 6).unwrap())
        .unwrap();
    enc.option(OptionNumber(2048), &[0xab; 300]).unwrap();
    enc.payload(b"hello").unwrap();
    enc.finish()
}

#[test]
fn encode_into_slice_does_not_allocate() {
    let mut buf = [0u8; 512];
    let (n, len) = allocations(|| encode_request(&mut buf));
    assert_eq!(n, 0);
    assert!(len > 300);
}

#[test]
fn parse_iterate_and_display_do_not_allocate() {
    let mut buf = [0u8; 512];
    let len = encode_request(&mut buf);
    let bytes = &buf[..len];
    let mut out = Fixed {
        buf: [0; 2048],
        len: 0,
    };
    let (n, sum) = allocations(|| {
        let msg = Message::parse(bytes).unwrap();
        let mut sum = 0usize;
        for opt in msg.options() {
            sum += usize::from(opt.number.0) + opt.value.len();
        }
        let (_, folded) = Message::parse_fold(bytes, 0usize, |acc, opt| {
            acc + usize::from(opt.number.0) + opt.value.len()
        })
        .unwrap();
        assert_eq!(folded, sum, "parse_fold folds what options() walks");
        sum += msg.options_of(OptionNumber::URI_PATH).count();
        sum += msg.payload().len() + msg.token().len();
        sum += msg.block2().unwrap().offset();
        sum += msg.accept().unwrap().0 as usize;
        sum += msg.invalid_options().count();
        let mut again = [0u8; 512];
        sum += msg.encode(&mut again).unwrap();
        write!(out, "{msg}").unwrap();
        sum
    });
    assert_eq!(n, 0, "parse/iterate/display allocated");
    assert!(sum > 0);
    let text = std::str::from_utf8(&out.buf[..out.len]).unwrap();
    assert!(
        text.starts_with("CON GET mid=0x7d34 tok=01020304 Uri-Host:example.org Uri-Path:sensors")
    );
}

#[test]
fn parse_errors_do_not_allocate() {
    let (n, err) = allocations(|| Message::parse(&[0x40, 0x01, 0x00, 0x01, 0xd0]).unwrap_err());
    assert_eq!(n, 0);
    assert_eq!(err.offset, 4);
}
