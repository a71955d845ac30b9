//! A deterministic network simulator for [`Endpoint`]s (feature `_internal`,
//! unstable, not covered by semver).
//!
//! [`Sim`] connects N `Endpoint<SimAddr>` in virtual time. It follows
//! quinn-proto's `Pair` step rule: every [`step`](Sim::step) jumps to the
//! earliest of all endpoints' [`poll_timeout`](Endpoint::poll_timeout), all
//! in-flight datagram delivery times and all application wake-ups, runs
//! everything due at that instant, and after every input or command drains
//! `poll_transmit` then `poll_event` as the endpoint's call contract asks.
//!
//! The network is a seeded link model ([`LinkParams`], its own RNG,
//! independent of the endpoints' seeds) with per-direction loss,
//! duplication, reordering (an extra random delay), base delay plus jitter
//! and corruption (random bit flips or byte replacements). Any node can sit
//! behind a [`Nat`] that rewrites its source address to a public
//! `(host, port)` mapping and forgets bindings idle for a configurable time.
//! A datagram sent to [`SimAddr::Group`] is delivered to every member of the
//! group through [`Endpoint::handle_multicast_datagram`] (RFC 7252 §8,
//! RFC 7390); group delivery bypasses NATs.
//!
//! On top run two small applications: a [`ServerBehaviour`] (answer at once
//! with a piggybacked response, after a delay as a separate response, or
//! never) and a client [`Workload`] (K requests, CON or NON, bounded
//! concurrency). The simulator records every request's [`RequestRecord`]
//! and every delivery to a server application, and checks these invariants
//! (violations are collected as [`Violation`]s):
//!
//! - **At most once** (RFC 7252 §4.5): no request reaches a server
//!   application twice. Requests are keyed by a unique payload
//!   (client node, request index). Deliveries caused by a *corrupted*
//!   datagram are not counted: corruption can rewrite the Message ID, which
//!   makes a genuinely new message as far as CoAP can tell (real UDP drops
//!   most of those through its checksum).
//! - **Exactly one outcome, in time** (RFC 7252 §4.2, §4.8.2, §5.2.2): every
//!   client request ends in exactly one of `Response`, `Reset`, `TimedOut`
//!   (or `MulticastDone` for a multicast request) no later than its
//!   deadline, where `t0` is the instant its first transmission left the
//!   client (recorded by the simulator):
//!   - CON without an empty ACK: `t0 + MAX_TRANSMIT_WAIT` (the last
//!     retransmission timeout ends at `t0 + (2^(MAX_RETRANSMIT+1) − 1) ×
//!     initial timeout`, and the initial timeout is at most `ACK_TIMEOUT ×
//!     ACK_RANDOM_FACTOR`);
//!   - CON acknowledged by an empty ACK at `ta`: `ta +
//!     Config::separate_response_timeout`;
//!   - NON: `t0 + Config::non_request_timeout`;
//!   - multicast (always NON, §8.1): `t0 + Config::multicast_timeout`.
//!
//!   Queueing delay (NSTART and PROBING_RATE, §4.7) comes before `t0`. It is
//!   bounded from the recorded instants: a request must leave the queue (or
//!   end) no later than `max(issued, latest release of an earlier request to
//!   the same peer) + slack`, where a request is *released* when it is
//!   acknowledged or ends, and `slack = NSTART × (MAX_RETRANSMIT + 2) ×
//!   L / PROBING_RATE` with `L` the longest request datagram the client
//!   sent: the bytes a client may have sent unanswered when the queue head
//!   becomes eligible, at PROBING_RATE.
//! - **Bounded state**: after every input, each table in
//!   [`Endpoint::tables`] stays within its [`Config`] bound and
//!   [`Endpoint::memory_usage`] within [`Config::memory_bound`].
//! - **No leaks**: once the workloads have ended and time has advanced
//!   `EXCHANGE_LIFETIME + max(MAX_TRANSMIT_WAIT, separate_response_timeout,
//!   non_request_timeout, multicast_timeout) + 1 s` past the last datagram
//!   any node sent, every endpoint's `tables()` is empty (apart from
//!   requests a [`ServerBehaviour::Never`] application still holds) and
//!   `poll_timeout()` is `None`.
//!
//! Everything is deterministic: the same seeds give the same datagrams at
//! the same instants, summarised by [`Sim::trace_hash`] (FNV-1a over every
//! delivered `(time, from, to, node, bytes)`).
//!
//! ```
//! use coap_proto::_internal::sim::{LinkParams, ServerBehaviour, Sim, SimAddr, Workload};
//! use coap_proto::endpoint::Config;
//!
//! let mut sim = Sim::new(7);
//! sim.set_default_link(LinkParams::lossy(0.3, 0.1, 0.2, 0.0));
//! let server = sim.add_node(SimAddr::host(2), Config::default(), 1);
//! sim.set_server(server, ServerBehaviour::Piggyback);
//! let client = sim.add_node(SimAddr::host(1), Config::default(), 2);
//! sim.set_workload(client, Workload::new(SimAddr::host(2), 20).concurrency(4));
//! let summary = sim.run();
//! assert_eq!(summary.requests, 20);
//! assert_eq!(summary.responses + summary.timeouts + summary.resets, 20);
//! assert!(sim.violations().is_empty(), "{:?}", sim.violations());
//! ```
#![allow(
    clippy::missing_panics_doc,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::too_many_lines
)]

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use crate::endpoint::{
    Address, Config, Endpoint, Error as EndpointError, Event, RequestId, ResponseHandle, TableSizes,
};
use crate::message::{Code, Message};
use crate::time::Instant;

// ----- addresses --------------------------------------------------------------

/// A simulated transport address.
///
/// ```
/// use coap_proto::_internal::sim::SimAddr;
/// use coap_proto::endpoint::Address;
/// assert!(!SimAddr::host(1).is_multicast());
/// assert!(SimAddr::Group(1).is_multicast());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimAddr {
    /// A unicast host and port.
    Host {
        /// The host number.
        host: u16,
        /// The port.
        port: u16,
    },
    /// A multicast group: delivered to every member (RFC 7252 §8).
    Group(u16),
}

impl SimAddr {
    /// `host` on the CoAP default port 5683.
    #[must_use]
    pub const fn host(host: u16) -> Self {
        Self::Host { host, port: 5683 }
    }

    fn write_to(self, out: &mut [u8; 5]) {
        let (tag, a, b) = match self {
            Self::Host { host, port } => (0u8, host, port),
            Self::Group(g) => (1u8, g, 0),
        };
        let [a0, a1] = a.to_be_bytes();
        let [b0, b1] = b.to_be_bytes();
        *out = [tag, a0, a1, b0, b1];
    }
}

impl Address for SimAddr {
    fn is_multicast(&self) -> bool {
        matches!(self, Self::Group(_))
    }
}

impl fmt::Display for SimAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Host { host, port } => write!(f, "h{host}:{port}"),
            Self::Group(g) => write!(f, "group{g}"),
        }
    }
}

/// A node in the simulator (an index, in the order nodes were added).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub usize);

/// A NAT in the simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NatId(pub usize);

// ----- randomness -------------------------------------------------------------

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Derives an independent seed for stream `stream` from `seed`, e.g. one per
/// endpoint of a test seed.
///
/// ```
/// use coap_proto::_internal::sim::derive_seed;
/// assert_ne!(derive_seed(1, 0), derive_seed(1, 1));
/// assert_eq!(derive_seed(1, 0), derive_seed(1, 0));
/// ```
#[must_use]
pub fn derive_seed(seed: u64, stream: u64) -> u64 {
    let mut s = stream;
    let mut x = seed ^ splitmix(&mut s);
    splitmix(&mut x)
}

