//! `coap load URI`: a closed-loop load generator over the one endpoint API.
//!
//! It keeps `--concurrency` GET requests in flight against one server, each
//! new request sent as soon as an earlier one is answered, and reports
//! requests/s, latency percentiles, timeouts and retransmissions. Every
//! request is sent and every response matched by a regular
//! [`Endpoint`]: message IDs, tokens, retransmission and deduplication are
//! the library's, not a second protocol implementation. Only the socket loop
//! is its own: one thread drives several connected sockets with batched
//! system calls on Linux (through the `nix` crate): one `poll` over all of
//! them, `recvmmsg` for the answers, and a burst of equal-sized requests as
//! one `sendmsg` with UDP GSO (`sendmmsg` where the kernel refuses GSO, or
//! with `COAP_LOAD_NO_GSO` set). The load generator must cost less per
//! request than the server it drives.
//!
//! Two protocol limits stand in the way of a load generator, and the tool
//! handles them in the open:
//!
//! - **NSTART** (RFC 7252 §4.7) allows one outstanding interaction per peer.
//!   Each client socket's endpoint gets `nstart` equal to the requests it
//!   keeps in flight (`--per-socket`), deliberately above the default of 1,
//!   as every CoAP load tool does. PROBING_RATE is raised as well: the
//!   endpoint counts every byte sent since it last heard from the peer
//!   against it, and pipelined requests always leave some; NSTART alone
//!   bounds what a server that stops answering receives.
//! - **Message IDs** (RFC 7252 §4.4) must not be reused towards a peer within
//!   EXCHANGE_LIFETIME (247 s), i.e. at most 65 536 messages per 247 s per
//!   peer, about 265 messages/s. The endpoint enforces this. Instead of
//!   shortening EXCHANGE_LIFETIME (which would reuse message IDs while the
//!   server may still deduplicate them, and so measure its cache instead of
//!   its handler), each socket is retired after 60 000 requests and replaced
//!   by a fresh socket on a new ephemeral port: a new peer for the server,
//!   with its own message ID space. A port that this run retired less than
//!   EXCHANGE_LIFETIME ago is not reused.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant as StdInstant};

use coap_proto::endpoint::{Config, Endpoint, Event, TransmissionParameters};
use coap_proto::message::uri::{Scheme, Uri};
use coap_proto::time::Clock;
use coap_proto::{MessageBuf, MessageType};

use crate::client_cmd::resolve;
use crate::{CmdResult, Failure, Global, Status};

/// Requests sent on one socket before it is replaced (fewer than the 61 441
/// message IDs the endpoint can always hand out within EXCHANGE_LIFETIME).
const REQUESTS_PER_SOCKET: u64 = 60_000;

/// The long help of `coap load`.
pub(crate) const LOAD_ABOUT: &str = "\
A load generator: keeps N GET requests in flight against URI (CON by default, \
--non for NON), each new request sent as soon as one is answered, and prints \
requests/s, p50/p99 latency, timeouts and retransmissions. The last line on \
stdout is for scripts:
  requests=N ok=N errors=N rps=N p50_us=N p99_us=N max_us=N timeouts=N retransmissions=N sockets=N elapsed_s=F

It uses the library's endpoint for every request (no second protocol \
implementation) and deliberately departs from two defaults, as load tools do:

- NSTART (RFC 7252 §4.7, default 1 outstanding interaction per peer) is \
raised to --per-socket on each client socket, and PROBING_RATE with it (the \
endpoint holds back data towards a peer it has not heard from since its last \
send, which pipelining always has; NSTART bounds what a silent server gets).
- A peer may not reuse a message ID within EXCHANGE_LIFETIME (RFC 7252 §4.4, \
247 s): 65536 IDs per 247 s, about 265 requests/s per peer. The load is \
spread over ceil(N / --per-socket) sockets, and each socket is replaced by a \
fresh one (a new ephemeral port, so a new peer for the server) after 60000 \
requests; a port this run closed is not taken again within 247 s. \
EXCHANGE_LIFETIME is not shortened, so no message ID is reused towards the \
server within it, and the server always runs its handler rather than \
answering from its deduplication cache.

