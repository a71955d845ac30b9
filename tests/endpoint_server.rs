//! Deterministic scenario tests for the server side of the endpoint
//! (RFC 7252 §3, §4.5, §5.2, §5.4, §8.2). Every test uses exact instants
//! and a fixed seed, and ends by checking that nothing is left over once
//! EXCHANGE_LIFETIME has passed (`common::finish`).

mod common;

use core::time::Duration;

use coap_proto::endpoint::{Config, Error, Event, ResponseHandle};
use coap_proto::{Code, Instant, MessageBuf, MessageType, OptionNumber};
use common::*;

use MessageType::{Ack, Con, Non, Rst};

const TOK: &[u8] = &[0xaa, 0xbb];

fn con_get(mid: u16) -> Vec<u8> {
    msg(
        Con,
        Code::GET,
        mid,
        TOK,
        &[(OptionNumber::URI_PATH, b"temp")],
        b"",
    )
}

fn non_get(mid: u16) -> Vec<u8> {
    msg(
        Non,
        Code::GET,
        mid,
        TOK,
        &[(OptionNumber::URI_PATH, b"temp")],
        b"",
    )
}

fn respond(s: &mut Ep, at: Instant, h: ResponseHandle, code: Code, payload: &[u8]) {
    s.respond(at, h, &answer(code, payload)).unwrap();
}

#[track_caller]
fn just(s: &mut Ep, expected: Event<Addr>) {
    let e = events(s);
    assert_eq!(format!("{e:?}"), format!("{:?}", [expected]));
}

// ----- §4.3 -------------------------------------------------------------------

#[test]
fn rfc7252_4_3_empty_con_gets_rst() {
    // RFC 7252 §4.3: an empty CON ("ping") is answered with RST, same MID;
    // an empty NON is ignored.
    let mut s = ep(Config::default());
    s.handle_datagram(secs(1), CLIENT, &[0x40, 0x00, 0x12, 0x34]);
    assert_eq!(one(&mut s, CLIENT), [0x70, 0x00, 0x12, 0x34]);
    s.handle_datagram(secs(1), CLIENT, &[0x50, 0x00, 0x12, 0x35]);
    silent(&mut s);
    no_events(&mut s);
    assert!(
        s.tables().is_empty(),
        "a ping leaves no state: {:?}",
        s.tables()
    );
    assert_eq!((s.stats().resets_sent, s.stats().unexpected), (1, 1));
    finish_quiet(&mut s, secs(1));
}

// ----- §5.2.1 / §4.5: piggybacked responses and deduplication ----------------

#[test]
fn rfc7252_5_2_1_piggybacked_response_bytes() {
    // RFC 7252 §5.2.1: the response rides on the ACK: same MID and token.
    let mut s = ep(Config::default());
    s.handle_datagram(secs(1), CLIENT, &con_get(0x1234));
    silent(&mut s);
    let req = take_request(&mut s);
    assert_eq!((req.peer, req.multicast), (CLIENT, false));
    assert_eq!(
        req.message().option(OptionNumber::URI_PATH),
        Some(&b"temp"[..])
    );
    respond(&mut s, secs(1), req.handle, Code::CONTENT, b"22");
    assert_eq!(
        one(&mut s, CLIENT),
        [0x62, 0x45, 0x12, 0x34, 0xaa, 0xbb, 0xff, b'2', b'2']
    );
    // A second answer is refused: the handle is used up.
    assert_eq!(
        s.respond(secs(1), req.handle, &answer(Code::CONTENT, b"")),
        Err(Error::UnknownHandle)
    );
    assert_eq!(s.tables().pending, 0);
    assert_eq!(s.tables().dedup, 1);
    finish_quiet(&mut s, secs(1));
}

#[test]
fn rfc7252_4_5_duplicate_con_replays_the_piggybacked_response() {
    // RFC 7252 §4.5: a duplicate CON within EXCHANGE_LIFETIME gets the same
    // answer again and is not delivered a second time; afterwards the MID
    // is new again.
    let mut s = ep(Config::default());
    s.handle_datagram(Instant::ZERO, CLIENT, &con_get(0x1234));
    let req = take_request(&mut s);
    respond(&mut s, Instant::ZERO, req.handle, Code::CONTENT, b"22");
    let first = one(&mut s, CLIENT);
    for t in [secs(2), secs(5), secs(246)] {
        s.handle_datagram(t, CLIENT, &con_get(0x1234));
        assert_eq!(one(&mut s, CLIENT), first, "replayed at {t:?}");
        no_events(&mut s);
    }
    assert_eq!(s.stats().duplicates, 3);
    assert_eq!(s.stats().requests_in, 1);
    // The same MID from another peer is another message.
    s.handle_datagram(secs(246), OTHER, &con_get(0x1234));
    let other = take_request(&mut s);
    assert_eq!(other.peer, OTHER);
    respond(&mut s, secs(246), other.handle, Code::CONTENT, b"");
    let _ = one(&mut s, OTHER);
    // The cache entry lives exactly EXCHANGE_LIFETIME.
    assert_eq!(s.poll_timeout(), Some(secs(247)));
    s.handle_timeout(secs(247));
    assert_eq!(s.tables().dedup, 1);
    s.handle_datagram(secs(247), CLIENT, &con_get(0x1234));
    let again = take_request(&mut s);
    respond(&mut s, secs(247), again.handle, Code::CONTENT, b"22");
    assert_eq!(one(&mut s, CLIENT), first);
    finish_quiet(&mut s, secs(247));
}

