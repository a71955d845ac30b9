//! Deterministic scenario tests for the client side of the endpoint
//! (RFC 7252 §4, §5, §8). Every test drives the endpoint with exact instants
//! and a fixed seed, and ends by checking that nothing is left over once
//! EXCHANGE_LIFETIME has passed (`common::finish`).

mod common;

use core::time::Duration;

use coap_proto::endpoint::{Config, Error, Event, RequestId, TransmissionParameters};
use coap_proto::{Code, Instant, MessageType, OptionNumber};
use common::*;

use MessageType::{Ack, Con, Non, Rst};

/// Sends one CON GET at `at` and returns its id and bytes.
fn con_request(c: &mut Ep, at: Instant, to: Addr) -> (RequestId, Vec<u8>) {
    let id = c.request(at, to, &get(Con, "temp")).unwrap();
    (id, one(c, to))
}

#[track_caller]
fn assert_events(c: &mut Ep, expected: &[&str]) {
    let got: Vec<String> = events(c).iter().map(describe).collect();
    assert_eq!(got, expected);
}

fn describe(e: &Event<Addr>) -> String {
    match e {
        Event::Response(r) => format!(
            "Response({} from {:?}: {})",
            r.id.raw(),
            r.peer,
            r.message()
        ),
        Event::Acknowledged(id) => format!("Acknowledged({})", id.raw()),
        Event::TimedOut(id) => format!("TimedOut({})", id.raw()),
        Event::Reset(id) => format!("Reset({})", id.raw()),
        Event::Pong(id) => format!("Pong({})", id.raw()),
        Event::MulticastDone(id) => format!("MulticastDone({})", id.raw()),
        other => format!("{other:?}"),
    }
}

// ----- §4.2 / §4.8: retransmission --------------------------------------------

#[test]
fn rfc7252_4_2_con_retransmission_schedule() {
    // RFC 7252 §4.2: the initial timeout is drawn from [ACK_TIMEOUT,
    // ACK_TIMEOUT*ACK_RANDOM_FACTOR] and doubled after each retransmission;
    // after MAX_RETRANSMIT retransmissions the attempt is given up, at
    // t0 * (2^(MAX_RETRANSMIT+1) - 1) after the first transmission.
    let mut c = ep(Config::default());
    let start = secs(10);
    let (id, first) = con_request(&mut c, start, SERVER);
    let t0 = c.poll_timeout().unwrap() - start;
    assert!(
        t0 >= Duration::from_secs(2) && t0 <= Duration::from_secs(3),
        "{t0:?}"
    );
    // The exact value for this seed (observed once, then pinned).
    assert_eq!(
        t0,
        Duration::from_micros(T0_SEED_US),
        "initial timeout for SEED"
    );

    let mut at = start;
    let mut timeout = t0;
    for _ in 0..4 {
        at += timeout;
        assert_eq!(c.poll_timeout(), Some(at));
        // Early: nothing happens (the call contract).
        c.handle_timeout(Instant::from_micros(at.as_micros() - 1));
        silent(&mut c);
        c.handle_timeout(at);
        assert_eq!(
            one(&mut c, SERVER),
            first,
            "retransmissions repeat the bytes"
        );
        no_events(&mut c);
        timeout *= 2;
    }
    at += timeout;
    assert_eq!(at, start + t0 * 31);
    assert_eq!(c.poll_timeout(), Some(at));
    c.handle_timeout(at);
    silent(&mut c);
    assert_events(&mut c, &[&format!("TimedOut({})", id.raw())]);
    let s = c.stats();
    assert_eq!((s.datagrams_out, s.retransmissions, s.timeouts), (5, 4, 1));

    // The MID history towards the peer is kept for EXCHANGE_LIFETIME after
    // the MID was used (§4.4), and not a moment longer.
    c.handle_timeout(us((start + Duration::from_secs(247)).as_micros() - 1));
    assert_eq!(c.tables().peers, 1);
    c.handle_timeout(start + Duration::from_secs(247));
    assert!(c.tables().is_empty(), "{:?}", c.tables());
    finish_quiet(&mut c, at);
}

/// The initial retransmission timeout drawn with `SEED` and the default
/// parameters (pinned so that a change in the RNG use is noticed).
const T0_SEED_US: u64 = 2_121_669;

#[test]
fn rfc7252_4_8_custom_transmission_parameters() {
    // RFC 7252 §4.8.1: every transmission parameter may be changed; the
    // derived values (§4.8.2) follow.
    let mut p = TransmissionParameters::default();
    p.ack_timeout = Duration::from_secs(1);
    p.ack_random_factor_milli = 2000;
    p.max_retransmit = 2;
    p.max_latency = Duration::from_secs(10);
    p.processing_delay = Duration::from_secs(1);
    assert_eq!(p.max_initial_timeout(), Duration::from_secs(2));
    assert_eq!(p.max_transmit_span(), Duration::from_secs(6)); // 1 * (2^2-1) * 2
    assert_eq!(p.max_transmit_wait(), Duration::from_secs(14)); // 1 * (2^3-1) * 2
    assert_eq!(p.max_rtt(), Duration::from_secs(21));
    assert_eq!(p.exchange_lifetime(), Duration::from_secs(27));
    assert_eq!(p.non_lifetime(), Duration::from_secs(16));

    let mut cfg = Config::default();
    cfg.transmission = p;
    let mut c = ep(cfg);
    let (id, first) = con_request(&mut c, Instant::ZERO, SERVER);
    let t0 = c.poll_timeout().unwrap() - Instant::ZERO;
    assert!(
        t0 >= Duration::from_secs(1) && t0 <= Duration::from_secs(2),
        "{t0:?}"
    );
    let (sent, evs) = run_timers(&mut c);
    // 1 + MAX_RETRANSMIT = 3 transmissions: at 0, t0, 3 t0; given up at 7 t0.
    let instants: Vec<Instant> = sent.iter().map(|(t, _, _)| *t).collect();
    assert_eq!(instants, [Instant::ZERO + t0, Instant::ZERO + t0 * 3]);
    assert!(sent.iter().all(|(_, to, b)| *to == SERVER && *b == first));
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(evs[0].0, Instant::ZERO + t0 * 7);
    assert!(matches!(evs[0].1, Event::TimedOut(i) if i == id));
    // ... and the peer's MID history goes after the custom EXCHANGE_LIFETIME.
    assert!(c.tables().is_empty());
    finish_quiet(&mut c, secs(27));
}