Only run it against servers on this machine or ones you are allowed to load.";

/// Arguments of `coap load`.
#[derive(Debug, clap::Args)]
pub(crate) struct LoadArgs {
    /// The resource to GET: `coap://HOST[:PORT]/PATH[?QUERY]`.
    #[arg(value_name = "URI", value_parser = parse_uri)]
    uri: String,

    /// Requests kept in flight.
    #[arg(long, short = 'c', default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=16384))]
    concurrency: u32,

    /// How long to run, in seconds (fractions allowed).
    #[arg(long, short = 'd', value_name = "SECONDS", default_value = "10", value_parser = parse_secs)]
    duration: Duration,

    /// Stop after this many answered requests (or at --duration, whichever
    /// comes first).
    #[arg(long, short = 'n', value_name = "N")]
    requests: Option<u64>,

    /// Send NON (non-confirmable) requests instead of CON.
    #[arg(long)]
    non: bool,

    /// Requests in flight per client socket (its NSTART); more sockets are
    /// opened for higher concurrency.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    per_socket: u32,

    /// Give up on a request after this many seconds; it counts as a timeout
    /// (a CON request is retransmitted meanwhile, RFC 7252 §4.2).
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = parse_secs)]
    timeout: Duration,
}

fn parse_uri(s: &str) -> Result<String, String> {
    let uri = Uri::parse(s).map_err(|e| format!("invalid URI ({e})"))?;
    if uri.scheme() != Scheme::Coap {
        return Err(format!(
            "unsupported scheme \"{}\": only coap:// (CoAP over UDP) is supported",
            uri.scheme()
        ));
    }
    Ok(s.to_owned())
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|t| t.is_finite() && *t > 0.0 && *t <= 1e7)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{s:?} is not a positive number of seconds"))
}

// ---------------------------------------------------------------------------
// Latency histogram

/// Latencies: 1 µs buckets up to 10 ms, then 1 ms buckets up to 120 s.
struct Histogram {
    fine: Vec<u64>,
    coarse: Vec<u64>,
    count: u64,
    max: u64,
}

const FINE_US: u64 = 10_000;

impl Histogram {
    fn new() -> Self {
        Self {
            fine: vec![0; FINE_US as usize],
            coarse: vec![0; 120_000],
            count: 0,
            max: 0,
        }
    }

    fn record(&mut self, us: u64) {
        self.count += 1;
        self.max = self.max.max(us);
        let slot = if us < FINE_US {
            self.fine.get_mut(us as usize)
        } else {
            let i = (us / 1000).min(self.coarse.len() as u64 - 1);
            self.coarse.get_mut(i as usize)
        };
        if let Some(c) = slot {
            *c += 1;
        }
    }

    /// The smallest recorded value with at least `q` of all values at or
    /// below it.
    fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_sign_loss,
            clippy::cast_possible_truncation
        )]
        let rank = ((self.count as f64 * q).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (us, c) in self.fine.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return us as u64;
            }
        }
        for (ms, c) in self.coarse.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return (ms as u64) * 1000;
            }
        }
        self.max
    }
}

// ---------------------------------------------------------------------------
// Client sockets

/// One client socket with its own endpoint: one peer, from the server's view.
struct Lane {
    socket: UdpSocket,
    ep: Endpoint<SocketAddr>,
    /// When each open request was sent, by `RequestId::raw`.
    started: HashMap<u64, StdInstant>,
    /// Requests sent (each took a fresh message ID).
    sent: u64,
}

/// A share of the concurrency: `slots` requests in flight over the current
/// lane plus retired lanes that still have requests open.
struct Group {
    slots: usize,
    current: Lane,
    retired: Vec<Lane>,
}