#[test]
fn rfc7252_4_5_duplicate_before_the_answer_gets_an_empty_ack() {
    // RFC 7252 §4.5, §5.2.2: a duplicate arriving while the application is
    // still working gets an empty ACK at once; the answer then goes as a
    // separate CON response, retransmitted until acknowledged.
    let mut s = ep(Config::default());
    s.handle_datagram(Instant::ZERO, CLIENT, &con_get(0x0042));
    let req = take_request(&mut s);
    silent(&mut s);
    s.handle_datagram(ms(300), CLIENT, &con_get(0x0042));
    assert_eq!(one(&mut s, CLIENT), [0x60, 0x00, 0x00, 0x42]);
    no_events(&mut s);
    // No second empty ACK when Config::separate_ack_delay passes.
    s.handle_timeout(secs(1));
    silent(&mut s);
    // Another duplicate replays the empty ACK.
    s.handle_datagram(secs(2), CLIENT, &con_get(0x0042));
    assert_eq!(one(&mut s, CLIENT), [0x60, 0x00, 0x00, 0x42]);
    respond(&mut s, secs(3), req.handle, Code::CONTENT, b"x");
    let sep = one(&mut s, CLIENT);
    let m = parse(&sep);
    assert_eq!(
        (m.ty(), m.code(), m.token(), m.payload()),
        (Con, Code::CONTENT, TOK, &b"x"[..])
    );
    let retransmit = s.poll_timeout().unwrap();
    assert!(
        retransmit >= secs(5) && retransmit <= secs(6),
        "{retransmit:?}"
    );
    s.handle_timeout(retransmit);
    assert_eq!(one(&mut s, CLIENT), sep);
    s.handle_datagram(retransmit, CLIENT, &empty(Ack, m.message_id()));
    just(&mut s, Event::ResponseDelivered(req.handle));
    silent(&mut s);
    assert_eq!(s.stats().requests_in, 1);
    assert_eq!(s.stats().duplicates, 2);
    finish_quiet(&mut s, retransmit);
}

#[test]
fn rfc7252_4_5_duplicate_non_dropped_within_non_lifetime() {
    // RFC 7252 §4.5: a duplicate NON within NON_LIFETIME is dropped; after
    // it the same MID is a new message.
    let mut s = ep(Config::default());
    s.handle_datagram(Instant::ZERO, CLIENT, &non_get(0x0777));
    let req = take_request(&mut s);
    s.handle_datagram(secs(100), CLIENT, &non_get(0x0777));
    silent(&mut s);
    no_events(&mut s);
    respond(&mut s, secs(100), req.handle, Code::CONTENT, b"");
    let _ = one(&mut s, CLIENT);
    s.handle_datagram(secs(144), CLIENT, &non_get(0x0777));
    silent(&mut s);
    no_events(&mut s);
    assert_eq!(s.stats().duplicates, 2);
    s.handle_timeout(secs(145));
    s.handle_datagram(secs(145), CLIENT, &non_get(0x0777));
    let again = take_request(&mut s);
    respond(&mut s, secs(145), again.handle, Code::CONTENT, b"");
    let _ = one(&mut s, CLIENT);
    finish_quiet(&mut s, secs(145));
}

