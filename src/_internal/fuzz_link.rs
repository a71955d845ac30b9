//! Fuzz body for the link-format parser, serializer and filter
//! (`message::link`, RFC 6690).
//!
//! The oracle: whatever parses must iterate without surprises, serialize to
//! a canonical form that parses back to an equal document (same targets,
//! names, quoting and unescaped values), and filtering must agree with
//! [`Filter::matches`] link by link.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::message::link::{Filter, Link, LinkFormat, WORD_LIST_ATTRS};

/// Parses lossy-UTF-8 `data` as a link-format document; if it is valid,
/// checks the round trip. When the first line parses as a [`Filter`]
/// (`rt=Type1\n</link1>;rt=Type1`), it is the query and the rest is the
/// document, and filtering is checked too.
pub fn link_format(data: &[u8]) {
    // The byte entry point agrees with the str one.
    if let Ok(s) = core::str::from_utf8(data) {
        assert_eq!(
            LinkFormat::parse_bytes(data).map(|d| d.as_str().len()),
            LinkFormat::parse(s).map(|d| d.as_str().len())
        );
    }
    let text = String::from_utf8_lossy(data);
    // A first line that parses as a filter is the query; the rest is the
    // document. (A document never starts with a valid filter.)
    let (filter, body) = match text.split_once('\n') {
        Some((first, rest)) => match Filter::parse(first) {
            Ok(f) => (Some(f), rest),
            Err(_) => (None, &*text),
        },
        None => (None, &*text),
    };
    if let Some(f) = filter {
        // A filter displays as a query that parses back to itself.
        let shown = f.to_string();
        assert_eq!(Filter::parse(&shown), Ok(f), "filter display {shown:?}");
    }

    let Ok(doc) = LinkFormat::parse(body) else {
        return;
    };
    for link in doc.links() {
        check_link(&link);
    }

    let mut canon = String::new();
    let n = doc.write_filtered(None, &mut canon).unwrap();
    assert_eq!(n, doc.links().count());
    assert_eq!(doc.to_string(), canon);
    let again = LinkFormat::parse(&canon)
        .unwrap_or_else(|e| panic!("canonical form {canon:?} does not parse: {e}"));
    assert_eq!(doc, again, "round trip through {canon:?}");
    let mut pairs = doc.links().zip(again.links());
    assert!(
        pairs.all(|(a, b)| same_form(&a, &b)),
        "quoting lost in {canon:?}"
    );
    // The canonical form is a fixed point.
    assert_eq!(again.to_string(), canon);

    if let Some(f) = filter {
        let mut out = String::new();
        let k = doc.write_filtered(Some(&f), &mut out).unwrap();
        let expected: Vec<Link<'_>> = doc.links().filter(|l| f.matches(l)).collect();
        assert_eq!(k, expected.len());
        let filtered = LinkFormat::parse(&out).unwrap();
        assert!(filtered.links().eq(expected.iter().copied()));
        assert!(filtered.links().all(|l| f.matches(&l)));
    }
}

/// Exercises every accessor of one link and cross-checks them.
fn check_link(link: &Link<'_>) {
    assert!(!link.target().contains('>'));
    for attr in link.attrs() {
        let first = link.attr(attr.name).expect("an attribute finds itself");
        assert!(first.name.eq_ignore_ascii_case(attr.name));
        let Some(v) = attr.value else {
            continue;
        };
        let unescaped: String = v.unescaped().collect();
        assert_eq!(v.to_string(), unescaped);
        assert_eq!(v.unescaped().to_string(), unescaped);
        assert!(v.eq_str(&unescaped));
        assert!(v.starts_with(&unescaped));
        assert!(v.starts_with(""));
        if let Some(plain) = v.as_str() {
            assert_eq!(plain, unescaped);
        }
        if !v.is_quoted() {
            assert_eq!(v.raw(), unescaped);
        }
        // Words are the space-separated pieces of the unescaped value.
        let words: Vec<String> = v.words().map(|w| w.unescaped().collect()).collect();
        let expected: Vec<&str> = unescaped.split(' ').filter(|w| !w.is_empty()).collect();
        assert_eq!(words, expected, "words of {:?}", v.raw());
        for w in &words {
            assert!(link.has_word(attr.name, w));
        }
        // The attribute is found by an exact filter on its value, or on each
        // of its words for a word-list attribute (when the value can be
        // written as a query: no trailing `*`).
        let list = WORD_LIST_ATTRS
            .iter()
            .any(|n| n.eq_ignore_ascii_case(attr.name));
        let mut probes: Vec<&str> = Vec::new();
        if list && !words.is_empty() {
            probes.extend(words.iter().map(String::as_str));
        } else {
            probes.push(&unescaped);
        }
        for p in probes {
            if attr.name.eq_ignore_ascii_case("href") || p.ends_with('*') {
                continue;
            }
            let q = format!("{}={p}", attr.name);
            let f = Filter::parse(&q).unwrap();
            assert!(f.matches(link), "{q:?} should match {link:?}");
            let pre = format!("{}={}*", attr.name, p.get(..p.len() / 2).unwrap_or(""));
            let f = Filter::parse(&pre).unwrap();
            assert!(f.matches(link), "{pre:?} should match {link:?}");
        }
        let _ = v.to_uint();
    }
}

/// Same targets, and every value in the same token/quoted form.
fn same_form(a: &Link<'_>, b: &Link<'_>) -> bool {
    a.target() == b.target()
        && a.attrs().zip(b.attrs()).all(|(x, y)| {
            x.name == y.name && x.value.map(|v| v.is_quoted()) == y.value.map(|v| v.is_quoted())
        })
}
