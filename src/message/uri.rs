//! CoAP URIs (RFC 7252 §6, RFC 8323 §8): parsing `coap`, `coaps`,
//! `coap+tcp` and `coaps+tcp` URIs, decomposing them into Uri-Host,
//! Uri-Port, Uri-Path and Uri-Query options (RFC 7252 §6.4), and composing a
//! URI back from those options (§6.5).
//!
//! [`Uri::parse`] validates a URI once; afterwards every accessor is
//! infallible and borrows the input. [`Uri::options`] yields the request
//! options in ascending number order, percent-decoded and with dot-segments
//! removed, without allocating. [`write_uri`] goes the other way, into any
//! [`core::fmt::Write`].
//!
//! ```
//! use coap_proto::OptionNumber;
//! use coap_proto::message::uri::{Host, Scheme, Uri, write_uri};
//!
//! let uri = Uri::parse("coap://EXAMPLE.com:61616/%7Esensors/./temp?unit=C&raw")?;
//! let opts: Vec<_> = uri.options(None).collect();
//! let shown: Vec<_> = opts.iter().map(|o| (o.number().0, o.as_str().unwrap_or("<uint>"))).collect();
//! assert_eq!(shown, [(3, "example.com"), (11, "~sensors"), (11, "temp"), (15, "unit=C"), (15, "raw")]);
//!
//! // And back (§6.5): the destination's port is 61616, so no Uri-Port was needed.
//! let mut out = String::new();
//! let dest = "192.0.2.1".parse()?;
//! write_uri(&mut out, Scheme::Coap, Host::Ip(dest), 61616, opts.iter().map(|o| o.as_option_ref()))?;
//! assert_eq!(out, "coap://example.com:61616/~sensors/temp?unit=C&raw");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How the RFC text was read
//!
//! - **Destination.** §6.4 steps 5 and 7 compare the URI with the request's
//!   destination address and port. [`Uri::options`] takes the destination as
//!   an `Option<SocketAddr>`: with `Some`, Uri-Host is omitted only for an IP
//!   host equal to the destination address (IPv4-mapped IPv6 addresses
//!   compare equal to their IPv4 address), and Uri-Port only when the URI's
//!   port (explicit or the scheme's default) equals the destination port.
//!   `None` means "the request goes where the URI says" (the usual client
//!   case): Uri-Host only for registered names, and never Uri-Port. Omitting
//!   Uri-Port merely because it equals the scheme's default would be wrong
//!   when the destination port differs (a server takes a missing Uri-Port to
//!   be its own port, §5.10.1).
//! - **Host case.** §6.4 step 5 lowercases the host before percent-decoding
//!   it. This crate lowercases ASCII letters after decoding too, so that
//!   `%41` and `a` name the same host (RFC 3986 §6.2.2.1: hosts are
//!   case-insensitive) and decomposition is stable across a round trip.
//! - **IP hosts.** A host whose percent-decoded text is an IPv4address or a
//!   bracketed IPv6 address is that IP address, however it was spelled. When
//!   an IP host does go into Uri-Host, its value is the RFC 5952 text
//!   (`[2001:db8::1]`, brackets included), the normal form of §6.3. IPv6 zone
//!   identifiers (RFC 6874) and IPvFuture literals are rejected.
//! - **Dot-segments.** Percent-encoded dots count: `%2E` is `.` (RFC 3986
//!   §2.3, §6.2.2.2), so `/a/%2E%2E` resolves like `/a/..` (§6.4 step 2).
//!   This is what keeps every Uri-Path value from being `.` or `..`, which
//!   §5.10.1 forbids. For the same reason [`write_uri`] refuses such a
//!   Uri-Path: no URI decomposes into it.
//! - **Empty paths.** An empty path or `/` gives no Uri-Path (§6.4 step 8),
//!   also when it is what remains after removing dot-segments (`/a/..`). A
//!   trailing slash gives a final empty Uri-Path (`/a/` gives `a` and an
//!   empty value). In the
//!   other direction, a single empty Uri-Path composes to `/`, the same URI
//!   as no Uri-Path: a CoAP URI cannot tell them apart.
//! - **Queries.** `?` with nothing after it is a query with one empty
//!   argument, so it gives one empty Uri-Query (§6.4 step 9 splits the query
//!   on `&`). RFC 7252 Appendix B percent-encodes `/` in its last example;
//!   this crate follows the normative §6.5 step 8, which leaves `/` and `?`
//!   as they are. Both spellings decompose into the same options.
//! - **Composing hosts.** §6.5 step 2 percent-encodes only non-ASCII
//!   characters of Uri-Host and fails if the result is not a reg-name.
//!   [`write_uri`] percent-encodes every character outside the reg-name set
//!   instead (a Uri-Host of `a b` becomes `a%20b`, which decomposes back into
//!   `a b`), and fails only for values no URI host can carry: empty, over
//!   255 bytes, not UTF-8, or bracketed but not an IPv6 address. It writes
//!   hosts in lowercase.
//! - **Limits.** Every decoded host, path segment and query argument must be
//!   valid UTF-8 and at most 255 bytes (the option lengths of §5.10.1), also
//!   a segment that dot-segment removal would drop.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::option::OptionNumber;
use super::parse::OptionRef;
use super::value::{decode_uint, encode_uint};

/// The longest Uri-Host, Uri-Path or Uri-Query value (RFC 7252 §5.10.1).
const MAX_VALUE_LEN: usize = 255;

/// A CoAP URI scheme (RFC 7252 §6.1-6.2, RFC 8323 §8.1-8.2).
///
/// ```
/// use coap_proto::message::uri::Scheme;
/// assert_eq!(Scheme::Coaps.default_port(), 5684);
/// assert_eq!(Scheme::from_name("COAP+TCP"), Some(Scheme::CoapTcp));
/// assert!(Scheme::CoapsTcp.is_secure() && Scheme::CoapsTcp.is_reliable());
/// assert_eq!(Scheme::Coap.to_string(), "coap");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// `coap`: CoAP over UDP, default port 5683 (RFC 7252 §6.1).
    Coap,
    /// `coaps`: CoAP over DTLS, default port 5684 (RFC 7252 §6.2).
    Coaps,
    /// `coap+tcp`: CoAP over TCP, default port 5683 (RFC 8323 §8.1).
    CoapTcp,
    /// `coaps+tcp`: CoAP over TLS, default port 5684 (RFC 8323 §8.2).
    CoapsTcp,
}

impl Scheme {
    /// Every supported scheme.
    ///
    /// ```
    /// # use coap_proto::message::uri::Scheme;
    /// assert_eq!(Scheme::ALL.len(), 4);
    /// ```
    pub const ALL: &'static [Scheme] = &[Self::Coap, Self::Coaps, Self::CoapTcp, Self::CoapsTcp];

