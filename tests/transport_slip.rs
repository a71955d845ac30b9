//! CoAP over SLIP on an in-memory byte stream, with the code of
//! `examples/slip.rs`: the framing, and whole client/server runs over a
//! clean and a noisy line, bounded in time.
#![cfg(feature = "std")]

#[allow(dead_code)]
#[path = "../examples/slip.rs"]
mod slip;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use coap_proto::Code;
use slip::{
    BINARY, COAP_FRAME, Decoder, END, ESC, ESC_END, ESC_ESC, Options, Report, encode_frame, fcs16,
    run,
};

fn frame(datagram: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(datagram, &mut out);
    out
}

fn decode(bytes: &[u8]) -> (Vec<Vec<u8>>, Decoder) {
    let mut d = Decoder::new(1152);
    let mut frames = VecDeque::new();
    d.feed(bytes, &mut frames);
    (frames.into(), d)
}

#[test]
fn fcs16_is_rfc_1662s() {
    // The CRC-16/X-25 check value, and RFC 1662's "good final FCS" when a
    // frame's FCS is run through the FCS again.
    assert_eq!(fcs16(b"123456789"), 0x906E);
    let mut data = b"some frame".to_vec();
    data.extend_from_slice(&fcs16(b"some frame").to_le_bytes());
    assert_eq!(!fcs16(&data), 0xF0B8);
}

#[test]
fn frames_escape_end_and_esc() {
    // RFC 1055: END and ESC never appear inside a frame.
    let bytes = frame(&[END, ESC, 7]);
    let fcs = fcs16(&[COAP_FRAME, END, ESC, 7]).to_le_bytes();
    let mut expected = vec![END, COAP_FRAME, ESC, ESC_END, ESC, ESC_ESC, 7];
    for b in fcs {
        match b {
            END => expected.extend_from_slice(&[ESC, ESC_END]),
            ESC => expected.extend_from_slice(&[ESC, ESC_ESC]),
            b => expected.push(b),
        }
    }
    expected.push(END);
    assert_eq!(bytes, expected);
    let inner = &bytes[1..bytes.len() - 1];
    assert!(!inner.contains(&END));
}

#[test]
fn decoder_reassembles_frames_split_anywhere() {
    let datagrams: [&[u8]; 4] = [b"\x40\x01\x00\x01", BINARY, &[END; 40], &[ESC; 3]];
    let mut stream = Vec::new();
    for d in datagrams {
        encode_frame(d, &mut stream);
    }
    for chunk in 1..=stream.len() {
        let mut d = Decoder::new(1152);
        let mut frames = VecDeque::new();
        for piece in stream.chunks(chunk) {
            d.feed(piece, &mut frames);
        }
        assert_eq!(Vec::from(frames), datagrams, "chunks of {chunk}");
        assert_eq!((d.stats.frames, d.stats.bad), (4, 0));
    }
}

#[test]
fn decoder_drops_damaged_frames_and_resynchronises() {
    let good = frame(b"\x40\x01\x00\x02");
    // Every single-bit error in a frame is caught by the FCS or the framing,
    // and the next frame still arrives.
    for i in 0..good.len() * 8 {
        let mut damaged = good.clone();
        damaged[i / 8] ^= 1 << (i % 8);
        damaged.extend_from_slice(&good);
        let (frames, d) = decode(&damaged);
        assert!(
            frames.iter().all(|f| f == b"\x40\x01\x00\x02"),
            "bit {i}: {frames:?}"
        );
        assert!(!frames.is_empty(), "bit {i}: the intact frame was lost");
        // A flipped delimiter can merge or split frames, never pass one.
        assert!(frames.len() + usize::try_from(d.stats.bad).unwrap() >= 1);
    }
    // A lost byte, likewise.
    for i in 0..good.len() {
        let mut damaged = good.clone();
        damaged.remove(i);
        damaged.extend_from_slice(&good);
        let (frames, _) = decode(&damaged);
        assert!(frames.iter().all(|f| f == b"\x40\x01\x00\x02"), "byte {i}");
        assert!(!frames.is_empty(), "byte {i}");
    }
}

