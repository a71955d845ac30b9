//! Zero-copy, validate-once parsing (RFC 7252 §3).

use super::error::{ParseError, ParseErrorKind};
use super::option::OptionNumber;
use super::value::{Block, ContentFormat, Observe, decode_uint};
use super::{Code, MAX_TOKEN_LEN, MessageType, PAYLOAD_MARKER, ValueError};

/// The fixed 4-byte header (RFC 7252 §3).
///
/// ```
/// use coap_proto::{Code, Message, MessageType};
/// let msg = Message::parse(&[0x41, 0x01, 0x7d, 0x34, 0x20])?;
/// let h = msg.header();
/// assert_eq!((h.version, h.ty, h.code, h.message_id, h.token_len),
///            (1, MessageType::Con, Code::GET, 0x7d34, 1));
/// # Ok::<(), coap_proto::ParseError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Header {
    /// The version field (1 for RFC 7252).
    pub version: u8,
    /// The message type.
    pub ty: MessageType,
    /// The code.
    pub code: Code,
    /// The message ID.
    pub message_id: u16,
    /// The TKL field as sent (it may be 9-15 in a malformed message).
    pub token_len: u8,
}

impl Header {
    /// Reads the fixed header from the first 4 bytes, without validating it.
    ///
    /// ```
    /// use coap_proto::{Header, MessageType};
    /// let h = Header::peek(&[0x50, 0x00, 0x00, 0x07]).unwrap();
    /// assert_eq!((h.ty, h.message_id), (MessageType::Non, 7));
    /// assert!(Header::peek(&[0x40]).is_none());
    /// ```
    #[must_use]
    #[inline]
    pub fn peek(buf: &[u8]) -> Option<Self> {
        let [b0, code, m0, m1, ..] = *buf else {
            return None;
        };
        Some(Self {
            version: b0 >> 6,
            ty: MessageType::from_bits(b0 >> 4),
            code: Code(code),
            message_id: u16::from_be_bytes([m0, m1]),
            token_len: b0 & 0x0f,
        })
    }
}

/// A validated CoAP message borrowing the datagram it was parsed from.
///
/// Created by [`Message::parse`], which checks every message format error of
/// RFC 7252 §3 once. Every accessor afterwards is infallible and returns
/// slices with the datagram's lifetime `'a`. `Message` is `Copy` and holds
/// no more than the datagram and its parts (a few slices and the 4 header
/// bytes), so that every accessor is a plain field read.
///
/// ```
/// use coap_proto::{Code, Message, MessageType, OptionNumber};
/// // RFC 7252 Appendix A, Figure 16: CON GET /temperature, MID 0x7d34, token 0x20.
/// let bytes = b"\x41\x01\x7d\x34\x20\xbbtemperature";
/// let msg = Message::parse(bytes)?;
/// assert_eq!(msg.ty(), MessageType::Con);
/// assert_eq!(msg.code(), Code::GET);
/// assert_eq!(msg.message_id(), 0x7d34);
/// assert_eq!(msg.token(), &[0x20]);
/// let opt = msg.options().next().unwrap();
/// assert_eq!((opt.number, opt.value), (OptionNumber::URI_PATH, &b"temperature"[..]));
/// assert!(msg.payload().is_empty());
/// # Ok::<(), coap_proto::ParseError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Message<'a> {
    /// The whole datagram.
    buf: &'a [u8],
    /// The fixed header (a copy of the first 4 bytes).
    head: [u8; 4],
    token: &'a [u8],
    /// The options region, between the token and the payload marker.
    options: &'a [u8],
    /// The payload after the marker, or empty.
    payload: &'a [u8],
}

/// Builds a parse error with the header. Inline, and the options' exact
/// walk ([`options_error`]) returns only a kind and an offset: a caller that
/// drops the error (`.ok()`) then needs no stack frame for it on the hot
/// path.
#[inline]
fn parse_error(buf: &[u8], kind: ParseErrorKind, offset: usize) -> ParseError {
    ParseError {
        kind,
        offset,
        header: Header::peek(buf),
    }
}

