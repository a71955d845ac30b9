//! Resource Directory registration (RFC 9176), as a sans-IO client layer on
//! the public [`Endpoint`] API.
//!
//! A device behind a NAT cannot be reached until it talks first. A
//! [`Registration`] makes it talk: it registers the device's links with a
//! Resource Directory (RD), keeps the registration alive, and (through the
//! same endpoint, hence the same NAT binding) lets the device serve what the
//! directory's side sends it. Like the block-wise client layer
//! ([`crate::client`]) it holds no clock, socket or RNG; the driver hands it
//! every endpoint event and calls it when [`Registration::poll_timeout`] is
//! due.
//!
//! What it does, by RFC 9176 section:
//!
//! - **Discovery (§4.3)**: unless the configuration names the registration
//!   interface ([`RdConfig::rd_path`]), a `GET
//!   /.well-known/core?rt=core.rd` to the RD picks the first link whose
//!   `rt` has `core.rd`; an answer without one (an error code, or no such
//!   link) falls back to `/rd`.
//! - **Registration (§5.3)**: a CON POST to the registration interface with
//!   the query parameters `ep`, `d`, `lt`, `base` and `et` (each if
//!   configured; `lt` is left out at its default of 90000 s) and the
//!   device's links as an `application/link-format` payload (Content-Format
//!   40). The answer 2.01 Created carries the registration resource in
//!   Location-Path options ([`RdEvent::Registered`]).
//! - **Simple registration (§5.1)**: with [`RdConfig::simple`], an empty
//!   POST to `/.well-known/rd` with the same query parameters; the RD then
//!   GETs `/.well-known/core` from the device (the application serves it,
//!   e.g. with [`Server`](crate::server::Server)) and answers 2.04 Changed.
//!   There is no registration resource: a refresh repeats the POST.
//! - **Registration update (§5.3.1)**: before the lifetime ends (at
//!   `lt` minus [`RdConfig::refresh_margin_percent`], minus a seeded random
//!   jitter, no later than [`RdConfig::max_refresh_interval`] after the last
//!   request, a knob for NAT keep-alive) an empty POST to the registration
//!   resource; 2.04 Changed is [`RdEvent::Refreshed`]. A 4.04 Not Found (the
//!   RD lost the registration) re-registers from scratch at once; any other
//!   failure (a timeout, a Reset, another error code, a malformed answer)
//!   re-registers from scratch after a back-off ([`RdEvent::Retrying`]),
//!   as §5.3.1 asks.
//! - **Back-off**: consecutive failures wait [`RdConfig::retry_initial`],
//!   doubling up to [`RdConfig::retry_max`], plus up to
//!   [`RdConfig::jitter_percent`] of jitter. A 5.03 Service Unavailable with
//!   Max-Age waits that many seconds instead (§5.3.1), at least
//!   `retry_initial` and at most `retry_max`.
//! - **Removal (§5.3.2)**: [`Registration::deregister`] DELETEs the
//!   registration resource; 2.02 Deleted or 4.04 (already gone) end it
//!   ([`RdEvent::Deregistered`]).
//!
//! Bounds: the registration resource and the discovered interface path are
//! at most [`RdConfig::max_location_len`] bytes in at most
//! [`RdConfig::max_location_segments`] segments; longer ones, a 2.01
//! without Location-Path, a Location-Query, non-UTF-8 segments and
//! unparsable discovery answers are counted in [`RdStats::malformed`] and
//! handled as failures, never a panic. At most one request is in flight, and
//! at most [`MAX_QUEUED_EVENTS`] events wait for [`Registration::poll_event`]
//! (the oldest is dropped beyond that, counted in [`RdStats::events_dropped`]).
//!
//! Timing is deterministic: the jitter comes from [`RdConfig::seed`] (drivers
//! seed it from the OS), so the same seed and inputs give the same requests
//! at the same instants.
//!
//! ```
//! use coap_proto::endpoint::{Config, Endpoint, Event};
//! use coap_proto::rd::{RdConfig, RdEvent, Registration};
//! use coap_proto::{Code, Instant, Message, MessageBuf, MessageType, OptionNumber};
//!
//! let mut dev: Endpoint<u8> = Endpoint::new(Config::default(), 1);
//! let mut rd: Endpoint<u8> = Endpoint::new(Config::default(), 2);
//! let mut cfg = RdConfig::new("node1");
//! cfg.lifetime = 3600;
//! cfg.links = "</temp>;rt=\"temperature\"".into();
//! cfg.rd_path = Some("/rd".into());
//! cfg.jitter_percent = 0;
//! let mut reg = Registration::new(cfg);
//! let now = Instant::ZERO;
//! reg.start(&mut dev, now, 2)?;
//!
//! // The RD receives the registration and answers 2.01 with its location.
//! let mut buf = [0u8; 1500];
//! let t = dev.poll_transmit(&mut buf)?.unwrap();
//! rd.handle_datagram(now, 1, &buf[..t.len]);
//! let Some(Event::Request(req)) = rd.poll_event() else { unreachable!() };
//! let queries: Vec<_> = req.message().options_of(OptionNumber::URI_QUERY).collect();
//! assert_eq!(queries, [&b"ep=node1"[..], b"lt=3600"]);
//! let mut created = MessageBuf::new(MessageType::Ack, Code::CREATED);
//! created.add_option(OptionNumber::LOCATION_PATH, "reg").add_option(OptionNumber::LOCATION_PATH, "7");
//! rd.respond(now, req.handle, &created)?;
//! let t = rd.poll_transmit(&mut buf)?.unwrap();
//! dev.handle_datagram(now, 2, &buf[..t.len]);
//! while let Some(ev) = dev.poll_event() {
//!     assert!(reg.handle_event(&mut dev, now, ev).is_none());
//! }
//! let Some(RdEvent::Registered { location, refresh_at }) = reg.poll_event() else { unreachable!() };
//! assert_eq!(location, "/reg/7");
//! // The refresh is due at 90 % of the lifetime.
//! assert_eq!((refresh_at, reg.poll_timeout()), (Instant::from_secs(3240), Some(Instant::from_secs(3240))));
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

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use crate::endpoint::{Address, Endpoint, Error as EndpointError, Event, RequestId};
use crate::message::link::LinkFormat;
use crate::message::uri::Uri;
use crate::message::{Code, ContentFormat, Message, MessageBuf, MessageType, OptionNumber};
use crate::time::Instant;

