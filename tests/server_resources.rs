//! The resource layer (`coap_proto::server`): routing (RFC 7252 §5.9.2),
//! content negotiation (§5.10.4), ETag validation and conditional requests
//! (§5.10.6.2, §5.10.8), Max-Age (§5.10.5), separate responses (§5.2.2),
//! and `/.well-known/core` with query filtering (RFC 6690 §4, §4.1),
//! including the ETSI plugtest cases TD_COAP_LINK_01 to _09.
//!
//! Every request goes through a real `Endpoint` (as a datagram) and every
//! answer is read back from its transmit queue.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use coap_proto::endpoint::{Config, Endpoint, Event, ResponseHandle};
use coap_proto::message::link::LinkFormat;
use coap_proto::server::{
    AutoEtag, ETag, Reply, Resource, ResourceState, Server, ServerConfig, ServerError,
};
use coap_proto::{
    Code, ContentFormat, Instant, Message, MessageBuf, MessageType, OptionNumber, decode_uint,
};

// ----- harness ----------------------------------------------------------------

const PEER: u32 = 7;

struct H<S> {
    ep: Endpoint<u32>,
    server: Server<u32, S>,
    state: S,
    mid: u16,
    now: Instant,
}

impl<S> H<S> {
    fn new(server: Server<u32, S>, state: S) -> Self {
        Self {
            ep: Endpoint::new(Config::default(), 0x5eed),
            server,
            state,
            mid: 0x100,
            now: Instant::from_secs(1),
        }
    }

    /// Feeds one request (CON unless `req` says NON) from `peer`, lets the
    /// layer answer, and returns every datagram the endpoint sent.
    fn send_from(&mut self, peer: u32, mut req: MessageBuf, multicast: bool) -> Vec<MessageBuf> {
        self.mid = self.mid.wrapping_add(1);
        req.set_message_id(self.mid);
        req.set_token(&self.mid.to_be_bytes()).unwrap();
        let bytes = req.to_bytes().unwrap();
        if multicast {
            self.ep.handle_multicast_datagram(self.now, peer, &bytes);
        } else {
            self.ep.handle_datagram(self.now, peer, &bytes);
        }
        while let Some(ev) = self.ep.poll_event() {
            if let Event::Request(r) = ev {
                self.server
                    .handle(&mut self.ep, self.now, r, &mut self.state);
            }
        }
        self.drain()
    }

    fn drain(&mut self) -> Vec<MessageBuf> {
        let mut buf = vec![0u8; 2048];
        let mut out = Vec::new();
        while let Some(t) = self.ep.poll_transmit(&mut buf).unwrap() {
            out.push(MessageBuf::from(Message::parse(&buf[..t.len]).unwrap()));
        }
        out
    }

    /// Exactly one answer to `req`.
    #[track_caller]
    fn ask(&mut self, req: MessageBuf) -> MessageBuf {
        let mut v = self.send_from(PEER, req, false);
        assert_eq!(v.len(), 1, "expected one answer, got {v:?}");
        v.remove(0)
    }
}

fn req(code: Code, path: &str) -> MessageBuf {
    let mut m = MessageBuf::new(MessageType::Con, code);
    for seg in path
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
    {
        m.add_option(OptionNumber::URI_PATH, seg);
    }
    m
}

fn get(path: &str) -> MessageBuf {
    req(Code::GET, path)
}

fn with(mut m: MessageBuf, n: OptionNumber, v: impl AsRef<[u8]>) -> MessageBuf {
    m.add_option(n, v);
    m
}

fn with_uint(mut m: MessageBuf, n: OptionNumber, v: u32) -> MessageBuf {
    m.add_option_uint(n, v);
    m
}

fn uint(m: &MessageBuf, n: OptionNumber) -> Option<u32> {
    m.option(n).map(|v| decode_uint(v).unwrap())
}

fn text(body: &str) -> Reply {
    Reply::content(ContentFormat::TEXT_PLAIN, body)
}

fn hrefs(m: &MessageBuf) -> Vec<String> {
    let doc = LinkFormat::parse_bytes(m.payload()).unwrap();
    doc.links().map(|l| l.target().to_owned()).collect()
}

