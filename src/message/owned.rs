//! An owned message builder (feature `alloc`) on top of [`Encoder`].

use alloc::vec::Vec;
use core::fmt;

use super::encode::{Encoder, encoded_option_len};
use super::error::EncodeError;
use super::option::OptionNumber;
use super::parse::{Message, OptionRef};
use super::value::encode_uint;
use super::{Code, MAX_TOKEN_LEN, MessageType};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Entry {
    number: OptionNumber,
    start: usize,
    len: usize,
}

/// An owned, mutable CoAP message, for code that prefers convenience over
/// zero-copy (feature `alloc`).
///
/// Options may be added in any order; they are kept sorted by number, and
/// repeated options keep the order in which they were added. Encoding goes
/// through the same [`Encoder`] as everything else: this is not a second
/// codec.
///
/// ```
/// use coap_proto::{Code, Message, MessageBuf, MessageType, OptionNumber};
/// let mut m = MessageBuf::new(MessageType::Con, Code::GET);
/// m.set_message_id(0x7d34);
/// m.set_token(&[0x20, 0xfa])?;
/// m.add_option_uint(OptionNumber::ACCEPT, 50);
/// m.add_option(OptionNumber::URI_PATH, "temp"); // sorted before Accept
/// let bytes = m.to_bytes()?;
/// assert_eq!(Message::parse(&bytes)?.to_string(), "CON GET mid=0x7d34 tok=20fa Uri-Path:temp Accept:50");
/// assert_eq!(MessageBuf::from(Message::parse(&bytes)?), m);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct MessageBuf {
    ty: MessageType,
    code: Code,
    message_id: u16,
    token: [u8; MAX_TOKEN_LEN],
    token_len: u8,
    options: Vec<Entry>,
    values: Vec<u8>,
    payload: Vec<u8>,
}

impl MessageBuf {
    /// A message with this type and code, message ID 0, no token, options or
    /// payload.
    ///
    /// ```
    /// # use coap_proto::{Code, MessageBuf, MessageType};
    /// let m = MessageBuf::new(MessageType::Non, Code::POST);
    /// assert_eq!(m.code(), Code::POST);
    /// ```
    #[must_use]
    pub fn new(ty: MessageType, code: Code) -> Self {
        Self {
            ty,
            code,
            message_id: 0,
            token: [0; MAX_TOKEN_LEN],
            token_len: 0,
            options: Vec::new(),
            values: Vec::new(),
            payload: Vec::new(),
        }
    }

    /// The message type.
    ///
    /// ```
    /// # use coap_proto::{Code, MessageBuf, MessageType};
    /// assert_eq!(MessageBuf::new(MessageType::Ack, Code::EMPTY).ty(), MessageType::Ack);
    /// ```
    #[must_use]
    pub fn ty(&self) -> MessageType {
        self.ty
    }

    /// Sets the message type.
    ///
    /// ```
    /// # use coap_proto::{Code, MessageBuf, MessageType};
    /// let mut m = MessageBuf::new(MessageType::Con, Code::GET);
    /// m.set_ty(MessageType::Non);
    /// assert_eq!(m.ty(), MessageType::Non);
    /// ```
    pub fn set_ty(&mut self, ty: MessageType) -> &mut Self {
        self.ty = ty;
        self
    }

    /// The code.
    ///
    /// ```
    /// # use coap_proto::{Code, MessageBuf, MessageType};
    /// assert_eq!(MessageBuf::new(MessageType::Con, Code::PUT).code(), Code::PUT);
    /// ```
    #[must_use]
    pub fn code(&self) -> Code {
        self.code
    }

    /// Sets the code.
    ///
    /// ```
    /// # use coap_proto::{Code, MessageBuf, MessageType};
    /// let mut m = MessageBuf::new(MessageType::Ack, Code::EMPTY);
    /// m.set_code(Code::CONTENT);
    /// assert_eq!(m.code(), Code::CONTENT);
    /// ```
    pub fn set_code(&mut self, code: Code) -> &mut Self {
        self.code = code;
        self
    }

