//! Link format (RFC 6690): `application/link-format` documents, as served by
//! `/.well-known/core`.
//!
//! [`LinkFormat::parse`] validates a whole document once; iterating it
//! afterwards is infallible and yields [`Link`]s borrowing the text.
//! [`LinkWriter`] serializes links into any [`core::fmt::Write`], and
//! [`Filter`] implements the query filtering of RFC 6690 §4.1. Parsing,
//! filtering and writing never allocate and never panic, and every operation
//! is linear in the length of its input.
//!
//! ```
//! use coap_proto::message::link::{Filter, LinkFormat, LinkWriter};
//!
//! // Serve /.well-known/core.
//! let mut doc = String::new();
//! let mut w = LinkWriter::new(&mut doc);
//! w.link("/sensors/temp")?.attr("rt", "temperature-c")?.attr("if", "sensor")?;
//! w.link("/sensors/light")?.attr("rt", "light-lux core.sen-light")?.attr_uint("ct", 0)?;
//! w.link("/obs")?.attr_flag("obs")?;
//! assert_eq!(
//!     doc,
//!     r#"</sensors/temp>;rt="temperature-c";if="sensor",</sensors/light>;rt="light-lux core.sen-light";ct=0,</obs>;obs"#
//! );
//!
//! // Answer GET /.well-known/core?rt=light-lux (RFC 6690 §4.1).
//! let parsed = LinkFormat::parse(&doc)?;
//! let filter = Filter::parse("rt=light-lux")?;
//! let mut answer = String::new();
//! assert_eq!(parsed.write_filtered(Some(&filter), &mut answer)?, 1);
//! assert_eq!(answer, r#"</sensors/light>;rt="light-lux core.sen-light";ct=0"#);
//!
//! // Read a discovery response.
//! let links = LinkFormat::parse(&answer)?;
//! let light = links.links().next().unwrap();
//! assert_eq!(light.target(), "/sensors/light");
//! assert!(light.has_word("rt", "core.sen-light"));
//! assert_eq!(light.value("ct").and_then(|v| v.to_uint()), Some(0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Accepted syntax
//!
//! The grammar is RFC 6690 §2: `<URI-Reference>` followed by `;`-separated
//! link-params, links separated by `,`. Decisions on the points the RFC
//! leaves open:
//!
//! - **Whitespace.** Optional whitespace (space, tab, CR, LF) is accepted at
//!   the start and end of the document and on both sides of `,`, `;` and
//!   `=`. The RFC's own §5 examples break lines before `;` and after `,`, and
//!   RFC 8288 §3 allows whitespace around `=`. [`LinkWriter`] never emits
//!   whitespace.
//! - **Empty document.** A zero-length (or all-whitespace) document is valid
//!   and has no links: RFC 6690 §4 answers "a zero-length payload" when there
//!   are no links. Empty link-values (`,,` or a trailing `,`) are errors.
//! - **Targets.** The URI-Reference may contain the characters RFC 3986
//!   allows (including `,` and `;`) and any non-ASCII UTF-8 character
//!   (RFC 6690 §2 encodes the format as UTF-8); a `%` must start a
//!   `%XX` hex triplet. `<>` (the empty reference) is valid. Targets are not
//!   percent-decoded or normalized.
//! - **Parameter names** are RFC 5987 `parmname`s (`attr-char`s), optionally
//!   followed by `*` (`ext-name-star`, e.g. `title*`). Names compare
//!   ASCII-case-insensitively (RFC 5234 §2.3: ABNF literals such as `"rt"`
//!   are case-insensitive); values compare bitwise (RFC 6690 §3).
//! - **Values** are either a `ptoken` (RFC 6690 §2, ASCII only, at least one
//!   character) or a quoted-string as RFC 7230 §3.2.6 defines it: any
//!   character except `"`, `\` and ASCII control characters other than tab,
//!   with `\` escaping the next character (which must not be a control
//!   character other than tab). Non-ASCII characters are allowed in quoted
//!   strings. The token and quoted forms of a value are equivalent
//!   (RFC 8288 §3), so `ct=40` equals `ct="40"`. Parameter-specific grammars
//!   (`anchor` must be quoted, `sz` is a cardinal, `title*` is an RFC 5987
//!   ext-value, ...) are not enforced: every value is either form.
//! - **Valueless parameters** such as `obs` (RFC 7641 §7) have no value.
//! - Repeated parameters (`rt` twice) are kept; lookups return the first.
//! - The reserved name `href` (RFC 6690 §2) is accepted as a parameter, but
//!   a [`Filter`] on `href` always tests the target.
//! - **Word lists.** The values of the attributes in [`WORD_LIST_ATTRS`]
//!   (`rel`, `rev`, `rt`, `if` from the RFC 6690 §2 `relation-types`
//!   grammar, and `ct`, a space-separated list by RFC 7252 §7.2.1) are lists
//!   of words separated by spaces, and a filter matches any one word
//!   (RFC 6690 §4.1).

use core::fmt;
use core::hash::{Hash, Hasher};
use core::iter::FusedIterator;

/// The attributes whose values are space-separated word lists for
/// [`Filter`] matching: `rel`, `rev`, `rt` and `if` (the RFC 6690 §2
/// `relation-types` grammar, matched word by word per §4.1) and `ct`
/// (RFC 7252 §7.2.1 allows a space-separated sequence of Content-Formats).
///
/// ```
/// use coap_proto::message::link::WORD_LIST_ATTRS;
/// assert!(WORD_LIST_ATTRS.contains(&"rt"));
/// assert!(!WORD_LIST_ATTRS.contains(&"title"));
/// ```
pub const WORD_LIST_ATTRS: &[&str] = &["rel", "rev", "rt", "if", "ct"];

// ---------------------------------------------------------------------------
// Errors

/// What is wrong with a link-format document, a [`Filter`] query or a
/// [`LinkWriter`] argument.
///
/// ```
/// use coap_proto::message::link::{LinkErrorKind, LinkFormat};
/// let err = LinkFormat::parse("</a>;rt=\"x").unwrap_err();
/// assert_eq!(err.kind, LinkErrorKind::UnterminatedQuote);
/// assert_eq!(err.kind.as_str(), "unterminated_quote");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LinkErrorKind {
    /// The bytes are not UTF-8 ([`LinkFormat::parse_bytes`]).
    InvalidUtf8,
    /// A link-value must start with `<` here (at the start, or after `,`).
    ExpectedLink,
    /// A `<` without its closing `>`.
    UnterminatedTarget,
    /// A character that cannot appear in a URI-Reference, or a `%` not
    /// followed by two hex digits.
    InvalidTarget,
    /// A parameter name that is empty or contains a character outside
    /// RFC 5987 `attr-char`.
    InvalidParamName,
    /// An unquoted value that is empty or contains a character outside
    /// `ptokenchar`.
    InvalidValue,
    /// A `"` without its closing `"`.
    UnterminatedQuote,
    /// A control character (other than tab) inside a quoted string.
    InvalidQuotedChar,
    /// Something other than `;`, `,` or the end after a target or a
    /// parameter.
    ExpectedSeparator,
}

impl LinkErrorKind {
    /// A stable `snake_case` name.
    ///
    /// ```
    /// # use coap_proto::message::link::LinkErrorKind;
    /// assert_eq!(LinkErrorKind::ExpectedLink.as_str(), "expected_link");
    /// ```
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidUtf8 => "invalid_utf8",
            Self::ExpectedLink => "expected_link",
            Self::UnterminatedTarget => "unterminated_target",
            Self::InvalidTarget => "invalid_target",
            Self::InvalidParamName => "invalid_param_name",
            Self::InvalidValue => "invalid_value",
            Self::UnterminatedQuote => "unterminated_quote",
            Self::InvalidQuotedChar => "invalid_quoted_char",
            Self::ExpectedSeparator => "expected_separator",
        }
    }
}

