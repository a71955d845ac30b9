//! Endpoint fuzz target bodies: `endpoint_server`, `endpoint_client` and
//! `endpoint_pair`.
//!
//! Each body decodes a list of operations (datagrams, commands, time steps)
//! from the fuzz input with [`arbitrary`], drives one or two
//! [`Endpoint`]s through them exactly as the call contract says (drain
//! transmits and events after every input, then run timers), and checks the
//! endpoint's invariants after **every** step:
//!
//! - no panic, and every datagram the endpoint sends parses and fits
//!   `max_message_size`;
//! - no spin: after `handle_timeout(now)` and a full drain (repeated a
//!   bounded number of times, since `handle_timeout` has a work budget),
//!   `poll_timeout()` is `None` or later than `now`;
//! - every table within its [`Config`] bound and
//!   `memory_usage() <= config().memory_bound()`;
//! - `BufferTooSmall` keeps the datagram queued and reports its exact size;
//! - a request (same peer and MID, and in the pair the same request marker)
//!   reaches the server application at most once while its deduplication
//!   entry may live, unless the deduplication cache evicted entries;
//! - every client request ends in exactly one outcome (`Response`, `Reset`,
//!   `Pong`, `TimedOut`, `MulticastDone`), no later than its deadline
//!   counted from its first transmission, and nothing is sent for it
//!   afterwards; a CON (same destination and MID) is sent at most
//!   MAX_RETRANSMIT + 1 times;
//! - the harness's view of open requests and unanswered incoming requests
//!   matches [`Endpoint::tables`];
//! - after the application answers everything and time runs past every
//!   lifetime, `tables().is_empty()` (nothing leaks).
//!
//! The bodies panic only when one of these is violated.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::missing_panics_doc,
    clippy::too_many_lines
)]

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use core::time::Duration;

use arbitrary::{Arbitrary, Unstructured};

use crate::endpoint::{
    Address, BufferTooSmall, Config, Endpoint, Error, Event, NotificationId, RequestId,
    ResponseHandle, TransmissionParameters,
};
use crate::message::{Code, Encoder, Message, MessageType, OptionNumber};
use crate::time::Instant;

/// Prints the decoded input when `COAP_FUZZ_DEBUG` is set (for minimizing
/// and explaining a crash by hand).
fn trace(input: &impl core::fmt::Debug) {
    #[cfg(feature = "std")]
    if std::env::var_os("COAP_FUZZ_DEBUG").is_some() {
        std::eprintln!("{input:#?}");
    }
    #[cfg(not(feature = "std"))]
    let _ = input;
}

/// Prints one line of the run when `COAP_FUZZ_DEBUG` is set.
fn note(args: core::fmt::Arguments<'_>) {
    #[cfg(feature = "std")]
    if std::env::var_os("COAP_FUZZ_DEBUG").is_some() {
        std::eprintln!("{args}");
    }
    #[cfg(not(feature = "std"))]
    let _ = args;
}

// ----- addresses ----------------------------------------------------------------

/// A peer address for the fuzzers: one byte, with 0xE0.. as multicast groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Addr(u8);

impl Address for Addr {
    fn is_multicast(&self) -> bool {
        self.0 >= GROUP.0
    }
}

/// The "All CoAP Nodes" group of the fuzzers.
const GROUP: Addr = Addr(0xE0);
/// A second group nobody listens to.
const GROUP2: Addr = Addr(0xF0);

/// A unicast source: mostly a handful of peers (so that state per peer
/// builds up), sometimes any of the 224 unicast addresses.
fn source(x: u8) -> Addr {
    if x < 200 {
        Addr(1 + x % 6)
    } else {
        Addr(x % GROUP.0)
    }
}

/// A request destination: a few peers and the two groups.
fn destination(x: u8) -> Addr {
    match x % 16 {
        14 => GROUP,
        15 => GROUP2,
        n => Addr(1 + n % 4),
    }
}

// ----- limits -------------------------------------------------------------------

/// Slack on every deadline (rounding of the microsecond clock).
const SLACK: Duration = Duration::from_millis(1);
/// `handle_timeout` + drain rounds before we call it a spin.
const SETTLE_ROUNDS: usize = 64;
/// Timer steps allowed in one `Advance` (exact stepping).
const ADVANCE_STEPS: usize = 20_000;
/// Steps allowed in the final run-down.
const FINAL_STEPS: usize = 100_000;
/// Operations taken from one input.
const MAX_OPS: usize = 256;
/// Datagrams remembered per direction, for replies and duplicates.
const RECENT: usize = 16;
/// Large enough for any datagram the configurations allow.
const TX_BUF: usize = 2048;

// ----- configurations -------------------------------------------------------------

/// Fully fuzz-chosen parameters (each reduced into a sane range).
#[derive(Arbitrary, Debug)]
struct CustomConfig {
    ack_timeout_ms: u16,
    random_factor_milli: u16,
    max_retransmit: u8,
    nstart: u8,
    leisure_ms: u16,
    probing_rate: u16,
    max_latency_ms: u16,
    processing_ms: u16,
    max_message_size: u16,
    max_requests: u8,
    max_pending: u8,
    max_separate: u8,
    max_dedup: u8,
    max_dedup_bytes: u16,
    max_peers: u8,
    max_transmit_queue: u8,
    max_events: u8,
    separate_ack_delay_ms: Option<u16>,
    separate_response_con: bool,
    busy_max_age: u8,
    token_len: u8,
    separate_response_timeout_ms: u16,
    non_request_timeout_ms: u16,
    multicast_timeout_ms: u16,
}

/// The configuration the endpoints run with.
#[derive(Arbitrary, Debug)]
enum ConfigChoice {
    /// RFC defaults, roomy tables.
    Default,
    /// Short timers (lifetimes under a second), roomy tables.
    Fast,
    /// Tiny tables, so that every full-table policy runs.
    Tiny,
    /// Tiny tables and short timers.
    TinyFast,
    /// Everything fuzz-chosen.
    Custom(CustomConfig),
}

fn ms(v: u16) -> Duration {
    Duration::from_millis(u64::from(v))
}

fn fast(c: &mut Config) {
    let t = TransmissionParameters {
        ack_timeout: ms(20),
        default_leisure: ms(50),
        max_latency: ms(100),
        processing_delay: ms(20),
        probing_rate: 1000,
        ..TransmissionParameters::default()
    };
    c.transmission = t;
    c.separate_ack_delay = Some(ms(10));
    c.separate_response_timeout = t.max_transmit_wait();
    c.non_request_timeout = t.max_transmit_wait();
    c.multicast_timeout = t.default_leisure + t.ack_timeout;
}

fn tiny(c: &mut Config) {
    c.max_message_size = 64;
    c.max_requests = 2;
    c.max_pending = 2;
    c.max_separate = 1;
    c.max_dedup = 2;
    c.max_dedup_bytes = 64;
    c.max_peers = 2;
    c.max_transmit_queue = 4;
    c.max_events = 3;
}

impl ConfigChoice {
    fn build(&self) -> Config {
        let mut c = Config::default();
        match self {
            Self::Default => {}
            Self::Fast => fast(&mut c),
            Self::Tiny => tiny(&mut c),
            Self::TinyFast => {
                fast(&mut c);
                tiny(&mut c);
            }
            Self::Custom(x) => {
                c.transmission = TransmissionParameters {
                    ack_timeout: ms(1 + x.ack_timeout_ms % 4000),
                    ack_random_factor_milli: 1000 + u32::from(x.random_factor_milli % 2001),
                    max_retransmit: x.max_retransmit % 8,
                    nstart: 1 + u16::from(x.nstart % 4),
                    default_leisure: ms(x.leisure_ms % 10_000),
                    probing_rate: 1 + u32::from(x.probing_rate),
                    // At least 1 ms: network delays stay strictly below
                    // it (see `Pair::delay`).
                    max_latency: ms(1 + x.max_latency_ms % 10_000),
                    processing_delay: ms(x.processing_ms % 4000),
                    ..TransmissionParameters::default()
                };
                c.max_message_size = usize::from(x.max_message_size % 1201);
                c.max_requests = usize::from(x.max_requests % 9);
                c.max_pending = usize::from(x.max_pending % 9);
                c.max_separate = usize::from(x.max_separate % 9);
                c.max_dedup = usize::from(x.max_dedup % 17);
                c.max_dedup_bytes = usize::from(x.max_dedup_bytes % 4096);
                c.max_peers = usize::from(x.max_peers % 9);
                c.max_transmit_queue = usize::from(x.max_transmit_queue % 17);
                c.max_events = usize::from(x.max_events % 17);
                c.separate_ack_delay = x.separate_ack_delay_ms.map(|d| ms(d % 5000));
                c.separate_response_con = x.separate_response_con;
                c.busy_max_age = u32::from(x.busy_max_age);
                c.token_len = x.token_len % 10;
                c.separate_response_timeout = ms(x.separate_response_timeout_ms);
                c.non_request_timeout = ms(x.non_request_timeout_ms);
                c.multicast_timeout = ms(x.multicast_timeout_ms);
            }
        }
        c
    }
}

// ----- building datagrams ---------------------------------------------------------

/// Option numbers worth hitting: every registered one, unknown critical and
/// elective ones, and a few large numbers.
const OPTIONS: [u16; 24] = [
    1, 3, 4, 5, 6, 7, 8, 11, 12, 14, 15, 17, 20, 23, 27, 28, 35, 39, 60, 258, 9, 2048, 2049, 65001,
];

fn option_number(x: u8) -> OptionNumber {
    if x < 240 {
        OptionNumber(OPTIONS[usize::from(x) % OPTIONS.len()])
    } else {
        OptionNumber(u16::from(x) * 257)
    }
}

fn request_code(x: u8) -> Code {
    if x < 240 { Code(1 + x % 7) } else { Code(x) }
}

const RESPONSE_CODES: [Code; 12] = [
    Code::CONTENT,
    Code::CREATED,
    Code::DELETED,
    Code::VALID,
    Code::CHANGED,
    Code::CONTINUE,
    Code::BAD_REQUEST,
    Code::NOT_FOUND,
    Code::BAD_OPTION,
    Code::INTERNAL_SERVER_ERROR,
    Code::SERVICE_UNAVAILABLE,
    Code::GATEWAY_TIMEOUT,
];

fn response_code(x: u8) -> Code {
    if x < 240 {
        RESPONSE_CODES[usize::from(x) % RESPONSE_CODES.len()]
    } else {
        Code(x)
    }
}

