//! Block-wise transfers for clients (RFC 7959), as a sans-IO layer on the
//! public [`Endpoint`] API.
//!
//! The application sends requests that may carry or fetch large bodies
//! through [`Transfers::request`] instead of [`Endpoint::request`], and hands
//! every [`Event`] the endpoint reports to [`Transfers::handle_event`]. The
//! layer consumes the events of its own exchanges, issues the follow-up
//! block requests itself, and reports what the application cares about as
//! [`ClientEvent`]s: one [`Response`](ClientEvent::Response) with the whole
//! body, [`Progress`](ClientEvent::Progress) after each block, or
//! [`Failed`](ClientEvent::Failed). Every other event is passed through
//! unchanged as [`ClientEvent::Endpoint`]. Like the endpoint, the layer holds
//! no clock, socket or RNG and does bounded work per call; it has no timers
//! of its own (each transfer always waits on exactly one endpoint request,
//! whose end the endpoint reports).
//!
//! What it does, by RFC 7959 section:
//!
//! - **Block2 (§2.4)**: a response with a Block2 option and M set is
//!   continued with requests for NUM+1 carrying the same options as the
//!   original request (minus Observe, §2.6), in the block size the server
//!   chose (late negotiation; a smaller server size is honoured, §2.3). The
//!   application may ask for a size on the first request
//!   ([`ClientConfig::block2_szx`], early negotiation), and Size2:0 asks the
//!   server for the total (§4, [`ClientConfig::ask_size2`]). The ETag and
//!   Content-Format of every block are compared with the first block's
//!   (§2.4, §2.3); on a change a GET or FETCH transfer restarts from block 0
//!   or fails ([`ClientConfig::on_etag_change`]); the response of an unsafe
//!   method (or of a FETCH whose body went block-wise) cannot be fetched
//!   again without sending the request again, so it fails.
//! - **Block1 (§2.5)**: a request body larger than the block size
//!   ([`ClientConfig::block1_szx`], lowered until a block fits
//!   `Config::max_message_size`) goes in blocks, Size1 on the first (§4),
//!   each answered 2.31 Continue (§2.9.1). A smaller SZX in the server's
//!   answer is honoured and NUM recomputed from the byte offset (§2.5,
//!   Figure 9); a stateless server's 2.04 per block (§2.3, Figure 8) also
//!   continues the upload. A 4.13 (§2.9.3) with Size1 below the body size
//!   fails the transfer; a 4.13 carrying a smaller Block1 SZX, or one with
//!   Size1 at least the body size, or one to a request sent whole (the hint
//!   "try Block1"), restarts the upload with a smaller block size. A 4.08
//!   (§2.9.2) restarts an idempotent upload (PUT, iPATCH, FETCH) from block
//!   0; for other methods it is the final response.
//! - **Block1 then Block2 (§2.7, §3.3)**: when the answer to the last Block1
//!   block carries Block2 with M set, the layer fetches the rest with the
//!   same options, no Block1 and no payload (the FETCH body is repeated only
//!   when it went in one message).
//! - **Request-Tag (RFC 9175 §3)**: two concurrent block-wise operations of
//!   an unsafe method to the same resource of the same peer must not be
//!   "matchable" by the server. With [`RequestTags::WhenConcurrent`] (the
//!   default) a transfer carries no Request-Tag unless another live transfer
//!   to the same peer and resource already goes without one (RFC 9175 §3.4
//!   asks for compact messages: no option where it is not needed); with
//!   [`RequestTags::Always`] every unsafe transfer has one. GET and FETCH
//!   never need one (their Block2 transfers are stateless). The tag is the
//!   same in every request of the transfer, the Block2 phase included
//!   (§3.4). The layer has no RNG: a tag is a keyed permutation of a 32-bit
//!   per-layer counter under [`ClientConfig::tag_seed`], so tags never repeat
//!   within 2^32 transfers and are unpredictable to whoever does not know
//!   the seed. Drivers seed it from the OS (`coap_proto::udp::os_seed`).
//! - **Retries**: when a block request times out, it is sent again as a new
//!   exchange up to [`ClientConfig::block_retries`] times when that is safe:
//!   always for a non-final Block1 block (a server acknowledges a repeated
//!   block again) and for Block2 follow-ups, and for the final or only
//!   request of idempotent methods only (GET, FETCH, PUT, DELETE, iPATCH).
//!   Note that after a timeout the endpoint holds further requests to that
//!   peer to PROBING_RATE (RFC 7252 §4.7; 1 byte/s by default), so the retry
//!   of a 1 KiB block that was sent 5 times waits about 5000 s, far past the
//!   EXCHANGE_LIFETIME after which a server may drop a partial upload
//!   (RFC 7959 §2.5; the upload then restarts on the 4.08, or fails). On
//!   lossy links, raise `TransmissionParameters::probing_rate` (§4.8 lets an
//!   application adjust it).
//!
//! - **Observe with Block2 (§2.6, §3.4)**: [`Transfers::observe`]
//!   registers an observation (RFC 7641) through [`Endpoint::observe`] and
//!   reports each notification whole as [`ClientEvent::Notification`]. A
//!   notification carrying only the first Block2 block is completed with
//!   plain requests for NUM 1, 2, ...: the registration's options without
//!   Observe, each with a token of its own (Figure 12: "the requests for
//!   additional blocks cannot make use of the token of the Observation
//!   relationship"), in the notification's block size. Their ETag must be
//!   the notification's. One completion runs per observation: a newer
//!   notification abandons the one in flight (never delivered, so the
//!   values keep RFC 7641 §3.4 order); a block of a newer version ends it
//!   ([`ClientEvent::NotificationFailed`]) until that version's own
//!   notification starts again. [`Transfers::cancel_observe`] ends the
//!   observation (actively or passively, §3.6) and its completion.
//!
//! # Driving the layer
//!
//! The layer is a filter on the endpoint's events; it never polls the
//! endpoint itself. Its call contract:
//!
//! 1. Start work with [`Transfers::request`] (instead of
//!    [`Endpoint::request`]) or [`Transfers::observe`] (instead of
//!    [`Endpoint::observe`]), passing the same endpoint every time.
//! 2. Drive the endpoint as its own contract says (`handle_datagram`,
//!    `handle_timeout`, `poll_transmit`), and pass **every** event of
//!    [`Endpoint::poll_event`] to [`Transfers::handle_event`]. The layer
//!    consumes the `Response`, `Acknowledged`, `TimedOut`, `Reset` and
//!    `Notification` events of the requests and observations it started;
//!    everything else comes back as [`ClientEvent::Endpoint`] for the
//!    application (incoming requests, responses to its own
//!    [`Endpoint::request`]s, ...).
//! 3. After `handle_event`, drain `poll_transmit` again: a follow-up block
//!    request may be queued. The layer has no timers; the endpoint's
//!    `poll_timeout` covers every transfer.
//! 4. End work early with [`Transfers::cancel`] or
//!    [`Transfers::cancel_observe`], never with the endpoint's `cancel` on
//!    a request of the layer (the layer would wait for an event that never
//!    comes).
//!
//! Bounds: at most [`ClientConfig::max_transfers`] transfers; a response
//! body above [`ClientConfig::max_body`] fails the transfer (checked against
//! Size2 as soon as it is known); all transfers together hold at most
//! [`ClientConfig::max_memory`] bytes (request bodies, reassembly buffers,
//! and [`TRANSFER_BYTES`] of bookkeeping each). Nothing a peer sends
//! panics or grows memory past these bounds; a server that breaks the block
//! protocol fails the transfer ([`FailReason::BadBlock`]).
//!
//! ```
//! use coap_proto::client::{ClientConfig, ClientEvent, Transfers};
//! use coap_proto::endpoint::{Config, Endpoint, Event};
//! use coap_proto::server::{Reply, Resource, Server, ServerConfig};
//! use coap_proto::{Code, ContentFormat, Instant, MessageBuf, MessageType, OptionNumber};
//!
//! // A server with a 3000-byte resource, and a client, back to back.
//! let big: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
//! let body = big.clone();
//! let mut server: Server<u8> = Server::new(ServerConfig::default());
//! server.add(Resource::new("/big").get(move |_, _| Reply::content(ContentFormat::OCTET_STREAM, body.clone())))?;
//! let mut sep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
//! let mut cep: Endpoint<u8> = Endpoint::new(Config::default(), 2);
//! let mut transfers: Transfers<u8> = Transfers::new(ClientConfig::default());
//! let now = Instant::ZERO;
//!
//! let mut get = MessageBuf::new(MessageType::Con, Code::GET);
//! get.add_option(OptionNumber::URI_PATH, "big");
//! let id = transfers.request(&mut cep, now, 2, get)?;
//!
//! let mut buf = [0u8; 1500];
//! let mut progress = Vec::new();
//! let response = loop {
//!     while let Some(t) = cep.poll_transmit(&mut buf)? {
//!         sep.handle_datagram(now, 1, &buf[..t.len]);
//!     }
//!     while let Some(Event::Request(req)) = sep.poll_event() {
//!         server.handle(&mut sep, now, req, &mut ());
//!     }
//!     while let Some(t) = sep.poll_transmit(&mut buf)? {
//!         cep.handle_datagram(now, 2, &buf[..t.len]);
//!     }
//!     let mut done = None;
//!     while let Some(ev) = cep.poll_event() {
//!         match transfers.handle_event(&mut cep, now, ev) {
//!             Some(ClientEvent::Progress { done, total, .. }) => progress.push((done, total)),
//!             Some(ClientEvent::Response { id: rid, message, .. }) if rid == id => done = Some(message),
//!             other => panic!("{other:?}"),
//!         }
//!     }
//!     if let Some(m) = done { break m; }
//! };
//! assert_eq!((response.code(), response.payload()), (Code::CONTENT, &big[..]));
//! // Late negotiation: the server's 1024-byte blocks; Size2 gave the total.
//! assert_eq!(progress, [(1024, Some(3000)), (2048, Some(3000))]);
//! assert!(transfers.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Observing a resource larger than one block: each notification of the
//! server carries block 0, the layer GETs the rest, and the application
//! sees one complete notification.
//!
//! ```
//! use coap_proto::client::{ClientConfig, ClientEvent, Transfers};
//! use coap_proto::endpoint::{Config, Deregister, Endpoint};
//! use coap_proto::server::{Reply, Resource, Server, ServerConfig};
//! use coap_proto::{Code, ContentFormat, Instant, MessageBuf, MessageType, OptionNumber};
//!
//! /// Moves everything between the two endpoints; returns the payloads of
//! /// the complete notifications.
//! fn run(
//!     server: &mut Server<u8, u32>, value: &mut u32, sep: &mut Endpoint<u8>,
//!     cep: &mut Endpoint<u8>, transfers: &mut Transfers<u8>,
//! ) -> Vec<Vec<u8>> {
//!     let (now, mut buf, mut seen) = (Instant::ZERO, [0u8; 1500], Vec::new());
//!     for _ in 0..10 {
//!         while let Ok(Some(t)) = cep.poll_transmit(&mut buf) { sep.handle_datagram(now, 1, &buf[..t.len]); }
//!         while let Some(ev) = sep.poll_event() { server.handle_event(sep, now, ev, value); }
//!         while let Ok(Some(t)) = sep.poll_transmit(&mut buf) { cep.handle_datagram(now, 2, &buf[..t.len]); }
//!         while let Some(ev) = cep.poll_event() {
//!             if let Some(ClientEvent::Notification { message, .. }) = transfers.handle_event(cep, now, ev) {
//!                 seen.push(message.payload().to_vec());
//!             }
//!         }
//!     }
//!     seen
//! }
//!
//! let mut sc = ServerConfig::default();
//! sc.block2_szx = 2; // 64-byte blocks
//! let mut server: Server<u8, u32> = Server::new(sc);
//! let log = server.add(Resource::new("/log").observable().get(|v: &mut u32, _| {
//!     Reply::content(ContentFormat::TEXT_PLAIN, v.to_string().repeat(100))
//! }))?;
//! let mut value = 7;
//! let mut sep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
//! let mut cep: Endpoint<u8> = Endpoint::new(Config::default(), 2);
//! let mut transfers: Transfers<u8> = Transfers::new(ClientConfig::default());
//! let mut get = MessageBuf::new(MessageType::Con, Code::GET);
//! get.add_option(OptionNumber::URI_PATH, "log");
//! let id = transfers.observe(&mut cep, Instant::ZERO, 2, get)?;
//! let first = run(&mut server, &mut value, &mut sep, &mut cep, &mut transfers);
//! assert_eq!(first, ["7".repeat(100).into_bytes()]);
//! value = 8;
//! server.notify_changed(&mut sep, Instant::ZERO, log, &mut value);
//! let next = run(&mut server, &mut value, &mut sep, &mut cep, &mut transfers);
//! assert_eq!(next, ["8".repeat(100).into_bytes()]);
//! transfers.cancel_observe(&mut cep, Instant::ZERO, id, Deregister::Passive)?;
//! assert!(transfers.is_empty());
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

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use crate::endpoint::{Address, Deregister, Endpoint, Error as EndpointError, Event, RequestId};
use crate::message::{
    Block, Code, ContentFormat, EncodeError, Encoder, MAX_TOKEN_LEN, Message, MessageBuf,
    MessageType, OptionNumber, encode_uint,
};
use crate::time::Instant;

