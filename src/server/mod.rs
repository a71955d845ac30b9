//! The sans-IO server-side resource layer: a router of [`Resource`]s on top
//! of an [`Endpoint`], with `/.well-known/core` (RFC 6690), content
//! negotiation, ETags and conditional requests (RFC 7252 §5.10), and
//! block-wise transfers (RFC 7959) for both directions.
//!
//! The application registers resources with handlers per method, then
//! hands every [`Event::Request`](crate::endpoint::Event::Request) to
//! [`Server::handle`], which answers through the endpoint. Like the
//! endpoint, the layer holds no clock and no socket: time comes in as
//! `now`, and every table is bounded by [`ServerConfig`].
//!
//! What the layer does before a handler runs, in this order:
//!
//! 1. Proxy-Uri / Proxy-Scheme: 5.05 (this is not a proxy, RFC 7252 §5.7.2).
//! 2. The path: an unknown one gets 4.04 (§5.9.2.5), a known one without a
//!    handler for the method 4.05 (§5.9.2.6). `/.well-known/core` is
//!    generated from the registered resources.
//! 3. A Block1/Block2 option with the reserved SZX 7: 4.00 (RFC 7959 §2.2).
//! 4. If-Match / If-None-Match against [`Resource::state`]: 4.12
//!    (RFC 7252 §5.10.8). A GET whose ETag is current: 2.03 (§5.10.6.2).
//! 5. Accept against the formats of [`Resource::format`]: 4.06 (§5.10.4).
//! 6. Block1 (RFC 7959 §2.5): blocks are reassembled per (peer, resource,
//!    method, Request-Tag (RFC 9175 §3)), each answered 2.31 Continue with
//!    the Block1 echo; 4.08 for a block out of sequence, 4.13 with Size1
//!    past the body limit. The handler sees the whole body once (or each
//!    block, with [`Resource::stream_blocks`]).
//!
//! After the handler, the answer is post-processed (see [`Reply`]) and
//! large representations are sliced into Block2 blocks (RFC 7959 §2.4):
//! the client's SZX is honoured (late negotiation), the server's
//! [`ServerConfig::block2_szx`] caps it (early negotiation), any block can
//! be asked for first (random access), Size2 goes on the first block and
//! whenever the request carries Size2, and an ETag lets the client detect
//! a representation that changed between blocks. Block2 is stateless for
//! GET and FETCH (the handler runs again for every block); the response of
//! an unsafe method (POST, PUT, ...) is kept for its follow-up blocks
//! (RFC 7959 §2.7).
//!
//! A request for a block past the end of the representation gets 4.02 Bad
//! Option. RFC 7959 gives no code for it: §2.2 only says that NUM is "the
//! block number being requested" and prescribes 4.00 for SZX 7, and §2.1
//! says a Block option "MUST be processed (or the message rejected)".
//! Rejecting a critical option the server cannot act on is what 4.02
//! means (RFC 7252 §5.4.1, §5.9.2.3). (aiocoap answers 4.00 here.)
//!
//! # Observe (RFC 7641)
//!
//! A GET (or FETCH) with Observe:0 on an [`observable`](Resource::observable)
//! resource registers the client (§4.1) once the answer is 2.xx: the
//! answer gets an Observe option with the resource's next sequence number
//! (§4.4). The list of observers is bounded
//! ([`ServerConfig::max_observers`], [`OBSERVER_BYTES`] each); when it is
//! full the GET is served without Observe. When the application changes
//! the resource it calls [`Server::notify_changed`], which runs the GET
//! handler again for every observer and sends the notifications
//! ([`Endpoint::notify`](crate::endpoint::Endpoint::notify)): NON with a
//! CON every [`ServerConfig::notify_con_every`] and at least every 24
//! hours (§4.5), a non-2.xx answer (or a changed Content-Format, as 4.06)
//! as a last CON notification. An observer goes on GET Observe:1, on a
//! Reset or a timed-out CON notification (pass every event to
//! [`Server::handle_event`]), and after an error notification. A GET
//! without Observe does not end an observation (ETSI TD_COAP_OBS_10).
//!
//! # Answering later
//!
//! A handler that cannot answer at once returns [`Reply::Later`] (the
//! layer sends the empty ACK now, RFC 7252 §5.2.2) or [`Reply::Defer`] (the
//! endpoint's `separate_ack_delay` decides), keeps [`Request::handle`], and
//! the application answers later with [`Server::respond`], which applies
//! the same post-processing (Block2 slicing, ETag, ...).
//!
//! ```
//! use coap_proto::endpoint::{Config, Endpoint, Event};
//! use coap_proto::server::{Reply, Resource, Server, ServerConfig};
//! use coap_proto::{Code, ContentFormat, Instant, Message, MessageBuf, MessageType, OptionNumber};
//!
//! // The application state the handlers see: here a queue of requests
//! // to answer later.
//! #[derive(Default)]
//! struct App { queue: Vec<coap_proto::endpoint::ResponseHandle> }
//!
//! let mut server: Server<u8, App> = Server::new(ServerConfig::default());
//! server.add(
//!     Resource::new("/hello")
//!         .rt("greeting")
//!         .format(ContentFormat::TEXT_PLAIN)
//!         .get(|_, _| Reply::content(ContentFormat::TEXT_PLAIN, "hello")),
//! )?;
//! server.add(Resource::new("/slow").get(|app: &mut App, req| {
//!     app.queue.push(req.handle);
//!     Reply::Later
//! }))?;
//! let mut app = App::default();
//!
//! let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 2);
//! let now = Instant::ZERO;
//! // Two CON requests from peer 1, built directly (an Endpoint as client
//! // would send the second only after the first, RFC 7252 §4.7).
//! for (mid, path) in [(1, "hello"), (2, "slow")] {
//!     let mut get = MessageBuf::new(MessageType::Con, Code::GET);
//!     get.set_message_id(mid);
//!     get.set_token(&[mid as u8])?;
//!     get.add_option(OptionNumber::URI_PATH, path);
//!     ep.handle_datagram(now, 1, &get.to_bytes()?);
//! }
//! while let Some(Event::Request(req)) = ep.poll_event() {
//!     server.handle(&mut ep, now, req, &mut app);
//! }
//! // Later: answer the queued request through the layer.
//! for h in app.queue.drain(..) {
//!     let Reply::Now(m) = Reply::content(ContentFormat::TEXT_PLAIN, "done") else { unreachable!() };
//!     server.respond(&mut ep, now, h, m)?;
//! }
//! // server -> client: 2.05 "hello", an empty ACK, then the separate 2.05.
//! let mut buf = [0u8; 1500];
//! let mut seen = Vec::new();
//! while let Some(t) = ep.poll_transmit(&mut buf)? {
//!     let m = Message::parse(&buf[..t.len])?;
//!     seen.push((m.ty(), m.code(), m.payload().to_vec()));
//! }
//! assert_eq!(seen, [
//!     (MessageType::Ack, Code::CONTENT, b"hello".to_vec()),
//!     (MessageType::Ack, Code::EMPTY, vec![]),
//!     (MessageType::Con, Code::CONTENT, b"done".to_vec()),
//! ]);
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

mod cache;
mod links;
mod observe;
mod resource;
mod transfer;

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

pub use cache::CACHE_ENTRY_BYTES;
pub use observe::OBSERVER_BYTES;
pub use resource::{BodyBlock, ETag, Reply, Request, Resource, ResourceId, ResourceState};
pub use transfer::TRANSFER_BYTES;

use crate::endpoint::{Address, Endpoint, Error as EndpointError, IncomingRequest, ResponseHandle};
use crate::message::link::{Filter, LinkWriter};
use crate::message::{
    Block, Code, ContentFormat, MAX_TOKEN_LEN, Message, MessageBuf, MessageType, Observe,
    OptionNumber, encode_uint,
};
use crate::time::Instant;
use cache::{Cache, RepKey};
use observe::{Observers, Token};
use transfer::{Body, Transfer, TransferKey, Transfers};

/// Expired entries dropped per call of [`Server::handle`].
const EXPIRY_BUDGET: usize = 64;
/// Expired entries dropped per call of [`Server::handle_timeout`].
const TIMEOUT_BUDGET: usize = 1024;
/// Bookkeeping bytes per request answered later (see
/// [`ServerConfig::max_separate`]), excluding the request's ETags.
///
/// ```
/// use coap_proto::server::{SEPARATE_BYTES, ServerConfig};
/// assert!(ServerConfig::default().max_separate * SEPARATE_BYTES < 256 * 1024);
/// ```
pub const SEPARATE_BYTES: usize = 192;
/// The key of `/.well-known/core`: each segment's length, then its bytes.
const WKC_KEY: &[u8] = b"\x0b.well-known\x04core";

