//! One test per codec rule of RFC 7252 §3 (and friends), citing the section.
//! The exhaustive byte-level cases live in `vectors/`; these tests state the
//! rules in code.

use coap_proto::{
    Block, Code, ContentFormat, EncodeError, Encoder, Message, MessageType, OptionNumber,
    OptionProblem, ParseErrorKind, ValueError,
};

fn kind(bytes: &[u8]) -> (ParseErrorKind, usize) {
    let e = Message::parse(bytes).unwrap_err();
    (e.kind, e.offset)
}

// RFC 7252 §3: "Version (Ver): ... Implementations of this specification MUST
// set this field to 1 (01 binary). Other values are reserved for future
// versions. Messages with unknown version numbers MUST be silently ignored."
#[test]
fn rfc7252_3_version_must_be_1() {
    for v in [0u8, 2, 3] {
        assert_eq!(
            kind(&[v << 6, 1, 0, 1]),
            (ParseErrorKind::UnsupportedVersion, 0)
        );
    }
}

// RFC 7252 §3: "Lengths 9-15 are reserved, MUST NOT be sent, and MUST be
// processed as a message format error."
#[test]
fn rfc7252_3_token_length_9_to_15_is_a_format_error() {
    for tkl in 9u8..=15 {
        let mut b = vec![0x40 | tkl, 1, 0, 1];
        b.extend(std::iter::repeat_n(0, 15));
        assert_eq!(kind(&b), (ParseErrorKind::InvalidTokenLength, 0));
    }
}

// RFC 7252 §3: the fixed header is 4 bytes.
#[test]
fn rfc7252_3_shorter_than_header() {
    for n in 0..4 {
        let e = Message::parse(&[0x40, 1, 0][..n.min(3)]).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::TooShort);
        assert!(e.header.is_none());
    }
}

// RFC 7252 §3.1: delta nibble 15 is "Reserved for the Payload Marker. If the
// field is set to this value but the entire byte is not the payload marker,
// this MUST be processed as a message format error."
#[test]
fn rfc7252_3_1_delta_nibble_15() {
    assert_eq!(
        kind(&[0x40, 1, 0, 1, 0xf0]),
        (ParseErrorKind::ReservedOptionDelta, 4)
    );
    assert_eq!(
        kind(&[0x40, 1, 0, 1, 0xb1, b'a', 0xfe]),
        (ParseErrorKind::ReservedOptionDelta, 6)
    );
}

// RFC 7252 §3.1: length nibble 15 is "Reserved for future use. If the field
// is set to this value, it MUST be processed as a message format error."
#[test]
fn rfc7252_3_1_length_nibble_15() {
    assert_eq!(
        kind(&[0x40, 1, 0, 1, 0xbf]),
        (ParseErrorKind::ReservedOptionLength, 4)
    );
}

// RFC 7252 §3.1: the extended forms 13 (+1 byte, minus 13) and 14 (+2 bytes,
// minus 269), and their absence at the end of the datagram.
#[test]
fn rfc7252_3_1_extended_forms_and_truncation() {
    // delta 13 + 0x00 = option 13, delta 14 + 0x0000 = +269.
    let msg = Message::parse(&[0x40, 1, 0, 1, 0xd0, 0x00, 0xe0, 0x00, 0x00]).unwrap();
    let nums: Vec<u16> = msg.options().map(|o| o.number.0).collect();
    assert_eq!(nums, [13, 282]);
    assert_eq!(
        kind(&[0x40, 1, 0, 1, 0xd0]),
        (ParseErrorKind::OptionHeaderTruncated, 4)
    );
    assert_eq!(
        kind(&[0x40, 1, 0, 1, 0xe0, 0x01]),
        (ParseErrorKind::OptionHeaderTruncated, 4)
    );
    assert_eq!(
        kind(&[0x40, 1, 0, 1, 0x1d]),
        (ParseErrorKind::OptionHeaderTruncated, 4)
    );
    assert_eq!(
        kind(&[0x40, 1, 0, 1, 0x1e, 0x00]),
        (ParseErrorKind::OptionHeaderTruncated, 4)
    );
    assert_eq!(
        kind(&[0x40, 1, 0, 1, 0x12, b'a']),
        (ParseErrorKind::OptionValueTruncated, 4)
    );
}

