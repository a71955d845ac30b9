//! Encoding into a caller's buffer (RFC 7252 §3).

use super::error::EncodeError;
use super::option::OptionNumber;
use super::parse::Message;
use super::value::{Block, encode_uint};
use super::{Code, MAX_OPTION_VALUE_LEN, MAX_TOKEN_LEN, MessageType, PAYLOAD_MARKER, VERSION};

/// The nibble and extension for a delta or length (§3.1). Every value has
/// exactly one encoding, which is what makes the framing canonical.
#[inline]
fn nibble(v: usize) -> (u8, usize) {
    if v < 13 {
        (v as u8, 0)
    } else if v < 269 {
        (13, 1)
    } else {
        (14, 2)
    }
}

#[inline]
fn write_ext(out: &mut [u8], v: usize) -> usize {
    match nibble(v) {
        (13, _) => {
            if let Some(b) = out.first_mut() {
                *b = (v - 13) as u8;
            }
            1
        }
        (14, _) => {
            if let Some(dst) = out.get_mut(..2) {
                dst.copy_from_slice(&((v - 269) as u16).to_be_bytes());
            }
            2
        }
        _ => 0,
    }
}

/// `dst.copy_from_slice(src)` for slices of equal length, without a call
/// to `memcpy` for the short lengths of tokens and most option values
/// (up to 16 bytes: two overlapping fixed-size copies). Does nothing if the
/// lengths differ (callers always pass equal lengths).
#[inline]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if dst.len() != n {
        return;
    }
    if (8..=16).contains(&n) {
        if let (Some(d), Some(s)) = (dst.first_chunk_mut::<8>(), src.first_chunk::<8>()) {
            *d = *s;
        }
        if let (Some(d), Some(s)) = (dst.last_chunk_mut::<8>(), src.last_chunk::<8>()) {
            *d = *s;
        }
    } else if (4..8).contains(&n) {
        if let (Some(d), Some(s)) = (dst.first_chunk_mut::<4>(), src.first_chunk::<4>()) {
            *d = *s;
        }
        if let (Some(d), Some(s)) = (dst.last_chunk_mut::<4>(), src.last_chunk::<4>()) {
            *d = *s;
        }
    } else if (1..4).contains(&n) {
        // First, middle and last byte (some coincide for n < 3).
        for i in [0, n / 2, n - 1] {
            if let (Some(d), Some(&s)) = (dst.get_mut(i), src.get(i)) {
                *d = s;
            }
        }
    } else {
        dst.copy_from_slice(src);
    }
}

/// The number of bytes an option takes on the wire: the option header for
/// this `delta` and `value_len`, plus the value.
///
/// ```
/// use coap_proto::message::encoded_option_len;
/// assert_eq!(encoded_option_len(11, 4), 5);      // 1-byte header
/// assert_eq!(encoded_option_len(13, 13), 16);    // 1 + 1 + 1 + 13
/// assert_eq!(encoded_option_len(269, 269), 274); // 1 + 2 + 2 + 269
/// ```
#[must_use]
pub const fn encoded_option_len(delta: u16, value_len: usize) -> usize {
    const fn ext(v: usize) -> usize {
        if v < 13 {
            0
        } else if v < 269 {
            1
        } else {
            2
        }
    }
    1 + ext(delta as usize) + ext(value_len) + value_len
}

/// Writes a message into a caller's buffer, front to back: header, token,
/// options in ascending order, payload (RFC 7252 §3).
///
/// Every method either succeeds completely or fails leaving the encoder and
/// the bytes written so far unchanged; nothing is ever half-written. Uint
/// values are written minimally, and option framing is canonical, so a
/// message re-encoded from [`Message::parse`] is byte-identical.
///
/// The encoder never allocates.
///
/// ```
/// use coap_proto::{Code, Encoder, MessageType, OptionNumber, ContentFormat};
/// let mut buf = [0u8; 32];
/// let mut enc = Encoder::new(&mut buf, MessageType::Ack, Code::CONTENT, 0x7d34, &[0x20])?;
/// enc.option_uint(OptionNumber::CONTENT_FORMAT, ContentFormat::TEXT_PLAIN.0.into())?;
/// enc.payload(b"22.3 C")?;
/// let n = enc.finish();
/// assert_eq!(&buf[..n], b"\x61\x45\x7d\x34\x20\xc0\xff22.3 C");
/// # Ok::<(), coap_proto::EncodeError>(())
/// ```
#[derive(Debug)]
pub struct Encoder<'b> {
    buf: &'b mut [u8],
    len: usize,
    /// The last option number written, or `BARRIER` once no option may
    /// follow (Empty message, or payload started): one compare in
    /// [`Encoder::option`] covers all three ordering errors.
    last: u32,
    empty: bool,
    in_payload: bool,
}

