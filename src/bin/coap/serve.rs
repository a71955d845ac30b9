//! `coap serve`: the demo server implementing the interop resource contract
//! (`../shared/interop/README.md`), a thin application on top of
//! [`UdpEndpoint`]: one engine, no special cases.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant as StdInstant};

use coap_proto::endpoint::{Config, Endpoint, Event, ResponseHandle};
use coap_proto::message::link::{Filter, LinkFormat, LinkWriter};
use coap_proto::udp::{Direction, UdpEndpoint};
use coap_proto::{
    Block, Code, ContentFormat, Instant, Message, MessageBuf, MessageType, OptionNumber,
};

use crate::{CmdResult, Failure, Global};

/// Arguments of `coap serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (IPv4 or IPv6).
    #[arg(long, default_value = "127.0.0.1:5683")]
    bind: SocketAddr,
    /// Seconds between changes of /obs.
    #[arg(long, default_value_t = 2)]
    obs_interval: u64,
    /// Delay before the separate response of /separate, in milliseconds.
    #[arg(long, default_value_t = 500)]
    separate_delay_ms: u64,
    /// Stop after this many seconds (for tests and CI); runs forever if absent.
    #[arg(long)]
    lifetime: Option<u64>,
}

/// The links of /.well-known/core: path, attributes.
const LINKS: &[(&str, &[(&str, Option<&str>)])] = &[
    (
        "/test",
        &[("rt", Some("test")), ("if", Some("core.rw")), ("ct", None)],
    ),
    ("/separate", &[("rt", Some("separate")), ("ct", None)]),
    (
        "/large",
        &[("rt", Some("block")), ("sz", None), ("ct", None)],
    ),
    ("/large-update", &[("rt", Some("block")), ("ct", None)]),
    ("/large-create", &[("rt", Some("block"))]),
    (
        "/obs",
        &[("rt", Some("observe")), ("obs", None), ("ct", None)],
    ),
    ("/query", &[("rt", Some("query")), ("ct", None)]),
    (
        "/multi-format",
        &[("rt", Some("multi-format")), ("ct", None)],
    ),
    ("/seg1/seg2/seg3", &[("ct", None)]),
    (
        "/link1",
        &[("rt", Some("Type1 Type2")), ("if", Some("If1"))],
    ),
    (
        "/link2",
        &[("rt", Some("Type2 Type3")), ("if", Some("If2"))],
    ),
    (
        "/link3",
        &[("rt", Some("Type1 Type3")), ("if", Some("foo"))],
    ),
];

/// The largest block the server uses on its own (RFC 7959 §2.4 early
/// negotiation): 1024 bytes fit the 1152-byte message budget.
const SERVER_SZX: u8 = 6;

/// A request answered later (the /separate resource).
struct Later {
    due: StdInstant,
    handle: ResponseHandle,
}

/// An upload being reassembled (RFC 7959 §2.5), keyed by peer and path.
struct Upload {
    body: Vec<u8>,
    next: u32,
    last: StdInstant,
}

struct Server {
    args: ServeArgs,
    started: StdInstant,
    large: Vec<u8>,
    large_update: Vec<u8>,
    uploads: BTreeMap<(SocketAddr, String), Upload>,
    later: Vec<Later>,
    verbose: u8,
}

fn large_body() -> Vec<u8> {
    let mut s = String::new();
    for i in 0..40 {
        let _ = writeln!(
            s,
            "{i:02}: coap-proto /large resource, served block-wise (RFC 7959)"
        );
    }
    s.into_bytes()
}

fn answer(code: Code) -> MessageBuf {
    MessageBuf::new(MessageType::Ack, code)
}

fn text(code: Code, body: impl Into<Vec<u8>>) -> MessageBuf {
    let mut m = answer(code);
    m.add_option_uint(OptionNumber::CONTENT_FORMAT, 0);
    m.set_payload(body);
    m
}