#[derive(Default)]
struct Totals {
    answered: u64,
    ok: u64,
    errors: u64,
    timeouts: u64,
    resets: u64,
    retransmissions: u64,
    sockets: u64,
}

struct Load {
    peer: SocketAddr,
    request: MessageBuf,
    config: Config,
    clock: Clock,
    timeout: Duration,
    /// Ports of closed sockets, and when they were closed.
    retired_ports: HashMap<u16, StdInstant>,
    lifetime: Duration,
    hist: Histogram,
    totals: Totals,
}

impl Load {
    fn new_lane(&mut self) -> io::Result<Lane> {
        let local = crate::client_cmd::any_addr(self.peer);
        let now = StdInstant::now();
        self.retired_ports
            .retain(|_, at| now.duration_since(*at) < self.lifetime);
        // Skip ports this run closed within EXCHANGE_LIFETIME: the server
        // could still remember their message IDs.
        let mut held = Vec::new();
        let socket = loop {
            let s = UdpSocket::bind(local)?;
            let port = s.local_addr()?.port();
            if !self.retired_ports.contains_key(&port) || held.len() >= 64 {
                break s;
            }
            held.push(s);
        };
        drop(held);
        // Connected: the kernel keeps the route, and only the server's
        // datagrams are received.
        socket.connect(self.peer)?;
        socket.set_nonblocking(true)?;
        self.totals.sockets += 1;
        Ok(Lane {
            socket,
            ep: Endpoint::new(self.config, coap_proto::udp::os_seed()),
            started: HashMap::new(),
            sent: 0,
        })
    }

    fn retire(&mut self, lane: &Lane) {
        self.totals.retransmissions += lane.ep.stats().retransmissions;
        if let Ok(a) = lane.socket.local_addr() {
            self.retired_ports.insert(a.port(), StdInstant::now());
        }
    }

    /// Sends requests until the group has `slots` in flight.
    fn top_up(&mut self, group: &mut Group, now: StdInstant, budget: &mut u64) -> io::Result<()> {
        loop {
            let open = group.current.started.len()
                + group.retired.iter().map(|l| l.started.len()).sum::<usize>();
            if open >= group.slots || *budget == 0 {
                return Ok(());
            }
            if group.current.sent >= REQUESTS_PER_SOCKET {
                let fresh = self.new_lane()?;
                let old = std::mem::replace(&mut group.current, fresh);
                group.retired.push(old);
            }
            let lane = &mut group.current;
            let t = self.clock.to_instant(now);
            match lane.ep.request(t, self.peer, &self.request) {
                Ok(id) => {
                    lane.sent += 1;
                    *budget -= 1;
                    lane.started.insert(id.raw(), now);
                }
                Err(e) => return Err(io::Error::other(e.to_string())),
            }
        }
    }

    /// Handles the lane's events; latencies are measured at `now`.
    fn drain_events(&mut self, lane: &mut Lane, now: StdInstant) {
        while let Some(ev) = lane.ep.poll_event() {
            match ev {
                Event::Response(r) => {
                    if let Some(t0) = lane.started.remove(&r.id.raw()) {
                        self.totals.answered += 1;
                        if r.message().code().is_success() {
                            self.totals.ok += 1;
                        } else {
                            self.totals.errors += 1;
                        }
                        let us = now.saturating_duration_since(t0).as_micros();
                        self.hist.record(u64::try_from(us).unwrap_or(u64::MAX));
                    }
                    lane.ep.recycle(r.message.into_bytes());
                }
                Event::TimedOut(id) if lane.started.remove(&id.raw()).is_some() => {
                    self.totals.timeouts += 1;
                }
                Event::Reset(id) if lane.started.remove(&id.raw()).is_some() => {
                    self.totals.resets += 1;
                }
                Event::Request(req) => {
                    // Nobody should send us requests; answer 5.03 and go on.
                    let busy =
                        MessageBuf::new(MessageType::Ack, coap_proto::Code::SERVICE_UNAVAILABLE);
                    let _ = lane
                        .ep
                        .respond(self.clock.to_instant(now), req.handle, &busy);
                    lane.ep.recycle(req.message.into_bytes());
                }
                _ => {}
            }
        }
    }