#[test]
fn rfc7252_4_8_2_derived_parameters_default() {
    // RFC 7252 §4.8.2 gives the default values.
    let p = TransmissionParameters::default();
    assert_eq!(p.ack_timeout, Duration::from_secs(2));
    assert_eq!(p.ack_random_factor_milli, 1500);
    assert_eq!(p.max_retransmit, 4);
    assert_eq!(p.nstart, 1);
    assert_eq!(p.default_leisure, Duration::from_secs(5));
    assert_eq!(p.probing_rate, 1);
    assert_eq!(p.max_transmit_span(), Duration::from_secs(45));
    assert_eq!(p.max_transmit_wait(), Duration::from_secs(93));
    assert_eq!(p.max_latency, Duration::from_secs(100));
    assert_eq!(p.processing_delay, Duration::from_secs(2));
    assert_eq!(p.max_rtt(), Duration::from_secs(202));
    assert_eq!(p.exchange_lifetime(), Duration::from_secs(247));
    assert_eq!(p.non_lifetime(), Duration::from_secs(145));
    let mut c = ep(Config::default());
    c.handle_timeout(secs(1));
    finish_quiet(&mut c, secs(1));
}

#[test]
fn rfc7252_4_2_initial_timeout_stays_in_range_over_seeds() {
    // RFC 7252 §4.2: [ACK_TIMEOUT, ACK_TIMEOUT * ACK_RANDOM_FACTOR].
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..200 {
        let mut c = ep_seed(Config::default(), seed);
        c.request(Instant::ZERO, SERVER, &get(Con, "")).unwrap();
        let t0 = c.poll_timeout().unwrap() - Instant::ZERO;
        assert!(
            t0 >= Duration::from_secs(2) && t0 <= Duration::from_secs(3),
            "{t0:?}"
        );
        seen.insert(t0);
        let _ = finish(&mut c, Instant::ZERO + t0 * 31);
    }
    assert!(seen.len() > 190, "the timeout is randomized");
}

// ----- matching ACK/RST ----------------------------------------------------

#[test]
fn rfc7252_4_2_piggybacked_ack_stops_retransmission() {
    // RFC 7252 §4.2, §5.2.1: a matching ACK (here carrying the response)
    // ends retransmission; the response is delivered once.
    let mut c = ep(Config::default());
    let (id, req) = con_request(&mut c, Instant::ZERO, SERVER);
    let deadline = c.poll_timeout().unwrap();
    let resp = reply_to(&req, Ack, Code::CONTENT, b"22.5");
    c.handle_datagram(ms(500), SERVER, &resp);
    silent(&mut c);
    let e = events(&mut c);
    assert_eq!(e.len(), 1);
    let Event::Response(r) = &e[0] else {
        panic!("{e:?}")
    };
    assert_eq!((r.id, r.peer), (id, SERVER));
    assert_eq!(r.message.as_bytes(), &resp[..]);
    assert_eq!(r.message().payload(), b"22.5");
    // No retransmission at the old deadline.
    c.handle_timeout(deadline);
    silent(&mut c);
    // A duplicate of the ACK is unexpected now and ignored.
    c.handle_datagram(ms(600), SERVER, &resp);
    silent(&mut c);
    no_events(&mut c);
    assert_eq!(c.stats().unexpected, 1);
    assert_eq!(c.stats().responses_in, 1);
    finish_quiet(&mut c, ms(600));
}

#[test]
fn rfc7252_4_2_rst_stops_retransmission() {
    // RFC 7252 §4.2: a matching RST ends retransmission; the request fails.
    let mut c = ep(Config::default());
    let (id, req) = con_request(&mut c, Instant::ZERO, SERVER);
    let mid = parse(&req).message_id();
    c.handle_datagram(secs(1), SERVER, &empty(Rst, mid));
    silent(&mut c);
    assert_events(&mut c, &[&format!("Reset({})", id.raw())]);
    assert_eq!(c.stats().resets_received, 1);
    assert_eq!(c.tables().requests, 0);
    finish_quiet(&mut c, secs(1));
}

#[test]
fn rfc7252_4_4_ack_from_other_peer_is_ignored() {
    // RFC 7252 §4.4: ACK/RST match by (peer, MID). The same MID from another
    // endpoint is not an acknowledgement.
    let mut c = ep(Config::default());
    let (id, req) = con_request(&mut c, Instant::ZERO, SERVER);
    let mid = parse(&req).message_id();
    let t1 = c.poll_timeout().unwrap();
    c.handle_datagram(ms(100), OTHER, &empty(Ack, mid));
    c.handle_datagram(ms(100), OTHER, &empty(Rst, mid));
    c.handle_datagram(ms(100), OTHER, &reply_to(&req, Ack, Code::CONTENT, b"x"));
    silent(&mut c);
    no_events(&mut c);
    assert_eq!(c.stats().unexpected, 3);
    // Retransmission continues on schedule.
    assert_eq!(c.poll_timeout(), Some(t1));
    c.handle_timeout(t1);
    assert_eq!(one(&mut c, SERVER), req);
    // The real peer's empty ACK matches.
    c.handle_datagram(t1, SERVER, &empty(Ack, mid));
    assert_events(&mut c, &[&format!("Acknowledged({})", id.raw())]);
    let (sent, evs) = finish(&mut c, t1);
    assert!(sent.is_empty());
    // The separate response never comes: the request times out after
    // Config::separate_response_timeout.
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].0, t1 + c.config().separate_response_timeout);
    assert!(matches!(evs[0].1, Event::TimedOut(_)));
}

