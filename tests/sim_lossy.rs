//! Endpoints over the seeded lossy network simulator
//! (`coap_proto::_internal::sim`), checking the invariants of
//! RFC 7252 §4 (messaging), §4.5 (at-most-once delivery), §4.7 (NSTART),
//! §5.2 (response forms) and §8 / RFC 7390 (multicast) across many seeds.
//!
//! Every run checks, through the simulator:
//! - no request reaches a server application twice (§4.5);
//! - every client request ends in exactly one outcome no later than its
//!   deadline (MAX_TRANSMIT_WAIT, §4.8.2, from its first transmission; the
//!   separate-response or NON timeout; plus the NSTART/PROBING_RATE queueing
//!   bound of §4.7) — see the simulator's module docs for the exact bound;
//! - no table exceeds its `Config` bound, and `memory_usage()` stays under
//!   `memory_bound()`, after every input;
//! - once EXCHANGE_LIFETIME (plus the longest wait) has passed after the
//!   last datagram, every endpoint is empty and has no timer.
//!
//! A failing seed can be replayed alone, with its trace printed:
//! `SIM_SEED=123 cargo test --features _internal --test sim_lossy -- --nocapture`.
#![cfg(feature = "_internal")]

use core::time::Duration;

use coap_proto::_internal::sim::{
    LinkParams, NodeId, Outcome, ServerBehaviour, Sim, SimAddr, SimRng, Summary, Workload,
    derive_seed,
};
use coap_proto::Instant;
use coap_proto::endpoint::Config;

const SERVER: SimAddr = SimAddr::host(2);
const NAT_HOST: u16 = 100;
/// The rates the issue asks for: 30% loss, 10% duplication, 20% reordering,
/// 2% corruption, in each direction.
fn lossy() -> LinkParams {
    LinkParams::lossy(0.3, 0.1, 0.2, 0.02)
}

fn only_seed() -> Option<u64> {
    std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok())
}

fn fail(sim: &Sim, what: &str, seed: u64) -> ! {
    if only_seed().is_some() {
        for t in sim.trace() {
            println!("{t}");
        }
    }
    panic!(
        "{what} (seed {seed}; replay with SIM_SEED={seed}): {} violation(s): {:#?}\n{:#?}",
        sim.violation_count(),
        sim.violations()
            .get(..sim.violations().len().min(6))
            .unwrap_or_default(),
        sim.summary()
    );
}

fn assert_clean(sim: &Sim, s: &Summary, expected_requests: u64, what: &str, seed: u64) {
    let ok = sim.violation_count() == 0
        && s.requests == expected_requests
        && s.open == 0
        && s.responses + s.timeouts + s.resets + s.multicast_done == s.requests
        && s.delivered_twice == 0
        && s.leaked == 0;
    if !ok {
        fail(sim, what, seed);
    }
}

#[derive(Default)]
struct Totals {
    runs: u64,
    s: Summary,
    nat_runs: u64,
    nat_bindings: u64,
    con_requests: u64,
    con_responses: u64,
}

impl Totals {
    fn add(&mut self, s: &Summary) {
        self.runs += 1;
        let t = &mut self.s;
        t.requests += s.requests;
        t.responses += s.responses;
        t.timeouts += s.timeouts;
        t.resets += s.resets;
        t.delivered += s.delivered;
        t.net.sent += s.net.sent;
        t.net.lost += s.net.lost;
        t.net.duplicated += s.net.duplicated;
        t.net.reordered += s.net.reordered;
        t.net.corrupted += s.net.corrupted;
        t.net.nat_dropped += s.net.nat_dropped;
    }
}