/// The simulator's own PRNG (SplitMix64), separate from the endpoints'.
#[derive(Clone, Debug)]
pub struct SimRng {
    state: u64,
}

impl SimRng {
    /// A generator seeded with `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        splitmix(&mut self.state)
    }

    /// A value in `0..n` (0 when `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A value in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p` (always draws one value).
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A duration in `[0, max]`, with microsecond resolution.
    pub fn upto(&mut self, max: Duration) -> Duration {
        let us = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(self.below(us.saturating_add(1)))
    }
}

// ----- link model -------------------------------------------------------------

/// What one direction of a link does to each datagram.
///
/// For each datagram: with probability `loss` it is dropped; otherwise it
/// is delivered once, plus once more with probability `duplicate`. Each copy
/// independently takes `delay + U[0, jitter]`, plus `U[0, reorder_delay]`
/// with probability `reorder`, and is corrupted with probability `corrupt`
/// (1 to 3 flipped bits, or one byte replaced by a random value).
///
/// ```
/// use coap_proto::_internal::sim::LinkParams;
/// let p = LinkParams::lossy(0.3, 0.1, 0.2, 0.02);
/// assert_eq!(p.loss, 0.3);
/// assert_eq!(LinkParams::default().loss, 0.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkParams {
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a delivered datagram is delivered twice.
    pub duplicate: f64,
    /// Probability that a copy is held back by an extra random delay.
    pub reorder: f64,
    /// The largest extra delay of a reordered copy.
    pub reorder_delay: Duration,
    /// Base one-way delay (at least 1 µs is always applied).
    pub delay: Duration,
    /// Uniform random extra delay on every copy.
    pub jitter: Duration,
    /// Probability that a copy is corrupted.
    pub corrupt: f64,
}

impl Default for LinkParams {
    /// A perfect link with 10 ms delay and 5 ms jitter.
    fn default() -> Self {
        Self {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(1500),
            delay: Duration::from_millis(10),
            jitter: Duration::from_millis(5),
            corrupt: 0.0,
        }
    }
}

impl LinkParams {
    /// A perfect link: no loss, fixed 10 ms delay, no jitter.
    #[must_use]
    pub fn perfect() -> Self {
        Self {
            jitter: Duration::ZERO,
            ..Self::default()
        }
    }

    /// The default link with the given loss, duplication, reordering and
    /// corruption probabilities.
    #[must_use]
    pub fn lossy(loss: f64, duplicate: f64, reorder: f64, corrupt: f64) -> Self {
        Self {
            loss,
            duplicate,
            reorder,
            corrupt,
            ..Self::default()
        }
    }
}

// ----- NAT --------------------------------------------------------------------

/// A NAT: nodes behind it are seen as `(public_host, port)`, with one port
/// per node (endpoint-independent mapping, RFC 4787 REQ-1). Only outbound
/// datagrams refresh a binding (the strictest choice RFC 4787 REQ-6
/// allows); a binding idle for `idle_timeout` is forgotten: inbound
/// datagrams to it are dropped, and the node's next outbound datagram gets
/// a new port. Filtering is endpoint-independent.
#[derive(Clone, Debug)]
pub struct Nat {
    /// The public host number.
    pub public_host: u16,
    /// How long an unused binding lives.
    pub idle_timeout: Duration,
    next_port: u16,
    /// port → (node, last outbound use).
    bindings: BTreeMap<u16, (usize, Instant)>,
    by_node: BTreeMap<usize, u16>,
    /// Bindings created so far.
    pub bindings_created: u64,
    /// Inbound datagrams dropped for lack of a live binding.
    pub dropped: u64,
}

impl Nat {
    fn live(&self, last: Instant, now: Instant) -> bool {
        now.saturating_duration_since(last) < self.idle_timeout
    }

    fn outbound(&mut self, node: usize, now: Instant) -> SimAddr {
        if let Some(&port) = self.by_node.get(&node)
            && let Some(&(n, last)) = self.bindings.get(&port)
        {
            if n == node && self.live(last, now) {
                self.bindings.insert(port, (node, now));
                return SimAddr::Host {
                    host: self.public_host,
                    port,
                };
            }
            self.bindings.remove(&port);
        }
        // A new mapping: the next free port (never 0).
        let mut port = self.next_port;
        while self.bindings.contains_key(&port) || port == 0 {
            port = port.wrapping_add(1);
        }
        self.next_port = port.wrapping_add(1);
        self.bindings.insert(port, (node, now));
        self.by_node.insert(node, port);
        self.bindings_created += 1;
        SimAddr::Host {
            host: self.public_host,
            port,
        }
    }

    /// The node a datagram to `port` reaches now, if the binding is live.
    fn inbound(&mut self, port: u16, now: Instant) -> Option<usize> {
        let &(node, last) = self.bindings.get(&port)?;
        if self.live(last, now) {
            Some(node)
        } else {
            self.bindings.remove(&port);
            None
        }
    }

    /// The node currently bound to `port`, live or not (to pick link
    /// parameters at send time).
    fn peek(&self, port: u16) -> Option<usize> {
        self.bindings.get(&port).map(|b| b.0)
    }

    /// The node's current public address, if it has a binding (live or not).
    #[must_use]
    pub fn mapping(&self, node: NodeId) -> Option<SimAddr> {
        self.by_node.get(&node.0).map(|&port| SimAddr::Host {
            host: self.public_host,
            port,
        })
    }
}

// ----- applications -----------------------------------------------------------

/// How a node's server application answers requests.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum ServerBehaviour {
    /// Answer at once: piggybacked on the ACK of a CON (RFC 7252 §5.2.1), a
    /// NON response to a NON.
    #[default]
    Piggyback,
    /// Answer after the delay: beyond `Config::separate_ack_delay` a CON
    /// gets an empty ACK first and the answer is a separate response
    /// (§5.2.2).
    Delayed(Duration),
    /// Each request: with probability `separate` answer after `U[0,
    /// max_delay]`, otherwise at once.
    Mixed {
        /// Probability of a delayed answer.
        separate: f64,
        /// The longest delay.
        max_delay: Duration,
    },
    /// Never answer. The application keeps the handles; the endpoint may
    /// expire the pending requests on its own.
    Never,
}

/// A client application: `requests` requests to `peer`, at most
/// `concurrency` open at once, issued at least `interval` apart, from
/// `start`. Each carries a unique payload, echoed by the server.
///
/// ```
/// use coap_proto::_internal::sim::{SimAddr, Workload};
/// let w = Workload::new(SimAddr::host(2), 10).concurrency(3).confirmable_ratio(0.5);
/// assert_eq!((w.requests, w.concurrency), (10, 3));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Workload {
    /// Where the requests go (a host or a group).
    pub peer: SimAddr,
    /// How many requests to issue.
    pub requests: u32,
    /// Probability that a request is CON (multicast requests are always NON).
    pub confirmable_ratio: f64,
    /// Open requests at most (the endpoint may still queue them, NSTART).
    pub concurrency: usize,
    /// Least time between two issued requests.
    pub interval: Duration,
    /// When the first request may be issued.
    pub start: Instant,
}

impl Workload {
    /// `requests` CON requests to `peer`, one at a time, back to back.
    #[must_use]
    pub fn new(peer: SimAddr, requests: u32) -> Self {
        Self {
            peer,
            requests,
            confirmable_ratio: 1.0,
            concurrency: 1,
            interval: Duration::ZERO,
            start: Instant::ZERO,
        }
    }

    /// Sets [`concurrency`](Self::concurrency) (at least 1).
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Sets [`confirmable_ratio`](Self::confirmable_ratio).
    #[must_use]
    pub fn confirmable_ratio(mut self, p: f64) -> Self {
        self.confirmable_ratio = p;
        self
    }