#[test]
fn rfc7252_5_3_2_piggybacked_response_needs_matching_token() {
    // RFC 7252 §5.3.2: a piggybacked response matches by MID *and* token.
    let mut c = ep(Config::default());
    let (id, req) = con_request(&mut c, Instant::ZERO, SERVER);
    let m = parse(&req);
    let mut wrong = m.token().to_vec();
    wrong[0] ^= 0xff;
    let bad = msg(Ack, Code::CONTENT, m.message_id(), &wrong, &[], b"");
    c.handle_datagram(ms(10), SERVER, &bad);
    no_events(&mut c);
    silent(&mut c);
    assert_eq!(c.stats().unexpected, 1);
    assert_eq!(c.tables().requests, 1);
    let good = reply_to(&req, Ack, Code::CONTENT, b"");
    c.handle_datagram(ms(20), SERVER, &good);
    let e = events(&mut c);
    assert!(
        matches!(&e[..], [Event::Response(r)] if r.id == id),
        "{e:?}"
    );
    finish_quiet(&mut c, ms(20));
}

#[test]
fn rfc7252_4_2_unexpected_ack_and_rst_are_ignored() {
    // RFC 7252 §4.2/§4.3: an ACK or RST that matches nothing is ignored
    // (counted), never answered.
    let mut c = ep(Config::default());
    c.handle_datagram(Instant::ZERO, SERVER, &empty(Ack, 0x1234));
    c.handle_datagram(Instant::ZERO, SERVER, &empty(Rst, 0x1234));
    c.handle_datagram(
        Instant::ZERO,
        SERVER,
        &msg(Ack, Code::CONTENT, 7, &[1, 2, 3, 4], &[], b"hi"),
    );
    silent(&mut c);
    no_events(&mut c);
    let s = c.stats();
    assert_eq!((s.unexpected, s.resets_received, s.datagrams_in), (3, 1, 3));
    assert!(c.tables().is_empty());
    finish_quiet(&mut c, Instant::ZERO);
}

// ----- §4.3: ping ------------------------------------------------------------

#[test]
fn rfc7252_4_3_ping_completes_with_pong_on_rst() {
    // RFC 7252 §4.3: an empty CON ("ping") is answered with RST.
    let mut c = ep(Config::default());
    let id = c.ping(Instant::ZERO, SERVER).unwrap();
    let ping = one(&mut c, SERVER);
    let m = parse(&ping);
    assert_eq!(
        (m.ty(), m.code(), m.token().len(), ping.len()),
        (Con, Code::EMPTY, 0, 4)
    );
    c.handle_datagram(ms(30), SERVER, &empty(Rst, m.message_id()));
    assert_events(&mut c, &[&format!("Pong({})", id.raw())]);
    silent(&mut c);

    // Against a real endpoint.
    let mut s = ep_seed(Config::default(), 99);
    let id = c.ping(ms(40), SERVER).unwrap();
    let ping = one(&mut c, SERVER);
    assert_eq!(
        parse(&ping).message_id(),
        m.message_id().wrapping_add(1),
        "sequential MIDs"
    );
    s.handle_datagram(ms(40), CLIENT, &ping);
    let rst = one(&mut s, CLIENT);
    assert_eq!(rst, empty(Rst, parse(&ping).message_id()));
    no_events(&mut s);
    c.handle_datagram(ms(41), SERVER, &rst);
    assert_events(&mut c, &[&format!("Pong({})", id.raw())]);
    finish_quiet(&mut c, ms(41));
    finish_quiet(&mut s, ms(41));
}

#[test]
fn rfc7252_4_3_unanswered_ping_times_out() {
    // RFC 7252 §4.2: a ping is a CON like any other.
    let mut c = ep(Config::default());
    let id = c.ping(Instant::ZERO, SERVER).unwrap();
    let ping = one(&mut c, SERVER);
    let t0 = c.poll_timeout().unwrap() - Instant::ZERO;
    let (sent, evs) = finish(&mut c, Instant::ZERO + t0 * 31);
    assert_eq!(sent.len(), 4);
    assert!(sent.iter().all(|(_, _, b)| *b == ping));
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].0, Instant::ZERO + t0 * 31);
    assert!(matches!(evs[0].1, Event::TimedOut(i) if i == id));
}

// ----- §5.3.2 / §4.3: unsolicited responses -------------------------------

#[test]
fn rfc7252_4_3_unsolicited_con_response_gets_rst() {
    // RFC 7252 §4.3, §5.3.2: a CON response matching no request is rejected
    // with RST; a NON one is ignored.
    let mut c = ep(Config::default());
    c.handle_datagram(
        Instant::ZERO,
        SERVER,
        &msg(Con, Code::CONTENT, 0x4242, &[9, 9, 9, 9], &[], b"x"),
    );
    assert_eq!(one(&mut c, SERVER), empty(Rst, 0x4242));
    c.handle_datagram(
        Instant::ZERO,
        SERVER,
        &msg(Non, Code::CONTENT, 0x4243, &[9, 9, 9, 9], &[], b"x"),
    );
    silent(&mut c);
    no_events(&mut c);
    let s = c.stats();
    assert_eq!((s.unexpected, s.resets_sent, s.responses_in), (2, 1, 0));
    assert!(c.tables().is_empty(), "{:?}", c.tables());
    finish_quiet(&mut c, Instant::ZERO);
}

#[test]
fn rfc7252_5_3_2_response_from_wrong_peer_is_unsolicited() {
    // RFC 7252 §5.3.2: responses match by (peer, token).
    let mut c = ep(Config::default());
    let (id, req) = con_request(&mut c, Instant::ZERO, SERVER);
    c.handle_datagram(ms(1), SERVER, &empty(Ack, parse(&req).message_id()));
    assert_events(&mut c, &[&format!("Acknowledged({})", id.raw())]);
    let tok = parse(&req).token().to_vec();
    c.handle_datagram(
        ms(2),
        OTHER,
        &msg(Con, Code::CONTENT, 0x1000, &tok, &[], b""),
    );
    assert_eq!(one(&mut c, OTHER), empty(Rst, 0x1000));
    no_events(&mut c);
    c.handle_datagram(
        ms(3),
        SERVER,
        &msg(Non, Code::CONTENT, 0x1000, &tok, &[], b""),
    );
    let e = events(&mut c);
    assert!(
        matches!(&e[..], [Event::Response(r)] if r.id == id && r.peer == SERVER),
        "{e:?}"
    );
    finish_quiet(&mut c, ms(3));
}

// ----- §4.4 / §5.3.1: MIDs and tokens ---------------------------------------