/// Bookkeeping bytes charged per transfer on top of its request message and
/// reassembly buffer, within [`ClientConfig::max_memory`].
///
/// ```
/// use coap_proto::client::{ClientConfig, TRANSFER_BYTES};
/// let c = ClientConfig::default();
/// assert!(c.max_transfers * TRANSFER_BYTES < c.max_memory);
/// ```
pub const TRANSFER_BYTES: usize = 256;

/// Upper bound of the option bytes the layer adds to a request (Block2,
/// Block1, Size2, Size1 and Request-Tag, each with its header and deltas).
const ADDED_OPTION_BYTES: usize = 36;

/// How often a 4.13 may shrink the block size of one transfer (there are
/// only 7 sizes).
const MAX_SHRINKS: u8 = 7;

// ----- configuration ------------------------------------------------------------

/// What a Block2 transfer of a GET or FETCH does when a block's ETag or
/// Content-Format differs from the first block's (RFC 7959 §2.4: "the
/// requester has the option of attempting to retrieve fresh values").
///
/// ```
/// use coap_proto::client::{ClientConfig, OnEtagChange};
/// assert_eq!(ClientConfig::default().on_etag_change, OnEtagChange::Restart);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnEtagChange {
    /// Start again from block 0, at most [`ClientConfig::max_restarts`]
    /// times; then fail.
    Restart,
    /// Fail with [`FailReason::RepresentationChanged`].
    Fail,
}

/// When a transfer carries a Request-Tag option (RFC 9175 §3); see the
/// [module docs](self).
///
/// ```
/// use coap_proto::client::{ClientConfig, RequestTags};
/// assert_eq!(ClientConfig::default().request_tags, RequestTags::WhenConcurrent);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestTags {
    /// Only when another live transfer of this layer to the same peer and
    /// resource goes without one.
    WhenConcurrent,
    /// On every transfer of an unsafe method (not GET or FETCH).
    Always,
}

/// Settings and bounds of the layer. A transfer keeps the configuration it
/// was started with.
///
/// ```
/// use coap_proto::client::ClientConfig;
/// let mut c = ClientConfig::default();
/// c.block1_szx = 2; // upload in 64-byte blocks
/// c.block2_szx = Some(2); // and ask for 64-byte blocks (early negotiation)
/// assert_eq!(c.max_body, 16 * 1024 * 1024);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The Block1 size exponent for request bodies (block size
    /// 2^(SZX+4), 0..=6); a body larger than one block goes block-wise.
    /// Default 6 (1024 bytes). A Block1 option in the application's request
    /// overrides it for that request.
    pub block1_szx: u8,
    /// Ask for this Block2 size on the first request (early negotiation,
    /// RFC 7959 §2.4), or let the server choose (`None`, the default). A
    /// Block2 option in the application's request overrides it.
    pub block2_szx: Option<u8>,
    /// Send Size2:0 with the first request, asking the server for the total
    /// size (RFC 7959 §4), which [`ClientEvent::Progress`] reports. Default
    /// true.
    pub ask_size2: bool,
    /// The largest response body one transfer reassembles. Default 16 MiB.
    pub max_body: usize,
    /// The bytes all transfers may hold together: request messages,
    /// reassembly buffers and [`TRANSFER_BYTES`] each. Default 64 MiB.
    pub max_memory: usize,
    /// The most transfers at once. Default 256.
    pub max_transfers: usize,
    /// What a changed representation does to a GET or FETCH transfer.
    /// Default [`OnEtagChange::Restart`].
    pub on_etag_change: OnEtagChange,
    /// How often one transfer may start again (a changed representation,
    /// a 4.08 to an idempotent upload). Default 3.
    pub max_restarts: u8,
    /// How often one block request that timed out is sent again where that
    /// is safe (see the [module docs](self)). Default 3.
    pub block_retries: u8,
    /// When to send a Request-Tag. Default [`RequestTags::WhenConcurrent`].
    pub request_tags: RequestTags,
    /// The key of the Request-Tag values (see the [module docs](self)).
    /// Default 0; drivers use an OS seed.
    pub tag_seed: u64,
    /// Report [`ClientEvent::Progress`] after each block. Default true.
    pub progress: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            block1_szx: 6,
            block2_szx: None,
            ask_size2: true,
            max_body: 16 * 1024 * 1024,
            max_memory: 64 * 1024 * 1024,
            max_transfers: 256,
            on_etag_change: OnEtagChange::Restart,
            max_restarts: 3,
            block_retries: 3,
            request_tags: RequestTags::WhenConcurrent,
            tag_seed: 0,
            progress: true,
        }
    }
}

// ----- identifiers, events, errors -------------------------------------------------

/// Identifies a transfer from [`Transfers::request`] until its final
/// [`ClientEvent`].
///
/// ```
/// use coap_proto::client::TransferId;
/// assert_eq!(TransferId::from_raw(4).raw(), 4);
/// assert_eq!(TransferId::from_raw(4).to_string(), "xfer#4");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransferId(u64);

impl TransferId {
    /// The raw value, unique for the layer's lifetime.
    ///
    /// ```
    /// # use coap_proto::client::TransferId;
    /// assert_eq!(TransferId::from_raw(1).raw(), 1);
    /// ```
    #[must_use]
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// Rebuilds an id from [`raw`](Self::raw).
    ///
    /// ```
    /// # use coap_proto::client::TransferId;
    /// let id = TransferId::from_raw(9);
    /// assert_eq!(id, TransferId::from_raw(id.raw()));
    /// ```
    #[must_use]
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }
}

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "xfer#{}", self.0)
    }
}

/// Which body a [`ClientEvent::Progress`] is about.
///
/// ```
/// use coap_proto::client::Phase;
/// assert_ne!(Phase::Upload, Phase::Download);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The request body (Block1).
    Upload,
    /// The response body (Block2).
    Download,
}