impl fmt::Display for LinkErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A link-format syntax error: what is wrong and where.
///
/// `offset` is a byte offset into the input that was checked: the document
/// for [`LinkFormat::parse`], the query for [`Filter::parse`], or the
/// offending argument for [`LinkWriter`] methods. For unterminated targets
/// and quotes it is the opening `<` or `"`; otherwise it is the first
/// character that does not fit.
///
/// ```
/// use coap_proto::message::link::{LinkErrorKind, LinkFormat};
/// let err = LinkFormat::parse("</a>,</b").unwrap_err();
/// assert_eq!((err.kind, err.offset), (LinkErrorKind::UnterminatedTarget, 5));
/// assert_eq!(err.to_string(), "unterminated_target at offset 5");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct LinkError {
    /// What is wrong.
    pub kind: LinkErrorKind,
    /// Where: a byte offset into the checked input.
    pub offset: usize,
}

impl LinkError {
    const fn new(kind: LinkErrorKind, offset: usize) -> Self {
        Self { kind, offset }
    }
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {}", self.kind, self.offset)
    }
}

impl core::error::Error for LinkError {}

/// Why a [`LinkWriter`] call failed.
///
/// An invalid argument is detected before anything is written, so the
/// output is unchanged; a sink error may leave a partial link behind.
///
/// ```
/// use coap_proto::message::link::{LinkErrorKind, LinkWriter, WriteError};
/// let mut out = String::new();
/// let err = LinkWriter::new(&mut out).link("/a>b").unwrap_err();
/// let WriteError::Invalid(e) = err else { panic!() };
/// assert_eq!((e.kind, e.offset), (LinkErrorKind::InvalidTarget, 2));
/// assert!(out.is_empty());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WriteError {
    /// The underlying [`fmt::Write`] failed.
    Fmt,
    /// An argument cannot be serialized; the offset is into that argument.
    Invalid(LinkError),
}

impl From<fmt::Error> for WriteError {
    fn from(_: fmt::Error) -> Self {
        Self::Fmt
    }
}

impl From<LinkError> for WriteError {
    fn from(e: LinkError) -> Self {
        Self::Invalid(e)
    }
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fmt => f.write_str("formatter error"),
            Self::Invalid(e) => write!(f, "invalid link argument: {e}"),
        }
    }
}

impl core::error::Error for WriteError {}

// ---------------------------------------------------------------------------
// Character classes

const fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// RFC 5987 `attr-char`.
const fn is_attr_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#' | b'$' | b'&' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
        )
}

/// RFC 6690 §2 `ptokenchar`.
const fn is_ptoken_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'/'
                | b':'
                | b'<'
                | b'='
                | b'>'
                | b'?'
                | b'@'
                | b'['
                | b']'
                | b'^'
                | b'_'
                | b'`'
                | b'{'
                | b'|'
                | b'}'
                | b'~'
        )
}

/// RFC 3986 unreserved / gen-delims / sub-delims (`%` is handled apart),
/// plus any non-ASCII byte.
const fn is_uri_char(b: u8) -> bool {
    b >= 0x80
        || b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b':'
                | b'/'
                | b'?'
                | b'#'
                | b'['
                | b']'
                | b'@'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
}

/// ASCII control characters other than tab (RFC 7230 §3.2.6 excludes them
/// from quoted strings).
const fn is_bad_quoted(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// The end of the URI characters starting at `i`: the index of the first
/// byte that is not part of a valid URI-Reference (or `s.len()`), or the
/// error offset of a bad `%` triplet.
fn scan_target(s: &[u8], mut i: usize) -> Result<usize, usize> {
    while let Some(&b) = s.get(i) {
        if b == b'%' {
            let hex = |j: usize| s.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return Err(i);
            }
            i += 3;
        } else if is_uri_char(b) {
            i += 1;
        } else {
            break;
        }
    }
    Ok(i)
}

/// The end of a parameter name starting at `i` (`i` itself if empty).
fn scan_name(s: &[u8], start: usize) -> usize {
    let mut i = start;
    while s.get(i).copied().is_some_and(is_attr_char) {
        i += 1;
    }
    if i > start && s.get(i) == Some(&b'*') {
        i += 1;
    }
    i
}

fn scan_ptoken(s: &[u8], mut i: usize) -> usize {
    while s.get(i).copied().is_some_and(is_ptoken_char) {
        i += 1;
    }
    i
}

/// Checks a whole parameter name (for writers and filters).
fn check_name(name: &str) -> Result<(), LinkError> {
    let end = scan_name(name.as_bytes(), 0);
    if end == 0 || end != name.len() {
        return Err(LinkError::new(LinkErrorKind::InvalidParamName, end));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Lexer

/// One lexer for validation and for iteration, so that what `parse`
/// accepted is exactly what the iterators see.
#[derive(Clone, Debug)]
struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    const fn new(src: &'a str) -> Self {
        Self { src, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
    }

    fn slice(&self, start: usize, end: usize) -> &'a str {
        self.src.get(start..end).unwrap_or_default()
    }

    /// `<URI-Reference>` then the parameters, stopping after the last
    /// parameter (and any whitespace after it).
    fn link(&mut self) -> Result<Link<'a>, LinkError> {
        let open = self.pos;
        if self.peek() != Some(b'<') {
            return Err(LinkError::new(LinkErrorKind::ExpectedLink, open));
        }
        let bytes = self.src.as_bytes();
        let end = scan_target(bytes, open + 1)
            .map_err(|at| LinkError::new(LinkErrorKind::InvalidTarget, at))?;
        match bytes.get(end) {
            Some(b'>') => {}
            None => return Err(LinkError::new(LinkErrorKind::UnterminatedTarget, open)),
            Some(_) => return Err(LinkError::new(LinkErrorKind::InvalidTarget, end)),
        }
        let target = self.slice(open + 1, end);
        self.pos = end + 1;
        let params_start = self.pos;
        self.skip_ws();
        while self.peek() == Some(b';') {
            self.pos += 1;
            self.skip_ws();
            self.param()?;
            self.skip_ws();
        }
        Ok(Link {
            target,
            params: self.slice(params_start, self.pos),
        })
    }

    /// The next `;`-introduced parameter of an already validated parameter
    /// list.
    fn next_param(&mut self) -> Option<Attr<'a>> {
        self.skip_ws();
        if self.peek() != Some(b';') {
            return None;
        }
        self.pos += 1;
        self.skip_ws();
        self.param().ok()
    }

    /// `parmname [ "=" ( ptoken / quoted-string ) ]`, positioned on the name.
    fn param(&mut self) -> Result<Attr<'a>, LinkError> {
        let bytes = self.src.as_bytes();
        let start = self.pos;
        let end = scan_name(bytes, start);
        let name = self.slice(start, end);
        self.pos = end;
        match bytes.get(end) {
            _ if end == start => {
                return Err(LinkError::new(LinkErrorKind::InvalidParamName, start));
            }
            None | Some(b'=' | b';' | b',') => {}
            Some(&b) if is_ws(b) => {}
            Some(_) => return Err(LinkError::new(LinkErrorKind::InvalidParamName, end)),
        }
        self.skip_ws();
        match self.peek() {
            Some(b'=') => {
                self.pos += 1;
                self.skip_ws();
                let value = self.value()?;
                Ok(Attr {
                    name,
                    value: Some(value),
                })
            }
            None | Some(b';' | b',') => Ok(Attr { name, value: None }),
            Some(_) => Err(LinkError::new(LinkErrorKind::ExpectedSeparator, self.pos)),
        }
    }

    fn value(&mut self) -> Result<AttrValue<'a>, LinkError> {
        let bytes = self.src.as_bytes();
        let start = self.pos;
        if self.peek() == Some(b'"') {
            let mut i = start + 1;
            loop {
                match bytes.get(i) {
                    None => return Err(LinkError::new(LinkErrorKind::UnterminatedQuote, start)),
                    Some(b'"') => break,
                    Some(b'\\') => match bytes.get(i + 1) {
                        None => {
                            return Err(LinkError::new(LinkErrorKind::UnterminatedQuote, start));
                        }
                        Some(&b) if is_bad_quoted(b) => {
                            return Err(LinkError::new(LinkErrorKind::InvalidQuotedChar, i + 1));
                        }
                        // A multi-byte escaped character continues with
                        // bytes >= 0x80, which the loop passes over.
                        Some(_) => i += 2,
                    },
                    Some(&b) if is_bad_quoted(b) => {
                        return Err(LinkError::new(LinkErrorKind::InvalidQuotedChar, i));
                    }
                    Some(_) => i += 1,
                }
            }
            self.pos = i + 1;
            return Ok(AttrValue {
                raw: self.slice(start + 1, i),
                quoted: true,
            });
        }
        let end = scan_ptoken(bytes, start);
        match bytes.get(end) {
            _ if end == start => return Err(LinkError::new(LinkErrorKind::InvalidValue, start)),
            None | Some(b';' | b',') => {}
            Some(&b) if is_ws(b) => {}
            Some(_) => return Err(LinkError::new(LinkErrorKind::InvalidValue, end)),
        }
        self.pos = end;
        Ok(AttrValue {
            raw: self.slice(start, end),
            quoted: false,
        })
    }
}

