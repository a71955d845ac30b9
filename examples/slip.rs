//! CoAP over SLIP (RFC 1055) on a byte stream, the way it runs over a serial
//! line: the endpoint does not care what carries its datagrams.
//!
//! ```text
//! cargo run --example slip                   # a clean line
//! cargo run --example slip -- --lossy        # a noisy line: bytes lost and bits flipped
//! cargo run --example slip -- --lossy --seed 7
//! ```
//!
//! Two [`Endpoint`]s, a client and a server, run in two threads joined by an
//! in-memory, full-duplex byte stream (a null-modem cable). Each datagram is
//! one SLIP frame in the style of Slipmux (draft-bormann-t2trg-slipmux): a
//! frame-type byte 0xA9, the CoAP message, and a 16-bit FCS (RFC 1662), so a
//! frame damaged on the line is dropped, and the CoAP retransmission rules
//! (RFC 7252 §4.2) recover, exactly as they do for a lost UDP datagram. The
//! address type is a serial-port number, [`SerialPort`].
//!
//! The driver, [`SlipEndpoint`], is the same thin loop as the UDP drivers:
//! after every input it drains `poll_transmit`, then `poll_event`, then
//! waits until `poll_timeout` or the next bytes. Swap [`Wire`] for a real
//! serial port (anything with a write and a read with a timeout) and it runs
//! on hardware. This file is also compiled into `tests/transport_slip.rs`.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use coap_proto::endpoint::{Address, Config, Endpoint, Event, RequestId, Stats};
use coap_proto::time::Clock;
use coap_proto::udp::{Direction, Outcome};
use coap_proto::{Code, Instant, Message, MessageBuf, MessageType, OptionNumber};

// ----- the address -------------------------------------------------------

/// A serial-port number: the peer address on this link (like `ttyS1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct SerialPort(pub(crate) u8);

impl Address for SerialPort {}

impl std::fmt::Display for SerialPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ttyS{}", self.0)
    }
}

// ----- SLIP framing (RFC 1055) with a Slipmux-style CoAP frame ------------

/// Frame delimiter.
pub(crate) const END: u8 = 0xC0;
/// Escape byte.
pub(crate) const ESC: u8 = 0xDB;
/// `ESC ESC_END` stands for a data byte `END`.
pub(crate) const ESC_END: u8 = 0xDC;
/// `ESC ESC_ESC` stands for a data byte `ESC`.
pub(crate) const ESC_ESC: u8 = 0xDD;
/// The first byte of a CoAP frame (Slipmux).
pub(crate) const COAP_FRAME: u8 = 0xA9;

/// The 16-bit frame check sequence of RFC 1662 (CRC-16/X-25).
pub(crate) fn fcs16(data: &[u8]) -> u16 {
    let mut fcs: u16 = 0xFFFF;
    for &b in data {
        fcs ^= u16::from(b);
        for _ in 0..8 {
            fcs = if fcs & 1 == 1 {
                (fcs >> 1) ^ 0x8408
            } else {
                fcs >> 1
            };
        }
    }
    !fcs
}

fn push_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        match b {
            END => out.extend_from_slice(&[ESC, ESC_END]),
            ESC => out.extend_from_slice(&[ESC, ESC_ESC]),
            b => out.push(b),
        }
    }
}

/// Appends one frame carrying `datagram` to `out`. It starts with `END`
/// too (RFC 1055's advice), which flushes any line noise received since
/// the last frame into a frame of its own that the receiver drops.
pub(crate) fn encode_frame(datagram: &[u8], out: &mut Vec<u8>) {
    let mut fcs_input = Vec::with_capacity(datagram.len() + 1);
    fcs_input.push(COAP_FRAME);
    fcs_input.extend_from_slice(datagram);
    let fcs = fcs16(&fcs_input).to_le_bytes();
    out.push(END);
    push_escaped(out, &fcs_input);
    push_escaped(out, &fcs);
    out.push(END);
}

/// What a [`Decoder`] threw away.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DecoderStats {
    /// CoAP frames delivered.
    pub(crate) frames: u64,
    /// Frames with a wrong FCS, an unknown type or an invalid escape.
    pub(crate) bad: u64,
    /// Frames longer than the limit.
    pub(crate) oversized: u64,
}

