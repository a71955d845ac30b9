//! Resources, handlers and what they exchange with the layer.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::endpoint::ResponseHandle;
use crate::message::{Code, ContentFormat, Message, MessageBuf, MessageType, OptionNumber};
use crate::time::Instant;

/// A method handler: gets the application state and the request, returns
/// what to answer.
pub(crate) type Handler<A, S> = Box<dyn FnMut(&mut S, &Request<'_, A>) -> Reply>;

/// A probe of a resource's current state for the conditional requests of
/// RFC 7252 §5.10.8 and the validation of §5.10.6.2.
pub(crate) type StateProbe<S> = Box<dyn Fn(&S) -> ResourceState>;

/// An entity-tag (RFC 7252 §5.10.6): 1 to 8 opaque bytes, stored inline.
///
/// ```
/// use coap_proto::server::ETag;
/// let e = ETag::new(b"v1").unwrap();
/// assert_eq!(e.as_bytes(), b"v1");
/// assert!(ETag::new(b"").is_none() && ETag::new(&[0; 9]).is_none());
/// assert_eq!(ETag::from_u64(0x0102).as_bytes(), [1, 2]);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ETag {
    len: u8,
    bytes: [u8; 8],
}

impl ETag {
    /// An entity-tag with these bytes, or `None` unless there are 1 to 8.
    ///
    /// ```
    /// # use coap_proto::server::ETag;
    /// assert_eq!(ETag::new(&[7]).map(|e| e.as_bytes().len()), Some(1));
    /// ```
    #[must_use]
    pub fn new(value: &[u8]) -> Option<Self> {
        if value.is_empty() || value.len() > 8 {
            return None;
        }
        let mut bytes = [0u8; 8];
        for (d, s) in bytes.iter_mut().zip(value) {
            *d = *s;
        }
        Some(Self {
            len: value.len() as u8,
            bytes,
        })
    }

    /// A version number as an entity-tag: its big-endian bytes without
    /// leading zeros (at least one byte).
    ///
    /// ```
    /// # use coap_proto::server::ETag;
    /// assert_eq!(ETag::from_u64(0).as_bytes(), [0]);
    /// assert_eq!(ETag::from_u64(u64::MAX).as_bytes(), [0xff; 8]);
    /// ```
    #[must_use]
    pub fn from_u64(version: u64) -> Self {
        let be = version.to_be_bytes();
        let skip = (version.leading_zeros() / 8).min(7) as usize;
        Self::new(be.get(skip..).unwrap_or(&be)).unwrap_or(Self { len: 8, bytes: be })
    }

    /// A strong entity-tag computed from a representation (64-bit FNV-1a of
    /// the content format and the bytes). This is what the layer attaches
    /// on its own (see [`AutoEtag`](super::AutoEtag)); deterministic, not
    /// cryptographic.
    ///
    /// ```
    /// # use coap_proto::server::ETag;
    /// # use coap_proto::ContentFormat;
    /// let a = ETag::of(Some(ContentFormat::TEXT_PLAIN), b"hello");
    /// assert_eq!(a, ETag::of(Some(ContentFormat::TEXT_PLAIN), b"hello"));
    /// assert_ne!(a, ETag::of(Some(ContentFormat::TEXT_PLAIN), b"hellO"));
    /// assert_ne!(a, ETag::of(Some(ContentFormat::JSON), b"hello"));
    /// ```
    #[must_use]
    pub fn of(format: Option<ContentFormat>, representation: &[u8]) -> Self {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut h = OFFSET;
        let cf = format.map_or([0xff, 0xff, 0xff], |c| {
            let [a, b] = c.0.to_be_bytes();
            [1, a, b]
        });
        for &b in cf.iter().chain(representation) {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
        Self {
            len: 8,
            bytes: h.to_be_bytes(),
        }
    }

    /// The bytes.
    ///
    /// ```
    /// # use coap_proto::server::ETag;
    /// assert_eq!(ETag::new(b"abc").unwrap().as_bytes(), b"abc");
    /// ```
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }
}