    /// Cancels requests older than `--timeout` (counted as timeouts).
    fn expire(&mut self, lane: &mut Lane, now: StdInstant) {
        let t = self.clock.to_instant(now);
        let timeout = self.timeout;
        let expired: Vec<u64> = lane
            .started
            .iter()
            .filter(|(_, t0)| now.saturating_duration_since(**t0) >= timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            lane.started.remove(&id);
            let _ = lane
                .ep
                .cancel(t, coap_proto::endpoint::RequestId::from_raw(id));
            self.totals.timeouts += 1;
        }
    }
}

// ---------------------------------------------------------------------------
// The command

pub(crate) fn load(_global: Global, args: &LoadArgs) -> CmdResult {
    let uri = Uri::parse(&args.uri)
        .map_err(|e| Failure::usage(format!("invalid URI {:?} ({e})", args.uri)))?;
    let peer = resolve(&uri)?;
    let ty = if args.non {
        MessageType::Non
    } else {
        MessageType::Con
    };
    let mut request = MessageBuf::new(ty, coap_proto::Code::GET);
    request.set_uri(&uri, Some(peer));

    let concurrency = args.concurrency as usize;
    let per_socket = (args.per_socket as usize).min(concurrency);
    let mut config = Config::default();
    // Deliberately above RFC 7252's NSTART of 1 (see the module docs).
    config.transmission.nstart = u16::try_from(per_socket).unwrap_or(u16::MAX);
    // The endpoint holds data back towards a peer it has not heard from
    // since its last send (PROBING_RATE, 1 byte/s). Pipelining NSTART
    // requests means there always is such data, so the rate is raised:
    // NSTART alone bounds what a server that stops answering receives.
    config.transmission.probing_rate = u32::MAX;
    config.max_requests = per_socket;
    config.non_request_timeout = args.timeout;
    config.separate_response_timeout = args.timeout;

    let mut load = Load {
        peer,
        request,
        config,
        clock: Clock::new(StdInstant::now()),
        timeout: args.timeout,
        retired_ports: HashMap::new(),
        lifetime: TransmissionParameters::default().exchange_lifetime(),
        hist: Histogram::new(),
        totals: Totals::default(),
    };
    let mut groups = Vec::new();
    let mut left = concurrency;
    while left > 0 {
        let slots = left.min(per_socket);
        left -= slots;
        let current = load.new_lane().map_err(net_error)?;
        groups.push(Group {
            slots,
            current,
            retired: Vec::new(),
        });
    }
    let elapsed = load
        .run(&mut groups, args.duration, args.requests)
        .map_err(net_error)?;
    for g in groups {
        load.retire(&g.current);
        for l in &g.retired {
            load.retire(l);
        }
    }
    load.report(args, elapsed);
    if load.totals.answered == 0 {
        return Err(Failure::new(Status::NoAnswer, "no request was answered"));
    }
    if load.totals.ok == 0 {
        return Err(Failure::new(
            Status::ErrorResponse,
            "every response was an error (4.xx/5.xx)",
        ));
    }
    Ok(())
}

#[allow(clippy::needless_pass_by_value)] // a `map_err` adapter
fn net_error(e: io::Error) -> Failure {
    Failure::new(Status::NoAnswer, format!("socket error: {e}"))
}

/// Every lane of every group.
fn lanes(groups: &mut [Group]) -> impl Iterator<Item = &mut Lane> {
    groups
        .iter_mut()
        .flat_map(|g| std::iter::once(&mut g.current).chain(g.retired.iter_mut()))
}

