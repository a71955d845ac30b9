//! Link format (RFC 6690): parsing, serialization and `/.well-known/core`
//! query filtering (`coap_proto::message::link`).

use core::fmt;

use coap_proto::message::link::{
    Attr, Filter, Link, LinkErrorKind, LinkFormat, LinkWriter, WORD_LIST_ATTRS, WriteError,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Helpers

fn parse(doc: &str) -> LinkFormat<'_> {
    LinkFormat::parse(doc).unwrap_or_else(|e| panic!("{doc:?}: {e}"))
}

fn targets<'a>(doc: &LinkFormat<'a>) -> Vec<&'a str> {
    doc.links().map(|l| l.target()).collect()
}

fn nth<'a>(doc: &LinkFormat<'a>, i: usize) -> Link<'a> {
    doc.links().nth(i).expect("link")
}

/// `(name, Some((quoted, unescaped)))` for each attribute of a link.
fn attrs(link: &Link<'_>) -> Vec<(String, Option<(bool, String)>)> {
    link.attrs()
        .map(|a| {
            (
                a.name.to_string(),
                a.value.map(|v| (v.is_quoted(), v.to_string())),
            )
        })
        .collect()
}

#[allow(clippy::unnecessary_wraps)] // shaped like `Attr::value`
fn q(s: &str) -> Option<(bool, String)> {
    Some((true, s.to_string()))
}

#[allow(clippy::unnecessary_wraps)]
fn t(s: &str) -> Option<(bool, String)> {
    Some((false, s.to_string()))
}

fn err(doc: &str) -> (LinkErrorKind, usize) {
    let e = LinkFormat::parse(doc).expect_err(doc);
    (e.kind, e.offset)
}

fn filtered<'a>(doc: &LinkFormat<'a>, query: &str) -> Vec<&'a str> {
    let f = Filter::parse(query).unwrap_or_else(|e| panic!("{query:?}: {e}"));
    doc.links()
        .filter(|l| f.matches(l))
        .map(|l| l.target())
        .collect()
}

fn canonical(doc: &LinkFormat<'_>) -> String {
    let mut s = String::new();
    doc.write_filtered(None, &mut s).unwrap();
    s
}

/// A `fmt::Write` over a fixed buffer, as a `no_std` server would use.
#[derive(Debug)]
struct SliceWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// RFC 6690 §5 examples, verbatim (with the RFC's indentation and linefeeds)

const S5_SENSORS: &str = "   </sensors/temp>;if=\"sensor\",\n   </sensors/light>;if=\"sensor\"\n";
const S5_SENSORS_ONE_LINE: &str = r#"</sensors/temp>;if="sensor",</sensors/light>;if="sensor""#;
const S5_WKC_HIERARCHY: &str = "   </sensors>;ct=40\n";
const S5_SENSORS_RT: &str = "   </sensors/temp>;rt=\"temperature-c\";if=\"sensor\",\n   </sensors/light>;rt=\"light-lux\";if=\"sensor\"\n";
const S5_QUERY_RESPONSE: &str = "   </sensors/light>;rt=\"light-lux\";if=\"sensor\"\n";
const S5_MULTI_RT: &str = "   </sensors/light>;rt=\"light-lux core.sen-light\";if=\"sensor\"\n";
const S5_ANCHORS: &str = concat!(
    "   </sensors>;ct=40;title=\"Sensor Index\",\n",
    "   </sensors/temp>;rt=\"temperature-c\";if=\"sensor\",\n",
    "   </sensors/light>;rt=\"light-lux\";if=\"sensor\",\n",
    "   <http://www.example.com/sensors/t123>;anchor=\"/sensors/temp\"\n",
    "   ;rel=\"describedby\",\n",
    "   </t>;anchor=\"/sensors/temp\";rel=\"alternate\"\n",
);
const S5_ANCHOR_QUERY_RESPONSE: &str = concat!(
    "   <http://www.example.com/sensors/temp123>;anchor=\"/sensors/temp\"\n",
    "   ;rel=\"describedby\",\n",
    "   </t>;anchor=\"/sensors/temp\";rel=\"alternate\"\n",
);
const S5_FIRMWARE: &str = "   </firmware/v2.1>;rt=\"firmware\";sz=262144\n";

// RFC 6690 §5: two sensors sharing an Interface Description, with linefeeds.
#[test]
fn rfc6690_s5_sensors_with_linefeeds() {
    let doc = parse(S5_SENSORS);
    assert_eq!(targets(&doc), ["/sensors/temp", "/sensors/light"]);
    for link in &doc.links().collect::<Vec<_>>() {
        assert_eq!(attrs(link), [("if".into(), q("sensor"))]);
    }
    // "Without the linefeeds inserted here for readability, the format
    // actually looks as follows."
    assert_eq!(doc, parse(S5_SENSORS_ONE_LINE));
    assert_eq!(canonical(&doc), S5_SENSORS_ONE_LINE);
}

// RFC 6690 §5: hierarchical entry point, an unquoted ct=40.
#[test]
fn rfc6690_s5_hierarchy_ct_40() {
    let doc = parse(S5_WKC_HIERARCHY);
    let link = nth(&doc, 0);
    assert_eq!(link.target(), "/sensors");
    assert_eq!(attrs(&link), [("ct".into(), t("40"))]);
    assert_eq!(link.value("ct").unwrap().to_uint(), Some(40));
    assert!(!link.value("ct").unwrap().is_quoted());
}

// RFC 6690 §5: GET /sensors.
#[test]
fn rfc6690_s5_sensors_rt_if() {
    let doc = parse(S5_SENSORS_RT);
    assert_eq!(targets(&doc), ["/sensors/temp", "/sensors/light"]);
    assert_eq!(
        attrs(&nth(&doc, 0)),
        [
            ("rt".into(), q("temperature-c")),
            ("if".into(), q("sensor"))
        ]
    );
    assert_eq!(
        attrs(&nth(&doc, 1)),
        [("rt".into(), q("light-lux")), ("if".into(), q("sensor"))]
    );
}

