//! Fuzz body for `fuzz/fuzz_targets/uri.rs`: URI parsing, decomposition into
//! options (RFC 7252 §6.4) and composition back (§6.5).
//!
//! Panics only when an oracle is violated.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::missing_panics_doc
)]

use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::message::OptionNumber;
use crate::message::uri::{Host, Uri, UriOption, to_uri_string};

fn collect(uri: &Uri<'_>, destination: Option<SocketAddr>) -> Vec<UriOption> {
    uri.options(destination).collect()
}

/// The destination that [`Uri::options`] with `None` stands for, as seen by
/// the composer: the URI's own address (or an unrelated one for a name,
/// which then travels in Uri-Host anyway).
fn implied_destination(uri: &Uri<'_>) -> SocketAddr {
    match uri.host() {
        Host::Ip(ip) => SocketAddr::new(ip, uri.port()),
        Host::Name(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), uri.port()),
    }
}

/// Checks that `options` (decomposed for `dest`) compose into a URI that
/// parses and decomposes into the same options for the same destination.
fn round_trip(uri: &Uri<'_>, options: &[UriOption], dest: SocketAddr) -> String {
    let text = to_uri_string(
        uri.scheme(),
        Host::Ip(dest.ip()),
        dest.port(),
        options.iter().map(UriOption::as_option_ref),
    )
    .unwrap_or_else(|e| {
        panic!(
            "{:?}: options {options:?} do not compose: {e}",
            uri.as_str()
        )
    });
    let again = Uri::parse(&text).unwrap_or_else(|e| {
        panic!(
            "{:?} composed into {text:?}, which fails: {e}",
            uri.as_str()
        )
    });
    assert_eq!(again.scheme(), uri.scheme());
    let options_again = collect(&again, Some(dest));
    assert_eq!(
        normalize(options),
        normalize(&options_again),
        "{:?} -> {text:?} changed the options",
        uri.as_str()
    );
    text
}

/// A lone empty Uri-Path and no Uri-Path are the same URI (§6.4 step 8).
fn normalize(options: &[UriOption]) -> Vec<UriOption> {
    let paths = options
        .iter()
        .filter(|o| o.number() == OptionNumber::URI_PATH)
        .count();
    options
        .iter()
        .filter(|o| {
            !(paths == 1 && o.number() == OptionNumber::URI_PATH && o.as_bytes().is_empty())
        })
        .copied()
        .collect()
}

/// `uri`: parsing never panics; an accepted URI decomposes into valid
/// options, which compose into a URI that decomposes into the same options,
/// with and without a destination; composing is idempotent.
pub fn uri(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(uri) = Uri::parse(&text) else {
        return;
    };
    assert_eq!(uri.as_str(), &*text);

    let implied = collect(&uri, None);
    let dest = implied_destination(&uri);
    // Without a destination, the URI's own address is the destination.
    if let Host::Ip(_) = uri.host() {
        assert_eq!(implied, collect(&uri, Some(dest)));
    }
    let far = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)), 1);
    let explicit = collect(&uri, Some(far));

    for (options, dest) in [(&implied, dest), (&explicit, far)] {
        let mut previous = OptionNumber(0);
        for o in options {
            assert!(o.number() >= previous, "options out of order: {options:?}");
            previous = o.number();
            assert!(o.as_option_ref().is_len_valid(), "bad length: {o:?}");
            if o.number() != OptionNumber::URI_PORT {
                assert!(o.as_str().is_some(), "not UTF-8: {o:?}");
            }
            assert!(
                o.as_bytes() != b"." && o.as_bytes() != b".."
                    || o.number() != OptionNumber::URI_PATH,
                "dot-segment left in {options:?}"
            );
        }
        let first = round_trip(&uri, options, dest);
        // Composing is idempotent: the composed URI is in normal form.
        let again = Uri::parse(&first).unwrap();
        let opts_again = collect(&again, Some(dest));
        let second = round_trip(&again, &opts_again, dest);
        assert_eq!(
            first,
            second,
            "composition is not stable for {:?}",
            uri.as_str()
        );
    }
}
