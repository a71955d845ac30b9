//! A blocking, single-threaded UDP driver over `std::net::UdpSocket`
//! (feature `std`). It is a thin loop over the one [`Endpoint`] API: it reads
//! the clock, feeds datagrams and timeouts in, and writes datagrams out.
//!
//! ```no_run
//! use coap_proto::udp::UdpEndpoint;
//! use coap_proto::endpoint::{Config, Event};
//! use coap_proto::{Code, MessageBuf, MessageType};
//!
//! // A server: answer every request with 2.05 "hello".
//! let mut server = UdpEndpoint::bind("127.0.0.1:5683", Config::default())?;
//! server.serve(|req| {
//!     let mut answer = MessageBuf::new(MessageType::Ack, Code::CONTENT);
//!     answer.set_payload(format!("hello, {} bytes", req.payload().len()));
//!     Some(answer)
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::boxed::Box;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::string::ToString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use std::vec::Vec;

use crate::endpoint::{Config, Endpoint, Event, RequestId};
use crate::message::{Message, MessageBuf};
use crate::time::{Clock, Instant};

/// A seed from the operating system's randomness, without extra crates:
/// std's `RandomState` keys come from the OS (getrandom on Linux); on Unix
/// `/dev/urandom` is mixed in as well.
///
/// ```
/// assert_ne!(coap_proto::udp::os_seed(), coap_proto::udp::os_seed());
/// ```
#[must_use]
pub fn os_seed() -> u64 {
    use core::hash::BuildHasher;
    let mut seed = std::collections::hash_map::RandomState::new().hash_one(0x636f_6170_u64);
    #[cfg(unix)]
    {
        use std::io::Read;
        let mut b = [0u8; 8];
        if std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut b))
            .is_ok()
        {
            seed ^= u64::from_le_bytes(b);
        }
    }
    seed
}

/// Which way a traced datagram went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Received from the peer.
    In,
    /// Sent to the peer.
    Out,
}

/// How a blocking [`UdpEndpoint::request`] ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// The response.
    Response(MessageBuf),
    /// No ACK or response in time.
    TimedOut,
    /// The peer answered with a Reset.
    Reset,
}

pub(crate) type Trace = Box<dyn FnMut(Direction, SocketAddr, &[u8]) + Send>;

/// How often [`UdpEndpoint::serve_until`] looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

// The pieces below are shared with the tokio adapter (`crate::tokio`) so
// that both drivers make the same decisions; only the waiting differs.

/// How long a turn may wait: until the endpoint's next deadline or
/// `max_wait`, whichever is first (`None`: no limit).
pub(crate) fn wait_time(
    deadline: Option<Instant>,
    now: Instant,
    max_wait: Option<Duration>,
) -> Option<Duration> {
    let timer_wait = deadline.map(|t| t - now);
    match (timer_wait, max_wait) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A send error that is like a lost datagram (retransmission handles it).
pub(crate) fn is_lost_send(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::InvalidInput
    )
}

/// A receive error that only reports an ICMP error for an earlier send
/// (Linux: ECONNREFUSED on connected sockets; Windows: WSAECONNRESET).
pub(crate) fn is_icmp_recv(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
    )
}