/// Splits a byte stream into frames, whatever the chunks it arrives in.
#[derive(Debug)]
pub(crate) struct Decoder {
    buf: Vec<u8>,
    max: usize,
    escaped: bool,
    /// Skipping to the next END: a bad escape or an overflow.
    broken: bool,
    overflow: bool,
    pub(crate) stats: DecoderStats,
}

impl Decoder {
    /// A decoder for CoAP messages of at most `max_message` bytes.
    pub(crate) fn new(max_message: usize) -> Self {
        Self {
            buf: Vec::new(),
            max: max_message + 3, // type byte and FCS
            escaped: false,
            broken: false,
            overflow: false,
            stats: DecoderStats::default(),
        }
    }

    /// Feeds bytes in; every complete, intact CoAP message is pushed onto
    /// `frames` (type byte and FCS removed).
    pub(crate) fn feed(&mut self, bytes: &[u8], frames: &mut VecDeque<Vec<u8>>) {
        for &b in bytes {
            if b == END {
                self.end_frame(frames);
                continue;
            }
            if self.broken {
                continue; // skip to the next END
            }
            let byte = if self.escaped {
                self.escaped = false;
                match b {
                    ESC_END => END,
                    ESC_ESC => ESC,
                    _ => {
                        self.broken = true;
                        continue;
                    }
                }
            } else if b == ESC {
                self.escaped = true;
                continue;
            } else {
                b
            };
            if self.buf.len() == self.max {
                self.broken = true;
                self.overflow = true;
                self.stats.oversized += 1;
                continue;
            }
            self.buf.push(byte);
        }
    }

    fn end_frame(&mut self, frames: &mut VecDeque<Vec<u8>>) {
        let escaped = std::mem::take(&mut self.escaped);
        let broken = std::mem::take(&mut self.broken) || escaped;
        let overflow = std::mem::take(&mut self.overflow);
        let frame = std::mem::take(&mut self.buf);
        if frame.is_empty() && !broken {
            return; // back-to-back ENDs
        }
        let ok = !broken
            && frame.len() >= 3
            && frame.first() == Some(&COAP_FRAME)
            && fcs16(&frame[..frame.len() - 2]).to_le_bytes() == frame[frame.len() - 2..];
        if ok {
            self.stats.frames += 1;
            frames.push_back(frame[1..frame.len() - 2].to_vec());
        } else if !overflow {
            self.stats.bad += 1;
        }
    }
}

// ----- the line: an in-memory full-duplex byte stream ----------------------

/// A small deterministic RNG (xorshift64*) for the line noise.
#[derive(Debug)]
struct Noise(u64);

impl Noise {
    /// A generator whose state is spread from `seed` (splitmix64), never 0.
    fn seeded(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self((z ^ (z >> 31)).max(1))
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A value in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One end of a byte stream. Writes are delivered in chunks of 1 to 16
/// bytes, so frames arrive split at arbitrary points. A noisy line drops
/// one byte of 10% of the writes and flips one bit in another 10%.
#[derive(Debug)]
pub(crate) struct Wire {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
    noise: Option<Noise>,
    chunks: Noise,
    /// Writes damaged by the line noise.
    pub(crate) damaged: u64,
}

impl Wire {
    /// Two connected ends; `noise` seeds the line noise of both directions.
    pub(crate) fn pair(noise: Option<u64>) -> (Wire, Wire) {
        let (a_tx, b_rx) = mpsc::channel();
        let (b_tx, a_rx) = mpsc::channel();
        let end = |tx, rx, salt: u64| Wire {
            tx,
            rx,
            noise: noise.map(|s| Noise::seeded(s ^ salt)),
            chunks: Noise::seeded(salt),
            damaged: 0,
        };
        (end(a_tx, a_rx, 0xA), end(b_tx, b_rx, 0xB))
    }

    /// Writes bytes to the line. A hung-up peer is like a line nobody
    /// listens on: the bytes are lost.
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        let mut bytes = bytes.to_vec();
        if let Some(noise) = self.noise.as_mut()
            && !bytes.is_empty()
        {
            let at = noise.below(bytes.len());
            match noise.below(100) {
                0..10 => {
                    bytes.remove(at);
                    self.damaged += 1;
                }
                10..20 => {
                    bytes[at] ^= 1 << noise.below(8);
                    self.damaged += 1;
                }
                _ => {}
            }
        }
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let n = (1 + self.chunks.below(16)).min(rest.len());
            let (chunk, tail) = rest.split_at(n);
            let _ = self.tx.send(chunk.to_vec());
            rest = tail;
        }
    }

