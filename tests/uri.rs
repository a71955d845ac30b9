//! CoAP URIs (RFC 7252 §6, RFC 8323 §8): one test per rule, citing the
//! section. Decomposition is §6.4, composition §6.5.

use std::net::{IpAddr, SocketAddr};

use coap_proto::message::uri::{ComposeError, Host, Scheme, Uri, UriErrorKind, write_uri};
use coap_proto::{Message, OptionNumber, OptionRef};

const HOST: OptionNumber = OptionNumber::URI_HOST;
const PORT: OptionNumber = OptionNumber::URI_PORT;
const PATH: OptionNumber = OptionNumber::URI_PATH;
const QUERY: OptionNumber = OptionNumber::URI_QUERY;

/// The options of `uri` for `destination`, as (number, text) with Uri-Port
/// shown in decimal.
fn opts(uri: &str, destination: Option<&str>) -> Vec<(OptionNumber, String)> {
    let uri = Uri::parse(uri).unwrap_or_else(|e| panic!("{uri:?}: {e}"));
    let dest: Option<SocketAddr> = destination.map(|d| d.parse().unwrap());
    uri.options(dest)
        .map(|o| {
            let text = match o.as_str() {
                Some(s) => s.to_owned(),
                None => coap_proto::decode_uint(o.as_bytes()).unwrap().to_string(),
            };
            (o.number(), text)
        })
        .collect()
}

fn o(number: OptionNumber, text: &str) -> (OptionNumber, String) {
    (number, text.to_owned())
}

fn paths(uri: &str) -> Vec<String> {
    opts(uri, None)
        .into_iter()
        .filter(|(n, _)| *n == PATH)
        .map(|(_, s)| s)
        .collect()
}

fn queries(uri: &str) -> Vec<String> {
    opts(uri, None)
        .into_iter()
        .filter(|(n, _)| *n == QUERY)
        .map(|(_, s)| s)
        .collect()
}

fn error(uri: &str) -> (UriErrorKind, usize) {
    let e = Uri::parse(uri).expect_err(uri);
    (e.kind, e.offset)
}

fn compose(
    scheme: Scheme,
    dest: &str,
    port: u16,
    options: &[(OptionNumber, &[u8])],
) -> Result<String, ComposeError> {
    let ip: IpAddr = dest.parse().unwrap();
    let mut out = String::new();
    write_uri(
        &mut out,
        scheme,
        Host::Ip(ip),
        port,
        options
            .iter()
            .map(|&(number, value)| OptionRef { number, value }),
    )?;
    Ok(out)
}

// ---------------------------------------------------------------------------
// Decomposition, RFC 7252 §6.4

// RFC 7252 §6.3: "the following three URIs are equivalent and cause the same
// options and option values to appear in the CoAP messages".
#[test]
fn rfc7252_6_3_equivalent_uris_decompose_alike() {
    let expected = vec![
        o(HOST, "example.com"),
        o(PATH, "~sensors"),
        o(PATH, "temp.xml"),
    ];
    for uri in [
        "coap://example.com:5683/~sensors/temp.xml",
        "coap://EXAMPLE.com/%7Esensors/temp.xml",
        "coap://EXAMPLE.com:/%7esensors/temp.xml",
    ] {
        assert_eq!(opts(uri, None), expected, "{uri}");
        assert_eq!(opts(uri, Some("192.0.2.1:5683")), expected, "{uri}");
    }
}

// RFC 7252 §6.4 step 5: no Uri-Host when the host is an IP-literal for the
// request's destination address; otherwise the host, lowercased.
#[test]
fn rfc7252_6_4_step5_ipv6_literal_and_destination() {
    let uri = "coap://[2001:DB8::1]/x";
    assert_eq!(opts(uri, None), [o(PATH, "x")]);
    assert_eq!(opts(uri, Some("[2001:db8::1]:5683")), [o(PATH, "x")]);
    assert_eq!(
        opts(uri, Some("[2001:db8::2]:5683")),
        [o(HOST, "[2001:db8::1]"), o(PATH, "x")]
    );
    // A non-canonical spelling goes into Uri-Host in RFC 5952 form (§6.3).
    assert_eq!(
        opts("coap://[2001:0db8:0:0::1]/", Some("192.0.2.1:5683")),
        [o(HOST, "[2001:db8::1]")]
    );
    assert_eq!(
        Uri::parse(uri).unwrap().host(),
        Host::Ip("2001:db8::1".parse().unwrap())
    );
}

