//! `coap decode` / `coap encode` end to end: the binary against every vector
//! in `vectors/`, against tshark (when installed), and its exit statuses.
#![cfg(feature = "cli")]

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use coap_proto::{Code, MessageBuf, MessageType, OptionFormat, OptionNumber};
use serde_json::Value;

/// Runs `coap ARGS`, with `stdin` on its standard input.
fn coap(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_coap"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn coap");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// (exit status, stdout without the final newline, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    run_stdin(args, "")
}

fn run_stdin(args: &[&str], stdin: &str) -> (i32, String, String) {
    let out = coap(args, stdin);
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    let stderr = String::from_utf8(out.stderr).expect("stderr is UTF-8");
    assert!(
        stdout.is_empty() || stdout.ends_with('\n') && stdout.matches('\n').count() == 1,
        "stdout is not one line: {stdout:?}"
    );
    (
        out.status.code().expect("exited"),
        stdout.trim_end_matches('\n').to_owned(),
        stderr,
    )
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

struct Vector {
    name: String,
    v: Value,
}

impl Vector {
    fn hex(&self) -> &str {
        self.v["hex"].as_str().unwrap()
    }
}

fn vectors() -> Vec<Vector> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let doc: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        for v in doc.as_array().expect("a vector file is a JSON array") {
            out.push(Vector {
                name: v["name"].as_str().unwrap().to_owned(),
                v: v.clone(),
            });
        }
    }
    assert!(out.len() > 300, "only {} vectors found", out.len());
    out
}

fn valid_vectors() -> Vec<Vector> {
    vectors()
        .into_iter()
        .filter(|v| v.v["valid"] == true)
        .collect()
}

fn decode_ok(hex: &str) -> (String, Value) {
    let (status, out, err) = run(&["decode", hex]);
    assert_eq!(status, 0, "decode {hex}: {out} {err}");
    let json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    (out, json)
}

#[test]
fn decode_issue_example() {
    let (status, out, err) = run(&["decode", "4201123420fab474656d70"]);
    assert_eq!((status, err.as_str()), (0, ""));
    assert_eq!(
        out,
        r#"{"type":"CON","code":"0.01","mid":4660,"token":"20fa","options":[{"number":11,"name":"Uri-Path","hex":"74656d70","value":"temp"}]}"#
    );
}

#[test]
fn decode_every_value_form() {
    // Built with the library, so that the framing is right: an opaque ETag,
    // an empty If-None-Match, a uint with a leading zero, a uint of 5
    // significant bytes (too long: hex), a string that needs escaping, a
    // string that is not UTF-8 (hex), an unknown option, and a payload.
    let mut m = MessageBuf::new(MessageType::Non, Code::CONTENT);
    m.set_message_id(1);
    m.add_option(OptionNumber::IF_NONE_MATCH, [])
        .add_option(OptionNumber::MAX_AGE, [0x00, 0x3c])
        .add_option(OptionNumber::MAX_AGE, [1, 2, 3, 4, 5])
        .add_option(OptionNumber::URI_QUERY, "a\"b\n")
        .add_option(OptionNumber::URI_QUERY, [0xff])
        .add_option(OptionNumber(2048), [0xab])
        .add_option(OptionNumber::ETAG, [0x20, 0xfa]);
    m.set_payload("hi");
    let hex = to_hex(&m.to_bytes().unwrap());
    let (out, _) = decode_ok(&hex);
    assert_eq!(
        out,
        concat!(
            r#"{"type":"NON","code":"2.05","mid":1,"token":"","options":["#,
            r#"{"number":4,"name":"ETag","hex":"20fa","value":"20fa"},"#,
            r#"{"number":5,"name":"If-None-Match","hex":"","value":null},"#,
            r#"{"number":14,"name":"Max-Age","hex":"003c","value":60},"#,
            r#"{"number":14,"name":"Max-Age","hex":"0102030405","value":"0102030405"},"#,
            r#"{"number":15,"name":"Uri-Query","hex":"6122620a","value":"a\"b\n"},"#,
            r#"{"number":15,"name":"Uri-Query","hex":"ff","value":"ff"},"#,
            r#"{"number":2048,"name":null,"hex":"ab","value":"ab"}],"#,
            r#""payload":"6869"}"#
        )
    );
    let (status, back, _) = run(&["encode", &out]);
    assert_eq!((status, back), (0, hex));
}

