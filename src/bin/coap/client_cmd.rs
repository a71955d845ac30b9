//! The client commands: `coap get|post|put|delete|fetch URI`,
//! `coap discover URI` and `coap ping URI`, over the blocking std UDP driver
//! ([`coap_proto::udp::UdpEndpoint`]).
//!
//! Exit status: 0 on a 2.xx response (or a pong); 1 on any other response
//! code, with the code and the diagnostic payload on stderr; 2 on a usage
//! error (including a bad URI, an unsupported scheme and a host name that
//! does not resolve); 3 when no answer came: a timeout, a Reset, or a
//! network error.
//!
//! Requests go through the block-wise layer ([`coap_proto::client`], RFC
//! 7959): a payload of any size goes in Block1 blocks, a response of any
//! size is reassembled from its Block2 blocks, and `--block-size` chooses
//! the size of both. On a terminal, a progress bar on stderr follows
//! block-wise transfers (not with `--quiet` or `-v`).

use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::Args;
use coap_proto::client::{ClientConfig, ClientError, ClientEvent, FailReason, Phase, Transfers};
use coap_proto::endpoint::{Config, Event};
use coap_proto::message::link::LinkFormat;
use coap_proto::message::uri::{Scheme, Uri};
use coap_proto::udp::{Direction, UdpEndpoint, os_seed};
use coap_proto::{
    Block, Code, ContentFormat, Message, MessageBuf, MessageType, OptionFormat, OptionNumber,
};

use crate::hex::{self, Hex};
use crate::{CmdResult, Failure, Global, Status};

/// The default of `--timeout`, in seconds.
const DEFAULT_TIMEOUT: &str = "10";

// ---------------------------------------------------------------------------
// Arguments

/// How long to wait and how to send: shared by the request commands and
/// `discover`.
#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// Send a NON (non-confirmable) request instead of a CON.
    #[arg(long)]
    non: bool,

    /// Give up after this many seconds without an answer (fractions
    /// allowed); a block-wise transfer goes on as long as every block comes
    /// within it. A CON request is retransmitted within this time as RFC 7252
    /// §4.2 prescribes.
    #[arg(long, value_name = "SECONDS", default_value = DEFAULT_TIMEOUT, value_parser = parse_timeout)]
    timeout: Duration,
}

/// Arguments of `coap get|post|put|delete|fetch`.
#[derive(Debug, Args)]
pub(crate) struct RequestArgs {
    /// The resource: `coap://HOST[:PORT]/PATH[?QUERY]`. HOST is a name, an IPv4
    /// address or an `[IPv6]` address.
    #[arg(value_name = "URI", value_parser = parse_uri)]
    uri: String,

    /// The request payload, as text.
    #[arg(long, value_name = "TEXT", conflicts_with = "file")]
    payload: Option<String>,

    /// The request payload, read from a file ("-": stdin).
    #[arg(long, value_name = "PATH")]
    file: Option<std::path::PathBuf>,

    /// The Content-Format of the payload: a number or a media type such as
    /// text/plain or application/json.
    #[arg(long, value_name = "N|MIME", value_parser = parse_content_format)]
    content_format: Option<u16>,

    /// The Accept option: a number or a media type.
    #[arg(long, value_name = "N|MIME", value_parser = parse_content_format)]
    accept: Option<u16>,

    /// Add an option (repeatable). NUM is an option number or name
    /// (Uri-Query, If-Match, ...). VALUE: "0x..." is hex bytes; a decimal
    /// number is a minimal uint, except for string options (Uri-Query, ...),
    /// where it stays text; anything else is UTF-8 text. "NUM" or "NUM=" alone
    /// is an empty value.
    #[arg(long, short = 'O', value_name = "NUM=VALUE", value_parser = parse_header)]
    header: Vec<Header>,

    /// The block size of block-wise transfers (RFC 7959): 16, 32, 64, 128,
    /// 256, 512 or 1024 bytes. A payload larger than one block is sent in
    /// Block1 blocks of this size, and the response is asked for in Block2
    /// blocks of this size (the server may choose smaller ones). Default: 1024
    /// for uploads, the server's choice for downloads.
    #[arg(long, value_name = "BYTES", value_parser = parse_block_size)]
    block_size: Option<u8>,