impl fmt::Debug for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ETag(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// What a resource is right now, for conditional requests (RFC 7252
/// §5.10.8) and validation (§5.10.6.2); see [`Resource::state`].
///
/// ```
/// use coap_proto::server::{ETag, ResourceState};
/// let s = ResourceState::Present(Some(ETag::from_u64(3)));
/// assert_ne!(s, ResourceState::Absent);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResourceState {
    /// The resource has no current representation (a PUT may create it;
    /// `If-None-Match` passes).
    Absent,
    /// The resource exists, with this entity-tag if it has one.
    Present(Option<ETag>),
}

impl ResourceState {
    /// The entity-tag, if the resource exists and has one.
    pub(crate) fn etag(self) -> Option<ETag> {
        match self {
            Self::Present(e) => e,
            Self::Absent => None,
        }
    }
}

/// Identifies a registered resource, from [`Server::add`](super::Server::add).
///
/// ```
/// use coap_proto::server::{Resource, Server, ServerConfig};
/// let mut server: Server<u8> = Server::new(ServerConfig::default());
/// let id = server.add(Resource::new("/a"))?;
/// assert_eq!(server.path(id), Some("/a"));
/// # Ok::<(), coap_proto::server::ServerError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceId(pub(crate) usize);

/// Where a block of a streamed Block1 upload sits in the body (RFC 7959
/// §2.5), for resources registered with [`Resource::stream_blocks`].
///
/// ```
/// use coap_proto::server::BodyBlock;
/// fn progress(b: &BodyBlock, len: usize) -> usize { b.offset + len }
/// # let _ = progress;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BodyBlock {
    /// The byte offset of this block's payload in the body.
    pub offset: usize,
    /// Whether this is the final block (M unset).
    pub last: bool,
    /// The block number (NUM) as the client sent it.
    pub num: u32,
    /// The block size exponent (SZX) as the client sent it.
    pub szx: u8,
}

/// A request as a handler sees it: the message, the body (reassembled from
/// Block1 blocks when needed) and what the layer decided.
///
/// ```
/// use coap_proto::server::{Reply, Request};
/// fn echo(_: &mut (), req: &Request<'_, u8>) -> Reply {
///     Reply::content(coap_proto::ContentFormat::OCTET_STREAM, req.body.to_vec())
/// }
/// # let _ = echo;
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Request<'a, A> {
    /// Who sent it.
    pub peer: A,
    /// The endpoint's handle; keep it to answer later after [`Reply::Later`]
    /// (through [`Server::respond`](super::Server::respond)).
    pub handle: ResponseHandle,
    /// Whether it arrived on a multicast address.
    pub multicast: bool,
    /// The time the layer was called with.
    pub now: Instant,
    /// The request message (for a reassembled Block1 upload: its final block).
    pub message: Message<'a>,
    /// The request body: the payload, the reassembled Block1 body, or (for
    /// [`Resource::stream_blocks`]) this block's payload.
    pub body: &'a [u8],
    /// For streamed uploads: where `body` sits in the whole body.
    pub block: Option<BodyBlock>,
    /// The content format to answer with: the client's Accept if the
    /// resource produces it, else the resource's first format (`None` when
    /// the resource declares none and the client sent no Accept).
    pub format: Option<ContentFormat>,
    /// The resource that matched.
    pub resource: ResourceId,
    /// The handler runs to produce an Observe notification
    /// ([`Server::notify_changed`](super::Server::notify_changed), RFC 7641
    /// §4.2), with the observer's registration request as `message`. Then
    /// `handle` belongs to no pending request (it is
    /// `ResponseHandle::from_raw(0)`), and [`Reply::Later`] or
    /// [`Reply::Defer`] skip this notification.
    pub notification: bool,
}

impl<A> Request<'_, A> {
    /// The request method.
    ///
    /// ```
    /// use coap_proto::server::{Reply, Request};
    /// use coap_proto::Code;
    /// fn h(_: &mut (), req: &Request<'_, u8>) -> Reply {
    ///     assert_eq!(req.method(), Code::GET);
    ///     Reply::status(Code::CONTENT)
    /// }
    /// # let _ = h;
    /// ```
    #[must_use]
    pub fn method(&self) -> Code {
        self.message.code()
    }
}