/// The ETSI TD_COAP_LINK resource set (plus a few more).
fn plugtest() -> H<()> {
    let mut s: Server<u32> = Server::new(ServerConfig::default());
    s.add(
        Resource::new("/test")
            .rt("test")
            .interface("core.rw")
            .format(ContentFormat::TEXT_PLAIN)
            .get(|(), _| text("t")),
    )
    .unwrap();
    s.add(
        Resource::new("/large")
            .rt("block")
            .size(2440)
            .format(ContentFormat::TEXT_PLAIN)
            .get(|(), _| text("l")),
    )
    .unwrap();
    s.add(
        Resource::new("/obs")
            .rt("observe")
            .observable()
            .get(|(), _| text("o")),
    )
    .unwrap();
    s.add(
        Resource::new("/link1")
            .rt("Type1 Type2")
            .interface("If1")
            .get(|(), _| text("1")),
    )
    .unwrap();
    s.add(
        Resource::new("/link2")
            .rt("Type2 Type3")
            .interface("If2")
            .get(|(), _| text("2")),
    )
    .unwrap();
    s.add(
        Resource::new("/link3")
            .rt("Type1 Type3")
            .interface("foo")
            .get(|(), _| text("3")),
    )
    .unwrap();
    s.add(Resource::new("/path").index()).unwrap();
    for sub in ["sub1", "sub2", "sub3"] {
        s.add(
            Resource::new(&format!("/path/{sub}"))
                .unlisted()
                .format(ContentFormat::TEXT_PLAIN)
                .get(move |(), _| text(sub)),
        )
        .unwrap();
    }
    s.add(Resource::new("/hidden").unlisted().get(|(), _| text("h")))
        .unwrap();
    H::new(s, ())
}

// ----- routing (RFC 7252 §5.9.2) ------------------------------------------------

/// RFC 7252 §5.9.2.5: an unknown path is 4.04 Not Found.
#[test]
fn unknown_path_is_4_04() {
    let mut h = plugtest();
    for p in ["/nope", "/test/extra", "/link", "/path/sub4", "/"] {
        assert_eq!(h.ask(get(p)).code(), Code::NOT_FOUND, "{p}");
    }
    assert_eq!(h.server.stats().not_found, 5);
}

/// RFC 7252 §5.9.2.6: a known resource without a handler for the method
/// is 4.05 Method Not Allowed, and no handler runs.
#[test]
fn unsupported_method_is_4_05() {
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    let mut s: Server<u32> = Server::new(ServerConfig::default());
    s.add(Resource::new("/ro").get(move |(), _| {
        c.set(c.get() + 1);
        text("x")
    }))
    .unwrap();
    let mut h = H::new(s, ());
    for m in [Code::PUT, Code::POST, Code::DELETE, Code::FETCH] {
        assert_eq!(h.ask(req(m, "/ro")).code(), Code::METHOD_NOT_ALLOWED);
    }
    assert_eq!(calls.get(), 0);
    assert_eq!(h.ask(get("/ro")).code(), Code::CONTENT);
    assert_eq!(calls.get(), 1);
    assert_eq!(h.server.stats().method_not_allowed, 4);
}

/// The root resource is the request without Uri-Path (RFC 7252 §6.5), and
/// multi-segment paths match segment by segment.
#[test]
fn root_and_nested_paths() {
    let mut s: Server<u32> = Server::new(ServerConfig::default());
    s.add(Resource::new("/").get(|(), _| text("root"))).unwrap();
    s.add(Resource::new("/seg1/seg2/seg3").get(|(), _| text("deep")))
        .unwrap();
    let mut h = H::new(s, ());
    assert_eq!(h.ask(get("/")).payload(), b"root");
    assert_eq!(
        h.ask(with(
            MessageBuf::new(MessageType::Con, Code::GET),
            OptionNumber::URI_PATH,
            ""
        ))
        .payload(),
        b"root"
    );
    assert_eq!(h.ask(get("/seg1/seg2/seg3")).payload(), b"deep");
    assert_eq!(h.ask(get("/seg1/seg2")).code(), Code::NOT_FOUND);
    // A '/' inside one Uri-Path option is not a separator.
    assert_eq!(
        h.ask(with(
            MessageBuf::new(MessageType::Con, Code::GET),
            OptionNumber::URI_PATH,
            "seg1/seg2/seg3"
        ))
        .code(),
        Code::NOT_FOUND
    );
}

/// RFC 7252 §5.7.2 / §5.10.2: a server that is not a proxy answers 5.05.
#[test]
fn proxy_uri_is_5_05() {
    let mut h = plugtest();
    let m = h.ask(with(
        get("/test"),
        OptionNumber::PROXY_URI,
        "coap://example.net/x",
    ));
    assert_eq!(m.code(), Code::PROXYING_NOT_SUPPORTED);
}