#[test]
fn decoder_rejects_bad_escapes_other_types_and_oversized_frames() {
    // An invalid escape.
    let (frames, d) = decode(&[END, COAP_FRAME, ESC, 0x01, 0x02, 0x03, END]);
    assert!(frames.is_empty());
    assert_eq!(d.stats.bad, 1);
    // A frame of another Slipmux type (0x0A: diagnostic text) is not CoAP.
    let mut text = vec![END, 0x0A];
    text.extend_from_slice(b"hello");
    text.push(END);
    let (frames, d) = decode(&text);
    assert!(frames.is_empty());
    assert_eq!(d.stats.bad, 1);
    // Too long for the configured message size: dropped up to the next END.
    let mut d = Decoder::new(16);
    let mut frames = VecDeque::new();
    d.feed(&frame(&[0x55; 17]), &mut frames);
    d.feed(&frame(&[0x55; 16]), &mut frames);
    assert_eq!(Vec::from(frames), [vec![0x55; 16]]);
    assert_eq!((d.stats.oversized, d.stats.bad), (1, 0));
    // Empty frames (back-to-back ENDs) are not frames.
    let (frames, d) = decode(&[END; 10]);
    assert!(frames.is_empty());
    assert_eq!(d.stats, slip::DecoderStats::default());
}

fn check_answers(report: &Report) {
    let expected: [(&str, Code, &[u8]); 7] = [
        ("CON GET /hello", Code::CONTENT, b"hello over SLIP"),
        ("CON GET /led", Code::CONTENT, b"off"),
        ("CON PUT /led", Code::CHANGED, b""),
        ("CON GET /led", Code::CONTENT, b"on"),
        ("CON POST /echo", Code::CONTENT, BINARY),
        ("CON DELETE /led", Code::DELETED, b""),
        ("CON GET /missing", Code::NOT_FOUND, b""),
    ];
    assert_eq!(report.exchanges.len(), 8);
    for (e, (label, code, payload)) in report.exchanges.iter().zip(expected) {
        assert_eq!(e.request, label);
        assert_eq!(e.code, Some(code), "{label}");
        assert_eq!(e.payload, payload, "{label}");
    }
    assert!(report.pong, "ping");
}

#[test]
fn clean_line_carries_every_exchange() {
    let started = Instant::now();
    let report = run(Options {
        lossy: false,
        seed: 1,
        verbose: false,
    })
    .unwrap();
    check_answers(&report);
    let non = &report.exchanges[7];
    assert_eq!(
        (non.request.as_str(), non.code, non.payload.as_slice()),
        (
            "NON GET /hello",
            Some(Code::CONTENT),
            &b"hello over SLIP"[..]
        )
    );
    assert_eq!(report.handled, 8);
    assert_eq!(report.damaged, 0);
    assert_eq!(report.client.retransmissions, 0);
    assert_eq!(report.server.duplicates, 0);
    assert_eq!(report.decoders.0.frames, 9); // 8 answers and the pong
    assert_eq!(report.decoders.1.frames, 9);
    assert_eq!((report.decoders.0.bad, report.decoders.1.bad), (0, 0));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn noisy_line_recovers_by_retransmission() {
    // RFC 7252 §4.2, §4.5: damaged frames are dropped like lost datagrams;
    // CON requests are retransmitted, and duplicates answered from the
    // server's cache, so each CON request is handled exactly once.
    let started = Instant::now();
    let mut damaged = 0;
    let mut retransmissions = 0;
    for seed in [1, 4, 9] {
        let report = run(Options {
            lossy: true,
            seed,
            verbose: false,
        })
        .unwrap();
        check_answers(&report);
        // The NON request may be lost (it is never retransmitted); the
        // seven CON requests reach the handler once each.
        assert!(
            (7..=8).contains(&report.handled),
            "seed {seed}: {}",
            report.handled
        );
        let dropped = report.decoders.0.bad + report.decoders.1.bad;
        assert!(dropped <= report.damaged, "seed {seed}");
        assert!(
            report.client.retransmissions >= report.decoders.1.bad.min(1),
            "seed {seed}"
        );
        damaged += report.damaged;
        retransmissions += report.client.retransmissions;
    }
    assert!(damaged > 0, "the noisy line damaged nothing");
    assert!(retransmissions > 0, "nothing was retransmitted");
    assert!(started.elapsed() < Duration::from_secs(15));
}
