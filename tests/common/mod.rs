//! Shared helpers for the endpoint scenario tests: an address type with
//! multicast groups, message builders, output drains, and the end-of-test
//! check that nothing is left over once EXCHANGE_LIFETIME has passed.
#![allow(dead_code, unreachable_pub)]

pub mod alloc;

use core::time::Duration;

use coap_proto::endpoint::{Address, Config, Endpoint, Event};
use coap_proto::{Code, Instant, Message, MessageBuf, MessageType, OptionNumber};

/// A peer address: a plain `u32`. Values from `0xE000_0000` up are multicast
/// groups (like IPv4 class D).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Addr(pub u32);

impl Address for Addr {
    fn is_multicast(&self) -> bool {
        self.0 >= 0xE000_0000
    }
}

pub const CLIENT: Addr = Addr(1);
pub const SERVER: Addr = Addr(2);
pub const OTHER: Addr = Addr(3);
pub const GROUP: Addr = Addr(0xE000_00FD);

pub const SEED: u64 = 0x5eed_c0a9;

pub type Ep = Endpoint<Addr>;

pub fn ep(config: Config) -> Ep {
    Endpoint::new(config, SEED)
}

pub fn ep_seed(config: Config, seed: u64) -> Ep {
    Endpoint::new(config, seed)
}

pub fn secs(s: u64) -> Instant {
    Instant::from_secs(s)
}

pub fn ms(m: u64) -> Instant {
    Instant::from_millis(m)
}

pub fn us(u: u64) -> Instant {
    Instant::from_micros(u)
}

pub fn lifetime(ep: &Ep) -> Duration {
    ep.config().transmission.exchange_lifetime()
}

/// Every queued datagram.
pub fn drain<A: Address>(ep: &mut Endpoint<A>) -> Vec<(A, Vec<u8>)> {
    let mut buf = vec![0u8; 65536];
    let mut out = Vec::new();
    while let Some(t) = ep.poll_transmit(&mut buf).expect("buffer large enough") {
        out.push((t.to, buf[..t.len].to_vec()));
    }
    out
}

/// Exactly one queued datagram, to `to`.
#[track_caller]
pub fn one<A: Address>(ep: &mut Endpoint<A>, to: A) -> Vec<u8> {
    let mut d = drain(ep);
    assert_eq!(
        d.len(),
        1,
        "expected exactly one datagram, got {:?}",
        dump(&d)
    );
    let (dst, bytes) = d.remove(0);
    assert_eq!(dst, to);
    bytes
}

/// Asserts that nothing is queued for sending.
#[track_caller]
pub fn silent<A: Address>(ep: &mut Endpoint<A>) {
    let d = drain(ep);
    assert!(d.is_empty(), "expected no datagram, got {:?}", dump(&d));
}

/// A readable summary of (at most the first 10) datagrams.
pub fn dump<A: Address>(d: &[(A, Vec<u8>)]) -> Vec<String> {
    d.iter()
        .take(10)
        .map(|(a, b)| match Message::parse(b) {
            Ok(m) => format!("{a:?}: {m}"),
            Err(e) => format!("{a:?}: malformed {e} {b:02x?}"),
        })
        .collect()
}

/// Every queued event.
pub fn events<A: Address>(ep: &mut Endpoint<A>) -> Vec<Event<A>> {
    let mut out = Vec::new();
    while let Some(e) = ep.poll_event() {
        out.push(e);
    }
    out
}

/// Asserts that no event is queued.
#[track_caller]
pub fn no_events<A: Address>(ep: &mut Endpoint<A>) {
    let e = events(ep);
    assert!(e.is_empty(), "expected no event, got {e:?}");
}

/// Builds a datagram.
pub fn msg(
    ty: MessageType,
    code: Code,
    mid: u16,
    token: &[u8],
    options: &[(OptionNumber, &[u8])],
    payload: &[u8],
) -> Vec<u8> {
    let mut m = MessageBuf::new(ty, code);
    m.set_message_id(mid);
    m.set_token(token).expect("token");
    for (n, v) in options {
        m.add_option(*n, v);
    }
    m.set_payload(payload.to_vec());
    m.to_bytes().expect("encodable")
}

pub fn empty(ty: MessageType, mid: u16) -> Vec<u8> {
    msg(ty, Code::EMPTY, mid, &[], &[], &[])
}

pub fn parse(bytes: &[u8]) -> Message<'_> {
    Message::parse(bytes).expect("well-formed")
}