/// The fallible link iterator behind [`LinkFormat::parse`] and [`Links`].
#[derive(Clone, Debug)]
struct RawLinks<'a> {
    lex: Lexer<'a>,
    first: bool,
    done: bool,
}

impl<'a> RawLinks<'a> {
    const fn new(src: &'a str) -> Self {
        Self {
            lex: Lexer::new(src),
            first: true,
            done: false,
        }
    }
}

impl<'a> Iterator for RawLinks<'a> {
    type Item = Result<Link<'a>, LinkError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.lex.skip_ws();
        match self.lex.peek() {
            None => {
                self.done = true;
                return None;
            }
            Some(b',') if !self.first => {
                self.lex.pos += 1;
                self.lex.skip_ws();
            }
            Some(_) if !self.first => {
                self.done = true;
                return Some(Err(LinkError::new(
                    LinkErrorKind::ExpectedSeparator,
                    self.lex.pos,
                )));
            }
            _ => {}
        }
        self.first = false;
        let r = self.lex.link();
        if r.is_err() {
            self.done = true;
        }
        Some(r)
    }
}

// ---------------------------------------------------------------------------
// Documents

/// A validated `application/link-format` document (RFC 6690 §2).
///
/// Created by [`LinkFormat::parse`], which checks the whole document once.
/// Iterating it is then infallible and yields [`Link`]s that borrow the
/// text. `LinkFormat` is `Copy` (one `&str`).
///
/// Equality is structural: same targets, same attribute names (ignoring
/// ASCII case) and same unescaped values, in order. Whitespace and the
/// quoting of values do not matter. [`Display`](fmt::Display) writes the
/// canonical form: no whitespace, quoted values re-escaped minimally, each
/// value in the form (token or quoted) it was given in.
///
/// ```
/// use coap_proto::message::link::LinkFormat;
/// // RFC 6690 §5, with the line breaks of the RFC.
/// let doc = LinkFormat::parse("</sensors/temp>;if=\"sensor\",\n</sensors/light>;if=\"sensor\"")?;
/// let targets: Vec<_> = doc.links().map(|l| l.target()).collect();
/// assert_eq!(targets, ["/sensors/temp", "/sensors/light"]);
/// assert_eq!(doc.to_string(), r#"</sensors/temp>;if="sensor",</sensors/light>;if="sensor""#);
/// assert_eq!(doc, LinkFormat::parse(r#"</sensors/temp>;if=sensor, </sensors/light> ; IF="sensor""#)?);
/// # Ok::<(), coap_proto::message::link::LinkError>(())
/// ```
#[derive(Clone, Copy)]
pub struct LinkFormat<'a> {
    src: &'a str,
}

impl<'a> LinkFormat<'a> {
    /// Parses and validates a document. See the [module docs](self) for the
    /// accepted syntax. An empty document is valid and has no links.
    ///
    /// ```
    /// use coap_proto::message::link::{LinkErrorKind, LinkFormat};
    /// assert_eq!(LinkFormat::parse("")?.links().count(), 0);
    /// let err = LinkFormat::parse("</a>;r@t=1").unwrap_err();
    /// assert_eq!((err.kind, err.offset), (LinkErrorKind::InvalidParamName, 6));
    /// # Ok::<(), coap_proto::message::link::LinkError>(())
    /// ```
    pub fn parse(src: &'a str) -> Result<Self, LinkError> {
        for link in RawLinks::new(src) {
            link?;
        }
        Ok(Self { src })
    }

    /// Parses a payload: checks that it is UTF-8
    /// ([`LinkErrorKind::InvalidUtf8`] at the first bad byte otherwise),
    /// then [`parse`](Self::parse)s it.
    ///
    /// ```
    /// use coap_proto::message::link::{LinkErrorKind, LinkFormat};
    /// assert_eq!(LinkFormat::parse_bytes(b"</a>;ct=40")?.links().count(), 1);
    /// let err = LinkFormat::parse_bytes(b"</\xff>").unwrap_err();
    /// assert_eq!((err.kind, err.offset), (LinkErrorKind::InvalidUtf8, 2));
    /// # Ok::<(), coap_proto::message::link::LinkError>(())
    /// ```
    pub fn parse_bytes(src: &'a [u8]) -> Result<Self, LinkError> {
        let s = core::str::from_utf8(src)
            .map_err(|e| LinkError::new(LinkErrorKind::InvalidUtf8, e.valid_up_to()))?;
        Self::parse(s)
    }

    /// The document text, as given to `parse`.
    ///
    /// ```
    /// # use coap_proto::message::link::LinkFormat;
    /// assert_eq!(LinkFormat::parse(" </a> ")?.as_str(), " </a> ");
    /// # Ok::<(), coap_proto::message::link::LinkError>(())
    /// ```
    #[must_use]
    pub const fn as_str(&self) -> &'a str {
        self.src
    }

    /// The links, in document order.
    ///
    /// ```
    /// # use coap_proto::message::link::LinkFormat;
    /// let doc = LinkFormat::parse("</a>,</b>")?;
    /// assert_eq!(doc.links().map(|l| l.target()).collect::<Vec<_>>(), ["/a", "/b"]);
    /// # Ok::<(), coap_proto::message::link::LinkError>(())
    /// ```
    #[must_use]
    pub fn links(&self) -> Links<'a> {
        Links {
            inner: RawLinks::new(self.src),
        }
    }

    /// Whether the document has no links.
    ///
    /// ```
    /// # use coap_proto::message::link::LinkFormat;
    /// assert!(LinkFormat::parse(" \r\n")?.is_empty());
    /// assert!(!LinkFormat::parse("<>")?.is_empty());
    /// # Ok::<(), coap_proto::message::link::LinkError>(())
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.links().next().is_none()
    }

    /// Writes the links that match `filter` (all links for `None`) to `out`
    /// in canonical form, and returns how many were written. This is the
    /// body of a `/.well-known/core` response to a filtered GET
    /// (RFC 6690 §4.1); a multicast request whose filter matched nothing
    /// (a return of 0) should not be answered.
    ///
    /// ```
    /// use coap_proto::message::link::{Filter, LinkFormat};
    /// let doc = LinkFormat::parse(r#"</a>;rt="x y",</b>;rt=z"#)?;
    /// let mut out = String::new();
    /// let n = doc.write_filtered(Some(&Filter::parse("rt=y")?), &mut out)?;
    /// assert_eq!((n, out.as_str()), (1, r#"</a>;rt="x y""#));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_filtered<W: fmt::Write>(
        &self,
        filter: Option<&Filter<'_>>,
        out: W,
    ) -> Result<usize, fmt::Error> {
        let mut w = LinkWriter::new(out);
        for link in self.links() {
            if filter.is_none_or(|f| f.matches(&link)) {
                w.copy(&link).map_err(|_| fmt::Error)?;
            }
        }
        Ok(w.count())
    }
}