    /// The scheme name, lowercase, without the `:`.
    ///
    /// ```
    /// # use coap_proto::message::uri::Scheme;
    /// assert_eq!(Scheme::CoapsTcp.as_str(), "coaps+tcp");
    /// ```
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Coap => "coap",
            Self::Coaps => "coaps",
            Self::CoapTcp => "coap+tcp",
            Self::CoapsTcp => "coaps+tcp",
        }
    }

    /// The port assumed when a URI gives none: 5683, or 5684 for the secure
    /// schemes.
    ///
    /// ```
    /// # use coap_proto::message::uri::Scheme;
    /// assert_eq!(Scheme::CoapTcp.default_port(), 5683);
    /// ```
    #[must_use]
    pub const fn default_port(self) -> u16 {
        if self.is_secure() { 5684 } else { 5683 }
    }

    /// Whether the scheme requires (D)TLS.
    ///
    /// ```
    /// # use coap_proto::message::uri::Scheme;
    /// assert!(!Scheme::Coap.is_secure() && Scheme::Coaps.is_secure());
    /// ```
    #[must_use]
    pub const fn is_secure(self) -> bool {
        matches!(self, Self::Coaps | Self::CoapsTcp)
    }

    /// Whether the scheme runs over a reliable transport (TCP or TLS,
    /// RFC 8323) rather than UDP or DTLS.
    ///
    /// ```
    /// # use coap_proto::message::uri::Scheme;
    /// assert!(Scheme::CoapTcp.is_reliable() && !Scheme::Coaps.is_reliable());
    /// ```
    #[must_use]
    pub const fn is_reliable(self) -> bool {
        matches!(self, Self::CoapTcp | Self::CoapsTcp)
    }

    /// Looks a scheme up by name, ignoring ASCII case (RFC 3986 §3.1), for
    /// example the value of a Proxy-Scheme option.
    ///
    /// ```
    /// # use coap_proto::message::uri::Scheme;
    /// assert_eq!(Scheme::from_name("CoAPs"), Some(Scheme::Coaps));
    /// assert_eq!(Scheme::from_name("http"), None);
    /// ```
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|s| s.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The host of a URI, or a request's destination host.
///
/// `Name` holds a registered name as written in a URI, possibly with
/// percent-encodings and upper-case letters. The Uri-Host option carries
/// its decoded, lowercased form (see [`Uri::options`]).
///
/// ```
/// use coap_proto::message::uri::{Host, Uri};
/// use std::net::{IpAddr, Ipv6Addr};
/// assert_eq!(Uri::parse("coap://Example.com/")?.host(), Host::Name("Example.com"));
/// let host = Uri::parse("coap://[2001:db8::1]/")?.host();
/// assert_eq!(host, Host::Ip("2001:db8::1".parse()?));
/// assert_eq!(host.to_string(), "[2001:db8::1]");
/// assert_eq!(Host::from(IpAddr::V6(Ipv6Addr::LOCALHOST)).to_string(), "[::1]");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Host<'a> {
    /// An IPv4address or IP-literal (RFC 3986 §3.2.2).
    Ip(IpAddr),
    /// A reg-name (RFC 3986 §3.2.2), as written.
    Name(&'a str),
}

impl fmt::Display for Host<'_> {
    /// The host as it appears in a URI: IPv6 addresses in brackets and in
    /// RFC 5952 form, names as written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            Self::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
            Self::Name(n) => f.write_str(n),
        }
    }
}

impl From<IpAddr> for Host<'_> {
    fn from(ip: IpAddr) -> Self {
        Self::Ip(ip)
    }
}

impl From<Ipv4Addr> for Host<'_> {
    fn from(ip: Ipv4Addr) -> Self {
        Self::Ip(IpAddr::V4(ip))
    }
}

impl From<Ipv6Addr> for Host<'_> {
    fn from(ip: Ipv6Addr) -> Self {
        Self::Ip(IpAddr::V6(ip))
    }
}

/// Why [`Uri::parse`] refused a string.
///
/// ```
/// use coap_proto::message::uri::{Uri, UriErrorKind};
/// let err = Uri::parse("coap://h/a#top").unwrap_err();
/// assert_eq!((err.kind, err.offset), (UriErrorKind::Fragment, 10));
/// assert_eq!(err.kind.as_str(), "fragment");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UriErrorKind {
    /// Not an absolute URI: no scheme (a relative reference, RFC 7252 §6.4
    /// step 1).
    NotAbsolute,
    /// A scheme other than `coap`, `coaps`, `coap+tcp` and `coaps+tcp`
    /// (§6.4 step 3, RFC 8323 §8.6).
    UnsupportedScheme,
    /// No `//` authority after the scheme (§6.1).
    MissingAuthority,
    /// A userinfo (`user@`) component, which CoAP URIs do not have (§6.1).
    UserInfo,
    /// An empty host (§6.1), a character not allowed in a host, or an
    /// IP-literal that is not a plain IPv6 address (zone identifiers and
    /// IPvFuture are not supported).
    InvalidHost,
    /// A port that is not decimal digits or is above 65535.
    InvalidPort,
    /// A character not allowed in a path or query (RFC 3986 §3.3, §3.4).
    InvalidCharacter,
    /// A `%` not followed by two hexadecimal digits (RFC 3986 §2.1).
    InvalidPercentEncoding,
    /// A host, path segment or query argument longer than 255 bytes once
    /// decoded (the option length limit of RFC 7252 §5.10.1).
    TooLong,
    /// A host, path segment or query argument that does not decode to UTF-8
    /// (the options are strings, §5.10.1).
    NotUtf8,
    /// A fragment (`#...`), which a request URI must not have (§6.4 step 4).
    Fragment,
}

impl UriErrorKind {
    /// A stable `snake_case` name.
    ///
    /// ```
    /// # use coap_proto::message::uri::UriErrorKind;
    /// assert_eq!(UriErrorKind::InvalidPercentEncoding.as_str(), "invalid_percent_encoding");
    /// ```
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotAbsolute => "not_absolute",
            Self::UnsupportedScheme => "unsupported_scheme",
            Self::MissingAuthority => "missing_authority",
            Self::UserInfo => "user_info",
            Self::InvalidHost => "invalid_host",
            Self::InvalidPort => "invalid_port",
            Self::InvalidCharacter => "invalid_character",
            Self::InvalidPercentEncoding => "invalid_percent_encoding",
            Self::TooLong => "too_long",
            Self::NotUtf8 => "not_utf8",
            Self::Fragment => "fragment",
        }
    }
}

impl fmt::Display for UriErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A URI that [`Uri::parse`] refused: what is wrong and where.
///
/// `offset` is the byte index in the input of the faulty element: 0 for the
/// scheme, the offending character, the `%` of a bad escape, the `#` of a
/// fragment, or the first byte of a host, segment or argument that is too
/// long or not UTF-8.
///
/// ```
/// use coap_proto::message::uri::{Uri, UriErrorKind};
/// let err = Uri::parse("coap://h/a%zz").unwrap_err();
/// assert_eq!((err.kind, err.offset), (UriErrorKind::InvalidPercentEncoding, 10));
/// assert_eq!(err.to_string(), "invalid_percent_encoding at offset 10");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct UriError {
    /// What is wrong.
    pub kind: UriErrorKind,
    /// Where: a byte index into the parsed string.
    pub offset: usize,
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {}", self.kind, self.offset)
    }
}

impl core::error::Error for UriError {}

