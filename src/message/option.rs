//! Option numbers and the option registry (RFC 7252 §5.4, §5.10, §12.2).

use core::fmt;

/// An option number (RFC 7252 §5.4.6).
///
/// An open newtype: unknown numbers round-trip untouched. Known numbers have
/// named constants and an entry in the registry ([`OptionNumber::info`]).
/// The critical, unsafe and NoCacheKey properties are derived from the number
/// itself, so they are known even for options this crate has never heard of.
///
/// ```
/// use coap_proto::OptionNumber;
/// assert!(OptionNumber::URI_PATH.is_critical());
/// assert!(OptionNumber::URI_PATH.is_unsafe());
/// assert!(!OptionNumber::ETAG.is_critical());
/// assert!(OptionNumber::SIZE1.is_no_cache_key());
/// assert_eq!(OptionNumber::URI_PATH.name(), Some("Uri-Path"));
/// assert_eq!(OptionNumber(65000).name(), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "_internal", derive(arbitrary::Arbitrary))]
pub struct OptionNumber(pub u16);

/// The value format of an option (RFC 7252 §3.2).
///
/// ```
/// use coap_proto::{OptionFormat, OptionNumber};
/// assert_eq!(OptionNumber::MAX_AGE.info().unwrap().format, OptionFormat::Uint);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OptionFormat {
    /// A zero-length value.
    Empty,
    /// An opaque byte sequence.
    Opaque,
    /// A non-negative integer in network byte order, leading zeros dropped.
    Uint,
    /// A UTF-8 string (Net-Unicode, RFC 5198).
    String,
}

/// What the registry knows about an option number.
///
/// ```
/// use coap_proto::OptionNumber;
/// let info = OptionNumber::ETAG.info().unwrap();
/// assert_eq!((info.min_len, info.max_len), (1, 8));
/// assert!(info.repeatable);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct OptionInfo {
    /// The registered name, as in the IANA registry ("Uri-Path").
    pub name: &'static str,
    /// The value format.
    pub format: OptionFormat,
    /// The shortest legal value, in bytes.
    pub min_len: u16,
    /// The longest legal value, in bytes.
    pub max_len: u16,
    /// Whether the option may occur more than once in a message (§5.4.5).
    pub repeatable: bool,
}

