//! A notification stream (RFC 7641) through the seeded lossy network
//! simulator (`coap_proto::_internal::sim`): 30% loss, 10% duplication and
//! 30% reordering in each direction, across many seeds. A server endpoint
//! under the resource layer changes /obs every second for a minute and
//! notifies; a client observes it (and observes again whenever an
//! observation ends, as an application would).
//!
//! Checked for every seed:
//! - the client never delivers an older notification after a newer one
//!   (RFC 7641 §3.4: the values only go up);
//! - with CON notifications the last value always arrives (§4.5: "the
//!   server MUST ensure that a client in the list of observers of a
//!   resource eventually observes the latest state"; a CON notification
//!   that times out removes the observer, and then the client's
//!   re-registration after Max-Age, §3.3.1, brings it);
//! - the simulator's own invariants: table and memory bounds after every
//!   input, and no state left in either endpoint at the end, nor observers
//!   in the layer.
//!
//! A failing seed can be replayed alone:
//! `SIM_SEED=123 cargo test --features _internal --test sim_observe -- --nocapture`.
#![cfg(feature = "_internal")]

use std::cell::RefCell;
use std::rc::Rc;

use coap_proto::_internal::sim::{LinkParams, NodeId, Sim, SimAddr, derive_seed};
use coap_proto::endpoint::{Config, Deregister, Event, RequestId};
use coap_proto::server::{Reply, Resource, ResourceId, Server, ServerConfig};
use coap_proto::{Code, ContentFormat, Instant, MessageBuf, MessageType, OptionNumber};

const SERVER: SimAddr = SimAddr::host(2);
const CHANGES: u32 = 60;
/// Max-Age of the notifications: an observation without one for 10 s
/// (+ 5 to 15 s) registers again.
const MAX_AGE: u32 = 10;

struct ServerSide {
    server: Server<SimAddr, u32>,
    value: u32,
}

#[derive(Default)]
struct ClientSide {
    id: Option<RequestId>,
    /// Every delivered notification: instant, observation, value.
    delivered: Vec<(Instant, RequestId, u32)>,
    /// Observations started.
    started: u32,
}

/// Runs the resource layer `layer` (over the counter `value`) as the app of
/// node `server`; the test keeps the returned handle to change the value.
fn serve(sim: &mut Sim, server: NodeId, layer: Server<SimAddr, u32>) -> Rc<RefCell<ServerSide>> {
    let srv = Rc::new(RefCell::new(ServerSide {
        server: layer,
        value: 0,
    }));
    let app = Rc::clone(&srv);
    sim.set_app(
        server,
        Box::new(move |ep, now, ev| {
            let mut g = app.borrow_mut();
            let ServerSide { server, value } = &mut *g;
            if let Some(Event::Response(r) | Event::Notification(r)) =
                server.handle_event(ep, now, ev, value)
            {
                ep.recycle(r.message.into_bytes());
            }
        }),
    );
    srv
}

fn get_obs() -> MessageBuf {
    let mut m = MessageBuf::new(MessageType::Con, Code::GET);
    m.add_option(OptionNumber::URI_PATH, "obs");
    m
}

struct World {
    sim: Sim,
    server: NodeId,
    client: NodeId,
    srv: Rc<RefCell<ServerSide>>,
    cl: Rc<RefCell<ClientSide>>,
    obs: ResourceId,
}

