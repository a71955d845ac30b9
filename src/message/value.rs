//! Typed option values: uint (RFC 7252 §3.2), Block (RFC 7959 §2.2),
//! Observe (RFC 7641 §2) and Content-Format (RFC 7252 §12.3).

use core::fmt;

use super::ValueError;

/// Decodes a uint option value (RFC 7252 §3.2): big-endian, any length.
///
/// Leading zero bytes are accepted ("a sender SHOULD represent the integer
/// with as few bytes as possible", so a receiver tolerates more). The empty
/// value is 0. A value with more than four significant bytes is
/// [`ValueError::TooLong`].
///
/// ```
/// use coap_proto::{decode_uint, ValueError};
/// assert_eq!(decode_uint(&[]), Ok(0));
/// assert_eq!(decode_uint(&[0x00, 0x00, 0x32]), Ok(50));
/// assert_eq!(decode_uint(&[1, 0, 0, 0, 0]), Err(ValueError::TooLong));
/// ```
pub fn decode_uint(value: &[u8]) -> Result<u32, ValueError> {
    let mut n: u32 = 0;
    for &b in value {
        if n > 0x00ff_ffff {
            return Err(ValueError::TooLong);
        }
        n = (n << 8) | u32::from(b);
    }
    Ok(n)
}

/// The minimal encoding of a uint (RFC 7252 §3.2): no leading zero bytes, and
/// 0 as the empty value.
///
/// ```
/// use coap_proto::encode_uint;
/// assert_eq!(encode_uint(0).as_ref(), &[] as &[u8]);
/// assert_eq!(encode_uint(60).as_ref(), &[60]);
/// assert_eq!(encode_uint(0x1_0000).as_ref(), &[1, 0, 0]);
/// ```
#[must_use]
#[inline]
pub fn encode_uint(n: u32) -> UintBytes {
    let bytes = n.to_be_bytes();
    let skip = (n.leading_zeros() / 8) as u8;
    UintBytes { bytes, skip }
}

/// A minimally encoded uint, as returned by [`encode_uint`]. Derefs to the
/// significant bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UintBytes {
    bytes: [u8; 4],
    skip: u8,
}

impl AsRef<[u8]> for UintBytes {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self.bytes.get(usize::from(self.skip)..).unwrap_or_default()
    }
}

impl core::ops::Deref for UintBytes {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_ref()
    }
}

/// A Block1 or Block2 option value (RFC 7959 §2.2): block number `NUM`, the
/// more flag `M` and the size exponent `SZX` (block size `2^(SZX+4)`).
///
/// ```
/// use coap_proto::Block;
/// let b = Block::new(3, true, 6)?;
/// assert_eq!(b.size(), 1024);
/// assert_eq!(b.offset(), 3072);
/// assert_eq!(b.to_uint(), 0x3e);
/// assert_eq!(Block::from_value(&[0x3e])?, b);
/// assert_eq!(b.to_string(), "3/1/1024");
/// # Ok::<(), coap_proto::ValueError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Block {
    num: u32,
    more: bool,
    szx: u8,
}

impl Block {
    /// The largest block number: 20 bits (RFC 7959 §2.2).
    pub const MAX_NUM: u32 = (1 << 20) - 1;

    /// Builds a block value. `szx` must be 0..=6 (7 is reserved) and `num`
    /// at most [`Block::MAX_NUM`].
    ///
    /// ```
    /// # use coap_proto::{Block, ValueError};
    /// assert_eq!(Block::new(0, false, 7), Err(ValueError::ReservedSzx));
    /// assert_eq!(Block::new(1 << 20, false, 0), Err(ValueError::OutOfRange));
    /// ```
    pub const fn new(num: u32, more: bool, szx: u8) -> Result<Self, ValueError> {
        if szx > 6 {
            return Err(if szx == 7 {
                ValueError::ReservedSzx
            } else {
                ValueError::OutOfRange
            });
        }
        if num > Self::MAX_NUM {
            return Err(ValueError::OutOfRange);
        }
        Ok(Self { num, more, szx })
    }

    /// Decodes an option value (a uint of at most 3 bytes).
    ///
    /// ```
    /// # use coap_proto::{Block, ValueError};
    /// assert_eq!(Block::from_value(&[])?, Block::new(0, false, 0)?);
    /// assert_eq!(Block::from_value(&[0, 0, 0, 0x10]), Err(ValueError::TooLong));
    /// # Ok::<(), ValueError>(())
    /// ```
    pub fn from_value(value: &[u8]) -> Result<Self, ValueError> {
        if value.len() > 3 {
            return Err(ValueError::TooLong);
        }
        Self::from_uint(decode_uint(value)?)
    }