    /// No progress bar (it is shown only on a terminal anyway).
    #[arg(long, short = 'q')]
    quiet: bool,

    /// Observe the resource (RFC 7641) for this many seconds: print the
    /// payload of every notification on a line of its own, then deregister
    /// (GET with Observe:1). A notification larger than one message is
    /// completed block-wise first (RFC 7959 §2.6), in `--block-size` blocks
    /// if given. The exit status is that of the first response.
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout)]
    observe: Option<Duration>,

    #[command(flatten)]
    send: SendArgs,
}

/// Arguments of `coap discover`.
#[derive(Debug, Args)]
pub(crate) struct DiscoverArgs {
    /// The server: `coap://HOST[:PORT]`. Without a path, /.well-known/core is
    /// asked for (a query such as ?rt=temperature is kept); with a path, that
    /// path.
    #[arg(value_name = "URI", value_parser = parse_uri)]
    uri: String,

    #[command(flatten)]
    send: SendArgs,
}

/// Arguments of `coap ping`.
#[derive(Debug, Args)]
pub(crate) struct PingArgs {
    /// The peer: `coap://HOST[:PORT]` (a path is ignored).
    #[arg(value_name = "URI", value_parser = parse_uri)]
    uri: String,

    /// Give up after this many seconds (fractions allowed).
    #[arg(long, value_name = "SECONDS", default_value = DEFAULT_TIMEOUT, value_parser = parse_timeout)]
    timeout: Duration,
}

/// One `--header NUM=VALUE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    number: OptionNumber,
    value: Vec<u8>,
}

/// A URI the client can use: it parses, and its scheme is `coap`.
fn parse_uri(s: &str) -> Result<String, String> {
    let uri = Uri::parse(s).map_err(|e| format!("invalid URI ({e})"))?;
    if uri.scheme() != Scheme::Coap {
        return Err(format!(
            "unsupported scheme \"{}\": only coap:// (CoAP over UDP) is supported",
            uri.scheme()
        ));
    }
    Ok(s.to_owned())
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|t| t.is_finite() && *t > 0.0 && *t <= 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{s:?} is not a positive number of seconds"))
}

/// A block size, as its SZX (RFC 7959 §2.2: 2^(SZX+4) bytes, 16 to 1024).
fn parse_block_size(s: &str) -> Result<u8, String> {
    s.parse::<usize>()
        .ok()
        .and_then(Block::szx_for_size)
        .ok_or_else(|| format!("{s:?} is not a block size: 16, 32, 64, 128, 256, 512 or 1024"))
}

/// A Content-Format number, or a registered media type.
fn parse_content_format(s: &str) -> Result<u16, String> {
    if let Ok(n) = s.parse::<u16>() {
        return Ok(n);
    }
    ContentFormat::from_media_type(s)
        .map(|cf| cf.0)
        .ok_or_else(|| {
            format!(
                "{s:?} is neither a number (0-65535) nor a registered media type \
                 (such as text/plain, application/link-format, application/json, application/cbor)"
            )
        })
}

/// `NUM=VALUE`, `NUM=` or `NUM`.
fn parse_header(s: &str) -> Result<Header, String> {
    let (name, value) = s.split_once('=').unwrap_or((s, ""));
    let name = name.trim();
    let number = match name.parse::<u16>() {
        Ok(n) => OptionNumber(n),
        Err(_) => OptionNumber::from_name(name).ok_or_else(|| {
            format!("{name:?} is neither an option number (0-65535) nor a registered option name")
        })?,
    };
    if number.0 == 0 {
        return Err("option number 0 is reserved".into());
    }
    let is_string = number
        .info()
        .is_some_and(|info| info.format == OptionFormat::String);
    let value = if value.starts_with("0x") || value.starts_with("0X") {
        hex::parse(value.as_bytes()).map_err(|e| format!("{value:?}: {e}"))?
    } else if !is_string && !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let n: u64 = value
            .parse()
            .map_err(|_| format!("{value:?} is too large for a uint option (at most 8 bytes)"))?;
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        bytes.get(skip..).unwrap_or_default().to_vec()
    } else {
        value.as_bytes().to_vec()
    };
    if value.len() > 65_804 {
        return Err(format!("option value of {} bytes is too long", value.len()));
    }
    Ok(Header { number, value })
}