/// What `serve` does with one event: answer requests through `handler`
/// (`None` becomes 4.04), ignore everything else.
pub(crate) fn serve_event(
    ep: &mut Endpoint<SocketAddr>,
    now: Instant,
    event: Event<SocketAddr>,
    handler: &mut impl FnMut(&Message<'_>) -> Option<MessageBuf>,
) {
    if let Event::Request(req) = event {
        let answer = handler(&req.message()).unwrap_or_else(|| {
            crate::MessageBuf::new(crate::MessageType::Ack, crate::Code::NOT_FOUND)
        });
        // A full table only means this answer is dropped; the
        // client retransmits.
        let _ = ep.respond(now, req.handle, &answer);
        ep.recycle(req.message.into_bytes());
    }
}

/// What `request` does with one event while it waits for `id`: the outcome
/// if this event ends it; incoming requests meanwhile are answered 5.03.
pub(crate) fn request_event(
    ep: &mut Endpoint<SocketAddr>,
    now: Instant,
    event: Event<SocketAddr>,
    id: RequestId,
) -> Option<Outcome> {
    match event {
        Event::Response(r) if r.id == id => {
            let outcome = Outcome::Response(MessageBuf::from(r.message()));
            ep.recycle(r.message.into_bytes());
            Some(outcome)
        }
        Event::TimedOut(r) if r == id => Some(Outcome::TimedOut),
        Event::Reset(r) | Event::Pong(r) if r == id => Some(Outcome::Reset),
        Event::Request(req) => {
            let busy = MessageBuf::new(crate::MessageType::Ack, crate::Code::SERVICE_UNAVAILABLE);
            let _ = ep.respond(now, req.handle, &busy);
            ep.recycle(req.message.into_bytes());
            None
        }
        _ => None,
    }
}

/// How long a driver may wait, from [`Core::wait`] and [`Core::time_left`].
pub(crate) enum Wait {
    /// A deadline has passed (and was dealt with): do not wait.
    Expired,
    /// Wait for a datagram at most this long (`None`: no limit).
    Upto(Option<Duration>),
}

/// The state both drivers share (the endpoint, its clock and the trace
/// hook) and the steps of a turn that do not wait. A driver adds only its
/// socket calls and its way of waiting, so both make the same decisions.
pub(crate) struct Core {
    pub(crate) endpoint: Endpoint<SocketAddr>,
    pub(crate) clock: Clock,
    pub(crate) trace: Option<Trace>,
}

impl Core {
    pub(crate) fn new(config: Config, seed: u64) -> Self {
        Self {
            endpoint: Endpoint::new(config, seed),
            clock: Clock::new(std::time::Instant::now()),
            trace: None,
        }
    }

    /// The current time on the endpoint's clock.
    pub(crate) fn now(&self) -> Instant {
        self.clock.to_instant(std::time::Instant::now())
    }

    /// The start of a turn: handles the timers if a deadline has passed,
    /// or says how long to wait for a datagram.
    pub(crate) fn wait(&mut self, max_wait: Option<Duration>) -> Wait {
        let now = self.now();
        let wait = wait_time(self.endpoint.poll_timeout(), now, max_wait);
        if wait == Some(Duration::ZERO) {
            self.endpoint.handle_timeout(now);
            Wait::Expired
        } else {
            Wait::Upto(wait)
        }
    }

    /// Feeds a received datagram to the endpoint (and the trace hook).
    pub(crate) fn received(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if let Some(trace) = self.trace.as_mut() {
            trace(Direction::In, from, bytes);
        }
        self.endpoint.handle_datagram(now, from, bytes);
    }

    /// The wait ended without a datagram.
    pub(crate) fn timed_out(&mut self) {
        let now = self.now();
        self.endpoint.handle_timeout(now);
    }

    /// Writes the next queued datagram into `buf` (grown if a datagram
    /// exceeds it) and returns where it goes and its length.
    pub(crate) fn next_transmit(&mut self, buf: &mut Vec<u8>) -> Option<(SocketAddr, usize)> {
        loop {
            match self.endpoint.poll_transmit(buf) {
                Ok(Some(t)) => {
                    if let Some(trace) = self.trace.as_mut() {
                        trace(Direction::Out, t.to, buf.get(..t.len).unwrap_or_default());
                    }
                    return Some((t.to, t.len));
                }
                Ok(None) => return None,
                Err(e) => buf.resize(e.required, 0),
            }
        }
    }

    /// Hands every queued event to `on_event` with the endpoint.
    pub(crate) fn dispatch(
        &mut self,
        on_event: &mut impl FnMut(&mut Endpoint<SocketAddr>, Instant, Event<SocketAddr>),
    ) {
        let now = self.now();
        while let Some(event) = self.endpoint.poll_event() {
            on_event(&mut self.endpoint, now, event);
        }
    }

    /// Starts a request for `request`/`wait_for`.
    pub(crate) fn start_request(
        &mut self,
        peer: SocketAddr,
        msg: &MessageBuf,
    ) -> io::Result<RequestId> {
        let now = self.now();
        self.endpoint
            .request(now, peer, msg)
            .map_err(|e| io::Error::other(e.to_string()))
    }

    /// Starts a ping for `ping`/`wait_for`.
    pub(crate) fn start_ping(&mut self, peer: SocketAddr) -> io::Result<RequestId> {
        let now = self.now();
        self.endpoint
            .ping(now, peer)
            .map_err(|e| io::Error::other(e.to_string()))
    }

    /// How long `wait_for` may still wait for `id`; at the caller's
    /// deadline the request is cancelled (`Expired`).
    pub(crate) fn time_left(
        &mut self,
        id: RequestId,
        deadline: Option<std::time::Instant>,
    ) -> Wait {
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        if left == Some(Duration::ZERO) {
            let now = self.now();
            let _ = self.endpoint.cancel(now, id);
            return Wait::Expired;
        }
        Wait::Upto(left)
    }
}

/// Datagrams per socket call. With the `batch` feature on Linux, one
/// `recvmmsg` takes up to this many queued datagrams and one `sendmmsg` sends
/// up to this many; otherwise every datagram is one `recv_from`/`send_to`.
#[cfg(all(feature = "batch", target_os = "linux"))]
const BATCH: usize = 32;
#[cfg(not(all(feature = "batch", target_os = "linux")))]
const BATCH: usize = 1;

/// An [`Endpoint`] bound to a UDP socket, with a clock and buffers.
pub struct UdpEndpoint {
    socket: UdpSocket,
    core: Core,
    /// `BATCH` receive buffers.
    rx: Vec<Vec<u8>>,
    /// `BATCH` send buffers, and where and how long each datagram is.
    tx: Vec<Vec<u8>>,
    tx_meta: Vec<(SocketAddr, usize)>,
    read_timeout: Option<Duration>,
}

impl core::fmt::Debug for UdpEndpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UdpEndpoint")
            .field("socket", &self.socket)
            .field("endpoint", &self.core.endpoint)
            .finish_non_exhaustive()
    }
}