impl Load {
    /// The loop: top up, send, wait, receive, until `duration` passes or
    /// `requests` are done. Returns the time it ran.
    fn run(
        &mut self,
        groups: &mut [Group],
        duration: Duration,
        requests: Option<u64>,
    ) -> io::Result<Duration> {
        let mut io = batch::Io::new();
        let start = StdInstant::now();
        let end = start + duration;
        // Requests still to send: with --requests, exactly that many.
        let mut budget = requests.unwrap_or(u64::MAX);
        let mut last_expiry = start;
        let mut now = start;
        loop {
            let t = &self.totals;
            if now >= end || requests.is_some_and(|n| t.answered + t.timeouts + t.resets >= n) {
                return Ok(now.duration_since(start));
            }
            for g in groups.iter_mut() {
                self.top_up(g, now, &mut budget)?;
            }
            // Send, and wait for an answer at most until the next timer (or
            // 10 ms, to notice the end).
            let mut wait = end
                .saturating_duration_since(now)
                .min(Duration::from_millis(10));
            for lane in lanes(groups) {
                io.flush(&lane.socket, &mut lane.ep)?;
                if let Some(at) = lane.ep.poll_timeout() {
                    wait = wait.min(self.clock.to_std(at).saturating_duration_since(now));
                }
            }
            let ready = {
                let sockets: Vec<&UdpSocket> = lanes(groups).map(|l| &l.socket).collect();
                batch::wait(&sockets, wait)?
            };
            now = StdInstant::now();
            let t = self.clock.to_instant(now);
            for (lane, ready) in lanes(groups).zip(ready.into_iter().chain(std::iter::repeat(true)))
            {
                if ready {
                    io.recv(&lane.socket, |from, bytes| {
                        lane.ep.handle_datagram(t, from, bytes);
                    })?;
                }
                if lane.ep.poll_timeout().is_some_and(|at| at <= t) {
                    lane.ep.handle_timeout(t);
                }
                self.drain_events(lane, now);
            }
            if now.duration_since(last_expiry) >= Duration::from_millis(20) {
                last_expiry = now;
                for lane in lanes(groups) {
                    self.expire(lane, now);
                }
            }
            // Close retired sockets with nothing left open.
            for g in groups.iter_mut() {
                let (done, keep): (Vec<Lane>, Vec<Lane>) = std::mem::take(&mut g.retired)
                    .into_iter()
                    .partition(|l| l.started.is_empty());
                g.retired = keep;
                for l in &done {
                    self.retire(l);
                }
            }
        }
    }

    /// Prints the summary: human lines on stderr, the line for scripts on
    /// stdout.
    fn report(&self, args: &LoadArgs, elapsed: Duration) {
        let t = &self.totals;
        let secs = elapsed.as_secs_f64().max(1e-9);
        #[allow(clippy::cast_precision_loss)] // a count far below 2^52
        let rps = t.answered as f64 / secs;
        let (p50, p99) = (self.hist.quantile(0.50), self.hist.quantile(0.99));
        let mut human = String::new();
        let _ = writeln!(
            human,
            "coap load: GET {} ({}) with {} in flight over {} socket(s) for {secs:.2} s",
            args.uri,
            if args.non { "NON" } else { "CON" },
            args.concurrency,
            t.sockets,
        );
        let _ = writeln!(
            human,
            "  {} answered ({} 2.xx, {} other), {} timeouts, {} resets, {} retransmissions",
            t.answered, t.ok, t.errors, t.timeouts, t.resets, t.retransmissions
        );
        let _ = write!(
            human,
            "  {rps:.0} requests/s; latency p50 {p50} us, p99 {p99} us, max {} us",
            self.hist.max
        );
        eprintln!("{human}");
        println!(
            "requests={} ok={} errors={} rps={rps:.0} p50_us={p50} p99_us={p99} max_us={} \
             timeouts={} retransmissions={} sockets={} elapsed_s={secs:.3}",
            t.answered + t.timeouts + t.resets,
            t.ok,
            t.errors,
            self.hist.max,
            t.timeouts,
            t.retransmissions,
            t.sockets,
        );
    }
}

