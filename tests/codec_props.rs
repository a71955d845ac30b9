//! Property tests for the codec (RFC 7252 §3):
//! - any message built with the encoder parses back equal;
//! - any byte string either fails to parse or re-encodes to itself
//!   (canonical framing), and parsing never panics;
//! - typed option values round-trip;
//! - `Message::parse`, `Options::new` and `Encoder` agree with the
//!   straightforward reference models below on every input (differential
//!   checks guarding the optimised codec paths).

use coap_proto::{
    Block, Code, EncodeError, Encoder, Header, Message, MessageBuf, MessageType, Observe,
    OptionNumber, Options, ParseErrorKind, decode_uint, encode_uint,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Spec {
    ty: MessageType,
    code: Code,
    mid: u16,
    token: Vec<u8>,
    options: Vec<(u16, Vec<u8>)>,
    payload: Vec<u8>,
}

fn option_number() -> impl Strategy<Value = u16> {
    prop_oneof![
        0u16..=64,
        prop::sample::select(vec![12u16, 13, 14, 268, 269, 270, 282, 2048, 65000, 65535]),
        any::<u16>(),
    ]
}

fn option_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..=14),
        prop::collection::vec(any::<u8>(), 0..=300),
        prop::sample::select(vec![12usize, 13, 14, 268, 269, 270]).prop_map(|n| vec![0x5a; n]),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0u8..4,
        any::<u8>(),
        any::<u16>(),
        prop::collection::vec(any::<u8>(), 0..=8),
        prop::collection::vec((option_number(), option_value()), 0..12),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(ty, code, mid, token, mut options, payload)| {
            let code = Code(code);
            options.sort_by_key(|o| o.0);
            let (token, options, payload) = if code.is_empty() {
                (vec![], vec![], vec![])
            } else {
                (token, options, payload)
            };
            Spec {
                ty: MessageType::from_bits(ty),
                code,
                mid,
                token,
                options,
                payload,
            }
        })
}

fn encode(spec: &Spec) -> Vec<u8> {
    let mut buf = vec![0u8; 70_000];
    let mut enc = Encoder::new(&mut buf, spec.ty, spec.code, spec.mid, &spec.token).unwrap();
    for (n, v) in &spec.options {
        enc.option(OptionNumber(*n), v).unwrap();
    }
    enc.payload(&spec.payload).unwrap();
    let n = enc.finish();
    buf.truncate(n);
    buf
}