// ---------------------------------------------------------------------------
// Commands

/// `coap get|post|put|delete|fetch`: sends one request, prints the response
/// payload on stdout (raw bytes), and exits by its code.
pub(crate) fn request(global: Global, method: Code, args: &RequestArgs) -> CmdResult {
    let uri = checked_uri(&args.uri)?;
    let peer = resolve(&uri)?;
    let mut req = new_request(&args.send, method, &uri, peer);
    if let Some(cf) = args.content_format {
        req.add_option_uint(OptionNumber::CONTENT_FORMAT, u32::from(cf));
    }
    if let Some(accept) = args.accept {
        req.add_option_uint(OptionNumber::ACCEPT, u32::from(accept));
    }
    for h in &args.header {
        req.add_option(h.number, &h.value);
    }
    if let Some(text) = &args.payload {
        req.set_payload(text.as_bytes());
    } else if let Some(path) = &args.file {
        let data = if path.as_os_str() == "-" {
            crate::input::arg_or_stdin(None)
        } else {
            std::fs::read(path)
        }
        .map_err(|e| Failure::usage(format!("reading {}: {e}", path.display())))?;
        req.set_payload(data);
    }
    if let Some(duration) = args.observe {
        if method != Code::GET && method != Code::FETCH {
            return Err(Failure::usage("--observe works with GET and FETCH only"));
        }
        return observe_cmd::observe(global, peer, req, &args.send, args.block_size, duration);
    }
    let blocks = Blocks {
        size: args.block_size,
        progress: !args.quiet,
    };
    let response = exchange(global, peer, req, &args.send, blocks)?;
    let out = std::io::stdout();
    let mut out = out.lock();
    out.write_all(response.payload())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::new(Status::NoAnswer, format!("writing stdout: {e}")))?;
    Ok(())
}

/// `coap discover`: GETs the link-format resource list and prints one link
/// per line.
pub(crate) fn discover(global: Global, args: &DiscoverArgs) -> CmdResult {
    let uri = checked_uri(&args.uri)?;
    let peer = resolve(&uri)?;
    let mut req = new_request(&args.send, Code::GET, &uri, peer);
    if req.option(OptionNumber::URI_PATH).is_none() {
        req.add_option(OptionNumber::URI_PATH, ".well-known")
            .add_option(OptionNumber::URI_PATH, "core");
    }
    let blocks = Blocks {
        size: None,
        progress: false,
    };
    let response = exchange(global, peer, req, &args.send, blocks)?;
    let payload = response.payload();
    let text = match LinkFormat::parse_bytes(payload) {
        Ok(links) => pretty_links(&links),
        Err(e) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(payload).and_then(|()| out.flush());
            return Err(Failure::data(format!(
                "the response is not valid link-format ({e}); printed as received"
            )));
        }
    };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|e| Failure::new(Status::NoAnswer, format!("writing stdout: {e}")))
}

/// `coap ping`: an empty CON, answered by a Reset (RFC 7252 §4.3).
pub(crate) fn ping(global: Global, args: &PingArgs) -> CmdResult {
    let uri = checked_uri(&args.uri)?;
    let peer = resolve(&uri)?;
    let mut ep = client(global, peer, Config::default())?;
    match ep.ping(peer, args.timeout) {
        Ok(Some(rtt)) => {
            println!("pong from {peer} in {:.3} ms", rtt.as_secs_f64() * 1000.0);
            Ok(())
        }
        Ok(None) => Err(Failure::new(
            Status::NoAnswer,
            format!("no pong from {peer} within {}", Seconds(args.timeout)),
        )),
        Err(e) => Err(network_error(&e)),
    }
}

// ---------------------------------------------------------------------------
// Helpers

/// Re-parses a URI that `parse_uri` accepted.
pub(crate) fn checked_uri(text: &str) -> Result<Uri<'_>, Failure> {
    Uri::parse(text).map_err(|e| Failure::usage(format!("invalid URI {text:?} ({e})")))
}