/// Codes for fuzz-built datagrams: mostly requests, then responses, empty
/// and anything.
fn any_code(x: u8) -> Code {
    match x {
        0..160 => request_code(x),
        160..200 => response_code(x - 160),
        200..220 => Code::EMPTY,
        _ => Code(x),
    }
}

type Opts = Vec<(u8, Vec<u8>)>;

/// Encodes a message (options sorted, values capped), or `None` when the
/// encoder refuses it (e.g. an empty message with a token).
fn build(
    ty: MessageType,
    code: Code,
    mid: u16,
    token: &[u8],
    opts: &Opts,
    payload: &[u8],
) -> Option<Vec<u8>> {
    let mut options: Vec<(OptionNumber, &[u8])> = opts
        .iter()
        .take(12)
        .map(|(n, v)| (option_number(*n), &v[..v.len().min(40)]))
        .collect();
    options.sort_by_key(|o| o.0);
    let mut buf = alloc::vec![0u8; 1500];
    let token = &token[..token.len().min(8)];
    let payload = &payload[..payload.len().min(1200)];
    let n = (|| {
        let mut enc = Encoder::new(&mut buf, ty, code, mid, token)?;
        for (n, v) in &options {
            enc.option(*n, v)?;
        }
        enc.payload(payload)?;
        Ok::<_, crate::message::EncodeError>(enc.finish())
    })()
    .ok()?;
    buf.truncate(n);
    Some(buf)
}

/// A datagram from the fuzz input: raw bytes, a structured message, or a
/// mutation of one seen recently.
#[derive(Arbitrary, Debug)]
enum Wire {
    Raw(Vec<u8>),
    Msg {
        ty: MessageType,
        code: u8,
        mid: u8,
        token: Vec<u8>,
        opts: Opts,
        payload: Vec<u8>,
    },
    Mutate {
        pick: u8,
        outgoing: bool,
        flips: Vec<(u8, u8)>,
    },
}

/// A reply to one of the endpoint's recent datagrams, built from its MID
/// and token so that it matches.
#[derive(Arbitrary, Debug)]
enum ReplyKind {
    EmptyAck,
    Rst,
    Piggyback(u8),
    ConResponse {
        code: u8,
        mid: u16,
    },
    NonResponse {
        code: u8,
        mid: u16,
    },
    /// The datagram itself, sent back.
    Echo,
    /// A response with the right MID but another token.
    WrongToken(u8),
}

/// What the application does with an incoming request.
#[derive(Arbitrary, Clone, Copy, Debug)]
enum Policy {
    /// Answer at once (piggybacked on the ACK of a CON).
    Piggyback,
    /// Accept now (empty ACK), answer after the delay (ms).
    Separate(u16),
    /// Answer after the delay (ms), letting the endpoint's delayed ACK run.
    Later(u16),
    /// Answer only when told to (or at the very end).
    Never,
}

// ----- one endpoint plus its application ------------------------------------------

/// An open request as the harness sees it.
#[derive(Debug)]
#[allow(clippy::struct_excessive_bools)] // independent facts about a request
struct Req {
    peer: Addr,
    con: bool,
    ping: bool,
    multicast: bool,
    first_tx: Option<Instant>,
    /// The instant by which it must have ended.
    bound: Option<Instant>,
    token: Option<Vec<u8>>,
    acked: bool,
}

/// An incoming request the application holds.
#[derive(Debug)]
struct Pend {
    handle: ResponseHandle,
    /// When the endpoint gives up on it (EXCHANGE_LIFETIME after arrival).
    expires: Instant,
    /// When the application answers it (`None`: only on command).
    due: Option<Instant>,
    code: Code,
    payload: u8,
}

/// Transmissions of one CON (destination, MID).
#[derive(Debug)]
struct ConTx {
    first: Instant,
    /// `Node::jumped` at the first transmission.
    jumped: Duration,
    count: u32,
    /// The exchange it belongs to, when known.
    owner: Option<Owner>,
    /// The bytes of the last transmission.
    last: Vec<u8>,
}

/// An exchange a CON belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    Req(RequestId),
    Resp(ResponseHandle),
}

const PAYLOAD: [u8; 256] = [0x5a; 256];

struct Node {
    ep: Endpoint<Addr>,
    /// The other endpoint of a pair: requests from it carry markers.
    partner: Option<Addr>,
    /// Buffer size offered to the next `poll_transmit` first.
    poll_len: usize,
    txbuf: Vec<u8>,
    /// Transmissions of CON messages per (destination, MID).
    con_tx: BTreeMap<(Addr, u16), ConTx>,
    /// Total virtual time skipped by late `handle_timeout` calls.
    jumped: Duration,
    recent_out: VecDeque<(Addr, Vec<u8>)>,
    recent_in: VecDeque<(Addr, bool, Vec<u8>)>,
    /// Datagrams sent, for the network of the pair.
    out: Vec<(Addr, Vec<u8>)>,
    keep_out: bool,

    // Client role.
    reqs: BTreeMap<RequestId, Req>,
    closed: Vec<RequestId>,
    markers: BTreeMap<u32, RequestId>,
    next_marker: u32,

    // Server role.
    pending: Vec<Pend>,
    policies: Vec<Policy>,
    policy_pos: usize,
    responded: BTreeSet<ResponseHandle>,
    reported: BTreeSet<ResponseHandle>,
    /// Answered piggybacked or NON: no separate CON exchange follows.
    answered_inline: BTreeSet<ResponseHandle>,
    /// Peer and token of every request delivered to the application.
    resp_meta: BTreeMap<ResponseHandle, (Addr, Vec<u8>)>,
    deliveries: BTreeMap<(Addr, u16), (Instant, bool)>,
    marker_deliveries: BTreeSet<u32>,
    /// Answer everything at once (the run-down).
    final_mode: bool,
    /// Unanswered requests the endpoint dropped after EXCHANGE_LIFETIME.
    expired: u64,
    /// Observers (RFC 7641): peer and token of recent requests with
    /// Observe:0 (at most `RECENT`), the targets of `notify`.
    observers: VecDeque<(Addr, Vec<u8>)>,
    /// Notifications whose outcome may still come (superseded ones never
    /// report, §4.5.2), and those that reported.
    notified: BTreeSet<NotificationId>,
    notification_outcomes: BTreeSet<NotificationId>,
}

impl Node {
    fn new(
        config: &Config,
        seed: u64,
        partner: Option<Addr>,
        marker_base: u32,
        policies: Vec<Policy>,
    ) -> Self {
        Self {
            ep: Endpoint::new(*config, seed),
            partner,
            poll_len: TX_BUF,
            txbuf: alloc::vec![0u8; TX_BUF],
            con_tx: BTreeMap::new(),
            jumped: Duration::ZERO,
            recent_out: VecDeque::new(),
            recent_in: VecDeque::new(),
            out: Vec::new(),
            keep_out: partner.is_some(),
            reqs: BTreeMap::new(),
            closed: Vec::new(),
            markers: BTreeMap::new(),
            next_marker: marker_base,
            pending: Vec::new(),
            policies,
            policy_pos: 0,
            responded: BTreeSet::new(),
            reported: BTreeSet::new(),
            resp_meta: BTreeMap::new(),
            answered_inline: BTreeSet::new(),
            deliveries: BTreeMap::new(),
            marker_deliveries: BTreeSet::new(),
            final_mode: false,
            expired: 0,
            observers: VecDeque::new(),
            notified: BTreeSet::new(),
            notification_outcomes: BTreeSet::new(),
        }
    }

    fn cfg(&self) -> Config {
        *self.ep.config()
    }

    // ----- inputs -----------------------------------------------------------------

    fn datagram(&mut self, now: Instant, skew: u8, from: Addr, multicast: bool, data: &[u8]) {
        note(format_args!(
            "{now:?} {:?} <- {from:?}{}: {data:02x?}",
            self.partner,
            if multicast { " (group)" } else { "" }
        ));
        // A `now` older than the last one is clamped by the endpoint. The
        // (possibly spurious) `handle_timeout` first makes `now` the latest
        // one it saw, so that the clamped time is the harness's `now`.
        if skew > 0 {
            self.ep.handle_timeout(now);
        }
        let at = Instant::from_micros(now.as_micros().saturating_sub(u64::from(skew) * 1000));
        if multicast {
            self.ep.handle_multicast_datagram(at, from, data);
        } else {
            self.ep.handle_datagram(at, from, data);
        }
        if self.recent_in.len() == RECENT {
            self.recent_in.pop_front();
        }
        self.recent_in.push_back((from, multicast, data.to_vec()));
    }

    fn wire_bytes(&self, wire: &Wire) -> Option<Vec<u8>> {
        match wire {
            Wire::Raw(b) => Some(b[..b.len().min(1300)].to_vec()),
            Wire::Msg {
                ty,
                code,
                mid,
                token,
                opts,
                payload,
            } => build(
                *ty,
                any_code(*code),
                u16::from(*mid) * 0x0101,
                token,
                opts,
                payload,
            ),
            Wire::Mutate {
                pick,
                outgoing,
                flips,
            } => {
                let mut b = if *outgoing {
                    pick_recent(&self.recent_out, *pick)?.1.clone()
                } else {
                    pick_recent(&self.recent_in, *pick)?.2.clone()
                };
                if b.is_empty() {
                    return None;
                }
                for (pos, x) in flips.iter().take(8) {
                    let i = usize::from(*pos) % b.len();
                    b[i] ^= *x;
                }
                Some(b)
            }
        }
    }

