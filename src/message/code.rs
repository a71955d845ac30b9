//! Message types and codes (RFC 7252 §3, §12.1).

use core::fmt;

/// The 2-bit message type (RFC 7252 §3, §4).
///
/// All four values are defined, so this is a closed enum.
///
/// ```
/// use coap_proto::MessageType;
/// assert_eq!(MessageType::from_bits(0), MessageType::Con);
/// assert_eq!(MessageType::Ack.bits(), 2);
/// assert_eq!(MessageType::Rst.to_string(), "RST");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "_internal", derive(arbitrary::Arbitrary))]
pub enum MessageType {
    /// Confirmable: retransmitted until acknowledged (§4.2).
    Con,
    /// Non-confirmable (§4.3).
    Non,
    /// Acknowledgement (§4.2).
    Ack,
    /// Reset (§4.2, §4.3).
    Rst,
}

impl MessageType {
    /// Decodes the two low bits of `bits`.
    ///
    /// ```
    /// # use coap_proto::MessageType;
    /// assert_eq!(MessageType::from_bits(1), MessageType::Non);
    /// ```
    #[must_use]
    #[inline]
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 0b11 {
            0 => Self::Con,
            1 => Self::Non,
            2 => Self::Ack,
            _ => Self::Rst,
        }
    }

    /// The 2-bit wire value.
    ///
    /// ```
    /// # use coap_proto::MessageType;
    /// assert_eq!(MessageType::Rst.bits(), 3);
    /// ```
    #[must_use]
    #[inline]
    pub const fn bits(self) -> u8 {
        match self {
            Self::Con => 0,
            Self::Non => 1,
            Self::Ack => 2,
            Self::Rst => 3,
        }
    }

    /// The three-letter abbreviation used by RFC 7252 and Wireshark.
    ///
    /// ```
    /// # use coap_proto::MessageType;
    /// assert_eq!(MessageType::Con.as_str(), "CON");
    /// ```
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Con => "CON",
            Self::Non => "NON",
            Self::Ack => "ACK",
            Self::Rst => "RST",
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message code: a 3-bit class and a 5-bit detail, written `c.dd`
/// (RFC 7252 §3, §12.1).
///
/// `Code` is an open newtype: every one of the 256 values round-trips, and the
/// registered ones have named constants.
///
/// ```
/// use coap_proto::Code;
/// assert_eq!(Code::CONTENT.to_string(), "2.05 Content");
/// assert_eq!(Code::new(2, 5), Code::CONTENT);
/// assert!(Code::GET.is_request());
/// assert!(Code::NOT_FOUND.is_client_error());
/// assert_eq!(Code(0xfe).to_string(), "7.30");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "_internal", derive(arbitrary::Arbitrary))]
pub struct Code(pub u8);

