//! Resource Directory registration (`coap_proto::rd`, RFC 9176) on an
//! in-memory endpoint pair: the device runs a `Registration` and a resource
//! `Server` over one `Endpoint`; the RD side is scripted by hand (each test
//! reads the requests the RD receives and answers them as it needs). Every
//! instant is exact: jitter is off (`jitter_percent = 0`) unless a test is
//! about jitter, and ACK_RANDOM_FACTOR is 1.0 so retransmissions time out
//! at known instants.

use std::collections::VecDeque;
use std::time::Duration;

use coap_proto::endpoint::{Config, Endpoint, Event, IncomingRequest, TransmissionParameters};
use coap_proto::rd::{MAX_QUEUED_EVENTS, Phase, RdConfig, RdError, RdEvent, Registration};
use coap_proto::server::{Reply, Resource, Server, ServerConfig};
use coap_proto::{Code, ContentFormat, Instant, MessageBuf, MessageType, OptionNumber};

const DEV: u8 = 1;
const RD: u8 = 2;

fn secs(s: u64) -> Instant {
    Instant::from_secs(s)
}

fn config() -> Config {
    let mut c = Config::default();
    let mut t = TransmissionParameters::default();
    t.ack_random_factor_milli = 1000;
    c.transmission = t;
    c
}

fn rd_config(lifetime: u32) -> RdConfig {
    let mut c = RdConfig::new("node1");
    c.lifetime = lifetime;
    c.rd_path = Some("/rd".into());
    c.jitter_percent = 0;
    c
}

/// The device and the scripted RD, back to back.
struct Net {
    now: Instant,
    dev: Endpoint<u8>,
    rd: Endpoint<u8>,
    reg: Registration<u8>,
    server: Server<u8>,
    /// Requests the RD received and has not answered yet.
    at_rd: VecDeque<IncomingRequest<u8>>,
    /// Responses the RD got to its own requests.
    rd_responses: Vec<(Code, Vec<u8>)>,
    events: Vec<(Instant, RdEvent)>,
    /// Drop every datagram from the device to the RD.
    blackhole: bool,
}

impl Net {
    fn new(cfg: RdConfig) -> Self {
        let mut server: Server<u8> = Server::new(ServerConfig::default());
        server
            .add(
                Resource::new("/temp")
                    .rt("temperature")
                    .format(ContentFormat::TEXT_PLAIN)
                    .get(|(), _| Reply::content(ContentFormat::TEXT_PLAIN, "21.5")),
            )
            .unwrap();
        let mut cfg = cfg;
        if cfg.links.is_empty() {
            cfg.links = server.well_known_core();
        }
        Self {
            now: Instant::ZERO,
            dev: Endpoint::new(config(), 11),
            rd: Endpoint::new(config(), 12),
            reg: Registration::new(cfg),
            server,
            at_rd: VecDeque::new(),
            rd_responses: Vec::new(),
            events: Vec::new(),
            blackhole: false,
        }
    }

    fn start(&mut self) {
        self.reg.start(&mut self.dev, self.now, RD).unwrap();
        self.pump();
    }

    /// Moves datagrams and events until nothing moves.
    fn pump(&mut self) {
        let mut buf = [0u8; 1500];
        loop {
            let mut moved = false;
            while let Some(t) = self.dev.poll_transmit(&mut buf).unwrap() {
                moved = true;
                assert_eq!(t.to, RD);
                if !self.blackhole {
                    self.rd.handle_datagram(self.now, DEV, &buf[..t.len]);
                }
            }
            while let Some(t) = self.rd.poll_transmit(&mut buf).unwrap() {
                moved = true;
                self.dev.handle_datagram(self.now, RD, &buf[..t.len]);
            }
            while let Some(ev) = self.dev.poll_event() {
                moved = true;
                if let Some(other) = self.reg.handle_event(&mut self.dev, self.now, ev) {
                    // What is not the registration's goes to the server.
                    let left = self
                        .server
                        .handle_event(&mut self.dev, self.now, other, &mut ());
                    assert!(left.is_none(), "{left:?}");
                }
            }
            while let Some(ev) = self.rd.poll_event() {
                moved = true;
                match ev {
                    Event::Request(r) => self.at_rd.push_back(r),
                    Event::Response(r) => self
                        .rd_responses
                        .push((r.message().code(), r.message().payload().to_vec())),
                    Event::Acknowledged(_) | Event::ResponseDelivered(_) => {}
                    other => panic!("unexpected RD event {other:?}"),
                }
            }
            while let Some(ev) = self.reg.poll_event() {
                self.events.push((self.now, ev));
            }
            if !moved {
                break;
            }
        }
    }