    /// Sets [`interval`](Self::interval).
    #[must_use]
    pub fn interval(mut self, d: Duration) -> Self {
        self.interval = d;
        self
    }

    /// Sets [`start`](Self::start).
    #[must_use]
    pub fn start(mut self, at: Instant) -> Self {
        self.start = at;
        self
    }
}

/// How a client request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A response (unicast).
    Response {
        /// Its code.
        code: Code,
        /// Who sent it.
        peer: SimAddr,
    },
    /// The peer answered with a Reset.
    Reset,
    /// No answer in time.
    TimedOut,
    /// A multicast request stopped collecting.
    MulticastDone {
        /// Responses collected (see [`RequestRecord::responses`]).
        responses: usize,
    },
}

/// Everything recorded about one client request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestRecord {
    /// Position in the node's workload (also in its payload).
    pub index: u32,
    /// The endpoint's id for it.
    pub id: RequestId,
    /// Its destination.
    pub peer: SimAddr,
    /// CON (true) or NON.
    pub confirmable: bool,
    /// Sent to a group.
    pub multicast: bool,
    /// When `request` was called.
    pub issued: Instant,
    /// When its first transmission left the client.
    pub first_tx: Option<Instant>,
    /// When an empty ACK arrived (`Event::Acknowledged`).
    pub acknowledged: Option<Instant>,
    /// The final event and its instant.
    pub outcome: Option<(Instant, Outcome)>,
    /// Multicast: who responded, in order of their first response that
    /// was not corrupted on the way.
    pub responders: Vec<SimAddr>,
    /// Multicast: every response received, including repeats caused by
    /// corruption (a flipped Message ID makes a new, distinct message).
    pub responses: usize,
}

impl RequestRecord {
    /// The deadline of its final event from the recorded instants (see the
    /// module docs), once it has been transmitted.
    #[must_use]
    pub fn deadline(&self, config: &Config) -> Option<Instant> {
        let t0 = self.first_tx?;
        Some(if self.multicast {
            t0 + config.multicast_timeout
        } else if !self.confirmable {
            t0 + config.non_request_timeout
        } else if let Some(ta) = self.acknowledged {
            ta + config.separate_response_timeout
        } else {
            t0 + config.transmission.max_transmit_wait()
        })
    }

    /// When it stopped counting against NSTART: acknowledged or ended.
    fn released(&self) -> Option<Instant> {
        match (self.acknowledged, self.outcome.map(|o| o.0)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// One row of [`Sim::outcomes`]: the client node, the workload index, the
/// endpoint's id and the final event with its instant.
pub type OutcomeEntry = (NodeId, u32, RequestId, Option<(Instant, Outcome)>);

/// Counters of one node's applications.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppStats {
    /// Requests delivered to the server application (counted deliveries:
    /// not from corrupted datagrams, with a workload payload).
    pub delivered: u64,
    /// Counted deliveries of a request already delivered.
    pub delivered_twice: u64,
    /// Requests delivered from a corrupted datagram (not counted).
    pub corrupt_deliveries: u64,
    /// Requests without a workload payload.
    pub foreign_deliveries: u64,
    /// Responses the server application sent.
    pub answered: u64,
    /// `respond` calls that failed for good.
    pub respond_errors: u64,
    /// `respond` calls refused for lack of room, tried again later.
    pub respond_retries: u64,
    /// `Event::ResponseDelivered` seen.
    pub responses_delivered: u64,
    /// `Event::ResponseFailed` seen.
    pub responses_failed: u64,
    /// `request` calls that failed.
    pub refused: u64,
    /// 2.04 responses whose payload is not the request's (only checked
    /// while no datagram has been corrupted).
    pub mismatched: u64,
}

/// One simulated node: an endpoint plus its applications and records.
#[derive(Debug)]
pub struct Node {
    endpoint: Endpoint<SimAddr>,
    addr: SimAddr,
    nat: Option<usize>,
    server: ServerBehaviour,
    workload: Option<Workload>,
    attempted: u32,
    next_issue: Instant,
    open: usize,
    records: Vec<RequestRecord>,
    by_id: BTreeMap<RequestId, usize>,
    deliveries: BTreeMap<(u16, u32), u32>,
    /// Every delivery with a workload payload, corrupted datagram or not.
    any_deliveries: BTreeMap<(u16, u32), u32>,
    /// Multicast responses echoing the request's payload, per (index, peer).
    mcast_responses: BTreeMap<(u32, SimAddr), u32>,
    answers: BTreeMap<(Instant, u64), (ResponseHandle, Vec<u8>)>,
    held: usize,
    peers_seen: BTreeSet<SimAddr>,
    max_request_len: usize,
    app: AppStats,
}

impl Node {
    /// The endpoint.
    #[must_use]
    pub fn endpoint(&self) -> &Endpoint<SimAddr> {
        &self.endpoint
    }

    /// The node's own (private) address.
    #[must_use]
    pub fn addr(&self) -> SimAddr {
        self.addr
    }

    /// Its client requests, by workload index.
    #[must_use]
    pub fn records(&self) -> &[RequestRecord] {
        &self.records
    }

    /// Addresses its server application received requests from.
    #[must_use]
    pub fn peers_seen(&self) -> &BTreeSet<SimAddr> {
        &self.peers_seen
    }

    /// Application counters.
    #[must_use]
    pub fn app_stats(&self) -> &AppStats {
        &self.app
    }

    /// Requests a `Never` server application holds unanswered.
    #[must_use]
    pub fn held(&self) -> usize {
        self.held
    }

    /// Whether its workload (if any) has issued everything and every
    /// request has ended.
    #[must_use]
    pub fn workload_done(&self) -> bool {
        self.workload
            .is_none_or(|w| self.attempted >= w.requests && self.open == 0)
    }
}

// ----- invariants -------------------------------------------------------------

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// A server application got the same request twice (RFC 7252 §4.5).
    DeliveredTwice {
        /// The server.
        server: NodeId,
        /// The client node and request index from the payload.
        request: (u16, u32),
        /// When.
        at: Instant,
    },
    /// A request got a second final event.
    SecondOutcome {
        /// The client.
        node: NodeId,
        /// Workload index.
        index: u32,
        /// When.
        at: Instant,
    },
    /// A request ended after its deadline.
    LateOutcome {
        /// The client.
        node: NodeId,
        /// Workload index.
        index: u32,
        /// The deadline.
        deadline: Instant,
        /// When it ended.
        at: Instant,
    },
    /// A request left the queue later than the NSTART/PROBING_RATE bound.
    LateStart {
        /// The client.
        node: NodeId,
        /// Workload index.
        index: u32,
        /// The bound.
        bound: Instant,
        /// When it was first sent (or ended unsent).
        at: Instant,
    },
    /// A request never ended.
    MissingOutcome {
        /// The client.
        node: NodeId,
        /// Workload index.
        index: u32,
    },
    /// An event for a request id the application never got.
    UnknownRequest {
        /// The client.
        node: NodeId,
        /// The id.
        id: RequestId,
    },
    /// A multicast responder's answers to one request reached the client
    /// more often than the responder's application got the request.
    RepeatedResponder {
        /// The client.
        node: NodeId,
        /// Workload index.
        index: u32,
        /// The responder.
        peer: SimAddr,
    },
    /// A response carried another request's payload.
    MismatchedResponse {
        /// The client.
        node: NodeId,
        /// Workload index.
        index: u32,
    },
    /// A table outgrew its `Config` bound.
    TableBound {
        /// The node.
        node: NodeId,
        /// Which table.
        table: &'static str,
        /// Its size.
        len: usize,
        /// Its bound.
        bound: usize,
    },
    /// `memory_usage()` exceeded `memory_bound()`.
    MemoryBound {
        /// The node.
        node: NodeId,
        /// Usage.
        usage: usize,
        /// Bound.
        bound: usize,
    },
    /// State left after the workloads ended and EXCHANGE_LIFETIME passed.
    Leak {
        /// The node.
        node: NodeId,
        /// What is left.
        tables: TableSizes,
        /// `poll_timeout()` at the check.
        timeout: Option<Instant>,
    },
    /// An endpoint kept asking for `handle_timeout` at the same instant.
    Spin {
        /// The instant.
        at: Instant,
    },
    /// `poll_transmit` refused a 64 KiB buffer.
    TransmitBuffer {
        /// The node.
        node: NodeId,
        /// Bytes required.
        required: usize,
    },
    /// Traffic never stopped while settling.
    NoQuiescence {
        /// When the simulator gave up.
        at: Instant,
    },
}

// ----- network statistics and trace -----------------------------------------

/// What the network did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetStats {
    /// Datagrams handed to the network (one per group member for multicast).
    pub sent: u64,
    /// Datagrams handed to an endpoint.
    pub delivered: u64,
    /// Datagrams lost.
    pub lost: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Copies held back by a reordering delay.
    pub reordered: u64,
    /// Copies corrupted.
    pub corrupted: u64,
    /// Datagrams dropped at a NAT (no live binding).
    pub nat_dropped: u64,
    /// Datagrams to an address nobody has.
    pub unroutable: u64,
}