impl UdpEndpoint {
    /// Binds a socket (IPv4 or IPv6) and creates an endpoint seeded from the OS.
    ///
    /// ```
    /// # use coap_proto::{udp::UdpEndpoint, endpoint::Config};
    /// let ep = UdpEndpoint::bind("127.0.0.1:0", Config::default())?;
    /// assert!(ep.local_addr()?.port() != 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind(addr: impl ToSocketAddrs, config: Config) -> io::Result<Self> {
        Ok(Self::from_socket(UdpSocket::bind(addr)?, config, os_seed()))
    }

    /// Wraps an existing socket with an explicit seed.
    ///
    /// ```
    /// # use coap_proto::{udp::UdpEndpoint, endpoint::Config};
    /// let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let _ep = UdpEndpoint::from_socket(sock, Config::default(), 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn from_socket(socket: UdpSocket, config: Config, seed: u64) -> Self {
        let size = config.max_message_size.max(1500) + 1;
        Self {
            socket,
            core: Core::new(config, seed),
            rx: std::vec![std::vec![0; size]; BATCH],
            tx: std::vec![std::vec![0; size]; BATCH],
            tx_meta: Vec::with_capacity(BATCH),
            read_timeout: None,
        }
    }

    /// The local address.
    ///
    /// ```
    /// # use coap_proto::{udp::UdpEndpoint, endpoint::Config};
    /// let ep = UdpEndpoint::bind("[::1]:0", Config::default())?;
    /// assert!(ep.local_addr()?.is_ipv6());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The socket, e.g. for socket options.
    ///
    /// ```
    /// # use coap_proto::{udp::UdpEndpoint, endpoint::Config};
    /// let ep = UdpEndpoint::bind("127.0.0.1:0", Config::default())?;
    /// ep.socket().set_ttl(16)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// The engine, for commands (`request`, `respond`, `ping`, ...).
    ///
    /// ```
    /// # use coap_proto::{udp::UdpEndpoint, endpoint::Config};
    /// let mut ep = UdpEndpoint::bind("127.0.0.1:0", Config::default())?;
    /// assert_eq!(ep.endpoint().stats().datagrams_in, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn endpoint(&mut self) -> &mut Endpoint<SocketAddr> {
        &mut self.core.endpoint
    }

    /// The current time on the endpoint's clock.
    ///
    /// ```
    /// # use coap_proto::{udp::UdpEndpoint, endpoint::Config};
    /// let ep = UdpEndpoint::bind("127.0.0.1:0", Config::default())?;
    /// assert!(ep.now().as_micros() < 60_000_000);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn now(&self) -> Instant {
        self.core.now()
    }

    /// Calls `trace` for every datagram received or sent (for `coap -v`).
    ///
    /// ```
    /// # use coap_proto::{udp::UdpEndpoint, endpoint::Config};
    /// let mut ep = UdpEndpoint::bind("127.0.0.1:0", Config::default())?;
    /// ep.set_trace(|dir, peer, bytes| eprintln!("{dir:?} {peer} {} bytes", bytes.len()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_trace(&mut self, trace: impl FnMut(Direction, SocketAddr, &[u8]) + Send + 'static) {
        self.core.trace = Some(Box::new(trace));
    }

    /// Joins an IPv4 multicast group (e.g. 224.0.1.187, "All CoAP Nodes").
    ///
    /// ```no_run
    /// # use coap_proto::{udp::UdpEndpoint, endpoint::Config};
    /// # use std::net::Ipv4Addr;
    /// let ep = UdpEndpoint::bind("0.0.0.0:5683", Config::default())?;
    /// ep.join_multicast_v4(Ipv4Addr::new(224, 0, 1, 187), Ipv4Addr::UNSPECIFIED)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn join_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.socket.join_multicast_v4(&group, &interface)
    }

    /// Joins an IPv6 multicast group (e.g. ff02::fd, "All CoAP Nodes").
    ///
    /// ```no_run
    /// # use coap_proto::{udp::UdpEndpoint, endpoint::Config};
    /// let ep = UdpEndpoint::bind("[::]:5683", Config::default())?;
    /// ep.join_multicast_v6(&"ff02::fd".parse().unwrap(), 0)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn join_multicast_v6(&self, group: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.socket.join_multicast_v6(group, interface)
    }

    /// Sends every queued datagram, up to `BATCH` per socket call.
    fn flush(&mut self) -> io::Result<()> {
        loop {
            self.tx_meta.clear();
            while let Some(buf) = self.tx.get_mut(self.tx_meta.len()) {
                let Some(datagram) = self.core.next_transmit(buf) else {
                    break;
                };
                self.tx_meta.push(datagram);
            }
            let full = self.tx_meta.len() == BATCH;
            self.send_queued()?;
            if !full {
                return Ok(());
            }
        }
    }

    /// Sends the datagrams in `tx`/`tx_meta`. A full socket buffer or an
    /// unreachable peer is like a lost datagram: retransmission handles it.
    #[cfg(not(all(feature = "batch", target_os = "linux")))]
    fn send_queued(&mut self) -> io::Result<()> {
        for (buf, &(to, len)) in self.tx.iter().zip(&self.tx_meta) {
            match self.socket.send_to(buf.get(..len).unwrap_or_default(), to) {
                Ok(_) => {}
                Err(e) if is_lost_send(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sends the datagrams in `tx`/`tx_meta` with `sendmmsg`.
    #[cfg(all(feature = "batch", target_os = "linux"))]
    fn send_queued(&mut self) -> io::Result<()> {
        mmsg::send(&self.socket, &self.tx, &self.tx_meta)
    }

    /// Waits for a datagram (the read timeout applies) and feeds it to the
    /// endpoint.
    #[cfg(not(all(feature = "batch", target_os = "linux")))]
    fn recv(&mut self) -> io::Result<()> {
        let Some(buf) = self.rx.first_mut() else {
            return Ok(());
        };
        let (n, from) = self.socket.recv_from(buf)?;
        let now = self.core.now();
        self.core
            .received(now, from, buf.get(..n).unwrap_or_default());
        Ok(())
    }

    /// Waits for a datagram (the read timeout applies), takes every other
    /// one already queued (up to `BATCH`, one `recvmmsg`), and feeds them to
    /// the endpoint.
    #[cfg(all(feature = "batch", target_os = "linux"))]
    fn recv(&mut self) -> io::Result<()> {
        let mut got = [(0, None); BATCH];
        let n = mmsg::recv(&self.socket, &mut self.rx, &mut got)?;
        let now = self.core.now();
        for (buf, (len, from)) in self.rx.iter().zip(got.into_iter().take(n)) {
            let Some(from) = from else { continue };
            self.core
                .received(now, from, buf.get(..len).unwrap_or_default());
        }
        Ok(())
    }

    /// One turn of the loop: waits for a datagram or the next timer (at most
    /// `max_wait`), feeds it to the endpoint, sends what it queued, and hands
    /// every event to `on_event` with the endpoint so it can answer.
    ///
    /// ```no_run
    /// # use coap_proto::{udp::UdpEndpoint, endpoint::{Config, Event}};
    /// # use std::time::Duration;
    /// let mut ep = UdpEndpoint::bind("127.0.0.1:0", Config::default())?;
    /// ep.turn(Some(Duration::from_millis(10)), |_ep, _now, event| println!("{event:?}"))?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn turn(
        &mut self,
        max_wait: Option<Duration>,
        mut on_event: impl FnMut(&mut Endpoint<SocketAddr>, Instant, Event<SocketAddr>),
    ) -> io::Result<()> {
        self.flush()?;
        if let Wait::Upto(wait) = self.core.wait(max_wait) {
            // A zero read timeout means "block forever" to the OS, so round
            // up; 1 ms granularity keeps the syscall count down. Rounding
            // up (not down) avoids waking just before the deadline.
            let timeout = wait.map(|w| {
                let ms = w.as_micros().div_ceil(1000).max(1);
                Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
            });
            if timeout != self.read_timeout {
                self.socket.set_read_timeout(timeout)?;
                self.read_timeout = timeout;
            }
            match self.recv() {
                Ok(()) => {}
                // A timeout, or a signal (EINTR: a debugger attaching, ...).
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    self.core.timed_out();
                }
                // ICMP errors from earlier sends surface here on some systems.
                Err(e) if is_icmp_recv(&e) => {}
                Err(e) => return Err(e),
            }
        }
        self.flush()?;
        self.core.dispatch(&mut on_event);
        self.flush()
    }

    /// Serves forever: `handler` answers each request at once (`Some`), or
    /// declines (`None`, answered 4.04 Not Found). Its `MessageBuf`'s code,
    /// options and payload are sent; the endpoint picks type, MID and token.
    ///
    /// ```no_run
    /// # use coap_proto::{udp::UdpEndpoint, endpoint::Config};
    /// let mut server = UdpEndpoint::bind("127.0.0.1:5683", Config::default())?;
    /// server.serve(|_req| None)?; // a server where nothing exists
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn serve(
        &mut self,
        mut handler: impl FnMut(&Message<'_>) -> Option<MessageBuf>,
    ) -> io::Result<()> {
        loop {
            self.turn(None, |ep, now, event| {
                serve_event(ep, now, event, &mut handler);
            })?;
        }
    }

    /// Like [`serve`](Self::serve), but returns once `stop` is set (it is
    /// checked at least every 50 ms), leaving the endpoint usable, e.g. to
    /// read its [`Stats`](crate::endpoint::Stats) or shut down cleanly.
    ///
    /// ```
    /// # use coap_proto::{udp::UdpEndpoint, endpoint::Config};
    /// # use std::sync::atomic::AtomicBool;
    /// let mut server = UdpEndpoint::bind("127.0.0.1:0", Config::default())?;
    /// let stop = AtomicBool::new(true); // set by another thread in real use
    /// server.serve_until(&stop, |_req| None)?;
    /// assert_eq!(server.endpoint().stats().requests_in, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn serve_until(
        &mut self,
        stop: &AtomicBool,
        mut handler: impl FnMut(&Message<'_>) -> Option<MessageBuf>,
    ) -> io::Result<()> {
        while !stop.load(Ordering::Relaxed) {
            self.turn(Some(STOP_POLL), |ep, now, event| {
                serve_event(ep, now, event, &mut handler);
            })?;
        }
        self.flush()
    }

    /// Sends a request and blocks until its outcome, or until `timeout`
    /// (then the request is cancelled and [`Outcome::TimedOut`] returned).
    /// Incoming requests meanwhile are answered 5.03.
    ///
    /// ```no_run
    /// # use coap_proto::{udp::{UdpEndpoint, Outcome}, endpoint::Config};
    /// # use coap_proto::{Code, MessageBuf, MessageType, OptionNumber};
    /// # use std::time::Duration;
    /// let mut client = UdpEndpoint::bind("127.0.0.1:0", Config::default())?;
    /// let mut get = MessageBuf::new(MessageType::Con, Code::GET);
    /// get.add_option(OptionNumber::URI_PATH, "test");
    /// match client.request("127.0.0.1:5683".parse().unwrap(), &get, Duration::from_secs(5))? {
    ///     Outcome::Response(r) => println!("{}", String::from_utf8_lossy(r.payload())),
    ///     other => println!("{other:?}"),
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn request(
        &mut self,
        peer: SocketAddr,
        msg: &MessageBuf,
        timeout: Duration,
    ) -> io::Result<Outcome> {
        let id = self.core.start_request(peer, msg)?;
        // A timeout too large to represent (Duration::MAX) means "no limit
        // but the endpoint's own".
        let deadline = std::time::Instant::now().checked_add(timeout);
        self.wait_for(id, deadline)
    }

    /// Blocks until the request `id` ends or `deadline` passes.
    fn wait_for(
        &mut self,
        id: RequestId,
        deadline: Option<std::time::Instant>,
    ) -> io::Result<Outcome> {
        let mut outcome = None;
        while outcome.is_none() {
            let Wait::Upto(left) = self.core.time_left(id, deadline) else {
                return Ok(Outcome::TimedOut);
            };
            self.turn(left, |ep, now, event| {
                if let Some(o) = request_event(ep, now, event, id) {
                    outcome = Some(o);
                }
            })?;
        }
        Ok(outcome.unwrap_or(Outcome::TimedOut))
    }

    /// Pings a peer (RFC 7252 §4.3) and returns the round-trip time, or
    /// `None` on timeout.
    ///
    /// ```no_run
    /// # use coap_proto::{udp::UdpEndpoint, endpoint::Config};
    /// # use std::time::Duration;
    /// let mut client = UdpEndpoint::bind("127.0.0.1:0", Config::default())?;
    /// let rtt = client.ping("127.0.0.1:5683".parse().unwrap(), Duration::from_secs(5))?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn ping(&mut self, peer: SocketAddr, timeout: Duration) -> io::Result<Option<Duration>> {
        let start = std::time::Instant::now();
        let id = self.core.start_ping(peer)?;
        match self.wait_for(id, start.checked_add(timeout))? {
            Outcome::Reset => Ok(Some(start.elapsed())),
            _ => Ok(None),
        }
    }
}

/// Batched socket calls (`recvmmsg`/`sendmmsg`) through the `nix` crate.
#[cfg(all(feature = "batch", target_os = "linux"))]
mod mmsg {
    use std::io::{self, IoSlice, IoSliceMut};
    use std::net::SocketAddr;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::vec::Vec;

    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};

    fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
        if let Some(v4) = a.as_sockaddr_in() {
            return Some(SocketAddr::V4((*v4).into()));
        }
        a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
    }

    /// Blocks (subject to the socket's read timeout) until a datagram
    /// arrives, then also takes those already queued, one per buffer.
    /// `got[i]` is the length and sender of the datagram in `bufs[i]`.
    pub(super) fn recv(
        socket: &UdpSocket,
        bufs: &mut [Vec<u8>],
        got: &mut [(usize, Option<SocketAddr>)],
    ) -> io::Result<usize> {
        // Allocated per call: the headers hold raw pointers, which would
        // make `UdpEndpoint` neither `Send` nor `Sync`.
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(bufs.len(), None);
        let mut iovs: Vec<[IoSliceMut<'_>; 1]> =
            bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
        let results = recvmmsg(
            socket.as_raw_fd(),
            &mut headers,
            iovs.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        )?;
        let mut n = 0;
        for (r, slot) in results.zip(got.iter_mut()) {
            *slot = (r.bytes, r.address.as_ref().and_then(to_std));
            n += 1;
        }
        Ok(n)
    }

    /// Sends `meta.len()` datagrams (`meta[i]`: destination and length of
    /// `bufs[i]`). A datagram that cannot be sent for a reason that is like
    /// a loss is skipped.
    pub(super) fn send(
        socket: &UdpSocket,
        bufs: &[Vec<u8>],
        meta: &[(SocketAddr, usize)],
    ) -> io::Result<()> {
        if meta.is_empty() {
            return Ok(());
        }
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(meta.len(), None);
        let addrs: Vec<Option<SockaddrStorage>> = meta
            .iter()
            .map(|(to, _)| Some(SockaddrStorage::from(*to)))
            .collect();
        let iovs: Vec<[IoSlice<'_>; 1]> = bufs
            .iter()
            .zip(meta)
            .map(|(b, (_, len))| [IoSlice::new(b.get(..*len).unwrap_or_default())])
            .collect();
        let mut sent = 0;
        while sent < meta.len() {
            let (Some(iov), Some(to)) = (iovs.get(sent..), addrs.get(sent..)) else {
                break;
            };
            match sendmmsg(
                socket.as_raw_fd(),
                &mut headers,
                iov,
                to,
                [],
                MsgFlags::empty(),
            ) {
                Ok(done) => sent += done.count().max(1),
                Err(e) => {
                    let e = io::Error::from(e);
                    if !super::is_lost_send(&e) {
                        return Err(e);
                    }
                    sent += 1;
                }
            }
        }
        Ok(())
    }
}
