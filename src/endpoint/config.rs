//! Transmission parameters (RFC 7252 §4.8) and table bounds.

use core::time::Duration;

/// The protocol parameters of RFC 7252 §4.8 and the values derived from them
/// (§4.8.2). Every field is configurable; the defaults are the RFC's.
///
/// ```
/// use coap_proto::endpoint::TransmissionParameters;
/// use core::time::Duration;
/// let p = TransmissionParameters::default();
/// assert_eq!(p.max_transmit_span(), Duration::from_secs(45));
/// assert_eq!(p.max_transmit_wait(), Duration::from_secs(93));
/// assert_eq!(p.max_rtt(), Duration::from_secs(202));
/// assert_eq!(p.exchange_lifetime(), Duration::from_secs(247));
/// assert_eq!(p.non_lifetime(), Duration::from_secs(145));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransmissionParameters {
    /// ACK_TIMEOUT: the base retransmission timeout (2 s).
    pub ack_timeout: Duration,
    /// ACK_RANDOM_FACTOR in thousandths (1500 = 1.5).
    pub ack_random_factor_milli: u32,
    /// MAX_RETRANSMIT: retransmissions of a Confirmable message (4).
    pub max_retransmit: u8,
    /// NSTART: outstanding interactions per peer (1).
    pub nstart: u16,
    /// DEFAULT_LEISURE: the window a server spreads multicast answers over (5 s).
    pub default_leisure: Duration,
    /// PROBING_RATE in bytes per second towards a peer that does not answer (1).
    pub probing_rate: u32,
    /// MAX_LATENCY: the longest a datagram is assumed to be in flight (100 s).
    pub max_latency: Duration,
    /// PROCESSING_DELAY: the time a node takes to turn a CON into an ACK
    /// (ACK_TIMEOUT by default, §4.8.2).
    pub processing_delay: Duration,
}

impl Default for TransmissionParameters {
    fn default() -> Self {
        Self {
            ack_timeout: Duration::from_secs(2),
            ack_random_factor_milli: 1500,
            max_retransmit: 4,
            nstart: 1,
            default_leisure: Duration::from_secs(5),
            probing_rate: 1,
            max_latency: Duration::from_secs(100),
            processing_delay: Duration::from_secs(2),
        }
    }
}

impl TransmissionParameters {
    fn scale(d: Duration, milli: u32) -> Duration {
        let us = d.as_micros().saturating_mul(u128::from(milli)) / 1000;
        Duration::from_micros(u64::try_from(us).unwrap_or(u64::MAX))
    }

    /// ACK_TIMEOUT × ACK_RANDOM_FACTOR: the upper end of the initial timeout.
    ///
    /// ```
    /// # use coap_proto::endpoint::TransmissionParameters;
    /// # use core::time::Duration;
    /// assert_eq!(TransmissionParameters::default().max_initial_timeout(), Duration::from_secs(3));
    /// ```
    #[must_use]
    pub fn max_initial_timeout(&self) -> Duration {
        Self::scale(self.ack_timeout, self.ack_random_factor_milli)
    }

    fn doublings(&self) -> u32 {
        // 2^(MAX_RETRANSMIT) - 1 and 2^(MAX_RETRANSMIT + 1) - 1, capped to
        // keep the arithmetic finite for absurd configurations.
        u32::from(self.max_retransmit.min(20))
    }

    /// MAX_TRANSMIT_SPAN = ACK_TIMEOUT × (2^MAX_RETRANSMIT − 1) × ACK_RANDOM_FACTOR.
    ///
    /// ```
    /// # use coap_proto::endpoint::TransmissionParameters;
    /// # use core::time::Duration;
    /// assert_eq!(TransmissionParameters::default().max_transmit_span(), Duration::from_secs(45));
    /// ```
    #[must_use]
    pub fn max_transmit_span(&self) -> Duration {
        self.max_initial_timeout()
            .saturating_mul((1u32 << self.doublings()) - 1)
    }

    /// MAX_TRANSMIT_WAIT = ACK_TIMEOUT × (2^(MAX_RETRANSMIT + 1) − 1) × ACK_RANDOM_FACTOR.
    ///
    /// ```
    /// # use coap_proto::endpoint::TransmissionParameters;
    /// # use core::time::Duration;
    /// assert_eq!(TransmissionParameters::default().max_transmit_wait(), Duration::from_secs(93));
    /// ```
    #[must_use]
    pub fn max_transmit_wait(&self) -> Duration {
        self.max_initial_timeout()
            .saturating_mul((1u32 << (self.doublings() + 1)) - 1)
    }