#[test]
fn registration_errors() {
    let mut s: Server<u32> = Server::new(ServerConfig::default());
    s.add(Resource::new("/a")).unwrap();
    assert_eq!(
        s.add(Resource::new("a")).unwrap_err(),
        ServerError::DuplicatePath
    );
    assert_eq!(
        s.add(Resource::new("/b c")).unwrap_err(),
        ServerError::InvalidLink
    );
    assert_eq!(
        s.add(Resource::new("/d").rt("x\u{1}")).unwrap_err(),
        ServerError::InvalidLink
    );
    assert_eq!(
        s.add(Resource::new(&format!("/{}", "e".repeat(256))))
            .unwrap_err(),
        ServerError::SegmentTooLong
    );
    assert!(
        s.add(Resource::new(&format!("/{}", "e".repeat(255))))
            .is_ok()
    );
}

/// The application state reaches every handler (`Server<A, S>`).
#[test]
fn handlers_share_application_state() {
    let mut s: Server<u32, Vec<u8>> = Server::new(ServerConfig::default());
    s.add(
        Resource::new("/store")
            .get(|st: &mut Vec<u8>, _| Reply::content(ContentFormat::OCTET_STREAM, st.clone()))
            .put(|st: &mut Vec<u8>, r| {
                *st = r.body.to_vec();
                Reply::status(Code::CHANGED)
            }),
    )
    .unwrap();
    let mut h = H::new(s, Vec::new());
    let mut put = req(Code::PUT, "/store");
    put.set_payload("abc");
    assert_eq!(h.ask(put).code(), Code::CHANGED);
    assert_eq!(h.ask(get("/store")).payload(), b"abc");
    assert_eq!(h.state, b"abc");
}

// ----- content negotiation (RFC 7252 §5.10.4) -------------------------------------

fn multi_format(calls: Rc<Cell<u32>>) -> H<()> {
    let mut s: Server<u32> = Server::new(ServerConfig::default());
    s.add(
        Resource::new("/multi-format")
            .format(ContentFormat::TEXT_PLAIN)
            .format(ContentFormat::JSON)
            .get(move |(), r| {
                calls.set(calls.get() + 1);
                // The payload only; the layer adds the negotiated Content-Format.
                let mut m = MessageBuf::new(MessageType::Ack, Code::CONTENT);
                m.set_payload(if r.format == Some(ContentFormat::JSON) {
                    "{\"t\":1}"
                } else {
                    "t=1"
                });
                Reply::Now(m)
            }),
    )
    .unwrap();
    H::new(s, ())
}

/// RFC 7252 §5.10.4: Accept picks among the declared formats; without
/// Accept the first one is used; an Accept the resource cannot produce is
/// 4.06 Not Acceptable before the handler runs.
#[test]
fn accept_negotiation_and_4_06() {
    let calls = Rc::new(Cell::new(0));
    let mut h = multi_format(calls.clone());
    let m = h.ask(with_uint(get("/multi-format"), OptionNumber::ACCEPT, 50));
    assert_eq!(
        (m.code(), uint(&m, OptionNumber::CONTENT_FORMAT)),
        (Code::CONTENT, Some(50))
    );
    assert_eq!(m.payload(), b"{\"t\":1}");
    let m = h.ask(get("/multi-format"));
    assert_eq!(
        (uint(&m, OptionNumber::CONTENT_FORMAT), m.payload()),
        (Some(0), &b"t=1"[..])
    );
    assert_eq!(calls.get(), 2);
    for bad in [41, 65000] {
        let m = h.ask(with_uint(get("/multi-format"), OptionNumber::ACCEPT, bad));
        assert_eq!(m.code(), Code::NOT_ACCEPTABLE);
    }
    assert_eq!(calls.get(), 2, "no handler ran for the 4.06 answers");
    assert_eq!(h.server.stats().not_acceptable, 2);
}