/// The socket address of the URI's host and port. A name is resolved with
/// the system resolver, and the first address it gives is used.
pub(crate) fn resolve(uri: &Uri<'_>) -> Result<SocketAddr, Failure> {
    if let Some(addr) = uri.socket_addr() {
        return Ok(addr);
    }
    // The decoded, lowercased name is what Uri-Host carries.
    let name = uri
        .options(None)
        .find(|o| o.number() == OptionNumber::URI_HOST)
        .and_then(|o| o.as_str().map(str::to_owned))
        .unwrap_or_else(|| uri.host().to_string());
    let unresolved = |why: String| Failure::usage(format!("cannot resolve host {name:?}: {why}"));
    (name.as_str(), uri.port())
        .to_socket_addrs()
        .map_err(|e| unresolved(e.to_string()))?
        .next()
        .ok_or_else(|| unresolved("no address".into()))
}

/// A request of `method` for `uri`, sent to `peer`: Uri-Host only for a host
/// name, Uri-Port never (the destination port is the URI's).
fn new_request(send: &SendArgs, method: Code, uri: &Uri<'_>, peer: SocketAddr) -> MessageBuf {
    let ty = if send.non {
        MessageType::Non
    } else {
        MessageType::Con
    };
    let mut req = MessageBuf::new(ty, method);
    req.set_uri(uri, Some(peer));
    req
}

/// The unspecified address of `peer`'s family, port 0: where a client
/// binds to reach `peer`.
pub(crate) fn any_addr(peer: SocketAddr) -> SocketAddr {
    if peer.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    }
}

/// A client endpoint on an ephemeral port of `peer`'s address family, with
/// `-v` tracing.
fn client(global: Global, peer: SocketAddr, config: Config) -> Result<UdpEndpoint, Failure> {
    let local = any_addr(peer);
    let mut ep = UdpEndpoint::bind(local, config).map_err(|e| network_error(&e))?;
    if global.verbose > 0 {
        let hex = global.verbose > 1;
        ep.set_trace(move |dir, from_or_to, bytes| trace(dir, from_or_to, bytes, hex));
    }
    Ok(ep)
}