impl<'a> IntoIterator for LinkFormat<'a> {
    type Item = Link<'a>;
    type IntoIter = Links<'a>;
    fn into_iter(self) -> Links<'a> {
        self.links()
    }
}

impl PartialEq for LinkFormat<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.links().eq(other.links())
    }
}

impl Eq for LinkFormat<'_> {}

impl Hash for LinkFormat<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for link in self.links() {
            link.hash(state);
        }
    }
}

impl fmt::Debug for LinkFormat<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.links()).finish()
    }
}

impl fmt::Display for LinkFormat<'_> {
    /// The canonical serialization (see [`LinkFormat`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_filtered(None, f).map(|_| ())
    }
}

/// The links of a [`LinkFormat`], from [`LinkFormat::links`].
///
/// ```
/// # use coap_proto::message::link::LinkFormat;
/// let mut links = LinkFormat::parse("</a>")?.links();
/// assert_eq!(links.next().map(|l| l.target()), Some("/a"));
/// assert!(links.next().is_none());
/// # Ok::<(), coap_proto::message::link::LinkError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Links<'a> {
    inner: RawLinks<'a>,
}

impl<'a> Iterator for Links<'a> {
    type Item = Link<'a>;
    fn next(&mut self) -> Option<Link<'a>> {
        // The document was validated, so errors do not occur; if one did,
        // iteration would simply end.
        self.inner.next()?.ok()
    }
}

impl FusedIterator for Links<'_> {}

// ---------------------------------------------------------------------------
// Links

/// One link-value: a target URI-Reference and its attributes
/// (link-params).
///
/// Equality compares the target bitwise and the attributes in order (see
/// [`Attr`]). [`Display`](fmt::Display) writes the canonical form.
///
/// ```
/// use coap_proto::message::link::LinkFormat;
/// let doc = LinkFormat::parse(r#"</obs>;obs;rt="observe";ct=0"#)?;
/// let link = doc.links().next().unwrap();
/// assert_eq!(link.target(), "/obs");
/// assert!(link.attr("obs").is_some_and(|a| a.value.is_none()));
/// assert!(link.value("rt").is_some_and(|v| v.eq_str("observe")));
/// assert_eq!(link.to_string(), r#"</obs>;obs;rt="observe";ct=0"#);
/// # Ok::<(), coap_proto::message::link::LinkError>(())
/// ```
#[derive(Clone, Copy)]
pub struct Link<'a> {
    target: &'a str,
    /// The validated parameter text after `>`.
    params: &'a str,
}

impl<'a> Link<'a> {
    /// The target URI-Reference, between `<` and `>`, as written (not
    /// percent-decoded or resolved).
    ///
    /// ```
    /// # use coap_proto::message::link::LinkFormat;
    /// let doc = LinkFormat::parse("<coap://[::1]/a%20b>")?;
    /// assert_eq!(doc.links().next().unwrap().target(), "coap://[::1]/a%20b");
    /// # Ok::<(), coap_proto::message::link::LinkError>(())
    /// ```
    #[must_use]
    pub const fn target(&self) -> &'a str {
        self.target
    }

    /// The attributes, in order, including repeats.
    ///
    /// ```
    /// # use coap_proto::message::link::LinkFormat;
    /// let doc = LinkFormat::parse("</a>;ct=40;obs")?;
    /// let names: Vec<_> = doc.links().next().unwrap().attrs().map(|a| a.name).collect();
    /// assert_eq!(names, ["ct", "obs"]);
    /// # Ok::<(), coap_proto::message::link::LinkError>(())
    /// ```
    #[must_use]
    pub fn attrs(&self) -> Attrs<'a> {
        Attrs {
            lex: Lexer::new(self.params),
        }
    }

    /// The first attribute called `name` (ASCII case-insensitive).
    ///
    /// ```
    /// # use coap_proto::message::link::LinkFormat;
    /// let doc = LinkFormat::parse("</a>;obs;rt=x;rt=y")?;
    /// let link = doc.links().next().unwrap();
    /// assert!(link.attr("OBS").is_some());
    /// assert!(link.attr("rt").unwrap().value.unwrap().eq_str("x"));
    /// assert!(link.attr("if").is_none());
    /// # Ok::<(), coap_proto::message::link::LinkError>(())
    /// ```
    #[must_use]
    pub fn attr(&self, name: &str) -> Option<Attr<'a>> {
        self.attrs().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The value of the first attribute called `name`; `None` if there is
    /// no such attribute or it has no value.
    ///
    /// ```
    /// # use coap_proto::message::link::LinkFormat;
    /// let doc = LinkFormat::parse(r#"</fw>;rt="firmware";sz=262144;obs"#)?;
    /// let link = doc.links().next().unwrap();
    /// assert_eq!(link.value("sz").and_then(|v| v.to_uint()), Some(262_144));
    /// assert!(link.value("obs").is_none());
    /// # Ok::<(), coap_proto::message::link::LinkError>(())
    /// ```
    #[must_use]
    pub fn value(&self, name: &str) -> Option<AttrValue<'a>> {
        self.attr(name).and_then(|a| a.value)
    }

    /// Whether any attribute called `name` has `word` among the
    /// space-separated words of its value (see [`AttrValue::words`]).
    ///
    /// ```
    /// # use coap_proto::message::link::LinkFormat;
    /// let doc = LinkFormat::parse(r#"</link1>;rt="Type1 Type2";if="If1""#)?;
    /// let link = doc.links().next().unwrap();
    /// assert!(link.has_word("rt", "Type2"));
    /// assert!(!link.has_word("rt", "Type"));
    /// # Ok::<(), coap_proto::message::link::LinkError>(())
    /// ```
    #[must_use]
    pub fn has_word(&self, name: &str, word: &str) -> bool {
        self.attrs()
            .filter(|a| a.name.eq_ignore_ascii_case(name))
            .filter_map(|a| a.value)
            .any(|v| v.words().any(|w| w.eq_str(word)))
    }
}

impl PartialEq for Link<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.target == other.target && self.attrs().eq(other.attrs())
    }
}

impl Eq for Link<'_> {}

impl Hash for Link<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.target.hash(state);
        for a in self.attrs() {
            a.hash(state);
        }
    }
}

impl fmt::Debug for Link<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct AttrList<'a>(Attrs<'a>);
        impl fmt::Debug for AttrList<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.0.clone()).finish()
            }
        }
        f.debug_struct("Link")
            .field("target", &self.target)
            .field("attrs", &AttrList(self.attrs()))
            .finish()
    }
}

impl fmt::Display for Link<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        LinkWriter::new(f).copy(self).map_err(|_| fmt::Error)
    }
}

/// The attributes of a [`Link`], from [`Link::attrs`].
///
/// ```
/// # use coap_proto::message::link::LinkFormat;
/// let doc = LinkFormat::parse("</a>;ct=40")?;
/// let mut attrs = doc.links().next().unwrap().attrs();
/// assert_eq!(attrs.next().map(|a| a.name), Some("ct"));
/// assert!(attrs.next().is_none());
/// # Ok::<(), coap_proto::message::link::LinkError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Attrs<'a> {
    lex: Lexer<'a>,
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Attr<'a>;
    fn next(&mut self) -> Option<Attr<'a>> {
        let a = self.lex.next_param();
        if a.is_none() {
            // Fused: park the lexer at the end.
            self.lex.pos = self.lex.src.len();
        }
        a
    }
}

impl FusedIterator for Attrs<'_> {}