/// Why a transfer failed.
///
/// ```
/// use coap_proto::client::FailReason;
/// assert_eq!(FailReason::TimedOut.to_string(), "a block request got no answer");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailReason {
    /// A request got no answer, after the retries that were safe.
    TimedOut,
    /// The server answered a request with a Reset.
    Reset,
    /// The response body is larger than [`ClientConfig::max_body`] (by
    /// Size2 or by the data).
    BodyTooLarge,
    /// [`ClientConfig::max_memory`] would be exceeded.
    OutOfMemory,
    /// The server cannot take the request body (4.13, RFC 7959 §2.9.3),
    /// with the largest size it accepts if it said (Size1).
    RequestTooLarge {
        /// The server's Size1, if any.
        max: Option<u32>,
    },
    /// The representation changed during a Block2 transfer (ETag or
    /// Content-Format, RFC 7959 §2.4, §2.3), and the transfer could not or
    /// may not start again.
    RepresentationChanged,
    /// The server broke the block protocol: a block other than the one
    /// asked for, a payload that does not match its block size (§2.3), a
    /// reserved SZX, or a body past the largest block number (§2.2).
    BadBlock,
    /// A follow-up request could not be issued.
    Endpoint(EndpointError),
    /// The server answered a block request of a notification's completion
    /// (RFC 7959 §2.6) with this error code, e.g. 4.02 when the
    /// representation shrank below the block asked for.
    ErrorResponse(Code),
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimedOut => f.write_str("a block request got no answer"),
            Self::Reset => f.write_str("the server answered with a Reset"),
            Self::BodyTooLarge => f.write_str("the response body is over the size limit"),
            Self::OutOfMemory => f.write_str("the transfers' memory limit was reached"),
            Self::RequestTooLarge { max: Some(m) } => {
                write!(f, "the server accepts request bodies of at most {m} bytes")
            }
            Self::RequestTooLarge { max: None } => {
                f.write_str("the server cannot take the request body (4.13)")
            }
            Self::RepresentationChanged => {
                f.write_str("the representation changed during the transfer")
            }
            Self::BadBlock => f.write_str("the server broke the block-wise protocol"),
            Self::Endpoint(e) => write!(f, "could not send a block request: {e}"),
            Self::ErrorResponse(c) => write!(f, "the server answered a block request with {c}"),
        }
    }
}

/// What the layer reports from [`Transfers::handle_event`].
///
/// Every transfer ends with exactly one `Response` or `Failed`, unless the
/// application cancels it; `Progress` events come before. An observation
/// ([`Transfers::observe`]) reports `Notification`s (and
/// `NotificationFailed`, `Progress`) until it ends the same way.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientEvent<A> {
    /// The final response, with the whole body as its payload. Its options
    /// are those of the last response received, without Block1, Block2 and
    /// Size2 (the ETag, Content-Format, Location-Path, ... of the body).
    /// An error answer (4.xx, 5.xx) during the transfer ends it and is
    /// reported here as it came.
    Response {
        /// The transfer.
        id: TransferId,
        /// Who answered.
        peer: A,
        /// The response; [`MessageBuf::payload`] is the whole body.
        message: MessageBuf,
    },
    /// A block went through: `done` bytes of the body in `phase` so far, of
    /// `total` if known (the request body's length, or the server's Size2).
    Progress {
        /// The transfer.
        id: TransferId,
        /// The request or the response body.
        phase: Phase,
        /// Bytes acknowledged (upload) or received (download).
        done: usize,
        /// The body's size, if known.
        total: Option<usize>,
    },
    /// The transfer ended without a response.
    Failed {
        /// The transfer.
        id: TransferId,
        /// Why.
        reason: FailReason,
    },
    /// A notification of an observation ([`Transfers::observe`], RFC
    /// 7641), newer than every one delivered before (§3.4), with the whole
    /// representation as its payload: the notification's options (Observe,
    /// ETag, Content-Format, Max-Age) without Block2 and Size2. The
    /// observation stays open.
    Notification {
        /// The observation.
        id: TransferId,
        /// Who notified.
        peer: A,
        /// The notification; [`MessageBuf::payload`] is the whole body.
        message: MessageBuf,
    },
    /// The rest of a block-wise notification (RFC 7959 §2.6) could not be
    /// fetched; the observation stays open, and the next notification is
    /// completed as usual. `RepresentationChanged` means a block of a newer
    /// version came back: its own notification follows.
    NotificationFailed {
        /// The observation.
        id: TransferId,
        /// Why.
        reason: FailReason,
    },
    /// An endpoint event that is not about a transfer, unchanged.
    Endpoint(Event<A>),
}

/// Why [`Transfers::request`] or [`Transfers::cancel`] refused.
///
/// ```
/// use coap_proto::client::ClientError;
/// assert_eq!(ClientError::NoCapacity.to_string(), "too many transfers or too much memory held");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientError {
    /// [`ClientConfig::max_transfers`] or [`ClientConfig::max_memory`]
    /// reached.
    NoCapacity,
    /// The request body needs more than 2^20 blocks (RFC 7959 §2.2) even
    /// at the configured block size.
    BodyTooLarge,
    /// Block-wise transfers to a multicast group are not supported.
    Multicast,
    /// [`Transfers::resume_block2`] was given a response without Block2
    /// and M set.
    NotBlockWise,
    /// The transfer is not (or no longer) known.
    UnknownTransfer,
    /// The endpoint refused the first request.
    Endpoint(EndpointError),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoCapacity => f.write_str("too many transfers or too much memory held"),
            Self::BodyTooLarge => f.write_str("the request body needs more than 2^20 blocks"),
            Self::Multicast => f.write_str("block-wise transfers to a multicast group"),
            Self::NotBlockWise => f.write_str("the response is not the first of more blocks"),
            Self::UnknownTransfer => f.write_str("unknown transfer"),
            Self::Endpoint(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for ClientError {}

impl From<EndpointError> for ClientError {
    fn from(e: EndpointError) -> Self {
        Self::Endpoint(e)
    }
}

// ----- transfer state ------------------------------------------------------------

/// The bytes of an option value the layer compares across blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tag8 {
    len: usize,
    bytes: [u8; 8],
}

impl Tag8 {
    fn of(value: &[u8]) -> Self {
        let mut bytes = [0u8; 8];
        for (d, s) in bytes.iter_mut().zip(value) {
            *d = *s;
        }
        Self {
            len: value.len(),
            bytes,
        }
    }
}

/// What identifies one version of a representation across its blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fingerprint {
    etag: Option<Tag8>,
    format: Option<ContentFormat>,
}

