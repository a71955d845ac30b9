//! Observe (RFC 7641) end to end: deterministic scenarios with exact
//! instants and fixed seeds, a client [`Endpoint`] talking to a server
//! [`Endpoint`] under the resource layer ([`Server`]).
//!
//! The ETSI plugtest cases come from the CoAP#4 test descriptions
//! (`td-coap4/block.yml`, "TD_COAP_OBS_*"). That set has TD_COAP_OBS_01,
//! _02 and _04 to _12 (and _13/_14 for Block2); there is no
//! TD_COAP_OBS_03 in it, so no test pretends to be one. Each test says what
//! its TD checks and where this test differs.
//!
//! Every scenario ends with no state left: the observation is ended, the
//! server's list of observers is empty, and both endpoints' tables are
//! empty once EXCHANGE_LIFETIME has passed (`Pair::finish`).
#![allow(clippy::cast_possible_wrap, clippy::similar_names)]

mod common;

use core::time::Duration;

use coap_proto::endpoint::{Config, Deregister, Endpoint, Event, RequestId};
use coap_proto::server::{OBSERVER_BYTES, Reply, Resource, ResourceId, Server, ServerConfig};
use coap_proto::{Code, ContentFormat, Instant, MessageBuf, MessageType, Observe, OptionNumber};
use common::*;

use MessageType::{Ack, Con, Non, Rst};

const TEXT: ContentFormat = ContentFormat::TEXT_PLAIN;
const XML: ContentFormat = ContentFormat::XML;

#[global_allocator]
static ALLOC: common::alloc::Counting = common::alloc::Counting;

use common::alloc::live;

// ----- the application and the harness --------------------------------------

/// The state behind /obs: a counter, its format, and whether it exists.
struct App {
    value: u32,
    format: ContentFormat,
    deleted: bool,
}

impl App {
    fn new() -> Self {
        Self {
            value: 0,
            format: TEXT,
            deleted: false,
        }
    }
}

/// A resource layer with an observable /obs (text or XML), as the
/// plugtest's /obs: GET, PUT (another client updates it) and DELETE.
fn layer(config: ServerConfig, max_age: Option<u32>) -> (Server<Addr, App>, ResourceId) {
    let mut server = Server::new(config);
    let mut r = Resource::new("/obs")
        .rt("observe")
        .observable()
        .format(TEXT)
        .format(XML)
        .get(|app: &mut App, _| {
            if app.deleted {
                return Reply::status(Code::NOT_FOUND);
            }
            let body = if app.format == XML {
                format!("<v>{}</v>", app.value)
            } else {
                app.value.to_string()
            };
            Reply::content(app.format, body)
        })
        .put(|app: &mut App, req| {
            app.format = req.message.content_format().unwrap_or(TEXT);
            let text = String::from_utf8_lossy(req.body);
            app.value = text
                .trim_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .unwrap_or(0);
            Reply::status(Code::CHANGED)
        })
        .delete(|app: &mut App, _| {
            app.deleted = true;
            Reply::status(Code::DELETED)
        });
    if let Some(age) = max_age {
        r = r.max_age(age);
    }
    let obs = server.add(r).expect("valid resource");
    (server, obs)
}

/// RFC 7252 parameters with an exact initial timeout of ACK_TIMEOUT (2 s),
/// and re-registration right when Max-Age runs out (no random wait), so
/// that every instant is exact.
fn cfg() -> Config {
    let mut c = Config::default();
    c.transmission.ack_random_factor_milli = 1000;
    c.observe_refresh_delay = Duration::ZERO;
    c
}

/// One datagram on the wire.
#[derive(Clone, Debug)]
struct Sent {
    at: Instant,
    from: Addr,
    to: Addr,
    bytes: Vec<u8>,
}

type Loss = Box<dyn FnMut(Instant, Addr, &[u8]) -> bool>;

/// A client endpoint (CLIENT) and a server endpoint (SERVER) with the
/// resource layer, wired back to back with zero delay. Datagrams to OTHER
/// (a second client, built by hand) are only recorded.
struct Pair {
    c: Ep,
    s: Ep,
    layer: Server<Addr, App>,
    app: App,
    obs: ResourceId,
    /// Client events, with their instant.
    seen: Vec<(Instant, Event<Addr>)>,
    /// Server events the layer handed back.
    server_events: Vec<(Instant, Event<Addr>)>,
    wire: Vec<Sent>,
    /// Drops a datagram (instant, sender, bytes) when it returns true.
    loss: Loss,
    /// The client is switched off: it neither runs nor receives.
    client_off: bool,
}

impl Pair {
    fn new(config: ServerConfig, max_age: Option<u32>) -> Self {
        let (layer, obs) = layer(config, max_age);
        Self {
            c: ep_seed(cfg(), 11),
            s: ep_seed(cfg(), 22),
            layer,
            app: App::new(),
            obs,
            seen: Vec::new(),
            server_events: Vec::new(),
            wire: Vec::new(),
            loss: Box::new(|_, _, _| false),
            client_off: false,
        }
    }

    /// Moves datagrams and events at instant `t` until nothing is left.
    fn pump(&mut self, t: Instant) {
        for _ in 0..10_000 {
            let mut progress = false;
            for (to, bytes) in drain(&mut self.c) {
                progress = true;
                self.wire.push(Sent {
                    at: t,
                    from: CLIENT,
                    to,
                    bytes: bytes.clone(),
                });
                if to == SERVER && !(self.loss)(t, CLIENT, &bytes) {
                    self.s.handle_datagram(t, CLIENT, &bytes);
                }
            }
            for (to, bytes) in drain(&mut self.s) {
                progress = true;
                self.wire.push(Sent {
                    at: t,
                    from: SERVER,
                    to,
                    bytes: bytes.clone(),
                });
                if to == CLIENT && !self.client_off && !(self.loss)(t, SERVER, &bytes) {
                    self.c.handle_datagram(t, SERVER, &bytes);
                }
            }
            while let Some(e) = self.s.poll_event() {
                progress = true;
                if let Some(rest) = self.layer.handle_event(&mut self.s, t, e, &mut self.app) {
                    self.server_events.push((t, rest));
                }
            }
            while let Some(e) = self.c.poll_event() {
                progress = true;
                self.seen.push((t, e));
            }
            if !progress {
                return;
            }
        }
        panic!("no quiescence at {t:?}");
    }

    /// Runs both endpoints' timers up to `t`, in order.
    fn run_until(&mut self, t: Instant) {
        loop {
            let c = if self.client_off {
                None
            } else {
                self.c.poll_timeout()
            };
            let next = [c, self.s.poll_timeout()].into_iter().flatten().min();
            match next {
                Some(n) if n <= t => {
                    if !self.client_off {
                        self.c.handle_timeout(n);
                    }
                    self.s.handle_timeout(n);
                    self.pump(n);
                }
                _ => break,
            }
        }
    }

    /// At `t`: changes the application state and notifies the observers.
    fn change(&mut self, t: Instant, f: impl FnOnce(&mut App)) -> usize {
        self.run_until(t);
        f(&mut self.app);
        let n = self
            .layer
            .notify_changed(&mut self.s, t, self.obs, &mut self.app);
        self.pump(t);
        n
    }

    /// Starts observing /obs at `t`.
    fn observe(&mut self, t: Instant, ty: MessageType) -> RequestId {
        self.run_until(t);
        let id = self.c.observe(t, SERVER, &get(ty, "obs")).expect("observe");
        self.pump(t);
        id
    }

    /// A request from OTHER (a second client), handed to the server.
    fn other(&mut self, t: Instant, datagram: &[u8]) {
        self.run_until(t);
        self.s.handle_datagram(t, OTHER, datagram);
        self.pump(t);
    }

    /// Datagrams sent at or after `since`, from `from`.
    fn sent_by(&self, from: Addr, since: Instant) -> Vec<Sent> {
        self.wire
            .iter()
            .filter(|s| s.from == from && s.at >= since)
            .cloned()
            .collect()
    }

    /// The notifications the client delivered: instant, Observe, payload.
    fn notes(&self) -> Vec<(Instant, u32, String)> {
        self.seen
            .iter()
            .filter_map(|(t, e)| match e {
                Event::Notification(r) => Some((
                    *t,
                    r.message().observe().map_or(u32::MAX, |o| o.0),
                    String::from_utf8_lossy(r.message().payload()).into_owned(),
                )),
                _ => None,
            })
            .collect()
    }

    fn payloads(&self) -> Vec<String> {
        self.notes().into_iter().map(|n| n.2).collect()
    }

    /// The end of every scenario: no observer left, and both endpoints
    /// empty after EXCHANGE_LIFETIME.
    #[track_caller]
    fn finish(mut self, last: Instant) {
        self.run_until(last);
        assert_eq!(self.layer.observer_count(), 0, "observers left");
        assert_eq!(self.layer.observer_memory(), 0);
        assert!(
            self.server_events.is_empty(),
            "unexpected server events: {:?}",
            self.server_events
        );
        let _ = finish(&mut self.c, last);
        let _ = finish(&mut self.s, last);
    }
}

fn observe_of(bytes: &[u8]) -> Option<u32> {
    parse(bytes).observe().map(|o| o.0)
}

/// A hand-made request from OTHER.
fn other_request(code: Code, mid: u16, cf: Option<ContentFormat>, payload: &[u8]) -> Vec<u8> {
    let cf_bytes = cf.map(|f| coap_proto::encode_uint(u32::from(f.0)));
    let mut opts: Vec<(OptionNumber, &[u8])> = vec![(OptionNumber::URI_PATH, b"obs")];
    if let Some(b) = &cf_bytes {
        opts.push((OptionNumber::CONTENT_FORMAT, b));
    }
    msg(Con, code, mid, &[0x0e, 0x0f], &opts, payload)
}

fn con_server() -> ServerConfig {
    let mut sc = ServerConfig::default();
    sc.notify_con = true;
    sc
}

fn non_server() -> ServerConfig {
    let mut sc = ServerConfig::default();
    sc.notify_con_every = 1000;
    sc
}

// ----- ETSI CoAP#4 TD_COAP_OBS_* -----------------------------------------------