/// When the layer attaches an ETag of its own ([`ETag::of`]) to a
/// successful response that has a payload but no ETag.
///
/// ```
/// use coap_proto::server::{AutoEtag, ServerConfig};
/// assert_eq!(ServerConfig::default().auto_etag, AutoEtag::BlockWise);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AutoEtag {
    /// Never.
    Never,
    /// When the response is sliced into Block2 blocks (RFC 7959 §2.4: "the
    /// server SHOULD include an ETag Option in each response").
    BlockWise,
    /// On every successful response with a payload, which also lets GETs
    /// be validated with 2.03 (RFC 7252 §5.10.6.2).
    Always,
}

/// Settings and bounds of the layer.
///
/// Block-wise state costs [`TRANSFER_BYTES`] per transfer plus its buffer,
/// all within [`max_transfer_memory`](Self::max_transfer_memory); each
/// request answered later costs [`SEPARATE_BYTES`] plus its ETags.
///
/// ```
/// use coap_proto::server::ServerConfig;
/// let mut c = ServerConfig::default();
/// c.block2_szx = 2; // 64-byte blocks unless the client asks for less
/// c.max_body = 64 * 1024;
/// assert_eq!(c.max_transfer_memory, 8 * 1024 * 1024);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The largest Block2 size the server uses (SZX 0..=6, block size
    /// 2^(SZX+4)), also when the client does not ask (early negotiation,
    /// RFC 7959 §2.4). Default 6 (1024 bytes).
    pub block2_szx: u8,
    /// The Block1 size the server prefers; a larger first block is answered
    /// with this SZX in the 2.31 (RFC 7959 §2.5). Default 6.
    pub block1_szx: u8,
    /// The largest request body (one upload) in bytes; beyond it, 4.13
    /// with Size1 (RFC 7959 §2.9.3). Default 1 MiB. A resource can
    /// override it ([`Resource::max_body`]).
    pub max_body: usize,
    /// The total memory of all block-wise transfers: reassembly buffers,
    /// cached responses and [`TRANSFER_BYTES`] per transfer. A block that
    /// would exceed it gets 4.13 (RFC 7959 §2.5: "does not currently have
    /// the resources"); transfers in progress are never evicted for a new
    /// one. Default 8 MiB.
    pub max_transfer_memory: usize,
    /// Block-wise transfers at once. Default 1024.
    pub max_transfers: usize,
    /// A transfer idle this long is dropped (RFC 7959 §2.5 allows it after
    /// EXCHANGE_LIFETIME). Default 247 s.
    pub transfer_lifetime: Duration,
    /// Requests answered later ([`Reply::Later`]) that the layer remembers
    /// (to post-process the answer). When full, a handler's `Later` is
    /// answered 5.03 at once. Default 1024.
    pub max_separate: usize,
    /// How long the layer remembers a request answered later. Default
    /// 247 s (EXCHANGE_LIFETIME, after which the endpoint forgets it too).
    pub separate_lifetime: Duration,
    /// When the layer adds ETags of its own.
    pub auto_etag: AutoEtag,
    /// Serve `/.well-known/core` (RFC 6690 §4). Default true.
    pub well_known_core: bool,
    /// Observers of [`observable`](Resource::observable) resources (RFC 7641)
    /// at once, over all resources. Each costs [`OBSERVER_BYTES`] plus its
    /// registration request. When full, a new registration is served as a
    /// plain GET, without Observe (§4.1 allows it). Observers that went
    /// away are removed by the CON notification they then fail to
    /// acknowledge (see [`notify_con_every`](Self::notify_con_every)).
    /// Default 1024.
    pub max_observers: usize,
    /// The longest registration request (in bytes) the layer keeps to run
    /// the GET handler again for each notification; a longer one is
    /// served without Observe. Default 256.
    pub max_observe_request: usize,
    /// Send every notification as CON (true) or mostly NON (false, the
    /// default).
    pub notify_con: bool,
    /// With NON notifications, at least every this many notifications to
    /// an observer is CON (RFC 7641 §4.5 leaves the rate to the server; a
    /// CON one that is not acknowledged removes the observer). 0 and 1:
    /// every one. Default 10.
    pub notify_con_every: u32,
    /// ... and at least one notification in this interval is CON
    /// (RFC 7641 §4.5: "at least every 24 hours", the default).
    pub notify_con_interval: Duration,
    /// Representations kept for their follow-up Block2 blocks (see
    /// [`Server::invalidate`]); 0 disables the cache. When full, the least
    /// recently used one goes. Default 16.
    pub max_cached_representations: usize,
    /// The total memory of the kept representations: their encoded size,
    /// key and [`CACHE_ENTRY_BYTES`] each. A new one evicts the least
    /// recently used ones until it fits; one larger than this alone is not
    /// kept (its blocks then run the handler each). Default 4 MiB.
    pub max_cache_memory: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            block2_szx: 6,
            block1_szx: 6,
            max_body: 1024 * 1024,
            max_transfer_memory: 8 * 1024 * 1024,
            max_transfers: 1024,
            transfer_lifetime: Duration::from_secs(247),
            max_separate: 1024,
            separate_lifetime: Duration::from_secs(247),
            auto_etag: AutoEtag::BlockWise,
            well_known_core: true,
            max_observers: 1024,
            max_observe_request: 256,
            notify_con: false,
            notify_con_every: 10,
            notify_con_interval: Duration::from_secs(24 * 60 * 60),
            max_cached_representations: 16,
            max_cache_memory: 4 * 1024 * 1024,
        }
    }
}

impl ServerConfig {
    /// The most memory the observer registry holds with this configuration:
    /// [`max_observers`](Self::max_observers) × ([`OBSERVER_BYTES`] +
    /// [`max_observe_request`](Self::max_observe_request)). See
    /// [`Server::observer_memory`].
    ///
    /// ```
    /// use coap_proto::server::ServerConfig;
    /// assert!(ServerConfig::default().observer_memory_bound() < 1024 * 1024);
    /// ```
    #[must_use]
    pub fn observer_memory_bound(&self) -> usize {
        self.max_observers * (OBSERVER_BYTES + self.max_observe_request)
    }
}

/// Counters of what the layer answered.
///
/// ```
/// use coap_proto::server::{Server, ServerConfig};
/// let server: Server<u8> = Server::new(ServerConfig::default());
/// assert_eq!(server.stats().not_found, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Requests handed to [`Server::handle`].
    pub requests: u64,
    /// 4.04 Not Found.
    pub not_found: u64,
    /// 4.05 Method Not Allowed.
    pub method_not_allowed: u64,
    /// 4.06 Not Acceptable.
    pub not_acceptable: u64,
    /// 4.12 Precondition Failed.
    pub precondition_failed: u64,
    /// 4.00 Bad Request, 4.02 Bad Option and 5.05 answers of the layer.
    pub bad_requests: u64,
    /// 2.03 Valid instead of a representation.
    pub valid: u64,
    /// Responses that carried one Block2 block.
    pub blocks_sent: u64,
    /// 2.31 Continue answers (Block1 blocks accepted).
    pub continues: u64,
    /// 4.08 Request Entity Incomplete answers.
    pub incomplete: u64,
    /// 4.13 Request Entity Too Large answers.
    pub too_large: u64,
    /// Block1 uploads completed.
    pub uploads_completed: u64,
    /// Block-wise transfers dropped after [`ServerConfig::transfer_lifetime`].
    pub transfers_expired: u64,
    /// Requests answered later.
    pub separate: u64,
    /// Handler `Later`s refused with 5.03 (the separate table was full).
    pub busy: u64,
    /// Answers the endpoint refused (unknown handle, table full, message
    /// too large); too large ones are replaced by 5.00.
    pub respond_errors: u64,
    /// Observe registrations accepted (RFC 7641 §4.1), re-registrations
    /// included.
    pub observers_registered: u64,
    /// Registrations served without Observe: the list of observers was
    /// full, or the request too long to keep.
    pub observe_refused: u64,
    /// Observers removed: deregistered (Observe:1), rejected (Reset), timed
    /// out, or after an error notification.
    pub observers_removed: u64,
    /// Notifications sent (§4.2), error notifications included.
    pub notifications: u64,
    /// Notifications sent as CON.
    pub notifications_con: u64,
    /// Notifications not sent: the handler answered later, or the endpoint
    /// refused (no Message ID or buffer).
    pub notifications_skipped: u64,
    /// Block2 answers sliced from a kept representation, without running
    /// the handler.
    pub cache_hits: u64,
    /// Representations kept for their follow-up blocks.
    pub cache_stores: u64,
    /// Kept representations dropped because the resource changed
    /// ([`Server::invalidate`], an unsafe request, or a new state ETag).
    pub cache_invalidations: u64,
}