    /// A reply to a recent outgoing datagram, from its destination (or a
    /// given address).
    fn reply(
        &self,
        pick: u8,
        kind: &ReplyKind,
        from: Option<u8>,
        opts: &Opts,
        payload: &[u8],
    ) -> Option<(Addr, Vec<u8>)> {
        let (to, bytes) = pick_recent(&self.recent_out, pick)?;
        let msg = Message::parse(bytes).ok()?;
        let (mid, token) = (msg.message_id(), msg.token());
        let from = match from {
            Some(x) => source(x),
            // A multicast request is answered by its members.
            None if to.is_multicast() => Addr(1 + (pick % 4)),
            None => *to,
        };
        let b = match kind {
            ReplyKind::EmptyAck => {
                build(MessageType::Ack, Code::EMPTY, mid, &[], &Vec::new(), &[])?
            }
            ReplyKind::Rst => build(MessageType::Rst, Code::EMPTY, mid, &[], &Vec::new(), &[])?,
            ReplyKind::Piggyback(c) => build(
                MessageType::Ack,
                response_code(*c),
                mid,
                token,
                opts,
                payload,
            )?,
            ReplyKind::ConResponse { code, mid } => build(
                MessageType::Con,
                response_code(*code),
                *mid,
                token,
                opts,
                payload,
            )?,
            ReplyKind::NonResponse { code, mid } => build(
                MessageType::Non,
                response_code(*code),
                *mid,
                token,
                opts,
                payload,
            )?,
            ReplyKind::Echo => bytes.clone(),
            ReplyKind::WrongToken(c) => {
                let mut t = token.to_vec();
                match t.first_mut() {
                    Some(b) => *b ^= 1,
                    None => t.push(1),
                }
                build(MessageType::Ack, response_code(*c), mid, &t, opts, payload)?
            }
        };
        Some((from, b))
    }

    fn request(
        &mut self,
        now: Instant,
        peer: Addr,
        con: bool,
        method: Code,
        path: u8,
        payload_len: u8,
    ) {
        let before = self.ep.tables();
        let cfg = self.cfg();
        let marker = self.next_marker;
        self.next_marker += 1;
        let mut payload = [0x3c_u8; 260];
        payload[..4].copy_from_slice(&marker.to_be_bytes());
        let payload = &payload[..4 + usize::from(payload_len)];
        let r = self.ep.request_with(now, peer, con, method, |enc| {
            if path > 0 {
                enc.option(OptionNumber::URI_PATH, &PAYLOAD[..usize::from(path % 32)])?;
            }
            enc.payload(payload)?;
            Ok(())
        });
        match r {
            Ok(id) => {
                assert!(method.is_request(), "request accepted with code {method}");
                assert!(
                    !(con && peer.is_multicast()),
                    "CON multicast request accepted"
                );
                assert!(
                    !self.reqs.contains_key(&id) && !self.closed.contains(&id),
                    "RequestId {id} reused"
                );
                self.reqs.insert(
                    id,
                    Req {
                        peer,
                        con,
                        ping: false,
                        multicast: peer.is_multicast(),
                        first_tx: None,
                        bound: None,
                        token: None,
                        acked: false,
                    },
                );
                self.markers.insert(marker, id);
            }
            Err(Error::InvalidCode) => assert!(!method.is_request()),
            Err(Error::ConfirmableMulticast) => assert!(con && peer.is_multicast()),
            Err(Error::NoCapacity) => assert!(
                before.requests >= cfg.max_requests
                    || before.peers >= cfg.max_peers
                    || cfg.token_len <= 2,
                "NoCapacity with room: {before:?}"
            ),
            Err(Error::Encode(_)) => {}
            Err(e) => panic!("request: unexpected {e:?}"),
        }
    }

    fn ping(&mut self, now: Instant, peer: Addr) {
        let before = self.ep.tables();
        let cfg = self.cfg();
        match self.ep.ping(now, peer) {
            Ok(id) => {
                assert!(!peer.is_multicast());
                self.reqs.insert(
                    id,
                    Req {
                        peer,
                        con: true,
                        ping: true,
                        multicast: false,
                        first_tx: None,
                        bound: None,
                        token: None,
                        acked: false,
                    },
                );
            }
            Err(Error::ConfirmableMulticast) => assert!(peer.is_multicast()),
            Err(Error::NoCapacity) => assert!(
                before.requests >= cfg.max_requests || before.peers >= cfg.max_peers,
                "NoCapacity with room: {before:?}"
            ),
            Err(e) => panic!("ping: unexpected {e:?}"),
        }
    }

    fn cancel(&mut self, now: Instant, pick: u8, closed: bool) {
        if closed && !self.closed.is_empty() {
            let id = self.closed[usize::from(pick) % self.closed.len()];
            assert_eq!(
                self.ep.cancel(now, id),
                Err(Error::UnknownHandle),
                "cancel of ended {id}"
            );
            return;
        }
        if self.reqs.is_empty() {
            return;
        }
        let id = *self
            .reqs
            .keys()
            .nth(usize::from(pick) % self.reqs.len())
            .unwrap();
        assert_eq!(self.ep.cancel(now, id), Ok(()), "cancel of open {id}");
        self.close(id);
    }

    fn close(&mut self, id: RequestId) {
        assert!(
            self.reqs.remove(&id).is_some(),
            "{id} ended twice (or was never open)"
        );
        self.closed.push(id);
    }

    fn respond_pick(&mut self, now: Instant, pick: u8, code: Code, payload: u8) {
        if !self.pending.is_empty() {
            let i = usize::from(pick) % self.pending.len();
            self.respond(now, i, code, payload);
        }
    }

    /// Answers pending request `i`; returns whether the endpoint took it.
    fn respond(&mut self, now: Instant, i: usize, code: Code, payload: u8) -> bool {
        let h = self.pending[i].handle;
        let body = &PAYLOAD[..usize::from(payload)];
        let r = self.ep.respond_with(now, h, code, |enc| {
            if !body.is_empty() {
                enc.payload(body)?;
            }
            Ok(())
        });
        match r {
            Ok(()) => {
                assert!(code.is_response(), "respond accepted code {code}");
                assert!(self.responded.insert(h));
                self.pending.swap_remove(i);
                true
            }
            Err(Error::InvalidCode) => {
                assert!(!code.is_response());
                false
            }
            Err(Error::UnknownHandle) => {
                let p = &self.pending[i];
                assert!(
                    now >= p.expires,
                    "the endpoint forgot unanswered request {h} before it expired"
                );
                self.pending.swap_remove(i);
                self.expired += 1;
                true
            }
            Err(Error::NoCapacity | Error::MessageIdsExhausted | Error::Encode(_)) => false,
            Err(e) => panic!("respond: unexpected {e:?}"),
        }
    }

    /// A notification (RFC 7641 §4.2) to a registered observer, or else to
    /// the sender of a recent request.
    fn notify_pick(&mut self, now: Instant, pick: u8, con: bool, payload: u8) {
        let target = pick_recent(&self.observers, pick).cloned().or_else(|| {
            let n = self.resp_meta.len();
            (n > 0)
                .then(|| self.resp_meta.values().nth(usize::from(pick) % n).cloned())
                .flatten()
        });
        let Some((peer, token)) = target else {
            return;
        };
        let body = &PAYLOAD[..usize::from(payload)];
        let r = self
            .ep
            .notify_with(now, peer, &token, con, Code::CONTENT, |enc| {
                enc.option_uint(OptionNumber::OBSERVE, u32::from(pick))?;
                if !body.is_empty() {
                    enc.payload(body)?;
                }
                Ok(())
            });
        match r {
            Ok(id) => assert!(self.notified.insert(id), "{id} returned twice"),
            Err(Error::NoCapacity) => assert!(con, "a NON notification is never refused"),
            Err(Error::MessageIdsExhausted | Error::Encode(_) | Error::Unsupported) => {}
            Err(e) => panic!("notify: unexpected {e:?}"),
        }
        assert!(self.ep.tables().notifications <= self.cfg().max_notifications);
    }

    fn accept_pick(&mut self, now: Instant, pick: u8) {
        if !self.pending.is_empty() {
            let p = &self.pending[usize::from(pick) % self.pending.len()];
            let r = self.ep.accept(now, p.handle);
            assert!(
                r.is_ok() || now >= p.expires,
                "accept of held {}: {r:?}",
                p.handle
            );
        }
    }

    /// The application answers whatever is due.
    fn answer_due(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.pending.len() {
            let p = &self.pending[i];
            if p.due.is_some_and(|d| d <= now) {
                let (code, payload) = if self.final_mode {
                    (Code::CONTENT, 0)
                } else {
                    (p.code, p.payload)
                };
                if !self.respond(now, i, code, payload) {
                    // Refused (table full, bad code, too large): retry later
                    // with a plain answer.
                    let p = &mut self.pending[i];
                    p.due = Some(now + Duration::from_millis(250));
                    p.code = Code::CONTENT;
                    p.payload = 0;
                    i += 1;
                }
            } else {
                i += 1;
            }
        }
    }

    fn next_policy(&mut self) -> Policy {
        if self.policies.is_empty() {
            return Policy::Piggyback;
        }
        let p = self.policies[self.policy_pos % self.policies.len()];
        self.policy_pos += 1;
        p
    }

    // ----- outputs ----------------------------------------------------------------

    /// Drains transmits and events until both are empty.
    fn drain(&mut self, now: Instant) {
        loop {
            self.check_queues();
            let mut progress = false;
            while let Some((to, len)) = self.poll_one() {
                progress = true;
                let bytes = self.txbuf[..len].to_vec();
                self.on_transmit(now, to, bytes);
            }
            while let Some(ev) = self.ep.poll_event() {
                progress = true;
                self.on_event(now, ev);
            }
            if !progress {
                return;
            }
        }
    }

    fn poll_one(&mut self) -> Option<(Addr, usize)> {
        let small = self.poll_len.min(TX_BUF);
        match self.ep.poll_transmit(&mut self.txbuf[..small]) {
            Ok(t) => {
                let t = t?;
                assert!(t.len <= small);
                Some((t.to, t.len))
            }
            Err(BufferTooSmall { required }) => {
                assert!(
                    required > small,
                    "BufferTooSmall with room: {required} <= {small}"
                );
                let queued = self.ep.tables().transmits;
                assert!(queued > 0, "BufferTooSmall with nothing queued");
                let t = self
                    .ep
                    .poll_transmit(&mut self.txbuf)
                    .expect("a full-size buffer must do")
                    .expect("BufferTooSmall lost the datagram");
                assert_eq!(t.len, required, "BufferTooSmall reported the wrong size");
                Some((t.to, t.len))
            }
        }
    }

    fn is_open(&self, owner: Owner) -> bool {
        match owner {
            Owner::Req(id) => self.reqs.contains_key(&id),
            Owner::Resp(h) => {
                self.responded.contains(&h)
                    && !self.reported.contains(&h)
                    && !self.answered_inline.contains(&h)
            }
        }
    }