#[test]
fn td_coap_obs_01_observation_with_con_notifications() {
    // TD_COAP_OBS_01 "Handle resource observation with CON messages"
    // (RFC 7641 §1.2, §3, §4): a CON GET with an empty Observe; an ACK 2.05
    // with the resource's Content-Format, the token and an Observe value;
    // then CON notifications with the same Content-Format and token and
    // increasing Observe values (modulo 2^24), each acknowledged, each
    // displayed. The TD's /obs changes every 5 s; so does this one.
    let mut p = Pair::new(con_server(), None);
    let id = p.observe(secs(0), Con);
    let sent = p.sent_by(CLIENT, secs(0));
    let req = parse(&sent[0].bytes);
    assert_eq!(
        (req.ty(), req.code(), req.observe()),
        (Con, Code::GET, Some(Observe::REGISTER))
    );
    assert_eq!(req.option(OptionNumber::OBSERVE), Some(&[][..])); // empty
    let token = req.token().to_vec();
    let first = p.sent_by(SERVER, secs(0));
    let r = parse(&first[0].bytes);
    assert_eq!(
        (r.ty(), r.code(), r.message_id(), r.token()),
        (Ack, Code::CONTENT, req.message_id(), &token[..])
    );
    assert_eq!(r.content_format(), Some(TEXT));
    assert_eq!(r.observe(), Some(Observe(1)));
    for (k, t) in [5u64, 10, 15].into_iter().enumerate() {
        assert_eq!(p.change(secs(t), |a| a.value += 1), 1);
        let out = p.sent_by(SERVER, secs(t));
        assert_eq!(out.len(), 1, "one notification at {t} s");
        let n = parse(&out[0].bytes);
        assert_eq!(
            (n.ty(), n.code(), n.token()),
            (Con, Code::CONTENT, &token[..])
        );
        assert_eq!(n.content_format(), Some(TEXT));
        assert_eq!(n.observe(), Some(Observe(k as u32 + 2)));
        // The client acknowledges it (RFC 7252 §4.2: empty ACK, same MID).
        let acks = p.sent_by(CLIENT, secs(t));
        assert_eq!(acks.len(), 1);
        assert_eq!(acks[0].bytes, empty(Ack, n.message_id()));
    }
    assert_eq!(p.payloads(), ["0", "1", "2", "3"]);
    assert!(
        p.seen
            .iter()
            .all(|(_, e)| matches!(e, Event::Notification(r) if r.id == id))
    );
    assert_eq!(p.s.tables().notifications, 0, "every CON acknowledged");
    p.c.cancel_observe(secs(20), id, Deregister::Active)
        .unwrap();
    p.pump(secs(20));
    p.finish(secs(20));
}

#[test]
fn td_coap_obs_02_observation_with_non_notifications() {
    // TD_COAP_OBS_02 "Handle resource observation with NON messages": a
    // NON GET with an empty Observe, NON notifications with one
    // Content-Format, the token and increasing Observe values. The TD's
    // server offers a separate /obs-non; here the layer's NON mode (with
    // the CON-every-N rule pushed out of the way) plays it. Nothing is
    // acknowledged.
    let mut p = Pair::new(non_server(), None);
    let id = p.observe(secs(0), Non);
    let req_bytes = p.sent_by(CLIENT, secs(0))[0].bytes.clone();
    let req = parse(&req_bytes);
    assert_eq!((req.ty(), req.observe()), (Non, Some(Observe::REGISTER)));
    let token = req.token().to_vec();
    let r_bytes = p.sent_by(SERVER, secs(0))[0].bytes.clone();
    let r = parse(&r_bytes);
    assert_eq!(
        (r.ty(), r.code(), r.token()),
        (Non, Code::CONTENT, &token[..])
    );
    let mut last = r.observe().unwrap().0;
    for t in [5u64, 10, 15, 20] {
        p.change(secs(t), |a| a.value += 1);
        let out = p.sent_by(SERVER, secs(t));
        let n = parse(&out[0].bytes);
        assert_eq!(
            (n.ty(), n.code(), n.token()),
            (Non, Code::CONTENT, &token[..])
        );
        assert_eq!(n.content_format(), Some(TEXT));
        let v = n.observe().unwrap().0;
        assert!(v > last, "Observe {v} after {last}");
        last = v;
        assert!(
            p.sent_by(CLIENT, secs(t)).is_empty(),
            "NON is not acknowledged"
        );
    }
    assert_eq!(p.payloads(), ["0", "1", "2", "3", "4"]);
    p.c.cancel_observe(secs(25), id, Deregister::Active)
        .unwrap();
    p.pump(secs(25));
    // The deregistration was NON too, as the registration.
    let dereg_bytes = p.sent_by(CLIENT, secs(25))[0].bytes.clone();
    let dereg = parse(&dereg_bytes);
    assert_eq!(
        (dereg.ty(), dereg.observe(), dereg.token()),
        (Non, Some(Observe::DEREGISTER), &token[..])
    );
    p.finish(secs(25));
}

#[test]
fn td_coap_obs_04_client_detects_deregistration_by_max_age() {
    // TD_COAP_OBS_04 "Client detection of deregistration (Max-Age)"
    // (RFC 7641 §3.3.1): the server loses its observation state (here: a
    // new resource layer, as after a reboot) and sends nothing more; once
    // the last notification's Max-Age has run out the client registers
    // again with the same token. The TD suggests waiting Max-Age +
    // MAX_LATENCY; RFC 7641 §3.3.1 says 5 to 15 s after Max-Age, which is
    // what the endpoint does by default (Config::observe_refresh_delay; zero
    // here, for an exact instant). The answer to the re-registration may
    // carry a smaller
    // Observe value ("not necessarily increasing") and is accepted.
    let mut p = Pair::new(con_server(), Some(10));
    let id = p.observe(secs(0), Con);
    let reg = parse(&p.sent_by(CLIENT, secs(0))[0].bytes).message_id();
    let token = parse(&p.sent_by(CLIENT, secs(0))[0].bytes).token().to_vec();
    p.change(secs(3), |a| a.value = 1);
    assert_eq!(p.payloads(), ["0", "1"]);
    // Reboot at 4 s: the observers are gone.
    let (fresh, obs) = layer(con_server(), Some(10));
    p.layer = fresh;
    p.obs = obs;
    assert_eq!(p.change(secs(6), |a| a.value = 2), 0, "no notification");
    p.run_until(ms(12_999));
    assert!(p.sent_by(CLIENT, secs(4)).is_empty(), "nothing before 13 s");
    // 3 s (last notification) + Max-Age 10 s.
    p.run_until(secs(13));
    let again = p.sent_by(CLIENT, secs(13));
    let g = parse(&again[0].bytes);
    assert_eq!(again[0].at, secs(13));
    assert_eq!(
        (g.ty(), g.code(), g.observe(), g.token()),
        (Con, Code::GET, Some(Observe::REGISTER), &token[..])
    );
    assert_ne!(g.message_id(), reg, "a new Message ID");
    let answer_bytes = p.sent_by(SERVER, secs(13))[0].bytes.clone();
    let answer = parse(&answer_bytes);
    assert_eq!((answer.ty(), answer.code()), (Ack, Code::CONTENT));
    assert_eq!(answer.observe(), Some(Observe(2)), "not larger than before");
    assert_eq!(p.c.stats().reregistrations, 1);
    p.change(secs(20), |a| a.value = 3);
    assert_eq!(p.payloads(), ["0", "1", "2", "3"]);
    // The application saw notifications only (no Acknowledged, no
    // TimedOut) for all of it.
    assert!(
        p.seen
            .iter()
            .all(|(_, e)| matches!(e, Event::Notification(r) if r.id == id))
    );
    p.c.cancel_observe(secs(21), id, Deregister::Active)
        .unwrap();
    p.pump(secs(21));
    p.finish(secs(21));
}

#[test]
fn td_coap_obs_05_server_detects_client_off() {
    // TD_COAP_OBS_05 "Server detection of deregistration (client OFF)"
    // (RFC 7641 §4.5): the client is switched off, the server's CON
    // notifications are not acknowledged, "retransmissions have an updated
    // Observe option value", and after the final timeout the server stops.
    // The update here: the resource changes during the retransmissions, so
    // the next attempt carries the newer notification (§4.5.2, new Message
    // ID, counter and timeout retained).
    let mut p = Pair::new(con_server(), None);
    let id = p.observe(secs(0), Con);
    p.change(secs(5), |a| a.value = 1);
    p.client_off = true;
    p.change(secs(10), |a| a.value = 2);
    p.change(secs(13), |a| a.value = 3);
    p.run_until(secs(200));
    let tx: Vec<(Instant, u16, u32)> = p
        .sent_by(SERVER, secs(10))
        .iter()
        .map(|s| {
            let m = parse(&s.bytes);
            (s.at, m.message_id(), m.observe().unwrap().0)
        })
        .collect();
    assert_eq!(tx.len(), 5, "1 + MAX_RETRANSMIT: {tx:?}");
    let at: Vec<Instant> = tx.iter().map(|x| x.0).collect();
    assert_eq!(at, [secs(10), secs(12), secs(16), secs(24), secs(40)]);
    assert_eq!(
        (tx[0].1, tx[0].2),
        (tx[1].1, tx[1].2),
        "a plain retransmission"
    );
    assert_ne!(tx[2].1, tx[1].1, "the newer notification has a new MID");
    assert!(tx[2].2 > tx[1].2, "and a newer Observe value");
    assert_eq!((tx[2].1, tx[2].2), (tx[4].1, tx[4].2));
    // Timed out at 40 + 32 s: the observer is gone.
    assert_eq!(p.layer.observer_count(), 0);
    assert_eq!(p.layer.stats().observers_removed, 1);
    assert_eq!(p.change(secs(201), |a| a.value = 4), 0);
    // The switched-off client forgets everything.
    p.c.cancel(secs(201), id).unwrap();
    p.client_off = false;
    p.finish(secs(201));
}

#[test]
fn td_coap_obs_06_server_detects_deregistration_by_rst() {
    // TD_COAP_OBS_06 "Server detection of deregistration (explicit RST)"
    // (RFC 7641 §3.6, §4.5): the client reboots and no longer knows the
    // token; it rejects the next (CON) notification with a Reset, displays
    // nothing, and the server sends nothing more.
    let mut p = Pair::new(con_server(), None);
    p.observe(secs(0), Con);
    p.change(secs(5), |a| a.value = 1);
    assert_eq!(p.payloads(), ["0", "1"]);
    // Reboot: a new client endpoint at the same address.
    let old = std::mem::replace(&mut p.c, ep_seed(cfg(), 33));
    drop(old);
    p.seen.clear();
    p.change(secs(10), |a| a.value = 2);
    let n_bytes = p.sent_by(SERVER, secs(10))[0].bytes.clone();
    let n = parse(&n_bytes);
    let rst = p.sent_by(CLIENT, secs(10));
    assert_eq!(rst.len(), 1);
    assert_eq!(rst[0].bytes, empty(Rst, n.message_id()));
    assert!(p.seen.is_empty(), "the rebooted client displays nothing");
    assert_eq!(p.layer.observer_count(), 0);
    assert_eq!(p.change(secs(15), |a| a.value = 3), 0);
    assert!(p.sent_by(SERVER, secs(15)).is_empty());
    p.finish(secs(15));
}