/// A handler's answer.
///
/// The layer post-processes a [`Reply::Now`] before sending it: it adds the
/// negotiated Content-Format and the resource's Max-Age when the handler
/// did not set them, may add an ETag ([`AutoEtag`](super::AutoEtag)),
/// turns a 2.05 whose ETag the client already has into 2.03 Valid, echoes
/// Block1, and slices large payloads into Block2 blocks.
///
/// ```
/// use coap_proto::server::Reply;
/// use coap_proto::{Code, ContentFormat, MessageBuf, MessageType};
/// let a = Reply::content(ContentFormat::TEXT_PLAIN, "22.5 C");
/// let b = Reply::status(Code::CHANGED);
/// let c: Reply = MessageBuf::new(MessageType::Ack, Code::DELETED).into();
/// assert!(matches!((a, b, c), (Reply::Now(_), Reply::Now(_), Reply::Now(_))));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Reply {
    /// Answer now with this response (its type, message ID and token are
    /// ignored; the endpoint chooses them). The payload is the whole
    /// representation: the layer slices it.
    Now(MessageBuf),
    /// Answer later with a separate response (RFC 7252 §5.2.2): the layer
    /// acknowledges a CON request at once with an empty ACK. Keep
    /// [`Request::handle`] and answer with
    /// [`Server::respond`](super::Server::respond).
    Later,
    /// Answer later, without acknowledging now: if the answer comes within
    /// the endpoint's `separate_ack_delay` it is still piggybacked, else
    /// the endpoint sends the empty ACK itself. Answer with
    /// [`Server::respond`](super::Server::respond).
    Defer,
}

impl Reply {
    /// A response with only a code.
    ///
    /// ```
    /// # use coap_proto::server::Reply;
    /// # use coap_proto::Code;
    /// let Reply::Now(m) = Reply::status(Code::DELETED) else { unreachable!() };
    /// assert_eq!(m.code(), Code::DELETED);
    /// ```
    #[must_use]
    pub fn status(code: Code) -> Self {
        Self::Now(MessageBuf::new(MessageType::Ack, code))
    }

    /// A 2.05 Content with a Content-Format and a payload.
    ///
    /// ```
    /// # use coap_proto::server::Reply;
    /// # use coap_proto::{Code, ContentFormat};
    /// let Reply::Now(m) = Reply::content(ContentFormat::JSON, "{}") else { unreachable!() };
    /// assert_eq!((m.code(), m.payload()), (Code::CONTENT, &b"{}"[..]));
    /// ```
    #[must_use]
    pub fn content(format: ContentFormat, payload: impl Into<Vec<u8>>) -> Self {
        let mut m = MessageBuf::new(MessageType::Ack, Code::CONTENT);
        m.add_option_uint(OptionNumber::CONTENT_FORMAT, u32::from(format.0));
        m.set_payload(payload);
        Self::Now(m)
    }
}

impl From<MessageBuf> for Reply {
    fn from(m: MessageBuf) -> Self {
        Self::Now(m)
    }
}

/// A resource to register with [`Server::add`](super::Server::add): a path,
/// handlers per method, link attributes for `/.well-known/core`
/// (RFC 6690 §3: `rt`, `if`, `ct`, `sz`, `obs`, `title`), and how the layer
/// treats it.
///
/// `S` is the application state the handlers get (see
/// [`Server`](super::Server)).
///
/// ```
/// use coap_proto::server::{Reply, Resource};
/// use coap_proto::{Code, ContentFormat};
/// let r: Resource<u8> = Resource::new("/sensors/temp")
///     .rt("temperature-c")
///     .interface("sensor")
///     .format(ContentFormat::TEXT_PLAIN)
///     .title("Temperature")
///     .max_age(30)
///     .get(|_, _| Reply::content(ContentFormat::TEXT_PLAIN, "22.5"));
/// assert_eq!(r.path(), "/sensors/temp");
/// ```
#[allow(clippy::struct_excessive_bools)] // independent switches of the builder
pub struct Resource<A, S = ()> {
    pub(crate) path: String,
    pub(crate) handlers: Vec<(Code, Handler<A, S>)>,
    pub(crate) rt: String,
    pub(crate) interface: String,
    pub(crate) formats: Vec<ContentFormat>,
    pub(crate) size: Option<u64>,
    pub(crate) observable: bool,
    pub(crate) title: Option<String>,
    pub(crate) extra: Vec<(String, Option<String>)>,
    pub(crate) listed: bool,
    pub(crate) index: bool,
    pub(crate) max_age: Option<u32>,
    pub(crate) stream: bool,
    pub(crate) uncached: bool,
    pub(crate) max_body: Option<usize>,
    pub(crate) state: Option<StateProbe<S>>,
}