    /// Decodes the option's integer value `NUM << 4 | M << 3 | SZX`.
    ///
    /// ```
    /// # use coap_proto::Block;
    /// assert_eq!(Block::from_uint(0x12)?.num(), 1);
    /// # Ok::<(), coap_proto::ValueError>(())
    /// ```
    pub const fn from_uint(v: u32) -> Result<Self, ValueError> {
        Self::new(v >> 4, v & 0x8 != 0, (v & 0x7) as u8)
    }

    /// The integer value `NUM << 4 | M << 3 | SZX`; encode it with
    /// [`encode_uint`].
    ///
    /// ```
    /// # use coap_proto::Block;
    /// assert_eq!(Block::new(1, false, 2)?.to_uint(), 0x12);
    /// # Ok::<(), coap_proto::ValueError>(())
    /// ```
    #[must_use]
    pub const fn to_uint(self) -> u32 {
        (self.num << 4) | ((self.more as u32) << 3) | self.szx as u32
    }

    /// The block number.
    ///
    /// ```
    /// # use coap_proto::Block;
    /// assert_eq!(Block::new(7, false, 0)?.num(), 7);
    /// # Ok::<(), coap_proto::ValueError>(())
    /// ```
    #[must_use]
    pub const fn num(self) -> u32 {
        self.num
    }

    /// The more flag.
    ///
    /// ```
    /// # use coap_proto::Block;
    /// assert!(Block::new(0, true, 0)?.more());
    /// # Ok::<(), coap_proto::ValueError>(())
    /// ```
    #[must_use]
    pub const fn more(self) -> bool {
        self.more
    }

    /// The size exponent, 0..=6.
    ///
    /// ```
    /// # use coap_proto::Block;
    /// assert_eq!(Block::new(0, false, 6)?.szx(), 6);
    /// # Ok::<(), coap_proto::ValueError>(())
    /// ```
    #[must_use]
    pub const fn szx(self) -> u8 {
        self.szx
    }

    /// The block size in bytes, 16..=1024.
    ///
    /// ```
    /// # use coap_proto::Block;
    /// assert_eq!(Block::new(0, false, 0)?.size(), 16);
    /// # Ok::<(), coap_proto::ValueError>(())
    /// ```
    #[must_use]
    pub const fn size(self) -> usize {
        1 << (self.szx + 4)
    }

    /// The byte offset of this block in the body: `num * size`.
    ///
    /// ```
    /// # use coap_proto::Block;
    /// assert_eq!(Block::new(2, false, 2)?.offset(), 128);
    /// # Ok::<(), coap_proto::ValueError>(())
    /// ```
    #[must_use]
    pub const fn offset(self) -> usize {
        (self.num as usize) << (self.szx + 4)
    }

    /// The SZX for a block size (a power of two in 16..=1024).
    ///
    /// ```
    /// # use coap_proto::Block;
    /// assert_eq!(Block::szx_for_size(64), Some(2));
    /// assert_eq!(Block::szx_for_size(100), None);
    /// ```
    #[must_use]
    pub const fn szx_for_size(size: usize) -> Option<u8> {
        if size.is_power_of_two() && size >= 16 && size <= 1024 {
            Some((size.trailing_zeros() - 4) as u8)
        } else {
            None
        }
    }
}

impl fmt::Display for Block {
    /// `NUM/M/SIZE`, as Wireshark and libcoap print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.num, u8::from(self.more), self.size())
    }
}

/// An Observe option value (RFC 7641 §2): a 24-bit number. In a request, 0
/// registers and 1 deregisters; in a notification it is a sequence number.
///
/// ```
/// use coap_proto::Observe;
/// assert_eq!(Observe::from_value(&[0x12, 0x34, 0x56])?, Observe(0x12_3456));
/// assert!(Observe::from_value(&[1, 0, 0, 0]).is_err());
/// assert_eq!(Observe(5).next(), Observe(6));
/// assert_eq!(Observe(0xff_ffff).next(), Observe(0));
/// # Ok::<(), coap_proto::ValueError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Observe(pub u32);

impl Observe {
    /// Observe:0 in a GET: register (RFC 7641 §2).
    pub const REGISTER: Observe = Observe(0);
    /// Observe:1 in a GET: deregister (RFC 7641 §2).
    pub const DEREGISTER: Observe = Observe(1);
    /// The largest value: 2^24 - 1.
    pub const MAX: u32 = 0x00ff_ffff;

    /// Decodes an option value of at most 3 bytes.
    ///
    /// ```
    /// # use coap_proto::Observe;
    /// assert_eq!(Observe::from_value(&[])?, Observe::REGISTER);
    /// # Ok::<(), coap_proto::ValueError>(())
    /// ```
    pub fn from_value(value: &[u8]) -> Result<Self, ValueError> {
        if value.len() > 3 {
            return Err(ValueError::TooLong);
        }
        decode_uint(value).map(Observe)
    }

