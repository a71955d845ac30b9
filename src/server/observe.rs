//! The observer registry of the resource layer (RFC 7641 §4): who observes
//! which resource, with which token and registration request, and what the
//! endpoint did with its last notification.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::fmt;

use super::{AutoEtag, ETag, Registration, RepKey, Reply, Request, ResourceId, Server};
use crate::endpoint::{
    Address, Endpoint, Error as EndpointError, Event, NotificationId, ResponseHandle,
};
use crate::message::{
    Code, ContentFormat, MAX_TOKEN_LEN, Message, MessageBuf, MessageType, Observe, OptionNumber,
    encode_uint,
};
use crate::time::Instant;

/// Heap bytes per observer, excluding its registration request (kept to
/// run the GET handler again for each notification, at most
/// [`ServerConfig::max_observe_request`](super::ServerConfig::max_observe_request)
/// bytes): the entry, its index by resource and by notification, B-tree
/// node slack included. Measured: 235 with `SocketAddr`, observers added
/// in scrambled order, each with a notification id (tests/observe.rs).
///
/// ```
/// use coap_proto::server::{OBSERVER_BYTES, ServerConfig};
/// let c = ServerConfig::default();
/// assert!(c.observer_memory_bound() <= c.max_observers * (OBSERVER_BYTES + c.max_observe_request));
/// ```
pub const OBSERVER_BYTES: usize = 352;

/// An observation token (RFC 7252 §5.3.1: 0 to 8 bytes), stored inline.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Token {
    len: u8,
    bytes: [u8; MAX_TOKEN_LEN],
}