impl<A, S> fmt::Debug for Resource<A, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let methods: Vec<Code> = self.handlers.iter().map(|(c, _)| *c).collect();
        f.debug_struct("Resource")
            .field("path", &self.path)
            .field("methods", &methods)
            .field("formats", &self.formats)
            .field("listed", &self.listed)
            .field("index", &self.index)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

fn push_words(list: &mut String, words: &str) {
    for w in words.split(' ').filter(|w| !w.is_empty()) {
        if !list.is_empty() {
            list.push(' ');
        }
        list.push_str(w);
    }
}

impl<A, S> Resource<A, S> {
    /// A resource at `path` (`/a/b`; `/` is the root). Each `/`-separated
    /// segment is one Uri-Path option, taken literally (not
    /// percent-decoded). It has no handlers yet: every method gets 4.05.
    ///
    /// ```
    /// # use coap_proto::server::Resource;
    /// assert_eq!(Resource::<u8>::new("seg1/seg2").path(), "/seg1/seg2");
    /// ```
    #[must_use]
    pub fn new(path: &str) -> Self {
        let mut p = String::with_capacity(path.len() + 1);
        if !path.starts_with('/') {
            p.push('/');
        }
        p.push_str(path);
        Self {
            path: p,
            handlers: Vec::new(),
            rt: String::new(),
            interface: String::new(),
            formats: Vec::new(),
            size: None,
            observable: false,
            title: None,
            extra: Vec::new(),
            listed: true,
            index: false,
            max_age: None,
            stream: false,
            uncached: false,
            max_body: None,
            state: None,
        }
    }