/// The `ct` link attribute lists every declared format (RFC 7252 §7.2.1).
#[test]
fn ct_attribute_lists_formats() {
    let h = multi_format(Rc::new(Cell::new(0)));
    assert_eq!(h.server.well_known_core(), r#"</multi-format>;ct="0 50""#);
}

// ----- ETag, If-Match, If-None-Match (RFC 7252 §5.10.6, §5.10.8) --------------------

#[derive(Default)]
struct Versioned {
    body: Vec<u8>,
    version: u64,
    exists: bool,
    gets: u32,
}

fn validate() -> H<Versioned> {
    let mut s: Server<u32, Versioned> = Server::new(ServerConfig::default());
    s.add(
        Resource::new("/validate")
            .format(ContentFormat::TEXT_PLAIN)
            .max_age(30)
            .state(|v: &Versioned| {
                if v.exists {
                    ResourceState::Present(Some(ETag::from_u64(v.version)))
                } else {
                    ResourceState::Absent
                }
            })
            .get(|v: &mut Versioned, _| {
                v.gets += 1;
                if !v.exists {
                    return Reply::status(Code::NOT_FOUND);
                }
                let mut m = MessageBuf::new(MessageType::Ack, Code::CONTENT);
                m.add_option(OptionNumber::ETAG, ETag::from_u64(v.version).as_bytes());
                m.set_payload(v.body.clone());
                Reply::Now(m)
            })
            .put(|v: &mut Versioned, r| {
                let created = !v.exists;
                v.exists = true;
                v.version += 1;
                v.body = r.body.to_vec();
                Reply::status(if created {
                    Code::CREATED
                } else {
                    Code::CHANGED
                })
            }),
    )
    .unwrap();
    H::new(
        s,
        Versioned {
            body: b"v1".to_vec(),
            version: 1,
            exists: true,
            gets: 0,
        },
    )
}

fn put(path: &str, body: &str) -> MessageBuf {
    let mut m = req(Code::PUT, path);
    m.set_payload(body);
    m
}

/// RFC 7252 §5.10.6.2 (ETSI TD_COAP_CORE_21): a GET with the current ETag
/// is answered 2.03 Valid with that ETag, the Max-Age, and no payload; a
/// stale ETag gets the new representation with its new ETag.
#[test]
fn etag_validation_2_03() {
    let mut h = validate();
    let first = h.ask(get("/validate"));
    let etag = first.option(OptionNumber::ETAG).unwrap().to_vec();
    assert_eq!((first.code(), first.payload()), (Code::CONTENT, &b"v1"[..]));
    assert_eq!(uint(&first, OptionNumber::MAX_AGE), Some(30));
    assert_eq!(h.state.gets, 1);

    let m = h.ask(with(get("/validate"), OptionNumber::ETAG, &etag));
    assert_eq!(m.code(), Code::VALID);
    assert_eq!(m.option(OptionNumber::ETAG), Some(&etag[..]));
    assert_eq!(uint(&m, OptionNumber::MAX_AGE), Some(30));
    assert!(m.payload().is_empty() && m.option(OptionNumber::CONTENT_FORMAT).is_none());
    assert_eq!(
        h.state.gets, 1,
        "the state probe answered without the handler"
    );

    // Several ETags: any one may match (ETag is repeatable in requests).
    let m = h.ask(with(
        with(get("/validate"), OptionNumber::ETAG, b"zz"),
        OptionNumber::ETAG,
        &etag,
    ));
    assert_eq!(m.code(), Code::VALID);

    assert_eq!(h.ask(put("/validate", "v2")).code(), Code::CHANGED);
    let m = h.ask(with(get("/validate"), OptionNumber::ETAG, &etag));
    assert_eq!((m.code(), m.payload()), (Code::CONTENT, &b"v2"[..]));
    assert_ne!(m.option(OptionNumber::ETAG), Some(&etag[..]));
    assert_eq!(h.server.stats().valid, 2);
}

/// Without a state probe the layer validates against the ETag the handler
/// produced (here the layer's own, `AutoEtag::Always`).
#[test]
fn etag_validation_after_handler_with_auto_etag() {
    let mut cfg = ServerConfig::default();
    cfg.auto_etag = AutoEtag::Always;
    let mut s: Server<u32> = Server::new(cfg);
    s.add(
        Resource::new("/t")
            .get(|(), _| text("same"))
            .post(|(), _| text("posted")),
    )
    .unwrap();
    let mut h = H::new(s, ());
    let m = h.ask(get("/t"));
    let etag = m.option(OptionNumber::ETAG).unwrap().to_vec();
    assert_eq!(
        etag,
        ETag::of(Some(ContentFormat::TEXT_PLAIN), b"same").as_bytes()
    );
    let m = h.ask(with(get("/t"), OptionNumber::ETAG, &etag));
    assert_eq!((m.code(), m.payload()), (Code::VALID, &b""[..]));
    // Only GET/FETCH are validated; a POST response is always sent.
    let m = h.ask(with(req(Code::POST, "/t"), OptionNumber::ETAG, &etag));
    assert_eq!(m.code(), Code::CONTENT);
}

/// RFC 7252 §5.10.8.1 (ETSI TD_COAP_CORE_22): If-Match with the current
/// ETag (or empty, "any representation") lets the PUT through; a stale one
/// gets 4.12 Precondition Failed and the handler does not run.
#[test]
fn if_match_4_12() {
    let mut h = validate();
    let etag = h
        .ask(get("/validate"))
        .option(OptionNumber::ETAG)
        .unwrap()
        .to_vec();
    let m = h.ask(with(put("/validate", "a"), OptionNumber::IF_MATCH, &etag));
    assert_eq!(m.code(), Code::CHANGED);
    // The ETag changed with the PUT: the old one no longer matches.
    let m = h.ask(with(put("/validate", "b"), OptionNumber::IF_MATCH, &etag));
    assert_eq!(m.code(), Code::PRECONDITION_FAILED);
    assert_eq!(h.state.body, b"a");
    // An empty If-Match matches any existing representation.
    assert_eq!(
        h.ask(with(put("/validate", "c"), OptionNumber::IF_MATCH, b""))
            .code(),
        Code::CHANGED
    );
    // ...but not a missing one.
    h.state.exists = false;
    assert_eq!(
        h.ask(with(put("/validate", "d"), OptionNumber::IF_MATCH, b""))
            .code(),
        Code::PRECONDITION_FAILED
    );
    assert_eq!(h.server.stats().precondition_failed, 2);
}

/// RFC 7252 §5.10.8.2 (ETSI TD_COAP_CORE_23): If-None-Match creates only
/// when the resource does not exist yet.
#[test]
fn if_none_match_4_12() {
    let mut h = validate();
    h.state.exists = false;
    let m = h.ask(with(
        put("/validate", "new"),
        OptionNumber::IF_NONE_MATCH,
        b"",
    ));
    assert_eq!(m.code(), Code::CREATED);
    let m = h.ask(with(
        put("/validate", "again"),
        OptionNumber::IF_NONE_MATCH,
        b"",
    ));
    assert_eq!(m.code(), Code::PRECONDITION_FAILED);
    assert_eq!(h.state.body, b"new");
}

/// Without a state probe a registered resource exists and has no ETag:
/// If-Match with a value fails, If-None-Match fails.
#[test]
fn preconditions_without_probe() {
    let mut h = plugtest();
    assert_eq!(
        h.ask(with(get("/test"), OptionNumber::IF_MATCH, b"x"))
            .code(),
        Code::PRECONDITION_FAILED
    );
    assert_eq!(
        h.ask(with(get("/test"), OptionNumber::IF_MATCH, b""))
            .code(),
        Code::CONTENT
    );
    assert_eq!(
        h.ask(with(get("/test"), OptionNumber::IF_NONE_MATCH, b""))
            .code(),
        Code::PRECONDITION_FAILED
    );
}

// ----- Max-Age (RFC 7252 §5.10.5) ----------------------------------------------------

/// A handler's Max-Age passes through; the resource's default fills in when
/// the handler sets none; error answers get none.
#[test]
fn max_age_passed_through() {
    let mut s: Server<u32> = Server::new(ServerConfig::default());
    s.add(
        Resource::new("/m")
            .max_age(10)
            .get(|(), _| {
                let Reply::Now(mut m) = text("x") else {
                    unreachable!()
                };
                m.add_option_uint(OptionNumber::MAX_AGE, 3600);
                Reply::Now(m)
            })
            .post(|(), _| text("y"))
            .put(|(), _| Reply::status(Code::BAD_REQUEST)),
    )
    .unwrap();
    let mut h = H::new(s, ());
    assert_eq!(uint(&h.ask(get("/m")), OptionNumber::MAX_AGE), Some(3600));
    assert_eq!(
        uint(&h.ask(req(Code::POST, "/m")), OptionNumber::MAX_AGE),
        Some(10)
    );
    assert_eq!(
        uint(&h.ask(req(Code::PUT, "/m")), OptionNumber::MAX_AGE),
        None
    );
}

// ----- separate responses (RFC 7252 §5.2.2) -------------------------------------------

#[derive(Default)]
struct Queue(Vec<ResponseHandle>);

fn separate(cfg: ServerConfig, defer: bool) -> H<Queue> {
    let mut s: Server<u32, Queue> = Server::new(cfg);
    s.add(
        Resource::new("/separate")
            .format(ContentFormat::TEXT_PLAIN)
            .get(move |q: &mut Queue, r| {
                q.0.push(r.handle);
                if defer { Reply::Defer } else { Reply::Later }
            }),
    )
    .unwrap();
    H::new(s, Queue::default())
}

/// `Reply::Later`: an empty ACK at once, then the answer through
/// `Server::respond` as a CON separate response with the request's token,
/// post-processed like an immediate one (the negotiated Content-Format).
#[test]
fn separate_response_later() {
    let mut h = separate(ServerConfig::default(), false);
    let sent = h.send_from(PEER, get("/separate"), false);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].ty(), sent[0].code()),
        (MessageType::Ack, Code::EMPTY)
    );
    assert_eq!(sent[0].message_id(), h.mid);
    assert_eq!(h.server.separate_count(), 1);

    let handle = h.state.0.pop().unwrap();
    let mut answer = MessageBuf::new(MessageType::Con, Code::CONTENT);
    answer.set_payload("later");
    h.now += Duration::from_secs(2);
    h.server.respond(&mut h.ep, h.now, handle, answer).unwrap();
    let out = h.drain();
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].ty(), out[0].code(), out[0].payload()),
        (MessageType::Con, Code::CONTENT, &b"later"[..])
    );
    assert_eq!(out[0].token(), h.mid.to_be_bytes());
    assert_eq!(uint(&out[0], OptionNumber::CONTENT_FORMAT), Some(0));
    assert_eq!(h.server.separate_count(), 0);
    assert_eq!(h.server.stats().separate, 1);
    // Answering twice is an error of the endpoint, not a panic.
    assert!(
        h.server
            .respond(
                &mut h.ep,
                h.now,
                handle,
                MessageBuf::new(MessageType::Con, Code::CONTENT)
            )
            .is_err()
    );
}