/// Reads an extended delta or length (§3.1) for `nibble` from the front of
/// `rest`. Returns the value and the remaining bytes, or `None` if the
/// extension bytes are missing. `nibble` must be below 15.
#[inline]
fn read_ext(nibble: u8, rest: &[u8]) -> Option<(usize, &[u8])> {
    match nibble {
        13 => {
            let (&b, rest) = rest.split_first()?;
            Some((13 + usize::from(b), rest))
        }
        14 => match *rest {
            [b0, b1, ref rest @ ..] => {
                Some((269 + usize::from(u16::from_be_bytes([b0, b1])), rest))
            }
            _ => None,
        },
        n => Some((usize::from(n), rest)),
    }
}

/// The option whose header byte `b` has just been read, with `after` the
/// bytes behind it: its delta, its value and what follows, or `None` on a
/// framing error (a reserved nibble 15, the payload marker included, or an
/// extension or value running past the end). The common headers (delta
/// below 13 with a length below 13 or a 1-byte length extension, and a
/// 1-byte delta extension with a length below 13: the Block, Size and other
/// options numbered above 12) have their own short paths. Shared by the
/// validating scan and the option iterator.
#[inline]
fn split_option(b: u8, after: &[u8]) -> Option<(usize, &[u8], &[u8])> {
    let (dn, ln) = (b >> 4, b & 0x0f);
    if dn < 13 && ln < 13 {
        let (value, rest) = after.split_at_checked(usize::from(ln))?;
        return Some((usize::from(dn), value, rest));
    }
    if dn < 13 && ln == 13 {
        let (&ext, after) = after.split_first()?;
        let (value, rest) = after.split_at_checked(13 + usize::from(ext))?;
        return Some((usize::from(dn), value, rest));
    }
    if dn == 13 && ln < 13 {
        let (&ext, after) = after.split_first()?;
        let (value, rest) = after.split_at_checked(usize::from(ln))?;
        return Some((13 + usize::from(ext), value, rest));
    }
    if dn == 15 || ln == 15 {
        return None;
    }
    let (delta, after) = read_ext(dn, after)?;
    let (len, after) = read_ext(ln, after)?;
    let (value, rest) = after.split_at_checked(len)?;
    Some((delta, value, rest))
}

/// The largest option number, as the type of [`scan_options`]' running sum.
const MAX_NUMBER: u64 = 0xffff;

/// The hot path of [`Message::parse`] and [`Message::parse_fold`]: checks
/// the options region at the start of `buf` (the datagram after the token)
/// in one pass and splits `buf` into the options region and the payload
/// (after the marker, or empty), or returns `None` if it is malformed in any
/// way. Each option is handed to `f` as the pass reaches it (with `()` and a
/// no-op for [`Message::parse`], which compiles to the bare check).
///
/// It only answers yes or no, which keeps the loop small: each option is
/// split by [`split_option`] (short paths for the common headers) and the
/// option number is checked against 65535 once, at the end. Which error
/// came first, and where, is then worked out by [`options_error`].
#[inline]
fn scan_options<'a, A>(
    buf: &'a [u8],
    mut acc: A,
    f: &mut impl FnMut(A, OptionRef<'a>) -> A,
) -> Option<(&'a [u8], &'a [u8], A)> {
    let mut rest = buf;
    // u64: the sum may run past 65535 (by at most 268 per option header
    // byte) before the final check, which must not wrap even on 32-bit
    // targets. Until then `f` may see a truncated number; its result is
    // dropped with the message.
    let mut number = 0u64;
    while let Some((&b, after)) = rest.split_first() {
        if b == PAYLOAD_MARKER {
            // An empty payload after the marker is an error.
            if number > MAX_NUMBER || after.is_empty() {
                return None;
            }
            // `after` is a suffix of `buf` after the marker.
            return Some((buf.get(..buf.len() - after.len() - 1)?, after, acc));
        }
        let (delta, value, after) = split_option(b, after)?;
        number += delta as u64;
        rest = after;
        acc = f(
            acc,
            OptionRef {
                number: OptionNumber(number as u16),
                value,
            },
        );
    }
    (number <= MAX_NUMBER).then_some((buf, &[], acc))
}