// RFC 7252 §6.4 step 5 for IPv4address hosts; an IPv4-mapped IPv6
// destination (a dual-stack socket) is the same address.
#[test]
fn rfc7252_6_4_step5_ipv4_host() {
    let uri = "coap://192.0.2.1/";
    assert_eq!(opts(uri, None), []);
    assert_eq!(opts(uri, Some("192.0.2.1:5683")), []);
    assert_eq!(opts(uri, Some("[::ffff:192.0.2.1]:5683")), []);
    assert_eq!(opts(uri, Some("192.0.2.2:5683")), [o(HOST, "192.0.2.1")]);
    // Not an IPv4address (RFC 3986 §3.2.2: no leading zeros): a reg-name.
    assert_eq!(opts("coap://192.0.2.01/", None), [o(HOST, "192.0.2.01")]);
    // Percent-encoded digits are still the IPv4 address (RFC 3986 §6.2.2.2).
    assert_eq!(opts("coap://%31%39%32.0.2.1/", None), []);
}

// RFC 7252 §6.4 step 5: a reg-name always gives Uri-Host, converted to
// lowercase and percent-decoded.
#[test]
fn rfc7252_6_4_step5_reg_name_is_lowercased_and_decoded() {
    assert_eq!(
        opts("coap://Sensor.EXAMPLE/", None),
        [o(HOST, "sensor.example")]
    );
    assert_eq!(
        opts("coap://sensor.example/", Some("192.0.2.1:5683")),
        [o(HOST, "sensor.example")]
    );
    assert_eq!(
        opts("coap://b%C3%BCcher.example/", None),
        [o(HOST, "bücher.example")]
    );
    // Lowercased after decoding too, so that %41 and a name the same host.
    assert_eq!(opts("coap://%41bc/", None), [o(HOST, "abc")]);
    assert_eq!(
        Uri::parse("coap://Sensor.EXAMPLE/").unwrap().host(),
        Host::Name("Sensor.EXAMPLE")
    );
}

// RFC 7252 §6.4 steps 6-7: the port is explicit or the scheme's default, and
// Uri-Port appears only when it differs from the destination port.
#[test]
fn rfc7252_6_4_steps6_7_port() {
    assert_eq!(Uri::parse("coap://h/").unwrap().port(), 5683);
    assert_eq!(Uri::parse("coap://h:/").unwrap().port(), 5683);
    assert_eq!(Uri::parse("coap://h:61616/").unwrap().port(), 61616);
    assert_eq!(Uri::parse("coap://h:00080/").unwrap().port(), 80);
    // Sent where the URI says: no Uri-Port, whatever the port.
    assert_eq!(opts("coap://192.0.2.1:61616/", None), []);
    assert_eq!(opts("coap://192.0.2.1:61616/", Some("192.0.2.1:61616")), []);
    // Default port, destination on the default port: nothing.
    assert_eq!(opts("coap://192.0.2.1/", Some("192.0.2.1:5683")), []);
    // Explicit port, destination elsewhere (a proxy): Uri-Port.
    assert_eq!(
        opts("coap://192.0.2.1:61616/", Some("192.0.2.1:5683")),
        [o(PORT, "61616")]
    );
    // The default port too, when the destination port is another one.
    assert_eq!(
        opts("coap://192.0.2.1/", Some("192.0.2.1:7000")),
        [o(PORT, "5683")]
    );
    // Uri-Port 0 is an empty uint.
    let uri = Uri::parse("coap://192.0.2.1:0/").unwrap();
    let port = uri
        .options(Some("192.0.2.1:1".parse().unwrap()))
        .next()
        .unwrap();
    assert_eq!((port.number(), port.as_bytes()), (PORT, &[][..]));
}

// RFC 7252 §6.2: coaps defaults to 5684.
#[test]
fn rfc7252_6_2_coaps_default_port_5684() {
    let uri = Uri::parse("coaps://192.0.2.1/").unwrap();
    assert_eq!((uri.scheme(), uri.port()), (Scheme::Coaps, 5684));
    assert_eq!(opts("coaps://192.0.2.1/", Some("192.0.2.1:5684")), []);
    assert_eq!(
        opts("coaps://192.0.2.1:5683/", Some("192.0.2.1:5684")),
        [o(PORT, "5683")]
    );
}

// RFC 8323 §8.1-8.2, §8.6: coap+tcp (5683) and coaps+tcp (5684).
#[test]
fn rfc8323_8_tcp_schemes() {
    let uri = Uri::parse("coap+tcp://example.com/.well-known/core").unwrap();
    assert_eq!((uri.scheme(), uri.port()), (Scheme::CoapTcp, 5683));
    assert_eq!(
        opts(uri.as_str(), None),
        [
            o(HOST, "example.com"),
            o(PATH, ".well-known"),
            o(PATH, "core")
        ]
    );
    let uri = Uri::parse("coaps+tcp://[::1]/").unwrap();
    assert_eq!((uri.scheme(), uri.port()), (Scheme::CoapsTcp, 5684));
    assert!(uri.scheme().is_reliable() && uri.scheme().is_secure());
}