/// Why [`write_uri`] could not compose a URI from options (RFC 7252 §6.5).
///
/// ```
/// use coap_proto::{OptionNumber, OptionRef};
/// use coap_proto::message::uri::{ComposeError, Host, Scheme, write_uri};
/// let opts = [OptionRef { number: OptionNumber::URI_PATH, value: &[0xff] }];
/// let mut out = String::new();
/// let dest = Host::Ip("192.0.2.1".parse()?);
/// let err = write_uri(&mut out, Scheme::Coap, dest, 5683, opts).unwrap_err();
/// assert_eq!(err, ComposeError::InvalidValue { number: OptionNumber::URI_PATH });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ComposeError {
    /// The output (`core::fmt::Write`) failed.
    Write,
    /// The Uri-Host value, or the destination name, is empty, longer than
    /// 255 bytes, not UTF-8, or bracketed but not an IPv6 address (§6.5
    /// step 2).
    InvalidHost,
    /// The Uri-Port value is not a uint below 65536.
    InvalidPort,
    /// A Uri-Path or Uri-Query value that is not UTF-8 or is longer than 255
    /// bytes, or a Uri-Path of `.` or `..` (§5.10.1).
    InvalidValue {
        /// The option's number.
        number: OptionNumber,
    },
    /// A second Uri-Host or Uri-Port option (neither is repeatable).
    Repeated {
        /// The option's number.
        number: OptionNumber,
    },
    /// The Uri-* options are not in ascending number order.
    OutOfOrder {
        /// The number of the option that came too late.
        number: OptionNumber,
    },
}

impl fmt::Display for ComposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Write => f.write_str("the URI output failed"),
            Self::InvalidHost => f.write_str("invalid Uri-Host or destination host"),
            Self::InvalidPort => f.write_str("invalid Uri-Port"),
            Self::InvalidValue { number } => write!(f, "invalid {number} value"),
            Self::Repeated { number } => write!(f, "repeated {number} option"),
            Self::OutOfOrder { number } => write!(f, "{number} option out of order"),
        }
    }
}

impl core::error::Error for ComposeError {}

impl From<fmt::Error> for ComposeError {
    fn from(_: fmt::Error) -> Self {
        Self::Write
    }
}

/// One option decomposed from a URI: its number and its value, held inline
/// (no allocation, no borrow), as yielded by [`UriOptions`].
///
/// Uri-Host, Uri-Path and Uri-Query values are UTF-8 text; a Uri-Port value
/// is a minimally encoded uint.
///
/// ```
/// use coap_proto::OptionNumber;
/// use coap_proto::message::uri::Uri;
/// let uri = Uri::parse("coap://example.com:1234/caf%C3%A9")?;
/// let opts: Vec<_> = uri.options(None).collect();
/// assert_eq!(opts[0].number(), OptionNumber::URI_HOST);
/// assert_eq!(opts[1].number(), OptionNumber::URI_PATH);
/// assert_eq!(opts[1].as_str(), Some("café"));
/// assert_eq!(opts[1].as_bytes(), "café".as_bytes());
/// assert_eq!(opts[1].as_option_ref().value, "café".as_bytes());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy)]
pub struct UriOption {
    number: OptionNumber,
    len: u8,
    value: [u8; MAX_VALUE_LEN],
}

impl UriOption {
    fn empty(number: OptionNumber) -> Self {
        Self {
            number,
            len: 0,
            value: [0; MAX_VALUE_LEN],
        }
    }

    fn push(&mut self, b: u8) -> bool {
        match self.value.get_mut(usize::from(self.len)) {
            Some(slot) => {
                *slot = b;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    fn from_bytes(number: OptionNumber, bytes: &[u8]) -> Self {
        let mut o = Self::empty(number);
        for &b in bytes {
            if !o.push(b) {
                break;
            }
        }
        o
    }

    /// The percent-decoded form of `raw`, ASCII-lowercased if `lower`.
    fn decoded(number: OptionNumber, raw: &str, lower: bool) -> Self {
        let mut o = Self::empty(number);
        for b in Decoded::new(raw) {
            if !o.push(if lower { b.to_ascii_lowercase() } else { b }) {
                break;
            }
        }
        o
    }

    fn host(host: Host<'_>) -> Self {
        match host {
            Host::Ip(ip) => {
                let mut o = Self::empty(OptionNumber::URI_HOST);
                // At most 47 bytes ("[" + 45 + "]"): the buffer cannot fill.
                let _ = fmt::write(&mut o, format_args!("{}", Host::Ip(ip)));
                o
            }
            Host::Name(raw) => Self::decoded(OptionNumber::URI_HOST, raw, true),
        }
    }

    /// The option number: Uri-Host, Uri-Port, Uri-Path or Uri-Query.
    ///
    /// ```
    /// # use coap_proto::{OptionNumber, message::uri::Uri};
    /// let first = Uri::parse("coap://[::1]/x")?.options(None).next().unwrap();
    /// assert_eq!(first.number(), OptionNumber::URI_PATH);
    /// # Ok::<(), coap_proto::message::uri::UriError>(())
    /// ```
    #[must_use]
    pub fn number(&self) -> OptionNumber {
        self.number
    }

    /// The option value.
    ///
    /// ```
    /// # use coap_proto::message::uri::Uri;
    /// let uri = Uri::parse("coap://h:61616/")?;
    /// let dest = "[::1]:5683".parse()?;
    /// let port = uri.options(Some(dest)).nth(1).unwrap();
    /// assert_eq!(port.as_bytes(), &[0xf0, 0xb0]); // 61616, minimal uint
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.value.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// The value as text; `None` for Uri-Port, whose value is a uint.
    ///
    /// ```
    /// # use coap_proto::message::uri::Uri;
    /// let q = Uri::parse("coap://h/?a=%26")?.options(None).nth(1).unwrap();
    /// assert_eq!(q.as_str(), Some("a=&"));
    /// # Ok::<(), coap_proto::message::uri::UriError>(())
    /// ```
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        if self.number == OptionNumber::URI_PORT {
            return None;
        }
        core::str::from_utf8(self.as_bytes()).ok()
    }

    /// The option as an [`OptionRef`], for [`Encoder::option`] or
    /// [`write_uri`].
    ///
    /// [`Encoder::option`]: super::Encoder::option
    ///
    /// ```
    /// # use coap_proto::{OptionNumber, message::uri::Uri};
    /// let o = Uri::parse("coap://h/a")?.options(None).last().unwrap();
    /// assert_eq!(o.as_option_ref().number, OptionNumber::URI_PATH);
    /// assert_eq!(o.as_option_ref().value, b"a");
    /// # Ok::<(), coap_proto::message::uri::UriError>(())
    /// ```
    #[must_use]
    pub fn as_option_ref(&self) -> OptionRef<'_> {
        OptionRef {
            number: self.number,
            value: self.as_bytes(),
        }
    }
}

impl fmt::Write for UriOption {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if !self.push(b) {
                return Err(fmt::Error);
            }
        }
        Ok(())
    }
}

impl PartialEq for UriOption {
    fn eq(&self, other: &Self) -> bool {
        self.number == other.number && self.as_bytes() == other.as_bytes()
    }
}

impl Eq for UriOption {}

impl core::hash::Hash for UriOption {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.number.hash(state);
        self.as_bytes().hash(state);
    }
}

// `len` and the unused tail of `value` are shown as the value itself.
#[allow(clippy::missing_fields_in_debug)]
impl fmt::Debug for UriOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UriOption");
        d.field("number", &self.number);
        match (self.as_str(), decode_uint(self.as_bytes())) {
            (Some(s), _) => d.field("value", &s),
            (None, Ok(n)) => d.field("value", &n),
            (None, Err(_)) => d.field("value", &self.as_bytes()),
        };
        d.finish()
    }
}