/// `Encoder::last` once no further option is allowed (above any number).
const BARRIER: u32 = 1 << 16;

impl<'b> Encoder<'b> {
    /// The error for an option that may not be written here (cold path).
    #[cold]
    #[inline(never)]
    fn order_error(&self, next: u32) -> EncodeError {
        if self.in_payload {
            EncodeError::OptionAfterPayload
        } else if self.empty {
            EncodeError::EmptyMessageNotEmpty
        } else {
            EncodeError::OutOfOrder {
                previous: self.last as u16,
                next: next as u16,
            }
        }
    }

    /// Writes the header and token and returns an encoder positioned at the
    /// options.
    ///
    /// ```
    /// # use coap_proto::{Code, EncodeError, Encoder, MessageType};
    /// let mut buf = [0u8; 16];
    /// let err = Encoder::new(&mut buf, MessageType::Con, Code::GET, 1, &[0; 9]).unwrap_err();
    /// assert_eq!(err, EncodeError::TokenTooLong { len: 9 });
    /// ```
    #[inline]
    pub fn new(
        buf: &'b mut [u8],
        ty: MessageType,
        code: Code,
        message_id: u16,
        token: &[u8],
    ) -> Result<Self, EncodeError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(EncodeError::TokenTooLong { len: token.len() });
        }
        if code.is_empty() && !token.is_empty() {
            return Err(EncodeError::EmptyMessageNotEmpty);
        }
        let required = 4 + token.len();
        let Some(dst) = buf.get_mut(..required) else {
            return Err(EncodeError::BufferTooSmall { required });
        };
        let [mid0, mid1] = message_id.to_be_bytes();
        let head = [
            (VERSION << 6) | (ty.bits() << 4) | token.len() as u8,
            code.0,
            mid0,
            mid1,
        ];
        let (h, t) = dst.split_at_mut(4);
        h.copy_from_slice(&head);
        copy_short(t, token);
        Ok(Self {
            buf,
            len: required,
            last: if code.is_empty() { BARRIER } else { 0 },
            empty: code.is_empty(),
            in_payload: false,
        })
    }

    /// Appends an option. Numbers must not decrease; an equal number repeats
    /// the option.
    ///
    /// ```
    /// # use coap_proto::{Code, EncodeError, Encoder, MessageType, OptionNumber};
    /// let mut buf = [0u8; 32];
    /// let mut enc = Encoder::new(&mut buf, MessageType::Con, Code::GET, 1, &[])?;
    /// enc.option(OptionNumber::URI_PATH, b"a")?;
    /// enc.option(OptionNumber::URI_PATH, b"b")?;
    /// assert_eq!(
    ///     enc.option(OptionNumber::URI_HOST, b"h").unwrap_err(),
    ///     EncodeError::OutOfOrder { previous: 11, next: 3 }
    /// );
    /// assert_eq!(enc.finish(), 8);
    /// # Ok::<(), EncodeError>(())
    /// ```
    #[inline]
    pub fn option(&mut self, number: OptionNumber, value: &[u8]) -> Result<&mut Self, EncodeError> {
        // Fast path, inlined: a 1-byte option header (delta and length
        // below 13) that fits. Everything else, errors included, is out of
        // line in `option_slow`.
        let n = u32::from(number.0);
        let vlen = value.len();
        if n >= self.last && n - self.last < 13 && vlen < 13 {
            let required = self.len + 1 + vlen;
            if let Some((first, v)) = self
                .buf
                .get_mut(self.len..required)
                .and_then(<[u8]>::split_first_mut)
            {
                *first = (((n - self.last) as u8) << 4) | vlen as u8;
                copy_short(v, value);
                self.len = required;
                self.last = n;
                return Ok(self);
            }
        }
        self.option_slow(number, value)
    }

    #[inline(never)]
    fn option_slow(
        &mut self,
        number: OptionNumber,
        value: &[u8],
    ) -> Result<&mut Self, EncodeError> {
        let number = u32::from(number.0);
        if number < self.last {
            return Err(self.order_error(number));
        }
        let vlen = value.len();
        let delta = (number - self.last) as usize;
        if vlen > MAX_OPTION_VALUE_LEN {
            return Err(EncodeError::ValueTooLong { len: vlen });
        }
        let (dn, dext) = nibble(delta);
        let (ln, lext) = nibble(vlen);
        let total = 1 + dext + lext + vlen;
        let required = self.len + total;
        let Some(dst) = self.buf.get_mut(self.len..required) else {
            return Err(EncodeError::BufferTooSmall { required });
        };
        let Some((first, rest)) = dst.split_first_mut() else {
            return Err(EncodeError::BufferTooSmall { required });
        };
        *first = (dn << 4) | ln;
        let used = write_ext(rest, delta);
        let rest = rest.get_mut(used..).unwrap_or_default();
        let used = write_ext(rest, vlen);
        if let Some(v) = rest.get_mut(used..) {
            copy_short(v, value);
        }
        self.len = required;
        self.last = number;
        Ok(self)
    }

    /// Appends a uint option, minimally encoded (§3.2).
    ///
    /// ```
    /// # use coap_proto::{Code, Encoder, MessageType, OptionNumber};
    /// let mut buf = [0u8; 8];
    /// let mut enc = Encoder::new(&mut buf, MessageType::Con, Code::GET, 1, &[])?;
    /// enc.option_uint(OptionNumber::OBSERVE, 0)?; // empty value
    /// assert_eq!(enc.finish(), 5);
    /// assert_eq!(buf[4], 0x60);
    /// # Ok::<(), coap_proto::EncodeError>(())
    /// ```
    #[inline]
    pub fn option_uint(
        &mut self,
        number: OptionNumber,
        value: u32,
    ) -> Result<&mut Self, EncodeError> {
        self.option(number, &encode_uint(value))
    }

    /// Appends a string option.
    ///
    /// ```
    /// # use coap_proto::{Code, Encoder, MessageType, OptionNumber};
    /// let mut buf = [0u8; 16];
    /// let mut enc = Encoder::new(&mut buf, MessageType::Con, Code::GET, 1, &[])?;
    /// enc.option_str(OptionNumber::URI_HOST, "example.org")?;
    /// assert_eq!(enc.finish(), 4 + 1 + 11);
    /// # Ok::<(), coap_proto::EncodeError>(())
    /// ```
    #[inline]
    pub fn option_str(
        &mut self,
        number: OptionNumber,
        value: &str,
    ) -> Result<&mut Self, EncodeError> {
        self.option(number, value.as_bytes())
    }

    /// Appends a Block1 or Block2 option.
    ///
    /// ```
    /// # use coap_proto::{Block, Code, Encoder, MessageType, OptionNumber};
    /// let mut buf = [0u8; 16];
    /// let mut enc = Encoder::new(&mut buf, MessageType::Con, Code::GET, 1, &[])?;
    /// enc.option_block(OptionNumber::BLOCK2, Block::new(1, false, 6)?)?;
    /// assert_eq!(&buf[4..7], &[0xd1, 0x0a, 0x16]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn option_block(
        &mut self,
        number: OptionNumber,
        block: Block,
    ) -> Result<&mut Self, EncodeError> {
        self.option_uint(number, block.to_uint())
    }

    /// Appends every Uri-Path segment of `path` (split on `/`, a leading `/`
    /// ignored). Segments are written as given, without percent-decoding; use
    /// [`crate::message::uri`] for URIs.
    ///
    /// ```
    /// # use coap_proto::{Code, Encoder, Message, MessageType, OptionNumber};
    /// let mut buf = [0u8; 32];
    /// let mut enc = Encoder::new(&mut buf, MessageType::Con, Code::GET, 1, &[])?;
    /// enc.uri_path("/sensors/temp")?;
    /// let n = enc.finish();
    /// let msg = Message::parse(&buf[..n]).unwrap();
    /// assert_eq!(msg.options_of(OptionNumber::URI_PATH).count(), 2);
    /// # Ok::<(), coap_proto::EncodeError>(())
    /// ```
    pub fn uri_path(&mut self, path: &str) -> Result<&mut Self, EncodeError> {
        let path = path.strip_prefix('/').unwrap_or(path);
        if path.is_empty() {
            return Ok(self);
        }
        let mark = (self.len, self.last);
        for seg in path.split('/') {
            if let Err(e) = self.option(OptionNumber::URI_PATH, seg.as_bytes()) {
                (self.len, self.last) = mark;
                return Err(e);
            }
        }
        Ok(self)
    }

    /// Appends payload bytes. The first non-empty call writes the payload
    /// marker; later calls append. An empty slice writes nothing, since a
    /// marker must not be followed by an empty payload (§3).
    ///
    /// ```
    /// # use coap_proto::{Code, Encoder, MessageType};
    /// let mut buf = [0u8; 16];
    /// let mut enc = Encoder::new(&mut buf, MessageType::Non, Code::CONTENT, 1, &[])?;
    /// enc.payload(b"ab")?.payload(b"cd")?;
    /// assert_eq!(&buf[4..9], b"\xffabcd");
    /// # Ok::<(), coap_proto::EncodeError>(())
    /// ```
    #[inline]
    pub fn payload(&mut self, data: &[u8]) -> Result<&mut Self, EncodeError> {
        self.payload_with(data.len(), |dst| dst.copy_from_slice(data))
    }

    /// Reserves `len` payload bytes and lets `fill` write them in place, so
    /// that a representation can be produced straight into the datagram.
    ///
    /// ```
    /// # use coap_proto::{Code, Encoder, MessageType};
    /// let mut buf = [0u8; 16];
    /// let mut enc = Encoder::new(&mut buf, MessageType::Non, Code::CONTENT, 1, &[])?;
    /// enc.payload_with(3, |dst| dst.copy_from_slice(b"xyz"))?;
    /// assert_eq!(enc.as_bytes(), b"\x50\x45\x00\x01\xffxyz");
    /// # Ok::<(), coap_proto::EncodeError>(())
    /// ```
    #[inline]
    pub fn payload_with(
        &mut self,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<&mut Self, EncodeError> {
        if len == 0 {
            return Ok(self);
        }
        if self.empty {
            return Err(EncodeError::EmptyMessageNotEmpty);
        }
        let marker = usize::from(!self.in_payload);
        let required = self.len + marker + len;
        let Some(dst) = self.buf.get_mut(self.len..required) else {
            return Err(EncodeError::BufferTooSmall { required });
        };
        let (m, body) = dst.split_at_mut(marker);
        if let Some(m) = m.first_mut() {
            *m = PAYLOAD_MARKER;
        }
        fill(body);
        self.len = required;
        self.in_payload = true;
        self.last = BARRIER;
        Ok(self)
    }

    /// The number of bytes written so far.
    ///
    /// ```
    /// # use coap_proto::{Code, Encoder, MessageType};
    /// let mut buf = [0u8; 16];
    /// let enc = Encoder::new(&mut buf, MessageType::Con, Code::GET, 1, &[1, 2])?;
    /// assert_eq!(enc.len(), 6);
    /// # Ok::<(), coap_proto::EncodeError>(())
    /// ```
    #[must_use]
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: the header is always written.
    ///
    /// ```
    /// # use coap_proto::{Code, Encoder, MessageType};
    /// let mut buf = [0u8; 4];
    /// assert!(!Encoder::new(&mut buf, MessageType::Con, Code::EMPTY, 1, &[])?.is_empty());
    /// # Ok::<(), coap_proto::EncodeError>(())
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes written so far (always a complete, valid message).
    ///
    /// ```
    /// # use coap_proto::{Code, Encoder, Message, MessageType};
    /// let mut buf = [0u8; 16];
    /// let enc = Encoder::new(&mut buf, MessageType::Con, Code::EMPTY, 7, &[])?;
    /// assert!(Message::parse(enc.as_bytes()).is_ok());
    /// # Ok::<(), coap_proto::EncodeError>(())
    /// ```
    #[must_use]
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    /// Ends encoding and returns the message length.
    ///
    /// ```
    /// # use coap_proto::{Code, Encoder, MessageType};
    /// let mut buf = [0u8; 16];
    /// let n = Encoder::new(&mut buf, MessageType::Rst, Code::EMPTY, 7, &[])?.finish();
    /// assert_eq!(&buf[..n], &[0x70, 0x00, 0x00, 0x07]);
    /// # Ok::<(), coap_proto::EncodeError>(())
    /// ```
    #[must_use]
    #[inline]
    pub fn finish(self) -> usize {
        self.len
    }
}

