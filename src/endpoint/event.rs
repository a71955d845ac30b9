//! What the endpoint reports: events, identifiers and owned messages.

use alloc::vec::Vec;
use core::fmt;

use crate::message::Message;

/// Identifies a request this endpoint sent (a client exchange), from
/// [`Endpoint::request`](super::Endpoint::request) or
/// [`Endpoint::ping`](super::Endpoint::ping) until its final event.
///
/// ```
/// use coap_proto::endpoint::RequestId;
/// assert_eq!(RequestId::from_raw(7).raw(), 7);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub(crate) u64);

impl RequestId {
    /// The raw value, unique for the endpoint's lifetime.
    ///
    /// ```
    /// # use coap_proto::endpoint::RequestId;
    /// assert_eq!(RequestId::from_raw(1).raw(), 1);
    /// ```
    #[must_use]
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// Rebuilds an id from [`raw`](Self::raw), e.g. after storing it.
    ///
    /// ```
    /// # use coap_proto::endpoint::RequestId;
    /// let id = RequestId::from_raw(3);
    /// assert_eq!(id, RequestId::from_raw(id.raw()));
    /// ```
    #[must_use]
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "req#{}", self.0)
    }
}

/// Identifies a notification this endpoint sent as an observed resource's
/// server (RFC 7641), from [`Endpoint::notify`](super::Endpoint::notify)
/// until its outcome event (`NotificationDelivered`, `NotificationRejected`
/// or `NotificationTimedOut`). A notification superseded by a newer one for
/// the same observation (RFC 7641 §4.5.2) reports nothing more: its fate is
/// that of the notification that replaced it.
///
/// ```
/// use coap_proto::endpoint::NotificationId;
/// assert_eq!(NotificationId::from_raw(5).raw(), 5);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NotificationId(pub(crate) u64);

impl NotificationId {
    /// The raw value, unique for the endpoint's lifetime.
    ///
    /// ```
    /// # use coap_proto::endpoint::NotificationId;
    /// assert_eq!(NotificationId::from_raw(1).raw(), 1);
    /// ```
    #[must_use]
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// Rebuilds an id from [`raw`](Self::raw).
    ///
    /// ```
    /// # use coap_proto::endpoint::NotificationId;
    /// assert_eq!(NotificationId::from_raw(2), NotificationId::from_raw(2));
    /// ```
    #[must_use]
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }
}

impl fmt::Display for NotificationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ntf#{}", self.0)
    }
}

/// Identifies an incoming request the application has to answer, from its
/// [`Event::Request`] until [`Endpoint::respond`](super::Endpoint::respond).
///
/// ```
/// use coap_proto::endpoint::ResponseHandle;
/// assert_eq!(ResponseHandle::from_raw(9).raw(), 9);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[must_use = "an incoming request must be answered with Endpoint::respond"]
pub struct ResponseHandle(pub(crate) u64);

impl ResponseHandle {
    /// The raw value, unique for the endpoint's lifetime.
    ///
    /// ```
    /// # use coap_proto::endpoint::ResponseHandle;
    /// assert_eq!(ResponseHandle::from_raw(1).raw(), 1);
    /// ```
    #[must_use]
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// Rebuilds a handle from [`raw`](Self::raw).
    ///
    /// ```
    /// # use coap_proto::endpoint::ResponseHandle;
    /// assert_eq!(ResponseHandle::from_raw(2).raw(), 2);
    /// ```
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }
}

impl fmt::Display for ResponseHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "in#{}", self.0)
    }
}

/// A received, validated message owned by an event. The bytes come from the
/// endpoint's buffer pool; hand them back with
/// [`Endpoint::recycle`](super::Endpoint::recycle) to keep the steady state
/// allocation-free.
#[derive(Clone, PartialEq, Eq)]
pub struct OwnedMessage {
    bytes: Vec<u8>,
    layout: [usize; 3],
}

impl OwnedMessage {
    pub(crate) fn new(mut bytes: Vec<u8>, src: &[u8], msg: &Message<'_>) -> Self {
        bytes.clear();
        bytes.extend_from_slice(src);
        Self {
            bytes,
            layout: msg.layout(),
        }
    }

    /// The heap bytes the message holds (for `Endpoint::memory_usage`).
    pub(crate) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// The message view (validated when it was received).
    ///
    /// ```
    /// # use coap_proto::endpoint::*;
    /// # use coap_proto::{Code, Instant};
    /// let mut server: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// server.handle_datagram(Instant::ZERO, 9, b"\x50\x01\x00\x01\xb4temp");
    /// let Some(Event::Request(req)) = server.poll_event() else { panic!() };
    /// assert_eq!(req.message().code(), Code::GET);
    /// ```
    #[must_use]
    pub fn message(&self) -> Message<'_> {
        Message::from_layout(&self.bytes, self.layout)
    }

    /// The raw datagram.
    ///
    /// ```
    /// # use coap_proto::endpoint::*;
    /// # use coap_proto::Instant;
    /// let mut server: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// server.handle_datagram(Instant::ZERO, 9, b"\x50\x01\x00\x01");
    /// let Some(Event::Request(req)) = server.poll_event() else { panic!() };
    /// assert_eq!(req.message.as_bytes(), b"\x50\x01\x00\x01");
    /// ```
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Gives the buffer back (for [`Endpoint::recycle`](super::Endpoint::recycle)).
    ///
    /// ```
    /// # use coap_proto::endpoint::*;
    /// # use coap_proto::Instant;
    /// let mut server: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// server.handle_datagram(Instant::ZERO, 9, b"\x50\x01\x00\x01");
    /// let Some(Event::Request(req)) = server.poll_event() else { panic!() };
    /// server.recycle(req.message.into_bytes());
    /// ```
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl fmt::Debug for OwnedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.message(), f)
    }
}