/// One client and one server over a 30/10/20/2 % link, 20 requests per
/// seed. The seed also picks the server behaviour (piggybacked, separate
/// or mixed responses, §5.2), the CON/NON mix (§4.2, §4.3), the client's
/// concurrency (queued behind NSTART = 1, §4.7), and for a quarter of the
/// seeds puts the client behind a NAT with a short idle timeout.
fn lossy_pair(seed: u64) -> (Sim, Option<coap_proto::_internal::sim::NatId>) {
    let mut choice = SimRng::new(seed);
    let mut sim = Sim::new(seed);
    sim.set_tracing(only_seed().is_some());
    sim.set_default_link(lossy());
    let mut config = Config::default();
    if choice.chance(0.25) {
        // Separate responses as NON (§5.2.2 allows either).
        config.separate_response_con = false;
    }
    let server = sim.add_node(SERVER, config, derive_seed(seed, 1));
    let behaviour = match choice.below(3) {
        0 => ServerBehaviour::Piggyback,
        // Longer than separate_ack_delay: empty ACK, then a separate CON
        // response retransmitted until ACKed (§5.2.2).
        1 => ServerBehaviour::Delayed(Duration::from_millis(1500 + choice.below(3000))),
        _ => ServerBehaviour::Mixed {
            separate: 0.5,
            max_delay: Duration::from_secs(4),
        },
    };
    sim.set_server(server, behaviour);
    let client_addr = SimAddr::host(1);
    let (client, nat) = if choice.chance(0.25) {
        // Longer than the longest gap between two transmissions of one
        // CON (2^(MAX_RETRANSMIT-1) × 3 s = 24 s), so that a retransmission
        // never leaves from a new public port; see
        // `nat_rebinding_mid_exchange_defeats_deduplication` for what
        // happens otherwise.
        let idle = Duration::from_secs(25 + choice.below(60));
        let nat = sim.add_nat(NAT_HOST, idle);
        let c = sim.add_node_behind_nat(client_addr, nat, Config::default(), derive_seed(seed, 2));
        (c, Some(nat))
    } else {
        (
            sim.add_node(client_addr, Config::default(), derive_seed(seed, 2)),
            None,
        )
    };
    let ratio = [1.0, 0.0, 0.7][choice.below(3) as usize];
    let concurrency = 1 + choice.below(4) as usize;
    sim.set_workload(
        client,
        Workload::new(SERVER, 20)
            .concurrency(concurrency)
            .confirmable_ratio(ratio),
    );
    (sim, nat)
}

/// RFC 7252 §4, §4.5, §4.7, §5.2: 1000 seeds of a lossy, duplicating,
/// reordering, corrupting link; every invariant holds for every seed.
#[test]
fn thousand_seeds_lossy_pair() {
    let seeds: Vec<u64> = match only_seed() {
        Some(s) => vec![s],
        None => (0..1000).collect(),
    };
    let mut totals = Totals::default();
    for &seed in &seeds {
        let (mut sim, nat) = lossy_pair(seed);
        let s = sim.run();
        assert_clean(&sim, &s, 20, "lossy pair", seed);
        // The server saw the client only through its NAT mapping.
        if let Some(nat) = nat {
            totals.nat_runs += 1;
            totals.nat_bindings += sim.nat(nat).bindings_created;
            let seen = sim.node(NodeId(0)).peers_seen();
            assert!(
                seen.iter()
                    .all(|a| matches!(a, SimAddr::Host { host: NAT_HOST, .. })),
                "seed {seed}: server saw a private address: {seen:?}"
            );
        }
        // Every request that got a response was transmitted first.
        for r in sim.node(NodeId(1)).records() {
            if r.confirmable {
                totals.con_requests += 1;
                totals.con_responses +=
                    u64::from(matches!(r.outcome, Some((_, Outcome::Response { .. }))));
            }
            if let Some((at, Outcome::Response { peer, .. })) = r.outcome {
                assert_eq!(peer, SERVER);
                assert!(r.first_tx.is_some_and(|t0| t0 < at), "seed {seed}: {r:?}");
            }
        }
        totals.add(&s);
    }
    let t = &totals.s;
    println!(
        "{} seeds: requests={} responses={} (CON {}/{}) timeouts={} resets={} delivered={} | sent={} lost={} duplicated={} reordered={} corrupted={} nat_dropped={} nat_runs={} nat_bindings={}",
        totals.runs,
        t.requests,
        t.responses,
        totals.con_responses,
        totals.con_requests,
        t.timeouts,
        t.resets,
        t.delivered,
        t.net.sent,
        t.net.lost,
        t.net.duplicated,
        t.net.reordered,
        t.net.corrupted,
        t.net.nat_dropped,
        totals.nat_runs,
        totals.nat_bindings
    );
    if only_seed().is_none() {
        // The link model really did all of it...
        assert!(
            t.net.lost > 0 && t.net.duplicated > 0 && t.net.reordered > 0 && t.net.corrupted > 0
        );
        // ...clients behind a NAT were rebound after idle periods...
        assert!(
            totals.nat_bindings > totals.nat_runs,
            "{} {}",
            totals.nat_bindings,
            totals.nat_runs
        );
        // ...and the protocol still got most requests through: CON
        // requests get 1 + MAX_RETRANSMIT tries (§4.2), NON just one.
        assert!(t.responses * 10 > t.requests * 6, "{t:?}");
        assert!(
            totals.con_responses * 100 > totals.con_requests * 85,
            "{} of {}",
            totals.con_responses,
            totals.con_requests
        );
    }
}