macro_rules! codes {
    ($( $(#[$doc:meta])* $name:ident = ($class:literal, $detail:literal, $text:literal); )*) => {
        impl Code {
            $( $(#[$doc])* pub const $name: Code = Code::new($class, $detail); )*

            /// The registered name of this code ("Content", "GET"), if any.
            ///
            /// ```
            /// # use coap_proto::Code;
            /// assert_eq!(Code::CONTENT.name(), Some("Content"));
            /// assert_eq!(Code::new(2, 30).name(), None);
            /// ```
            #[must_use]
            pub const fn name(self) -> Option<&'static str> {
                match self {
                    $( Code::$name => Some($text), )*
                    _ => None,
                }
            }
        }
    };
}

codes! {
    /// 0.00: an Empty message (§4.1).
    EMPTY = (0, 0, "Empty");
    /// 0.01 GET (RFC 7252 §5.8.1).
    GET = (0, 1, "GET");
    /// 0.02 POST (RFC 7252 §5.8.2).
    POST = (0, 2, "POST");
    /// 0.03 PUT (RFC 7252 §5.8.3).
    PUT = (0, 3, "PUT");
    /// 0.04 DELETE (RFC 7252 §5.8.4).
    DELETE = (0, 4, "DELETE");
    /// 0.05 FETCH (RFC 8132).
    FETCH = (0, 5, "FETCH");
    /// 0.06 PATCH (RFC 8132).
    PATCH = (0, 6, "PATCH");
    /// 0.07 iPATCH (RFC 8132).
    IPATCH = (0, 7, "iPATCH");
    /// 2.01 Created (RFC 7252 §5.9.1.1).
    CREATED = (2, 1, "Created");
    /// 2.02 Deleted (RFC 7252 §5.9.1.2).
    DELETED = (2, 2, "Deleted");
    /// 2.03 Valid (RFC 7252 §5.9.1.3).
    VALID = (2, 3, "Valid");
    /// 2.04 Changed (RFC 7252 §5.9.1.4).
    CHANGED = (2, 4, "Changed");
    /// 2.05 Content (RFC 7252 §5.9.1.5).
    CONTENT = (2, 5, "Content");
    /// 2.31 Continue (RFC 7959 §2.9.1).
    CONTINUE = (2, 31, "Continue");
    /// 4.00 Bad Request (RFC 7252 §5.9.2.1).
    BAD_REQUEST = (4, 0, "Bad Request");
    /// 4.01 Unauthorized (RFC 7252 §5.9.2.2).
    UNAUTHORIZED = (4, 1, "Unauthorized");
    /// 4.02 Bad Option (RFC 7252 §5.9.2.3).
    BAD_OPTION = (4, 2, "Bad Option");
    /// 4.03 Forbidden (RFC 7252 §5.9.2.4).
    FORBIDDEN = (4, 3, "Forbidden");
    /// 4.04 Not Found (RFC 7252 §5.9.2.5).
    NOT_FOUND = (4, 4, "Not Found");
    /// 4.05 Method Not Allowed (RFC 7252 §5.9.2.6).
    METHOD_NOT_ALLOWED = (4, 5, "Method Not Allowed");
    /// 4.06 Not Acceptable (RFC 7252 §5.9.2.7).
    NOT_ACCEPTABLE = (4, 6, "Not Acceptable");
    /// 4.08 Request Entity Incomplete (RFC 7959 §2.9.2).
    REQUEST_ENTITY_INCOMPLETE = (4, 8, "Request Entity Incomplete");
    /// 4.09 Conflict (RFC 8132 §3.4).
    CONFLICT = (4, 9, "Conflict");
    /// 4.12 Precondition Failed (RFC 7252 §5.9.2.8).
    PRECONDITION_FAILED = (4, 12, "Precondition Failed");
    /// 4.13 Request Entity Too Large (RFC 7252 §5.9.2.9, RFC 7959 §2.9.3).
    REQUEST_ENTITY_TOO_LARGE = (4, 13, "Request Entity Too Large");
    /// 4.15 Unsupported Content-Format (RFC 7252 §5.9.2.10).
    UNSUPPORTED_CONTENT_FORMAT = (4, 15, "Unsupported Content-Format");
    /// 4.22 Unprocessable Entity (RFC 8132 §3.4).
    UNPROCESSABLE_ENTITY = (4, 22, "Unprocessable Entity");
    /// 4.29 Too Many Requests (RFC 8516).
    TOO_MANY_REQUESTS = (4, 29, "Too Many Requests");
    /// 5.00 Internal Server Error (RFC 7252 §5.9.3.1).
    INTERNAL_SERVER_ERROR = (5, 0, "Internal Server Error");
    /// 5.01 Not Implemented (RFC 7252 §5.9.3.2).
    NOT_IMPLEMENTED = (5, 1, "Not Implemented");
    /// 5.02 Bad Gateway (RFC 7252 §5.9.3.3).
    BAD_GATEWAY = (5, 2, "Bad Gateway");
    /// 5.03 Service Unavailable (RFC 7252 §5.9.3.4).
    SERVICE_UNAVAILABLE = (5, 3, "Service Unavailable");
    /// 5.04 Gateway Timeout (RFC 7252 §5.9.3.5).
    GATEWAY_TIMEOUT = (5, 4, "Gateway Timeout");
    /// 5.05 Proxying Not Supported (RFC 7252 §5.9.3.6).
    PROXYING_NOT_SUPPORTED = (5, 5, "Proxying Not Supported");
    /// 5.08 Hop Limit Reached (RFC 8768 §3).
    HOP_LIMIT_REACHED = (5, 8, "Hop Limit Reached");
}

impl Code {
    /// Builds a code from its class (0..=7) and detail (0..=31); higher bits
    /// are masked off.
    ///
    /// ```
    /// # use coap_proto::Code;
    /// assert_eq!(Code::new(4, 4), Code::NOT_FOUND);
    /// ```
    #[must_use]
    pub const fn new(class: u8, detail: u8) -> Self {
        Self(((class & 0x7) << 5) | (detail & 0x1f))
    }

    /// The class, the `c` in `c.dd`.
    ///
    /// ```
    /// # use coap_proto::Code;
    /// assert_eq!(Code::NOT_FOUND.class(), 4);
    /// ```
    #[must_use]
    pub const fn class(self) -> u8 {
        self.0 >> 5
    }

    /// The detail, the `dd` in `c.dd`.
    ///
    /// ```
    /// # use coap_proto::Code;
    /// assert_eq!(Code::NOT_FOUND.detail(), 4);
    /// ```
    #[must_use]
    pub const fn detail(self) -> u8 {
        self.0 & 0x1f
    }

    /// 0.00: the code of an Empty message.
    ///
    /// ```
    /// # use coap_proto::Code;
    /// assert!(Code::EMPTY.is_empty());
    /// ```
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Class 0 with a non-zero detail: a request method (§12.1.1).
    ///
    /// ```
    /// # use coap_proto::Code;
    /// assert!(Code::FETCH.is_request() && !Code::EMPTY.is_request());
    /// ```
    #[must_use]
    pub const fn is_request(self) -> bool {
        self.class() == 0 && self.0 != 0
    }

    /// Classes 2, 4 and 5: a response (§12.1.2). Classes 1, 3, 6 and 7 are
    /// reserved and neither requests nor responses.
    ///
    /// ```
    /// # use coap_proto::Code;
    /// assert!(Code::CONTENT.is_response() && !Code::new(3, 0).is_response());
    /// ```
    #[must_use]
    pub const fn is_response(self) -> bool {
        matches!(self.class(), 2 | 4 | 5)
    }

    /// Class 2.
    ///
    /// ```
    /// # use coap_proto::Code;
    /// assert!(Code::CHANGED.is_success());
    /// ```
    #[must_use]
    pub const fn is_success(self) -> bool {
        self.class() == 2
    }

    /// Class 4.
    ///
    /// ```
    /// # use coap_proto::Code;
    /// assert!(Code::BAD_OPTION.is_client_error());
    /// ```
    #[must_use]
    pub const fn is_client_error(self) -> bool {
        self.class() == 4
    }

    /// Class 5.
    ///
    /// ```
    /// # use coap_proto::Code;
    /// assert!(Code::SERVICE_UNAVAILABLE.is_server_error());
    /// ```
    #[must_use]
    pub const fn is_server_error(self) -> bool {
        self.class() == 5
    }
}

impl fmt::Display for Code {
    /// `c.dd`, followed by the registered name when there is one:
    /// `2.05 Content`, `0.01 GET`, `7.30`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.class(), self.detail())?;
        if let Some(name) = self.name() {
            write!(f, " {name}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code({self})")
    }
}

impl From<u8> for Code {
    fn from(v: u8) -> Self {
        Self(v)
    }
}

impl From<Code> for u8 {
    fn from(c: Code) -> Self {
        c.0
    }
}