/// Checks `coap decode`'s JSON against a valid vector's fields.
fn check_decoded(vector: &Vector, json: &Value) -> Vec<String> {
    let v = &vector.v;
    let mut diffs = Vec::new();
    for key in ["type", "code", "mid", "token"] {
        if json[key] != v[key] {
            diffs.push(format!("{key}: {} != {}", json[key], v[key]));
        }
    }
    let Some(options) = json["options"].as_array() else {
        return vec![format!("no options list: {json}")];
    };
    let got: Vec<(u64, &str)> = options
        .iter()
        .map(|o| (o["number"].as_u64().unwrap(), o["hex"].as_str().unwrap()))
        .collect();
    let want: Vec<(u64, &str)> = v["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o[0].as_u64().unwrap(), o[1].as_str().unwrap()))
        .collect();
    if got != want {
        diffs.push(format!("options: {got:?} != {want:?}"));
    }
    for o in options {
        diffs.extend(check_option(o).err());
    }
    match (json.get("payload"), v["payload"].as_str().unwrap()) {
        (None, "") => {}
        (Some(Value::String(got)), want) if got == want && !want.is_empty() => {}
        (got, want) => diffs.push(format!("payload: {got:?} != {want:?}")),
    }
    diffs
}

/// An option object's "name" and "value", derived independently from its
/// number and hex.
fn check_option(o: &Value) -> Result<(), String> {
    let number = OptionNumber(u16::try_from(o["number"].as_u64().unwrap()).unwrap());
    let hex = o["hex"].as_str().unwrap();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let name = number.name().map_or(Value::Null, Value::from);
    let value = match number.info().map(|i| i.format) {
        Some(OptionFormat::Uint) => {
            let significant = bytes.iter().skip_while(|&&b| b == 0).count();
            if significant <= 4 {
                Value::from(bytes.iter().fold(0u64, |n, &b| n << 8 | u64::from(b)))
            } else {
                Value::from(hex)
            }
        }
        Some(OptionFormat::String) => {
            String::from_utf8(bytes).map_or_else(|_| Value::from(hex), Value::from)
        }
        Some(OptionFormat::Empty) => Value::Null,
        _ => Value::from(hex),
    };
    if o["name"] != name || o["value"] != value {
        return Err(format!("option {o}: expected name {name}, value {value}"));
    }
    Ok(())
}

#[test]
fn every_vector_decodes_and_reencodes() {
    let mut failures = Vec::new();
    let (mut valid, mut invalid) = (0, 0);
    for vector in vectors() {
        let hex = vector.hex();
        let (status, out, err) = run(&["decode", hex]);
        if vector.v["valid"] == true {
            valid += 1;
            if status != 0 {
                failures.push(format!("{}: exit {status}: {out} {err}", vector.name));
                continue;
            }
            let json: Value = serde_json::from_str(&out).unwrap();
            let diffs = check_decoded(&vector, &json);
            if !diffs.is_empty() {
                failures.push(format!("{}: {}", vector.name, diffs.join("; ")));
            }
            let (status, back, err) = run(&["encode", &out]);
            if (status, back.as_str()) != (0, hex) {
                failures.push(format!(
                    "{}: encode gave exit {status}, {back} {err}",
                    vector.name
                ));
            }
        } else {
            invalid += 1;
            let e = &vector.v["error"];
            let want = format!(
                r#"{{"error":"{}","offset":{}}}"#,
                e["kind"].as_str().unwrap(),
                e["offset"]
            );
            if (status, &out) != (1, &want) {
                failures.push(format!(
                    "{}: exit {status}, {out}, want {want}",
                    vector.name
                ));
            }
        }
    }
    assert!(
        valid >= 249 && invalid >= 77,
        "{valid} valid, {invalid} invalid"
    );
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        valid + invalid,
        failures.join("\n")
    );
}