#[test]
fn rfc7252_4_5_non_entry_expires_at_non_lifetime_behind_an_older_con_entry() {
    // RFC 7252 §4.5/§4.8.2: a CON is deduplicated for EXCHANGE_LIFETIME
    // (247 s), a NON for NON_LIFETIME (145 s). A NON entry made after a
    // CON entry expires first, at its own deadline, which poll_timeout
    // reports exactly.
    let mut s = ep(Config::default());
    s.handle_datagram(Instant::ZERO, CLIENT, &con_get(0x0001));
    let r = take_request(&mut s);
    respond(&mut s, Instant::ZERO, r.handle, Code::CONTENT, b"c");
    let _ = one(&mut s, CLIENT);
    s.handle_datagram(secs(1), CLIENT, &non_get(0x0002));
    let r = take_request(&mut s);
    respond(&mut s, secs(1), r.handle, Code::CONTENT, b"n");
    let _ = one(&mut s, CLIENT);
    assert_eq!(s.tables().dedup, 2);
    assert_eq!(s.poll_timeout(), Some(secs(146)));
    s.handle_timeout(secs(146));
    assert_eq!(s.tables().dedup, 1, "the NON entry is gone at 1 s + 145 s");
    assert_eq!(s.poll_timeout(), Some(secs(247)));
    // The NON's MID is a new message again; the CON's is still a duplicate.
    s.handle_datagram(secs(146), CLIENT, &non_get(0x0002));
    let again = take_request(&mut s);
    respond(&mut s, secs(146), again.handle, Code::CONTENT, b"n");
    let _ = one(&mut s, CLIENT);
    s.handle_datagram(secs(146), CLIENT, &con_get(0x0001));
    assert_eq!(parse(&one(&mut s, CLIENT)).payload(), b"c");
    no_events(&mut s);
    finish_quiet(&mut s, secs(146));
}

#[test]
fn rfc7252_4_5_dedup_cache_is_bounded_oldest_first() {
    // RFC 7252 §4.5 with bounded memory: when the cache is full the oldest
    // entry goes (counted), and a duplicate of it is then new again.
    let mut cfg = Config::default();
    cfg.max_dedup = 3;
    let mut s = ep(cfg);
    for mid in 1..=4u16 {
        s.handle_datagram(secs(u64::from(mid)), CLIENT, &con_get(mid));
        let r = take_request(&mut s);
        respond(
            &mut s,
            secs(u64::from(mid)),
            r.handle,
            Code::CONTENT,
            &[mid as u8],
        );
        let _ = one(&mut s, CLIENT);
    }
    assert_eq!(s.tables().dedup, 3);
    assert_eq!(s.stats().dedup_evictions, 1);
    // MID 4 is still cached, MID 1 was evicted.
    s.handle_datagram(secs(5), CLIENT, &con_get(4));
    assert_eq!(parse(&one(&mut s, CLIENT)).payload(), [4]);
    s.handle_datagram(secs(5), CLIENT, &con_get(1));
    let r = take_request(&mut s);
    respond(&mut s, secs(5), r.handle, Code::CONTENT, &[1]);
    let _ = one(&mut s, CLIENT);
    assert_eq!(s.stats().dedup_evictions, 2);
    finish_quiet(&mut s, secs(5));
}

// ----- §5.2.2: separate responses --------------------------------------------

#[test]
fn rfc7252_5_2_2_empty_ack_after_separate_ack_delay() {
    // RFC 7252 §5.2.2: when the application has not answered within
    // Config::separate_ack_delay, the endpoint sends an empty ACK; the
    // answer becomes a separate CON response, retransmitted with the §4.2
    // schedule, and ResponseFailed if never acknowledged.
    let mut s = ep(Config::default());
    s.handle_datagram(secs(10), CLIENT, &con_get(0x0100));
    let req = take_request(&mut s);
    assert_eq!(s.poll_timeout(), Some(secs(11)));
    s.handle_timeout(us(11_000_000 - 1));
    silent(&mut s);
    s.handle_timeout(secs(11));
    assert_eq!(one(&mut s, CLIENT), [0x60, 0x00, 0x01, 0x00]);
    respond(&mut s, secs(20), req.handle, Code::CONTENT, b"late");
    let sep = one(&mut s, CLIENT);
    let m = parse(&sep);
    assert_eq!((m.ty(), m.code(), m.token()), (Con, Code::CONTENT, TOK));
    assert_ne!(
        m.message_id(),
        0x0100,
        "a separate response has its own MID"
    );
    let t0 = s.poll_timeout().unwrap() - secs(20);
    assert!(t0 >= Duration::from_secs(2) && t0 <= Duration::from_secs(3));
    let (sent, evs) = finish(&mut s, secs(20) + t0 * 31);
    let instants: Vec<Instant> = sent.iter().map(|(t, _, _)| *t).collect();
    assert_eq!(
        instants,
        [
            secs(20) + t0,
            secs(20) + t0 * 3,
            secs(20) + t0 * 7,
            secs(20) + t0 * 15
        ]
    );
    assert!(sent.iter().all(|(_, to, b)| *to == CLIENT && *b == sep));
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].0, secs(20) + t0 * 31);
    assert!(matches!(evs[0].1, Event::ResponseFailed(h) if h == req.handle));
    assert_eq!((s.stats().retransmissions, s.stats().timeouts), (4, 1));
}

