//! `coap decode` and `coap encode`: the message codec on the command line,
//! with a JSON form of a message that round-trips through both.

use std::fmt::{self, Write as _};
use std::io::Write as _;

use clap::Args;
use coap_proto::{
    Code, Message, MessageBuf, MessageType, OptionFormat, OptionNumber, OptionRef, ParseErrorKind,
    decode_uint, encode_uint,
};
use serde_json::{Map, Value};

use crate::hex::{self, Hex};
use crate::{CmdResult, Failure, Global, Status, input};

/// Arguments of `coap decode`.
#[derive(Debug, Args)]
pub(crate) struct DecodeArgs {
    /// The message in hex. Whitespace or ':' may separate bytes; digits in
    /// either case; an optional leading "0x". Absent or "-": read stdin.
    #[arg(value_name = "HEX")]
    hex: Option<String>,
}

/// Arguments of `coap encode`.
#[derive(Debug, Args)]
pub(crate) struct EncodeArgs {
    /// The message as JSON, in the shape `coap decode` prints. Absent or
    /// "-": read stdin.
    #[arg(value_name = "JSON")]
    json: Option<String>,
}

/// The long help of `coap decode`.
pub(crate) fn decode_about() -> String {
    let kinds: Vec<&str> = ParseErrorKind::ALL.iter().map(|k| k.as_str()).collect();
    format!(
        "Decode a CoAP message from hex and print it as one line of JSON.

HEX may contain whitespace or ':' between bytes, digits in either case and a \
leading \"0x\". Without HEX, or with \"-\", the hex is read from stdin.

Output, with the keys in this order (\"payload\" is absent when there is none):
  {{\"type\":\"CON\",\"code\":\"0.01\",\"mid\":4660,\"token\":\"20fa\",\"options\":\
[{{\"number\":11,\"name\":\"Uri-Path\",\"hex\":\"74656d70\",\"value\":\"temp\"}}],\"payload\":\"4869\"}}
\"token\", \"hex\" and \"payload\" are lowercase hex. An option's \"name\" is its \
registered name, or null. Its \"value\" is a number for uint options (hex when \
longer than 4 significant bytes), text for string options (hex when not UTF-8), \
null for empty options, and hex for opaque and unknown options.

Invalid input is reported on stdout, with exit status 1:
  {{\"error\":\"KIND\",\"offset\":N}}
    a malformed message; N is the byte offset of the faulty element in the \
message, and KIND one of: {}.
  {{\"error\":\"invalid_hex\",\"offset\":N}}
    the input is not hex; N is the byte offset, in the input text, of the \
offending character (or of a digit without a partner).

With -v, the one-line summary of the message (or the error) is also printed \
on stderr.",
        kinds.join(", ")
    )
}

/// The long help of `coap encode`.
pub(crate) const ENCODE_ABOUT: &str = "\
Encode a CoAP message given as JSON and print it as one line of lowercase hex.

JSON has the shape that `coap decode` prints. Without JSON, or with \"-\", it \
is read from stdin. For every valid message, `coap encode \"$(coap decode HEX)\"` \
prints HEX again (lowercase, without separators).

Keys:
  \"type\"     required: \"CON\", \"NON\", \"ACK\" or \"RST\"
  \"code\"     required: \"c.dd\" such as \"0.01\", or a registered name such as \
\"GET\" or \"Content\"
  \"mid\"      required: 0 to 65535
  \"token\"    hex, at most 8 bytes (default: none)
  \"options\"  a list of option objects (default: none)
  \"payload\"  hex (default: none)
Any other key is an error.

An option object has \"number\" or \"name\" (both if they agree), and \"hex\" \
or \"value\":
  \"hex\"      the raw value bytes
  \"value\"    a number is a uint, minimally encoded; a string is its UTF-8 \
bytes; null is the empty value
If both \"hex\" and \"value\" are given, \"hex\" is encoded and \"value\" must \
be what `coap decode` shows for it, so that a stale \"value\" is caught. \
Options may come in any order: they are sorted by number, and repeated options \
keep their order.

Errors (invalid JSON, a token longer than 8 bytes, an Empty message with a \
token, options or payload, ...) are printed on stderr, with exit status 1.

With -v, the one-line summary of the encoded message is also printed on stderr.";

/// Writes one line on stdout.
fn print_line(line: impl fmt::Display) -> CmdResult {
    writeln!(std::io::stdout().lock(), "{line}")
        .map_err(|e| Failure::data(format!("writing stdout: {e}")))
}

/// `coap decode`.
pub(crate) fn decode(global: Global, args: &DecodeArgs) -> CmdResult {
    let text = input::arg_or_stdin(args.hex.as_deref())
        .map_err(|e| Failure::data(format!("reading stdin: {e}")))?;
    let bytes = match hex::parse(&text) {
        Ok(bytes) => bytes,
        Err(e) => {
            print_line(ErrorJson("invalid_hex", e.offset))?;
            if global.verbose > 0 {
                eprintln!("{e}");
            }
            return Err(Failure::reported(Status::InvalidData));
        }
    };
    match Message::parse(&bytes) {
        Ok(msg) => {
            print_line(MessageJson(msg))?;
            if global.verbose > 0 {
                eprintln!("{msg}");
            }
            Ok(())
        }
        Err(e) => {
            print_line(ErrorJson(e.kind.as_str(), e.offset))?;
            if global.verbose > 0 {
                eprintln!("{e}");
            }
            Err(Failure::reported(Status::InvalidData))
        }
    }
}

/// `coap encode`.
pub(crate) fn encode(global: Global, args: &EncodeArgs) -> CmdResult {
    let text = input::arg_or_stdin(args.json.as_deref())
        .map_err(|e| Failure::data(format!("reading stdin: {e}")))?;
    let json: Value =
        serde_json::from_slice(&text).map_err(|e| Failure::data(format!("invalid JSON: {e}")))?;
    let msg = message_from_json(&json).map_err(Failure::data)?;
    let bytes = msg.to_bytes().map_err(|e| Failure::data(e.to_string()))?;
    print_line(Hex(&bytes))?;
    if global.verbose > 0 {
        eprintln!("{msg}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Message -> JSON

/// `{"error":"KIND","offset":N}`.
struct ErrorJson(&'static str, usize);

impl fmt::Display for ErrorJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, r#"{{"error":"{}","offset":{}}}"#, self.0, self.1)
    }
}

/// The JSON form of a message, keys in a fixed order.
struct MessageJson<'a>(Message<'a>);

impl fmt::Display for MessageJson<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msg = &self.0;
        let code = msg.code();
        write!(
            f,
            r#"{{"type":"{}","code":"{}.{:02}","mid":{},"token":"{}","options":["#,
            msg.ty().as_str(),
            code.class(),
            code.detail(),
            msg.message_id(),
            Hex(msg.token()),
        )?;
        for (i, opt) in msg.options().enumerate() {
            if i > 0 {
                f.write_char(',')?;
            }
            write!(f, r#"{{"number":{},"name":"#, opt.number.0)?;
            match opt.number.name() {
                Some(name) => write_json_str(f, name)?,
                None => f.write_str("null")?,
            }
            write!(f, r#","hex":"{}","value":"#, Hex(opt.value))?;
            match OptionValue::of(opt) {
                OptionValue::Uint(n) => write!(f, "{n}")?,
                OptionValue::Text(s) => write_json_str(f, s)?,
                OptionValue::Null => f.write_str("null")?,
                OptionValue::Hex(b) => write!(f, r#""{}""#, Hex(b))?,
            }
            f.write_char('}')?;
        }
        f.write_char(']')?;
        if !msg.payload().is_empty() {
            write!(f, r#","payload":"{}""#, Hex(msg.payload()))?;
        }
        f.write_char('}')
    }
}

/// Writes `s` as a JSON string literal.
fn write_json_str(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str(&serde_json::to_string(s).map_err(|_| fmt::Error)?)
}

/// What `"value"` shows for an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OptionValue<'a> {
    Uint(u32),
    Text(&'a str),
    Null,
    Hex(&'a [u8]),
}

impl<'a> OptionValue<'a> {
    /// By the option's registered format; unknown options are opaque.
    fn of(opt: OptionRef<'a>) -> Self {
        match opt.number.info().map(|info| info.format) {
            Some(OptionFormat::Uint) => {
                decode_uint(opt.value).map_or(Self::Hex(opt.value), Self::Uint)
            }
            Some(OptionFormat::String) => {
                std::str::from_utf8(opt.value).map_or(Self::Hex(opt.value), Self::Text)
            }
            Some(OptionFormat::Empty) => Self::Null,
            _ => Self::Hex(opt.value),
        }
    }

    fn to_json(self) -> Value {
        match self {
            Self::Uint(n) => Value::from(n),
            Self::Text(s) => Value::from(s),
            Self::Null => Value::Null,
            Self::Hex(b) => Value::from(hex::encode(b)),
        }
    }
}

// ---------------------------------------------------------------------------
// JSON -> message

const MESSAGE_KEYS: &[&str] = &["type", "code", "mid", "token", "options", "payload"];
const OPTION_KEYS: &[&str] = &["number", "name", "hex", "value"];

/// Rejects keys outside `allowed`, so that a misspelt key is not ignored.
fn check_keys(obj: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(format!(
            "unknown key {key:?} (expected {})",
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

/// A present, non-null key.
fn get<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn required<'v>(obj: &'v Map<String, Value>, key: &str) -> Result<&'v Value, String> {
    get(obj, key).ok_or_else(|| format!("missing \"{key}\""))
}

fn hex_field(key: &str, v: &Value) -> Result<Vec<u8>, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("\"{key}\" must be a hex string, not {v}"))?;
    hex::parse(s.as_bytes()).map_err(|e| format!("\"{key}\": {e}"))
}

/// Builds a message from its JSON form (see [`ENCODE_ABOUT`]).
fn message_from_json(json: &Value) -> Result<MessageBuf, String> {
    let obj = json
        .as_object()
        .ok_or("expected a JSON object describing a message")?;
    check_keys(obj, MESSAGE_KEYS)?;
    let ty = parse_type(required(obj, "type")?)?;
    let code = parse_code(required(obj, "code")?)?;
    let mid = required(obj, "mid")?;
    let mid = mid
        .as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| format!("\"mid\" must be an integer from 0 to 65535, not {mid}"))?;
    let mut msg = MessageBuf::new(ty, code);
    msg.set_message_id(mid);
    if let Some(token) = get(obj, "token") {
        msg.set_token(&hex_field("token", token)?)
            .map_err(|e| e.to_string())?;
    }
    if let Some(options) = get(obj, "options") {
        let options = options
            .as_array()
            .ok_or("\"options\" must be a list of option objects")?;
        for (i, opt) in options.iter().enumerate() {
            let (number, value) = parse_option(opt).map_err(|e| format!("options[{i}]: {e}"))?;
            msg.add_option(number, value);
        }
    }
    if let Some(payload) = get(obj, "payload") {
        msg.set_payload(hex_field("payload", payload)?);
    }
    Ok(msg)
}

fn parse_type(v: &Value) -> Result<MessageType, String> {
    [
        MessageType::Con,
        MessageType::Non,
        MessageType::Ack,
        MessageType::Rst,
    ]
    .into_iter()
    .find(|t| {
        v.as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case(t.as_str()))
    })
    .ok_or_else(|| format!("\"type\" must be \"CON\", \"NON\", \"ACK\" or \"RST\", not {v}"))
}

/// `"c.dd"` (class 0-7, two-digit detail 00-31) or a registered name.
fn parse_code(v: &Value) -> Result<Code, String> {
    let err = || {
        format!(
            "\"code\" must be \"c.dd\" (such as \"0.01\") or a code name (such as \"GET\"), not {v}"
        )
    };
    let s = v.as_str().ok_or_else(err)?;
    if let Some((class, detail)) = s.split_once('.') {
        let digits = |t: &str, n: usize| t.len() == n && t.bytes().all(|b| b.is_ascii_digit());
        if digits(class, 1)
            && digits(detail, 2)
            && let (Ok(class @ 0..=7), Ok(detail @ 0..=31)) = (class.parse(), detail.parse())
        {
            return Ok(Code::new(class, detail));
        }
        return Err(err());
    }
    (0..=u8::MAX)
        .map(Code)
        .find(|c| c.name().is_some_and(|n| n.eq_ignore_ascii_case(s)))
        .ok_or_else(err)
}

/// One option object: its number and value bytes.
fn parse_option(v: &Value) -> Result<(OptionNumber, Vec<u8>), String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("expected an option object, not {v}"))?;
    check_keys(obj, OPTION_KEYS)?;
    let by_number = get(obj, "number")
        .map(|n| {
            n.as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .map(OptionNumber)
                .ok_or_else(|| format!("\"number\" must be an integer from 0 to 65535, not {n}"))
        })
        .transpose()?;
    let by_name = get(obj, "name")
        .map(|n| {
            n.as_str()
                .and_then(OptionNumber::from_name)
                .ok_or_else(|| format!("\"name\" {n} is not a registered option name"))
        })
        .transpose()?;
    let number = match (by_number, by_name) {
        (Some(a), Some(b)) if a != b => {
            return Err(format!(
                "\"number\" {} and \"name\" {:?} disagree",
                a.0,
                obj.get("name").and_then(Value::as_str).unwrap_or_default()
            ));
        }
        (Some(n), _) | (None, Some(n)) => n,
        (None, None) => return Err("needs \"number\" or \"name\"".into()),
    };
    let value = match (get(obj, "hex"), obj.get("value")) {
        (Some(h), value) => {
            let bytes = hex_field("hex", h)?;
            if let Some(value) = value {
                let shown = OptionValue::of(OptionRef {
                    number,
                    value: &bytes,
                })
                .to_json();
                if *value != shown {
                    return Err(format!(
                        "\"value\" {value} does not match \"hex\" {} (which decodes as {shown}); give only one of them",
                        hex::encode(&bytes)
                    ));
                }
            }
            bytes
        }
        (None, Some(value)) => value_bytes(value)?,
        (None, None) => return Err("needs \"hex\" or \"value\"".into()),
    };
    Ok((number, value))
}

/// The bytes of a `"value"`: a uint, a string or null.
fn value_bytes(v: &Value) -> Result<Vec<u8>, String> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(|n| encode_uint(n).to_vec())
            .ok_or_else(|| format!("\"value\" {n} is not a uint from 0 to {}", u32::MAX)),
        _ => Err(format!(
            "\"value\" must be a number, a string or null, not {v}"
        )),
    }
}