/// The most events [`Registration::poll_event`] holds; beyond it the oldest
/// is dropped (and counted in [`RdStats::events_dropped`]).
///
/// ```
/// assert_eq!(coap_proto::rd::MAX_QUEUED_EVENTS, 16);
/// ```
pub const MAX_QUEUED_EVENTS: usize = 16;

/// The lifetime an RD assumes when a registration carries no `lt`
/// (RFC 9176 §5.3): 90000 s (25 hours).
///
/// ```
/// assert_eq!(coap_proto::rd::DEFAULT_LIFETIME, 90_000);
/// ```
pub const DEFAULT_LIFETIME: u32 = 90_000;

/// The longest endpoint name and sector (RFC 9176 §5.3: 63 bytes).
///
/// ```
/// assert_eq!(coap_proto::rd::MAX_NAME_LEN, 63);
/// ```
pub const MAX_NAME_LEN: usize = 63;

/// The registration interface used when discovery finds none.
const FALLBACK_PATH: &str = "rd";

// ----- configuration --------------------------------------------------------------

/// What to register and how to keep it alive. A [`Registration`] keeps the
/// configuration it was created with.
///
/// ```
/// use coap_proto::rd::RdConfig;
/// let c = RdConfig::new("sensor-7");
/// assert_eq!((c.lifetime, c.refresh_margin_percent, c.jitter_percent), (90_000, 10, 5));
/// assert!(c.rd_path.is_none() && !c.simple);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RdConfig {
    /// The endpoint name, `ep` (1 to [`MAX_NAME_LEN`] bytes).
    pub endpoint_name: String,
    /// The sector, `d` (at most [`MAX_NAME_LEN`] bytes), if any.
    pub sector: Option<String>,
    /// The lifetime in seconds, `lt` (at least 1). Default
    /// [`DEFAULT_LIFETIME`], which is then not sent.
    pub lifetime: u32,
    /// The base URI, `base`, if the device's address as the RD sees it is
    /// not the one to use (RFC 9176 §5.3). Not allowed with `simple`.
    pub base: Option<String>,
    /// The endpoint type, `et`, if any.
    pub endpoint_type: Option<String>,
    /// The device's links, the payload of the registration (in
    /// `application/link-format`); e.g. [`Server::well_known_core`](crate::server::Server::well_known_core).
    /// It must fit one message (no block-wise registration).
    pub links: String,
    /// Use simple registration (RFC 9176 §5.1): an empty POST to
    /// `/.well-known/rd`, the RD fetches `/.well-known/core`. Default false.
    pub simple: bool,
    /// The registration interface path (e.g. `/rd`); `None` (the default)
    /// discovers it (RFC 9176 §4.3), falling back to `/rd`.
    pub rd_path: Option<String>,
    /// Refresh when this share of the lifetime is left. Default 10 (%).
    pub refresh_margin_percent: u8,
    /// Refresh at least this often (a NAT keep-alive: shorter than the
    /// NAT's idle timeout keeps the binding, hence the device, reachable).
    /// Default `None`.
    pub max_refresh_interval: Option<Duration>,
    /// Up to this share of an interval is random: refreshes come earlier,
    /// retries later. Default 5 (%); 0 for exact instants.
    pub jitter_percent: u8,
    /// The first retry delay after a failure, also the shortest wait a
    /// 5.03's Max-Age can ask for. Above zero and at most `retry_max`.
    /// Default 10 s.
    pub retry_initial: Duration,
    /// The longest retry delay. Default 1 hour.
    pub retry_max: Duration,
    /// The longest registration resource or interface path, in bytes of
    /// its segments. Default 255.
    pub max_location_len: usize,
    /// The most segments of the registration resource or interface path.
    /// Default 16.
    pub max_location_segments: usize,
    /// The seed of the jitter. Default 0; drivers use an OS seed.
    pub seed: u64,
}