    /// MAX_RTT = 2 × MAX_LATENCY + PROCESSING_DELAY.
    ///
    /// ```
    /// # use coap_proto::endpoint::TransmissionParameters;
    /// # use core::time::Duration;
    /// assert_eq!(TransmissionParameters::default().max_rtt(), Duration::from_secs(202));
    /// ```
    #[must_use]
    pub fn max_rtt(&self) -> Duration {
        self.max_latency
            .saturating_mul(2)
            .saturating_add(self.processing_delay)
    }

    /// EXCHANGE_LIFETIME = MAX_TRANSMIT_SPAN + 2 × MAX_LATENCY + PROCESSING_DELAY.
    ///
    /// ```
    /// # use coap_proto::endpoint::TransmissionParameters;
    /// # use core::time::Duration;
    /// assert_eq!(TransmissionParameters::default().exchange_lifetime(), Duration::from_secs(247));
    /// ```
    #[must_use]
    pub fn exchange_lifetime(&self) -> Duration {
        self.max_transmit_span().saturating_add(self.max_rtt())
    }

    /// NON_LIFETIME = MAX_TRANSMIT_SPAN + MAX_LATENCY.
    ///
    /// ```
    /// # use coap_proto::endpoint::TransmissionParameters;
    /// # use core::time::Duration;
    /// assert_eq!(TransmissionParameters::default().non_lifetime(), Duration::from_secs(145));
    /// ```
    #[must_use]
    pub fn non_lifetime(&self) -> Duration {
        self.max_transmit_span().saturating_add(self.max_latency)
    }
}