/// Prints one datagram on stderr: `> PEER CON GET mid=...` for a sent one,
/// `< PEER ...` for a received one (with `-vv`, its hex on the next line).
fn trace(dir: Direction, peer: SocketAddr, bytes: &[u8], hex: bool) {
    let arrow = match dir {
        Direction::Out => '>',
        Direction::In => '<',
    };
    let mut line = format!("{arrow} {peer} ");
    let _ = match Message::parse(bytes) {
        Ok(msg) => write!(line, "{msg}"),
        Err(e) => write!(line, "malformed datagram of {} bytes ({e})", bytes.len()),
    };
    if hex {
        let _ = write!(line, "\n  {}", Hex(bytes));
    }
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// How a request uses block-wise transfers.
#[derive(Clone, Copy, Debug)]
struct Blocks {
    /// `--block-size`, as SZX.
    size: Option<u8>,
    /// Show a progress bar (when stderr is a terminal and `-v` is off).
    progress: bool,
}

/// The largest response body the client reassembles.
const MAX_BODY: usize = 1 << 30;

/// Sends `req` (its payload of any size) through the block-wise layer and
/// waits for the whole response. A non-2.xx response, a timeout, a Reset or
/// a failed transfer is a [`Failure`].
fn exchange(
    global: Global,
    peer: SocketAddr,
    req: MessageBuf,
    send: &SendArgs,
    blocks: Blocks,
) -> Result<MessageBuf, Failure> {
    let timeout = send.timeout;
    // The wait for each answer is bounded by `timeout`; the endpoint must
    // not give up on a NON request or a separate response earlier.
    let mut config = Config::default();
    config.non_request_timeout = timeout;
    config.separate_response_timeout = timeout;
    let mut ep = client(global, peer, config)?;
    let mut cc = ClientConfig::default();
    cc.tag_seed = os_seed();
    cc.max_body = MAX_BODY;
    cc.max_memory = MAX_BODY.saturating_mul(2);
    if let Some(szx) = blocks.size {
        cc.block1_szx = szx;
        cc.block2_szx = Some(szx);
    }
    let mut bar = Bar::new(blocks.progress && global.verbose == 0);
    // Size2:0 (RFC 7959 §4) only where a progress bar shows the total.
    cc.ask_size2 = bar.enabled;
    let mut transfers = Transfers::new(cc);
    let now = ep.now();
    let id = transfers
        .request(ep.endpoint(), now, peer, req)
        .map_err(|e| match e {
            ClientError::Endpoint(coap_proto::endpoint::Error::Encode(e)) => {
                Failure::usage(format!("cannot encode the request: {e}"))
            }
            ClientError::BodyTooLarge => {
                Failure::usage("the payload needs more than 2^20 blocks; use a larger --block-size")
            }
            other => Failure::usage(format!("cannot send the request: {other}")),
        })?;
    let mut outcome: Option<Result<MessageBuf, Failure>> = None;
    // A timeout too large to represent means "no limit but the endpoint's".
    let mut deadline = std::time::Instant::now().checked_add(timeout);
    while outcome.is_none() {
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        if left == Some(Duration::ZERO) {
            let now = ep.now();
            let _ = transfers.cancel(ep.endpoint(), now, id);
            outcome = Some(Err(Failure::new(
                Status::NoAnswer,
                format!("no response from {peer} within {}", Seconds(timeout)),
            )));
            break;
        }
        let mut progressed = false;
        ep.turn(left, |ep, now, event| {
            match transfers.handle_event(ep, now, event) {
                Some(ClientEvent::Response { id: i, message, .. }) if i == id => {
                    outcome = Some(Ok(message));
                }
                Some(ClientEvent::Progress {
                    phase, done, total, ..
                }) => {
                    progressed = true;
                    bar.update(phase, done, total);
                }
                Some(ClientEvent::Failed { id: i, reason }) if i == id => {
                    outcome = Some(Err(transfer_failure(peer, reason)));
                }
                Some(ClientEvent::Endpoint(Event::Request(req))) => {
                    let busy = MessageBuf::new(MessageType::Ack, Code::SERVICE_UNAVAILABLE);
                    let _ = ep.respond(now, req.handle, &busy);
                    ep.recycle(req.message.into_bytes());
                }
                _ => {}
            }
        })
        .map_err(|e| network_error(&e))?;
        if progressed {
            deadline = std::time::Instant::now().checked_add(timeout);
        }
    }
    bar.finish();
    match outcome {
        Some(Ok(response)) if response.code().is_success() => Ok(response),
        Some(Ok(response)) => {
            let mut message = response.code().to_string();
            let payload = response.payload();
            if !payload.is_empty() {
                let _ = write!(message, ": {}", String::from_utf8_lossy(payload));
            }
            Err(Failure::new(Status::ErrorResponse, message))
        }
        Some(Err(f)) => Err(f),
        None => Err(Failure::new(
            Status::NoAnswer,
            format!("no response from {peer}"),
        )),
    }
}

/// The exit status and message of a failed transfer.
fn transfer_failure(peer: SocketAddr, reason: FailReason) -> Failure {
    match reason {
        FailReason::Reset => {
            Failure::new(Status::NoAnswer, format!("{peer} answered with a Reset"))
        }
        FailReason::TimedOut => Failure::new(Status::NoAnswer, format!("no response from {peer}")),
        FailReason::Endpoint(_) => Failure::new(Status::NoAnswer, reason.to_string()),
        FailReason::RequestTooLarge { .. } => Failure::new(
            Status::ErrorResponse,
            format!("4.13 Request Entity Too Large: {reason}"),
        ),
        _ => Failure::data(format!("block-wise transfer failed: {reason}")),
    }
}

/// The progress bar of block-wise transfers on stderr: only on a terminal,
/// and only once a transfer turns out to be block-wise (the first progress
/// event); one bar per direction.
struct Bar {
    enabled: bool,
    bar: Option<(Phase, indicatif::ProgressBar)>,
}

impl Bar {
    fn new(wanted: bool) -> Self {
        Self {
            enabled: wanted && std::io::stderr().is_terminal(),
            bar: None,
        }
    }

    fn update(&mut self, phase: Phase, done: usize, total: Option<usize>) {
        use indicatif::{ProgressBar, ProgressStyle};
        if !self.enabled {
            return;
        }
        if self.bar.as_ref().is_none_or(|(p, _)| *p != phase) {
            self.finish();
            let label = match phase {
                Phase::Upload => "upload",
                Phase::Download => "download",
            };
            let bar = if let Some(t) = total {
                let style = ProgressStyle::with_template(
                    "{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                )
                .map_or_else(
                    |_| ProgressStyle::default_bar(),
                    |s| s.progress_chars("=> "),
                );
                ProgressBar::new(t as u64).with_style(style)
            } else {
                let style =
                    ProgressStyle::with_template("{prefix:>8} {spinner} {bytes} {bytes_per_sec}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner());
                ProgressBar::new_spinner().with_style(style)
            };
            bar.set_prefix(label);
            self.bar = Some((phase, bar));
        }
        if let Some((_, bar)) = &self.bar {
            if let Some(t) = total {
                bar.set_length(t as u64);
            }
            bar.set_position(done as u64);
        }
    }

    fn finish(&mut self) {
        if let Some((_, bar)) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// An I/O error of the socket: no answer can come.
fn network_error(e: &std::io::Error) -> Failure {
    Failure::new(Status::NoAnswer, format!("network error: {e}"))
}

/// The links of a link-format document, one per line: the target in angle
/// brackets, padded to a column, then the attributes separated by spaces.
///
/// ```text
/// </sensors/temp>   rt="temperature-c" if="sensor" ct=0
/// </obs>            rt="observe" obs
/// ```
fn pretty_links(links: &LinkFormat<'_>) -> String {
    const MAX_COLUMN: usize = 40;
    let width = links
        .links()
        .map(|l| l.target().chars().count() + 2)
        .filter(|&w| w <= MAX_COLUMN)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for link in links.links() {
        let target = format!("<{}>", link.target());
        let mut attrs = link.attrs().peekable();
        if attrs.peek().is_none() {
            let _ = writeln!(out, "{target}");
            continue;
        }
        // Two spaces after the target column, one between attributes.
        let _ = write!(out, "{target:width$} ");
        for attr in attrs {
            let _ = write!(out, " {attr}");
        }
        out.push('\n');
    }
    out
}

/// A duration in seconds, as given on the command line: `10 s`, `0.5 s`.
struct Seconds(Duration);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} s", self.0.as_secs_f64())
    }
}

/// `coap get --observe SECONDS` (RFC 7641), through the client layer
/// ([`Transfers::observe`]): every notification is printed whole, a
/// block-wise one once its remaining blocks came (RFC 7959 §2.6).
mod observe_cmd {
    use std::io::Write as _;
    use std::net::SocketAddr;
    use std::time::{Duration, Instant as StdInstant};

    use coap_proto::client::{ClientConfig, ClientEvent, FailReason, TransferId, Transfers};
    use coap_proto::endpoint::{Config, Deregister, Endpoint, Event};
    use coap_proto::udp::{UdpEndpoint, os_seed};
    use coap_proto::{Code, MessageBuf, MessageType};

    use super::{MAX_BODY, Seconds, SendArgs, client, network_error};
    use crate::{CmdResult, Failure, Global, Status};

    /// What the observation has come to.
    #[derive(Default)]
    struct State {
        /// The code of the first response.
        first: Option<Code>,
        /// Ended by the server or the network: a final response, a
        /// timeout, a Reset.
        ended: Option<Failure>,
        done: bool,
        error: Option<std::io::Error>,
    }

    /// Prints one payload as a line.
    fn line(payload: &[u8], st: &mut State) {
        let mut out = std::io::stdout().lock();
        let r = out
            .write_all(payload)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush());
        if let Err(e) = r {
            st.error.get_or_insert(e);
        }
    }

    /// RFC 7641 §3.6: deregisters with GET Observe:1 (which also ends a
    /// completion in flight), and waits (at most `timeout`) for its
    /// exchange to end.
    fn deregister(
        ep: &mut UdpEndpoint,
        transfers: &mut Transfers<SocketAddr>,
        id: TransferId,
        timeout: Duration,
    ) -> CmdResult {
        let now = ep.now();
        let _ = transfers.cancel_observe(ep.endpoint(), now, id, Deregister::Active);
        let until = StdInstant::now() + timeout;
        while ep.endpoint().tables().requests > 0 {
            let left = until.saturating_duration_since(StdInstant::now());
            if left.is_zero() {
                break;
            }
            ep.turn(
                Some(left.min(Duration::from_millis(200))),
                |e, now, event| {
                    if let Some(ClientEvent::Endpoint(
                        Event::Notification(r) | Event::Response(r),
                    )) = transfers.handle_event(e, now, event)
                    {
                        e.recycle(r.message.into_bytes());
                    }
                },
            )
            .map_err(|e| network_error(&e))?;
        }
        Ok(())
    }

    /// What one event of the layer does to the observation `id`.
    fn on_event(
        st: &mut State,
        id: TransferId,
        peer: SocketAddr,
        e: &mut Endpoint<SocketAddr>,
        now: coap_proto::Instant,
        ev: Option<ClientEvent<SocketAddr>>,
    ) {
        match ev {
            Some(ClientEvent::Notification { id: i, message, .. }) if i == id => {
                st.first.get_or_insert(message.code());
                line(message.payload(), st);
            }
            Some(ClientEvent::NotificationFailed { id: i, reason }) if i == id => {
                // The observation goes on (it did answer); the
                // next notification brings the value.
                st.first.get_or_insert(Code::CONTENT);
                eprintln!("coap get: a notification was not completed: {reason}");
            }
            Some(ClientEvent::Response { id: i, message, .. }) if i == id => {
                // Not (or no longer) observed: a plain response.
                let code = message.code();
                if code.is_success() {
                    line(message.payload(), st);
                } else {
                    let mut m = code.to_string();
                    let p = message.payload();
                    if !p.is_empty() {
                        m.push_str(": ");
                        m.push_str(&String::from_utf8_lossy(p));
                    }
                    st.ended = Some(Failure::new(Status::ErrorResponse, m));
                }
                st.first.get_or_insert(code);
                st.done = true;
            }
            Some(ClientEvent::Failed { id: i, reason }) if i == id => {
                let why = match reason {
                    FailReason::TimedOut | FailReason::Reset => "no answer or a Reset".to_string(),
                    other => other.to_string(),
                };
                st.ended = Some(Failure::new(
                    Status::NoAnswer,
                    format!("the observation of {peer} ended: {why}"),
                ));
                st.done = true;
            }
            Some(ClientEvent::Endpoint(Event::Request(req))) => {
                let busy = MessageBuf::new(MessageType::Ack, Code::SERVICE_UNAVAILABLE);
                let _ = e.respond(now, req.handle, &busy);
                e.recycle(req.message.into_bytes());
            }
            Some(ClientEvent::Endpoint(Event::Response(r) | Event::Notification(r))) => {
                e.recycle(r.message.into_bytes());
            }
            _ => {}
        }
    }

    /// Observes for `duration`, printing each complete notification, then
    /// deregisters actively (RFC 7641 §3.6).
    pub(super) fn observe(
        global: Global,
        peer: SocketAddr,
        req: MessageBuf,
        send: &SendArgs,
        block_size: Option<u8>,
        duration: Duration,
    ) -> CmdResult {
        let mut config = Config::default();
        config.non_request_timeout = send.timeout;
        config.separate_response_timeout = send.timeout;
        let mut ep = client(global, peer, config)?;
        let mut cc = ClientConfig::default();
        cc.tag_seed = os_seed();
        cc.max_body = MAX_BODY;
        cc.max_memory = MAX_BODY.saturating_mul(2);
        cc.ask_size2 = false;
        cc.progress = false;
        // RFC 7959 §2.6: the size asked for on the registration applies to
        // the notifications, and the follow-ups use the server's.
        cc.block2_szx = block_size;
        let mut transfers = Transfers::new(cc);
        let start = StdInstant::now();
        let now = ep.now();
        let id = transfers
            .observe(ep.endpoint(), now, peer, req)
            .map_err(|e| Failure::usage(format!("cannot send the request: {e}")))?;
        let mut st = State::default();
        let end = start + duration;
        while !st.done {
            let left = end.saturating_duration_since(StdInstant::now());
            if left.is_zero() {
                break;
            }
            if st.first.is_none() && start.elapsed() >= send.timeout {
                let now = ep.now();
                let _ = transfers.cancel(ep.endpoint(), now, id);
                return Err(Failure::new(
                    Status::NoAnswer,
                    format!("no response from {peer} within {}", Seconds(send.timeout)),
                ));
            }
            ep.turn(
                Some(left.min(Duration::from_millis(200))),
                |e, now, event| {
                    let ev = transfers.handle_event(e, now, event);
                    on_event(&mut st, id, peer, e, now, ev);
                },
            )
            .map_err(|e| network_error(&e))?;
        }
        if !st.done {
            deregister(&mut ep, &mut transfers, id, send.timeout)?;
        }
        if let Some(e) = st.error {
            return Err(Failure::new(
                Status::NoAnswer,
                format!("writing stdout: {e}"),
            ));
        }
        match (st.first, st.ended) {
            (Some(code), Some(f)) if code.is_success() => {
                // Registered, ended by the server later: report, exit 0.
                if let Some(m) = f.message {
                    eprintln!("coap get: {m}");
                }
                Ok(())
            }
            (_, Some(f)) => Err(f),
            (Some(_), None) => Ok(()),
            (None, None) => Err(Failure::new(
                Status::NoAnswer,
                format!("no response from {peer} within {}", Seconds(duration)),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let h = |s| parse_header(s).map(|h| (h.number.0, h.value));
        assert_eq!(h("65000=0x0102"), Ok((65000, vec![1, 2])));
        assert_eq!(h("2048=300"), Ok((2048, vec![0x01, 0x2c])));
        assert_eq!(h("2048=0"), Ok((2048, vec![])));
        assert_eq!(h("Uri-Query=5"), Ok((15, b"5".to_vec())));
        assert_eq!(h("uri-query=a=b"), Ok((15, b"a=b".to_vec())));
        assert_eq!(h("If-None-Match"), Ok((5, vec![])));
        assert_eq!(h("Max-Age=60"), Ok((14, vec![60])));
        assert_eq!(h("65001=text"), Ok((65001, b"text".to_vec())));
        assert_eq!(h("65001="), Ok((65001, vec![])));
        assert!(h("Nope=1").is_err());
        assert!(h("0=1").is_err());
        assert!(h("12=0xabc").is_err());
        assert!(h("12=99999999999999999999").is_err());
    }

    #[test]
    fn content_formats() {
        assert_eq!(parse_content_format("0"), Ok(0));
        assert_eq!(parse_content_format("text/plain"), Ok(0));
        assert_eq!(parse_content_format("application/json"), Ok(50));
        assert_eq!(parse_content_format("application/link-format"), Ok(40));
        assert!(parse_content_format("text/nope").is_err());
        assert!(parse_content_format("70000").is_err());
    }

    #[test]
    fn uris_and_timeouts() {
        assert!(parse_uri("coap://127.0.0.1/x").is_ok());
        assert!(parse_uri("coap://[::1]:5683/x?y").is_ok());
        assert!(
            parse_uri("coaps://h/")
                .unwrap_err()
                .contains("unsupported scheme")
        );
        assert!(
            parse_uri("coap+tcp://h/")
                .unwrap_err()
                .contains("unsupported scheme")
        );
        assert!(parse_uri("http://h/").is_err());
        assert!(parse_uri("/x").is_err());
        assert_eq!(parse_timeout("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("-1").is_err());
        assert!(parse_timeout("inf").is_err());
    }

    #[test]
    fn pretty_links_align() {
        let doc = LinkFormat::parse(r#"</a>;rt="x y";ct=0,</long/path>;obs,</bare>"#).unwrap();
        assert_eq!(
            pretty_links(&doc),
            "</a>          rt=\"x y\" ct=0\n</long/path>  obs\n</bare>\n"
        );
    }
}