/// The first error in the options region of a datagram whose header and
/// token are valid, walking it one option at a time with every check in the
/// order of [`ParseErrorKind`]. Only called when [`scan_options`] rejected
/// the region, to name the error and its offset; [`scan_options`] alone
/// decides whether a datagram is accepted. The two agree (the property and
/// fuzz tests compare both with a reference model); should they not, the
/// datagram is still refused, with an error at the start of its options.
#[cold]
#[inline(never)]
fn options_error(buf: &[u8], options_start: usize) -> (ParseErrorKind, usize) {
    let fail = |kind: ParseErrorKind, offset: usize| (kind, offset);
    let mut rest = buf.get(options_start..).unwrap_or_default();
    let mut number = 0usize;
    loop {
        let pos = buf.len() - rest.len();
        let Some((&b, after)) = rest.split_first() else {
            return fail(ParseErrorKind::OptionHeaderTruncated, options_start);
        };
        if b == PAYLOAD_MARKER {
            if after.is_empty() {
                return fail(ParseErrorKind::EmptyPayload, pos);
            }
            return fail(ParseErrorKind::OptionHeaderTruncated, options_start);
        }
        let (dn, ln) = (b >> 4, b & 0x0f);
        if dn == 15 {
            return fail(ParseErrorKind::ReservedOptionDelta, pos);
        }
        if ln == 15 {
            return fail(ParseErrorKind::ReservedOptionLength, pos);
        }
        let Some((delta, after)) = read_ext(dn, after) else {
            return fail(ParseErrorKind::OptionHeaderTruncated, pos);
        };
        let Some((len, after)) = read_ext(ln, after) else {
            return fail(ParseErrorKind::OptionHeaderTruncated, pos);
        };
        number += delta;
        if number > usize::from(u16::MAX) {
            return fail(ParseErrorKind::OptionNumberOverflow, pos);
        }
        let Some(after) = after.get(len..) else {
            return fail(ParseErrorKind::OptionValueTruncated, pos);
        };
        rest = after;
    }
}

impl<'a> Message<'a> {
    /// Parses and validates a datagram.
    ///
    /// Rejects every message format error of RFC 7252 §3 and a non-empty
    /// Empty message (§4.1); see [`ParseErrorKind`] for the list and the
    /// order in which they are checked. Option values outside their
    /// registered length bounds are *not* format errors: see
    /// [`Message::invalid_options`].
    ///
    /// Parsing never allocates and never panics. A caller that reads every
    /// option of the message can have them in the same pass with
    /// [`Message::parse_fold`].
    ///
    /// ```
    /// use coap_proto::{Message, ParseErrorKind};
    /// assert!(Message::parse(&[0x40, 0x00, 0x00, 0x01]).is_ok()); // empty CON (ping)
    /// let err = Message::parse(&[0x40, 0x01, 0x00, 0x01, 0xff]).unwrap_err();
    /// assert_eq!((err.kind, err.offset), (ParseErrorKind::EmptyPayload, 4));
    /// ```
    #[inline]
    pub fn parse(buf: &'a [u8]) -> Result<Self, ParseError> {
        Self::parse_fold(buf, (), |(), _| ()).map(|(msg, ())| msg)
    }