/// Bounds on every table the endpoint keeps, plus behaviour switches.
///
/// Memory per entry is documented on each field; [`Config::memory_bound`]
/// adds them up. With the defaults the whole endpoint stays under 8 MiB
/// whatever peers send.
///
/// ```
/// use coap_proto::endpoint::Config;
/// let c = Config::default();
/// assert!(c.memory_bound() < 8 * 1024 * 1024);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The RFC 7252 §4.8 parameters.
    pub transmission: TransmissionParameters,
    /// Largest datagram the endpoint sends or accepts (RFC 7252 §4.6 suggests
    /// 1152). Costs nothing until used; bounds every buffer below.
    pub max_message_size: usize,
    /// Open client requests (sent or queued) at once. Each costs about
    /// `EXCHANGE_BYTES + max_message_size` (the retained datagram). A
    /// request keeps its slot until its final event is polled. When full,
    /// `request` and `ping` return `Error::NoCapacity`.
    pub max_requests: usize,
    /// Incoming requests the application has not answered yet. Each costs
    /// `PENDING_BYTES`. When full, a new CON request gets 5.03 Service
    /// Unavailable with Max-Age [`Config::busy_max_age`]; a NON is dropped.
    /// An entry the application never answers is dropped after
    /// EXCHANGE_LIFETIME (counted in `Stats::pending_expired`).
    pub max_pending: usize,
    /// Outgoing separate CON responses awaiting their ACK (retransmitted)
    /// and multicast answers waiting out their Leisure. Each costs
    /// `EXCHANGE_BYTES + max_message_size`, and keeps its slot until its
    /// outcome event is polled. When full, `respond` returns
    /// `Error::NoCapacity` and the request stays pending.
    pub max_separate: usize,
    /// Entries in the deduplication cache (RFC 7252 §4.5). Each costs
    /// `DEDUP_BYTES` plus the cached reply (its length; an empty ACK costs
    /// nothing). When full, the oldest entry is evicted (counted in
    /// `Stats::dedup_evictions`).
    pub max_dedup: usize,
    /// Total bytes of replies kept in the deduplication cache. When over,
    /// the oldest entries are evicted.
    pub max_dedup_bytes: usize,
    /// Peers with per-peer state (MID history, congestion control). Each
    /// costs `PEER_BYTES`. Only peers *we* send requests or pings to get an
    /// entry (answers to other peers take their MIDs from a few shared,
    /// fixed-size MID spaces), so spoofed requests cannot fill it. When
    /// full, `request` and `ping` to a new peer return `Error::NoCapacity`;
    /// entries go EXCHANGE_LIFETIME after their last use.
    pub max_peers: usize,
    /// Datagrams waiting in the transmit queue, each `QUEUED_BYTES +
    /// max_message_size`. When full, new datagrams are dropped and counted
    /// in `Stats::transmit_drops` (a dropped CON goes out again on its
    /// retransmission).
    pub max_transmit_queue: usize,
    /// Events waiting for [`poll_event`](super::Endpoint::poll_event), each
    /// `QUEUED_BYTES` plus its message. When full, incoming requests are
    /// answered 5.03 (CON) or dropped (NON), and further multicast
    /// responses are dropped; final events of requests are never dropped
    /// (they hold a `max_requests` slot instead).
    pub max_events: usize,
    /// Delay before an unanswered CON request gets an empty ACK, turning the
    /// answer into a separate response (RFC 7252 §5.2.2). `None` never sends
    /// one on its own.
    pub separate_ack_delay: Option<Duration>,
    /// Send separate responses as CON (true, the default) or NON.
    pub separate_response_con: bool,
    /// Max-Age of the 5.03 sent when the pending table is full.
    pub busy_max_age: u32,
    /// Token length for new requests, 4..=8 (RFC 7252 §5.3.1 asks for at
    /// least 32 random bits when the client is on the Internet).
    pub token_len: u8,
    /// How long a client waits for a separate response after an empty ACK.
    pub separate_response_timeout: Duration,
    /// How long a NON request waits for a response.
    pub non_request_timeout: Duration,
    /// How long a multicast request collects responses.
    pub multicast_timeout: Duration,
    /// Notifications (RFC 7641) the endpoint keeps track of as an observed
    /// resource's server: CON notifications awaiting their ACK (with the
    /// retained datagram, retransmitted), and the Message ID of the last
    /// NON notification of each observation for `NON_LIFETIME`, so that a
    /// Reset rejecting it is recognized (§4.5). Each costs
    /// `NOTIFICATION_BYTES + max_message_size` (a NON one holds no
    /// datagram), and keeps its slot until its outcome event is polled.
    /// When full, the oldest remembered NON notification is forgotten (as
    /// if its Reset were lost, which §4.5 allows); if there is none, a CON
    /// `notify` returns `Error::NoCapacity` and a NON one is sent without
    /// being remembered.
    ///
    /// The same number bounds the notifications waiting for their client's
    /// congestion slot (RFC 7641 §4.5.1), counted together with the
    /// entries above; see
    /// [`non_notification_interval_ms`](Self::non_notification_interval_ms).
    pub max_notifications: usize,
    /// RFC 7641 §4.5.1: how long a NON notification counts as outstanding
    /// towards its client ("SHOULD NOT send more than one non-confirmable
    /// notification per round-trip time (RTT) to a client on average. If
    /// the server cannot maintain an RTT estimate for a client, it SHOULD
    /// NOT send more than one non-confirmable notification every 3
    /// seconds"). The endpoint keeps no RTT estimate (ACK timings of
    /// retransmitted CONs are ambiguous, and most observers only get NON
    /// notifications), so the default is the RFC's 3 s. Set it to a known
    /// RTT to go faster; zero stops NON pacing (CON notifications are still
    /// limited to NSTART per client). In milliseconds (a `u32`, like
    /// [`max_notification_clients`](Self::max_notification_clients), so
    /// that `Config` stays within 256 bytes, small enough to pass by value).
    ///
    /// ```
    /// use coap_proto::endpoint::Config;
    /// assert_eq!(Config::default().non_notification_interval_ms, 3000);
    /// assert!(core::mem::size_of::<Config>() <= 256);
    /// ```
    ///
    /// Per client, at most NSTART notifications are outstanding: a CON one
    /// until acknowledged, rejected or timed out, a NON one for this long.
    /// A notification beyond that waits (only the newest per observation:
    /// a newer one replaces it) and goes out when a slot frees.
    pub non_notification_interval_ms: u32,
    /// Clients with notification congestion state at once (RFC 7641
    /// §4.5.1: a CON notification in flight, a NON one within
    /// [`non_notification_interval_ms`](Self::non_notification_interval_ms), or
    /// one waiting), each `GATE_BYTES`. A client's state goes when nothing
    /// of it is outstanding. When full, `notify` to another client returns
    /// `Error::NoCapacity`: it could not be paced. Default 1024.
    pub max_notification_clients: u32,
    /// When an observation without a newer notification re-registers
    /// after the last notification's Max-Age has run out: a random time
    /// between this and three times this (default 5 s: "between 5 and 15
    /// seconds", RFC 7641 §3.3.1). Zero: exactly when Max-Age runs out.
    pub observe_refresh_delay: Duration,
}