#[test]
fn rfc7252_5_2_2_accept_acknowledges_at_once() {
    // RFC 7252 §5.2.2: the application may ask for the empty ACK at once.
    // A RST to the separate response fails it.
    let mut s = ep(Config::default());
    s.handle_datagram(Instant::ZERO, CLIENT, &con_get(0x0200));
    let req = take_request(&mut s);
    s.accept(ms(1), req.handle).unwrap();
    assert_eq!(one(&mut s, CLIENT), [0x60, 0x00, 0x02, 0x00]);
    s.accept(ms(2), req.handle).unwrap(); // idempotent
    s.handle_timeout(secs(1));
    silent(&mut s);
    respond(&mut s, secs(2), req.handle, Code::CHANGED, b"");
    let sep = one(&mut s, CLIENT);
    s.handle_datagram(secs(3), CLIENT, &empty(Rst, parse(&sep).message_id()));
    just(&mut s, Event::ResponseFailed(req.handle));
    silent(&mut s);
    assert_eq!(s.accept(secs(3), req.handle), Err(Error::UnknownHandle));
    finish_quiet(&mut s, secs(3));
}

#[test]
fn rfc7252_5_2_2_no_automatic_empty_ack() {
    // Config::separate_ack_delay = None: no empty ACK on its own; a late
    // answer is still piggybacked.
    let mut cfg = Config::default();
    cfg.separate_ack_delay = None;
    let mut s = ep(cfg);
    s.handle_datagram(Instant::ZERO, CLIENT, &con_get(0x0300));
    let req = take_request(&mut s);
    assert_eq!(s.poll_timeout(), Some(secs(247)), "only the cache expiry");
    respond(&mut s, secs(10), req.handle, Code::CONTENT, b"");
    assert_eq!(one(&mut s, CLIENT), [0x62, 0x45, 0x03, 0x00, 0xaa, 0xbb]);
    finish_quiet(&mut s, secs(10));
}

#[test]
fn rfc7252_5_2_2_separate_response_as_non() {
    // RFC 7252 §5.2.2: the separate response may be NON
    // (Config::separate_response_con = false); it is not retransmitted.
    let mut cfg = Config::default();
    cfg.separate_response_con = false;
    let mut s = ep(cfg);
    s.handle_datagram(Instant::ZERO, CLIENT, &con_get(0x0400));
    let req = take_request(&mut s);
    s.accept(Instant::ZERO, req.handle).unwrap();
    let _ = one(&mut s, CLIENT);
    respond(&mut s, secs(1), req.handle, Code::CONTENT, b"");
    let sep = one(&mut s, CLIENT);
    assert_eq!(head(&sep).0, Non);
    assert_eq!(head(&sep).3, TOK);
    finish_quiet(&mut s, secs(1));
}

#[test]
fn rfc7252_5_2_3_non_request_gets_non_response() {
    // RFC 7252 §5.2.3: a NON request is answered with a NON response (own
    // MID, same token); no empty ACK is ever sent.
    let mut s = ep(Config::default());
    s.handle_datagram(Instant::ZERO, CLIENT, &non_get(0x0500));
    let req = take_request(&mut s);
    s.handle_timeout(secs(2));
    silent(&mut s);
    respond(&mut s, secs(2), req.handle, Code::CONTENT, b"n");
    let r = one(&mut s, CLIENT);
    let (ty, code, _mid, tok) = head(&r);
    assert_eq!((ty, code, tok.as_slice()), (Non, Code::CONTENT, TOK));
    assert_eq!(parse(&r).payload(), b"n");
    finish_quiet(&mut s, secs(2));
}

#[test]
fn rfc7252_5_2_separate_response_mids_are_sequential() {
    // RFC 7252 §4.4: the server's own messages to a client (separate and
    // NON responses) take sequential MIDs.
    let mut s = ep(Config::default());
    let mut mids = Vec::new();
    for (i, mid) in [0x10u16, 0x11, 0x12].into_iter().enumerate() {
        let t = secs(i as u64);
        s.handle_datagram(t, CLIENT, &non_get(mid));
        let req = take_request(&mut s);
        respond(&mut s, t, req.handle, Code::CONTENT, b"");
        mids.push(head(&one(&mut s, CLIENT)).2);
    }
    assert_eq!(mids[1], mids[0].wrapping_add(1));
    assert_eq!(mids[2], mids[0].wrapping_add(2));
    finish_quiet(&mut s, secs(2));
}

// ----- §5.4: options ------------------------------------------------------------