impl RdConfig {
    /// The defaults, registering as `endpoint_name`.
    ///
    /// ```
    /// let c = coap_proto::rd::RdConfig::new("n");
    /// assert_eq!(c.endpoint_name, "n");
    /// ```
    #[must_use]
    pub fn new(endpoint_name: &str) -> Self {
        Self {
            endpoint_name: endpoint_name.into(),
            sector: None,
            lifetime: DEFAULT_LIFETIME,
            base: None,
            endpoint_type: None,
            links: String::new(),
            simple: false,
            rd_path: None,
            refresh_margin_percent: 10,
            max_refresh_interval: None,
            jitter_percent: 5,
            retry_initial: Duration::from_secs(10),
            retry_max: Duration::from_secs(3600),
            max_location_len: 255,
            max_location_segments: 16,
            seed: 0,
        }
    }
}

// ----- events, errors, stats -----------------------------------------------------

/// Why a request of the registration failed.
///
/// ```
/// use coap_proto::rd::RdError;
/// use coap_proto::Code;
/// assert_eq!(RdError::Response(Code::BAD_REQUEST).to_string(), "the RD answered 4.00 Bad Request");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RdError {
    /// The configuration cannot be registered (see [`RdConfig`]).
    Config(&'static str),
    /// The request got no answer.
    TimedOut,
    /// The RD answered with a Reset.
    Reset,
    /// The RD answered with this (unexpected or error) code.
    Response(Code),
    /// The answer broke RFC 9176 or a bound (see the [module docs](self)).
    Malformed(&'static str),
    /// The endpoint refused the request.
    Endpoint(EndpointError),
    /// The command does not apply now (e.g. `start` twice).
    InvalidState,
}

impl fmt::Display for RdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(what) => write!(f, "invalid configuration: {what}"),
            Self::TimedOut => f.write_str("no answer from the RD"),
            Self::Reset => f.write_str("the RD answered with a Reset"),
            Self::Response(code) => write!(f, "the RD answered {code}"),
            Self::Malformed(what) => write!(f, "malformed answer: {what}"),
            Self::Endpoint(e) => write!(f, "endpoint: {e}"),
            Self::InvalidState => f.write_str("not possible in this state"),
        }
    }
}

impl core::error::Error for RdError {}

/// What happened to the registration, from [`Registration::poll_event`].
///
/// ```
/// use coap_proto::rd::RdEvent;
/// let e = RdEvent::Deregistered { removed: true };
/// assert_eq!(e.to_string(), "deregistered");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RdEvent {
    /// The registration interface was found (RFC 9176 §4.3), or the
    /// fallback `/rd` chosen.
    Discovered {
        /// Its path, e.g. `/resourcedirectory/`.
        path: String,
    },
    /// Registered (2.01 Created, or 2.04 Changed for simple registration).
    Registered {
        /// The registration resource, e.g. `/reg/1/` (empty for simple
        /// registration).
        location: String,
        /// When the first refresh is due.
        refresh_at: Instant,
    },
    /// A refresh succeeded (2.04 Changed).
    Refreshed {
        /// When the next refresh is due.
        refresh_at: Instant,
    },
    /// A request failed; the next attempt (a registration from scratch)
    /// starts at `at`.
    Retrying {
        /// Why.
        reason: RdError,
        /// When the next attempt starts.
        at: Instant,
    },
    /// The registration ended after [`Registration::deregister`].
    Deregistered {
        /// Whether the RD confirmed the removal (2.02 Deleted or 4.04); false
        /// when it did not answer, or there was no registration resource.
        removed: bool,
    },
}

impl fmt::Display for RdEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Discovered { path } => write!(f, "discovered {path}"),
            Self::Registered {
                location,
                refresh_at,
            } => write!(f, "registered {location} (refresh at {refresh_at})"),
            Self::Refreshed { refresh_at } => write!(f, "refreshed (next at {refresh_at})"),
            Self::Retrying { reason, at } => write!(f, "retrying at {at}: {reason}"),
            Self::Deregistered { removed: true } => f.write_str("deregistered"),
            Self::Deregistered { removed: false } => f.write_str("deregistered (unconfirmed)"),
        }
    }
}

/// Counters of a [`Registration`].
///
/// ```
/// let reg = coap_proto::rd::Registration::<u8>::new(coap_proto::rd::RdConfig::new("n"));
/// assert_eq!(reg.stats().registrations, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RdStats {
    /// Successful registrations (initial ones and re-registrations).
    pub registrations: u64,
    /// Successful refreshes.
    pub refreshes: u64,
    /// Failed requests (each followed by a retry or a re-registration).
    pub failures: u64,
    /// Answers that broke RFC 9176 or a bound.
    pub malformed: u64,
    /// Events dropped because [`MAX_QUEUED_EVENTS`] were waiting.
    pub events_dropped: u64,
    /// Requests sent (discovery, registration, refresh, removal).
    pub requests: u64,
}

/// Where the registration stands, from [`Registration::phase`].
///
/// ```
/// use coap_proto::rd::{Phase, RdConfig, Registration};
/// assert_eq!(Registration::<u8>::new(RdConfig::new("n")).phase(), Phase::Idle);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Not started, or deregistered.
    Idle,
    /// Looking for the registration interface.
    Discovering,
    /// A registration request is in flight.
    Registering,
    /// Registered, waiting for the next refresh.
    Registered,
    /// A refresh is in flight (still registered).
    Refreshing,
    /// Waiting after a failure.
    Waiting,
    /// The removal is in flight.
    Deregistering,
}