impl fmt::Display for OwnedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.message(), f)
    }
}

/// An incoming request for the application.
#[derive(Debug)]
#[non_exhaustive]
pub struct IncomingRequest<A> {
    /// Answer with [`Endpoint::respond`](super::Endpoint::respond).
    pub handle: ResponseHandle,
    /// Who sent it.
    pub peer: A,
    /// Whether it arrived on a multicast address (RFC 7252 §8.2: the answer
    /// is delayed by a random Leisure and error answers are suppressed).
    pub multicast: bool,
    /// The request.
    pub message: OwnedMessage,
}

impl<A> IncomingRequest<A> {
    /// The request message.
    ///
    /// ```
    /// # use coap_proto::endpoint::*;
    /// # use coap_proto::{Code, Instant};
    /// let mut server: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// server.handle_datagram(Instant::ZERO, 9, b"\x50\x02\x00\x01");
    /// let Some(Event::Request(req)) = server.poll_event() else { panic!() };
    /// assert_eq!(req.message().code(), Code::POST);
    /// ```
    #[must_use]
    pub fn message(&self) -> Message<'_> {
        self.message.message()
    }
}

/// A response to one of this endpoint's requests.
#[derive(Debug)]
#[non_exhaustive]
pub struct Response<A> {
    /// The request it answers.
    pub id: RequestId,
    /// Who answered (for multicast requests, each responder in turn).
    pub peer: A,
    /// The response.
    pub message: OwnedMessage,
}

impl<A> Response<A> {
    /// The response message.
    ///
    /// ```
    /// # use coap_proto::endpoint::*;
    /// # use coap_proto::{Code, Instant, MessageBuf, MessageType};
    /// let mut client: Endpoint<u8> = Endpoint::new(Config::default(), 1);
    /// let id = client.request(Instant::ZERO, 2, &MessageBuf::new(MessageType::Con, Code::GET))?;
    /// let mut buf = [0u8; 1500];
    /// let t = client.poll_transmit(&mut buf)?.unwrap();
    /// let req = coap_proto::Message::parse(&buf[..t.len])?;
    /// let mut ack = MessageBuf::new(MessageType::Ack, Code::CONTENT);
    /// ack.set_message_id(req.message_id());
    /// ack.set_token(req.token())?;
    /// client.handle_datagram(Instant::ZERO, 2, &ack.to_bytes()?);
    /// let Some(Event::Response(resp)) = client.poll_event() else { panic!() };
    /// assert_eq!((resp.id, resp.message().code()), (id, Code::CONTENT));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn message(&self) -> Message<'_> {
        self.message.message()
    }
}

/// What happened, reported by [`Endpoint::poll_event`](super::Endpoint::poll_event).
///
/// Every request ends with exactly one of `Response` (for unicast),
/// `TimedOut`, `Reset`, `Pong` (for pings) or `MulticastDone` (after zero or
/// more `Response`s for a multicast request), unless the application
/// cancelled it. An observation ([`Endpoint::observe`](super::Endpoint::observe))
/// reports zero or more `Notification`s first.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<A> {
    /// A new request to answer.
    Request(IncomingRequest<A>),
    /// A response to one of our requests.
    Response(Response<A>),
    /// Our CON request was acknowledged with an empty ACK: the response will
    /// come separately (RFC 7252 §5.2.2).
    Acknowledged(RequestId),
    /// No ACK after MAX_RETRANSMIT retransmissions, or no response in time.
    TimedOut(RequestId),
    /// The peer answered our request with a Reset.
    Reset(RequestId),
    /// A ping was answered (with the Reset RFC 7252 §4.3 prescribes).
    Pong(RequestId),
    /// A multicast request stopped collecting responses.
    MulticastDone(RequestId),
    /// A separate CON response was acknowledged.
    ResponseDelivered(ResponseHandle),
    /// A separate CON response got no ACK (or a Reset).
    ResponseFailed(ResponseHandle),
    /// A notification of an observation ([`Endpoint::observe`](super::Endpoint::observe),
    /// RFC 7641): a 2.xx response carrying an Observe option, newer than
    /// every notification delivered before (§3.4). The observation stays
    /// open; it ends with a `Response` (a response without Observe, or an
    /// error code), `TimedOut` or `Reset`.
    Notification(Response<A>),
    /// A CON notification was acknowledged (RFC 7641 §3.5: the client is
    /// still interested).
    NotificationDelivered(NotificationId),
    /// The client rejected a CON or NON notification with a Reset: it is no
    /// longer interested (RFC 7641 §3.6, §4.5); remove the observer.
    NotificationRejected(NotificationId),
    /// A CON notification got no ACK after MAX_RETRANSMIT retransmissions:
    /// remove the observer (RFC 7641 §4.5).
    NotificationTimedOut(NotificationId),
}
