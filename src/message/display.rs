//! The one-line, Wireshark-like dump and `Debug` for [`Message`].

use core::fmt::{self, Write as _};

use super::option::{OptionFormat, OptionNumber};
use super::parse::{Message, OptionRef};
use super::value::{Block, decode_uint};

pub(crate) struct Hex<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Writes a string value with spaces, control characters and non-UTF-8
/// escaped so that the dump stays on one line and splits on spaces.
fn write_text(f: &mut fmt::Formatter<'_>, value: &[u8]) -> fmt::Result {
    match core::str::from_utf8(value) {
        Ok(s) => {
            for c in s.chars() {
                match c {
                    ' ' => f.write_str("\\x20")?,
                    '\\' => f.write_str("\\\\")?,
                    c if c.is_control() => write!(f, "{}", c.escape_default())?,
                    c => f.write_char(c)?,
                }
            }
            Ok(())
        }
        Err(_) => write!(f, "0x{}", Hex(value)),
    }
}

impl fmt::Display for OptionRef<'_> {
    /// `Name:value`: uints as numbers, Block options as `NUM/M/SIZE`,
    /// strings as text, opaque values in hex, empty options as the bare name.
    /// Unknown options are `#number:hex`.
    ///
    /// ```
    /// # use coap_proto::{OptionNumber, OptionRef};
    /// let o = OptionRef { number: OptionNumber::BLOCK2, value: &[0x3e] };
    /// assert_eq!(o.to_string(), "Block2:3/1/1024");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number)?;
        let format = self.number.info().map(|i| i.format);
        if self.value.is_empty() && format != Some(OptionFormat::Uint) {
            return Ok(());
        }
        f.write_str(":")?;
        match format {
            Some(OptionFormat::Uint) => {
                if matches!(self.number, OptionNumber::BLOCK1 | OptionNumber::BLOCK2)
                    && let Ok(b) = Block::from_value(self.value)
                {
                    return write!(f, "{b}");
                }
                match decode_uint(self.value) {
                    Ok(n) => write!(f, "{n}"),
                    Err(_) => write!(f, "0x{}", Hex(self.value)),
                }
            }
            Some(OptionFormat::String) => write_text(f, self.value),
            _ => write!(f, "0x{}", Hex(self.value)),
        }
    }
}

impl fmt::Display for Message<'_> {
    /// A one-line dump in the spirit of Wireshark's Info column:
    /// `CON GET mid=0x7d34 tok=20fa Uri-Path:temp Accept:50`, then
    /// `payload=NB` when there is a payload. It never allocates.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code();
        write!(f, "{} ", self.ty())?;
        match (code.is_request(), code.name()) {
            (true, Some(name)) => f.write_str(name)?,
            _ => write!(f, "{}.{:02}", code.class(), code.detail())?,
        }
        write!(f, " mid=0x{:04x}", self.message_id())?;
        if !self.token().is_empty() {
            write!(f, " tok={}", Hex(self.token()))?;
        }
        for opt in self.options() {
            write!(f, " {opt}")?;
        }
        if !self.payload().is_empty() {
            write!(f, " payload={}B", self.payload().len())?;
        }
        Ok(())
    }
}

struct DebugOptions<'a>(Message<'a>);

impl fmt::Debug for DebugOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.options().map(DisplayAsDebug))
            .finish()
    }
}

struct DisplayAsDebug<T>(T);

impl<T: fmt::Display> fmt::Debug for DisplayAsDebug<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("ty", &self.ty())
            .field("code", &self.code())
            .field("message_id", &self.message_id())
            .field("token", &Hex(self.token()))
            .field("options", &DebugOptions(*self))
            .field("payload", &Hex(self.payload()))
            .finish()
    }
}