    /// The path, with its leading `/`.
    ///
    /// ```
    /// # use coap_proto::server::Resource;
    /// assert_eq!(Resource::<u8>::new("/").path(), "/");
    /// ```
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Handles `method` with `handler`; a later call for the same method
    /// replaces it.
    ///
    /// ```
    /// # use coap_proto::server::{Reply, Resource};
    /// # use coap_proto::Code;
    /// let r: Resource<u8> = Resource::new("/x").method(Code::FETCH, |_, _| Reply::status(Code::CONTENT));
    /// # let _ = r;
    /// ```
    #[must_use]
    pub fn method(
        mut self,
        method: Code,
        handler: impl FnMut(&mut S, &Request<'_, A>) -> Reply + 'static,
    ) -> Self {
        self.handlers.retain(|(c, _)| *c != method);
        self.handlers.push((method, Box::new(handler)));
        self
    }

    /// Handles GET.
    ///
    /// ```
    /// # use coap_proto::server::{Reply, Resource};
    /// # use coap_proto::ContentFormat;
    /// let r: Resource<u8> = Resource::new("/x").get(|_, _| Reply::content(ContentFormat::TEXT_PLAIN, "x"));
    /// # let _ = r;
    /// ```
    #[must_use]
    pub fn get(self, handler: impl FnMut(&mut S, &Request<'_, A>) -> Reply + 'static) -> Self {
        self.method(Code::GET, handler)
    }

    /// Handles POST.
    ///
    /// ```
    /// # use coap_proto::server::{Reply, Resource};
    /// # use coap_proto::Code;
    /// let r: Resource<u8> = Resource::new("/x").post(|_, _| Reply::status(Code::CREATED));
    /// # let _ = r;
    /// ```
    #[must_use]
    pub fn post(self, handler: impl FnMut(&mut S, &Request<'_, A>) -> Reply + 'static) -> Self {
        self.method(Code::POST, handler)
    }

    /// Handles PUT.
    ///
    /// ```
    /// # use coap_proto::server::{Reply, Resource};
    /// # use coap_proto::Code;
    /// let r: Resource<u8, Vec<u8>> = Resource::new("/x").put(|s, req| {
    ///     *s = req.body.to_vec();
    ///     Reply::status(Code::CHANGED)
    /// });
    /// # let _ = r;
    /// ```
    #[must_use]
    pub fn put(self, handler: impl FnMut(&mut S, &Request<'_, A>) -> Reply + 'static) -> Self {
        self.method(Code::PUT, handler)
    }

    /// Handles DELETE.
    ///
    /// ```
    /// # use coap_proto::server::{Reply, Resource};
    /// # use coap_proto::Code;
    /// let r: Resource<u8> = Resource::new("/x").delete(|_, _| Reply::status(Code::DELETED));
    /// # let _ = r;
    /// ```
    #[must_use]
    pub fn delete(self, handler: impl FnMut(&mut S, &Request<'_, A>) -> Reply + 'static) -> Self {
        self.method(Code::DELETE, handler)
    }

    /// Adds resource types (`rt`, RFC 6690 §3.1); several calls or a
    /// space-separated list give several types.
    ///
    /// ```
    /// # use coap_proto::server::Resource;
    /// let r: Resource<u8> = Resource::new("/l").rt("Type1").rt("Type2");
    /// # let _ = r;
    /// ```
    #[must_use]
    pub fn rt(mut self, types: &str) -> Self {
        push_words(&mut self.rt, types);
        self
    }

    /// Adds interface descriptions (`if`, RFC 6690 §3.2).
    ///
    /// ```
    /// # use coap_proto::server::Resource;
    /// let r: Resource<u8> = Resource::new("/l").interface("core.rw");
    /// # let _ = r;
    /// ```
    #[must_use]
    pub fn interface(mut self, interfaces: &str) -> Self {
        push_words(&mut self.interface, interfaces);
        self
    }

    /// Declares a content format the resource can produce. The first one is
    /// the default; a request whose Accept names none of them gets 4.06
    /// Not Acceptable before any handler runs (RFC 7252 §5.10.4). The list
    /// is the link's `ct` attribute (RFC 7252 §7.2.1). Without any format
    /// the layer does no negotiation.
    ///
    /// ```
    /// # use coap_proto::server::Resource;
    /// # use coap_proto::ContentFormat;
    /// let r: Resource<u8> = Resource::new("/m").format(ContentFormat::TEXT_PLAIN).format(ContentFormat::JSON);
    /// # let _ = r;
    /// ```
    #[must_use]
    pub fn format(mut self, format: ContentFormat) -> Self {
        if !self.formats.contains(&format) {
            self.formats.push(format);
        }
        self
    }

    /// The maximum size estimate (`sz`, RFC 6690 §3.3).
    ///
    /// ```
    /// # use coap_proto::server::Resource;
    /// let r: Resource<u8> = Resource::new("/fw").size(262_144);
    /// # let _ = r;
    /// ```
    #[must_use]
    pub fn size(mut self, bytes: u64) -> Self {
        self.size = Some(bytes);
        self
    }

    /// Makes the resource observable (RFC 7641): the link gets `obs`
    /// (§6), a GET with Observe:0 registers the client (§4.1), and
    /// [`Server::notify_changed`](super::Server::notify_changed) runs the GET
    /// handler again for every observer and sends the notifications.
    ///
    /// ```
    /// # use coap_proto::server::Resource;
    /// let r: Resource<u8> = Resource::new("/obs").observable();
    /// # let _ = r;
    /// ```
    #[must_use]
    pub fn observable(mut self) -> Self {
        self.observable = true;
        self
    }

    /// A human-readable title (`title`, RFC 6690 §2).
    ///
    /// ```
    /// # use coap_proto::server::Resource;
    /// let r: Resource<u8> = Resource::new("/t").title("Living room");
    /// # let _ = r;
    /// ```
    #[must_use]
    pub fn title(mut self, title: &str) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Any other link attribute (`value: None` for a flag such as `obs`).
    ///
    /// ```
    /// # use coap_proto::server::Resource;
    /// let r: Resource<u8> = Resource::new("/t").attr("anchor", Some("coap://[::1]/"));
    /// # let _ = r;
    /// ```
    #[must_use]
    pub fn attr(mut self, name: &str, value: Option<&str>) -> Self {
        self.extra.push((name.into(), value.map(Into::into)));
        self
    }

    /// Leaves the resource out of `/.well-known/core` (an
    /// [`index`](Self::index) above it still lists it).
    ///
    /// ```
    /// # use coap_proto::server::Resource;
    /// let r: Resource<u8> = Resource::new("/debug").unlisted();
    /// # let _ = r;
    /// ```
    #[must_use]
    pub fn unlisted(mut self) -> Self {
        self.listed = false;
        self
    }

    /// Makes the resource a link-format index of the resources below its
    /// path (RFC 6690 §1.2.2 and ETSI TD_COAP_LINK_09: descriptions
    /// arranged hierarchically). Unless it has its own GET handler, the
    /// layer answers GET with `application/link-format` (with the same
    /// query filtering as `/.well-known/core`), and the link gets `ct=40`.
    ///
    /// ```
    /// # use coap_proto::server::Resource;
    /// let r: Resource<u8> = Resource::new("/path").index();
    /// # let _ = r;
    /// ```
    #[must_use]
    pub fn index(mut self) -> Self {
        self.index = true;
        self.format(ContentFormat::LINK_FORMAT)
    }

    /// A Max-Age (RFC 7252 §5.10.5) added to successful responses whose
    /// handler set none.
    ///
    /// ```
    /// # use coap_proto::server::Resource;
    /// let r: Resource<u8> = Resource::new("/t").max_age(10);
    /// # let _ = r;
    /// ```
    #[must_use]
    pub fn max_age(mut self, seconds: u32) -> Self {
        self.max_age = Some(seconds);
        self
    }

    /// Hands Block1 uploads (RFC 7959 §2.5) to the handler block by block,
    /// in order, each with its [`BodyBlock`], instead of reassembling them.
    /// The layer still answers 4.08 to a block out of sequence and 4.13
    /// past the body limit. For a non-final block the handler's 2.31
    /// Continue (or a success code that enacts the block on its own,
    /// RFC 7959 §2.3) gets the Block1 echo.
    ///
    /// ```
    /// use coap_proto::server::{Reply, Resource};
    /// use coap_proto::Code;
    /// let r: Resource<u8, usize> = Resource::new("/fw").stream_blocks().put(|written, req| {
    ///     *written += req.body.len();
    ///     match req.block {
    ///         Some(b) if !b.last => Reply::status(Code::CONTINUE),
    ///         _ => Reply::status(Code::CHANGED),
    ///     }
    /// });
    /// # let _ = r;
    /// ```
    #[must_use]
    pub fn stream_blocks(mut self) -> Self {
        self.stream = true;
        self
    }

    /// Runs the GET (or FETCH) handler for every Block2 block instead of
    /// slicing the follow-up blocks from the representation the layer kept
    /// (see [`Server::invalidate`](super::Server::invalidate)): for a
    /// handler whose answer depends on more than the resource, Accept, the
    /// query and the FETCH body (e.g. on the client).
    ///
    /// ```
    /// # use coap_proto::server::Resource;
    /// let r: Resource<u8> = Resource::new("/whoami").uncached();
    /// # let _ = r;
    /// ```
    #[must_use]
    pub fn uncached(mut self) -> Self {
        self.uncached = true;
        self
    }

    /// The largest request body accepted for this resource, replacing
    /// [`ServerConfig::max_body`](super::ServerConfig::max_body).
    ///
    /// ```
    /// # use coap_proto::server::Resource;
    /// let r: Resource<u8> = Resource::new("/small").max_body(256);
    /// # let _ = r;
    /// ```
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = Some(bytes);
        self
    }

    /// Tells the layer the resource's current state, for If-Match and
    /// If-None-Match (RFC 7252 §5.10.8: 4.12 Precondition Failed) and to
    /// answer a GET whose ETag is current with 2.03 Valid without running
    /// the handler (§5.10.6.2). Without it the resource is taken to exist
    /// with no entity-tag.
    ///
    /// ```
    /// use coap_proto::server::{ETag, Resource, ResourceState};
    /// let r: Resource<u8, u64> = Resource::new("/v")
    ///     .state(|version: &u64| ResourceState::Present(Some(ETag::from_u64(*version))));
    /// # let _ = r;
    /// ```
    #[must_use]
    pub fn state(mut self, probe: impl Fn(&S) -> ResourceState + 'static) -> Self {
        self.state = Some(Box::new(probe));
        self
    }
}
