//! An async UDP driver on tokio (feature `tokio`), with the same behaviour
//! as the blocking [`udp`](crate::udp) driver.
//!
//! It is the same thin loop over the one [`Endpoint`] API, in the same
//! order: after every input or command it drains
//! [`poll_transmit`](Endpoint::poll_transmit), then
//! [`poll_event`](Endpoint::poll_event), then reads
//! [`poll_timeout`](Endpoint::poll_timeout). Only the waiting differs: a
//! `tokio::select!` between the socket and a `sleep_until` the endpoint's
//! next deadline. The decisions (how long to wait, which send errors count
//! as a lost datagram, how `serve` and `request` treat each event) are the
//! std driver's own functions, and the steps of a turn that do not wait
//! (timers, feeding a datagram, draining transmits and events) are one
//! shared core.
//!
//! ```
//! use coap_proto::tokio::TokioEndpoint;
//! use coap_proto::udp::Outcome;
//! use coap_proto::endpoint::Config;
//! use coap_proto::{Code, MessageBuf, MessageType, OptionNumber};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! // A server task answering every request with 2.05 "hello".
//! let mut server = TokioEndpoint::bind("127.0.0.1:0", Config::default()).await?;
//! let addr = server.local_addr()?;
//! let task = tokio::spawn(async move {
//!     server
//!         .serve(|_req| {
//!             let mut answer = MessageBuf::new(MessageType::Ack, Code::CONTENT);
//!             answer.set_payload("hello");
//!             Some(answer)
//!         })
//!         .await
//! });
//!
//! // A client.
//! let mut client = TokioEndpoint::bind("127.0.0.1:0", Config::default()).await?;
//! let mut get = MessageBuf::new(MessageType::Con, Code::GET);
//! get.add_option(OptionNumber::URI_PATH, "hello");
//! let Outcome::Response(r) = client.request(addr, &get, Duration::from_secs(5)).await? else {
//!     panic!("no answer");
//! };
//! assert_eq!(r.payload(), b"hello");
//! task.abort(); // `serve` runs until dropped
//! # Ok(())
//! # }
//! ```

use std::boxed::Box;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use std::vec::Vec;

use ::tokio::net::{ToSocketAddrs, UdpSocket};

use crate::endpoint::{Config, Endpoint, Event, RequestId};
use crate::message::{Message, MessageBuf};
use crate::time::Instant;
use crate::udp::{
    Core, Direction, Outcome, Wait, is_icmp_recv, is_lost_send, os_seed, request_event, serve_event,
};

/// An [`Endpoint`] bound to a tokio UDP socket, with a clock and buffers.
///
/// Every method that waits takes `&mut self`: one task drives the
/// endpoint. Commands go through [`endpoint`](Self::endpoint) between turns.
///
/// ```
/// # use coap_proto::{tokio::TokioEndpoint, endpoint::Config};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let ep = TokioEndpoint::bind("127.0.0.1:0", Config::default()).await?;
/// println!("{ep:?}");
/// # Ok(())
/// # }
/// ```
pub struct TokioEndpoint {
    socket: UdpSocket,
    core: Core,
    rx: Vec<u8>,
    tx: Vec<u8>,
}

impl core::fmt::Debug for TokioEndpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TokioEndpoint")
            .field("socket", &self.socket)
            .field("endpoint", &self.core.endpoint)
            .finish_non_exhaustive()
    }
}

