//! The deterministic, sans-IO CoAP endpoint (RFC 7252 §4, §5, §8).
//!
//! An [`Endpoint`] is client and server at once over one transport. It
//! holds no socket, clock, thread or global RNG: timestamps, datagrams and
//! commands go in; datagrams, timer deadlines and events come out.
//!
//! # The call contract
//!
//! - Inputs: [`handle_datagram`](Endpoint::handle_datagram),
//!   [`handle_timeout`](Endpoint::handle_timeout), and the commands
//!   [`request`](Endpoint::request), [`respond`](Endpoint::respond),
//!   [`ping`](Endpoint::ping), [`cancel`](Endpoint::cancel),
//!   [`accept`](Endpoint::accept), and for Observe (RFC 7641)
//!   [`observe`](Endpoint::observe),
//!   [`cancel_observe`](Endpoint::cancel_observe),
//!   [`notify`](Endpoint::notify) and
//!   [`cancel_notification`](Endpoint::cancel_notification).
//! - After **every** input or command: drain
//!   [`poll_transmit`](Endpoint::poll_transmit) until `None`, then
//!   [`poll_event`](Endpoint::poll_event) until `None`, then read
//!   [`poll_timeout`](Endpoint::poll_timeout) and call `handle_timeout` no
//!   later than that instant. A driver that reads datagrams in batches
//!   (`recvmmsg`) may feed a small batch (the std driver uses at most 32)
//!   before draining; it must drain before it blocks again. Queues are
//!   bounded, so a batch larger than `max_transmit_queue` loses datagrams
//!   (counted in [`Stats::transmit_drops`]).
//! - `now` never goes backwards. A smaller `now` than one seen before is
//!   clamped to the latest, never a panic. An early or spurious
//!   `handle_timeout` is a no-op.
//! - Every method does bounded work; every table has a bound in [`Config`]
//!   and a documented policy when full.
//! - Errors ([`Error`]) are for API misuse and resource limits. Anything a
//!   peer sends is an observable outcome (an answer, a counter in
//!   [`Stats`]), never an error and never a panic.
//!
//! ```
//! use coap_proto::endpoint::{Config, Endpoint, Event};
//! use coap_proto::{Code, Instant, Message, MessageBuf, MessageType, OptionNumber};
//!
//! // Two endpoints wired back to back; addresses are plain numbers here.
//! let mut client: Endpoint<u8> = Endpoint::new(Config::default(), 1);
//! let mut server: Endpoint<u8> = Endpoint::new(Config::default(), 2);
//! let now = Instant::ZERO;
//! let mut buf = [0u8; 1500];
//!
//! let mut get = MessageBuf::new(MessageType::Con, Code::GET);
//! get.add_option(OptionNumber::URI_PATH, "temp");
//! let id = client.request(now, 2, &get)?;
//!
//! // client -> server
//! while let Some(t) = client.poll_transmit(&mut buf)? {
//!     server.handle_datagram(now, 1, &buf[..t.len]);
//! }
//! let Some(Event::Request(req)) = server.poll_event() else { unreachable!() };
//! let mut answer = MessageBuf::new(MessageType::Ack, Code::CONTENT);
//! answer.set_payload("22.3 C");
//! server.respond(now, req.handle, &answer)?;
//!
//! // server -> client: a piggybacked response
//! while let Some(t) = server.poll_transmit(&mut buf)? {
//!     assert_eq!(Message::parse(&buf[..t.len])?.ty(), MessageType::Ack);
//!     client.handle_datagram(now, 2, &buf[..t.len]);
//! }
//! let Some(Event::Response(resp)) = client.poll_event() else { unreachable!() };
//! assert_eq!((resp.id, resp.message().payload()), (id, &b"22.3 C"[..]));
//! // All that is left is the peer's MID history, kept for EXCHANGE_LIFETIME
//! // so that no message ID is reused too early (RFC 7252 §4.4).
//! assert_eq!(client.poll_timeout(), Some(Instant::from_secs(247)));
//! client.handle_timeout(Instant::from_secs(247));
//! assert!(client.tables().is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::std_instead_of_core,
    clippy::alloc_instead_of_core
)]

mod config;
mod event;
pub(crate) mod rng;

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use config::POOL_BUFFERS;
pub use config::{
    Config, DEDUP_BYTES, EXCHANGE_BYTES, GATE_BYTES, NOTIFICATION_BYTES, PEER_BYTES, PENDING_BYTES,
    QUEUED_BYTES, TransmissionParameters,
};
pub use event::{
    Event, IncomingRequest, NotificationId, OwnedMessage, RequestId, Response, ResponseHandle,
};

use crate::message::{
    Code, EncodeError, Encoder, Header, MAX_TOKEN_LEN, Message, MessageBuf, MessageType, Observe,
    OptionNumber, OptionRef,
};
use crate::time::Instant;
use rng::Rng;

/// A peer address: anything `Copy + Ord + Hash + Debug`. CoAP does not care
/// what carries it (UDP, DTLS, SMS, a serial line).
///
/// ```
/// use coap_proto::endpoint::Address;
/// #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
/// struct PhoneNumber(u64);
/// impl Address for PhoneNumber {}
/// assert!(!PhoneNumber(1).is_multicast());
/// ```
pub trait Address: Copy + Ord + core::hash::Hash + fmt::Debug {
    /// Whether this is a multicast group (RFC 7252 §8). Requests to a group
    /// are NON and collect several responses.
    fn is_multicast(&self) -> bool {
        false
    }
}

impl Address for core::net::SocketAddr {
    fn is_multicast(&self) -> bool {
        self.ip().is_multicast()
    }
}
impl Address for core::net::SocketAddrV4 {
    fn is_multicast(&self) -> bool {
        self.ip().is_multicast()
    }
}
impl Address for core::net::SocketAddrV6 {
    fn is_multicast(&self) -> bool {
        self.ip().is_multicast()
    }
}
impl Address for u8 {}
impl Address for u16 {}
impl Address for u32 {}
impl Address for u64 {}

/// Why a command was refused. Peer misbehaviour is never an `Error`.
///
/// ```
/// use coap_proto::endpoint::{Config, Endpoint, Error, ResponseHandle};
/// use coap_proto::{Code, Instant, MessageBuf, MessageType};
/// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
/// let r = ep.respond(Instant::ZERO, ResponseHandle::from_raw(42), &MessageBuf::new(MessageType::Ack, Code::CONTENT));
/// assert_eq!(r, Err(Error::UnknownHandle));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A table is full (see [`Config`]); try again later.
    NoCapacity,
    /// Every message ID towards this peer was used within EXCHANGE_LIFETIME
    /// (RFC 7252 §4.4); try again later.
    MessageIdsExhausted,
    /// The request or handle is not (or no longer) known.
    UnknownHandle,
    /// The message could not be encoded (too large for
    /// `Config::max_message_size`, options out of order, ...).
    Encode(EncodeError),
    /// A CON request to a multicast address (RFC 7252 §8.1 requires NON).
    ConfirmableMulticast,
    /// The code is not a request method (for requests) or not a response
    /// code (for responses).
    InvalidCode,
    /// The command does not apply here (an observation of a multicast
    /// group, RFC 7641 §5 leaves it out of scope).
    Unsupported,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoCapacity => f.write_str("endpoint table full"),
            Self::MessageIdsExhausted => {
                f.write_str("all message IDs towards this peer used within EXCHANGE_LIFETIME")
            }
            Self::UnknownHandle => f.write_str("unknown request or handle"),
            Self::Encode(e) => write!(f, "encoding failed: {e}"),
            Self::ConfirmableMulticast => f.write_str("multicast requests must be NON"),
            Self::InvalidCode => f.write_str("invalid code for this command"),
            Self::Unsupported => f.write_str("not supported for this peer"),
        }
    }
}

impl core::error::Error for Error {}

impl From<EncodeError> for Error {
    fn from(e: EncodeError) -> Self {
        Self::Encode(e)
    }
}

/// How [`Endpoint::cancel_observe`] ends an observation (RFC 7641 §3.6).
///
/// ```
/// use coap_proto::endpoint::Deregister;
/// assert_ne!(Deregister::Active, Deregister::Passive);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deregister {
    /// Send a GET with Observe:1 and the observation's token (its response
    /// ends silently). While a (re-)registration is still in flight this
    /// falls back to `Passive`.
    Active,
    /// Forget the token: the next notification gets a Reset, which makes
    /// the server remove the observer.
    Passive,
}

/// A datagram to send, written into the caller's buffer by
/// [`Endpoint::poll_transmit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub struct Transmit<A> {
    /// Where to send it.
    pub to: A,
    /// How many bytes of the buffer hold the datagram.
    pub len: usize,
}

/// The caller's buffer cannot hold the next datagram; it stays queued.
///
/// ```
/// use coap_proto::endpoint::{BufferTooSmall, Config, Endpoint};
/// use coap_proto::Instant;
/// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
/// ep.ping(Instant::ZERO, 2)?;
/// assert_eq!(ep.poll_transmit(&mut [0u8; 2]), Err(BufferTooSmall { required: 4 }));
/// assert!(ep.poll_transmit(&mut [0u8; 4])?.is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferTooSmall {
    /// The length of the queued datagram.
    pub required: usize,
}

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "transmit buffer too small: {} bytes required",
            self.required
        )
    }
}

impl core::error::Error for BufferTooSmall {}

/// Counters of everything the endpoint saw and did.
///
/// ```
/// use coap_proto::endpoint::{Config, Endpoint};
/// use coap_proto::Instant;
/// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
/// ep.handle_datagram(Instant::ZERO, 2, &[0x40, 0x01, 0x00, 0x01, 0xff]); // malformed CON
/// assert_eq!(ep.stats().format_errors, 1);
/// assert_eq!(ep.stats().resets_sent, 1);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Datagrams handed to `handle_datagram`.
    pub datagrams_in: u64,
    /// Datagrams handed out by `poll_transmit`.
    pub datagrams_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// CON retransmissions (requests and separate responses).
    pub retransmissions: u64,
    /// Duplicate CON/NON messages detected (RFC 7252 §4.5).
    pub duplicates: u64,
    /// Datagrams that are not well-formed CoAP (RFC 7252 §3).
    pub format_errors: u64,
    /// Datagrams larger than `Config::max_message_size`.
    pub oversized: u64,
    /// Resets sent.
    pub resets_sent: u64,
    /// Resets received.
    pub resets_received: u64,
    /// Requests or separate responses that timed out.
    pub timeouts: u64,
    /// Requests delivered to the application.
    pub requests_in: u64,
    /// Responses delivered to the application.
    pub responses_in: u64,
    /// Requests rejected for unrecognized critical options (4.02 or dropped).
    pub bad_options: u64,
    /// Requests refused because a table was full (5.03 or dropped).
    pub busy: u64,
    /// ACKs, Resets and responses that matched nothing (ignored or RST).
    pub unexpected: u64,
    /// Datagrams dropped because the transmit queue was full.
    pub transmit_drops: u64,
    /// Deduplication entries evicted before they expired (table full).
    pub dedup_evictions: u64,
    /// Messages that could not be sent because the MID space towards a peer
    /// was exhausted.
    pub mid_exhausted: u64,
    /// Incoming requests dropped unanswered after EXCHANGE_LIFETIME (the
    /// application never called `respond`).
    pub pending_expired: u64,
    /// Notifications of observations delivered (`Event::Notification`).
    pub notifications_in: u64,
    /// Notifications older than one already delivered (RFC 7641 §3.4):
    /// acknowledged, not delivered.
    pub stale_notifications: u64,
    /// Re-registrations of observations whose Max-Age ran out (§3.3.1).
    pub reregistrations: u64,
    /// Notifications sent as an observed resource's server (first
    /// transmissions; retransmissions count in `retransmissions`).
    pub notifications_out: u64,
    /// Notifications that waited for their client's congestion slot (RFC
    /// 7641 §4.5.1) instead of going out at once.
    pub notifications_paced: u64,
    /// Waiting notifications replaced by a newer one of the same
    /// observation before they went out (never sent).
    pub notifications_replaced: u64,
    /// Waiting notifications dropped when their turn came (no Message ID
    /// towards the client).
    pub notifications_dropped: u64,
}

/// A token, stored inline.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
struct Tok {
    len: u8,
    bytes: [u8; MAX_TOKEN_LEN],
}

impl Tok {
    fn new(t: &[u8]) -> Self {
        let mut bytes = [0u8; MAX_TOKEN_LEN];
        let len = t.len().min(MAX_TOKEN_LEN);
        if let (Some(d), Some(s)) = (bytes.get_mut(..len), t.get(..len)) {
            d.copy_from_slice(s);
        }
        Self {
            len: len as u8,
            bytes,
        }
    }
    fn as_slice(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }
}

impl fmt::Debug for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.as_slice() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The retransmission state of an outgoing CON (RFC 7252 §4.2).
#[derive(Clone, Copy, Debug)]
struct Backoff {
    /// Retransmissions done so far.
    attempt: u8,
    /// The current timeout (doubles after each retransmission).
    timeout: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReqState {
    /// Waiting for NSTART / probing budget.
    Queued,
    /// CON sent, waiting for ACK/RST or piggybacked response.
    AwaitAck,
    /// NON sent, or CON acknowledged with an empty ACK: waiting for a response.
    AwaitResponse,
    /// Multicast: collecting responses until the deadline.
    Collecting,
    /// An established observation (RFC 7641): no exchange in flight; the
    /// deadline is the re-registration instant (§3.3.1).
    Observing,
}

/// The client side of an observation (RFC 7641 §3).
#[derive(Clone, Copy, Debug)]
struct Observation {
    /// A notification arrived: the token stays registered.
    established: bool,
    /// A deregistration (GET Observe:1) is in flight.
    deregistering: bool,
    /// The freshest notification so far: its Observe value and when it
    /// arrived (§3.4: V1, T1).
    freshest: Option<(u32, Instant)>,
}

#[derive(Debug)]
#[allow(clippy::struct_excessive_bools)] // independent protocol flags
struct Outgoing<A> {
    peer: A,
    token: Tok,
    mid: u16,
    con: bool,
    ping: bool,
    multicast: bool,
    state: ReqState,
    backoff: Backoff,
    deadline: Option<Instant>,
    /// Counts towards the peer's NSTART.
    outstanding: bool,
    datagram: Vec<u8>,
}

/// A notification sent as an observed resource's server (RFC 7641 §4.5):
/// a CON one in flight, or the Message ID of the last NON one.
#[derive(Debug)]
struct Notification<A> {
    /// The id of the latest notification of this observation.
    id: u64,
    peer: A,
    token: Tok,
    /// CON in flight (else a remembered NON).
    con: bool,
    /// The Message ID of the last transmission.
    mid: u16,
    /// The Message ID of the transmission before, still recognized.
    prev_mid: Option<u16>,
    backoff: Backoff,
    deadline: Instant,
    /// CON: the datagram to retransmit, or (when `fresh`) a newer
    /// notification not sent yet. NON: empty.
    datagram: Vec<u8>,
    /// `datagram` supersedes the CON in flight (§4.5.2) and goes out with
    /// a new Message ID when that attempt ends.
    fresh: bool,
}

/// A notification waiting for its client's congestion slot (RFC 7641
/// §4.5.1): the newest of its observation.
#[derive(Debug)]
struct Waiting {
    id: u64,
    con: bool,
    /// Encoded with Message ID 0; the MID is set when it goes out.
    datagram: Vec<u8>,
}

/// Per-client congestion state of notifications (RFC 7641 §4.5.1).
#[derive(Debug)]
struct Gate {
    gid: u64,
    /// CON notifications in flight (not acknowledged, rejected or timed
    /// out).
    con: u16,
    /// When the waiting time of each recent NON notification ends.
    non: Vec<Instant>,
    /// Observations with a notification waiting, oldest first.
    queue: VecDeque<Tok>,
    /// When its timer is armed.
    wake: Option<Instant>,
}

impl Gate {
    /// Outstanding notifications at `now` (forgetting elapsed NON times).
    fn outstanding(&mut self, now: Instant) -> usize {
        self.non.retain(|t| *t > now);
        usize::from(self.con) + self.non.len()
    }
}

#[derive(Debug)]
struct Separate<A> {
    handle: u64,
    peer: A,
    mid: u16,
    backoff: Backoff,
    deadline: Instant,
    datagram: Vec<u8>,
}

#[derive(Debug)]
struct Pending<A> {
    peer: A,
    mid: u16,
    token: Tok,
    con: bool,
    multicast: bool,
    /// An empty ACK was sent: the answer is a separate response.
    acked: bool,
    ack_deadline: Option<Instant>,
    /// When the entry is dropped if the application never answers.
    expires: Instant,
}

#[derive(Debug)]
enum DedupState {
    /// Delivered to the application, not answered yet.
    Pending,
    /// The reply to replay for a duplicate (piggybacked response, 4.02),
    /// or nothing (NON). Held in an allocation of exactly its length, so
    /// that `max_dedup_bytes` bounds the real memory.
    Done(Option<Vec<u8>>),
    /// An empty ACK was the reply: regenerated from the MID, nothing held.
    EmptyAck,
}

#[derive(Debug)]
struct DedupEntry {
    expires: Instant,
    seq: u64,
    state: DedupState,
}

/// A sequence of message IDs (RFC 7252 §4.4): sequential from a random
/// start; a block of 4096 MIDs is entered again only once EXCHANGE_LIFETIME
/// has passed since any MID in it was last used, so no MID is reused too
/// early (at the price of at most one block left unused per cycle).
#[derive(Clone, Copy, Debug)]
struct MidSpace {
    next: u16,
    /// Last use of each block of 4096 MIDs.
    blocks: [Option<Instant>; 16],
}

impl MidSpace {
    fn new(start: u16) -> Self {
        Self {
            next: start,
            blocks: [None; 16],
        }
    }