// ----- the state machine ---------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    Discovering { rid: RequestId },
    Registering { rid: RequestId, sent: Instant },
    Registered { refresh_at: Instant },
    Refreshing { rid: RequestId, sent: Instant },
    Waiting { until: Instant },
    Deregistering { rid: RequestId },
}

/// One registration with one RD; see the [module docs](self).
///
/// ```
/// use coap_proto::endpoint::{Config, Endpoint};
/// use coap_proto::rd::{Phase, RdConfig, Registration};
/// use coap_proto::{Instant, Message, OptionNumber};
/// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
/// let mut reg = Registration::new(RdConfig::new("n"));
/// reg.start(&mut ep, Instant::ZERO, 9)?;
/// assert_eq!(reg.phase(), Phase::Discovering);
/// let mut buf = [0u8; 1500];
/// let t = ep.poll_transmit(&mut buf)?.unwrap();
/// // RFC 9176 §4.3: GET /.well-known/core?rt=core.rd
/// let get = Message::parse(&buf[..t.len])?;
/// assert_eq!(get.option(OptionNumber::URI_QUERY), Some(&b"rt=core.rd"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Registration<A: Address> {
    config: RdConfig,
    peer: Option<A>,
    state: State,
    /// The registration interface (segments), once known.
    rd_path: Option<Vec<String>>,
    /// The registration resource (segments), once registered.
    location: Option<Vec<String>>,
    /// Consecutive failures.
    failures: u32,
    rng: crate::endpoint::rng::Rng,
    events: VecDeque<RdEvent>,
    stats: RdStats,
}

impl<A: Address> Registration<A> {
    /// A registration that does nothing until [`start`](Self::start).
    ///
    /// ```
    /// use coap_proto::rd::{RdConfig, Registration};
    /// let reg: Registration<u8> = Registration::new(RdConfig::new("n"));
    /// assert!(reg.poll_timeout().is_none());
    /// ```
    #[must_use]
    pub fn new(config: RdConfig) -> Self {
        let rd_path = config.rd_path.as_deref().and_then(|p| {
            path_segments(p)
                .filter(|s| fits(s, config.max_location_len, config.max_location_segments))
        });
        Self {
            rng: crate::endpoint::rng::Rng::new(config.seed),
            config,
            peer: None,
            state: State::Idle,
            rd_path,
            location: None,
            failures: 0,
            events: VecDeque::new(),
            stats: RdStats::default(),
        }
    }

    /// The configuration.
    ///
    /// ```
    /// # use coap_proto::rd::{RdConfig, Registration};
    /// let reg: Registration<u8> = Registration::new(RdConfig::new("n"));
    /// assert_eq!(reg.config().endpoint_name, "n");
    /// ```
    #[must_use]
    pub fn config(&self) -> &RdConfig {
        &self.config
    }

    /// The counters.
    ///
    /// ```
    /// # use coap_proto::rd::{RdConfig, Registration};
    /// let reg: Registration<u8> = Registration::new(RdConfig::new("n"));
    /// assert_eq!(reg.stats().malformed, 0);
    /// ```
    #[must_use]
    pub fn stats(&self) -> &RdStats {
        &self.stats
    }