fn world(seed: u64, con: bool) -> World {
    let mut sim = Sim::new(seed);
    sim.set_default_link(LinkParams::lossy(0.3, 0.1, 0.3, 0.0));
    sim.set_tracing(std::env::var("SIM_SEED").is_ok());
    let config = Config::default();
    let server = sim.add_node(SERVER, config, derive_seed(seed, 1));
    let client = sim.add_node(SimAddr::host(1), config, derive_seed(seed, 2));
    let mut sc = ServerConfig::default();
    sc.notify_con = con;
    sc.notify_con_every = 3;
    let mut layer = Server::new(sc);
    let obs = layer
        .add(
            Resource::new("/obs")
                .observable()
                .max_age(MAX_AGE)
                .get(|v: &mut u32, _| Reply::content(ContentFormat::TEXT_PLAIN, v.to_string())),
        )
        .unwrap();
    let srv = serve(&mut sim, server, layer);
    let cl = Rc::new(RefCell::new(ClientSide::default()));
    {
        let cl = Rc::clone(&cl);
        sim.set_app(
            client,
            Box::new(move |ep, now, ev| {
                let mut c = cl.borrow_mut();
                let ended = match ev {
                    Event::Notification(r) => {
                        let v = std::str::from_utf8(r.message().payload())
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .expect("a number");
                        c.delivered.push((now, r.id, v));
                        ep.recycle(r.message.into_bytes());
                        None
                    }
                    Event::Response(r) => {
                        ep.recycle(r.message.into_bytes());
                        Some(r.id)
                    }
                    Event::TimedOut(id) | Event::Reset(id) => Some(id),
                    _ => None,
                };
                // The observation ended (not by us): observe again.
                if ended.is_some() && ended == c.id {
                    c.id = ep.observe(now, SERVER, &get_obs()).ok();
                    c.started += 1;
                }
            }),
        );
    }
    World {
        sim,
        server,
        client,
        srv,
        cl,
        obs,
    }
}

/// One run; returns a description of what went wrong, if anything.
fn run(seed: u64, con: bool) -> Result<(u32, usize), String> {
    let mut w = world(seed, con);
    let World {
        sim,
        server,
        client,
        srv,
        cl,
        obs,
    } = &mut w;
    let (server, client, obs) = (*server, *client, *obs);
    let id = sim.command(client, |ep, now| {
        ep.observe(now, SERVER, &get_obs()).unwrap()
    });
    cl.borrow_mut().id = Some(id);
    cl.borrow_mut().started = 1;
    for k in 1..=CHANGES {
        sim.run_until(Instant::from_secs(u64::from(k)));
        let srv = Rc::clone(srv);
        sim.command(server, move |ep, now| {
            let mut g = srv.borrow_mut();
            let ServerSide { server, value } = &mut *g;
            *value = k;
            server.notify_changed(ep, now, obs, value)
        });
    }
    sim.run_until(Instant::from_secs(400));
    let delivered = cl.borrow().delivered.clone();
    // Never an older value after a newer one.
    for w in delivered.windows(2) {
        if w[1].2 < w[0].2 {
            return fail(
                sim,
                format!("value {} delivered after {}: {delivered:?}", w[1].2, w[0].2),
            );
        }
    }
    let last = delivered.last().map_or(0, |d| d.2);
    if con && last != CHANGES {
        return fail(
            sim,
            format!("last value {last}, not {CHANGES}: {delivered:?}"),
        );
    }
    // The end: deregister, then notify until the layer has no observer left
    // (a deregistration lost for good leaves one, which the next CON
    // notification removes: Reset or time-out).
    let id = cl.borrow_mut().id.take();
    if let Some(id) = id {
        sim.command(client, |ep, now| {
            ep.cancel_observe(now, id, Deregister::Active).unwrap();
        });
    }
    let mut t = 400;
    for _ in 0..50 {
        t += 100;
        sim.run_until(Instant::from_secs(t));
        if srv.borrow().server.observer_count() == 0 {
            break;
        }
        let srv = Rc::clone(srv);
        sim.command(server, move |ep, now| {
            let mut g = srv.borrow_mut();
            let ServerSide { server, value } = &mut *g;
            server.notify_changed(ep, now, obs, value)
        });
    }
    if srv.borrow().server.observer_count() != 0 {
        return fail(sim, "observers left in the layer".into());
    }
    let quiet = sim.quiet_period();
    sim.run_until(sim.now() + quiet);
    sim.check_no_leaks();
    if sim.violation_count() > 0 {
        let v = format!("{:#?}", sim.violations());
        return fail(sim, v);
    }
    Ok((last, delivered.len()))
}