/// One link-param: a name and, unless it is a flag like `obs`, a value.
///
/// Equality compares names ignoring ASCII case and values as
/// [`AttrValue`] does. [`Display`](fmt::Display) writes the canonical
/// `name` or `name=value` form (without the leading `;`).
///
/// ```
/// # use coap_proto::message::link::LinkFormat;
/// let doc = LinkFormat::parse(r#"</a>;title="say \"hi\"";obs"#)?;
/// let attrs: Vec<_> = doc.links().next().unwrap().attrs().collect();
/// assert_eq!(attrs[0].name, "title");
/// assert_eq!(attrs[0].value.unwrap().to_string(), r#"say "hi""#);
/// assert_eq!(attrs[0].to_string(), r#"title="say \"hi\"""#);
/// assert_eq!((attrs[1].name, attrs[1].value), ("obs", None));
/// # Ok::<(), coap_proto::message::link::LinkError>(())
/// ```
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Attr<'a> {
    /// The parameter name, as written.
    pub name: &'a str,
    /// The value; `None` for a parameter without `=`.
    pub value: Option<AttrValue<'a>>,
}

impl PartialEq for Attr<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.name.eq_ignore_ascii_case(other.name) && self.value == other.value
    }
}

impl Eq for Attr<'_> {}

impl Hash for Attr<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for b in self.name.bytes() {
            state.write_u8(b.to_ascii_lowercase());
        }
        state.write_u8(0xff);
        self.value.hash(state);
    }
}

impl fmt::Display for Attr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)?;
        if let Some(v) = self.value {
            f.write_str("=")?;
            v.write_canonical(f)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Values

/// An attribute value: a token, or a quoted string that may contain
/// `\`-escapes. Nothing is unescaped or copied up front; the methods work on
/// the unescaped value without allocating.
///
/// Equality compares the unescaped text, whatever the quoting (RFC 8288 §3
/// makes the token and quoted forms equivalent). [`Display`](fmt::Display)
/// writes the unescaped value.
///
/// ```
/// # use coap_proto::message::link::LinkFormat;
/// let doc = LinkFormat::parse(r#"</a>;rt="a\"b c",</b>;rt=x"#)?;
/// let v = doc.links().next().unwrap().value("rt").unwrap();
/// assert!(v.is_quoted());
/// assert_eq!(v.raw(), r#"a\"b c"#);
/// assert!(v.eq_str(r#"a"b c"#));
/// assert!(v.starts_with("a\""));
/// assert_eq!(v.to_string(), r#"a"b c"#);
/// assert_eq!(v.words().count(), 2);
/// # Ok::<(), coap_proto::message::link::LinkError>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct AttrValue<'a> {
    /// Token text, or the text between the quotes with escapes kept.
    raw: &'a str,
    quoted: bool,
}

impl<'a> AttrValue<'a> {
    /// The value as written: the token, or the text between the quotes with
    /// its escapes.
    ///
    /// ```
    /// # use coap_proto::message::link::LinkFormat;
    /// let doc = LinkFormat::parse(r#"</a>;t="\x""#)?;
    /// assert_eq!(doc.links().next().unwrap().value("t").unwrap().raw(), r"\x");
    /// # Ok::<(), coap_proto::message::link::LinkError>(())
    /// ```
    #[must_use]
    pub const fn raw(&self) -> &'a str {
        self.raw
    }

    /// Whether the value was a quoted string.
    ///
    /// ```
    /// # use coap_proto::message::link::LinkFormat;
    /// let doc = LinkFormat::parse(r#"</a>;ct=40;rt="x""#)?;
    /// let link = doc.links().next().unwrap();
    /// assert!(!link.value("ct").unwrap().is_quoted());
    /// assert!(link.value("rt").unwrap().is_quoted());
    /// # Ok::<(), coap_proto::message::link::LinkError>(())
    /// ```
    #[must_use]
    pub const fn is_quoted(&self) -> bool {
        self.quoted
    }

    fn has_escapes(&self) -> bool {
        self.quoted && self.raw.contains('\\')
    }

    /// The unescaped value as a borrowed string, when it has no escapes
    /// (the common case); `None` when unescaping would change it.
    ///
    /// ```
    /// # use coap_proto::message::link::LinkFormat;
    /// let doc = LinkFormat::parse(r#"</a>;a="x y";b="\"""#)?;
    /// let link = doc.links().next().unwrap();
    /// assert_eq!(link.value("a").unwrap().as_str(), Some("x y"));
    /// assert_eq!(link.value("b").unwrap().as_str(), None);
    /// # Ok::<(), coap_proto::message::link::LinkError>(())
    /// ```
    #[must_use]
    pub fn as_str(&self) -> Option<&'a str> {
        (!self.has_escapes()).then_some(self.raw)
    }

    /// The unescaped characters.
    ///
    /// ```
    /// # use coap_proto::message::link::LinkFormat;
    /// let doc = LinkFormat::parse(r#"</a>;t="1\\2""#)?;
    /// let v = doc.links().next().unwrap().value("t").unwrap();
    /// assert!(v.unescaped().eq("1\\2".chars()));
    /// # Ok::<(), coap_proto::message::link::LinkError>(())
    /// ```
    #[must_use]
    pub const fn unescaped(&self) -> Unescaped<'a> {
        Unescaped {
            rest: self.raw,
            quoted: self.quoted,
        }
    }

    /// Whether the unescaped value equals `s` bitwise.
    ///
    /// ```
    /// # use coap_proto::message::link::LinkFormat;
    /// let doc = LinkFormat::parse(r#"</a>;t="\a\b""#)?;
    /// assert!(doc.links().next().unwrap().value("t").unwrap().eq_str("ab"));
    /// # Ok::<(), coap_proto::message::link::LinkError>(())
    /// ```
    #[must_use]
    pub fn eq_str(&self, s: &str) -> bool {
        match self.as_str() {
            Some(plain) => plain == s,
            None => self.unescaped().eq(s.chars()),
        }
    }

    /// Whether `prefix` is a bitwise prefix of the unescaped value (any
    /// value starts with `""`).
    ///
    /// ```
    /// # use coap_proto::message::link::LinkFormat;
    /// let doc = LinkFormat::parse("</a>;rt=temperature-c")?;
    /// let v = doc.links().next().unwrap().value("rt").unwrap();
    /// assert!(v.starts_with("temp") && v.starts_with("") && !v.starts_with("c"));
    /// # Ok::<(), coap_proto::message::link::LinkError>(())
    /// ```
    #[must_use]
    pub fn starts_with(&self, prefix: &str) -> bool {
        if let Some(plain) = self.as_str() {
            return plain.starts_with(prefix);
        }
        let mut chars = self.unescaped();
        prefix.chars().all(|c| chars.next() == Some(c))
    }

    /// The words of the unescaped value, separated by one or more spaces
    /// (`1*SP` in the RFC 6690 §2 `relation-types` grammar), as values of
    /// their own. A token value is a single word. An escaped space (`\ `)
    /// separates words too, since values are unescaped before they are
    /// split (RFC 6690 §4.1).
    ///
    /// ```
    /// # use coap_proto::message::link::LinkFormat;
    /// let doc = LinkFormat::parse(r#"</a>;rt=" light-lux  core.sen-light""#)?;
    /// let v = doc.links().next().unwrap().value("rt").unwrap();
    /// let words: Vec<_> = v.words().map(|w| w.raw()).collect();
    /// assert_eq!(words, ["light-lux", "core.sen-light"]);
    /// # Ok::<(), coap_proto::message::link::LinkError>(())
    /// ```
    #[must_use]
    pub const fn words(&self) -> Words<'a> {
        Words {
            rest: self.raw,
            quoted: self.quoted,
        }
    }

    /// The value as a decimal integer (`cardinal`, as `sz` and `ct` use),
    /// or `None` if it is not one or exceeds `u64`. Leading zeros are
    /// accepted.
    ///
    /// ```
    /// # use coap_proto::message::link::LinkFormat;
    /// let doc = LinkFormat::parse(r#"</a>;sz=262144;ct="40";rt=x"#)?;
    /// let link = doc.links().next().unwrap();
    /// assert_eq!(link.value("sz").unwrap().to_uint(), Some(262_144));
    /// assert_eq!(link.value("ct").unwrap().to_uint(), Some(40));
    /// assert_eq!(link.value("rt").unwrap().to_uint(), None);
    /// # Ok::<(), coap_proto::message::link::LinkError>(())
    /// ```
    #[must_use]
    pub fn to_uint(&self) -> Option<u64> {
        let mut n: u64 = 0;
        let mut any = false;
        for c in self.unescaped() {
            let d = c.to_digit(10)?;
            n = n.checked_mul(10)?.checked_add(u64::from(d))?;
            any = true;
        }
        any.then_some(n)
    }

    /// Writes the value in the form it was given: the token, or a quoted
    /// string with only `"` and `\` escaped.
    fn write_canonical<W: fmt::Write>(&self, out: &mut W) -> fmt::Result {
        if !self.quoted {
            return out.write_str(self.raw);
        }
        out.write_char('"')?;
        if self.has_escapes() {
            // Drop backslashes that escape anything but `"` and `\`.
            let bytes = self.raw.as_bytes();
            let (mut start, mut i) = (0, 0);
            while let Some(&b) = bytes.get(i) {
                if b == b'\\' {
                    if !matches!(bytes.get(i + 1), Some(b'"' | b'\\')) {
                        out.write_str(self.raw.get(start..i).unwrap_or_default())?;
                        start = i + 1;
                    }
                    i += 2;
                } else {
                    i += 1;
                }
            }
            out.write_str(self.raw.get(start..).unwrap_or_default())?;
        } else {
            write_escaped(self.raw, out)?;
        }
        out.write_char('"')
    }
}

