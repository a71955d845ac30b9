//! Runs every JSON vector in `vectors/` (see vectors/README.md):
//! valid vectors are checked field by field and must re-encode to the same
//! bytes; invalid ones must fail with the exact error kind, offset and
//! header.

use std::path::Path;

use coap_proto::{Message, MessageBuf, ParseErrorKind};
use serde_json::Value;

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn code_str(c: coap_proto::Code) -> String {
    format!("{}.{:02}", c.class(), c.detail())
}

fn load() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let doc: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        for v in doc.as_array().expect("a vector file is a JSON array") {
            out.push((
                f.file_name().unwrap().to_string_lossy().into_owned(),
                v.clone(),
            ));
        }
    }
    out
}

fn check_valid(v: &Value) -> Result<(), String> {
    let bytes = hex(v["hex"].as_str().unwrap());
    let msg = Message::parse(&bytes).map_err(|e| format!("rejected: {e}"))?;
    let mut diffs = Vec::new();
    if msg.ty().as_str() != v["type"] {
        diffs.push(format!("type {}", msg.ty()));
    }
    if code_str(msg.code()) != v["code"] {
        diffs.push(format!("code {}", msg.code()));
    }
    if u64::from(msg.message_id()) != v["mid"].as_u64().unwrap() {
        diffs.push(format!("mid {}", msg.message_id()));
    }
    if to_hex(msg.token()) != v["token"] {
        diffs.push(format!("token {}", to_hex(msg.token())));
    }
    let opts: Vec<Value> = msg
        .options()
        .map(|o| serde_json::json!([o.number.0, to_hex(o.value)]))
        .collect();
    if Value::Array(opts.clone()) != v["options"] {
        diffs.push(format!("options {opts:?}"));
    }
    // The single-pass fold sees the same options.
    let (_, folded) = Message::parse_fold(&bytes, Vec::new(), |mut seen, o| {
        seen.push(serde_json::json!([o.number.0, to_hex(o.value)]));
        seen
    })
    .map_err(|e| format!("parse_fold rejected: {e}"))?;
    if folded != opts {
        diffs.push(format!("parse_fold options {folded:?}"));
    }
    if to_hex(msg.payload()) != v["payload"] {
        diffs.push("payload".into());
    }
    let mut out = vec![0u8; bytes.len()];
    let n = msg
        .encode(&mut out)
        .map_err(|e| format!("re-encode: {e}"))?;
    if out[..n] != bytes[..] {
        diffs.push("re-encode differs".into());
    }
    if MessageBuf::from(msg).to_bytes().unwrap() != bytes {
        diffs.push("MessageBuf re-encode differs".into());
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join(", "))
    }
}

fn check_invalid(v: &Value) -> Result<(), String> {
    let bytes = hex(v["hex"].as_str().unwrap());
    let err = match Message::parse(&bytes) {
        Ok(m) => return Err(format!("accepted: {m}")),
        Err(e) => e,
    };
    if Message::parse_fold(&bytes, (), |(), _| ()).err() != Some(err) {
        return Err("parse_fold disagrees with parse".into());
    }
    let want_kind = v["error"]["kind"].as_str().unwrap();
    let want_kind =
        ParseErrorKind::from_name(want_kind).ok_or_else(|| format!("unknown kind {want_kind}"))?;
    let want_offset = v["error"]["offset"].as_u64().unwrap() as usize;
    if (err.kind, err.offset) != (want_kind, want_offset) {
        return Err(format!(
            "got {err}, want {want_kind} at offset {want_offset}"
        ));
    }
    match (&v["header"], err.header) {
        (Value::Null, None) => Ok(()),
        (h, Some(got)) if !h.is_null() => {
            if h["type"] == got.ty.as_str()
                && h["code"] == code_str(got.code)
                && h["mid"].as_u64() == Some(u64::from(got.message_id))
            {
                Ok(())
            } else {
                Err(format!("header differs: {got:?}"))
            }
        }
        (h, got) => Err(format!("header: want {h}, got {got:?}")),
    }
}

#[test]
fn all_vectors() {
    let vectors = load();
    let mut failures = Vec::new();
    let (mut valid, mut invalid) = (0, 0);
    let mut kinds = std::collections::HashSet::new();
    for (file, v) in &vectors {
        let name = v["name"].as_str().unwrap_or("?");
        assert!(
            v["provenance"].as_str().is_some_and(|p| !p.is_empty()),
            "{file}/{name}: no provenance"
        );
        let result = if v["valid"] == true {
            valid += 1;
            check_valid(v)
        } else {
            invalid += 1;
            kinds.insert(v["error"]["kind"].as_str().unwrap().to_owned());
            check_invalid(v)
        };
        if let Err(e) = result {
            failures.push(format!("{file}/{name}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} vectors failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(valid + invalid >= 80, "only {} vectors", valid + invalid);
    assert!(invalid >= 25, "only {invalid} invalid vectors");
    for k in ParseErrorKind::ALL {
        assert!(kinds.contains(k.as_str()), "no invalid vector for {k}");
    }
}

#[test]
fn vector_names_are_unique() {
    let mut seen = std::collections::HashSet::new();
    for (file, v) in load() {
        let name = v["name"].as_str().unwrap().to_owned();
        assert!(
            seen.insert(name.clone()),
            "{file}: duplicate vector name {name}"
        );
    }
}