/// `Reply::Defer`: nothing is sent at once; an answer within the
/// endpoint's `separate_ack_delay` is still piggybacked on the ACK.
#[test]
fn separate_response_defer_piggybacks() {
    let mut h = separate(ServerConfig::default(), true);
    assert!(h.send_from(PEER, get("/separate"), false).is_empty());
    let handle = h.state.0.pop().unwrap();
    h.server
        .respond(
            &mut h.ep,
            h.now,
            handle,
            MessageBuf::new(MessageType::Ack, Code::CONTENT),
        )
        .unwrap();
    let out = h.drain();
    assert_eq!(
        (out[0].ty(), out[0].code(), out[0].message_id()),
        (MessageType::Ack, Code::CONTENT, h.mid)
    );
}

/// The table of requests answered later is bounded: when full, a handler's
/// `Later` is answered 5.03 at once; entries expire after
/// `separate_lifetime`.
#[test]
fn separate_table_is_bounded_and_expires() {
    let mut cfg = ServerConfig::default();
    cfg.max_separate = 1;
    cfg.separate_lifetime = Duration::from_secs(100);
    let mut h = separate(cfg, false);
    assert_eq!(
        h.send_from(PEER, get("/separate"), false)[0].code(),
        Code::EMPTY
    );
    let m = h.ask(get("/separate"));
    assert_eq!(m.code(), Code::SERVICE_UNAVAILABLE);
    assert_eq!(h.server.stats().busy, 1);
    let at = h.server.poll_timeout().unwrap();
    assert_eq!(at, h.now + Duration::from_secs(100));
    h.server.handle_timeout(at);
    assert_eq!(h.server.separate_count(), 0);
    assert_eq!(h.server.poll_timeout(), None);
}