#[test]
fn td_coap_obs_07_delete_cleans_the_observers() {
    // TD_COAP_OBS_07 "Server cleans the observers list on DELETE" (RFC 7641
    // §3.2, §4.2): another client DELETEs /obs; the server sends a CON
    // 4.04 notification without Observe and then nothing more.
    let mut p = Pair::new(ServerConfig::default(), None);
    let id = p.observe(secs(0), Con);
    p.change(secs(5), |a| a.value = 1);
    p.other(secs(8), &other_request(Code::DELETE, 0x700, None, b""));
    let deleted_bytes = p.sent_by(SERVER, secs(8))[0].bytes.clone();
    let deleted = parse(&deleted_bytes);
    assert_eq!(deleted.code(), Code::DELETED);
    p.change(secs(8), |_| {});
    let out = p.sent_by(SERVER, secs(8));
    let n = parse(&out.last().unwrap().bytes);
    assert_eq!(out.last().unwrap().to, CLIENT);
    assert_eq!(
        (n.ty(), n.code(), n.observe()),
        (Con, Code::NOT_FOUND, None)
    );
    // The observation ends with that response.
    assert!(matches!(
        p.seen.last(),
        Some((_, Event::Response(r))) if r.id == id && r.message().code() == Code::NOT_FOUND
    ));
    assert_eq!(p.c.tables().requests, 0);
    assert_eq!(p.layer.observer_count(), 0);
    assert_eq!(p.change(secs(10), |a| a.deleted = false), 0);
    p.finish(secs(10));
}

#[test]
fn td_coap_obs_08_content_format_change_cleans_the_observers() {
    // TD_COAP_OBS_08 "Server cleans the observers list when observed
    // resource content-format changes" (RFC 7641 §4.2 ¶3): another client
    // PUTs /obs as application/xml; the observer, registered for
    // text/plain, gets a CON 4.06 without Observe, then nothing more.
    let mut p = Pair::new(ServerConfig::default(), None);
    let id = p.observe(secs(0), Con);
    p.change(secs(5), |a| a.value = 1);
    p.other(
        secs(8),
        &other_request(Code::PUT, 0x701, Some(XML), b"<v>9</v>"),
    );
    p.change(secs(8), |_| {});
    let n_bytes = p.sent_by(SERVER, secs(8)).last().unwrap().bytes.clone();
    let n = parse(&n_bytes);
    assert_eq!(
        (n.ty(), n.code(), n.observe()),
        (Con, Code::NOT_ACCEPTABLE, None)
    );
    assert!(matches!(
        p.seen.last(),
        Some((_, Event::Response(r))) if r.id == id && r.message().code() == Code::NOT_ACCEPTABLE
    ));
    assert_eq!(p.layer.observer_count(), 0);
    assert_eq!(p.change(secs(10), |a| a.value = 10), 0);
    p.finish(secs(10));
}

#[test]
fn td_coap_obs_09_update_of_the_observed_resource() {
    // TD_COAP_OBS_09 "Update of the observed resource" (RFC 7641 §4.2):
    // another client PUTs a new value in the same Content-Format; the
    // observer gets a CON 2.05 notification with it, the same format and
    // token, and an increasing Observe value, and acknowledges it.
    let mut p = Pair::new(con_server(), None);
    let id = p.observe(secs(0), Con);
    let token = parse(&p.sent_by(CLIENT, secs(0))[0].bytes).token().to_vec();
    p.other(secs(7), &other_request(Code::PUT, 0x702, Some(TEXT), b"42"));
    assert_eq!(
        parse(&p.sent_by(SERVER, secs(7))[0].bytes).code(),
        Code::CHANGED
    );
    p.change(secs(7), |_| {});
    let n_bytes = p.sent_by(SERVER, secs(7)).last().unwrap().bytes.clone();
    let n = parse(&n_bytes);
    assert_eq!(
        (n.ty(), n.code(), n.token()),
        (Con, Code::CONTENT, &token[..])
    );
    assert_eq!((n.content_format(), n.payload()), (Some(TEXT), &b"42"[..]));
    assert_eq!(n.observe(), Some(Observe(2)));
    assert_eq!(
        p.sent_by(CLIENT, secs(7)).last().unwrap().bytes,
        empty(Ack, n.message_id())
    );
    assert_eq!(p.payloads(), ["0", "42"]);
    p.c.cancel_observe(secs(9), id, Deregister::Active).unwrap();
    p.pump(secs(9));
    p.finish(secs(9));
}

#[test]
fn td_coap_obs_10_get_does_not_cancel_the_observation() {
    // TD_COAP_OBS_10 "GET does not cancel resource observation": a plain
    // CON GET of /obs with another token gets a 2.05 without Observe, and
    // the notifications keep coming. RFC 7641 has no rule that a GET
    // without Observe ends an observation (§4.1 knows Observe:0 and :1
    // only), so a plain GET with the observation's own token does not end
    // it either (checked below, beyond the TD).
    let mut p = Pair::new(con_server(), None);
    let id = p.observe(secs(0), Con);
    let token = parse(&p.sent_by(CLIENT, secs(0))[0].bytes).token().to_vec();
    p.change(secs(5), |a| a.value = 1);
    p.run_until(secs(7));
    let plain = p.c.request(secs(7), SERVER, &get(Con, "obs")).unwrap();
    p.pump(secs(7));
    let g_bytes = p.sent_by(CLIENT, secs(7))[0].bytes.clone();
    let g = parse(&g_bytes);
    assert_ne!(g.token(), &token[..]);
    assert_eq!(g.observe(), None);
    let r_bytes = p.sent_by(SERVER, secs(7))[0].bytes.clone();
    let r = parse(&r_bytes);
    assert_eq!(
        (r.ty(), r.code(), r.token(), r.observe()),
        (Ack, Code::CONTENT, g.token(), None)
    );
    assert_eq!(r.content_format(), Some(TEXT));
    assert!(matches!(p.seen.last(), Some((_, Event::Response(x))) if x.id == plain));
    // A plain GET with the observation's token (hand-made: an endpoint
    // never reuses a token in use).
    p.run_until(secs(8));
    p.s.handle_datagram(
        secs(8),
        CLIENT,
        &msg(
            Con,
            Code::GET,
            0x4242,
            &token,
            &[(OptionNumber::URI_PATH, b"obs")],
            b"",
        ),
    );
    p.pump(secs(8));
    assert_eq!(p.layer.observer_count(), 1);
    p.change(secs(10), |a| a.value = 2);
    let n_bytes = p.sent_by(SERVER, secs(10))[0].bytes.clone();
    let n = parse(&n_bytes);
    assert_eq!((n.token(), n.observe()), (&token[..], Some(Observe(3))));
    assert_eq!(p.payloads(), ["0", "1", "2"]);
    p.c.cancel_observe(secs(11), id, Deregister::Active)
        .unwrap();
    p.pump(secs(11));
    p.finish(secs(11));
}

#[test]
fn td_coap_obs_11_con_notifications_on_a_lossy_link() {
    // TD_COAP_OBS_11 "Handle resource observation with CON messages (lossy
    // case)": "even if the delivery of notifications takes some time due
    // to retransmissions, there are never multiple notifications active at
    // one time" (RFC 7641 §4.5.1, §4.5.2). Here every ACK from the client
    // is lost from 5 s to 20 s while /obs changes every second until 12 s.
    let mut p = Pair::new(con_server(), None);
    let id = p.observe(secs(0), Con);
    p.loss = Box::new(|t, from, _| from == CLIENT && t >= secs(5) && t < secs(20));
    for t in 5..=12 {
        p.change(secs(t), |a| a.value += 1);
        assert!(p.s.tables().notifications <= 1);
    }
    p.run_until(secs(60));
    let tx: Vec<(Instant, u16, u32)> = p
        .sent_by(SERVER, secs(5))
        .iter()
        .map(|s| {
            let m = parse(&s.bytes);
            (s.at, m.message_id(), m.observe().unwrap().0)
        })
        .collect();
    // One notification in flight at a time: a Message ID is never used
    // again once a newer one went out.
    let mut done = std::collections::BTreeSet::new();
    let mut current = None;
    for &(_, mid, _) in &tx {
        if current != Some(mid) {
            assert!(done.insert(mid), "MID {mid:#x} came back: {tx:?}");
            current = Some(mid);
        }
    }
    let at: Vec<Instant> = tx.iter().map(|x| x.0).collect();
    assert_eq!(at, [secs(5), secs(7), secs(11), secs(19), secs(35)]);
    // The latest state arrived, and nothing older after anything newer.
    let notes = p.notes();
    assert_eq!(notes.last().unwrap().2, "8");
    assert!(notes.windows(2).all(|w| w[0].1 < w[1].1), "{notes:?}");
    assert_eq!(p.s.tables().notifications, 0, "the last one acknowledged");
    p.c.cancel_observe(secs(60), id, Deregister::Active)
        .unwrap();
    p.pump(secs(60));
    p.finish(secs(60));
}

#[test]
fn td_coap_obs_12_get_with_observe_1_cancels() {
    // TD_COAP_OBS_12 "GET with Observe=1 does cancel resource observation"
    // (RFC 7641 §3.6, §4.1): a CON GET with the observation's token and
    // Observe:1 gets an ACK 2.05 without Observe; no notification follows,
    // and the client displays nothing more.
    let mut p = Pair::new(con_server(), None);
    let id = p.observe(secs(0), Con);
    let reg_bytes = p.sent_by(CLIENT, secs(0))[0].bytes.clone();
    let reg = parse(&reg_bytes);
    let (token, reg_mid) = (reg.token().to_vec(), reg.message_id());
    p.change(secs(5), |a| a.value = 1);
    p.run_until(secs(10));
    p.c.cancel_observe(secs(10), id, Deregister::Active)
        .unwrap();
    p.pump(secs(10));
    let g_bytes = p.sent_by(CLIENT, secs(10))[0].bytes.clone();
    let g = parse(&g_bytes);
    assert_eq!(
        (g.ty(), g.code(), g.token(), g.observe()),
        (Con, Code::GET, &token[..], Some(Observe::DEREGISTER))
    );
    assert_ne!(g.message_id(), reg_mid);
    // "All other options MUST be identical" (§3.6).
    assert_eq!(g.option(OptionNumber::URI_PATH), Some(&b"obs"[..]));
    let r_bytes = p.sent_by(SERVER, secs(10))[0].bytes.clone();
    let r = parse(&r_bytes);
    assert_eq!(
        (r.ty(), r.code(), r.token(), r.observe()),
        (Ack, Code::CONTENT, &token[..], None)
    );
    assert_eq!(r.content_format(), Some(TEXT));
    assert_eq!(
        p.payloads(),
        ["0", "1"],
        "the deregistration reports nothing"
    );
    assert_eq!(p.seen.len(), 2);
    assert_eq!(p.c.tables().requests, 0);
    assert_eq!(p.layer.observer_count(), 0);
    assert_eq!(p.change(secs(15), |a| a.value = 2), 0);
    assert!(p.sent_by(SERVER, secs(15)).is_empty());
    p.finish(secs(15));
}