    /// Which exchange a CON belongs to, when the harness can tell: one of
    /// our requests (by marker), a ping (its first transmission goes to the
    /// oldest unsent ping to that peer: queues are FIFO), or a separate
    /// response (by peer and token).
    fn owner_of(
        &self,
        to: Addr,
        msg: &Message<'_>,
        retransmission_of: Option<Owner>,
    ) -> Option<Owner> {
        if let Some(m) = Self::marker_of(msg) {
            return self.markers.get(&m).copied().map(Owner::Req);
        }
        if msg.code().is_empty() {
            if let Some(Owner::Req(id)) = retransmission_of
                && self.reqs.get(&id).is_some_and(|r| r.ping)
            {
                return retransmission_of;
            }
            return self
                .reqs
                .iter()
                .find(|(_, r)| r.ping && r.peer == to && r.first_tx.is_none())
                .map(|(id, _)| Owner::Req(*id));
        }
        // A CON response is a separate response, unless it is a
        // notification (RFC 7641: many per token, outcomes reported by
        // their own ids).
        if msg.code().is_response() && !msg.has_option(OptionNumber::OBSERVE) {
            let mut it = self.resp_meta.iter().filter(|(h, (peer, token))| {
                *peer == to && token[..] == *msg.token() && self.is_open(Owner::Resp(**h))
            });
            if let (Some((h, _)), None) = (it.next(), it.next()) {
                return Some(Owner::Resp(*h));
            }
        }
        None
    }

    /// Counts transmissions of one CON (destination, MID): at most
    /// MAX_RETRANSMIT + 1 per exchange.
    fn count_con(&mut self, now: Instant, to: Addr, msg: &Message<'_>, bytes: &[u8]) {
        let p = self.cfg().transmission;
        let key = (to, msg.message_id());
        let prev = self
            .con_tx
            .get(&key)
            .map(|c| (c.owner, c.owner.is_some_and(|o| self.is_open(o))));
        let owner = self.owner_of(to, msg, prev.and_then(|(o, open)| o.filter(|_| open)));
        let fresh = match (self.con_tx.get(&key), prev) {
            (None, _) | (_, None) => true,
            (Some(c), Some((old, old_open))) => {
                if old_open {
                    assert!(
                        owner.is_none() || owner == old,
                        "MID {:#06x} to {to:?} used by {owner:?} while {old:?} still uses it",
                        key.1
                    );
                    false
                } else if owner.is_some() && owner != old {
                    true
                } else {
                    // Unknown exchanges: other bytes under the same MID are
                    // another message (a retransmission is byte-identical);
                    // the same bytes again are one once EXCHANGE_LIFETIME
                    // has passed. After a late `handle_timeout` (a jump)
                    // retransmissions run late and the two cannot be told
                    // apart: start counting again.
                    c.last[..] != *bytes
                        || self.jumped > c.jumped
                        || now >= c.first + p.exchange_lifetime()
                }
            }
        };
        if fresh {
            self.con_tx.insert(
                key,
                ConTx {
                    first: now,
                    jumped: self.jumped,
                    count: 0,
                    owner,
                    last: Vec::new(),
                },
            );
            if let (true, Some(Owner::Req(id))) = (msg.code().is_empty(), owner) {
                // A ping's first transmission.
                let r = self.reqs.get_mut(&id).unwrap();
                r.first_tx = Some(now);
                r.bound = Some(now + p.max_transmit_wait() + SLACK);
            }
        }
        let c = self.con_tx.get_mut(&key).unwrap();
        c.count += 1;
        c.last.clear();
        c.last.extend_from_slice(bytes);
        assert!(
            c.count <= u32::from(p.max_retransmit) + 1,
            "CON {msg} to {to:?} sent {} times (MAX_RETRANSMIT {}): {c:?}",
            c.count,
            p.max_retransmit
        );
    }

    /// The marker of one of our requests, if the message looks like one.
    fn marker_of(msg: &Message<'_>) -> Option<u32> {
        if !msg.code().is_request() {
            return None;
        }
        Some(u32::from_be_bytes(msg.payload().get(..4)?.try_into().ok()?))
    }

    fn on_transmit(&mut self, now: Instant, to: Addr, bytes: Vec<u8>) {
        let cfg = self.cfg();
        let p = cfg.transmission;
        assert!(
            bytes.len() <= cfg.max_message_size,
            "sent {} > max_message_size",
            bytes.len()
        );
        let msg = Message::parse(&bytes)
            .unwrap_or_else(|e| panic!("sent a malformed datagram {bytes:02x?}: {e:?}"));
        note(format_args!("{now:?} {:?} -> {to:?}: {msg}", self.partner));
        if to.is_multicast() {
            assert!(
                msg.ty() == MessageType::Non && msg.code().is_request(),
                "only NON requests go to a group, sent {msg}"
            );
        }
        if msg.ty() == MessageType::Con {
            self.count_con(now, to, &msg, &bytes);
        } else if msg.code().is_response() && !msg.has_option(OptionNumber::OBSERVE) {
            // A piggybacked or NON answer ends that request's exchange.
            let done: Vec<ResponseHandle> = self
                .resp_meta
                .iter()
                .filter(|(h, (peer, token))| {
                    *peer == to && token[..] == *msg.token() && self.is_open(Owner::Resp(**h))
                })
                .map(|(h, _)| *h)
                .collect();
            self.answered_inline.extend(done);
        }
        if let Some(marker) = Self::marker_of(&msg)
            && let Some(&id) = self.markers.get(&marker)
        {
            let Some(r) = self.reqs.get_mut(&id) else {
                panic!("{id} sent after it ended: {msg}");
            };
            assert_eq!(to, r.peer, "{id} sent to the wrong peer");
            assert_eq!(
                msg.ty() == MessageType::Con,
                r.con,
                "{id} sent with the wrong type"
            );
            match &r.token {
                None => {
                    r.first_tx = Some(now);
                    r.token = Some(msg.token().to_vec());
                    let limit = if r.multicast {
                        cfg.multicast_timeout
                    } else if r.con {
                        p.max_transmit_wait()
                    } else {
                        cfg.non_request_timeout
                    };
                    r.bound = Some(now + limit + SLACK);
                }
                Some(t) => assert_eq!(&t[..], msg.token(), "{id} changed its token"),
            }
        }
        if self.recent_out.len() == RECENT {
            self.recent_out.pop_front();
        }
        if self.keep_out {
            self.out.push((to, bytes.clone()));
        }
        self.recent_out.push_back((to, bytes));
    }

    fn on_event(&mut self, now: Instant, ev: Event<Addr>) {
        note(format_args!("{now:?} {:?} event {ev:?}", self.partner));
        let cfg = self.cfg();
        let p = cfg.transmission;
        match ev {
            Event::Request(inc) => {
                let msg = inc.message();
                assert!(msg.code().is_request(), "delivered a non-request {msg}");
                let con = match msg.ty() {
                    MessageType::Con => true,
                    MessageType::Non => false,
                    _ => panic!("delivered a request in an ACK/RST: {msg}"),
                };
                assert!(
                    !(inc.multicast && con),
                    "delivered a CON request from a group"
                );
                let key = (inc.peer, msg.message_id());
                let evicted = self.ep.stats().dedup_evictions > 0;
                if let Some(&(t1, con1)) = self.deliveries.get(&key) {
                    let life = if con1 {
                        p.exchange_lifetime()
                    } else {
                        p.non_lifetime()
                    };
                    assert!(
                        evicted || now >= t1 + life,
                        "request {key:?} delivered twice (first at {t1:?}, again at {now:?}): {msg}"
                    );
                }
                self.deliveries.insert(key, (now, con));
                self.resp_meta
                    .insert(inc.handle, (inc.peer, msg.token().to_vec()));
                if msg.observe().is_some() && !inc.multicast {
                    let o = (inc.peer, msg.token().to_vec());
                    self.observers.retain(|x| *x != o);
                    if msg.observe() == Some(crate::message::Observe::REGISTER) {
                        if self.observers.len() == RECENT {
                            self.observers.pop_front();
                        }
                        self.observers.push_back(o);
                    }
                }
                if Some(inc.peer) == self.partner && msg.payload().len() >= 4 {
                    let marker = u32::from_be_bytes(msg.payload()[..4].try_into().unwrap());
                    assert!(
                        self.marker_deliveries.insert(marker) || evicted,
                        "request #{marker:x} delivered twice to the application"
                    );
                }
                self.ep.recycle(inc.message.into_bytes());
                let policy = if self.final_mode {
                    Policy::Piggyback
                } else {
                    self.next_policy()
                };
                let (due, accept) = match policy {
                    Policy::Piggyback => (Some(now), false),
                    Policy::Separate(d) => (Some(now + ms(d)), true),
                    Policy::Later(d) => (Some(now + ms(d)), false),
                    Policy::Never => (None, false),
                };
                self.pending.push(Pend {
                    handle: inc.handle,
                    expires: now + p.exchange_lifetime(),
                    due,
                    code: Code::CONTENT,
                    payload: 5,
                });
                if accept {
                    assert_eq!(self.ep.accept(now, inc.handle), Ok(()));
                }
                if matches!(policy, Policy::Piggyback) {
                    let i = self.pending.len() - 1;
                    if !self.respond(now, i, Code::CONTENT, 5) {
                        self.pending[i].due = Some(now + Duration::from_millis(250));
                    }
                }
            }
            Event::Response(resp) => {
                let id = resp.id;
                let r = self
                    .reqs
                    .get(&id)
                    .unwrap_or_else(|| panic!("Response for ended/unknown {id}"));
                let msg = resp.message();
                assert!(!r.ping, "Response to a ping {id}");
                assert!(msg.code().is_response(), "Response event with {msg}");
                if let Some(t) = &r.token {
                    assert_eq!(&t[..], msg.token(), "Response for {id} with another token");
                }
                let unicast = !r.multicast;
                if unicast {
                    assert_eq!(resp.peer, r.peer, "Response for {id} from the wrong peer");
                }
                self.ep.recycle(resp.message.into_bytes());
                if unicast {
                    self.close(id);
                }
            }
            Event::Acknowledged(id) => {
                let r = self
                    .reqs
                    .get_mut(&id)
                    .unwrap_or_else(|| panic!("Acknowledged for ended/unknown {id}"));
                assert!(
                    r.con && !r.ping && !r.multicast && !r.acked,
                    "odd Acknowledged for {id}: {r:?}"
                );
                r.acked = true;
                r.bound = Some(now + cfg.separate_response_timeout + SLACK);
            }
            Event::TimedOut(id) => {
                assert!(
                    self.reqs.contains_key(&id),
                    "TimedOut for ended/unknown {id}"
                );
                self.close(id);
            }
            Event::Reset(id) => {
                let r = self
                    .reqs
                    .get(&id)
                    .unwrap_or_else(|| panic!("Reset for ended/unknown {id}"));
                assert!(!r.ping && !r.multicast, "Reset for {id}: {r:?}");
                self.close(id);
            }
            Event::Pong(id) => {
                let r = self
                    .reqs
                    .get(&id)
                    .unwrap_or_else(|| panic!("Pong for ended/unknown {id}"));
                assert!(r.ping, "Pong for a request {id}");
                self.close(id);
            }
            Event::MulticastDone(id) => {
                let r = self
                    .reqs
                    .get(&id)
                    .unwrap_or_else(|| panic!("MulticastDone for ended/unknown {id}"));
                assert!(r.multicast, "MulticastDone for unicast {id}");
                self.close(id);
            }
            Event::ResponseDelivered(h) | Event::ResponseFailed(h) => {
                assert!(
                    self.responded.contains(&h),
                    "delivery report for unanswered {h}"
                );
                assert!(self.reported.insert(h), "two delivery reports for {h}");
            }
            // The client side of Observe is not driven by these targets.
            Event::Notification(n) => self.ep.recycle(n.message.into_bytes()),
            // One outcome at most per notification `notify` returned.
            Event::NotificationDelivered(id)
            | Event::NotificationRejected(id)
            | Event::NotificationTimedOut(id) => {
                assert!(self.notified.contains(&id), "outcome of unknown {id}");
                assert!(
                    self.notification_outcomes.insert(id),
                    "two outcomes for {id}"
                );
            }
        }
    }