// ----- /.well-known/core (RFC 6690) -------------------------------------------------

#[track_caller]
fn wkc(h: &mut H<()>, query: Option<&str>) -> MessageBuf {
    let mut r = get("/.well-known/core");
    if let Some(q) = query {
        r.add_option(OptionNumber::URI_QUERY, q);
    }
    let m = h.ask(r);
    assert_eq!(m.code(), Code::CONTENT);
    assert_eq!(
        uint(&m, OptionNumber::CONTENT_FORMAT),
        Some(40),
        "RFC 6690 §4: application/link-format"
    );
    m
}

/// TD_COAP_LINK_01 (RFC 6690 §4): GET /.well-known/core gives 2.05 with
/// Content-Format 40 and the links of the registered resources, generated
/// with their attributes; unlisted resources are left out.
#[test]
fn td_coap_link_01_well_known_core() {
    let mut h = plugtest();
    let m = wkc(&mut h, None);
    assert_eq!(
        std::str::from_utf8(m.payload()).unwrap(),
        concat!(
            r#"</test>;rt="test";if="core.rw";ct=0,</large>;rt="block";ct=0;sz=2440,</obs>;rt="observe";obs,"#,
            r#"</link1>;rt="Type1 Type2";if="If1",</link2>;rt="Type2 Type3";if="If2",</link3>;rt="Type1 Type3";if="foo","#,
            r#"</path>;ct=40"#
        )
    );
    assert_eq!(h.server.well_known_core().as_bytes(), m.payload());
}

/// TD_COAP_LINK_02 (RFC 6690 §4.1): `?rt=Type1` lists only the links whose
/// rt has the word Type1.
#[test]
fn td_coap_link_02_filter_rt() {
    let mut h = plugtest();
    assert_eq!(hrefs(&wkc(&mut h, Some("rt=Type1"))), ["/link1", "/link3"]);
}