    /// Where the registration stands.
    ///
    /// ```
    /// # use coap_proto::rd::{Phase, RdConfig, Registration};
    /// let reg: Registration<u8> = Registration::new(RdConfig::new("n"));
    /// assert_eq!(reg.phase(), Phase::Idle);
    /// ```
    #[must_use]
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Idle => Phase::Idle,
            State::Discovering { .. } => Phase::Discovering,
            State::Registering { .. } => Phase::Registering,
            State::Registered { .. } => Phase::Registered,
            State::Refreshing { .. } => Phase::Refreshing,
            State::Waiting { .. } => Phase::Waiting,
            State::Deregistering { .. } => Phase::Deregistering,
        }
    }

    /// The registration resource (e.g. `/reg/1/`), while registered with
    /// one.
    ///
    /// ```
    /// # use coap_proto::rd::{RdConfig, Registration};
    /// let reg: Registration<u8> = Registration::new(RdConfig::new("n"));
    /// assert_eq!(reg.location(), None);
    /// ```
    #[must_use]
    pub fn location(&self) -> Option<String> {
        self.location.as_deref().map(join)
    }

    /// The RD's address, once started.
    ///
    /// ```
    /// # use coap_proto::rd::{RdConfig, Registration};
    /// # use coap_proto::endpoint::{Config, Endpoint};
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// let mut reg = Registration::new(RdConfig::new("n"));
    /// reg.start(&mut ep, coap_proto::Instant::ZERO, 5)?;
    /// assert_eq!(reg.peer(), Some(5));
    /// # Ok::<(), coap_proto::rd::RdError>(())
    /// ```
    #[must_use]
    pub fn peer(&self) -> Option<A> {
        self.peer
    }

    /// Starts registering with the RD at `rd`: discovery (or the
    /// registration itself when the interface is known) is queued on `ep`.
    /// Fails for an invalid configuration, a multicast `rd`, or when
    /// already started.
    ///
    /// ```
    /// # use coap_proto::rd::{RdConfig, RdError, Registration};
    /// # use coap_proto::endpoint::{Config, Endpoint};
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// let mut reg = Registration::new(RdConfig::new(""));
    /// assert!(matches!(reg.start(&mut ep, coap_proto::Instant::ZERO, 5), Err(RdError::Config(_))));
    /// ```
    pub fn start(&mut self, ep: &mut Endpoint<A>, now: Instant, rd: A) -> Result<(), RdError> {
        self.check_config()?;
        if rd.is_multicast() {
            return Err(RdError::Config("the RD address is a multicast group"));
        }
        if self.state != State::Idle {
            return Err(RdError::InvalidState);
        }
        self.peer = Some(rd);
        self.failures = 0;
        // The first request is built and queued now; a refusal by the
        // endpoint is an error of this call, not a retry.
        self.state = self.begin(ep, now)?;
        Ok(())
    }

    /// The first request of a registration from scratch: the registration
    /// itself, or discovery first if the interface is not known.
    fn begin(&mut self, ep: &mut Endpoint<A>, now: Instant) -> Result<State, RdError> {
        if self.config.simple || self.rd_path.is_some() {
            let msg = self.registration_message();
            let rid = self.send(ep, now, &msg)?;
            Ok(State::Registering { rid, sent: now })
        } else {
            let rid = self.send(ep, now, &discovery_message())?;
            Ok(State::Discovering { rid })
        }
    }

    fn check_config(&self) -> Result<(), RdError> {
        let c = &self.config;
        if c.endpoint_name.is_empty() || c.endpoint_name.len() > MAX_NAME_LEN {
            return Err(RdError::Config("endpoint name must be 1 to 63 bytes"));
        }
        if c.sector.as_ref().is_some_and(|d| d.len() > MAX_NAME_LEN) {
            return Err(RdError::Config("sector must be at most 63 bytes"));
        }
        if c.lifetime == 0 {
            return Err(RdError::Config("lifetime must be at least 1 s"));
        }
        if c.simple && c.base.is_some() {
            return Err(RdError::Config("simple registration takes no base"));
        }
        if c.rd_path.is_some() && self.rd_path.is_none() {
            return Err(RdError::Config("rd_path is not a usable path"));
        }
        if c.retry_initial.is_zero() || c.retry_initial > c.retry_max {
            return Err(RdError::Config(
                "retry_initial must be above zero and at most retry_max",
            ));
        }
        if c.refresh_margin_percent >= 100 || c.jitter_percent >= 100 {
            return Err(RdError::Config("percentages must be below 100"));
        }
        let query_too_long = [
            Some(c.endpoint_name.as_str()),
            c.sector.as_deref(),
            c.base.as_deref(),
            c.endpoint_type.as_deref(),
        ]
        .into_iter()
        .flatten()
        .any(|v| v.len() + 5 > 255);
        if query_too_long {
            return Err(RdError::Config("a query parameter is over 255 bytes"));
        }
        Ok(())
    }

    /// Ends the registration: DELETEs the registration resource (RFC 9176
    /// §5.3.2) and reports [`RdEvent::Deregistered`] when the RD answers (or
    /// does not). Without a registration resource (not registered yet,
    /// simple registration) it stops at once with `removed: false`. A
    /// request in flight is cancelled.
    ///
    /// ```
    /// # use coap_proto::rd::{RdConfig, RdEvent, Registration, Phase};
    /// # use coap_proto::endpoint::{Config, Endpoint};
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// let mut reg = Registration::new(RdConfig::new("n"));
    /// reg.start(&mut ep, coap_proto::Instant::ZERO, 5)?;
    /// reg.deregister(&mut ep, coap_proto::Instant::ZERO)?;
    /// assert_eq!(reg.poll_event(), Some(RdEvent::Deregistered { removed: false }));
    /// assert_eq!((reg.phase(), ep.tables().requests), (Phase::Idle, 0));
    /// # Ok::<(), coap_proto::rd::RdError>(())
    /// ```
    pub fn deregister(&mut self, ep: &mut Endpoint<A>, now: Instant) -> Result<(), RdError> {
        match self.state {
            State::Idle | State::Deregistering { .. } => return Err(RdError::InvalidState),
            State::Discovering { rid }
            | State::Registering { rid, .. }
            | State::Refreshing { rid, .. } => {
                let _ = ep.cancel(now, rid);
            }
            State::Registered { .. } | State::Waiting { .. } => {}
        }
        // A simple registration has no registration resource (no location).
        let Some(location) = self.location.take() else {
            self.finish(false);
            return Ok(());
        };
        match self.send(ep, now, &to_path(Code::DELETE, &location)) {
            Ok(rid) => {
                self.state = State::Deregistering { rid };
                Ok(())
            }
            Err(e) => {
                self.finish(false);
                Err(e)
            }
        }
    }

    fn finish(&mut self, removed: bool) {
        self.state = State::Idle;
        self.location = None;
        self.push(RdEvent::Deregistered { removed });
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) must be
    /// called (a refresh or a retry is due), if any. Requests in flight are
    /// timed by the endpoint, which reports their end as events.
    ///
    /// ```
    /// # use coap_proto::rd::{RdConfig, Registration};
    /// let reg: Registration<u8> = Registration::new(RdConfig::new("n"));
    /// assert_eq!(reg.poll_timeout(), None);
    /// ```
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Registered { refresh_at } => Some(refresh_at),
            State::Waiting { until } => Some(until),
            _ => None,
        }
    }

    /// Runs what is due at `now`: a refresh, or the next attempt after a
    /// failure. Early or spurious calls do nothing. Drain `ep` afterwards.
    ///
    /// ```
    /// # use coap_proto::rd::{RdConfig, Registration};
    /// # use coap_proto::endpoint::{Config, Endpoint};
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// let mut reg = Registration::new(RdConfig::new("n"));
    /// reg.handle_timeout(&mut ep, coap_proto::Instant::from_secs(5)); // nothing to do
    /// assert_eq!(ep.tables().requests, 0);
    /// ```
    pub fn handle_timeout(&mut self, ep: &mut Endpoint<A>, now: Instant) {
        match self.state {
            State::Registered { refresh_at } if refresh_at <= now => {
                let msg = match &self.location {
                    // RFC 9176 §5.3.1: an empty POST to the registration
                    // resource; no parameters, so the registration keeps
                    // its lifetime and base.
                    Some(loc) => to_path(Code::POST, loc),
                    // Simple registration (no location): the refresh
                    // repeats the POST (RFC 9176 §5.1).
                    None => self.registration_message(),
                };
                match self.send(ep, now, &msg) {
                    Ok(rid) => self.state = State::Refreshing { rid, sent: now },
                    Err(e) => self.fail(now, e, None),
                }
            }
            State::Waiting { until } if until <= now => self.attempt(ep, now),
            _ => {}
        }
    }

    /// A registration from scratch: discovery first if the interface is
    /// not known.
    fn attempt(&mut self, ep: &mut Endpoint<A>, now: Instant) {
        self.location = None;
        match self.begin(ep, now) {
            Ok(state) => self.state = state,
            Err(e) => self.fail(now, e, None),
        }
    }

    fn send(
        &mut self,
        ep: &mut Endpoint<A>,
        now: Instant,
        msg: &MessageBuf,
    ) -> Result<RequestId, RdError> {
        let peer = self.peer.ok_or(RdError::InvalidState)?;
        let rid = ep.request(now, peer, msg).map_err(RdError::Endpoint)?;
        self.stats.requests += 1;
        Ok(rid)
    }

    /// Handles one endpoint event. The events of this registration's own
    /// requests are consumed (`None`; what happened comes out of
    /// [`poll_event`](Self::poll_event)); every other event is given back
    /// for the application (e.g. a [`Server`](crate::server::Server), which
    /// answers the requests the RD's side sends). Drain `ep` afterwards: a
    /// follow-up request may be queued.
    ///
    /// ```
    /// # use coap_proto::rd::{RdConfig, Registration};
    /// # use coap_proto::endpoint::{Config, Endpoint, Event};
    /// # use coap_proto::Instant;
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// let mut reg = Registration::new(RdConfig::new("n"));
    /// ep.handle_datagram(Instant::ZERO, 9, b"\x50\x01\x00\x01"); // a GET from someone
    /// let ev = ep.poll_event().unwrap();
    /// assert!(matches!(reg.handle_event(&mut ep, Instant::ZERO, ev), Some(Event::Request(_))));
    /// ```
    pub fn handle_event(
        &mut self,
        ep: &mut Endpoint<A>,
        now: Instant,
        event: Event<A>,
    ) -> Option<Event<A>> {
        let Some(ours) = self.current() else {
            return Some(event);
        };
        match event {
            Event::Acknowledged(rid) if rid == ours => None,
            Event::Response(r) if r.id == ours => {
                self.on_response(ep, now, &r.message());
                ep.recycle(r.message.into_bytes());
                None
            }
            Event::TimedOut(rid) if rid == ours => {
                self.on_failure(now, RdError::TimedOut, None);
                None
            }
            Event::Reset(rid) if rid == ours => {
                self.on_failure(now, RdError::Reset, None);
                None
            }
            other => Some(other),
        }
    }

    fn current(&self) -> Option<RequestId> {
        match self.state {
            State::Discovering { rid }
            | State::Registering { rid, .. }
            | State::Refreshing { rid, .. }
            | State::Deregistering { rid } => Some(rid),
            _ => None,
        }
    }

    fn on_response(&mut self, ep: &mut Endpoint<A>, now: Instant, msg: &Message<'_>) {
        let code = msg.code();
        match self.state {
            State::Discovering { .. } => {
                let found = if code == Code::CONTENT {
                    if let Ok(found) = self.discovered(msg) {
                        found
                    } else {
                        self.stats.malformed += 1;
                        None
                    }
                } else {
                    None
                };
                // RFC 9176 §4.3; no registration interface advertised:
                // the conventional `/rd`.
                let path = found.unwrap_or_else(|| alloc::vec![String::from(FALLBACK_PATH)]);
                self.push(RdEvent::Discovered { path: join(&path) });
                self.rd_path = Some(path);
                self.attempt(ep, now);
            }
            State::Registering { sent, .. } => {
                if self.config.simple {
                    // RFC 9176 §5.1: 2.04 Changed once the RD has fetched
                    // /.well-known/core.
                    if code.is_success() {
                        self.registered(sent, String::new());
                    } else {
                        self.on_failure(now, RdError::Response(code), max_age(msg, code));
                    }
                    return;
                }
                if code != Code::CREATED {
                    if code == Code::NOT_FOUND && self.config.rd_path.is_none() {
                        // The discovered interface is gone: discover again.
                        self.rd_path = None;
                    }
                    self.on_failure(now, RdError::Response(code), max_age(msg, code));
                    return;
                }
                match self.parse_location(msg) {
                    Ok(loc) => {
                        let shown = join(&loc);
                        self.location = Some(loc);
                        self.registered(sent, shown);
                    }
                    Err(what) => {
                        self.stats.malformed += 1;
                        self.on_failure(now, RdError::Malformed(what), None);
                    }
                }
            }
            State::Refreshing { sent, .. } => {
                if code.is_success() {
                    // 2.04 Changed (RFC 9176 §5.3.1).
                    self.failures = 0;
                    self.stats.refreshes += 1;
                    let refresh_at = self.next_refresh(sent);
                    self.state = State::Registered { refresh_at };
                    self.push(RdEvent::Refreshed { refresh_at });
                } else if code == Code::NOT_FOUND {
                    // RFC 9176 §5.3.1: the registration is gone; register
                    // again from scratch, now.
                    self.stats.failures += 1;
                    self.push(RdEvent::Retrying {
                        reason: RdError::Response(code),
                        at: now,
                    });
                    self.attempt(ep, now);
                } else {
                    self.on_failure(now, RdError::Response(code), max_age(msg, code));
                }
            }
            State::Deregistering { .. } => {
                // 2.02 Deleted; 4.04: nothing left to remove (§5.3.2).
                let removed = code.is_success() || code == Code::NOT_FOUND;
                self.finish(removed);
            }
            _ => {}
        }
    }

    fn registered(&mut self, sent: Instant, location: String) {
        self.failures = 0;
        self.stats.registrations += 1;
        let refresh_at = self.next_refresh(sent);
        self.state = State::Registered { refresh_at };
        self.push(RdEvent::Registered {
            location,
            refresh_at,
        });
    }

    fn on_failure(&mut self, now: Instant, reason: RdError, retry_after: Option<Duration>) {
        if let State::Deregistering { .. } = self.state {
            self.finish(false);
            return;
        }
        self.fail(now, reason, retry_after);
    }

    /// A failed request: wait (back-off, or the RD's Max-Age), then
    /// register from scratch.
    fn fail(&mut self, now: Instant, reason: RdError, retry_after: Option<Duration>) {
        self.stats.failures += 1;
        self.location = None;
        let delay = if let Some(d) = retry_after {
            // Not sooner than a first back-off: a Max-Age of 0 on every
            // 5.03 must not make a retry per round trip.
            d.max(self.config.retry_initial).min(self.config.retry_max)
        } else {
            let shift = self.failures.min(20);
            let base = self
                .config
                .retry_initial
                .saturating_mul(1u32 << shift)
                .min(self.config.retry_max);
            base.saturating_add(self.jitter(base))
        };
        self.failures = self.failures.saturating_add(1);
        let at = now + delay;
        self.state = State::Waiting { until: at };
        self.push(RdEvent::Retrying { reason, at });
    }

    /// When to refresh a registration whose request left at `sent`.
    fn next_refresh(&mut self, sent: Instant) -> Instant {
        let lt = Duration::from_secs(u64::from(self.config.lifetime));
        let margin = lt * u32::from(self.config.refresh_margin_percent) / 100;
        let mut interval = lt.saturating_sub(margin);
        if let Some(max) = self.config.max_refresh_interval {
            interval = interval.min(max);
        }
        let interval = interval.saturating_sub(self.jitter(interval));
        sent + interval.max(Duration::from_secs(1))
    }

    /// A random share of `d` up to `jitter_percent`, at microsecond grain.
    fn jitter(&mut self, d: Duration) -> Duration {
        let span = d.as_micros() * u128::from(self.config.jitter_percent) / 100;
        let span = u64::try_from(span).unwrap_or(u64::MAX);
        if span == 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(self.rng.below_inclusive(span))
    }

    fn push(&mut self, ev: RdEvent) {
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        self.events.push_back(ev);
    }

    /// The next event, oldest first.
    ///
    /// ```
    /// # use coap_proto::rd::{RdConfig, Registration};
    /// let mut reg: Registration<u8> = Registration::new(RdConfig::new("n"));
    /// assert_eq!(reg.poll_event(), None);
    /// ```
    pub fn poll_event(&mut self) -> Option<RdEvent> {
        self.events.pop_front()
    }

    fn registration_message(&self) -> MessageBuf {
        let c = &self.config;
        let mut msg = MessageBuf::new(MessageType::Con, Code::POST);
        if c.simple {
            msg.add_option(OptionNumber::URI_PATH, ".well-known");
            msg.add_option(OptionNumber::URI_PATH, "rd");
        } else {
            for seg in self.rd_path.iter().flatten() {
                msg.add_option(OptionNumber::URI_PATH, seg);
            }
            msg.add_option_uint(
                OptionNumber::CONTENT_FORMAT,
                u32::from(ContentFormat::LINK_FORMAT.0),
            );
            msg.set_payload(c.links.as_bytes());
        }
        msg.add_option(OptionNumber::URI_QUERY, format!("ep={}", c.endpoint_name));
        if let Some(d) = &c.sector {
            msg.add_option(OptionNumber::URI_QUERY, format!("d={d}"));
        }
        if c.lifetime != DEFAULT_LIFETIME {
            msg.add_option(OptionNumber::URI_QUERY, format!("lt={}", c.lifetime));
        }
        if let Some(base) = &c.base {
            msg.add_option(OptionNumber::URI_QUERY, format!("base={base}"));
        }
        if let Some(et) = &c.endpoint_type {
            msg.add_option(OptionNumber::URI_QUERY, format!("et={et}"));
        }
        msg
    }

    /// The first `rt=core.rd` link of a discovery answer, as path segments.
    /// `Err` for a payload that is not link-format; `Ok(None)` when no
    /// usable link is there.
    fn discovered(&self, msg: &Message<'_>) -> Result<Option<Vec<String>>, ()> {
        let doc = LinkFormat::parse_bytes(msg.payload()).map_err(|_| ())?;
        for link in doc.links() {
            if !link.has_word("rt", "core.rd") {
                continue;
            }
            let segs = path_segments(link.target()).ok_or(())?;
            if !fits(
                &segs,
                self.config.max_location_len,
                self.config.max_location_segments,
            ) {
                return Err(());
            }
            return Ok(Some(segs));
        }
        Ok(None)
    }

    fn parse_location(&self, msg: &Message<'_>) -> Result<Vec<String>, &'static str> {
        if msg.has_option(OptionNumber::LOCATION_QUERY) {
            return Err("Location-Query in the registration answer");
        }
        let mut segs = Vec::new();
        let mut len = 0usize;
        for v in msg.options_of(OptionNumber::LOCATION_PATH) {
            len += v.len();
            if segs.len() >= self.config.max_location_segments || len > self.config.max_location_len
            {
                return Err("registration resource too long");
            }
            let s = core::str::from_utf8(v).map_err(|_| "Location-Path not UTF-8")?;
            if s == "." || s == ".." {
                return Err("dot segment in Location-Path");
            }
            segs.push(String::from(s));
        }
        if segs.is_empty() {
            return Err("2.01 without Location-Path");
        }
        Ok(segs)
    }
}