    /// The message ID.
    ///
    /// ```
    /// # use coap_proto::{Code, MessageBuf, MessageType};
    /// assert_eq!(MessageBuf::new(MessageType::Con, Code::GET).message_id(), 0);
    /// ```
    #[must_use]
    pub fn message_id(&self) -> u16 {
        self.message_id
    }

    /// Sets the message ID.
    ///
    /// ```
    /// # use coap_proto::{Code, MessageBuf, MessageType};
    /// let mut m = MessageBuf::new(MessageType::Con, Code::GET);
    /// m.set_message_id(42);
    /// assert_eq!(m.message_id(), 42);
    /// ```
    pub fn set_message_id(&mut self, message_id: u16) -> &mut Self {
        self.message_id = message_id;
        self
    }

    /// The token.
    ///
    /// ```
    /// # use coap_proto::{Code, MessageBuf, MessageType};
    /// assert!(MessageBuf::new(MessageType::Con, Code::GET).token().is_empty());
    /// ```
    #[must_use]
    pub fn token(&self) -> &[u8] {
        self.token
            .get(..usize::from(self.token_len))
            .unwrap_or_default()
    }

    /// Sets the token (at most 8 bytes).
    ///
    /// ```
    /// # use coap_proto::{Code, EncodeError, MessageBuf, MessageType};
    /// let mut m = MessageBuf::new(MessageType::Con, Code::GET);
    /// m.set_token(&[1, 2, 3, 4])?;
    /// assert_eq!(m.token(), &[1, 2, 3, 4]);
    /// assert_eq!(m.set_token(&[0; 9]).unwrap_err(), EncodeError::TokenTooLong { len: 9 });
    /// # Ok::<(), EncodeError>(())
    /// ```
    pub fn set_token(&mut self, token: &[u8]) -> Result<&mut Self, EncodeError> {
        let Some(dst) = self.token.get_mut(..token.len()) else {
            return Err(EncodeError::TokenTooLong { len: token.len() });
        };
        dst.copy_from_slice(token);
        self.token_len = token.len() as u8;
        Ok(self)
    }

    /// Adds an option, keeping the options sorted by number and repeated
    /// options in insertion order.
    ///
    /// ```
    /// # use coap_proto::{Code, MessageBuf, MessageType, OptionNumber};
    /// let mut m = MessageBuf::new(MessageType::Con, Code::GET);
    /// m.add_option(OptionNumber::URI_QUERY, "a=1")
    ///  .add_option(OptionNumber::URI_PATH, "x")
    ///  .add_option(OptionNumber::URI_QUERY, "b=2");
    /// let nums: Vec<u16> = m.options().map(|o| o.number.0).collect();
    /// assert_eq!(nums, [11, 15, 15]);
    /// assert_eq!(m.options().nth(2).unwrap().value, b"b=2");
    /// ```
    pub fn add_option(&mut self, number: OptionNumber, value: impl AsRef<[u8]>) -> &mut Self {
        let value = value.as_ref();
        let at = self.options.partition_point(|e| e.number <= number);
        let start = self.values.len();
        self.values.extend_from_slice(value);
        self.options.insert(
            at,
            Entry {
                number,
                start,
                len: value.len(),
            },
        );
        self
    }

    /// Adds a uint option, minimally encoded.
    ///
    /// ```
    /// # use coap_proto::{Code, MessageBuf, MessageType, OptionNumber};
    /// let mut m = MessageBuf::new(MessageType::Con, Code::GET);
    /// m.add_option_uint(OptionNumber::MAX_AGE, 0x0100);
    /// assert_eq!(m.option(OptionNumber::MAX_AGE), Some(&[1u8, 0][..]));
    /// ```
    pub fn add_option_uint(&mut self, number: OptionNumber, value: u32) -> &mut Self {
        self.add_option(number, encode_uint(value))
    }