/// TD_COAP_LINK_03 (RFC 6690 §4.1: "Empty Prefix Value Strings ... match
/// any target attribute that does exist"): `?rt=*`.
#[test]
fn td_coap_link_03_empty_prefix() {
    let mut h = plugtest();
    assert_eq!(
        hrefs(&wkc(&mut h, Some("rt=*"))),
        ["/test", "/large", "/obs", "/link1", "/link2", "/link3"]
    );
}

/// TD_COAP_LINK_04 (RFC 6690 §4.1: each value of a relation-type list is
/// matched separately): `?rt=Type2` with several rt values per link.
#[test]
fn td_coap_link_04_multiple_rt() {
    let mut h = plugtest();
    assert_eq!(hrefs(&wkc(&mut h, Some("rt=Type2"))), ["/link1", "/link2"]);
}

/// TD_COAP_LINK_05 (RFC 6690 §4.1, prefix value string): `?if=If*`.
#[test]
fn td_coap_link_05_if_prefix() {
    let mut h = plugtest();
    assert_eq!(hrefs(&wkc(&mut h, Some("if=If*"))), ["/link1", "/link2"]);
}

/// TD_COAP_LINK_06 (RFC 6690 §4.1, §3.3): `?sz=*` lists the resources with
/// a size estimate.
#[test]
fn td_coap_link_06_sz_prefix() {
    let mut h = plugtest();
    assert_eq!(hrefs(&wkc(&mut h, Some("sz=*"))), ["/large"]);
}

/// TD_COAP_LINK_07 (RFC 6690 §4.1: "href" refers to the URI-reference
/// between < and >): `?href=/link1`, a complete value.
#[test]
fn td_coap_link_07_href_complete() {
    let mut h = plugtest();
    assert_eq!(hrefs(&wkc(&mut h, Some("href=/link1"))), ["/link1"]);
}

/// TD_COAP_LINK_08 (RFC 6690 §4.1): `?href=/link*`, a prefix.
#[test]
fn td_coap_link_08_href_prefix() {
    let mut h = plugtest();
    assert_eq!(
        hrefs(&wkc(&mut h, Some("href=/link*"))),
        ["/link1", "/link2", "/link3"]
    );
}

/// TD_COAP_LINK_09 (RFC 6690 §1.2.2, link descriptions arranged
/// hierarchically): `?ct=40` finds /path; GET /path gives its own
/// link-format document with /path/sub1..3, each of which answers 2.05.
#[test]
fn td_coap_link_09_hierarchy() {
    let mut h = plugtest();
    assert_eq!(hrefs(&wkc(&mut h, Some("ct=40"))), ["/path"]);
    let m = h.ask(get("/path"));
    assert_eq!(
        (m.code(), uint(&m, OptionNumber::CONTENT_FORMAT)),
        (Code::CONTENT, Some(40))
    );
    assert_eq!(
        std::str::from_utf8(m.payload()).unwrap(),
        "</path/sub1>;ct=0,</path/sub2>;ct=0,</path/sub3>;ct=0"
    );
    // The index filters like /.well-known/core.
    let m = h.ask(with(
        get("/path"),
        OptionNumber::URI_QUERY,
        "href=/path/sub2",
    ));
    assert_eq!(hrefs(&m), ["/path/sub2"]);
    let m = h.ask(get("/path/sub1"));
    assert_eq!((m.code(), m.payload()), (Code::CONTENT, &b"sub1"[..]));
    assert_eq!(
        h.ask(req(Code::PUT, "/path")).code(),
        Code::METHOD_NOT_ALLOWED
    );
}

/// A filter that matches nothing gives an empty document (RFC 6690 §4: "In
/// the absence of any links, a zero-length payload"); several queries must
/// all match; `obs` (valueless) matches `?obs`.
#[test]
fn wkc_filter_edge_cases() {
    let mut h = plugtest();
    let m = wkc(&mut h, Some("rt=NoSuchType"));
    assert!(m.payload().is_empty());
    let mut r = get("/.well-known/core");
    r.add_option(OptionNumber::URI_QUERY, "rt=Type1");
    r.add_option(OptionNumber::URI_QUERY, "if=foo");
    assert_eq!(hrefs(&h.ask(r)), ["/link3"]);
    assert_eq!(hrefs(&wkc(&mut h, Some("obs"))), ["/obs"]);
    assert_eq!(hrefs(&wkc(&mut h, Some("title=*"))), Vec::<String>::new());
}