#[test]
fn rfc7252_5_4_1_unknown_critical_option_in_con_gets_4_02() {
    // RFC 7252 §5.4.1: 4.02 Bad Option, piggybacked, with a diagnostic
    // payload (§5.5.2); a duplicate gets the same answer (§4.5).
    let mut s = ep(Config::default());
    let bad = msg(
        Con,
        Code::GET,
        0x0600,
        TOK,
        &[(OptionNumber(9999), b"x")],
        b"",
    );
    s.handle_datagram(Instant::ZERO, CLIENT, &bad);
    no_events(&mut s);
    let mut expected = vec![0x62, 0x82, 0x06, 0x00, 0xaa, 0xbb, 0xff];
    expected.extend_from_slice(b"Unrecognized critical option 9999");
    assert_eq!(one(&mut s, CLIENT), expected);
    s.handle_datagram(secs(3), CLIENT, &bad);
    assert_eq!(one(&mut s, CLIENT), expected);
    no_events(&mut s);
    assert_eq!(
        (
            s.stats().bad_options,
            s.stats().duplicates,
            s.stats().requests_in
        ),
        (1, 1, 0)
    );
    finish_quiet(&mut s, secs(3));
}

#[test]
fn rfc7252_5_4_1_unknown_critical_option_in_non_is_dropped() {
    // RFC 7252 §5.4.1: a NON with an unrecognized critical option is
    // rejected: no delivery, no answer.
    let mut s = ep(Config::default());
    let bad = msg(
        Non,
        Code::GET,
        0x0601,
        TOK,
        &[(OptionNumber(0x2001), b"")],
        b"",
    );
    s.handle_datagram(Instant::ZERO, CLIENT, &bad);
    silent(&mut s);
    no_events(&mut s);
    assert_eq!(s.stats().bad_options, 1);
    assert!(s.tables().is_empty());
    finish_quiet(&mut s, Instant::ZERO);
}

#[test]
fn rfc7252_5_4_1_unknown_elective_option_is_ignored() {
    // RFC 7252 §5.4.1: unrecognized elective options are silently ignored.
    let mut s = ep(Config::default());
    let req = msg(
        Con,
        Code::GET,
        0x0602,
        TOK,
        &[(OptionNumber(0x2000), b"e")],
        b"",
    );
    s.handle_datagram(Instant::ZERO, CLIENT, &req);
    let r = take_request(&mut s);
    assert_eq!(r.message().option(OptionNumber(0x2000)), Some(&b"e"[..]));
    respond(&mut s, Instant::ZERO, r.handle, Code::CONTENT, b"");
    assert_eq!(head(&one(&mut s, CLIENT)).1, Code::CONTENT);
    assert_eq!(s.stats().bad_options, 0);
    finish_quiet(&mut s, Instant::ZERO);
}

#[test]
fn rfc7252_5_4_5_repeated_non_repeatable_critical_option_gets_4_02() {
    // RFC 7252 §5.4.5: a non-repeatable option that occurs more than once
    // is treated like an unrecognized option: critical (Uri-Host, 3) gives
    // 4.02; elective (Content-Format, 12) is ignored.
    let mut s = ep(Config::default());
    let host = OptionNumber::URI_HOST;
    let req = msg(
        Con,
        Code::GET,
        0x0700,
        TOK,
        &[(host, b"a"), (host, b"b")],
        b"",
    );
    s.handle_datagram(Instant::ZERO, CLIENT, &req);
    no_events(&mut s);
    let r = one(&mut s, CLIENT);
    assert_eq!(head(&r).1, Code::BAD_OPTION);
    assert_eq!(parse(&r).payload(), b"Unrecognized critical option 3");

    let cf = OptionNumber::CONTENT_FORMAT;
    let req = msg(Con, Code::GET, 0x0701, TOK, &[(cf, &[0]), (cf, &[50])], b"");
    s.handle_datagram(Instant::ZERO, CLIENT, &req);
    let r = take_request(&mut s);
    respond(&mut s, Instant::ZERO, r.handle, Code::CONTENT, b"");
    assert_eq!(head(&one(&mut s, CLIENT)).1, Code::CONTENT);

    // A repeatable critical option (Uri-Path, If-Match) may repeat.
    let path = OptionNumber::URI_PATH;
    let req = msg(
        Con,
        Code::GET,
        0x0702,
        TOK,
        &[
            (OptionNumber::IF_MATCH, b"1"),
            (OptionNumber::IF_MATCH, b"2"),
            (path, b"a"),
            (path, b"b"),
        ],
        b"",
    );
    s.handle_datagram(Instant::ZERO, CLIENT, &req);
    let r = take_request(&mut s);
    respond(&mut s, Instant::ZERO, r.handle, Code::CONTENT, b"");
    let _ = one(&mut s, CLIENT);
    finish_quiet(&mut s, Instant::ZERO);
}