/// Valid messages with a few random byte edits, so that the "any bytes"
/// property spends time near the valid/invalid boundary rather than on
/// version errors.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        spec(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..4),
    )
        .prop_map(|(s, edits)| {
            let mut bytes = encode(&s);
            for (at, byte, op) in edits {
                if bytes.is_empty() {
                    break;
                }
                let i = at.index(bytes.len());
                match op {
                    0 => bytes[i] = byte,
                    1 => {
                        bytes.remove(i);
                    }
                    _ => bytes.insert(i, byte),
                }
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// An encoded message parses back to exactly what was encoded.
    #[test]
    fn built_messages_parse_back_equal(s in spec()) {
        let bytes = encode(&s);
        let msg = Message::parse(&bytes).unwrap();
        prop_assert_eq!(msg.ty(), s.ty);
        prop_assert_eq!(msg.code(), s.code);
        prop_assert_eq!(msg.message_id(), s.mid);
        prop_assert_eq!(msg.token(), &s.token[..]);
        let opts: Vec<(u16, Vec<u8>)> = msg.options().map(|o| (o.number.0, o.value.to_vec())).collect();
        prop_assert_eq!(opts, s.options.clone());
        prop_assert_eq!(msg.payload(), &s.payload[..]);
    }

    /// The owned builder sorts options stably and encodes like the encoder.
    #[test]
    fn message_buf_matches_encoder(s in spec(), rotate in 0usize..12) {
        let mut m = MessageBuf::new(s.ty, s.code);
        m.set_message_id(s.mid);
        m.set_token(&s.token).unwrap();
        // Insert in a scrambled order that keeps equal numbers in order.
        let mut groups: Vec<Vec<&(u16, Vec<u8>)>> = Vec::new();
        for o in &s.options {
            match groups.last_mut() {
                Some(g) if g[0].0 == o.0 => g.push(o),
                _ => groups.push(vec![o]),
            }
        }
        if !groups.is_empty() {
            let k = rotate % groups.len();
            groups.rotate_left(k);
        }
        for g in groups {
            for (n, v) in g {
                m.add_option(OptionNumber(*n), v);
            }
        }
        m.set_payload(s.payload.clone());
        let bytes = encode(&s);
        prop_assert_eq!(m.encoded_len(), bytes.len());
        prop_assert_eq!(m.to_bytes().unwrap(), bytes.clone());
        prop_assert_eq!(MessageBuf::from(Message::parse(&bytes).unwrap()), m);
    }

    /// Any bytes: parse fails, or re-encoding gives the same bytes.
    #[test]
    fn any_bytes_fail_or_roundtrip(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        check_roundtrip(&bytes)?;
    }

    /// Near-valid bytes: the same property, where it matters most.
    #[test]
    fn mutated_bytes_fail_or_roundtrip(bytes in mutated()) {
        check_roundtrip(&bytes)?;
    }

    /// A too-small buffer reports the exact size and writes nothing.
    #[test]
    fn buffer_too_small_is_exact_and_clean(s in spec(), cut in any::<prop::sample::Index>()) {
        let bytes = encode(&s);
        let msg = Message::parse(&bytes).unwrap();
        let short = cut.index(bytes.len());
        let mut buf = vec![0xeeu8; short];
        prop_assert_eq!(msg.encode(&mut buf), Err(EncodeError::BufferTooSmall { required: bytes.len() }));
        prop_assert!(buf.iter().all(|b| *b == 0xee));
    }

    /// uint values: minimal encoding, leading zeros accepted on read (§3.2).
    #[test]
    fn uint_roundtrip(n in any::<u32>(), zeros in 0usize..4) {
        let min = encode_uint(n);
        prop_assert!(min.first() != Some(&0));
        prop_assert_eq!(decode_uint(&min), Ok(n));
        let mut padded = vec![0u8; zeros];
        padded.extend_from_slice(&min);
        prop_assert_eq!(decode_uint(&padded), Ok(n));
    }

    /// Block values round-trip through their uint form (RFC 7959 §2.2).
    #[test]
    fn block_roundtrip(num in 0u32..=Block::MAX_NUM, more in any::<bool>(), szx in 0u8..=6) {
        let b = Block::new(num, more, szx).unwrap();
        prop_assert_eq!(Block::from_value(&encode_uint(b.to_uint())), Ok(b));
        prop_assert_eq!(b.size(), 16usize << szx);
    }

    /// Observe values are 24-bit (RFC 7641 §2).
    #[test]
    fn observe_roundtrip(n in 0u32..=Observe::MAX) {
        prop_assert_eq!(Observe::from_value(&encode_uint(n)), Ok(Observe(n)));
    }
}

// ---------------------------------------------------------------------------
// Reference models for the differential checks: plain, spec-order code with
// no fast paths, written independently of src/message.
// ---------------------------------------------------------------------------

/// A parsed message as plain data: (type, code, MID, token, options, payload).
type RefMessage = (
    MessageType,
    Code,
    u16,
    Vec<u8>,
    Vec<(u16, Vec<u8>)>,
    Vec<u8>,
);

/// The option header at `at` (§3.1; the caller handles the payload
/// marker): `Ok((delta, value start, value length))`, or the framing error.
/// The value itself is not bounds-checked here.
fn ref_option(b: &[u8], at: usize) -> Result<(usize, usize, usize), ParseErrorKind> {
    let first = b[at];
    let mut i = at + 1;
    let mut ext = |nibble: u8| -> Result<usize, ParseErrorKind> {
        match nibble {
            13 => {
                let e = *b.get(i).ok_or(ParseErrorKind::OptionHeaderTruncated)?;
                i += 1;
                Ok(13 + usize::from(e))
            }
            14 => {
                if i + 2 > b.len() {
                    return Err(ParseErrorKind::OptionHeaderTruncated);
                }
                let v = 269 + usize::from(u16::from_be_bytes([b[i], b[i + 1]]));
                i += 2;
                Ok(v)
            }
            n => Ok(usize::from(n)),
        }
    };
    // Both nibbles are checked for 15 before any extension is read.
    if first >> 4 == 15 {
        return Err(ParseErrorKind::ReservedOptionDelta);
    }
    if first & 15 == 15 {
        return Err(ParseErrorKind::ReservedOptionLength);
    }
    let delta = ext(first >> 4)?;
    let len = ext(first & 15)?;
    Ok((delta, i, len))
}

/// `Message::parse` as the spec reads, errors as `(kind, offset)`.
fn ref_parse(b: &[u8]) -> Result<RefMessage, (ParseErrorKind, usize)> {
    if b.len() < 4 {
        return Err((ParseErrorKind::TooShort, 0));
    }
    if b[0] >> 6 != 1 {
        return Err((ParseErrorKind::UnsupportedVersion, 0));
    }
    let tkl = usize::from(b[0] & 15);
    if tkl > 8 {
        return Err((ParseErrorKind::InvalidTokenLength, 0));
    }
    if b[1] == 0 && (tkl > 0 || b.len() > 4) {
        return Err((ParseErrorKind::EmptyMessageNotEmpty, 4));
    }
    if b.len() < 4 + tkl {
        return Err((ParseErrorKind::TokenTruncated, 4));
    }
    let mut at = 4 + tkl;
    let mut number = 0usize;
    let mut options = Vec::new();
    let mut payload = Vec::new();
    while at < b.len() {
        if b[at] == 0xff {
            if at + 1 == b.len() {
                return Err((ParseErrorKind::EmptyPayload, at));
            }
            payload = b[at + 1..].to_vec();
            break;
        }
        let (delta, start, len) = ref_option(b, at).map_err(|k| (k, at))?;
        number += delta;
        if number > 65535 {
            return Err((ParseErrorKind::OptionNumberOverflow, at));
        }
        if start + len > b.len() {
            return Err((ParseErrorKind::OptionValueTruncated, at));
        }
        options.push((number as u16, b[start..start + len].to_vec()));
        at = start + len;
    }
    Ok((
        MessageType::from_bits(b[0] >> 4),
        Code(b[1]),
        u16::from_be_bytes([b[2], b[3]]),
        b[4..4 + tkl].to_vec(),
        options,
        payload,
    ))
}

/// `Options::new`: the options before the first framing error, number
/// overflow or payload marker.
fn ref_options(region: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    let (mut at, mut number) = (0usize, 0usize);
    while at < region.len() {
        let Ok((delta, start, len)) = ref_option(region, at) else {
            break;
        };
        number += delta;
        if number > 65535 || start + len > region.len() {
            break;
        }
        out.push((number as u16, region[start..start + len].to_vec()));
        at = start + len;
    }
    out
}

/// One step of an encoder run.
#[derive(Debug, Clone)]
enum Op {
    Option(u16, Vec<u8>),
    Uint(u16, u32),
    Payload(Vec<u8>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (option_number(), option_value()).prop_map(|(n, v)| Op::Option(n, v)),
        2 => (option_number(), any::<u32>()).prop_map(|(n, v)| Op::Uint(n, v)),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Op::Payload),
    ]
}

/// The encoder as the spec reads: returns the bytes after each step and
/// each step's result. `cap` is the buffer size.
#[allow(clippy::type_complexity)]
fn ref_encode(
    head: (MessageType, Code, u16, &[u8]),
    ops: &[Op],
    cap: usize,
) -> Result<(Vec<u8>, Vec<Result<(), EncodeError>>), EncodeError> {
    let (ty, code, mid, token) = head;
    if token.len() > 8 {
        return Err(EncodeError::TokenTooLong { len: token.len() });
    }
    if code.is_empty() && !token.is_empty() {
        return Err(EncodeError::EmptyMessageNotEmpty);
    }
    if cap < 4 + token.len() {
        return Err(EncodeError::BufferTooSmall {
            required: 4 + token.len(),
        });
    }
    let mut out = vec![0x40 | (ty.bits() << 4) | token.len() as u8, code.0];
    out.extend_from_slice(&mid.to_be_bytes());
    out.extend_from_slice(token);
    let mut results = Vec::new();
    let mut last = 0u16;
    let mut in_payload = false;
    for op in ops {
        let r = match op {
            Op::Option(n, v) => ref_option_write(&mut out, cap, code, in_payload, &mut last, *n, v),
            Op::Uint(n, u) => {
                let bytes = u.to_be_bytes();
                let v = &bytes[(u.leading_zeros() / 8) as usize..];
                ref_option_write(&mut out, cap, code, in_payload, &mut last, *n, v)
            }
            Op::Payload(p) => {
                if p.is_empty() {
                    Ok(())
                } else if code.is_empty() {
                    Err(EncodeError::EmptyMessageNotEmpty)
                } else {
                    let required = out.len() + usize::from(!in_payload) + p.len();
                    if required > cap {
                        Err(EncodeError::BufferTooSmall { required })
                    } else {
                        if !in_payload {
                            out.push(0xff);
                        }
                        out.extend_from_slice(p);
                        in_payload = true;
                        Ok(())
                    }
                }
            }
        };
        results.push(r);
    }
    Ok((out, results))
}

fn ref_option_write(
    out: &mut Vec<u8>,
    cap: usize,
    code: Code,
    in_payload: bool,
    last: &mut u16,
    n: u16,
    v: &[u8],
) -> Result<(), EncodeError> {
    if in_payload {
        return Err(EncodeError::OptionAfterPayload);
    }
    if code.is_empty() {
        return Err(EncodeError::EmptyMessageNotEmpty);
    }
    if n < *last {
        return Err(EncodeError::OutOfOrder {
            previous: *last,
            next: n,
        });
    }
    if v.len() > 65535 + 269 {
        return Err(EncodeError::ValueTooLong { len: v.len() });
    }
    let split = |x: usize| -> (u8, Vec<u8>) {
        if x < 13 {
            (x as u8, vec![])
        } else if x < 269 {
            (13, vec![(x - 13) as u8])
        } else {
            (14, ((x - 269) as u16).to_be_bytes().to_vec())
        }
    };
    let (dn, dext) = split(usize::from(n - *last));
    let (ln, lext) = split(v.len());
    let required = out.len() + 1 + dext.len() + lext.len() + v.len();
    if required > cap {
        return Err(EncodeError::BufferTooSmall { required });
    }
    out.push((dn << 4) | ln);
    out.extend_from_slice(&dext);
    out.extend_from_slice(&lext);
    out.extend_from_slice(v);
    *last = n;
    Ok(())
}

/// Parses with the crate and returns the same plain data as [`ref_parse`],
/// checking the error's header on the way, and that `Message::parse_fold`
/// gives the same message, the same options (folded in its single pass)
/// and the same error.
fn crate_parse(b: &[u8]) -> Result<RefMessage, (ParseErrorKind, usize)> {
    let folded = Message::parse_fold(b, Vec::new(), |mut seen, o| {
        seen.push((o.number.0, o.value.to_vec()));
        seen
    });
    match (&folded, Message::parse(b)) {
        (Ok((fm, seen)), Ok(m)) => {
            assert_eq!(*fm, m, "parse_fold's message");
            let walked: Vec<_> = m
                .options()
                .map(|o| (o.number.0, o.value.to_vec()))
                .collect();
            assert_eq!(*seen, walked, "parse_fold's options");
        }
        (Err(fe), Err(e)) => assert_eq!(*fe, e, "parse_fold's error"),
        (f, p) => panic!(
            "parse_fold {:?} but parse {p:?}",
            f.as_ref().map(|(m, _)| m)
        ),
    }
    match Message::parse(b) {
        Ok(m) => Ok((
            m.ty(),
            m.code(),
            m.message_id(),
            m.token().to_vec(),
            m.options()
                .map(|o| (o.number.0, o.value.to_vec()))
                .collect(),
            m.payload().to_vec(),
        )),
        Err(e) => {
            assert_eq!(e.header, Header::peek(b), "error header");
            Err((e.kind, e.offset))
        }
    }
}

/// Bytes that are mostly option framing: random option headers with
/// extension bytes and values of random (often wrong) lengths.
fn framing() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        (
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..3),
            0usize..20,
        ),
        0..12,
    )
    .prop_map(|parts| {
        let mut out = Vec::new();
        for (first, ext, len) in parts {
            out.push(first);
            out.extend_from_slice(&ext);
            out.extend(std::iter::repeat_n(0x5a, len));
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// `Message::parse` (and the option iterator over what it accepted)
    /// agrees with the reference parser on near-valid messages.
    #[test]
    fn parse_matches_reference_mutated(bytes in mutated()) {
        prop_assert_eq!(crate_parse(&bytes), ref_parse(&bytes));
    }

    /// The same on a valid header followed by random option framing.
    #[test]
    fn parse_matches_reference_framing(
        head in prop::sample::select(vec![
            &b"\x40\x01\x00\x01"[..], b"\x42\x45\x12\x34\xaa\xbb", b"\x48\x02\xff\xff12345678",
        ]),
        tail in framing(),
    ) {
        let mut bytes = head.to_vec();
        bytes.extend_from_slice(&tail);
        prop_assert_eq!(crate_parse(&bytes), ref_parse(&bytes));
    }

    /// The same on arbitrary bytes.
    #[test]
    fn parse_matches_reference_any(bytes in prop::collection::vec(any::<u8>(), 0..48)) {
        prop_assert_eq!(crate_parse(&bytes), ref_parse(&bytes));
    }

    /// `Options::new` over an unvalidated region yields exactly the options
    /// before the first framing error, overflow or payload marker.
    #[test]
    fn options_new_matches_reference(region in prop_oneof![
        framing(),
        prop::collection::vec(any::<u8>(), 0..48),
    ]) {
        let got: Vec<(u16, Vec<u8>)> =
            Options::new(&region).map(|o| (o.number.0, o.value.to_vec())).collect();
        prop_assert_eq!(got, ref_options(&region));
    }

    /// `Encoder` agrees with the reference writer on every step of a random
    /// sequence (results, and the bytes after the run), including order,
    /// Empty-message, payload and buffer-size errors.
    #[test]
    fn encoder_matches_reference(
        ty in 0u8..4,
        code in prop_oneof![Just(0u8), any::<u8>()],
        mid in any::<u16>(),
        token in prop::collection::vec(any::<u8>(), 0..=9),
        ops in prop::collection::vec(op(), 0..10),
        cap in prop_oneof![0usize..64, 0usize..2048],
    ) {
        let (ty, code) = (MessageType::from_bits(ty), Code(code));
        let expected = ref_encode((ty, code, mid, &token), &ops, cap);
        let mut buf = vec![0u8; cap];
        let got = Encoder::new(&mut buf, ty, code, mid, &token).map(|mut enc| {
            let results: Vec<Result<(), EncodeError>> = ops
                .iter()
                .map(|op| match op {
                    Op::Option(n, v) => enc.option(OptionNumber(*n), v).map(|_| ()),
                    Op::Uint(n, u) => enc.option_uint(OptionNumber(*n), *u).map(|_| ()),
                    Op::Payload(p) => enc.payload(p).map(|_| ()),
                })
                .collect();
            (enc.as_bytes().to_vec(), results)
        });
        prop_assert_eq!(got, expected);
    }
}

fn check_roundtrip(bytes: &[u8]) -> Result<(), TestCaseError> {
    match Message::parse(bytes) {
        Ok(msg) => {
            let mut out = vec![0u8; bytes.len()];
            let n = msg.encode(&mut out).unwrap();
            prop_assert_eq!(&out[..n], bytes);
            prop_assert_eq!(MessageBuf::from(msg).to_bytes().unwrap(), bytes);
        }
        Err(e) => {
            prop_assert!(e.offset <= bytes.len());
            prop_assert_eq!(e.header.is_some(), bytes.len() >= 4);
            if e.kind == ParseErrorKind::TooShort {
                prop_assert!(bytes.len() < 4);
            }
        }
    }
    Ok(())
}