/// Serves `body` as one response or one Block2 block (RFC 7959 §2.4): the
/// client's SZX is honoured (late negotiation) and capped by ours (early).
fn block2(req: &Message<'_>, mut m: MessageBuf, body: &[u8]) -> MessageBuf {
    let asked = req.block2();
    let szx = asked.map_or(SERVER_SZX, |b| b.szx().min(SERVER_SZX));
    let size = 1usize << (szx + 4);
    if asked.is_none() && body.len() <= size {
        m.set_payload(body.to_vec());
        return m;
    }
    // If we use a smaller block than asked, NUM scales up (§2.4).
    let num = asked.map_or(0, |b| b.num() << (b.szx() - szx));
    let start = (num as usize).saturating_mul(size);
    if start >= body.len() && !body.is_empty() {
        return text(
            Code::BAD_OPTION,
            "block beyond the end of the representation",
        );
    }
    let end = (start + size).min(body.len());
    let more = end < body.len();
    if let Ok(b) = Block::new(num, more, szx) {
        m.add_option_uint(OptionNumber::BLOCK2, b.to_uint());
    }
    if num == 0 || req.uint_option(OptionNumber::SIZE2).is_some() {
        m.add_option_uint(
            OptionNumber::SIZE2,
            u32::try_from(body.len()).unwrap_or(u32::MAX),
        );
    }
    m.set_payload(body.get(start..end).unwrap_or_default().to_vec());
    m
}

fn path_of(req: &Message<'_>) -> String {
    let mut p = String::new();
    for seg in req.options_of(OptionNumber::URI_PATH) {
        p.push('/');
        p.push_str(&String::from_utf8_lossy(seg));
    }
    if p.is_empty() {
        p.push('/');
    }
    p
}

impl Server {
    fn well_known_core(req: &Message<'_>) -> MessageBuf {
        let mut doc = String::new();
        {
            let mut w = LinkWriter::new(&mut doc);
            for (path, attrs) in LINKS {
                let Ok(mut l) = w.link(path) else { continue };
                for (name, value) in *attrs {
                    let r = match (*name, value) {
                        ("ct", _) => l.attr_uint("ct", 0),
                        ("sz", _) => l.attr_uint("sz", large_body().len() as u64),
                        ("obs", _) => l.attr_flag("obs"),
                        (n, Some(v)) => l.attr(n, v),
                        (n, None) => l.attr_flag(n),
                    };
                    if r.is_err() {
                        break;
                    }
                }
            }
        }
        // RFC 6690 §4.1: filter by one query parameter.
        let filter_text = req
            .options_of(OptionNumber::URI_QUERY)
            .next()
            .and_then(|q| std::str::from_utf8(q).ok());
        let body = match (filter_text.map(Filter::parse), LinkFormat::parse(&doc)) {
            (Some(Ok(filter)), Ok(links)) => {
                let mut out = String::new();
                let _ = links.write_filtered(Some(&filter), &mut out);
                out
            }
            (Some(Err(_)), _) => return text(Code::BAD_REQUEST, "bad link-format filter"),
            _ => doc,
        };
        let mut m = answer(Code::CONTENT);
        m.add_option_uint(
            OptionNumber::CONTENT_FORMAT,
            u32::from(ContentFormat::LINK_FORMAT.0),
        );
        block2(req, m, body.as_bytes())
    }

    fn multi_format(req: &Message<'_>) -> MessageBuf {
        let accept = req.accept();
        let (cf, body): (ContentFormat, &str) = match accept {
            None | Some(ContentFormat::TEXT_PLAIN) => {
                (ContentFormat::TEXT_PLAIN, "temperature: 22.3 C")
            }
            Some(ContentFormat::XML) => (
                ContentFormat::XML,
                "<temperature unit=\"C\">22.3</temperature>",
            ),
            Some(ContentFormat::JSON) => (
                ContentFormat::JSON,
                "{\"temperature\": 22.3, \"unit\": \"C\"}",
            ),
            Some(_) => return answer(Code::NOT_ACCEPTABLE),
        };
        let mut m = answer(Code::CONTENT);
        m.add_option_uint(OptionNumber::CONTENT_FORMAT, u32::from(cf.0));
        m.set_payload(body);
        m
    }