// RFC 7252 §6.4 step 3: the scheme is compared in ASCII lowercase.
#[test]
fn rfc7252_6_4_step3_scheme_is_case_insensitive() {
    assert_eq!(Uri::parse("CoAP://h").unwrap().scheme(), Scheme::Coap);
    assert_eq!(
        Uri::parse("COAPS+TCP://h").unwrap().scheme(),
        Scheme::CoapsTcp
    );
}

// RFC 7252 §6.4 step 2 (reference resolution, RFC 3986 §5.2.4): "." and
// ".." segments are removed before the path becomes options.
#[test]
fn rfc7252_6_4_step2_dot_segments_are_removed() {
    assert_eq!(paths("coap://h/a/./b/../c"), ["a", "c"]);
    assert_eq!(paths("coap://h/a/b/c/./../../g"), ["a", "g"]);
    assert_eq!(paths("coap://h/../a"), ["a"]);
    assert_eq!(paths("coap://h/a/b/../../../c"), ["c"]);
    assert_eq!(paths("coap://h/./a"), ["a"]);
    // A final "." or ".." leaves a trailing slash: an empty last segment.
    assert_eq!(paths("coap://h/a/."), ["a", ""]);
    assert_eq!(paths("coap://h/a/b/.."), ["a", ""]);
    // What remains is "/": no Uri-Path (step 8).
    assert_eq!(paths("coap://h/a/.."), Vec::<String>::new());
    assert_eq!(paths("coap://h/.."), Vec::<String>::new());
    assert_eq!(paths("coap://h/."), Vec::<String>::new());
    assert_eq!(paths("coap://h/./"), Vec::<String>::new());
    // Empty segments are segments: ".." pops them like any other.
    assert_eq!(paths("coap://h/a//.."), ["a", ""]);
    assert_eq!(paths("coap://h/a//../b"), ["a", "b"]);
    // Percent-encoded dots are dots (RFC 3986 §2.3, §6.2.2.2), so no
    // Uri-Path is ever "." or ".." (RFC 7252 §5.10.1: "MUST NOT").
    assert_eq!(paths("coap://h/a/%2E%2E/b"), ["b"]);
    assert_eq!(paths("coap://h/a/%2e./.%2E/b/%2E"), ["b", ""]);
    assert_eq!(
        paths("coap://h/.a/..b/.../%2E%2E%2E"),
        [".a", "..b", "...", "..."]
    );
    // The query is not touched.
    assert_eq!(queries("coap://h/a/..?../."), ["../."]);
}

// RFC 7252 §6.4 step 8: an empty path or "/" gives no Uri-Path.
#[test]
fn rfc7252_6_4_step8_empty_path() {
    assert_eq!(opts("coap://192.0.2.1", None), []);
    assert_eq!(opts("coap://192.0.2.1/", None), []);
    assert_eq!(opts("coap://192.0.2.1?q", None), [o(QUERY, "q")]);
    assert_eq!(Uri::parse("coap://h").unwrap().path(), "");
    // "//" is two empty segments.
    assert_eq!(paths("coap://h//"), ["", ""]);
    assert_eq!(paths("coap://h//a"), ["", "a"]);
}

// RFC 7252 §6.4 step 8: "for each segment in the <path> component": a
// trailing slash ends the path with an empty segment.
#[test]
fn rfc7252_6_4_step8_trailing_slash() {
    assert_eq!(paths("coap://h/a/"), ["a", ""]);
    assert_eq!(paths("coap://h/a"), ["a"]);
    assert_eq!(paths("coap://h/a//"), ["a", "", ""]);
}

// RFC 7252 §6.4 step 8: each percent-encoding becomes the byte it encodes,
// once, and the result is UTF-8 (§5.10.1).
#[test]
fn rfc7252_6_4_step8_percent_decoding() {
    assert_eq!(paths("coap://h/caf%C3%A9/%e2%82%ac"), ["café", "€"]);
    assert_eq!(paths("coap://h/a%2Fb/c%252F"), ["a/b", "c%2F"]);
    assert_eq!(paths("coap://h/%20%3F%23"), [" ?#"]);
    assert_eq!(paths("coap://h/!$&'()*+,;=:@-._~"), ["!$&'()*+,;=:@-._~"]);
}

// RFC 7252 §6.4 step 9: one Uri-Query per "&"-separated argument, decoded;
// "=" is part of the argument.
#[test]
fn rfc7252_6_4_step9_query() {
    assert_eq!(
        queries("coap://h/p?a=1&b&c=x%26y&"),
        ["a=1", "b", "c=x&y", ""]
    );
    assert_eq!(queries("coap://h/?k=v=w"), ["k=v=w"]);
    assert_eq!(queries("coap://h/?/a?b"), ["/a?b"]);
    // "?" with nothing after: one empty argument; no "?": none.
    assert_eq!(queries("coap://h/?"), [""]);
    assert_eq!(queries("coap://h/"), Vec::<String>::new());
    assert_eq!(queries("coap://h/?&"), ["", ""]);
    assert_eq!(queries("coap://h?%C3%A9=%E2%82%AC"), ["é=€"]);
}