/// Three clients share one server (per-peer state, §4.4 MIDs, §4.7 NSTART
/// per peer) over the lossy link.
#[test]
fn three_clients_one_server() {
    for seed in 0..200u64 {
        let mut sim = Sim::new(seed);
        sim.set_default_link(lossy());
        let server = sim.add_node(SERVER, Config::default(), derive_seed(seed, 100));
        sim.set_server(
            server,
            ServerBehaviour::Mixed {
                separate: 0.3,
                max_delay: Duration::from_secs(3),
            },
        );
        for c in 0..3u16 {
            let n = sim.add_node(
                SimAddr::host(10 + c),
                Config::default(),
                derive_seed(seed, u64::from(c)),
            );
            sim.set_workload(
                n,
                Workload::new(SERVER, 10)
                    .concurrency(2)
                    .confirmable_ratio(0.8),
            );
        }
        let s = sim.run();
        assert_clean(&sim, &s, 30, "three clients", seed);
        assert_eq!(sim.node(server).peers_seen().len(), 3);
    }
}

/// RFC 7252 §4.2, §5.2.1: on a perfect link every CON request is answered
/// by a piggybacked response one round trip (2 × 10 ms) after it was sent,
/// without a retransmission; with one request open at a time the k-th ends
/// at (k + 1) × 20 ms.
#[test]
fn perfect_link_exact_instants() {
    let mut sim = Sim::new(1);
    sim.set_default_link(LinkParams::perfect());
    let server = sim.add_node(SERVER, Config::default(), 11);
    let client = sim.add_node(SimAddr::host(1), Config::default(), 12);
    sim.set_workload(client, Workload::new(SERVER, 50));
    let s = sim.run();
    assert_clean(&sim, &s, 50, "perfect link", 1);
    assert_eq!(s.responses, 50);
    for (k, r) in sim.node(client).records().iter().enumerate() {
        let end = Instant::from_millis(20 * (k as u64 + 1));
        assert_eq!(r.first_tx, Some(Instant::from_millis(20 * k as u64)));
        assert_eq!(
            r.outcome,
            Some((
                end,
                Outcome::Response {
                    code: coap_proto::Code::CHANGED,
                    peer: SERVER
                }
            ))
        );
    }
    assert_eq!(sim.node(client).endpoint().stats().retransmissions, 0);
    assert_eq!(sim.node(server).app_stats().delivered, 50);
    assert_eq!(s.net.lost + s.net.duplicated + s.net.corrupted, 0);
}

/// RFC 7252 §5.2.2, §4.8.2: a server that never answers. A CON request is
/// acknowledged (empty ACK after `separate_ack_delay` = 1 s, arriving at
/// 1.020 s) and times out `separate_response_timeout` (93 s) later; a NON
/// request times out `non_request_timeout` (93 s) after it was sent. The
/// unanswered requests stay in the server's pending table (the application
/// holds them) and nothing else is left.
#[test]
fn server_never_answers() {
    let mut sim = Sim::new(2);
    sim.set_default_link(LinkParams::perfect());
    let server = sim.add_node(SERVER, Config::default(), 21);
    sim.set_server(server, ServerBehaviour::Never);
    let con = sim.add_node(SimAddr::host(1), Config::default(), 22);
    sim.set_workload(con, Workload::new(SERVER, 3));
    let non = sim.add_node(SimAddr::host(3), Config::default(), 23);
    sim.set_workload(non, Workload::new(SERVER, 3).confirmable_ratio(0.0));
    let s = sim.run();
    assert_clean(&sim, &s, 6, "never answers", 2);
    assert_eq!(s.timeouts, 6);
    let wait = Duration::from_secs(93);
    for r in sim.node(con).records() {
        let t0 = r.first_tx.unwrap();
        let ta = t0 + Duration::from_millis(1020);
        assert_eq!(r.acknowledged, Some(ta));
        assert_eq!(r.outcome, Some((ta + wait, Outcome::TimedOut)));
    }
    for r in sim.node(non).records() {
        assert_eq!(
            r.outcome,
            Some((r.first_tx.unwrap() + wait, Outcome::TimedOut))
        );
    }
    assert_eq!(sim.node(server).held(), 6);
    // The endpoint forgot the unanswered requests in time (bounded state).
    assert_eq!(sim.node(server).endpoint().tables().pending, 0);
}

