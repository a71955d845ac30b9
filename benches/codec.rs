//! Codec benchmarks: coap-proto against coap-lite and
//! coap-message-implementations, and against two hand-rolled baselines that
//! mark the practical limit (`walk` for decoding, `write` for encoding).
//!
//! Ids are `decode/<shape>/<codec>` and `encode/<shape>/<codec>`. Every codec
//! decodes the same bytes and encodes from the same field-level description
//! ([`Shape`]); before anything is timed, every encoder's bytes are checked
//! against coap-proto's and every decoder's checksum against `walk`'s.
//!
//! A counting global allocator reports allocations per decode and per
//! encode (printed once, on stderr, outside any measurement).
//!
//! Run: `cargo bench --bench codec -- --warm-up-time 1 --measurement-time 3`.
//! See `benches/README.md` for results, and [`repeat`] for the
//! instruction-count mode (`CODEC_REPEAT`).

use std::hint::black_box;

use coap_message::{MessageOption as _, MinimalWritableMessage as _, ReadableMessage as _};
use coap_message_implementations::inmemory;
use coap_proto::{Code, Encoder, Message, MessageType, OptionNumber};
use criterion::{BenchmarkId, Criterion, criterion_group};

// ---------------------------------------------------------------------------
// Allocation counting
// ---------------------------------------------------------------------------

#[path = "common/alloc.rs"]
mod alloc;

#[global_allocator]
static GLOBAL: alloc::CountingAlloc = alloc::CountingAlloc;

/// Allocation calls made by `runs` runs of `f` (after one warm-up run).
fn count_allocations(runs: usize, mut f: impl FnMut()) -> usize {
    f(); // warm any lazily initialised state outside the window
    alloc::count(|| {
        for _ in 0..runs {
            f();
        }
    })
}

// ---------------------------------------------------------------------------
// The field-level description every encoder builds from
// ---------------------------------------------------------------------------

/// An option value as an application holds it.
enum Value {
    /// Opaque or string bytes.
    Bytes(Vec<u8>),
    /// A uint, to be written minimally (RFC 7252 §3.2) by each codec's own
    /// uint helper (the `write` baseline strips leading zero bytes itself).
    Uint(u32),
}

/// One message, field by field.
struct Shape {
    name: &'static str,
    ty: MessageType,
    code: Code,
    mid: u16,
    token: Vec<u8>,
    /// Ascending option numbers; repeated options in order.
    options: Vec<(u16, Value)>,
    payload: Vec<u8>,
}