// ----- RFC 7641 rules -----------------------------------------------------------

#[test]
fn rfc7641_4_4_observe_values_increase_and_wrap_at_2_pow_24() {
    // RFC 7641 §4.4: the 24 least significant bits of a strictly increasing
    // sequence number; §3.4: 0 after 2^24 - 1 is newer.
    let mut p = Pair::new(non_server(), None);
    p.layer.set_observe_sequence(p.obs, 0x00ff_fffe);
    let id = p.observe(secs(0), Con);
    // 3 s apart: one NON notification per 3 s to a client (§4.5.1).
    p.change(secs(1), |a| a.value = 1);
    p.change(secs(4), |a| a.value = 2);
    let values: Vec<u32> = p.notes().iter().map(|n| n.1).collect();
    assert_eq!(values, [0x00ff_ffff, 0, 1]);
    // 0 goes out as an empty uint.
    let zero = p.sent_by(SERVER, secs(1));
    assert_eq!(
        parse(&zero[0].bytes).option(OptionNumber::OBSERVE),
        Some(&[][..])
    );
    assert_eq!(p.payloads(), ["0", "1", "2"]);
    p.c.cancel_observe(secs(5), id, Deregister::Active).unwrap();
    p.pump(secs(5));
    p.finish(secs(5));
}

/// A notification (or response) from SERVER by hand, with Max-Age 1000 so
/// that no re-registration interferes.
fn note(ty: MessageType, mid: u16, token: &[u8], observe: u32, payload: &[u8]) -> Vec<u8> {
    let v = coap_proto::encode_uint(observe);
    let age = coap_proto::encode_uint(1000);
    msg(
        ty,
        Code::CONTENT,
        mid,
        token,
        &[(OptionNumber::OBSERVE, &v), (OptionNumber::MAX_AGE, &age)],
        payload,
    )
}

#[test]
fn rfc7641_3_4_reordering_detection() {
    // RFC 7641 §3.4: a notification is newer when (V1 < V2 and V2 - V1 <
    // 2^23) or (V1 > V2 and V1 - V2 > 2^23) or (T2 > T1 + 128 s). An older
    // one is acknowledged (if CON) but not delivered.
    let mut c = ep(cfg());
    let id = c.observe(secs(0), SERVER, &get(Con, "obs")).unwrap();
    let req = one(&mut c, SERVER);
    let (mid, token) = (parse(&req).message_id(), parse(&req).token().to_vec());
    c.handle_datagram(secs(0), SERVER, &note(Ack, mid, &token, 100, b"100"));
    let delivered = |c: &mut Ep| -> Vec<String> {
        events(c)
            .into_iter()
            .map(|e| match e {
                Event::Notification(r) => {
                    assert_eq!(r.id, id);
                    String::from_utf8_lossy(r.message().payload()).into_owned()
                }
                other => panic!("{other:?}"),
            })
            .collect()
    };
    assert_eq!(delivered(&mut c), ["100"]);
    let mut next = 0x100u16;
    let mut feed = |c: &mut Ep, t: Instant, ty: MessageType, v: u32| {
        next += 1;
        c.handle_datagram(
            t,
            SERVER,
            &note(ty, next, &token, v, v.to_string().as_bytes()),
        );
        next
    };
    feed(&mut c, secs(1), Non, 102);
    assert_eq!(delivered(&mut c), ["102"]);
    feed(&mut c, secs(2), Non, 101);
    assert!(delivered(&mut c).is_empty(), "101 after 102 is stale");
    let m = feed(&mut c, secs(3), Con, 101);
    assert_eq!(
        one(&mut c, SERVER),
        empty(Ack, m),
        "a stale CON is acknowledged"
    );
    assert!(delivered(&mut c).is_empty());
    feed(&mut c, secs(4), Non, 102);
    assert!(delivered(&mut c).is_empty(), "the same value is not newer");
    feed(&mut c, secs(5), Non, 103);
    assert_eq!(delivered(&mut c), ["103"]);
    // V2 - V1 = 2^23 exactly: not newer; 2^23 - 1: newer.
    feed(&mut c, secs(6), Non, 103 + (1 << 23));
    assert!(delivered(&mut c).is_empty());
    feed(&mut c, secs(7), Non, 103 + (1 << 23) - 1);
    assert_eq!(delivered(&mut c).len(), 1);
    // V1 > V2 and V1 - V2 > 2^23: newer (the wrap).
    feed(&mut c, secs(8), Non, 5);
    assert_eq!(delivered(&mut c), ["5"]);
    // The 128-second rule: T1 = 8 s.
    feed(&mut c, secs(136), Non, 4);
    assert!(delivered(&mut c).is_empty(), "T2 = T1 + 128 s is not later");
    feed(&mut c, secs(136) + Duration::from_micros(1), Non, 4);
    assert_eq!(delivered(&mut c), ["4"]);
    assert_eq!(c.stats().stale_notifications, 5);
    assert_eq!(c.stats().notifications_in, 6);
    silent(&mut c);
    c.cancel_observe(secs(137), id, Deregister::Passive)
        .unwrap();
    // Forgotten: the next one (NON, with Observe) gets a Reset (§3.6).
    let m = feed(&mut c, secs(138), Non, 6);
    assert_eq!(one(&mut c, SERVER), empty(Rst, m));
    no_events(&mut c);
    let _ = finish(&mut c, secs(138));
}

#[test]
fn rfc7641_3_3_1_reregistration_at_exact_instants() {
    // RFC 7641 §3.3.1: with no newer notification by the time Max-Age has
    // run out, the client registers again with the same token (at once
    // here: observe_refresh_delay is zero). Every notification moves the
    // instant; a lost re-registration is retransmitted like any CON.
    let mut p = Pair::new(non_server(), Some(30));
    let id = p.observe(secs(0), Con);
    let token = parse(&p.sent_by(CLIENT, secs(0))[0].bytes).token().to_vec();
    assert_eq!(p.c.poll_timeout(), Some(secs(30)));
    p.change(secs(20), |a| a.value = 1);
    assert_eq!(p.c.poll_timeout(), Some(secs(50)));
    p.run_until(ms(49_999));
    assert!(p.sent_by(CLIENT, secs(1)).is_empty());
    p.run_until(secs(50));
    let again = p.sent_by(CLIENT, secs(50));
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].at, secs(50));
    let g = parse(&again[0].bytes);
    assert_eq!(
        (g.ty(), g.observe(), g.token()),
        (Con, Some(Observe::REGISTER), &token[..])
    );
    assert_eq!(p.payloads(), ["0", "1", "1"]);
    assert_eq!(p.c.poll_timeout(), Some(secs(80)));
    // Lost once: retransmitted after ACK_TIMEOUT (2 s here).
    p.loss = Box::new(|t, from, _| from == CLIENT && t == secs(80));
    p.run_until(secs(82));
    let tries: Vec<Instant> = p.sent_by(CLIENT, secs(80)).iter().map(|s| s.at).collect();
    assert_eq!(tries, [secs(80), secs(82)]);
    assert_eq!(p.payloads().len(), 4);
    assert_eq!(p.c.stats().reregistrations, 2);
    assert!(
        p.seen
            .iter()
            .all(|(_, e)| matches!(e, Event::Notification(r) if r.id == id)),
        "no Acknowledged or other events for re-registrations"
    );
    p.c.cancel_observe(secs(83), id, Deregister::Active)
        .unwrap();
    p.pump(secs(83));
    p.finish(secs(83));
}

#[test]
fn rfc7641_3_3_1_reregistration_is_jittered_5_to_15_seconds() {
    // With the default jitter the re-registration comes 5 to 15 s after
    // Max-Age ("a random amount of time between 5 and 15 seconds").
    for seed in 0..20 {
        let mut c = ep_seed(Config::default(), seed);
        c.observe(secs(0), SERVER, &get(Con, "obs")).unwrap();
        let req = one(&mut c, SERVER);
        let m = parse(&req);
        let v = coap_proto::encode_uint(1);
        let age = coap_proto::encode_uint(30);
        c.handle_datagram(
            secs(1),
            SERVER,
            &msg(
                Ack,
                Code::CONTENT,
                m.message_id(),
                m.token(),
                &[(OptionNumber::OBSERVE, &v), (OptionNumber::MAX_AGE, &age)],
                b"",
            ),
        );
        let at = c.poll_timeout().unwrap();
        assert!(at >= secs(36) && at <= secs(46), "{at:?}");
    }
}

#[test]
fn rfc7641_4_5_con_at_least_every_n_notifications() {
    // RFC 7641 §4.5 lets the server pick the type; the layer sends NON and
    // every notify_con_every-th one (3 here) as CON, which a client that
    // went away fails to acknowledge.
    let mut sc = ServerConfig::default();
    sc.notify_con_every = 3;
    let mut p = Pair::new(sc, None);
    let id = p.observe(secs(0), Con);
    let mut types = Vec::new();
    // 3 s apart: one NON notification per 3 s to a client (§4.5.1).
    for t in (1..=7).map(|k| 3 * k) {
        p.change(secs(t), |a| a.value += 1);
        types.push(parse(&p.sent_by(SERVER, secs(t))[0].bytes).ty());
    }
    assert_eq!(types, [Non, Non, Con, Non, Non, Con, Non]);
    assert_eq!(p.layer.stats().notifications_con, 2);
    p.c.cancel_observe(secs(24), id, Deregister::Active)
        .unwrap();
    p.pump(secs(24));
    p.finish(secs(24));
}

#[test]
fn rfc7641_4_5_con_at_least_every_24_hours() {
    // RFC 7641 §4.5: "at least every 24 hours" a CON, counted from the
    // registration or the last CON. Max-Age is longer than a day here, so
    // that no re-registration resets the clock.
    let day: u64 = 24 * 3600;
    let mut p = Pair::new(non_server(), Some(2 * day as u32));
    let id = p.observe(secs(0), Con);
    let mut types = Vec::new();
    // At least 3 s apart: one NON notification per 3 s (§4.5.1).
    for t in [3600, day - 3, day, day + 3, 2 * day - 3, 2 * day] {
        p.change(secs(t), |a| a.value += 1);
        types.push(parse(&p.sent_by(SERVER, secs(t))[0].bytes).ty());
    }
    assert_eq!(types, [Non, Non, Con, Non, Non, Con]);
    p.c.cancel_observe(secs(2 * day), id, Deregister::Active)
        .unwrap();
    p.pump(secs(2 * day));
    p.finish(secs(2 * day));
}