// RFC 7252 §6.4: the options come in ascending number order.
#[test]
fn rfc7252_6_4_options_in_number_order() {
    let got = opts(
        "coap://example.net:61616/a/b?x&y",
        Some("[2001:db8::1]:5683"),
    );
    assert_eq!(
        got,
        [
            o(HOST, "example.net"),
            o(PORT, "61616"),
            o(PATH, "a"),
            o(PATH, "b"),
            o(QUERY, "x"),
            o(QUERY, "y")
        ]
    );
}

// RFC 7252 §5.10.1: Uri-Path and Uri-Query are at most 255 bytes; 255 is fine.
#[test]
fn rfc7252_5_10_1_255_byte_segments() {
    let seg = "a".repeat(255);
    assert_eq!(paths(&format!("coap://h/{seg}")), [seg.as_str()]);
    let encoded = "%41".repeat(255);
    assert_eq!(paths(&format!("coap://h/{encoded}"))[0].len(), 255);
    assert_eq!(queries(&format!("coap://h/?{seg}")), [seg.as_str()]);
    let host = "h".repeat(255);
    assert_eq!(opts(&format!("coap://{host}/"), None), [o(HOST, &host)]);
}

// ---------------------------------------------------------------------------
// Errors

// RFC 7252 §6.4 step 4: "If |url| has a <fragment> component, then fail".
#[test]
fn rfc7252_6_4_step4_fragment_fails() {
    assert_eq!(error("coap://h/a#frag"), (UriErrorKind::Fragment, 10));
    assert_eq!(error("coap://h#"), (UriErrorKind::Fragment, 8));
    assert_eq!(error("coap://h/?q#"), (UriErrorKind::Fragment, 11));
}

// RFC 7252 §6.4 step 1: a relative reference is not an absolute URI.
#[test]
fn rfc7252_6_4_step1_relative_reference_fails() {
    for uri in [
        "/a/b",
        "//h/a",
        "a/b",
        "",
        "?q",
        ":b/c",
        "1coap://h/",
        "co ap://h/",
    ] {
        assert_eq!(error(uri), (UriErrorKind::NotAbsolute, 0), "{uri:?}");
    }
}

// RFC 7252 §6.4 step 3: other schemes fail.
#[test]
fn rfc7252_6_4_step3_other_schemes_fail() {
    for uri in ["http://h/", "coap+ws://h/", "urn:x", "coapx://h/"] {
        assert_eq!(error(uri), (UriErrorKind::UnsupportedScheme, 0), "{uri}");
    }
}

// RFC 7252 §6.1: "if a URI is received with a missing authority or an empty
// host, then it MUST be considered invalid".
#[test]
fn rfc7252_6_1_missing_authority_or_empty_host_fails() {
    assert_eq!(error("coap:/a"), (UriErrorKind::MissingAuthority, 5));
    assert_eq!(error("coap:"), (UriErrorKind::MissingAuthority, 5));
    assert_eq!(error("coap:///a"), (UriErrorKind::InvalidHost, 7));
    assert_eq!(error("coap://:5683/"), (UriErrorKind::InvalidHost, 7));
    assert_eq!(error("coap://"), (UriErrorKind::InvalidHost, 7));
    assert_eq!(error("coap://?q"), (UriErrorKind::InvalidHost, 7));
}

// RFC 7252 §6.1: coap-URI = "coap:" "//" host [ ":" port ] ...: no userinfo.
#[test]
fn rfc7252_6_1_userinfo_fails() {
    assert_eq!(error("coap://user@h/"), (UriErrorKind::UserInfo, 11));
}

// RFC 3986 §3.2.2 hosts: IPv6 only (no zone, no IPvFuture), reg-name
// characters only.
#[test]
fn rfc3986_3_2_2_invalid_hosts_fail() {
    assert_eq!(
        error("coap://[fe80::1%25eth0]/"),
        (UriErrorKind::InvalidHost, 15)
    );
    assert_eq!(error("coap://[v1.x]/"), (UriErrorKind::InvalidHost, 8));
    assert_eq!(error("coap://[::1/"), (UriErrorKind::InvalidHost, 7));
    assert_eq!(error("coap://[1:2]/"), (UriErrorKind::InvalidHost, 7));
    assert_eq!(error("coap://[::1]x/"), (UriErrorKind::InvalidHost, 12));
    assert_eq!(error("coap://a b/"), (UriErrorKind::InvalidHost, 8));
    assert_eq!(error("coap://a]b/"), (UriErrorKind::InvalidHost, 8));
    assert_eq!(error("coap://hé/"), (UriErrorKind::InvalidHost, 8));
    // Percent-encoded brackets that do not hold an IPv6 address.
    assert_eq!(error("coap://%5Bx%5D/"), (UriErrorKind::InvalidHost, 7));
    assert_eq!(error("coap://%FF/"), (UriErrorKind::NotUtf8, 7));
    assert_eq!(
        error(&format!("coap://{}/", "h".repeat(256))),
        (UriErrorKind::TooLong, 7)
    );
    assert_eq!(
        error("coap://h%4/"),
        (UriErrorKind::InvalidPercentEncoding, 8)
    );
}