#[test]
fn rfc7252_5_4_3_out_of_bounds_critical_option_gets_4_02() {
    // RFC 7252 §5.4.3: a value outside the option's length bounds is
    // treated like an unrecognized option: critical (Uri-Host of length 0,
    // If-None-Match with a value) gives 4.02; elective (Max-Age of 5 bytes)
    // is ignored.
    let mut s = ep(Config::default());
    for (mid, opt, val) in [
        (0x0800u16, OptionNumber::URI_HOST, &b""[..]),
        (0x0801, OptionNumber::IF_NONE_MATCH, &b"x"[..]),
    ] {
        s.handle_datagram(
            Instant::ZERO,
            CLIENT,
            &msg(Con, Code::GET, mid, TOK, &[(opt, val)], b""),
        );
        no_events(&mut s);
        let r = one(&mut s, CLIENT);
        assert_eq!(head(&r).1, Code::BAD_OPTION, "{opt:?}");
        assert_eq!(
            parse(&r).payload(),
            format!("Unrecognized critical option {}", opt.0).as_bytes()
        );
    }
    s.handle_datagram(
        Instant::ZERO,
        CLIENT,
        &msg(
            Con,
            Code::GET,
            0x0802,
            TOK,
            &[(OptionNumber::MAX_AGE, &[1, 2, 3, 4, 5])],
            b"",
        ),
    );
    let r = take_request(&mut s);
    respond(&mut s, Instant::ZERO, r.handle, Code::CONTENT, b"");
    assert_eq!(head(&one(&mut s, CLIENT)).1, Code::CONTENT);
    assert_eq!(s.stats().bad_options, 2);
    finish_quiet(&mut s, Instant::ZERO);
}

// ----- §3, §4.2, §4.3: malformed input --------------------------------------

#[test]
fn rfc7252_4_2_malformed_con_gets_rst_non_is_silent() {
    // RFC 7252 §4.2/§4.3: a CON with a message format error is rejected
    // with RST (same MID); a NON, ACK or RST is silently dropped; §3: a
    // version other than 1 is silently ignored. No state changes.
    let mut s = ep(Config::default());
    // Some state to compare against: an unanswered request.
    s.handle_datagram(Instant::ZERO, CLIENT, &con_get(0x0001));
    let req = take_request(&mut s);
    let before = s.tables();
    let malformed_con: &[&[u8]] = &[
        &[0x40, 0x01, 0x12, 0x34, 0xff], // payload marker, no payload
        &[0x49, 0x01, 0x12, 0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0], // TKL 9
        &[0x40, 0x01, 0x12, 0x34, 0xf0], // option delta nibble 15
        &[0x40, 0x01, 0x12, 0x34, 0x0d], // option extension truncated
        &[0x40, 0x01, 0x12, 0x34, 0x05, b'a'], // option value truncated
        &[0x41, 0x00, 0x12, 0x34, 0x01], // empty message with a token
    ];
    for (i, d) in malformed_con.iter().enumerate() {
        s.handle_datagram(ms(i as u64), CLIENT, d);
        assert_eq!(one(&mut s, CLIENT), [0x70, 0x00, 0x12, 0x34], "{d:02x?}");
    }
    let silent_ones: &[&[u8]] = &[
        &[0x50, 0x01, 0x12, 0x34, 0xff], // NON
        &[0x60, 0x45, 0x12, 0x34, 0xff], // ACK
        &[0x70, 0x00, 0x12, 0x34, 0x01], // RST with a payload byte
        &[0x80, 0x01, 0x12, 0x34],       // version 2 CON
        &[0xc0, 0x00, 0x12, 0x34],       // version 3 ping
        &[0x40, 0x01, 0x12],             // shorter than the header
        &[],
    ];
    for d in silent_ones {
        s.handle_datagram(ms(10), CLIENT, d);
        silent(&mut s);
    }
    no_events(&mut s);
    assert_eq!(s.tables(), before, "malformed input changes no state");
    let st = s.stats();
    assert_eq!(
        st.format_errors,
        (malformed_con.len() + silent_ones.len()) as u64
    );
    assert_eq!(st.resets_sent, malformed_con.len() as u64);
    assert_eq!(
        st.datagrams_in,
        1 + (malformed_con.len() + silent_ones.len()) as u64
    );
    respond(&mut s, ms(10), req.handle, Code::CONTENT, b"");
    let _ = one(&mut s, CLIENT);
    finish_quiet(&mut s, ms(10));
}

#[test]
fn rfc7252_4_2_reserved_code_class_is_rejected() {
    // RFC 7252 §4.2, §12.1: codes of the reserved classes 1, 6 and 7 are not
    // requests or responses: RST for CON, silence for NON.
    let mut s = ep(Config::default());
    s.handle_datagram(
        Instant::ZERO,
        CLIENT,
        &msg(Con, Code::new(1, 0), 0x0900, TOK, &[], b""),
    );
    assert_eq!(one(&mut s, CLIENT), [0x70, 0x00, 0x09, 0x00]);
    s.handle_datagram(
        Instant::ZERO,
        CLIENT,
        &msg(Non, Code::new(7, 1), 0x0901, TOK, &[], b""),
    );
    silent(&mut s);
    no_events(&mut s);
    // A request carried in an ACK or RST is meaningless and ignored.
    s.handle_datagram(
        Instant::ZERO,
        CLIENT,
        &msg(Ack, Code::GET, 0x0902, TOK, &[], b""),
    );
    silent(&mut s);
    no_events(&mut s);
    finish_quiet(&mut s, Instant::ZERO);
}