    /// Parses and validates a datagram like [`Message::parse`], folding
    /// every option into `init` with `f` in the same pass.
    ///
    /// [`Message::parse`] followed by [`Message::options`] walks the options
    /// twice: once to validate, once to read. Each walk is a chain of
    /// dependent loads (where an option header starts depends on the length
    /// of every option before it), so a caller that reads every option of
    /// every datagram (a proxy, a cache key, a logger, a dispatcher that
    /// gathers the Uri-Path) pays that chain twice. `parse_fold` walks it
    /// once and hands each option to `f` as the validating pass reaches it.
    ///
    /// It accepts and rejects exactly the datagrams [`Message::parse`] does,
    /// with the same [`ParseError`]. The folded value is returned only with
    /// a valid message: when a datagram turns out malformed after some of
    /// its options were folded, the accumulator is dropped with the error.
    /// So a fold that keeps its state in the accumulator never acts on a
    /// malformed datagram; a closure that writes elsewhere (through a
    /// captured `&mut`) must discard what it wrote when an error comes back.
    ///
    /// ```
    /// use coap_proto::{Message, OptionNumber};
    /// // RFC 7252 Appendix A, Figure 16, then a request with two path segments.
    /// let (msg, options) = Message::parse_fold(b"\x41\x01\x7d\x34\x20\xbbtemperature", 0, |n, _| n + 1)?;
    /// assert_eq!((msg.message_id(), options), (0x7d34, 1));
    /// let (_, path_len) = Message::parse_fold(b"\x40\x01\x00\x01\xb1a\x03bcd", 0, |len, o| {
    ///     if o.number == OptionNumber::URI_PATH { len + 1 + o.value.len() } else { len }
    /// })?;
    /// assert_eq!(path_len, "/a/bcd".len());
    /// // A malformed datagram gives parse's error, and no accumulator.
    /// let err = Message::parse_fold(b"\x40\x01\x00\x01\xb1a\xff", 0, |n, _| n + 1).unwrap_err();
    /// assert_eq!(err, Message::parse(b"\x40\x01\x00\x01\xb1a\xff").unwrap_err());
    /// # Ok::<(), coap_proto::ParseError>(())
    /// ```
    #[inline]
    pub fn parse_fold<A>(
        buf: &'a [u8],
        init: A,
        mut f: impl FnMut(A, OptionRef<'a>) -> A,
    ) -> Result<(Self, A), ParseError> {
        let [b0, code, m0, m1, ..] = *buf else {
            return Err(ParseError {
                kind: ParseErrorKind::TooShort,
                offset: 0,
                header: None,
            });
        };
        let fail = |kind, offset| Err(parse_error(buf, kind, offset));
        if b0 >> 6 != super::VERSION {
            return fail(ParseErrorKind::UnsupportedVersion, 0);
        }
        let tkl = usize::from(b0 & 0x0f);
        if tkl > MAX_TOKEN_LEN {
            return fail(ParseErrorKind::InvalidTokenLength, 0);
        }
        if code == 0 && (tkl != 0 || buf.len() > 4) {
            return fail(ParseErrorKind::EmptyMessageNotEmpty, 4);
        }
        let Some((front, region)) = buf.split_at_checked(4 + tkl) else {
            return fail(ParseErrorKind::TokenTruncated, 4);
        };
        let Some((options, payload, acc)) = scan_options(region, init, &mut f) else {
            // Out of line: errors are rare, and only naming one needs the
            // slower walk.
            let (kind, offset) = options_error(buf, 4 + tkl);
            return fail(kind, offset);
        };
        Ok((
            Self {
                buf,
                head: [b0, code, m0, m1],
                token: front.get(4..).unwrap_or_default(),
                options,
                payload,
            },
            acc,
        ))
    }

    /// The layout offsets, to rebuild the view over the same bytes later
    /// without validating again (see [`Message::from_layout`]).
    #[cfg(feature = "alloc")]
    pub(crate) fn layout(&self) -> [usize; 3] {
        let options_start = 4 + self.token.len();
        [
            options_start,
            options_start + self.options.len(),
            self.buf.len() - self.payload.len(),
        ]
    }

    /// Rebuilds a view from [`Message::layout`] over the *same* bytes. The
    /// accessors stay infallible whatever the offsets are (they use checked
    /// slicing), so a mismatch could only give wrong fields, never a panic.
    #[cfg(feature = "alloc")]
    pub(crate) fn from_layout(buf: &'a [u8], layout: [usize; 3]) -> Self {
        let [options_start, options_end, payload_start] = layout;
        let head = match *buf {
            [b0, b1, b2, b3, ..] => [b0, b1, b2, b3],
            _ => [0; 4],
        };
        Self {
            buf,
            head,
            token: buf.get(4..options_start).unwrap_or_default(),
            options: buf.get(options_start..options_end).unwrap_or_default(),
            payload: buf.get(payload_start..).unwrap_or_default(),
        }
    }

    /// The fixed header.
    ///
    /// ```
    /// # use coap_proto::Message;
    /// let msg = Message::parse(&[0x60, 0x00, 0x00, 0x09])?;
    /// assert_eq!(msg.header().message_id, 9);
    /// # Ok::<(), coap_proto::ParseError>(())
    /// ```
    #[must_use]
    pub fn header(&self) -> Header {
        Header {
            version: super::VERSION,
            ty: self.ty(),
            code: self.code(),
            message_id: self.message_id(),
            token_len: self.token().len() as u8,
        }
    }

    /// The message type.
    ///
    /// ```
    /// # use coap_proto::{Message, MessageType};
    /// assert_eq!(Message::parse(&[0x70, 0, 0, 1])?.ty(), MessageType::Rst);
    /// # Ok::<(), coap_proto::ParseError>(())
    /// ```
    #[must_use]
    #[inline]
    pub fn ty(&self) -> MessageType {
        let [b0, ..] = self.head;
        MessageType::from_bits(b0 >> 4)
    }

    /// The code.
    ///
    /// ```
    /// # use coap_proto::{Code, Message};
    /// assert_eq!(Message::parse(&[0x60, 0x45, 0, 1])?.code(), Code::CONTENT);
    /// # Ok::<(), coap_proto::ParseError>(())
    /// ```
    #[must_use]
    #[inline]
    pub fn code(&self) -> Code {
        let [_, code, ..] = self.head;
        Code(code)
    }

    /// The message ID.
    ///
    /// ```
    /// # use coap_proto::Message;
    /// assert_eq!(Message::parse(&[0x60, 0x00, 0x12, 0x34])?.message_id(), 0x1234);
    /// # Ok::<(), coap_proto::ParseError>(())
    /// ```
    #[must_use]
    #[inline]
    pub fn message_id(&self) -> u16 {
        let [_, _, m0, m1] = self.head;
        u16::from_be_bytes([m0, m1])
    }

    /// The token, 0 to 8 bytes, borrowed from the datagram.
    ///
    /// ```
    /// # use coap_proto::Message;
    /// let msg = Message::parse(&[0x42, 0x01, 0, 1, 0xbe, 0xef])?;
    /// assert_eq!(msg.token(), &[0xbe, 0xef]);
    /// # Ok::<(), coap_proto::ParseError>(())
    /// ```
    #[must_use]
    #[inline]
    pub fn token(&self) -> &'a [u8] {
        self.token
    }