/// An absolute `coap`, `coaps`, `coap+tcp` or `coaps+tcp` URI, validated
/// once and borrowed from the string it was parsed from.
///
/// Created by [`Uri::parse`]; every accessor afterwards is infallible. The
/// accessors return the components as written (percent-encoded); the options
/// from [`Uri::options`] are decoded.
///
/// ```
/// use coap_proto::message::uri::{Host, Scheme, Uri};
/// let uri = Uri::parse("coaps://[2001:db8::1]/.well-known/core?rt=temp")?;
/// assert_eq!(uri.scheme(), Scheme::Coaps);
/// assert_eq!(uri.host(), Host::Ip("2001:db8::1".parse()?));
/// assert_eq!(uri.port(), 5684);
/// assert_eq!(uri.path(), "/.well-known/core");
/// assert_eq!(uri.query(), Some("rt=temp"));
/// assert_eq!(uri.socket_addr(), Some("[2001:db8::1]:5684".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Uri<'a> {
    text: &'a str,
    scheme: Scheme,
    host: Host<'a>,
    port: u16,
    path: &'a str,
    query: Option<&'a str>,
    dot_dots: usize,
}

/// RFC 3986 §2.3.
const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 §2.2.
const fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// RFC 3986 §3.2.2 reg-name, less pct-encoded.
const fn is_reg_name_char(b: u8) -> bool {
    is_unreserved(b) || is_sub_delim(b)
}

/// RFC 3986 §3.3 pchar, less pct-encoded. Also what §6.5 step 6 leaves
/// unencoded in a path segment.
const fn is_pchar(b: u8) -> bool {
    is_unreserved(b) || is_sub_delim(b) || matches!(b, b':' | b'@')
}

/// RFC 3986 §3.4 query characters, less pct-encoded.
const fn is_query_char(b: u8) -> bool {
    is_pchar(b) || matches!(b, b'/' | b'?')
}

/// What §6.5 step 8 leaves unencoded in a query argument.
const fn is_query_arg_char(b: u8) -> bool {
    is_query_char(b) && b != b'&'
}

const fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes a string. A `%` that does not start a valid escape is
/// passed through (validated input never has one).
struct Decoded<'a>(core::slice::Iter<'a, u8>);

impl<'a> Decoded<'a> {
    fn new(s: &'a str) -> Self {
        Self(s.as_bytes().iter())
    }
}

impl Iterator for Decoded<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let b = *self.0.next()?;
        if b == b'%' {
            let mut look = self.0.clone();
            let hi = look.next().and_then(|&h| hex_val(h));
            let lo = look.next().and_then(|&l| hex_val(l));
            if let (Some(hi), Some(lo)) = (hi, lo) {
                self.0 = look;
                return Some((hi << 4) | lo);
            }
        }
        Some(b)
    }
}

/// Splits `scheme ":"` off the front, if `text` starts with a syntactically
/// valid scheme (RFC 3986 §3.1).
fn split_scheme(text: &str) -> Option<(&str, &str)> {
    let end = text.find([':', '/', '?', '#'])?;
    let (scheme, rest) = text.split_at_checked(end)?;
    let rest = rest.strip_prefix(':')?;
    let mut bytes = scheme.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic());
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    (first_ok && rest_ok).then_some((scheme, rest))
}

/// Classifies a decoded host: an IP address, a name, or an invalid
/// bracketed literal.
fn classify_host(decoded: &str) -> Result<Option<IpAddr>, ()> {
    if let Some(inner) = decoded.strip_prefix('[') {
        return inner
            .strip_suffix(']')
            .and_then(|v| v.parse::<Ipv6Addr>().ok())
            .map(|a| Some(IpAddr::V6(a)))
            .ok_or(());
    }
    Ok(decoded.parse::<Ipv4Addr>().ok().map(IpAddr::V4))
}

/// IPv4-mapped IPv6 addresses compare equal to their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

fn err<T>(kind: UriErrorKind, offset: usize) -> Result<T, UriError> {
    Err(UriError { kind, offset })
}

/// Checks a percent-escape at `bytes[i]` (which is `%`).
fn escape_at(bytes: &[u8], i: usize) -> Option<u8> {
    let hi = hex_val(*bytes.get(i + 1)?)?;
    let lo = hex_val(*bytes.get(i + 2)?)?;
    Some((hi << 4) | lo)
}

/// Validates the `sep`-separated items of a path or query: allowed
/// characters, escapes, and each decoded item at most 255 bytes of UTF-8.
/// `on_item` sees each raw item.
fn check_items<'s>(
    s: &'s str,
    base: usize,
    sep: char,
    allowed: fn(u8) -> bool,
    mut on_item: impl FnMut(&'s str),
) -> Result<(), UriError> {
    let mut buf = [0u8; MAX_VALUE_LEN];
    let mut start = base;
    for item in s.split(sep) {
        let bytes = item.as_bytes();
        let (mut i, mut len, mut too_long) = (0, 0, false);
        while let Some(&b) = bytes.get(i) {
            let byte = if b == b'%' {
                let Some(v) = escape_at(bytes, i) else {
                    return err(UriErrorKind::InvalidPercentEncoding, start + i);
                };
                i += 3;
                v
            } else if allowed(b) {
                i += 1;
                b
            } else {
                return err(UriErrorKind::InvalidCharacter, start + i);
            };
            match buf.get_mut(len) {
                Some(slot) => {
                    *slot = byte;
                    len += 1;
                }
                None => too_long = true,
            }
        }
        if too_long {
            return err(UriErrorKind::TooLong, start);
        }
        if core::str::from_utf8(buf.get(..len).unwrap_or_default()).is_err() {
            return err(UriErrorKind::NotUtf8, start);
        }
        on_item(item);
        start += item.len() + 1;
    }
    Ok(())
}

/// A raw host, and the raw port with its offset.
type HostPort<'s> = (&'s str, Option<(&'s str, usize)>);

/// Splits the authority into the raw host and the raw port (with its
/// offset), validating the host's characters.
fn split_host_port(authority: &str, base: usize) -> Result<HostPort<'_>, UriError> {
    let (host, after) = if let Some(inner) = authority.strip_prefix('[') {
        // IP-literal (RFC 3986 §3.2.2): only a plain IPv6address is supported.
        let Some(close) = inner.find(']') else {
            return err(UriErrorKind::InvalidHost, base);
        };
        let literal = inner.get(..close).unwrap_or_default();
        if let Some(i) = literal
            .bytes()
            .position(|b| !(b.is_ascii_hexdigit() || b == b':' || b == b'.'))
        {
            return err(UriErrorKind::InvalidHost, base + 1 + i);
        }
        let (host, after) = authority
            .split_at_checked(close + 2)
            .unwrap_or((authority, ""));
        (host, after)
    } else {
        let end = authority.find(':').unwrap_or(authority.len());
        let (host, after) = authority.split_at_checked(end).unwrap_or((authority, ""));
        let bytes = host.as_bytes();
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            if b == b'%' {
                if escape_at(bytes, i).is_none() {
                    return err(UriErrorKind::InvalidPercentEncoding, base + i);
                }
                i += 3;
            } else if is_reg_name_char(b) {
                i += 1;
            } else {
                return err(UriErrorKind::InvalidHost, base + i);
            }
        }
        (host, after)
    };
    if host.is_empty() {
        return err(UriErrorKind::InvalidHost, base);
    }
    if after.is_empty() {
        return Ok((host, None));
    }
    match after.strip_prefix(':') {
        Some(port) => Ok((host, Some((port, base + host.len() + 1)))),
        None => err(UriErrorKind::InvalidHost, base + host.len()),
    }
}