// ----- the endpoint's notification primitive (§4.5, §4.5.2) ----------------------

fn n(v: u32) -> MessageBuf {
    let mut m = MessageBuf::new(Con, Code::CONTENT);
    m.add_option_uint(OptionNumber::OBSERVE, v);
    m.set_payload(v.to_string());
    m
}

const TOK: &[u8] = &[0xa1, 0xa2];

#[track_caller]
fn just(s: &mut Ep, e: Event<Addr>) {
    assert_eq!(format!("{:?}", events(s)), format!("{:?}", [e]));
}

#[test]
fn rfc7641_4_5_2_newer_notification_replaces_one_being_retransmitted() {
    // §4.5.2: the current attempt completes (times out here), then the
    // newer notification goes out with a new Message ID, the counter
    // incremented and the timeout doubled. A late ACK of the superseded
    // one only shows interest; the newer one's ACK completes it.
    let mut s = ep(cfg());
    let id1 = s.notify(secs(0), CLIENT, TOK, true, &n(1)).unwrap();
    let d1 = one(&mut s, CLIENT);
    let id2 = s.notify(secs(1), CLIENT, TOK, true, &n(2)).unwrap();
    assert_ne!(id1, id2);
    silent(&mut s);
    assert_eq!(s.tables().notifications, 1);
    assert_eq!(s.poll_timeout(), Some(secs(2)));
    s.handle_timeout(secs(2));
    let d2 = one(&mut s, CLIENT);
    let (m1, m2) = (parse(&d1).message_id(), parse(&d2).message_id());
    assert_ne!(m1, m2);
    assert_eq!(
        (parse(&d2).ty(), parse(&d2).token(), observe_of(&d2)),
        (Con, TOK, Some(2))
    );
    assert_eq!(s.poll_timeout(), Some(secs(6)), "timeout doubled: 4 s");
    s.handle_datagram(secs(3), CLIENT, &empty(Ack, m1));
    no_events(&mut s);
    assert_eq!(s.stats().unexpected, 0);
    s.handle_timeout(secs(6));
    assert_eq!(one(&mut s, CLIENT), d2);
    s.handle_datagram(secs(7), CLIENT, &empty(Ack, m2));
    just(&mut s, Event::NotificationDelivered(id2));
    assert_eq!(s.tables().notifications, 0);
    let _ = finish(&mut s, secs(7));
}

#[test]
fn rfc7641_4_5_2_acknowledged_attempt_sends_the_newer_one_at_once() {
    // §4.5.2 step 4: the attempt was acknowledged: the newer notification
    // goes out at once with fresh transmission parameters. A Reset to the
    // superseded Message ID still rejects the observation (§4.5).
    let mut s = ep(cfg());
    s.notify(secs(0), CLIENT, TOK, true, &n(1)).unwrap();
    let m1 = parse(&one(&mut s, CLIENT)).message_id();
    s.handle_timeout(secs(2)); // a retransmission: timeout now 4 s
    let _ = one(&mut s, CLIENT);
    let id2 = s.notify(ms(2500), CLIENT, TOK, true, &n(2)).unwrap();
    s.handle_datagram(secs(3), CLIENT, &empty(Ack, m1));
    let d2 = one(&mut s, CLIENT);
    assert_eq!(observe_of(&d2), Some(2));
    no_events(&mut s);
    assert_eq!(s.poll_timeout(), Some(secs(5)), "fresh: ACK_TIMEOUT again");
    s.handle_datagram(secs(4), CLIENT, &empty(Rst, m1));
    just(&mut s, Event::NotificationRejected(id2));
    assert_eq!(s.tables().notifications, 0);
    let _ = finish(&mut s, secs(4));
}

#[test]
fn rfc7641_4_5_2_superseded_during_the_last_attempt_times_out() {
    // §4.5.2 step 2: when the superseded transmission was the last attempt,
    // the observation is over: NotificationTimedOut, nothing more sent.
    let mut s = ep(cfg());
    s.notify(secs(0), CLIENT, TOK, true, &n(1)).unwrap();
    let mut sent = vec![one(&mut s, CLIENT)];
    for t in [2, 6, 14, 30] {
        s.handle_timeout(secs(t));
        sent.push(one(&mut s, CLIENT));
    }
    assert_eq!(sent.len(), 5);
    let id2 = s.notify(secs(31), CLIENT, TOK, true, &n(2)).unwrap();
    silent(&mut s);
    assert_eq!(s.poll_timeout(), Some(secs(62)));
    s.handle_timeout(secs(62));
    silent(&mut s);
    just(&mut s, Event::NotificationTimedOut(id2));
    let _ = finish(&mut s, secs(62));
}

#[test]
fn rfc7641_4_5_reset_to_a_non_notification_is_recognized() {
    // §4.5: "If a client rejects a ... non-confirmable notification with a
    // Reset message ... the server MUST remove the associated entry"; the
    // endpoint keeps the last NON notification's Message ID (and the one
    // before) for NON_LIFETIME. A NON while a CON is in flight goes as CON.
    // (NON notifications 3 s apart, §4.5.1.)
    let mut s = ep(cfg());
    s.notify(secs(0), CLIENT, TOK, false, &n(1)).unwrap();
    let m1 = parse(&one(&mut s, CLIENT)).message_id();
    let id2 = s.notify(secs(3), CLIENT, TOK, false, &n(2)).unwrap();
    let d2 = one(&mut s, CLIENT);
    assert_eq!(parse(&d2).ty(), Non);
    s.handle_datagram(secs(4), CLIENT, &empty(Rst, m1));
    just(&mut s, Event::NotificationRejected(id2));
    assert_eq!(s.tables().notifications, 0);
    // CON in flight, then a NON: it supersedes as CON.
    s.notify(secs(6), CLIENT, TOK, true, &n(3)).unwrap();
    let _ = one(&mut s, CLIENT);
    let id4 = s.notify(secs(7), CLIENT, TOK, false, &n(4)).unwrap();
    s.handle_timeout(secs(8));
    let d4 = one(&mut s, CLIENT);
    assert_eq!((parse(&d4).ty(), observe_of(&d4)), (Con, Some(4)));
    s.handle_datagram(secs(8), CLIENT, &empty(Ack, parse(&d4).message_id()));
    just(&mut s, Event::NotificationDelivered(id4));
    // A remembered NON is forgotten after NON_LIFETIME (145 s).
    s.notify(secs(10), CLIENT, TOK, false, &n(5)).unwrap();
    let m5 = parse(&one(&mut s, CLIENT)).message_id();
    s.handle_timeout(secs(155));
    assert_eq!(s.tables().notifications, 0);
    s.handle_datagram(secs(156), CLIENT, &empty(Rst, m5));
    no_events(&mut s);
    let _ = finish(&mut s, secs(156));
}

#[test]
fn notification_table_is_bounded() {
    // Config::max_notifications: remembered NON notifications are forgotten
    // oldest first; CON ones are refused when nothing can go.
    let mut c = cfg();
    c.max_notifications = 2;
    let mut s = ep(c);
    s.notify(secs(0), Addr(10), TOK, false, &n(1)).unwrap();
    s.notify(secs(0), Addr(11), TOK, false, &n(1)).unwrap();
    s.notify(secs(0), Addr(12), TOK, true, &n(1)).unwrap();
    s.notify(secs(0), Addr(13), TOK, true, &n(1)).unwrap();
    assert_eq!(s.tables().notifications, 2);
    assert_eq!(
        s.notify(secs(0), Addr(14), TOK, true, &n(1)),
        Err(coap_proto::endpoint::Error::NoCapacity)
    );
    // A NON still goes out, unremembered.
    s.notify(secs(0), Addr(14), TOK, false, &n(1)).unwrap();
    assert_eq!(drain(&mut s).len(), 5);
    assert!(s.memory_usage() <= s.config().memory_bound());
    let (_, evs) = run_timers(&mut s);
    assert_eq!(evs.len(), 2, "two CON notifications timed out");
    let _ = finish(&mut s, secs(100));
}

// ----- cancellation (§3.6) ------------------------------------------------------

#[test]
fn rfc7641_3_6_passive_cancel_rejects_the_next_notification() {
    // §3.6: the client forgets the observation; the next notification
    // (NON here, CON below) gets a Reset, and the server removes the
    // observer (§4.5).
    for con in [false, true] {
        let sc = if con { con_server() } else { non_server() };
        let mut p = Pair::new(sc, None);
        let id = p.observe(secs(0), Con);
        p.change(secs(1), |a| a.value = 1);
        p.c.cancel_observe(secs(2), id, Deregister::Passive)
            .unwrap();
        assert_eq!(p.c.tables().requests, 0);
        assert!(p.sent_by(CLIENT, secs(2)).is_empty(), "nothing sent");
        // 3 s after the last NON notification (§4.5.1).
        p.change(secs(4), |a| a.value = 2);
        let n_bytes = p.sent_by(SERVER, secs(4))[0].bytes.clone();
        let n = parse(&n_bytes);
        assert_eq!(n.ty(), if con { Con } else { Non });
        assert_eq!(
            p.sent_by(CLIENT, secs(4))[0].bytes,
            empty(Rst, n.message_id())
        );
        assert_eq!(p.layer.observer_count(), 0);
        assert_eq!(p.payloads(), ["0", "1"]);
        p.finish(secs(4));
    }
}

#[test]
fn error_answer_to_a_registration_registers_nothing() {
    // RFC 7641 §4.1/§3.2: only a 2.xx answer with Observe registers; a
    // GET Observe:0 answered 4.04 ends the client's request like any.
    let mut p = Pair::new(ServerConfig::default(), None);
    p.app.deleted = true;
    let id = p.observe(secs(0), Con);
    let r_bytes = p.sent_by(SERVER, secs(0))[0].bytes.clone();
    let r = parse(&r_bytes);
    assert_eq!((r.code(), r.observe()), (Code::NOT_FOUND, None));
    assert!(matches!(&p.seen[..], [(_, Event::Response(x))] if x.id == id));
    assert_eq!(p.layer.observer_count(), 0);
    assert_eq!(p.c.tables().requests, 0);
    p.finish(secs(0));
}

// ----- Observe + Block2 (RFC 7959 §2.6) -------------------------------------------