    /// Block1 reassembly (RFC 7959 §2.5): 2.31 Continue per block, 4.08 for
    /// a block out of sequence, the final code when the last block arrives.
    fn upload(
        &mut self,
        peer: SocketAddr,
        path: &str,
        req: &Message<'_>,
        done: Code,
    ) -> Result<Option<Vec<u8>>, MessageBuf> {
        let Some(b1) = req.block1() else {
            return Ok(Some(req.payload().to_vec()));
        };
        let key = (peer, path.to_owned());
        let now = StdInstant::now();
        self.uploads
            .retain(|_, u| now.duration_since(u.last) < Duration::from_secs(60));
        if b1.num() == 0 {
            self.uploads.insert(
                key.clone(),
                Upload {
                    body: Vec::new(),
                    next: 0,
                    last: now,
                },
            );
        }
        let Some(up) = self.uploads.get_mut(&key) else {
            return Err(text(
                Code::REQUEST_ENTITY_INCOMPLETE,
                "no upload in progress",
            ));
        };
        if b1.num() != up.next || up.body.len() != b1.offset() {
            self.uploads.remove(&key);
            return Err(text(
                Code::REQUEST_ENTITY_INCOMPLETE,
                "block out of sequence",
            ));
        }
        if up.body.len() + req.payload().len() > 1 << 20 {
            self.uploads.remove(&key);
            let mut m = answer(Code::REQUEST_ENTITY_TOO_LARGE);
            m.add_option_uint(OptionNumber::SIZE1, 1 << 20);
            return Err(m);
        }
        up.body.extend_from_slice(req.payload());
        up.next += 1;
        up.last = now;
        if b1.more() {
            let mut m = answer(Code::CONTINUE);
            m.add_option_uint(OptionNumber::BLOCK1, b1.to_uint());
            return Err(m);
        }
        let body = self.uploads.remove(&key).map(|u| u.body);
        let _ = done;
        Ok(body)
    }

    fn finish_upload(req: &Message<'_>, code: Code) -> MessageBuf {
        let mut m = answer(code);
        if let Some(b1) = req.block1() {
            m.add_option_uint(OptionNumber::BLOCK1, b1.to_uint());
        }
        m
    }

    /// Answers a request now (`Some`) or later (`None`).
    fn handle(&mut self, peer: SocketAddr, req: &Message<'_>) -> Option<MessageBuf> {
        let path = path_of(req);
        let code = req.code();
        let reply = match (path.as_str(), code) {
            ("/test", Code::GET) => text(Code::CONTENT, "Hello from coap-proto: this is /test"),
            ("/test", Code::PUT) => answer(Code::CHANGED),
            ("/test", Code::POST) => {
                let mut m = answer(Code::CREATED);
                m.add_option(OptionNumber::LOCATION_PATH, "test");
                m
            }
            ("/test", Code::DELETE) => answer(Code::DELETED),
            ("/separate", Code::GET) => return None,
            ("/large", Code::GET) => {
                let mut m = answer(Code::CONTENT);
                m.add_option_uint(OptionNumber::CONTENT_FORMAT, 0);
                block2(req, m, &self.large)
            }
            ("/large-update", Code::GET) => {
                let mut m = answer(Code::CONTENT);
                m.add_option_uint(OptionNumber::CONTENT_FORMAT, 0);
                let body = self.large_update.clone();
                block2(req, m, &body)
            }
            ("/large-update", Code::PUT) => match self.upload(peer, &path, req, Code::CHANGED) {
                Ok(Some(body)) => {
                    self.large_update = body;
                    Self::finish_upload(req, Code::CHANGED)
                }
                Ok(None) => answer(Code::INTERNAL_SERVER_ERROR),
                Err(m) => m,
            },
            ("/large-create", Code::POST) => match self.upload(peer, &path, req, Code::CREATED) {
                Ok(Some(_)) => Self::finish_upload(req, Code::CREATED),
                Ok(None) => answer(Code::INTERNAL_SERVER_ERROR),
                Err(m) => m,
            },
            ("/obs", Code::GET) => {
                let tick = self.started.elapsed().as_secs() / self.args.obs_interval.max(1);
                text(Code::CONTENT, format!("observable value {tick}"))
            }
            ("/query", Code::GET) => {
                let mut body = String::new();
                for q in req.options_of(OptionNumber::URI_QUERY) {
                    body.push_str(&String::from_utf8_lossy(q));
                    body.push('\n');
                }
                text(Code::CONTENT, body)
            }
            ("/multi-format", Code::GET) => Self::multi_format(req),
            ("/seg1/seg2/seg3", Code::GET) => text(Code::CONTENT, "seg1/seg2/seg3"),
            ("/link1" | "/link2" | "/link3", Code::GET) => {
                text(Code::CONTENT, path.trim_start_matches('/'))
            }
            ("/.well-known/core", Code::GET) => Self::well_known_core(req),
            (p, _) if p == "/.well-known/core" || LINKS.iter().any(|(l, _)| *l == p) => {
                answer(Code::METHOD_NOT_ALLOWED)
            }
            _ => answer(Code::NOT_FOUND),
        };
        Some(reply)
    }