#[test]
fn rfc7252_4_4_mids_sequential_from_random_start() {
    // RFC 7252 §4.4: MIDs are sequential from a randomized start.
    let mut starts = std::collections::BTreeSet::new();
    for seed in 0..32 {
        let mut c = ep_seed(Config::default(), seed);
        let mut mids = Vec::new();
        for i in 0..5u64 {
            let id = c.request(ms(i), SERVER, &get(Con, "")).unwrap();
            let req = one(&mut c, SERVER);
            mids.push(parse(&req).message_id());
            c.handle_datagram(ms(i), SERVER, &reply_to(&req, Ack, Code::CONTENT, b""));
            assert!(matches!(&events(&mut c)[..], [Event::Response(r)] if r.id == id));
        }
        for w in mids.windows(2) {
            assert_eq!(w[1], w[0].wrapping_add(1), "sequential");
        }
        starts.insert(mids[0]);
        // Another peer has its own sequence.
        finish_quiet(&mut c, ms(5));
    }
    assert!(starts.len() >= 31, "random start: {starts:?}");
}

#[test]
fn rfc7252_4_4_mid_never_reused_within_exchange_lifetime() {
    // RFC 7252 §4.4: a MID is not reused towards the same endpoint within
    // EXCHANGE_LIFETIME. Drive more than 65536 requests to one peer as fast
    // as it answers them: the endpoint must refuse (MessageIdsExhausted)
    // rather than wrap around.
    let mut cfg = Config::default();
    cfg.max_requests = 4;
    let mut c = ep(cfg);
    let mut used = std::collections::HashMap::new();
    let mut exhausted_at = None;
    let mut now = Instant::ZERO;
    for i in 0..70_000u64 {
        now = us(i * 100); // 10 000 requests per second: 7 s in all
        match c.request(now, SERVER, &get(Non, "")) {
            Ok(id) => {
                let req = one(&mut c, SERVER);
                let mid = parse(&req).message_id();
                assert!(
                    used.insert(mid, now).is_none(),
                    "MID {mid:#06x} reused at request {i}"
                );
                c.handle_datagram(now, SERVER, &reply_to(&req, Non, Code::CONTENT, b""));
                assert!(matches!(&events(&mut c)[..], [Event::Response(r)] if r.id == id));
                drain(&mut c);
            }
            Err(e) => {
                assert_eq!(e, Error::MessageIdsExhausted, "request {i}");
                exhausted_at.get_or_insert(i);
                silent(&mut c);
                no_events(&mut c);
            }
        }
    }
    let first = exhausted_at.expect("the MID space runs out");
    assert!(
        first >= 65536 - 4096,
        "at least 15/16 of the space is usable: {first}"
    );
    assert_eq!(used.len() as u64, first);
    assert!(c.stats().mid_exhausted > 0);
    assert!(c.tables().requests == 0);

    // Once EXCHANGE_LIFETIME has passed since the first uses, MIDs become
    // available again; every reuse is at least EXCHANGE_LIFETIME later.
    let later = us(0) + lifetime(&c) + Duration::from_secs(1);
    let mut reused = 0;
    for k in 0..5000u64 {
        let t = later + Duration::from_micros(k * 100);
        let id = c
            .request(t, SERVER, &get(Non, ""))
            .expect("MIDs available again");
        let req = one(&mut c, SERVER);
        let mid = parse(&req).message_id();
        if let Some(prev) = used.insert(mid, t) {
            assert!(
                t - prev >= lifetime(&c),
                "MID {mid:#06x} reused after {:?}",
                t - prev
            );
            reused += 1;
        }
        c.handle_datagram(t, SERVER, &reply_to(&req, Non, Code::CONTENT, b""));
        assert!(matches!(&events(&mut c)[..], [Event::Response(r)] if r.id == id));
        drain(&mut c);
        now = t;
    }
    assert!(reused > 0);
    finish_quiet(&mut c, now);
}

#[test]
fn rfc7252_5_3_1_tokens_random_and_unique() {
    // RFC 7252 §5.3.1: tokens are random, at least 32 bits by default
    // (Config::token_len), and unique among open requests.
    let mut cfg = Config::default();
    cfg.transmission.nstart = 300;
    // Not what this test is about: PROBING_RATE (§4.7) lets one request go
    // per microsecond.
    cfg.transmission.probing_rate = u32::MAX;
    let mut c = ep(cfg);
    let mut toks = std::collections::BTreeSet::new();
    let mut ids = Vec::new();
    for i in 0..256 {
        ids.push(c.request(us(i), SERVER, &get(Con, "")).unwrap());
    }
    assert_eq!(
        c.request(us(256), SERVER, &get(Con, "")),
        Err(Error::NoCapacity)
    );
    for (_, b) in drain(&mut c) {
        let t = parse(&b).token().to_vec();
        assert_eq!(t.len(), 4);
        assert!(toks.insert(t), "token reused among open requests");
    }
    assert_eq!(toks.len(), 256);
    for id in ids {
        c.cancel(ms(1), id).unwrap();
    }
    silent(&mut c);
    no_events(&mut c);

    let mut cfg = Config::default();
    cfg.token_len = 8;
    let mut c8 = ep(cfg);
    c8.request(Instant::ZERO, SERVER, &get(Non, "")).unwrap();
    assert_eq!(parse(&one(&mut c8, SERVER)).token().len(), 8);
    // Another seed gives other tokens.
    let mut other = ep_seed(Config::default(), SEED + 1);
    other.request(Instant::ZERO, SERVER, &get(Con, "")).unwrap();
    let t = parse(&one(&mut other, SERVER)).token().to_vec();
    assert!(!toks.contains(&t));
    finish_quiet(&mut c, ms(1));
    let _ = finish(&mut c8, Instant::ZERO);
    let _ = finish(&mut other, Instant::ZERO);
}

// ----- §5.2: separate responses on the client side -----------------------