    /// The next bytes from the line, waiting at most `timeout` (`None`:
    /// forever). `Ok(None)` on timeout; an error once the peer hung up.
    pub(crate) fn read(&mut self, timeout: Option<Duration>) -> io::Result<Option<Vec<u8>>> {
        let hung_up = || io::Error::new(io::ErrorKind::BrokenPipe, "the peer hung up");
        match timeout {
            Some(t) => match self.rx.recv_timeout(t) {
                Ok(chunk) => Ok(Some(chunk)),
                Err(RecvTimeoutError::Timeout) => Ok(None),
                Err(RecvTimeoutError::Disconnected) => Err(hung_up()),
            },
            None => self.rx.recv().map(Some).map_err(|_| hung_up()),
        }
    }
}

// ----- the driver ------------------------------------------------------------

type Trace = Box<dyn FnMut(Direction, SerialPort, &[u8]) + Send>;

/// An [`Endpoint`] on one serial port, with a clock and buffers: the same
/// loop as `coap_proto::udp::UdpEndpoint`, over SLIP frames.
pub(crate) struct SlipEndpoint {
    peer: SerialPort,
    wire: Wire,
    decoder: Decoder,
    frames: VecDeque<Vec<u8>>,
    endpoint: Endpoint<SerialPort>,
    clock: Clock,
    tx: Vec<u8>,
    out: Vec<u8>,
    trace: Option<Trace>,
}

impl SlipEndpoint {
    /// An endpoint whose port leads to `peer` over `wire`.
    pub(crate) fn new(peer: SerialPort, wire: Wire, config: Config, seed: u64) -> Self {
        Self {
            peer,
            wire,
            decoder: Decoder::new(config.max_message_size),
            frames: VecDeque::new(),
            endpoint: Endpoint::new(config, seed),
            clock: Clock::new(std::time::Instant::now()),
            tx: vec![0; config.max_message_size],
            out: Vec::new(),
            trace: None,
        }
    }

    /// The engine, for commands and statistics.
    pub(crate) fn endpoint(&mut self) -> &mut Endpoint<SerialPort> {
        &mut self.endpoint
    }

    /// What the SLIP decoder dropped.
    pub(crate) fn decoder_stats(&self) -> DecoderStats {
        self.decoder.stats
    }

    /// Writes damaged by the line noise on the way out.
    pub(crate) fn damaged(&self) -> u64 {
        self.wire.damaged
    }

    /// Calls `trace` for every CoAP message received or sent.
    pub(crate) fn set_trace(
        &mut self,
        trace: impl FnMut(Direction, SerialPort, &[u8]) + Send + 'static,
    ) {
        self.trace = Some(Box::new(trace));
    }

    fn now(&self) -> Instant {
        self.clock.to_instant(std::time::Instant::now())
    }

    /// Frames and writes every queued datagram.
    fn flush(&mut self) {
        loop {
            match self.endpoint.poll_transmit(&mut self.tx) {
                Ok(Some(t)) => {
                    // One port, one peer: anything else has no route.
                    let Some(bytes) = self.tx.get(..t.len).filter(|_| t.to == self.peer) else {
                        continue;
                    };
                    if let Some(trace) = self.trace.as_mut() {
                        trace(Direction::Out, t.to, bytes);
                    }
                    self.out.clear();
                    encode_frame(bytes, &mut self.out);
                    self.wire.write(&self.out);
                }
                Ok(None) => return,
                Err(e) => self.tx.resize(e.required, 0),
            }
        }
    }