impl PartialEq for AttrValue<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self.as_str(), other.as_str()) {
            (Some(a), Some(b)) => a == b,
            _ => self.unescaped().eq(other.unescaped()),
        }
    }
}

impl Eq for AttrValue<'_> {}

impl Hash for AttrValue<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for c in self.unescaped() {
            state.write_u32(u32::from(c));
        }
        state.write_u32(u32::MAX);
    }
}

impl fmt::Display for AttrValue<'_> {
    /// The unescaped value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.unescaped(), f)
    }
}

/// The unescaped characters of an [`AttrValue`], from
/// [`AttrValue::unescaped`]. Also [`Display`](fmt::Display)s the remaining
/// characters.
///
/// ```
/// # use coap_proto::message::link::LinkFormat;
/// let doc = LinkFormat::parse(r#"</a>;t="\"q\"""#)?;
/// let u = doc.links().next().unwrap().value("t").unwrap().unescaped();
/// assert_eq!(u.to_string(), "\"q\"");
/// assert_eq!(u.count(), 3);
/// # Ok::<(), coap_proto::message::link::LinkError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Unescaped<'a> {
    rest: &'a str,
    quoted: bool,
}

impl Iterator for Unescaped<'_> {
    type Item = char;
    fn next(&mut self) -> Option<char> {
        let mut chars = self.rest.chars();
        let mut c = chars.next()?;
        if self.quoted && c == '\\' {
            c = chars.next()?;
        }
        self.rest = chars.as_str();
        Some(c)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::from(!self.rest.is_empty()), Some(self.rest.len()))
    }
}

impl FusedIterator for Unescaped<'_> {}

impl fmt::Display for Unescaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.quoted {
            return f.write_str(self.rest);
        }
        let mut rest = self.rest;
        while let Some((before, after)) = rest.split_once('\\') {
            f.write_str(before)?;
            let mut chars = after.chars();
            if let Some(c) = chars.next() {
                fmt::Write::write_char(f, c)?;
            }
            rest = chars.as_str();
        }
        f.write_str(rest)
    }
}

/// The space-separated words of an [`AttrValue`], from
/// [`AttrValue::words`]. Empty words (runs of spaces) are skipped.
///
/// ```
/// # use coap_proto::message::link::LinkFormat;
/// let doc = LinkFormat::parse(r#"</a>;if="If1 If2""#)?;
/// let mut words = doc.links().next().unwrap().value("if").unwrap().words();
/// assert!(words.next().unwrap().eq_str("If1"));
/// assert!(words.next().unwrap().eq_str("If2"));
/// assert!(words.next().is_none());
/// # Ok::<(), coap_proto::message::link::LinkError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Words<'a> {
    rest: &'a str,
    quoted: bool,
}

impl<'a> Iterator for Words<'a> {
    type Item = AttrValue<'a>;
    fn next(&mut self) -> Option<AttrValue<'a>> {
        let bytes = self.rest.as_bytes();
        let escaped_space = |i: usize| {
            self.quoted && bytes.get(i) == Some(&b'\\') && bytes.get(i + 1) == Some(&b' ')
        };
        let mut i = 0;
        loop {
            if bytes.get(i) == Some(&b' ') {
                i += 1;
            } else if escaped_space(i) {
                i += 2;
            } else {
                break;
            }
        }
        let start = i;
        if start >= bytes.len() {
            self.rest = "";
            return None;
        }
        // Only ASCII bytes stop the scan, so `i` stays on a char boundary;
        // an escape skips its escaped byte (a lead byte if multi-byte).
        while let Some(&b) = bytes.get(i) {
            if b == b' ' || escaped_space(i) {
                break;
            }
            i += if self.quoted && b == b'\\' { 2 } else { 1 };
        }
        let end = i.min(bytes.len());
        let word = self.rest.get(start..end).unwrap_or_default();
        self.rest = self.rest.get(end..).unwrap_or_default();
        Some(AttrValue {
            raw: word,
            quoted: self.quoted,
        })
    }
}

impl FusedIterator for Words<'_> {}

/// Writes `s` with `"` and `\` backslash-escaped.
fn write_escaped<W: fmt::Write>(s: &str, out: &mut W) -> fmt::Result {
    let mut rest = s;
    while let Some(i) = rest.find(['"', '\\']) {
        let (before, after) = rest.split_at_checked(i).unwrap_or((rest, ""));
        out.write_str(before)?;
        out.write_char('\\')?;
        let mut chars = after.chars();
        if let Some(c) = chars.next() {
            out.write_char(c)?;
        }
        rest = chars.as_str();
    }
    out.write_str(rest)
}

// ---------------------------------------------------------------------------
// Writer

/// Serializes links into a [`fmt::Write`] (a `String`, a
/// [`fmt::Formatter`], or a fixed buffer adapter on `no_std`), inserting
/// the `,` between links.
///
/// Arguments are checked before anything is written, so an invalid target,
/// name or value returns [`WriteError::Invalid`] and leaves the output as
/// it was. The output has no whitespace and parses back with
/// [`LinkFormat::parse`] into the same links.
///
/// ```
/// use coap_proto::message::link::{LinkFormat, LinkWriter};
/// let mut out = String::new();
/// let mut w = LinkWriter::new(&mut out);
/// w.link("/sensors")?.attr_uint("ct", 40)?.attr("title", "Sensor Index")?;
/// let mut temp = w.link("/sensors/temp")?;
/// temp.attr("rt", "temperature-c")?;
/// temp.attr("if", "sensor")?;
/// assert_eq!(w.count(), 2);
/// assert_eq!(
///     out,
///     r#"</sensors>;ct=40;title="Sensor Index",</sensors/temp>;rt="temperature-c";if="sensor""#
/// );
/// assert_eq!(LinkFormat::parse(&out)?.links().count(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct LinkWriter<W> {
    out: W,
    count: usize,
}

