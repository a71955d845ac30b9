//! The call contract around time (design §4, issue 4 "API shape"): a
//! smaller `now` is clamped, an early or spurious `handle_timeout` is a
//! no-op, huge jumps are handled without panic, and `poll_timeout` never
//! asks to be called again for nothing (no spin). Each test ends by checking
//! that nothing is left over once EXCHANGE_LIFETIME has passed.

mod common;

use core::time::Duration;

use coap_proto::endpoint::{Config, Event};
use coap_proto::{Code, Instant, MessageType, OptionNumber};
use common::*;

use MessageType::{Ack, Con, Non};

#[test]
fn rfc7252_4_2_now_going_backwards_is_clamped() {
    // A smaller `now` than one seen before is treated as the latest one:
    // no panic, no early retransmission (RFC 7252 §4.2 timing holds).
    let mut c = ep(Config::default());
    c.request(secs(100), SERVER, &get(Con, "a")).unwrap();
    let first = one(&mut c, SERVER);
    let t1 = c.poll_timeout().unwrap();
    let t0 = t1 - secs(100);
    for t in [Instant::ZERO, secs(50), secs(99)] {
        c.handle_timeout(t);
        silent(&mut c);
        c.handle_datagram(t, OTHER, &[0x60, 0, 0, 0]); // unexpected ACK
        silent(&mut c);
    }
    assert_eq!(c.poll_timeout(), Some(t1));
    // A request "in the past" to another peer is scheduled from the clamped
    // now (100 s), not from 1 s.
    c.request(secs(1), OTHER, &get(Con, "b")).unwrap();
    let _ = one(&mut c, OTHER);
    let next = c.poll_timeout().unwrap();
    assert!(next >= secs(102), "{next:?}");
    // The first request retransmits exactly on schedule.
    c.handle_timeout(t1);
    let sent = drain(&mut c);
    assert!(sent.iter().any(|(to, b)| *to == SERVER && *b == first));
    assert_eq!(t1, secs(100) + t0);
    // A server answer given with an old `now`: its dedup entry lives
    // EXCHANGE_LIFETIME from the clamped now (t1), not from 3 s.
    let req = msg(Con, Code::GET, 7, &[1], &[], b"");
    c.handle_datagram(t1, CLIENT, &req);
    let r = take_request(&mut c);
    c.respond(secs(3), r.handle, &answer(Code::CONTENT, b""))
        .unwrap();
    let reply = one(&mut c, CLIENT);
    let late = secs(3) + lifetime(&c);
    c.handle_timeout(late);
    c.handle_datagram(late, CLIENT, &req);
    let to_client: Vec<_> = drain(&mut c)
        .into_iter()
        .filter(|(to, _)| *to == CLIENT)
        .collect();
    assert_eq!(
        to_client,
        [(CLIENT, reply)],
        "still a duplicate, replayed from the cache"
    );
    let _ = events(&mut c);
    let _ = finish(&mut c, secs(400));
}

#[test]
fn early_handle_timeout_is_a_no_op() {
    // Calling handle_timeout before the deadline changes nothing.
    let mut c = ep(Config::default());
    c.request(Instant::ZERO, SERVER, &get(Con, "")).unwrap();
    let _ = one(&mut c, SERVER);
    let deadline = c.poll_timeout().unwrap();
    let before = (*c.stats(), c.tables());
    for k in [0u64, 1, 1000, deadline.as_micros() - 1] {
        c.handle_timeout(us(k));
        silent(&mut c);
        no_events(&mut c);
        assert_eq!(c.poll_timeout(), Some(deadline));
    }
    assert_eq!((*c.stats(), c.tables()), before);
    c.handle_timeout(deadline);
    assert_eq!(drain(&mut c).len(), 1);
    let _ = finish(&mut c, secs(100));
}