fn bytes(s: &str) -> Value {
    Value::Bytes(s.as_bytes().to_vec())
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// 12 Uri-Path, 6 Uri-Query (some with 1-byte length extensions) and
/// option 2048 with a 300-byte value (2-byte delta and length extensions).
fn many_options() -> Vec<(u16, Value)> {
    let mut options: Vec<(u16, Value)> = [
        "api",
        "v2",
        "buildings",
        "north-campus-b", // 14 bytes: 1-byte length extension
        "floors",
        "3",
        "rooms",
        "conference-room-a", // 17 bytes
        "devices",
        "thermostat-0042", // 15 bytes
        "readings",
        "latest",
    ]
    .into_iter()
    .map(|s| (11, bytes(s)))
    .collect();
    options.extend(
        [
            "limit=100",
            "offset=0",
            "sort=timestamp", // 14 bytes
            "order=desc",
            "format=json-compact", // 19 bytes
            "fields=all",
        ]
        .into_iter()
        .map(|s| (15, bytes(s))),
    );
    // Delta 2033 and length 300: 2-byte extensions for both.
    options.push((2048, Value::Bytes(pattern(300, 7))));
    options
}

fn shapes() -> Vec<Shape> {
    let json =
        br#"{"sensor":"temp-1","value":21.25,"unit":"C","ts":1700000000,"battery":97,"ok":1}"#;
    assert_eq!(json.len(), 80);

    vec![
        Shape {
            name: "tiny",
            ty: MessageType::Con,
            code: Code::GET,
            mid: 0x7d34,
            token: vec![0x20, 0xfa],
            options: vec![],
            payload: vec![],
        },
        Shape {
            name: "request",
            ty: MessageType::Con,
            code: Code::GET,
            mid: 0x7d35,
            token: vec![0xde, 0xad, 0xbe, 0xef],
            options: vec![
                (3, bytes("example.org")),
                (11, bytes("sensors")),
                (11, bytes("temp")),
                (11, bytes("1")),
                (15, bytes("unit=c")),
                (17, Value::Uint(50)),
            ],
            payload: vec![],
        },
        Shape {
            name: "notification",
            ty: MessageType::Non,
            code: Code::CONTENT,
            mid: 0x1234,
            token: vec![0x01, 0x02, 0x03, 0x04],
            options: vec![
                (6, Value::Uint(0x0012_3456)), // Observe: 3-byte sequence number
                (4, Value::Bytes(vec![0xa1, 0xb2, 0xc3, 0xd4])),
                (12, Value::Uint(50)),
                (14, Value::Uint(60)),
            ],
            payload: json.to_vec(),
        },
        Shape {
            name: "block",
            ty: MessageType::Ack,
            code: Code::CONTENT,
            mid: 0xbeef,
            token: vec![1, 2, 3, 4, 5, 6, 7, 8],
            options: vec![
                // Block2 3/1/1024: NUM 3, M 1, SZX 6.
                (23, Value::Uint((3 << 4) | (1 << 3) | 6)),
                (28, Value::Uint(65536)),
            ],
            payload: pattern(1024, 3),
        },
        Shape {
            name: "many_options",
            ty: MessageType::Con,
            code: Code::GET,
            mid: 0x0042,
            token: vec![0x11, 0x22, 0x33, 0x44],
            options: many_options(),
            payload: vec![],
        },
    ]
    .into_iter()
    .map(|mut s| {
        // Options must be ascending (notification lists ETag after Observe
        // above only for readability of the spec order).
        s.options.sort_by_key(|(n, _)| *n);
        s
    })
    .collect()
}

// ---------------------------------------------------------------------------
// The checksum every decoder folds, identically
// ---------------------------------------------------------------------------

/// Folds one item: its number, the length of its bytes and their first byte.
#[inline]
fn fold(acc: u64, number: u64, value: &[u8]) -> u64 {
    let first = u64::from(value.first().copied().unwrap_or(0));
    acc.rotate_left(5)
        ^ (number
            .wrapping_add(value.len() as u64)
            .wrapping_add(first << 32))
}

/// Header: type, code, message ID and token.
#[inline]
fn fold_header(ty: u8, code: u8, mid: u16, token: &[u8]) -> u64 {
    fold(
        0,
        (u64::from(ty) << 24) | (u64::from(code) << 16) | u64::from(mid),
        token,
    )
}

/// Payload, folded as number 0x10000 (no option has that number).
#[inline]
fn fold_payload(acc: u64, payload: &[u8]) -> u64 {
    fold(acc, 0x1_0000, payload)
}

// ---------------------------------------------------------------------------
// Decoders
// ---------------------------------------------------------------------------

/// Baseline: a minimal zero-copy loop. Checks the header (version, TKL,
/// Empty message, token bounds) and walks every option with its extended
/// delta/length forms and bounds checks to the payload marker.
#[inline(never)]
fn decode_walk(buf: &[u8]) -> Option<u64> {
    let [b0, code, m0, m1, ..] = *buf else {
        return None;
    };
    if b0 >> 6 != 1 {
        return None;
    }
    let tkl = usize::from(b0 & 0x0f);
    if tkl > 8 || (code == 0 && (tkl != 0 || buf.len() > 4)) {
        return None;
    }
    let token = buf.get(4..4 + tkl)?;
    let mut acc = fold_header((b0 >> 4) & 3, code, u16::from_be_bytes([m0, m1]), token);
    let mut rest = &buf[4 + tkl..];
    let mut number = 0u32;
    let mut payload: &[u8] = &[];
    while let Some((&b, after)) = rest.split_first() {
        rest = after;
        if b == 0xff {
            if rest.is_empty() {
                return None;
            }
            payload = rest;
            break;
        }
        let mut delta = u32::from(b >> 4);
        let mut len = usize::from(b & 0x0f);
        match delta {
            13 => {
                let (&e, r) = rest.split_first()?;
                delta = 13 + u32::from(e);
                rest = r;
            }
            14 => {
                let [e0, e1, ref r @ ..] = *rest else {
                    return None;
                };
                delta = 269 + u32::from(u16::from_be_bytes([e0, e1]));
                rest = r;
            }
            15 => return None,
            _ => {}
        }
        match len {
            13 => {
                let (&e, r) = rest.split_first()?;
                len = 13 + usize::from(e);
                rest = r;
            }
            14 => {
                let [e0, e1, ref r @ ..] = *rest else {
                    return None;
                };
                len = 269 + usize::from(u16::from_be_bytes([e0, e1]));
                rest = r;
            }
            15 => return None,
            _ => {}
        }
        number += delta;
        if number > 0xffff {
            return None;
        }
        let (value, r) = rest.split_at_checked(len)?;
        rest = r;
        acc = fold(acc, u64::from(number), value);
    }
    Some(fold_payload(acc, payload))
}

/// coap-proto: `Message::parse_fold`, which hands every option to the fold
/// in its validating pass (one walk of the options), then the payload.
///
/// The checksum folds the header first, so the fold starts from the raw
/// header bytes (unchecked here: `parse_fold` checks them, and its error
/// drops the fold).
#[inline(never)]
fn decode_proto(buf: &[u8]) -> Option<u64> {
    let [b0, code, m0, m1, ..] = *buf else {
        return None;
    };
    let token = buf.get(4..).unwrap_or_default();
    let token = token.get(..usize::from(b0 & 0x0f)).unwrap_or(token);
    let init = fold_header((b0 >> 4) & 3, code, u16::from_be_bytes([m0, m1]), token);
    let (msg, acc) = Message::parse_fold(buf, init, |acc, opt| {
        fold(acc, u64::from(opt.number.0), opt.value)
    })
    .ok()?;
    Some(fold_payload(acc, msg.payload()))
}

/// coap-proto: `Message::parse`, then the option iterator (a second walk of
/// the options) and the payload.
#[inline(never)]
fn decode_proto_parse(buf: &[u8]) -> Option<u64> {
    let msg = Message::parse(buf).ok()?;
    let mut acc = fold_header(msg.ty().bits(), msg.code().0, msg.message_id(), msg.token());
    for opt in msg.options() {
        acc = fold(acc, u64::from(opt.number.0), opt.value);
    }
    Some(fold_payload(acc, msg.payload()))
}

/// coap-message-implementations: its `inmemory::Message` reads only the code
/// and the options-and-payload region; it has no codec for the CoAP-over-UDP
/// header (version, type, TKL, message ID, token). The same header check as
/// `walk`'s is done here, then the tail is handed to the library, which
/// reports malformed options as option 65535 (`OPTION_INVALID`).
#[inline(never)]
fn decode_cmi(buf: &[u8]) -> Option<u64> {
    let [b0, code, m0, m1, ..] = *buf else {
        return None;
    };
    if b0 >> 6 != 1 {
        return None;
    }
    let tkl = usize::from(b0 & 0x0f);
    if tkl > 8 || (code == 0 && (tkl != 0 || buf.len() > 4)) {
        return None;
    }
    let token = buf.get(4..4 + tkl)?;
    let mut acc = fold_header((b0 >> 4) & 3, code, u16::from_be_bytes([m0, m1]), token);
    let msg = inmemory::Message::new_from_slice(code, &buf[4 + tkl..]);
    for opt in msg.options() {
        let number = opt.number();
        if number == inmemory::OPTION_INVALID {
            return None;
        }
        acc = fold(acc, u64::from(number), opt.value());
    }
    Some(fold_payload(acc, msg.payload()))
}

fn lite_type_bits(t: coap_lite::MessageType) -> u8 {
    match t {
        coap_lite::MessageType::Confirmable => 0,
        coap_lite::MessageType::NonConfirmable => 1,
        coap_lite::MessageType::Acknowledgement => 2,
        coap_lite::MessageType::Reset => 3,
    }
}

/// coap-lite: `Packet::from_bytes` (which copies the token, every option
/// value and the payload into owned storage), then its option map.
#[inline(never)]
fn decode_lite(buf: &[u8]) -> Option<u64> {
    let p = coap_lite::Packet::from_bytes(buf).ok()?;
    let mut acc = fold_header(
        lite_type_bits(p.header.get_type()),
        u8::from(p.header.code),
        p.header.message_id,
        p.get_token(),
    );
    for (&number, values) in p.options() {
        for value in values {
            acc = fold(acc, u64::from(number), value);
        }
    }
    Some(fold_payload(acc, &p.payload))
}

// ---------------------------------------------------------------------------
// Encoders, each building the message from a `Shape`
// ---------------------------------------------------------------------------

/// Baseline: a hand-rolled minimal writer into a slice (slice indexing is
/// its only bounds check).
#[inline(never)]
fn encode_write(s: &Shape, buf: &mut [u8]) -> usize {
    #[inline]
    fn nibble(v: usize) -> u8 {
        match v {
            0..13 => v as u8,
            13..269 => 13,
            _ => 14,
        }
    }
    #[inline]
    fn ext(buf: &mut [u8], at: usize, v: usize) -> usize {
        match v {
            0..13 => at,
            13..269 => {
                buf[at] = (v - 13) as u8;
                at + 1
            }
            _ => {
                buf[at..at + 2].copy_from_slice(&((v - 269) as u16).to_be_bytes());
                at + 2
            }
        }
    }

    let tkl = s.token.len();
    buf[0] = 0x40 | (s.ty.bits() << 4) | tkl as u8;
    buf[1] = s.code.0;
    buf[2..4].copy_from_slice(&s.mid.to_be_bytes());
    buf[4..4 + tkl].copy_from_slice(&s.token);
    let mut at = 4 + tkl;
    let mut last = 0u16;
    for (number, value) in &s.options {
        let uint;
        let value: &[u8] = match value {
            Value::Bytes(b) => b,
            Value::Uint(u) => {
                uint = u.to_be_bytes();
                &uint[(u.leading_zeros() / 8) as usize..]
            }
        };
        let delta = usize::from(number - last);
        last = *number;
        buf[at] = (nibble(delta) << 4) | nibble(value.len());
        at = ext(buf, at + 1, delta);
        at = ext(buf, at, value.len());
        buf[at..at + value.len()].copy_from_slice(value);
        at += value.len();
    }
    if !s.payload.is_empty() {
        buf[at] = 0xff;
        buf[at + 1..at + 1 + s.payload.len()].copy_from_slice(&s.payload);
        at += 1 + s.payload.len();
    }
    at
}

/// coap-proto: `Encoder` into a reused buffer.
#[inline(never)]
fn encode_proto(s: &Shape, buf: &mut [u8]) -> usize {
    let mut enc = Encoder::new(buf, s.ty, s.code, s.mid, &s.token).expect("header");
    for (number, value) in &s.options {
        let number = OptionNumber(*number);
        match value {
            Value::Bytes(b) => enc.option(number, b),
            Value::Uint(u) => enc.option_uint(number, *u),
        }
        .expect("option");
    }
    enc.payload(&s.payload).expect("payload");
    enc.finish()
}

/// coap-message-implementations: `inmemory::MessageMut` over the slice
/// after the token (code byte borrowed in place). The library has no
/// CoAP-over-UDP header writer, so the 4-byte header and the token are
/// written by hand first, exactly as `write` does.
#[inline(never)]
fn encode_cmi(s: &Shape, buf: &mut [u8]) -> usize {
    let tkl = s.token.len();
    let (head, tail) = buf.split_at_mut(4 + tkl);
    head[0] = 0x40 | (s.ty.bits() << 4) | tkl as u8;
    head[2..4].copy_from_slice(&s.mid.to_be_bytes());
    head[4..].copy_from_slice(&s.token);
    let mut msg = inmemory::MessageMut::new_in_slice(&mut head[1], tail);
    msg.set_code(s.code.0);
    for (number, value) in &s.options {
        match value {
            Value::Bytes(b) => msg.add_option(*number, b),
            Value::Uint(u) => msg.add_option_uint(*number, *u),
        }
        .expect("option");
    }
    msg.set_payload(&s.payload).expect("payload");
    let (len, _) = msg.finish();
    4 + tkl + len
}

fn lite_type(t: MessageType) -> coap_lite::MessageType {
    match t {
        MessageType::Con => coap_lite::MessageType::Confirmable,
        MessageType::Non => coap_lite::MessageType::NonConfirmable,
        MessageType::Ack => coap_lite::MessageType::Acknowledgement,
        MessageType::Rst => coap_lite::MessageType::Reset,
    }
}

/// coap-lite: build a `Packet` (owned token, option map, payload), then
/// `to_bytes()`, which returns a fresh `Vec`.
#[inline(never)]
fn encode_lite(s: &Shape) -> Vec<u8> {
    let mut p = coap_lite::Packet::new();
    p.header.set_type(lite_type(s.ty));
    p.header.code = coap_lite::MessageClass::from(s.code.0);
    p.header.message_id = s.mid;
    p.set_token(s.token.clone());
    for (number, value) in &s.options {
        let value = match value {
            Value::Bytes(b) => b.clone(),
            Value::Uint(u) => coap_lite::option_value::OptionValueU32(*u).into(),
        };
        p.add_option(coap_lite::CoapOption::from(*number), value);
    }
    p.payload.clone_from(&s.payload);
    p.to_bytes().expect("coap-lite to_bytes")
}

// ---------------------------------------------------------------------------
// Checks (outside timing) and benchmarks
// ---------------------------------------------------------------------------

const BUF: usize = 2048;

/// Every encoder must produce coap-proto's bytes and every decoder must
/// agree with `walk`; returns coap-proto's encoding of each shape.
fn check(shapes: &[Shape]) -> Vec<Vec<u8>> {
    shapes
        .iter()
        .map(|s| {
            let mut buf = [0u8; BUF];
            let n = encode_proto(s, &mut buf);
            let reference = buf[..n].to_vec();

            let mut other = [0u8; BUF];
            let n = encode_write(s, &mut other);
            assert_eq!(&other[..n], &reference[..], "{}: write", s.name);
            let mut other = [0u8; BUF];
            let n = encode_cmi(s, &mut other);
            assert_eq!(
                &other[..n],
                &reference[..],
                "{}: coap-message-implementations",
                s.name
            );
            assert_eq!(encode_lite(s), reference, "{}: coap-lite", s.name);

            let expected = decode_walk(&reference).expect("walk decodes");
            assert_eq!(
                decode_proto(&reference),
                Some(expected),
                "{}: coap-proto",
                s.name
            );
            assert_eq!(
                decode_proto_parse(&reference),
                Some(expected),
                "{}: coap-proto parse + options",
                s.name
            );
            assert_eq!(
                decode_cmi(&reference),
                Some(expected),
                "{}: coap-message-implementations",
                s.name
            );
            assert_eq!(
                decode_lite(&reference),
                Some(expected),
                "{}: coap-lite",
                s.name
            );
            reference
        })
        .collect()
}

fn bench_decode(c: &mut Criterion) {
    let shapes = shapes();
    let encoded = check(&shapes);
    let mut group = c.benchmark_group("decode");
    for (s, bytes) in shapes.iter().zip(&encoded) {
        let bytes = bytes.as_slice();
        group.bench_function(BenchmarkId::new(s.name, "walk"), |b| {
            b.iter(|| decode_walk(black_box(bytes)));
        });
        group.bench_function(BenchmarkId::new(s.name, "coap-proto"), |b| {
            b.iter(|| decode_proto(black_box(bytes)));
        });
        group.bench_function(BenchmarkId::new(s.name, "coap-proto-parse"), |b| {
            b.iter(|| decode_proto_parse(black_box(bytes)));
        });
        group.bench_function(
            BenchmarkId::new(s.name, "coap-message-implementations"),
            |b| {
                b.iter(|| decode_cmi(black_box(bytes)));
            },
        );
        group.bench_function(BenchmarkId::new(s.name, "coap-lite"), |b| {
            b.iter(|| decode_lite(black_box(bytes)));
        });
    }
    group.finish();
}

fn bench_encode(c: &mut Criterion) {
    let shapes = shapes();
    check(&shapes);
    let mut group = c.benchmark_group("encode");
    let mut buf = [0u8; BUF];
    for s in &shapes {
        group.bench_function(BenchmarkId::new(s.name, "write"), |b| {
            b.iter(|| {
                let n = encode_write(black_box(s), &mut buf);
                black_box(&buf[..n]);
            });
        });
        group.bench_function(BenchmarkId::new(s.name, "coap-proto"), |b| {
            b.iter(|| {
                let n = encode_proto(black_box(s), &mut buf);
                black_box(&buf[..n]);
            });
        });
        group.bench_function(
            BenchmarkId::new(s.name, "coap-message-implementations"),
            |b| {
                b.iter(|| {
                    let n = encode_cmi(black_box(s), &mut buf);
                    black_box(&buf[..n]);
                });
            },
        );
        group.bench_function(BenchmarkId::new(s.name, "coap-lite"), |b| {
            // The returned Vec is dropped inside the loop: freeing it is
            // part of what `to_bytes` costs its caller.
            b.iter(|| black_box(encode_lite(black_box(s))));
        });
    }
    group.finish();
}

/// Allocations per operation from a total over `runs` runs, as text
/// (integer when exact, else two decimals).
fn per_op(total: usize, runs: usize) -> String {
    if total.is_multiple_of(runs) {
        (total / runs).to_string()
    } else {
        let hundredths = total * 100 / runs;
        format!("{}.{:02}", hundredths / 100, hundredths % 100)
    }
}

/// Prints allocations per decode and per encode for each codec and shape,
/// once, outside any measurement. coap-proto must show 0.
fn alloc_counts(_: &mut Criterion) {
    const RUNS: usize = 1000;
    let shapes = shapes();
    let encoded = check(&shapes);
    let mut buf = [0u8; BUF];
    eprintln!("\nallocations per operation (over {RUNS} runs; baseline = walk / write):");
    eprintln!(
        "{:<14} {:<7} {:>9} {:>11} {:>29} {:>10}",
        "shape", "op", "baseline", "coap-proto", "coap-message-implementations", "coap-lite"
    );
    for (s, bytes) in shapes.iter().zip(&encoded) {
        let bytes = bytes.as_slice();
        let dec = [
            count_allocations(RUNS, || {
                black_box(decode_walk(black_box(bytes)));
            }),
            count_allocations(RUNS, || {
                black_box(decode_proto(black_box(bytes)));
            }),
            count_allocations(RUNS, || {
                black_box(decode_cmi(black_box(bytes)));
            }),
            count_allocations(RUNS, || {
                black_box(decode_lite(black_box(bytes)));
            }),
        ];
        let enc = [
            count_allocations(RUNS, || {
                black_box(encode_write(black_box(s), &mut buf));
            }),
            count_allocations(RUNS, || {
                black_box(encode_proto(black_box(s), &mut buf));
            }),
            count_allocations(RUNS, || {
                black_box(encode_cmi(black_box(s), &mut buf));
            }),
            count_allocations(RUNS, || {
                black_box(encode_lite(black_box(s)));
            }),
        ];
        for (op, totals) in [("decode", dec), ("encode", enc)] {
            let [a, b, c, d] = totals.map(|t| per_op(t, RUNS));
            eprintln!("{:<14} {:<7} {a:>9} {b:>11} {c:>29} {d:>10}", s.name, op);
        }
        assert_eq!(dec[1], 0, "{}: coap-proto decode allocated", s.name);
        let parse_then_iterate = count_allocations(RUNS, || {
            black_box(decode_proto_parse(black_box(bytes)));
        });
        assert_eq!(
            parse_then_iterate, 0,
            "{}: coap-proto parse + options allocated",
            s.name
        );
        assert_eq!(enc[1], 0, "{}: coap-proto encode allocated", s.name);
    }
    eprintln!();
}

/// `CODEC_REPEAT=<op>/<shape>/<codec>:<runs>` (e.g.
/// `decode/request/coap-proto:100000`) runs one operation `runs` times and
/// exits instead of benchmarking, for deterministic instruction counts:
/// `valgrind --tool=callgrind --toggle-collect='codec::decode_proto' ...`
/// then divide the collected instructions by `runs` (see the README).
fn repeat(spec: &str) {
    let (id, runs) = spec
        .split_once(':')
        .expect("CODEC_REPEAT=<op>/<shape>/<codec>:<runs>");
    let runs: usize = runs.parse().expect("CODEC_REPEAT: runs must be a number");
    let &[op, shape, codec] = id.split('/').collect::<Vec<_>>().as_slice() else {
        panic!("CODEC_REPEAT: expected <op>/<shape>/<codec>, got {id}");
    };
    let shapes = shapes();
    let encoded = check(&shapes);
    let (s, bytes) = shapes
        .iter()
        .zip(&encoded)
        .find(|(s, _)| s.name == shape)
        .expect("CODEC_REPEAT: unknown shape");
    let bytes = bytes.as_slice();
    let mut buf = [0u8; BUF];
    for _ in 0..runs {
        match (op, codec) {
            ("decode", "walk") => {
                black_box(decode_walk(black_box(bytes)));
            }
            ("decode", "coap-proto") => {
                black_box(decode_proto(black_box(bytes)));
            }
            ("decode", "coap-proto-parse") => {
                black_box(decode_proto_parse(black_box(bytes)));
            }
            ("decode", "coap-message-implementations") => {
                black_box(decode_cmi(black_box(bytes)));
            }
            ("decode", "coap-lite") => {
                black_box(decode_lite(black_box(bytes)));
            }
            ("encode", "write") => {
                let n = encode_write(black_box(s), &mut buf);
                black_box(&buf[..n]);
            }
            ("encode", "coap-proto") => {
                let n = encode_proto(black_box(s), &mut buf);
                black_box(&buf[..n]);
            }
            ("encode", "coap-message-implementations") => {
                let n = encode_cmi(black_box(s), &mut buf);
                black_box(&buf[..n]);
            }
            ("encode", "coap-lite") => {
                black_box(encode_lite(black_box(s)));
            }
            _ => panic!("CODEC_REPEAT: unknown op/codec {op}/{codec}"),
        }
    }
}

criterion_group!(allocations, alloc_counts);
criterion_group!(benches, bench_decode, bench_encode);

fn main() {
    if let Ok(spec) = std::env::var("CODEC_REPEAT") {
        repeat(&spec);
        return;
    }
    allocations();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
