//! Endpoint benchmark: request/response exchanges per second between two
//! endpoints wired back to back in memory (no sockets).
//!
//! One exchange is the whole drive loop of both sides: `client.request_with`
//! → `poll_transmit` → `server.handle_datagram` → `Event::Request` →
//! `respond_with` (piggybacked) → `poll_transmit` → `client.handle_datagram`
//! → `Event::Response`, with event buffers handed back through
//! `Endpoint::recycle`, and both sides' timers run as virtual time passes.
//!
//! Id: `endpoint/exchange/coap-proto` (criterion reports the time per
//! exchange; exchanges/s is its inverse, printed once on stderr too).
//!
//! A counting global allocator reports allocations per exchange in steady
//! state (printed once, on stderr, outside any measurement).
//!
//! MID reuse (RFC 7252 §4.4): the client takes a fresh MID towards the
//! server for every request and may not reuse one within EXCHANGE_LIFETIME
//! (247 s by default), so a single client could do only 65536 exchanges per
//! 247 s. The bench therefore uses tiny transmission parameters
//! (ACK_TIMEOUT 1 ms, MAX_LATENCY 1 ms, PROCESSING_DELAY 1 ms, so
//! EXCHANGE_LIFETIME is 25.5 ms) and advances virtual time by 1 ms per
//! exchange: each MID block is re-entered long after its lifetime, and the
//! steady state includes the expiry of the server's deduplication entries
//! and the timer work that goes with it (about 25 live entries).
//!
//! Steady state measured: 0.143 allocations per exchange, all of them
//! B-tree nodes of the server's deduplication cache. It holds ~25 entries
//! (EXCHANGE_LIFETIME 25.5 ms at one exchange per ms), more than one B-tree
//! leaf (11 keys); entries go in at one end (increasing MIDs) and expire at
//! the other, so `BTreeMap` splits a leaf (one allocation) about every 7
//! inserts and frees the merged ones. With at most 11 live entries (3 ms or
//! more per exchange) it is 0. Request datagrams, responses, event buffers
//! and cached replies all come from the endpoint's pools.
//!
//! Run: `cargo bench --bench endpoint -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::time::Duration;

use coap_proto::endpoint::{Config, Endpoint, Event, TransmissionParameters};
use coap_proto::{Code, Instant, OptionNumber};
use criterion::{Criterion, criterion_group, criterion_main};

// ---------------------------------------------------------------------------
// Allocation counting
// ---------------------------------------------------------------------------

#[path = "common/alloc.rs"]
mod alloc;

#[global_allocator]
static GLOBAL: alloc::CountingAlloc = alloc::CountingAlloc;

// ---------------------------------------------------------------------------
// Two endpoints in memory
// ---------------------------------------------------------------------------

const CLIENT: u8 = 1;
const SERVER: u8 = 2;

/// Virtual time per exchange (see the module docs on MID reuse).
const STEP: Duration = Duration::from_millis(1);

fn config() -> Config {
    let mut t = TransmissionParameters::default();
    t.ack_timeout = Duration::from_millis(1);
    t.max_latency = Duration::from_millis(1);
    t.processing_delay = Duration::from_millis(1);
    let mut c = Config::default();
    c.transmission = t;
    c.separate_response_timeout = t.max_transmit_wait();
    c.non_request_timeout = t.max_transmit_wait();
    c
}

struct Pair {
    client: Endpoint<u8>,
    server: Endpoint<u8>,
    now: Instant,
    buf: [u8; 1152],
}

impl Pair {
    fn new() -> Self {
        let config = config();
        assert_eq!(
            config.transmission.exchange_lifetime(),
            Duration::from_micros(25_500)
        );
        Self {
            client: Endpoint::new(config, 1),
            server: Endpoint::new(config, 2),
            now: Instant::ZERO,
            buf: [0; 1152],
        }
    }

    /// One GET /temp → 2.05 "22.3 C" exchange; returns the payload length.
    fn exchange(&mut self) -> usize {
        let now = self.now;
        let id = self
            .client
            .request_with(now, SERVER, true, Code::GET, |enc| {
                enc.option(OptionNumber::URI_PATH, b"temp")?;
                Ok(())
            })
            .expect("request");
        let t = self
            .client
            .poll_transmit(&mut self.buf)
            .unwrap()
            .expect("request datagram");
        self.server.handle_datagram(now, CLIENT, &self.buf[..t.len]);
        let Some(Event::Request(req)) = self.server.poll_event() else {
            panic!("no request event");
        };
        self.server
            .respond_with(now, req.handle, Code::CONTENT, |enc| {
                enc.option_uint(OptionNumber::CONTENT_FORMAT, 0)?;
                enc.payload(b"22.3 C")?;
                Ok(())
            })
            .expect("respond");
        self.server.recycle(req.message.into_bytes());
        let t = self
            .server
            .poll_transmit(&mut self.buf)
            .unwrap()
            .expect("response datagram");
        self.client.handle_datagram(now, SERVER, &self.buf[..t.len]);
        let Some(Event::Response(resp)) = self.client.poll_event() else {
            panic!("no response event");
        };
        assert_eq!(resp.id, id);
        let n = resp.message().payload().len();
        self.client.recycle(resp.message.into_bytes());

        // Time passes; run whatever timers are due on both sides.
        self.now = now + STEP;
        for ep in [&mut self.client, &mut self.server] {
            while ep.poll_timeout().is_some_and(|t| t <= self.now) {
                ep.handle_timeout(self.now);
            }
            debug_assert!(ep.poll_transmit(&mut self.buf).unwrap().is_none());
            debug_assert!(ep.poll_event().is_none());
        }
        n
    }
}

/// Allocation calls per exchange over `runs` exchanges after `warm_up`.
fn allocations_per_exchange(warm_up: usize, runs: usize) -> (f64, Pair) {
    let mut pair = Pair::new();
    for _ in 0..warm_up {
        pair.exchange();
    }
    let calls = alloc::count(|| {
        for _ in 0..runs {
            black_box(pair.exchange());
        }
    });
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    let per = calls as f64 / runs as f64;
    (per, pair)
}

fn bench(c: &mut Criterion) {
    // Sanity: a full exchange delivers the 6-byte payload.
    assert_eq!(Pair::new().exchange(), 6);

    let (per_exchange, pair) = allocations_per_exchange(10_000, 100_000);
    eprintln!(
        "endpoint/exchange/coap-proto: {per_exchange:.3} allocations per exchange in steady state \
         (after 10000 warm-up exchanges, over 100000; client {:?}, server {:?})",
        pair.client.tables(),
        pair.server.tables()
    );

    let mut group = c.benchmark_group("endpoint");
    let mut pair = Pair::new();
    for _ in 0..10_000 {
        pair.exchange();
    }
    group.bench_function("exchange/coap-proto", |b| {
        b.iter(|| black_box(pair.exchange()));
    });
    group.finish();

    // Exchanges per second, measured once outside criterion for the README.
    let mut pair = Pair::new();
    for _ in 0..10_000 {
        pair.exchange();
    }
    let n = 200_000;
    let start = std::time::Instant::now();
    for _ in 0..n {
        black_box(pair.exchange());
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "endpoint/exchange/coap-proto: {:.0} exchanges/s ({:.0} ns per exchange, {n} exchanges)",
        f64::from(n) / secs,
        secs * 1e9 / f64::from(n)
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