// RFC 6690 §5: GET /.well-known/core?rt=light-lux on the /sensors links
// gives the documented response.
#[test]
fn rfc6690_s5_query_filter_rt_light_lux() {
    let doc = parse(S5_SENSORS_RT);
    let f = Filter::parse("rt=light-lux").unwrap();
    let mut out = String::new();
    assert_eq!(doc.write_filtered(Some(&f), &mut out).unwrap(), 1);
    assert_eq!(parse(&out), parse(S5_QUERY_RESPONSE));
    assert_eq!(out, S5_QUERY_RESPONSE.trim());
}

// RFC 6690 §5: "relation-type attributes like 'rt', 'if', and 'rel' can have
// multiple values separated by spaces. A query filter parameter can match
// any one of those values."
#[test]
fn rfc6690_s5_multiple_rt_values_match_any() {
    let doc = parse(S5_MULTI_RT);
    let link = nth(&doc, 0);
    let words: Vec<String> = link
        .value("rt")
        .unwrap()
        .words()
        .map(|w| w.to_string())
        .collect();
    assert_eq!(words, ["light-lux", "core.sen-light"]);
    assert_eq!(filtered(&doc, "rt=light-lux"), ["/sensors/light"]);
    assert_eq!(filtered(&doc, "rt=core.sen-light"), ["/sensors/light"]);
    assert!(filtered(&doc, "rt=light-lux core.sen-light").is_empty());
    assert!(link.has_word("rt", "light-lux"));
    assert!(link.has_word("rt", "core.sen-light"));
}

// RFC 6690 §5: anchors and rel, with a line break before ";rel".
#[test]
fn rfc6690_s5_anchor_and_rel() {
    let doc = parse(S5_ANCHORS);
    assert_eq!(
        targets(&doc),
        [
            "/sensors",
            "/sensors/temp",
            "/sensors/light",
            "http://www.example.com/sensors/t123",
            "/t"
        ]
    );
    assert_eq!(
        attrs(&nth(&doc, 0)),
        [("ct".into(), t("40")), ("title".into(), q("Sensor Index"))]
    );
    assert_eq!(
        attrs(&nth(&doc, 3)),
        [
            ("anchor".into(), q("/sensors/temp")),
            ("rel".into(), q("describedby"))
        ]
    );
    assert_eq!(
        attrs(&nth(&doc, 4)),
        [
            ("anchor".into(), q("/sensors/temp")),
            ("rel".into(), q("alternate"))
        ]
    );
    // RFC 6690 §5: GET /.well-known/core?anchor=/sensors/temp.
    assert_eq!(
        filtered(&doc, "anchor=/sensors/temp"),
        ["http://www.example.com/sensors/t123", "/t"]
    );
    // The RFC's response lists t123 as temp123; parse it as printed.
    let resp = parse(S5_ANCHOR_QUERY_RESPONSE);
    assert_eq!(
        targets(&resp),
        ["http://www.example.com/sensors/temp123", "/t"]
    );
    assert!(
        resp.links()
            .all(|l| l.value("anchor").unwrap().eq_str("/sensors/temp"))
    );
    assert_eq!(
        filtered(&doc, "rel=describedby"),
        ["http://www.example.com/sensors/t123"]
    );
}

// RFC 6690 §5 and §3.3: a large sz.
#[test]
fn rfc6690_s5_firmware_sz() {
    let doc = parse(S5_FIRMWARE);
    let link = nth(&doc, 0);
    assert_eq!(link.target(), "/firmware/v2.1");
    assert_eq!(
        attrs(&link),
        [("rt".into(), q("firmware")), ("sz".into(), t("262144"))]
    );
    assert_eq!(link.value("sz").unwrap().to_uint(), Some(262_144));
    assert_eq!(filtered(&doc, "rt=firmware"), ["/firmware/v2.1"]);
    // §3.3: "Implementations MUST be prepared to accept large values."
    let big = parse("</fw>;sz=18446744073709551616");
    assert_eq!(nth(&big, 0).value("sz").unwrap().to_uint(), None);
    assert_eq!(
        nth(&big, 0).value("sz").unwrap().raw(),
        "18446744073709551616"
    );
}

// Every §5 document survives parse → canonical serialization → parse.
#[test]
fn rfc6690_s5_round_trip() {
    for doc in [
        S5_SENSORS,
        S5_SENSORS_ONE_LINE,
        S5_WKC_HIERARCHY,
        S5_SENSORS_RT,
        S5_QUERY_RESPONSE,
        S5_MULTI_RT,
        S5_ANCHORS,
        S5_ANCHOR_QUERY_RESPONSE,
        S5_FIRMWARE,
    ] {
        let parsed = parse(doc);
        let canon = parsed.to_string();
        assert!(!canon.contains('\n'));
        assert_eq!(parse(&canon), parsed, "{doc:?}");
        assert_eq!(parse(&canon).to_string(), canon);
    }
}

// ---------------------------------------------------------------------------
// Values: quoting, escaping, words (RFC 6690 §2; RFC 7230 §3.2.6)