// RFC 7252 §3.1: option numbers are 16-bit; a running sum above 65535 is not
// representable.
#[test]
fn rfc7252_3_1_option_number_overflow() {
    // 269 + 0xfef2 = 65535 is the largest number; one more overflows.
    let ok = [0x40, 1, 0, 1, 0xe0, 0xfe, 0xf2];
    assert_eq!(
        Message::parse(&ok)
            .unwrap()
            .options()
            .next()
            .unwrap()
            .number
            .0,
        65535
    );
    assert_eq!(
        kind(&[0x40, 1, 0, 1, 0xe0, 0xfe, 0xf2, 0x10]),
        (ParseErrorKind::OptionNumberOverflow, 7)
    );
    assert_eq!(
        kind(&[0x40, 1, 0, 1, 0xe0, 0xff, 0xff]),
        (ParseErrorKind::OptionNumberOverflow, 4)
    );
}

// RFC 7252 §3: "The presence of a marker followed by a zero-length payload
// MUST be processed as a message format error."
#[test]
fn rfc7252_3_marker_with_empty_payload() {
    assert_eq!(
        kind(&[0x40, 1, 0, 1, 0xff]),
        (ParseErrorKind::EmptyPayload, 4)
    );
}

// RFC 7252 §4.1: "An Empty message has the Code field set to 0.00. The Token
// Length field MUST be set to 0 and bytes of data MUST NOT be present after
// the Message ID field. If there are any bytes, they MUST be processed as a
// message format error."
#[test]
fn rfc7252_4_1_empty_message_carries_nothing() {
    assert!(Message::parse(&[0x40, 0, 0, 1]).is_ok());
    assert_eq!(
        kind(&[0x41, 0, 0, 1, 0xaa]),
        (ParseErrorKind::EmptyMessageNotEmpty, 4)
    );
    assert_eq!(
        kind(&[0x40, 0, 0, 1, 0xff, 1]),
        (ParseErrorKind::EmptyMessageNotEmpty, 4)
    );
    let mut buf = [0u8; 8];
    assert_eq!(
        Encoder::new(&mut buf, MessageType::Con, Code::EMPTY, 1, &[1]).unwrap_err(),
        EncodeError::EmptyMessageNotEmpty
    );
}

// RFC 7252 §4.2: a receiver must be able to answer a malformed CON with RST,
// so the header survives the error.
#[test]
fn rfc7252_4_2_header_of_malformed_message_is_readable() {
    let e = Message::parse(&[0x40, 0x01, 0xab, 0xcd, 0xf3]).unwrap_err();
    let h = e.header.unwrap();
    assert_eq!(
        (h.ty, h.code, h.message_id),
        (MessageType::Con, Code::GET, 0xabcd)
    );
}

// RFC 7252 §3.2: uint values "A sender SHOULD represent the integer with as
// few bytes as possible"; the receiver accepts leading zeros.
#[test]
fn rfc7252_3_2_uint_minimal_on_write_lenient_on_read() {
    let msg = Message::parse(&[0x40, 1, 0, 1, 0xc2, 0x00, 0x32]).unwrap();
    assert_eq!(msg.content_format(), Some(ContentFormat::JSON));
    let mut buf = [0u8; 8];
    let mut enc = Encoder::new(&mut buf, MessageType::Con, Code::GET, 1, &[]).unwrap();
    enc.option_uint(OptionNumber::CONTENT_FORMAT, 50).unwrap();
    assert_eq!(enc.as_bytes(), &[0x40, 1, 0, 1, 0xc1, 0x32]);
}

// RFC 7252 §5.4.3 / §5.4.5: length-bound violations and repeated
// non-repeatable options are per-option findings, not parse failures.
#[test]
fn rfc7252_5_4_3_and_5_4_5_bad_options_reported_per_option() {
    // ETag of 9 bytes (bound 1-8), then Content-Format twice.
    let mut b = vec![0x40, 1, 0, 1, 0x49];
    b.extend([0u8; 9]);
    b.extend([0x81, 0x00, 0x01, 0x29]);
    let msg = Message::parse(&b).unwrap();
    let bad: Vec<_> = msg.invalid_options().map(|(o, p)| (o.number, p)).collect();
    assert_eq!(
        bad,
        [
            (OptionNumber::ETAG, OptionProblem::BadLength),
            (OptionNumber::CONTENT_FORMAT, OptionProblem::Repeated)
        ]
    );
}