    /// The next sequence number, modulo 2^24.
    ///
    /// ```
    /// # use coap_proto::Observe;
    /// assert_eq!(Observe(1).next(), Observe(2));
    /// ```
    #[must_use]
    pub const fn next(self) -> Self {
        Observe((self.0 + 1) & Self::MAX)
    }

    /// The value masked to 24 bits.
    ///
    /// ```
    /// # use coap_proto::Observe;
    /// assert_eq!(Observe(0x0100_0002).value(), 2);
    /// ```
    #[must_use]
    pub const fn value(self) -> u32 {
        self.0 & Self::MAX
    }
}

/// A Content-Format identifier (RFC 7252 §12.3), also used by Accept.
///
/// An open newtype with named constants for registered formats and their
/// media types in both directions.
///
/// ```
/// use coap_proto::ContentFormat;
/// assert_eq!(ContentFormat::JSON.media_type(), Some("application/json"));
/// assert_eq!(ContentFormat::from_media_type("application/link-format"), Some(ContentFormat::LINK_FORMAT));
/// assert_eq!(ContentFormat::from_media_type("text/plain; charset=utf-8"), Some(ContentFormat::TEXT_PLAIN));
/// assert_eq!(ContentFormat(65000).media_type(), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentFormat(pub u16);

macro_rules! formats {
    ($( $(#[$doc:meta])* $name:ident = $num:literal, $media:literal, $coding:expr; )*) => {
        impl ContentFormat {
            $( $(#[$doc])* pub const $name: ContentFormat = ContentFormat($num); )*

            /// Every registered format this crate knows, ascending.
            pub const KNOWN: &'static [ContentFormat] = &[$( ContentFormat($num), )*];

            /// The media type (with parameters) of a registered format.
            ///
            /// ```
            /// # use coap_proto::ContentFormat;
            /// assert_eq!(ContentFormat::TEXT_PLAIN.media_type(), Some("text/plain;charset=utf-8"));
            /// ```
            #[must_use]
            pub const fn media_type(self) -> Option<&'static str> {
                match self.0 {
                    $( $num => Some($media), )*
                    _ => None,
                }
            }

            /// The content coding of a registered format, if it has one
            /// ("deflate" for 11050 and 11060).
            ///
            /// ```
            /// # use coap_proto::ContentFormat;
            /// assert_eq!(ContentFormat::JSON_DEFLATE.content_coding(), Some("deflate"));
            /// assert_eq!(ContentFormat::JSON.content_coding(), None);
            /// ```
            #[must_use]
            pub const fn content_coding(self) -> Option<&'static str> {
                match self.0 {
                    $( $num => $coding, )*
                    _ => None,
                }
            }
        }
    };
}

formats! {
    /// 0: text/plain;charset=utf-8 (RFC 7252 §12.3).
    TEXT_PLAIN = 0, "text/plain;charset=utf-8", None;
    /// 16: application/cose; cose-type="cose-encrypt0" (RFC 9052).
    COSE_ENCRYPT0 = 16, "application/cose;cose-type=\"cose-encrypt0\"", None;
    /// 17: application/cose; cose-type="cose-mac0" (RFC 9052).
    COSE_MAC0 = 17, "application/cose;cose-type=\"cose-mac0\"", None;
    /// 18: application/cose; cose-type="cose-sign1" (RFC 9052).
    COSE_SIGN1 = 18, "application/cose;cose-type=\"cose-sign1\"", None;
    /// 40: application/link-format (RFC 6690).
    LINK_FORMAT = 40, "application/link-format", None;
    /// 41: application/xml (RFC 3023).
    XML = 41, "application/xml", None;
    /// 42: application/octet-stream (RFC 2045).
    OCTET_STREAM = 42, "application/octet-stream", None;
    /// 47: application/exi.
    EXI = 47, "application/exi", None;
    /// 50: application/json (RFC 8259).
    JSON = 50, "application/json", None;
    /// 51: application/json-patch+json (RFC 8132).
    JSON_PATCH = 51, "application/json-patch+json", None;
    /// 52: application/merge-patch+json (RFC 8132).
    MERGE_PATCH = 52, "application/merge-patch+json", None;
    /// 60: application/cbor (RFC 8949).
    CBOR = 60, "application/cbor", None;
    /// 61: application/cwt (RFC 8392).
    CWT = 61, "application/cwt", None;
    /// 62: application/multipart-core (RFC 8710).
    MULTIPART_CORE = 62, "application/multipart-core", None;
    /// 63: application/cbor-seq (RFC 8742).
    CBOR_SEQ = 63, "application/cbor-seq", None;
    /// 96: application/cose; cose-type="cose-encrypt" (RFC 9052).
    COSE_ENCRYPT = 96, "application/cose;cose-type=\"cose-encrypt\"", None;
    /// 97: application/cose; cose-type="cose-mac" (RFC 9052).
    COSE_MAC = 97, "application/cose;cose-type=\"cose-mac\"", None;
    /// 98: application/cose; cose-type="cose-sign" (RFC 9052).
    COSE_SIGN = 98, "application/cose;cose-type=\"cose-sign\"", None;
    /// 101: application/cose-key (RFC 9052).
    COSE_KEY = 101, "application/cose-key", None;
    /// 102: application/cose-key-set (RFC 9052).
    COSE_KEY_SET = 102, "application/cose-key-set", None;
    /// 110: application/senml+json (RFC 8428).
    SENML_JSON = 110, "application/senml+json", None;
    /// 111: application/sensml+json (RFC 8428).
    SENSML_JSON = 111, "application/sensml+json", None;
    /// 112: application/senml+cbor (RFC 8428).
    SENML_CBOR = 112, "application/senml+cbor", None;
    /// 113: application/sensml+cbor (RFC 8428).
    SENSML_CBOR = 113, "application/sensml+cbor", None;
    /// 256: application/coap-group+json (RFC 7390).
    COAP_GROUP_JSON = 256, "application/coap-group+json", None;
    /// 11050: application/json with the deflate content coding.
    JSON_DEFLATE = 11050, "application/json", Some("deflate");
    /// 11060: application/cbor with the deflate content coding.
    CBOR_DEFLATE = 11060, "application/cbor", Some("deflate");
    /// 11542: application/vnd.oma.lwm2m+tlv (OMA LwM2M).
    LWM2M_TLV = 11542, "application/vnd.oma.lwm2m+tlv", None;
    /// 11543: application/vnd.oma.lwm2m+json (OMA LwM2M).
    LWM2M_JSON = 11543, "application/vnd.oma.lwm2m+json", None;
    /// 11544: application/vnd.oma.lwm2m+cbor (OMA LwM2M).
    LWM2M_CBOR = 11544, "application/vnd.oma.lwm2m+cbor", None;
}

/// Compares media types ignoring ASCII case and whitespace around `;` and `=`.
fn media_eq(a: &str, b: &str) -> bool {
    let mut a = a.bytes().filter(|c| !c.is_ascii_whitespace());
    let mut b = b.bytes().filter(|c| !c.is_ascii_whitespace());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(&y) => {}
            _ => return false,
        }
    }
}