fn discovery_message() -> MessageBuf {
    let mut msg = MessageBuf::new(MessageType::Con, Code::GET);
    msg.add_option(OptionNumber::URI_PATH, ".well-known");
    msg.add_option(OptionNumber::URI_PATH, "core");
    msg.add_option(OptionNumber::URI_QUERY, "rt=core.rd");
    msg
}

/// An empty CON request with `code` to the path `segments` (the
/// registration resource's refresh and removal).
fn to_path(code: Code, segments: &[String]) -> MessageBuf {
    let mut msg = MessageBuf::new(MessageType::Con, code);
    for seg in segments {
        msg.add_option(OptionNumber::URI_PATH, seg);
    }
    msg
}

/// The retry delay a 5.03 asks for with Max-Age (RFC 9176 §5.3.1).
fn max_age(msg: &Message<'_>, code: Code) -> Option<Duration> {
    (code == Code::SERVICE_UNAVAILABLE)
        .then(|| msg.uint_option(OptionNumber::MAX_AGE))
        .flatten()
        .map(|s| Duration::from_secs(u64::from(s)))
}

fn fits(segs: &[String], max_len: usize, max_segments: usize) -> bool {
    segs.len() <= max_segments && segs.iter().map(String::len).sum::<usize>() <= max_len
}