    /// When the next MID may be used, if not now.
    fn blocked_until(&self, now: Instant, lifetime: Duration) -> Option<Instant> {
        if self.next.trailing_zeros() < 12 {
            return None; // inside a block entered before: its check passed
        }
        let last = (*self.blocks.get(usize::from(self.next >> 12))?)?;
        let free = last + lifetime;
        (now < free).then_some(free)
    }

    /// Takes the next MID; the caller checked `blocked_until` first.
    fn take(&mut self, now: Instant) -> u16 {
        let mid = self.next;
        if let Some(slot) = self.blocks.get_mut(usize::from(mid >> 12)) {
            *slot = Some(now);
        }
        self.next = mid.wrapping_add(1);
        mid
    }
}

/// MID spaces shared by the peers that have no [`Peer`] entry (those we
/// only answer: NON and separate responses). A peer always maps to the same
/// space (a keyed hash of its address), so MIDs towards it stay unique
/// within EXCHANGE_LIFETIME without per-peer state that spoofed sources
/// could fill. A new `Peer` entry starts as a copy of its space, which
/// carries that history over.
const SHARED_MID_SPACES: usize = 16;

/// Keyed FNV-1a over an address's `Debug` text (the `Address` trait asks
/// for no `Hash`); the key comes from the seed so that off-path senders
/// cannot aim at one shared MID space.
struct KeyedHasher(u64);

impl core::hash::Hasher for KeyedHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Per-peer state: MID history (RFC 7252 §4.4) and congestion control (§4.7).
#[derive(Debug)]
struct Peer {
    mids: MidSpace,
    last_mid_use: Instant,
    outstanding: u16,
    queue: VecDeque<u64>,
    /// Bytes sent since we last heard from the peer, and since when.
    unanswered: Option<(Instant, u64)>,
    expiry: Option<Instant>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// An unanswered incoming request reaches EXCHANGE_LIFETIME.
    Pending(u64),
    Request(u64),
    Separate(u64),
    AckDelay(u64),
    Delayed(u64),
    Peer(u64),
    Notification(u64),
    /// A client's notification congestion state (RFC 7641 §4.5.1): the
    /// waiting time of a NON notification ends.
    Gate(u64),
}

/// Which table slot a queued event keeps until it is polled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hold {
    Nothing,
    Request,
    Separate,
    Notification,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MidOwner {
    Request(u64),
    Separate(u64),
    Notification(u64),
}

/// Work budget per `handle_timeout` call: due timers beyond it stay due and
/// `poll_timeout` reports them at once.
const TIMER_BUDGET: usize = 1024;
/// Expired dedup entries removed per call.
const EXPIRY_BUDGET: usize = 256;
/// Spare buffers kept for reuse.
const POOL_MAX: usize = POOL_BUFFERS;
/// Freed deduplication replies kept for reuse (their bytes still count
/// against `max_dedup_bytes`).
const REPLY_POOL_MAX: usize = 16;

/// The sans-IO CoAP endpoint; see the [module docs](self) for the call
/// contract.
///
/// `A` is the peer address type. Memory is bounded by [`Config`]; see
/// [`Config::memory_bound`].
pub struct Endpoint<A: Address> {
    config: Config,
    rng: Rng,
    now: Instant,
    next_id: u64,
    stats: Stats,

    requests: BTreeMap<u64, Outgoing<A>>,
    /// The requests that are observations (RFC 7641), kept apart so that
    /// other requests do not pay for them.
    observations: BTreeMap<u64, Observation>,
    by_token: BTreeMap<(A, Tok), u64>,
    mcast_by_token: BTreeMap<Tok, u64>,
    by_mid: BTreeMap<(A, u16), MidOwner>,
    separate: BTreeMap<u64, Separate<A>>,
    pending: BTreeMap<u64, Pending<A>>,
    delayed: BTreeMap<u64, (A, Vec<u8>)>,
    notifications: BTreeMap<u64, Notification<A>>,
    notification_of: BTreeMap<(A, Tok), u64>,
    /// Remembered NON notifications by expiry, oldest first (evicted first).
    remembered: BTreeSet<(Instant, u64)>,
    /// Notifications waiting for their client's slot (RFC 7641 §4.5.1).
    waiting: BTreeMap<(A, Tok), Waiting>,
    /// Per-client notification congestion state, and its timer ids.
    gates: BTreeMap<A, Gate>,
    gate_ids: BTreeMap<u64, A>,

    dedup: BTreeMap<(A, u16), DedupEntry>,
    /// Insertion order of the dedup entries, one queue per lifetime
    /// (`[NON, CON]`): entries of one lifetime expire in insertion order,
    /// so each queue's front is its next expiry, exactly.
    dedup_order: [VecDeque<(A, u16, u64)>; 2],
    dedup_bytes: usize,
    /// Freed cached replies (exactly sized) kept for the next reply of about
    /// the same size, so that caching a reply does not allocate in steady
    /// state; `reply_pool_bytes` counts against `max_dedup_bytes` together
    /// with `dedup_bytes`. Emptied whenever the cache is.
    reply_pool: Vec<Vec<u8>>,
    reply_pool_bytes: usize,
    dedup_seq: u64,

    peers: BTreeMap<A, Peer>,
    shared_mids: [MidSpace; SHARED_MID_SPACES],
    mid_key: u64,
    peer_ids: BTreeMap<u64, A>,
    peer_id_of: BTreeMap<A, u64>,

    timers: BTreeSet<(Instant, Timer)>,
    transmits: VecDeque<(A, Vec<u8>)>,
    events: VecDeque<(Event<A>, Hold)>,
    /// Final request events (and separate-response outcomes) still queued:
    /// they keep their slot in `max_requests` (`max_separate`) until
    /// polled, so that the event queue stays bounded even when the
    /// application issues commands without polling events.
    held_requests: usize,
    held_separate: usize,
    held_notifications: usize,
    pool: Vec<Vec<u8>>,
}

impl<A: Address> fmt::Debug for Endpoint<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("now", &self.now)
            .field("requests", &self.requests.len())
            .field("pending", &self.pending.len())
            .field("separate", &self.separate.len())
            .field("notifications", &self.notifications.len())
            .field("dedup", &self.dedup.len())
            .field("peers", &self.peers.len())
            .field("timers", &self.timers.len())
            .field("transmits", &self.transmits.len())
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

/// How many entries each table holds right now; see [`Endpoint::tables`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableSizes {
    /// Open client requests (queued or in flight).
    pub requests: usize,
    /// Incoming requests not answered yet.
    pub pending: usize,
    /// Separate responses awaiting their ACK, plus delayed multicast answers.
    pub separate: usize,
    /// Notifications in flight, remembered or waiting for their client's
    /// congestion slot (RFC 7641, server side).
    pub notifications: usize,
    /// Clients with notification congestion state (RFC 7641 §4.5.1).
    pub notification_clients: usize,
    /// Deduplication entries.
    pub dedup: usize,
    /// Bytes of responses cached for deduplication.
    pub dedup_bytes: usize,
    /// Peers with state.
    pub peers: usize,
    /// Armed timers.
    pub timers: usize,
    /// Queued datagrams.
    pub transmits: usize,
    /// Queued events.
    pub events: usize,
}

impl TableSizes {
    /// True when nothing at all is held: no exchange, cache entry, peer,
    /// timer, datagram or event.
    ///
    /// ```
    /// # use coap_proto::endpoint::TableSizes;
    /// assert!(TableSizes::default().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl<A: Address> Endpoint<A> {
    /// A new endpoint. `seed` drives every random choice (MIDs, tokens,
    /// retransmission jitter, Leisure): the same seed and inputs give the
    /// same outputs, byte for byte. Drivers seed from the OS.
    ///
    /// ```
    /// use coap_proto::endpoint::{Config, Endpoint};
    /// let ep: Endpoint<std::net::SocketAddr> = Endpoint::new(Config::default(), 0x5eed);
    /// assert!(ep.tables().is_empty());
    /// ```
    #[must_use]
    pub fn new(config: Config, seed: u64) -> Self {
        let mut config = config;
        config.token_len = config.token_len.clamp(1, MAX_TOKEN_LEN as u8);
        config.max_message_size = config.max_message_size.max(16);
        // A side stream, so that the main one (tokens, timeouts) is the same
        // whatever the shared MID spaces draw.
        let mut side = Rng::new(seed ^ 0x6d69_6473_7061_6365);
        let mid_key = side.next_u64();
        let shared_mids =
            core::array::from_fn(|_| MidSpace::new((side.next_u64() & 0xffff) as u16));
        Self {
            config,
            rng: Rng::new(seed),
            now: Instant::ZERO,
            next_id: 1,
            stats: Stats::default(),
            requests: BTreeMap::new(),
            observations: BTreeMap::new(),
            by_token: BTreeMap::new(),
            mcast_by_token: BTreeMap::new(),
            by_mid: BTreeMap::new(),
            separate: BTreeMap::new(),
            pending: BTreeMap::new(),
            delayed: BTreeMap::new(),
            notifications: BTreeMap::new(),
            notification_of: BTreeMap::new(),
            remembered: BTreeSet::new(),
            waiting: BTreeMap::new(),
            gates: BTreeMap::new(),
            gate_ids: BTreeMap::new(),
            dedup: BTreeMap::new(),
            dedup_order: [VecDeque::new(), VecDeque::new()],
            dedup_bytes: 0,
            reply_pool: Vec::new(),
            reply_pool_bytes: 0,
            dedup_seq: 0,
            peers: BTreeMap::new(),
            shared_mids,
            mid_key,
            peer_ids: BTreeMap::new(),
            peer_id_of: BTreeMap::new(),
            timers: BTreeSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            held_requests: 0,
            held_separate: 0,
            held_notifications: 0,
            pool: Vec::new(),
        }
    }

    /// The configuration.
    ///
    /// ```
    /// # use coap_proto::endpoint::{Config, Endpoint};
    /// let ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// assert_eq!(ep.config().max_message_size, 1152);
    /// ```
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The counters.
    ///
    /// ```
    /// # use coap_proto::endpoint::{Config, Endpoint};
    /// let ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// assert_eq!(ep.stats().datagrams_in, 0);
    /// ```
    #[must_use]
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The current size of every table, for tests and monitoring.
    ///
    /// ```
    /// # use coap_proto::endpoint::{Config, Endpoint};
    /// # use coap_proto::Instant;
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// ep.ping(Instant::ZERO, 2)?;
    /// assert_eq!(ep.tables().requests, 1);
    /// # Ok::<(), coap_proto::endpoint::Error>(())
    /// ```
    #[must_use]
    pub fn tables(&self) -> TableSizes {
        TableSizes {
            requests: self.requests.len(),
            pending: self.pending.len(),
            separate: self.separate.len() + self.delayed.len(),
            notifications: self.notifications.len() + self.waiting.len(),
            notification_clients: self.gates.len(),
            dedup: self.dedup.len(),
            dedup_bytes: self.dedup_bytes,
            peers: self.peers.len(),
            timers: self.timers.len(),
            transmits: self.transmits.len(),
            events: self.events.len(),
        }
    }

    /// An estimate of the heap bytes held now, from the per-entry costs in
    /// [`Config`] and the capacities of the retained buffers. Never above
    /// [`Config::memory_bound`]. Walks the tables: O(entries), for
    /// monitoring and tests.
    ///
    /// ```
    /// # use coap_proto::endpoint::{Config, Endpoint};
    /// let ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// assert_eq!(ep.memory_usage(), 0);
    /// ```
    #[must_use]
    pub fn memory_usage(&self) -> usize {
        let t = self.tables();
        let event_buffer = |e: &(Event<A>, Hold)| match &e.0 {
            Event::Request(r) => r.message.capacity(),
            Event::Response(r) | Event::Notification(r) => r.message.capacity(),
            _ => 0,
        };
        let retained: usize = self
            .requests
            .values()
            .map(|r| r.datagram.capacity())
            .sum::<usize>()
            + self
                .separate
                .values()
                .map(|s| s.datagram.capacity())
                .sum::<usize>()
            + self.delayed.values().map(|d| d.1.capacity()).sum::<usize>()
            + self
                .notifications
                .values()
                .map(|n| n.datagram.capacity())
                .sum::<usize>()
            + self
                .waiting
                .values()
                .map(|w| w.datagram.capacity())
                .sum::<usize>()
            + self.transmits.iter().map(|t| t.1.capacity()).sum::<usize>()
            + self.events.iter().map(event_buffer).sum::<usize>()
            + self.pool.iter().map(Vec::capacity).sum::<usize>();
        (t.requests + t.separate) * EXCHANGE_BYTES
            + t.pending * PENDING_BYTES
            + t.dedup * DEDUP_BYTES
            + t.dedup_bytes
            + self.reply_pool_bytes
            + t.peers * PEER_BYTES
            + t.notifications * NOTIFICATION_BYTES
            + t.notification_clients * GATE_BYTES
            + (t.transmits + t.events) * QUEUED_BYTES
            + retained
    }

    // ----- time -------------------------------------------------------------

    fn advance(&mut self, now: Instant) -> Instant {
        if now > self.now {
            self.now = now;
        }
        self.now
    }

    fn arm(&mut self, at: Instant, timer: Timer) {
        self.timers.insert((at, timer));
    }

    fn disarm(&mut self, at: Option<Instant>, timer: Timer) {
        if let Some(at) = at {
            self.timers.remove(&(at, timer));
        }
    }

