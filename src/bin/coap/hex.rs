//! Hex text: lenient parsing of what users paste, lowercase output.

use std::fmt;

/// Hex text that does not parse: `offset` is the byte offset, in the text,
/// of the offending character (for a digit without a partner, that digit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HexError {
    pub(crate) offset: usize,
}

impl fmt::Display for HexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid hex at offset {}", self.offset)
    }
}

/// Whether `c` may separate two bytes.
fn is_separator(c: u8) -> bool {
    c.is_ascii_whitespace() || c == b':'
}

/// Parses hex text: pairs of digits in either case, optionally separated by
/// whitespace or `:` (between bytes, not inside one), after an optional
/// leading `0x`. Empty text is zero bytes.
///
/// `4001 7d:34`, `40017D34` and `0x40017d34` all give the same 4 bytes.
pub(crate) fn parse(text: &[u8]) -> Result<Vec<u8>, HexError> {
    let start = text
        .iter()
        .position(|&c| !c.is_ascii_whitespace())
        .unwrap_or(text.len());
    let body_start = match text.get(start..start + 2) {
        Some(b"0x" | b"0X") => start + 2,
        _ => start,
    };
    let mut out = Vec::with_capacity(text.len() / 2);
    let mut high: Option<(usize, u8)> = None;
    for (offset, &c) in text.iter().enumerate().skip(body_start) {
        if let Some(digit) = char::from(c).to_digit(16) {
            let digit = digit as u8;
            match high.take() {
                Some((_, h)) => out.push((h << 4) | digit),
                None => high = Some((offset, digit)),
            }
        } else if is_separator(c) {
            if let Some((offset, _)) = high {
                return Err(HexError { offset });
            }
        } else {
            return Err(HexError { offset });
        }
    }
    match high {
        Some((offset, _)) => Err(HexError { offset }),
        None => Ok(out),
    }
}

/// Lowercase hex without separators.
pub(crate) struct Hex<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Lowercase hex without separators, as a string.
pub(crate) fn encode(bytes: &[u8]) -> String {
    Hex(bytes).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_separators_case_and_prefix() {
        let want = Ok(vec![0x40, 0x01, 0x7d, 0x34]);
        for text in [
            "40017d34",
            "40 01 7D 34",
            "40:01:7d:34",
            " 0x40017d34\n",
            "4001\t7d34",
        ] {
            assert_eq!(parse(text.as_bytes()), want, "{text:?}");
        }
        assert_eq!(parse(b""), Ok(vec![]));
        assert_eq!(parse(b"  \n"), Ok(vec![]));
        assert_eq!(parse(b"0x"), Ok(vec![]));
    }

    #[test]
    fn reports_the_offending_character() {
        assert_eq!(parse(b"40017"), Err(HexError { offset: 4 }));
        assert_eq!(parse(b"40 0 1"), Err(HexError { offset: 3 }));
        assert_eq!(parse(b"4g"), Err(HexError { offset: 1 }));
        assert_eq!(parse(b"40-01"), Err(HexError { offset: 2 }));
        assert_eq!(parse(b"40 0x01"), Err(HexError { offset: 4 }));
        assert_eq!(parse("40é".as_bytes()), Err(HexError { offset: 2 }));
    }

    #[test]
    fn encodes_lowercase() {
        assert_eq!(encode(&[0xab, 0x01, 0xff]), "ab01ff");
        assert_eq!(encode(&[]), "");
    }
}