fn multicast_sim(seed: u64, link: LinkParams, requests: u32) -> (Sim, NodeId, [NodeId; 3]) {
    let mut sim = Sim::new(seed);
    sim.set_tracing(true);
    sim.set_default_link(link);
    let servers = [0u16, 1, 2].map(|k| {
        let n = sim.add_node(
            SimAddr::host(20 + k),
            Config::default(),
            derive_seed(seed, u64::from(k)),
        );
        sim.join_group(n, 1);
        n
    });
    let client = sim.add_node(SimAddr::host(1), Config::default(), derive_seed(seed, 9));
    sim.set_workload(client, Workload::new(SimAddr::Group(1), requests));
    (sim, client, servers)
}

/// RFC 7252 §8.1, §8.2 and RFC 7390 (group communication): a NON request
/// to a group reaches all three servers; each answers after a random
/// Leisure (at most DEFAULT_LEISURE = 5 s), the client collects one
/// response per server and ends the request with `MulticastDone` exactly
/// `multicast_timeout` after sending it.
#[test]
fn multicast_collects_every_server() {
    let (mut sim, client, servers) = multicast_sim(3, LinkParams::perfect(), 5);
    let s = sim.run();
    assert_clean(&sim, &s, 5, "multicast", 3);
    let timeout = Config::default().multicast_timeout;
    let addrs: Vec<SimAddr> = servers.iter().map(|&n| sim.node(n).addr()).collect();
    for r in sim.node(client).records() {
        let t0 = r.first_tx.unwrap();
        assert!(!r.confirmable && r.multicast);
        assert_eq!(
            r.outcome,
            Some((t0 + timeout, Outcome::MulticastDone { responses: 3 }))
        );
        let mut got = r.responders.clone();
        got.sort();
        assert_eq!(got, addrs, "one response from each server");
    }
    for &n in &servers {
        assert_eq!(sim.node(n).app_stats().delivered, 5);
    }
    // The answers are spread over the Leisure window (§8.2), and each
    // arrives within it (request 10 ms + Leisure + response 10 ms).
    let client_addr = sim.node(client).addr();
    let mut arrivals = Vec::new();
    for r in sim.node(client).records() {
        let t0 = r.first_tx.unwrap();
        for e in sim
            .trace()
            .iter()
            .filter(|e| e.to == client_addr && e.at > t0 && e.at <= t0 + timeout)
        {
            let since = e.at - t0;
            assert!(
                since >= Duration::from_millis(20) && since <= Duration::from_millis(5020),
                "{e}"
            );
            arrivals.push(since);
        }
    }
    assert_eq!(arrivals.len(), 15);
    arrivals.sort();
    arrivals.dedup();
    assert!(
        arrivals.len() > 10,
        "Leisure should spread the answers: {arrivals:?}"
    );
}

/// RFC 7252 §8 over the lossy link: responses may be lost, but no server
/// answers a request twice (duplicates are suppressed, §4.5), the client
/// never counts a responder twice, and every request ends with
/// `MulticastDone` in time.
#[test]
fn multicast_lossy() {
    let mut full = 0;
    for seed in 0..200u64 {
        let (mut sim, client, _) = multicast_sim(seed, lossy(), 5);
        let s = sim.run();
        assert_clean(&sim, &s, 5, "multicast lossy", seed);
        for r in sim.node(client).records() {
            let Some((_, Outcome::MulticastDone { responses })) = r.outcome else {
                fail(&sim, "multicast outcome", seed);
            };
            assert_eq!(responses, r.responses);
            // At most one response per server, unless corruption turned one
            // request into two (a flipped Message ID, RFC 7252 §4.5).
            assert!(r.responders.len() <= 3);
            assert!(responses <= 3 || s.net.corrupted > 0, "seed {seed}: {r:?}");
            full += usize::from(r.responders.len() == 3);
        }
    }
    assert!(
        full > 100,
        "some requests should reach every server: {full}"
    );
}