/// Why [`Server::add`] refused a resource.
///
/// ```
/// use coap_proto::server::{Resource, Server, ServerConfig, ServerError};
/// let mut server: Server<u8> = Server::new(ServerConfig::default());
/// server.add(Resource::new("/a"))?;
/// assert_eq!(server.add(Resource::new("/a")), Err(ServerError::DuplicatePath));
/// assert_eq!(server.add(Resource::new("/a b")), Err(ServerError::InvalidLink));
/// # Ok::<(), ServerError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerError {
    /// Another resource has this path.
    DuplicatePath,
    /// A path segment is longer than 255 bytes (the Uri-Path limit).
    SegmentTooLong,
    /// The path or an attribute cannot be written as a link (RFC 6690 §2).
    InvalidLink,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::DuplicatePath => "a resource with this path is already registered",
            Self::SegmentTooLong => "a path segment is longer than 255 bytes",
            Self::InvalidLink => "the path or an attribute is not valid in a link",
        })
    }
}

impl core::error::Error for ServerError {}

/// How the answer to one request is shaped after the handler: what the
/// request asked for that the layer honours.
#[derive(Clone, Debug)]
struct Shape<A> {
    /// GET or FETCH: a Block2 follow-up runs the handler again.
    safe: bool,
    /// The request's Block2 option (control usage).
    block2: Option<Block>,
    /// The request asked for Size2.
    size2: bool,
    /// The request's ETags (validation, safe methods only).
    etags: Vec<ETag>,
    /// Block1 to echo; its M bit stays only on a 2.31.
    block1: Option<Block>,
    format: Option<ContentFormat>,
    max_age: Option<u32>,
    /// Where to keep a sliced response of an unsafe method.
    cache: Option<TransferKey<A>>,
    /// Where to keep a sliced representation of a safe method.
    rep: Option<RepKey>,
    /// The resource's state ETag when the request came (kept with `rep`).
    state: Option<ETag>,
    /// A registration to make if the answer is 2.xx (RFC 7641 §4.1).
    observe: Option<Registration<A>>,
}

/// An Observe registration waiting for its answer.
#[derive(Clone, Debug)]
struct Registration<A> {
    peer: A,
    token: Token,
    resource: usize,
    format: Option<ContentFormat>,
    /// The registration request (at most `max_observe_request` bytes).
    request: Vec<u8>,
}

#[derive(Debug)]
struct Separate<A> {
    shape: Shape<A>,
    expires: Instant,
}

enum Outcome<A> {
    /// A handler's (or the layer's) representation, to post-process.
    Shaped(MessageBuf, Shape<A>),
    /// An answer of the layer, sent as it is.
    Plain(MessageBuf),
    /// A follow-up block of a cached response.
    Cached(TransferKey<A>, Shape<A>),
    /// A block of a kept representation of a safe request (`Shape::rep`).
    Kept(Shape<A>),
    /// Answered later; `true` acknowledges now.
    Later(Shape<A>, bool),
}

/// What the Block1 step decided.
// A transient return value of one function, never stored: its size does
// not matter, boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Step<A> {
    Done(Outcome<A>),
    /// The whole body, and the Block1 to echo.
    Body(Vec<u8>, Block),
    /// One block for a streaming handler, and the Block1 to echo.
    Stream(BodyBlock, Block),
}

fn plain(code: Code, diagnostic: &str) -> MessageBuf {
    let mut m = MessageBuf::new(MessageType::Ack, code);
    m.set_payload(diagnostic.as_bytes());
    m
}

/// The resource key of a path: each segment's length, then its bytes.
fn path_key(path: &str, out: &mut Vec<u8>) -> Result<(), ServerError> {
    out.clear();
    let rest = path.strip_prefix('/').unwrap_or(path);
    if rest.is_empty() {
        return Ok(());
    }
    for seg in rest.split('/') {
        let len = u8::try_from(seg.len()).map_err(|_| ServerError::SegmentTooLong)?;
        out.push(len);
        out.extend_from_slice(seg.as_bytes());
    }
    Ok(())
}

/// The resource key of a request's Uri-Path options. A single empty
/// segment is the root, like no segment (RFC 7252 §6.5).
fn request_key(msg: &Message<'_>, out: &mut Vec<u8>) {
    out.clear();
    let mut segs = msg.options_of(OptionNumber::URI_PATH);
    if let (Some(first), None) = (segs.next(), segs.next())
        && first.is_empty()
    {
        return;
    }
    for seg in msg.options_of(OptionNumber::URI_PATH) {
        let seg = seg.get(..255).unwrap_or(seg);
        out.push(seg.len() as u8);
        out.extend_from_slice(seg);
    }
}

/// Sets Block2 (and Size2) on `m` for the block the request asks for, and
/// returns the payload range, whether more blocks follow, or `Err` for a
/// block past the end. `Ok(None)`: no slicing needed.
fn slice(
    m: &mut MessageBuf,
    block2: Option<Block>,
    size2: bool,
    preferred_szx: u8,
    max_message: usize,
) -> Result<Option<(usize, usize, bool)>, ()> {
    let len = m.payload().len();
    let preferred = preferred_szx.min(6);
    let payload_part = if len > 0 { 1 + len } else { 0 };
    let fits = m.encoded_len() + MAX_TOKEN_LEN <= max_message;
    if block2.is_none() && len <= 1usize << (preferred + 4) && fits {
        if size2 {
            m.set_option(
                OptionNumber::SIZE2,
                encode_uint(u32::try_from(len).unwrap_or(u32::MAX)),
            );
        }
        return Ok(None);
    }
    // RFC 7959 §2.4: the client's size or a smaller one (ours); a later
    // request with the client's larger size keeps the same offset.
    let mut szx = block2.map_or(preferred, |b| b.szx().min(preferred));
    let offset = block2.map_or(0, Block::offset);
    if offset >= len && offset > 0 {
        return Err(());
    }
    loop {
        let size = 1usize << (szx + 4);
        let num = u32::try_from(offset >> (szx + 4)).map_err(|_| ())?;
        let end = offset.saturating_add(size).min(len);
        let more = end < len;
        let b = Block::new(num, more, szx).map_err(|_| ())?;
        m.set_option(OptionNumber::BLOCK2, encode_uint(b.to_uint()));
        if num == 0 || size2 {
            m.set_option(
                OptionNumber::SIZE2,
                encode_uint(u32::try_from(len).unwrap_or(u32::MAX)),
            );
        } else {
            m.remove_option(OptionNumber::SIZE2);
        }
        let head = m.encoded_len().saturating_sub(payload_part) + MAX_TOKEN_LEN;
        let part = if end > offset { 1 + end - offset } else { 0 };
        if head + part <= max_message || szx == 0 {
            return Ok(Some((offset, end, more)));
        }
        szx -= 1;
    }
}

/// Writes `m` (or a range of its payload) as the answer.
fn emit<A: Address>(
    ep: &mut Endpoint<A>,
    now: Instant,
    handle: ResponseHandle,
    m: &MessageBuf,
    range: Option<(usize, usize)>,
) -> Result<(), EndpointError> {
    let payload = match range {
        Some((s, e)) => m.payload().get(s..e).unwrap_or_default(),
        None => m.payload(),
    };
    ep.respond_with(now, handle, m.code(), |enc| {
        for o in m.options() {
            enc.option(o.number, o.value)?;
        }
        enc.payload(payload)?;
        Ok(())
    })
}

/// The sans-IO resource layer; see the [module docs](self).
///
/// `A` is the endpoint's address type, `S` the application state handed to
/// every handler (use `()` when the handlers capture what they need).
///
/// ```
/// use coap_proto::server::{Reply, Resource, Server, ServerConfig};
/// use coap_proto::{Code, ContentFormat};
/// let mut server: Server<std::net::SocketAddr, Vec<u8>> = Server::new(ServerConfig::default());
/// server.add(
///     Resource::new("/store")
///         .format(ContentFormat::OCTET_STREAM)
///         .get(|stored: &mut Vec<u8>, _| Reply::content(ContentFormat::OCTET_STREAM, stored.clone()))
///         .put(|stored: &mut Vec<u8>, req| {
///             *stored = req.body.to_vec();
///             Reply::status(Code::CHANGED)
///         }),
/// )?;
/// assert!(server.well_known_core().contains("</store>;ct=42"));
/// # Ok::<(), coap_proto::server::ServerError>(())
/// ```
pub struct Server<A: Address, S = ()> {
    config: ServerConfig,
    resources: Vec<Resource<A, S>>,
    keys: Vec<Vec<u8>>,
    by_key: BTreeMap<Vec<u8>, usize>,
    scratch: Vec<u8>,
    transfers: Transfers<A>,
    cache: Cache,
    separate: BTreeMap<ResponseHandle, Separate<A>>,
    separate_expiry: BTreeSet<(Instant, ResponseHandle)>,
    observers: Observers<A>,
    /// The Observe sequence number of each resource (RFC 7641 §4.4).
    sequences: Vec<u32>,
    stats: ServerStats,
    now: Instant,
}