macro_rules! options {
    ($( $(#[$doc:meta])* $name:ident = $num:literal, $text:literal, $fmt:ident, $min:literal ..= $max:literal, $rep:literal; )*) => {
        impl OptionNumber {
            $( $(#[$doc])* pub const $name: OptionNumber = OptionNumber($num); )*

            /// The registry entry for this number, if it is a known option.
            ///
            /// ```
            /// # use coap_proto::OptionNumber;
            /// assert_eq!(OptionNumber::OBSERVE.info().unwrap().max_len, 3);
            /// assert!(OptionNumber(2048).info().is_none());
            /// ```
            #[must_use]
            pub const fn info(self) -> Option<OptionInfo> {
                match self.0 {
                    $( $num => Some(OptionInfo {
                        name: $text,
                        format: OptionFormat::$fmt,
                        min_len: $min,
                        max_len: $max,
                        repeatable: $rep,
                    }), )*
                    _ => None,
                }
            }

            /// Every option number in the registry, ascending.
            ///
            /// ```
            /// # use coap_proto::OptionNumber;
            /// assert!(OptionNumber::KNOWN.contains(&OptionNumber::BLOCK2));
            /// ```
            pub const KNOWN: &'static [OptionNumber] = &[$( OptionNumber($num), )*];
        }
    };
}

options! {
    /// If-Match (RFC 7252 §5.10.8.1): opaque 0-8, repeatable.
    IF_MATCH = 1, "If-Match", Opaque, 0..=8, true;
    /// Uri-Host (RFC 7252 §5.10.1): string 1-255.
    URI_HOST = 3, "Uri-Host", String, 1..=255, false;
    /// ETag (RFC 7252 §5.10.6): opaque 1-8, repeatable in requests.
    ETAG = 4, "ETag", Opaque, 1..=8, true;
    /// If-None-Match (RFC 7252 §5.10.8.2): empty.
    IF_NONE_MATCH = 5, "If-None-Match", Empty, 0..=0, false;
    /// Observe (RFC 7641 §2): uint 0-3.
    OBSERVE = 6, "Observe", Uint, 0..=3, false;
    /// Uri-Port (RFC 7252 §5.10.1): uint 0-2.
    URI_PORT = 7, "Uri-Port", Uint, 0..=2, false;
    /// Location-Path (RFC 7252 §5.10.7): string 0-255, repeatable.
    LOCATION_PATH = 8, "Location-Path", String, 0..=255, true;
    /// OSCORE (RFC 8613 §2): opaque 0-255.
    OSCORE = 9, "OSCORE", Opaque, 0..=255, false;
    /// Uri-Path (RFC 7252 §5.10.1): string 0-255, repeatable.
    URI_PATH = 11, "Uri-Path", String, 0..=255, true;
    /// Content-Format (RFC 7252 §5.10.3): uint 0-2.
    CONTENT_FORMAT = 12, "Content-Format", Uint, 0..=2, false;
    /// Max-Age (RFC 7252 §5.10.5): uint 0-4.
    MAX_AGE = 14, "Max-Age", Uint, 0..=4, false;
    /// Uri-Query (RFC 7252 §5.10.1): string 0-255, repeatable.
    URI_QUERY = 15, "Uri-Query", String, 0..=255, true;
    /// Hop-Limit (RFC 8768 §3): uint 1.
    HOP_LIMIT = 16, "Hop-Limit", Uint, 1..=1, false;
    /// Accept (RFC 7252 §5.10.4): uint 0-2.
    ACCEPT = 17, "Accept", Uint, 0..=2, false;
    /// Q-Block1 (RFC 9177 §4): uint 0-3.
    Q_BLOCK1 = 19, "Q-Block1", Uint, 0..=3, false;
    /// Location-Query (RFC 7252 §5.10.7): string 0-255, repeatable.
    LOCATION_QUERY = 20, "Location-Query", String, 0..=255, true;
    /// EDHOC (RFC 9668 §3.1): empty.
    EDHOC = 21, "EDHOC", Empty, 0..=0, false;
    /// Block2 (RFC 7959 §2.1): uint 0-3.
    BLOCK2 = 23, "Block2", Uint, 0..=3, false;
    /// Block1 (RFC 7959 §2.1): uint 0-3.
    BLOCK1 = 27, "Block1", Uint, 0..=3, false;
    /// Size2 (RFC 7959 §4): uint 0-4.
    SIZE2 = 28, "Size2", Uint, 0..=4, false;
    /// Q-Block2 (RFC 9177 §4): uint 0-3, repeatable.
    Q_BLOCK2 = 31, "Q-Block2", Uint, 0..=3, true;
    /// Proxy-Uri (RFC 7252 §5.10.2): string 1-1034.
    PROXY_URI = 35, "Proxy-Uri", String, 1..=1034, false;
    /// Proxy-Scheme (RFC 7252 §5.10.2): string 1-255.
    PROXY_SCHEME = 39, "Proxy-Scheme", String, 1..=255, false;
    /// Size1 (RFC 7252 §5.10.9): uint 0-4.
    SIZE1 = 60, "Size1", Uint, 0..=4, false;
    /// Echo (RFC 9175 §2.2.1): opaque 1-40.
    ECHO = 252, "Echo", Opaque, 1..=40, false;
    /// No-Response (RFC 7967 §2): uint 0-1.
    NO_RESPONSE = 258, "No-Response", Uint, 0..=1, false;
    /// Request-Tag (RFC 9175 §3.2.1): opaque 0-8, repeatable.
    REQUEST_TAG = 292, "Request-Tag", Opaque, 0..=8, true;
}

impl OptionNumber {
    /// Critical options must be understood by the recipient (odd numbers,
    /// RFC 7252 §5.4.1, §5.4.6).
    ///
    /// ```
    /// # use coap_proto::OptionNumber;
    /// assert!(OptionNumber(65001).is_critical() && !OptionNumber(65000).is_critical());
    /// ```
    #[must_use]
    pub const fn is_critical(self) -> bool {
        self.0 & 0x01 != 0
    }

    /// Elective options may be ignored when unknown (§5.4.1).
    ///
    /// ```
    /// # use coap_proto::OptionNumber;
    /// assert!(OptionNumber::CONTENT_FORMAT.is_elective());
    /// ```
    #[must_use]
    pub const fn is_elective(self) -> bool {
        !self.is_critical()
    }

    /// Unsafe-to-forward options must be understood by a proxy (bit 1,
    /// §5.4.2, §5.4.6).
    ///
    /// ```
    /// # use coap_proto::OptionNumber;
    /// assert!(OptionNumber::URI_HOST.is_unsafe() && !OptionNumber::ETAG.is_unsafe());
    /// ```
    #[must_use]
    pub const fn is_unsafe(self) -> bool {
        self.0 & 0x02 != 0
    }

    /// Safe-to-forward options are NoCacheKey when bits 2-4 are all set
    /// (§5.4.6). Unsafe options are never NoCacheKey.
    ///
    /// ```
    /// # use coap_proto::OptionNumber;
    /// assert!(OptionNumber::SIZE1.is_no_cache_key());
    /// assert!(OptionNumber::ECHO.is_no_cache_key());
    /// assert!(!OptionNumber::ETAG.is_no_cache_key());
    /// ```
    #[must_use]
    pub const fn is_no_cache_key(self) -> bool {
        !self.is_unsafe() && (self.0 & 0x1e) == 0x1c
    }

    /// The registered name, if any.
    ///
    /// ```
    /// # use coap_proto::OptionNumber;
    /// assert_eq!(OptionNumber::BLOCK2.name(), Some("Block2"));
    /// ```
    #[must_use]
    pub const fn name(self) -> Option<&'static str> {
        match self.info() {
            Some(info) => Some(info.name),
            None => None,
        }
    }

    /// Whether the registry allows this option more than once in a message.
    /// Unknown options count as not repeatable.
    ///
    /// ```
    /// # use coap_proto::OptionNumber;
    /// assert!(OptionNumber::URI_PATH.is_repeatable());
    /// assert!(!OptionNumber::ACCEPT.is_repeatable());
    /// ```
    #[must_use]
    pub const fn is_repeatable(self) -> bool {
        match self.info() {
            Some(info) => info.repeatable,
            None => false,
        }
    }

    /// Whether `len` is within this option's registered length bounds.
    /// Unknown options accept any length.
    ///
    /// ```
    /// # use coap_proto::OptionNumber;
    /// assert!(OptionNumber::ETAG.accepts_len(8));
    /// assert!(!OptionNumber::ETAG.accepts_len(9));
    /// assert!(!OptionNumber::ETAG.accepts_len(0));
    /// ```
    #[must_use]
    pub const fn accepts_len(self, len: usize) -> bool {
        match self.info() {
            Some(info) => len >= info.min_len as usize && len <= info.max_len as usize,
            None => true,
        }
    }

    /// Looks a registered option up by its name, ignoring ASCII case.
    ///
    /// ```
    /// # use coap_proto::OptionNumber;
    /// assert_eq!(OptionNumber::from_name("uri-path"), Some(OptionNumber::URI_PATH));
    /// ```
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::KNOWN
            .iter()
            .copied()
            .find(|n| n.name().is_some_and(|s| s.eq_ignore_ascii_case(name)))
    }
}

impl fmt::Display for OptionNumber {
    /// The registered name, or `#number` for unknown options.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "#{}", self.0),
        }
    }
}

impl fmt::Debug for OptionNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "OptionNumber({} {name})", self.0),
            None => write!(f, "OptionNumber({})", self.0),
        }
    }
}

impl From<u16> for OptionNumber {
    fn from(v: u16) -> Self {
        Self(v)
    }
}

impl From<OptionNumber> for u16 {
    fn from(n: OptionNumber) -> Self {
        n.0
    }
}
