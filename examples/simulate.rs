//! One CoAP client and one server in the seeded network simulator
//! (`coap_proto::_internal::sim`), in virtual time.
//!
//! ```text
//! cargo run --release --example simulate -- \
//!     --seed 7 --loss 0.3 --duplicate 0.1 --reorder 0.2 --requests 10000
//! ```
//!
//! (The crate is its own dev-dependency with the hidden `_internal` feature,
//! so examples see the simulator without `--features _internal`.)
//!
//! The last line is always exactly
//! `requests=N responses=N timeouts=N resets=N delivered_twice=N leaked=N`
//! so that a script can check it. The exit status is 1 when the simulator
//! found an invariant violation (listed on stderr), 2 on bad arguments.

use std::process::ExitCode;
use std::time::{Duration, Instant as WallClock};

use coap_proto::_internal::sim::{
    LinkParams, ServerBehaviour, Sim, SimAddr, Workload, derive_seed,
};
use coap_proto::endpoint::Config;

const USAGE: &str =
    "usage: simulate [--seed N] [--loss P] [--duplicate P] [--reorder P] [--corrupt P]
                [--requests N] [--concurrency N] [--non P] [--separate P]
                [--delay-ms N] [--jitter-ms N] [--trace]

  --seed N         seed for the network and both endpoints (default 7)
  --loss P         probability a datagram is lost, each direction (default 0)
  --duplicate P    probability a datagram is delivered twice (default 0)
  --reorder P      probability a datagram is held back up to 1.5 s (default 0)
  --corrupt P      probability a datagram has bits flipped (default 0)
  --requests N     requests the client issues (default 100)
  --concurrency N  requests the client keeps open at once (default 4)
  --non P          fraction of requests sent NON instead of CON (default 0)
  --separate P     fraction answered after up to 3 s: separate responses (default 0)
  --delay-ms N     one-way base delay (default 10)
  --jitter-ms N    one-way random extra delay (default 5)
  --trace          print every delivered datagram";

#[derive(Debug)]
struct Args {
    seed: u64,
    loss: f64,
    duplicate: f64,
    reorder: f64,
    corrupt: f64,
    requests: u32,
    concurrency: usize,
    non: f64,
    separate: f64,
    delay_ms: u64,
    jitter_ms: u64,
    trace: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        seed: 7,
        loss: 0.0,
        duplicate: 0.0,
        reorder: 0.0,
        corrupt: 0.0,
        requests: 100,
        concurrency: 4,
        non: 0.0,
        separate: 0.0,
        delay_ms: 10,
        jitter_ms: 5,
        trace: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        if flag == "--trace" {
            a.trace = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        let prob = |v: &str| -> Result<f64, String> {
            let p: f64 = v.parse().map_err(|e| bad(&e))?;
            if (0.0..=1.0).contains(&p) {
                Ok(p)
            } else {
                Err(format!("{flag} {value}: not a probability in [0, 1]"))
            }
        };
        match flag.as_str() {
            "--seed" => a.seed = value.parse().map_err(|e| bad(&e))?,
            "--loss" => a.loss = prob(&value)?,
            "--duplicate" => a.duplicate = prob(&value)?,
            "--reorder" => a.reorder = prob(&value)?,
            "--corrupt" => a.corrupt = prob(&value)?,
            "--non" => a.non = prob(&value)?,
            "--separate" => a.separate = prob(&value)?,
            "--requests" => a.requests = value.parse().map_err(|e| bad(&e))?,
            "--concurrency" => a.concurrency = value.parse().map_err(|e| bad(&e))?,
            "--delay-ms" => a.delay_ms = value.parse().map_err(|e| bad(&e))?,
            "--jitter-ms" => a.jitter_ms = value.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("simulate: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let wall = WallClock::now();

    let server_addr = SimAddr::host(2);
    let mut sim = Sim::new(args.seed);
    sim.set_tracing(args.trace);
    sim.set_default_link(LinkParams {
        delay: Duration::from_millis(args.delay_ms),
        jitter: Duration::from_millis(args.jitter_ms),
        ..LinkParams::lossy(args.loss, args.duplicate, args.reorder, args.corrupt)
    });
    let server = sim.add_node(server_addr, Config::default(), derive_seed(args.seed, 1));
    sim.set_server(
        server,
        ServerBehaviour::Mixed {
            separate: args.separate,
            max_delay: Duration::from_secs(3),
        },
    );
    let client = sim.add_node(
        SimAddr::host(1),
        Config::default(),
        derive_seed(args.seed, 2),
    );
    sim.set_workload(
        client,
        Workload::new(server_addr, args.requests)
            .concurrency(args.concurrency)
            .confirmable_ratio(1.0 - args.non),
    );

    let s = sim.run();

    if args.trace {
        for t in sim.trace() {
            println!("{t}");
        }
    }
    let (c, sv) = (sim.node(client), sim.node(server));
    let (cs, ss) = (c.endpoint().stats(), sv.endpoint().stats());
    let n = &s.net;
    println!(
        "simulate: seed={} loss={} duplicate={} reorder={} corrupt={} requests={} concurrency={} non={} separate={}",
        args.seed,
        args.loss,
        args.duplicate,
        args.reorder,
        args.corrupt,
        args.requests,
        args.concurrency,
        args.non,
        args.separate
    );
    println!(
        "network: sent={} delivered={} lost={} duplicated={} reordered={} corrupted={}",
        n.sent, n.delivered, n.lost, n.duplicated, n.reordered, n.corrupted
    );
    println!(
        "client: datagrams_out={} retransmissions={} duplicates={} format_errors={} refused={}",
        cs.datagrams_out,
        cs.retransmissions,
        cs.duplicates,
        cs.format_errors,
        c.app_stats().refused
    );
    println!(
        "server: requests_delivered={} duplicates_suppressed={} format_errors={} resets_sent={} separate_failed={}",
        s.delivered,
        ss.duplicates,
        ss.format_errors,
        ss.resets_sent,
        sv.app_stats().responses_failed
    );
    let secs = s.end.since_epoch().as_secs_f64();
    println!(
        "time: virtual={secs:.1}s wall={:.2}s trace_hash={:016x} violations={}",
        wall.elapsed().as_secs_f64(),
        sim.trace_hash(),
        s.violations
    );
    for v in sim.violations() {
        eprintln!("violation: {v:?}");
    }
    println!("{s}");
    if s.violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
