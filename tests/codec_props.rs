//! Property tests for the codec (RFC 7252 §3):
//! - any message built with the encoder parses back equal;
//! - any byte string either fails to parse or re-encodes to itself
//!   (canonical framing), and parsing never panics;
//! - typed option values round-trip.

use coap_proto::{
    Block, Code, EncodeError, Encoder, Message, MessageBuf, MessageType, Observe, OptionNumber,
    ParseErrorKind, decode_uint, encode_uint,
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