/// With SIM_SEED set (tracing on), prints every delivered datagram first.
fn fail<T>(sim: &Sim, why: String) -> Result<T, String> {
    for t in sim.trace() {
        println!("{t}");
    }
    Err(why)
}

fn seeds() -> Vec<u64> {
    match std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(s) => vec![s],
        None => (0..100).collect(),
    }
}

fn check(con: bool) {
    let mut total = 0;
    for seed in seeds() {
        match run(seed, con) {
            Ok((_, n)) => total += n,
            Err(e) => panic!("seed {seed} (replay with SIM_SEED={seed}): {e}"),
        }
    }
    assert!(total > 0);
    eprintln!("{} seeds, {total} notifications delivered", seeds().len());
}

#[test]
fn con_notifications_in_order_and_the_last_value_arrives() {
    check(true);
}

#[test]
fn non_notifications_never_go_backwards() {
    check(false);
}

// ----- large notifications through the client layer (RFC 7959 §2.6) -------------
//
// The same stream, but every value is a 300-byte representation that goes
// in 64-byte blocks: each notification carries the first block, and the
// client layer (`coap_proto::client::Transfers::observe`) fetches the rest
// with plain GETs. Checked for every seed: a complete notification is never
// older than one delivered before it (RFC 7641 §3.4, also when a newer
// notification supersedes a completion in flight), every delivered body is
// byte-identical to the server's representation of its value (RFC 7959
// §2.6: the ETag ties the blocks), and with CON notifications the last
// value always arrives complete (RFC 7641 §4.5).

use coap_proto::client::{ClientConfig, ClientEvent, TransferId, Transfers};

const BIG: usize = 300;

/// The representation of value `v`: "v|" repeated to 300 bytes.
fn big_rep(v: u32) -> Vec<u8> {
    format!("{v}|").bytes().cycle().take(BIG).collect()
}

#[derive(Default)]
struct BigClient {
    id: Option<TransferId>,
    /// Every complete notification: instant and value.
    delivered: Vec<(Instant, u32)>,
    bad: Vec<String>,
}