impl ContentFormat {
    /// Decodes a Content-Format or Accept option value (a uint of at most
    /// 2 significant bytes).
    ///
    /// ```
    /// # use coap_proto::ContentFormat;
    /// assert_eq!(ContentFormat::from_value(&[0x00, 0x28])?, ContentFormat::LINK_FORMAT);
    /// assert!(ContentFormat::from_value(&[1, 0, 0]).is_err());
    /// # Ok::<(), coap_proto::ValueError>(())
    /// ```
    pub fn from_value(value: &[u8]) -> Result<Self, ValueError> {
        u16::try_from(decode_uint(value)?)
            .map(ContentFormat)
            .map_err(|_| ValueError::OutOfRange)
    }

    /// Looks up a registered format by media type, ignoring case and
    /// whitespace. A content coding is given as `type@coding`
    /// (`application/json@deflate`), as aiocoap writes it.
    ///
    /// ```
    /// # use coap_proto::ContentFormat;
    /// assert_eq!(ContentFormat::from_media_type("Application/JSON"), Some(ContentFormat::JSON));
    /// assert_eq!(ContentFormat::from_media_type("application/json@deflate"), Some(ContentFormat::JSON_DEFLATE));
    /// assert_eq!(ContentFormat::from_media_type("text/plain"), Some(ContentFormat::TEXT_PLAIN));
    /// ```
    #[must_use]
    pub fn from_media_type(s: &str) -> Option<Self> {
        let (media, coding) = match s.split_once('@') {
            Some((m, c)) => (m, Some(c.trim())),
            None => (s, None),
        };
        if coding.is_none() && media_eq(media, "text/plain") {
            return Some(Self::TEXT_PLAIN);
        }
        Self::KNOWN.iter().copied().find(|cf| {
            cf.media_type().is_some_and(|m| media_eq(m, media))
                && match (cf.content_coding(), coding) {
                    (None, None) => true,
                    (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                    _ => false,
                }
        })
    }
}

impl fmt::Display for ContentFormat {
    /// The media type (with `@coding` when there is one), or the number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.media_type(), self.content_coding()) {
            (Some(m), Some(c)) => write!(f, "{m}@{c}"),
            (Some(m), None) => f.write_str(m),
            (None, _) => write!(f, "{}", self.0),
        }
    }
}

impl fmt::Debug for ContentFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentFormat({} {self})", self.0)
    }
}

impl From<u16> for ContentFormat {
    fn from(v: u16) -> Self {
        Self(v)
    }
}