    /// Replaces every occurrence of an option with one value.
    ///
    /// ```
    /// # use coap_proto::{Code, MessageBuf, MessageType, OptionNumber};
    /// let mut m = MessageBuf::new(MessageType::Con, Code::GET);
    /// m.add_option(OptionNumber::ETAG, [1]).add_option(OptionNumber::ETAG, [2]);
    /// m.set_option(OptionNumber::ETAG, [3]);
    /// assert_eq!(m.options().count(), 1);
    /// ```
    pub fn set_option(&mut self, number: OptionNumber, value: impl AsRef<[u8]>) -> &mut Self {
        self.remove_option(number);
        self.add_option(number, value)
    }

    /// Removes every occurrence of an option. Returns how many there were.
    ///
    /// ```
    /// # use coap_proto::{Code, MessageBuf, MessageType, OptionNumber};
    /// let mut m = MessageBuf::new(MessageType::Con, Code::GET);
    /// m.add_option(OptionNumber::URI_PATH, "a").add_option(OptionNumber::URI_PATH, "b");
    /// assert_eq!(m.remove_option(OptionNumber::URI_PATH), 2);
    /// ```
    pub fn remove_option(&mut self, number: OptionNumber) -> usize {
        let before = self.options.len();
        self.options.retain(|e| e.number != number);
        let removed = before - self.options.len();
        if removed > 0 {
            self.compact();
        }
        removed
    }

    fn compact(&mut self) {
        let mut values = Vec::with_capacity(self.options.iter().map(|e| e.len).sum());
        for e in &mut self.options {
            let v = self
                .values
                .get(e.start..e.start + e.len)
                .unwrap_or_default();
            e.start = values.len();
            values.extend_from_slice(v);
        }
        self.values = values;
    }

    /// The options, sorted by number.
    ///
    /// ```
    /// # use coap_proto::{Code, MessageBuf, MessageType, OptionNumber};
    /// let mut m = MessageBuf::new(MessageType::Con, Code::GET);
    /// m.add_option(OptionNumber::URI_PATH, "a");
    /// assert_eq!(m.options().next().unwrap().value, b"a");
    /// ```
    pub fn options(&self) -> impl Iterator<Item = OptionRef<'_>> + '_ {
        self.options.iter().map(|e| OptionRef {
            number: e.number,
            value: self
                .values
                .get(e.start..e.start + e.len)
                .unwrap_or_default(),
        })
    }

    /// The first value of an option.
    ///
    /// ```
    /// # use coap_proto::{Code, MessageBuf, MessageType, OptionNumber};
    /// let m = MessageBuf::new(MessageType::Con, Code::GET);
    /// assert_eq!(m.option(OptionNumber::URI_PATH), None);
    /// ```
    #[must_use]
    pub fn option(&self, number: OptionNumber) -> Option<&[u8]> {
        self.options().find(|o| o.number == number).map(|o| o.value)
    }

    /// The payload.
    ///
    /// ```
    /// # use coap_proto::{Code, MessageBuf, MessageType};
    /// let mut m = MessageBuf::new(MessageType::Ack, Code::CONTENT);
    /// m.set_payload("hi");
    /// assert_eq!(m.payload(), b"hi");
    /// ```
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Replaces the payload.
    ///
    /// ```
    /// # use coap_proto::{Code, MessageBuf, MessageType};
    /// let mut m = MessageBuf::new(MessageType::Ack, Code::CONTENT);
    /// m.set_payload(vec![1, 2, 3]);
    /// assert_eq!(m.payload().len(), 3);
    /// ```
    pub fn set_payload(&mut self, payload: impl Into<Vec<u8>>) -> &mut Self {
        self.payload = payload.into();
        self
    }