impl Fingerprint {
    fn of(msg: &Message<'_>) -> Self {
        Self {
            etag: msg.option(OptionNumber::ETAG).map(Tag8::of),
            format: msg.content_format(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Sending the request (in blocks, or whole); `num` is the Block1
    /// block in flight.
    Upload { num: u32 },
    /// Fetching Block2 block `num` of size `szx`.
    Download { num: u32, szx: u8 },
}

#[derive(Debug)]
struct Transfer<A> {
    peer: A,
    cfg: ClientConfig,
    /// The application's request; its payload is the request body.
    msg: MessageBuf,
    state: State,
    /// The request body goes in Block1 blocks of `up_szx`.
    blockwise: bool,
    up_szx: u8,
    /// Early Block2 negotiation for the request that gets the first block.
    early_szx: Option<u8>,
    /// The Request-Tag this layer adds (RFC 9175 §3), if any.
    tag: Option<[u8; 4]>,
    /// Which resource, for Request-Tag decisions (`None` for safe methods).
    key: Option<Vec<u8>>,
    /// The response body so far, and what its first block looked like.
    body: Vec<u8>,
    seen: Option<Fingerprint>,
    total: Option<usize>,
    /// Requests issued (0 before the first).
    sent: u64,
    retries: u8,
    restarts: u8,
    shrinks: u8,
    /// The bytes charged to `Transfers::memory`.
    cost: usize,
    /// For the completion of a notification (RFC 7959 §2.6): the
    /// observation, and the notification without its block options, which
    /// becomes the delivered message with the whole body as its payload.
    notify: Option<(u64, MessageBuf)>,
}

/// An observation through the layer ([`Transfers::observe`]).
#[derive(Debug)]
struct Observation<A> {
    peer: A,
    /// The endpoint's observation.
    rid: RequestId,
    /// The registration request (without Observe), which the follow-up
    /// block requests repeat (RFC 7959 §2.6).
    msg: MessageBuf,
    /// The internal transfer completing the newest notification, if any:
    /// at most one per observation.
    fetch: Option<u64>,
    /// The bytes charged to `Transfers::memory`.
    cost: usize,
}

/// What a response does to a transfer.
enum Action {
    /// Issue the next request; report progress (if any).
    Send(Option<(Phase, usize, Option<usize>)>),
    /// The final response.
    Deliver(MessageBuf),
    /// The end, without a response.
    Fail(FailReason),
}

fn is_safe(code: Code) -> bool {
    code == Code::GET || code == Code::FETCH
}

/// Methods whose request may be repeated with the same effect (RFC 7252
/// §5.1, RFC 8132 §2, §3).
fn is_idempotent(code: Code) -> bool {
    is_safe(code) || code == Code::PUT || code == Code::DELETE || code == Code::IPATCH
}

fn block_size(szx: u8) -> usize {
    1usize << (szx.min(6) + 4)
}

/// The final response message: `msg` without the block options, with
/// `body` as its payload (or its own payload when `body` is `None`).
fn final_message(msg: &Message<'_>, body: Option<Vec<u8>>) -> MessageBuf {
    let mut m = MessageBuf::from(*msg);
    m.remove_option(OptionNumber::BLOCK1);
    m.remove_option(OptionNumber::BLOCK2);
    m.remove_option(OptionNumber::SIZE2);
    if let Some(b) = body {
        m.set_payload(b);
    }
    m
}

/// The options that name the target resource, as the key of Request-Tag
/// decisions (RFC 9175 §3.3: matchable operations).
fn resource_key(msg: &MessageBuf) -> Vec<u8> {
    let mut key = Vec::new();
    for o in msg.options() {
        let n = o.number;
        if n == OptionNumber::URI_HOST
            || n == OptionNumber::URI_PORT
            || n == OptionNumber::URI_PATH
            || n == OptionNumber::URI_QUERY
            || n == OptionNumber::PROXY_URI
            || n == OptionNumber::PROXY_SCHEME
        {
            key.extend_from_slice(&n.0.to_be_bytes());
            key.extend_from_slice(
                &u32::try_from(o.value.len())
                    .unwrap_or(u32::MAX)
                    .to_be_bytes(),
            );
            key.extend_from_slice(o.value);
        }
    }
    key
}

/// A keyed permutation of 32-bit counters (every step is invertible).
fn permute(n: u32, seed: u64) -> u32 {
    let k0 = seed as u32;
    let k1 = (seed >> 32) as u32;
    let mut x = n ^ k0;
    x = x.wrapping_mul(0x9e37_79b1);
    x ^= x >> 16;
    x = x.wrapping_add(k1);
    x = x.wrapping_mul(0x85eb_ca6b);
    x ^= x >> 13;
    x = x.wrapping_mul(0xc2b2_ae35);
    x ^ (x >> 16)
}

/// Up to five options the layer adds, in ascending number order.
struct Added {
    items: [(OptionNumber, [u8; 4], usize); 5],
    len: usize,
}

impl Added {
    fn new() -> Self {
        Self {
            items: [(OptionNumber(0), [0; 4], 0); 5],
            len: 0,
        }
    }

    fn push(&mut self, number: OptionNumber, value: &[u8]) {
        if let Some(slot) = self.items.get_mut(self.len) {
            let mut v = [0u8; 4];
            for (d, s) in v.iter_mut().zip(value) {
                *d = *s;
            }
            *slot = (number, v, value.len().min(4));
            self.len += 1;
        }
    }

    fn push_uint(&mut self, number: OptionNumber, value: u32) {
        self.push(number, &encode_uint(value));
    }

    fn iter(&self) -> impl Iterator<Item = (OptionNumber, &[u8])> + '_ {
        self.items
            .iter()
            .take(self.len)
            .map(|(n, v, l)| (*n, v.get(..*l).unwrap_or_default()))
    }
}

impl<A: Address> Transfer<A> {
    fn method(&self) -> Code {
        self.msg.code()
    }

    fn body_len(&self) -> usize {
        self.msg.payload().len()
    }

    /// Whether the FETCH body goes again with each Block2 follow-up.
    fn resend_body(&self) -> bool {
        self.method() == Code::FETCH && !self.blockwise
    }

    /// Builds and issues the request for the current state. A block number
    /// past 2^20 (RFC 7959 §2.2) is [`FailReason::BadBlock`]; the callers
    /// keep it from happening.
    fn issue(&mut self, ep: &mut Endpoint<A>, now: Instant) -> Result<RequestId, FailReason> {
        let mut added = Added::new();
        let body = self.msg.payload();
        let ask_size2 = self.cfg.ask_size2;
        let payload: &[u8] = match self.state {
            State::Upload { num } => {
                let (payload, more) = if self.blockwise {
                    let size = block_size(self.up_szx);
                    let start = (num as usize).saturating_mul(size);
                    let end = start.saturating_add(size).min(body.len());
                    let more = end < body.len();
                    (body.get(start..end).unwrap_or_default(), more)
                } else {
                    (body, false)
                };
                if !more {
                    // RFC 7959 §2.4 (and Figure 11): early negotiation on the
                    // request whose answer carries the first Block2 block.
                    if let Some(szx) = self.early_szx
                        && let Ok(b) = Block::new(0, false, szx.min(6))
                    {
                        added.push_uint(OptionNumber::BLOCK2, b.to_uint());
                    }
                }
                if self.blockwise {
                    let b = Block::new(num, more, self.up_szx).map_err(|_| FailReason::BadBlock)?;
                    added.push_uint(OptionNumber::BLOCK1, b.to_uint());
                }
                if !more && ask_size2 {
                    added.push_uint(OptionNumber::SIZE2, 0);
                }
                if self.blockwise && num == 0 {
                    // RFC 7959 §4: Size1 tells the server the body size.
                    let size1 = u32::try_from(body.len()).unwrap_or(u32::MAX);
                    added.push_uint(OptionNumber::SIZE1, size1);
                }
                payload
            }
            State::Download { num, szx } => {
                let b = Block::new(num, false, szx).map_err(|_| FailReason::BadBlock)?;
                added.push_uint(OptionNumber::BLOCK2, b.to_uint());
                if num == 0 && ask_size2 {
                    added.push_uint(OptionNumber::SIZE2, 0);
                }
                if self.resend_body() { body } else { &[] }
            }
        };
        if let Some(tag) = self.tag {
            added.push(OptionNumber::REQUEST_TAG, &tag);
        }
        let first = self.sent == 0;
        let own_tag = self.tag.is_some();
        let base = &self.msg;
        let skip = |n: OptionNumber| {
            n == OptionNumber::BLOCK1
                || n == OptionNumber::BLOCK2
                || n == OptionNumber::SIZE1
                || n == OptionNumber::SIZE2
                || (n == OptionNumber::OBSERVE && !first)
                || (n == OptionNumber::REQUEST_TAG && own_tag)
        };
        let confirmable = base.ty() == MessageType::Con;
        let rid = ep
            .request_with(now, self.peer, confirmable, base.code(), |enc| {
                write_options(enc, base, &added, skip)?;
                enc.payload(payload)?;
                Ok(())
            })
            .map_err(FailReason::Endpoint)?;
        self.sent += 1;
        Ok(rid)
    }

    /// A response to the request in flight.
    fn on_response(&mut self, memory: &mut usize, msg: &Message<'_>) -> Action {
        match self.state {
            State::Upload { num } => self.on_upload(memory, num, msg),
            State::Download { num, .. } => self.on_download(memory, num, msg),
        }
    }

    fn on_upload(&mut self, memory: &mut usize, num: u32, msg: &Message<'_>) -> Action {
        let code = msg.code();
        let len = self.body_len();
        let size = block_size(self.up_szx);
        let end = (num as usize)
            .saturating_add(1)
            .saturating_mul(size)
            .min(len);
        let more = self.blockwise && end < len;
        if code == Code::REQUEST_ENTITY_TOO_LARGE {
            return self.too_large(msg);
        }
        if code == Code::REQUEST_ENTITY_INCOMPLETE && self.blockwise {
            // RFC 7959 §2.9.2: the server lost (or never had) the earlier
            // blocks. An idempotent request can simply be sent again.
            if is_idempotent(self.method()) && self.restarts < self.cfg.max_restarts {
                self.restarts += 1;
                self.state = State::Upload { num: 0 };
                return Action::Send(Some((Phase::Upload, 0, Some(len))));
            }
            return Action::Deliver(final_message(msg, None));
        }
        if !more {
            // The answer to the last block (or to the whole request) is the
            // final response, possibly the first Block2 block (§2.7).
            return self.first_block(memory, msg);
        }
        if !code.is_success() {
            // An error ends the upload; it is the server's final word.
            return Action::Deliver(final_message(msg, None));
        }
        // 2.31 Continue (§2.9.1), or a stateless server's 2.xx (§2.3,
        // Figure 8): send the next block.
        let mut szx = self.up_szx;
        if msg.has_option(OptionNumber::BLOCK1) {
            let Some(b) = msg.block1() else {
                return Action::Fail(FailReason::BadBlock);
            };
            if b.num() != num {
                return Action::Fail(FailReason::BadBlock);
            }
            // §2.5: the server's smaller preferred size from now on; NUM
            // follows from the byte offset (Figure 9). (A size at which the
            // body would need more than 2^20 blocks is not taken: "SHOULD".)
            let last = len.saturating_sub(1) >> (b.szx().min(szx) + 4);
            if last <= Block::MAX_NUM as usize {
                szx = szx.min(b.szx());
            }
        }
        self.up_szx = szx;
        let next = end >> (szx + 4);
        let Ok(next) = u32::try_from(next) else {
            return Action::Fail(FailReason::BadBlock);
        };
        self.state = State::Upload { num: next };
        Action::Send(Some((Phase::Upload, end, Some(len))))
    }

    /// 4.13 Request Entity Too Large (RFC 7959 §2.9.3).
    fn too_large(&mut self, msg: &Message<'_>) -> Action {
        let len = self.body_len();
        let size1 = msg.uint_option(OptionNumber::SIZE1);
        let fail = Action::Fail(FailReason::RequestTooLarge { max: size1 });
        if size1.is_some_and(|s| (s as usize) < len) || self.shrinks >= MAX_SHRINKS {
            return fail;
        }
        let hint = msg
            .block1()
            .map(Block::szx)
            .filter(|&s| !self.blockwise || s < self.up_szx);
        let szx = if let Some(h) = hint {
            h
        } else if !self.blockwise {
            // "a hint for the client to try sending Block1": blocks smaller
            // than the body.
            let mut s = self.up_szx.min(6);
            while s > 0 && block_size(s) >= len {
                s -= 1;
            }
            if block_size(s) >= len {
                return fail;
            }
            s
        } else if size1.is_some() && self.up_szx > 0 {
            // The body fits the server's limit, the blocks did not.
            self.up_szx - 1
        } else {
            return fail;
        };
        if (len.saturating_sub(1) >> (szx + 4)) > Block::MAX_NUM as usize {
            return fail;
        }
        self.shrinks += 1;
        self.blockwise = true;
        self.up_szx = szx;
        self.state = State::Upload { num: 0 };
        Action::Send(Some((Phase::Upload, 0, Some(len))))
    }

    /// The final answer to the request body: a whole response, or the first
    /// Block2 block of one (RFC 7959 §2.4, §2.7).
    fn first_block(&mut self, memory: &mut usize, msg: &Message<'_>) -> Action {
        if !msg.code().is_success() || !msg.has_option(OptionNumber::BLOCK2) {
            return Action::Deliver(final_message(msg, None));
        }
        let Some(b) = msg.block2() else {
            return Action::Fail(FailReason::BadBlock);
        };
        if b.num() != 0 {
            return Action::Fail(FailReason::BadBlock);
        }
        if !b.more() {
            return Action::Deliver(final_message(msg, None));
        }
        self.state = State::Download {
            num: 0,
            szx: b.szx(),
        };
        self.seen = None;
        self.on_download(memory, 0, msg)
    }

    fn on_download(&mut self, memory: &mut usize, num: u32, msg: &Message<'_>) -> Action {
        if !msg.code().is_success() {
            return Action::Deliver(final_message(msg, None));
        }
        if !msg.has_option(OptionNumber::BLOCK2) {
            if self.seen.is_none() && num == 0 {
                // After a restart the representation fits one message.
                return Action::Deliver(final_message(msg, None));
            }
            return self.changed();
        }
        let Some(b) = msg.block2() else {
            return Action::Fail(FailReason::BadBlock);
        };
        let print = Fingerprint::of(msg);
        match self.seen {
            None => {
                self.seen = Some(print);
                if let Some(s2) = msg.uint_option(OptionNumber::SIZE2) {
                    let s2 = s2 as usize;
                    if s2 > self.cfg.max_body {
                        return Action::Fail(FailReason::BodyTooLarge);
                    }
                    self.total = Some(s2);
                }
            }
            // RFC 7959 §2.4: "the client ... MUST compare ETag Options";
            // §2.3: blocks of another Content-Format are not assembled.
            Some(seen) if seen != print => return self.changed(),
            Some(_) => {}
        }
        let payload = msg.payload();
        if b.offset() != self.body.len()
            || (b.more() && payload.len() != b.size())
            || payload.len() > b.size()
        {
            return Action::Fail(FailReason::BadBlock);
        }
        if let Err(reason) = self.append(memory, payload) {
            return Action::Fail(reason);
        }
        if !b.more() {
            let body = core::mem::take(&mut self.body);
            *memory = memory.saturating_sub(body.capacity());
            self.cost = self.cost.saturating_sub(body.capacity());
            if let Some((_, head)) = &mut self.notify {
                // The notification's options (Observe, ETag, Max-Age, ...)
                // with the whole representation.
                let mut m =
                    core::mem::replace(head, MessageBuf::new(MessageType::Con, Code::EMPTY));
                m.set_payload(body);
                return Action::Deliver(m);
            }
            return Action::Deliver(final_message(msg, Some(body)));
        }
        let next = b.num().saturating_add(1);
        if next > Block::MAX_NUM {
            return Action::Fail(FailReason::BadBlock);
        }
        // §2.3: later requests use the size of the server's response.
        self.state = State::Download {
            num: next,
            szx: b.szx(),
        };
        Action::Send(Some((Phase::Download, self.body.len(), self.total)))
    }

    /// The representation changed mid-transfer (RFC 7959 §2.4).
    fn changed(&mut self) -> Action {
        if self.notify.is_some() {
            // The completion of a notification (RFC 7959 §2.6) does not
            // fetch the new version with plain GETs: a value newer than the
            // notification delivered before the notification announcing it
            // would break RFC 7641 §3.4 ordering. The change is announced by
            // a newer notification, which starts its own completion.
            return Action::Fail(FailReason::RepresentationChanged);
        }
        // Only a safe request whose body (if any) goes with every follow-up
        // can simply be asked again.
        let may_restart = self.cfg.on_etag_change == OnEtagChange::Restart
            && is_safe(self.method())
            && !self.blockwise
            && self.restarts < self.cfg.max_restarts;
        if !may_restart {
            return Action::Fail(FailReason::RepresentationChanged);
        }
        self.restarts += 1;
        self.body.clear();
        self.seen = None;
        self.total = None;
        if let State::Download { num, .. } = &mut self.state {
            *num = 0;
        }
        Action::Send(Some((Phase::Download, 0, None)))
    }

    /// Appends a block to the response body within the bounds.
    fn append(&mut self, memory: &mut usize, data: &[u8]) -> Result<(), FailReason> {
        let len = self.body.len();
        let need = len.saturating_add(data.len());
        if need > self.cfg.max_body {
            return Err(FailReason::BodyTooLarge);
        }
        let cap = self.body.capacity();
        if need > cap {
            let wanted = match self.total {
                Some(t) if t >= need => t,
                _ => cap.saturating_mul(2).max(need).min(self.cfg.max_body),
            };
            let others = memory.saturating_sub(cap);
            let budget = self.cfg.max_memory.saturating_sub(others);
            let target = if wanted <= budget {
                wanted
            } else if need <= budget {
                need
            } else {
                return Err(FailReason::OutOfMemory);
            };
            if self.body.try_reserve_exact(target - len).is_err() {
                return Err(FailReason::OutOfMemory);
            }
            let grown = self.body.capacity().saturating_sub(cap);
            *memory = memory.saturating_add(grown);
            self.cost = self.cost.saturating_add(grown);
        }
        self.body.extend_from_slice(data);
        Ok(())
    }

    /// Whether the request in flight may be sent again after a timeout.
    fn may_retry(&self) -> bool {
        match self.state {
            State::Download { .. } => true,
            State::Upload { num } => {
                let end = (num as usize)
                    .saturating_add(1)
                    .saturating_mul(block_size(self.up_szx));
                (self.blockwise && end < self.body_len()) || is_idempotent(self.method())
            }
        }
    }
}

/// Writes `base`'s options (except those `skip` names) merged with `added`,
/// in ascending order.
fn write_options(
    enc: &mut Encoder<'_>,
    base: &MessageBuf,
    added: &Added,
    skip: impl Fn(OptionNumber) -> bool,
) -> Result<(), EncodeError> {
    let mut extra = added.iter().peekable();
    for o in base.options() {
        if skip(o.number) {
            continue;
        }
        while let Some((n, v)) = extra.next_if(|(n, _)| *n < o.number) {
            enc.option(n, v)?;
        }
        enc.option(o.number, o.value)?;
    }
    for (n, v) in extra {
        enc.option(n, v)?;
    }
    Ok(())
}

// ----- the layer -----------------------------------------------------------------

/// The client-side block-wise layer; see the [module docs](self).
///
/// `A` is the endpoint's peer address type.
pub struct Transfers<A: Address> {
    config: ClientConfig,
    next_id: u64,
    tags_issued: u32,
    map: BTreeMap<u64, Transfer<A>>,
    by_request: BTreeMap<RequestId, u64>,
    observations: BTreeMap<u64, Observation<A>>,
    obs_by_request: BTreeMap<RequestId, u64>,
    memory: usize,
}

impl<A: Address> fmt::Debug for Transfers<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transfers")
            .field("transfers", &self.map.len())
            .field("observations", &self.observations.len())
            .field("memory", &self.memory)
            .finish_non_exhaustive()
    }
}