impl<W: fmt::Write> LinkWriter<W> {
    /// A writer that appends to `out` (a `&mut String` works).
    ///
    /// ```
    /// # use coap_proto::message::link::LinkWriter;
    /// let w = LinkWriter::new(String::new());
    /// assert_eq!(w.count(), 0);
    /// ```
    pub const fn new(out: W) -> Self {
        Self { out, count: 0 }
    }

    /// Starts a link to `target` (a URI-Reference, written as is) and
    /// returns a builder for its attributes. The previous link, if any, is
    /// complete.
    ///
    /// ```
    /// # use coap_proto::message::link::{LinkErrorKind, LinkWriter, WriteError};
    /// let mut out = String::new();
    /// let mut w = LinkWriter::new(&mut out);
    /// w.link("/a")?;
    /// w.link("coap://[::1]:5683/b?x=1,2")?;
    /// assert!(matches!(w.link("/a b"), Err(WriteError::Invalid(e)) if e.offset == 2));
    /// assert_eq!(out, "</a>,<coap://[::1]:5683/b?x=1,2>");
    /// # Ok::<(), WriteError>(())
    /// ```
    pub fn link(&mut self, target: &str) -> Result<LinkBuilder<'_, W>, WriteError> {
        let end = scan_target(target.as_bytes(), 0)
            .map_err(|at| LinkError::new(LinkErrorKind::InvalidTarget, at))?;
        if end != target.len() {
            return Err(LinkError::new(LinkErrorKind::InvalidTarget, end).into());
        }
        if self.count > 0 {
            self.out.write_char(',')?;
        }
        self.out.write_char('<')?;
        self.out.write_str(target)?;
        self.out.write_char('>')?;
        self.count += 1;
        Ok(LinkBuilder { w: self })
    }

    /// Copies a parsed link in canonical form (each value keeps its token
    /// or quoted form).
    ///
    /// ```
    /// # use coap_proto::message::link::{LinkFormat, LinkWriter};
    /// let doc = LinkFormat::parse("</a> ; rt=\"x\\y\" ;ct=0")?;
    /// let mut out = String::new();
    /// LinkWriter::new(&mut out).copy(&doc.links().next().unwrap())?;
    /// assert_eq!(out, r#"</a>;rt="xy";ct=0"#);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn copy(&mut self, link: &Link<'_>) -> Result<(), WriteError> {
        let mut b = self.link(link.target())?;
        for a in link.attrs() {
            b.copy_attr(&a)?;
        }
        Ok(())
    }

    /// How many links were started so far.
    ///
    /// ```
    /// # use coap_proto::message::link::LinkWriter;
    /// let mut w = LinkWriter::new(String::new());
    /// w.link("/a")?;
    /// assert_eq!(w.count(), 1);
    /// # Ok::<(), coap_proto::message::link::WriteError>(())
    /// ```
    #[must_use]
    pub const fn count(&self) -> usize {
        self.count
    }

    /// The underlying output.
    ///
    /// ```
    /// # use coap_proto::message::link::LinkWriter;
    /// let mut w = LinkWriter::new(String::new());
    /// w.link("/a")?.attr_flag("obs")?;
    /// assert_eq!(w.into_inner(), "</a>;obs");
    /// # Ok::<(), coap_proto::message::link::WriteError>(())
    /// ```
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Adds attributes to the link just started with [`LinkWriter::link`].
/// Each method appends `;name...` and returns the builder for chaining.
///
/// ```
/// # use coap_proto::message::link::LinkWriter;
/// let mut w = LinkWriter::new(String::new());
/// w.link("/obs")?.attr_flag("obs")?.attr("rt", "observe")?.attr_token("ct", "0")?;
/// assert_eq!(w.into_inner(), r#"</obs>;obs;rt="observe";ct=0"#);
/// # Ok::<(), coap_proto::message::link::WriteError>(())
/// ```
#[derive(Debug)]
pub struct LinkBuilder<'w, W> {
    w: &'w mut LinkWriter<W>,
}

impl<W: fmt::Write> LinkBuilder<'_, W> {
    fn start(&mut self, name: &str) -> Result<(), WriteError> {
        let out = &mut self.w.out;
        out.write_char(';')?;
        out.write_str(name)?;
        Ok(())
    }

    /// Appends `;name="value"`, escaping `"` and `\`. Use it for `rt`,
    /// `if`, `title`, `anchor` and other free text; several `rt`/`if`
    /// values go in one space-separated string. Control characters other
    /// than tab cannot be written ([`LinkErrorKind::InvalidQuotedChar`]).
    ///
    /// ```
    /// # use coap_proto::message::link::LinkWriter;
    /// let mut w = LinkWriter::new(String::new());
    /// w.link("/a")?.attr("rt", "Type1 Type2")?.attr("title", r#"a "b" \c"#)?;
    /// assert_eq!(w.into_inner(), r#"</a>;rt="Type1 Type2";title="a \"b\" \\c""#);
    /// # Ok::<(), coap_proto::message::link::WriteError>(())
    /// ```
    pub fn attr(&mut self, name: &str, value: &str) -> Result<&mut Self, WriteError> {
        check_name(name)?;
        if let Some(at) = value.bytes().position(is_bad_quoted) {
            return Err(LinkError::new(LinkErrorKind::InvalidQuotedChar, at).into());
        }
        self.start(name)?;
        let out = &mut self.w.out;
        out.write_str("=\"")?;
        write_escaped(value, out)?;
        out.write_char('"')?;
        Ok(self)
    }

    /// Appends `;name=token` unquoted. `token` must be a non-empty
    /// `ptoken` (RFC 6690 §2: ASCII letters, digits and
    /// ``!#$%&'()*+-./:<=>?@[]^_`{|}~``).
    ///
    /// ```
    /// # use coap_proto::message::link::{LinkErrorKind, LinkWriter, WriteError};
    /// let mut w = LinkWriter::new(String::new());
    /// w.link("/a")?.attr_token("ct", "40")?;
    /// let err = w.link("/b")?.attr_token("rt", "a b").unwrap_err();
    /// assert!(matches!(err, WriteError::Invalid(e) if e.kind == LinkErrorKind::InvalidValue));
    /// assert_eq!(w.into_inner(), "</a>;ct=40,</b>");
    /// # Ok::<(), WriteError>(())
    /// ```
    pub fn attr_token(&mut self, name: &str, token: &str) -> Result<&mut Self, WriteError> {
        check_name(name)?;
        let end = scan_ptoken(token.as_bytes(), 0);
        if end == 0 || end != token.len() {
            return Err(LinkError::new(LinkErrorKind::InvalidValue, end).into());
        }
        self.start(name)?;
        let out = &mut self.w.out;
        out.write_char('=')?;
        out.write_str(token)?;
        Ok(self)
    }

    /// Appends `;name=N` with a decimal number, for `ct` and `sz`.
    ///
    /// ```
    /// # use coap_proto::message::link::LinkWriter;
    /// let mut w = LinkWriter::new(String::new());
    /// w.link("/fw")?.attr_uint("sz", 262_144)?;
    /// assert_eq!(w.into_inner(), "</fw>;sz=262144");
    /// # Ok::<(), coap_proto::message::link::WriteError>(())
    /// ```
    pub fn attr_uint(&mut self, name: &str, value: u64) -> Result<&mut Self, WriteError> {
        check_name(name)?;
        self.start(name)?;
        write!(self.w.out, "={value}")?;
        Ok(self)
    }

    /// Appends a parameter without a value, such as `obs` (RFC 7641 §7).
    ///
    /// ```
    /// # use coap_proto::message::link::LinkWriter;
    /// let mut w = LinkWriter::new(String::new());
    /// w.link("/obs")?.attr_flag("obs")?;
    /// assert_eq!(w.into_inner(), "</obs>;obs");
    /// # Ok::<(), coap_proto::message::link::WriteError>(())
    /// ```
    pub fn attr_flag(&mut self, name: &str) -> Result<&mut Self, WriteError> {
        check_name(name)?;
        self.start(name)?;
        Ok(self)
    }

    /// Appends a parsed attribute in canonical form, keeping its token or
    /// quoted form.
    ///
    /// ```
    /// # use coap_proto::message::link::{LinkFormat, LinkWriter};
    /// let doc = LinkFormat::parse(r#"</a>;ct=40;rt="x";obs"#)?;
    /// let mut w = LinkWriter::new(String::new());
    /// let mut b = w.link("/b")?;
    /// for a in doc.links().next().unwrap().attrs().filter(|a| a.name != "rt") {
    ///     b.copy_attr(&a)?;
    /// }
    /// assert_eq!(w.into_inner(), "</b>;ct=40;obs");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn copy_attr(&mut self, attr: &Attr<'_>) -> Result<&mut Self, WriteError> {
        check_name(attr.name)?;
        self.start(attr.name)?;
        if let Some(v) = attr.value {
            let out = &mut self.w.out;
            out.write_char('=')?;
            v.write_canonical(out)?;
        }
        Ok(self)
    }
}