#[test]
fn rfc7252_5_2_2_empty_ack_then_con_response() {
    // RFC 7252 §5.2.2: an empty ACK, then the response in a CON, which the
    // client acknowledges; a duplicate of the CON response is acknowledged
    // again but delivered once (§4.5).
    let mut c = ep(Config::default());
    let (id, req) = con_request(&mut c, Instant::ZERO, SERVER);
    let m = parse(&req);
    c.handle_datagram(ms(500), SERVER, &empty(Ack, m.message_id()));
    assert_events(&mut c, &[&format!("Acknowledged({})", id.raw())]);
    silent(&mut c);
    // No more retransmissions: only the response timeout is left.
    assert_eq!(
        c.poll_timeout(),
        Some(ms(500) + c.config().separate_response_timeout)
    );

    let resp = msg(Con, Code::CONTENT, 0xbeef, m.token(), &[], b"late");
    c.handle_datagram(secs(3), SERVER, &resp);
    assert_eq!(one(&mut c, SERVER), [0x60, 0x00, 0xbe, 0xef]);
    let e = events(&mut c);
    assert!(
        matches!(&e[..], [Event::Response(r)] if r.id == id && r.message().payload() == b"late"),
        "{e:?}"
    );
    // The duplicate (our ACK was lost).
    c.handle_datagram(secs(5), SERVER, &resp);
    assert_eq!(one(&mut c, SERVER), [0x60, 0x00, 0xbe, 0xef]);
    no_events(&mut c);
    assert_eq!((c.stats().duplicates, c.stats().responses_in), (1, 1));
    finish_quiet(&mut c, secs(5));
}

#[test]
fn rfc7252_5_2_2_con_response_before_empty_ack() {
    // RFC 7252 §5.2.2: the empty ACK may be lost; the CON response alone
    // completes the request and stops retransmission.
    let mut c = ep(Config::default());
    let (id, req) = con_request(&mut c, Instant::ZERO, SERVER);
    let retransmit_at = c.poll_timeout().unwrap();
    let resp = msg(Con, Code::CONTENT, 0x0101, parse(&req).token(), &[], b"");
    c.handle_datagram(secs(1), SERVER, &resp);
    assert_eq!(one(&mut c, SERVER), empty(Ack, 0x0101));
    assert!(matches!(&events(&mut c)[..], [Event::Response(r)] if r.id == id));
    c.handle_timeout(retransmit_at);
    silent(&mut c);
    // The late empty ACK is unexpected now.
    c.handle_datagram(secs(2), SERVER, &empty(Ack, parse(&req).message_id()));
    silent(&mut c);
    no_events(&mut c);
    finish_quiet(&mut c, secs(2));
}

#[test]
fn rfc7252_5_2_2_empty_ack_then_non_response() {
    // RFC 7252 §5.2.2: the separate response may be NON; nothing to ACK.
    let mut c = ep(Config::default());
    let (id, req) = con_request(&mut c, Instant::ZERO, SERVER);
    c.handle_datagram(ms(100), SERVER, &empty(Ack, parse(&req).message_id()));
    assert_events(&mut c, &[&format!("Acknowledged({})", id.raw())]);
    let resp = msg(Non, Code::CONTENT, 0x0202, parse(&req).token(), &[], b"n");
    c.handle_datagram(ms(900), SERVER, &resp);
    silent(&mut c);
    assert!(matches!(&events(&mut c)[..], [Event::Response(r)] if r.id == id));
    // A duplicate NON response is dropped (§4.5).
    c.handle_datagram(ms(950), SERVER, &resp);
    silent(&mut c);
    no_events(&mut c);
    assert_eq!(c.stats().duplicates, 1);
    finish_quiet(&mut c, ms(950));
}

#[test]
fn rfc7252_5_2_2_separate_response_never_comes() {
    // After an empty ACK the client waits Config::separate_response_timeout.
    let mut c = ep(Config::default());
    let (id, req) = con_request(&mut c, Instant::ZERO, SERVER);
    c.handle_datagram(secs(1), SERVER, &empty(Ack, parse(&req).message_id()));
    assert_events(&mut c, &[&format!("Acknowledged({})", id.raw())]);
    let (sent, evs) = finish(&mut c, secs(1));
    assert!(sent.is_empty());
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].0, secs(1) + Duration::from_secs(93));
    assert!(matches!(evs[0].1, Event::TimedOut(i) if i == id));
    assert_eq!(c.stats().timeouts, 1);
}

#[test]
fn rfc7252_5_2_3_non_request_gets_non_response() {
    // RFC 7252 §5.2.3: a NON request is answered with a NON response; the
    // client does not retransmit and times out after
    // Config::non_request_timeout without one.
    let mut c = ep(Config::default());
    let id = c.request(Instant::ZERO, SERVER, &get(Non, "temp")).unwrap();
    let req = one(&mut c, SERVER);
    assert_eq!(parse(&req).ty(), Non);
    assert_eq!(
        c.poll_timeout(),
        Some(Instant::ZERO + c.config().non_request_timeout)
    );
    c.handle_datagram(
        secs(2),
        SERVER,
        &msg(Non, Code::CONTENT, 0x3000, parse(&req).token(), &[], b"v"),
    );
    silent(&mut c);
    assert!(matches!(&events(&mut c)[..], [Event::Response(r)] if r.id == id));

    let id2 = c.request(secs(3), SERVER, &get(Non, "temp")).unwrap();
    let _ = one(&mut c, SERVER);
    let (sent, evs) = finish(&mut c, secs(3) + Duration::from_secs(93));
    assert!(sent.is_empty(), "NON is never retransmitted");
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].0, secs(3) + Duration::from_secs(93));
    assert!(matches!(evs[0].1, Event::TimedOut(i) if i == id2));
}

#[test]
fn rfc7252_4_2_rst_to_non_request() {
    // RFC 7252 §4.3: a NON may be answered with RST, matched by (peer, MID).
    let mut c = ep(Config::default());
    let id = c.request(Instant::ZERO, SERVER, &get(Non, "")).unwrap();
    let req = one(&mut c, SERVER);
    c.handle_datagram(ms(5), SERVER, &empty(Rst, parse(&req).message_id()));
    assert_events(&mut c, &[&format!("Reset({})", id.raw())]);
    finish_quiet(&mut c, ms(5));
}

// ----- §5.4: options in responses -----------------------------------------