    /// One turn: waits for a frame or the next timer (at most `max_wait`),
    /// feeds it to the endpoint, sends what it queued, and hands every
    /// event to `on_event`.
    pub(crate) fn turn(
        &mut self,
        max_wait: Option<Duration>,
        mut on_event: impl FnMut(&mut Endpoint<SerialPort>, Instant, Event<SerialPort>),
    ) -> io::Result<()> {
        self.flush();
        let now = self.now();
        let timer_wait = self.endpoint.poll_timeout().map(|t| t - now);
        let wait = match (timer_wait, max_wait) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // One frame per turn, like one datagram per turn on UDP; bytes are
        // read only once the frames already decoded are used up.
        if self.frames.is_empty()
            && wait != Some(Duration::ZERO)
            && let Some(chunk) = self.wire.read(wait)?
        {
            self.decoder.feed(&chunk, &mut self.frames);
        }
        let now = self.now();
        if let Some(frame) = self.frames.pop_front() {
            if let Some(trace) = self.trace.as_mut() {
                trace(Direction::In, self.peer, &frame);
            }
            self.endpoint.handle_datagram(now, self.peer, &frame);
        } else {
            self.endpoint.handle_timeout(now);
        }
        self.flush();
        let now = self.now();
        while let Some(event) = self.endpoint.poll_event() {
            on_event(&mut self.endpoint, now, event);
        }
        self.flush();
        Ok(())
    }

    /// Answers requests with `handler` (`None`: 4.04) until `stop` is set.
    pub(crate) fn serve_until(
        &mut self,
        stop: &AtomicBool,
        mut handler: impl FnMut(&Message<'_>) -> Option<MessageBuf>,
    ) -> io::Result<()> {
        while !stop.load(Ordering::Relaxed) {
            self.turn(Some(Duration::from_millis(20)), |ep, now, event| {
                if let Event::Request(req) = event {
                    let answer = handler(&req.message())
                        .unwrap_or_else(|| MessageBuf::new(MessageType::Ack, Code::NOT_FOUND));
                    let _ = ep.respond(now, req.handle, &answer);
                    ep.recycle(req.message.into_bytes());
                }
            })?;
        }
        Ok(())
    }

    fn wait_for(&mut self, id: RequestId, timeout: Duration) -> io::Result<Outcome> {
        let deadline = std::time::Instant::now() + timeout;
        let mut outcome = None;
        while outcome.is_none() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                let now = self.now();
                let _ = self.endpoint.cancel(now, id);
                return Ok(Outcome::TimedOut);
            }
            self.turn(Some(left), |ep, _now, event| match event {
                Event::Response(r) if r.id == id => {
                    outcome = Some(Outcome::Response(MessageBuf::from(r.message())));
                    ep.recycle(r.message.into_bytes());
                }
                Event::TimedOut(r) if r == id => outcome = Some(Outcome::TimedOut),
                Event::Reset(r) | Event::Pong(r) if r == id => outcome = Some(Outcome::Reset),
                _ => {}
            })?;
        }
        Ok(outcome.unwrap_or(Outcome::TimedOut))
    }

    /// Sends a request to the peer and waits for its outcome.
    pub(crate) fn request(&mut self, msg: &MessageBuf, timeout: Duration) -> io::Result<Outcome> {
        let now = self.now();
        let id = self
            .endpoint
            .request(now, self.peer, msg)
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.wait_for(id, timeout)
    }

    /// Pings the peer; `true` if it answered.
    pub(crate) fn ping(&mut self, timeout: Duration) -> io::Result<bool> {
        let now = self.now();
        let id = self
            .endpoint
            .ping(now, self.peer)
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(matches!(self.wait_for(id, timeout)?, Outcome::Reset))
    }
}

// ----- the demo ----------------------------------------------------------------

/// How to run the demo.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    /// Damage bytes on the line.
    pub(crate) lossy: bool,
    /// Seed of the line noise and the endpoints' RNGs.
    pub(crate) seed: u64,
    /// Print every message and exchange.
    pub(crate) verbose: bool,
}

/// One request and its outcome.
#[derive(Debug)]
pub(crate) struct Exchange {
    /// The request, e.g. `GET /hello`.
    pub(crate) request: String,
    /// The response code, `None` for a timeout or Reset.
    pub(crate) code: Option<Code>,
    /// The response payload.
    pub(crate) payload: Vec<u8>,
}