    /// Runs every timer due up to `until`, then sets the clock to it.
    fn advance(&mut self, until: Instant) {
        loop {
            let next = [
                self.dev.poll_timeout(),
                self.rd.poll_timeout(),
                self.reg.poll_timeout(),
                self.server.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .filter(|t| *t <= until)
            .min();
            let Some(t) = next else { break };
            self.now = self.now.max(t);
            self.dev.handle_timeout(self.now);
            self.rd.handle_timeout(self.now);
            self.server.handle_timeout(self.now);
            self.reg.handle_timeout(&mut self.dev, self.now);
            self.pump();
        }
        self.now = until;
    }

    /// Runs in 1 s steps until the RD has a request (at most `limit`).
    fn wait_request(&mut self, limit: Instant) {
        while self.at_rd.is_empty() && self.now < limit {
            self.advance(self.now + Duration::from_secs(1));
        }
    }

    fn request(&mut self) -> IncomingRequest<u8> {
        self.at_rd.pop_front().expect("the RD received no request")
    }

    fn answer(&mut self, req: &IncomingRequest<u8>, msg: &MessageBuf) {
        self.rd.respond(self.now, req.handle, msg).unwrap();
        self.pump();
    }

    fn take_events(&mut self) -> Vec<(Instant, RdEvent)> {
        std::mem::take(&mut self.events)
    }

    /// Answers the pending registration 2.01 with Location-Path `segs`.
    fn created(&mut self, segs: &[&str]) {
        let req = self.request();
        let mut m = MessageBuf::new(MessageType::Ack, Code::CREATED);
        for s in segs {
            m.add_option(OptionNumber::LOCATION_PATH, s);
        }
        self.answer(&req, &m);
    }
}

fn status(code: Code) -> MessageBuf {
    MessageBuf::new(MessageType::Ack, code)
}

fn strings<'a>(it: impl Iterator<Item = &'a [u8]>) -> Vec<String> {
    it.map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

fn path(req: &IncomingRequest<u8>) -> Vec<String> {
    strings(req.message().options_of(OptionNumber::URI_PATH))
}

fn query(req: &IncomingRequest<u8>) -> Vec<String> {
    strings(req.message().options_of(OptionNumber::URI_QUERY))
}

#[test]
fn registration_posts_ep_lt_and_link_format_links() {
    // RFC 9176 §5.3: POST to the registration interface, ep and lt in the
    // query, the links as application/link-format (ct 40).
    let mut net = Net::new(rd_config(600));
    let links = net.server.well_known_core();
    net.start();
    let req = net.request();
    let m = req.message();
    assert_eq!(m.code(), Code::POST);
    assert_eq!(m.ty(), MessageType::Con);
    assert_eq!(path(&req), ["rd"]);
    assert_eq!(query(&req), ["ep=node1", "lt=600"]);
    assert_eq!(m.content_format(), Some(ContentFormat::LINK_FORMAT));
    assert_eq!(m.payload(), links.as_bytes());
    assert_eq!(links, "</temp>;rt=\"temperature\";ct=0");
    assert_eq!(net.reg.phase(), Phase::Registering);
    // RFC 9176 §5.3: 2.01 Created, Location-Path = the registration resource.
    let mut m = status(Code::CREATED);
    m.add_option(OptionNumber::LOCATION_PATH, "reg")
        .add_option(OptionNumber::LOCATION_PATH, "1");
    net.answer(&req, &m);
    assert_eq!(
        net.take_events(),
        [(
            secs(0),
            RdEvent::Registered {
                location: "/reg/1".into(),
                refresh_at: secs(540),
            }
        )]
    );
    assert_eq!(net.reg.location().as_deref(), Some("/reg/1"));
    assert_eq!(net.reg.phase(), Phase::Registered);
    assert_eq!(net.reg.stats().registrations, 1);
}

#[test]
fn default_lifetime_sector_base_and_type_go_in_the_query() {
    // RFC 9176 §5.3: lt defaults to 90000 (not sent), d, base, et.
    let mut cfg = rd_config(90_000);
    cfg.sector = Some("floor2".into());
    cfg.base = Some("coap://[2001:db8::1]".into());
    cfg.endpoint_type = Some("oic.d.sensor".into());
    let mut net = Net::new(cfg);
    net.start();
    let req = net.request();
    assert_eq!(
        query(&req),
        [
            "ep=node1",
            "d=floor2",
            "base=coap://[2001:db8::1]",
            "et=oic.d.sensor"
        ]
    );
    net.answer(&req, &{
        let mut m = status(Code::CREATED);
        m.add_option(OptionNumber::LOCATION_PATH, "r");
        m
    });
    // 90 % of 90000 s.
    assert_eq!(net.reg.poll_timeout(), Some(secs(81_000)));
}

#[test]
fn discovery_finds_the_registration_interface() {
    // RFC 9176 §4.3: GET /.well-known/core?rt=core.rd, then register at the
    // advertised path (aiocoap-rd's `/resourcedirectory/`, trailing slash
    // and all).
    let mut cfg = rd_config(600);
    cfg.rd_path = None;
    let mut net = Net::new(cfg);
    net.start();
    assert_eq!(net.reg.phase(), Phase::Discovering);
    let req = net.request();
    assert_eq!(req.message().code(), Code::GET);
    assert_eq!(path(&req), [".well-known", "core"]);
    assert_eq!(query(&req), ["rt=core.rd"]);
    let mut m = status(Code::CONTENT);
    m.add_option_uint(OptionNumber::CONTENT_FORMAT, 40);
    m.set_payload(r#"</resource-lookup/>;rt="core.rd-lookup-res";ct=40,</resourcedirectory/>;rt="core.rd";ct=40"#);
    net.answer(&req, &m);
    assert_eq!(
        net.take_events(),
        [(
            secs(0),
            RdEvent::Discovered {
                path: "/resourcedirectory/".into()
            }
        )]
    );
    let req = net.request();
    assert_eq!(req.message().code(), Code::POST);
    assert_eq!(path(&req), ["resourcedirectory", ""]);
    net.answer(&req, &{
        let mut m = status(Code::CREATED);
        for s in ["reg", "1", ""] {
            m.add_option(OptionNumber::LOCATION_PATH, s);
        }
        m
    });
    assert_eq!(net.reg.location().as_deref(), Some("/reg/1/"));
}

#[test]
fn discovery_without_core_rd_falls_back_to_rd() {
    // RFC 9176 §4.3: no registration interface advertised (4.04 here):
    // the conventional /rd.
    let mut cfg = rd_config(600);
    cfg.rd_path = None;
    let mut net = Net::new(cfg.clone());
    net.start();
    let req = net.request();
    net.answer(&req, &status(Code::NOT_FOUND));
    assert_eq!(
        net.take_events(),
        [(secs(0), RdEvent::Discovered { path: "/rd".into() })]
    );
    assert_eq!(path(&net.request()), ["rd"]);
    assert_eq!(net.reg.stats().malformed, 0);

    // A discovery answer that is not link-format is counted, then the
    // fallback.
    let mut net = Net::new(cfg);
    net.start();
    let req = net.request();
    let mut m = status(Code::CONTENT);
    m.set_payload(&b"<unterminated"[..]);
    net.answer(&req, &m);
    assert_eq!(net.reg.stats().malformed, 1);
    assert_eq!(path(&net.request()), ["rd"]);
}

#[test]
fn refresh_is_sent_before_the_lifetime_ends() {
    // RFC 9176 §5.3.1: an empty POST to the registration resource, 2.04.
    let mut net = Net::new(rd_config(100));
    net.start();
    net.created(&["reg", "1"]);
    net.take_events();
    net.advance(Instant::from_micros(89_999_999));
    assert!(net.at_rd.is_empty());
    net.advance(secs(90));
    let req = net.request();
    let m = req.message();
    assert_eq!(
        (m.code(), path(&req)),
        (Code::POST, vec!["reg".into(), "1".into()])
    );
    assert!(query(&req).is_empty());
    assert!(m.payload().is_empty() && m.content_format().is_none());
    assert_eq!(net.reg.phase(), Phase::Refreshing);
    net.answer(&req, &status(Code::CHANGED));
    assert_eq!(
        net.take_events(),
        [(
            secs(90),
            RdEvent::Refreshed {
                refresh_at: secs(180)
            }
        )]
    );
    // And again, 90 s after the refresh was sent.
    net.advance(secs(180));
    let req = net.request();
    net.answer(&req, &status(Code::CHANGED));
    assert_eq!(net.reg.poll_timeout(), Some(secs(270)));
    assert_eq!(net.reg.stats().refreshes, 2);
}

#[test]
fn refresh_interval_counts_from_when_the_request_left() {
    // The RD's lifetime starts when it processes the registration, which is
    // after the request left: counting from the send keeps the margin.
    let mut net = Net::new(rd_config(100));
    net.start();
    let req = net.request();
    net.advance(secs(1)); // the RD sends an empty ACK, answers later
    let mut m = MessageBuf::new(MessageType::Con, Code::CREATED);
    m.add_option(OptionNumber::LOCATION_PATH, "r");
    net.answer(&req, &m);
    assert_eq!(
        net.take_events(),
        [(
            secs(1),
            RdEvent::Registered {
                location: "/r".into(),
                refresh_at: secs(90)
            }
        )]
    );
}

#[test]
fn not_found_on_refresh_registers_again_from_scratch() {
    // RFC 9176 §5.3.1: the RD lost the registration (4.04): register again
    // at once, with the links.
    let mut net = Net::new(rd_config(100));
    net.start();
    net.created(&["reg", "1"]);
    net.advance(secs(90));
    let req = net.request();
    net.answer(&req, &status(Code::NOT_FOUND));
    let req = net.request();
    assert_eq!(path(&req), ["rd"]);
    assert_eq!(query(&req), ["ep=node1", "lt=100"]);
    assert!(!req.message().payload().is_empty());
    let mut m = status(Code::CREATED);
    m.add_option(OptionNumber::LOCATION_PATH, "reg")
        .add_option(OptionNumber::LOCATION_PATH, "2");
    net.answer(&req, &m);
    let evs = net.take_events();
    assert_eq!(
        evs[1..],
        [
            (
                secs(90),
                RdEvent::Retrying {
                    reason: RdError::Response(Code::NOT_FOUND),
                    at: secs(90)
                }
            ),
            (
                secs(90),
                RdEvent::Registered {
                    location: "/reg/2".into(),
                    refresh_at: secs(180)
                }
            )
        ]
    );
    assert_eq!(net.reg.stats().registrations, 2);
}

#[test]
fn timeouts_back_off_exponentially() {
    // RFC 9176 §5.3.1: a failed request (here: no answer) leads to a new
    // registration attempt; consecutive failures wait 10 s, 20 s, 40 s.
    // With ACK_RANDOM_FACTOR 1.0 a CON times out 2+4+8+16+32 = 62 s after
    // it left (RFC 7252 §4.2). The endpoint then holds the next request to
    // the silent RD to PROBING_RATE (RFC 7252 §4.7): each attempt leaves
    // later than the registration asked, by the bytes sent unanswered.
    let mut net = Net::new(rd_config(600));
    net.blackhole = true;
    net.start();
    net.advance(secs(2000));
    let evs = net.take_events();
    assert_eq!(
        evs[0],
        (
            secs(62),
            RdEvent::Retrying {
                reason: RdError::TimedOut,
                at: secs(72)
            }
        )
    );
    let mut delays = Vec::new();
    let mut last_at = Instant::ZERO;
    for (when, ev) in &evs {
        let RdEvent::Retrying {
            reason: RdError::TimedOut,
            at,
        } = ev
        else {
            panic!("{ev:?}");
        };
        // Each attempt takes at least the 62 s of its retransmissions.
        assert!(*when >= last_at + Duration::from_secs(62), "{evs:?}");
        delays.push((*at - *when).as_secs());
        last_at = *at;
    }
    assert_eq!(delays[..4], [10, 20, 40, 80]);
    // Recovery resets the back-off.
    net.blackhole = false;
    net.wait_request(net.now + Duration::from_secs(2000));
    net.created(&["r"]);
    assert_eq!(net.reg.phase(), Phase::Registered);
    assert_eq!(net.reg.stats().failures, net.reg.stats().requests - 1);
    let refresh = net.reg.poll_timeout().unwrap();
    net.advance(refresh);
    net.wait_request(refresh + Duration::from_secs(1000));
    let req = net.request();
    net.answer(&req, &status(Code::INTERNAL_SERVER_ERROR));
    let evs = net.take_events();
    let [_, (when, RdEvent::Retrying { at, .. })] = evs[..] else {
        panic!("{evs:?}");
    };
    assert_eq!(at - when, Duration::from_secs(10));
}

#[test]
fn refresh_timeout_reregisters_after_back_off() {
    // RFC 9176 §5.3.1: "including request timeouts": register again.
    let mut net = Net::new(rd_config(100));
    net.start();
    net.created(&["reg", "1"]);
    net.take_events();
    net.blackhole = true;
    net.advance(secs(152)); // refresh at 90 s times out at 152 s
    assert_eq!(
        net.take_events(),
        [(
            secs(152),
            RdEvent::Retrying {
                reason: RdError::TimedOut,
                at: secs(162)
            }
        )]
    );
    assert_eq!(net.reg.location(), None);
    net.blackhole = false;
    net.advance(secs(162));
    // Registering again (the datagram waits for PROBING_RATE, RFC 7252 §4.7).
    assert_eq!(net.reg.phase(), Phase::Registering);
    net.advance(secs(1000));
    let req = net.request();
    assert_eq!(path(&req), ["rd"]);
    assert!(!req.message().payload().is_empty());
}

#[test]
fn service_unavailable_max_age_sets_the_retry() {
    // RFC 9176 §5.3.1: 5.03 with Max-Age: retry after that time.
    let mut net = unavailable_for(30, secs(30));
    // A 4.00 Bad Request backs off like a timeout.
    net.advance(secs(30));
    let req = net.request();
    net.answer(&req, &status(Code::BAD_REQUEST));
    assert_eq!(
        net.take_events(),
        [(
            secs(30),
            RdEvent::Retrying {
                reason: RdError::Response(Code::BAD_REQUEST),
                at: secs(50)
            }
        )]
    );
}

#[test]
fn deregistration_deletes_the_registration_resource() {
    // RFC 9176 §5.3.2: DELETE the registration resource, 2.02 Deleted.
    let mut net = Net::new(rd_config(600));
    net.start();
    net.created(&["reg", "1"]);
    net.take_events();
    net.advance(secs(10));
    net.reg.deregister(&mut net.dev, net.now).unwrap();
    net.pump();
    let req = net.request();
    assert_eq!(req.message().code(), Code::DELETE);
    assert_eq!(path(&req), ["reg", "1"]);
    assert_eq!(net.reg.phase(), Phase::Deregistering);
    net.answer(&req, &status(Code::DELETED));
    assert_eq!(
        net.take_events(),
        [(secs(10), RdEvent::Deregistered { removed: true })]
    );
    assert_eq!(
        (net.reg.phase(), net.reg.poll_timeout()),
        (Phase::Idle, None)
    );
    // Nothing more is sent, ever.
    net.advance(secs(100_000));
    assert!(net.at_rd.is_empty());
    assert!(net.dev.tables().is_empty());
    assert_eq!(
        net.reg.deregister(&mut net.dev, net.now),
        Err(RdError::InvalidState)
    );
}

#[test]
fn deregistration_without_answer_ends_unconfirmed() {
    // RFC 9176 §5.3.2 has no retry for removal: the lifetime ends it anyway.
    let mut net = Net::new(rd_config(600));
    net.start();
    net.created(&["reg", "1"]);
    net.take_events();
    net.blackhole = true;
    net.reg.deregister(&mut net.dev, net.now).unwrap();
    net.pump();
    net.advance(secs(100));
    assert_eq!(
        net.take_events(),
        [(secs(62), RdEvent::Deregistered { removed: false })]
    );
    assert_eq!(net.reg.phase(), Phase::Idle);
}

#[test]
fn simple_registration_lets_the_rd_fetch_well_known_core() {
    // RFC 9176 §5.1: empty POST to /.well-known/rd?ep=..&lt=..; the RD GETs
    // /.well-known/core from the device over the same endpoint, then
    // answers 2.04 Changed.
    let mut cfg = rd_config(200);
    cfg.simple = true;
    cfg.rd_path = None;
    let mut net = Net::new(cfg);
    net.start();
    let post = net.request();
    let m = post.message();
    assert_eq!(m.code(), Code::POST);
    assert_eq!(path(&post), [".well-known", "rd"]);
    assert_eq!(query(&post), ["ep=node1", "lt=200"]);
    assert!(m.payload().is_empty() && m.content_format().is_none());
    // The RD fetches the links while the POST waits.
    let mut get = MessageBuf::new(MessageType::Con, Code::GET);
    get.add_option(OptionNumber::URI_PATH, ".well-known")
        .add_option(OptionNumber::URI_PATH, "core");
    net.rd.request(net.now, DEV, &get).unwrap();
    net.pump();
    assert_eq!(
        net.rd_responses,
        [(Code::CONTENT, net.server.well_known_core().into_bytes())]
    );
    net.answer(&post, &status(Code::CHANGED));
    assert_eq!(
        net.take_events(),
        [(
            secs(0),
            RdEvent::Registered {
                location: String::new(),
                refresh_at: secs(180)
            }
        )]
    );
    // The refresh of a simple registration repeats it.
    net.advance(secs(180));
    let again = net.request();
    assert_eq!(path(&again), [".well-known", "rd"]);
    net.answer(&again, &status(Code::CHANGED));
    assert_eq!(net.reg.stats().refreshes, 1);
    // No registration resource to DELETE: stops at once.
    net.reg.deregister(&mut net.dev, net.now).unwrap();
    net.pump();
    assert_eq!(
        net.take_events()[1..],
        [(secs(180), RdEvent::Deregistered { removed: false })]
    );
}

#[test]
fn malformed_locations_are_counted_and_retried() {
    // RFC 9176 §5.3: the registration resource comes in Location-Path. A
    // 2.01 without it, with a Location-Query, or over the bound (255 bytes,
    // 16 segments by default) is malformed: counted, backed off, retried.
    let mut net = Net::new(rd_config(600));
    net.start();
    let long = "x".repeat(200);
    let mut t = 0;
    let cases: Vec<MessageBuf> = vec![
        status(Code::CREATED),
        {
            let mut m = status(Code::CREATED);
            m.add_option(OptionNumber::LOCATION_PATH, &long)
                .add_option(OptionNumber::LOCATION_PATH, &long);
            m
        },
        {
            let mut m = status(Code::CREATED);
            for _ in 0..17 {
                m.add_option(OptionNumber::LOCATION_PATH, "a");
            }
            m
        },
        {
            let mut m = status(Code::CREATED);
            m.add_option(OptionNumber::LOCATION_PATH, "reg")
                .add_option(OptionNumber::LOCATION_QUERY, "id=1");
            m
        },
        {
            let mut m = status(Code::CREATED);
            m.add_option(OptionNumber::LOCATION_PATH, [0xff, 0xfe]);
            m
        },
    ];
    let mut delays = Vec::new();
    for (i, m) in cases.iter().enumerate() {
        let req = net.request();
        net.answer(&req, m);
        let evs = net.take_events();
        let [
            (
                when,
                RdEvent::Retrying {
                    reason: RdError::Malformed(_),
                    at,
                },
            ),
        ] = evs[..]
        else {
            panic!("case {i}: {evs:?}");
        };
        assert_eq!(when, secs(t));
        delays.push((at - when).as_secs());
        t = at.as_micros() / 1_000_000;
        net.advance(at);
    }
    assert_eq!(delays, [10, 20, 40, 80, 160]);
    assert_eq!(net.reg.stats().malformed, 5);
    // The longest accepted: 16 segments, 255 bytes.
    let seg = "y".repeat(15);
    let mut m = status(Code::CREATED);
    for _ in 0..16 {
        m.add_option(OptionNumber::LOCATION_PATH, &seg);
    }
    let req = net.request();
    net.answer(&req, &m);
    assert_eq!(net.reg.location().unwrap().len(), 16 * 16);
    assert_eq!(net.reg.phase(), Phase::Registered);
}

#[test]
fn max_refresh_interval_caps_the_refresh_for_nat_keep_alive() {
    let mut cfg = rd_config(90_000);
    cfg.max_refresh_interval = Some(Duration::from_secs(25));
    let mut net = Net::new(cfg);
    net.start();
    net.created(&["r"]);
    assert_eq!(net.reg.poll_timeout(), Some(secs(25)));
    net.advance(secs(25));
    let req = net.request();
    net.answer(&req, &status(Code::CHANGED));
    assert_eq!(net.reg.poll_timeout(), Some(secs(50)));
}

#[test]
fn jitter_is_seeded_and_bounded() {
    // Same seed, same instant; refreshes come up to 5 % early, never late.
    let refresh = |seed: u64| {
        let mut cfg = rd_config(10_000);
        cfg.jitter_percent = 5;
        cfg.seed = seed;
        let mut net = Net::new(cfg);
        net.start();
        net.created(&["r"]);
        net.reg.poll_timeout().unwrap()
    };
    let a: Vec<Instant> = (0..20).map(refresh).collect();
    let b: Vec<Instant> = (0..20).map(refresh).collect();
    assert_eq!(a, b);
    for t in &a {
        assert!(*t >= secs(8550) && *t <= secs(9000), "{t}");
    }
    let distinct: std::collections::BTreeSet<_> = a.iter().collect();
    assert!(distinct.len() >= 19, "{distinct:?}");
}

#[test]
fn invalid_configurations_are_refused() {
    let mut ep: Endpoint<u8> = Endpoint::new(config(), 1);
    let refused = |cfg: RdConfig, ep: &mut Endpoint<u8>| {
        let mut reg = Registration::new(cfg);
        let r = reg.start(ep, Instant::ZERO, RD);
        assert!(matches!(r, Err(RdError::Config(_))), "{r:?}");
        assert_eq!(reg.phase(), Phase::Idle);
    };
    // RFC 9176 §5.3: ep at most 63 bytes, lt at least 1.
    refused(
        rd_config(600).tap(|c| c.endpoint_name = "e".repeat(64)),
        &mut ep,
    );
    refused(rd_config(600).tap(|c| c.endpoint_name.clear()), &mut ep);
    refused(rd_config(0), &mut ep);
    // A zero first back-off would retry once per round trip.
    refused(
        rd_config(600).tap(|c| c.retry_initial = Duration::ZERO),
        &mut ep,
    );
    refused(
        rd_config(600).tap(|c| c.retry_initial = c.retry_max + Duration::from_secs(1)),
        &mut ep,
    );
    refused(
        rd_config(600).tap(|c| c.sector = Some("d".repeat(64))),
        &mut ep,
    );
    // RFC 9176 §5.1: simple registration has no base.
    refused(
        rd_config(600).tap(|c| {
            c.simple = true;
            c.base = Some("coap://h".into());
        }),
        &mut ep,
    );
    refused(
        rd_config(600).tap(|c| c.rd_path = Some("mailto:x".into())),
        &mut ep,
    );
    assert!(ep.tables().is_empty());
    // Twice: refused.
    let mut reg = Registration::new(rd_config(600));
    reg.start(&mut ep, Instant::ZERO, RD).unwrap();
    assert_eq!(
        reg.start(&mut ep, Instant::ZERO, RD),
        Err(RdError::InvalidState)
    );
    // A payload over the message size: the endpoint refuses it.
    let mut big = rd_config(600);
    big.links = "<".to_string() + &"/a".repeat(1000) + ">";
    let mut reg = Registration::new(big);
    let mut ep2: Endpoint<u8> = Endpoint::new(config(), 1);
    assert!(matches!(
        reg.start(&mut ep2, Instant::ZERO, RD),
        Err(RdError::Endpoint(_))
    ));
}

#[test]
fn events_are_bounded_when_nobody_polls() {
    // At most MAX_QUEUED_EVENTS wait; the oldest go first.
    let mut net = Net::new(rd_config(600));
    net.blackhole = true;
    net.start();
    let mut failures = 0;
    while failures < 20 {
        let t = [net.dev.poll_timeout(), net.reg.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .unwrap();
        net.now = t;
        net.dev.handle_timeout(t);
        net.reg.handle_timeout(&mut net.dev, t);
        let mut buf = [0u8; 1500];
        while net.dev.poll_transmit(&mut buf).unwrap().is_some() {}
        while let Some(ev) = net.dev.poll_event() {
            assert!(net.reg.handle_event(&mut net.dev, t, ev).is_none());
            failures += 1;
        }
    }
    assert_eq!(
        net.reg.stats().events_dropped,
        20 - MAX_QUEUED_EVENTS as u64
    );
    let mut n = 0;
    while net.reg.poll_event().is_some() {
        n += 1;
    }
    assert_eq!(n, MAX_QUEUED_EVENTS);
}

#[test]
fn requests_from_the_rd_side_reach_the_server() {
    // Everything not the registration's passes through to the application.
    let mut net = Net::new(rd_config(600));
    net.start();
    net.created(&["r"]);
    let mut get = MessageBuf::new(MessageType::Con, Code::GET);
    get.add_option(OptionNumber::URI_PATH, "temp");
    net.rd.request(net.now, DEV, &get).unwrap();
    net.pump();
    assert_eq!(net.rd_responses, [(Code::CONTENT, b"21.5".to_vec())]);
    assert_eq!(net.reg.phase(), Phase::Registered);
}

trait Tap: Sized {
    fn tap(self, f: impl FnOnce(&mut Self)) -> Self;
}

impl Tap for RdConfig {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}

#[test]
fn a_vanished_registration_interface_is_discovered_again() {
    // RFC 9176 §4.3: a 4.04 to the registration POST at a discovered path
    // means the interface moved; the next attempt discovers it again.
    let mut cfg = rd_config(600);
    cfg.rd_path = None;
    let mut net = Net::new(cfg);
    net.start();
    let req = net.request();
    let mut m = status(Code::CONTENT);
    m.set_payload("</dir>;rt=core.rd");
    net.answer(&req, &m);
    let req = net.request();
    assert_eq!(path(&req), ["dir"]);
    net.answer(&req, &status(Code::NOT_FOUND));
    net.advance(secs(10));
    let req = net.request();
    assert_eq!(path(&req), [".well-known", "core"]);
    assert_eq!(query(&req), ["rt=core.rd"]);
}

#[test]
fn an_endpoint_refusal_is_retried_like_a_failure() {
    // The endpoint's table bound (max_requests) refuses the refresh: the
    // registration backs off and registers again, it does not stall.
    let mut net = Net::new(rd_config(100));
    let mut c = config();
    c.max_requests = 1;
    net.dev = Endpoint::new(c, 11);
    net.start();
    net.created(&["r"]);
    net.take_events();
    // The application holds the only request slot (to a silent peer).
    let mut get = MessageBuf::new(MessageType::Con, Code::GET);
    get.add_option(OptionNumber::URI_PATH, "x");
    let other = net.dev.request(net.now, 9, &get).unwrap();
    let mut buf = [0u8; 1500];
    while net.dev.poll_transmit(&mut buf).unwrap().is_some() {}
    net.reg.handle_timeout(&mut net.dev, secs(90));
    net.now = secs(90);
    net.pump();
    assert_eq!(
        net.take_events(),
        [(
            secs(90),
            RdEvent::Retrying {
                reason: RdError::Endpoint(coap_proto::endpoint::Error::NoCapacity),
                at: secs(100)
            }
        )]
    );
    net.dev.cancel(net.now, other).unwrap();
    net.advance(secs(100));
    let req = net.request();
    assert_eq!(path(&req), ["rd"]);
    assert_eq!(net.reg.phase(), Phase::Registering);
}

#[test]
fn service_unavailable_max_age_zero_waits_the_first_back_off() {
    // RFC 9176 §5.3.1 lets the RD say when to retry; a Max-Age of 0 on
    // every 5.03 must not make the device retry once per round trip.
    unavailable_for(0, secs(10));
}

/// The first registration gets 5.03 with Max-Age `max_age`; the retry is
/// scheduled `at`.
#[track_caller]
fn unavailable_for(max_age: u32, at: Instant) -> Net {
    let mut net = Net::new(rd_config(600));
    net.start();
    let req = net.request();
    let mut m = status(Code::SERVICE_UNAVAILABLE);
    m.add_option_uint(OptionNumber::MAX_AGE, max_age);
    net.answer(&req, &m);
    assert_eq!(
        net.take_events(),
        [(
            secs(0),
            RdEvent::Retrying {
                reason: RdError::Response(Code::SERVICE_UNAVAILABLE),
                at
            }
        )]
    );
    net
}

#[test]
fn huge_back_off_saturates_instead_of_overflowing() {
    // Back-off and jitter near Duration::MAX: no overflow, the retry is
    // simply as late as an Instant goes.
    let mut cfg = rd_config(600);
    cfg.retry_initial = Duration::MAX;
    cfg.retry_max = Duration::MAX;
    cfg.jitter_percent = 99;
    let mut net = Net::new(cfg);
    net.start();
    let req = net.request();
    net.answer(&req, &status(Code::BAD_REQUEST));
    let events = net.take_events();
    assert!(
        matches!(
            events.as_slice(),
            [(_, RdEvent::Retrying { reason: RdError::Response(Code::BAD_REQUEST), at })] if *at > secs(1 << 40)
        ),
        "{events:?}"
    );
}