// RFC 3986 §3.2.3: port = *DIGIT; UDP/TCP ports stop at 65535.
#[test]
fn rfc3986_3_2_3_invalid_ports_fail() {
    assert_eq!(error("coap://h:65536/"), (UriErrorKind::InvalidPort, 9));
    assert_eq!(
        error("coap://h:99999999999999999999/"),
        (UriErrorKind::InvalidPort, 9)
    );
    assert_eq!(error("coap://h:12a/"), (UriErrorKind::InvalidPort, 11));
    assert_eq!(error("coap://h:-1/"), (UriErrorKind::InvalidPort, 9));
    assert_eq!(error("coap://[::1]:x/"), (UriErrorKind::InvalidPort, 13));
    assert_eq!(error("coap://h:1:2/"), (UriErrorKind::InvalidPort, 10));
    assert_eq!(Uri::parse("coap://h:65535/").unwrap().port(), 65535);
}

// RFC 3986 §2.1: "%" must be followed by two hexadecimal digits.
#[test]
fn rfc3986_2_1_bad_percent_encoding_fails() {
    assert_eq!(
        error("coap://h/a%G0"),
        (UriErrorKind::InvalidPercentEncoding, 10)
    );
    assert_eq!(
        error("coap://h/a%4"),
        (UriErrorKind::InvalidPercentEncoding, 10)
    );
    assert_eq!(
        error("coap://h/a%"),
        (UriErrorKind::InvalidPercentEncoding, 10)
    );
    assert_eq!(
        error("coap://h/?x=%%"),
        (UriErrorKind::InvalidPercentEncoding, 12)
    );
}

// RFC 3986 §3.3-3.4: characters outside pchar (and "/" "?" in queries) fail.
#[test]
fn rfc3986_3_3_invalid_characters_fail() {
    assert_eq!(error("coap://h/a b"), (UriErrorKind::InvalidCharacter, 10));
    assert_eq!(error("coap://h/é"), (UriErrorKind::InvalidCharacter, 9));
    assert_eq!(error("coap://h/a[0]"), (UriErrorKind::InvalidCharacter, 10));
    assert_eq!(
        error("coap://h/?a\"b"),
        (UriErrorKind::InvalidCharacter, 11)
    );
    assert_eq!(error("coap://h/a\\b"), (UriErrorKind::InvalidCharacter, 10));
}

// RFC 7252 §5.10.1: a decoded segment or argument over 255 bytes, or not
// UTF-8, cannot be an option.
#[test]
fn rfc7252_5_10_1_segment_of_256_bytes_fails() {
    let seg = "a".repeat(256);
    assert_eq!(
        error(&format!("coap://h/x/{seg}")),
        (UriErrorKind::TooLong, 11)
    );
    assert_eq!(
        error(&format!("coap://h/{}", "%41".repeat(256))),
        (UriErrorKind::TooLong, 9)
    );
    assert_eq!(
        error(&format!("coap://h/?a&{seg}")),
        (UriErrorKind::TooLong, 12)
    );
    // Even one that ".." would remove.
    assert_eq!(
        error(&format!("coap://h/{seg}/..")),
        (UriErrorKind::TooLong, 9)
    );
    assert_eq!(error("coap://h/ok/%FF"), (UriErrorKind::NotUtf8, 12));
    assert_eq!(error("coap://h/%C3"), (UriErrorKind::NotUtf8, 9));
    assert_eq!(error("coap://h/?%C3%28"), (UriErrorKind::NotUtf8, 10));
}

#[test]
fn errors_display_kind_and_offset() {
    let e = Uri::parse("coap://h/#").unwrap_err();
    assert_eq!(e.to_string(), "fragment at offset 9");
    let e: Box<dyn std::error::Error> = Box::new(e);
    assert!(e.to_string().contains("fragment"));
    assert_eq!(
        ComposeError::Repeated { number: HOST }.to_string(),
        "repeated Uri-Host option"
    );
}

// ---------------------------------------------------------------------------
// Composition, RFC 7252 §6.5