/// RFC 3986 §3.2.3: `port = *DIGIT`; empty means the default.
fn parse_port(port: &str, base: usize, default: u16) -> Result<u16, UriError> {
    if port.is_empty() {
        return Ok(default);
    }
    let mut n = 0u32;
    for (i, b) in port.bytes().enumerate() {
        if !b.is_ascii_digit() {
            return err(UriErrorKind::InvalidPort, base + i);
        }
        n = n.saturating_mul(10).saturating_add(u32::from(b - b'0'));
    }
    u16::try_from(n).or(err(UriErrorKind::InvalidPort, base))
}

/// Decodes and classifies a validated raw host.
fn check_host(raw: &str, base: usize) -> Result<Host<'_>, UriError> {
    let o = UriOption::decoded(OptionNumber::URI_HOST, raw, true);
    if Decoded::new(raw).nth(MAX_VALUE_LEN).is_some() {
        return err(UriErrorKind::TooLong, base);
    }
    let Some(decoded) = o.as_str() else {
        return err(UriErrorKind::NotUtf8, base);
    };
    match classify_host(decoded) {
        Ok(Some(ip)) => Ok(Host::Ip(ip)),
        Ok(None) => Ok(Host::Name(raw)),
        Err(()) => err(UriErrorKind::InvalidHost, base),
    }
}

impl<'a> Uri<'a> {
    /// Parses and validates an absolute CoAP URI.
    ///
    /// Checks, in order of appearance: an absolute URI (RFC 7252 §6.4,
    /// step 1) with a supported scheme, case-insensitive (step 3, RFC 8323
    /// §8.6); an authority with a non-empty host and no userinfo (§6.1); an
    /// IP-literal that is a plain IPv6 address; a port of at most 65535
    /// (empty means the default); only the characters RFC 3986 allows in each
    /// component, with valid percent-escapes; every decoded host, path
    /// segment and query argument at most 255 bytes of UTF-8 (§5.10.1); and
    /// no fragment (§6.4 step 4).
    ///
    /// Parsing never allocates and never panics.
    ///
    /// ```
    /// use coap_proto::message::uri::{Uri, UriErrorKind};
    /// assert!(Uri::parse("coap://example.com/temp").is_ok());
    /// assert_eq!(Uri::parse("/temp").unwrap_err().kind, UriErrorKind::NotAbsolute);
    /// assert_eq!(Uri::parse("http://h/").unwrap_err().kind, UriErrorKind::UnsupportedScheme);
    /// assert_eq!(Uri::parse("coap://h:65536/").unwrap_err().kind, UriErrorKind::InvalidPort);
    /// assert_eq!(Uri::parse("coap://[fe80::1%25eth0]/").unwrap_err().kind, UriErrorKind::InvalidHost);
    /// ```
    pub fn parse(text: &'a str) -> Result<Self, UriError> {
        let offset_of = |rest: &str| text.len() - rest.len();
        let Some((scheme, after_scheme)) = split_scheme(text) else {
            return err(UriErrorKind::NotAbsolute, 0);
        };
        let Some(scheme) = Scheme::from_name(scheme) else {
            return err(UriErrorKind::UnsupportedScheme, 0);
        };
        let Some(after_slashes) = after_scheme.strip_prefix("//") else {
            return err(UriErrorKind::MissingAuthority, offset_of(after_scheme));
        };
        let auth_start = offset_of(after_slashes);
        let auth_len = after_slashes
            .find(['/', '?', '#'])
            .unwrap_or(after_slashes.len());
        let (authority, rest) = after_slashes
            .split_at_checked(auth_len)
            .unwrap_or((after_slashes, ""));
        if let Some(at) = authority.find('@') {
            return err(UriErrorKind::UserInfo, auth_start + at);
        }
        let (host_raw, port) = split_host_port(authority, auth_start)?;
        let host = check_host(host_raw, auth_start)?;
        let port = match port {
            Some((p, at)) => parse_port(p, at, scheme.default_port())?,
            None => scheme.default_port(),
        };

        // path-abempty: empty or starting with '/', since the authority
        // ended at '/', '?', '#' or the end.
        let path_len = rest.find(['?', '#']).unwrap_or(rest.len());
        let (path, rest) = rest.split_at_checked(path_len).unwrap_or((rest, ""));
        let mut dot_dots = 0;
        if let Some(segments) = path.strip_prefix('/') {
            check_items(segments, offset_of(segments), '/', is_pchar, |seg| {
                if dot_segment(seg) == Some(Dot::Two) {
                    dot_dots += 1;
                }
            })?;
        }

        let (query, rest) = match rest.strip_prefix('?') {
            Some(q) => {
                let q_len = q.find('#').unwrap_or(q.len());
                let (q, rest) = q.split_at_checked(q_len).unwrap_or((q, ""));
                check_items(q, offset_of(q), '&', is_query_char, |_| {})?;
                (Some(q), rest)
            }
            None => (None, rest),
        };
        if !rest.is_empty() {
            // Whatever is left starts with '#'.
            return err(UriErrorKind::Fragment, offset_of(rest));
        }
        Ok(Self {
            text,
            scheme,
            host,
            port,
            path,
            query,
            dot_dots,
        })
    }

    /// The string this URI was parsed from.
    ///
    /// ```
    /// # use coap_proto::message::uri::Uri;
    /// assert_eq!(Uri::parse("coap://h/%7Ex")?.as_str(), "coap://h/%7Ex");
    /// # Ok::<(), coap_proto::message::uri::UriError>(())
    /// ```
    #[must_use]
    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// The scheme.
    ///
    /// ```
    /// # use coap_proto::message::uri::{Scheme, Uri};
    /// assert_eq!(Uri::parse("COAPS+TCP://h")?.scheme(), Scheme::CoapsTcp);
    /// # Ok::<(), coap_proto::message::uri::UriError>(())
    /// ```
    #[must_use]
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host: an IP address (also when percent-encoded, like
    /// `%31.2.3.4`), or a registered name as written.
    ///
    /// ```
    /// # use coap_proto::message::uri::{Host, Uri};
    /// assert_eq!(Uri::parse("coap://192.0.2.1")?.host(), Host::Ip("192.0.2.1".parse()?));
    /// assert_eq!(Uri::parse("coap://192.0.2.01")?.host(), Host::Name("192.0.2.01"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn host(&self) -> Host<'a> {
        self.host
    }