    // ----- time and invariants ----------------------------------------------------

    /// Runs everything due at `now` (application answers, timers) and drains,
    /// then checks the invariants.
    fn settle(&mut self, now: Instant) {
        for _ in 0..SETTLE_ROUNDS {
            self.answer_due(now);
            self.drain(now);
            let timer_due = self.ep.poll_timeout().is_some_and(|t| t <= now);
            let app_due = self.pending.iter().any(|p| p.due.is_some_and(|d| d <= now));
            if timer_due {
                self.ep.handle_timeout(now);
            } else if !app_due {
                self.expire_pending(now);
                self.check(now);
                return;
            }
        }
        panic!(
            "spin: poll_timeout {:?} still at or before now {now:?} after {SETTLE_ROUNDS} rounds",
            self.ep.poll_timeout()
        );
    }

    /// The endpoint drops requests the application left unanswered for
    /// EXCHANGE_LIFETIME; so does the harness, and the counts must agree.
    fn expire_pending(&mut self, now: Instant) {
        let before = self.pending.len();
        self.pending.retain(|p| now < p.expires);
        self.expired += (before - self.pending.len()) as u64;
        assert_eq!(
            self.expired,
            self.ep.stats().pending_expired,
            "expired unanswered requests"
        );
    }

    fn next_wake(&self) -> Option<Instant> {
        let app = self.pending.iter().filter_map(|p| p.due).min();
        match (self.ep.poll_timeout(), app) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn check_queues(&self) {
        let cfg = self.cfg();
        let t = self.ep.tables();
        assert!(
            t.transmits <= cfg.max_transmit_queue,
            "transmit queue {} > {}",
            t.transmits,
            cfg.max_transmit_queue
        );
        let events =
            cfg.max_events + 3 * cfg.max_requests + cfg.max_separate + cfg.max_notifications;
        assert!(t.events <= events, "event queue {} > {events}", t.events);
    }

    fn check(&self, now: Instant) {
        let cfg = self.cfg();
        let t = self.ep.tables();
        assert!(
            t.requests <= cfg.max_requests,
            "requests {} > {}",
            t.requests,
            cfg.max_requests
        );
        assert!(
            t.pending <= cfg.max_pending,
            "pending {} > {}",
            t.pending,
            cfg.max_pending
        );
        assert!(
            t.separate <= cfg.max_separate,
            "separate {} > {}",
            t.separate,
            cfg.max_separate
        );
        assert!(
            t.dedup <= cfg.max_dedup,
            "dedup {} > {}",
            t.dedup,
            cfg.max_dedup
        );
        assert!(
            t.dedup_bytes <= cfg.max_dedup_bytes,
            "dedup bytes {} > {}",
            t.dedup_bytes,
            cfg.max_dedup_bytes
        );
        assert!(
            t.peers <= cfg.max_peers,
            "peers {} > {}",
            t.peers,
            cfg.max_peers
        );
        self.check_queues();
        let (used, bound) = (self.ep.memory_usage(), cfg.memory_bound());
        assert!(
            used <= bound,
            "memory_usage {used} > memory_bound {bound} ({t:?})"
        );
        if let Some(at) = self.ep.poll_timeout() {
            assert!(at > now, "spin: poll_timeout {at:?} <= now {now:?}");
        }
        assert_eq!(
            t.requests,
            self.reqs.len(),
            "open requests: endpoint {t:?}, harness {:?}",
            self.reqs
        );
        assert_eq!(
            t.pending,
            self.pending.len(),
            "unanswered requests: endpoint {t:?}, harness {}",
            self.pending.len()
        );
        for (id, r) in &self.reqs {
            if let Some(b) = r.bound {
                assert!(
                    now <= b,
                    "{id} still open at {now:?}, past its deadline {b:?}: {r:?}"
                );
            }
        }
    }

    /// Late `handle_timeout` (a jump over deadlines) shifts every remaining
    /// deadline by at most the jump.
    fn shift_bounds(&mut self, by: Duration) {
        self.jumped += by;
        for r in self.reqs.values_mut() {
            if let Some(b) = &mut r.bound {
                *b += by;
            }
        }
    }

    /// The application answers everything it still holds.
    fn enter_final(&mut self, now: Instant) {
        self.final_mode = true;
        for p in &mut self.pending {
            p.due = Some(now);
        }
    }

    fn assert_empty(&self, now: Instant) {
        let t = self.ep.tables();
        assert!(
            self.reqs.is_empty(),
            "requests never ended by {now:?}: {:?}",
            self.reqs
        );
        assert!(
            self.pending.is_empty(),
            "requests never answered by {now:?}"
        );
        assert!(
            t.is_empty(),
            "state leaked after every lifetime ({now:?}): {t:?} {:?}",
            self.ep
        );
    }
}

fn pick_recent<T>(q: &VecDeque<T>, pick: u8) -> Option<&T> {
    if q.is_empty() {
        return None;
    }
    q.get(q.len() - 1 - usize::from(pick) % q.len())
}

// ----- single endpoint: server and client targets ---------------------------------

/// One endpoint in virtual time.
struct Solo {
    node: Node,
    now: Instant,
}

impl Solo {
    fn new(config: &ConfigChoice, seed: u64, policies: Vec<Policy>) -> Self {
        Self {
            node: Node::new(&config.build(), seed, None, 0x1000_0000, policies),
            now: Instant::ZERO,
        }
    }

    fn settle(&mut self) {
        self.node.settle(self.now);
    }

    fn advance(&mut self, amount: u16, jump: bool) {
        let d = ms(amount);
        let target = self.now + d;
        if jump {
            self.now = target;
            self.node.shift_bounds(d);
        } else {
            for _ in 0..ADVANCE_STEPS {
                match self.node.next_wake() {
                    Some(t) if t <= target => {
                        self.now = self.now.max(t);
                        self.settle();
                    }
                    _ => break,
                }
            }
            assert!(
                self.node.next_wake().is_none_or(|t| t > target),
                "livelock: too many timer steps"
            );
            self.now = target;
        }
        self.settle();
    }

    fn poll(&mut self, len: u16) {
        self.node.poll_len = usize::from(len);
    }