// RFC 7252 Appendix B, the five examples.
#[test]
fn rfc7252_appendix_b_examples() {
    let v6 = "2001:db8::2:1";
    assert_eq!(
        compose(Scheme::Coap, v6, 5683, &[]).unwrap(),
        "coap://[2001:db8::2:1]/"
    );
    assert_eq!(
        compose(Scheme::Coap, v6, 5683, &[(HOST, b"example.net")]).unwrap(),
        "coap://example.net/"
    );
    assert_eq!(
        compose(
            Scheme::Coap,
            v6,
            5683,
            &[
                (HOST, b"example.net"),
                (PATH, b".well-known"),
                (PATH, b"core")
            ]
        )
        .unwrap(),
        "coap://example.net/.well-known/core"
    );
    assert_eq!(
        compose(
            Scheme::Coap,
            v6,
            5683,
            &[
                (HOST, b"xn--18j4d.example"),
                (PATH, "こんにちは".as_bytes())
            ]
        )
        .unwrap(),
        "coap://xn--18j4d.example/%E3%81%93%E3%82%93%E3%81%AB%E3%81%A1%E3%81%AF"
    );
    // The last example. §6.5 step 8 leaves "/" unencoded in a query, while
    // Appendix B prints "%2F%2F"; both decompose into the same options.
    let options: &[(OptionNumber, &[u8])] = &[
        (PATH, b""),
        (PATH, b"/"),
        (PATH, b""),
        (PATH, b""),
        (QUERY, b"//"),
        (QUERY, b"?&"),
    ];
    let got = compose(Scheme::Coap, "198.51.100.1", 61616, options).unwrap();
    assert_eq!(got, "coap://198.51.100.1:61616//%2F//?//&?%26");
    let appendix_b = "coap://198.51.100.1:61616//%2F//?%2F%2F&?%26";
    let expected = vec![
        o(PATH, ""),
        o(PATH, "/"),
        o(PATH, ""),
        o(PATH, ""),
        o(QUERY, "//"),
        o(QUERY, "?&"),
    ];
    assert_eq!(opts(&got, Some("198.51.100.1:61616")), expected);
    assert_eq!(opts(appendix_b, Some("198.51.100.1:61616")), expected);
}

// RFC 7252 §6.5 step 6: in a segment, everything but unreserved, sub-delims,
// ":" and "@" is percent-encoded, in uppercase hex.
#[test]
fn rfc7252_6_5_step6_segment_encoding() {
    let got = compose(
        Scheme::Coap,
        "192.0.2.1",
        5683,
        &[
            (PATH, b"a/b?c#d&e=f"),
            (PATH, "é €".as_bytes()),
            (PATH, b"!$'()*+,;:@-._~%"),
        ],
    )
    .unwrap();
    assert_eq!(
        got,
        "coap://192.0.2.1/a%2Fb%3Fc%23d&e=f/%C3%A9%20%E2%82%AC/!$'()*+,;:@-._~%25"
    );
}

// RFC 7252 §6.5 step 8: in a query argument, "&" is encoded but "/" and "?"
// are not.
#[test]
fn rfc7252_6_5_step8_query_encoding() {
    let got = compose(
        Scheme::Coap,
        "192.0.2.1",
        5683,
        &[
            (QUERY, b"a=1&b=2"),
            (QUERY, b"/x?y"),
            (QUERY, "k=é#".as_bytes()),
        ],
    )
    .unwrap();
    assert_eq!(got, "coap://192.0.2.1/?a=1%26b=2&/x?y&k=%C3%A9%23");
    // With a path.
    let got = compose(
        Scheme::Coap,
        "192.0.2.1",
        5683,
        &[(PATH, b"p"), (QUERY, b"")],
    )
    .unwrap();
    assert_eq!(got, "coap://192.0.2.1/p?");
}

// RFC 7252 §6.5 steps 4-5: the port is Uri-Port or the destination port, and
// omitted when it is the scheme's default.
#[test]
fn rfc7252_6_5_steps4_5_port() {
    assert_eq!(
        compose(Scheme::Coap, "192.0.2.1", 5683, &[]).unwrap(),
        "coap://192.0.2.1/"
    );
    assert_eq!(
        compose(Scheme::Coap, "192.0.2.1", 5684, &[]).unwrap(),
        "coap://192.0.2.1:5684/"
    );
    assert_eq!(
        compose(Scheme::Coaps, "192.0.2.1", 5684, &[]).unwrap(),
        "coaps://192.0.2.1/"
    );
    assert_eq!(
        compose(Scheme::Coap, "192.0.2.1", 9999, &[(PORT, &[0x16, 0x33])]).unwrap(),
        "coap://192.0.2.1/"
    );
    assert_eq!(
        compose(Scheme::Coap, "192.0.2.1", 5683, &[(PORT, &[0x1f, 0x90])]).unwrap(),
        "coap://192.0.2.1:8080/"
    );
    assert_eq!(
        compose(Scheme::CoapsTcp, "::1", 5683, &[]).unwrap(),
        "coaps+tcp://[::1]:5683/"
    );
}