// RFC 7252 §5.4.6: critical = bit 0, unsafe = bit 1, NoCacheKey = bits 2-4
// all set (only for safe options).
#[test]
fn rfc7252_5_4_6_properties_from_the_number() {
    for n in OptionNumber::KNOWN {
        assert_eq!(n.is_critical(), n.0 % 2 == 1);
        assert_eq!(n.is_unsafe(), n.0 & 2 == 2);
    }
    // The table in §12.2: If-Match C, Uri-Host C U, ETag -, If-None-Match C,
    // Uri-Port C U, Location-Path -, Uri-Path C U, Content-Format -,
    // Max-Age U, Uri-Query C U, Accept C, Location-Query -, Proxy-Uri C U,
    // Proxy-Scheme C U, Size1 N.
    let table = [
        (1, true, false, false),
        (3, true, true, false),
        (4, false, false, false),
        (5, true, false, false),
        (7, true, true, false),
        (8, false, false, false),
        (11, true, true, false),
        (12, false, false, false),
        (14, false, true, false),
        (15, true, true, false),
        (17, true, false, false),
        (20, false, false, false),
        (35, true, true, false),
        (39, true, true, false),
        (60, false, false, true),
    ];
    for (n, c, u, nck) in table {
        let n = OptionNumber(n);
        assert_eq!(
            (n.is_critical(), n.is_unsafe(), n.is_no_cache_key()),
            (c, u, nck),
            "{n:?}"
        );
    }
}

// RFC 7959 §2.2: SZX 7 is reserved; block sizes are 2^(SZX+4).
#[test]
fn rfc7959_2_2_block_values() {
    assert_eq!(Block::from_value(&[0x0f]), Err(ValueError::ReservedSzx));
    let b = Block::from_value(&[0x3e]).unwrap();
    assert_eq!((b.num(), b.more(), b.size()), (3, true, 1024));
    assert_eq!(
        Block::from_value(&[0xff, 0xff, 0xf6]).unwrap().num(),
        Block::MAX_NUM
    );
}

// RFC 7252 §12.1: code registry and display.
#[test]
fn rfc7252_12_1_codes_display() {
    assert_eq!(Code::CONTENT.to_string(), "2.05 Content");
    assert_eq!(Code::GET.to_string(), "0.01 GET");
    assert_eq!(Code::CONTINUE.to_string(), "2.31 Continue");
    assert_eq!(
        Code::TOO_MANY_REQUESTS.to_string(),
        "4.29 Too Many Requests"
    );
    assert_eq!(
        Code::HOP_LIMIT_REACHED.to_string(),
        "5.08 Hop Limit Reached"
    );
    assert_eq!(Code::IPATCH.name(), Some("iPATCH"));
    // Every value round-trips through the newtype.
    for v in 0..=255u8 {
        assert_eq!(u8::from(Code(v)), v);
        assert_eq!(Code::new(Code(v).class(), Code(v).detail()), Code(v));
    }
}

// RFC 7252 §12.3: Content-Format registry, media types in both directions.
#[test]
fn rfc7252_12_3_content_formats_both_directions() {
    for cf in [
        0u16, 40, 41, 42, 47, 50, 60, 61, 96, 98, 110, 112, 11050, 11060,
    ] {
        let cf = ContentFormat(cf);
        let media = cf.to_string();
        assert!(cf.media_type().is_some(), "{cf:?} unknown");
        assert_eq!(ContentFormat::from_media_type(&media), Some(cf), "{media}");
    }
}

// The one-line dump (Wireshark-like) from the issue.
#[test]
fn display_one_line_dump() {
    let mut buf = [0u8; 32];
    let mut enc =
        Encoder::new(&mut buf, MessageType::Con, Code::GET, 0x7d34, &[0x20, 0xfa]).unwrap();
    enc.option(OptionNumber::URI_PATH, b"temp").unwrap();
    enc.option_uint(OptionNumber::ACCEPT, 50).unwrap();
    let n = enc.finish();
    let msg = Message::parse(&buf[..n]).unwrap();
    assert_eq!(
        msg.to_string(),
        "CON GET mid=0x7d34 tok=20fa Uri-Path:temp Accept:50"
    );
    let resp = Message::parse(b"\x62\x45\x7d\x34\x20\xfa\xc0\xb1\x3e\xff22.3 C").unwrap();
    assert_eq!(
        resp.to_string(),
        "ACK 2.05 mid=0x7d34 tok=20fa Content-Format:0 Block2:3/1/1024 payload=6B"
    );
    let odd = Message::parse(b"\x40\x01\x00\x01\xb3a b\xd2\xf3\x00\x01").unwrap();
    assert_eq!(
        odd.to_string(),
        "CON GET mid=0x0001 Uri-Path:a\\x20b #267:0x0001"
    );
}