    /// The port: the explicit one, or the scheme's default when the URI has
    /// none or an empty one (RFC 7252 §6.1-6.2).
    ///
    /// ```
    /// # use coap_proto::message::uri::Uri;
    /// assert_eq!(Uri::parse("coap://h:1234/")?.port(), 1234);
    /// assert_eq!(Uri::parse("coap://h:/")?.port(), 5683);
    /// assert_eq!(Uri::parse("coaps://h/")?.port(), 5684);
    /// # Ok::<(), coap_proto::message::uri::UriError>(())
    /// ```
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path as written: empty or starting with `/`, still
    /// percent-encoded and with its dot-segments.
    ///
    /// ```
    /// # use coap_proto::message::uri::Uri;
    /// assert_eq!(Uri::parse("coap://h/a/../%62")?.path(), "/a/../%62");
    /// assert_eq!(Uri::parse("coap://h?x")?.path(), "");
    /// # Ok::<(), coap_proto::message::uri::UriError>(())
    /// ```
    #[must_use]
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The query as written, without the `?`; `None` when there is no `?`.
    ///
    /// ```
    /// # use coap_proto::message::uri::Uri;
    /// assert_eq!(Uri::parse("coap://h/?a&b=1")?.query(), Some("a&b=1"));
    /// assert_eq!(Uri::parse("coap://h/?")?.query(), Some(""));
    /// assert_eq!(Uri::parse("coap://h/")?.query(), None);
    /// # Ok::<(), coap_proto::message::uri::UriError>(())
    /// ```
    #[must_use]
    pub fn query(&self) -> Option<&'a str> {
        self.query
    }

    /// The address to send the request to, when the host is an IP address;
    /// a name has to be resolved first.
    ///
    /// ```
    /// # use coap_proto::message::uri::Uri;
    /// assert_eq!(Uri::parse("coap://192.0.2.1/")?.socket_addr(), Some("192.0.2.1:5683".parse()?));
    /// assert_eq!(Uri::parse("coap://example.com/")?.socket_addr(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self.host {
            Host::Ip(ip) => Some(SocketAddr::new(ip, self.port)),
            Host::Name(_) => None,
        }
    }

    /// The request options for this URI (RFC 7252 §6.4 steps 5-9), in
    /// ascending number order, without allocating:
    ///
    /// - **Uri-Host** (step 5), the decoded, lowercased host, unless the host
    ///   is an IP address equal to the destination's (with `destination`
    ///   `None`: unless the host is an IP address);
    /// - **Uri-Port** (steps 6-7), unless the port equals the destination's
    ///   (with `destination` `None`: never);
    /// - **Uri-Path** (step 8), one per segment after removing dot-segments
    ///   (RFC 3986 §5.2.4), decoded; none for an empty path or `/`;
    /// - **Uri-Query** (step 9), one per `&`-separated argument, decoded.
    ///
    /// `None` as the destination means the request goes to the host and port
    /// the URI names. See the [module documentation](self) for the reasoning.
    ///
    /// ```
    /// use coap_proto::OptionNumber;
    /// use coap_proto::message::uri::Uri;
    /// let uri = Uri::parse("coap://[2001:db8::1]:61616/a/./b/../c/?x=1&y")?;
    /// // Sent to the address the URI names: no Uri-Host, no Uri-Port.
    /// assert_eq!(uri.options(None).count(), 5);
    /// // Sent elsewhere (a proxy, say): both are needed.
    /// let opts: Vec<_> = uri.options(Some("[2001:db8::2]:5683".parse()?)).collect();
    /// let numbers: Vec<u16> = opts.iter().map(|o| o.number().0).collect();
    /// assert_eq!(numbers, [3, 7, 11, 11, 11, 15, 15]);
    /// assert_eq!(opts[0].as_str(), Some("[2001:db8::1]"));
    /// let path: Vec<_> = opts[2..5].iter().map(|o| o.as_str().unwrap()).collect();
    /// assert_eq!(path, ["a", "c", ""]); // the trailing '/' is an empty segment
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// The options come in number order, but a request usually has other
    /// options too, and an [`Encoder`](super::Encoder) needs them all in
    /// ascending order. Merge by number (or use `MessageBuf::set_uri`,
    /// feature `alloc`, which sorts):
    ///
    /// ```
    /// use coap_proto::{Code, Encoder, Message, MessageType, OptionNumber};
    /// use coap_proto::message::uri::Uri;
    /// let uri = Uri::parse("coap://sensor.example/temp?unit=C")?;
    /// let mut buf = [0u8; 64];
    /// let mut enc = Encoder::new(&mut buf, MessageType::Con, Code::GET, 1, &[7])?;
    /// let mine = [(OptionNumber::OBSERVE, &[][..]), (OptionNumber::ACCEPT, &[50][..])];
    /// let mut mine = mine.into_iter().peekable();
    /// for o in uri.options(None) {
    ///     while let Some((n, v)) = mine.next_if(|(n, _)| *n < o.number()) {
    ///         enc.option(n, v)?;
    ///     }
    ///     enc.option(o.number(), o.as_bytes())?;
    /// }
    /// for (n, v) in mine {
    ///     enc.option(n, v)?;
    /// }
    /// let len = enc.finish();
    /// let msg = Message::parse(&buf[..len])?;
    /// assert_eq!(msg.to_string(),
    ///     "CON GET mid=0x0001 tok=07 Uri-Host:sensor.example Observe:0 Uri-Path:temp Uri-Query:unit=C Accept:50");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn options(&self, destination: Option<SocketAddr>) -> UriOptions<'a> {
        let host = match (self.host, destination) {
            (Host::Name(_), _) => Some(self.host),
            (Host::Ip(_), None) => None,
            (Host::Ip(ip), Some(d)) => (canonical(ip) != canonical(d.ip())).then_some(self.host),
        };
        let port = destination.and_then(|d| (d.port() != self.port).then_some(self.port));
        UriOptions {
            host,
            port,
            stage: Stage::Host,
            path: self.path,
            dot_dots: self.dot_dots,
            pending: None,
            query: self.query,
        }
    }
}

impl<'a> TryFrom<&'a str> for Uri<'a> {
    type Error = UriError;

    fn try_from(text: &'a str) -> Result<Self, UriError> {
        Self::parse(text)
    }
}

impl fmt::Display for Uri<'_> {
    /// The URI as it was parsed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Host,
    Port,
    PathStart,
    Path,
    Query,
    Done,
}

/// Iterator over the options of a URI; see [`Uri::options`].
///
/// Removing dot-segments without allocating costs a partial rescan of the
/// path for each segment that a later `..` might remove. The whole walk is
/// linear in the URI length for a path without `..`; with `d` of them it is
/// at most `O(n * (d + 1))` for `n` segments (tens of milliseconds for a
/// 4 KiB path built to be slow). Bound the length of untrusted URIs; a
/// Proxy-Uri is at most 1034 bytes (RFC 7252 §5.10.2).
///
/// ```
/// # use coap_proto::message::uri::Uri;
/// let uri = Uri::parse("coap://h/a/b/../../../c")?;
/// let path: Vec<_> = uri.options(None).skip(1).map(|o| o.as_str().unwrap().to_owned()).collect();
/// assert_eq!(path, ["c"]);
/// # Ok::<(), coap_proto::message::uri::UriError>(())
/// ```
#[derive(Clone, Debug)]
pub struct UriOptions<'a> {
    host: Option<Host<'a>>,
    port: Option<u16>,
    stage: Stage,
    /// The path not yet walked: empty or starting with '/'.
    path: &'a str,
    /// The number of ".." segments in `path`.
    dot_dots: usize,
    /// A segment found while looking ahead.
    pending: Option<&'a str>,
    /// The query arguments not yet yielded.
    query: Option<&'a str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dot {
    One,
    Two,
}