#[test]
fn large_notifications_carry_the_first_block_with_etag() {
    // RFC 7959 §2.6: a notification of a large representation carries its
    // first block (Block2 NUM 0, M set) with an ETag; the client GETs the
    // rest with plain GETs (TD_COAP_OBS_13 in spirit).
    let mut server: Server<Addr, Vec<u8>> = Server::new(ServerConfig::default());
    let big = server
        .add(
            Resource::new("/big")
                .observable()
                .get(|body: &mut Vec<u8>, _| Reply::content(TEXT, body.clone())),
        )
        .unwrap();
    let mut s = ep(cfg());
    let mut body = vec![b'a'; 3000];
    let v0 = coap_proto::encode_uint(0);
    s.handle_datagram(
        secs(0),
        CLIENT,
        &msg(
            Con,
            Code::GET,
            1,
            TOK,
            &[
                (OptionNumber::OBSERVE, &v0),
                (OptionNumber::URI_PATH, b"big"),
            ],
            b"",
        ),
    );
    let req = take_request(&mut s);
    server.handle(&mut s, secs(0), req, &mut body);
    let first = parse(&one(&mut s, CLIENT))
        .block2()
        .map(|b| (b.num(), b.more()));
    assert_eq!(first, Some((0, true)));
    body = vec![b'b'; 3000];
    assert_eq!(server.notify_changed(&mut s, secs(1), big, &mut body), 1);
    let d = one(&mut s, CLIENT);
    let m = parse(&d);
    assert_eq!(m.observe(), Some(Observe(2)));
    assert_eq!(
        m.block2().map(|b| (b.num(), b.more(), b.size())),
        Some((0, true, 1024))
    );
    assert!(m.option(OptionNumber::ETAG).is_some());
    assert_eq!(m.payload(), &[b'b'; 1024][..]);
    // The rest: a plain GET for block 1 (no Observe) from the layer.
    let b1 = coap_proto::encode_uint(0x16); // NUM 1, SZX 6
    s.handle_datagram(
        secs(2),
        CLIENT,
        &msg(
            Con,
            Code::GET,
            2,
            &[9],
            &[
                (OptionNumber::URI_PATH, b"big"),
                (OptionNumber::BLOCK2, &b1),
            ],
            b"",
        ),
    );
    let req = take_request(&mut s);
    server.handle(&mut s, secs(2), req, &mut body);
    let r = one(&mut s, CLIENT);
    let r = parse(&r);
    assert_eq!(
        (r.observe(), r.block2().map(coap_proto::Block::num)),
        (None, Some(1))
    );
    assert_eq!(r.option(OptionNumber::ETAG), m.option(OptionNumber::ETAG));
    // Clean up: the client deregisters.
    let v1 = coap_proto::encode_uint(1);
    s.handle_datagram(
        secs(3),
        CLIENT,
        &msg(
            Con,
            Code::GET,
            3,
            TOK,
            &[
                (OptionNumber::OBSERVE, &v1),
                (OptionNumber::URI_PATH, b"big"),
            ],
            b"",
        ),
    );
    let req = take_request(&mut s);
    server.handle(&mut s, secs(3), req, &mut body);
    let _ = one(&mut s, CLIENT);
    assert_eq!(server.observer_count(), 0);
    let _ = finish(&mut s, secs(3));
}

// ----- bounds ---------------------------------------------------------------------

#[test]
fn flood_of_100k_spoofed_registrations_stays_bounded() {
    // 100 000 GET Observe:0 from distinct (spoofed) addresses: the list of
    // observers stays within ServerConfig::max_observers and its memory
    // bound, registrations beyond it are served without Observe (§4.1),
    // the endpoint within Config::memory_bound. Then the spoofed observers
    // are removed by the CON notifications they never acknowledge (§4.5).
    let sc = ServerConfig::default();
    let (mut layer, obs) = layer(sc, None);
    let mut app = App::new();
    let mut s = ep(cfg());
    let bound = s.config().memory_bound();
    let v0 = coap_proto::encode_uint(0);
    let mut with_observe = 0;
    for i in 0..100_000u32 {
        let from = Addr(0x1000 + i);
        s.handle_datagram(
            secs(0),
            from,
            &msg(
                Con,
                Code::GET,
                i as u16,
                &i.to_be_bytes(),
                &[
                    (OptionNumber::OBSERVE, &v0),
                    (OptionNumber::URI_PATH, b"obs"),
                ],
                b"",
            ),
        );
        while let Some(e) = s.poll_event() {
            assert!(layer.handle_event(&mut s, secs(0), e, &mut app).is_none());
        }
        for (_, d) in drain(&mut s) {
            if parse(&d).observe().is_some() {
                with_observe += 1;
            }
        }
        if i % 997 == 0 {
            assert!(layer.observer_count() <= sc.max_observers);
            assert!(layer.observer_memory() <= sc.observer_memory_bound());
            assert!(s.memory_usage() <= bound);
        }
    }
    assert_eq!(with_observe, sc.max_observers);
    assert_eq!(layer.observer_count(), sc.max_observers);
    assert_eq!(layer.stats().observe_refused, 100_000 - 1024);
    assert!(layer.observer_memory() <= sc.observer_memory_bound());
    eprintln!(
        "1024 observers: {} bytes charged (bound {}), endpoint {} of {}",
        layer.observer_memory(),
        sc.observer_memory_bound(),
        s.memory_usage(),
        bound
    );
    // Notify until every spoofed observer is gone: NON, then every tenth
    // CON, which times out (at most max_notifications at a time).
    let mut t = secs(1);
    for round in 0..200 {
        if layer.observer_count() == 0 {
            break;
        }
        assert!(round < 199, "observers never removed");
        app.value += 1;
        layer.notify_changed(&mut s, t, obs, &mut app);
        let _ = drain(&mut s);
        assert!(s.tables().notifications <= s.config().max_notifications);
        assert!(s.memory_usage() <= bound);
        // 100 s: every CON notification sent has timed out.
        while let Some(at) = s
            .poll_timeout()
            .filter(|at| *at <= t + Duration::from_secs(100))
        {
            s.handle_timeout(at);
            let _ = drain(&mut s);
            while let Some(e) = s.poll_event() {
                assert!(layer.handle_event(&mut s, at, e, &mut app).is_none());
            }
            assert!(s.memory_usage() <= bound);
        }
        t += Duration::from_secs(100);
    }
    assert_eq!(layer.observer_count(), 0);
    assert_eq!(layer.observer_memory(), 0);
    let _ = finish(&mut s, t);
}

#[test]
#[allow(clippy::too_many_lines)] // two measurements with their set-up
fn bytes_per_observer() {
    // OBSERVER_BYTES covers the heap the resource layer holds per observer
    // (SocketAddr, the largest common address; registered in scrambled
    // order; with the id of its latest notification), and
    // NOTIFICATION_BYTES the endpoint's per remembered notification;
    // measured with the counting allocator. Endpoints are dropped before
    // the layer is measured, and the endpoint is measured on a second
    // round, so that reused capacity (queues, pools) is not counted.
    use coap_proto::endpoint::{GATE_BYTES, NOTIFICATION_BYTES};
    use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
    fn addr(i: u32) -> SocketAddr {
        let x = i.wrapping_mul(2_654_435_761) & 0x000f_ffff; // a bijection on 20 bits
        SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, (x >> 16) as u16, x as u16),
            5683,
            0,
            0,
        ))
    }
    fn register(
        s: &mut Endpoint<SocketAddr>,
        server: &mut Server<SocketAddr, u32>,
        value: &mut u32,
        range: std::ops::Range<u32>,
        t: Instant,
    ) {
        let v0 = coap_proto::encode_uint(0);
        for i in range {
            let token = i.wrapping_mul(0x9e37_79b9).to_be_bytes();
            let d = msg(
                Non,
                Code::GET,
                i as u16,
                &token,
                &[
                    (OptionNumber::OBSERVE, &v0),
                    (OptionNumber::URI_PATH, b"obs"),
                ],
                b"",
            );
            s.handle_datagram(t, addr(i), &d);
            while let Some(e) = s.poll_event() {
                assert!(server.handle_event(s, t, e, value).is_none());
            }
            let _ = drain(s);
        }
    }
    /// Runs every timer up to `t` (expiry works in bounded batches).
    fn expire(s: &mut Endpoint<SocketAddr>, t: Instant) {
        while let Some(at) = s.poll_timeout().filter(|at| *at <= t) {
            s.handle_timeout(at);
        }
        assert!(s.tables().is_empty(), "{:?}", s.tables());
    }
    const N: u32 = 2000;
    let mut sc = ServerConfig::default();
    sc.max_observers = 10_000;
    let mut server: Server<SocketAddr, u32> = Server::new(sc);
    let obs = server
        .add(
            Resource::new("/obs")
                .observable()
                .get(|v: &mut u32, _| Reply::content(TEXT, v.to_string())),
        )
        .unwrap();
    let mut c = Config::default();
    c.max_notifications = 10_000;
    c.max_transmit_queue = 10_000;
    // Peer entries (PEER_BYTES each, RFC 7252 §4.4 MID history) are not
    // what is measured here: answers use the shared MID spaces.
    c.max_peers = 0;
    // One client per observer: each gets notification congestion state
    // (RFC 7641 §4.5.1, GATE_BYTES).
    c.max_notification_clients = 10_000;
    let mut value = 0u32;
    // The layer: N observers (warm-up), then N more, each notified once.
    {
        let mut e: Endpoint<SocketAddr> = Endpoint::new(c, 1);
        register(&mut e, &mut server, &mut value, 0..N, secs(0));
        server.notify_changed(&mut e, secs(1), obs, &mut value);
        let _ = drain(&mut e);
    }
    let base = live();
    let charged = server.observer_memory();
    {
        let mut e: Endpoint<SocketAddr> = Endpoint::new(c, 2);
        register(&mut e, &mut server, &mut value, N..2 * N, secs(2));
        value += 1;
        let sent = server.notify_changed(&mut e, secs(3), obs, &mut value);
        assert_eq!(sent, 2 * N as usize);
        let _ = drain(&mut e);
    }
    let heap = live() - base;
    let charged = server.observer_memory() - charged;
    let request = 14; // NON GET, 4-byte token, Observe, Uri-Path "obs"
    let per = heap / N as isize - request;
    eprintln!(
        "bytes per observer: {per} measured + {request} request, {} charged (OBSERVER_BYTES {OBSERVER_BYTES})",
        charged / N as usize
    );
    assert!(per <= OBSERVER_BYTES as isize, "observer {per}");
    assert!(heap <= charged as isize, "the charge covers the heap");
    // The endpoint: one remembered NON notification per observer, on the
    // second round.
    let mut s: Endpoint<SocketAddr> = Endpoint::new(c, 3);
    value += 1;
    assert_eq!(
        server.notify_changed(&mut s, secs(4000), obs, &mut value),
        2 * N as usize
    );
    let _ = drain(&mut s);
    expire(&mut s, secs(5000));
    let base = live();
    value += 1;
    assert_eq!(
        server.notify_changed(&mut s, secs(6000), obs, &mut value),
        2 * N as usize
    );
    let sent = drain(&mut s);
    let per_notification = (live()
        - base
        - (sent.capacity() * 56) as isize
        - sent.iter().map(|d| d.1.capacity() as isize).sum::<isize>())
        / (2 * N) as isize;
    eprintln!(
        "bytes per remembered NON notification to its own client, with the client's \
         congestion state: {per_notification} (NOTIFICATION_BYTES {NOTIFICATION_BYTES} + \
         GATE_BYTES {GATE_BYTES})"
    );
    assert!(per_notification <= (NOTIFICATION_BYTES + GATE_BYTES) as isize);
    assert!(s.memory_usage() <= s.config().memory_bound());
    // Clean up: every observer rejects its notification (§4.5).
    for (to, d) in sent {
        s.handle_datagram(secs(6001), to, &empty(Rst, parse(&d).message_id()));
        while let Some(e) = s.poll_event() {
            assert!(
                server
                    .handle_event(&mut s, secs(6001), e, &mut value)
                    .is_none()
            );
        }
    }
    assert_eq!(server.observer_count(), 0);
    assert_eq!(server.observer_memory(), 0);
    expire(&mut s, secs(7000));
}

