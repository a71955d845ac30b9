//! Property tests for CoAP URIs (RFC 7252 §6.4, §6.5):
//! - options -> URI -> options gives the same options;
//! - URI -> options -> URI -> options is stable, and the options match an
//!   independent model (RFC 3986 §5.2.4 run literally on the path string,
//!   then §6.4 steps 8-9);
//! - parsing never panics.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use coap_proto::message::uri::{Host, Scheme, Uri, write_uri};
use coap_proto::{OptionNumber, OptionRef, encode_uint};
use proptest::prelude::*;

const HOST: OptionNumber = OptionNumber::URI_HOST;
const PORT: OptionNumber = OptionNumber::URI_PORT;
const PATH: OptionNumber = OptionNumber::URI_PATH;
const QUERY: OptionNumber = OptionNumber::URI_QUERY;

type Opts = Vec<(OptionNumber, Vec<u8>)>;

fn scheme() -> impl Strategy<Value = Scheme> {
    prop::sample::select(Scheme::ALL.to_vec())
}

/// Characters that matter to URIs, plus anything at all.
fn interesting_char() -> impl Strategy<Value = char> {
    prop_oneof![
        2 => any::<char>(),
        3 => prop::sample::select(vec![
            '/', '%', '?', '&', ' ', '.', '#', '=', ':', '@', '[', ']', '+', '~', '!', '\'', '*',
            ';', ',', '$', '-', '_', '"', '\\', '\u{0}', '\u{7f}', 'é', '€', '😀', 'A', 'z', '0',
        ]),
        2 => prop::char::range('a', 'z'),
    ]
}

/// At most 40 characters: at most 160 bytes, within the 255-byte limit.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(interesting_char(), 0..=max).prop_map(|v| v.into_iter().collect())
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => text(40),
        1 => prop::sample::select(vec![".", "..", "", "...", ".a"]).prop_map(str::to_owned),
    ]
}

/// A Uri-Path value: anything but "." and ".." (RFC 7252 §5.10.1).
fn path_value() -> impl Strategy<Value = String> {
    segment().prop_filter("not a dot-segment", |s| s != "." && s != "..")
}

fn is_ip_text(s: &str) -> bool {
    s.parse::<std::net::Ipv4Addr>().is_ok() || s.starts_with('[')
}

/// A Uri-Host value for a registered name: lowercase (hosts are
/// case-insensitive, §6.3), not an IP address.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{1,12}(\\.[a-z0-9-]{1,12}){0,3}",
        prop::collection::vec(interesting_char(), 1..=30)
            .prop_map(|v| v.into_iter().collect::<String>().to_ascii_lowercase()),
    ]
    .prop_filter("a name, not an IP address", |s| {
        !s.is_empty() && !is_ip_text(s)
    })
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<std::net::Ipv4Addr>().prop_map(IpAddr::V4),
        any::<std::net::Ipv6Addr>().prop_map(IpAddr::V6),
        prop::sample::select(vec![
            "::1",
            "::",
            "::ffff:192.0.2.1",
            "192.0.2.1",
            "2001:db8::2:1",
            "fe80::1",
        ])
        .prop_map(|s| s.parse().unwrap()),
    ]
}

#[derive(Debug, Clone)]
enum UriHost {
    None,
    Name(String),
    Ip(IpAddr),
}

fn uri_host() -> impl Strategy<Value = UriHost> {
    prop_oneof![
        Just(UriHost::None),
        name().prop_map(UriHost::Name),
        ip().prop_map(UriHost::Ip),
    ]
}

/// A lone empty Uri-Path and no Uri-Path are the same URI (§6.4 step 8).
fn normalize(mut opts: Opts) -> Opts {
    let paths: Vec<_> = opts.iter().filter(|(n, _)| *n == PATH).collect();
    if paths.len() == 1 && paths[0].1.is_empty() {
        opts.retain(|(n, _)| *n != PATH);
    }
    opts
}

fn options_of(uri: &Uri<'_>, destination: SocketAddr) -> Opts {
    uri.options(Some(destination))
        .map(|o| (o.number(), o.as_bytes().to_vec()))
        .collect()
}