// RFC 7252 §6.5 step 2: a Uri-Host value; non-ASCII is percent-encoded, an IP
// address is written in RFC 5952 form.
#[test]
fn rfc7252_6_5_step2_host() {
    assert_eq!(
        compose(
            Scheme::Coap,
            "192.0.2.1",
            5683,
            &[(HOST, "bücher.example".as_bytes())]
        )
        .unwrap(),
        "coap://b%C3%BCcher.example/"
    );
    assert_eq!(
        compose(
            Scheme::Coap,
            "192.0.2.1",
            5683,
            &[(HOST, b"[2001:DB8:0::1]")]
        )
        .unwrap(),
        "coap://[2001:db8::1]/"
    );
    assert_eq!(
        compose(Scheme::Coap, "::1", 5683, &[(HOST, b"198.51.100.7")]).unwrap(),
        "coap://198.51.100.7/"
    );
    // Case-insensitive (§6.3): written in lowercase.
    assert_eq!(
        compose(Scheme::Coap, "::1", 5683, &[(HOST, b"Example.NET")]).unwrap(),
        "coap://example.net/"
    );
    // A destination name, as written in a URI.
    let mut out = String::new();
    write_uri(
        &mut out,
        Scheme::Coap,
        Host::Name("Ex%41mple.com"),
        5683,
        [],
    )
    .unwrap();
    assert_eq!(out, "coap://example.com/");
}

// RFC 7252 §5.10.1: "The value of a Uri-Path Option MUST NOT be "." or
// ".."": no URI decomposes into one, so composing one fails; other dotted
// names are fine.
#[test]
fn rfc7252_5_10_1_dot_segment_values_do_not_compose() {
    for dots in [&b"."[..], b".."] {
        assert_eq!(
            compose(
                Scheme::Coap,
                "192.0.2.1",
                5683,
                &[(PATH, b"a"), (PATH, dots)]
            ),
            Err(ComposeError::InvalidValue { number: PATH })
        );
    }
    let got = compose(
        Scheme::Coap,
        "192.0.2.1",
        5683,
        &[(PATH, b"..."), (PATH, b".a")],
    )
    .unwrap();
    assert_eq!(got, "coap://192.0.2.1/.../.a");
    assert_eq!(paths(&got), ["...", ".a"]);
    // In a query they mean nothing.
    let got = compose(Scheme::Coap, "192.0.2.1", 5683, &[(QUERY, b"..")]).unwrap();
    assert_eq!(queries(&got), [".."]);
}

// RFC 7252 §6.5 step 7: no Uri-Path gives "/"; so does a single empty one,
// which a URI cannot tell apart (§6.4 step 8).
#[test]
fn rfc7252_6_5_step7_empty_path_is_slash() {
    assert_eq!(
        compose(Scheme::Coap, "192.0.2.1", 5683, &[(QUERY, b"a")]).unwrap(),
        "coap://192.0.2.1/?a"
    );
    assert_eq!(
        compose(Scheme::Coap, "192.0.2.1", 5683, &[(PATH, b"")]).unwrap(),
        "coap://192.0.2.1/"
    );
    assert_eq!(
        compose(Scheme::Coap, "192.0.2.1", 5683, &[(PATH, b""), (PATH, b"")]).unwrap(),
        "coap://192.0.2.1//"
    );
}

/// A writer that always fails.
struct Full;

impl std::fmt::Write for Full {
    fn write_str(&mut self, _: &str) -> std::fmt::Result {
        Err(std::fmt::Error)
    }
}

#[test]
fn composition_failures() {
    let c = |options: &[(OptionNumber, &[u8])]| compose(Scheme::Coap, "192.0.2.1", 5683, options);
    assert_eq!(
        c(&[(HOST, b"a"), (HOST, b"b")]),
        Err(ComposeError::Repeated { number: HOST })
    );
    assert_eq!(
        c(&[(PORT, &[1]), (PORT, &[2])]),
        Err(ComposeError::Repeated { number: PORT })
    );
    assert_eq!(
        c(&[(PATH, b"a"), (HOST, b"b")]),
        Err(ComposeError::OutOfOrder { number: HOST })
    );
    assert_eq!(
        c(&[(QUERY, b"a"), (PATH, b"b")]),
        Err(ComposeError::OutOfOrder { number: PATH })
    );
    assert_eq!(c(&[(PORT, &[1, 0, 0])]), Err(ComposeError::InvalidPort));
    assert_eq!(
        c(&[(PORT, &[1, 2, 3, 4, 5])]),
        Err(ComposeError::InvalidPort)
    );
    assert_eq!(c(&[(HOST, b"")]), Err(ComposeError::InvalidHost));
    assert_eq!(c(&[(HOST, &[b'h'; 256])]), Err(ComposeError::InvalidHost));
    assert_eq!(c(&[(HOST, &[0xff])]), Err(ComposeError::InvalidHost));
    assert_eq!(c(&[(HOST, b"[::1")]), Err(ComposeError::InvalidHost));
    assert_eq!(
        c(&[(HOST, b"[fe80::1%eth0]")]),
        Err(ComposeError::InvalidHost)
    );
    assert_eq!(
        c(&[(PATH, &[0xc3])]),
        Err(ComposeError::InvalidValue { number: PATH })
    );
    assert_eq!(
        c(&[(QUERY, &[b'q'; 256])]),
        Err(ComposeError::InvalidValue { number: QUERY })
    );
    // A failing writer.
    assert_eq!(
        write_uri(&mut Full, Scheme::Coap, Host::Name("h"), 5683, []),
        Err(ComposeError::Write)
    );
}