// ----- §8.2: multicast ----------------------------------------------------------

#[test]
fn rfc7252_8_2_multicast_answer_waits_a_random_leisure() {
    // RFC 7252 §8.2: a request that arrived on a multicast address is
    // answered after a random Leisure in [0, DEFAULT_LEISURE], as NON.
    let mut leisures = std::collections::BTreeSet::new();
    for seed in 0..20 {
        let mut s = ep_seed(Config::default(), seed);
        s.handle_multicast_datagram(secs(1), Addr(20), &non_get(0x0a00));
        let req = take_request(&mut s);
        assert!(req.multicast);
        respond(&mut s, secs(1), req.handle, Code::CONTENT, b"hello");
        silent(&mut s);
        let at = s.poll_timeout().unwrap();
        assert!(at >= secs(1) && at <= secs(6), "{at:?}");
        leisures.insert(at);
        if at > secs(1) {
            s.handle_timeout(us(at.as_micros() - 1));
            silent(&mut s);
        }
        s.handle_timeout(at);
        let r = one(&mut s, Addr(20));
        let (ty, code, _, tok) = head(&r);
        assert_eq!((ty, code, tok.as_slice()), (Non, Code::CONTENT, TOK));
        // A duplicate of the request is dropped.
        s.handle_multicast_datagram(at, Addr(20), &non_get(0x0a00));
        silent(&mut s);
        no_events(&mut s);
        finish_quiet(&mut s, at);
    }
    assert!(leisures.len() >= 19, "random Leisure: {leisures:?}");
}

#[test]
fn rfc7252_8_2_no_error_answers_or_resets_on_multicast() {
    // RFC 7252 §8.2: no error response to a multicast request (4.04 here is
    // suppressed); §8.1: only NON requests belong on a multicast address,
    // so a CON, a ping or malformed input gets no RST there.
    let mut s = ep(Config::default());
    s.handle_multicast_datagram(Instant::ZERO, Addr(21), &non_get(0x0b00));
    let req = take_request(&mut s);
    respond(&mut s, Instant::ZERO, req.handle, Code::NOT_FOUND, b"");
    s.handle_multicast_datagram(Instant::ZERO, Addr(21), &con_get(0x0b01));
    s.handle_multicast_datagram(Instant::ZERO, Addr(21), &[0x40, 0x00, 0x0b, 0x02]);
    s.handle_multicast_datagram(Instant::ZERO, Addr(21), &[0x40, 0x01, 0x0b, 0x03, 0xff]);
    s.handle_multicast_datagram(
        Instant::ZERO,
        Addr(21),
        &msg(
            Non,
            Code::GET,
            0x0b04,
            TOK,
            &[(OptionNumber(9999), b"")],
            b"",
        ),
    );
    s.handle_multicast_datagram(
        Instant::ZERO,
        Addr(21),
        &msg(Con, Code::CONTENT, 0x0b05, TOK, &[], b""),
    );
    no_events(&mut s);
    let (sent, evs) = finish(&mut s, Instant::ZERO);
    assert!(sent.is_empty(), "{sent:?}");
    assert!(evs.is_empty());
    assert_eq!(s.stats().resets_sent, 0);
}

// ----- both roles, pending lifetime, statistics -------------------------------

#[test]
fn rfc7252_2_one_endpoint_is_client_and_server() {
    // RFC 7252 §2: an endpoint acts as client and server over the same
    // transport (a device behind a NAT registering and then being asked).
    let mut dev = ep_seed(Config::default(), 1);
    let mut srv = ep_seed(Config::default(), 2);
    let reg = dev.request(Instant::ZERO, SERVER, &get(Con, "rd")).unwrap();
    let d = one(&mut dev, SERVER);
    srv.handle_datagram(Instant::ZERO, CLIENT, &d);
    let r = take_request(&mut srv);
    respond(&mut srv, Instant::ZERO, r.handle, Code::CREATED, b"");
    dev.handle_datagram(ms(1), SERVER, &one(&mut srv, CLIENT));
    assert!(matches!(&events(&mut dev)[..], [Event::Response(x)] if x.id == reg));
    // Now the server asks the device.
    let ask = srv.request(ms(2), CLIENT, &get(Con, "sensor")).unwrap();
    dev.handle_datagram(ms(2), SERVER, &one(&mut srv, CLIENT));
    let q = take_request(&mut dev);
    respond(&mut dev, ms(2), q.handle, Code::CONTENT, b"7");
    srv.handle_datagram(ms(3), CLIENT, &one(&mut dev, SERVER));
    assert!(
        matches!(&events(&mut srv)[..], [Event::Response(x)] if x.id == ask && x.message().payload() == b"7")
    );
    finish_quiet(&mut dev, ms(3));
    finish_quiet(&mut srv, ms(3));
}