// ---------------------------------------------------------------------------
// Socket I/O

/// Batched socket calls on Linux: `recvmmsg`, `sendmmsg` and `poll`.
#[cfg(target_os = "linux")]
mod batch {
    use std::io::{self, IoSlice, IoSliceMut};
    use std::net::{SocketAddr, UdpSocket};
    use std::os::fd::{AsFd, AsRawFd};
    use std::time::Duration;

    use coap_proto::endpoint::Endpoint;
    use nix::errno::Errno;
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::socket::{
        ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg, sendmsg,
    };

    /// Datagrams per system call.
    const BATCH: usize = 64;
    const SIZE: usize = 1500;

    pub(super) struct Io {
        bufs: Vec<Vec<u8>>,
        lens: Vec<usize>,
        addrs: Vec<Option<SockaddrStorage>>,
        from: Vec<Option<SocketAddr>>,
        rx: MultiHeaders<SockaddrStorage>,
        tx: MultiHeaders<SockaddrStorage>,
        /// Use UDP GSO for bursts (until the kernel refuses it).
        gso: bool,
        joined: Vec<u8>,
    }

    fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
        if let Some(v4) = a.as_sockaddr_in() {
            return Some(SocketAddr::V4((*v4).into()));
        }
        a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
    }

    /// Errors that only mean "nothing now" or "that datagram was lost".
    fn transient(e: Errno) -> bool {
        matches!(
            e,
            Errno::EAGAIN
                | Errno::EINTR
                | Errno::ECONNREFUSED
                | Errno::ENOBUFS
                | Errno::EHOSTUNREACH
                | Errno::ENETUNREACH
        )
    }

    impl Io {
        pub(super) fn new() -> Self {
            Self {
                bufs: vec![vec![0; SIZE]; BATCH],
                lens: vec![0; BATCH],
                addrs: vec![None; BATCH],
                from: vec![None; BATCH],
                rx: MultiHeaders::preallocate(BATCH, None),
                tx: MultiHeaders::preallocate(BATCH, None),
                gso: std::env::var_os("COAP_LOAD_NO_GSO").is_none(),
                joined: Vec::with_capacity(BATCH * SIZE),
            }
        }

        /// Receives what is queued (without blocking) and hands each
        /// datagram to `each`.
        pub(super) fn recv(
            &mut self,
            socket: &UdpSocket,
            mut each: impl FnMut(SocketAddr, &[u8]),
        ) -> io::Result<()> {
            loop {
                let mut n = 0;
                {
                    let mut iovs: Vec<[IoSliceMut<'_>; 1]> =
                        self.bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
                    match recvmmsg(
                        socket.as_raw_fd(),
                        &mut self.rx,
                        iovs.iter_mut(),
                        MsgFlags::MSG_DONTWAIT,
                        None,
                    ) {
                        Ok(results) => {
                            for (i, r) in results.enumerate() {
                                if let (Some(len), Some(from)) =
                                    (self.lens.get_mut(i), self.from.get_mut(i))
                                {
                                    *len = r.bytes;
                                    *from = r.address.as_ref().and_then(to_std);
                                    n = i + 1;
                                }
                            }
                        }
                        Err(e) if transient(e) => return Ok(()),
                        Err(e) => return Err(e.into()),
                    }
                }
                for i in 0..n {
                    if let (Some(Some(from)), Some(len), Some(buf)) =
                        (self.from.get(i), self.lens.get(i), self.bufs.get(i))
                    {
                        each(*from, buf.get(..*len).unwrap_or_default());
                    }
                }
                if n < BATCH {
                    return Ok(());
                }
            }
        }

        /// Sends everything the endpoint has queued.
        pub(super) fn flush(
            &mut self,
            socket: &UdpSocket,
            ep: &mut Endpoint<SocketAddr>,
        ) -> io::Result<()> {
            loop {
                let mut n = 0;
                while n < BATCH {
                    let Some(buf) = self.bufs.get_mut(n) else {
                        break;
                    };
                    match ep.poll_transmit(buf) {
                        Ok(Some(t)) => {
                            if let (Some(len), Some(addr)) =
                                (self.lens.get_mut(n), self.addrs.get_mut(n))
                            {
                                *len = t.len;
                                *addr = Some(SockaddrStorage::from(t.to));
                                n += 1;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => buf.resize(e.required, 0),
                    }
                }
                if self.gso {
                    self.send_gso(socket, n)?;
                } else {
                    self.send_mmsg(socket, n)?;
                }
                if n < BATCH {
                    return Ok(());
                }
            }
        }

        /// Sends datagrams `0..n` with one `sendmmsg` (or more, after an
        /// error).
        fn send_mmsg(&mut self, socket: &UdpSocket, n: usize) -> io::Result<()> {
            let mut sent = 0;
            while sent < n {
                let iovs: Vec<[IoSlice<'_>; 1]> = (sent..n)
                    .map(|i| {
                        let len = self.lens.get(i).copied().unwrap_or(0);
                        [IoSlice::new(
                            self.bufs
                                .get(i)
                                .and_then(|b| b.get(..len))
                                .unwrap_or_default(),
                        )]
                    })
                    .collect();
                let addrs = self.addrs.get(sent..n).unwrap_or_default();
                match sendmmsg(
                    socket.as_raw_fd(),
                    &mut self.tx,
                    iovs.iter(),
                    addrs,
                    [],
                    MsgFlags::empty(),
                ) {
                    Ok(results) => sent += results.count().max(1),
                    // Like a lost datagram: retransmission handles it.
                    Err(e) if transient(e) => sent += 1,
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        }

        /// Sends datagrams `0..n` on a socket connected to their
        /// destination: each run of equal-sized ones (a burst of requests)
        /// as one `sendmsg` with UDP generic segmentation offload, which the
        /// kernel splits into separate datagrams before they reach the
        /// server; the rest one `send` each. Falls back to `sendmmsg` for
        /// good if the kernel refuses GSO.
        fn send_gso(&mut self, socket: &UdpSocket, n: usize) -> io::Result<()> {
            let peer = socket.peer_addr().ok().map(SockaddrStorage::from);
            let mut first = 0;
            while first < n {
                let len = self.lens.get(first).copied().unwrap_or(0);
                let addr = self.addrs.get(first).copied().flatten();
                let mut end = first + 1;
                while end < n
                    && self.lens.get(end) == Some(&len)
                    && self.addrs.get(end).copied().flatten() == addr
                {
                    end += 1;
                }
                let result = if end - first >= 2 && addr == peer && len > 0 {
                    self.joined.clear();
                    for b in self.bufs.get(first..end).unwrap_or_default() {
                        self.joined
                            .extend_from_slice(b.get(..len).unwrap_or_default());
                    }
                    let segment = u16::try_from(len).unwrap_or(u16::MAX);
                    let sent = sendmsg::<SockaddrStorage>(
                        socket.as_raw_fd(),
                        &[IoSlice::new(&self.joined)],
                        &[ControlMessage::UdpGsoSegments(&segment)],
                        MsgFlags::empty(),
                        None,
                    );
                    if matches!(
                        sent,
                        Err(Errno::EIO | Errno::EINVAL | Errno::ENOPROTOOPT | Errno::EOPNOTSUPP)
                    ) {
                        self.gso = false;
                        return self.send_mmsg_range(socket, first, n);
                    }
                    sent.map(|_| ())
                } else {
                    for k in first..end {
                        let buf = self
                            .bufs
                            .get(k)
                            .and_then(|b| b.get(..len))
                            .unwrap_or_default();
                        let sent = match (addr == peer, addr.as_ref()) {
                            (true, _) | (_, None) => socket.send(buf).map(|_| ()),
                            (false, Some(a)) => nix::sys::socket::sendto(
                                socket.as_raw_fd(),
                                buf,
                                a,
                                MsgFlags::empty(),
                            )
                            .map(|_| ())
                            .map_err(io::Error::from),
                        };
                        if let Err(e) = sent {
                            match e.raw_os_error().map(Errno::from_raw) {
                                Some(errno) if transient(errno) => {}
                                _ => return Err(e),
                            }
                        }
                    }
                    Ok(())
                };
                match result {
                    Ok(()) => {}
                    Err(e) if transient(e) => {}
                    Err(e) => return Err(e.into()),
                }
                first = end;
            }
            Ok(())
        }

        /// `send_mmsg` for datagrams `from..n`.
        fn send_mmsg_range(&mut self, socket: &UdpSocket, from: usize, n: usize) -> io::Result<()> {
            if from > 0 {
                self.bufs.get_mut(..n).unwrap_or_default().rotate_left(from);
                self.lens.get_mut(..n).unwrap_or_default().rotate_left(from);
                self.addrs
                    .get_mut(..n)
                    .unwrap_or_default()
                    .rotate_left(from);
            }
            self.send_mmsg(socket, n - from)
        }
    }

    /// Waits until one of `sockets` is readable or `timeout` passes; which
    /// ones are readable.
    pub(super) fn wait(sockets: &[&UdpSocket], timeout: Duration) -> io::Result<Vec<bool>> {
        let mut fds: Vec<PollFd<'_>> = sockets
            .iter()
            .map(|s| PollFd::new(s.as_fd(), PollFlags::POLLIN))
            .collect();
        let ms = u32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(u32::MAX);
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect())
    }
}

/// Portable fallback: one `recv_from`/`send_to` per datagram, and a short
/// sleep when no socket has anything (a weaker load generator than Linux's).
#[cfg(not(target_os = "linux"))]
mod batch {
    use std::io;
    use std::net::{SocketAddr, UdpSocket};
    use std::time::Duration;

    use coap_proto::endpoint::Endpoint;

    pub(super) struct Io {
        buf: Vec<u8>,
    }

    fn transient(e: &io::Error) -> bool {
        matches!(
            e.kind(),
            io::ErrorKind::WouldBlock
                | io::ErrorKind::Interrupted
                | io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionReset
        )
    }

    impl Io {
        pub(super) fn new() -> Self {
            Self { buf: vec![0; 1500] }
        }

        pub(super) fn recv(
            &mut self,
            socket: &UdpSocket,
            mut each: impl FnMut(SocketAddr, &[u8]),
        ) -> io::Result<()> {
            loop {
                match socket.recv_from(&mut self.buf) {
                    Ok((n, from)) => each(from, self.buf.get(..n).unwrap_or_default()),
                    Err(e) if transient(&e) => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        }

        pub(super) fn flush(
            &mut self,
            socket: &UdpSocket,
            ep: &mut Endpoint<SocketAddr>,
        ) -> io::Result<()> {
            loop {
                match ep.poll_transmit(&mut self.buf) {
                    Ok(Some(t)) => {
                        match socket.send_to(self.buf.get(..t.len).unwrap_or_default(), t.to) {
                            Ok(_) => {}
                            Err(e) if transient(&e) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Ok(None) => return Ok(()),
                    Err(e) => self.buf.resize(e.required, 0),
                }
            }
        }
    }

    pub(super) fn wait(sockets: &[&UdpSocket], timeout: Duration) -> io::Result<Vec<bool>> {
        std::thread::sleep(timeout.min(Duration::from_micros(50)));
        Ok(vec![true; sockets.len()])
    }
}