impl<A: Address, S> fmt::Debug for Server<A, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("resources", &self.resources)
            .field("transfers", &self.transfers.len())
            .field("transfer_memory", &self.transfers.memory())
            .field("cached", &self.cache.len())
            .field("cache_memory", &self.cache.memory())
            .field("separate", &self.separate.len())
            .field("observers", &self.observers.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<A: Address, S> Server<A, S> {
    /// A server without resources (only `/.well-known/core`, if enabled).
    ///
    /// ```
    /// use coap_proto::server::{Server, ServerConfig};
    /// let server: Server<u8> = Server::new(ServerConfig::default());
    /// assert_eq!(server.well_known_core(), "");
    /// ```
    #[must_use]
    pub fn new(config: ServerConfig) -> Self {
        let mut config = config;
        config.block1_szx = config.block1_szx.min(6);
        config.block2_szx = config.block2_szx.min(6);
        Self {
            config,
            resources: Vec::new(),
            keys: Vec::new(),
            by_key: BTreeMap::new(),
            scratch: Vec::new(),
            transfers: Transfers::new(),
            cache: Cache::new(),
            separate: BTreeMap::new(),
            separate_expiry: BTreeSet::new(),
            observers: Observers::new(),
            sequences: Vec::new(),
            stats: ServerStats::default(),
            now: Instant::ZERO,
        }
    }

    /// The configuration.
    ///
    /// ```
    /// # use coap_proto::server::{Server, ServerConfig};
    /// let server: Server<u8> = Server::new(ServerConfig::default());
    /// assert_eq!(server.config().block2_szx, 6);
    /// ```
    #[must_use]
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The counters.
    ///
    /// ```
    /// # use coap_proto::server::{Server, ServerConfig};
    /// let server: Server<u8> = Server::new(ServerConfig::default());
    /// assert_eq!(server.stats().requests, 0);
    /// ```
    #[must_use]
    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }

    /// Registers a resource. Its path and link attributes must form a valid
    /// link (RFC 6690 §2) and the path must be new.
    ///
    /// ```
    /// use coap_proto::server::{Resource, Server, ServerConfig};
    /// let mut server: Server<u8> = Server::new(ServerConfig::default());
    /// server.add(Resource::new("/link1").rt("Type1 Type2").interface("If1"))?;
    /// assert_eq!(server.well_known_core(), r#"</link1>;rt="Type1 Type2";if="If1""#);
    /// # Ok::<(), coap_proto::server::ServerError>(())
    /// ```
    pub fn add(&mut self, resource: Resource<A, S>) -> Result<ResourceId, ServerError> {
        let mut key = Vec::new();
        path_key(&resource.path, &mut key)?;
        if self.by_key.contains_key(&key) {
            return Err(ServerError::DuplicatePath);
        }
        let mut w = LinkWriter::new(String::new());
        links::write_link(&mut w, &resource).map_err(|_| ServerError::InvalidLink)?;
        let id = self.resources.len();
        self.by_key.insert(key.clone(), id);
        self.keys.push(key);
        self.resources.push(resource);
        self.sequences.push(0);
        Ok(ResourceId(id))
    }

    /// The id of the resource registered at `path` (written as for
    /// [`Resource::new`]), if any.
    ///
    /// ```
    /// # use coap_proto::server::{Resource, Server, ServerConfig};
    /// let mut server: Server<u8> = Server::new(ServerConfig::default());
    /// let id = server.add(Resource::new("/a/b"))?;
    /// assert_eq!(server.find("a/b"), Some(id));
    /// assert_eq!(server.find("/a"), None);
    /// # Ok::<(), coap_proto::server::ServerError>(())
    /// ```
    #[must_use]
    pub fn find(&self, path: &str) -> Option<ResourceId> {
        let mut key = Vec::new();
        path_key(path, &mut key).ok()?;
        self.by_key.get(&key).map(|&i| ResourceId(i))
    }

    /// The path of a registered resource.
    ///
    /// ```
    /// # use coap_proto::server::{Resource, Server, ServerConfig};
    /// let mut server: Server<u8> = Server::new(ServerConfig::default());
    /// let id = server.add(Resource::new("seg1/seg2"))?;
    /// assert_eq!(server.path(id), Some("/seg1/seg2"));
    /// # Ok::<(), coap_proto::server::ServerError>(())
    /// ```
    #[must_use]
    pub fn path(&self, id: ResourceId) -> Option<&str> {
        self.resources.get(id.0).map(Resource::path)
    }

    /// The `/.well-known/core` document without a filter: the links of every
    /// resource not marked [`unlisted`](Resource::unlisted), in
    /// registration order (RFC 6690 §4).
    ///
    /// ```
    /// use coap_proto::server::{Resource, Server, ServerConfig};
    /// use coap_proto::ContentFormat;
    /// let mut server: Server<u8> = Server::new(ServerConfig::default());
    /// server.add(Resource::new("/obs").rt("observe").observable().format(ContentFormat::TEXT_PLAIN))?;
    /// server.add(Resource::new("/hidden").unlisted())?;
    /// assert_eq!(server.well_known_core(), r#"</obs>;rt="observe";ct=0;obs"#);
    /// # Ok::<(), coap_proto::server::ServerError>(())
    /// ```
    #[must_use]
    pub fn well_known_core(&self) -> String {
        links::document(self.resources.iter().filter(|r| r.listed), &[]).0
    }

    /// Block-wise transfers in progress (uploads, streamed uploads and
    /// cached responses).
    ///
    /// ```
    /// # use coap_proto::server::{Server, ServerConfig};
    /// let server: Server<u8> = Server::new(ServerConfig::default());
    /// assert_eq!(server.transfer_count(), 0);
    /// ```
    #[must_use]
    pub fn transfer_count(&self) -> usize {
        self.transfers.len()
    }

    /// The memory charged to block-wise transfers now; never above
    /// [`ServerConfig::max_transfer_memory`].
    ///
    /// ```
    /// # use coap_proto::server::{Server, ServerConfig};
    /// let server: Server<u8> = Server::new(ServerConfig::default());
    /// assert_eq!(server.transfer_memory(), 0);
    /// ```
    #[must_use]
    pub fn transfer_memory(&self) -> usize {
        self.transfers.memory()
    }

    /// Representations kept for their follow-up Block2 blocks.
    ///
    /// ```
    /// # use coap_proto::server::{Server, ServerConfig};
    /// let server: Server<u8> = Server::new(ServerConfig::default());
    /// assert_eq!(server.cached_representations(), 0);
    /// ```
    #[must_use]
    pub fn cached_representations(&self) -> usize {
        self.cache.len()
    }

    /// The memory charged to kept representations now; never above
    /// [`ServerConfig::max_cache_memory`].
    ///
    /// ```
    /// # use coap_proto::server::{Server, ServerConfig};
    /// let server: Server<u8> = Server::new(ServerConfig::default());
    /// assert_eq!(server.cache_memory(), 0);
    /// ```
    #[must_use]
    pub fn cache_memory(&self) -> usize {
        self.cache.memory()
    }

    /// All the memory the layer charges to its tables: block-wise
    /// transfers ([`transfer_memory`](Self::transfer_memory)), kept
    /// representations ([`cache_memory`](Self::cache_memory)), observers
    /// ([`observer_memory`](Self::observer_memory)) and requests answered
    /// later ([`SEPARATE_BYTES`] each).
    ///
    /// ```
    /// # use coap_proto::server::{Server, ServerConfig};
    /// let server: Server<u8> = Server::new(ServerConfig::default());
    /// assert_eq!(server.memory_usage(), 0);
    /// ```
    #[must_use]
    pub fn memory_usage(&self) -> usize {
        self.transfers.memory()
            + self.cache.memory()
            + self.observers.memory()
            + self.separate.len() * SEPARATE_BYTES
    }

    /// Marks `resource` changed: the representations kept for its Block2
    /// follow-up blocks are dropped, so the next block runs the handler
    /// again and, if the representation changed, carries a new ETag (RFC
    /// 7959 §2.4). [`notify_changed`](Self::notify_changed) and every
    /// request with a method other than GET and FETCH to the resource do
    /// this too; call it when the application changes a resource by other
    /// means. (A resource with a [`state`](Resource::state) probe is also
    /// checked against its ETag before a kept representation is used.)
    ///
    /// The layer keeps a representation of a GET or FETCH answered in
    /// more than one block (and of a notification sent in blocks, for the
    /// GETs that complete it, RFC 7959 §2.6), keyed by the resource, the
    /// method, the negotiated Content-Format, the Uri-Query options and the
    /// FETCH body (not the client: clients asking the same share it), until its
    /// Max-Age ends (at most [`ServerConfig::transfer_lifetime`]): Max-Age
    /// is how long the representation may be used as fresh at all (RFC
    /// 7252 §5.6.1), so it also bounds how long the layer serves it
    /// unchecked. A handler whose answer depends on anything else (the
    /// client, the time) should be [`uncached`](Resource::uncached).
    ///
    /// ```
    /// use coap_proto::server::{Reply, Resource, Server, ServerConfig};
    /// use coap_proto::ContentFormat;
    /// let mut server: Server<u8, Vec<u8>> = Server::new(ServerConfig::default());
    /// let id = server.add(Resource::new("/big").get(|d: &mut Vec<u8>, _| {
    ///     Reply::content(ContentFormat::OCTET_STREAM, d.clone())
    /// }))?;
    /// // ... the application changes the data behind /big:
    /// server.invalidate(id);
    /// assert_eq!(server.cached_representations(), 0);
    /// # Ok::<(), coap_proto::server::ServerError>(())
    /// ```
    pub fn invalidate(&mut self, resource: ResourceId) {
        self.stats.cache_invalidations += self.cache.invalidate(resource.0) as u64;
    }

    /// Requests answered later that the layer still remembers.
    ///
    /// ```
    /// # use coap_proto::server::{Server, ServerConfig};
    /// let server: Server<u8> = Server::new(ServerConfig::default());
    /// assert_eq!(server.separate_count(), 0);
    /// ```
    #[must_use]
    pub fn separate_count(&self) -> usize {
        self.separate.len()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should run next to
    /// drop idle transfers and forgotten separate answers, if anything is
    /// held. Calling it late only keeps memory longer: the bounds hold
    /// regardless.
    ///
    /// ```
    /// # use coap_proto::server::{Server, ServerConfig};
    /// let server: Server<u8> = Server::new(ServerConfig::default());
    /// assert_eq!(server.poll_timeout(), None);
    /// ```
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.transfers.next_expiry(),
            self.separate_expiry.first().map(|(t, _)| *t),
            self.cache.next_expiry(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Drops transfers idle for [`ServerConfig::transfer_lifetime`] (a later
    /// block of theirs gets 4.08) and separate answers not given within
    /// [`ServerConfig::separate_lifetime`]. Early or repeated calls are
    /// harmless; work per call is bounded.
    ///
    /// ```
    /// # use coap_proto::server::{Server, ServerConfig};
    /// # use coap_proto::Instant;
    /// let mut server: Server<u8> = Server::new(ServerConfig::default());
    /// server.handle_timeout(Instant::from_secs(1));
    /// assert_eq!(server.transfer_count(), 0);
    /// ```
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.advance(now);
        self.expire(now, TIMEOUT_BUDGET);
    }

    fn advance(&mut self, now: Instant) -> Instant {
        if now > self.now {
            self.now = now;
        }
        self.now
    }

    fn expire(&mut self, now: Instant, budget: usize) {
        let n = self.transfers.expire(now, budget);
        self.stats.transfers_expired += n as u64;
        self.cache.expire(now, budget);
        for _ in 0..budget {
            let Some(h) = pop_due(&mut self.separate_expiry, now) else {
                break;
            };
            self.separate.remove(&h);
        }
    }

    /// Answers one request from the endpoint: routes it, runs the handler
    /// and answers through `ep` (unless the handler answers later), then
    /// recycles the request's buffer. `state` is handed to the handler.
    ///
    /// ```
    /// use coap_proto::endpoint::{Config, Endpoint, Event};
    /// use coap_proto::server::{Server, ServerConfig};
    /// use coap_proto::{Code, Instant, Message};
    /// let mut server: Server<u8> = Server::new(ServerConfig::default());
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// ep.handle_datagram(Instant::ZERO, 9, b"\x40\x01\x00\x01\xb7unknown"); // CON GET /unknown
    /// let Some(Event::Request(req)) = ep.poll_event() else { unreachable!() };
    /// server.handle(&mut ep, Instant::ZERO, req, &mut ());
    /// let mut buf = [0u8; 64];
    /// let t = ep.poll_transmit(&mut buf)?.unwrap();
    /// assert_eq!(Message::parse(&buf[..t.len])?.code(), Code::NOT_FOUND);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handle(
        &mut self,
        ep: &mut Endpoint<A>,
        now: Instant,
        req: IncomingRequest<A>,
        state: &mut S,
    ) {
        let now = self.advance(now);
        self.expire(now, EXPIRY_BUDGET);
        let max_message = ep.config().max_message_size;
        let handle = req.handle;
        {
            let msg = req.message();
            if (msg.code() == Code::GET || msg.code() == Code::FETCH)
                && msg.observe() == Some(Observe::DEREGISTER)
            {
                // RFC 7641 §4.1: remove the entry, then process the GET as
                // usual (the answer carries no Observe).
                let key = (req.peer, Token::new(msg.token()));
                if self.observers.remove(&key).is_some() {
                    self.stats.observers_removed += 1;
                    ep.cancel_notification(now, req.peer, msg.token());
                }
            }
            let outcome = self.dispatch(now, req.peer, req.multicast, handle, &msg, state);
            self.deliver(ep, now, handle, outcome, max_message);
        }
        ep.recycle(req.message.into_bytes());
    }

    /// Answers a request whose handler returned [`Reply::Later`] or
    /// [`Reply::Defer`], with the same post-processing as an immediate
    /// answer (Block2 slicing, ETag, Content-Format, Max-Age, Block1 echo).
    /// For a handle the layer does not know (it expired, or never went
    /// through the layer) it is [`Endpoint::respond`].
    ///
    /// ```
    /// use coap_proto::endpoint::{Config, Endpoint, Event};
    /// use coap_proto::server::{Reply, Resource, Server, ServerConfig};
    /// use coap_proto::{Code, Instant, Message, MessageBuf, MessageType};
    /// let mut server: Server<u8, Vec<_>> = Server::new(ServerConfig::default());
    /// server.add(Resource::new("/a").get(|later: &mut Vec<_>, req| { later.push(req.handle); Reply::Later }))?;
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// ep.handle_datagram(Instant::ZERO, 9, b"\x40\x01\x00\x01\xb1a"); // CON GET /a
    /// let Some(Event::Request(req)) = ep.poll_event() else { unreachable!() };
    /// let mut later = Vec::new();
    /// server.handle(&mut ep, Instant::ZERO, req, &mut later);
    /// let mut answer = MessageBuf::new(MessageType::Con, Code::CONTENT);
    /// answer.set_payload(vec![b'x'; 3000]);
    /// server.respond(&mut ep, Instant::from_secs(1), later[0], answer)?;
    /// let mut buf = [0u8; 1500];
    /// let empty_ack = ep.poll_transmit(&mut buf)?.unwrap();
    /// let t = ep.poll_transmit(&mut buf)?.unwrap();
    /// let m = Message::parse(&buf[..t.len])?;
    /// assert_eq!((m.code(), m.block2().map(|b| (b.num(), b.more()))), (Code::CONTENT, Some((0, true))));
    /// # let _ = empty_ack;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn respond(
        &mut self,
        ep: &mut Endpoint<A>,
        now: Instant,
        handle: ResponseHandle,
        msg: MessageBuf,
    ) -> Result<(), EndpointError> {
        let now = self.advance(now);
        let Some(s) = self.separate.remove(&handle) else {
            return ep.respond(now, handle, &msg);
        };
        self.separate_expiry.remove(&(s.expires, handle));
        let max_message = ep.config().max_message_size;
        self.send_shaped(ep, now, handle, msg, &s.shape, max_message)
    }

    // ----- routing ------------------------------------------------------------

    // One linear pipeline in the order of the module docs; splitting it
    // would scatter the RFC order over several functions.
    #[allow(clippy::too_many_lines)]
    fn dispatch(
        &mut self,
        now: Instant,
        peer: A,
        multicast: bool,
        handle: ResponseHandle,
        msg: &Message<'_>,
        state: &mut S,
    ) -> Outcome<A> {
        self.stats.requests += 1;
        let code = msg.code();
        if msg.has_option(OptionNumber::PROXY_URI) || msg.has_option(OptionNumber::PROXY_SCHEME) {
            self.stats.bad_requests += 1;
            return Outcome::Plain(plain(Code::PROXYING_NOT_SUPPORTED, "not a proxy"));
        }
        request_key(msg, &mut self.scratch);
        let Some(&idx) = self.by_key.get(&self.scratch) else {
            if self.config.well_known_core && self.scratch == WKC_KEY {
                return self.serve_links(msg, multicast, None, None);
            }
            self.stats.not_found += 1;
            return Outcome::Plain(plain(Code::NOT_FOUND, ""));
        };
        let Some(res) = self.resources.get(idx) else {
            return Outcome::Plain(plain(Code::INTERNAL_SERVER_ERROR, ""));
        };
        let handler = res.handlers.iter().position(|(c, _)| *c == code);
        let index_get = res.index && code == Code::GET && handler.is_none();
        if handler.is_none() && !index_get {
            self.stats.method_not_allowed += 1;
            return Outcome::Plain(plain(Code::METHOD_NOT_ALLOWED, ""));
        }
        // RFC 7959 §2.2: SZX 7 "MUST lead to a 4.00 Bad Request".
        if (msg.has_option(OptionNumber::BLOCK2) && msg.block2().is_none())
            || (msg.has_option(OptionNumber::BLOCK1) && msg.block1().is_none())
        {
            self.stats.bad_requests += 1;
            return Outcome::Plain(plain(Code::BAD_REQUEST, "reserved block size (SZX 7)"));
        }
        // RFC 7252 §5.10.8: conditional requests.
        let current = res
            .state
            .as_ref()
            .map_or(ResourceState::Present(None), |probe| probe(state));
        if msg.has_option(OptionNumber::IF_MATCH) {
            let ok = match current {
                ResourceState::Absent => false,
                ResourceState::Present(etag) => msg
                    .options_of(OptionNumber::IF_MATCH)
                    .any(|v| v.is_empty() || etag.is_some_and(|e| e.as_bytes() == v)),
            };
            if !ok {
                self.stats.precondition_failed += 1;
                return Outcome::Plain(plain(Code::PRECONDITION_FAILED, ""));
            }
        }
        if msg.has_option(OptionNumber::IF_NONE_MATCH)
            && matches!(current, ResourceState::Present(_))
        {
            self.stats.precondition_failed += 1;
            return Outcome::Plain(plain(Code::PRECONDITION_FAILED, ""));
        }
        let safe = code == Code::GET || code == Code::FETCH;
        let etags: Vec<ETag> = if safe {
            msg.options_of(OptionNumber::ETAG)
                .filter_map(ETag::new)
                .collect()
        } else {
            Vec::new()
        };
        // RFC 7252 §5.10.6.2: the client's stored representation is current.
        if let ResourceState::Present(Some(e)) = current
            && etags.contains(&e)
        {
            self.stats.valid += 1;
            let mut m = MessageBuf::new(MessageType::Ack, Code::VALID);
            m.add_option(OptionNumber::ETAG, e.as_bytes());
            if let Some(age) = res.max_age {
                m.add_option_uint(OptionNumber::MAX_AGE, age);
            }
            return Outcome::Plain(m);
        }
        // RFC 7252 §5.10.4: content negotiation.
        let format = match (res.formats.first(), msg.accept()) {
            (None, accept) => accept,
            (Some(&first), None) => Some(first),
            (Some(_), Some(accept)) if res.formats.contains(&accept) => Some(accept),
            (Some(_), Some(_)) => {
                self.stats.not_acceptable += 1;
                return Outcome::Plain(plain(Code::NOT_ACCEPTABLE, ""));
            }
        };
        let key = TransferKey::new(peer, idx, msg);
        let mut shape = Shape {
            safe,
            block2: msg.block2(),
            size2: msg.has_option(OptionNumber::SIZE2),
            etags,
            block1: None,
            format,
            max_age: res.max_age,
            cache: (!safe).then(|| key.clone()),
            rep: (safe && !res.uncached && msg.block1().is_none())
                .then(|| RepKey::new(idx, format.map(|f| f.0), msg)),
            state: current.etag(),
            observe: None,
        };
        if index_get {
            return self.serve_links(msg, multicast, Some(idx), Some(shape));
        }
        // RFC 7641 §4.1: GET (or FETCH, RFC 8132) with Observe:0 on an
        // observable resource registers once the answer is 2.xx; with a
        // Block2 option only on the first block (RFC 7959 §2.6).
        if res.observable
            && safe
            && !multicast
            && msg.observe() == Some(Observe::REGISTER)
            && shape.block2.is_none_or(|b| b.num() == 0)
        {
            let raw = msg.as_bytes();
            if raw.len() <= self.config.max_observe_request {
                shape.observe = Some(Registration {
                    peer,
                    token: Token::new(msg.token()),
                    resource: idx,
                    format,
                    request: raw.to_vec(),
                });
            } else {
                self.stats.observe_refused += 1;
            }
        }
        // RFC 7959 §2.4: a block of a representation kept from an earlier
        // request is sliced from it (the handler does not run again). A
        // registration runs the handler (RFC 7641 §4.1 wants its answer).
        if let Some(k) = &shape.rep
            && shape.observe.is_none()
        {
            if let ResourceState::Present(Some(e)) = current
                && self.cache.made_before(k, e)
            {
                // The resource's state moved on without an invalidation.
                self.stats.cache_invalidations += self.cache.invalidate(idx) as u64;
            }
            if self.cache.is_fresh(k, now) {
                return Outcome::Kept(shape);
            }
        }
        // RFC 7959 §2.7: the rest of an unsafe request's response comes from
        // the kept copy, not from running the method again.
        if !safe && msg.block1().is_none() && shape.block2.is_some_and(|b| b.num() > 0) {
            return Outcome::Cached(key, shape);
        }
        let stream = res.stream;
        let limit = res.max_body.unwrap_or(self.config.max_body);
        let (owned, block) = match msg.block1() {
            None => (None, None),
            Some(b1) => match self.block1(now, &key, b1, msg, stream, limit) {
                Step::Done(outcome) => return outcome,
                Step::Body(body, echo) => {
                    shape.block1 = Some(echo);
                    (Some(body), None)
                }
                Step::Stream(block, echo) => {
                    shape.block1 = Some(echo);
                    (None, Some(block))
                }
            },
        };
        let request = Request {
            peer,
            handle,
            multicast,
            now,
            message: *msg,
            body: owned.as_deref().unwrap_or(msg.payload()),
            block,
            format,
            resource: ResourceId(idx),
            notification: false,
        };
        let handler = handler.and_then(|h| self.resources.get_mut(idx)?.handlers.get_mut(h));
        let reply = match handler {
            Some((_, h)) => h(state, &request),
            None => Reply::status(Code::INTERNAL_SERVER_ERROR),
        };
        if !safe {
            // PUT, POST, DELETE, PATCH, ... may change the resource: its
            // kept representations go.
            self.stats.cache_invalidations += self.cache.invalidate(idx) as u64;
        }
        if let Some(b) = block
            && !b.last
            && matches!(&reply, Reply::Now(m) if !m.code().is_success())
        {
            // A streaming handler refused a block: the transfer is over.
            self.transfers.remove(&key);
        }
        match reply {
            Reply::Now(m) => Outcome::Shaped(m, shape),
            Reply::Later => Outcome::Later(shape, true),
            Reply::Defer => Outcome::Later(shape, false),
        }
    }

    /// `/.well-known/core` (`index: None`) or an index resource: the links,
    /// filtered by the request's queries (RFC 6690 §4.1).
    fn serve_links(
        &mut self,
        msg: &Message<'_>,
        multicast: bool,
        index: Option<usize>,
        shape: Option<Shape<A>>,
    ) -> Outcome<A> {
        if msg.code() != Code::GET {
            self.stats.method_not_allowed += 1;
            return Outcome::Plain(plain(Code::METHOD_NOT_ALLOWED, ""));
        }
        if msg
            .accept()
            .is_some_and(|a| a != ContentFormat::LINK_FORMAT)
        {
            self.stats.not_acceptable += 1;
            return Outcome::Plain(plain(Code::NOT_ACCEPTABLE, ""));
        }
        let mut filters = Vec::new();
        for q in msg.options_of(OptionNumber::URI_QUERY) {
            let Some(Ok(f)) = core::str::from_utf8(q).ok().map(Filter::parse) else {
                self.stats.bad_requests += 1;
                return Outcome::Plain(plain(Code::BAD_REQUEST, "bad link-format filter"));
            };
            filters.push(f);
        }
        let (doc, count) = match index.and_then(|i| self.keys.get(i)) {
            None => links::document(self.resources.iter().filter(|r| r.listed), &filters),
            Some(under) => links::document(
                self.resources
                    .iter()
                    .zip(&self.keys)
                    .filter(|(_, k)| k.len() > under.len() && k.starts_with(under))
                    .map(|(r, _)| r),
                &filters,
            ),
        };
        if multicast && !filters.is_empty() && count == 0 {
            // RFC 6690 §4.1: no answer to a multicast query that matches
            // nothing; the endpoint drops error answers to multicast.
            return Outcome::Plain(plain(Code::NOT_FOUND, ""));
        }
        let shape = shape.unwrap_or_else(|| Shape {
            safe: true,
            block2: msg.block2(),
            size2: msg.has_option(OptionNumber::SIZE2),
            etags: msg
                .options_of(OptionNumber::ETAG)
                .filter_map(ETag::new)
                .collect(),
            block1: None,
            format: Some(ContentFormat::LINK_FORMAT),
            max_age: None,
            cache: None,
            rep: None,
            state: None,
            observe: None,
        });
        let mut m = MessageBuf::new(MessageType::Ack, Code::CONTENT);
        m.add_option_uint(
            OptionNumber::CONTENT_FORMAT,
            u32::from(ContentFormat::LINK_FORMAT.0),
        );
        m.set_payload(doc.into_bytes());
        Outcome::Shaped(m, shape)
    }

    // ----- Block1 -------------------------------------------------------------

    /// One Block1 block (RFC 7959 §2.5): reassembly, or in-order delivery
    /// for a streaming handler.
    #[allow(clippy::too_many_lines)] // the cases of RFC 7959 §2.5 in order
    fn block1(
        &mut self,
        now: Instant,
        key: &TransferKey<A>,
        b: Block,
        msg: &Message<'_>,
        stream: bool,
        limit: usize,
    ) -> Step<A> {
        let payload = msg.payload();
        // RFC 7959 §2.3: with M set the payload is exactly one block.
        if (b.more() && payload.len() != b.size()) || payload.len() > b.size() {
            self.stats.bad_requests += 1;
            return Step::Done(Outcome::Plain(plain(
                Code::BAD_REQUEST,
                "Block1 payload does not match its size",
            )));
        }
        let offset = b.offset();
        let end = offset.saturating_add(payload.len());
        let format = msg.content_format();
        let expires = now + self.config.transfer_lifetime;
        let last = BodyBlock {
            offset,
            last: !b.more(),
            num: b.num(),
            szx: b.szx(),
        };
        if b.num() == 0 {
            // A new transfer replaces one with the same key (RFC 7959 §2.5:
            // "simply overwrites the context").
            self.transfers.remove(key);
            let announced = msg
                .uint_option(OptionNumber::SIZE1)
                .map_or(0, |s| usize::try_from(s).unwrap_or(usize::MAX));
            if announced > limit || end > limit {
                return Step::Done(self.too_large(Some(limit)));
            }
            if !b.more() {
                let echo = Block::new(0, false, b.szx()).unwrap_or(b);
                return if stream {
                    Step::Stream(last, echo)
                } else {
                    Step::Body(payload.to_vec(), echo)
                };
            }
            let body = if stream {
                Body::Stream
            } else {
                Body::Upload(Vec::new())
            };
            let max_count = self.config.max_transfers;
            let max_memory = self.config.max_transfer_memory;
            if self
                .transfers
                .insert(
                    key.clone(),
                    Transfer::new(body, format),
                    expires,
                    max_count,
                    max_memory,
                )
                .is_err()
            {
                return Step::Done(self.too_large(None));
            }
        } else {
            let Some(t) = self.transfers.get_mut(key) else {
                self.stats.incomplete += 1;
                return Step::Done(Outcome::Plain(plain(
                    Code::REQUEST_ENTITY_INCOMPLETE,
                    "no block-wise transfer in progress",
                )));
            };
            if t.format != format {
                // RFC 7959 §2.3: blocks of another Content-Format are not
                // assembled with the others.
                self.transfers.remove(key);
                self.stats.incomplete += 1;
                return Step::Done(Outcome::Plain(plain(
                    Code::REQUEST_ENTITY_INCOMPLETE,
                    "Content-Format changed",
                )));
            }
            if offset != t.received {
                if (offset, payload.len()) == t.last && b.more() {
                    // The same block again (our 2.31 was lost and the
                    // client sent it anew): acknowledge it again.
                    self.transfers.touch(key, expires);
                    return Step::Done(self.continue_block(b));
                }
                self.transfers.remove(key);
                self.stats.incomplete += 1;
                return Step::Done(Outcome::Plain(plain(
                    Code::REQUEST_ENTITY_INCOMPLETE,
                    "block out of sequence",
                )));
            }
            if end > limit {
                self.transfers.remove(key);
                return Step::Done(self.too_large(Some(limit)));
            }
        }
        if !stream {
            let max_memory = self.config.max_transfer_memory;
            if self
                .transfers
                .append(key, payload, limit, max_memory)
                .is_err()
            {
                self.transfers.remove(key);
                return Step::Done(self.too_large(None));
            }
        }
        if let Some(t) = self.transfers.get_mut(key) {
            t.received = end;
            t.last = (offset, payload.len());
        }
        self.transfers.touch(key, expires);
        let echo = Block::new(b.num(), b.more(), b.szx()).unwrap_or(b);
        if b.more() {
            if stream {
                return Step::Stream(last, echo);
            }
            return Step::Done(self.continue_block(b));
        }
        self.stats.uploads_completed += 1;
        let done = self.transfers.remove(key);
        if stream {
            return Step::Stream(last, echo);
        }
        match done {
            Some(Transfer {
                body: Body::Upload(body),
                ..
            }) => Step::Body(body, echo),
            _ => Step::Done(Outcome::Plain(plain(Code::INTERNAL_SERVER_ERROR, ""))),
        }
    }

    /// 2.31 Continue with the Block1 echo; on the first block a smaller
    /// preferred size (RFC 7959 §2.5, §2.9.1).
    fn continue_block(&mut self, b: Block) -> Outcome<A> {
        self.stats.continues += 1;
        let szx = if b.num() == 0 {
            b.szx().min(self.config.block1_szx)
        } else {
            b.szx()
        };
        let mut m = MessageBuf::new(MessageType::Ack, Code::CONTINUE);
        let echo = Block::new(b.num(), true, szx).unwrap_or(b);
        m.add_option_uint(OptionNumber::BLOCK1, echo.to_uint());
        Outcome::Plain(m)
    }

    /// 4.13 Request Entity Too Large, with Size1 when the limit is the
    /// body size (RFC 7959 §2.9.3); without it when memory is short.
    fn too_large(&mut self, limit: Option<usize>) -> Outcome<A> {
        self.stats.too_large += 1;
        let mut m = MessageBuf::new(MessageType::Ack, Code::REQUEST_ENTITY_TOO_LARGE);
        if let Some(l) = limit {
            m.add_option_uint(OptionNumber::SIZE1, u32::try_from(l).unwrap_or(u32::MAX));
        }
        Outcome::Plain(m)
    }

    // ----- answering ----------------------------------------------------------

    fn deliver(
        &mut self,
        ep: &mut Endpoint<A>,
        now: Instant,
        handle: ResponseHandle,
        outcome: Outcome<A>,
        max_message: usize,
    ) {
        let result = match outcome {
            Outcome::Shaped(m, shape) => self.send_shaped(ep, now, handle, m, &shape, max_message),
            Outcome::Plain(m) => emit(ep, now, handle, &m, None),
            Outcome::Cached(key, shape) => {
                self.send_cached(ep, now, handle, &key, &shape, max_message)
            }
            Outcome::Kept(shape) => self.send_kept(ep, now, handle, &shape, max_message),
            Outcome::Later(shape, ack) => {
                if self.separate.len() >= self.config.max_separate {
                    self.stats.busy += 1;
                    let m = plain(Code::SERVICE_UNAVAILABLE, "");
                    emit(ep, now, handle, &m, None)
                } else {
                    self.stats.separate += 1;
                    let expires = now + self.config.separate_lifetime;
                    self.separate.insert(handle, Separate { shape, expires });
                    self.separate_expiry.insert((expires, handle));
                    if ack { ep.accept(now, handle) } else { Ok(()) }
                }
            }
        };
        if result.is_err() {
            self.stats.respond_errors += 1;
        }
    }

    /// Post-processes a representation (see [`Reply`]) and sends it, or the
    /// block of it the request asks for.
    #[allow(clippy::too_many_lines)] // the post-processing steps of `Reply`, in order
    fn send_shaped(
        &mut self,
        ep: &mut Endpoint<A>,
        now: Instant,
        handle: ResponseHandle,
        mut m: MessageBuf,
        shape: &Shape<A>,
        max_message: usize,
    ) -> Result<(), EndpointError> {
        let code = m.code();
        if !code.is_success() {
            // RFC 7641 §4.1, §4.2: an error registers nothing, and ends an
            // existing registration of this endpoint and token.
            if let Some(reg) = &shape.observe
                && self.observers.remove(&(reg.peer, reg.token)).is_some()
            {
                self.stats.observers_removed += 1;
            }
            return self.emit_or_fail(ep, now, handle, &m, None);
        }
        let has_payload = !m.payload().is_empty();
        if has_payload
            && m.option(OptionNumber::CONTENT_FORMAT).is_none()
            && let Some(f) = shape.format
        {
            m.add_option_uint(OptionNumber::CONTENT_FORMAT, u32::from(f.0));
        }
        if m.option(OptionNumber::MAX_AGE).is_none()
            && let Some(age) = shape.max_age
        {
            m.add_option_uint(OptionNumber::MAX_AGE, age);
        }
        let observe = shape
            .observe
            .as_ref()
            .and_then(|reg| self.register(now, reg, &m));
        if let Some(seq) = observe {
            m.set_option(OptionNumber::OBSERVE, encode_uint(seq));
        }
        let block_wise = shape.block2.is_some()
            || m.payload().len() > 1usize << (self.config.block2_szx + 4)
            || m.encoded_len() + MAX_TOKEN_LEN > max_message;
        let auto = match self.config.auto_etag {
            AutoEtag::Never => false,
            AutoEtag::BlockWise => block_wise,
            AutoEtag::Always => true,
        };
        if auto && has_payload && m.option(OptionNumber::ETAG).is_none() {
            let cf = m
                .option(OptionNumber::CONTENT_FORMAT)
                .and_then(|v| ContentFormat::from_value(v).ok());
            m.add_option(OptionNumber::ETAG, ETag::of(cf, m.payload()).as_bytes());
        }
        // RFC 7252 §5.10.6.2: the client already has this representation.
        if shape.safe
            && code == Code::CONTENT
            && let Some(e) = m.option(OptionNumber::ETAG).and_then(ETag::new)
            && shape.etags.contains(&e)
        {
            self.stats.valid += 1;
            let v = valid(e, observe, m.option(OptionNumber::MAX_AGE));
            return self.emit_or_fail(ep, now, handle, &v, None);
        }
        if let Some(b) = shape.block1
            && m.option(OptionNumber::BLOCK1).is_none()
        {
            let more = b.more() && code == Code::CONTINUE;
            let echo = Block::new(b.num(), more, b.szx()).unwrap_or(b);
            m.add_option_uint(OptionNumber::BLOCK1, echo.to_uint());
        }
        match slice(
            &mut m,
            shape.block2,
            shape.size2,
            self.config.block2_szx,
            max_message,
        ) {
            Err(()) => {
                self.stats.bad_requests += 1;
                let e = beyond_the_end();
                self.emit_or_fail(ep, now, handle, &e, None)
            }
            Ok(None) => self.emit_or_fail(ep, now, handle, &m, None),
            Ok(Some((start, end, more))) => {
                self.stats.blocks_sent += 1;
                let r = self.emit_or_fail(ep, now, handle, &m, Some((start, end)));
                if let Some(key) = &shape.rep
                    && code == Code::CONTENT
                    && m.payload().len() > end - start
                {
                    // A representation of more than one block: keep it for
                    // the follow-up blocks (moved, not copied).
                    self.keep(now, key.clone(), m, shape.state);
                    return r;
                }
                if more
                    && start == 0
                    && let Some(key) = shape.cache.clone()
                {
                    // Keep the response of an unsafe request for its
                    // follow-up blocks (RFC 7959 §2.7); without room, they
                    // get 4.08.
                    m.remove_option(OptionNumber::BLOCK1);
                    let expires = now + self.config.transfer_lifetime;
                    let (count, memory) =
                        (self.config.max_transfers, self.config.max_transfer_memory);
                    let t = Transfer::new(Body::Download(m), None);
                    let _ = self.transfers.insert(key, t, expires, count, memory);
                }
                r
            }
        }
    }

    /// Keeps a sliced representation of a safe request (see
    /// [`Server::invalidate`]) until its Max-Age (default 60 s, RFC 7252
    /// §5.10.5) or [`ServerConfig::transfer_lifetime`] ends, whichever is
    /// first.
    fn keep(&mut self, now: Instant, key: RepKey, mut m: MessageBuf, state: Option<ETag>) {
        let max_age = m
            .option(OptionNumber::MAX_AGE)
            .map_or(Ok(60), crate::message::decode_uint)
            .unwrap_or(0);
        let life = Duration::from_secs(u64::from(max_age)).min(self.config.transfer_lifetime);
        if life.is_zero() {
            return;
        }
        m.remove_option(OptionNumber::OBSERVE);
        m.remove_option(OptionNumber::BLOCK2);
        m.remove_option(OptionNumber::SIZE2);
        let (count, memory) = (
            self.config.max_cached_representations,
            self.config.max_cache_memory,
        );
        if self.cache.insert(key, m, state, now + life, count, memory) {
            self.stats.cache_stores += 1;
        }
    }

    /// A block of a kept representation of a safe request (RFC 7959 §2.4),
    /// with the same validation (2.03) as a fresh one.
    fn send_kept(
        &mut self,
        ep: &mut Endpoint<A>,
        now: Instant,
        handle: ResponseHandle,
        shape: &Shape<A>,
        max_message: usize,
    ) -> Result<(), EndpointError> {
        let szx = self.config.block2_szx;
        let Some(m) = shape
            .rep
            .as_ref()
            .and_then(|key| self.cache.get_mut(key, now))
        else {
            let e = plain(Code::INTERNAL_SERVER_ERROR, "");
            return emit(ep, now, handle, &e, None);
        };
        self.stats.cache_hits += 1;
        // RFC 7252 §5.10.6.2: the client already has this representation.
        if let Some(e) = m.option(OptionNumber::ETAG).and_then(ETag::new)
            && shape.etags.contains(&e)
        {
            self.stats.valid += 1;
            let v = valid(e, None, m.option(OptionNumber::MAX_AGE));
            return emit(ep, now, handle, &v, None);
        }
        m.remove_option(OptionNumber::BLOCK2);
        m.remove_option(OptionNumber::SIZE2);
        let range = match slice(m, shape.block2, shape.size2, szx, max_message) {
            Err(()) => {
                self.stats.bad_requests += 1;
                let e = beyond_the_end();
                return emit(ep, now, handle, &e, None);
            }
            Ok(None) => None,
            Ok(Some((start, end, _))) => {
                self.stats.blocks_sent += 1;
                Some((start, end))
            }
        };
        // `m` borrows the cache: the stats are borrowed apart.
        emit_checked(&mut self.stats, ep, now, handle, m, range)
    }

    /// A follow-up block of a kept response (RFC 7959 §2.7).
    fn send_cached(
        &mut self,
        ep: &mut Endpoint<A>,
        now: Instant,
        handle: ResponseHandle,
        key: &TransferKey<A>,
        shape: &Shape<A>,
        max_message: usize,
    ) -> Result<(), EndpointError> {
        let szx = self.config.block2_szx;
        let expires = now + self.config.transfer_lifetime;
        let Some(Transfer {
            body: Body::Download(m),
            ..
        }) = self.transfers.get_mut(key)
        else {
            self.stats.incomplete += 1;
            let e = plain(
                Code::REQUEST_ENTITY_INCOMPLETE,
                "no response kept for this request",
            );
            return emit(ep, now, handle, &e, None);
        };
        let Ok(Some((start, end, more))) = slice(m, shape.block2, shape.size2, szx, max_message)
        else {
            self.stats.bad_requests += 1;
            let e = beyond_the_end();
            return emit(ep, now, handle, &e, None);
        };
        self.stats.blocks_sent += 1;
        let r = emit(ep, now, handle, m, Some((start, end)));
        if more {
            self.transfers.touch(key, expires);
        } else {
            self.transfers.remove(key);
        }
        r
    }

    /// Sends; a message the endpoint cannot encode becomes 5.00.
    fn emit_or_fail(
        &mut self,
        ep: &mut Endpoint<A>,
        now: Instant,
        handle: ResponseHandle,
        m: &MessageBuf,
        range: Option<(usize, usize)>,
    ) -> Result<(), EndpointError> {
        emit_checked(&mut self.stats, ep, now, handle, m, range)
    }
}