/// A NAT in front of the client (RFC 7252 §4 is transport-agnostic; the
/// endpoint keys peers by the address it sees). With an idle timeout of
/// 30 s and one request a minute, every request finds its binding gone and
/// gets a new public port; each still works because the request itself
/// creates the binding the response comes back through. The server only
/// ever sees public addresses.
#[test]
fn nat_rebinding_keeps_requests_working() {
    let mut sim = Sim::new(4);
    sim.set_default_link(LinkParams::lossy(0.1, 0.0, 0.0, 0.0));
    let server = sim.add_node(SERVER, Config::default(), 41);
    let nat = sim.add_nat(NAT_HOST, Duration::from_secs(30));
    let client = sim.add_node_behind_nat(SimAddr::host(1), nat, Config::default(), 42);
    sim.set_workload(
        client,
        Workload::new(SERVER, 10).interval(Duration::from_secs(60)),
    );
    let s = sim.run();
    assert_clean(&sim, &s, 10, "nat", 4);
    assert_eq!(s.responses, 10);
    assert_eq!(sim.nat(nat).bindings_created, 10);
    let seen = sim.node(server).peers_seen();
    assert_eq!(seen.len(), 10, "{seen:?}");
    assert!(
        seen.iter()
            .all(|a| matches!(a, SimAddr::Host { host: NAT_HOST, port } if *port >= 40_000))
    );
    assert!(!seen.contains(&SimAddr::host(1)));
}

/// The NAT forgets an idle binding: a separate response (§5.2.2) sent 45 s
/// after the request, when the 30 s binding has expired, is dropped at the
/// NAT with all its retransmissions. The server reports `ResponseFailed`,
/// the client times out `separate_response_timeout` after the empty ACK,
/// and both endpoints are still empty afterwards.
#[test]
fn nat_forgets_idle_binding() {
    let mut sim = Sim::new(5);
    sim.set_default_link(LinkParams::perfect());
    let server = sim.add_node(SERVER, Config::default(), 51);
    sim.set_server(server, ServerBehaviour::Delayed(Duration::from_secs(45)));
    let nat = sim.add_nat(NAT_HOST, Duration::from_secs(30));
    let client = sim.add_node_behind_nat(SimAddr::host(1), nat, Config::default(), 52);
    sim.set_workload(client, Workload::new(SERVER, 1));
    let s = sim.run();
    assert_clean(&sim, &s, 1, "nat idle", 5);
    let r = &sim.node(client).records()[0];
    let ta = r
        .acknowledged
        .expect("the empty ACK came back through the live binding");
    assert_eq!(
        r.outcome,
        Some((ta + Duration::from_secs(93), Outcome::TimedOut))
    );
    // 1 + MAX_RETRANSMIT transmissions of the separate response, all dropped.
    assert_eq!(sim.nat(nat).dropped, 5);
    assert_eq!(sim.node(server).app_stats().responses_failed, 1);
}

/// What the simulator's NAT model reveals about RFC 7252 §4.5: duplicates
/// are detected per *source endpoint* and Message ID. A NAT that forgets a
/// binding between two retransmissions of one CON (idle timeout 1 s, less
/// than the initial ACK timeout of 2–3 s) gives each retransmission a new
/// public port, so the server, correctly by the RFC, sees five distinct
/// messages and delivers the request five times. The simulator flags each
/// repeat as `DeliveredTwice`; keeping NAT idle timeouts above the longest
/// retransmission gap (24 s with the defaults) avoids it.
#[test]
fn nat_rebinding_mid_exchange_defeats_deduplication() {
    let mut sim = Sim::new(6);
    sim.set_default_link(LinkParams::perfect());
    let server = sim.add_node(SERVER, Config::default(), 61);
    let nat = sim.add_nat(NAT_HOST, Duration::from_secs(1));
    let client = sim.add_node_behind_nat(SimAddr::host(1), nat, Config::default(), 62);
    // Every answer is lost, so the client retransmits (§4.2).
    sim.set_link(
        server,
        client,
        LinkParams {
            loss: 1.0,
            ..LinkParams::perfect()
        },
    );
    sim.set_workload(client, Workload::new(SERVER, 1));
    let s = sim.run();
    assert_eq!(s.timeouts, 1);
    assert_eq!(sim.nat(nat).bindings_created, 5);
    assert_eq!(sim.node(server).peers_seen().len(), 5);
    assert_eq!(s.delivered, 5);
    assert_eq!(s.delivered_twice, 4);
    assert!(sim.violations().iter().all(|v| matches!(
        v,
        coap_proto::_internal::sim::Violation::DeliveredTwice { .. }
    )));
    assert_eq!(s.leaked, 0);
}