#[test]
fn rfc7252_5_4_1_unknown_critical_option_in_response_is_rejected() {
    // RFC 7252 §5.4.1: an unrecognized critical option in a response makes
    // the client reject it: RST for a CON response, ignored otherwise.
    let critical = OptionNumber(0x2001); // odd: critical, unregistered
    let mut c = ep(Config::default());
    let (id, req) = con_request(&mut c, Instant::ZERO, SERVER);
    let m = parse(&req);
    // Piggybacked: ignored, the CON is retransmitted.
    let pig = msg(
        Ack,
        Code::CONTENT,
        m.message_id(),
        m.token(),
        &[(critical, b"x")],
        b"",
    );
    c.handle_datagram(ms(10), SERVER, &pig);
    silent(&mut c);
    no_events(&mut c);
    assert_eq!(c.tables().requests, 1);
    c.handle_datagram(ms(20), SERVER, &empty(Ack, m.message_id()));
    assert_events(&mut c, &[&format!("Acknowledged({})", id.raw())]);
    // CON response: RST.
    let con = msg(
        Con,
        Code::CONTENT,
        0x5000,
        m.token(),
        &[(critical, b"x")],
        b"",
    );
    c.handle_datagram(ms(30), SERVER, &con);
    assert_eq!(one(&mut c, SERVER), empty(Rst, 0x5000));
    no_events(&mut c);
    // NON response: ignored.
    let non = msg(
        Non,
        Code::CONTENT,
        0x5001,
        m.token(),
        &[(critical, b"x")],
        b"",
    );
    c.handle_datagram(ms(40), SERVER, &non);
    silent(&mut c);
    no_events(&mut c);
    // An unknown *elective* option is fine.
    let ok = msg(
        Non,
        Code::CONTENT,
        0x5002,
        m.token(),
        &[(OptionNumber(0x2000), b"x")],
        b"ok",
    );
    c.handle_datagram(ms(50), SERVER, &ok);
    assert!(matches!(&events(&mut c)[..], [Event::Response(r)] if r.id == id));
    finish_quiet(&mut c, ms(50));
}

// ----- §4.7: congestion control -------------------------------------------

#[test]
#[allow(clippy::many_single_char_names)] // requests a, b, d, e and o
fn rfc7252_4_7_nstart_queues_requests_to_the_same_peer() {
    // RFC 7252 §4.7: NSTART = 1 outstanding interaction per peer; further
    // requests wait until it completes (response, or empty ACK). Other
    // peers are not blocked.
    let mut c = ep(Config::default());
    let a = c.request(Instant::ZERO, SERVER, &get(Con, "a")).unwrap();
    let b = c.request(Instant::ZERO, SERVER, &get(Con, "b")).unwrap();
    let d = c.request(Instant::ZERO, SERVER, &get(Con, "d")).unwrap();
    let e = c.request(Instant::ZERO, SERVER, &get(Non, "e")).unwrap();
    let o = c.request(Instant::ZERO, OTHER, &get(Con, "o")).unwrap();
    let sent = drain(&mut c);
    assert_eq!(sent.len(), 2, "{:?}", dump(&sent));
    assert_eq!(sent[0].0, SERVER);
    assert_eq!(
        parse(&sent[0].1).option(OptionNumber::URI_PATH),
        Some(&b"a"[..])
    );
    assert_eq!(sent[1].0, OTHER);
    let req_a = sent[0].1.clone();
    let req_o = sent[1].1.clone();
    assert_eq!(c.tables().requests, 5);
    // OTHER was never blocked; its answer does not release SERVER's queue.
    c.handle_datagram(ms(100), OTHER, &reply_to(&req_o, Ack, Code::CONTENT, b""));
    assert!(matches!(&events(&mut c)[..], [Event::Response(r)] if r.id == o));
    silent(&mut c);

    // A's retransmission does not release anything.
    let ra = c.poll_timeout().unwrap();
    c.handle_timeout(ra);
    assert_eq!(drain(&mut c).len(), 1);

    // A answered at 4 s: B goes out at exactly 4 s.
    c.handle_datagram(secs(4), SERVER, &reply_to(&req_a, Ack, Code::CONTENT, b""));
    assert!(matches!(&events(&mut c)[..], [Event::Response(r)] if r.id == a));
    let req_b = one(&mut c, SERVER);
    assert_eq!(
        parse(&req_b).option(OptionNumber::URI_PATH),
        Some(&b"b"[..])
    );
    assert_eq!(
        parse(&req_b).message_id(),
        parse(&req_a).message_id().wrapping_add(1)
    );
    // B's own retransmission schedule starts at 4 s.
    let t0b = c.poll_timeout().unwrap();
    assert!(t0b >= secs(6) && t0b <= secs(7), "{t0b:?}");

    // An empty ACK ends B's outstanding interaction (§4.7): D goes out.
    c.handle_datagram(secs(5), SERVER, &empty(Ack, parse(&req_b).message_id()));
    assert_events(&mut c, &[&format!("Acknowledged({})", b.raw())]);
    let req_d = one(&mut c, SERVER);
    assert_eq!(
        parse(&req_d).option(OptionNumber::URI_PATH),
        Some(&b"d"[..])
    );

    // D reset at 6 s: E (NON) goes out.
    c.handle_datagram(secs(6), SERVER, &empty(Rst, parse(&req_d).message_id()));
    assert_events(&mut c, &[&format!("Reset({})", d.raw())]);
    let req_e = one(&mut c, SERVER);
    assert_eq!(parse(&req_e).ty(), Non);

    // B's separate response and E's response.
    c.handle_datagram(
        secs(7),
        SERVER,
        &msg(Non, Code::CONTENT, 0x7777, parse(&req_b).token(), &[], b""),
    );
    c.handle_datagram(
        secs(7),
        SERVER,
        &msg(Non, Code::CONTENT, 0x7778, parse(&req_e).token(), &[], b""),
    );
    let ev = events(&mut c);
    assert!(
        matches!(&ev[..], [Event::Response(x), Event::Response(y)] if x.id == b && y.id == e),
        "{ev:?}"
    );
    finish_quiet(&mut c, secs(7));
}