fn compose(scheme: Scheme, destination: SocketAddr, opts: &Opts) -> String {
    let mut out = String::new();
    write_uri(
        &mut out,
        scheme,
        Host::Ip(destination.ip()),
        destination.port(),
        opts.iter().map(|(number, value)| OptionRef {
            number: *number,
            value,
        }),
    )
    .unwrap_or_else(|e| panic!("{opts:?} do not compose: {e}"));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    // RFC 7252 §6.5 then §6.4: composing options into a URI and decomposing
    // it again for the same destination gives the same options.
    #[test]
    fn options_to_uri_to_options(
        scheme in scheme(),
        dest_ip in ip(),
        dest_port in any::<u16>(),
        host in uri_host(),
        port in proptest::option::of(any::<u16>()),
        segments in prop::collection::vec(path_value(), 0..6),
        queries in proptest::option::of(prop::collection::vec(text(40), 1..4)),
    ) {
        let mut opts: Opts = Vec::new();
        match &host {
            UriHost::None => {}
            UriHost::Name(n) => opts.push((HOST, n.clone().into_bytes())),
            UriHost::Ip(ip) => {
                // The destination's own address would be omitted (§6.4 step 5).
                prop_assume!(ip.to_canonical() != dest_ip.to_canonical());
                opts.push((HOST, Host::Ip(*ip).to_string().into_bytes()));
            }
        }
        if let Some(port) = port {
            prop_assume!(port != dest_port); // would be omitted (§6.4 step 7)
            opts.push((PORT, encode_uint(u32::from(port)).to_vec()));
        }
        opts.extend(segments.iter().map(|s| (PATH, s.clone().into_bytes())));
        opts.extend(queries.iter().flatten().map(|q| (QUERY, q.clone().into_bytes())));

        let dest = SocketAddr::new(dest_ip, dest_port);
        let text = compose(scheme, dest, &opts);
        let uri = Uri::parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        prop_assert_eq!(uri.scheme(), scheme);
        prop_assert_eq!(options_of(&uri, dest), normalize(opts), "via {:?}", text);
        // Composed URIs are in normal form: composing again changes nothing.
        prop_assert_eq!(compose(scheme, dest, &options_of(&uri, dest)), text);
    }
}

// ---------------------------------------------------------------------------
// Random spellings of URIs, and an independent model of their options.

/// Percent-encodes `s` for a URI component: characters outside `keep` always,
/// the others when `flip` says so, with random hex case.
fn spell(s: &str, keep: fn(u8) -> bool, flip: &[bool]) -> String {
    let mut out = String::new();
    for (i, b) in s.bytes().enumerate() {
        let encode = !keep(b) || flip.get(i).copied().unwrap_or(false);
        if encode {
            if flip.get(i + 1).copied().unwrap_or(false) {
                write!(out, "%{b:02x}").unwrap();
            } else {
                write!(out, "%{b:02X}").unwrap();
            }
        } else {
            out.push(b as char);
        }
    }
    out
}

fn unreserved_or_sub_delim(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b)
}

fn pchar(b: u8) -> bool {
    unreserved_or_sub_delim(b) || b == b':' || b == b'@'
}

fn reg_name(b: u8) -> bool {
    unreserved_or_sub_delim(b)
}