impl Message<'_> {
    /// Re-encodes this message field by field into `buf` and returns its
    /// length. Because option framing is canonical, the output equals
    /// [`as_bytes`](Message::as_bytes); this is the codec's round-trip
    /// oracle, and a way to copy a message into another buffer.
    ///
    /// On a too-small buffer, `required` is the exact message length and
    /// nothing is written.
    ///
    /// ```
    /// # use coap_proto::{EncodeError, Message};
    /// let bytes = b"\x44\x01\x7d\x34\x20\xfa\x01\x02\xb4temp\xd1\x04\x32";
    /// let msg = Message::parse(bytes)?;
    /// let mut out = [0u8; 32];
    /// let n = msg.encode(&mut out)?;
    /// assert_eq!(&out[..n], bytes);
    /// assert_eq!(msg.encode(&mut [0u8; 4]), Err(EncodeError::BufferTooSmall { required: bytes.len() }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let required = self.as_bytes().len();
        if buf.len() < required {
            return Err(EncodeError::BufferTooSmall { required });
        }
        let mut enc = Encoder::new(buf, self.ty(), self.code(), self.message_id(), self.token())?;
        for opt in self.options() {
            enc.option(opt.number, opt.value)?;
        }
        enc.payload(self.payload())?;
        Ok(enc.finish())
    }
}