    /// The options, in wire order (ascending number; repeated options in the
    /// order they were sent).
    ///
    /// ```
    /// # use coap_proto::{Message, OptionNumber};
    /// let msg = Message::parse(b"\x40\x01\x00\x01\xb1a\x01b")?;
    /// let paths: Vec<_> = msg.options().map(|o| o.value).collect();
    /// assert_eq!(paths, [b"a", b"b"]);
    /// # Ok::<(), coap_proto::ParseError>(())
    /// ```
    #[must_use]
    #[inline]
    pub fn options(&self) -> Options<'a> {
        Options {
            rest: self.options,
            number: 0,
        }
    }

    /// The value of the first option with this number.
    ///
    /// ```
    /// # use coap_proto::{Message, OptionNumber};
    /// let msg = Message::parse(b"\x40\x01\x00\x01\xb4temp")?;
    /// assert_eq!(msg.option(OptionNumber::URI_PATH), Some(&b"temp"[..]));
    /// assert_eq!(msg.option(OptionNumber::ACCEPT), None);
    /// # Ok::<(), coap_proto::ParseError>(())
    /// ```
    #[must_use]
    pub fn option(&self, number: OptionNumber) -> Option<&'a [u8]> {
        self.options_of(number).next()
    }

    /// The values of every option with this number, in wire order.
    ///
    /// ```
    /// # use coap_proto::{Message, OptionNumber};
    /// let msg = Message::parse(b"\x40\x01\x00\x01\xb1a\x01b\x41\x32")?;
    /// let path: Vec<&[u8]> = msg.options_of(OptionNumber::URI_PATH).collect();
    /// assert_eq!(path, [b"a", b"b"]);
    /// # Ok::<(), coap_proto::ParseError>(())
    /// ```
    #[must_use]
    pub fn options_of(&self, number: OptionNumber) -> OptionsOf<'a> {
        OptionsOf {
            inner: self.options(),
            number,
        }
    }

    /// Whether an option with this number is present.
    ///
    /// ```
    /// # use coap_proto::{Message, OptionNumber};
    /// let msg = Message::parse(b"\x40\x01\x00\x01\x50")?; // If-None-Match (empty)
    /// assert!(msg.has_option(OptionNumber::IF_NONE_MATCH));
    /// # Ok::<(), coap_proto::ParseError>(())
    /// ```
    #[must_use]
    pub fn has_option(&self, number: OptionNumber) -> bool {
        self.option(number).is_some()
    }

    /// The payload (empty when there is none).
    ///
    /// ```
    /// # use coap_proto::Message;
    /// let msg = Message::parse(b"\x60\x45\x00\x01\xff22.3 C")?;
    /// assert_eq!(msg.payload(), b"22.3 C");
    /// # Ok::<(), coap_proto::ParseError>(())
    /// ```
    #[must_use]
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The whole datagram.
    ///
    /// ```
    /// # use coap_proto::Message;
    /// let bytes = [0x40, 0x00, 0x00, 0x01];
    /// assert_eq!(Message::parse(&bytes)?.as_bytes(), &bytes);
    /// # Ok::<(), coap_proto::ParseError>(())
    /// ```
    #[must_use]
    #[inline]
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// The encoded options region, between the token and the payload marker.
    ///
    /// ```
    /// # use coap_proto::Message;
    /// let msg = Message::parse(b"\x40\x01\x00\x01\xb1a\xffhi")?;
    /// assert_eq!(msg.options_bytes(), b"\xb1a");
    /// # Ok::<(), coap_proto::ParseError>(())
    /// ```
    #[must_use]
    #[inline]
    pub fn options_bytes(&self) -> &'a [u8] {
        self.options
    }

    /// Options that break the registry's rules: a value outside its length
    /// bounds (RFC 7252 §5.4.3) or a second occurrence of a non-repeatable
    /// option (§5.4.5). Unknown options are never reported here.
    ///
    /// The message itself is well-formed; what to do (ignore an elective
    /// option, reject a critical one with 4.02) is the receiver's decision
    /// (§5.4.1).
    ///
    /// ```
    /// use coap_proto::{Message, OptionNumber, message::OptionProblem};
    /// // A 5-byte Max-Age, then Accept twice.
    /// let msg = Message::parse(b"\x40\x01\x00\x01\xd5\x01\x01\x02\x03\x04\x05\x31\x28\x01\x29")?;
    /// let bad: Vec<_> = msg.invalid_options().map(|(o, p)| (o.number, p)).collect();
    /// assert_eq!(bad, [
    ///     (OptionNumber::MAX_AGE, OptionProblem::BadLength),
    ///     (OptionNumber::ACCEPT, OptionProblem::Repeated),
    /// ]);
    /// # Ok::<(), coap_proto::ParseError>(())
    /// ```
    pub fn invalid_options(&self) -> impl Iterator<Item = (OptionRef<'a>, OptionProblem)> + 'a {
        let mut previous: Option<OptionNumber> = None;
        self.options().filter_map(move |opt| {
            let repeated = previous == Some(opt.number);
            previous = Some(opt.number);
            Some((opt, opt.problem(repeated)?))
        })
    }

    /// The Content-Format option, if present and a valid uint.
    ///
    /// ```
    /// # use coap_proto::{ContentFormat, Message};
    /// let msg = Message::parse(b"\x60\x45\x00\x01\xc1\x32")?;
    /// assert_eq!(msg.content_format(), Some(ContentFormat::JSON));
    /// # Ok::<(), coap_proto::ParseError>(())
    /// ```
    #[must_use]
    pub fn content_format(&self) -> Option<ContentFormat> {
        self.typed(OptionNumber::CONTENT_FORMAT, OptionRef::as_content_format)
    }

    /// The Accept option, if present and a valid uint.
    ///
    /// ```
    /// # use coap_proto::{ContentFormat, Message};
    /// let msg = Message::parse(b"\x40\x01\x00\x01\xd1\x04\x28")?;
    /// assert_eq!(msg.accept(), Some(ContentFormat::LINK_FORMAT));
    /// # Ok::<(), coap_proto::ParseError>(())
    /// ```
    #[must_use]
    pub fn accept(&self) -> Option<ContentFormat> {
        self.typed(OptionNumber::ACCEPT, OptionRef::as_content_format)
    }

    /// The Observe option, if present and valid.
    ///
    /// ```
    /// # use coap_proto::{Message, Observe};
    /// let msg = Message::parse(b"\x40\x01\x00\x01\x60")?;
    /// assert_eq!(msg.observe(), Some(Observe::REGISTER));
    /// # Ok::<(), coap_proto::ParseError>(())
    /// ```
    #[must_use]
    pub fn observe(&self) -> Option<Observe> {
        self.typed(OptionNumber::OBSERVE, OptionRef::as_observe)
    }

    /// The Block1 option, if present and valid.
    ///
    /// ```
    /// # use coap_proto::{Block, Message};
    /// let msg = Message::parse(b"\x40\x03\x00\x01\xd1\x0e\x0e")?;
    /// assert_eq!(msg.block1(), Some(Block::new(0, true, 6)?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn block1(&self) -> Option<Block> {
        self.typed(OptionNumber::BLOCK1, OptionRef::as_block)
    }

    /// The Block2 option, if present and valid.
    ///
    /// ```
    /// # use coap_proto::{Block, Message};
    /// let msg = Message::parse(b"\x60\x45\x00\x01\xd1\x0a\x32")?;
    /// assert_eq!(msg.block2(), Some(Block::new(3, false, 2)?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn block2(&self) -> Option<Block> {
        self.typed(OptionNumber::BLOCK2, OptionRef::as_block)
    }

    /// The first value of a uint option, if present and a valid uint.
    ///
    /// ```
    /// # use coap_proto::{Message, OptionNumber};
    /// let msg = Message::parse(b"\x60\x45\x00\x01\xd1\x01\x3c")?;
    /// assert_eq!(msg.uint_option(OptionNumber::MAX_AGE), Some(60));
    /// # Ok::<(), coap_proto::ParseError>(())
    /// ```
    #[must_use]
    pub fn uint_option(&self, number: OptionNumber) -> Option<u32> {
        self.typed(number, OptionRef::as_uint)
    }

    fn typed<T>(
        &self,
        number: OptionNumber,
        f: impl FnOnce(&OptionRef<'a>) -> Result<T, ValueError>,
    ) -> Option<T> {
        let value = self.option(number)?;
        f(&OptionRef { number, value }).ok()
    }
}