/// Methods other than GET on /.well-known/core are 4.05; an Accept other
/// than link-format is 4.06; a malformed filter is 4.00.
#[test]
fn wkc_methods_accept_and_bad_filter() {
    let mut h = plugtest();
    for m in [Code::POST, Code::PUT, Code::DELETE] {
        assert_eq!(
            h.ask(req(m, "/.well-known/core")).code(),
            Code::METHOD_NOT_ALLOWED
        );
    }
    assert_eq!(
        h.ask(with_uint(get("/.well-known/core"), OptionNumber::ACCEPT, 0))
            .code(),
        Code::NOT_ACCEPTABLE
    );
    assert_eq!(
        h.ask(with_uint(
            get("/.well-known/core"),
            OptionNumber::ACCEPT,
            40
        ))
        .code(),
        Code::CONTENT
    );
    assert_eq!(
        h.ask(with(
            get("/.well-known/core"),
            OptionNumber::URI_QUERY,
            "r t=1"
        ))
        .code(),
        Code::BAD_REQUEST
    );
    assert_eq!(
        h.ask(with(
            get("/.well-known/core"),
            OptionNumber::URI_QUERY,
            b"rt=\xff"
        ))
        .code(),
        Code::BAD_REQUEST
    );
}

/// RFC 6690 §4.1: a multicast discovery request whose filter matches
/// nothing is not answered; one that matches is (after the Leisure,
/// RFC 7252 §8.2).
#[test]
fn wkc_multicast_filter_without_match_is_silent() {
    let mut h = plugtest();
    let mut r = MessageBuf::new(MessageType::Non, Code::GET);
    r.add_option(OptionNumber::URI_PATH, ".well-known");
    r.add_option(OptionNumber::URI_PATH, "core");
    let mut none = r.clone();
    none.add_option(OptionNumber::URI_QUERY, "rt=NoSuchType");
    assert!(h.send_from(9, none, true).is_empty());
    let mut some = r;
    some.add_option(OptionNumber::URI_QUERY, "rt=Type1");
    assert!(
        h.send_from(9, some, true).is_empty(),
        "delayed by the Leisure"
    );
    h.now += Duration::from_secs(6);
    h.ep.handle_timeout(h.now);
    let out = h.drain();
    assert_eq!(out.len(), 1);
    assert_eq!(hrefs(&out[0]), ["/link1", "/link3"]);
    assert_eq!(
        h.ep.tables().pending,
        0,
        "the silent request left nothing pending"
    );
}

/// Disabling /.well-known/core makes it an unknown path; a resource
/// registered at that path replaces the generated one.
#[test]
fn wkc_can_be_disabled_or_replaced() {
    let mut cfg = ServerConfig::default();
    cfg.well_known_core = false;
    let mut h = H::new(Server::<u32>::new(cfg), ());
    assert_eq!(h.ask(get("/.well-known/core")).code(), Code::NOT_FOUND);
    let mut s: Server<u32> = Server::new(ServerConfig::default());
    s.add(
        Resource::new("/.well-known/core")
            .get(|(), _| Reply::content(ContentFormat::LINK_FORMAT, "</own>")),
    )
    .unwrap();
    let mut h = H::new(s, ());
    assert_eq!(h.ask(get("/.well-known/core")).payload(), b"</own>");
}

/// NON requests get NON answers through the layer, like CON ones.
#[test]
fn non_request() {
    let mut h = plugtest();
    let mut r = get("/test");
    r.set_ty(MessageType::Non);
    let m = h.ask(r);
    assert_eq!((m.ty(), m.code()), (MessageType::Non, Code::CONTENT));
}

/// A handler answering with an invalid code (a request method) or with
/// more than a datagram holds in options is answered 5.00, not a panic.
#[test]
fn bad_handler_answers_become_5_00() {
    let mut s: Server<u32> = Server::new(ServerConfig::default());
    s.add(Resource::new("/a").get(|(), _| Reply::status(Code::POST)))
        .unwrap();
    s.add(Resource::new("/b").get(|(), _| {
        let mut m = MessageBuf::new(MessageType::Ack, Code::BAD_REQUEST);
        m.set_payload(vec![b'e'; 5000]);
        Reply::Now(m)
    }))
    .unwrap();
    let mut h = H::new(s, ());
    assert_eq!(h.ask(get("/a")).code(), Code::INTERNAL_SERVER_ERROR);
    assert_eq!(h.ask(get("/b")).code(), Code::INTERNAL_SERVER_ERROR);
    assert_eq!(h.server.stats().respond_errors, 2);
}