/// What happened in a run.
#[derive(Debug)]
pub(crate) struct Report {
    /// Every request in order.
    pub(crate) exchanges: Vec<Exchange>,
    /// Whether the ping was answered.
    pub(crate) pong: bool,
    /// Requests the server's handler saw (duplicates are not delivered).
    pub(crate) handled: usize,
    /// The client's and the server's counters.
    pub(crate) client: Stats,
    /// The server's counters.
    pub(crate) server: Stats,
    /// What the SLIP decoders dropped: client side, server side.
    pub(crate) decoders: (DecoderStats, DecoderStats),
    /// Writes the line damaged.
    pub(crate) damaged: u64,
}

/// A payload with both SLIP special bytes in it, to exercise the escaping.
pub(crate) const BINARY: &[u8] = &[0x01, END, 0x02, ESC, ESC_END, ESC_ESC, END, END, 0xFF];

/// Parameters for this line. Short timers suit an in-memory line (its
/// round trip is microseconds); PROBING_RATE (RFC 7252 §4.7) is what a
/// 9600 baud line carries, not the 1 byte/s default, which would hold every
/// request after a lost one back for tens of seconds.
pub(crate) fn link_config() -> Config {
    let mut config = Config::default();
    config.transmission.ack_timeout = Duration::from_millis(40);
    config.transmission.max_retransmit = 6;
    config.transmission.probing_rate = 960;
    config.non_request_timeout = Duration::from_millis(500);
    config.separate_ack_delay = None;
    config
}