impl<A: Address> Transfers<A> {
    /// An empty layer.
    ///
    /// ```
    /// use coap_proto::client::{ClientConfig, Transfers};
    /// let t: Transfers<u8> = Transfers::new(ClientConfig::default());
    /// assert!(t.is_empty());
    /// ```
    #[must_use]
    pub fn new(config: ClientConfig) -> Self {
        let mut config = config;
        config.block1_szx = config.block1_szx.min(6);
        config.block2_szx = config.block2_szx.map(|s| s.min(6));
        Self {
            config,
            next_id: 1,
            tags_issued: 0,
            map: BTreeMap::new(),
            by_request: BTreeMap::new(),
            observations: BTreeMap::new(),
            obs_by_request: BTreeMap::new(),
            memory: 0,
        }
    }

    /// The configuration for new transfers.
    ///
    /// ```
    /// # use coap_proto::client::{ClientConfig, Transfers};
    /// let t: Transfers<u8> = Transfers::new(ClientConfig::default());
    /// assert_eq!(t.config().block1_szx, 6);
    /// ```
    #[must_use]
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Changes the configuration for transfers started from now on (running
    /// ones keep theirs).
    ///
    /// ```
    /// # use coap_proto::client::{ClientConfig, Transfers};
    /// let mut t: Transfers<u8> = Transfers::new(ClientConfig::default());
    /// t.config_mut().block2_szx = Some(9);
    /// assert_eq!(t.config().block2_szx, Some(9)); // clamped to 6 when used
    /// ```
    pub fn config_mut(&mut self) -> &mut ClientConfig {
        &mut self.config
    }

    /// How many transfers and observations ([`observe`](Self::observe))
    /// are running; the completion of a notification counts as one more.
    ///
    /// ```
    /// # use coap_proto::client::{ClientConfig, Transfers};
    /// let t: Transfers<u8> = Transfers::new(ClientConfig::default());
    /// assert_eq!(t.len(), 0);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len() + self.observations.len()
    }