#[test]
fn spurious_handle_timeout_is_a_no_op() {
    // Calling handle_timeout twice for the same instant, or with nothing
    // scheduled, is harmless.
    let mut e = ep(Config::default());
    for t in [0u64, 5, 5, 1_000_000, 1_000_000] {
        e.handle_timeout(secs(t));
        silent(&mut e);
        no_events(&mut e);
        assert!(e.tables().is_empty());
        assert_eq!(e.poll_timeout(), None);
    }
    let mut c = ep(Config::default());
    c.request(Instant::ZERO, SERVER, &get(Con, "")).unwrap();
    let _ = one(&mut c, SERVER);
    let t = c.poll_timeout().unwrap();
    c.handle_timeout(t);
    assert_eq!(drain(&mut c).len(), 1);
    for _ in 0..5 {
        c.handle_timeout(t);
        silent(&mut c);
        no_events(&mut c);
    }
    assert_eq!(c.stats().retransmissions, 1);
    let _ = finish(&mut c, secs(100));
}

#[test]
fn huge_time_jumps_do_not_panic() {
    // Instant arithmetic saturates; a jump to the end of time runs every
    // timer (bounded work) and leaves nothing behind.
    for jump in [
        Instant::MAX,
        us(u64::MAX - 1),
        us(u64::MAX / 2),
        secs(1 << 40),
    ] {
        let mut c = ep(Config::default());
        let id = c.request(Instant::ZERO, SERVER, &get(Con, "")).unwrap();
        c.request(Instant::ZERO, SERVER, &get(Non, "")).unwrap(); // queued (NSTART)
        c.request(Instant::ZERO, GROUP, &get(Non, "")).unwrap();
        c.handle_datagram(
            Instant::ZERO,
            CLIENT,
            &msg(Con, Code::GET, 1, &[1], &[], b""),
        );
        c.handle_datagram(
            Instant::ZERO,
            OTHER,
            &msg(Non, Code::GET, 2, &[2], &[], b""),
        );
        let _ = drain(&mut c);
        let reqs: Vec<_> = events(&mut c)
            .into_iter()
            .filter_map(|e| match e {
                Event::Request(r) => Some(r.handle),
                _ => None,
            })
            .collect();
        c.accept(Instant::ZERO, reqs[0]).unwrap();
        c.respond(Instant::ZERO, reqs[0], &answer(Code::CONTENT, b""))
            .unwrap();
        let _ = drain(&mut c);
        for _ in 0..20 {
            c.handle_timeout(jump);
            let sent = drain(&mut c);
            assert!(sent.len() <= 16, "bounded: {}", sent.len());
            let _ = events(&mut c);
        }
        // Everything ran out; new work still functions at the end of time.
        let _ = finish(&mut c, jump);
        c.handle_datagram(jump, CLIENT, &[0x40, 0, 0, 9]);
        assert_eq!(one(&mut c, CLIENT), [0x70, 0, 0, 9]);
        c.handle_timeout(Instant::ZERO); // backwards after the jump
        assert!(c.cancel(jump, id).is_err());
        let _ = finish(&mut c, jump);
    }
}