/// Whether a raw path segment is `.` or `..`, also when percent-encoded
/// (`%2E` is `.`, RFC 3986 §2.3 and §6.2.2.2).
fn dot_segment(raw: &str) -> Option<Dot> {
    if raw.len() > 6 {
        return None;
    }
    let mut d = Decoded::new(raw);
    match (d.next(), d.next(), d.next()) {
        (Some(b'.'), None, _) => Some(Dot::One),
        (Some(b'.'), Some(b'.'), None) => Some(Dot::Two),
        _ => None,
    }
}

/// Splits the first segment off a path that is empty or starts with '/'.
fn split_segment(path: &str) -> Option<(&str, &str)> {
    let tail = path.strip_prefix('/')?;
    match tail.find('/') {
        Some(i) => tail.split_at_checked(i),
        None => Some((tail, "")),
    }
}

impl<'a> UriOptions<'a> {
    /// The next segment that survives dot-segment removal (RFC 3986 §5.2.4).
    ///
    /// A segment survives unless a later `..` pops it. Walking forward from
    /// the candidate with the stack depth relative to it, the candidate is
    /// safe once fewer `..` remain than the depth; a pop back to depth 0
    /// discards it. A final `.` or `..` leaves a trailing slash, i.e. an
    /// empty last segment.
    fn next_segment(&mut self) -> Option<&'a str> {
        let mut rest = self.path;
        let mut dot_dots = self.dot_dots;
        let mut depth = 0usize;
        let mut candidate: Option<(&'a str, &'a str, usize)> = None;
        loop {
            if let Some((seg, after, dd_after)) = candidate.filter(|_| dot_dots < depth) {
                self.path = after;
                self.dot_dots = dd_after;
                return Some(seg);
            }
            let Some((seg, after)) = split_segment(rest) else {
                break;
            };
            let kind = dot_segment(seg);
            let dot = kind == Some(Dot::One);
            let dot_dot = kind == Some(Dot::Two);
            rest = if (dot || dot_dot) && after.is_empty() {
                "/"
            } else {
                after
            };
            if dot {
                continue;
            }
            if dot_dot {
                dot_dots = dot_dots.saturating_sub(1);
                if depth > 0 {
                    depth -= 1;
                    if depth == 0 {
                        candidate = None;
                    }
                }
                continue;
            }
            depth += 1;
            if depth == 1 {
                candidate = Some((seg, rest, dot_dots));
            }
        }
        // Unreachable with an exact `..` count (the candidate is returned
        // above once none remain), but keep the walk total.
        if let Some((seg, after, dd_after)) = candidate {
            self.path = after;
            self.dot_dots = dd_after;
            return Some(seg);
        }
        self.path = "";
        self.dot_dots = 0;
        None
    }
}

impl Iterator for UriOptions<'_> {
    type Item = UriOption;

    fn next(&mut self) -> Option<UriOption> {
        let path = |seg| UriOption::decoded(OptionNumber::URI_PATH, seg, false);
        loop {
            match self.stage {
                Stage::Host => {
                    self.stage = Stage::Port;
                    if let Some(host) = self.host {
                        return Some(UriOption::host(host));
                    }
                }
                Stage::Port => {
                    self.stage = Stage::PathStart;
                    if let Some(port) = self.port {
                        let value = encode_uint(u32::from(port));
                        return Some(UriOption::from_bytes(OptionNumber::URI_PORT, &value));
                    }
                }
                Stage::PathStart => {
                    self.stage = Stage::Path;
                    match self.next_segment() {
                        // A path of "/" (what remains) gives no Uri-Path
                        // (§6.4 step 8); "//" gives two empty ones.
                        Some("") => {
                            if let Some(second) = self.next_segment() {
                                self.pending = Some(second);
                                return Some(path(""));
                            }
                        }
                        Some(seg) => return Some(path(seg)),
                        None => {}
                    }
                }
                Stage::Path => {
                    if let Some(seg) = self.pending.take().or_else(|| self.next_segment()) {
                        return Some(path(seg));
                    }
                    self.stage = Stage::Query;
                }
                Stage::Query => {
                    let Some(query) = self.query else {
                        self.stage = Stage::Done;
                        continue;
                    };
                    let (arg, rest) = match query.split_once('&') {
                        Some((arg, rest)) => (arg, Some(rest)),
                        None => (query, None),
                    };
                    self.query = rest;
                    return Some(UriOption::decoded(OptionNumber::URI_QUERY, arg, false));
                }
                Stage::Done => return None,
            }
        }
    }
}

impl core::iter::FusedIterator for UriOptions<'_> {}

/// Writes `value`, percent-encoding (uppercase hex) every byte of every
/// character whose first byte `keep` refuses.
fn write_encoded<W: fmt::Write + ?Sized>(
    out: &mut W,
    value: &str,
    keep: fn(u8) -> bool,
) -> fmt::Result {
    let mut rest = value;
    while !rest.is_empty() {
        let run = rest.bytes().position(|b| !keep(b)).unwrap_or(rest.len());
        // `keep` accepts ASCII only, so `run` is a character boundary.
        let (plain, tail) = rest.split_at_checked(run).unwrap_or((rest, ""));
        out.write_str(plain)?;
        let Some(c) = tail.chars().next() else {
            break;
        };
        let mut utf8 = [0u8; 4];
        for b in c.encode_utf8(&mut utf8).bytes() {
            write!(out, "%{b:02X}")?;
        }
        rest = tail.get(c.len_utf8()..).unwrap_or_default();
    }
    Ok(())
}

/// Writes a decoded host value (a Uri-Host value) as a URI host: an IP
/// address in RFC 5952 form, or a lowercased, percent-encoded reg-name
/// (RFC 7252 §6.5 step 2).
fn write_host_value<W: fmt::Write + ?Sized>(out: &mut W, value: &[u8]) -> Result<(), ComposeError> {
    if value.is_empty() || value.len() > MAX_VALUE_LEN {
        return Err(ComposeError::InvalidHost);
    }
    let mut lower = UriOption::from_bytes(OptionNumber::URI_HOST, value);
    lower
        .value
        .iter_mut()
        .for_each(|b| *b = b.to_ascii_lowercase());
    let Some(text) = lower.as_str() else {
        return Err(ComposeError::InvalidHost);
    };
    match classify_host(text) {
        Ok(Some(ip)) => write!(out, "{}", Host::Ip(ip))?,
        Ok(None) => write_encoded(out, text, is_reg_name_char)?,
        Err(()) => return Err(ComposeError::InvalidHost),
    }
    Ok(())
}

fn write_authority<W: fmt::Write + ?Sized>(
    out: &mut W,
    scheme: Scheme,
    uri_host: Option<&[u8]>,
    destination: Host<'_>,
    port: u16,
) -> Result<(), ComposeError> {
    // §6.5 steps 2-3.
    match (uri_host, destination) {
        (Some(value), _) => write_host_value(out, value)?,
        (None, Host::Ip(ip)) => write!(out, "{}", Host::Ip(ip))?,
        (None, Host::Name(raw)) => {
            let mut value = UriOption::empty(OptionNumber::URI_HOST);
            for b in Decoded::new(raw) {
                if !value.push(b) {
                    return Err(ComposeError::InvalidHost);
                }
            }
            write_host_value(out, value.as_bytes())?;
        }
    }
    // §6.5 steps 4-5.
    if port != scheme.default_port() {
        write!(out, ":{port}")?;
    }
    Ok(())
}