#[test]
fn bytes_per_client_observation() {
    // An open observation costs what any request costs (EXCHANGE_BYTES
    // plus the retained request, Config::max_requests): the observation
    // state is kept apart from other requests but within that budget.
    use coap_proto::endpoint::EXCHANGE_BYTES;
    use std::net::{Ipv6Addr, SocketAddr};
    const N: u32 = 1000;
    let server: SocketAddr = (Ipv6Addr::LOCALHOST, 5683).into();
    let mut c = Config::default();
    c.max_requests = 5000;
    c.transmission.nstart = 5000;
    c.transmission.probing_rate = u32::MAX;
    let msg_size = c.max_message_size as isize;
    let run = |n: u32| -> isize {
        let base = live();
        let mut e: Endpoint<SocketAddr> = Endpoint::new(c, 7);
        let mut ids = Vec::with_capacity(n as usize);
        let ids_bytes = (ids.capacity() * 8) as isize;
        for _ in 0..n {
            ids.push(e.observe(secs(0), server, &get(Con, "obs")).unwrap());
        }
        let v = coap_proto::encode_uint(1);
        for (_, d) in drain(&mut e) {
            let m = parse(&d);
            e.handle_datagram(
                secs(0),
                server,
                &msg(
                    Ack,
                    Code::CONTENT,
                    m.message_id(),
                    m.token(),
                    &[(OptionNumber::OBSERVE, &v)],
                    b"",
                ),
            );
            while let Some(ev) = e.poll_event() {
                if let Event::Notification(r) = ev {
                    e.recycle(r.message.into_bytes());
                }
            }
        }
        assert_eq!(e.tables().requests, n as usize);
        let heap = live() - base - ids_bytes;
        for id in ids {
            e.cancel_observe(secs(1), id, Deregister::Passive).unwrap();
        }
        let _ = finish(&mut e, secs(1));
        heap
    };
    let per = run(N) / N as isize - msg_size;
    eprintln!("bytes per client observation: {per} (EXCHANGE_BYTES {EXCHANGE_BYTES})");
    assert!(per <= EXCHANGE_BYTES as isize, "observation {per}");
}

// ----- congestion control per client (RFC 7641 §4.5.1) ----------------------------

const TOK_B: &[u8] = &[0xb1];

#[test]
fn rfc7641_4_5_1_nstart_1_across_two_observations_of_one_client() {
    // RFC 7641 §4.5.1: "a server MUST NOT have more notifications/responses
    // outstanding to a given client than NSTART" (1): a CON notification
    // is outstanding until acknowledged or timed out, whatever observation
    // it belongs to. The second observation's notification waits, and goes
    // out the instant the slot frees: on the ACK, then on the timeout.
    let mut s = ep(cfg());
    let a1 = s.notify(secs(0), CLIENT, TOK, true, &n(1)).unwrap();
    let d1 = one(&mut s, CLIENT);
    let b1 = s.notify(ms(500), CLIENT, TOK_B, true, &n(10)).unwrap();
    silent(&mut s);
    assert_eq!(s.stats().notifications_paced, 1);
    assert_eq!(s.tables().notifications, 2);
    assert_eq!(s.poll_timeout(), Some(secs(2)), "only A's retransmission");
    // A acknowledged at 1 s: B goes at once, with its own token.
    s.handle_datagram(secs(1), CLIENT, &empty(Ack, parse(&d1).message_id()));
    just(&mut s, Event::NotificationDelivered(a1));
    let d2 = one(&mut s, CLIENT);
    assert_eq!(
        (parse(&d2).ty(), parse(&d2).token(), observe_of(&d2)),
        (Con, TOK_B, Some(10))
    );
    // A changes again while B is outstanding: it waits for B.
    let a2 = s.notify(ms(1500), CLIENT, TOK, true, &n(2)).unwrap();
    silent(&mut s);
    // B is never acknowledged: retransmitted at 3, 7, 15, 31 s (ACK_TIMEOUT
    // 2 s doubling), times out at 63 s, and A goes out then.
    let (sent, evs) = run_until(&mut s, secs(63));
    let at: Vec<(Instant, Option<u32>)> =
        sent.iter().map(|(t, _, d)| (*t, observe_of(d))).collect();
    assert_eq!(
        at,
        [
            (secs(3), Some(10)),
            (secs(7), Some(10)),
            (secs(15), Some(10)),
            (secs(31), Some(10)),
            (secs(63), Some(2)),
        ]
    );
    assert_eq!(
        format!("{evs:?}"),
        format!(
            "{:?}",
            [(secs(63), Event::<Addr>::NotificationTimedOut(b1))]
        )
    );
    let last = &sent[4].2;
    s.handle_datagram(secs(64), CLIENT, &empty(Ack, parse(last).message_id()));
    just(&mut s, Event::NotificationDelivered(a2));
    assert_eq!(s.tables().notification_clients, 0);
    let _ = finish(&mut s, secs(64));
}

#[test]
fn rfc7641_4_5_1_waiting_con_that_cannot_be_sent_still_gets_an_outcome() {
    // A CON notification that waited for the client's slot (§4.5.1) and
    // then finds no Message ID left (RFC 7252 §4.4: all 65536 used towards
    // this client within EXCHANGE_LIFETIME) is reported as timed out: the
    // caller holds its id and `notify` promises every CON an outcome.
    let mut s = ep(cfg());
    let a1 = s.notify(secs(0), CLIENT, TOK, true, &n(1)).unwrap();
    let d1 = one(&mut s, CLIENT);
    let b1 = s.notify(ms(500), CLIENT, TOK_B, true, &n(10)).unwrap();
    silent(&mut s);
    // Requests to the same client use up its Message IDs.
    let mut i = 0u64;
    loop {
        let now = ms(600) + Duration::from_micros(i);
        match s.request(now, CLIENT, &get(Non, "")) {
            Ok(_) => {
                let req = one(&mut s, CLIENT);
                s.handle_datagram(now, CLIENT, &reply_to(&req, Non, Code::CONTENT, b""));
                drop(events(&mut s));
            }
            Err(e) => {
                assert_eq!(e, coap_proto::endpoint::Error::MessageIdsExhausted);
                break;
            }
        }
        i += 1;
        assert!(i <= 70_000, "the Message IDs never ran out");
    }
    let dropped = s.stats().notifications_dropped;
    s.handle_datagram(secs(1), CLIENT, &empty(Ack, parse(&d1).message_id()));
    assert_eq!(
        format!("{:?}", events(&mut s)),
        format!(
            "{:?}",
            [
                Event::<Addr>::NotificationDelivered(a1),
                Event::<Addr>::NotificationTimedOut(b1)
            ]
        )
    );
    silent(&mut s);
    assert_eq!(s.stats().notifications_dropped, dropped + 1);
    assert_eq!(s.tables().notifications, 0);
}

/// Runs `s`'s timers up to `t` (inclusive), collecting what it sends and
/// reports.
fn run_until(s: &mut Ep, t: Instant) -> (common::Sent<Addr>, Reported<Addr>) {
    let mut sent = Vec::new();
    let mut evs = Vec::new();
    while let Some(at) = s.poll_timeout().filter(|at| *at <= t) {
        s.handle_timeout(at);
        for (to, d) in drain(s) {
            sent.push((at, to, d));
        }
        for e in events(s) {
            evs.push((at, e));
        }
    }
    (sent, evs)
}

#[test]
fn rfc7641_4_5_1_non_notifications_paced_at_3_s_by_default() {
    // RFC 7641 §4.5.1: without an RTT estimate, "not more than one
    // non-confirmable notification every 3 seconds" to a client; a NON
    // notification is outstanding until then. The deadline shows in
    // poll_timeout.
    assert_eq!(Config::default().non_notification_interval_ms, 3000);
    let mut s = ep(cfg());
    s.notify(secs(0), CLIENT, TOK, false, &n(1)).unwrap();
    let _ = one(&mut s, CLIENT);
    s.notify(secs(1), CLIENT, TOK_B, false, &n(2)).unwrap();
    silent(&mut s);
    assert_eq!(s.poll_timeout(), Some(secs(3)));
    s.handle_timeout(ms(2999));
    silent(&mut s);
    s.handle_timeout(secs(3));
    let d = one(&mut s, CLIENT);
    assert_eq!((parse(&d).ty(), parse(&d).token()), (Non, TOK_B));
    // The next one waits until 6 s.
    s.notify(secs(4), CLIENT, TOK, false, &n(3)).unwrap();
    silent(&mut s);
    let (sent, _) = run_until(&mut s, secs(10));
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].0, observe_of(&sent[0].2)), (secs(6), Some(3)));
    let _ = finish(&mut s, secs(6));

    // Configurable: a known RTT of 200 ms.
    let mut c = cfg();
    c.non_notification_interval_ms = 200;
    let mut s = ep(c);
    s.notify(secs(0), CLIENT, TOK, false, &n(1)).unwrap();
    let _ = one(&mut s, CLIENT);
    s.notify(ms(50), CLIENT, TOK, false, &n(2)).unwrap();
    silent(&mut s);
    let (sent, _) = run_until(&mut s, secs(1));
    let at: Vec<Instant> = sent.iter().map(|x| x.0).collect();
    assert_eq!(at, [ms(200)]);
    let _ = finish(&mut s, ms(200));
}