    /// Runs everything down and checks that nothing is left.
    fn finish(&mut self) {
        self.node.enter_final(self.now);
        for _ in 0..FINAL_STEPS {
            self.settle();
            let Some(t) = self.node.next_wake() else {
                self.node.assert_empty(self.now);
                return;
            };
            self.now = self.now.max(t);
        }
        panic!(
            "no quiescence after {FINAL_STEPS} steps: {:?}",
            self.node.ep
        );
    }
}

#[derive(Arbitrary, Debug)]
enum ServerOp {
    Datagram {
        from: u8,
        multicast: bool,
        skew: u8,
        wire: Wire,
    },
    /// A recent incoming datagram again (a duplicate).
    Again {
        pick: u8,
        skew: u8,
    },
    /// The same datagram from many sources (spoofed flood).
    Flood {
        first: u8,
        count: u8,
        wire: Wire,
    },
    /// The client acknowledges or resets one of our datagrams.
    Reply {
        pick: u8,
        kind: ReplyKind,
        from: Option<u8>,
    },
    Advance {
        ms: u16,
        jump: bool,
    },
    Respond {
        pick: u8,
        code: u8,
        payload: u8,
    },
    Accept {
        pick: u8,
    },
    Poll {
        len: u16,
    },
    /// A notification to an observer (RFC 7641), CON or NON.
    Notify {
        pick: u8,
        con: bool,
        payload: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct ServerInput {
    seed: u64,
    config: ConfigChoice,
    policies: Vec<Policy>,
    ops: Vec<ServerOp>,
}

/// `endpoint_server`: a server under arbitrary (mostly near-valid) traffic,
/// with an application that answers piggybacked, separately, late or never.
pub fn endpoint_server(data: &[u8]) {
    let Ok(input) = ServerInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    trace(&input);
    let mut s = Solo::new(&input.config, input.seed, input.policies);
    for op in input.ops.iter().take(MAX_OPS) {
        let now = s.now;
        match op {
            ServerOp::Datagram {
                from,
                multicast,
                skew,
                wire,
            } => {
                if let Some(b) = s.node.wire_bytes(wire) {
                    s.node.datagram(now, *skew, source(*from), *multicast, &b);
                }
            }
            ServerOp::Again { pick, skew } => {
                if let Some((from, mc, b)) = pick_recent(&s.node.recent_in, *pick).cloned() {
                    s.node.datagram(now, *skew, from, mc, &b);
                }
            }
            ServerOp::Flood { first, count, wire } => {
                if let Some(b) = s.node.wire_bytes(wire) {
                    for i in 0..*count {
                        let from = Addr(first.wrapping_add(i) % GROUP.0);
                        s.node.datagram(now, 0, from, false, &b);
                        s.node.drain(now);
                    }
                }
            }
            ServerOp::Reply { pick, kind, from } => {
                if let Some((from, b)) = s.node.reply(*pick, kind, *from, &Vec::new(), &[]) {
                    s.node.datagram(now, 0, from, false, &b);
                }
            }
            ServerOp::Advance { ms, jump } => s.advance(*ms, *jump),
            ServerOp::Respond {
                pick,
                code,
                payload,
            } => {
                s.node
                    .respond_pick(now, *pick, response_code(*code), *payload);
            }
            ServerOp::Accept { pick } => s.node.accept_pick(now, *pick),
            ServerOp::Poll { len } => s.poll(*len),
            ServerOp::Notify { pick, con, payload } => {
                s.node.notify_pick(now, *pick, *con, *payload);
            }
        }
        s.settle();
    }
    s.finish();
}

#[derive(Arbitrary, Debug)]
enum ClientOp {
    Request {
        peer: u8,
        con: bool,
        method: u8,
        path: u8,
        payload: u8,
    },
    Ping {
        peer: u8,
    },
    Cancel {
        pick: u8,
        closed: bool,
    },
    /// A peer answers one of our datagrams.
    Reply {
        pick: u8,
        kind: ReplyKind,
        from: Option<u8>,
        opts: Opts,
        payload: Vec<u8>,
    },
    /// A recent incoming datagram again (a duplicate).
    Again {
        pick: u8,
        skew: u8,
    },
    Datagram {
        from: u8,
        skew: u8,
        wire: Wire,
    },
    Advance {
        ms: u16,
        jump: bool,
    },
    Poll {
        len: u16,
    },
}

#[derive(Arbitrary, Debug)]
struct ClientInput {
    seed: u64,
    config: ConfigChoice,
    ops: Vec<ClientOp>,
}

/// `endpoint_client`: requests, pings and cancels against peers whose
/// answers (matching ACKs, RSTs, piggybacked and separate responses,
/// duplicates, wrong tokens) come from the fuzz input.
pub fn endpoint_client(data: &[u8]) {
    let Ok(input) = ClientInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    trace(&input);
    let mut s = Solo::new(&input.config, input.seed, Vec::new());
    for op in input.ops.iter().take(MAX_OPS) {
        let now = s.now;
        match op {
            ClientOp::Request {
                peer,
                con,
                method,
                path,
                payload,
            } => s.node.request(
                now,
                destination(*peer),
                *con,
                request_code(*method),
                *path,
                *payload,
            ),
            ClientOp::Ping { peer } => s.node.ping(now, destination(*peer)),
            ClientOp::Cancel { pick, closed } => s.node.cancel(now, *pick, *closed),
            ClientOp::Reply {
                pick,
                kind,
                from,
                opts,
                payload,
            } => {
                if let Some((from, b)) = s.node.reply(*pick, kind, *from, opts, payload) {
                    s.node.datagram(now, 0, from, false, &b);
                }
            }
            ClientOp::Again { pick, skew } => {
                if let Some((from, mc, b)) = pick_recent(&s.node.recent_in, *pick).cloned() {
                    s.node.datagram(now, *skew, from, mc, &b);
                }
            }
            ClientOp::Datagram { from, skew, wire } => {
                if let Some(b) = s.node.wire_bytes(wire) {
                    s.node.datagram(now, *skew, source(*from), false, &b);
                }
            }
            ClientOp::Advance { ms, jump } => s.advance(*ms, *jump),
            ClientOp::Poll { len } => s.poll(*len),
        }
        s.settle();
    }
    s.finish();
}

// ----- two endpoints over a lossy network: the pair target ------------------------

/// What the network does with one datagram.
#[derive(Arbitrary, Clone, Copy, Debug)]
struct Fate {
    loss: u8,
    dup: u8,
    delay: u16,
    dup_delay: u16,
}

#[derive(Debug)]
struct Packet {
    at: Instant,
    seq: u64,
    from: Addr,
    to: Addr,
    data: Vec<u8>,
}

const A: Addr = Addr(1);
const B: Addr = Addr(2);
const NOISE: Addr = Addr(3);

/// The lossy, reordering link both pair fuzzers send through: each
/// datagram's fate (loss, duplication, delay) comes from the input.
struct Link {
    fates: Vec<Fate>,
    fate_pos: usize,
    inflight: Vec<Packet>,
    seq: u64,
    max_latency: Duration,
    lossless: bool,
}

impl Link {
    fn fate(&mut self) -> Fate {
        if self.fates.is_empty() || self.lossless {
            return Fate {
                loss: 255,
                dup: 255,
                delay: 0,
                dup_delay: 0,
            };
        }
        let f = self.fates[self.fate_pos % self.fates.len()];
        self.fate_pos += 1;
        f
    }

    /// A delay below MAX_LATENCY (the RFC's model of the network), mostly
    /// short. Strictly below, and MAX_LATENCY is at least 1 ms: the
    /// endpoint's deduplication entries end exactly at their lifetime, so a
    /// copy arriving exactly then (latency MAX_LATENCY, or a retransmission
    /// at MAX_TRANSMIT_SPAN with MAX_LATENCY and PROCESSING_DELAY 0) is by
    /// design a new message.
    fn delay(&self, x: u16) -> Duration {
        let max = u64::try_from(self.max_latency.as_millis()).unwrap_or(u64::MAX);
        let x = u64::from(x);
        let d = if x < 0x8000 { x % 64 } else { x };
        Duration::from_millis(d.checked_rem(max).unwrap_or(0))
    }

    fn send(&mut self, now: Instant, from: Addr, to: Addr, data: Vec<u8>) {
        let f = self.fate();
        if f.loss < 40 {
            return;
        }
        if f.dup < 30 {
            let at = now + self.delay(f.dup_delay);
            self.seq += 1;
            self.inflight.push(Packet {
                at,
                seq: self.seq,
                from,
                to,
                data: data.clone(),
            });
        }
        let at = now + self.delay(f.delay);
        self.seq += 1;
        self.inflight.push(Packet {
            at,
            seq: self.seq,
            from,
            to,
            data,
        });
    }

    fn next_packet(&self) -> Option<Instant> {
        self.inflight.iter().map(|p| p.at).min()
    }
}

struct Pair {
    nodes: [Node; 2],
    now: Instant,
    wire: Link,
}

impl Pair {
    fn addr(side: usize) -> Addr {
        if side == 0 { A } else { B }
    }

    /// Settles both endpoints and delivers every packet due, until quiet.
    fn pump(&mut self) {
        let now = self.now;
        for _ in 0..10_000 {
            let mut progress = false;
            for side in 0..2 {
                self.nodes[side].settle(now);
                let out = core::mem::take(&mut self.nodes[side].out);
                for (to, data) in out {
                    progress = true;
                    self.wire.send(self.now, Self::addr(side), to, data);
                }
            }
            // Deliver the earliest due packet (ties in send order).
            let due = self
                .wire
                .inflight
                .iter()
                .enumerate()
                .filter(|(_, p)| p.at <= now)
                .min_by_key(|(_, p)| (p.at, p.seq))
                .map(|(i, _)| i);
            if let Some(i) = due {
                progress = true;
                let p = self.wire.inflight.remove(i);
                let (side, multicast) = match p.to {
                    A => (Some(0), false),
                    B => (Some(1), false),
                    // The group: every member but the sender.
                    to if to.is_multicast() && to == GROUP => {
                        (Some(usize::from(p.from == A)), true)
                    }
                    _ => (None, false),
                };
                if let Some(side) = side {
                    self.nodes[side].datagram(now, 0, p.from, multicast, &p.data);
                }
            }
            if !progress {
                return;
            }
        }
        panic!("message storm: the endpoints never go quiet at {now:?}");
    }

    fn next_wake(&self) -> Option<Instant> {
        [
            self.nodes[0].next_wake(),
            self.nodes[1].next_wake(),
            self.wire.next_packet(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn advance(&mut self, amount: u16) {
        let target = self.now + ms(amount);
        for _ in 0..ADVANCE_STEPS {
            match self.next_wake() {
                Some(t) if t <= target => {
                    self.now = self.now.max(t);
                    self.pump();
                }
                _ => {
                    self.now = target;
                    self.pump();
                    return;
                }
            }
        }
        panic!("livelock: too many steps in one advance");
    }

    fn finish(&mut self) {
        self.wire.lossless = true;
        let now = self.now;
        for n in &mut self.nodes {
            n.enter_final(now);
        }
        for _ in 0..FINAL_STEPS {
            self.pump();
            let Some(t) = self.next_wake() else {
                assert!(self.wire.inflight.is_empty());
                for n in &self.nodes {
                    n.assert_empty(self.now);
                }
                return;
            };
            self.now = self.now.max(t);
        }
        panic!("no quiescence after {FINAL_STEPS} steps");
    }
}

#[derive(Arbitrary, Debug)]
enum PairOp {
    Request {
        side: bool,
        multicast: bool,
        con: bool,
        method: u8,
        path: u8,
        payload: u8,
    },
    Ping {
        side: bool,
    },
    Cancel {
        side: bool,
        pick: u8,
    },
    Respond {
        side: bool,
        pick: u8,
        code: u8,
        payload: u8,
    },
    Accept {
        side: bool,
        pick: u8,
    },
    Advance {
        ms: u16,
    },
    Poll {
        side: bool,
        len: u16,
    },
    /// A third party sends something.
    Noise {
        side: bool,
        wire: Wire,
    },
}

#[derive(Arbitrary, Debug)]
struct PairInput {
    seed: u64,
    config: ConfigChoice,
    policies: Vec<Policy>,
    fates: Vec<Fate>,
    ops: Vec<PairOp>,
}

/// `endpoint_pair`: two endpoints, each client and server, over a network
/// that drops, duplicates, delays and reorders each packet as the input
/// says (delays stay within MAX_LATENCY). Requests carry unique markers, so
/// at-most-once delivery and exactly-one outcome are checked end to end.
/// An input that starts with [`BLOCK_MAGIC`] runs [`block_pair`] instead.
pub fn endpoint_pair(data: &[u8]) {
    if let Some(rest) = data.strip_prefix(BLOCK_MAGIC) {
        block_pair(rest);
        return;
    }
    let Ok(input) = PairInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    trace(&input);
    let config = input.config.build();
    let mut pair = Pair {
        nodes: [
            Node::new(
                &config,
                input.seed,
                Some(B),
                0x1000_0000,
                input.policies.clone(),
            ),
            Node::new(
                &config,
                input.seed ^ 0x5eed_5eed_5eed_5eed,
                Some(A),
                0x2000_0000,
                input.policies,
            ),
        ],
        now: Instant::ZERO,
        wire: Link {
            fates: input.fates,
            fate_pos: 0,
            inflight: Vec::new(),
            seq: 0,
            max_latency: config.transmission.max_latency,
            lossless: false,
        },
    };
    for op in input.ops.iter().take(MAX_OPS) {
        let now = pair.now;
        match op {
            PairOp::Request {
                side,
                multicast,
                con,
                method,
                path,
                payload,
            } => {
                let s = usize::from(*side);
                let peer = if *multicast { GROUP } else { Pair::addr(1 - s) };
                pair.nodes[s].request(now, peer, *con, request_code(*method), *path, *payload);
            }
            PairOp::Ping { side } => {
                let s = usize::from(*side);
                pair.nodes[s].ping(now, Pair::addr(1 - s));
            }
            PairOp::Cancel { side, pick } => {
                pair.nodes[usize::from(*side)].cancel(now, *pick, false);
            }
            PairOp::Respond {
                side,
                pick,
                code,
                payload,
            } => pair.nodes[usize::from(*side)].respond_pick(
                now,
                *pick,
                response_code(*code),
                *payload,
            ),
            PairOp::Accept { side, pick } => pair.nodes[usize::from(*side)].accept_pick(now, *pick),
            PairOp::Advance { ms } => pair.advance(*ms),
            PairOp::Poll { side, len } => {
                pair.nodes[usize::from(*side)].poll_len = usize::from(*len);
            }
            PairOp::Noise { side, wire } => {
                let n = &mut pair.nodes[usize::from(*side)];
                if let Some(b) = n.wire_bytes(wire) {
                    n.datagram(now, 0, NOISE, false, &b);
                }
            }
        }
        pair.pump();
    }
    pair.finish();
}

// ----- block-wise transfers through the client and server layers -----------------

/// An `endpoint_pair` input that starts with these bytes runs the block-wise
/// scenario ([`block_pair`]) on the rest; any other input is decoded as
/// before, so the committed corpus keeps its meaning.
pub const BLOCK_MAGIC: &[u8] = b"BLK/";

/// The observable resources of the block-wise scenario.
const BW_PATHS: [&str; 2] = ["a", "b"];
/// The largest representation or upload, in bytes.
const BW_MAX_LEN: u16 = 3000;

/// What the block-wise scenario does next.
#[derive(Arbitrary, Debug)]
enum BlockOp {
    /// GET a resource through `Transfers::request` (Block2, RFC 7959 §2.4);
    /// `szx` 0..=6 asks for a block size, anything else lets the server
    /// choose.
    Get {
        con: bool,
        res: u8,
        szx: u8,
    },
    /// PUT a body to /up (Block1, §2.5).
    Put {
        con: bool,
        len: u16,
        fill: u8,
        szx: u8,
    },
    /// Observe a resource through `Transfers::observe` (§2.6).
    Observe {
        con: bool,
        res: u8,
        szx: u8,
    },
    /// End an observation (RFC 7641 §3.6).
    CancelObserve {
        pick: u8,
        active: bool,
    },
    /// Abandon a transfer or an observation.
    Cancel {
        pick: u8,
    },
    /// The resource changes and its observers are notified (§4.2).
    Change {
        res: u8,
        len: u16,
        fill: u8,
    },
    Advance {
        ms: u16,
    },
}

#[derive(Arbitrary, Debug)]
struct BlockInput {
    seed: u64,
    /// 0: default timers; 1: fast timers; 2: fast timers and 128-byte
    /// messages (block-wise even for small bodies).
    config: u8,
    server_szx: u8,
    max_body: u16,
    fates: Vec<Fate>,
    ops: Vec<BlockOp>,
}

/// One version of a representation: deterministic bytes.
fn bw_rep(res: usize, version: u32, len: u16, fill: u8) -> Vec<u8> {
    (0..usize::from(len))
        .map(|k| (k as u8) ^ fill ^ (version as u8).wrapping_mul(31) ^ (res as u8).wrapping_mul(7))
        .collect()
}

fn bw_hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The server application of the block-wise scenario.
#[derive(Debug, Default)]
struct BwServer {
    /// Per resource: every version's (length, fill); the last is current.
    history: [Vec<(u16, u8)>; 2],
    /// The hashes of every upload the server received whole.
    uploads: BTreeSet<u64>,
}

impl BwServer {
    fn reply(&self, res: usize) -> crate::server::Reply {
        let h = &self.history[res];
        let version = u32::try_from(h.len() - 1).unwrap_or(u32::MAX);
        let (len, fill) = h.last().copied().unwrap_or((0, 0));
        let mut m = crate::MessageBuf::new(MessageType::Ack, Code::CONTENT);
        let mut etag = [0u8; 5];
        etag[0] = res as u8;
        etag[1..].copy_from_slice(&version.to_be_bytes());
        m.add_option(OptionNumber::ETAG, etag);
        m.set_payload(bw_rep(res, version, len, fill));
        crate::server::Reply::Now(m)
    }
}

/// What the client side expects of each transfer or observation.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Get {
        res: usize,
    },
    Put {
        hash: u64,
    },
    Observe {
        res: usize,
        last: Option<(Instant, u32)>,
    },
}

struct BlockPair {
    now: Instant,
    client: Endpoint<Addr>,
    server_ep: Endpoint<Addr>,
    transfers: crate::client::Transfers<Addr>,
    server: crate::server::Server<Addr, BwServer>,
    ids: [crate::server::ResourceId; 2],
    app: BwServer,
    live: BTreeMap<crate::client::TransferId, Expect>,
    /// Every id that ended or was cancelled: no event may follow.
    gone: BTreeSet<crate::client::TransferId>,
    wire: Link,
    buf: Vec<u8>,
}

/// Puts everything `ep` (at `from`) has to send on the wire; true if
/// anything was sent.
fn flush(
    ep: &mut Endpoint<Addr>,
    buf: &mut [u8],
    wire: &mut Link,
    now: Instant,
    from: Addr,
) -> bool {
    let mut sent = false;
    while let Some(t) = ep.poll_transmit(buf).expect("TX_BUF fits") {
        sent = true;
        assert!(t.len <= ep.config().max_message_size);
        wire.send(now, from, t.to, buf[..t.len].to_vec());
    }
    sent
}

impl BlockPair {
    /// Checks one event of the client layer against what was asked.
    fn on_client_event(&mut self, ev: crate::client::ClientEvent<Addr>) {
        use crate::client::ClientEvent as E;
        let now = self.now;
        note(format_args!("{now:?} client layer: {ev:?}"));
        match ev {
            E::Response { id, message, .. } => {
                assert!(!self.gone.contains(&id), "{id}: a second outcome");
                let Some(exp) = self.live.remove(&id) else {
                    panic!("{id}: a response for an unknown transfer");
                };
                self.gone.insert(id);
                let code = message.code();
                match exp {
                    Expect::Get { res } | Expect::Observe { res, .. } if code == Code::CONTENT => {
                        self.check_body(res, message.option(OptionNumber::ETAG), message.payload());
                    }
                    Expect::Put { hash } if code == Code::CHANGED => {
                        assert!(
                            self.app.uploads.contains(&hash),
                            "{id}: 2.04, but the server never held the body"
                        );
                    }
                    _ => {}
                }
            }
            E::Failed { id, .. } => {
                assert!(!self.gone.contains(&id), "{id}: a second outcome");
                assert!(self.live.remove(&id).is_some(), "{id}: failed, unknown");
                self.gone.insert(id);
            }
            E::Notification { id, message, .. } => {
                let Some(Expect::Observe { res, last }) = self.live.get(&id).copied() else {
                    panic!("{id}: a notification for no live observation");
                };
                let version =
                    self.check_body(res, message.option(OptionNumber::ETAG), message.payload());
                // RFC 7641 §3.4: never an older version after a newer one
                // (unless 128 s passed, when the endpoint may accept any).
                if let Some((at, v)) = last {
                    assert!(
                        version >= v
                            || now.saturating_duration_since(at) > Duration::from_secs(128),
                        "{id}: version {version} delivered after {v}"
                    );
                }
                self.live.insert(
                    id,
                    Expect::Observe {
                        res,
                        last: Some((now, version)),
                    },
                );
            }
            E::NotificationFailed { id, .. } => {
                assert!(
                    matches!(self.live.get(&id), Some(Expect::Observe { .. })),
                    "{id}: a completion failed for no live observation"
                );
            }
            E::Progress { id, .. } => {
                assert!(self.live.contains_key(&id), "{id}: progress after the end");
            }
            E::Endpoint(e) => match e {
                Event::Response(r) | Event::Notification(r) => {
                    panic!("{}: an endpoint response the layer did not claim", r.id)
                }
                Event::TimedOut(id) | Event::Reset(id) => {
                    panic!("{id}: an endpoint outcome the layer did not claim")
                }
                _ => {}
            },
        }
    }

    /// A delivered body is byte-identical to the version its ETag names.
    fn check_body(&self, res: usize, etag: Option<&[u8]>, body: &[u8]) -> u32 {
        let etag = etag.expect("the server always sends an ETag");
        assert_eq!(etag.len(), 5);
        assert_eq!(usize::from(etag[0]), res, "a body of another resource");
        let version = u32::from_be_bytes([etag[1], etag[2], etag[3], etag[4]]);
        let (len, fill) = self.app.history[res][version as usize];
        assert!(
            body == bw_rep(res, version, len, fill).as_slice(),
            "resource {res} version {version}: the body differs from the server's"
        );
        version
    }

    fn pump(&mut self) {
        for _ in 0..100_000 {
            let mut moved = false;
            moved |= flush(&mut self.client, &mut self.buf, &mut self.wire, self.now, A);
            while let Some(ev) = self.server_ep.poll_event() {
                moved = true;
                if let Some(Event::Response(r) | Event::Notification(r)) =
                    self.server
                        .handle_event(&mut self.server_ep, self.now, ev, &mut self.app)
                {
                    self.server_ep.recycle(r.message.into_bytes());
                }
            }
            moved |= flush(
                &mut self.server_ep,
                &mut self.buf,
                &mut self.wire,
                self.now,
                B,
            );
            while let Some(ev) = self.client.poll_event() {
                moved = true;
                if let Some(ce) = self.transfers.handle_event(&mut self.client, self.now, ev) {
                    self.on_client_event(ce);
                }
            }
            let due = self
                .wire
                .inflight
                .iter()
                .enumerate()
                .filter(|(_, p)| p.at <= self.now)
                .min_by_key(|(_, p)| (p.at, p.seq))
                .map(|(i, _)| i);
            if let Some(i) = due {
                moved = true;
                let p = self.wire.inflight.remove(i);
                if p.to == A {
                    self.client.handle_datagram(self.now, p.from, &p.data);
                } else if p.to == B {
                    self.server_ep.handle_datagram(self.now, p.from, &p.data);
                }
            }
            if !moved {
                self.check();
                return;
            }
        }
        panic!("message storm at {:?}", self.now);
    }

    /// Bounds after every step.
    fn check(&self) {
        let cc = self.transfers.config();
        assert!(self.transfers.memory() <= cc.max_memory);
        // Transfers and observations within max_transfers, plus at most one
        // completion per observation.
        assert!(self.transfers.len() <= 2 * cc.max_transfers);
        for ep in [&self.client, &self.server_ep] {
            assert!(ep.memory_usage() <= ep.config().memory_bound());
        }
        assert!(self.server.transfer_memory() <= self.server.config().max_transfer_memory);
        // Every live id is one the layer still knows (a cancel of it works),
        // and nothing ended is live.
        assert!(self.live.keys().all(|id| !self.gone.contains(id)));
    }

    fn next_wake(&self) -> Option<Instant> {
        [
            self.client.poll_timeout(),
            self.server_ep.poll_timeout(),
            self.server.poll_timeout(),
            self.wire.inflight.iter().map(|p| p.at).min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn step_to(&mut self, t: Instant) {
        self.now = self.now.max(t);
        self.client.handle_timeout(self.now);
        self.server_ep.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
        self.pump();
    }

    fn advance(&mut self, amount: Duration) {
        let target = self.now + amount;
        for _ in 0..ADVANCE_STEPS {
            match self.next_wake() {
                Some(t) if t <= target => self.step_to(t),
                _ => {
                    self.step_to(target);
                    return;
                }
            }
        }
        panic!("livelock: too many steps in one advance");
    }

    fn pick(&self, pick: u8, observations: bool) -> Option<crate::client::TransferId> {
        let ids: Vec<_> = self
            .live
            .iter()
            .filter(|(_, e)| !observations || matches!(e, Expect::Observe { .. }))
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            None
        } else {
            Some(ids[usize::from(pick) % ids.len()])
        }
    }

    fn cancelled(&mut self, id: crate::client::TransferId) {
        self.live.remove(&id);
        self.gone.insert(id);
    }

    fn change(&mut self, res: usize, len: u16, fill: u8) {
        self.app.history[res].push((len % (BW_MAX_LEN + 1), fill));
        let now = self.now;
        self.server
            .notify_changed(&mut self.server_ep, now, self.ids[res], &mut self.app);
    }

    /// Lossless run-down: every observation ends, every transfer ends in
    /// its one outcome, and nothing is left anywhere after the lifetimes.
    fn finish(&mut self) {
        self.wire.lossless = true;
        let now = self.now;
        let obs: Vec<_> = self
            .live
            .iter()
            .filter(|(_, e)| matches!(e, Expect::Observe { .. }))
            .map(|(id, _)| *id)
            .collect();
        for id in obs {
            self.transfers
                .cancel_observe(
                    &mut self.client,
                    now,
                    id,
                    crate::endpoint::Deregister::Active,
                )
                .expect("a live observation is known to the layer");
            self.cancelled(id);
        }
        self.pump();
        let mut flushed = false;
        for _ in 0..FINAL_STEPS {
            if let Some(t) = self.next_wake() {
                self.step_to(t);
                continue;
            }
            if !flushed && self.server.observer_count() > 0 {
                // A passively cancelled observation: the next notification
                // gets a Reset (RFC 7641 §3.6).
                flushed = true;
                for res in 0..BW_PATHS.len() {
                    let (len, fill) = self.app.history[res].last().copied().unwrap_or((0, 0));
                    self.change(res, len, fill);
                }
                self.pump();
                continue;
            }
            assert!(
                self.live.is_empty(),
                "transfers without an outcome: {:?}",
                self.live
            );
            assert!(self.transfers.is_empty(), "{:?}", self.transfers);
            assert!(
                self.client.tables().is_empty(),
                "{:?}",
                self.client.tables()
            );
            assert!(
                self.server_ep.tables().is_empty(),
                "{:?}",
                self.server_ep.tables()
            );
            assert_eq!(self.server.transfer_count(), 0);
            assert_eq!(self.server.observer_count(), 0);
            return;
        }
        panic!("no quiescence after {FINAL_STEPS} steps");
    }
}

/// The block-wise scenario of `endpoint_pair`: a client endpoint under the
/// client layer (`Transfers`: Block2 downloads, Block1 uploads, Observe
/// with Block2) and a server endpoint under the resource layer, over the
/// same lossy network as the pair. Checked after every step: at most one
/// outcome per transfer and no event after it or after a cancel, every
/// delivered body byte-identical to a version the server held (named by
/// its ETag), every acknowledged upload held by the server, notifications
/// in order, memory within every bound; at the end every transfer had its
/// outcome and all tables are empty.
pub fn block_pair(data: &[u8]) {
    let Ok(input) = BlockInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    trace(&input);
    let mut config = Config::default();
    if input.config % 3 >= 1 {
        fast(&mut config);
    }
    if input.config % 3 == 2 {
        config.max_message_size = 128;
    }
    let sc = crate::server::ServerConfig {
        block2_szx: input.server_szx % 7,
        block1_szx: (input.server_szx / 7) % 7,
        ..Default::default()
    };
    let mut server = crate::server::Server::new(sc);
    let mut ids = Vec::new();
    for (i, p) in BW_PATHS.iter().enumerate() {
        let path = alloc::format!("/{p}");
        let id = server
            .add(
                crate::server::Resource::new(&path)
                    .observable()
                    .get(move |s: &mut BwServer, _| s.reply(i)),
            )
            .expect("distinct paths");
        ids.push(id);
    }
    server
        .add(
            crate::server::Resource::new("/up").put(|s: &mut BwServer, r| {
                s.uploads.insert(bw_hash(r.body));
                crate::server::Reply::status(Code::CHANGED)
            }),
        )
        .expect("distinct paths");
    let cc = crate::client::ClientConfig {
        max_body: usize::from(input.max_body % 4096).max(16),
        max_transfers: 8,
        tag_seed: input.seed,
        ..Default::default()
    };
    let mut app = BwServer::default();
    for h in &mut app.history {
        h.push((100, 0));
    }
    let mut p = BlockPair {
        now: Instant::ZERO,
        client: Endpoint::new(config, input.seed),
        server_ep: Endpoint::new(config, input.seed ^ 0x5eed),
        transfers: crate::client::Transfers::new(cc),
        server,
        ids: [ids[0], ids[1]],
        app,
        live: BTreeMap::new(),
        gone: BTreeSet::new(),
        wire: Link {
            fates: input.fates,
            fate_pos: 0,
            inflight: Vec::new(),
            seq: 0,
            max_latency: config.transmission.max_latency,
            lossless: false,
        },
        buf: alloc::vec![0u8; TX_BUF],
    };
    let ty = |con: bool| {
        if con {
            MessageType::Con
        } else {
            MessageType::Non
        }
    };
    for op in input.ops.iter().take(MAX_OPS) {
        let now = p.now;
        match *op {
            BlockOp::Get { con, res, szx } | BlockOp::Observe { con, res, szx } => {
                let res = usize::from(res) % BW_PATHS.len();
                let mut m = crate::MessageBuf::new(ty(con), Code::GET);
                m.add_option(OptionNumber::URI_PATH, BW_PATHS[res]);
                if szx < 7
                    && let Ok(b) = crate::message::Block::new(0, false, szx)
                {
                    m.add_option_uint(OptionNumber::BLOCK2, b.to_uint());
                }
                let observe = matches!(op, BlockOp::Observe { .. });
                let r = if observe {
                    p.transfers.observe(&mut p.client, now, B, m)
                } else {
                    p.transfers.request(&mut p.client, now, B, m)
                };
                if let Ok(id) = r {
                    let exp = if observe {
                        Expect::Observe { res, last: None }
                    } else {
                        Expect::Get { res }
                    };
                    assert!(p.live.insert(id, exp).is_none(), "{id} reused");
                }
            }
            BlockOp::Put {
                con,
                len,
                fill,
                szx,
            } => {
                let body = bw_rep(9, 0, len % (BW_MAX_LEN + 1), fill);
                let hash = bw_hash(&body);
                let mut m = crate::MessageBuf::new(ty(con), Code::PUT);
                m.add_option(OptionNumber::URI_PATH, "up");
                if let Ok(b) = crate::message::Block::new(0, true, szx % 7) {
                    m.add_option_uint(OptionNumber::BLOCK1, b.to_uint());
                }
                m.set_payload(body);
                if let Ok(id) = p.transfers.request(&mut p.client, now, B, m) {
                    assert!(
                        p.live.insert(id, Expect::Put { hash }).is_none(),
                        "{id} reused"
                    );
                }
            }
            BlockOp::CancelObserve { pick, active } => {
                if let Some(id) = p.pick(pick, true) {
                    let how = if active {
                        crate::endpoint::Deregister::Active
                    } else {
                        crate::endpoint::Deregister::Passive
                    };
                    p.transfers
                        .cancel_observe(&mut p.client, now, id, how)
                        .expect("a live observation is known to the layer");
                    p.cancelled(id);
                }
            }
            BlockOp::Cancel { pick } => {
                if let Some(id) = p.pick(pick, false) {
                    p.transfers
                        .cancel(&mut p.client, now, id)
                        .expect("a live transfer is known to the layer");
                    p.cancelled(id);
                }
            }
            BlockOp::Change { res, len, fill } => {
                p.change(usize::from(res) % BW_PATHS.len(), len, fill);
            }
            BlockOp::Advance { ms: amount } => p.advance(ms(amount)),
        }
        p.pump();
    }
    p.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random inputs: every body must hold on them.
    #[test]
    fn bodies_hold_on_pseudo_random_inputs() {
        let mut x = 0x1234_5678_9abc_def0_u64;
        for len in [0usize, 1, 8, 64, 256, 1024, 4096] {
            for _ in 0..20 {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                endpoint_server(&data);
                endpoint_client(&data);
                endpoint_pair(&data);
                block_pair(&data);
            }
        }
    }
}