    fn initial_timeout(&mut self) -> Duration {
        let p = self.config.transmission;
        let lo = p.ack_timeout.as_micros();
        let hi = p.max_initial_timeout().as_micros().max(lo);
        let span = u64::try_from(hi - lo).unwrap_or(u64::MAX);
        let lo = u64::try_from(lo).unwrap_or(u64::MAX);
        Duration::from_micros(lo.saturating_add(self.rng.below_inclusive(span)))
    }

    // ----- buffers ----------------------------------------------------------

    fn buffer(&mut self) -> Vec<u8> {
        let mut b = self
            .pool
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.config.max_message_size));
        b.clear();
        b
    }

    /// Returns a buffer (from [`OwnedMessage::into_bytes`]) to the pool so
    /// that the steady state does not allocate.
    ///
    /// ```
    /// # use coap_proto::endpoint::{Config, Endpoint};
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// ep.recycle(Vec::with_capacity(1152));
    /// ```
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        // Only buffers of exactly max_message_size: every buffer the
        // endpoint holds then has that capacity (none ever grows past it),
        // which is what Config::memory_bound counts.
        if self.pool.len() < POOL_MAX && buf.capacity() == self.config.max_message_size {
            buf.clear();
            self.pool.push(buf);
        }
    }

    fn encode_with(
        &mut self,
        ty: MessageType,
        code: Code,
        mid: u16,
        token: &[u8],
        build: impl FnOnce(&mut Encoder<'_>) -> Result<(), EncodeError>,
    ) -> Result<Vec<u8>, EncodeError> {
        let mut buf = self.buffer();
        buf.resize(self.config.max_message_size, 0);
        let result = (|| {
            let mut enc = Encoder::new(&mut buf, ty, code, mid, token)?;
            build(&mut enc)?;
            Ok(enc.finish())
        })();
        match result {
            Ok(n) => {
                buf.truncate(n);
                Ok(buf)
            }
            Err(e) => {
                self.recycle(buf);
                Err(e)
            }
        }
    }

    fn empty_message(&mut self, ty: MessageType, mid: u16) -> Vec<u8> {
        let mut b = self.buffer();
        let [m0, m1] = mid.to_be_bytes();
        b.extend_from_slice(&[0x40 | (ty.bits() << 4), 0, m0, m1]);
        b
    }

    fn send(&mut self, to: A, datagram: Vec<u8>) {
        if self.transmits.len() >= self.config.max_transmit_queue {
            self.stats.transmit_drops += 1;
            self.recycle(datagram);
            return;
        }
        self.transmits.push_back((to, datagram));
    }

    fn send_copy(&mut self, to: A, datagram: &[u8]) {
        let mut b = self.buffer();
        b.extend_from_slice(datagram);
        self.send(to, b);
    }

    fn new_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    // ----- outputs ----------------------------------------------------------

    /// The next datagram to send, written into `buf`. On a too-small buffer
    /// the datagram stays queued and the exact size is reported.
    ///
    /// ```
    /// # use coap_proto::endpoint::{Config, Endpoint};
    /// # use coap_proto::{Instant, Message};
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// ep.ping(Instant::ZERO, 7)?;
    /// let mut buf = [0u8; 1152];
    /// let t = ep.poll_transmit(&mut buf)?.unwrap();
    /// assert_eq!(t.to, 7);
    /// assert!(Message::parse(&buf[..t.len])?.code().is_empty());
    /// assert!(ep.poll_transmit(&mut buf)?.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Result<Option<Transmit<A>>, BufferTooSmall> {
        let Some((to, datagram)) = self.transmits.front() else {
            return Ok(None);
        };
        let (to, len) = (*to, datagram.len());
        let Some(dst) = buf.get_mut(..len) else {
            return Err(BufferTooSmall { required: len });
        };
        dst.copy_from_slice(datagram);
        if let Some((_, d)) = self.transmits.pop_front() {
            self.recycle(d);
        }
        self.stats.datagrams_out += 1;
        self.stats.bytes_out += len as u64;
        Ok(Some(Transmit { to, len }))
    }

    /// The next event, if any.
    ///
    /// ```
    /// # use coap_proto::endpoint::{Config, Endpoint};
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// assert!(ep.poll_event().is_none());
    /// ```
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event<A>> {
        let (event, hold) = self.events.pop_front()?;
        match hold {
            Hold::Nothing => {}
            Hold::Request => self.held_requests = self.held_requests.saturating_sub(1),
            Hold::Separate => self.held_separate = self.held_separate.saturating_sub(1),
            Hold::Notification => {
                self.held_notifications = self.held_notifications.saturating_sub(1);
            }
        }
        Some(event)
    }

    fn push_event(&mut self, event: Event<A>, hold: Hold) {
        match hold {
            Hold::Nothing => {}
            Hold::Request => self.held_requests += 1,
            Hold::Separate => self.held_separate += 1,
            Hold::Notification => self.held_notifications += 1,
        }
        self.events.push_back((event, hold));
    }

    /// When `handle_timeout` must be called next, if anything is scheduled.
    /// A value at or before the last `now` means "call it now".
    ///
    /// ```
    /// # use coap_proto::endpoint::{Config, Endpoint};
    /// # use coap_proto::Instant;
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// assert_eq!(ep.poll_timeout(), None);
    /// ep.ping(Instant::ZERO, 2)?;
    /// let t = ep.poll_timeout().unwrap();
    /// assert!(t >= Instant::from_secs(2) && t <= Instant::from_secs(3)); // ACK_TIMEOUT jitter
    /// # Ok::<(), coap_proto::endpoint::Error>(())
    /// ```
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timer = self.timers.first().map(|(t, _)| *t);
        let dedup = self
            .dedup_order
            .iter()
            .filter_map(|q| q.front())
            .filter_map(|(a, m, _)| self.dedup.get(&(*a, *m)))
            .map(|e| e.expires)
            .min();
        match (timer, dedup) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- timers -----------------------------------------------------------

    /// Runs every timer due at `now`: retransmissions, timeouts, delayed
    /// empty ACKs, multicast Leisure, and cache expiry. Calling it early or
    /// twice is harmless.
    ///
    /// ```
    /// # use coap_proto::endpoint::{Config, Endpoint, Event};
    /// # use coap_proto::Instant;
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// let id = ep.ping(Instant::ZERO, 2)?;
    /// let mut buf = [0u8; 64];
    /// let mut sent = 0;
    /// while let Some(at) = ep.poll_timeout() {
    ///     while ep.poll_transmit(&mut buf)?.is_some() { sent += 1; }
    ///     ep.handle_timeout(at);
    ///     if let Some(Event::TimedOut(t)) = ep.poll_event() { assert_eq!(t, id); }
    /// }
    /// assert_eq!(sent, 5); // 1 + MAX_RETRANSMIT
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.advance(now);
        self.expire_dedup(now, EXPIRY_BUDGET);
        for _ in 0..TIMER_BUDGET {
            let Some(&(at, timer)) = self.timers.first() else {
                break;
            };
            if at > now {
                break;
            }
            self.timers.remove(&(at, timer));
            match timer {
                Timer::Request(id) => self.request_timer(now, id),
                Timer::Separate(id) => self.separate_timer(now, id),
                Timer::AckDelay(h) => self.ack_delay_timer(h),
                Timer::Delayed(id) => {
                    if let Some((to, d)) = self.delayed.remove(&id) {
                        self.send(to, d);
                    }
                }
                Timer::Peer(pid) => self.peer_timer(now, pid),
                Timer::Notification(key) => self.notification_timer(now, key),
                Timer::Gate(gid) => {
                    if let Some(&peer) = self.gate_ids.get(&gid) {
                        if let Some(g) = self.gates.get_mut(&peer) {
                            g.wake = None;
                        }
                        self.release_gate(now, peer);
                    }
                }
                Timer::Pending(h) => {
                    // RFC 7252 §4.8.2: after EXCHANGE_LIFETIME no client
                    // waits for this answer any more; free the slot.
                    if self.pending.contains_key(&h) {
                        self.drop_pending(h);
                        self.stats.pending_expired += 1;
                    }
                }
            }
        }
    }

    fn request_timer(&mut self, now: Instant, id: u64) {
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        req.deadline = None;
        match req.state {
            ReqState::AwaitAck => {
                let max = self.config.transmission.max_retransmit;
                if req.backoff.attempt < max {
                    req.backoff.attempt += 1;
                    req.backoff.timeout = req.backoff.timeout.saturating_mul(2);
                    let at = now + req.backoff.timeout;
                    req.deadline = Some(at);
                    let peer = req.peer;
                    self.arm(at, Timer::Request(id));
                    let datagram = self.copy_request_datagram(id);
                    self.stats.retransmissions += 1;
                    self.note_sent(peer, datagram.len());
                    self.send(peer, datagram);
                } else {
                    self.stats.timeouts += 1;
                    self.finish_request(now, id, Some(Event::TimedOut(RequestId(id))));
                }
            }
            ReqState::AwaitResponse => {
                self.stats.timeouts += 1;
                self.finish_request(now, id, Some(Event::TimedOut(RequestId(id))));
            }
            ReqState::Collecting => {
                self.finish_request(now, id, Some(Event::MulticastDone(RequestId(id))));
            }
            // First in line, held back by PROBING_RATE or the MID space
            // (§4.7, §4.4) until now.
            ReqState::Queued => {
                let peer = req.peer;
                self.pump_queue(now, peer);
            }
            // RFC 7641 §3.3.1: no notification within Max-Age (plus the
            // refresh delay): register again, same token, new MID.
            ReqState::Observing => self.reregister(now, id),
        }
    }

    fn separate_timer(&mut self, now: Instant, id: u64) {
        let max = self.config.transmission.max_retransmit;
        let Some(s) = self.separate.get_mut(&id) else {
            return;
        };
        if s.backoff.attempt < max {
            s.backoff.attempt += 1;
            s.backoff.timeout = s.backoff.timeout.saturating_mul(2);
            s.deadline = now + s.backoff.timeout;
            let (peer, at) = (s.peer, s.deadline);
            self.arm(at, Timer::Separate(id));
            // A pooled copy, not a clone: no allocation in steady state.
            let mut datagram = self.buffer();
            if let Some(s) = self.separate.get(&id) {
                datagram.extend_from_slice(&s.datagram);
            }
            self.stats.retransmissions += 1;
            self.send(peer, datagram);
        } else if let Some(s) = self.separate.remove(&id) {
            self.stats.timeouts += 1;
            self.by_mid.remove(&(s.peer, s.mid));
            self.recycle(s.datagram);
            self.push_event(
                Event::ResponseFailed(ResponseHandle(s.handle)),
                Hold::Separate,
            );
        }
    }

    fn ack_delay_timer(&mut self, handle: u64) {
        let Some(p) = self.pending.get_mut(&handle) else {
            return;
        };
        p.ack_deadline = None;
        if p.con && !p.acked {
            p.acked = true;
            let (peer, mid) = (p.peer, p.mid);
            self.send_empty_ack(peer, mid);
        }
    }

    /// Sends an empty ACK for a pending request and records it as the reply
    /// to replay for duplicates.
    fn send_empty_ack(&mut self, peer: A, mid: u16) {
        let ack = self.empty_message(MessageType::Ack, mid);
        self.dedup_done(peer, mid, Some(&ack));
        self.send(peer, ack);
    }

    // ----- peers, MIDs, congestion control ---------------------------------

    fn peer_entry(&mut self, now: Instant, peer: A) -> Result<(), Error> {
        if self.peers.contains_key(&peer) {
            return Ok(());
        }
        if self.peers.len() >= self.config.max_peers {
            return Err(Error::NoCapacity);
        }
        // Continue the shared space this peer used so far (§4.4).
        let mids = self
            .shared_mids
            .get(self.space_index(&peer))
            .copied()
            .unwrap_or(MidSpace::new(0));
        let pid = self.new_id();
        self.peers.insert(
            peer,
            Peer {
                mids,
                last_mid_use: now,
                outstanding: 0,
                queue: VecDeque::new(),
                unanswered: None,
                expiry: None,
            },
        );
        self.peer_ids.insert(pid, peer);
        self.peer_id_of.insert(peer, pid);
        // Armed at once, so that a peer entry created by a command that then
        // fails (encoding error, ...) does not outlive EXCHANGE_LIFETIME.
        self.schedule_peer_expiry(peer);
        Ok(())
    }

    /// When the next MID towards an existing peer becomes usable, if not now
    /// (RFC 7252 §4.4): entering a block of 4096 MIDs again waits until
    /// EXCHANGE_LIFETIME has passed since any MID in it was last used.
    fn mid_blocked_until(&self, now: Instant, peer: A) -> Option<Instant> {
        let lifetime = self.mid_lifetime();
        self.peers.get(&peer)?.mids.blocked_until(now, lifetime)
    }

    /// How long a used MID stays taken (RFC 7252 §4.4): EXCHANGE_LIFETIME,
    /// or MAX_TRANSMIT_WAIT when the parameters make that longer (a small
    /// MAX_LATENCY with a large ACK_TIMEOUT): a CON still waiting for its
    /// ACK must never share its MID with a new message (found by the
    /// `endpoint_pair` fuzz target).
    fn mid_lifetime(&self) -> Duration {
        let p = self.config.transmission;
        p.exchange_lifetime().max(p.max_transmit_wait())
    }

    /// Which shared MID space a peer without an entry uses.
    fn space_index(&self, peer: &A) -> usize {
        let mut h = KeyedHasher(self.mid_key);
        core::hash::Hash::hash(peer, &mut h);
        let mut z = core::hash::Hasher::finish(&h);
        z ^= z >> 33;
        z = z.wrapping_mul(0xff51_afd7_ed55_8ccd);
        z ^= z >> 33;
        (z % SHARED_MID_SPACES as u64) as usize
    }

    /// Allocates the next MID towards `peer` (RFC 7252 §4.4: sequential from
    /// a random start, never reused within EXCHANGE_LIFETIME): from the
    /// peer's own space (created while the peer table has room), else from
    /// its shared space, so a full peer table never stops answers.
    fn alloc_mid(&mut self, now: Instant, peer: A) -> Result<u16, Error> {
        let lifetime = self.mid_lifetime();
        // A peer gets its own MID space (65536 MIDs per EXCHANGE_LIFETIME)
        // while the peer table has room; only when it is full (a flood of
        // spoofed sources) do answers fall back to the shared spaces.
        let _ = self.peer_entry(now, peer);
        let space = if self.peers.contains_key(&peer) {
            match self.peers.get_mut(&peer) {
                Some(p) => {
                    p.last_mid_use = now;
                    &mut p.mids
                }
                None => return Err(Error::NoCapacity),
            }
        } else {
            let index = self.space_index(&peer);
            self.shared_mids.get_mut(index).ok_or(Error::NoCapacity)?
        };
        // Never a MID still matched to a live exchange with this peer: when
        // `handle_timeout` ran late, retransmissions outlive the lifetime
        // (found by the endpoint fuzz targets). Bounded: each live exchange
        // holds one MID.
        for _ in 0..=self.by_mid.len() {
            if space.blocked_until(now, lifetime).is_some() {
                self.stats.mid_exhausted += 1;
                return Err(Error::MessageIdsExhausted);
            }
            let mid = space.take(now);
            if !self.by_mid.contains_key(&(peer, mid)) {
                return Ok(mid);
            }
        }
        self.stats.mid_exhausted += 1;
        Err(Error::MessageIdsExhausted)
    }

    fn note_sent(&mut self, peer: A, len: usize) {
        if let Some(p) = self.peers.get_mut(&peer) {
            let now = self.now;
            let u = p.unanswered.get_or_insert((now, 0));
            u.1 = u.1.saturating_add(len as u64);
        }
    }

    fn note_heard(&mut self, now: Instant, peer: A) {
        if let Some(p) = self.peers.get_mut(&peer)
            && p.unanswered.take().is_some()
            && !p.queue.is_empty()
        {
            // §4.7: PROBING_RATE only applies to a peer that does not answer.
            self.pump_queue(now, peer);
        }
    }

    /// RFC 7252 §4.7: towards a peer that does not answer, the average rate
    /// stays below PROBING_RATE. The first message is always allowed.
    fn probing_allows(&self, now: Instant, peer: A, len: usize) -> bool {
        let Some(p) = self.peers.get(&peer) else {
            return true;
        };
        let Some((since, bytes)) = p.unanswered else {
            return true;
        };
        let rate = u128::from(self.config.transmission.probing_rate.max(1));
        let allowed = (now - since).as_micros() * rate / 1_000_000;
        u128::from(bytes) + len as u128 <= allowed.max(1) || u128::from(bytes) == 0
    }

    fn probing_wait(&self, now: Instant, peer: A, len: usize) -> Instant {
        let Some((since, bytes)) = self.peers.get(&peer).and_then(|p| p.unanswered) else {
            return now;
        };
        let rate = u64::from(self.config.transmission.probing_rate.max(1));
        let need = bytes.saturating_add(len as u64);
        // Rounded up: at the returned instant `probing_allows` holds, so the
        // wake-up is never early (an early one would re-arm at the same
        // instant and spin).
        since + Duration::from_micros(need.saturating_mul(1_000_000).div_ceil(rate))
    }

    fn schedule_peer_expiry(&mut self, peer: A) {
        let lifetime = self.mid_lifetime();
        let Some(&pid) = self.peer_id_of.get(&peer) else {
            return;
        };
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let at = p.last_mid_use + lifetime;
        let old = p.expiry.replace(at);
        self.disarm(old, Timer::Peer(pid));
        self.arm(at, Timer::Peer(pid));
    }

    fn peer_timer(&mut self, now: Instant, pid: u64) {
        let Some(&peer) = self.peer_ids.get(&pid) else {
            return;
        };
        let lifetime = self.mid_lifetime();
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.expiry = None;
        let idle = p.outstanding == 0 && p.queue.is_empty();
        let live_request = self.requests.values().any(|r| r.peer == peer);
        if idle && !live_request && now >= p.last_mid_use + lifetime {
            self.peers.remove(&peer);
            self.peer_ids.remove(&pid);
            self.peer_id_of.remove(&peer);
        } else if idle && !live_request {
            self.schedule_peer_expiry(peer);
        }
    }

    // ----- client: requests ------------------------------------------------

    /// Sends a request built from `msg` (its code, options and payload; its
    /// type chooses CON or NON; its MID and token are ignored and assigned
    /// by the endpoint). Returns the id its events will carry.
    ///
    /// The request may be queued first (NSTART, PROBING_RATE, RFC 7252 §4.7).
    ///
    /// ```
    /// # use coap_proto::endpoint::{Config, Endpoint};
    /// # use coap_proto::{Code, Instant, Message, MessageBuf, MessageType, OptionNumber};
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// let mut get = MessageBuf::new(MessageType::Con, Code::GET);
    /// get.add_option(OptionNumber::URI_PATH, "temp");
    /// ep.request(Instant::ZERO, 2, &get)?;
    /// let mut buf = [0u8; 64];
    /// let t = ep.poll_transmit(&mut buf)?.unwrap();
    /// let sent = Message::parse(&buf[..t.len])?;
    /// assert_eq!(sent.token().len(), 4); // RFC 7252 §5.3.1: random, 4 bytes by default
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn request(&mut self, now: Instant, peer: A, msg: &MessageBuf) -> Result<RequestId, Error> {
        self.request_with(now, peer, msg.ty() == MessageType::Con, msg.code(), |enc| {
            for o in msg.options() {
                enc.option(o.number, o.value)?;
            }
            enc.payload(msg.payload())?;
            Ok(())
        })
    }

    /// Sends a request, letting `build` write its options and payload
    /// straight into the retained datagram (no intermediate message).
    ///
    /// ```
    /// # use coap_proto::endpoint::{Config, Endpoint};
    /// # use coap_proto::{Code, Instant, OptionNumber};
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// ep.request_with(Instant::ZERO, 2, true, Code::GET, |enc| {
    ///     enc.uri_path("/sensors/temp")?;
    ///     enc.option_uint(OptionNumber::ACCEPT, 50)?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), coap_proto::endpoint::Error>(())
    /// ```
    pub fn request_with(
        &mut self,
        now: Instant,
        peer: A,
        confirmable: bool,
        method: Code,
        build: impl FnOnce(&mut Encoder<'_>) -> Result<(), EncodeError>,
    ) -> Result<RequestId, Error> {
        self.open_request(now, peer, confirmable, method, None, build)
    }

    fn open_request(
        &mut self,
        now: Instant,
        peer: A,
        confirmable: bool,
        method: Code,
        observe: Option<Observation>,
        build: impl FnOnce(&mut Encoder<'_>) -> Result<(), EncodeError>,
    ) -> Result<RequestId, Error> {
        let now = self.advance(now);
        if !method.is_request() {
            return Err(Error::InvalidCode);
        }
        let multicast = peer.is_multicast();
        if multicast && observe.is_some() {
            return Err(Error::Unsupported);
        }
        if multicast && confirmable {
            return Err(Error::ConfirmableMulticast);
        }
        if self.requests.len() + self.held_requests >= self.config.max_requests {
            return Err(Error::NoCapacity);
        }
        if !multicast {
            self.peer_entry(now, peer)?;
            self.check_mid_space(now, peer)?;
        }
        let token = self.fresh_token(peer, multicast).ok_or(Error::NoCapacity)?;
        let ty = if confirmable {
            MessageType::Con
        } else {
            MessageType::Non
        };
        let datagram = self.encode_with(ty, method, 0, token.as_slice(), build)?;
        let id = self.new_id();
        if multicast {
            self.mcast_by_token.insert(token, id);
        } else {
            self.by_token.insert((peer, token), id);
        }
        self.requests.insert(
            id,
            Outgoing {
                peer,
                token,
                mid: 0,
                con: confirmable,
                ping: false,
                multicast,
                state: ReqState::Queued,
                backoff: Backoff {
                    attempt: 0,
                    timeout: Duration::ZERO,
                },
                deadline: None,
                outstanding: false,
                datagram,
            },
        );
        if let Some(o) = observe {
            self.observations.insert(id, o);
        }
        self.try_start(now, id);
        Ok(RequestId(id))
    }

    /// Sends a CoAP ping: an empty CON, which the peer answers with a Reset
    /// (RFC 7252 §4.3). Completes with [`Event::Pong`] or
    /// [`Event::TimedOut`].
    ///
    /// ```
    /// # use coap_proto::endpoint::{Config, Endpoint, Event};
    /// # use coap_proto::Instant;
    /// let mut a: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// let mut b: Endpoint<u8> = Endpoint::new(Config::default(), 2);
    /// let id = a.ping(Instant::ZERO, 2)?;
    /// let mut buf = [0u8; 64];
    /// let t = a.poll_transmit(&mut buf)?.unwrap();
    /// b.handle_datagram(Instant::ZERO, 1, &buf[..t.len]);
    /// let t = b.poll_transmit(&mut buf)?.unwrap(); // the RST
    /// a.handle_datagram(Instant::ZERO, 2, &buf[..t.len]);
    /// assert!(matches!(a.poll_event(), Some(Event::Pong(p)) if p == id));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ping(&mut self, now: Instant, peer: A) -> Result<RequestId, Error> {
        let now = self.advance(now);
        if peer.is_multicast() {
            return Err(Error::ConfirmableMulticast);
        }
        if self.requests.len() + self.held_requests >= self.config.max_requests {
            return Err(Error::NoCapacity);
        }
        self.peer_entry(now, peer)?;
        self.check_mid_space(now, peer)?;
        let datagram = self.empty_message(MessageType::Con, 0);
        let id = self.new_id();
        self.requests.insert(
            id,
            Outgoing {
                peer,
                token: Tok::default(),
                mid: 0,
                con: true,
                ping: true,
                multicast: false,
                state: ReqState::Queued,
                backoff: Backoff {
                    attempt: 0,
                    timeout: Duration::ZERO,
                },
                deadline: None,
                outstanding: false,
                datagram,
            },
        );
        self.try_start(now, id);
        Ok(RequestId(id))
    }

    /// RFC 7252 §4.4: refuses a request that would go out at once while no
    /// MID towards `peer` may be used, rather than reusing one too early. A
    /// request queued behind others waits for the MID space instead.
    fn check_mid_space(&mut self, now: Instant, peer: A) -> Result<(), Error> {
        let nstart = self.config.transmission.nstart.max(1);
        let first = self
            .peers
            .get(&peer)
            .is_some_and(|p| p.queue.is_empty() && p.outstanding < nstart);
        if first && self.mid_blocked_until(now, peer).is_some() {
            self.stats.mid_exhausted += 1;
            return Err(Error::MessageIdsExhausted);
        }
        Ok(())
    }

    fn fresh_token(&mut self, peer: A, multicast: bool) -> Option<Tok> {
        let len = usize::from(self.config.token_len);
        for _ in 0..16 {
            let mut bytes = [0u8; MAX_TOKEN_LEN];
            self.rng.fill(bytes.get_mut(..len)?);
            let tok = Tok::new(bytes.get(..len)?);
            let taken = if multicast {
                self.mcast_by_token.contains_key(&tok)
            } else {
                self.by_token.contains_key(&(peer, tok))
            };
            if !taken {
                return Some(tok);
            }
        }
        None
    }

    /// Puts a new request in line on its peer (a multicast one goes out at
    /// once), then starts whatever NSTART and PROBING_RATE allow.
    fn try_start(&mut self, now: Instant, id: u64) {
        let Some(req) = self.requests.get(&id) else {
            return;
        };
        let (peer, multicast) = (req.peer, req.multicast);
        if multicast {
            self.start(now, id);
            return;
        }
        if let Some(p) = self.peers.get_mut(&peer)
            && !p.queue.contains(&id)
        {
            p.queue.push_back(id);
        }
        self.pump_queue(now, peer);
    }

    /// RFC 7252 §4.7: starts the requests queued on `peer`, oldest first,
    /// while fewer than NSTART interactions are outstanding and the
    /// PROBING_RATE budget allows. When only the budget (or, §4.4, the MID
    /// space) holds the first in line back, it waits on a timer for the
    /// instant it is allowed. Bounded: each round starts or drops one
    /// request, or stops.
    fn pump_queue(&mut self, now: Instant, peer: A) {
        let nstart = self.config.transmission.nstart.max(1);
        loop {
            let Some(p) = self.peers.get(&peer) else {
                return;
            };
            if p.outstanding >= nstart {
                return;
            }
            let Some(&id) = p.queue.front() else {
                return;
            };
            let Some(len) = self.requests.get(&id).map(|r| r.datagram.len()) else {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.queue.pop_front();
                }
                continue;
            };
            let wake = if self.probing_allows(now, peer, len) {
                self.mid_blocked_until(now, peer)
            } else {
                Some(self.probing_wait(now, peer, len))
            };
            if let Some(at) = wake {
                if let Some(r) = self.requests.get_mut(&id) {
                    let old = r.deadline.replace(at);
                    if old != Some(at) {
                        self.disarm(old, Timer::Request(id));
                        self.arm(at, Timer::Request(id));
                    }
                }
                return;
            }
            // Takes it off the queue (or fails it), so the loop progresses.
            self.start(now, id);
            if let Some(p) = self.peers.get_mut(&peer)
                && p.queue.front() == Some(&id)
            {
                p.queue.pop_front();
            }
        }
    }

    /// A copy of a request's retained datagram in a pooled buffer (a
    /// `clone` would allocate on every transmission).
    fn copy_request_datagram(&mut self, id: u64) -> Vec<u8> {
        let mut b = self.buffer();
        if let Some(r) = self.requests.get(&id) {
            b.extend_from_slice(&r.datagram);
        }
        b
    }

    fn start(&mut self, now: Instant, id: u64) {
        let mid = match self.requests.get(&id) {
            Some(r) if r.multicast => (self.rng.next_u64() & 0xffff) as u16,
            Some(r) => {
                let peer = r.peer;
                let Ok(m) = self.alloc_mid(now, peer) else {
                    // Cannot send now: fail the request rather than stall.
                    self.finish_request(now, id, Some(Event::TimedOut(RequestId(id))));
                    return;
                };
                m
            }
            None => return,
        };
        let initial = self.initial_timeout();
        let cfg = self.config;
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        req.mid = mid;
        let [m0, m1] = mid.to_be_bytes();
        if let Some(h) = req.datagram.get_mut(2..4) {
            h.copy_from_slice(&[m0, m1]);
        }
        let old = req.deadline.take();
        let (at, state) = if req.multicast {
            (now + cfg.multicast_timeout, ReqState::Collecting)
        } else if req.con {
            req.backoff = Backoff {
                attempt: 0,
                timeout: initial,
            };
            (now + initial, ReqState::AwaitAck)
        } else {
            (now + cfg.non_request_timeout, ReqState::AwaitResponse)
        };
        req.state = state;
        req.deadline = Some(at);
        req.outstanding = !req.multicast;
        let (peer, multicast) = (req.peer, req.multicast);
        let datagram = self.copy_request_datagram(id);
        self.disarm(old, Timer::Request(id));
        self.arm(at, Timer::Request(id));
        self.by_mid.insert((peer, mid), MidOwner::Request(id));
        if !multicast {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.outstanding += 1;
                p.queue.retain(|q| *q != id);
            }
            self.note_sent(peer, datagram.len());
        }
        self.send(peer, datagram);
    }

    /// Marks the interaction as no longer outstanding (RFC 7252 §4.7) and
    /// starts the next queued request to that peer.
    fn release_outstanding(&mut self, now: Instant, id: u64) {
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        if !core::mem::take(&mut req.outstanding) {
            return;
        }
        let peer = req.peer;
        if let Some(p) = self.peers.get_mut(&peer) {
            p.outstanding = p.outstanding.saturating_sub(1);
        }
        self.pump_queue(now, peer);
    }

    fn finish_request(&mut self, now: Instant, id: u64, event: Option<Event<A>>) {
        self.release_outstanding(now, id);
        let Some(req) = self.requests.remove(&id) else {
            return;
        };
        self.disarm(req.deadline, Timer::Request(id));
        if req.multicast {
            self.mcast_by_token.remove(&req.token);
        } else if !req.ping {
            self.by_token.remove(&(req.peer, req.token));
        }
        if req.state != ReqState::Queued
            && self.by_mid.get(&(req.peer, req.mid)) == Some(&MidOwner::Request(id))
        {
            self.by_mid.remove(&(req.peer, req.mid));
        }
        if let Some(p) = self.peers.get_mut(&req.peer) {
            p.queue.retain(|q| *q != id);
        }
        self.recycle(req.datagram);
        // A deregistration ends without an event (RFC 7641 §3.6).
        let silent = self
            .observations
            .remove(&id)
            .is_some_and(|o| o.deregistering);
        match event {
            Some(Event::Response(r)) if silent => self.recycle(r.message.into_bytes()),
            Some(e) if !silent => self.push_event(e, Hold::Request),
            _ => {}
        }
        if !req.multicast {
            self.schedule_peer_expiry(req.peer);
        }
    }

    /// Abandons a request: no more retransmissions and no event. A queued
    /// request is dropped before it is sent.
    ///
    /// ```
    /// # use coap_proto::endpoint::{Config, Endpoint, Error};
    /// # use coap_proto::Instant;
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// let id = ep.ping(Instant::ZERO, 2)?;
    /// ep.cancel(Instant::ZERO, id)?;
    /// assert_eq!(ep.cancel(Instant::ZERO, id), Err(Error::UnknownHandle));
    /// assert_eq!(ep.tables().requests, 0);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn cancel(&mut self, now: Instant, id: RequestId) -> Result<(), Error> {
        let now = self.advance(now);
        let Some(peer) = self.requests.get(&id.0).map(|r| r.peer) else {
            return Err(Error::UnknownHandle);
        };
        self.finish_request(now, id.0, None);
        // The next request in line may go now (or arm its wake-up timer).
        self.pump_queue(now, peer);
        Ok(())
    }

    // ----- server: responses -----------------------------------------------

    /// Answers an incoming request with `msg`'s code, options and payload
    /// (its type, MID and token are chosen by the endpoint).
    ///
    /// The endpoint picks the form (RFC 7252 §5.2): piggybacked on the ACK of
    /// a CON request not yet acknowledged; a separate response (CON by
    /// default, retransmitted until ACKed) after an empty ACK; a NON
    /// response to a NON request. A multicast request's answer is delayed by
    /// a random Leisure, and error answers to it are suppressed (§8.2).
    ///
    /// ```
    /// # use coap_proto::endpoint::{Config, Endpoint, Event};
    /// # use coap_proto::{Code, Instant, Message, MessageBuf, MessageType};
    /// let mut server: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// server.handle_datagram(Instant::ZERO, 9, b"\x41\x01\x12\x34\xaa");
    /// let Some(Event::Request(req)) = server.poll_event() else { panic!() };
    /// server.respond(Instant::ZERO, req.handle, &MessageBuf::new(MessageType::Ack, Code::CONTENT))?;
    /// let mut buf = [0u8; 64];
    /// let t = server.poll_transmit(&mut buf)?.unwrap();
    /// assert_eq!(&buf[..t.len], b"\x61\x45\x12\x34\xaa"); // piggybacked: same MID and token
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn respond(
        &mut self,
        now: Instant,
        handle: ResponseHandle,
        msg: &MessageBuf,
    ) -> Result<(), Error> {
        self.respond_with(now, handle, msg.code(), |enc| {
            for o in msg.options() {
                enc.option(o.number, o.value)?;
            }
            enc.payload(msg.payload())?;
            Ok(())
        })
    }

    /// Answers an incoming request, letting `build` write options and
    /// payload straight into the datagram.
    ///
    /// ```
    /// # use coap_proto::endpoint::{Config, Endpoint, Event};
    /// # use coap_proto::{Code, Instant, OptionNumber};
    /// let mut server: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// server.handle_datagram(Instant::ZERO, 9, b"\x50\x01\x00\x01");
    /// let Some(Event::Request(req)) = server.poll_event() else { panic!() };
    /// server.respond_with(Instant::ZERO, req.handle, Code::CONTENT, |enc| {
    ///     enc.option_uint(OptionNumber::CONTENT_FORMAT, 0)?;
    ///     enc.payload(b"hello")?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), coap_proto::endpoint::Error>(())
    /// ```
    pub fn respond_with(
        &mut self,
        now: Instant,
        handle: ResponseHandle,
        code: Code,
        build: impl FnOnce(&mut Encoder<'_>) -> Result<(), EncodeError>,
    ) -> Result<(), Error> {
        let now = self.advance(now);
        if !code.is_response() {
            return Err(Error::InvalidCode);
        }
        let Some(p) = self.pending.get(&handle.0) else {
            return Err(Error::UnknownHandle);
        };
        let (peer, req_mid, token, con, acked, multicast) =
            (p.peer, p.mid, p.token, p.con, p.acked, p.multicast);
        if multicast && !code.is_success() {
            // RFC 7252 §8.2: no error responses to multicast requests.
            self.drop_pending(handle.0);
            self.dedup_done(peer, req_mid, None);
            return Ok(());
        }
        if con && !acked {
            // Piggybacked on the ACK (§5.2.1).
            let datagram =
                self.encode_with(MessageType::Ack, code, req_mid, token.as_slice(), build)?;
            self.drop_pending(handle.0);
            self.dedup_done(peer, req_mid, Some(&datagram));
            self.send(peer, datagram);
            return Ok(());
        }
        let separate_con = con && self.config.separate_response_con;
        // Retained until acknowledged (separate CON) or until the Leisure has
        // passed (multicast): both count against max_separate, as do their
        // outcome events not polled yet. Checked first, so no MID is spent.
        if (separate_con || multicast)
            && self.separate.len() + self.delayed.len() + self.held_separate
                >= self.config.max_separate
        {
            return Err(Error::NoCapacity);
        }
        let mid = match self.alloc_mid(now, peer) {
            Ok(mid) => mid,
            Err(e) => {
                if !con {
                    // A NON answer that cannot be sent now is lost like a
                    // dropped datagram (§4.3 gives NON no reliability);
                    // free the slot instead of holding it for
                    // EXCHANGE_LIFETIME.
                    self.drop_pending(handle.0);
                    self.dedup_done(peer, req_mid, None);
                }
                return Err(e);
            }
        };
        let ty = if separate_con {
            MessageType::Con
        } else {
            MessageType::Non
        };
        let datagram = self.encode_with(ty, code, mid, token.as_slice(), build)?;
        self.drop_pending(handle.0);
        if !con {
            self.dedup_done(peer, req_mid, None);
        }
        self.schedule_peer_expiry(peer);
        if multicast {
            let leisure = self.config.transmission.default_leisure.as_micros();
            let delay = self
                .rng
                .below_inclusive(u64::try_from(leisure).unwrap_or(u64::MAX));
            let at = now + Duration::from_micros(delay);
            let id = self.new_id();
            self.delayed.insert(id, (peer, datagram));
            self.arm(at, Timer::Delayed(id));
            return Ok(());
        }
        if separate_con {
            let timeout = self.initial_timeout();
            let id = self.new_id();
            let at = now + timeout;
            self.send_copy(peer, &datagram);
            self.separate.insert(
                id,
                Separate {
                    handle: handle.0,
                    peer,
                    mid,
                    backoff: Backoff {
                        attempt: 0,
                        timeout,
                    },
                    deadline: at,
                    datagram,
                },
            );
            self.by_mid.insert((peer, mid), MidOwner::Separate(id));
            self.arm(at, Timer::Separate(id));
        } else {
            self.send(peer, datagram);
        }
        Ok(())
    }

    /// Acknowledges a CON request now with an empty ACK; the answer will be
    /// a separate response (RFC 7252 §5.2.2). A no-op for NON requests or
    /// when already acknowledged.
    ///
    /// ```
    /// # use coap_proto::endpoint::{Config, Endpoint, Event};
    /// # use coap_proto::Instant;
    /// let mut server: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// server.handle_datagram(Instant::ZERO, 9, b"\x40\x01\x00\x07");
    /// let Some(Event::Request(req)) = server.poll_event() else { panic!() };
    /// server.accept(Instant::ZERO, req.handle)?;
    /// let mut buf = [0u8; 16];
    /// let t = server.poll_transmit(&mut buf)?.unwrap();
    /// assert_eq!(&buf[..t.len], &[0x60, 0x00, 0x00, 0x07]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn accept(&mut self, now: Instant, handle: ResponseHandle) -> Result<(), Error> {
        self.advance(now);
        let Some(p) = self.pending.get_mut(&handle.0) else {
            return Err(Error::UnknownHandle);
        };
        if p.con && !p.acked {
            p.acked = true;
            let (peer, mid, at) = (p.peer, p.mid, p.ack_deadline.take());
            self.disarm(at, Timer::AckDelay(handle.0));
            self.send_empty_ack(peer, mid);
        }
        Ok(())
    }

    fn drop_pending(&mut self, handle: u64) {
        if let Some(p) = self.pending.remove(&handle) {
            self.disarm(p.ack_deadline, Timer::AckDelay(handle));
            self.disarm(Some(p.expires), Timer::Pending(handle));
        }
    }

    // ----- Observe, client side (RFC 7641 §3) -------------------------------

    /// Observes a resource (RFC 7641 §3.1): sends `msg` (a GET, or a FETCH
    /// as RFC 8132 allows) with Observe:0 added (an Observe option already
    /// in `msg` is replaced), like [`request`](Self::request).
    ///
    /// Every 2.xx response carrying an Observe option is reported as
    /// [`Event::Notification`], the first one included, and keeps the
    /// observation open: the token stays registered, CON notifications are
    /// acknowledged (and deduplicated), and a notification older than one
    /// already delivered is acknowledged but not delivered (§3.4: the 2^23
    /// serial number comparison, or more than 128 s since the freshest).
    /// When no newer notification arrives within its Max-Age (default 60 s)
    /// plus a random time between [`Config::observe_refresh_delay`] and
    /// three times that, the endpoint registers again
    /// with the same request and token (§3.3.1). A response without Observe,
    /// or with an error code, ends the observation as [`Event::Response`];
    /// so do `TimedOut` and `Reset`. End it yourself with
    /// [`cancel_observe`](Self::cancel_observe). An observation holds its
    /// `max_requests` slot while it is open.
    ///
    /// ```
    /// # use coap_proto::endpoint::{Config, Endpoint};
    /// # use coap_proto::{Code, Instant, Message, MessageBuf, MessageType, Observe, OptionNumber};
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// let mut get = MessageBuf::new(MessageType::Con, Code::GET);
    /// get.add_option(OptionNumber::URI_PATH, "obs");
    /// ep.observe(Instant::ZERO, 2, &get)?;
    /// let mut buf = [0u8; 64];
    /// let t = ep.poll_transmit(&mut buf)?.unwrap();
    /// assert_eq!(Message::parse(&buf[..t.len])?.observe(), Some(Observe::REGISTER));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn observe(&mut self, now: Instant, peer: A, msg: &MessageBuf) -> Result<RequestId, Error> {
        if msg.code() != Code::GET && msg.code() != Code::FETCH {
            return Err(Error::InvalidCode);
        }
        let observation = Observation {
            established: false,
            deregistering: false,
            freshest: None,
        };
        let confirmable = msg.ty() == MessageType::Con;
        self.open_request(
            now,
            peer,
            confirmable,
            msg.code(),
            Some(observation),
            |enc| {
                let mut placed = false;
                for o in msg.options() {
                    if o.number == OptionNumber::OBSERVE {
                        continue;
                    }
                    if !placed && o.number.0 > OptionNumber::OBSERVE.0 {
                        enc.option(OptionNumber::OBSERVE, &[])?;
                        placed = true;
                    }
                    enc.option(o.number, o.value)?;
                }
                if !placed {
                    enc.option(OptionNumber::OBSERVE, &[])?;
                }
                enc.payload(msg.payload())?;
                Ok(())
            },
        )
    }

    /// Ends an observation (RFC 7641 §3.6). [`Deregister::Active`] sends the
    /// registration request again with Observe:1 and the same token (all
    /// other options identical); its response, and any notification that
    /// arrives meanwhile, end it without an event. [`Deregister::Passive`]
    /// forgets the token at once, like [`cancel`](Self::cancel): the next
    /// notification is answered with a Reset, which makes the server remove
    /// the observer. Active deregistration needs an observation between
    /// exchanges; while its (re-)registration is in flight it falls back to
    /// passive. For a request that is not an observation this is `cancel`.
    ///
    /// ```
    /// # use coap_proto::endpoint::{Config, Deregister, Endpoint, Error};
    /// # use coap_proto::{Code, Instant, MessageBuf, MessageType};
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// let id = ep.observe(Instant::ZERO, 2, &MessageBuf::new(MessageType::Con, Code::GET))?;
    /// ep.cancel_observe(Instant::ZERO, id, Deregister::Passive)?;
    /// assert_eq!(ep.tables().requests, 0);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn cancel_observe(
        &mut self,
        now: Instant,
        id: RequestId,
        how: Deregister,
    ) -> Result<(), Error> {
        let now = self.advance(now);
        let Some(req) = self.requests.get_mut(&id.0) else {
            return Err(Error::UnknownHandle);
        };
        let active = how == Deregister::Active
            && req.state == ReqState::Observing
            && self
                .observations
                .get(&id.0)
                .is_some_and(|o| !o.deregistering);
        if !active {
            return self.cancel(now, id);
        }
        let old = core::mem::take(&mut req.datagram);
        let token = req.token;
        let built = match Message::parse(&old) {
            Ok(m) => self.encode_with(m.ty(), m.code(), 0, token.as_slice(), |enc| {
                for o in m.options() {
                    if o.number == OptionNumber::OBSERVE {
                        enc.option(OptionNumber::OBSERVE, &[1])?;
                    } else {
                        enc.option(o.number, o.value)?;
                    }
                }
                enc.payload(m.payload())?;
                Ok(())
            }),
            Err(_) => Err(EncodeError::BufferTooSmall { required: 0 }),
        };
        self.recycle(old);
        let Ok(datagram) = built else {
            return self.cancel(now, id);
        };
        let Some(req) = self.requests.get_mut(&id.0) else {
            return Err(Error::UnknownHandle);
        };
        req.datagram = datagram;
        req.state = ReqState::Queued;
        let old = req.deadline.take();
        self.disarm(old, Timer::Request(id.0));
        if let Some(o) = self.observations.get_mut(&id.0) {
            o.deregistering = true;
        }
        self.try_start(now, id.0);
        Ok(())
    }

    /// Registers an observation again (RFC 7641 §3.3.1): the same request
    /// and token, a new Message ID, in line with the peer's other requests.
    fn reregister(&mut self, now: Instant, id: u64) {
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        req.state = ReqState::Queued;
        let peer = req.peer;
        self.stats.reregistrations += 1;
        if self.peer_entry(now, peer).is_err() {
            self.stats.timeouts += 1;
            self.finish_request(now, id, Some(Event::TimedOut(RequestId(id))));
            return;
        }
        self.try_start(now, id);
    }

    /// Whether a notification for request `id` must be dropped because the
    /// event queue is full (it is then not acknowledged either).
    fn notification_blocked(&self, id: u64, msg: &Message<'_>) -> bool {
        self.events.len() >= self.config.max_events
            && msg.code().is_success()
            && msg.has_option(OptionNumber::OBSERVE)
            && self.observations.get(&id).is_some_and(|o| !o.deregistering)
    }

    /// A response for an observation: a notification keeps it open, any
    /// other response ends it (RFC 7641 §3.1, §3.2). `exchange`: it answers
    /// the (re-)registration in flight (piggybacked), so it is the freshest
    /// by construction.
    #[allow(clippy::too_many_arguments)] // the response and where it came from
    fn observation_response(
        &mut self,
        now: Instant,
        id: u64,
        obs: Observation,
        from: A,
        datagram: &[u8],
        msg: &Message<'_>,
        exchange: bool,
    ) {
        if obs.deregistering {
            self.finish_request(now, id, None);
            return;
        }
        let value = msg.observe().map(Observe::value);
        let Some(v2) = value.filter(|_| msg.code().is_success()) else {
            self.stats.responses_in += 1;
            let buf = self.buffer();
            let event = Event::Response(Response {
                id: RequestId(id),
                peer: from,
                message: OwnedMessage::new(buf, datagram, msg),
            });
            self.finish_request(now, id, Some(event));
            return;
        };
        // RFC 7641 §3.4: newer than the freshest so far?
        let fresh = exchange
            || obs.freshest.is_none_or(|(v1, t1)| {
                (v1 < v2 && v2 - v1 < 1 << 23)
                    || (v1 > v2 && v1 - v2 > 1 << 23)
                    || now > t1 + Duration::from_secs(128)
            });
        if !fresh {
            self.stats.stale_notifications += 1;
            return;
        }
        let max_age = msg.uint_option(OptionNumber::MAX_AGE).unwrap_or(60);
        self.settle_observation(now, id, v2, max_age);
        self.stats.responses_in += 1;
        self.stats.notifications_in += 1;
        let buf = self.buffer();
        let event = Event::Notification(Response {
            id: RequestId(id),
            peer: from,
            message: OwnedMessage::new(buf, datagram, msg),
        });
        self.push_event(event, Hold::Nothing);
    }

    /// Records a fresh notification: the exchange in flight (if any) is
    /// over, and the re-registration is due after its Max-Age.
    fn settle_observation(&mut self, now: Instant, id: u64, value: u32, max_age: u32) {
        self.release_outstanding(now, id);
        let p = self.config;
        // RFC 7641 §3.3.1: Max-Age, then a random wait in [d, 3d].
        let d = p.observe_refresh_delay;
        let span = u64::try_from(d.saturating_mul(2).as_micros()).unwrap_or(u64::MAX);
        let wait = d.saturating_add(Duration::from_micros(self.rng.below_inclusive(span)));
        let at = now
            .saturating_add(Duration::from_secs(u64::from(max_age)))
            .saturating_add(wait);
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        let (peer, mid, state) = (req.peer, req.mid, req.state);
        req.state = ReqState::Observing;
        if let Some(o) = self.observations.get_mut(&id) {
            o.established = true;
            o.freshest = Some((value, now));
        }
        let old = req.deadline.replace(at);
        self.disarm(old, Timer::Request(id));
        self.arm(at, Timer::Request(id));
        if state != ReqState::Queued
            && self.by_mid.get(&(peer, mid)) == Some(&MidOwner::Request(id))
        {
            self.by_mid.remove(&(peer, mid));
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.queue.retain(|q| *q != id);
        }
    }

    // ----- Observe, server side (RFC 7641 §4) -------------------------------

    /// Sends a notification of an observed resource (RFC 7641 §4.2) to
    /// `peer` with the observation's `token`, outside any pending exchange:
    /// `msg`'s code, options (the Observe option included: the caller keeps
    /// the sequence numbers of §4.4) and payload, in a CON
    /// (`confirmable`, retransmitted as RFC 7252 §4.2 says) or NON message.
    ///
    /// Outcomes: a CON notification ends with
    /// [`Event::NotificationDelivered`], [`Event::NotificationRejected`]
    /// (a Reset) or [`Event::NotificationTimedOut`]. The Message ID of the
    /// last NON notification of each observation is remembered for
    /// NON_LIFETIME, so that a Reset to it is reported as
    /// `NotificationRejected` too (§4.5); nothing else is reported for it.
    ///
    /// A notification for an observation whose CON notification is still
    /// in flight supersedes it (§4.5.2): it is sent as CON when the current
    /// attempt ends (acknowledged: at once, with fresh transmission
    /// parameters; timed out: with a new Message ID, the retransmission
    /// counter incremented and the timeout doubled; after the last attempt
    /// it times out instead), and the superseded notification reports
    /// nothing more.
    ///
    /// Congestion control per client (§4.5.1), across all its
    /// observations: at most NSTART notifications are outstanding to
    /// `peer`, a CON one until it is acknowledged, rejected or times out,
    /// a NON one for [`Config::non_notification_interval_ms`] (default 3 s).
    /// Beyond that the notification waits (returning its id as usual):
    /// only the newest of each observation is kept (an older waiting one
    /// is replaced and reports nothing; if either was CON it goes as CON),
    /// and waiting observations go out oldest first as the client's slots
    /// free; a NON waiting time's end shows in
    /// [`poll_timeout`](Self::poll_timeout).
    ///
    /// Bounded by [`Config::max_notifications`] (entries in flight,
    /// remembered or waiting) and [`Config::max_notification_clients`]
    /// (clients with congestion state; beyond it: `Error::NoCapacity`).
    ///
    /// ```
    /// # use coap_proto::endpoint::{Config, Endpoint, Event};
    /// # use coap_proto::{Code, Instant, Message, MessageBuf, MessageType, OptionNumber};
    /// let mut server: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// let mut n = MessageBuf::new(MessageType::Con, Code::CONTENT);
    /// n.add_option_uint(OptionNumber::OBSERVE, 7);
    /// n.set_payload("21.5 C");
    /// let id = server.notify(Instant::ZERO, 9, &[0xab], true, &n)?;
    /// let mut buf = [0u8; 64];
    /// let t = server.poll_transmit(&mut buf)?.unwrap();
    /// let sent = Message::parse(&buf[..t.len])?;
    /// assert_eq!((sent.ty(), sent.token(), sent.payload()), (MessageType::Con, &[0xab][..], &b"21.5 C"[..]));
    /// // The client acknowledges it.
    /// server.handle_datagram(Instant::from_millis(20), 9, &[0x60, 0, buf[2], buf[3]]);
    /// assert!(matches!(server.poll_event(), Some(Event::NotificationDelivered(d)) if d == id));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn notify(
        &mut self,
        now: Instant,
        peer: A,
        token: &[u8],
        confirmable: bool,
        msg: &MessageBuf,
    ) -> Result<NotificationId, Error> {
        self.notify_with(now, peer, token, confirmable, msg.code(), |enc| {
            for o in msg.options() {
                enc.option(o.number, o.value)?;
            }
            enc.payload(msg.payload())?;
            Ok(())
        })
    }

    /// Sends a notification, letting `build` write its options and payload
    /// straight into the datagram; see [`notify`](Self::notify).
    ///
    /// ```
    /// # use coap_proto::endpoint::{Config, Endpoint};
    /// # use coap_proto::{Code, Instant, OptionNumber};
    /// let mut server: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// server.notify_with(Instant::ZERO, 9, &[1, 2], false, Code::CONTENT, |enc| {
    ///     enc.option_uint(OptionNumber::OBSERVE, 12)?;
    ///     enc.payload(b"on")?;
    ///     Ok(())
    /// })?;
    /// assert_eq!(server.tables().notifications, 1); // its Message ID, for a Reset
    /// # Ok::<(), coap_proto::endpoint::Error>(())
    /// ```
    // The cases of §4.5 and §4.5.2 in order: supersede, make room, send.
    #[allow(clippy::too_many_lines)]
    pub fn notify_with(
        &mut self,
        now: Instant,
        peer: A,
        token: &[u8],
        confirmable: bool,
        code: Code,
        build: impl FnOnce(&mut Encoder<'_>) -> Result<(), EncodeError>,
    ) -> Result<NotificationId, Error> {
        let now = self.advance(now);
        if !code.is_response() {
            return Err(Error::InvalidCode);
        }
        if peer.is_multicast() {
            return Err(Error::Unsupported);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(Error::Encode(EncodeError::TokenTooLong {
                len: token.len(),
            }));
        }
        let tok = Tok::new(token);
        let existing = self.notification_of.get(&(peer, tok)).copied();
        if let Some(key) = existing
            && self.notifications.get(&key).is_some_and(|n| n.con)
        {
            // §4.5.2: supersede the CON in flight.
            let datagram = self.encode_with(MessageType::Con, code, 0, token, build)?;
            let id = self.new_id();
            if let Some(n) = self.notifications.get_mut(&key) {
                let old = core::mem::replace(&mut n.datagram, datagram);
                n.fresh = true;
                n.id = id;
                self.recycle(old);
            }
            return Ok(NotificationId(id));
        }
        let nstart = usize::from(self.config.transmission.nstart.max(1));
        // RFC 7641 §4.5.1: a slot that freed while no timer ran goes to the
        // notifications waiting for it first.
        self.pump_notifications(now, peer);
        let busy = self
            .gates
            .get_mut(&peer)
            .is_some_and(|g| g.outstanding(now) >= nstart || !g.queue.is_empty());
        // Only a paced notification needs congestion state (`gate_sent`):
        // a NON one with pacing off never creates it.
        let paced = confirmable || self.config.non_notification_interval_ms != 0;
        if paced
            && !self.gates.contains_key(&peer)
            && self.gates.len() >= self.config.max_notification_clients as usize
        {
            // No room for this client's congestion state: sending would be
            // unpaced.
            return Err(Error::NoCapacity);
        }
        let ty = if confirmable {
            MessageType::Con
        } else {
            MessageType::Non
        };
        let mut datagram = self.encode_with(ty, code, 0, token, build)?;
        let id = self.new_id();
        if !busy {
            self.transmit_notification(now, peer, tok, id, confirmable, datagram)?;
            return Ok(NotificationId(id));
        }
        // §4.5.1: the client has NSTART notifications outstanding. A
        // notification is state: only the newest of each observation waits.
        if let Some(w) = self.waiting.get_mut(&(peer, tok)) {
            if w.con && !confirmable {
                // A CON that was due stays CON (§4.5).
                if let Some(b) = datagram.first_mut() {
                    *b &= !0x30;
                }
            }
            w.con |= confirmable;
            w.id = id;
            let old = core::mem::replace(&mut w.datagram, datagram);
            self.recycle(old);
            self.stats.notifications_replaced += 1;
            return Ok(NotificationId(id));
        }
        if !self.notification_room() {
            self.recycle(datagram);
            return Err(Error::NoCapacity);
        }
        self.enqueue(
            peer,
            tok,
            Waiting {
                id,
                con: confirmable,
                datagram,
            },
        );
        self.stats.notifications_paced += 1;
        Ok(NotificationId(id))
    }

    /// Whether one more notification entry fits in `max_notifications`
    /// (in flight, remembered, waiting, or with its outcome event queued),
    /// after forgetting the oldest remembered NON notification if needed
    /// (§4.5: "a server can always pretend that a Reset message rejecting
    /// a non-confirmable notification was lost").
    fn notification_room(&mut self) -> bool {
        let max = self.config.max_notifications;
        let used = |ep: &Self| ep.notifications.len() + ep.waiting.len() + ep.held_notifications;
        if used(self) >= max
            && let Some(&(_, oldest)) = self.remembered.first()
            && let Some(n) = self.remove_notification(oldest)
        {
            self.recycle(n.datagram);
        }
        used(self) < max
    }

    /// Sends a notification encoded with Message ID 0 now: assigns its
    /// MID, remembers it (CON: to retransmit; NON: its MID, for a Reset)
    /// and counts it against its client's congestion state.
    // The bookkeeping of §4.5 and §4.5.2 in order.
    #[allow(clippy::too_many_lines)]
    fn transmit_notification(
        &mut self,
        now: Instant,
        peer: A,
        tok: Tok,
        id: u64,
        confirmable: bool,
        mut datagram: Vec<u8>,
    ) -> Result<(), Error> {
        let existing = self.notification_of.get(&(peer, tok)).copied();
        if let Some(key) = existing
            && let Some(n) = self.notifications.get_mut(&key)
            && n.con
        {
            // §4.5.2: a CON of this observation is in flight: this one
            // supersedes it (as CON, whatever it was).
            if let Some(b) = datagram.first_mut() {
                *b &= !0x30;
            }
            let old = core::mem::replace(&mut n.datagram, datagram);
            n.fresh = true;
            n.id = id;
            self.recycle(old);
            return Ok(());
        }
        let slot = existing.is_some() || self.notification_room();
        if confirmable && !slot {
            self.recycle(datagram);
            return Err(Error::NoCapacity);
        }
        let mid = match self.alloc_mid(now, peer) {
            Ok(m) => m,
            Err(e) => {
                self.recycle(datagram);
                return Err(e);
            }
        };
        if let Some(h) = datagram.get_mut(2..4) {
            h.copy_from_slice(&mid.to_be_bytes());
        }
        self.schedule_peer_expiry(peer);
        self.stats.notifications_out += 1;
        // The observation's previous NON notification: its Message ID stays
        // recognized for one more notification.
        let prev_mid = existing
            .and_then(|key| self.remove_notification(key))
            .map(|n| {
                let mid = n.mid;
                self.recycle(n.datagram);
                mid
            });
        self.gate_sent(now, peer, confirmable);
        if !slot {
            self.send(peer, datagram);
            return Ok(());
        }
        let (deadline, backoff, kept) = if confirmable {
            let timeout = self.initial_timeout();
            self.send_copy(peer, &datagram);
            (
                now + timeout,
                Backoff {
                    attempt: 0,
                    timeout,
                },
                datagram,
            )
        } else {
            self.send(peer, datagram);
            let at = now + self.config.transmission.non_lifetime();
            self.remembered.insert((at, id));
            (
                at,
                Backoff {
                    attempt: 0,
                    timeout: Duration::ZERO,
                },
                Vec::new(),
            )
        };
        if let Some(prev) = prev_mid {
            self.by_mid.insert((peer, prev), MidOwner::Notification(id));
        }
        self.by_mid.insert((peer, mid), MidOwner::Notification(id));
        self.notification_of.insert((peer, tok), id);
        self.arm(deadline, Timer::Notification(id));
        self.notifications.insert(
            id,
            Notification {
                id,
                peer,
                token: tok,
                con: confirmable,
                mid,
                prev_mid,
                backoff,
                deadline,
                datagram: kept,
                fresh: false,
            },
        );
        Ok(())
    }

    // ----- notification congestion control (RFC 7641 §4.5.1) ----------------

    /// Counts a notification just sent to `peer` as outstanding: a CON one
    /// until its outcome, a NON one for `non_notification_interval_ms`.
    fn gate_sent(&mut self, now: Instant, peer: A, con: bool) {
        let interval = Duration::from_millis(u64::from(self.config.non_notification_interval_ms));
        if !con && interval.is_zero() {
            return;
        }
        if !self.gates.contains_key(&peer) {
            let gid = self.new_id();
            self.gate_ids.insert(gid, peer);
            self.gates.insert(
                peer,
                Gate {
                    gid,
                    con: 0,
                    non: Vec::new(),
                    queue: VecDeque::new(),
                    wake: None,
                },
            );
        }
        if let Some(g) = self.gates.get_mut(&peer) {
            if con {
                g.con = g.con.saturating_add(1);
            } else {
                g.non.push(now + interval);
            }
        }
        self.arm_gate(peer);
    }

    /// Arms the client's timer at the end of its earliest NON waiting time.
    fn arm_gate(&mut self, peer: A) {
        let Some(g) = self.gates.get_mut(&peer) else {
            return;
        };
        let next = g.non.iter().min().copied();
        if g.wake == next {
            return;
        }
        let old = core::mem::replace(&mut g.wake, next);
        let gid = g.gid;
        self.disarm(old, Timer::Gate(gid));
        if let Some(at) = next {
            self.arm(at, Timer::Gate(gid));
        }
    }

    /// Sends the waiting notifications of `peer`, oldest observation
    /// first, while it has fewer than NSTART outstanding.
    /// Puts a notification behind the client's outstanding ones (RFC 7641
    /// §4.5.1), last in its queue.
    fn enqueue(&mut self, peer: A, tok: Tok, w: Waiting) {
        self.waiting.insert((peer, tok), w);
        if let Some(g) = self.gates.get_mut(&peer) {
            g.queue.push_back(tok);
        }
    }

    fn pump_notifications(&mut self, now: Instant, peer: A) {
        let nstart = usize::from(self.config.transmission.nstart.max(1));
        loop {
            let Some(g) = self.gates.get_mut(&peer) else {
                return;
            };
            if g.outstanding(now) >= nstart {
                break;
            }
            let Some(tok) = g.queue.pop_front() else {
                break;
            };
            let Some(w) = self.waiting.remove(&(peer, tok)) else {
                continue;
            };
            if self
                .transmit_notification(now, peer, tok, w.id, w.con, w.datagram)
                .is_err()
            {
                self.stats.notifications_dropped += 1;
                if w.con {
                    // The caller holds its id and is owed an outcome (see
                    // `notify`): never sent (no Message ID left), it
                    // timed out.
                    self.push_event(
                        Event::NotificationTimedOut(NotificationId(w.id)),
                        Hold::Notification,
                    );
                }
            }
        }
        self.arm_gate(peer);
    }

    /// A slot of `peer` may have freed: send what waits, and forget the
    /// client's state once nothing is outstanding or waiting.
    fn release_gate(&mut self, now: Instant, peer: A) {
        self.pump_notifications(now, peer);
        let Some(g) = self.gates.get_mut(&peer) else {
            return;
        };
        if g.outstanding(now) == 0 && g.queue.is_empty() {
            let (gid, wake) = (g.gid, g.wake);
            self.gates.remove(&peer);
            self.gate_ids.remove(&gid);
            self.disarm(wake, Timer::Gate(gid));
        } else {
            self.arm_gate(peer);
        }
    }

    /// Stops every notification of the observation (`peer`, `token`): no
    /// more retransmissions, no event, and its Message IDs are forgotten
    /// (e.g. after the client deregistered, RFC 7641 §3.6). Returns whether
    /// there was one.
    ///
    /// ```
    /// # use coap_proto::endpoint::{Config, Endpoint};
    /// # use coap_proto::{Code, Instant, MessageBuf, MessageType};
    /// let mut server: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// server.notify(Instant::ZERO, 9, &[7], true, &MessageBuf::new(MessageType::Con, Code::CONTENT))?;
    /// assert!(server.cancel_notification(Instant::ZERO, 9, &[7]));
    /// assert_eq!(server.tables().notifications, 0);
    /// # Ok::<(), coap_proto::endpoint::Error>(())
    /// ```
    pub fn cancel_notification(&mut self, now: Instant, peer: A, token: &[u8]) -> bool {
        let now = self.advance(now);
        let tok = Tok::new(token);
        let mut found = false;
        if let Some(w) = self.waiting.remove(&(peer, tok)) {
            self.recycle(w.datagram);
            if let Some(g) = self.gates.get_mut(&peer) {
                g.queue.retain(|t| *t != tok);
            }
            found = true;
        }
        if let Some(&key) = self.notification_of.get(&(peer, tok))
            && let Some(n) = self.remove_notification(key)
        {
            self.recycle(n.datagram);
            found = true;
        }
        if found {
            self.release_gate(now, peer);
        }
        found
    }

    /// Ends a notification with its outcome event (delivered, timed out,
    /// rejected) and frees its client's slot (RFC 7641 §4.5.1).
    fn end_notification(&mut self, now: Instant, key: u64, event: fn(NotificationId) -> Event<A>) {
        if let Some(n) = self.remove_notification(key) {
            let (id, peer) = (n.id, n.peer);
            self.recycle(n.datagram);
            self.push_event(event(NotificationId(id)), Hold::Notification);
            self.release_gate(now, peer);
        }
    }

    /// Removes a notification entry and everything that points to it.
    fn remove_notification(&mut self, key: u64) -> Option<Notification<A>> {
        let n = self.notifications.remove(&key)?;
        for mid in core::iter::once(n.mid).chain(n.prev_mid) {
            if self.by_mid.get(&(n.peer, mid)) == Some(&MidOwner::Notification(key)) {
                self.by_mid.remove(&(n.peer, mid));
            }
        }
        if self.notification_of.get(&(n.peer, n.token)) == Some(&key) {
            self.notification_of.remove(&(n.peer, n.token));
        }
        if n.con {
            // RFC 7641 §4.5.1: no longer outstanding (the caller lets the
            // client's next notification go).
            if let Some(g) = self.gates.get_mut(&n.peer) {
                g.con = g.con.saturating_sub(1);
            }
        } else {
            self.remembered.remove(&(n.deadline, key));
        }
        self.disarm(Some(n.deadline), Timer::Notification(key));
        Some(n)
    }

    /// A CON notification's retransmission timer, or the end of a NON
    /// notification's NON_LIFETIME.
    fn notification_timer(&mut self, now: Instant, key: u64) {
        let max = self.config.transmission.max_retransmit;
        let Some(n) = self.notifications.get(&key) else {
            return;
        };
        if !n.con {
            if let Some(n) = self.remove_notification(key) {
                self.recycle(n.datagram);
            }
            return;
        }
        if n.backoff.attempt >= max {
            // RFC 7641 §4.5: the last attempt timed out (a superseding
            // notification is dropped with it, §4.5.2 step 2).
            self.stats.timeouts += 1;
            self.end_notification(now, key, Event::NotificationTimedOut);
            return;
        }
        let (peer, fresh) = (n.peer, n.fresh);
        // §4.5.2 step 4: the newer notification goes out with a new
        // Message ID, the counter incremented and the timeout doubled. Without
        // a Message ID now, the attempt passes unsent.
        let mid = if fresh {
            self.alloc_mid(now, peer).ok()
        } else {
            None
        };
        let Some(n) = self.notifications.get_mut(&key) else {
            return;
        };
        n.backoff.attempt += 1;
        n.backoff.timeout = n.backoff.timeout.saturating_mul(2);
        n.deadline = now + n.backoff.timeout;
        let deadline = n.deadline;
        let mut send = !fresh;
        let mut dropped = None;
        if let Some(m) = mid {
            if let Some(h) = n.datagram.get_mut(2..4) {
                h.copy_from_slice(&m.to_be_bytes());
            }
            dropped = n.prev_mid.replace(n.mid);
            n.mid = m;
            n.fresh = false;
            send = true;
        }
        let (prev, datagram) = (
            n.prev_mid,
            if send { Some(n.datagram.clone()) } else { None },
        );
        self.arm(deadline, Timer::Notification(key));
        if let Some(old) = dropped
            && self.by_mid.get(&(peer, old)) == Some(&MidOwner::Notification(key))
        {
            self.by_mid.remove(&(peer, old));
        }
        if let Some(m) = mid {
            self.by_mid.insert((peer, m), MidOwner::Notification(key));
            if let Some(p) = prev {
                self.by_mid.insert((peer, p), MidOwner::Notification(key));
            }
            self.stats.notifications_out += 1;
        } else if send {
            self.stats.retransmissions += 1;
        }
        if let Some(d) = datagram {
            self.send(peer, d);
        }
    }

    /// An empty ACK for a notification's Message ID.
    fn notification_acked(&mut self, now: Instant, key: u64, mid: u16) {
        let Some(n) = self.notifications.get(&key) else {
            return;
        };
        // An ACK of a superseded transmission, or of a NON: it only shows
        // that the client is still interested (§4.5.2).
        if !n.con || n.mid != mid {
            return;
        }
        if !n.fresh {
            self.end_notification(now, key, Event::NotificationDelivered);
            return;
        }
        let peer = n.peer;
        if self.gates.get(&peer).is_some_and(|g| !g.queue.is_empty()) {
            // §4.5.1: the client's slot is free and other observations of
            // it waited longer: the newer notification queues behind them
            // (still CON) instead of taking the slot again at once.
            if let Some(n) = self.remove_notification(key) {
                self.enqueue(
                    peer,
                    n.token,
                    Waiting {
                        id: n.id,
                        con: true,
                        datagram: n.datagram,
                    },
                );
            }
            self.release_gate(now, peer);
            return;
        }
        // §4.5.2 step 4: the attempt was acknowledged, so the newer
        // notification goes out now with fresh transmission parameters.
        let Ok(m) = self.alloc_mid(now, peer) else {
            return; // the timer sends it when Message IDs allow
        };
        let timeout = self.initial_timeout();
        let Some(n) = self.notifications.get_mut(&key) else {
            return;
        };
        if let Some(h) = n.datagram.get_mut(2..4) {
            h.copy_from_slice(&m.to_be_bytes());
        }
        let dropped = n.prev_mid.replace(n.mid);
        n.mid = m;
        n.fresh = false;
        n.backoff = Backoff {
            attempt: 0,
            timeout,
        };
        let old = core::mem::replace(&mut n.deadline, now + timeout);
        let (deadline, prev, datagram) = (n.deadline, n.prev_mid, n.datagram.clone());
        self.disarm(Some(old), Timer::Notification(key));
        self.arm(deadline, Timer::Notification(key));
        if let Some(d) = dropped
            && self.by_mid.get(&(peer, d)) == Some(&MidOwner::Notification(key))
        {
            self.by_mid.remove(&(peer, d));
        }
        self.by_mid.insert((peer, m), MidOwner::Notification(key));
        if let Some(p) = prev {
            self.by_mid.insert((peer, p), MidOwner::Notification(key));
        }
        self.stats.notifications_out += 1;
        self.send(peer, datagram);
    }

    // ----- deduplication (RFC 7252 §4.5) -------------------------------------

    fn expire_dedup(&mut self, now: Instant, budget: usize) {
        let mut budget = budget;
        for q in 0..self.dedup_order.len() {
            while budget > 0 {
                let Some(&(peer, mid, seq)) = self.dedup_order.get(q).and_then(VecDeque::front)
                else {
                    break;
                };
                match self.dedup.get(&(peer, mid)) {
                    Some(e) if e.seq == seq => {
                        if e.expires > now {
                            break;
                        }
                        self.remove_dedup(peer, mid);
                    }
                    _ => {}
                }
                if let Some(queue) = self.dedup_order.get_mut(q) {
                    queue.pop_front();
                }
                budget -= 1;
            }
        }
    }

    /// Takes the oldest entry (by insertion) off the front of either queue.
    fn pop_oldest_dedup(&mut self) -> Option<(A, u16, u64)> {
        let [non, con] = &mut self.dedup_order;
        match (non.front(), con.front()) {
            (Some(n), Some(c)) if c.2 < n.2 => con.pop_front(),
            (Some(_), _) => non.pop_front(),
            (None, _) => con.pop_front(),
        }
    }

    fn remove_dedup(&mut self, peer: A, mid: u16) {
        if let Some(e) = self.dedup.remove(&(peer, mid)) {
            self.forget_reply(e.state);
        }
    }

    /// Accounts for a cached reply going away. Its exactly sized buffer is
    /// kept for the next reply of about its size (still counted against
    /// `max_dedup_bytes`), and freed once the cache is empty.
    fn forget_reply(&mut self, state: DedupState) {
        if let DedupState::Done(Some(mut b)) = state {
            self.dedup_bytes = self.dedup_bytes.saturating_sub(b.capacity());
            if self.reply_pool.len() < REPLY_POOL_MAX && !self.dedup.is_empty() {
                b.clear();
                self.reply_pool_bytes += b.capacity();
                self.reply_pool.push(b);
            }
        }
        if self.dedup.is_empty() {
            self.reply_pool.clear();
            self.reply_pool_bytes = 0;
        }
    }

    /// Evicts the oldest entries until `extra_entries` more entries and
    /// `extra_bytes` more cached bytes fit (RFC 7252 §4.5 with bounded
    /// memory: oldest first).
    fn make_dedup_room(&mut self, extra_entries: usize, extra_bytes: usize) {
        loop {
            let bytes_over = self.dedup_bytes + self.reply_pool_bytes + extra_bytes
                > self.config.max_dedup_bytes;
            // Idle reply buffers go before any live entry.
            if bytes_over && let Some(b) = self.reply_pool.pop() {
                self.reply_pool_bytes -= b.capacity();
                continue;
            }
            let entries_over = self.dedup.len() + extra_entries > self.config.max_dedup;
            if !(entries_over || bytes_over) || self.dedup.is_empty() {
                break;
            }
            let Some((peer, mid, seq)) = self.pop_oldest_dedup() else {
                break;
            };
            if self.dedup.get(&(peer, mid)).is_some_and(|e| e.seq == seq) {
                self.remove_dedup(peer, mid);
                self.stats.dedup_evictions += 1;
            }
        }
    }

    fn dedup_insert(&mut self, now: Instant, peer: A, mid: u16, con: bool) {
        self.make_dedup_room(1, 0);
        if self.config.max_dedup == 0 {
            // No cache at all (bound 0): the entry is evicted at once, and a
            // duplicate is processed again.
            self.stats.dedup_evictions += 1;
            return;
        }
        let p = self.config.transmission;
        let lifetime = if con {
            p.exchange_lifetime()
        } else {
            p.non_lifetime()
        };
        self.dedup_seq += 1;
        let seq = self.dedup_seq;
        let old = self.dedup.insert(
            (peer, mid),
            DedupEntry {
                expires: now + lifetime,
                seq,
                state: DedupState::Pending,
            },
        );
        if let Some(old) = old {
            self.forget_reply(old.state);
        }
        if let Some(queue) = self.dedup_order.get_mut(usize::from(con)) {
            queue.push_back((peer, mid, seq));
        }
    }

    /// Records the reply to replay for duplicates of (peer, mid).
    fn dedup_done(&mut self, peer: A, mid: u16, reply: Option<&[u8]>) {
        if !self.dedup.contains_key(&(peer, mid)) {
            return;
        }
        let state = match reply {
            // An empty ACK (ver 1, type ACK, TKL 0, code 0.00): regenerated.
            Some([0x60, 0x00, _, _]) => DedupState::EmptyAck,
            // Larger than the whole cache budget: not kept (a duplicate then
            // gets no answer, as if the entry had been evicted).
            Some(r) if r.len() > self.config.max_dedup_bytes => DedupState::Done(None),
            Some(r) => {
                // Exactly sized, not a pooled buffer of max_message_size:
                // a small reply costs its length, not 1152 bytes. A freed
                // one of about that size is reused (no allocation in steady
                // state).
                let len = r.len();
                let reuse = self
                    .reply_pool
                    .iter()
                    .position(|b| b.capacity() >= len && b.capacity() <= 2 * len);
                let mut b = if let Some(i) = reuse {
                    let b = self.reply_pool.swap_remove(i);
                    self.reply_pool_bytes -= b.capacity();
                    b
                } else {
                    self.make_dedup_room(0, len);
                    Vec::with_capacity(len)
                };
                b.extend_from_slice(r);
                self.dedup_bytes += b.capacity();
                DedupState::Done(Some(b))
            }
            None => DedupState::Done(None),
        };
        // Eviction above may have removed this very entry (the oldest).
        let old = match self.dedup.get_mut(&(peer, mid)) {
            Some(e) => core::mem::replace(&mut e.state, state),
            None => state,
        };
        self.forget_reply(old);
    }

    /// Handles a duplicate CON/NON. Returns true when it was one.
    fn dedup_check(&mut self, peer: A, mid: u16, con: bool) -> bool {
        let Some(e) = self.dedup.get(&(peer, mid)) else {
            return false;
        };
        self.stats.duplicates += 1;
        if !con {
            return true;
        }
        match &e.state {
            DedupState::Done(Some(reply)) => {
                let size = self.config.max_message_size;
                let mut b = self.pool.pop().unwrap_or_else(|| Vec::with_capacity(size));
                b.clear();
                b.extend_from_slice(reply);
                self.send(peer, b);
            }
            DedupState::EmptyAck => {
                let ack = self.empty_message(MessageType::Ack, mid);
                self.send(peer, ack);
            }
            DedupState::Done(None) => {}
            DedupState::Pending => {
                // The application is still working on it: acknowledge now so
                // the client stops retransmitting (§5.2.2).
                let handle = self
                    .pending
                    .iter()
                    .find(|(_, p)| p.peer == peer && p.mid == mid && p.con && !p.acked)
                    .map(|(h, _)| *h);
                if let Some(h) = handle {
                    let _ = self.accept(self.now, ResponseHandle(h));
                }
            }
        }
        true
    }

    // ----- input ------------------------------------------------------------

    fn reply_rst(&mut self, peer: A, mid: u16) {
        let rst = self.empty_message(MessageType::Rst, mid);
        self.stats.resets_sent += 1;
        self.send(peer, rst);
    }

    /// Processes a datagram received from `from` on a unicast address.
    ///
    /// Malformed input is answered as RFC 7252 says (RST for a malformed CON,
    /// silence otherwise) and counted in [`Stats`]; it never changes other
    /// state.
    ///
    /// ```
    /// # use coap_proto::endpoint::{Config, Endpoint, Event};
    /// # use coap_proto::Instant;
    /// let mut server: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// server.handle_datagram(Instant::ZERO, 3, b"\x40\x00\x00\x05"); // ping
    /// let mut buf = [0u8; 16];
    /// let t = server.poll_transmit(&mut buf)?.unwrap();
    /// assert_eq!(&buf[..t.len], &[0x70, 0x00, 0x00, 0x05]); // RST, same MID
    /// assert!(server.poll_event().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handle_datagram(&mut self, now: Instant, from: A, datagram: &[u8]) {
        self.input(now, from, datagram, false);
    }

    /// Processes a datagram that arrived on a multicast group address
    /// (RFC 7252 §8.2): only NON requests are accepted, answers are delayed
    /// by a random Leisure, and no Reset or error answer is sent.
    ///
    /// ```
    /// # use coap_proto::endpoint::{Config, Endpoint, Event};
    /// # use coap_proto::Instant;
    /// let mut server: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// server.handle_multicast_datagram(Instant::ZERO, 3, b"\x40\x00\x00\x05"); // CON ping
    /// let mut buf = [0u8; 16];
    /// assert!(server.poll_transmit(&mut buf)?.is_none()); // no RST to multicast
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handle_multicast_datagram(&mut self, now: Instant, from: A, datagram: &[u8]) {
        self.input(now, from, datagram, true);
    }

    fn input(&mut self, now: Instant, from: A, datagram: &[u8], multicast: bool) {
        let now = self.advance(now);
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += datagram.len() as u64;
        self.expire_dedup(now, 8);
        if datagram.len() > self.config.max_message_size {
            self.stats.oversized += 1;
            if let Some(h) = Header::peek(datagram)
                && h.version == 1
                && h.ty == MessageType::Con
                && !multicast
            {
                self.reply_rst(from, h.message_id);
            }
            return;
        }
        // One pass validates the datagram and checks its critical options.
        let (msg, critical) =
            match Message::parse_fold(datagram, CriticalCheck::default(), CriticalCheck::step) {
                Ok(parsed) => parsed,
                Err(e) => {
                    self.stats.format_errors += 1;
                    // RFC 7252 §4.2: a malformed CON is rejected with RST; §3:
                    // unknown versions are silently ignored; §4.3: NON silence.
                    if let Some(h) = e.header
                        && h.version == 1
                        && h.ty == MessageType::Con
                        && !multicast
                    {
                        self.reply_rst(from, h.message_id);
                    }
                    return;
                }
            };
        self.note_heard(now, from);
        let code = msg.code();
        let ty = msg.ty();
        if multicast && (ty != MessageType::Non || !code.is_request()) {
            // §8.1: multicast requests are NON; nothing else belongs here.
            self.stats.unexpected += 1;
            return;
        }
        if code.is_empty() {
            self.input_empty(now, from, &msg);
        } else if code.class() == 0 {
            self.input_request(now, from, datagram, &msg, critical.bad, multicast);
        } else if code.is_response() {
            self.input_response(now, from, datagram, &msg, critical.bad);
        } else {
            // Reserved classes 1, 3, 6, 7: reject (§4.2, §4.3).
            self.stats.unexpected += 1;
            if ty == MessageType::Con {
                self.reply_rst(from, msg.message_id());
            }
        }
    }

    fn input_empty(&mut self, now: Instant, from: A, msg: &Message<'_>) {
        let mid = msg.message_id();
        match msg.ty() {
            // §4.3: a CON ping is answered with RST.
            MessageType::Con => self.reply_rst(from, mid),
            MessageType::Non => self.stats.unexpected += 1,
            MessageType::Ack => match self.by_mid.get(&(from, mid)).copied() {
                Some(MidOwner::Request(id)) => self.request_acked(now, id),
                Some(MidOwner::Separate(id)) => {
                    if let Some(s) = self.separate.remove(&id) {
                        self.by_mid.remove(&(from, mid));
                        self.disarm(Some(s.deadline), Timer::Separate(id));
                        self.recycle(s.datagram);
                        self.push_event(
                            Event::ResponseDelivered(ResponseHandle(s.handle)),
                            Hold::Separate,
                        );
                    }
                }
                Some(MidOwner::Notification(key)) => self.notification_acked(now, key, mid),
                None => self.stats.unexpected += 1,
            },
            MessageType::Rst => {
                self.stats.resets_received += 1;
                match self.by_mid.get(&(from, mid)).copied() {
                    Some(MidOwner::Request(id)) => {
                        let ping = self.requests.get(&id).is_some_and(|r| r.ping);
                        let ev = if ping {
                            Event::Pong(RequestId(id))
                        } else {
                            Event::Reset(RequestId(id))
                        };
                        self.finish_request(now, id, Some(ev));
                    }
                    Some(MidOwner::Separate(id)) => {
                        if let Some(s) = self.separate.remove(&id) {
                            self.by_mid.remove(&(from, mid));
                            self.disarm(Some(s.deadline), Timer::Separate(id));
                            self.recycle(s.datagram);
                            self.push_event(
                                Event::ResponseFailed(ResponseHandle(s.handle)),
                                Hold::Separate,
                            );
                        }
                    }
                    // RFC 7641 §4.5: a Reset rejecting a CON or NON
                    // notification: the client is no longer interested.
                    Some(MidOwner::Notification(key)) => {
                        self.end_notification(now, key, Event::NotificationRejected);
                    }
                    None => self.stats.unexpected += 1,
                }
            }
        }
    }

    /// An empty ACK for one of our CON requests: stop retransmitting and wait
    /// for the separate response (§5.2.2).
    fn request_acked(&mut self, now: Instant, id: u64) {
        let timeout = self.config.separate_response_timeout;
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        if req.state != ReqState::AwaitAck {
            self.stats.unexpected += 1;
            return;
        }
        if req.ping {
            // An ACK to a ping is odd but answers it (§4.3).
            self.finish_request(now, id, Some(Event::Pong(RequestId(id))));
            return;
        }
        req.state = ReqState::AwaitResponse;
        // A re-registration or deregistration is the endpoint's own
        // exchange: the application hears nothing of it.
        let internal = self
            .observations
            .get(&id)
            .is_some_and(|o| o.established || o.deregistering);
        let old = req.deadline.replace(now + timeout);
        self.disarm(old, Timer::Request(id));
        self.arm(now + timeout, Timer::Request(id));
        if !internal {
            self.push_event(Event::Acknowledged(RequestId(id)), Hold::Nothing);
        }
        self.release_outstanding(now, id);
    }

    fn input_request(
        &mut self,
        now: Instant,
        from: A,
        datagram: &[u8],
        msg: &Message<'_>,
        bad_option: Option<OptionNumber>,
        multicast: bool,
    ) {
        let mid = msg.message_id();
        let con = match msg.ty() {
            MessageType::Con => true,
            MessageType::Non => false,
            // A request in an ACK or RST is meaningless: ignore it.
            MessageType::Ack | MessageType::Rst => {
                self.stats.unexpected += 1;
                return;
            }
        };
        if self.dedup_check(from, mid, con) {
            return;
        }
        let token = Tok::new(msg.token());
        if let Some(bad) = bad_option {
            self.stats.bad_options += 1;
            if con {
                // §5.4.1: 4.02 Bad Option with a diagnostic payload.
                self.dedup_insert(now, from, mid, con);
                let mut text = [0u8; 40];
                let n = diagnostic(&mut text, bad.0);
                let reply = self.encode_with(
                    MessageType::Ack,
                    Code::BAD_OPTION,
                    mid,
                    token.as_slice(),
                    |enc| {
                        enc.payload(text.get(..n).unwrap_or_default())?;
                        Ok(())
                    },
                );
                if let Ok(reply) = reply {
                    self.dedup_done(from, mid, Some(&reply));
                    self.send(from, reply);
                }
            }
            return;
        }
        if self.pending.len() >= self.config.max_pending
            || self.events.len() >= self.config.max_events
        {
            self.stats.busy += 1;
            if con {
                // Table full: 5.03 Service Unavailable with Max-Age, not cached.
                let max_age = self.config.busy_max_age;
                if let Ok(reply) = self.encode_with(
                    MessageType::Ack,
                    Code::SERVICE_UNAVAILABLE,
                    mid,
                    token.as_slice(),
                    |enc| {
                        enc.option_uint(OptionNumber::MAX_AGE, max_age)?;
                        Ok(())
                    },
                ) {
                    self.send(from, reply);
                }
            }
            return;
        }
        self.dedup_insert(now, from, mid, con);
        let handle = self.new_id();
        let expires = now + self.config.transmission.exchange_lifetime();
        let ack_deadline = match (con, self.config.separate_ack_delay) {
            (true, Some(d)) => Some(now + d),
            _ => None,
        };
        self.pending.insert(
            handle,
            Pending {
                peer: from,
                mid,
                token,
                con,
                multicast,
                acked: false,
                ack_deadline,
                expires,
            },
        );
        if let Some(at) = ack_deadline {
            self.arm(at, Timer::AckDelay(handle));
        }
        self.arm(expires, Timer::Pending(handle));
        self.stats.requests_in += 1;
        let buf = self.buffer();
        let event = Event::Request(IncomingRequest {
            handle: ResponseHandle(handle),
            peer: from,
            multicast,
            message: OwnedMessage::new(buf, datagram, msg),
        });
        self.push_event(event, Hold::Nothing);
    }

    fn input_response(
        &mut self,
        now: Instant,
        from: A,
        datagram: &[u8],
        msg: &Message<'_>,
        bad_option: Option<OptionNumber>,
    ) {
        let mid = msg.message_id();
        let token = Tok::new(msg.token());
        match msg.ty() {
            MessageType::Ack => {
                // Piggybacked: match by (peer, MID) and check the token (§5.3.2).
                let Some(MidOwner::Request(id)) = self.by_mid.get(&(from, mid)).copied() else {
                    self.stats.unexpected += 1;
                    return;
                };
                let ok = self
                    .requests
                    .get(&id)
                    .is_some_and(|r| r.token == token && r.state == ReqState::AwaitAck && !r.ping);
                if !ok || bad_option.is_some() {
                    self.stats.unexpected += 1;
                    return;
                }
                if self.notification_blocked(id, msg) {
                    // No event slot: dropped unacknowledged; our request is
                    // retransmitted and the answer replayed.
                    self.stats.busy += 1;
                    return;
                }
                self.deliver_response(now, id, from, datagram, msg, true);
            }
            MessageType::Rst => self.stats.unexpected += 1,
            ty @ (MessageType::Con | MessageType::Non) => {
                let con = ty == MessageType::Con;
                if self.dedup_check(from, mid, con) {
                    return;
                }
                let id = self
                    .by_token
                    .get(&(from, token))
                    .or_else(|| self.mcast_by_token.get(&token))
                    .copied()
                    .filter(|id| {
                        self.requests.get(id).is_some_and(|r| {
                            r.state != ReqState::Queued
                                || self.observations.get(id).is_some_and(|o| o.established)
                        })
                    });
                let Some(id) = id else {
                    // §5.3.2: an unsolicited CON response is rejected with
                    // RST; so is a NON notification nobody observes
                    // (RFC 7641 §3.5 makes it optional, §3.6 relies on it).
                    self.stats.unexpected += 1;
                    if con || msg.has_option(OptionNumber::OBSERVE) {
                        self.reply_rst(from, mid);
                    }
                    return;
                };
                if bad_option.is_some() {
                    // §5.4.1: reject the response (RST for CON).
                    self.stats.bad_options += 1;
                    if con {
                        self.reply_rst(from, mid);
                    }
                    return;
                }
                if self.notification_blocked(id, msg) {
                    // No event slot: not acknowledged, so the server sends
                    // it again (or a newer one).
                    self.stats.busy += 1;
                    return;
                }
                self.dedup_insert(now, from, mid, con);
                if con {
                    let ack = self.empty_message(MessageType::Ack, mid);
                    self.dedup_done(from, mid, Some(&ack));
                    self.send(from, ack);
                } else {
                    self.dedup_done(from, mid, None);
                }
                self.deliver_response(now, id, from, datagram, msg, false);
            }
        }
    }

    fn deliver_response(
        &mut self,
        now: Instant,
        id: u64,
        from: A,
        datagram: &[u8],
        msg: &Message<'_>,
        exchange: bool,
    ) {
        let Some(req) = self.requests.get(&id) else {
            return;
        };
        if let Some(obs) = self.observations.get(&id).copied() {
            self.observation_response(now, id, obs, from, datagram, msg, exchange);
            return;
        }
        let multicast = req.multicast;
        if multicast && self.events.len() >= self.config.max_events {
            self.stats.busy += 1;
            return;
        }
        self.stats.responses_in += 1;
        let buf = self.buffer();
        let event = Event::Response(Response {
            id: RequestId(id),
            peer: from,
            message: OwnedMessage::new(buf, datagram, msg),
        });
        if multicast {
            self.push_event(event, Hold::Nothing);
        } else {
            self.finish_request(now, id, Some(event));
        }
    }
}