#[test]
fn rfc7641_4_5_1_newest_state_wins_when_paced() {
    // While the client's slot is taken, only the newest notification of
    // each observation is kept (a notification is the resource's state;
    // §4.5.1 lets the server skip intermediate states): through the layer,
    // changes at 1 s, 1.5 s and 2 s give notifications at 1 s ("1") and
    // 4 s ("3"), with the sequence number of the last change.
    let mut p = Pair::new(non_server(), None);
    let id = p.observe(secs(0), Con);
    p.change(secs(1), |a| a.value = 1);
    p.change(ms(1500), |a| a.value = 2);
    p.change(secs(2), |a| a.value = 3);
    p.run_until(secs(5));
    let notes: Vec<(Instant, String)> = p.notes().into_iter().map(|n| (n.0, n.2)).collect();
    assert_eq!(
        notes,
        [
            (secs(0), "0".to_string()),
            (secs(1), "1".to_string()),
            (secs(4), "3".to_string())
        ]
    );
    assert_eq!(p.notes()[2].1, 4, "Observe of the third change");
    assert_eq!(p.s.stats().notifications_paced, 1);
    assert_eq!(p.s.stats().notifications_replaced, 1);
    p.c.cancel_observe(secs(5), id, Deregister::Active).unwrap();
    p.pump(secs(5));
    p.finish(secs(5));
}

#[test]
fn rfc7641_4_5_1_different_clients_do_not_pace_each_other() {
    // The limit is per client: CLIENT's outstanding notifications do not
    // hold back OTHER's.
    let mut s = ep(cfg());
    s.notify(secs(0), CLIENT, TOK, true, &n(1)).unwrap();
    s.notify(secs(0), OTHER, TOK, false, &n(1)).unwrap();
    let d = drain(&mut s);
    assert_eq!(d.iter().map(|x| x.0).collect::<Vec<_>>(), [CLIENT, OTHER]);
    s.notify(secs(1), CLIENT, TOK_B, false, &n(2)).unwrap();
    silent(&mut s);
    s.notify(secs(1), Addr(4), TOK, false, &n(2)).unwrap();
    let _ = one(&mut s, Addr(4));
    assert_eq!(s.tables().notification_clients, 3);
    // CLIENT's CON acknowledged: its waiting NON goes.
    s.handle_datagram(secs(2), CLIENT, &empty(Ack, parse(&d[0].1).message_id()));
    let _ = events(&mut s);
    assert_eq!(parse(&one(&mut s, CLIENT)).token(), TOK_B);
    let _ = finish(&mut s, secs(2));
}

#[test]
fn rfc7641_4_5_1_timeouts_and_resets_still_remove_observers() {
    // Through the layer, one client with two observations and CON
    // notifications: the second waits for the first; the first times out
    // (§4.5: observer removed) and the second goes then; a Reset to it
    // removes the second observer too.
    let (mut layer, obs) = layer(con_server(), None);
    let mut app = App::new();
    let mut s = ep(cfg());
    let v0 = coap_proto::encode_uint(0);
    for (mid, tok) in [(1u16, TOK), (2, TOK_B)] {
        s.handle_datagram(
            secs(0),
            CLIENT,
            &msg(
                Non,
                Code::GET,
                mid,
                tok,
                &[
                    (OptionNumber::OBSERVE, &v0),
                    (OptionNumber::URI_PATH, b"obs"),
                ],
                b"",
            ),
        );
        while let Some(e) = s.poll_event() {
            assert!(layer.handle_event(&mut s, secs(0), e, &mut app).is_none());
        }
    }
    assert_eq!(drain(&mut s).len(), 2, "the two registration answers");
    assert_eq!(layer.observer_count(), 2);
    app.value = 1;
    assert_eq!(layer.notify_changed(&mut s, secs(1), obs, &mut app), 2);
    // (The layer notifies its observers in token order: TOK_B first.)
    let first = one(&mut s, CLIENT);
    assert_eq!(parse(&first).token(), TOK_B);
    // Never acknowledged: 3, 7, 15, 31 s, timed out at 63 s.
    let mut sent = Vec::new();
    while let Some(at) = s.poll_timeout().filter(|at| *at <= secs(63)) {
        s.handle_timeout(at);
        for (_, d) in drain(&mut s) {
            sent.push((at, parse(&d).token().to_vec(), parse(&d).message_id()));
        }
        while let Some(e) = s.poll_event() {
            assert!(layer.handle_event(&mut s, at, e, &mut app).is_none());
        }
    }
    let at: Vec<(Instant, Vec<u8>)> = sent.iter().map(|x| (x.0, x.1.clone())).collect();
    assert_eq!(
        at,
        [
            (secs(3), TOK_B.to_vec()),
            (secs(7), TOK_B.to_vec()),
            (secs(15), TOK_B.to_vec()),
            (secs(31), TOK_B.to_vec()),
            (secs(63), TOK.to_vec()),
        ]
    );
    assert_eq!(layer.observer_count(), 1);
    // §4.5: the client rejects the second one.
    s.handle_datagram(secs(64), CLIENT, &empty(Rst, sent[4].2));
    while let Some(e) = s.poll_event() {
        assert!(layer.handle_event(&mut s, secs(64), e, &mut app).is_none());
    }
    assert_eq!(layer.observer_count(), 0);
    assert_eq!(layer.stats().observers_removed, 2);
    let _ = finish(&mut s, secs(64));
}

#[test]
fn rfc7641_4_5_1_client_table_is_bounded_and_cancel_drops_waiting() {
    // Config::max_notification_clients: a client beyond it cannot be paced,
    // so notify refuses (NoCapacity) until a client's state goes (its NON
    // waiting time ends). cancel_notification drops a waiting notification.
    let mut c = cfg();
    c.max_notification_clients = 1;
    let mut s = ep(c);
    s.notify(secs(0), CLIENT, TOK, false, &n(1)).unwrap();
    let _ = one(&mut s, CLIENT);
    assert_eq!(
        s.notify(secs(0), OTHER, TOK, false, &n(1)),
        Err(coap_proto::endpoint::Error::NoCapacity)
    );
    s.notify(secs(1), CLIENT, TOK, false, &n(2)).unwrap();
    assert!(s.cancel_notification(secs(2), CLIENT, TOK));
    assert_eq!(s.tables().notifications, 0);
    assert!(s.memory_usage() <= s.config().memory_bound());
    let (sent, _) = run_until(&mut s, secs(3));
    assert!(sent.is_empty(), "the cancelled notification never goes");
    assert_eq!(s.tables().notification_clients, 0);
    s.notify(secs(3), OTHER, TOK, false, &n(1)).unwrap();
    let _ = one(&mut s, OTHER);
    let _ = finish(&mut s, secs(3));
}

#[test]
fn unpaced_non_notifications_do_not_need_a_client_slot() {
    // With NON pacing off (non_notification_interval_ms 0) a NON
    // notification keeps no congestion state, so a full client table does
    // not refuse it; a CON one still needs its slot.
    let mut c = cfg();
    c.max_notification_clients = 1;
    c.non_notification_interval_ms = 0;
    let mut s = ep(c);
    let a = s.notify(secs(0), CLIENT, TOK, true, &n(1)).unwrap();
    let d = one(&mut s, CLIENT);
    assert_eq!(s.tables().notification_clients, 1);
    s.notify(secs(0), OTHER, TOK, false, &n(1)).unwrap();
    let _ = one(&mut s, OTHER);
    assert_eq!(s.tables().notification_clients, 1);
    assert_eq!(
        s.notify(secs(0), OTHER, TOK_B, true, &n(1)),
        Err(coap_proto::endpoint::Error::NoCapacity)
    );
    s.handle_datagram(secs(1), CLIENT, &empty(Ack, parse(&d).message_id()));
    just(&mut s, Event::NotificationDelivered(a));
    let _ = finish(&mut s, secs(1));
}

#[test]
fn rfc7641_4_5_1_waiting_con_replaced_by_non_stays_con() {
    // A waiting CON notification (the layer's periodic CON, §4.5) replaced
    // by a newer NON one of the same observation goes out as CON with the
    // newer state: the client still gets its CON check.
    let mut s = ep(cfg());
    s.notify(secs(0), CLIENT, TOK, false, &n(1)).unwrap();
    let _ = one(&mut s, CLIENT);
    s.notify(secs(1), CLIENT, TOK, true, &n(2)).unwrap();
    let id3 = s.notify(secs(2), CLIENT, TOK, false, &n(3)).unwrap();
    silent(&mut s);
    assert_eq!(s.stats().notifications_replaced, 1);
    let (sent, _) = run_until(&mut s, secs(3));
    assert_eq!(sent.len(), 1);
    let d = &sent[0].2;
    assert_eq!(
        (sent[0].0, parse(d).ty(), observe_of(d)),
        (secs(3), Con, Some(3))
    );
    s.handle_datagram(secs(4), CLIENT, &empty(Ack, parse(d).message_id()));
    just(&mut s, Event::NotificationDelivered(id3));
    let _ = finish(&mut s, secs(4));
}

#[test]
fn rfc7641_4_5_1_waiting_observations_are_not_starved() {
    // One client, two observations, CON notifications. A changes again
    // while its CON is in flight (§4.5.2: the newer one supersedes it) and
    // B waits for the slot (§4.5.1). When A's attempt is acknowledged, B
    // (which waited longer) goes first; A's newer one follows B's ACK.
    let mut s = ep(cfg());
    s.notify(secs(0), CLIENT, TOK, true, &n(1)).unwrap();
    let a1 = one(&mut s, CLIENT);
    let b = s.notify(ms(100), CLIENT, TOK_B, true, &n(10)).unwrap();
    let a2 = s.notify(ms(200), CLIENT, TOK, true, &n(2)).unwrap();
    silent(&mut s);
    s.handle_datagram(secs(1), CLIENT, &empty(Ack, parse(&a1).message_id()));
    no_events(&mut s);
    let d = one(&mut s, CLIENT);
    assert_eq!((parse(&d).token(), observe_of(&d)), (TOK_B, Some(10)));
    s.handle_datagram(ms(1500), CLIENT, &empty(Ack, parse(&d).message_id()));
    just(&mut s, Event::NotificationDelivered(b));
    let d = one(&mut s, CLIENT);
    assert_eq!(
        (parse(&d).ty(), parse(&d).token(), observe_of(&d)),
        (Con, TOK, Some(2))
    );
    s.handle_datagram(secs(2), CLIENT, &empty(Ack, parse(&d).message_id()));
    just(&mut s, Event::NotificationDelivered(a2));
    let _ = finish(&mut s, secs(2));
}