// RFC 6690 §2: "commas can also occur in quoted strings and URIs but do not
// end a description".
#[test]
fn commas_and_semicolons_inside_quotes_and_targets() {
    let doc = parse(r#"</a;b,c>;title="x, y; z=1",</d>;rt="p,q""#);
    assert_eq!(targets(&doc), ["/a;b,c", "/d"]);
    assert_eq!(attrs(&nth(&doc, 0)), [("title".into(), q("x, y; z=1"))]);
    assert_eq!(attrs(&nth(&doc, 1)), [("rt".into(), q("p,q"))]);
    assert_eq!(parse(&doc.to_string()), doc);
}

#[test]
fn quoted_string_escapes() {
    let doc = parse(r#"</a>;title="say \"hi\" \\ \o/";t2="\\";t3="""#);
    let link = nth(&doc, 0);
    let title = link.value("title").unwrap();
    assert_eq!(title.raw(), r#"say \"hi\" \\ \o/"#);
    assert_eq!(title.to_string(), r#"say "hi" \ o/"#);
    assert!(title.eq_str(r#"say "hi" \ o/"#));
    assert!(!title.eq_str(r#"say \"hi\" \\ \o/"#));
    assert!(title.starts_with("say \"h"));
    assert!(!title.starts_with("say \\"));
    assert_eq!(title.as_str(), None);
    assert_eq!(link.value("t2").unwrap().to_string(), "\\");
    let empty = link.value("t3").unwrap();
    assert!(empty.is_quoted() && empty.eq_str("") && empty.as_str() == Some(""));
    // Canonical form escapes only `"` and `\`.
    assert_eq!(
        link.to_string(),
        r#"</a>;title="say \"hi\" \\ o/";t2="\\";t3="""#
    );
}

#[test]
fn token_and_quoted_forms_are_equal() {
    // RFC 8288 §3: either form may be used for any link-param.
    assert_eq!(parse("</a>;ct=40"), parse(r#"</a>;ct="40""#));
    assert_eq!(parse("</a>;ct=40"), parse(r#"</a>;CT="\40""#));
    assert_ne!(parse("</a>;ct=40"), parse("</a>;ct=41"));
    assert_ne!(parse("</a>;ct=40"), parse("</a>;ct"));
    assert_ne!(parse("</a>;ct=40"), parse("</b>;ct=40"));
    assert_ne!(parse("</a>;ct=40"), parse("</a>;ct=40;obs"));
    // Serialization keeps the form that was given.
    assert_eq!(parse(r#"</a>;ct="40""#).to_string(), r#"</a>;ct="40""#);
    assert_eq!(parse("</a>;ct=40").to_string(), "</a>;ct=40");
}

#[test]
fn multiple_rt_values_and_words() {
    let doc = parse(r#"</a>;rt="Type1 Type2";if="If1";ct="0  40 ""#);
    let link = nth(&doc, 0);
    assert!(link.has_word("rt", "Type1"));
    assert!(link.has_word("rt", "Type2"));
    assert!(link.has_word("RT", "Type2"));
    assert!(!link.has_word("rt", "Type1 Type2"));
    assert!(!link.has_word("rt", "type1"));
    assert!(link.has_word("if", "If1"));
    // RFC 7252 §7.2.1: ct may list several Content-Formats.
    let cts: Vec<u64> = link
        .value("ct")
        .unwrap()
        .words()
        .filter_map(|w| w.to_uint())
        .collect();
    assert_eq!(cts, [0, 40]);
    // An escaped space separates words too (values are unescaped first).
    let doc = parse(r#"</b>;rt="x\ y\z""#);
    let words: Vec<String> = nth(&doc, 0)
        .value("rt")
        .unwrap()
        .words()
        .map(|w| w.to_string())
        .collect();
    assert_eq!(words, ["x", "yz"]);
    // A token is a single word.
    let doc = parse("</c>;rt=solo");
    assert_eq!(nth(&doc, 0).value("rt").unwrap().words().count(), 1);
}

// RFC 7641 §7: obs has no value.
#[test]
fn valueless_obs() {
    let doc = parse(r#"</obs>;obs;rt="observe",</test>;rt="test""#);
    let obs = nth(&doc, 0);
    let attr = obs.attr("obs").unwrap();
    assert_eq!(attr.name, "obs");
    assert!(attr.value.is_none());
    assert!(obs.value("obs").is_none());
    assert!(nth(&doc, 1).attr("obs").is_none());
    assert_eq!(filtered(&doc, "obs=*"), ["/obs"]);
    assert_eq!(filtered(&doc, "obs"), ["/obs"]);
    assert_eq!(filtered(&doc, "obs="), ["/obs"]);
    assert!(filtered(&doc, "obs=x").is_empty());
    assert_eq!(filtered(&doc, "rt=observe"), ["/obs"]);
    assert_eq!(obs.to_string(), r#"</obs>;obs;rt="observe""#);
}

#[test]
fn names_are_case_insensitive_values_are_not() {
    let doc = parse(r#"</a>;RT="Temp";If=sensor"#);
    let link = nth(&doc, 0);
    assert_eq!(link.attr("rt").unwrap().name, "RT");
    assert!(link.value("if").unwrap().eq_str("sensor"));
    assert_eq!(filtered(&doc, "rt=Temp"), ["/a"]);
    assert_eq!(filtered(&doc, "Rt=Temp"), ["/a"]);
    assert!(filtered(&doc, "rt=temp").is_empty());
    assert_eq!(parse("</a>;rt=x"), parse("</a>;RT=x"));
}

#[test]
fn repeated_attributes_first_wins_filter_any() {
    let doc = parse("</a>;rt=x;rt=y");
    let link = nth(&doc, 0);
    assert!(link.value("rt").unwrap().eq_str("x"));
    assert_eq!(link.attrs().count(), 2);
    assert_eq!(filtered(&doc, "rt=y"), ["/a"]);
    assert!(link.has_word("rt", "y"));
}

#[test]
fn non_ascii_targets_and_quoted_values() {
    // RFC 6690 §2: the format is UTF-8 and compared bitwise.
    let doc = parse(r#"</température>;title="Größe ✓""#);
    let link = nth(&doc, 0);
    assert_eq!(link.target(), "/température");
    assert!(link.value("title").unwrap().eq_str("Größe ✓"));
    assert_eq!(filtered(&doc, "href=/temp*"), ["/température"]);
    assert_eq!(filtered(&doc, "title=Gr*"), ["/température"]);
    // Tokens are ASCII ptokens.
    assert_eq!(err("</a>;t=é"), (LinkErrorKind::InvalidValue, 7));
    // Escaped multi-byte characters.
    let doc = parse(r#"</a>;t="\é\✓ \ü""#);
    let v = nth(&doc, 0).value("t").unwrap();
    assert_eq!(v.to_string(), "é✓ ü");
    assert_eq!(
        v.words().map(|w| w.to_string()).collect::<Vec<_>>(),
        ["é✓", "ü"]
    );
}

// RFC 6690 §2 ext-name-star / RFC 5987 ext-value, kept as a token.
#[test]
fn ext_name_star() {
    let doc = parse("</a>;title*=UTF-8'de'n%c3%a4chstes");
    let a = nth(&doc, 0).attrs().next().unwrap();
    assert_eq!(a.name, "title*");
    assert_eq!(a.value.unwrap().raw(), "UTF-8'de'n%c3%a4chstes");
    assert_eq!(filtered(&doc, "title*=UTF-8*"), ["/a"]);
    assert_eq!(err("</a>;*=1"), (LinkErrorKind::InvalidParamName, 5));
    assert_eq!(err("</a>;a**=1"), (LinkErrorKind::InvalidParamName, 7));
}

// ---------------------------------------------------------------------------
// Syntax decisions and errors

// RFC 6690 §4: "In the absence of any links, a zero-length payload is
// returned." An empty document is valid and has no links.
#[test]
fn empty_document_is_valid() {
    for doc in ["", " ", "\r\n", "\t \n"] {
        let parsed = parse(doc);
        assert!(parsed.is_empty());
        assert_eq!(parsed.links().count(), 0);
        assert_eq!(parsed.to_string(), "");
        assert_eq!(parsed, parse(""));
    }
    assert!(!parse("<>").is_empty());
    assert_eq!(nth(&parse("<>"), 0).target(), "");
}

#[test]
fn optional_whitespace_is_accepted() {
    let loose = parse(" </a> ;\tct=40 ;obs ,\r\n </b>;rt = \"x y\" ; if= If1 \n");
    assert_eq!(loose, parse(r#"</a>;ct=40;obs,</b>;rt="x y";if=If1"#));
    assert_eq!(loose.to_string(), r#"</a>;ct=40;obs,</b>;rt="x y";if=If1"#);
}

#[test]
fn error_offsets() {
    use LinkErrorKind::{
        ExpectedLink, ExpectedSeparator, InvalidParamName, InvalidQuotedChar, InvalidTarget,
        InvalidUtf8, InvalidValue, UnterminatedQuote, UnterminatedTarget,
    };
    let cases: &[(&str, LinkErrorKind, usize)] = &[
        // Missing `>`.
        ("</a;ct=40", UnterminatedTarget, 0),
        ("</a>,</b", UnterminatedTarget, 5),
        ("<", UnterminatedTarget, 0),
        // Bad character in a parmname.
        ("</a>;r@t=1", InvalidParamName, 6),
        ("</a>;rt{=1", InvalidParamName, 7),
        ("</a>;;ct=1", InvalidParamName, 5),
        ("</a>;", InvalidParamName, 5),
        ("</a>;=1", InvalidParamName, 5),
        ("</a>;\"x\"", InvalidParamName, 5),
        // Unterminated quote.
        ("</a>;rt=\"x,</b>", UnterminatedQuote, 8),
        ("</a>;rt=\"x\\\"", UnterminatedQuote, 8),
        ("</a>;rt=\"\\", UnterminatedQuote, 8),
        // Control characters in quotes.
        ("</a>;t=\"a\x01\"", InvalidQuotedChar, 9),
        ("</a>;t=\"a\nb\"", InvalidQuotedChar, 9),
        ("</a>;t=\"\\\n\"", InvalidQuotedChar, 9),
        ("</a>;t=\"\x7f\"", InvalidQuotedChar, 8),
        // Link-values.
        ("/a>", ExpectedLink, 0),
        ("</a>,", ExpectedLink, 5),
        ("</a>, ", ExpectedLink, 6),
        ("</a>,,</b>", ExpectedLink, 5),
        (",</a>", ExpectedLink, 0),
        ("ct=40", ExpectedLink, 0),
        // Targets.
        ("</a b>", InvalidTarget, 3),
        ("</a\"b>", InvalidTarget, 3),
        ("<</a>", InvalidTarget, 1),
        ("</a%2>", InvalidTarget, 3),
        ("</a%zz>", InvalidTarget, 3),
        ("</a\\b>", InvalidTarget, 3),
        // Values.
        ("</a>;ct=", InvalidValue, 8),
        ("</a>;ct=;obs", InvalidValue, 8),
        ("</a>;ct=4\"", InvalidValue, 9),
        ("</a>;ct=4\\", InvalidValue, 9),
        // Separators.
        ("</a>x", ExpectedSeparator, 4),
        ("</a> </b>", ExpectedSeparator, 5),
        ("</a>;rt=a b", ExpectedSeparator, 10),
        ("</a>;rt=\"a\"b", ExpectedSeparator, 11),
        ("</a>;obs x", ExpectedSeparator, 9),
    ];
    for &(doc, kind, offset) in cases {
        assert_eq!(err(doc), (kind, offset), "{doc:?}");
    }
    let e = LinkFormat::parse_bytes(b"</a>;t=\"\xc3\x28\"").unwrap_err();
    assert_eq!((e.kind, e.offset), (InvalidUtf8, 8));
    assert_eq!(e.to_string(), "invalid_utf8 at offset 8");
}

#[test]
fn percent_encoded_targets() {
    let doc = parse("</a%20b>,</%C3%A9>");
    assert_eq!(targets(&doc), ["/a%20b", "/%C3%A9"]);
    // RFC 6690 §4.1: the query value is percent-decoded (a CoAP Uri-Query
    // option already is); the target is compared as written.
    assert!(filtered(&doc, "href=/a b").is_empty());
    assert_eq!(filtered(&doc, "href=/a%20b"), ["/a%20b"]);
}

// ---------------------------------------------------------------------------
// Filtering (RFC 6690 §4.1), ETSI TD_COAP_LINK resources

const ETSI_LINKS: &str = concat!(
    r#"</link1>;rt="Type1 Type2";if="If1";title="Link test resource","#,
    r#"</link2>;rt="Type2 Type3";if="If2";title="Link test resource","#,
    r#"</link3>;rt="Type1 Type3";if="foo";title="Link test resource","#,
    r#"</test>;rt="test";ct=0,"#,
    r#"</obs>;obs;rt="observe";ct=0"#,
);

#[test]
fn etsi_td_coap_link_filters() {
    let doc = parse(ETSI_LINKS);
    assert_eq!(filtered(&doc, "rt=Type1"), ["/link1", "/link3"]);
    assert_eq!(filtered(&doc, "rt=Type2"), ["/link1", "/link2"]);
    assert_eq!(filtered(&doc, "if=If1"), ["/link1"]);
    assert_eq!(filtered(&doc, "rt=Type*"), ["/link1", "/link2", "/link3"]);
    assert_eq!(
        filtered(&doc, "href=/link*"),
        ["/link1", "/link2", "/link3"]
    );
    assert_eq!(filtered(&doc, "href=/link2"), ["/link2"]);
    assert_eq!(filtered(&doc, "if=foo"), ["/link3"]);
    assert_eq!(filtered(&doc, "if=If*"), ["/link1", "/link2"]);
    assert_eq!(filtered(&doc, "rt=observe"), ["/obs"]);
    assert!(filtered(&doc, "rt=Type4").is_empty());
    assert!(filtered(&doc, "rt=type1").is_empty());
    assert!(filtered(&doc, "rt=Type").is_empty());
    assert!(filtered(&doc, "href=/link").is_empty());
    assert_eq!(filtered(&doc, "href=*").len(), 5);
    assert_eq!(filtered(&doc, "ct=0"), ["/test", "/obs"]);
    assert_eq!(filtered(&doc, "rt=*").len(), 5);
    assert!(filtered(&doc, "sz=*").is_empty());
    // Non-list attributes match as a whole.
    assert_eq!(filtered(&doc, "title=Link test resource").len(), 3);
    assert!(filtered(&doc, "title=Link").is_empty());
    assert_eq!(filtered(&doc, "title=Link t*").len(), 3);
}

#[test]
fn write_filtered_etsi() {
    let doc = parse(ETSI_LINKS);
    let f = Filter::parse("rt=Type1").unwrap();
    let mut out = String::new();
    assert_eq!(doc.write_filtered(Some(&f), &mut out).unwrap(), 2);
    assert_eq!(
        out,
        concat!(
            r#"</link1>;rt="Type1 Type2";if="If1";title="Link test resource","#,
            r#"</link3>;rt="Type1 Type3";if="foo";title="Link test resource""#,
        )
    );
    let mut none = String::new();
    let f = Filter::parse("rt=nothing").unwrap();
    assert_eq!(doc.write_filtered(Some(&f), &mut none).unwrap(), 0);
    assert!(none.is_empty());
    assert!(parse(&none).is_empty());
    let mut all = String::new();
    assert_eq!(doc.write_filtered(None, &mut all).unwrap(), 5);
    assert_eq!(all, ETSI_LINKS);
}

// RFC 6690 §4.1: "Both Value Strings match a target attribute only if it
// exists."
#[test]
fn filter_requires_attribute() {
    let doc = parse("</a>,</b>;ct=40,</c>;rt=\"\"");
    assert_eq!(filtered(&doc, "ct=*"), ["/b"]);
    assert_eq!(filtered(&doc, "rt=*"), ["/c"]);
    assert_eq!(filtered(&doc, "rt="), ["/c"]);
    assert!(filtered(&doc, "if=*").is_empty());
}

#[test]
fn filter_on_escaped_values() {
    let doc = parse(r#"</a>;title="a\"b";rt="x\\y z""#);
    assert_eq!(filtered(&doc, "title=a\"b"), ["/a"]);
    assert_eq!(filtered(&doc, "title=a\"*"), ["/a"]);
    assert_eq!(filtered(&doc, "rt=x\\y"), ["/a"]);
    assert_eq!(filtered(&doc, "rt=z"), ["/a"]);
    assert!(filtered(&doc, "title=a\\\"b").is_empty());
}

#[test]
fn filter_parse() {
    let f = Filter::parse("rt=Type*").unwrap();
    assert_eq!((f.name(), f.value(), f.is_prefix()), ("rt", "Type", true));
    assert_eq!(f.to_string(), "rt=Type*");
    let f = Filter::parse("anchor=/a=b").unwrap();
    assert_eq!(
        (f.name(), f.value(), f.is_prefix()),
        ("anchor", "/a=b", false)
    );
    let f = Filter::parse("rt=").unwrap();
    assert_eq!((f.value(), f.is_prefix()), ("", false));
    let f = Filter::parse("rt=**").unwrap();
    assert_eq!((f.value(), f.is_prefix()), ("*", true));
    for (query, offset) in [("", 0), ("=x", 0), ("r t=1", 1), ("a;b=1", 1), ("é=1", 0)] {
        let e = Filter::parse(query).unwrap_err();
        assert_eq!(
            (e.kind, e.offset),
            (LinkErrorKind::InvalidParamName, offset),
            "{query:?}"
        );
    }
}

#[test]
fn word_list_attrs() {
    assert_eq!(WORD_LIST_ATTRS, ["rel", "rev", "rt", "if", "ct"]);
    let doc = parse(r#"</a>;rev="x y";anchor="x y";ct="0 40""#);
    assert_eq!(filtered(&doc, "rev=y"), ["/a"]);
    assert!(filtered(&doc, "anchor=y").is_empty());
    assert_eq!(filtered(&doc, "anchor=x y"), ["/a"]);
    assert_eq!(filtered(&doc, "ct=40"), ["/a"]);
}

// ---------------------------------------------------------------------------
// Writer

#[test]
fn writer_builds_documents() {
    let mut out = String::new();
    let mut w = LinkWriter::new(&mut out);
    w.link("/sensors/temp")
        .unwrap()
        .attr("rt", "temperature-c")
        .unwrap()
        .attr("if", "sensor")
        .unwrap();
    w.link("/obs")
        .unwrap()
        .attr_flag("obs")
        .unwrap()
        .attr_uint("ct", 40)
        .unwrap()
        .attr_token("sz", "1024")
        .unwrap();
    w.link("/q")
        .unwrap()
        .attr("title", "a \"b\" \\ c,d;e")
        .unwrap();
    assert_eq!(w.count(), 3);
    assert_eq!(
        out,
        r#"</sensors/temp>;rt="temperature-c";if="sensor",</obs>;obs;ct=40;sz=1024,</q>;title="a \"b\" \\ c,d;e""#
    );
    let doc = parse(&out);
    assert_eq!(
        attrs(&nth(&doc, 2)),
        [("title".into(), q("a \"b\" \\ c,d;e"))]
    );
}

#[test]
fn writer_rejects_invalid_arguments_without_writing() {
    use LinkErrorKind::{InvalidParamName, InvalidQuotedChar, InvalidTarget, InvalidValue};
    let mut out = String::new();
    let mut w = LinkWriter::new(&mut out);
    let invalid = |r: Result<(), WriteError>| match r {
        Err(WriteError::Invalid(e)) => (e.kind, e.offset),
        other => panic!("{other:?}"),
    };
    assert_eq!(invalid(w.link("/a>").map(|_| ())), (InvalidTarget, 2));
    assert_eq!(invalid(w.link("/a b").map(|_| ())), (InvalidTarget, 2));
    assert_eq!(invalid(w.link("/%g0").map(|_| ())), (InvalidTarget, 1));
    let mut b = w.link("/ok").unwrap();
    assert_eq!(
        invalid(b.attr("r t", "x").map(|_| ())),
        (InvalidParamName, 1)
    );
    assert_eq!(invalid(b.attr("", "x").map(|_| ())), (InvalidParamName, 0));
    assert_eq!(
        invalid(b.attr("t", "a\nb").map(|_| ())),
        (InvalidQuotedChar, 1)
    );
    assert_eq!(
        invalid(b.attr_token("ct", "").map(|_| ())),
        (InvalidValue, 0)
    );
    assert_eq!(
        invalid(b.attr_token("ct", "4 0").map(|_| ())),
        (InvalidValue, 1)
    );
    assert_eq!(
        invalid(b.attr_token("ct", "\"4\"").map(|_| ())),
        (InvalidValue, 0)
    );
    assert_eq!(
        invalid(b.attr_flag("o;bs").map(|_| ())),
        (InvalidParamName, 1)
    );
    assert_eq!(
        invalid(b.attr_uint("c=t", 1).map(|_| ())),
        (InvalidParamName, 1)
    );
    b.attr("t", "tab\tok").unwrap();
    assert_eq!(w.count(), 1);
    assert_eq!(out, "</ok>;t=\"tab\tok\"");
    assert!(LinkFormat::parse(&out).is_ok());
}

#[test]
fn writer_into_fixed_buffer() {
    let mut buf = [0u8; 64];
    let mut sink = SliceWriter {
        buf: &mut buf,
        len: 0,
    };
    let mut w = LinkWriter::new(&mut sink);
    w.link("/a").unwrap().attr_uint("ct", 0).unwrap();
    w.link("/b").unwrap().attr("rt", "x").unwrap();
    let long = "x".repeat(100);
    assert_eq!(
        w.link("/c").unwrap().attr("title", &long).unwrap_err(),
        WriteError::Fmt
    );
    let len = sink.len;
    let text = core::str::from_utf8(buf.get(..len).unwrap()).unwrap();
    assert!(text.starts_with(r#"</a>;ct=0,</b>;rt="x",</c>"#));
}

#[test]
fn writer_copy_and_copy_attr() {
    let src = parse(r#"</a> ; ct=40 ; rt="x\y \"z\"" ; obs"#);
    let mut out = String::new();
    let mut w = LinkWriter::new(&mut out);
    w.copy(&nth(&src, 0)).unwrap();
    let mut b = w.link("/b").unwrap();
    for a in nth(&src, 0).attrs().filter(|a| a.name != "ct") {
        b.copy_attr(&a).unwrap();
    }
    assert_eq!(
        out,
        r#"</a>;ct=40;rt="xy \"z\"";obs,</b>;rt="xy \"z\"";obs"#
    );
}

#[test]
fn display_and_debug() {
    let doc = parse(r#"</a>;rt="x";obs"#);
    let link = nth(&doc, 0);
    let a: Attr<'_> = link.attrs().next().unwrap();
    assert_eq!(a.to_string(), r#"rt="x""#);
    assert_eq!(link.attr("obs").unwrap().to_string(), "obs");
    let dbg = format!("{doc:?}");
    assert!(dbg.contains("target: \"/a\""), "{dbg}");
    assert!(dbg.contains("\"rt\""), "{dbg}");
    assert_eq!(Filter::parse("href=/a").unwrap().to_string(), "href=/a");
}

#[test]
fn equal_documents_hash_equal() {
    use std::collections::HashSet;
    let mut set = HashSet::new();
    set.insert(parse("</a>;ct=40;RT=\"x\""));
    assert!(set.contains(&parse(" </a> ; ct=\"40\" ; rt=x ")));
    assert!(!set.contains(&parse("</a>;ct=40")));
}

// Linear work: a large document with many links and parameters.
#[test]
fn large_documents() {
    let mut out = String::new();
    let mut w = LinkWriter::new(&mut out);
    for i in 0..20_000 {
        let mut b = w.link(&format!("/r/{i}")).unwrap();
        b.attr("rt", &format!("t{} common", i % 7)).unwrap();
        b.attr_uint("ct", 0).unwrap();
    }
    let doc = parse(&out);
    assert_eq!(doc.links().count(), 20_000);
    assert_eq!(filtered(&doc, "rt=t3").len(), 2857);
    assert_eq!(filtered(&doc, "rt=common").len(), 20_000);
    let many_params = format!("</a>{}", ";obs".repeat(100_000));
    assert_eq!(nth(&parse(&many_params), 0).attrs().count(), 100_000);
    let long_quote = format!("</a>;t=\"{}\"", "\\\"".repeat(100_000));
    assert_eq!(
        nth(&parse(&long_quote), 0)
            .value("t")
            .unwrap()
            .unescaped()
            .count(),
        100_000
    );
}

// ---------------------------------------------------------------------------
// Property tests

#[derive(Clone, Debug)]
enum Value {
    Flag,
    Token(String),
    Quoted(String),
}

#[derive(Clone, Debug)]
struct GenLink {
    target: String,
    attrs: Vec<(String, Value)>,
}

fn target_strategy() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        6 => "[A-Za-z0-9/._~:?#@!$&'()*+,;=\\[\\]-]",
        1 => "%[0-9A-Fa-f]{2}",
        1 => "[é✓😀]",
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

fn name_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["rt", "if", "ct", "rel", "title", "anchor", "obs", "sz", "href", "title*"])
            .prop_map(str::to_string),
        2 => "[A-Za-z0-9!#$&+.^_`|~-]{1,6}\\*?",
    ]
}

fn value_strategy() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Flag),
        2 => "[A-Za-z0-9!#$%&'()*+./:<=>?@\\[\\]^_`{|}~-]{1,10}".prop_map(Value::Token),
        3 => "[\t -~é✓😀]{0,12}".prop_map(Value::Quoted),
    ]
}

fn links_strategy() -> impl Strategy<Value = Vec<GenLink>> {
    let link = (
        target_strategy(),
        prop::collection::vec((name_strategy(), value_strategy()), 0..5),
    )
        .prop_map(|(target, attrs)| GenLink { target, attrs });
    prop::collection::vec(link, 0..6)
}

fn write_links(links: &[GenLink]) -> String {
    let mut out = String::new();
    let mut w = LinkWriter::new(&mut out);
    for l in links {
        let mut b = w.link(&l.target).unwrap();
        for (name, value) in &l.attrs {
            match value {
                Value::Flag => b.attr_flag(name),
                Value::Token(tok) => b.attr_token(name, tok),
                Value::Quoted(s) => b.attr(name, s),
            }
            .unwrap();
        }
    }
    out
}

fn check_same(doc: &LinkFormat<'_>, links: &[GenLink]) -> Result<(), TestCaseError> {
    prop_assert_eq!(doc.links().count(), links.len());
    for (got, want) in doc.links().zip(links) {
        prop_assert_eq!(got.target(), want.target.as_str());
        prop_assert_eq!(got.attrs().count(), want.attrs.len());
        for (a, (name, value)) in got.attrs().zip(&want.attrs) {
            prop_assert_eq!(a.name, name.as_str());
            match (a.value, value) {
                (None, Value::Flag) => {}
                (Some(v), Value::Token(tok)) => {
                    prop_assert!(!v.is_quoted());
                    prop_assert_eq!(v.raw(), tok.as_str());
                }
                (Some(v), Value::Quoted(s)) => {
                    prop_assert!(v.is_quoted());
                    prop_assert!(v.eq_str(s));
                    prop_assert_eq!(v.to_string(), s.clone());
                }
                (got, want) => prop_assert!(false, "{:?} vs {:?}", got, want),
            }
        }
    }
    Ok(())
}

/// Writes the links by hand with random optional whitespace and needless
/// escapes, to test the liberal side of the parser.
fn write_loose(links: &[GenLink], ws: &[u8]) -> String {
    let mut ws = ws.iter().cycle();
    let mut next_ws = || -> &'static str {
        match ws.next().copied().unwrap_or(0) % 6 {
            0..=2 => "",
            3 => " ",
            4 => "\r\n ",
            _ => "\t",
        }
    };
    let mut s = String::from(next_ws());
    for (i, l) in links.iter().enumerate() {
        if i > 0 {
            s += next_ws();
            s += ",";
            s += next_ws();
        }
        s.push('<');
        s += &l.target;
        s.push('>');
        for (name, value) in &l.attrs {
            s += next_ws();
            s += ";";
            s += next_ws();
            s += name;
            match value {
                Value::Flag => {}
                Value::Token(tok) => {
                    s += next_ws();
                    s += "=";
                    s += next_ws();
                    s += tok;
                }
                Value::Quoted(v) => {
                    s += next_ws();
                    s += "=";
                    s += next_ws();
                    s += "\"";
                    for c in v.chars() {
                        // Escape `"` and `\`; escape letters needlessly.
                        if matches!(c, '"' | '\\')
                            || (c.is_ascii_alphabetic() && next_ws().is_empty())
                        {
                            s.push('\\');
                        }
                        s.push(c);
                    }
                    s += "\"";
                }
            }
        }
    }
    s += next_ws();
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    // Serialization round trip: write → parse gives the same links, and
    // the canonical form of the parse is exactly what was written.
    #[test]
    fn prop_write_parse_round_trip(links in links_strategy()) {
        let text = write_links(&links);
        let doc = LinkFormat::parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        check_same(&doc, &links)?;
        prop_assert_eq!(doc.to_string(), text.clone());
        let shown = doc.to_string();
        prop_assert_eq!(LinkFormat::parse(&shown).unwrap(), doc);
    }

    // Whitespace after and before `,` `;` `=` and needless escapes do not
    // change the parse.
    #[test]
    fn prop_loose_syntax_parses_equal(links in links_strategy(), ws in prop::collection::vec(any::<u8>(), 1..64)) {
        let loose = write_loose(&links, &ws);
        let doc = LinkFormat::parse(&loose).map_err(|e| TestCaseError::fail(format!("{loose:?}: {e}")))?;
        check_same(&doc, &links)?;
        let canonical = write_links(&links);
        prop_assert_eq!(doc, LinkFormat::parse(&canonical).unwrap());
        prop_assert_eq!(doc.to_string(), canonical);
    }

    // Filtering agrees with a straightforward model of RFC 6690 §4.1.
    #[test]
    fn prop_filter_matches_model(links in links_strategy(), pick in any::<prop::sample::Index>(), cut in 0usize..12, prefix in any::<bool>()) {
        let text = write_links(&links);
        let doc = LinkFormat::parse(&text).unwrap();
        // Build a query from some attribute in the document, or href.
        let all: Vec<(String, String)> = links.iter().flat_map(|l| {
            let mut v = vec![("href".to_string(), l.target.clone())];
            v.extend(l.attrs.iter().map(|(n, val)| (n.clone(), match val {
                Value::Flag => String::new(),
                Value::Token(t) | Value::Quoted(t) => t.clone(),
            })));
            v
        }).collect();
        prop_assume!(!all.is_empty());
        let (name, value) = pick.get(&all).clone();
        let value: String = if prefix { value.chars().take(cut).collect() } else { value };
        prop_assume!(!value.ends_with('*') || prefix);
        let query = format!("{name}={value}{}", if prefix { "*" } else { "" });
        let f = Filter::parse(&query).unwrap();
        let model = |l: &GenLink| -> bool {
            let test = |v: &str| if prefix { v.starts_with(value.as_str()) } else { v == value };
            if name.eq_ignore_ascii_case("href") {
                return test(&l.target);
            }
            let list = WORD_LIST_ATTRS.iter().any(|n| n.eq_ignore_ascii_case(&name));
            l.attrs.iter().filter(|(n, _)| n.eq_ignore_ascii_case(&name)).any(|(_, v)| match v {
                Value::Flag => test(""),
                Value::Token(s) | Value::Quoted(s) => {
                    let words: Vec<&str> = s.split(' ').filter(|w| !w.is_empty()).collect();
                    if list && !words.is_empty() { words.iter().any(|w| test(w)) } else { test(s) }
                }
            })
        };
        let got: Vec<bool> = doc.links().map(|l| f.matches(&l)).collect();
        let want: Vec<bool> = links.iter().map(model).collect();
        prop_assert_eq!(got, want, "query {:?} on {:?}", query, text);
    }

    // No input panics the parser, the iterators or the filter.
    #[test]
    fn prop_arbitrary_input_never_panics(s in "[<>;,=\"\\\\ \t\r\na-z/*%0-9é]{0,64}", query in "[a-z=*/ ]{0,8}") {
        if let Ok(doc) = LinkFormat::parse(&s) {
            let f = Filter::parse(&query).ok();
            for l in doc.links() {
                let _ = l.target();
                for a in l.attrs() {
                    if let Some(v) = a.value {
                        let _ = (v.to_string(), v.words().count(), v.to_uint());
                    }
                }
                if let Some(f) = f {
                    let _ = f.matches(&l);
                }
            }
            let shown = doc.to_string();
        prop_assert_eq!(LinkFormat::parse(&shown).unwrap(), doc);
        }
    }
}

// ---------------------------------------------------------------------------
// The fuzz body (feature `_internal`)

#[cfg(feature = "_internal")]
mod fuzz_body {
    use coap_proto::_internal::fuzz_link::link_format;
    use proptest::prelude::*;

    #[test]
    fn seeds() {
        for seed in [
            &b""[..],
            b"rt=Type1\n</link1>;rt=\"Type1 Type2\";if=\"If1\",</link2>;rt=\"Type2 Type3\";if=\"If2\"",
            b"href=/l*\n</link1>,</link2>;obs",
            b"obs\n</obs>;obs;rt=\"observe\";ct=0",
            b"</a>;t=\"\\\"\\\\\\x\"",
            b"</a>;t=\"\xff\"",
            b"</a\xff>",
            b" </a> ;\tct = 40 ,\r\n </b>",
            b"title*=UTF*\n</a>;title*=UTF-8'de'n%c3%a4chstes",
            b"rt=x\\ y\n</a>;rt=\"x\\ y\"",
            b"</a>;rt=\" \"",
        ] {
            link_format(seed);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]
        #[test]
        fn fuzz_body_on_linkish_bytes(s in "([a-z]{1,3}=[a-zA-Z*/ ]{0,4}\n)?[<>;,=\"\\\\ \ta-zA-Z/*%0-9é]{0,80}") {
            link_format(s.as_bytes());
        }

        #[test]
        fn fuzz_body_on_random_bytes(b in prop::collection::vec(any::<u8>(), 0..64)) {
            link_format(&b);
        }
    }
}