/// The server's resources: `/hello`, `/led` (GET, PUT, DELETE) and
/// `/echo` (POST).
fn server_handler() -> impl FnMut(&Message<'_>) -> Option<MessageBuf> + Send + 'static {
    let mut led: Vec<u8> = b"off".to_vec();
    move |req| {
        let path: Vec<_> = req.options_of(OptionNumber::URI_PATH).collect();
        let (code, payload) = match (req.code(), path.as_slice()) {
            (Code::GET, [b"hello"]) => (Code::CONTENT, b"hello over SLIP".to_vec()),
            (Code::GET, [b"led"]) => (Code::CONTENT, led.clone()),
            (Code::PUT, [b"led"]) => {
                led = req.payload().to_vec();
                (Code::CHANGED, Vec::new())
            }
            (Code::DELETE, [b"led"]) => {
                led = b"off".to_vec();
                (Code::DELETED, Vec::new())
            }
            (Code::POST, [b"echo"]) => (Code::CONTENT, req.payload().to_vec()),
            _ => return None,
        };
        let mut answer = MessageBuf::new(MessageType::Ack, code);
        answer.set_payload(payload);
        Some(answer)
    }
}

fn request(ty: MessageType, code: Code, path: &str, payload: &[u8]) -> MessageBuf {
    let mut msg = MessageBuf::new(ty, code);
    msg.add_option(OptionNumber::URI_PATH, path);
    msg.set_payload(payload.to_vec());
    msg
}

/// An outcome as `2.05 Content "text"` (hex when the payload is not
/// printable text), or "no answer".
fn describe(code: Option<Code>, payload: &[u8]) -> String {
    let Some(code) = code else {
        return "no answer".to_owned();
    };
    match std::str::from_utf8(payload) {
        Ok(text) if !text.chars().any(char::is_control) => format!("{code} {text:?}"),
        _ => {
            let mut text = format!("{code} ");
            for b in payload {
                let _ = write!(text, "{b:02x}");
            }
            text
        }
    }
}

fn tracer(who: &'static str) -> impl FnMut(Direction, SerialPort, &[u8]) + Send + 'static {
    move |dir, port, bytes| {
        let arrow = if dir == Direction::Out { "->" } else { "<-" };
        match Message::parse(bytes) {
            Ok(m) => println!("  {who:6} {arrow} {port} {m}"),
            Err(e) => println!("  {who:6} {arrow} {port} malformed: {e}"),
        }
    }
}

/// Runs a client and a server over one SLIP line and reports.
pub(crate) fn run(opts: Options) -> io::Result<Report> {
    let (client_wire, server_wire) = Wire::pair(opts.lossy.then_some(opts.seed));
    // Each side names the port the other one is on.
    let mut client = SlipEndpoint::new(SerialPort(1), client_wire, link_config(), opts.seed);
    let mut server = SlipEndpoint::new(SerialPort(0), server_wire, link_config(), !opts.seed);
    if opts.verbose {
        client.set_trace(tracer("client"));
        server.set_trace(tracer("server"));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let server_thread = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || -> io::Result<(SlipEndpoint, usize)> {
            let mut calls = 0;
            let mut resources = server_handler();
            server.serve_until(&stop, |req| {
                calls += 1;
                resources(req)
            })?;
            Ok((server, calls))
        })
    };

    let plan = [
        request(MessageType::Con, Code::GET, "hello", b""),
        request(MessageType::Con, Code::GET, "led", b""),
        request(MessageType::Con, Code::PUT, "led", b"on"),
        request(MessageType::Con, Code::GET, "led", b""),
        request(MessageType::Con, Code::POST, "echo", BINARY),
        request(MessageType::Con, Code::DELETE, "led", b""),
        request(MessageType::Con, Code::GET, "missing", b""),
        request(MessageType::Non, Code::GET, "hello", b""),
    ];
    let mut exchanges = Vec::new();
    let mut run_client = || -> io::Result<bool> {
        for msg in &plan {
            let path =
                String::from_utf8_lossy(msg.option(OptionNumber::URI_PATH).unwrap_or_default());
            let method = msg.code().name().unwrap_or("?");
            let label = format!("{} {method} /{path}", msg.ty());
            let outcome = client.request(msg, Duration::from_secs(5))?;
            let (code, payload) = match outcome {
                Outcome::Response(r) => (Some(r.code()), r.payload().to_vec()),
                _ => (None, Vec::new()),
            };
            if opts.verbose {
                println!("{label:20} => {}", describe(code, &payload));
            }
            exchanges.push(Exchange {
                request: label,
                code,
                payload,
            });
        }
        let pong = client.ping(Duration::from_secs(5))?;
        if opts.verbose {
            println!(
                "{:20} => {}",
                "ping",
                if pong { "pong" } else { "no answer" }
            );
        }
        Ok(pong)
    };
    let pong = run_client();
    stop.store(true, Ordering::Relaxed);
    let joined = server_thread
        .join()
        .map_err(|_| io::Error::other("the server thread panicked"))?;
    let pong = pong?;
    let (mut server, handled) = joined?;
    Ok(Report {
        exchanges,
        pong,
        handled,
        client: *client.endpoint().stats(),
        server: *server.endpoint().stats(),
        decoders: (client.decoder_stats(), server.decoder_stats()),
        damaged: client.damaged() + server.damaged(),
    })
}

fn main() -> io::Result<()> {
    let mut opts = Options {
        lossy: false,
        seed: 1,
        verbose: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--lossy" => opts.lossy = true,
            "--seed" => opts.seed = args.next().and_then(|s| s.parse().ok()).unwrap_or(1),
            _ => {
                eprintln!("usage: slip [--lossy] [--seed N]");
                std::process::exit(2);
            }
        }
    }
    println!(
        "CoAP over SLIP, client on ttyS0 <-> server on ttyS1, {} line",
        if opts.lossy { "noisy" } else { "clean" }
    );
    let report = run(opts)?;
    println!("summary:");
    for e in &report.exchanges {
        println!("  {:20} => {}", e.request, describe(e.code, &e.payload));
    }
    let answered = report.exchanges.iter().filter(|e| e.code.is_some()).count();
    println!(
        "{answered}/{} requests answered, ping {}; the server handled {} requests",
        report.exchanges.len(),
        if report.pong { "answered" } else { "lost" },
        report.handled
    );
    println!(
        "line: {} writes damaged; frames dropped by SLIP/FCS: client {}, server {}",
        report.damaged, report.decoders.0.bad, report.decoders.1.bad
    );
    println!(
        "client: {} retransmissions; server: {} duplicates answered from its cache",
        report.client.retransmissions, report.server.duplicates
    );
    Ok(())
}