/// One delivered datagram (kept when tracing is on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEntry {
    /// Delivery instant.
    pub at: Instant,
    /// Source address as the receiver saw it.
    pub from: SimAddr,
    /// Destination address as sent.
    pub to: SimAddr,
    /// The receiving node.
    pub node: NodeId,
    /// Whether it was corrupted on the way.
    pub corrupted: bool,
    /// The bytes delivered.
    pub bytes: Vec<u8>,
}

impl fmt::Display for TraceEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} {} -> {} (node {})",
            self.at, self.from, self.to, self.node.0
        )?;
        if self.corrupted {
            f.write_str(" [corrupted]")?;
        }
        match Message::parse(&self.bytes) {
            Ok(m) => write!(f, " {m}"),
            Err(e) => write!(f, " <{e}> {:02x?}", self.bytes),
        }
    }
}

/// Totals over every node, as the example prints them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// Requests issued by client applications.
    pub requests: u64,
    /// Unicast requests that ended in a response.
    pub responses: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// Requests that ended in a Reset.
    pub resets: u64,
    /// Multicast requests that ended (`MulticastDone`).
    pub multicast_done: u64,
    /// Responses collected by multicast requests.
    pub multicast_responses: u64,
    /// Requests without an outcome yet.
    pub open: u64,
    /// `request` calls refused by the endpoint.
    pub refused: u64,
    /// Counted deliveries to server applications.
    pub delivered: u64,
    /// Deliveries of a request already delivered.
    pub delivered_twice: u64,
    /// Table entries left in all endpoints (requests, pending, separate,
    /// dedup, peers, timers, transmits, events), not counting requests a
    /// `Never` application holds.
    pub leaked: u64,
    /// Invariant violations found.
    pub violations: u64,
    /// The network's counters.
    pub net: NetStats,
    /// Virtual time at the end.
    pub end: Instant,
}

impl fmt::Display for Summary {
    /// The one-line, script-friendly form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "requests={} responses={} timeouts={} resets={} delivered_twice={} leaked={}",
            self.requests,
            self.responses,
            self.timeouts,
            self.resets,
            self.delivered_twice,
            self.leaked
        )
    }
}

fn entries(t: &TableSizes) -> usize {
    t.requests
        + t.pending
        + t.separate
        + t.notifications
        + t.dedup
        + t.peers
        + t.timers
        + t.transmits
        + t.events
}

struct Fnv(u64);

impl Fnv {
    const START: u64 = 0xcbf2_9ce4_8422_2325;
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

// ----- payloads ---------------------------------------------------------------

const MAGIC: &[u8; 4] = b"SIMr";

fn request_payload(node: u16, index: u32) -> [u8; 10] {
    let mut p = [0u8; 10];
    let [n0, n1] = node.to_be_bytes();
    let [i0, i1, i2, i3] = index.to_be_bytes();
    p.copy_from_slice(&[
        MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], n0, n1, i0, i1, i2, i3,
    ]);
    p
}

fn parse_payload(p: &[u8]) -> Option<(u16, u32)> {
    let [m0, m1, m2, m3, n0, n1, i0, i1, i2, i3] = *p else {
        return None;
    };
    ([m0, m1, m2, m3] == *MAGIC).then(|| {
        (
            u16::from_be_bytes([n0, n1]),
            u32::from_be_bytes([i0, i1, i2, i3]),
        )
    })
}

// ----- the simulator ----------------------------------------------------------

#[derive(Debug)]
struct Flight {
    from: SimAddr,
    to: SimAddr,
    /// For multicast copies: the member it goes to.
    member: Option<usize>,
    corrupted: bool,
    bytes: Vec<u8>,
}

/// A custom application for a node (see [`Sim::set_app`]): it gets every
/// event of the node's endpoint, with the endpoint and the instant, and may
/// issue commands on it (the simulator drains what they queue).
pub type App = alloc::boxed::Box<dyn FnMut(&mut Endpoint<SimAddr>, Instant, Event<SimAddr>)>;

struct AppSlot(App);

impl fmt::Debug for AppSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("App")
    }
}

/// Consecutive steps at one instant before the simulator declares a spin.
const SPIN_LIMIT: u32 = 100_000;
/// How long a server application waits before retrying a refused `respond`.
const RESPOND_RETRY: Duration = Duration::from_secs(1);
/// Violations kept (all are counted).
const VIOLATIONS_KEPT: usize = 256;

/// The simulator; see the [module docs](self).
#[derive(Debug)]
pub struct Sim {
    now: Instant,
    rng: SimRng,
    app_rng: SimRng,
    default_link: LinkParams,
    links: BTreeMap<(usize, usize), LinkParams>,
    nodes: Vec<Node>,
    nats: Vec<Nat>,
    groups: BTreeMap<u16, Vec<usize>>,
    apps: BTreeMap<usize, AppSlot>,
    in_flight: BTreeMap<(Instant, u64), Flight>,
    seq: u64,
    hash: u64,
    net: NetStats,
    violations: Vec<Violation>,
    violation_count: u64,
    check_bounds: bool,
    trace: Option<Vec<TraceEntry>>,
    last_activity: Instant,
    same_instant: u32,
    last_step: Option<Instant>,
    halted: bool,
    buf: Vec<u8>,
}