// ---------------------------------------------------------------------------
// Filtering

/// A `/.well-known/core` query filter (RFC 6690 §4.1): one `name=value`
/// pair from a Uri-Query option.
///
/// - `href` tests the link target; any other name tests the attributes of
///   that name (ASCII case-insensitive). A link without the attribute does
///   not match.
/// - A value ending in `*` is a prefix (`rt=temp*`, and `rt=*` matches any
///   link that has an `rt`); otherwise the value must be equal. Comparison
///   is bitwise, after unescaping quoted attribute values.
/// - For the word-list attributes ([`WORD_LIST_ATTRS`]: `rel`, `rev`, `rt`,
///   `if`, `ct`), each space-separated word is tested on its own. Other
///   attributes are tested as a whole.
/// - A valueless attribute such as `obs` counts as the empty value, so
///   `obs=*` (or just `obs`) matches it.
///
/// The query is used as given: a CoAP Uri-Query option value is already
/// percent-decoded (RFC 7252 §6.4), as §4.1 requires. Link targets are
/// compared as written, without percent-decoding.
///
/// ```
/// use coap_proto::message::link::{Filter, LinkFormat};
/// // The ETSI TD_COAP_LINK resources.
/// let doc = LinkFormat::parse(concat!(
///     r#"</link1>;rt="Type1 Type2";if="If1","#,
///     r#"</link2>;rt="Type2 Type3";if="If2","#,
///     r#"</link3>;rt="Type1 Type3";if="foo""#,
/// ))?;
/// let hits = |q| {
///     let f = Filter::parse(q).unwrap();
///     doc.links().filter(|l| f.matches(l)).map(|l| l.target()).collect::<Vec<_>>()
/// };
/// assert_eq!(hits("rt=Type1"), ["/link1", "/link3"]);
/// assert_eq!(hits("if=If1"), ["/link1"]);
/// assert_eq!(hits("rt=Type*"), ["/link1", "/link2", "/link3"]);
/// assert_eq!(hits("href=/link2"), ["/link2"]);
/// # Ok::<(), coap_proto::message::link::LinkError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Filter<'q> {
    name: &'q str,
    value: &'q str,
    prefix: bool,
}

impl<'q> Filter<'q> {
    /// Parses one Uri-Query value, `name=value` or `name=prefix*`. The
    /// name must be a parameter name (or `href`); the value may be empty
    /// and may contain anything. A query without `=` (`?obs`) tests for
    /// the presence of the attribute, like `obs=*`.
    ///
    /// ```
    /// use coap_proto::message::link::{Filter, LinkErrorKind};
    /// let f = Filter::parse("rt=temp*")?;
    /// assert_eq!((f.name(), f.value(), f.is_prefix()), ("rt", "temp", true));
    /// let f = Filter::parse("obs")?;
    /// assert_eq!((f.name(), f.value(), f.is_prefix()), ("obs", "", true));
    /// let err = Filter::parse("r t=1").unwrap_err();
    /// assert_eq!((err.kind, err.offset), (LinkErrorKind::InvalidParamName, 1));
    /// # Ok::<(), coap_proto::message::link::LinkError>(())
    /// ```
    pub fn parse(query: &'q str) -> Result<Self, LinkError> {
        let (name, value) = match query.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (query, None),
        };
        check_name(name)?;
        Ok(match value {
            None => Self {
                name,
                value: "",
                prefix: true,
            },
            Some(v) => match v.strip_suffix('*') {
                Some(p) => Self {
                    name,
                    value: p,
                    prefix: true,
                },
                None => Self {
                    name,
                    value: v,
                    prefix: false,
                },
            },
        })
    }

    /// The attribute name (or `href`).
    ///
    /// ```
    /// # use coap_proto::message::link::Filter;
    /// assert_eq!(Filter::parse("href=/a*")?.name(), "href");
    /// # Ok::<(), coap_proto::message::link::LinkError>(())
    /// ```
    #[must_use]
    pub const fn name(&self) -> &'q str {
        self.name
    }

    /// The value to compare, without the trailing `*` of a prefix.
    ///
    /// ```
    /// # use coap_proto::message::link::Filter;
    /// assert_eq!(Filter::parse("rt=a*")?.value(), "a");
    /// # Ok::<(), coap_proto::message::link::LinkError>(())
    /// ```
    #[must_use]
    pub const fn value(&self) -> &'q str {
        self.value
    }

    /// Whether the value is a prefix (the query ended in `*`).
    ///
    /// ```
    /// # use coap_proto::message::link::Filter;
    /// assert!(Filter::parse("rt=*")?.is_prefix());
    /// assert!(!Filter::parse("rt=a")?.is_prefix());
    /// # Ok::<(), coap_proto::message::link::LinkError>(())
    /// ```
    #[must_use]
    pub const fn is_prefix(&self) -> bool {
        self.prefix
    }

    /// Whether `link` passes the filter (see [`Filter`]).
    ///
    /// ```
    /// use coap_proto::message::link::{Filter, LinkFormat};
    /// let doc = LinkFormat::parse(r#"</sensors/light>;rt="light-lux core.sen-light";if="sensor""#)?;
    /// let link = doc.links().next().unwrap();
    /// assert!(Filter::parse("rt=light-lux")?.matches(&link));   // RFC 6690 §5
    /// assert!(Filter::parse("rt=core.sen*")?.matches(&link));
    /// assert!(Filter::parse("href=/sensors/*")?.matches(&link));
    /// assert!(!Filter::parse("ct=*")?.matches(&link));
    /// # Ok::<(), coap_proto::message::link::LinkError>(())
    /// ```
    #[must_use]
    pub fn matches(&self, link: &Link<'_>) -> bool {
        if self.name.eq_ignore_ascii_case("href") {
            return if self.prefix {
                link.target().starts_with(self.value)
            } else {
                link.target() == self.value
            };
        }
        let words = WORD_LIST_ATTRS
            .iter()
            .any(|n| n.eq_ignore_ascii_case(self.name));
        link.attrs()
            .filter(|a| a.name.eq_ignore_ascii_case(self.name))
            .any(|a| match a.value {
                None => self.value.is_empty(),
                Some(v) if words => {
                    let mut any_word = false;
                    let hit = v.words().any(|w| {
                        any_word = true;
                        self.test(&w)
                    });
                    // A list without words is tested as its (empty) value.
                    hit || (!any_word && self.test(&v))
                }
                Some(v) => self.test(&v),
            })
    }

    fn test(&self, v: &AttrValue<'_>) -> bool {
        if self.prefix {
            v.starts_with(self.value)
        } else {
            v.eq_str(self.value)
        }
    }
}

impl fmt::Display for Filter<'_> {
    /// The query form, `name=value` or `name=prefix*`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={}{}",
            self.name,
            self.value,
            if self.prefix { "*" } else { "" }
        )
    }
}