    /// True when no transfer or observation runs and no memory is held.
    ///
    /// ```
    /// # use coap_proto::client::{ClientConfig, Transfers};
    /// let t: Transfers<u8> = Transfers::new(ClientConfig::default());
    /// assert!(t.is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
            && self.by_request.is_empty()
            && self.observations.is_empty()
            && self.obs_by_request.is_empty()
            && self.memory == 0
    }

    /// The bytes held now, as counted against [`ClientConfig::max_memory`].
    ///
    /// ```
    /// # use coap_proto::client::{ClientConfig, Transfers};
    /// let t: Transfers<u8> = Transfers::new(ClientConfig::default());
    /// assert_eq!(t.memory(), 0);
    /// ```
    #[must_use]
    pub fn memory(&self) -> usize {
        self.memory
    }

    /// Starts a transfer of `msg` to `peer`: its code, options and type (CON
    /// or NON) as for [`Endpoint::request`], and its payload, of any size,
    /// as the request body. The response body, of any size up to
    /// [`ClientConfig::max_body`], arrives in one
    /// [`ClientEvent::Response`].
    ///
    /// Block1, Block2, Size1 and Size2 options in `msg` are the layer's: a
    /// Block1 or Block2 option only sets the block size to use. A
    /// Request-Tag in `msg` is kept, and the layer adds none.
    ///
    /// ```
    /// # use coap_proto::client::{ClientConfig, Transfers};
    /// # use coap_proto::endpoint::{Config, Endpoint};
    /// # use coap_proto::{Block, Code, Instant, Message, MessageBuf, MessageType, OptionNumber};
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// let mut t: Transfers<u8> = Transfers::new(ClientConfig::default());
    /// let mut put = MessageBuf::new(MessageType::Con, Code::PUT);
    /// put.add_option(OptionNumber::URI_PATH, "file");
    /// put.set_payload(vec![7u8; 5000]);
    /// t.request(&mut ep, Instant::ZERO, 2, put)?;
    /// let mut buf = [0u8; 1500];
    /// let sent = ep.poll_transmit(&mut buf)?.unwrap();
    /// let first = Message::parse(&buf[..sent.len])?;
    /// assert_eq!(first.block1(), Some(Block::new(0, true, 6)?)); // RFC 7959 §2.5
    /// assert_eq!(first.uint_option(OptionNumber::SIZE1), Some(5000)); // §4
    /// assert_eq!(first.payload().len(), 1024);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn request(
        &mut self,
        ep: &mut Endpoint<A>,
        now: Instant,
        peer: A,
        msg: MessageBuf,
    ) -> Result<TransferId, ClientError> {
        if peer.is_multicast() {
            return Err(ClientError::Multicast);
        }
        let mut cfg = self.config;
        if let Some(b) = msg.option(OptionNumber::BLOCK2)
            && let Ok(b) = Block::from_value(b)
        {
            cfg.block2_szx = Some(b.szx());
        }
        if let Some(b) = msg.option(OptionNumber::BLOCK1)
            && let Ok(b) = Block::from_value(b)
        {
            cfg.block1_szx = b.szx();
        }
        let len = msg.payload().len();
        // The largest block that fits one datagram with every option.
        let payload_part = if len > 0 { 1 + len } else { 0 };
        let head =
            msg.encoded_len().saturating_sub(payload_part) + MAX_TOKEN_LEN + ADDED_OPTION_BYTES + 1;
        let max_message = ep.config().max_message_size;
        let mut up_szx = cfg.block1_szx.min(6);
        while up_szx > 0 && head + block_size(up_szx) > max_message {
            up_szx -= 1;
        }
        let blockwise = len > block_size(up_szx);
        if blockwise && (len - 1) >> (up_szx + 4) > Block::MAX_NUM as usize {
            return Err(ClientError::BodyTooLarge);
        }
        let safe = is_safe(msg.code());
        let key = (!safe).then(|| resource_key(&msg));
        let cost = TRANSFER_BYTES + msg.encoded_len() + key.as_ref().map_or(0, Vec::len);
        if self.len() >= self.config.max_transfers
            || self.memory.saturating_add(cost) > self.config.max_memory
        {
            return Err(ClientError::NoCapacity);
        }
        let tag = if safe || msg.option(OptionNumber::REQUEST_TAG).is_some() {
            None
        } else {
            match cfg.request_tags {
                RequestTags::Always => Some(self.fresh_tag(cfg.tag_seed)),
                RequestTags::WhenConcurrent => {
                    let absent_in_use = self.map.values().any(|t| {
                        t.peer == peer && t.tag.is_none() && t.key.is_some() && t.key == key
                    });
                    absent_in_use.then(|| self.fresh_tag(cfg.tag_seed))
                }
            }
        };
        let mut t = Transfer {
            peer,
            cfg,
            early_szx: cfg.block2_szx.map(|s| s.min(6)),
            msg,
            state: State::Upload { num: 0 },
            blockwise,
            up_szx,
            tag,
            key,
            body: Vec::new(),
            seen: None,
            total: None,
            sent: 0,
            retries: 0,
            restarts: 0,
            shrinks: 0,
            cost,
            notify: None,
        };
        let rid = t.issue(ep, now).map_err(|e| match e {
            FailReason::Endpoint(e) => ClientError::Endpoint(e),
            _ => ClientError::BodyTooLarge,
        })?;
        let id = self.next_id;
        self.next_id += 1;
        self.memory += cost;
        self.by_request.insert(rid, id);
        self.map.insert(id, t);
        Ok(TransferId(id))
    }

    /// Continues a Block2 transfer whose first block arrived outside this
    /// layer, such as an Observe notification (RFC 7959 §2.6: "the client
    /// retrieves the rest of the representation as if it had caused this
    /// first response by a GET request"). `request` is the request that
    /// caused it (its Observe option is left out of the follow-ups), `first`
    /// the response with Block2 NUM 0 and M set; its ETag ties the blocks
    /// together.
    ///
    /// ```
    /// # use coap_proto::client::{ClientConfig, ClientError, Transfers};
    /// # use coap_proto::endpoint::{Config, Endpoint};
    /// # use coap_proto::{Block, Code, Instant, Message, MessageBuf, MessageType, OptionNumber};
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// let mut t: Transfers<u8> = Transfers::new(ClientConfig::default());
    /// let mut obs = MessageBuf::new(MessageType::Con, Code::GET);
    /// obs.add_option_uint(OptionNumber::OBSERVE, 0);
    /// obs.add_option(OptionNumber::URI_PATH, "big");
    /// let mut note = MessageBuf::new(MessageType::Con, Code::CONTENT);
    /// note.add_option_uint(OptionNumber::OBSERVE, 7);
    /// note.add_option(OptionNumber::ETAG, [1]);
    /// note.add_option_uint(OptionNumber::BLOCK2, Block::new(0, true, 2)?.to_uint());
    /// note.set_payload(vec![0u8; 64]);
    /// let bytes = note.to_bytes()?;
    /// t.resume_block2(&mut ep, Instant::ZERO, 2, obs, &Message::parse(&bytes)?)?;
    /// let mut buf = [0u8; 1500];
    /// let sent = ep.poll_transmit(&mut buf)?.unwrap();
    /// let next = Message::parse(&buf[..sent.len])?;
    /// assert_eq!(next.block2(), Some(Block::new(1, false, 2)?));
    /// assert!(!next.has_option(OptionNumber::OBSERVE));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resume_block2(
        &mut self,
        ep: &mut Endpoint<A>,
        now: Instant,
        peer: A,
        request: MessageBuf,
        first: &Message<'_>,
    ) -> Result<TransferId, ClientError> {
        if peer.is_multicast() {
            return Err(ClientError::Multicast);
        }
        if !first.block2().is_some_and(|b| b.num() == 0 && b.more()) {
            return Err(ClientError::NotBlockWise);
        }
        if self.len() >= self.config.max_transfers {
            return Err(ClientError::NoCapacity);
        }
        let id = self.next_id;
        match self.resume(ep, now, peer, request, first, id, None) {
            Ok(()) => {
                self.next_id += 1;
                Ok(TransferId(id))
            }
            Err(FailReason::BodyTooLarge | FailReason::OutOfMemory) => Err(ClientError::NoCapacity),
            Err(FailReason::Endpoint(e)) => Err(ClientError::Endpoint(e)),
            Err(_) => Err(ClientError::NotBlockWise),
        }
    }

    /// Starts transfer `id` from `first`, a Block2 block 0 with M set that
    /// answered `request` (RFC 7959 §2.6), within the memory bound.
    #[allow(clippy::too_many_arguments)]
    fn resume(
        &mut self,
        ep: &mut Endpoint<A>,
        now: Instant,
        peer: A,
        request: MessageBuf,
        first: &Message<'_>,
        id: u64,
        notify: Option<(u64, MessageBuf)>,
    ) -> Result<(), FailReason> {
        let Some(b) = first.block2().filter(|b| b.num() == 0 && b.more()) else {
            return Err(FailReason::BadBlock);
        };
        let cost = TRANSFER_BYTES
            + request.encoded_len()
            + notify.as_ref().map_or(0, |(_, h)| h.encoded_len());
        if self.memory.saturating_add(cost) > self.config.max_memory {
            return Err(FailReason::OutOfMemory);
        }
        let mut t = Transfer {
            peer,
            cfg: self.config,
            early_szx: None,
            msg: request,
            state: State::Download {
                num: 0,
                szx: b.szx(),
            },
            blockwise: false,
            up_szx: 6,
            tag: None,
            key: None,
            body: Vec::new(),
            seen: None,
            total: None,
            // The request that caused `first` counts as sent: follow-ups
            // leave Observe out.
            sent: 1,
            retries: 0,
            restarts: 0,
            shrinks: 0,
            cost,
            notify,
        };
        let mut memory = self.memory + cost;
        match t.on_response(&mut memory, first) {
            Action::Send(_) => {}
            Action::Fail(reason) => return Err(reason),
            Action::Deliver(_) => return Err(FailReason::BadBlock),
        }
        let rid = t.issue(ep, now)?;
        self.memory = memory;
        self.by_request.insert(rid, id);
        self.map.insert(id, t);
        Ok(())
    }

    /// Observes a resource (RFC 7641) through the layer: `msg` (a GET or
    /// FETCH) is registered with [`Endpoint::observe`], and every
    /// notification comes back as one [`ClientEvent::Notification`] with
    /// the whole representation. A notification that carries only the
    /// first Block2 block (RFC 7959 §2.6) is completed with plain requests
    /// for blocks 1, 2, ... (the registration's options without Observe, a
    /// fresh token each, like any block-wise GET, §3.4), whose ETag must
    /// match the notification's (§2.4).
    ///
    /// At most one such completion runs per observation: a newer
    /// notification abandons the older one's (it is never delivered, so
    /// the delivered values keep RFC 7641 §3.4 order). A block of another
    /// version (ETag or Content-Format) ends the completion with
    /// [`ClientEvent::NotificationFailed`] (`RepresentationChanged`); the
    /// notification of that change starts a new one. Other failures of a
    /// completion (time-out, a body above [`ClientConfig::max_body`],
    /// memory) are reported the same way; the observation stays open.
    ///
    /// A Block2 option in `msg`, or else [`ClientConfig::block2_szx`], asks
    /// for a block size on the registration (early negotiation, Figure 13).
    /// The observation ends with one [`ClientEvent::Response`] (a final
    /// response, completed if block-wise) or [`ClientEvent::Failed`]
    /// (`TimedOut`, `Reset`); end it yourself with
    /// [`cancel_observe`](Self::cancel_observe). Observations count
    /// towards [`ClientConfig::max_transfers`].
    ///
    /// ```
    /// # use coap_proto::client::{ClientConfig, Transfers};
    /// # use coap_proto::endpoint::{Config, Endpoint};
    /// # use coap_proto::{Block, Code, Instant, Message, MessageBuf, MessageType, Observe, OptionNumber};
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// let mut cc = ClientConfig::default();
    /// cc.block2_szx = Some(2);
    /// let mut t: Transfers<u8> = Transfers::new(cc);
    /// let mut get = MessageBuf::new(MessageType::Con, Code::GET);
    /// get.add_option(OptionNumber::URI_PATH, "big");
    /// t.observe(&mut ep, Instant::ZERO, 2, get)?;
    /// let mut buf = [0u8; 1500];
    /// let sent = ep.poll_transmit(&mut buf)?.unwrap();
    /// let reg = Message::parse(&buf[..sent.len])?;
    /// assert_eq!(reg.observe(), Some(Observe::REGISTER));
    /// assert_eq!(reg.block2(), Some(Block::new(0, false, 2)?)); // 64-byte blocks
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn observe(
        &mut self,
        ep: &mut Endpoint<A>,
        now: Instant,
        peer: A,
        msg: MessageBuf,
    ) -> Result<TransferId, ClientError> {
        if peer.is_multicast() {
            return Err(ClientError::Multicast);
        }
        let mut msg = msg;
        msg.remove_option(OptionNumber::OBSERVE);
        msg.remove_option(OptionNumber::BLOCK1);
        msg.remove_option(OptionNumber::SIZE1);
        if msg.option(OptionNumber::BLOCK2).is_none()
            && let Some(szx) = self.config.block2_szx
            && let Ok(b) = Block::new(0, false, szx.min(6))
        {
            msg.add_option_uint(OptionNumber::BLOCK2, b.to_uint());
        }
        let cost = TRANSFER_BYTES + msg.encoded_len();
        if self.len() >= self.config.max_transfers
            || self.memory.saturating_add(cost) > self.config.max_memory
        {
            return Err(ClientError::NoCapacity);
        }
        let rid = ep.observe(now, peer, &msg)?;
        let id = self.next_id;
        self.next_id += 1;
        self.memory += cost;
        self.obs_by_request.insert(rid, id);
        self.observations.insert(
            id,
            Observation {
                peer,
                rid,
                msg,
                fetch: None,
                cost,
            },
        );
        Ok(TransferId(id))
    }

    /// Ends an observation started with [`observe`](Self::observe) (RFC
    /// 7641 §3.6), as [`Endpoint::cancel_observe`] does, and abandons the
    /// completion of a notification in flight: no event follows for `id`.
    ///
    /// ```
    /// # use coap_proto::client::{ClientConfig, ClientError, Transfers};
    /// # use coap_proto::endpoint::{Config, Deregister, Endpoint};
    /// # use coap_proto::{Code, Instant, MessageBuf, MessageType};
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// let mut t: Transfers<u8> = Transfers::new(ClientConfig::default());
    /// let id = t.observe(&mut ep, Instant::ZERO, 2, MessageBuf::new(MessageType::Con, Code::GET))?;
    /// t.cancel_observe(&mut ep, Instant::ZERO, id, Deregister::Passive)?;
    /// assert!(t.is_empty() && ep.tables().requests == 0);
    /// assert_eq!(t.cancel_observe(&mut ep, Instant::ZERO, id, Deregister::Passive), Err(ClientError::UnknownTransfer));
    /// # Ok::<(), ClientError>(())
    /// ```
    pub fn cancel_observe(
        &mut self,
        ep: &mut Endpoint<A>,
        now: Instant,
        id: TransferId,
        how: Deregister,
    ) -> Result<(), ClientError> {
        let Some(o) = self.observations.remove(&id.0) else {
            return Err(ClientError::UnknownTransfer);
        };
        self.obs_by_request.remove(&o.rid);
        self.memory = self.memory.saturating_sub(o.cost);
        if let Some(f) = o.fetch {
            self.abandon(ep, now, f);
        }
        // Already ended (its final event not yet handled): fine.
        let _ = ep.cancel_observe(now, o.rid, how);
        Ok(())
    }

    /// Drops transfer `tid` and cancels its requests in flight.
    fn abandon(&mut self, ep: &mut Endpoint<A>, now: Instant, tid: u64) {
        if let Some(t) = self.map.remove(&tid) {
            self.memory = self.memory.saturating_sub(t.cost);
        }
        self.by_request.retain(|r, t| {
            if *t == tid {
                let _ = ep.cancel(now, *r);
            }
            *t != tid
        });
    }

    /// A notification of observation `oid` (RFC 7641 §3.2): delivered at
    /// once, or completed block-wise (RFC 7959 §2.6).
    fn on_notification(
        &mut self,
        ep: &mut Endpoint<A>,
        now: Instant,
        oid: u64,
        msg: &Message<'_>,
    ) -> Option<ClientEvent<A>> {
        let (peer, old) = {
            let o = self.observations.get_mut(&oid)?;
            (o.peer, o.fetch.take())
        };
        if let Some(f) = old {
            // The endpoint delivers only notifications newer than every one
            // before (RFC 7641 §3.4): the older completion is stale.
            self.abandon(ep, now, f);
        }
        let id = TransferId(oid);
        let whole = match msg.block2() {
            None if !msg.has_option(OptionNumber::BLOCK2) => true,
            Some(b) if b.num() == 0 => !b.more(),
            // A malformed Block2, or not the first block.
            _ => {
                return Some(ClientEvent::NotificationFailed {
                    id,
                    reason: FailReason::BadBlock,
                });
            }
        };
        if whole {
            return Some(ClientEvent::Notification {
                id,
                peer,
                message: final_message(msg, None),
            });
        }
        // The first block of a larger representation: GET the rest.
        let request = self.observations.get(&oid)?.msg.clone();
        let head = final_message(msg, Some(Vec::new()));
        let fid = self.next_id;
        match self.resume(ep, now, peer, request, msg, fid, Some((oid, head))) {
            Ok(()) => {
                self.next_id += 1;
                if let Some(o) = self.observations.get_mut(&oid) {
                    o.fetch = Some(fid);
                }
                let t = self.map.get(&fid)?;
                t.cfg.progress.then_some(ClientEvent::Progress {
                    id,
                    phase: Phase::Download,
                    done: t.body.len(),
                    total: t.total,
                })
            }
            Err(reason) => Some(ClientEvent::NotificationFailed { id, reason }),
        }
    }

    /// The end of observation `oid` (the endpoint's final event for it).
    fn end_observation(
        &mut self,
        ep: &mut Endpoint<A>,
        now: Instant,
        oid: u64,
        response: Option<&Message<'_>>,
        failed: FailReason,
    ) -> Option<ClientEvent<A>> {
        let o = self.observations.remove(&oid)?;
        self.obs_by_request.remove(&o.rid);
        self.memory = self.memory.saturating_sub(o.cost);
        if let Some(f) = o.fetch {
            self.abandon(ep, now, f);
        }
        let id = TransferId(oid);
        let Some(msg) = response else {
            return Some(ClientEvent::Failed { id, reason: failed });
        };
        let blockwise =
            msg.code().is_success() && msg.block2().is_some_and(|b| b.num() == 0 && b.more());
        if !blockwise {
            return Some(ClientEvent::Response {
                id,
                peer: o.peer,
                message: final_message(msg, None),
            });
        }
        // A final response carrying the first block: the observation id
        // becomes an ordinary transfer that fetches the rest.
        match self.resume(ep, now, o.peer, o.msg, msg, oid, None) {
            Ok(()) => None,
            Err(reason) => Some(ClientEvent::Failed { id, reason }),
        }
    }

    fn fresh_tag(&mut self, seed: u64) -> [u8; 4] {
        let n = self.tags_issued;
        self.tags_issued = self.tags_issued.wrapping_add(1);
        permute(n, seed).to_be_bytes()
    }

    /// Abandons a transfer: its request in flight is cancelled, its memory
    /// freed, and no event follows. For an observation this is
    /// [`cancel_observe`](Self::cancel_observe) with [`Deregister::Passive`].
    ///
    /// ```
    /// # use coap_proto::client::{ClientConfig, ClientError, Transfers};
    /// # use coap_proto::endpoint::{Config, Endpoint};
    /// # use coap_proto::{Code, Instant, MessageBuf, MessageType};
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// let mut t: Transfers<u8> = Transfers::new(ClientConfig::default());
    /// let id = t.request(&mut ep, Instant::ZERO, 2, MessageBuf::new(MessageType::Con, Code::GET))?;
    /// t.cancel(&mut ep, Instant::ZERO, id)?;
    /// assert_eq!(t.cancel(&mut ep, Instant::ZERO, id), Err(ClientError::UnknownTransfer));
    /// assert!(t.is_empty() && ep.tables().requests == 0);
    /// # Ok::<(), ClientError>(())
    /// ```
    pub fn cancel(
        &mut self,
        ep: &mut Endpoint<A>,
        now: Instant,
        id: TransferId,
    ) -> Result<(), ClientError> {
        if self.observations.contains_key(&id.0) {
            return self.cancel_observe(ep, now, id, Deregister::Passive);
        }
        // A notification's completion has an internal id, never `id`.
        if !self.map.contains_key(&id.0) {
            return Err(ClientError::UnknownTransfer);
        }
        // A request already finished (its final event not yet handled) is
        // fine to cancel.
        self.abandon(ep, now, id.0);
        Ok(())
    }

    /// Handles one endpoint event. Events of this layer's own requests are
    /// consumed: the next block request is issued, and what the application
    /// needs to know comes back (or `None`). Any other event is returned as
    /// [`ClientEvent::Endpoint`]. Call it for every event
    /// [`Endpoint::poll_event`] gives, then drain the endpoint as its call
    /// contract says (a follow-up request may be queued).
    ///
    /// ```
    /// # use coap_proto::client::{ClientConfig, ClientEvent, Transfers};
    /// # use coap_proto::endpoint::{Config, Endpoint, Event};
    /// # use coap_proto::Instant;
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// let mut t: Transfers<u8> = Transfers::new(ClientConfig::default());
    /// // A request this layer does not know about passes through.
    /// ep.handle_datagram(Instant::ZERO, 9, b"\x50\x01\x00\x01");
    /// let ev = ep.poll_event().unwrap();
    /// assert!(matches!(t.handle_event(&mut ep, Instant::ZERO, ev), Some(ClientEvent::Endpoint(Event::Request(_)))));
    /// ```
    pub fn handle_event(
        &mut self,
        ep: &mut Endpoint<A>,
        now: Instant,
        event: Event<A>,
    ) -> Option<ClientEvent<A>> {
        if let Some(&oid) = match &event {
            Event::Notification(r) | Event::Response(r) => self.obs_by_request.get(&r.id),
            Event::Acknowledged(rid) | Event::TimedOut(rid) | Event::Reset(rid) => {
                self.obs_by_request.get(rid)
            }
            _ => None,
        } {
            return match event {
                Event::Notification(r) => {
                    let out = self.on_notification(ep, now, oid, &r.message());
                    ep.recycle(r.message.into_bytes());
                    out
                }
                Event::Response(r) => {
                    let out = self.end_observation(
                        ep,
                        now,
                        oid,
                        Some(&r.message()),
                        FailReason::BadBlock,
                    );
                    ep.recycle(r.message.into_bytes());
                    out
                }
                Event::TimedOut(_) => {
                    self.end_observation(ep, now, oid, None, FailReason::TimedOut)
                }
                Event::Reset(_) => self.end_observation(ep, now, oid, None, FailReason::Reset),
                _ => None,
            };
        }
        match event {
            Event::Response(r) => {
                let Some(tid) = self.by_request.remove(&r.id) else {
                    return Some(ClientEvent::Endpoint(Event::Response(r)));
                };
                let Some(mut t) = self.map.remove(&tid) else {
                    ep.recycle(r.message.into_bytes());
                    return None;
                };
                let action = t.on_response(&mut self.memory, &r.message());
                if matches!(action, Action::Send(_)) {
                    t.retries = 0;
                }
                ep.recycle(r.message.into_bytes());
                self.apply(ep, now, tid, t, action)
            }
            Event::Acknowledged(rid) if self.by_request.contains_key(&rid) => None,
            Event::TimedOut(rid) => {
                let Some(tid) = self.by_request.remove(&rid) else {
                    return Some(ClientEvent::Endpoint(Event::TimedOut(rid)));
                };
                let mut t = self.map.remove(&tid)?;
                let action = if t.retries < t.cfg.block_retries && t.may_retry() {
                    t.retries += 1;
                    Action::Send(None)
                } else {
                    Action::Fail(FailReason::TimedOut)
                };
                self.apply(ep, now, tid, t, action)
            }
            Event::Reset(rid) => {
                let Some(tid) = self.by_request.remove(&rid) else {
                    return Some(ClientEvent::Endpoint(Event::Reset(rid)));
                };
                let t = self.map.remove(&tid)?;
                self.apply(ep, now, tid, t, Action::Fail(FailReason::Reset))
            }
            other => Some(ClientEvent::Endpoint(other)),
        }
    }

    fn apply(
        &mut self,
        ep: &mut Endpoint<A>,
        now: Instant,
        tid: u64,
        mut t: Transfer<A>,
        action: Action,
    ) -> Option<ClientEvent<A>> {
        // A notification's completion reports under its observation's id.
        let oid = t.notify.as_ref().map(|(o, _)| *o);
        let id = TransferId(oid.unwrap_or(tid));
        if let Some(o) = oid
            && !matches!(action, Action::Send(_))
            && let Some(obs) = self.observations.get_mut(&o)
            && obs.fetch == Some(tid)
        {
            obs.fetch = None;
        }
        match action {
            Action::Send(progress) => {
                if matches!(t.state, State::Download { .. })
                    && !t.resend_body()
                    && !t.msg.payload().is_empty()
                {
                    // The request body has gone; free it.
                    let before = t.msg.payload().len();
                    t.msg.set_payload(Vec::new());
                    self.memory = self.memory.saturating_sub(before);
                    t.cost = t.cost.saturating_sub(before);
                }
                match t.issue(ep, now) {
                    Ok(rid) => {
                        let report = t.cfg.progress;
                        self.by_request.insert(rid, tid);
                        self.map.insert(tid, t);
                        progress.filter(|_| report).map(|(phase, done, total)| {
                            ClientEvent::Progress {
                                id,
                                phase,
                                done,
                                total,
                            }
                        })
                    }
                    Err(reason) => {
                        self.release(&t);
                        if let Some(obs) = oid.and_then(|o| self.observations.get_mut(&o)) {
                            obs.fetch = None;
                            return Some(ClientEvent::NotificationFailed { id, reason });
                        }
                        Some(ClientEvent::Failed { id, reason })
                    }
                }
            }
            Action::Deliver(message) if oid.is_some() => {
                self.release(&t);
                if !message.code().is_success() {
                    // Not a notification: the completion failed (the
                    // observation itself goes on).
                    let reason = FailReason::ErrorResponse(message.code());
                    return Some(ClientEvent::NotificationFailed { id, reason });
                }
                Some(ClientEvent::Notification {
                    id,
                    peer: t.peer,
                    message,
                })
            }
            Action::Deliver(message) => {
                self.release(&t);
                Some(ClientEvent::Response {
                    id,
                    peer: t.peer,
                    message,
                })
            }
            Action::Fail(reason) if oid.is_some() => {
                self.release(&t);
                Some(ClientEvent::NotificationFailed { id, reason })
            }
            Action::Fail(reason) => {
                self.release(&t);
                Some(ClientEvent::Failed { id, reason })
            }
        }
    }

    fn release(&mut self, t: &Transfer<A>) {
        self.memory = self.memory.saturating_sub(t.cost);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn permute_is_injective_on_a_sample() {
        let mut seen = alloc::collections::BTreeSet::new();
        for n in 0..10_000u32 {
            assert!(seen.insert(permute(n, 0x1234_5678_9abc_def0)));
        }
        assert_ne!(permute(0, 1), permute(0, 2));
    }

    #[test]
    fn added_options_merge_in_order() {
        let mut base = MessageBuf::new(MessageType::Con, Code::POST);
        base.add_option(OptionNumber::URI_PATH, "a");
        base.add_option_uint(OptionNumber::SIZE1, 9); // replaced
        base.add_option(OptionNumber(65000), "x");
        let mut added = Added::new();
        added.push_uint(OptionNumber::BLOCK2, 0x16);
        added.push_uint(OptionNumber::BLOCK1, 0x0e);
        added.push(OptionNumber::REQUEST_TAG, &[1, 2, 3, 4]);
        let mut buf = [0u8; 64];
        let mut enc = Encoder::new(&mut buf, MessageType::Con, Code::POST, 1, &[]).unwrap();
        write_options(&mut enc, &base, &added, |n| n == OptionNumber::SIZE1).unwrap();
        let n = enc.finish();
        let m = Message::parse(buf.get(..n).unwrap()).unwrap();
        let nums: Vec<u16> = m.options().map(|o| o.number.0).collect();
        assert_eq!(nums, [11, 23, 27, 292, 65000]);
    }
}