    /// The exact encoded length.
    ///
    /// ```
    /// # use coap_proto::{Code, MessageBuf, MessageType, OptionNumber};
    /// let mut m = MessageBuf::new(MessageType::Con, Code::GET);
    /// m.add_option(OptionNumber::URI_PATH, "temp");
    /// assert_eq!(m.encoded_len(), 9);
    /// ```
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        let mut last = 0u16;
        let mut n = 4 + self.token().len();
        for e in &self.options {
            n += encoded_option_len(e.number.0.wrapping_sub(last), e.len);
            last = e.number.0;
        }
        if !self.payload.is_empty() {
            n += 1 + self.payload.len();
        }
        n
    }

    /// Encodes into `buf` and returns the length. On a too-small buffer,
    /// `required` is the exact length and nothing is written.
    ///
    /// ```
    /// # use coap_proto::{Code, EncodeError, MessageBuf, MessageType};
    /// let mut m = MessageBuf::new(MessageType::Ack, Code::CONTENT);
    /// m.set_payload("hello");
    /// assert_eq!(m.encode(&mut [0u8; 4]), Err(EncodeError::BufferTooSmall { required: 10 }));
    /// let mut buf = [0u8; 10];
    /// assert_eq!(m.encode(&mut buf), Ok(10));
    /// ```
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        // Errors about the message itself come before the buffer size, so
        // that a larger buffer never turns BufferTooSmall into another error.
        if self.code.is_empty()
            && (!self.token().is_empty() || !self.options.is_empty() || !self.payload.is_empty())
        {
            return Err(EncodeError::EmptyMessageNotEmpty);
        }
        if let Some(e) = self
            .options
            .iter()
            .find(|e| e.len > super::MAX_OPTION_VALUE_LEN)
        {
            return Err(EncodeError::ValueTooLong { len: e.len });
        }
        let required = self.encoded_len();
        if buf.len() < required {
            return Err(EncodeError::BufferTooSmall { required });
        }
        let mut enc = Encoder::new(buf, self.ty, self.code, self.message_id, self.token())?;
        for o in self.options() {
            enc.option(o.number, o.value)?;
        }
        enc.payload(&self.payload)?;
        Ok(enc.finish())
    }

    /// Encodes into a new vector.
    ///
    /// ```
    /// # use coap_proto::{Code, MessageBuf, MessageType};
    /// let m = MessageBuf::new(MessageType::Con, Code::EMPTY);
    /// assert_eq!(m.to_bytes()?, [0x40, 0, 0, 0]);
    /// # Ok::<(), coap_proto::EncodeError>(())
    /// ```
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = alloc::vec![0; self.encoded_len()];
        let n = self.encode(&mut out)?;
        out.truncate(n);
        Ok(out)
    }
}

impl PartialEq for MessageBuf {
    /// Compares the logical message (type, code, MID, token, options in
    /// order, payload), not the internal storage layout.
    fn eq(&self, other: &Self) -> bool {
        self.ty == other.ty
            && self.code == other.code
            && self.message_id == other.message_id
            && self.token() == other.token()
            && self.payload == other.payload
            && self.options().eq(other.options())
    }
}

impl Eq for MessageBuf {}

impl core::hash::Hash for MessageBuf {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.ty.hash(state);
        self.code.hash(state);
        self.message_id.hash(state);
        self.token().hash(state);
        for o in self.options() {
            o.hash(state);
        }
        self.payload.hash(state);
    }
}

impl From<Message<'_>> for MessageBuf {
    fn from(msg: Message<'_>) -> Self {
        let mut m = Self::new(msg.ty(), msg.code());
        m.message_id = msg.message_id();
        // A parsed token is at most 8 bytes, so this cannot fail.
        let _ = m.set_token(msg.token());
        m.values.reserve(msg.options_bytes().len());
        for o in msg.options() {
            let start = m.values.len();
            m.values.extend_from_slice(o.value);
            m.options.push(Entry {
                number: o.number,
                start,
                len: o.value.len(),
            });
        }
        m.payload = msg.payload().to_vec();
        m
    }
}

impl fmt::Display for MessageBuf {
    /// The same one-line dump as [`Message`]'s.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_bytes() {
            Ok(bytes) => match Message::parse(&bytes) {
                Ok(m) => fmt::Display::fmt(&m, f),
                Err(e) => write!(f, "<unencodable: {e}>"),
            },
            Err(e) => write!(f, "<unencodable: {e}>"),
        }
    }
}

impl fmt::Debug for MessageBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageBuf")
            .field("ty", &self.ty)
            .field("code", &self.code)
            .field("message_id", &self.message_id)
            .field("token", &super::display::Hex(self.token()))
            .field("options", &self.options().collect::<Vec<_>>())
            .field("payload", &super::display::Hex(&self.payload))
            .finish_non_exhaustive()
    }
}