impl Default for Config {
    fn default() -> Self {
        let transmission = TransmissionParameters::default();
        Self {
            transmission,
            max_message_size: 1152,
            max_requests: 256,
            max_pending: 1024,
            max_separate: 256,
            max_dedup: 2048,
            max_dedup_bytes: 1024 * 1024,
            max_peers: 1024,
            max_transmit_queue: 1024,
            max_events: 1024,
            separate_ack_delay: Some(Duration::from_secs(1)),
            separate_response_con: true,
            busy_max_age: 5,
            token_len: 4,
            separate_response_timeout: transmission.max_transmit_wait(),
            non_request_timeout: transmission.max_transmit_wait(),
            multicast_timeout: transmission.default_leisure + transmission.ack_timeout,
            max_notifications: 256,
            non_notification_interval_ms: 3000,
            max_notification_clients: 1024,
            observe_refresh_delay: Duration::from_secs(5),
        }
    }
}

// The per-entry costs below are heap bytes measured with a counting
// allocator (tests/endpoint_bounds.rs) for addresses of up to 32 bytes
// (`SocketAddr`), including the index maps, timers and B-tree node slack
// (nodes are about half full in the worst case), plus about 20 % margin.

/// Heap bytes per outgoing exchange (request, separate response or delayed
/// multicast answer), excluding the retained datagram (`max_message_size`).
/// Measured: 509 with `SocketAddr`, 347 with `u32`.
pub const EXCHANGE_BYTES: usize = 600;
/// Heap bytes per pending (unanswered) incoming request, excluding its
/// deduplication entry. Measured: about 245.
pub const PENDING_BYTES: usize = 320;
/// Heap bytes per deduplication entry, excluding the cached reply (counted
/// by its length against `max_dedup_bytes`). Measured: about 196.
pub const DEDUP_BYTES: usize = 240;
/// Heap bytes per peer entry (MID history, congestion state, indexes).
/// Measured: 865 with `SocketAddr`.
pub const PEER_BYTES: usize = 1024;
/// Heap bytes per queued datagram or event, excluding its buffer
/// (`max_message_size`): the queue slot, counted twice for the queue's
/// growth. Measured: about 104 per event slot with `SocketAddr`.
pub const QUEUED_BYTES: usize = 224;
/// Heap bytes per notification entry (RFC 7641: a CON notification in
/// flight or the Message ID of a NON one), excluding the retained datagram
/// (`max_message_size`, CON only): the entry, its observation, Message ID
/// and expiry indexes, and its timer. Measured: 519 with `SocketAddr`
/// (tests/observe.rs).
pub const NOTIFICATION_BYTES: usize = 624;
/// Heap bytes per client with notification congestion state (RFC 7641
/// §4.5.1: its outstanding CON count, the waiting times of its recent NON
/// notifications and its queue of waiting observations), with its index
/// and timer. Measured: about 380 with `SocketAddr` and NSTART 1
/// (tests/observe.rs); part of
/// `max_notification_clients × GATE_BYTES` in [`Config::memory_bound`].
pub const GATE_BYTES: usize = 480;
/// Spare buffers of `max_message_size` kept for reuse.
pub(crate) const POOL_BUFFERS: usize = 64;

impl Config {
    /// An upper bound on the endpoint's heap use with this configuration,
    /// from the per-entry costs documented on each field, for any input
    /// and any order of calls. The event queue holds at most `max_events`
    /// requests and multicast responses, plus the final events of requests
    /// and separate responses, which keep their `max_requests` /
    /// `max_separate` slot until polled.
    ///
    /// ```
    /// # use coap_proto::endpoint::Config;
    /// let mut c = Config::default();
    /// c.max_dedup = 10;
    /// assert!(c.memory_bound() < Config::default().memory_bound());
    /// ```
    #[must_use]
    pub fn memory_bound(&self) -> usize {
        let msg = self.max_message_size.max(16);
        // Events carrying a message: requests and multicast responses (at
        // most max_events) and unicast responses (one per request slot).
        let events_with_buffer = self.max_events + self.max_requests;
        // Events without one: Acknowledged and final request events,
        // separate-response and notification outcomes.
        let events_plain = 2 * self.max_requests + self.max_separate + self.max_notifications;
        (self.max_requests + self.max_separate) * (EXCHANGE_BYTES + msg)
            + self.max_pending * PENDING_BYTES
            + self.max_dedup * DEDUP_BYTES
            + self.max_dedup_bytes
            + self.max_peers * PEER_BYTES
            + self.max_notification_clients as usize * GATE_BYTES
            + self.max_notifications * (NOTIFICATION_BYTES + msg)
            + self.max_transmit_queue * (QUEUED_BYTES + msg)
            + events_with_buffer * (QUEUED_BYTES + msg)
            + events_plain * QUEUED_BYTES
            + POOL_BUFFERS * msg
    }
}