// Other options are skipped; a parsed message is a direct input.
#[test]
fn compose_from_a_message() {
    // CON GET, Uri-Host "h", Observe 0, Uri-Path "a b", Accept 50.
    let bytes = b"\x40\x01\x00\x01\x31h\x30\x53a b\x61\x32";
    let msg = Message::parse(bytes).unwrap();
    let mut out = String::new();
    write_uri(
        &mut out,
        Scheme::Coap,
        Host::Ip("::1".parse().unwrap()),
        5683,
        msg.options(),
    )
    .unwrap();
    assert_eq!(out, "coap://h/a%20b");
}

// ---------------------------------------------------------------------------
// MessageBuf

#[cfg(feature = "alloc")]
#[test]
fn message_buf_set_uri_replaces_uri_options() {
    use coap_proto::message::uri::to_uri_string;
    use coap_proto::{Code, MessageBuf, MessageType};

    let mut m = MessageBuf::new(MessageType::Con, Code::GET);
    m.add_option(HOST, "old")
        .add_option(PATH, "old")
        .add_option(QUERY, "old")
        .add_option_uint(OptionNumber::OBSERVE, 0)
        .add_option_uint(OptionNumber::ACCEPT, 50);
    let uri = Uri::parse("coap://example.com:61616/a/b?x=1").unwrap();
    m.set_uri(&uri, Some("[2001:db8::1]:5683".parse().unwrap()));
    let got: Vec<(u16, Vec<u8>)> = m
        .options()
        .map(|o| (o.number.0, o.value.to_vec()))
        .collect();
    assert_eq!(
        got,
        [
            (3, b"example.com".to_vec()),
            (6, vec![]),
            (7, vec![0xf0, 0xb0]),
            (11, b"a".to_vec()),
            (11, b"b".to_vec()),
            (15, b"x=1".to_vec()),
            (17, vec![50]),
        ]
    );
    let back = to_uri_string(
        Scheme::Coap,
        Host::Ip("2001:db8::1".parse().unwrap()),
        5683,
        m.options(),
    )
    .unwrap();
    assert_eq!(back, "coap://example.com:61616/a/b?x=1");
}

// ---------------------------------------------------------------------------
// Accessors

#[test]
fn accessors_return_components_as_written() {
    let uri = Uri::parse("coap://Ex%41mple.com:0099/a/./%7E?q=%26&r").unwrap();
    assert_eq!(uri.as_str(), "coap://Ex%41mple.com:0099/a/./%7E?q=%26&r");
    assert_eq!(uri.to_string(), uri.as_str());
    assert_eq!(uri.host(), Host::Name("Ex%41mple.com"));
    assert_eq!(uri.host().to_string(), "Ex%41mple.com");
    assert_eq!(uri.port(), 99);
    assert_eq!(uri.path(), "/a/./%7E");
    assert_eq!(uri.query(), Some("q=%26&r"));
    assert_eq!(uri.socket_addr(), None);
    assert_eq!(Uri::try_from("coap://h").unwrap().host(), Host::Name("h"));
    let first = uri.options(None).next().unwrap();
    assert_eq!(
        format!("{first:?}"),
        r#"UriOption { number: OptionNumber(3 Uri-Host), value: "example.com" }"#
    );
}

// ---------------------------------------------------------------------------
// Regressions (fuzz/artifacts/uri)

// crash-9064b113: "%2E" decoded into a Uri-Path of ".", which RFC 7252
// §5.10.1 forbids and composition cannot express. Encoded dots are dots.
#[test]
fn regression_encoded_dot_segment() {
    assert_eq!(opts("coap://+/%2E", None), [o(HOST, "+")]);
    let got = compose(Scheme::Coap, "192.0.2.1", 5683, &[(HOST, b"+")]).unwrap();
    assert_eq!(got, "coap://+/");
}