impl Token {
    pub(crate) fn new(t: &[u8]) -> Self {
        let mut bytes = [0u8; MAX_TOKEN_LEN];
        for (d, s) in bytes.iter_mut().zip(t) {
            *d = *s;
        }
        Self {
            len: t.len().min(MAX_TOKEN_LEN) as u8,
            bytes,
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.as_slice() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// One entry of the list of observers (RFC 7641 §4.1: keyed by the client
/// endpoint and the token).
#[derive(Debug)]
pub(crate) struct Observer {
    pub(crate) resource: usize,
    /// The registration request, to run the handler again.
    pub(crate) request: Box<[u8]>,
    /// The negotiated format the handler is asked for.
    pub(crate) format: Option<ContentFormat>,
    /// The Content-Format of the first response: every 2.xx notification
    /// must have it (§4.2).
    pub(crate) content_format: Option<ContentFormat>,
    /// Our Block2 size capped by the one the registration asked for (RFC
    /// 7959 §2.6, §2.4): every notification's first block uses it.
    pub(crate) szx: u8,
    /// The endpoint's latest notification for it.
    pub(crate) notification: Option<NotificationId>,
    /// Notifications sent as NON since the last CON (§4.5).
    pub(crate) since_con: u32,
    /// When the last CON notification (or the registration) was sent.
    pub(crate) last_con: Instant,
}

pub(crate) type Key<A> = (A, Token);

/// The bounded list of observers of every resource.
#[derive(Debug)]
pub(crate) struct Observers<A> {
    map: BTreeMap<Key<A>, Observer>,
    by_resource: BTreeMap<usize, BTreeSet<Key<A>>>,
    by_notification: BTreeMap<NotificationId, Key<A>>,
    /// Bytes of registration requests held.
    request_bytes: usize,
}

impl<A: Copy + Ord> Observers<A> {
    pub(crate) fn new() -> Self {
        Self {
            map: BTreeMap::new(),
            by_resource: BTreeMap::new(),
            by_notification: BTreeMap::new(),
            request_bytes: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn memory(&self) -> usize {
        self.map.len() * super::OBSERVER_BYTES + self.request_bytes
    }

    pub(crate) fn contains(&self, key: &Key<A>) -> bool {
        self.map.contains_key(key)
    }

    pub(crate) fn get(&self, key: &Key<A>) -> Option<&Observer> {
        self.map.get(key)
    }

    pub(crate) fn get_mut(&mut self, key: &Key<A>) -> Option<&mut Observer> {
        self.map.get_mut(key)
    }

    /// Adds or replaces (§4.1: "MUST NOT add a new entry but MUST replace
    /// or update the existing one") the entry for `key`.
    pub(crate) fn insert(&mut self, key: Key<A>, observer: Observer) {
        self.remove(&key);
        self.request_bytes += observer.request.len();
        self.by_resource
            .entry(observer.resource)
            .or_default()
            .insert(key);
        if let Some(id) = observer.notification {
            self.by_notification.insert(id, key);
        }
        self.map.insert(key, observer);
    }

    pub(crate) fn remove(&mut self, key: &Key<A>) -> Option<Observer> {
        let o = self.map.remove(key)?;
        self.request_bytes = self.request_bytes.saturating_sub(o.request.len());
        if let Some(set) = self.by_resource.get_mut(&o.resource) {
            set.remove(key);
            if set.is_empty() {
                self.by_resource.remove(&o.resource);
            }
        }
        if let Some(id) = o.notification {
            self.by_notification.remove(&id);
        }
        Some(o)
    }

    /// Records the endpoint's latest notification for `key`.
    pub(crate) fn set_notification(&mut self, key: &Key<A>, id: NotificationId) {
        let Some(o) = self.map.get_mut(key) else {
            return;
        };
        if let Some(old) = o.notification.replace(id) {
            self.by_notification.remove(&old);
        }
        self.by_notification.insert(id, *key);
    }

    /// The observer whose latest notification is `id`, if any.
    pub(crate) fn by_notification(&self, id: NotificationId) -> Option<Key<A>> {
        self.by_notification.get(&id).copied()
    }

    /// Forgets that `id` is in flight (it was delivered).
    pub(crate) fn delivered(&mut self, id: NotificationId) {
        if let Some(key) = self.by_notification.remove(&id)
            && let Some(o) = self.map.get_mut(&key)
        {
            o.notification = None;
        }
    }

    /// Appends the observers of `resource` to `out`.
    pub(crate) fn keys_of(&self, resource: usize, out: &mut Vec<Key<A>>) {
        if let Some(set) = self.by_resource.get(&resource) {
            out.extend(set.iter().copied());
        }
    }

    /// How many observe `resource`.
    pub(crate) fn count_of(&self, resource: usize) -> usize {
        self.by_resource.get(&resource).map_or(0, BTreeSet::len)
    }
}

// ----- the layer's Observe API ------------------------------------------------

impl<A: Address, S> Server<A, S> {
    /// Adds (or refreshes) the observer of a 2.xx answer to a registration
    /// (RFC 7641 §4.1) and returns the Observe value for the answer, or
    /// `None` when the list is full (the answer then goes without Observe).
    pub(super) fn register(
        &mut self,
        now: Instant,
        reg: &Registration<A>,
        answer: &MessageBuf,
    ) -> Option<u32> {
        let key = (reg.peer, reg.token);
        if !self.observers.contains(&key) && self.observers.len() >= self.config.max_observers {
            self.stats.observe_refused += 1;
            return None;
        }
        let seq = self.sequences.get_mut(reg.resource)?;
        *seq = (*seq + 1) & Observe::MAX;
        let seq = *seq;
        let content_format = answer
            .option(OptionNumber::CONTENT_FORMAT)
            .and_then(|v| ContentFormat::from_value(v).ok());
        // A notification in flight belongs to the same observation.
        let notification = self.observers.get(&key).and_then(|o| o.notification);
        self.observers.insert(
            key,
            Observer {
                resource: reg.resource,
                request: reg.request.clone().into_boxed_slice(),
                format: reg.format,
                content_format,
                szx: Message::parse(&reg.request)
                    .ok()
                    .and_then(|r| r.block2())
                    .map_or(self.config.block2_szx, |b| {
                        b.szx().min(self.config.block2_szx)
                    }),
                notification,
                since_con: 0,
                last_con: now,
            },
        );
        self.stats.observers_registered += 1;
        Some(seq)
    }

    /// Tells the observers of `resource` that it changed (RFC 7641 §4.2):
    /// runs its GET handler again for each observer (with the observer's
    /// registration request and negotiated format) and sends the answer as
    /// a notification with the observer's token and the next Observe
    /// sequence number of the resource (§4.4), after the same
    /// post-processing as a response (Content-Format, Max-Age, ETag). A
    /// representation too large for one message goes out as its first
    /// Block2 block (RFC 7959 §2.6); the client GETs the rest.
    ///
    /// The message type: CON when [`ServerConfig::notify_con`] is set, when
    /// [`ServerConfig::notify_con_every`] NON notifications have gone to
    /// this observer since its last CON, or when its last CON is
    /// [`ServerConfig::notify_con_interval`] old (§4.5); NON otherwise. (A
    /// CON refused for lack of room in the endpoint goes as NON.)
    ///
    /// A handler answer that is not 2.xx is sent as a CON notification
    /// without Observe and ends the observation (§4.2), so is a 2.xx answer
    /// whose Content-Format differs from the first response's (sent as
    /// 4.06 Not Acceptable). Returns the number of notifications sent.
    ///
    /// The endpoint limits what is outstanding per client across all its
    /// observations (RFC 7641 §4.5.1: NSTART, and one NON notification per
    /// [`Config::non_notification_interval_ms`](crate::endpoint::Config::non_notification_interval_ms),
    /// 3 s by default): a notification beyond that waits in the endpoint,
    /// and a newer change of the same observation replaces it, so the
    /// client gets the newest state when its slot frees. It still counts
    /// as sent here.
    ///
    /// Pass every later event to [`handle_event`](Self::handle_event): a
    /// Reset or a CON notification that times out removes the observer
    /// (§4.5).
    ///
    /// ```
    /// use coap_proto::endpoint::{Config, Endpoint, Event};
    /// use coap_proto::server::{Reply, Resource, Server, ServerConfig};
    /// use coap_proto::{ContentFormat, Instant, Message, MessageType, Observe};
    ///
    /// let mut server: Server<u8, u32> = Server::new(ServerConfig::default());
    /// let temp = server.add(
    ///     Resource::new("/temp")
    ///         .observable()
    ///         .get(|t: &mut u32, _| Reply::content(ContentFormat::TEXT_PLAIN, t.to_string())),
    /// )?;
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// let mut value = 20;
    /// // CON GET /temp with Observe:0 and token 0x07 from peer 9.
    /// ep.handle_datagram(Instant::ZERO, 9, b"\x41\x01\x00\x01\x07\x60\x54temp");
    /// let Some(Event::Request(req)) = ep.poll_event() else { unreachable!() };
    /// server.handle(&mut ep, Instant::ZERO, req, &mut value);
    /// let mut buf = [0u8; 64];
    /// let t = ep.poll_transmit(&mut buf)?.unwrap();
    /// assert_eq!(Message::parse(&buf[..t.len])?.observe(), Some(Observe(1)));
    /// // The value changes: a NON notification with the same token.
    /// value = 21;
    /// assert_eq!(server.notify_changed(&mut ep, Instant::from_secs(5), temp, &mut value), 1);
    /// let t = ep.poll_transmit(&mut buf)?.unwrap();
    /// let n = Message::parse(&buf[..t.len])?;
    /// assert_eq!((n.ty(), n.token(), n.observe(), n.payload()), (MessageType::Non, &[7][..], Some(Observe(2)), &b"21"[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// [`ServerConfig::notify_con`]: super::ServerConfig::notify_con
    /// [`ServerConfig::notify_con_every`]: super::ServerConfig::notify_con_every
    /// [`ServerConfig::notify_con_interval`]: super::ServerConfig::notify_con_interval
    pub fn notify_changed(
        &mut self,
        ep: &mut Endpoint<A>,
        now: Instant,
        resource: ResourceId,
        state: &mut S,
    ) -> usize {
        let now = self.advance(now);
        // RFC 7959 §2.4: no block of the old representation after this.
        self.invalidate(resource);
        let Some(seq) = self.sequences.get_mut(resource.0) else {
            return 0;
        };
        *seq = (*seq + 1) & Observe::MAX;
        let seq = *seq;
        let mut keys = Vec::with_capacity(self.observers.count_of(resource.0));
        self.observers.keys_of(resource.0, &mut keys);
        let mut sent = 0;
        for key in keys {
            if self.notify_one(ep, now, resource.0, key, seq, state) {
                sent += 1;
            }
        }
        sent
    }

    /// Runs the GET (or FETCH) handler of resource `idx` for the observer
    /// `key`, with its registration request (RFC 7641 §4.2).
    fn run_for_observer(
        &mut self,
        now: Instant,
        idx: usize,
        key: Key<A>,
        state: &mut S,
    ) -> Option<Reply> {
        let obs = self.observers.get(&key)?;
        let msg = Message::parse(&obs.request).ok()?;
        let code = msg.code();
        let res = self.resources.get_mut(idx)?;
        Some(match res.handlers.iter_mut().find(|(c, _)| *c == code) {
            Some((_, h)) => {
                let request = Request {
                    peer: key.0,
                    handle: ResponseHandle::from_raw(0),
                    multicast: false,
                    now,
                    message: msg,
                    body: msg.payload(),
                    block: None,
                    format: obs.format,
                    resource: ResourceId(idx),
                    notification: true,
                };
                h(state, &request)
            }
            // The method went away: RFC 7252 §5.9.2.6.
            None => Reply::status(Code::METHOD_NOT_ALLOWED),
        })
    }

    /// One notification to one observer.
    fn notify_one(
        &mut self,
        ep: &mut Endpoint<A>,
        now: Instant,
        idx: usize,
        key: Key<A>,
        seq: u32,
        state: &mut S,
    ) -> bool {
        let max_message = ep.config().max_message_size;
        let Some(obs) = self.observers.get(&key) else {
            return false;
        };
        let (format, content_format, since_con, last_con, szx) = (
            obs.format,
            obs.content_format,
            obs.since_con,
            obs.last_con,
            obs.szx,
        );
        let Some(reply) = self.run_for_observer(now, idx, key, state) else {
            return false;
        };
        let Reply::Now(mut m) = reply else {
            self.stats.notifications_skipped += 1;
            return false;
        };
        if m.code().is_success() {
            if !m.payload().is_empty()
                && m.option(OptionNumber::CONTENT_FORMAT).is_none()
                && let Some(f) = format
            {
                m.add_option_uint(OptionNumber::CONTENT_FORMAT, u32::from(f.0));
            }
            if m.option(OptionNumber::MAX_AGE).is_none()
                && let Some(age) = self.resources.get(idx).and_then(|r| r.max_age)
            {
                m.add_option_uint(OptionNumber::MAX_AGE, age);
            }
            let cf = m
                .option(OptionNumber::CONTENT_FORMAT)
                .and_then(|v| ContentFormat::from_value(v).ok());
            if cf != content_format && !m.payload().is_empty() {
                // §4.2: "unable to continue sending notifications in this
                // format": 4.06, then the entry goes.
                m = MessageBuf::new(MessageType::Con, Code::NOT_ACCEPTABLE);
            }
        }
        if !m.code().is_success() {
            // §3.2, §4.2: an error notification carries no Observe and ends
            // the observation; CON, so that the client learns of it.
            m.remove_option(OptionNumber::OBSERVE);
            let r = notify_emit(ep, now, key, true, &m, None);
            if self.observers.remove(&key).is_some() {
                self.stats.observers_removed += 1;
            }
            return self.count_notification(&r, true);
        }
        let block_wise = m.payload().len() > 1usize << (szx + 4)
            || m.encoded_len() + MAX_TOKEN_LEN + 4 > max_message;
        let auto = match self.config.auto_etag {
            AutoEtag::Never => false,
            AutoEtag::BlockWise => block_wise,
            AutoEtag::Always => true,
        };
        if auto && !m.payload().is_empty() && m.option(OptionNumber::ETAG).is_none() {
            let cf = m
                .option(OptionNumber::CONTENT_FORMAT)
                .and_then(|v| ContentFormat::from_value(v).ok());
            m.add_option(OptionNumber::ETAG, ETag::of(cf, m.payload()).as_bytes());
        }
        m.set_option(OptionNumber::OBSERVE, encode_uint(seq));
        // RFC 7959 §2.6: only the first block; the client GETs the rest.
        let range = match super::slice(&mut m, None, false, szx, max_message) {
            Ok(Some((start, end, _))) => Some((start, end)),
            _ => None,
        };
        let every = self.config.notify_con_every.max(1);
        let mut con = self.config.notify_con
            || since_con.saturating_add(1) >= every
            || now >= last_con + self.config.notify_con_interval;
        let mut r = notify_emit(ep, now, key, con, &m, range);
        if con && r == Err(EndpointError::NoCapacity) {
            con = false;
            r = notify_emit(ep, now, key, false, &m, range);
        }
        if let Ok(id) = r {
            self.observers.set_notification(&key, id);
            if let Some(o) = self.observers.get_mut(&key) {
                if con {
                    o.since_con = 0;
                    o.last_con = now;
                } else {
                    o.since_con = o.since_con.saturating_add(1);
                }
            }
            if m.code() == Code::CONTENT
                && range.is_some_and(|(start, end)| m.payload().len() > end - start)
            {
                self.seed_cache(now, idx, &key, format, m, state);
            }
        }
        self.count_notification(&r, con)
    }

    /// RFC 7959 §2.6: a notification larger than a block carries the first
    /// block only, and the client GETs the rest as if it had asked for the
    /// representation itself. The representation is kept under the key
    /// those GETs make (the registration's method, Uri-Query, FETCH body
    /// and negotiated format), so that they are sliced from it, as after a
    /// large GET answer, instead of running the handler again. Once per
    /// change and key: the other observers' notifications find it fresh.
    fn seed_cache(
        &mut self,
        now: Instant,
        idx: usize,
        key: &Key<A>,
        format: Option<ContentFormat>,
        m: MessageBuf,
        state: &S,
    ) {
        let Some(res) = self.resources.get(idx).filter(|r| !r.uncached) else {
            return;
        };
        let state = res.state.as_ref().and_then(|probe| probe(state).etag());
        let Some(rep) = self.observers.get(key).and_then(|o| {
            let request = Message::parse(&o.request).ok()?;
            Some(RepKey::new(idx, format.map(|f| f.0), &request))
        }) else {
            return;
        };
        if !self.cache.is_fresh(&rep, now) {
            self.keep(now, rep, m, state);
        }
    }

    fn count_notification(&mut self, r: &Result<NotificationId, EndpointError>, con: bool) -> bool {
        if r.is_ok() {
            self.stats.notifications += 1;
            if con {
                self.stats.notifications_con += 1;
            }
            true
        } else {
            self.stats.notifications_skipped += 1;
            false
        }
    }

    /// Handles one event of the endpoint: a request is answered
    /// ([`handle`](Self::handle)); the outcome of a notification updates
    /// the list of observers (RFC 7641 §4.5: a Reset or a CON notification
    /// that timed out removes the observer). Every other event is handed
    /// back.
    ///
    /// ```
    /// use coap_proto::endpoint::{Config, Endpoint, Event};
    /// use coap_proto::server::{Server, ServerConfig};
    /// use coap_proto::Instant;
    /// let mut server: Server<u8> = Server::new(ServerConfig::default());
    /// let mut ep: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// ep.handle_datagram(Instant::ZERO, 9, b"\x40\x01\x00\x01"); // CON GET /
    /// while let Some(event) = ep.poll_event() {
    ///     if let Some(other) = server.handle_event(&mut ep, Instant::ZERO, event, &mut ()) {
    ///         println!("not for the layer: {other:?}");
    ///     }
    /// }
    /// ```
    pub fn handle_event(
        &mut self,
        ep: &mut Endpoint<A>,
        now: Instant,
        event: Event<A>,
        state: &mut S,
    ) -> Option<Event<A>> {
        match event {
            Event::Request(req) => {
                self.handle(ep, now, req, state);
                None
            }
            Event::NotificationDelivered(id) => {
                self.observers.delivered(id);
                None
            }
            Event::NotificationRejected(id) | Event::NotificationTimedOut(id) => {
                if let Some(key) = self.observers.by_notification(id)
                    && self.observers.remove(&key).is_some()
                {
                    self.stats.observers_removed += 1;
                }
                None
            }
            other => Some(other),
        }
    }

    /// Observers of all resources.
    ///
    /// ```
    /// # use coap_proto::server::{Server, ServerConfig};
    /// let server: Server<u8> = Server::new(ServerConfig::default());
    /// assert_eq!(server.observer_count(), 0);
    /// ```
    #[must_use]
    pub fn observer_count(&self) -> usize {
        self.observers.len()
    }

    /// Observers of one resource.
    ///
    /// ```
    /// # use coap_proto::server::{Resource, Server, ServerConfig};
    /// let mut server: Server<u8> = Server::new(ServerConfig::default());
    /// let id = server.add(Resource::new("/obs").observable())?;
    /// assert_eq!(server.observers_of(id), 0);
    /// # Ok::<(), coap_proto::server::ServerError>(())
    /// ```
    #[must_use]
    pub fn observers_of(&self, resource: ResourceId) -> usize {
        self.observers.count_of(resource.0)
    }

    /// The memory charged to the list of observers: [`OBSERVER_BYTES`] per
    /// observer plus its registration request. Never above
    /// [`ServerConfig::observer_memory_bound`](super::ServerConfig::observer_memory_bound).
    ///
    /// ```
    /// # use coap_proto::server::{Server, ServerConfig};
    /// let server: Server<u8> = Server::new(ServerConfig::default());
    /// assert_eq!(server.observer_memory(), 0);
    /// ```
    #[must_use]
    pub fn observer_memory(&self) -> usize {
        self.observers.memory()
    }

    /// The Observe sequence number last used for `resource` (RFC 7641
    /// §4.4), if it exists.
    ///
    /// ```
    /// # use coap_proto::server::{Resource, Server, ServerConfig};
    /// let mut server: Server<u8> = Server::new(ServerConfig::default());
    /// let id = server.add(Resource::new("/obs").observable())?;
    /// assert_eq!(server.observe_sequence(id), Some(0));
    /// # Ok::<(), coap_proto::server::ServerError>(())
    /// ```
    #[must_use]
    pub fn observe_sequence(&self, resource: ResourceId) -> Option<u32> {
        self.sequences.get(resource.0).copied()
    }

    /// Sets the Observe sequence number of `resource` (taken modulo 2^24),
    /// e.g. to continue after a restart ("The sequence number MAY start at
    /// any value", RFC 7641 §4.4). The next notification or registration
    /// answer uses the value after it.
    ///
    /// ```
    /// # use coap_proto::server::{Resource, Server, ServerConfig};
    /// let mut server: Server<u8> = Server::new(ServerConfig::default());
    /// let id = server.add(Resource::new("/obs").observable())?;
    /// server.set_observe_sequence(id, 0x00ff_ffff);
    /// assert_eq!(server.observe_sequence(id), Some(0x00ff_ffff));
    /// # Ok::<(), coap_proto::server::ServerError>(())
    /// ```
    pub fn set_observe_sequence(&mut self, resource: ResourceId, value: u32) {
        if let Some(s) = self.sequences.get_mut(resource.0) {
            *s = value & Observe::MAX;
        }
    }
}

/// Sends `m` (or a range of its payload) as a notification to `key`.
fn notify_emit<A: Address>(
    ep: &mut Endpoint<A>,
    now: Instant,
    key: Key<A>,
    con: bool,
    m: &MessageBuf,
    range: Option<(usize, usize)>,
) -> Result<NotificationId, EndpointError> {
    let payload = match range {
        Some((s, e)) => m.payload().get(s..e).unwrap_or_default(),
        None => m.payload(),
    };
    ep.notify_with(now, key.0, key.1.as_slice(), con, m.code(), |enc| {
        for o in m.options() {
            enc.option(o.number, o.value)?;
        }
        enc.payload(payload)?;
        Ok(())
    })
}