// One scenario, read top to bottom: setup, the changes, the checks.
#[allow(clippy::too_many_lines)]
fn run_big(seed: u64, con: bool) -> Result<(u32, usize), String> {
    let mut sim = Sim::new(seed);
    sim.set_default_link(LinkParams::lossy(0.3, 0.1, 0.3, 0.0));
    sim.set_tracing(std::env::var("SIM_SEED").is_ok());
    let mut config = Config::default();
    // RFC 7252 §4.8 lets an application adjust PROBING_RATE; the block
    // GETs after a time-out would otherwise wait minutes each.
    config.transmission.probing_rate = 100;
    let server = sim.add_node(SERVER, config, derive_seed(seed, 1));
    let client = sim.add_node(SimAddr::host(1), config, derive_seed(seed, 2));
    let mut sc = ServerConfig::default();
    sc.notify_con = con;
    sc.notify_con_every = 3;
    sc.block2_szx = 2;
    let mut layer = Server::new(sc);
    let obs = layer
        .add(
            Resource::new("/obs")
                .observable()
                .max_age(MAX_AGE)
                .get(|v: &mut u32, _| Reply::content(ContentFormat::OCTET_STREAM, big_rep(*v))),
        )
        .unwrap();
    let srv = serve(&mut sim, server, layer);
    let cl = Rc::new(RefCell::new(BigClient::default()));
    let mut cc = ClientConfig::default();
    cc.block_retries = 8;
    let transfers = Rc::new(RefCell::new(Transfers::<SimAddr>::new(cc)));
    {
        let cl = Rc::clone(&cl);
        let transfers = Rc::clone(&transfers);
        sim.set_app(
            client,
            Box::new(move |ep, now, ev| {
                let mut c = cl.borrow_mut();
                let mut t = transfers.borrow_mut();
                let ended = match t.handle_event(ep, now, ev) {
                    Some(ClientEvent::Notification { id, message, .. }) => {
                        let p = message.payload();
                        let v: u32 = std::str::from_utf8(p)
                            .ok()
                            .and_then(|s| s.split('|').next())
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(u32::MAX);
                        if p != big_rep(v).as_slice() {
                            c.bad
                                .push(format!("at {now:?}: body of {v} differs: {p:?}"));
                        }
                        if Some(id) == c.id {
                            c.delivered.push((now, v));
                        }
                        None
                    }
                    Some(ClientEvent::Response { id, .. } | ClientEvent::Failed { id, .. }) => {
                        Some(id)
                    }
                    Some(ClientEvent::Endpoint(Event::Response(r) | Event::Notification(r))) => {
                        ep.recycle(r.message.into_bytes());
                        None
                    }
                    _ => None,
                };
                if ended.is_some() && ended == c.id {
                    c.id = t.observe(ep, now, SERVER, get_obs()).ok();
                }
            }),
        );
    }
    let id = {
        let transfers = Rc::clone(&transfers);
        sim.command(client, move |ep, now| {
            transfers
                .borrow_mut()
                .observe(ep, now, SERVER, get_obs())
                .unwrap()
        })
    };
    cl.borrow_mut().id = Some(id);
    for k in 1..=CHANGES {
        sim.run_until(Instant::from_secs(u64::from(k)));
        let srv = Rc::clone(&srv);
        sim.command(server, move |ep, now| {
            let mut g = srv.borrow_mut();
            let ServerSide { server, value } = &mut *g;
            *value = k;
            server.notify_changed(ep, now, obs, value)
        });
    }
    sim.run_until(Instant::from_secs(600));
    let delivered = cl.borrow().delivered.clone();
    if let Some(b) = cl.borrow().bad.first() {
        return fail(&sim, b.clone());
    }
    for w in delivered.windows(2) {
        if w[1].1 < w[0].1 {
            return fail(
                &sim,
                format!("value {} delivered after {}: {delivered:?}", w[1].1, w[0].1),
            );
        }
    }
    let last = delivered.last().map_or(0, |d| d.1);
    if con && last != CHANGES {
        return fail(
            &sim,
            format!("last value {last}, not {CHANGES}: {delivered:?}"),
        );
    }
    // The end: deregister, and notify until no observer is left.
    let id = cl.borrow_mut().id.take();
    if let Some(id) = id {
        let transfers = Rc::clone(&transfers);
        sim.command(client, move |ep, now| {
            let _ = transfers
                .borrow_mut()
                .cancel_observe(ep, now, id, Deregister::Active);
        });
    }
    let mut t = 600;
    for _ in 0..50 {
        t += 100;
        sim.run_until(Instant::from_secs(t));
        if srv.borrow().server.observer_count() == 0 {
            break;
        }
        let srv = Rc::clone(&srv);
        sim.command(server, move |ep, now| {
            let mut g = srv.borrow_mut();
            let ServerSide { server, value } = &mut *g;
            server.notify_changed(ep, now, obs, value)
        });
    }
    if srv.borrow().server.observer_count() != 0 {
        return fail(&sim, "observers left in the layer".into());
    }
    let quiet = sim.quiet_period();
    sim.run_until(sim.now() + quiet);
    if !transfers.borrow().is_empty() {
        return fail(
            &sim,
            format!("client layer not empty: {:?}", transfers.borrow()),
        );
    }
    sim.check_no_leaks();
    if sim.violation_count() > 0 {
        let v = format!("{:#?}", sim.violations());
        return fail(&sim, v);
    }
    Ok((last, delivered.len()))
}

fn check_big(con: bool) {
    let mut total = 0;
    for seed in seeds() {
        match run_big(seed, con) {
            Ok((_, n)) => total += n,
            Err(e) => panic!("seed {seed} (replay with SIM_SEED={seed}): {e}"),
        }
    }
    assert!(total > 0);
    eprintln!(
        "{} seeds, {total} complete large notifications",
        seeds().len()
    );
}

#[test]
fn large_con_notifications_complete_in_order_and_the_last_value_arrives() {
    check_big(true);
}

#[test]
fn large_non_notifications_complete_and_never_go_backwards() {
    check_big(false);
}
