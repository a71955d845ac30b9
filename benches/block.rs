//! Block-wise benchmark: a 1 MiB Block2 transfer (RFC 7959) in memory at
//! SZX 6 (1024-byte blocks, 1024 exchanges), through the client layer
//! (`coap_proto::client::Transfers`) and two endpoints back to back, in
//! MB/s (10^6 bytes per second), against a plain 1 MiB `memcpy` measured in
//! the same run.
//!
//! Ids (criterion; throughput in decimal bytes):
//! - `block2-1MiB/memcpy`: `copy_from_slice` of 1 MiB into a preallocated
//!   buffer;
//! - `block2-1MiB/transfers+raw-server`: the client layer reassembles the
//!   body; the server side is a bare endpoint that slices a fixed 1 MiB
//!   representation straight into each response (`respond_with`), so the
//!   figure is the cost of the client layer and the two endpoints;
//! - `block2-1MiB/transfers+server-layer`: the same against the resource
//!   layer (`coap_proto::server::Server`) with its representation cache:
//!   the handler runs once per download (it hands over a fresh 1 MiB
//!   `Vec`; the resource is invalidated before each download so that every
//!   iteration pays for it) and the other 1023 blocks are sliced from the
//!   kept copy;
//! - `block2-1MiB/transfers+server-layer-uncached`: the same with the
//!   resource marked `uncached()`: the handler runs for every block, so a
//!   download copies 1024 × 1 MiB (the layer's behaviour before the
//!   cache).
//!
//! A short summary with the ratios is printed on stderr first (the minimum
//! over 15 runs of each).
//!
//! Virtual time advances 1 ms per exchange with tiny transmission
//! parameters (EXCHANGE_LIFETIME 25.5 ms), as in `benches/endpoint.rs`, so
//! that message IDs can be reused across iterations (RFC 7252 §4.4).
//!
//! Run: `cargo bench --bench block -- --warm-up-time 1 --measurement-time 5`.

use std::hint::black_box;
use std::time::Duration;

use coap_proto::client::{ClientConfig, ClientEvent, Transfers};
use coap_proto::endpoint::{Config, Endpoint, Event, TransmissionParameters};
use coap_proto::server::{Reply, Resource, Server, ServerConfig};
use coap_proto::{Block, Code, ContentFormat, Instant, MessageBuf, MessageType, OptionNumber};
use criterion::{Criterion, Throughput, criterion_group};

const CLIENT: u8 = 1;
const SERVER: u8 = 2;
const MIB: usize = 1024 * 1024;
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

fn representation() -> Vec<u8> {
    (0..MIB)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761) as u8)
        .collect()
}

/// Who answers on the server side.
enum Answerer {
    /// A bare endpoint slicing `data`.
    Raw(Vec<u8>),
    /// The resource layer with a GET handler returning `data`.
    Layer(Box<Server<u8, Vec<u8>>>, Vec<u8>),
}

struct Bench {
    client: Endpoint<u8>,
    server: Endpoint<u8>,
    answerer: Answerer,
    transfers: Transfers<u8>,
    now: Instant,
    buf: Vec<u8>,
}

impl Bench {
    /// `layer`: through `Server`; `cached`: with its representation cache.
    fn new(layer: bool, cached: bool) -> Self {
        let data = representation();
        let answerer = if layer {
            let mut s: Server<u8, Vec<u8>> = Server::new(ServerConfig::default());
            let r = Resource::new("/big");
            let r = if cached { r } else { r.uncached() };
            s.add(r.get(|data: &mut Vec<u8>, _| {
                let mut m = MessageBuf::new(MessageType::Ack, Code::CONTENT);
                m.add_option(OptionNumber::ETAG, [1, 2, 3, 4]);
                m.add_option_uint(
                    OptionNumber::CONTENT_FORMAT,
                    u32::from(ContentFormat::OCTET_STREAM.0),
                );
                m.set_payload(data.clone());
                Reply::Now(m)
            }))
            .unwrap();
            Answerer::Layer(Box::new(s), data)
        } else {
            Answerer::Raw(data)
        };
        let mut cc = ClientConfig::default();
        cc.block2_szx = Some(6);
        Self {
            client: Endpoint::new(config(), 1),
            server: Endpoint::new(config(), 2),
            answerer,
            transfers: Transfers::new(cc),
            now: Instant::ZERO,
            buf: vec![0; 1152],
        }
    }