impl Sim {
    /// An empty simulator whose network (and application choices) are
    /// driven by `seed`. Endpoints get their own seeds in
    /// [`add_node`](Self::add_node).
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            now: Instant::ZERO,
            rng: SimRng::new(derive_seed(seed, 0x4c49_4e4b)),
            app_rng: SimRng::new(derive_seed(seed, 0x4150_5053)),
            default_link: LinkParams::default(),
            links: BTreeMap::new(),
            nodes: Vec::new(),
            nats: Vec::new(),
            groups: BTreeMap::new(),
            apps: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            seq: 0,
            hash: Fnv::START,
            net: NetStats::default(),
            violations: Vec::new(),
            violation_count: 0,
            check_bounds: true,
            trace: None,
            last_activity: Instant::ZERO,
            same_instant: 0,
            last_step: None,
            halted: false,
            buf: alloc::vec![0u8; 65536],
        }
    }

    // ----- set-up -------------------------------------------------------------

    /// Link parameters for every direction without its own.
    pub fn set_default_link(&mut self, params: LinkParams) {
        self.default_link = params;
    }

    /// Link parameters for datagrams from `from` to `to` (one direction).
    pub fn set_link(&mut self, from: NodeId, to: NodeId, params: LinkParams) {
        self.links.insert((from.0, to.0), params);
    }

    /// Adds a NAT with public host number `public_host`.
    pub fn add_nat(&mut self, public_host: u16, idle_timeout: Duration) -> NatId {
        self.nats.push(Nat {
            public_host,
            idle_timeout,
            next_port: 40_000,
            bindings: BTreeMap::new(),
            by_node: BTreeMap::new(),
            bindings_created: 0,
            dropped: 0,
        });
        NatId(self.nats.len() - 1)
    }

    /// Adds a node reachable at `addr` with an endpoint built from `config`
    /// and `seed`. It answers requests as [`ServerBehaviour::Piggyback`]
    /// until told otherwise.
    pub fn add_node(&mut self, addr: SimAddr, config: Config, seed: u64) -> NodeId {
        self.nodes.push(Node {
            endpoint: Endpoint::new(config, seed),
            addr,
            nat: None,
            server: ServerBehaviour::Piggyback,
            workload: None,
            attempted: 0,
            next_issue: Instant::ZERO,
            open: 0,
            records: Vec::new(),
            by_id: BTreeMap::new(),
            deliveries: BTreeMap::new(),
            any_deliveries: BTreeMap::new(),
            mcast_responses: BTreeMap::new(),
            answers: BTreeMap::new(),
            held: 0,
            peers_seen: BTreeSet::new(),
            max_request_len: 0,
            app: AppStats::default(),
        });
        NodeId(self.nodes.len() - 1)
    }

    /// Adds a node with private address `addr` behind `nat`: what it sends
    /// leaves from the NAT's public mapping, and it is reachable only
    /// through a live binding.
    pub fn add_node_behind_nat(
        &mut self,
        addr: SimAddr,
        nat: NatId,
        config: Config,
        seed: u64,
    ) -> NodeId {
        let id = self.add_node(addr, config, seed);
        self.nodes[id.0].nat = Some(nat.0);
        id
    }

    /// Makes `node` a member of multicast group `group`.
    pub fn join_group(&mut self, node: NodeId, group: u16) {
        let members = self.groups.entry(group).or_default();
        if !members.contains(&node.0) {
            members.push(node.0);
        }
    }

    /// Sets how `node`'s server application answers.
    pub fn set_server(&mut self, node: NodeId, behaviour: ServerBehaviour) {
        self.nodes[node.0].server = behaviour;
    }

    /// Hands every event of `node` to `app` instead of the built-in server
    /// behaviour and workload bookkeeping (e.g. an Observe client or a
    /// resource layer). Timed application work is done between
    /// [`run_until`](Self::run_until) calls with
    /// [`command`](Self::command).
    pub fn set_app(&mut self, node: NodeId, app: App) {
        self.apps.insert(node.0, AppSlot(app));
    }

    /// Gives `node` a client workload.
    pub fn set_workload(&mut self, node: NodeId, workload: Workload) {
        let n = &mut self.nodes[node.0];
        n.workload = Some(workload);
        n.next_issue = workload.start;
    }

    /// Checks table and memory bounds after every input (on by default).
    pub fn set_check_bounds(&mut self, on: bool) {
        self.check_bounds = on;
    }

    /// Keeps every delivered datagram for [`trace`](Self::trace).
    pub fn set_tracing(&mut self, on: bool) {
        self.trace = on.then(Vec::new);
    }

    // ----- access -------------------------------------------------------------

    /// Virtual time.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.now
    }

    /// A node.
    #[must_use]
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0]
    }

    /// All nodes.
    #[must_use]
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// A NAT.
    #[must_use]
    pub fn nat(&self, id: NatId) -> &Nat {
        &self.nats[id.0]
    }

    /// The network counters.
    #[must_use]
    pub fn net_stats(&self) -> &NetStats {
        &self.net
    }

    /// FNV-1a over every delivered `(time, from, to, node, bytes)`.
    #[must_use]
    pub fn trace_hash(&self) -> u64 {
        self.hash
    }

    /// The delivered datagrams, if tracing is on.
    #[must_use]
    pub fn trace(&self) -> &[TraceEntry] {
        self.trace.as_deref().unwrap_or_default()
    }

    /// The violations found so far (the first 256; see
    /// [`violation_count`](Self::violation_count)).
    #[must_use]
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// How many violations were found.
    #[must_use]
    pub fn violation_count(&self) -> u64 {
        self.violation_count
    }

    /// Every recorded outcome, in node and workload order.
    #[must_use]
    pub fn outcomes(&self) -> Vec<OutcomeEntry> {
        self.nodes
            .iter()
            .enumerate()
            .flat_map(|(i, n)| {
                n.records
                    .iter()
                    .map(move |r| (NodeId(i), r.index, r.id, r.outcome))
            })
            .collect()
    }

    /// Runs `f` on `node`'s endpoint at the current instant (a command such
    /// as `ping` or `cancel`), then drains it as the call contract asks.
    pub fn command<R>(
        &mut self,
        node: NodeId,
        f: impl FnOnce(&mut Endpoint<SimAddr>, Instant) -> R,
    ) -> R {
        let r = f(&mut self.nodes[node.0].endpoint, self.now);
        self.drain(node.0, false);
        r
    }

    fn violation(&mut self, v: Violation) {
        self.violation_count += 1;
        if self.violations.len() < VIOLATIONS_KEPT {
            self.violations.push(v);
        }
    }

    // ----- the network --------------------------------------------------------

    fn link(&self, from: usize, to: Option<usize>) -> LinkParams {
        to.and_then(|to| self.links.get(&(from, to)).copied())
            .unwrap_or(self.default_link)
    }

    /// The node a unicast address reaches, ignoring binding liveness.
    fn node_for(&self, addr: SimAddr) -> Option<usize> {
        let SimAddr::Host { host, port } = addr else {
            return None;
        };
        if let Some(nat) = self.nats.iter().find(|n| n.public_host == host) {
            return nat.peek(port);
        }
        self.nodes
            .iter()
            .position(|n| n.nat.is_none() && n.addr == addr)
    }

    /// Sends `bytes` from node `i` to `to` through the link model.
    fn route(&mut self, i: usize, to: SimAddr, bytes: &[u8]) {
        let now = self.now;
        self.last_activity = now;
        let from = match self.nodes[i].nat {
            Some(nat) => self.nats[nat].outbound(i, now),
            None => self.nodes[i].addr,
        };
        self.note_request_tx(i, bytes);
        if let SimAddr::Group(g) = to {
            let members = self.groups.get(&g).cloned().unwrap_or_default();
            for j in members.into_iter().filter(|&j| j != i) {
                self.transmit(i, Some(j), from, to, bytes, true);
            }
        } else {
            let j = self.node_for(to);
            self.transmit(i, j, from, to, bytes, false);
        }
    }

    fn transmit(
        &mut self,
        i: usize,
        j: Option<usize>,
        from: SimAddr,
        to: SimAddr,
        bytes: &[u8],
        multicast: bool,
    ) {
        let p = self.link(i, j);
        self.net.sent += 1;
        if self.rng.chance(p.loss) {
            self.net.lost += 1;
            return;
        }
        let copies = if self.rng.chance(p.duplicate) {
            self.net.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = p.delay + self.rng.upto(p.jitter);
            if self.rng.chance(p.reorder) {
                self.net.reordered += 1;
                delay += self.rng.upto(p.reorder_delay);
            }
            let mut copy = bytes.to_vec();
            let corrupted = self.rng.chance(p.corrupt) && !copy.is_empty();
            if corrupted {
                self.net.corrupted += 1;
                self.corrupt(&mut copy);
            }
            let at = self.now + delay.max(Duration::from_micros(1));
            self.seq += 1;
            self.in_flight.insert(
                (at, self.seq),
                Flight {
                    from,
                    to,
                    member: if multicast { j } else { None },
                    corrupted,
                    bytes: copy,
                },
            );
        }
    }

    fn corrupt(&mut self, bytes: &mut [u8]) {
        let len = bytes.len() as u64;
        if self.rng.chance(0.5) {
            for _ in 0..=self.rng.below(3) {
                let bit = self.rng.below(len * 8);
                if let Some(b) = bytes.get_mut((bit / 8) as usize) {
                    *b ^= 1 << (bit % 8);
                }
            }
        } else {
            let at = self.rng.below(len) as usize;
            let v = self.rng.next_u64() as u8;
            if let Some(b) = bytes.get_mut(at) {
                *b = if *b == v { !v } else { v };
            }
        }
    }

    fn arrive(&mut self, f: &Flight) {
        let now = self.now;
        let node = if f.member.is_some() {
            f.member
        } else if let SimAddr::Host { host, port } = f.to
            && let Some(nat) = self.nats.iter_mut().find(|n| n.public_host == host)
        {
            let n = nat.inbound(port, now);
            if n.is_none() {
                nat.dropped += 1;
                self.net.nat_dropped += 1;
                return;
            }
            n
        } else {
            self.node_for(f.to)
        };
        let Some(j) = node else {
            self.net.unroutable += 1;
            return;
        };
        self.net.delivered += 1;
        let mut h = Fnv(self.hash);
        let mut a = [0u8; 5];
        h.write(&now.as_micros().to_le_bytes());
        f.from.write_to(&mut a);
        h.write(&a);
        f.to.write_to(&mut a);
        h.write(&a);
        h.write(&(j as u64).to_le_bytes());
        h.write(&(f.bytes.len() as u64).to_le_bytes());
        h.write(&f.bytes);
        self.hash = h.0;
        if let Some(t) = &mut self.trace {
            t.push(TraceEntry {
                at: now,
                from: f.from,
                to: f.to,
                node: NodeId(j),
                corrupted: f.corrupted,
                bytes: f.bytes.clone(),
            });
        }
        let ep = &mut self.nodes[j].endpoint;
        if f.member.is_some() {
            ep.handle_multicast_datagram(now, f.from, &f.bytes);
        } else {
            ep.handle_datagram(now, f.from, &f.bytes);
        }
        self.drain(j, f.corrupted);
    }

    // ----- the call contract ---------------------------------------------------

    /// Drains node `i`: transmits, then events, until both are empty. Events
    /// are attributed to a corrupted input when `corrupted`.
    fn drain(&mut self, i: usize, corrupted: bool) {
        if self.check_bounds {
            self.check_node_bounds(i);
        }
        let mut buf = core::mem::take(&mut self.buf);
        loop {
            let mut progressed = false;
            loop {
                match self.nodes[i].endpoint.poll_transmit(&mut buf) {
                    Ok(Some(t)) => {
                        progressed = true;
                        if let Some(b) = buf.get(..t.len) {
                            self.route(i, t.to, b);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.violation(Violation::TransmitBuffer {
                            node: NodeId(i),
                            required: e.required,
                        });
                        break;
                    }
                }
            }
            while let Some(ev) = self.nodes[i].endpoint.poll_event() {
                progressed = true;
                self.on_event(i, ev, corrupted);
            }
            if !progressed {
                break;
            }
            if self.check_bounds {
                self.check_node_bounds(i);
            }
        }
        self.buf = buf;
    }

    /// Records the first transmission of a workload request from node `i`.
    fn note_request_tx(&mut self, i: usize, bytes: &[u8]) {
        let Ok(msg) = Message::parse(bytes) else {
            return;
        };
        if !msg.code().is_request() {
            return;
        }
        let Some((node, index)) = parse_payload(msg.payload()) else {
            return;
        };
        let now = self.now;
        let n = &mut self.nodes[i];
        if usize::from(node) != i {
            return;
        }
        if let Some(r) = n.records.get_mut(index as usize) {
            r.first_tx.get_or_insert(now);
            n.max_request_len = n.max_request_len.max(bytes.len());
        }
    }

    fn on_event(&mut self, i: usize, ev: Event<SimAddr>, corrupted: bool) {
        let now = self.now;
        if let Some(app) = self.apps.get_mut(&i) {
            (app.0)(&mut self.nodes[i].endpoint, now, ev);
            return;
        }
        match ev {
            Event::Request(req) => {
                let payload = req.message().payload().to_vec();
                let key = parse_payload(&payload);
                let handle = req.handle;
                let node = &mut self.nodes[i];
                node.endpoint.recycle(req.message.into_bytes());
                node.peers_seen.insert(req.peer);
                if let Some(key) = key {
                    *node.any_deliveries.entry(key).or_insert(0) += 1;
                }
                if corrupted {
                    node.app.corrupt_deliveries += 1;
                } else if let Some(key) = key {
                    node.app.delivered += 1;
                    let count = node.deliveries.entry(key).or_insert(0);
                    *count += 1;
                    if *count > 1 {
                        node.app.delivered_twice += 1;
                        self.violation(Violation::DeliveredTwice {
                            server: NodeId(i),
                            request: key,
                            at: now,
                        });
                    }
                } else {
                    node.app.foreign_deliveries += 1;
                }
                let node = &mut self.nodes[i];
                let delay = match node.server {
                    ServerBehaviour::Piggyback => Some(Duration::ZERO),
                    ServerBehaviour::Delayed(d) => Some(d),
                    ServerBehaviour::Mixed {
                        separate,
                        max_delay,
                    } => {
                        if self.app_rng.chance(separate) {
                            Some(self.app_rng.upto(max_delay))
                        } else {
                            Some(Duration::ZERO)
                        }
                    }
                    ServerBehaviour::Never => None,
                };
                match delay {
                    Some(Duration::ZERO) => self.answer(i, handle, &payload),
                    Some(d) => {
                        self.seq += 1;
                        self.nodes[i]
                            .answers
                            .insert((now + d, self.seq), (handle, payload));
                    }
                    None => self.nodes[i].held += 1,
                }
            }
            Event::Response(resp) => {
                let (id, peer) = (resp.id, resp.peer);
                let code = resp.message().code();
                let echoed = parse_payload(resp.message().payload());
                self.nodes[i].endpoint.recycle(resp.message.into_bytes());
                let Some(k) = self.record_of(i, id) else {
                    return;
                };
                // The application's answers (2.04) echo the request; the
                // endpoint's own (5.03 when full, 4.02) carry no payload.
                let check_payload = self.net.corrupted == 0 && code == Code::CHANGED;
                let r = &mut self.nodes[i].records[k];
                let index = r.index;
                if check_payload && echoed != Some((i as u16, index)) {
                    self.nodes[i].app.mismatched += 1;
                    self.violation(Violation::MismatchedResponse {
                        node: NodeId(i),
                        index,
                    });
                }
                let r = &mut self.nodes[i].records[k];
                if r.multicast {
                    r.responses += 1;
                    if corrupted {
                        return;
                    }
                    if !r.responders.contains(&peer) {
                        r.responders.push(peer);
                    }
                    // A response may repeat a responder only when its
                    // application got the request again (a corrupted copy
                    // with a new Message ID is a new request, §4.5); answers
                    // to a corrupted payload do not echo this request's.
                    if echoed == Some((i as u16, index)) {
                        let n = self.nodes[i]
                            .mcast_responses
                            .entry((index, peer))
                            .or_insert(0);
                        *n += 1;
                        let n = *n;
                        let delivered = self
                            .node_for(peer)
                            .and_then(|j| {
                                self.nodes[j]
                                    .any_deliveries
                                    .get(&(i as u16, index))
                                    .copied()
                            })
                            .unwrap_or(0);
                        if n > delivered {
                            self.violation(Violation::RepeatedResponder {
                                node: NodeId(i),
                                index,
                                peer,
                            });
                        }
                    }
                } else {
                    self.finish(i, k, Outcome::Response { code, peer });
                }
            }
            Event::Acknowledged(id) => {
                if let Some(k) = self.record_of(i, id) {
                    self.nodes[i].records[k].acknowledged.get_or_insert(now);
                }
            }
            Event::TimedOut(id) => {
                if let Some(k) = self.record_of(i, id) {
                    self.finish(i, k, Outcome::TimedOut);
                }
            }
            Event::Reset(id) | Event::Pong(id) => {
                if let Some(k) = self.record_of(i, id) {
                    self.finish(i, k, Outcome::Reset);
                }
            }
            Event::MulticastDone(id) => {
                if let Some(k) = self.record_of(i, id) {
                    let responses = self.nodes[i].records[k].responses;
                    self.finish(i, k, Outcome::MulticastDone { responses });
                }
            }
            Event::ResponseDelivered(_) => self.nodes[i].app.responses_delivered += 1,
            Event::ResponseFailed(_) => self.nodes[i].app.responses_failed += 1,
            // Observe (RFC 7641) belongs to custom applications (`set_app`).
            Event::Notification(r) => self.nodes[i].endpoint.recycle(r.message.into_bytes()),
            Event::NotificationDelivered(_)
            | Event::NotificationRejected(_)
            | Event::NotificationTimedOut(_) => {}
        }
    }

    fn record_of(&mut self, i: usize, id: RequestId) -> Option<usize> {
        let k = self.nodes[i].by_id.get(&id).copied();
        if k.is_none() {
            self.violation(Violation::UnknownRequest {
                node: NodeId(i),
                id,
            });
        }
        k
    }

    fn finish(&mut self, i: usize, k: usize, outcome: Outcome) {
        let now = self.now;
        let node = &mut self.nodes[i];
        let config = *node.endpoint.config();
        let r = &mut node.records[k];
        let index = r.index;
        if r.outcome.is_some() {
            self.violation(Violation::SecondOutcome {
                node: NodeId(i),
                index,
                at: now,
            });
            return;
        }
        r.outcome = Some((now, outcome));
        node.open -= 1;
        if let Some(deadline) = r.deadline(&config)
            && now > deadline
        {
            self.violation(Violation::LateOutcome {
                node: NodeId(i),
                index,
                deadline,
                at: now,
            });
        }
    }

    /// Responds (the caller drains). When the endpoint has no room for a
    /// separate response right now (`NoCapacity`, `MessageIdsExhausted`),
    /// tries again a second later, as a real application would; the
    /// endpoint's own expiry of unanswered requests ends the retries
    /// (`UnknownHandle`).
    fn answer(&mut self, i: usize, handle: ResponseHandle, payload: &[u8]) {
        let now = self.now;
        let node = &mut self.nodes[i];
        let r = node
            .endpoint
            .respond_with(now, handle, Code::CHANGED, |enc| {
                enc.payload(payload)?;
                Ok(())
            });
        match r {
            Ok(()) => node.app.answered += 1,
            Err(EndpointError::NoCapacity | EndpointError::MessageIdsExhausted) => {
                node.app.respond_retries += 1;
                self.seq += 1;
                node.answers
                    .insert((now + RESPOND_RETRY, self.seq), (handle, payload.to_vec()));
            }
            Err(_) => node.app.respond_errors += 1,
        }
    }

    fn check_node_bounds(&mut self, i: usize) {
        let ep = &self.nodes[i].endpoint;
        let c = *ep.config();
        let t = ep.tables();
        let checks = [
            ("requests", t.requests, c.max_requests),
            ("pending", t.pending, c.max_pending),
            // Separate responses plus multicast answers waiting out their
            // Leisure share `max_separate`.
            ("separate", t.separate, c.max_separate),
            ("dedup", t.dedup, c.max_dedup),
            ("dedup_bytes", t.dedup_bytes, c.max_dedup_bytes),
            ("peers", t.peers, c.max_peers),
            ("transmits", t.transmits, c.max_transmit_queue),
            // `max_events`, plus final (and Acknowledged) events of requests
            // and outcomes of separate responses, which are never dropped
            // and hold a request or separate slot instead.
            (
                "events",
                t.events,
                c.max_events + 2 * c.max_requests + c.max_separate + c.max_notifications,
            ),
            ("notifications", t.notifications, c.max_notifications),
            // One timer per request, separate response, pending request
            // (empty-ACK delay), delayed answer, peer and notification.
            (
                "timers",
                t.timers,
                c.max_requests
                    + c.max_separate
                    + 2 * c.max_pending
                    + c.max_peers
                    + c.max_notifications,
            ),
        ];
        let usage = ep.memory_usage();
        let bound = c.memory_bound();
        for (table, len, bound) in checks {
            if len > bound {
                self.violation(Violation::TableBound {
                    node: NodeId(i),
                    table,
                    len,
                    bound,
                });
            }
        }
        if usage > bound {
            self.violation(Violation::MemoryBound {
                node: NodeId(i),
                usage,
                bound,
            });
        }
    }

    // ----- applications -------------------------------------------------------

    fn app_wakeup(&self, i: usize) -> Option<Instant> {
        let n = &self.nodes[i];
        let answer = n.answers.keys().next().map(|k| k.0);
        let issue = n.workload.and_then(|w| {
            (n.attempted < w.requests && n.open < w.concurrency).then_some(n.next_issue)
        });
        match (answer, issue) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn run_app(&mut self, i: usize) {
        let now = self.now;
        while let Some((&(at, seq), _)) = self.nodes[i].answers.first_key_value()
            && at <= now
        {
            if let Some((handle, payload)) = self.nodes[i].answers.remove(&(at, seq)) {
                self.answer(i, handle, &payload);
                self.drain(i, false);
            }
        }
        while let Some(w) = self.nodes[i].workload {
            let n = &self.nodes[i];
            if n.attempted >= w.requests || n.open >= w.concurrency || n.next_issue > now {
                break;
            }
            let index = n.records.len() as u32;
            let multicast = w.peer.is_multicast();
            let con = !multicast && self.app_rng.chance(w.confirmable_ratio);
            let payload = request_payload(i as u16, index);
            let n = &mut self.nodes[i];
            n.attempted += 1;
            n.next_issue = now + w.interval;
            let r = n
                .endpoint
                .request_with(now, w.peer, con, Code::POST, |enc| {
                    enc.payload(&payload)?;
                    Ok(())
                });
            match r {
                Ok(id) => {
                    n.by_id.insert(id, n.records.len());
                    n.open += 1;
                    n.records.push(RequestRecord {
                        index,
                        id,
                        peer: w.peer,
                        confirmable: con,
                        multicast,
                        issued: now,
                        first_tx: None,
                        acknowledged: None,
                        outcome: None,
                        responders: Vec::new(),
                        responses: 0,
                    });
                }
                Err(_) => n.app.refused += 1,
            }
            self.drain(i, false);
        }
    }

    // ----- stepping -------------------------------------------------------------

    /// The next instant anything happens, if anything is scheduled.
    #[must_use]
    pub fn next_wakeup(&self) -> Option<Instant> {
        if self.halted {
            return None;
        }
        let mut next = self.in_flight.keys().next().map(|k| k.0);
        for (i, n) in self.nodes.iter().enumerate() {
            for t in [n.endpoint.poll_timeout(), self.app_wakeup(i)]
                .into_iter()
                .flatten()
            {
                next = Some(next.map_or(t, |x: Instant| x.min(t)));
            }
        }
        next.map(|t| t.max(self.now))
    }

    /// Jumps to the next wake-up and runs everything due then: deliveries
    /// (in order of arrival), endpoint timeouts (in node order), then the
    /// applications. Returns false when nothing is scheduled.
    pub fn step(&mut self) -> bool {
        let Some(t) = self.next_wakeup() else {
            return false;
        };
        if self.last_step == Some(t) {
            self.same_instant += 1;
            if self.same_instant > SPIN_LIMIT {
                self.violation(Violation::Spin { at: t });
                self.halted = true;
                return false;
            }
        } else {
            self.same_instant = 0;
            self.last_step = Some(t);
        }
        self.now = t;
        while let Some(entry) = self.in_flight.first_entry() {
            if entry.key().0 > t {
                break;
            }
            let f = entry.remove();
            self.arrive(&f);
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i]
                .endpoint
                .poll_timeout()
                .is_some_and(|at| at <= t)
            {
                self.nodes[i].endpoint.handle_timeout(t);
                self.drain(i, false);
            }
        }
        for i in 0..self.nodes.len() {
            if self.app_wakeup(i).is_some_and(|at| at <= t) {
                self.run_app(i);
            }
        }
        true
    }

    /// Steps until nothing is scheduled at or before `until`, then moves
    /// the clock to `until`.
    pub fn run_until(&mut self, until: Instant) {
        while self.next_wakeup().is_some_and(|t| t <= until) {
            if !self.step() {
                break;
            }
        }
        if !self.halted {
            self.now = self.now.max(until);
        }
    }

    /// Whether every workload has issued all its requests and each ended.
    #[must_use]
    pub fn workloads_done(&self) -> bool {
        self.nodes.iter().all(Node::workload_done)
    }

    /// How long after the last datagram every endpoint must be empty: the
    /// largest `EXCHANGE_LIFETIME + max(MAX_TRANSMIT_WAIT,
    /// separate_response_timeout, non_request_timeout, multicast_timeout)`
    /// over the nodes, plus 1 s.
    #[must_use]
    pub fn quiet_period(&self) -> Duration {
        self.nodes
            .iter()
            .map(|n| {
                let c = n.endpoint.config();
                let t = c.transmission;
                let wait = t
                    .max_transmit_wait()
                    .max(c.separate_response_timeout)
                    .max(c.non_request_timeout)
                    .max(c.multicast_timeout);
                t.exchange_lifetime() + wait
            })
            .max()
            .unwrap_or_default()
            + Duration::from_secs(1)
    }

    /// Runs the workloads to completion, then until
    /// [`quiet_period`](Self::quiet_period) has passed since the last
    /// datagram with no application work left. Requests that can never end
    /// are left open (and reported by [`check_outcomes`](Self::check_outcomes)).
    /// Gives up with a [`Violation::NoQuiescence`] if traffic goes on for
    /// longer than `(1000 + requests in all workloads) × quiet_period`.
    pub fn run_until_quiet(&mut self) {
        let quiet = self.quiet_period();
        let work: u32 = self
            .nodes
            .iter()
            .filter_map(|n| n.workload.map(|w| w.requests))
            .sum();
        let give_up = self.now + quiet.saturating_mul(work.saturating_add(1000));
        while !self.halted {
            let app = (0..self.nodes.len())
                .filter_map(|i| self.app_wakeup(i))
                .min();
            let target = (self.last_activity + quiet).max(app.unwrap_or(Instant::ZERO));
            if target <= self.now && app.is_none() {
                break;
            }
            if self.now > give_up {
                self.violation(Violation::NoQuiescence { at: self.now });
                break;
            }
            self.run_until(target.max(self.now));
        }
    }

    // ----- final checks ---------------------------------------------------------

    /// Checks what can only be checked at the end: every request ended, no
    /// request left the queue too late. Call after
    /// [`run_until_quiet`](Self::run_until_quiet).
    pub fn check_outcomes(&mut self) {
        let mut found = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let c = n.endpoint.config();
            let t = c.transmission;
            let per_byte = Duration::from_micros(1_000_000 / u64::from(t.probing_rate.max(1)) + 1);
            let slack = per_byte
                .saturating_mul(u32::from(t.nstart.max(1)))
                .saturating_mul(u32::from(t.max_retransmit) + 2)
                .saturating_mul(u32::try_from(n.max_request_len).unwrap_or(u32::MAX))
                + Duration::from_millis(1);
            let mut released: BTreeMap<SimAddr, Option<Instant>> = BTreeMap::new();
            for r in &n.records {
                let Some((end, _)) = r.outcome else {
                    found.push(Violation::MissingOutcome {
                        node: NodeId(i),
                        index: r.index,
                    });
                    continue;
                };
                // NSTART applies to unicast requests per peer (§4.7).
                if !r.multicast {
                    // The latest release among earlier requests to this
                    // peer, or None once one of them never released.
                    let latest = released.entry(r.peer).or_insert(Some(Instant::ZERO));
                    if let Some(prev) = *latest {
                        let bound = r.issued.max(prev) + slack;
                        let at = r.first_tx.unwrap_or(end);
                        if at > bound {
                            found.push(Violation::LateStart {
                                node: NodeId(i),
                                index: r.index,
                                bound,
                                at,
                            });
                        }
                    }
                    *latest = match (*latest, r.released()) {
                        (Some(prev), Some(x)) => Some(prev.max(x)),
                        _ => None,
                    };
                }
            }
        }
        for v in found {
            self.violation(v);
        }
    }

    /// Checks that every endpoint is empty (apart from requests a `Never`
    /// application holds) and has no timer. Call after
    /// [`run_until_quiet`](Self::run_until_quiet).
    pub fn check_no_leaks(&mut self) {
        let mut found = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let t = n.endpoint.tables();
            // A `Never` application may still hold handles the endpoint
            // has expired, so pending may be anything up to `held`.
            let expected = TableSizes {
                pending: t.pending.min(n.held),
                ..TableSizes::default()
            };
            let timeout = n.endpoint.poll_timeout();
            if t != expected || timeout.is_some() {
                found.push(Violation::Leak {
                    node: NodeId(i),
                    tables: t,
                    timeout,
                });
            }
        }
        for v in found {
            self.violation(v);
        }
    }

    /// Totals over all nodes.
    #[must_use]
    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            violations: self.violation_count,
            net: self.net,
            end: self.now,
            ..Summary::default()
        };
        for n in &self.nodes {
            s.refused += n.app.refused;
            s.delivered += n.app.delivered;
            s.delivered_twice += n.app.delivered_twice;
            let t = n.endpoint.tables();
            s.leaked += (entries(&t) - t.pending.min(n.held)) as u64;
            for r in &n.records {
                s.requests += 1;
                match r.outcome {
                    None => s.open += 1,
                    Some((_, Outcome::Response { .. })) => s.responses += 1,
                    Some((_, Outcome::TimedOut)) => s.timeouts += 1,
                    Some((_, Outcome::Reset)) => s.resets += 1,
                    Some((_, Outcome::MulticastDone { responses })) => {
                        s.multicast_done += 1;
                        s.multicast_responses += responses as u64;
                    }
                }
            }
        }
        s
    }

    /// Runs everything ([`run_until_quiet`](Self::run_until_quiet)), checks
    /// the final invariants and returns the totals. Violations are in
    /// [`violations`](Self::violations).
    pub fn run(&mut self) -> Summary {
        self.run_until_quiet();
        self.check_outcomes();
        self.check_no_leaks();
        self.summary()
    }

    /// Panics with a readable report if any invariant was violated.
    pub fn assert_ok(&self, what: &str) {
        assert!(
            self.violation_count == 0,
            "{what}: {} violation(s), first ones: {:#?}",
            self.violation_count,
            self.violations
                .get(..self.violations.len().min(8))
                .unwrap_or_default()
        );
    }
}