#[test]
fn rfc7252_4_8_2_unanswered_request_expires_after_exchange_lifetime() {
    // RFC 7252 §4.8.2: after EXCHANGE_LIFETIME nobody waits for an answer any
    // more; an incoming request the application never answered is dropped
    // then, so that it cannot hold a table slot for ever.
    let mut s = ep(Config::default());
    s.handle_datagram(Instant::ZERO, CLIENT, &con_get(0x0c00));
    s.handle_datagram(Instant::ZERO, CLIENT, &non_get(0x0c01));
    let e = events(&mut s);
    let handles: Vec<ResponseHandle> = e
        .iter()
        .map(|e| match e {
            Event::Request(r) => r.handle,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(handles.len(), 2);
    let (sent, evs) = finish(&mut s, Instant::ZERO);
    // Only the automatic empty ACK for the CON.
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].0, sent[0].2.clone()),
        (secs(1), vec![0x60, 0x00, 0x0c, 0x00])
    );
    assert!(evs.is_empty());
    assert_eq!(s.stats().pending_expired, 2);
    for h in handles {
        assert_eq!(
            s.respond(secs(300), h, &answer(Code::CONTENT, b"")),
            Err(Error::UnknownHandle)
        );
    }
}

#[test]
fn respond_checks_its_arguments() {
    let mut s = ep(Config::default());
    s.handle_datagram(Instant::ZERO, CLIENT, &con_get(0x0d00));
    let req = take_request(&mut s);
    let get = MessageBuf::new(Ack, Code::GET);
    assert_eq!(
        s.respond(Instant::ZERO, req.handle, &get),
        Err(Error::InvalidCode)
    );
    assert_eq!(
        s.respond(
            Instant::ZERO,
            ResponseHandle::from_raw(999),
            &answer(Code::CONTENT, b"")
        ),
        Err(Error::UnknownHandle)
    );
    // Too large for Config::max_message_size: refused, the request stays.
    let big = vec![0u8; 2000];
    assert!(matches!(
        s.respond(Instant::ZERO, req.handle, &answer(Code::CONTENT, &big)),
        Err(Error::Encode(_))
    ));
    silent(&mut s);
    respond(&mut s, Instant::ZERO, req.handle, Code::CONTENT, b"ok");
    let _ = one(&mut s, CLIENT);
    finish_quiet(&mut s, Instant::ZERO);
}

#[test]
fn statistics_count_server_traffic() {
    let mut s = ep(Config::default());
    s.handle_datagram(Instant::ZERO, CLIENT, &con_get(1)); // request
    let r = take_request(&mut s);
    respond(&mut s, Instant::ZERO, r.handle, Code::CONTENT, b"");
    s.handle_datagram(Instant::ZERO, CLIENT, &con_get(1)); // duplicate
    s.handle_datagram(Instant::ZERO, CLIENT, &[0x40, 0, 0, 2]); // ping
    s.handle_datagram(Instant::ZERO, CLIENT, &[0x40, 1, 0, 3, 0xff]); // malformed CON
    s.handle_datagram(Instant::ZERO, CLIENT, &[0x70, 0, 0, 4]); // unexpected RST
    s.handle_datagram(
        Instant::ZERO,
        CLIENT,
        &msg(Con, Code::GET, 5, TOK, &[(OptionNumber::OSCORE, b"")], b""),
    ); // request
    let _ = events(&mut s);
    let sent = drain(&mut s);
    let st = *s.stats();
    assert_eq!(st.datagrams_in, 6);
    assert_eq!(st.datagrams_out, sent.len() as u64);
    assert_eq!(
        st.bytes_out,
        sent.iter().map(|(_, b)| b.len() as u64).sum::<u64>()
    );
    assert_eq!(st.requests_in, 2);
    assert_eq!(st.duplicates, 1);
    assert_eq!(st.resets_sent, 2);
    assert_eq!(st.resets_received, 1);
    assert_eq!(st.format_errors, 1);
    assert_eq!(st.unexpected, 1);
    let (sent, _) = finish(&mut s, Instant::ZERO);
    // The second request (MID 5) was never answered: empty ACK at 1 s.
    assert_eq!(sent.len(), 1);
    assert_eq!(s.stats().pending_expired, 1);
}