/// Writes "Unrecognized critical option N" into `out`, returning the length.
fn diagnostic(out: &mut [u8; 40], number: u16) -> usize {
    const PREFIX: &[u8] = b"Unrecognized critical option ";
    let mut n = 0;
    for (d, s) in out.iter_mut().zip(PREFIX) {
        *d = *s;
        n += 1;
    }
    let mut digits = [0u8; 5];
    let mut v = number;
    let mut k = 0;
    loop {
        if let Some(d) = digits.get_mut(k) {
            *d = b'0' + (v % 10) as u8;
        }
        k += 1;
        v /= 10;
        if v == 0 || k == digits.len() {
            break;
        }
    }
    for i in (0..k).rev() {
        if let (Some(d), Some(s)) = (out.get_mut(n), digits.get(i)) {
            *d = *s;
            n += 1;
        }
    }
    n
}

/// RFC 7252 §5.4.1, folded over the options while the datagram is parsed
/// ([`Message::parse_fold`]): the first unrecognized critical option, if
/// any. Options breaking their length bounds or repeated when not
/// repeatable count as unrecognized (§5.4.3, §5.4.5).
#[derive(Clone, Copy, Default)]
struct CriticalCheck {
    previous: Option<OptionNumber>,
    bad: Option<OptionNumber>,
}

impl CriticalCheck {
    fn step(mut self, o: OptionRef<'_>) -> Self {
        let repeated = self.previous == Some(o.number);
        self.previous = Some(o.number);
        if self.bad.is_none()
            && o.number.is_critical()
            && (o.number.info().is_none() || o.problem(repeated).is_some())
        {
            self.bad = Some(o.number);
        }
        self
    }
}
