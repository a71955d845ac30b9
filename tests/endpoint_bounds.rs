//! Every table of the endpoint has a bound and a policy when full, and a
//! flood from 100 000 spoofed sources cannot grow its memory past
//! `Config::memory_bound()` (issue 4, "Bounds"). Memory is checked two
//! ways: the endpoint's own estimate (`memory_usage`) and the heap it
//! really holds, measured by a per-thread counting allocator.
// Heap accounting works in signed byte deltas of allocator sizes (far
// below isize::MAX); names like `peer`/`per` are deliberate.
#![allow(clippy::cast_possible_wrap, clippy::similar_names)]

mod common;

use core::time::Duration;

use coap_proto::endpoint::{Config, Endpoint, Error, Event, ResponseHandle};
use coap_proto::{Code, Instant, MessageType, OptionNumber};
use common::*;

use MessageType::{Ack, Con, Non, Rst};

#[global_allocator]
static ALLOC: common::alloc::Counting = common::alloc::Counting;

use common::alloc::live;

const MIB: usize = 1024 * 1024;

// ----- one policy per table ---------------------------------------------------

const TOK: &[u8] = &[0x0b, 0x0c];

#[test]
fn rfc7252_5_9_3_4_pending_full_gets_5_03_with_max_age() {
    // Config::max_pending: a new CON request gets 5.03 Service Unavailable
    // with Max-Age (RFC 7252 §5.9.3.4, §5.10.5) piggybacked, not cached; a
    // NON request is dropped. Both counted in Stats::busy.
    let mut cfg = Config::default();
    cfg.max_pending = 2;
    cfg.busy_max_age = 5;
    let mut s = ep(cfg);
    for mid in [1u16, 2] {
        s.handle_datagram(
            Instant::ZERO,
            CLIENT,
            &msg(Con, Code::GET, mid, TOK, &[], b""),
        );
    }
    let handles: Vec<ResponseHandle> = events(&mut s)
        .into_iter()
        .map(|e| match e {
            Event::Request(r) => r.handle,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(s.tables().pending, 2);
    s.handle_datagram(ms(1), CLIENT, &msg(Con, Code::GET, 0x0303, TOK, &[], b""));
    // ACK 5.03, MID 0x0303, token 0b0c, Max-Age (14) = 5.
    assert_eq!(
        one(&mut s, CLIENT),
        [0x62, 0xa3, 0x03, 0x03, 0x0b, 0x0c, 0xd1, 0x01, 0x05]
    );
    s.handle_datagram(ms(1), CLIENT, &msg(Non, Code::GET, 0x0304, TOK, &[], b""));
    silent(&mut s);
    no_events(&mut s);
    assert_eq!(s.stats().busy, 2);
    assert_eq!(s.tables().dedup, 2, "refused requests leave no cache entry");
    // Room again: the retransmitted CON is now served.
    s.respond(ms(2), handles[0], &answer(Code::CONTENT, b""))
        .unwrap();
    let _ = one(&mut s, CLIENT);
    s.handle_datagram(ms(3), CLIENT, &msg(Con, Code::GET, 0x0303, TOK, &[], b""));
    let r = take_request(&mut s);
    s.respond(ms(3), r.handle, &answer(Code::CONTENT, b""))
        .unwrap();
    s.respond(ms(3), handles[1], &answer(Code::CONTENT, b""))
        .unwrap();
    assert_eq!(drain(&mut s).len(), 2);
    finish_quiet(&mut s, ms(3));
}

#[test]
fn max_requests_refuses_with_no_capacity() {
    let mut cfg = Config::default();
    cfg.max_requests = 3;
    let mut c = ep(cfg);
    let ids: Vec<_> = (0..3)
        .map(|i| {
            c.request(Instant::ZERO, Addr(10 + i), &get(Con, ""))
                .unwrap()
        })
        .collect();
    assert_eq!(
        c.request(Instant::ZERO, Addr(20), &get(Con, "")),
        Err(Error::NoCapacity)
    );
    assert_eq!(c.ping(Instant::ZERO, Addr(20)), Err(Error::NoCapacity));
    assert_eq!(
        c.request(Instant::ZERO, GROUP, &get(Non, "")),
        Err(Error::NoCapacity)
    );
    assert_eq!(c.tables().peers, 3, "a refused request creates no peer");
    c.cancel(ms(1), ids[0]).unwrap();
    c.ping(ms(1), Addr(20)).unwrap();
    let _ = drain(&mut c);
    let _ = finish(&mut c, ms(1));
}

#[test]
fn max_separate_refuses_with_no_capacity() {
    // Config::max_separate bounds separate CON responses awaiting an ACK.
    let mut cfg = Config::default();
    cfg.max_separate = 1;
    let mut s = ep(cfg);
    s.handle_datagram(
        Instant::ZERO,
        CLIENT,
        &msg(Con, Code::GET, 1, TOK, &[], b""),
    );
    s.handle_datagram(
        Instant::ZERO,
        CLIENT,
        &msg(Con, Code::GET, 2, TOK, &[], b""),
    );
    let hs: Vec<ResponseHandle> = events(&mut s)
        .into_iter()
        .map(|e| match e {
            Event::Request(r) => r.handle,
            other => panic!("{other:?}"),
        })
        .collect();
    s.handle_timeout(secs(1)); // empty ACKs
    assert_eq!(drain(&mut s).len(), 2);
    s.respond(secs(2), hs[0], &answer(Code::CONTENT, b""))
        .unwrap();
    let sep = one(&mut s, CLIENT);
    assert_eq!(
        s.respond(secs(2), hs[1], &answer(Code::CONTENT, b"")),
        Err(Error::NoCapacity)
    );
    silent(&mut s);
    s.handle_datagram(secs(2), CLIENT, &empty(Ack, parse(&sep).message_id()));
    assert!(matches!(&events(&mut s)[..], [Event::ResponseDelivered(h)] if *h == hs[0]));
    s.respond(secs(2), hs[1], &answer(Code::CONTENT, b""))
        .unwrap();
    let sep2 = one(&mut s, CLIENT);
    s.handle_datagram(secs(2), CLIENT, &empty(Ack, parse(&sep2).message_id()));
    let _ = events(&mut s);
    finish_quiet(&mut s, secs(2));
}

#[test]
fn max_peers_refuses_new_peers_until_entries_expire() {
    // Config::max_peers bounds per-peer state (MID history §4.4, congestion
    // state §4.7). Entries go EXCHANGE_LIFETIME after their last MID use.
    let mut cfg = Config::default();
    cfg.max_peers = 2;
    let mut c = ep(cfg);
    c.ping(Instant::ZERO, Addr(10)).unwrap();
    c.ping(Instant::ZERO, Addr(11)).unwrap();
    assert_eq!(c.ping(Instant::ZERO, Addr(12)), Err(Error::NoCapacity));
    assert_eq!(
        c.request(Instant::ZERO, Addr(12), &get(Non, "")),
        Err(Error::NoCapacity)
    );
    let pings = drain(&mut c);
    for (to, p) in &pings {
        c.handle_datagram(ms(5), *to, &empty(Rst, parse(p).message_id()));
    }
    assert_eq!(events(&mut c).len(), 2);
    assert_eq!(c.ping(secs(246), Addr(12)), Err(Error::NoCapacity));
    c.handle_timeout(secs(247));
    c.ping(secs(247), Addr(12)).unwrap();
    // Answering requests from many peers needs no peer entry for
    // piggybacked answers.
    for i in 0..10 {
        c.handle_datagram(
            secs(247),
            Addr(100 + i),
            &msg(Con, Code::GET, 1, TOK, &[], b""),
        );
        let r = take_request(&mut c);
        c.respond(secs(247), r.handle, &answer(Code::CONTENT, b""))
            .unwrap();
    }
    assert_eq!(c.tables().peers, 1);
    let _ = drain(&mut c);
    let _ = finish(&mut c, secs(247));
}

#[test]
fn max_transmit_queue_drops_and_counts() {
    // Config::max_transmit_queue: when the caller does not drain, further
    // datagrams are dropped and counted (Stats::transmit_drops).
    let mut cfg = Config::default();
    cfg.max_transmit_queue = 2;
    let mut s = ep(cfg);
    for mid in 0..5u16 {
        s.handle_datagram(Instant::ZERO, CLIENT, &[0x40, 0, 0, mid as u8]);
    }
    assert_eq!(s.tables().transmits, 2);
    assert_eq!(s.stats().transmit_drops, 3);
    assert_eq!(drain(&mut s).len(), 2);
    // A CON request whose first transmission was dropped goes out on its
    // retransmission.
    s.handle_datagram(Instant::ZERO, CLIENT, &[0x40, 0, 0, 9]);
    s.handle_datagram(Instant::ZERO, CLIENT, &[0x40, 0, 0, 10]);
    s.request(Instant::ZERO, SERVER, &get(Con, "")).unwrap();
    assert_eq!(s.stats().transmit_drops, 4);
    let _ = drain(&mut s);
    let t = s.poll_timeout().unwrap();
    s.handle_timeout(t);
    assert_eq!(one(&mut s, SERVER).len(), 8);
    let _ = finish(&mut s, t);
}

#[test]
fn max_events_refuses_requests_when_the_queue_is_full() {
    // Config::max_events: with the event queue full, a new CON request gets
    // 5.03 and a NON is dropped.
    let mut cfg = Config::default();
    cfg.max_events = 2;
    let mut s = ep(cfg);
    s.handle_datagram(
        Instant::ZERO,
        CLIENT,
        &msg(Non, Code::GET, 1, TOK, &[], b""),
    );
    s.handle_datagram(
        Instant::ZERO,
        CLIENT,
        &msg(Non, Code::GET, 2, TOK, &[], b""),
    );
    s.handle_datagram(
        Instant::ZERO,
        CLIENT,
        &msg(Non, Code::GET, 3, TOK, &[], b""),
    );
    silent(&mut s);
    s.handle_datagram(
        Instant::ZERO,
        CLIENT,
        &msg(Con, Code::GET, 4, TOK, &[], b""),
    );
    assert_eq!(head(&one(&mut s, CLIENT)).1, Code::SERVICE_UNAVAILABLE);
    assert_eq!((s.tables().events, s.stats().busy), (2, 2));
    for e in events(&mut s) {
        if let Event::Request(r) = e {
            s.respond(ms(1), r.handle, &answer(Code::CONTENT, b""))
                .unwrap();
        }
    }
    let _ = drain(&mut s);
    finish_quiet(&mut s, ms(1));
}

#[test]
fn rfc7252_4_5_max_dedup_bytes_evicts_oldest() {
    // Config::max_dedup_bytes bounds the cached replies; the oldest entries
    // go first.
    let mut cfg = Config::default();
    // Each cached reply (2.05, token 0b0c, payload "0123456789") is 17 bytes.
    cfg.max_dedup_bytes = 3 * 17;
    let mut s = ep(cfg);
    for mid in 1..=10u16 {
        s.handle_datagram(
            secs(u64::from(mid)),
            CLIENT,
            &msg(Con, Code::GET, mid, TOK, &[], b""),
        );
        let r = take_request(&mut s);
        s.respond(
            secs(u64::from(mid)),
            r.handle,
            &answer(Code::CONTENT, b"0123456789"),
        )
        .unwrap();
        let _ = one(&mut s, CLIENT);
        assert!(s.tables().dedup_bytes <= cfg.max_dedup_bytes);
    }
    assert_eq!(s.stats().dedup_evictions, 7);
    assert_eq!((s.tables().dedup, s.tables().dedup_bytes), (3, 51));
    // The newest is still answered from the cache.
    s.handle_datagram(secs(11), CLIENT, &msg(Con, Code::GET, 10, TOK, &[], b""));
    assert_eq!(parse(&one(&mut s, CLIENT)).payload(), b"0123456789");
    no_events(&mut s);
    finish_quiet(&mut s, secs(11));
}

#[test]
fn max_message_size_bounds_input_and_output() {
    // Config::max_message_size: a larger datagram is not processed (a CON
    // gets RST, counted in Stats::oversized); a larger request cannot be
    // built, and the failed command leaves no state behind.
    let mut cfg = Config::default();
    cfg.max_message_size = 64;
    let mut s = ep(cfg);
    let big = msg(Con, Code::POST, 0x0e0e, TOK, &[], &[7; 100]);
    s.handle_datagram(Instant::ZERO, CLIENT, &big);
    assert_eq!(one(&mut s, CLIENT), [0x70, 0, 0x0e, 0x0e]);
    let big_non = msg(Non, Code::POST, 0x0e0f, TOK, &[], &[7; 100]);
    s.handle_datagram(Instant::ZERO, CLIENT, &big_non);
    silent(&mut s);
    no_events(&mut s);
    assert_eq!(s.stats().oversized, 2);
    let mut post = get(Con, "");
    post.set_code(Code::POST);
    post.set_payload(vec![1u8; 100]);
    assert!(matches!(
        s.request(Instant::ZERO, SERVER, &post),
        Err(Error::Encode(_))
    ));
    silent(&mut s);
    finish_quiet(&mut s, Instant::ZERO);
}

#[test]
fn memory_bound_of_the_default_config_is_under_8_mib() {
    let c = Config::default();
    eprintln!("default memory_bound: {} bytes", c.memory_bound());
    assert!(c.memory_bound() <= 8 * MIB, "{}", c.memory_bound());
    let mut e = ep(c);
    assert_eq!(e.memory_usage(), 0);
    finish_quiet(&mut e, Instant::ZERO);
}

// ----- floods from spoofed sources ----------------------------------------------

/// A deterministic xorshift stream.
struct Rnd(u64);
impl Rnd {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One flood datagram from a spoofed source: requests (CON/NON, with and
/// without unknown critical options), pings, garbage, stray ACKs/RSTs and
/// unsolicited responses.
fn flood_datagram(r: &mut Rnd) -> Vec<u8> {
    let mid = r.next() as u16;
    let tok_len = r.below(9) as usize;
    let tok: Vec<u8> = (0..tok_len).map(|_| r.next() as u8).collect();
    let path = [b'a' + r.below(26) as u8; 3];
    match r.below(20) {
        0..=5 => msg(
            Con,
            Code::GET,
            mid,
            &tok,
            &[(OptionNumber::URI_PATH, &path)],
            b"",
        ),
        6..=9 => msg(
            Non,
            Code::GET,
            mid,
            &tok,
            &[(OptionNumber::URI_PATH, &path)],
            b"",
        ),
        10 => msg(
            Con,
            Code::POST,
            mid,
            &tok,
            &[(OptionNumber(0x2001), b"x")],
            &[0; 40],
        ),
        11 => vec![0x40, 0, (mid >> 8) as u8, mid as u8],
        12 | 13 => {
            let n = r.below(60) as usize;
            let mut g: Vec<u8> = (0..n).map(|_| r.next() as u8).collect();
            if let Some(b) = g.first_mut() {
                *b = (*b & 0x3f) | 0x40; // often version 1: CON gets RST
            }
            g
        }
        14 | 15 => empty(Ack, mid),
        16 | 17 => empty(Rst, mid),
        18 => msg(Con, Code::CONTENT, mid, &tok, &[], b"spoof"),
        _ => msg(Non, Code::CONTENT, mid, &tok, &[], b"spoof"),
    }
}

#[derive(Debug, Default)]
struct FloodReport {
    peak_usage: usize,
    peak_heap: isize,
    legit_sent: u64,
    legit_answered: u64,
    legit_busy: u64,
    legit_timeouts_con: u64,
    legit_timeouts_non: u64,
}

/// Floods a server with `n` datagrams from 100 000 spoofed sources
/// (`Addr(0x0100_0000..)`), 2 000 per second, interleaved with a legitimate
/// client that keeps one request (CON or NON, alternating) open. `answer`
/// says whether the server application answers the requests it gets.
/// Checks the bounds after every datagram.
fn flood(n: u64, answer_requests: bool) -> FloodReport {
    let cfg = Config::default();
    let bound = cfg.memory_bound();
    let base = live();
    let mut server: Endpoint<Addr> = Endpoint::new(cfg, 1);
    let mut client: Endpoint<Addr> = Endpoint::new(Config::default(), 2);
    let mut r = Rnd(0x9e37_79b9_7f4a_7c15);
    let mut rep = FloodReport::default();
    let mut buf = vec![0u8; 2048];
    let mut open: Option<(coap_proto::endpoint::RequestId, MessageType)> = None;
    let mut now = Instant::ZERO;
    let mut unanswered: Vec<ResponseHandle> = Vec::new();
    for i in 0..n {
        now = Instant::from_micros(i * 500);
        let from = Addr(0x0100_0000 + r.below(100_000) as u32);
        let d = flood_datagram(&mut r);
        server.handle_datagram(now, from, &d);
        drop(d);
        if server.poll_timeout().is_some_and(|t| t <= now) {
            server.handle_timeout(now);
        }
        if client.poll_timeout().is_some_and(|t| t <= now) {
            client.handle_timeout(now);
        }
        // The legitimate client: one request at a time.
        if open.is_none() && i % 10 == 0 {
            let ty = if rep.legit_sent % 2 == 0 { Con } else { Non };
            open = Some((client.request(now, SERVER, &get(ty, "legit")).unwrap(), ty));
            rep.legit_sent += 1;
        }
        while let Some(t) = client.poll_transmit(&mut buf).unwrap() {
            server.handle_datagram(now, CLIENT, &buf[..t.len]);
        }
        while let Some(e) = server.poll_event() {
            if let Event::Request(req) = e {
                if answer_requests || req.peer == CLIENT {
                    server
                        .respond(now, req.handle, &answer(Code::CONTENT, b"ok"))
                        .unwrap();
                } else {
                    unanswered.push(req.handle);
                }
                server.recycle(req.message.into_bytes());
            }
        }
        while let Some(t) = server.poll_transmit(&mut buf).unwrap() {
            if t.to == CLIENT {
                client.handle_datagram(now, SERVER, &buf[..t.len]);
            }
        }
        while let Some(e) = client.poll_event() {
            match e {
                Event::Response(resp) => {
                    assert_eq!(Some(resp.id), open.map(|o| o.0));
                    if resp.message().code() == Code::SERVICE_UNAVAILABLE {
                        rep.legit_busy += 1;
                    } else {
                        rep.legit_answered += 1;
                    }
                    open = None;
                }
                Event::Acknowledged(_) => {}
                Event::TimedOut(id) if Some(id) == open.map(|o| o.0) => {
                    if open.is_some_and(|o| o.1 == Con) {
                        rep.legit_timeouts_con += 1;
                    } else {
                        rep.legit_timeouts_non += 1;
                    }
                    open = None;
                }
                other => panic!("legitimate request failed: {other:?} at {now:?}"),
            }
        }
        // Bounds, after every datagram.
        let usage = server.memory_usage();
        let t = server.tables();
        assert!(
            usage <= bound,
            "memory_usage {usage} > bound {bound} at {i}: {t:?}"
        );
        assert!(usage <= 8 * MIB);
        assert!(
            t.pending <= cfg.max_pending && t.dedup <= cfg.max_dedup && t.peers <= cfg.max_peers
        );
        assert!(t.dedup_bytes <= cfg.max_dedup_bytes && t.events <= cfg.max_events);
        assert!(t.transmits <= cfg.max_transmit_queue && t.separate <= cfg.max_separate);
        rep.peak_usage = rep.peak_usage.max(usage);
        if i % 64 == 0 {
            // The client's own state and our loop buffers are tiny and
            // constant; the rest of the thread's live heap is the server's.
            let heap = live() - base;
            rep.peak_heap = rep.peak_heap.max(heap);
        }
    }
    assert!(
        rep.peak_heap <= bound as isize,
        "real heap {} > bound {bound}",
        rep.peak_heap
    );
    // Afterwards: everything drains away within EXCHANGE_LIFETIME.
    let end = now;
    let _ = finish(&mut server, end);
    let _ = finish(&mut client, end);
    drop(unanswered);
    rep
}

#[test]
fn flood_from_100k_spoofed_sources_answered() {
    // The server application answers everything it sees at once. The
    // legitimate client is answered every time (no 5.03, no timeout).
    let rep = flood(400_000, true);
    eprintln!("answered flood: {rep:?}");
    assert_eq!(rep.legit_busy, 0, "{rep:?}");
    assert_eq!(
        rep.legit_timeouts_con + rep.legit_timeouts_non,
        0,
        "{rep:?}"
    );
    assert!(rep.legit_answered >= rep.legit_sent - 1, "{rep:?}");
    assert!(rep.legit_sent > 1000);
}

#[test]
fn flood_from_100k_spoofed_sources_never_answered() {
    // The application never answers the flood: the pending table fills and
    // further CON requests get 5.03 Service Unavailable (so the legitimate
    // client's CON requests still get an answer every time) while NON
    // requests are dropped (the client times out). Memory stays bounded,
    // and the stale requests expire after EXCHANGE_LIFETIME.
    let rep = flood(400_000, false);
    eprintln!("unanswered flood: {rep:?}");
    assert_eq!(rep.legit_timeouts_con, 0, "{rep:?}");
    assert!(rep.legit_busy > 0, "{rep:?}");
    assert!(
        rep.legit_answered + rep.legit_busy + rep.legit_timeouts_non >= rep.legit_sent - 1,
        "{rep:?}"
    );
}

#[test]
fn memory_usage_estimate_covers_the_real_heap() {
    // Fill every table to its bound with a small config and compare the
    // real heap with memory_usage() and memory_bound().
    let mut cfg = Config::default();
    cfg.max_requests = 64;
    cfg.max_pending = 64;
    cfg.max_separate = 64;
    cfg.max_dedup = 128;
    cfg.max_dedup_bytes = 128 * cfg.max_message_size;
    cfg.max_peers = 64;
    cfg.max_transmit_queue = 64;
    cfg.max_events = 64;
    cfg.transmission.nstart = 1;
    let bound = cfg.memory_bound();
    let base = live();
    let mut e: Endpoint<Addr> = Endpoint::new(cfg, 3);
    let mut peak_heap = 0isize;
    let mut peak_usage = 0usize;
    let mut measure = |e: &Endpoint<Addr>| {
        peak_heap = peak_heap.max(live() - base);
        peak_usage = peak_usage.max(e.memory_usage());
    };
    // Requests to 64 peers (no draining: transmit queue fills too).
    for i in 0..64u32 {
        e.request(Instant::ZERO, Addr(1000 + i), &get(Con, "some/longer/path"))
            .unwrap();
        measure(&e);
    }
    // 64 pending requests, 64 more answered and cached, events not polled.
    for i in 0..128u32 {
        e.handle_datagram(
            Instant::ZERO,
            Addr(5000 + i),
            &msg(
                Con,
                Code::GET,
                i as u16,
                &[1, 2, 3, 4],
                &[(OptionNumber::URI_PATH, b"x")],
                &[0; 200],
            ),
        );
        measure(&e);
    }
    measure(&e);
    let heap = peak_heap;
    eprintln!("small config: heap {heap}, usage {peak_usage}, bound {bound}");
    assert!(heap <= bound as isize, "real heap {heap} > bound {bound}");
    assert!(peak_usage <= bound);
    // And the estimate is honest: it does not under-count the real heap by
    // more than a quarter.
    assert!(
        peak_usage as isize >= heap * 3 / 4,
        "usage {peak_usage} vs heap {heap}"
    );
    let _ = drain(&mut e);
    let evs = events(&mut e);
    for ev in evs {
        if let Event::Request(r) = ev {
            let _ = e.respond(Instant::ZERO, r.handle, &answer(Code::CONTENT, b""));
        }
    }
    let _ = drain(&mut e);
    let _ = finish(&mut e, Instant::ZERO + Duration::from_secs(100));
}

#[test]
fn per_entry_costs_cover_the_measured_heap() {
    // The documented per-entry costs (EXCHANGE_BYTES, PENDING_BYTES,
    // DEDUP_BYTES, PEER_BYTES, QUEUED_BYTES) cover the real heap per entry
    // for the largest common address type, SocketAddr (IPv6).
    use coap_proto::endpoint::{
        DEDUP_BYTES, EXCHANGE_BYTES, PEER_BYTES, PENDING_BYTES, QUEUED_BYTES,
    };
    use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
    fn addr(i: u32) -> SocketAddr {
        SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, (i >> 16) as u16, i as u16),
            5683,
            0,
            0,
        ))
    }
    const N: u32 = 1000;
    let mut cfg = Config::default();
    cfg.max_requests = 5000;
    cfg.max_peers = 5000;
    cfg.max_pending = 5000;
    cfg.max_dedup = 5000;
    cfg.max_events = 5000;
    cfg.max_transmit_queue = 5000;
    cfg.max_dedup_bytes = 100 * MIB;
    cfg.transmission.nstart = 5000;
    cfg.transmission.probing_rate = u32::MAX;
    let msg_size = cfg.max_message_size as isize;
    let per = |d: isize| d / N as isize;

    // Requests queued on one peer (no peer cost), datagrams sent.
    let base = live();
    let mut e: Endpoint<SocketAddr> = Endpoint::new(cfg, 1);
    for i in 0..N {
        e.request(us(u64::from(i)), addr(0), &get(Con, "")).unwrap();
    }
    let _ = drain(&mut e);
    let exchange = per(live() - base) - msg_size;
    let _ = finish(&mut e, Instant::ZERO);
    // Pings to N peers: exchange + peer.
    let base = live();
    let mut e: Endpoint<SocketAddr> = Endpoint::new(cfg, 1);
    for i in 0..N {
        e.ping(us(u64::from(i)), addr(i)).unwrap();
    }
    let _ = drain(&mut e);
    let peer = per(live() - base) - msg_size - exchange;
    let _ = finish(&mut e, Instant::ZERO);
    // Pending requests from N peers (+ their dedup entries), then answered.
    let base = live();
    let mut e: Endpoint<SocketAddr> = Endpoint::new(cfg, 1);
    let mut handles = Vec::with_capacity(N as usize);
    let handles_bytes = (handles.capacity() * 8) as isize;
    for i in 0..N {
        e.handle_datagram(
            Instant::ZERO,
            addr(i),
            &[0x42, 0x01, (i >> 8) as u8, i as u8, 1, 2],
        );
        while let Some(ev) = e.poll_event() {
            if let Event::Request(r) = ev {
                handles.push(r.handle);
                e.recycle(r.message.into_bytes());
            }
        }
    }
    let pending_and_dedup = per(live() - base - handles_bytes);
    for h in handles.drain(..) {
        e.respond(Instant::ZERO, h, &answer(Code::CONTENT, b""))
            .unwrap();
        let _ = drain(&mut e);
    }
    let dedup = per(live() - base - handles_bytes) - 6; // 6-byte cached replies
    let pending = pending_and_dedup - dedup;
    let _ = finish(&mut e, Instant::ZERO);
    // Events and datagrams left in their queues.
    let base = live();
    let mut e: Endpoint<SocketAddr> = Endpoint::new(cfg, 1);
    for i in 0..N {
        e.handle_datagram(Instant::ZERO, addr(i), &[0x40, 0, (i >> 8) as u8, i as u8]);
    }
    let queued_datagram = per(live() - base) - msg_size;
    let _ = drain(&mut e);
    let _ = finish(&mut e, Instant::ZERO);
    eprintln!(
        "SocketAddr per entry: exchange {exchange}, peer {peer}, pending {pending}, dedup {dedup}, queued datagram {queued_datagram}"
    );
    assert!(exchange <= EXCHANGE_BYTES as isize, "exchange {exchange}");
    assert!(peer <= PEER_BYTES as isize, "peer {peer}");
    assert!(pending <= PENDING_BYTES as isize, "pending {pending}");
    assert!(dedup <= DEDUP_BYTES as isize, "dedup {dedup}");
    assert!(
        queued_datagram <= QUEUED_BYTES as isize,
        "queued {queued_datagram}"
    );
    let event_slot = std::mem::size_of::<Event<SocketAddr>>() + 8;
    assert!(2 * event_slot <= QUEUED_BYTES, "event slot {event_slot}");
}

#[test]
fn unpolled_final_events_keep_their_request_slot() {
    // The event queue stays bounded even when the application issues
    // requests without polling events: a request keeps its max_requests
    // slot until its final event is polled.
    let mut cfg = Config::default();
    cfg.max_requests = 2;
    let mut c = ep(cfg);
    for i in 0..2u64 {
        c.ping(ms(i), SERVER).unwrap();
        let p = one(&mut c, SERVER);
        c.handle_datagram(ms(i), SERVER, &empty(Rst, parse(&p).message_id()));
    }
    assert_eq!(c.tables().requests, 0);
    assert_eq!(c.tables().events, 2);
    assert_eq!(c.ping(ms(2), SERVER), Err(Error::NoCapacity));
    assert!(matches!(c.poll_event(), Some(Event::Pong(_))));
    c.ping(ms(2), SERVER).unwrap();
    let _ = drain(&mut c);
    let _ = events(&mut c);
    let _ = finish(&mut c, ms(2));

    // The same for separate responses and their outcome events.
    let mut cfg = Config::default();
    cfg.max_separate = 1;
    let mut s = ep(cfg);
    for mid in [1u16, 2] {
        s.handle_datagram(
            Instant::ZERO,
            CLIENT,
            &msg(Con, Code::GET, mid, TOK, &[], b""),
        );
    }
    let hs: Vec<ResponseHandle> = events(&mut s)
        .into_iter()
        .map(|e| match e {
            Event::Request(r) => r.handle,
            other => panic!("{other:?}"),
        })
        .collect();
    for h in &hs {
        s.accept(Instant::ZERO, *h).unwrap();
    }
    let _ = drain(&mut s);
    s.respond(ms(1), hs[0], &answer(Code::CONTENT, b""))
        .unwrap();
    let sep = one(&mut s, CLIENT);
    s.handle_datagram(ms(2), CLIENT, &empty(Ack, parse(&sep).message_id()));
    assert_eq!(s.tables().separate, 0);
    // ResponseDelivered not polled yet: its slot is still taken.
    assert_eq!(
        s.respond(ms(3), hs[1], &answer(Code::CONTENT, b"")),
        Err(Error::NoCapacity)
    );
    assert!(matches!(s.poll_event(), Some(Event::ResponseDelivered(h)) if h == hs[0]));
    s.respond(ms(3), hs[1], &answer(Code::CONTENT, b""))
        .unwrap();
    let sep = one(&mut s, CLIENT);
    s.handle_datagram(ms(4), CLIENT, &empty(Ack, parse(&sep).message_id()));
    let _ = events(&mut s);
    finish_quiet(&mut s, ms(4));
}