/// Why [`Message::invalid_options`] reports an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OptionProblem {
    /// The value's length is outside the registered bounds (§5.4.3).
    BadLength,
    /// A non-repeatable option occurs again (§5.4.5).
    Repeated,
}

/// One option: its number and its raw value, borrowed from the datagram.
///
/// Typed access (`as_uint`, `as_str`, `as_block`, ...) checks the value then.
///
/// ```
/// use coap_proto::{OptionNumber, OptionRef};
/// let opt = OptionRef { number: OptionNumber::MAX_AGE, value: &[0x00, 0x3c] };
/// assert_eq!(opt.as_uint(), Ok(60)); // leading zeros are accepted (§3.2)
/// assert!(opt.is_len_valid());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OptionRef<'a> {
    /// The option number.
    pub number: OptionNumber,
    /// The raw value.
    pub value: &'a [u8],
}

impl<'a> OptionRef<'a> {
    /// The value as a uint (§3.2). Leading zero bytes are accepted; values
    /// longer than 4 significant bytes are [`ValueError::TooLong`].
    ///
    /// ```
    /// # use coap_proto::{OptionNumber, OptionRef};
    /// let opt = OptionRef { number: OptionNumber::SIZE2, value: &[0x01, 0x00] };
    /// assert_eq!(opt.as_uint(), Ok(256));
    /// ```
    pub fn as_uint(&self) -> Result<u32, ValueError> {
        decode_uint(self.value)
    }

