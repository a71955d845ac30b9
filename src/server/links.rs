//! `application/link-format` documents of the registered resources
//! (RFC 6690 §4, query filtering §4.1).

use alloc::string::String;
use core::fmt;

use crate::message::link::{Filter, LinkFormat, LinkWriter, WriteError};

use super::resource::Resource;

/// Writes the link of one resource: `<path>` and its attributes, in the
/// order rt, if, ct, sz, obs, title, then the extra ones.
pub(crate) fn write_link<A, S, W: fmt::Write>(
    w: &mut LinkWriter<W>,
    r: &Resource<A, S>,
) -> Result<(), WriteError> {
    let mut l = w.link(&r.path)?;
    if !r.rt.is_empty() {
        l.attr("rt", &r.rt)?;
    }
    if !r.interface.is_empty() {
        l.attr("if", &r.interface)?;
    }
    match r.formats.as_slice() {
        [] => {}
        [one] => {
            l.attr_uint("ct", u64::from(one.0))?;
        }
        many => {
            // RFC 7252 §7.2.1: several formats as a quoted, space-separated list.
            let mut list = String::new();
            for (i, f) in many.iter().enumerate() {
                if i > 0 {
                    list.push(' ');
                }
                let _ = fmt::Write::write_fmt(&mut list, format_args!("{}", f.0));
            }
            l.attr("ct", &list)?;
        }
    }
    if let Some(sz) = r.size {
        l.attr_uint("sz", sz)?;
    }
    if r.observable {
        l.attr_flag("obs")?;
    }
    if let Some(t) = &r.title {
        l.attr("title", t)?;
    }
    for (name, value) in &r.extra {
        match value {
            Some(v) => l.attr(name, v)?,
            None => l.attr_flag(name)?,
        };
    }
    Ok(())
}

/// The links of `resources` picked by `pick`, filtered by every filter in
/// `filters` (all must match; RFC 6690 §4.1 defines one, several are
/// combined with AND). Returns the document and its number of links.
pub(crate) fn document<'r, A: 'r, S: 'r>(
    resources: impl Iterator<Item = &'r Resource<A, S>>,
    filters: &[Filter<'_>],
) -> (String, usize) {
    let mut doc = String::new();
    let mut w = LinkWriter::new(&mut doc);
    for r in resources {
        // Registration checked that every resource writes a valid link.
        let _ = write_link(&mut w, r);
    }
    let count = w.count();
    if filters.is_empty() {
        return (doc, count);
    }
    let Ok(parsed) = LinkFormat::parse(&doc) else {
        return (String::new(), 0);
    };
    let mut out = String::new();
    let mut w = LinkWriter::new(&mut out);
    for link in parsed.links() {
        if filters.iter().all(|f| f.matches(&link)) {
            let _ = w.copy(&link);
        }
    }
    let count = w.count();
    (out, count)
}