    fn answer(&mut self, now: Instant) {
        while let Some(ev) = self.server.poll_event() {
            let Event::Request(req) = ev else { continue };
            match &mut self.answerer {
                Answerer::Layer(s, data) => s.handle(&mut self.server, now, req, data),
                Answerer::Raw(data) => {
                    let b = req
                        .message()
                        .block2()
                        .unwrap_or(Block::new(0, false, 6).unwrap());
                    let size = b.size();
                    let start = b.offset().min(data.len());
                    let end = (start + size).min(data.len());
                    let more = end < data.len();
                    let total = data.len() as u32;
                    let payload = &data[start..end];
                    self.server
                        .respond_with(now, req.handle, Code::CONTENT, |enc| {
                            enc.option(OptionNumber::ETAG, &[1, 2, 3, 4])?;
                            enc.option_uint(OptionNumber::CONTENT_FORMAT, 42)?;
                            enc.option_block(
                                OptionNumber::BLOCK2,
                                Block::new(b.num(), more, b.szx()).unwrap(),
                            )?;
                            if b.num() == 0 {
                                enc.option_uint(OptionNumber::SIZE2, total)?;
                            }
                            enc.payload(payload)?;
                            Ok(())
                        })
                        .unwrap();
                    self.server.recycle(req.message.into_bytes());
                }
            }
        }
    }

    /// One whole 1 MiB GET; returns the body length.
    fn transfer(&mut self) -> usize {
        if let Answerer::Layer(s, _) = &mut self.answerer {
            // A fresh representation for every download: one handler run.
            let id = s.find("/big").unwrap();
            s.invalidate(id);
        }
        let mut get = MessageBuf::new(MessageType::Con, Code::GET);
        get.add_option(OptionNumber::URI_PATH, "big");
        let id = self
            .transfers
            .request(&mut self.client, self.now, SERVER, get)
            .unwrap();
        loop {
            let now = self.now;
            while let Some(t) = self.client.poll_transmit(&mut self.buf).unwrap() {
                self.server.handle_datagram(now, CLIENT, &self.buf[..t.len]);
            }
            self.answer(now);
            while let Some(t) = self.server.poll_transmit(&mut self.buf).unwrap() {
                self.client.handle_datagram(now, SERVER, &self.buf[..t.len]);
            }
            let mut done = None;
            while let Some(ev) = self.client.poll_event() {
                match self.transfers.handle_event(&mut self.client, now, ev) {
                    Some(ClientEvent::Response { id: i, message, .. }) if i == id => {
                        done = Some(message);
                    }
                    Some(ClientEvent::Progress { .. }) | None => {}
                    Some(other) => panic!("{other:?}"),
                }
            }
            // Time passes; run whatever timers are due on both sides.
            self.now = now + STEP;
            for ep in [&mut self.client, &mut self.server] {
                while ep.poll_timeout().is_some_and(|t| t <= self.now) {
                    ep.handle_timeout(self.now);
                }
            }
            if let Some(m) = done {
                return black_box(m.payload().len());
            }
        }
    }
}

fn memcpy(src: &[u8], dst: &mut [u8]) {
    dst.copy_from_slice(black_box(src));
    black_box(dst);
}

fn summary() {
    let src = representation();
    let mut dst = vec![0u8; MIB];
    let mb = |d: Duration| f64::from(MIB as u32) / d.as_secs_f64() / 1e6;
    let best = |f: &mut dyn FnMut()| {
        (0..15)
            .map(|_| {
                let t = std::time::Instant::now();
                f();
                t.elapsed()
            })
            .min()
            .unwrap()
    };
    let copy = best(&mut || memcpy(&src, &mut dst));
    let mut raw = Bench::new(false, false);
    assert_eq!(raw.transfer(), MIB);
    let raw_t = best(&mut || {
        raw.transfer();
    });
    let mut layer = Bench::new(true, true);
    assert_eq!(layer.transfer(), MIB);
    let layer_t = best(&mut || {
        layer.transfer();
    });
    let mut uncached = Bench::new(true, false);
    assert_eq!(uncached.transfer(), MIB);
    let uncached_t = best(&mut || {
        uncached.transfer();
    });
    eprintln!(
        "block2-1MiB (SZX 6, best of 15): memcpy {:.0} MB/s; transfers+raw-server {:.1} MB/s \
         ({:.0}x slower than memcpy); transfers+server-layer {:.1} MB/s ({:.0}x slower, \
         {:.2}x the raw server's time); transfers+server-layer-uncached {:.1} MB/s ({:.0}x slower)",
        mb(copy),
        mb(raw_t),
        raw_t.as_secs_f64() / copy.as_secs_f64(),
        mb(layer_t),
        layer_t.as_secs_f64() / copy.as_secs_f64(),
        layer_t.as_secs_f64() / raw_t.as_secs_f64(),
        mb(uncached_t),
        uncached_t.as_secs_f64() / copy.as_secs_f64(),
    );
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("block2-1MiB");
    group.throughput(Throughput::BytesDecimal(MIB as u64));
    let src = representation();
    let mut dst = vec![0u8; MIB];
    group.bench_function("memcpy", |b| b.iter(|| memcpy(&src, &mut dst)));
    let mut raw = Bench::new(false, false);
    group.bench_function("transfers+raw-server", |b| b.iter(|| raw.transfer()));
    let mut layer = Bench::new(true, true);
    group.bench_function("transfers+server-layer", |b| b.iter(|| layer.transfer()));
    let mut uncached = Bench::new(true, false);
    group.sample_size(10);
    group.bench_function("transfers+server-layer-uncached", |b| {
        b.iter(|| uncached.transfer());
    });
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    summary();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