    /// The value as UTF-8 text. Checked here, not at parse time.
    ///
    /// ```
    /// # use coap_proto::{OptionNumber, OptionRef, ValueError};
    /// let ok = OptionRef { number: OptionNumber::URI_PATH, value: "café".as_bytes() };
    /// assert_eq!(ok.as_str(), Ok("café"));
    /// let bad = OptionRef { number: OptionNumber::URI_PATH, value: &[0xff] };
    /// assert_eq!(bad.as_str(), Err(ValueError::InvalidUtf8));
    /// ```
    pub fn as_str(&self) -> Result<&'a str, ValueError> {
        core::str::from_utf8(self.value).map_err(|_| ValueError::InvalidUtf8)
    }

    /// The value as a Block1/Block2 option (RFC 7959 §2.2).
    ///
    /// ```
    /// # use coap_proto::{Block, OptionNumber, OptionRef};
    /// let opt = OptionRef { number: OptionNumber::BLOCK2, value: &[0x3e] };
    /// assert_eq!(opt.as_block()?, Block::new(3, true, 6)?);
    /// # Ok::<(), coap_proto::ValueError>(())
    /// ```
    pub fn as_block(&self) -> Result<Block, ValueError> {
        Block::from_value(self.value)
    }

    /// The value as an Observe sequence number (RFC 7641 §2).
    ///
    /// ```
    /// # use coap_proto::{Observe, OptionNumber, OptionRef};
    /// let opt = OptionRef { number: OptionNumber::OBSERVE, value: &[0x01, 0x00] };
    /// assert_eq!(opt.as_observe(), Ok(Observe(256)));
    /// ```
    pub fn as_observe(&self) -> Result<Observe, ValueError> {
        Observe::from_value(self.value)
    }

    /// The value as a Content-Format (for Content-Format and Accept).
    ///
    /// ```
    /// # use coap_proto::{ContentFormat, OptionNumber, OptionRef};
    /// let opt = OptionRef { number: OptionNumber::ACCEPT, value: &[] };
    /// assert_eq!(opt.as_content_format(), Ok(ContentFormat::TEXT_PLAIN));
    /// ```
    pub fn as_content_format(&self) -> Result<ContentFormat, ValueError> {
        ContentFormat::from_value(self.value)
    }

    /// What breaks the registry's rules for a registered option (see
    /// [`Message::invalid_options`]), `repeated` telling whether the option
    /// before it had the same number. `None` for a good or unknown option.
    pub(crate) fn problem(&self, repeated: bool) -> Option<OptionProblem> {
        let info = self.number.info()?;
        if repeated && !info.repeatable {
            Some(OptionProblem::Repeated)
        } else if !(usize::from(info.min_len)..=usize::from(info.max_len))
            .contains(&self.value.len())
        {
            Some(OptionProblem::BadLength)
        } else {
            None
        }
    }

    /// Whether the value's length is within the registered bounds (unknown
    /// options always pass).
    ///
    /// ```
    /// # use coap_proto::{OptionNumber, OptionRef};
    /// let opt = OptionRef { number: OptionNumber::URI_HOST, value: b"" };
    /// assert!(!opt.is_len_valid());
    /// ```
    #[must_use]
    pub fn is_len_valid(&self) -> bool {
        self.number.accepts_len(self.value.len())
    }
}