impl TokioEndpoint {
    /// Binds a socket (IPv4 or IPv6) and creates an endpoint seeded from the
    /// OS ([`os_seed`]).
    ///
    /// ```
    /// # use coap_proto::{tokio::TokioEndpoint, endpoint::Config};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let ep = TokioEndpoint::bind("127.0.0.1:0", Config::default()).await?;
    /// assert_ne!(ep.local_addr()?.port(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bind(addr: impl ToSocketAddrs, config: Config) -> io::Result<Self> {
        Ok(Self::from_socket(
            UdpSocket::bind(addr).await?,
            config,
            os_seed(),
        ))
    }

    /// Wraps an existing tokio socket with an explicit seed.
    ///
    /// ```
    /// # use coap_proto::{tokio::TokioEndpoint, endpoint::Config};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    /// let _ep = TokioEndpoint::from_socket(sock, Config::default(), 42);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn from_socket(socket: UdpSocket, config: Config, seed: u64) -> Self {
        let size = config.max_message_size.max(1500) + 1;
        Self {
            socket,
            core: Core::new(config, seed),
            rx: std::vec![0; size],
            tx: std::vec![0; size],
        }
    }

    /// The local address.
    ///
    /// ```
    /// # use coap_proto::{tokio::TokioEndpoint, endpoint::Config};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let ep = TokioEndpoint::bind("127.0.0.1:0", Config::default()).await?;
    /// assert!(ep.local_addr()?.is_ipv4());
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The socket, e.g. for socket options.
    ///
    /// ```
    /// # use coap_proto::{tokio::TokioEndpoint, endpoint::Config};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let ep = TokioEndpoint::bind("127.0.0.1:0", Config::default()).await?;
    /// ep.socket().set_ttl(16)?;
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// The engine, for commands (`request`, `respond`, `ping`, ...) and
    /// statistics.
    ///
    /// ```
    /// # use coap_proto::{tokio::TokioEndpoint, endpoint::Config};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mut ep = TokioEndpoint::bind("127.0.0.1:0", Config::default()).await?;
    /// assert_eq!(ep.endpoint().stats().datagrams_in, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn endpoint(&mut self) -> &mut Endpoint<SocketAddr> {
        &mut self.core.endpoint
    }

    /// The current time on the endpoint's clock.
    ///
    /// ```
    /// # use coap_proto::{tokio::TokioEndpoint, endpoint::Config};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let ep = TokioEndpoint::bind("127.0.0.1:0", Config::default()).await?;
    /// assert!(ep.now().as_micros() < 60_000_000);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn now(&self) -> Instant {
        self.core.now()
    }

    /// Calls `trace` for every datagram received or sent (for `coap -v`).
    ///
    /// ```
    /// # use coap_proto::{tokio::TokioEndpoint, endpoint::Config};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mut ep = TokioEndpoint::bind("127.0.0.1:0", Config::default()).await?;
    /// ep.set_trace(|dir, peer, bytes| eprintln!("{dir:?} {peer} {} bytes", bytes.len()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_trace(&mut self, trace: impl FnMut(Direction, SocketAddr, &[u8]) + Send + 'static) {
        self.core.trace = Some(Box::new(trace));
    }

    /// Joins an IPv4 multicast group (e.g. 224.0.1.187, "All CoAP Nodes").
    ///
    /// ```no_run
    /// # use coap_proto::{tokio::TokioEndpoint, endpoint::Config};
    /// # use std::net::Ipv4Addr;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let ep = TokioEndpoint::bind("0.0.0.0:5683", Config::default()).await?;
    /// ep.join_multicast_v4(Ipv4Addr::new(224, 0, 1, 187), Ipv4Addr::UNSPECIFIED)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn join_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.socket.join_multicast_v4(group, interface)
    }

    /// Joins an IPv6 multicast group (e.g. ff02::fd, "All CoAP Nodes").
    ///
    /// ```no_run
    /// # use coap_proto::{tokio::TokioEndpoint, endpoint::Config};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let ep = TokioEndpoint::bind("[::]:5683", Config::default()).await?;
    /// ep.join_multicast_v6(&"ff02::fd".parse().unwrap(), 0)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn join_multicast_v6(&self, group: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.socket.join_multicast_v6(group, interface)
    }

    /// Sends every queued datagram.
    async fn flush(&mut self) -> io::Result<()> {
        while let Some((to, len)) = self.core.next_transmit(&mut self.tx) {
            let bytes = self.tx.get(..len).unwrap_or_default();
            match self.socket.send_to(bytes, to).await {
                Ok(_) => {}
                // Like a lost datagram: retransmission handles it.
                Err(e) if is_lost_send(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// One turn of the loop: waits for a datagram or the next timer (at most
    /// `max_wait`), feeds it to the endpoint, sends what it queued, and hands
    /// every event to `on_event` with the endpoint so it can answer.
    ///
    /// Dropping the future (e.g. in a `select!`) is safe: at most one queued
    /// datagram is lost, which the CoAP retransmission rules cover.
    ///
    /// ```
    /// # use coap_proto::{tokio::TokioEndpoint, endpoint::{Config, Event}};
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mut ep = TokioEndpoint::bind("127.0.0.1:0", Config::default()).await?;
    /// let mut events = 0;
    /// ep.turn(Some(Duration::from_millis(10)), |_ep, _now, _event| events += 1).await?;
    /// assert_eq!(events, 0); // nobody sent anything
    /// # Ok(())
    /// # }
    /// ```
    pub async fn turn(
        &mut self,
        max_wait: Option<Duration>,
        mut on_event: impl FnMut(&mut Endpoint<SocketAddr>, Instant, Event<SocketAddr>),
    ) -> io::Result<()> {
        self.flush().await?;
        if let Wait::Upto(wait) = self.core.wait(max_wait) {
            // The deadline on the endpoint's clock, mapped back to a tokio
            // instant; one too far to represent means no deadline.
            let std_now = std::time::Instant::now();
            let deadline = wait
                .and_then(|w| std_now.checked_add(w))
                .map(::tokio::time::Instant::from_std);
            let received = match deadline {
                Some(deadline) => ::tokio::select! {
                    r = self.socket.recv_from(&mut self.rx) => Some(r),
                    () = ::tokio::time::sleep_until(deadline) => None,
                },
                None => Some(self.socket.recv_from(&mut self.rx).await),
            };
            match received {
                Some(Ok((n, from))) => {
                    let now = self.core.now();
                    self.core
                        .received(now, from, self.rx.get(..n).unwrap_or_default());
                }
                None => self.core.timed_out(),
                // ICMP errors from earlier sends surface here on some systems.
                Some(Err(e)) if is_icmp_recv(&e) => {}
                Some(Err(e)) => return Err(e),
            }
        }
        self.flush().await?;
        self.core.dispatch(&mut on_event);
        self.flush().await
    }

    /// Serves until the future is dropped (or a socket error): `handler`
    /// answers each request at once (`Some`), or declines (`None`, answered
    /// 4.04 Not Found). Its `MessageBuf`'s code, options and payload are
    /// sent; the endpoint picks type, MID and token.
    ///
    /// To stop a server, drop the future: put it in a `select!` with a
    /// shutdown signal, or `abort` its task. The endpoint stays usable.
    ///
    /// ```
    /// # use coap_proto::{tokio::TokioEndpoint, endpoint::Config};
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mut server = TokioEndpoint::bind("127.0.0.1:0", Config::default()).await?;
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// # drop(stop);
    /// tokio::select! {
    ///     r = server.serve(|_req| None) => r?, // a server where nothing exists
    ///     _ = stopped => {}
    /// }
    /// assert_eq!(server.endpoint().stats().requests_in, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn serve(
        &mut self,
        mut handler: impl FnMut(&Message<'_>) -> Option<MessageBuf>,
    ) -> io::Result<()> {
        loop {
            self.turn(None, |ep, now, event| {
                serve_event(ep, now, event, &mut handler);
            })
            .await?;
        }
    }

    /// Sends a request and waits for its outcome, or until `timeout` (then
    /// the request is cancelled and [`Outcome::TimedOut`] returned).
    /// Incoming requests meanwhile are answered 5.03.
    ///
    /// Prefer `timeout` over dropping the future: a dropped request stays
    /// open in the endpoint until its own retransmission schedule ends it.
    ///
    /// ```
    /// # use coap_proto::{tokio::TokioEndpoint, udp::Outcome, endpoint::Config};
    /// # use coap_proto::{Code, MessageBuf, MessageType, OptionNumber};
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// // Nobody listens on the peer's port: the request times out.
    /// let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    /// let mut client = TokioEndpoint::bind("127.0.0.1:0", Config::default()).await?;
    /// let mut get = MessageBuf::new(MessageType::Con, Code::GET);
    /// get.add_option(OptionNumber::URI_PATH, "test");
    /// let peer = silent.local_addr()?;
    /// let outcome = client.request(peer, &get, Duration::from_millis(20)).await?;
    /// assert!(matches!(outcome, Outcome::TimedOut));
    /// assert_eq!(client.endpoint().tables().requests, 0); // cancelled
    /// # Ok(())
    /// # }
    /// ```
    pub async fn request(
        &mut self,
        peer: SocketAddr,
        msg: &MessageBuf,
        timeout: Duration,
    ) -> io::Result<Outcome> {
        let id = self.core.start_request(peer, msg)?;
        let deadline = std::time::Instant::now().checked_add(timeout);
        self.wait_for(id, deadline).await
    }

    /// Waits until the request `id` ends or `deadline` passes.
    async fn wait_for(
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
            })
            .await?;
        }
        Ok(outcome.unwrap_or(Outcome::TimedOut))
    }

    /// Pings a peer (RFC 7252 §4.3) and returns the round-trip time, or
    /// `None` on timeout.
    ///
    /// ```
    /// # use coap_proto::{tokio::TokioEndpoint, endpoint::Config};
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mut a = TokioEndpoint::bind("127.0.0.1:0", Config::default()).await?;
    /// let mut b = TokioEndpoint::bind("127.0.0.1:0", Config::default()).await?;
    /// let b_addr = b.local_addr()?;
    /// let server = tokio::spawn(async move { b.serve(|_| None).await });
    /// let rtt = a.ping(b_addr, Duration::from_secs(5)).await?;
    /// assert!(rtt.is_some());
    /// server.abort();
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ping(
        &mut self,
        peer: SocketAddr,
        timeout: Duration,
    ) -> io::Result<Option<Duration>> {
        let start = std::time::Instant::now();
        let id = self.core.start_ping(peer)?;
        match self.wait_for(id, start.checked_add(timeout)).await? {
            Outcome::Reset => Ok(Some(start.elapsed())),
            _ => Ok(None),
        }
    }
}
