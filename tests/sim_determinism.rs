//! Determinism of the endpoint and the simulator: randomness enters only
//! through seeds (design.md §4), so the same seeds give byte-identical
//! traffic at identical instants and identical outcomes, and a different
//! seed gives a different run.
#![cfg(feature = "_internal")]

use core::time::Duration;
use std::collections::BTreeSet;

use coap_proto::_internal::sim::{
    LinkParams, ServerBehaviour, Sim, SimAddr, Workload, derive_seed,
};
use coap_proto::endpoint::Config;

/// A busy scenario touching every random choice: link loss, duplication,
/// reordering, jitter and corruption; CON and NON; piggybacked and separate
/// responses; a NAT; a multicast group (random Leisure, RFC 7252 §8.2).
/// `net_seed` drives the network and applications, `ep_seed` the endpoints.
fn scenario(net_seed: u64, ep_seed: u64) -> Sim {
    let mut sim = Sim::new(net_seed);
    sim.set_tracing(true);
    sim.set_default_link(LinkParams::lossy(0.3, 0.1, 0.2, 0.02));
    let server = sim.add_node(SimAddr::host(2), Config::default(), derive_seed(ep_seed, 1));
    sim.set_server(
        server,
        ServerBehaviour::Mixed {
            separate: 0.4,
            max_delay: Duration::from_secs(3),
        },
    );
    sim.join_group(server, 1);
    let peer = sim.add_node(SimAddr::host(3), Config::default(), derive_seed(ep_seed, 2));
    sim.join_group(peer, 1);
    let nat = sim.add_nat(100, Duration::from_secs(40));
    let client = sim.add_node_behind_nat(
        SimAddr::host(1),
        nat,
        Config::default(),
        derive_seed(ep_seed, 3),
    );
    sim.set_workload(
        client,
        Workload::new(SimAddr::host(2), 30)
            .concurrency(3)
            .confirmable_ratio(0.7),
    );
    let mcast = sim.add_node(SimAddr::host(4), Config::default(), derive_seed(ep_seed, 4));
    sim.set_workload(mcast, Workload::new(SimAddr::Group(1), 3));
    sim
}

/// Same seeds twice: identical trace hash, identical delivered datagrams
/// (bytes and instants), identical outcomes, identical counters.
#[test]
fn same_seed_same_trace() {
    for seed in [0u64, 7, 12345, u64::MAX] {
        let mut a = scenario(seed, seed);
        let mut b = scenario(seed, seed);
        let (sa, sb) = (a.run(), b.run());
        assert!(
            a.violations().is_empty(),
            "seed {seed}: {:?}",
            a.violations()
        );
        assert!(
            sa.net.delivered > 50,
            "seed {seed}: the scenario should be busy: {sa:?}"
        );
        assert_eq!(a.trace_hash(), b.trace_hash(), "seed {seed}");
        assert_eq!(a.trace(), b.trace(), "seed {seed}");
        assert_eq!(a.outcomes(), b.outcomes(), "seed {seed}");
        assert_eq!(sa, sb, "seed {seed}");
        for (na, nb) in a.nodes().iter().zip(b.nodes()) {
            assert_eq!(na.endpoint().stats(), nb.endpoint().stats(), "seed {seed}");
        }
    }
}

/// Different seeds give different runs (almost surely: a 64-bit hash over
/// hundreds of random datagrams), whether the network seed or only the
/// endpoints' seed changes.
#[test]
fn different_seed_different_trace() {
    let mut hashes = BTreeSet::new();
    for seed in 0..20u64 {
        let mut sim = scenario(seed, seed);
        sim.run();
        assert!(
            hashes.insert(sim.trace_hash()),
            "seed {seed} repeated a hash"
        );
    }
    // Same network, different endpoint seeds: MIDs, tokens, retransmission
    // jitter and Leisure differ, so the bytes and instants differ.
    let mut a = scenario(1, 1);
    let mut b = scenario(1, 2);
    a.run();
    b.run();
    assert_ne!(a.trace_hash(), b.trace_hash());
    // Same endpoints, different network seed.
    let mut c = scenario(2, 1);
    c.run();
    assert_ne!(a.trace_hash(), c.trace_hash());
}

/// Driving the simulator in 250 ms slices gives the same run as a single
/// `run()`: how the caller advances time does not leak into the result
/// (the endpoints only see the instants things happen at).
#[test]
fn same_run_when_driven_in_slices() {
    let mut a = scenario(9, 9);
    a.run();
    let mut b = scenario(9, 9);
    let mut t = coap_proto::Instant::ZERO;
    while !b.workloads_done() {
        t += Duration::from_millis(250);
        b.run_until(t);
    }
    b.run();
    assert_eq!(a.trace_hash(), b.trace_hash());
    assert_eq!(a.outcomes(), b.outcomes());
}