/// Iterator over a message's options in wire order; see [`Message::options`].
///
/// It walks the region [`Message::parse`] already validated, so it never
/// fails; on an impossible inconsistency it simply ends.
#[derive(Clone, Debug)]
pub struct Options<'a> {
    rest: &'a [u8],
    number: usize,
}

impl<'a> Options<'a> {
    /// Walks an options region that has not been validated by
    /// [`Message::parse`]; the iterator ends at the first framing error or
    /// payload marker. Useful for tools that inspect fragments.
    ///
    /// ```
    /// # use coap_proto::{OptionNumber, Options};
    /// let opts: Vec<_> = Options::new(b"\xb1a\x41\x32").map(|o| o.number).collect();
    /// assert_eq!(opts, [OptionNumber::URI_PATH, OptionNumber(15)]);
    /// ```
    #[must_use]
    pub fn new(region: &'a [u8]) -> Self {
        Self {
            rest: region,
            number: 0,
        }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = OptionRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<OptionRef<'a>> {
        let (&b, after) = self.rest.split_first()?;
        let next = split_option(b, after).and_then(|(delta, value, rest)| {
            Some((u16::try_from(self.number + delta).ok()?, value, rest))
        });
        let Some((n, value, rest)) = next else {
            // The payload marker, a framing error or an option number past
            // 65535 (only in a region `Options::new` was given).
            self.rest = &[];
            return None;
        };
        self.number = usize::from(n);
        self.rest = rest;
        Some(OptionRef {
            number: OptionNumber(n),
            value,
        })
    }
}

impl core::iter::FusedIterator for Options<'_> {}

/// Iterator over the values of one option number; see [`Message::options_of`].
#[derive(Clone, Debug)]
pub struct OptionsOf<'a> {
    inner: Options<'a>,
    number: OptionNumber,
}

impl<'a> Iterator for OptionsOf<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        for opt in self.inner.by_ref() {
            if opt.number == self.number {
                return Some(opt.value);
            }
            if opt.number > self.number {
                // Options are in ascending order: no later match is possible.
                self.inner.rest = &[];
                return None;
            }
        }
        None
    }
}

impl core::iter::FusedIterator for OptionsOf<'_> {}