    fn on_event(&mut self, ep: &mut Endpoint<SocketAddr>, now: Instant, event: Event<SocketAddr>) {
        match event {
            Event::Request(req) => {
                let msg = req.message();
                match self.handle(req.peer, &msg) {
                    Some(reply) => {
                        if let Err(e) = ep.respond(now, req.handle, &reply) {
                            self.log(1, format_args!("cannot answer {}: {e}", req.peer));
                        }
                    }
                    None => {
                        // RFC 7252 §5.2.2: acknowledge now, answer later.
                        let _ = ep.accept(now, req.handle);
                        self.later.push(Later {
                            due: StdInstant::now()
                                + Duration::from_millis(self.args.separate_delay_ms),
                            handle: req.handle,
                        });
                    }
                }
                ep.recycle(req.message.into_bytes());
            }
            Event::ResponseFailed(h) => self.log(
                1,
                format_args!("separate response {h} was not acknowledged"),
            ),
            _ => {}
        }
    }

    fn run_due(&mut self, ep: &mut UdpEndpoint) {
        let now_std = StdInstant::now();
        let now = ep.now();
        let (due, keep): (Vec<_>, Vec<_>) = self.later.drain(..).partition(|l| l.due <= now_std);
        self.later = keep;
        for l in due {
            let reply = text(Code::CONTENT, "separate response from /separate");
            let _ = ep.endpoint().respond(now, l.handle, &reply);
        }
    }

    fn log(&self, level: u8, args: std::fmt::Arguments<'_>) {
        if self.verbose >= level {
            let _ = writeln!(std::io::stderr(), "coap serve: {args}");
        }
    }
}

pub(crate) fn serve(global: Global, args: &ServeArgs) -> CmdResult {
    let mut ep = UdpEndpoint::bind(args.bind, Config::default())
        .map_err(|e| Failure::data(format!("cannot bind {}: {e}", args.bind)))?;
    let local = ep.local_addr().map_err(|e| Failure::data(e.to_string()))?;
    let _ = writeln!(std::io::stderr(), "coap serve: listening on coap://{local}");
    let verbose = global.verbose;
    // No trace at all when quiet: parsing every datagram twice more for a
    // log that is off is wasted work on the hot path.
    if verbose >= 1 {
        ep.set_trace(move |dir, peer, bytes| match (dir, Message::parse(bytes)) {
            (Direction::In, Err(e)) if verbose >= 2 => {
                let _ = writeln!(
                    std::io::stderr(),
                    "coap serve: debug: malformed datagram from {peer}: {e}"
                );
            }
            (_, Ok(m)) if verbose >= 1 => {
                let arrow = if dir == Direction::In { '<' } else { '>' };
                let _ = writeln!(std::io::stderr(), "{arrow} {peer} {m}");
            }
            _ => {}
        });
    }
    let started = StdInstant::now();
    let mut server = Server {
        args: ServeArgs {
            bind: args.bind,
            obs_interval: args.obs_interval,
            separate_delay_ms: args.separate_delay_ms,
            lifetime: args.lifetime,
        },
        started,
        large: large_body(),
        large_update: large_body(),
        uploads: BTreeMap::new(),
        later: Vec::new(),
        verbose,
    };
    loop {
        if let Some(l) = args.lifetime {
            if started.elapsed() >= Duration::from_secs(l) {
                return Ok(());
            }
        }
        let next = server.later.iter().map(|l| l.due).min();
        let wait = next
            .map(|d| d.saturating_duration_since(StdInstant::now()))
            .unwrap_or(Duration::from_secs(1));
        ep.turn(Some(wait), |e, now, ev| server.on_event(e, now, ev))
            .map_err(|e| Failure::data(format!("socket error: {e}")))?;
        server.run_due(&mut ep);
    }
}