#[test]
fn rfc7252_4_7_nstart_queue_survives_timeouts() {
    // RFC 7252 §4.7: a queued request starts when the one ahead of it times
    // out; several queued requests go out one after another.
    let mut c = ep(Config::default());
    let ids: Vec<RequestId> = (0..3)
        .map(|_| c.request(Instant::ZERO, SERVER, &get(Con, "")).unwrap())
        .collect();
    let first = one(&mut c, SERVER);
    let t0 = c.poll_timeout().unwrap() - Instant::ZERO;
    let (sent, evs) = finish(&mut c, secs(300));
    // Each request: 5 transmissions; they run strictly one after another.
    assert_eq!(sent.len(), 4 + 5 + 5, "{sent:?}");
    let timeouts: Vec<(Instant, RequestId)> = evs
        .iter()
        .filter_map(|(t, e)| match e {
            Event::TimedOut(i) => Some((*t, *i)),
            _ => None,
        })
        .collect();
    assert_eq!(timeouts.len(), 3, "{evs:?}");
    assert_eq!(timeouts[0], (Instant::ZERO + t0 * 31, ids[0]));
    assert_eq!(timeouts[1].1, ids[1]);
    assert_eq!(timeouts[2].1, ids[2]);
    // The second request goes out the moment the first times out.
    let second_first_tx = sent.iter().find(|(_, _, b)| *b != first).unwrap();
    assert_eq!(second_first_tx.0, Instant::ZERO + t0 * 31);
}

#[test]
fn rfc7252_4_7_probing_rate_for_unanswered_non_requests() {
    // RFC 7252 §4.7: towards a peer that does not answer, the average data
    // rate stays at or below PROBING_RATE (1 byte/s by default). NSTART is
    // raised so that only the probing rate holds the requests back.
    let mut cfg = Config::default();
    cfg.transmission.nstart = 100;
    let mut c = ep(cfg);
    for _ in 0..5 {
        c.request(Instant::ZERO, SERVER, &get(Non, "")).unwrap();
    }
    let first = one(&mut c, SERVER);
    let len = first.len() as u64; // 8 bytes: header + 4-byte token
    assert_eq!(len, 8);
    let (sent, evs) = finish(&mut c, secs(500));
    let instants: Vec<Instant> = sent.iter().map(|(t, _, _)| *t).collect();
    // After k+1 datagrams of 8 bytes, at least 8(k+1) seconds have passed
    // since the first: the 2nd at 16 s, then 24 s, 32 s, 40 s.
    assert_eq!(instants, [secs(16), secs(24), secs(32), secs(40)]);
    let mut total = len;
    for t in &instants {
        total += len;
        // Average rate since the first datagram: total / elapsed <= 1 B/s.
        assert!(u128::from(total) * 1_000_000 <= (*t - Instant::ZERO).as_micros());
    }
    assert_eq!(
        evs.iter()
            .filter(|(_, e)| matches!(e, Event::TimedOut(_)))
            .count(),
        5
    );
}

#[test]
fn rfc7252_4_7_probing_stops_once_the_peer_answers() {
    // RFC 7252 §4.7: PROBING_RATE only applies while the peer does not
    // answer; a response lets the queued requests go at once.
    let mut cfg = Config::default();
    cfg.transmission.nstart = 100;
    let mut c = ep(cfg);
    let a = c.request(Instant::ZERO, SERVER, &get(Non, "")).unwrap();
    let b = c.request(Instant::ZERO, SERVER, &get(Non, "")).unwrap();
    let req_a = one(&mut c, SERVER);
    c.handle_timeout(secs(3));
    silent(&mut c);
    c.handle_datagram(
        secs(3),
        SERVER,
        &msg(Non, Code::CONTENT, 1, parse(&req_a).token(), &[], b""),
    );
    assert!(matches!(&events(&mut c)[..], [Event::Response(r)] if r.id == a));
    let req_b = one(&mut c, SERVER);
    c.handle_datagram(
        secs(3),
        SERVER,
        &msg(Non, Code::CONTENT, 2, parse(&req_b).token(), &[], b""),
    );
    assert!(matches!(&events(&mut c)[..], [Event::Response(r)] if r.id == b));
    finish_quiet(&mut c, secs(3));
}

// ----- §8: multicast --------------------------------------------------------