/// 4.02 for a Block2 NUM past the end of the representation (RFC 7959
/// §2.2).
fn beyond_the_end() -> MessageBuf {
    plain(
        Code::BAD_OPTION,
        "Block2 beyond the end of the representation",
    )
}

/// 2.03 Valid for a representation the client has (RFC 7252 §5.10.6.2),
/// with its ETag, the Observe value of a registration, and the Max-Age of
/// the answer it stands for.
fn valid(e: ETag, observe: Option<u32>, max_age: Option<&[u8]>) -> MessageBuf {
    let mut v = MessageBuf::new(MessageType::Ack, Code::VALID);
    v.add_option(OptionNumber::ETAG, e.as_bytes());
    if let Some(seq) = observe {
        v.add_option(OptionNumber::OBSERVE, encode_uint(seq));
    }
    if let Some(age) = max_age {
        v.add_option(OptionNumber::MAX_AGE, age);
    }
    v
}

/// [`emit`], answering 5.00 instead when the answer cannot be encoded (a
/// handler's bad code or options), counted in `respond_errors`.
fn emit_checked<A: Address>(
    stats: &mut ServerStats,
    ep: &mut Endpoint<A>,
    now: Instant,
    handle: ResponseHandle,
    m: &MessageBuf,
    range: Option<(usize, usize)>,
) -> Result<(), EndpointError> {
    match emit(ep, now, handle, m, range) {
        Err(EndpointError::Encode(_) | EndpointError::InvalidCode) => {
            stats.respond_errors += 1;
            let e = MessageBuf::new(MessageType::Ack, Code::INTERNAL_SERVER_ERROR);
            emit(ep, now, handle, &e, None)
        }
        r => r,
    }
}

/// Takes the earliest key of an expiry queue if it is due at `now` (the
/// representation cache, block transfers and separate responses each keep
/// one, ordered by deadline). A key whose entry is already gone is still
/// taken, so a stale queue entry cannot block the ones behind it.
fn pop_due<K: Ord>(queue: &mut BTreeSet<(Instant, K)>, now: Instant) -> Option<K> {
    if queue.first()?.0 > now {
        return None;
    }
    queue.pop_first().map(|(_, key)| key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let mut k = Vec::new();
        assert_eq!(path_key("/", &mut k), Ok(()));
        assert!(k.is_empty());
        assert_eq!(path_key("/.well-known/core", &mut k), Ok(()));
        assert_eq!(k, WKC_KEY);
        let long = alloc::format!("/{}", "x".repeat(256));
        assert_eq!(path_key(&long, &mut k), Err(ServerError::SegmentTooLong));
    }
}