fn join(segs: &[String]) -> String {
    let mut s = String::new();
    for seg in segs {
        s.push('/');
        s.push_str(seg);
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

/// The Uri-Path segments of a link target: an absolute path, a
/// network-path reference (`//host/path`), a path relative to
/// `/.well-known/core` (RFC 6690 §2.1), or an absolute URI (its path; the
/// RD is assumed to be where the discovery went).
fn path_segments(target: &str) -> Option<Vec<String>> {
    let owned;
    let uri = if let Some(network) = target.strip_prefix("//") {
        owned = format!("coap://{network}");
        owned.as_str()
    } else if target.starts_with('/') {
        owned = format!("coap://h{target}");
        owned.as_str()
    } else if Uri::parse(target).is_ok() {
        target
    } else if target.contains(':') || target.starts_with('?') || target.starts_with('#') {
        return None;
    } else {
        owned = format!("coap://h/.well-known/{target}");
        owned.as_str()
    };
    let uri = Uri::parse(uri).ok()?;
    let segs: Vec<String> = uri
        .options(None)
        .filter(|o| o.number() == OptionNumber::URI_PATH)
        .map(|o| o.as_str().map(String::from))
        .collect::<Option<_>>()?;
    Some(segs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn link_targets_become_segments() {
        let s = |t: &str| path_segments(t);
        assert_eq!(s("/resourcedirectory/").unwrap(), ["resourcedirectory", ""]);
        assert_eq!(s("/rd").unwrap(), ["rd"]);
        assert_eq!(s("coap://[::1]:5683/a%20b").unwrap(), ["a b"]);
        assert_eq!(s("rd").unwrap(), [".well-known", "rd"]);
        assert_eq!(s("/").unwrap(), Vec::<String>::new());
        assert!(s("mailto:x").is_none());
        // Network-path references (RFC 3986 §4.2), with and without a port.
        assert_eq!(s("//h/rd").unwrap(), ["rd"]);
        assert_eq!(s("//[::1]:5683/rd/x").unwrap(), ["rd", "x"]);
    }
}