/// Composes the URI of a request from its options and destination
/// (RFC 7252 §6.5, RFC 8323 §8.7), writing it to `out`.
///
/// `options` may be all of a message's options (other numbers are
/// skipped), for instance [`Message::options`](super::Message::options) or
/// `MessageBuf::options`; the Uri-* options
/// among them must be in ascending order. `scheme` says how the request
/// travels (§6.5 step 1). `destination` and `destination_port` stand in for
/// a missing Uri-Host and Uri-Port (steps 2 and 4); a [`Host::Name`] is
/// taken as written in a URI.
///
/// The result is in the normal form of §6.3: lowercase host, IP addresses
/// in RFC 5952 form, no default port, `/` for an empty path, uppercase
/// percent-encoding of exactly the characters §6.5 steps 6 and 8 require,
/// A Uri-Host value outside the reg-name characters is percent-encoded
/// rather than refused. A Uri-Path of `.` or `..` (forbidden by §5.10.1) is
/// refused, since no URI decomposes into it.
///
/// On error, `out` may hold part of a URI.
///
/// ```
/// use coap_proto::{OptionNumber, OptionRef};
/// use coap_proto::message::uri::{Host, Scheme, write_uri};
/// // RFC 7252 Appendix B, fourth example.
/// let opts = [
///     OptionRef { number: OptionNumber::URI_HOST, value: b"xn--18j4d.example" },
///     OptionRef { number: OptionNumber::URI_PATH, value: "こんにちは".as_bytes() },
/// ];
/// let mut out = String::new();
/// write_uri(&mut out, Scheme::Coap, Host::Ip("2001:db8::2:1".parse()?), 5683, opts)?;
/// assert_eq!(out, "coap://xn--18j4d.example/%E3%81%93%E3%82%93%E3%81%AB%E3%81%A1%E3%81%AF");
///
/// // From a parsed message, sent to [2001:db8::2:1]:61616 over DTLS.
/// let msg = coap_proto::Message::parse(b"\x40\x01\x00\x01\xb1a\x01/\x43x&y")?;
/// let mut out = String::new();
/// write_uri(&mut out, Scheme::Coaps, Host::Ip("2001:db8::2:1".parse()?), 61616, msg.options())?;
/// assert_eq!(out, "coaps://[2001:db8::2:1]:61616/a/%2F?x%26y");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_uri<'o, W: fmt::Write + ?Sized>(
    out: &mut W,
    scheme: Scheme,
    destination: Host<'_>,
    destination_port: u16,
    options: impl IntoIterator<Item = OptionRef<'o>>,
) -> Result<(), ComposeError> {
    out.write_str(scheme.as_str())?;
    out.write_str("://")?;
    let mut uri_host: Option<&[u8]> = None;
    let mut port: Option<u16> = None;
    let mut authority_done = false;
    let mut path_written = false;
    let mut queries = 0usize;
    let mut last = OptionNumber(0);
    for opt in options {
        let number = opt.number;
        if !matches!(
            number,
            OptionNumber::URI_HOST
                | OptionNumber::URI_PORT
                | OptionNumber::URI_PATH
                | OptionNumber::URI_QUERY
        ) {
            continue;
        }
        if number < last {
            return Err(ComposeError::OutOfOrder { number });
        }
        if number == last && !number.is_repeatable() {
            return Err(ComposeError::Repeated { number });
        }
        last = number;
        match number {
            OptionNumber::URI_HOST => uri_host = Some(opt.value),
            OptionNumber::URI_PORT => {
                let p = decode_uint(opt.value)
                    .ok()
                    .and_then(|p| u16::try_from(p).ok());
                port = Some(p.ok_or(ComposeError::InvalidPort)?);
            }
            _ => {
                let text = core::str::from_utf8(opt.value)
                    .ok()
                    .filter(|t| t.len() <= MAX_VALUE_LEN)
                    .filter(|t| number != OptionNumber::URI_PATH || !matches!(*t, "." | ".."))
                    .ok_or(ComposeError::InvalidValue { number })?;
                if !authority_done {
                    let p = port.unwrap_or(destination_port);
                    write_authority(out, scheme, uri_host, destination, p)?;
                    authority_done = true;
                }
                if number == OptionNumber::URI_PATH {
                    // §6.5 step 6.
                    out.write_char('/')?;
                    write_encoded(out, text, is_pchar)?;
                    path_written = true;
                } else {
                    // §6.5 steps 7-8.
                    if !path_written && queries == 0 {
                        out.write_char('/')?;
                    }
                    out.write_char(if queries == 0 { '?' } else { '&' })?;
                    write_encoded(out, text, is_query_arg_char)?;
                    queries += 1;
                }
            }
        }
    }
    if !authority_done {
        let p = port.unwrap_or(destination_port);
        write_authority(out, scheme, uri_host, destination, p)?;
    }
    if !path_written && queries == 0 {
        out.write_char('/')?;
    }
    Ok(())
}

/// [`write_uri`] into a new `String` (feature `alloc`).
///
/// ```
/// use coap_proto::{Code, MessageBuf, MessageType};
/// use coap_proto::message::uri::{Host, Scheme, Uri, to_uri_string};
/// let mut req = MessageBuf::new(MessageType::Con, Code::GET);
/// req.set_uri(&Uri::parse("coap://Example.com/a%20b?q")?, None);
/// let dest = Host::Ip("192.0.2.7".parse()?);
/// assert_eq!(to_uri_string(Scheme::Coap, dest, 5683, req.options())?, "coap://example.com/a%20b?q");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "alloc")]
pub fn to_uri_string<'o>(
    scheme: Scheme,
    destination: Host<'_>,
    destination_port: u16,
    options: impl IntoIterator<Item = OptionRef<'o>>,
) -> Result<alloc::string::String, ComposeError> {
    let mut out = alloc::string::String::new();
    write_uri(&mut out, scheme, destination, destination_port, options)?;
    Ok(out)
}

#[cfg(feature = "alloc")]
impl super::MessageBuf {
    /// Replaces the Uri-Host, Uri-Port, Uri-Path and Uri-Query options with
    /// those of `uri` for a request to `destination` (see [`Uri::options`]).
    /// Other options are kept.
    ///
    /// ```
    /// use coap_proto::{Code, MessageBuf, MessageType, OptionNumber};
    /// use coap_proto::message::uri::Uri;
    /// let mut req = MessageBuf::new(MessageType::Con, Code::GET);
    /// req.add_option_uint(OptionNumber::ACCEPT, 50);
    /// req.add_option(OptionNumber::URI_PATH, "old");
    /// req.set_uri(&Uri::parse("coap://[::1]:5683/.well-known/core")?, Some("[::1]:5683".parse()?));
    /// assert_eq!(req.to_string(), "CON GET mid=0x0000 Uri-Path:.well-known Uri-Path:core Accept:50");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_uri(&mut self, uri: &Uri<'_>, destination: Option<SocketAddr>) -> &mut Self {
        for n in [
            OptionNumber::URI_HOST,
            OptionNumber::URI_PORT,
            OptionNumber::URI_PATH,
            OptionNumber::URI_QUERY,
        ] {
            self.remove_option(n);
        }
        for o in uri.options(destination) {
            self.add_option(o.number(), o.as_bytes());
        }
        self
    }
}