/// Whether `program --version` runs.
fn available(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Reports a skipped test. Written to the real stderr, not through
/// `eprintln!`, which the test harness captures and only shows on failure.
fn skip(why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED: tshark not installed ({why})");
}

#[test]
fn decode_agrees_with_tshark() {
    let script = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/interop/tshark-decode.py"
    ));
    if !script.exists() {
        eprintln!(
            "SKIPPED: tshark not installed ({} not found)",
            script.display()
        );
        return;
    }
    for program in ["python3", "tshark", "text2pcap"] {
        if !available(program) {
            skip(&format!("{program} not found"));
            return;
        }
    }
    let vectors = valid_vectors();
    let out = Command::new("python3")
        .arg(script)
        .args(vectors.iter().map(Vector::hex))
        .output()
        .expect("run tshark-decode.py");
    assert!(
        out.status.success(),
        "tshark-decode.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), vectors.len(), "one tshark line per datagram");

    let mut failures = Vec::new();
    for (vector, line) in vectors.iter().zip(lines) {
        let shark: Value = serde_json::from_str(line).unwrap();
        let (_, ours) = decode_ok(vector.hex());
        let mut diffs = Vec::new();
        for key in ["type", "code", "mid", "token", "payload"] {
            let mine = ours.get(key).cloned().unwrap_or_else(|| Value::from(""));
            if mine != shark[key] {
                diffs.push(format!("{key}: ours {mine}, tshark {}", shark[key]));
            }
        }
        let theirs: Vec<(u64, &str)> = shark["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o[0].as_u64().unwrap(), o[1].as_str().unwrap()))
            .collect();
        let mine: Vec<(u64, &str)> = ours["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o["number"].as_u64().unwrap(), o["hex"].as_str().unwrap()))
            .collect();
        if mine != theirs {
            diffs.push(format!("options: ours {mine:?}, tshark {theirs:?}"));
        }
        if !diffs.is_empty() {
            failures.push(format!("{}: {}", vector.name, diffs.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["frobnicate"],
        &["decode", "40", "01"],
        &["decode", "--no-such-flag"],
        &["encode", "{}", "{}"],
    ] {
        let (status, out, err) = run(args);
        assert_eq!(status, 2, "{args:?}: {out} {err}");
        assert!(out.is_empty(), "{args:?}: usage errors go to stderr");
        assert!(!err.is_empty(), "{args:?}");
    }
    // Asking for help is not an error.
    for args in [&["--help"][..], &["decode", "--help"], &["encode", "-h"]] {
        let out = coap(args, "");
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn malformed_messages_exit_1_with_json() {
    for (hex, want) in [
        ("", r#"{"error":"too_short","offset":0}"#),
        ("400100", r#"{"error":"too_short","offset":0}"#),
        ("80010001", r#"{"error":"unsupported_version","offset":0}"#),
        ("49010001", r#"{"error":"invalid_token_length","offset":0}"#),
        (
            "40010001f0",
            r#"{"error":"reserved_option_delta","offset":4}"#,
        ),
        ("41010001aaff", r#"{"error":"empty_payload","offset":5}"#),
    ] {
        let (status, out, err) = run(&["decode", hex]);
        assert_eq!((status, out.as_str()), (1, want), "{hex}");
        assert!(err.is_empty(), "{hex}: {err}");
    }
    // With -v the error is also described on stderr.
    let (status, out, err) = run(&["-v", "decode", "40010001f0"]);
    assert_eq!(status, 1);
    assert_eq!(out, r#"{"error":"reserved_option_delta","offset":4}"#);
    assert_eq!(err.trim_end(), "reserved_option_delta at offset 4");
}

#[test]
fn invalid_hex_exits_1_with_the_offset() {
    for (hex, offset) in [
        ("4001000", 6),
        ("40 0 10001", 3),
        ("4001zz01", 4),
        ("40-01", 2),
    ] {
        let (status, out, _) = run(&["decode", hex]);
        let want = format!(r#"{{"error":"invalid_hex","offset":{offset}}}"#);
        assert_eq!((status, out), (1, want), "{hex}");
    }
}

#[test]
fn decode_input_forms() {
    let want = decode_ok("40017d34").0;
    for arg in ["40 01 7d 34", "40:01:7D:34", "0x40017d34"] {
        assert_eq!(decode_ok(arg).0, want, "{arg}");
    }
    for args in [&["decode"][..], &["decode", "-"]] {
        let (status, out, _) = run_stdin(args, "40 01\n7d 34\n");
        assert_eq!((status, &out), (0, &want), "{args:?}");
    }
}

#[test]
fn verbose_decode_prints_the_dump_on_stderr() {
    let (status, out, err) = run(&["decode", "-v", "4201123420fab474656d70"]);
    assert_eq!(status, 0);
    assert!(out.starts_with(r#"{"type":"CON""#), "{out}");
    assert_eq!(err, "CON GET mid=0x1234 tok=20fa Uri-Path:temp\n");
    // Without -v, stderr stays empty.
    assert_eq!(run(&["decode", "4201123420fab474656d70"]).2, "");
}

#[test]
fn encode_values_names_and_order() {
    let json = r#"{"type":"CON","code":"GET","mid":4660,"token":"20fa","options":[
        {"name":"Accept","value":50},
        {"number":11,"value":"temp"},
        {"name":"uri-path","value":"x"},
        {"number":5,"value":null},
        {"number":14,"name":"Max-Age","hex":"003c","value":60},
        {"number":65000,"hex":"ab"}],
        "payload":"4869"}"#;
    let (status, hex, err) = run(&["-v", "encode", json]);
    assert_eq!(status, 0, "{err}");
    assert_eq!(
        hex,
        concat!(
            "4201123420fa", // CON GET mid 0x1234 token 20fa
            "50",           // 5 If-None-Match
            "6474656d70",   // 11 Uri-Path "temp"
            "0178",         // 11 Uri-Path "x" (kept after "temp")
            "32003c",       // 14 Max-Age, hex as given
            "3132",         // 17 Accept 50
            "e1fccaab",     // 65000 (delta 64983 = 269 + 0xfcca)
            "ff4869",       // payload "Hi"
        )
    );
    assert_eq!(
        err,
        "CON GET mid=0x1234 tok=20fa If-None-Match Uri-Path:temp Uri-Path:x Max-Age:60 \
         Accept:50 #65000:0xab payload=2B\n"
    );
}

#[test]
fn encode_errors_exit_1() {
    for (json, needle) in [
        ("not json", "invalid JSON"),
        ("[]", "expected a JSON object"),
        (r#"{"type":"CON","code":"0.01"}"#, "missing \"mid\""),
        (r#"{"type":"CON","code":"0.01","mid":65536}"#, "\"mid\""),
        (r#"{"type":"XXX","code":"0.01","mid":1}"#, "\"type\""),
        (r#"{"type":"CON","code":"0.32","mid":1}"#, "\"code\""),
        (r#"{"type":"CON","code":"8.00","mid":1}"#, "\"code\""),
        (
            r#"{"type":"CON","code":"0.01","mid":1,"token":"0102030405060708090a"}"#,
            "token of 10 bytes",
        ),
        (
            r#"{"type":"CON","code":"0.01","mid":1,"token":"zz"}"#,
            "\"token\"",
        ),
        (
            r#"{"type":"CON","code":"0.01","mid":1,"paylod":"00"}"#,
            "unknown key \"paylod\"",
        ),
        (
            r#"{"type":"CON","code":"0.00","mid":1,"payload":"00"}"#,
            "Empty message",
        ),
        (
            r#"{"type":"CON","code":"0.01","mid":1,"options":[{"value":1}]}"#,
            "options[0]: needs \"number\" or \"name\"",
        ),
        (
            r#"{"type":"CON","code":"0.01","mid":1,"options":[{"number":11}]}"#,
            "needs \"hex\" or \"value\"",
        ),
        (
            r#"{"type":"CON","code":"0.01","mid":1,"options":[{"name":"No-Such","value":1}]}"#,
            "not a registered option name",
        ),
        (
            r#"{"type":"CON","code":"0.01","mid":1,"options":[{"number":11,"name":"Accept","value":1}]}"#,
            "disagree",
        ),
        (
            r#"{"type":"CON","code":"0.01","mid":1,"options":[{"number":14,"hex":"3c","value":61}]}"#,
            "does not match",
        ),
        (
            r#"{"type":"CON","code":"0.01","mid":1,"options":[{"number":14,"value":-1}]}"#,
            "not a uint",
        ),
        (
            r#"{"type":"CON","code":"0.01","mid":1,"options":[{"number":14,"value":4294967296}]}"#,
            "not a uint",
        ),
        (
            r#"{"type":"CON","code":"0.01","mid":1,"options":[{"number":14,"value":true}]}"#,
            "must be a number, a string or null",
        ),
    ] {
        let (status, out, err) = run(&["encode", json]);
        assert_eq!(status, 1, "{json}: {out} {err}");
        assert!(out.is_empty(), "{json}: {out}");
        assert!(err.starts_with("coap encode: "), "{json}: {err}");
        assert!(err.contains(needle), "{json}: {err:?} lacks {needle:?}");
    }
}

#[test]
fn encode_reads_stdin() {
    let json = r#"{"type":"RST","code":"0.00","mid":7}"#;
    for args in [&["encode"][..], &["encode", "-"]] {
        let (status, out, _) = run_stdin(args, json);
        assert_eq!((status, out.as_str()), (0, "70000007"), "{args:?}");
    }
}