fn query_arg(b: u8) -> bool {
    (pchar(b) || b == b'/' || b == b'?') && b != b'&'
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// RFC 3986 §5.2.4, literally, on a string.
fn remove_dot_segments(path: &str) -> String {
    fn pop(output: &mut String) {
        match output.rfind('/') {
            Some(i) => output.truncate(i),
            None => output.clear(),
        }
    }
    let mut input = path.to_owned();
    let mut output = String::new();
    while !input.is_empty() {
        if input.starts_with("../") {
            input.drain(..3);
        } else if input.starts_with("./") {
            input.drain(..2);
        } else if input.starts_with("/./") {
            input.replace_range(..3, "/");
        } else if input == "/." {
            "/".clone_into(&mut input);
        } else if input.starts_with("/../") {
            input.replace_range(..4, "/");
            pop(&mut output);
        } else if input == "/.." {
            "/".clone_into(&mut input);
            pop(&mut output);
        } else if input == "." || input == ".." {
            input.clear();
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push_str(&input[..end]);
            input.drain(..end);
        }
    }
    output
}

/// RFC 7252 §6.4 steps 2, 8 and 9 on the raw path and query. Percent-encoded
/// dots are dots (RFC 3986 §6.2.2.2), so those segments are decoded first.
fn model_path_and_query(path: &str, query: Option<&str>) -> Opts {
    let path: Vec<String> = path
        .split('/')
        .map(|seg| match percent_decode(seg).as_slice() {
            b"." => ".".to_owned(),
            b".." => "..".to_owned(),
            _ => seg.to_owned(),
        })
        .collect();
    let path = remove_dot_segments(&path.join("/"));
    let mut opts = Vec::new();
    if !(path.is_empty() || path == "/") {
        for seg in path[1..].split('/') {
            opts.push((PATH, percent_decode(seg)));
        }
    }
    for arg in query.into_iter().flat_map(|q| q.split('&')) {
        opts.push((QUERY, percent_decode(arg)));
    }
    opts
}

#[derive(Debug, Clone)]
struct Spelled {
    text: String,
    path: String,
    query: Option<String>,
}

fn spelled_uri() -> impl Strategy<Value = Spelled> {
    let host = prop_oneof![
        (name(), prop::collection::vec(any::<bool>(), 0..=130))
            .prop_map(|(n, flip)| spell(&n, reg_name, &flip)),
        any::<std::net::Ipv4Addr>().prop_map(|a| a.to_string()),
        (ip(), any::<bool>()).prop_map(|(ip, upper)| {
            let s = Host::Ip(ip).to_string();
            if upper { s.to_ascii_uppercase() } else { s }
        }),
    ];
    let port = prop_oneof![
        Just(String::new()),
        Just(":".to_owned()),
        any::<u16>().prop_map(|p| format!(":{p}")),
        any::<u16>().prop_map(|p| format!(":00{p}")),
        prop::sample::select(vec![":5683", ":5684"]).prop_map(str::to_owned),
    ];
    let segment = (segment(), prop::collection::vec(any::<bool>(), 0..=170))
        .prop_map(|(s, flip)| spell(&s, pchar, &flip));
    let path = prop_oneof![
        1 => Just(String::new()),
        6 => prop::collection::vec(segment, 1..8).prop_map(|segs| format!("/{}", segs.join("/"))),
    ];
    let arg = (text(40), prop::collection::vec(any::<bool>(), 0..=170))
        .prop_map(|(s, flip)| spell(&s, query_arg, &flip));
    let query = proptest::option::of(prop::collection::vec(arg, 1..4).prop_map(|a| a.join("&")));
    (scheme(), any::<u64>(), host, port, path, query).prop_map(
        |(scheme, case_bits, host, port, path, query)| {
            // Random case for the scheme (§6.4 step 3).
            let scheme: String = scheme
                .as_str()
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if case_bits >> i & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            let mut text = format!("{scheme}://{host}{port}{path}");
            if let Some(q) = &query {
                text.push('?');
                text.push_str(q);
            }
            Spelled { text, path, query }
        },
    )
}

/// Where [`Uri::options`] with `None` sends the request.
fn implied_destination(uri: &Uri<'_>) -> SocketAddr {
    match uri.host() {
        Host::Ip(ip) => SocketAddr::new(ip, uri.port()),
        Host::Name(_) => SocketAddr::new("0.0.0.0".parse().unwrap(), uri.port()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    // RFC 7252 §6.4: any spelling of a URI decomposes into the options that
    // RFC 3986 §5.2.4 and steps 8-9 give; §6.5 composes them into a URI that
    // decomposes into the same options, and composing again is stable.
    #[test]
    fn uri_to_options_to_uri_is_stable(
        spelled in spelled_uri(),
        far_ip in ip(),
        far_port in any::<u16>(),
    ) {
        let uri = Uri::parse(&spelled.text)
            .map_err(|e| TestCaseError::fail(format!("{:?}: {e}", spelled.text)))?;
        for (dest, implied) in [(implied_destination(&uri), true), (SocketAddr::new(far_ip, far_port), false)] {
            let opts: Opts = if implied {
                uri.options(None).map(|o| (o.number(), o.as_bytes().to_vec())).collect()
            } else {
                options_of(&uri, dest)
            };
            if implied {
                prop_assert_eq!(&opts, &options_of(&uri, dest));
            }
            // The model, for the path and query.
            let tail: Opts = opts.iter().filter(|(n, _)| *n == PATH || *n == QUERY).cloned().collect();
            prop_assert_eq!(&tail, &model_path_and_query(&spelled.path, spelled.query.as_deref()),
                "{:?}", spelled.text);
            // Uri-Port exactly when the port differs from the destination's.
            let has_port = opts.iter().any(|(n, _)| *n == PORT);
            prop_assert_eq!(has_port, uri.port() != dest.port());

            let first = compose(uri.scheme(), dest, &opts);
            let again = Uri::parse(&first).map_err(|e| TestCaseError::fail(format!("{first:?}: {e}")))?;
            let opts_again = options_of(&again, dest);
            prop_assert_eq!(normalize(opts.clone()), normalize(opts_again.clone()),
                "{:?} -> {:?}", spelled.text, first);
            prop_assert_eq!(compose(again.scheme(), dest, &opts_again), first);
        }
    }

    // Uri::parse never panics, and rejects or accepts consistently.
    #[test]
    fn parse_never_panics_on_arbitrary_strings(s in any::<String>()) {
        if let Ok(uri) = Uri::parse(&s) {
            let _ = uri.options(None).count();
        }
    }

    #[test]
    fn parse_never_panics_on_uri_like_strings(
        scheme in prop::sample::select(vec!["coap://", "coaps://", "COAP+TCP://", "coap:", "x://", ""]),
        rest in prop::collection::vec(interesting_char(), 0..80),
    ) {
        let s = format!("{scheme}{}", rest.into_iter().collect::<String>());
        if let Ok(uri) = Uri::parse(&s) {
            for o in uri.options(Some("[::1]:1".parse().unwrap())) {
                prop_assert!(o.as_option_ref().is_len_valid());
            }
        }
    }
}

// The fuzz oracle (src/_internal/fuzz_uri.rs) on generated input.
#[cfg(feature = "_internal")]
proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn fuzz_body_holds_on_spelled_uris(spelled in spelled_uri()) {
        coap_proto::_internal::fuzz_uri::uri(spelled.text.as_bytes());
    }

    #[test]
    fn fuzz_body_holds_on_uri_like_bytes(
        scheme in prop::sample::select(vec!["coap://", "coaps+tcp://h", "coap://[::1]"]),
        rest in prop::collection::vec(interesting_char(), 0..60),
    ) {
        let s = format!("{scheme}{}", rest.into_iter().collect::<String>());
        coap_proto::_internal::fuzz_uri::uri(s.as_bytes());
    }
}