/// A `MessageBuf` request template (the endpoint assigns MID and token).
pub fn get(ty: MessageType, path: &str) -> MessageBuf {
    let mut m = MessageBuf::new(ty, Code::GET);
    if !path.is_empty() {
        m.add_option(OptionNumber::URI_PATH, path);
    }
    m
}

pub fn answer(code: Code, payload: &[u8]) -> MessageBuf {
    let mut m = MessageBuf::new(MessageType::Ack, code);
    m.set_payload(payload.to_vec());
    m
}

/// Datagrams sent while timers ran: instant, destination, bytes.
pub type Sent<A> = Vec<(Instant, A, Vec<u8>)>;
/// Events reported while timers ran, with their instant.
pub type Reported<A> = Vec<(Instant, Event<A>)>;

/// Runs the endpoint's timers until nothing is scheduled, collecting what
/// it sends and reports with the instant. Asserts that `poll_timeout` never
/// spins: after `handle_timeout(t)` the next deadline is later than `t`.
pub fn run_timers<A: Address>(ep: &mut Endpoint<A>) -> (Sent<A>, Reported<A>) {
    let mut sent = Vec::new();
    let mut evs = Vec::new();
    let mut steps = 0u32;
    while let Some(t) = ep.poll_timeout() {
        steps += 1;
        assert!(steps < 1_000_000, "timer loop does not end");
        let before = ep.tables();
        ep.handle_timeout(t);
        for (a, b) in drain(ep) {
            sent.push((t, a, b));
        }
        for e in events(ep) {
            evs.push((t, e));
        }
        if let Some(next) = ep.poll_timeout() {
            // Work budgets (256 cache expiries, 1024 timers per call) may
            // leave due work for the next call; otherwise a deadline at or
            // before `t` would be a spin.
            assert!(
                next > t || before.dedup > 256 || before.timers > 1024,
                "poll_timeout spins: {next:?} after handle_timeout({t:?}) with {:?}",
                ep.tables()
            );
        }
    }
    (sent, evs)
}

/// The end of every scenario (RFC 7252 §4.5, §4.4, §4.8.2): once
/// EXCHANGE_LIFETIME has passed after `last_activity`, no exchange, cache
/// entry, peer, timer, datagram or event is left over. Returns what was sent
/// and reported while getting there.
#[track_caller]
pub fn finish<A: Address>(ep: &mut Endpoint<A>, last_activity: Instant) -> (Sent<A>, Reported<A>) {
    let out = run_timers(ep);
    let end = last_activity + ep.config().transmission.exchange_lifetime() + Duration::from_secs(1);
    ep.handle_timeout(end);
    let tail = drain(ep);
    assert!(
        tail.is_empty(),
        "sent after the timers ran out: {:?}",
        dump(&tail)
    );
    let tail = events(ep);
    assert!(
        tail.is_empty(),
        "{} events after the timers ran out: {:?}",
        tail.len(),
        tail.iter().take(10).collect::<Vec<_>>()
    );
    assert!(
        ep.tables().is_empty(),
        "state left over after EXCHANGE_LIFETIME: {:?}",
        ep.tables()
    );
    assert_eq!(ep.poll_timeout(), None);
    out
}

/// Like [`finish`], and asserts that nothing at all was sent or reported.
#[track_caller]
pub fn finish_quiet<A: Address>(ep: &mut Endpoint<A>, last_activity: Instant) {
    let (sent, evs) = finish(ep, last_activity);
    assert!(
        sent.is_empty(),
        "{} unexpected datagrams: {:?}",
        sent.len(),
        sent.iter().take(10).collect::<Vec<_>>()
    );
    assert!(
        evs.is_empty(),
        "{} unexpected events: {:?}",
        evs.len(),
        evs.iter().take(10).collect::<Vec<_>>()
    );
}

/// The type, code, MID and token of a datagram.
pub fn head(bytes: &[u8]) -> (MessageType, Code, u16, Vec<u8>) {
    let m = parse(bytes);
    (m.ty(), m.code(), m.message_id(), m.token().to_vec())
}

/// The one `Event::Request` in the queue.
#[track_caller]
pub fn take_request<A: Address>(ep: &mut Endpoint<A>) -> coap_proto::endpoint::IncomingRequest<A> {
    let mut e = events(ep);
    assert_eq!(e.len(), 1, "expected one request, got {e:?}");
    match e.remove(0) {
        Event::Request(r) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

/// A piggybacked/separate response datagram answering `req`.
pub fn reply_to(req: &[u8], ty: MessageType, code: Code, payload: &[u8]) -> Vec<u8> {
    let m = parse(req);
    msg(ty, code, m.message_id(), m.token(), &[], payload)
}
