//! Observe benchmark (RFC 7641): notifications per second fanned out to
//! 10 000 observers in memory, and bytes per observer.
//!
//! Set-up: a resource layer ([`Server`]) with one observable resource over
//! a server [`Endpoint`], and 10 000 observers registered with NON GETs
//! (Observe:0) from 10 000 addresses. One iteration is one change of the
//! resource: `Server::notify_changed` runs the GET handler for each
//! observer (with its registration request), post-processes the answer
//! (Content-Format, Observe), and the endpoint encodes and queues one NON
//! notification per observer (remembering its Message ID for a Reset,
//! §4.5); then every datagram is taken out with `poll_transmit` and the
//! endpoint's timers run (the previous round's entries expire).
//!
//! Id: `observe/notify_changed/10000` (criterion's time is per round of
//! 10 000 notifications; notifications/s is printed once on stderr).
//!
//! MIDs (RFC 7252 §4.4) may not be reused within EXCHANGE_LIFETIME, and
//! 10 000 notifications per round would exhaust the MID space of the
//! shared spaces within seconds of virtual time; like `benches/endpoint.rs`
//! the bench uses tiny transmission parameters (EXCHANGE_LIFETIME 25.5 ms).
//! Virtual time advances 3 s per round: RFC 7641 §4.5.1 allows one NON
//! notification per 3 s to a client without an RTT estimate
//! (`Config::non_notification_interval_ms`), so each observer's previous
//! notification no longer counts as outstanding and every round sends
//! 10 000 datagrams (no pacing in the measured path).
//!
//! Bytes per observer: the heap the layer holds per observer, measured
//! with a counting allocator while registering (printed once, next to
//! `OBSERVER_BYTES`, the documented charge).
//!
//! Run: `cargo bench --bench observe -- --warm-up-time 1 --measurement-time 5`.

// Heap accounting in signed byte deltas and ratios printed as floats.
#![allow(clippy::cast_possible_wrap, clippy::cast_precision_loss)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::time::Duration;

use coap_proto::endpoint::{Config, Endpoint, TransmissionParameters};
use coap_proto::server::{OBSERVER_BYTES, Reply, Resource, ResourceId, Server, ServerConfig};
use coap_proto::{Code, ContentFormat, Instant, MessageBuf, MessageType, OptionNumber};
use criterion::{Criterion, criterion_group, criterion_main};

/// Forwards to [`System`]; keeps the live heap size and counts calls.
struct CountingAlloc;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static CALLS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards its arguments unchanged to the system
// allocator, which upholds the `GlobalAlloc` contract; the wrapper only
// updates counters.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const OBSERVERS: u32 = 10_000;

struct Fanout {
    server: Server<u32, u32>,
    ep: Endpoint<u32>,
    obs: ResourceId,
    value: u32,
    now: Instant,
    buf: Vec<u8>,
}

fn config() -> Config {
    let mut t = TransmissionParameters::default();
    t.ack_timeout = Duration::from_millis(1);
    t.max_latency = Duration::from_millis(1);
    t.processing_delay = Duration::from_millis(1);
    let mut c = Config::default();
    c.transmission = t;
    c.max_notifications = 2 * OBSERVERS as usize;
    c.max_notification_clients = 2 * OBSERVERS;
    c.max_transmit_queue = 2 * OBSERVERS as usize;
    c.max_pending = 2 * OBSERVERS as usize;
    c.max_events = 2 * OBSERVERS as usize;
    c
}

impl Fanout {
    fn new() -> (Self, isize) {
        let mut sc = ServerConfig::default();
        sc.max_observers = OBSERVERS as usize;
        sc.notify_con_every = u32::MAX; // NON only: no ACKs to play
        let mut server: Server<u32, u32> = Server::new(sc);
        let obs = server
            .add(
                Resource::new("/obs")
                    .observable()
                    .format(ContentFormat::TEXT_PLAIN)
                    .get(|v: &mut u32, _| {
                        Reply::content(ContentFormat::TEXT_PLAIN, format!("value {v}"))
                    }),
            )
            .expect("resource");
        let mut f = Self {
            server,
            ep: Endpoint::new(config(), 1),
            obs,
            value: 0,
            now: Instant::ZERO,
            buf: vec![0u8; 2048],
        };
        let before = LIVE.load(Ordering::Relaxed);
        let layer_before = f.server.observer_memory();
        for i in 1..=OBSERVERS {
            let mut get = MessageBuf::new(MessageType::Non, Code::GET);
            get.set_message_id(i as u16);
            get.set_token(&i.to_be_bytes()).expect("token");
            get.add_option_uint(OptionNumber::OBSERVE, 0);
            get.add_option(OptionNumber::URI_PATH, "obs");
            let bytes = get.to_bytes().expect("encodable");
            f.ep.handle_datagram(f.now, i, &bytes);
            while let Some(e) = f.ep.poll_event() {
                let _ = f.server.handle_event(&mut f.ep, f.now, e, &mut f.value);
            }
            while let Ok(Some(_)) = f.ep.poll_transmit(&mut f.buf) {}
        }
        f.settle();
        let per = (LIVE.load(Ordering::Relaxed) - before) / OBSERVERS as isize;
        assert_eq!(f.server.observer_count(), OBSERVERS as usize);
        eprintln!(
            "observe: bytes per observer: {per} measured (whole process heap, registration \
             request included), {} charged by Server::observer_memory (OBSERVER_BYTES {OBSERVER_BYTES})",
            (f.server.observer_memory() - layer_before) / OBSERVERS as usize
        );
        (f, per)
    }

    /// Runs the endpoint's timers up to now (deduplication entries and
    /// remembered notifications expire).
    fn settle(&mut self) {
        self.now += Duration::from_secs(3);
        while let Some(at) = self.ep.poll_timeout().filter(|at| *at <= self.now) {
            self.ep.handle_timeout(at);
        }
    }

    /// One change: 10 000 notifications encoded and taken out.
    fn round(&mut self) -> usize {
        self.settle();
        self.value += 1;
        let n = self
            .server
            .notify_changed(&mut self.ep, self.now, self.obs, &mut self.value);
        let mut out = 0;
        while let Ok(Some(t)) = self.ep.poll_transmit(&mut self.buf) {
            out += t.len;
        }
        black_box(out);
        n
    }
}

fn bench(c: &mut Criterion) {
    let (mut f, _) = Fanout::new();
    // Once, outside the measurement: throughput and allocations.
    for _ in 0..3 {
        assert_eq!(f.round(), OBSERVERS as usize);
    }
    assert_eq!(
        f.ep.stats().notifications_paced,
        0,
        "3 s per round: no notification waits for its client (RFC 7641 §4.5.1)"
    );
    let calls = CALLS.load(Ordering::Relaxed);
    let start = std::time::Instant::now();
    let rounds = 20;
    for _ in 0..rounds {
        assert_eq!(f.round(), OBSERVERS as usize);
    }
    let took = start.elapsed();
    let allocs = CALLS.load(Ordering::Relaxed) - calls;
    eprintln!(
        "observe: {:.0} notifications/s ({} observers, {:.2} ms per round), {:.1} allocations per notification",
        f64::from(OBSERVERS * rounds) / took.as_secs_f64(),
        OBSERVERS,
        took.as_secs_f64() * 1000.0 / f64::from(rounds),
        allocs as f64 / f64::from(OBSERVERS * rounds)
    );
    let mut g = c.benchmark_group("observe");
    g.throughput(criterion::Throughput::Elements(u64::from(OBSERVERS)));
    g.bench_function("notify_changed/10000", |b| b.iter(|| f.round()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