#[test]
fn poll_timeout_does_not_spin() {
    // After handle_timeout(now) and draining, poll_timeout is either None
    // or later than now whenever nothing is due (no busy loop). Driven with
    // a pseudo-random mix of requests, answers and losses on two endpoints.
    let mut cfg = Config::default();
    cfg.transmission.nstart = 2;
    let mut a = ep_seed(cfg, 11);
    let mut b = ep_seed(cfg, 12);
    let mut x: u64 = 0x1234_5678;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut now = Instant::ZERO;
    let mut pending = Vec::new();
    for _ in 0..3000 {
        now += Duration::from_millis(rnd() % 900);
        match rnd() % 6 {
            0 => {
                let _ = a.request(
                    now,
                    SERVER,
                    &get(if rnd() % 2 == 0 { Con } else { Non }, "r"),
                );
            }
            1 => {
                let _ = a.ping(now, SERVER);
            }
            2 => {
                let _ = a.request(now, GROUP, &get(Non, "m"));
            }
            _ => {}
        }
        // Deliver with 30% loss.
        for (_, d) in drain(&mut a) {
            if rnd() % 10 >= 3 {
                b.handle_datagram(now, CLIENT, &d);
            }
        }
        for e in events(&mut b) {
            if let Event::Request(r) = e {
                pending.push(r.handle);
            }
        }
        while pending.len() > 3 || (!pending.is_empty() && rnd() % 3 == 0) {
            let h = pending.remove(0);
            if rnd() % 2 == 0 {
                let _ = b.accept(now, h);
            }
            let _ = b.respond(now, h, &answer(Code::CONTENT, b"v"));
        }
        for (_, d) in drain(&mut b) {
            if rnd() % 10 >= 3 {
                a.handle_datagram(now, SERVER, &d);
            }
        }
        let _ = events(&mut a);
        for e in [&mut a, &mut b] {
            if e.poll_timeout().is_some_and(|t| t <= now) {
                e.handle_timeout(now);
                let _ = drain(e);
                let _ = events(e);
                if let Some(t) = e.poll_timeout() {
                    assert!(t > now, "spin: {t:?} <= {now:?}, {:?}", e.tables());
                }
            }
        }
    }
    for h in pending {
        let _ = b.respond(now, h, &answer(Code::CONTENT, b""));
    }
    let _ = finish(&mut a, now);
    let _ = finish(&mut b, now);
    assert!(a.stats().retransmissions > 0 && a.stats().responses_in > 0);
}

#[test]
fn rfc7252_4_7_probing_wake_up_is_not_early() {
    // RFC 7252 §4.7 with a rate that does not divide a second evenly: the
    // wake-up for a request held back by PROBING_RATE is at (or just after)
    // the instant the budget allows it, never before (which would spin).
    let mut cfg = Config::default();
    cfg.transmission.nstart = 10;
    cfg.transmission.probing_rate = 3;
    let mut c = ep(cfg);
    for _ in 0..4 {
        c.request(Instant::ZERO, SERVER, &msg_template()).unwrap();
    }
    let first = one(&mut c, SERVER);
    let len = first.len() as u64;
    let (sent, _) = finish(&mut c, secs(400));
    assert_eq!(sent.len(), 3);
    for (k, (t, _, b)) in sent.iter().enumerate() {
        assert_eq!(b.len() as u64, len);
        // The (k+2)-th datagram needs (k+2)*len bytes of budget at 3 B/s.
        let need_us = ((k as u64 + 2) * len * 1_000_000).div_ceil(3);
        assert_eq!(t.as_micros(), need_us, "datagram {}", k + 2);
    }
}

fn msg_template() -> coap_proto::MessageBuf {
    let mut m = get(Non, "");
    m.add_option(OptionNumber::URI_QUERY, "x"); // 10-byte datagrams
    m
}

#[test]
fn commands_with_an_old_now_use_the_clamped_now() {
    // The clamp applies to commands too (accept/respond/ping/cancel).
    let mut s = ep(Config::default());
    s.handle_datagram(secs(50), CLIENT, &msg(Con, Code::GET, 0x33, &[3], &[], b""));
    let r = take_request(&mut s);
    s.accept(secs(1), r.handle).unwrap();
    assert_eq!(one(&mut s, CLIENT), [0x60, 0, 0, 0x33]);
    s.respond(secs(2), r.handle, &answer(Code::CONTENT, b""))
        .unwrap();
    let sep = one(&mut s, CLIENT);
    let t = s.poll_timeout().unwrap();
    assert!(t >= secs(52) && t <= secs(53), "{t:?}");
    s.handle_datagram(secs(0), CLIENT, &empty(Ack, parse(&sep).message_id()));
    assert!(matches!(&events(&mut s)[..], [Event::ResponseDelivered(h)] if *h == r.handle));
    let id = s.ping(secs(0), OTHER).unwrap();
    let _ = one(&mut s, OTHER);
    let t = s.poll_timeout().unwrap();
    assert!(t >= secs(52) && t <= secs(53), "{t:?}");
    s.cancel(secs(0), id).unwrap();
    let _ = finish(&mut s, secs(50));
}