#[test]
fn rfc7252_8_1_multicast_request_collects_responses() {
    // RFC 7252 §8.1: a multicast request is NON; responses from several
    // servers carry its token and are all delivered until the collection
    // timeout; then Event::MulticastDone.
    let mut c = ep(Config::default());
    assert_eq!(
        c.request(Instant::ZERO, GROUP, &get(Con, "")),
        Err(Error::ConfirmableMulticast)
    );
    assert_eq!(
        c.ping(Instant::ZERO, GROUP),
        Err(Error::ConfirmableMulticast)
    );
    let id = c
        .request(Instant::ZERO, GROUP, &get(Non, ".well-known"))
        .unwrap();
    let req = one(&mut c, GROUP);
    let m = parse(&req);
    assert_eq!(m.ty(), Non);
    let tok = m.token().to_vec();
    for (i, peer) in [Addr(10), Addr(11), Addr(12)].into_iter().enumerate() {
        let r = msg(Non, Code::CONTENT, 0x100 + i as u16, &tok, &[], &[i as u8]);
        c.handle_datagram(ms(100 * i as u64 + 100), peer, &r);
    }
    // A CON response is acknowledged; a duplicate NON dropped.
    c.handle_datagram(
        ms(400),
        Addr(13),
        &msg(Con, Code::CONTENT, 0x200, &tok, &[], b"c"),
    );
    assert_eq!(one(&mut c, Addr(13)), empty(Ack, 0x200));
    c.handle_datagram(
        ms(500),
        Addr(10),
        &msg(Non, Code::CONTENT, 0x100, &tok, &[], &[0]),
    );
    silent(&mut c);
    let e = events(&mut c);
    let peers: Vec<Addr> = e
        .iter()
        .map(|e| match e {
            Event::Response(r) if r.id == id => r.peer,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(peers, [Addr(10), Addr(11), Addr(12), Addr(13)]);
    let done = Instant::ZERO + c.config().multicast_timeout;
    assert_eq!(c.poll_timeout(), Some(done));
    c.handle_timeout(done);
    assert_events(&mut c, &[&format!("MulticastDone({})", id.raw())]);
    // Late answers: NON ignored, CON reset.
    c.handle_datagram(
        done,
        Addr(14),
        &msg(Non, Code::CONTENT, 0x300, &tok, &[], b""),
    );
    silent(&mut c);
    c.handle_datagram(
        done,
        Addr(14),
        &msg(Con, Code::CONTENT, 0x301, &tok, &[], b""),
    );
    assert_eq!(one(&mut c, Addr(14)), empty(Rst, 0x301));
    no_events(&mut c);
    finish_quiet(&mut c, done);
}

// ----- cancel, statistics, determinism ------------------------------------

#[test]
fn cancel_stops_retransmission_and_releases_nstart() {
    // RFC 7252 §4.7: a cancelled request no longer counts towards NSTART.
    let mut c = ep(Config::default());
    let (a, req_a) = con_request(&mut c, Instant::ZERO, SERVER);
    let b = c.request(Instant::ZERO, SERVER, &get(Con, "b")).unwrap();
    silent(&mut c);
    c.cancel(secs(1), a).unwrap();
    // The peer has not answered anything, so PROBING_RATE (1 byte/s) holds B
    // back until both datagrams fit the budget (§4.7).
    silent(&mut c);
    let b_len = req_a.len() - 3; // "b" instead of "temp"
    let at = secs((req_a.len() + b_len) as u64);
    assert_eq!(c.poll_timeout(), Some(at));
    c.handle_timeout(at);
    let req_b = one(&mut c, SERVER);
    assert_eq!(req_b.len(), b_len);
    assert_eq!(
        parse(&req_b).option(OptionNumber::URI_PATH),
        Some(&b"b"[..])
    );
    c.cancel(at, b).unwrap();
    assert_eq!(c.cancel(at, b), Err(Error::UnknownHandle));
    no_events(&mut c);
    finish_quiet(&mut c, at);
}

#[test]
fn statistics_count_client_traffic() {
    let mut c = ep(Config::default());
    let (_, req) = con_request(&mut c, Instant::ZERO, SERVER);
    let t = c.poll_timeout().unwrap();
    c.handle_timeout(t);
    let _ = one(&mut c, SERVER);
    let resp = reply_to(&req, Ack, Code::CONTENT, b"1234");
    c.handle_datagram(t, SERVER, &resp);
    let _ = events(&mut c);
    c.ping(t, SERVER).unwrap();
    let ping = one(&mut c, SERVER);
    c.handle_datagram(t, SERVER, &empty(Rst, parse(&ping).message_id()));
    let _ = events(&mut c);
    c.handle_datagram(t, SERVER, &[0x40]); // too short: format error
    c.handle_datagram(
        t,
        SERVER,
        &msg(Con, Code::CONTENT, 9, &[1, 1, 1, 1], &[], b""),
    ); // unsolicited
    let _ = one(&mut c, SERVER);
    let s = *c.stats();
    assert_eq!(s.datagrams_out, 4);
    assert_eq!(s.datagrams_in, 4);
    assert_eq!(s.bytes_in, (resp.len() + 4 + 1 + 8) as u64);
    assert_eq!(s.retransmissions, 1);
    assert_eq!(s.responses_in, 1);
    assert_eq!(s.resets_received, 1);
    assert_eq!(s.resets_sent, 1);
    assert_eq!(s.format_errors, 1);
    assert_eq!(s.unexpected, 1);
    assert_eq!(s.timeouts, 0);
    finish_quiet(&mut c, t);
}

/// One scripted client/server exchange sequence; returns every datagram
/// with its instant and sender, and every event's description.
fn scripted_run(seed: u64) -> (Sent<Addr>, Vec<String>) {
    let mut c = ep_seed(Config::default(), seed);
    let mut s = ep_seed(Config::default(), seed ^ 0xffff);
    let mut log = Vec::new();
    let mut evs = Vec::new();
    let mut now = Instant::ZERO;
    for round in 0..20u64 {
        now += Duration::from_millis(700);
        c.request(
            now,
            SERVER,
            &get(if round % 3 == 0 { Non } else { Con }, "x"),
        )
        .unwrap();
        if round % 5 == 0 {
            c.ping(now, OTHER).unwrap();
        }
        // Deliver everything, dropping every 4th datagram.
        for step in 0..50u64 {
            let t = now + Duration::from_millis(step * 10);
            for (to, b) in drain(&mut c) {
                log.push((t, CLIENT, b.clone()));
                if to == SERVER && (log.len() % 4 != 0) {
                    s.handle_datagram(t, CLIENT, &b);
                }
            }
            for e in events(&mut s) {
                if let Event::Request(r) = e {
                    evs.push(format!("S {}", r.message()));
                    if round % 2 == 0 {
                        s.respond(t, r.handle, &answer(Code::CONTENT, b"v"))
                            .unwrap();
                    } else {
                        s.accept(t, r.handle).unwrap();
                        s.respond(t, r.handle, &answer(Code::CHANGED, b"")).unwrap();
                    }
                }
            }
            for (_, b) in drain(&mut s) {
                log.push((t, SERVER, b.clone()));
                c.handle_datagram(t, SERVER, &b);
            }
            for e in events(&mut c) {
                evs.push(format!("C {}", describe(&e)));
            }
            for ep in [&mut c, &mut s] {
                if ep.poll_timeout().is_some_and(|d| d <= t) {
                    ep.handle_timeout(t);
                }
            }
        }
    }
    let (a, b) = run_timers(&mut c);
    log.extend(a.into_iter().map(|(t, _, b)| (t, CLIENT, b)));
    evs.extend(b.iter().map(|(t, e)| format!("{t:?} C {}", describe(e))));
    let (a, _) = run_timers(&mut s);
    log.extend(a.into_iter().map(|(t, _, b)| (t, SERVER, b)));
    assert!(c.tables().is_empty() && s.tables().is_empty());
    (log, evs)
}

#[test]
fn determinism_same_seed_same_bytes_and_instants() {
    // The design's promise: the same seed and inputs give the same outputs.
    let (log1, ev1) = scripted_run(7);
    let (log2, ev2) = scripted_run(7);
    assert!(log1.len() > 50);
    assert_eq!(log1, log2);
    assert_eq!(ev1, ev2);
    let (log3, _) = scripted_run(8);
    assert_ne!(log1, log3, "another seed gives other MIDs and tokens");
}
