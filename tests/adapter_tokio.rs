//! The tokio driver (`coap_proto::tokio`) on real loopback sockets, IPv4
//! and IPv6: the same scenarios as `adapter_std.rs`. Servers are tasks
//! stopped by dropping their `serve` future; every loop is bounded.
#![cfg(feature = "tokio")]

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coap_proto::endpoint::{Config, Event};
use coap_proto::tokio::TokioEndpoint;
use coap_proto::udp::{Direction, Outcome};
use coap_proto::{Code, Message, MessageBuf, MessageType};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[path = "common/udp_fixtures.rs"]
mod fixtures;

use fixtures::{LIMIT, expect_response, fast_config, request, resources};

/// A `serve` task, counting handler calls, stopped by dropping the future.
struct Server {
    addr: SocketAddr,
    calls: Arc<AtomicUsize>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<io::Result<TokioEndpoint>>,
}

impl Server {
    async fn start(bind: &str) -> io::Result<Self> {
        let mut ep = TokioEndpoint::bind(bind, Config::default()).await?;
        let addr = ep.local_addr()?;
        let calls = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = oneshot::channel::<()>();
        let c = Arc::clone(&calls);
        let task = tokio::spawn(async move {
            tokio::select! {
                r = ep.serve(|req| {
                    c.fetch_add(1, Ordering::SeqCst);
                    resources(req)
                }) => r?,
                _ = stopped => {}
            }
            Ok(ep)
        });
        Ok(Self {
            addr,
            calls,
            stop,
            task,
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Stops the server and returns its endpoint, still usable.
    async fn stop(self) -> TokioEndpoint {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(1), self.task)
            .await
            .expect("the server stops promptly")
            .expect("server task")
            .expect("server I/O")
    }
}

async fn client(bind: &str) -> TokioEndpoint {
    TokioEndpoint::bind(bind, Config::default())
        .await
        .expect("bind client")
}

/// GET, POST, PUT, DELETE and a 4.04, with payloads, against `bind`.
async fn methods_round_trip(bind: &str) {
    let server = Server::start(bind).await.expect("bind server");
    let mut c = client(bind).await;
    let addr = server.addr;

    let get = request(MessageType::Con, Code::GET, "hello", b"");
    let r = expect_response(c.request(addr, &get, LIMIT).await.unwrap());
    assert_eq!(
        (r.ty(), r.code(), r.payload()),
        (MessageType::Ack, Code::CONTENT, &b"hello"[..])
    );

    let post = request(MessageType::Con, Code::POST, "echo", b"posted");
    let r = expect_response(c.request(addr, &post, LIMIT).await.unwrap());
    assert_eq!((r.code(), r.payload()), (Code::CREATED, &b"posted"[..]));

    // A payload near the default max_message_size (1152) still fits.
    let big: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let put = request(MessageType::Con, Code::PUT, "echo", &big);
    let r = expect_response(c.request(addr, &put, LIMIT).await.unwrap());
    assert_eq!((r.code(), r.payload()), (Code::CHANGED, &big[..]));

    let delete = request(MessageType::Con, Code::DELETE, "echo", b"");
    let r = expect_response(c.request(addr, &delete, LIMIT).await.unwrap());
    assert_eq!((r.code(), r.payload()), (Code::DELETED, &b""[..]));

    let missing = request(MessageType::Con, Code::GET, "nothing", b"");
    let r = expect_response(c.request(addr, &missing, LIMIT).await.unwrap());
    assert_eq!(r.code(), Code::NOT_FOUND);

    assert_eq!(c.endpoint().stats().responses_in, 5);
    assert_eq!(c.endpoint().stats().retransmissions, 0);
    assert_eq!(c.endpoint().tables().requests, 0);
    assert_eq!(server.calls(), 5);
    let mut ep = server.stop().await;
    assert_eq!(ep.endpoint().stats().requests_in, 5);
    assert_eq!(ep.endpoint().tables().pending, 0);
}

#[tokio::test]
async fn methods_over_ipv4() {
    methods_round_trip("127.0.0.1:0").await;
}

#[tokio::test]
async fn methods_over_ipv6() {
    if UdpSocket::bind("[::1]:0").await.is_err() {
        let _ = writeln!(
            io::stderr(),
            "SKIPPED: methods_over_ipv6: no IPv6 loopback here"
        );
        return;
    }
    methods_round_trip("[::1]:0").await;
}

#[tokio::test]
async fn ping_round_trip() {
    let server = Server::start("127.0.0.1:0").await.unwrap();
    let mut c = client("127.0.0.1:0").await;
    let rtt = c.ping(server.addr, LIMIT).await.unwrap().expect("pong");
    assert!(rtt < Duration::from_secs(1), "{rtt:?}");
    assert_eq!(server.calls(), 0); // a ping is not a request
    let mut ep = server.stop().await;
    assert_eq!(ep.endpoint().stats().resets_sent, 1);
}

/// A port nothing listens on (bound, then released).
async fn closed_port() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.local_addr().unwrap()
}

#[tokio::test]
async fn closed_port_times_out_on_the_engines_schedule() {
    let peer = closed_port().await;
    let mut c = TokioEndpoint::bind("127.0.0.1:0", fast_config())
        .await
        .unwrap();
    let started = Instant::now();
    let get = request(MessageType::Con, Code::GET, "x", b"");
    let outcome = c.request(peer, &get, LIMIT).await.unwrap();
    let took = started.elapsed();
    assert!(matches!(outcome, Outcome::TimedOut), "{outcome:?}");
    // ACK_TIMEOUT 50 ms, one retransmission: between 50+100 and 75+150 ms
    // (plus scheduling slack), far below the 5 s the caller allowed.
    assert!(took >= Duration::from_millis(145), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(c.endpoint().stats().retransmissions, 1);
    assert_eq!(c.endpoint().stats().timeouts, 1);
    assert_eq!(c.endpoint().tables().requests, 0);

    // A fresh endpoint: towards a peer that stopped answering, this one now
    // holds new messages back to PROBING_RATE (1 byte/s, RFC 7252 §4.7).
    let mut c = TokioEndpoint::bind("127.0.0.1:0", fast_config())
        .await
        .unwrap();
    let started = Instant::now();
    assert_eq!(c.ping(peer, LIMIT).await.unwrap(), None);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(c.endpoint().stats().timeouts, 1);
}

#[tokio::test]
async fn caller_timeout_cancels_the_request() {
    let peer = closed_port().await;
    let mut c = client("127.0.0.1:0").await; // default ACK_TIMEOUT: 2-3 s
    let get = request(MessageType::Con, Code::GET, "x", b"");
    let started = Instant::now();
    let outcome = c
        .request(peer, &get, Duration::from_millis(60))
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::TimedOut));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(
        c.endpoint().tables().requests,
        0,
        "cancelled, not left open"
    );
    // Duration::MAX means "no limit of the caller's", not an overflow.
    let mut c = TokioEndpoint::bind("127.0.0.1:0", fast_config())
        .await
        .unwrap();
    let outcome = c.request(peer, &get, Duration::MAX).await.unwrap();
    assert!(matches!(outcome, Outcome::TimedOut));
}

#[tokio::test]
async fn non_requests_get_non_responses() {
    let server = Server::start("127.0.0.1:0").await.unwrap();
    let mut c = client("127.0.0.1:0").await;
    for i in 0..3u8 {
        let non = request(MessageType::Non, Code::POST, "echo", &[i; 3]);
        let r = expect_response(c.request(server.addr, &non, LIMIT).await.unwrap());
        assert_eq!(
            (r.ty(), r.code(), r.payload()),
            (MessageType::Non, Code::CREATED, &[i; 3][..])
        );
    }
    assert_eq!(server.calls(), 3);
    server.stop().await;
}

#[tokio::test]
async fn separate_response_after_accept() {
    let mut server = TokioEndpoint::bind("127.0.0.1:0", Config::default())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let started = Instant::now();
        let mut accepted = None;
        let mut delivered = false;
        while !delivered && started.elapsed() < LIMIT {
            server
                .turn(
                    Some(Duration::from_millis(10)),
                    |ep, now, event| match event {
                        Event::Request(req) => {
                            ep.accept(now, req.handle).unwrap();
                            accepted = Some((req.handle, Instant::now()));
                        }
                        Event::ResponseDelivered(_) => delivered = true,
                        other => panic!("server: unexpected {other:?}"),
                    },
                )
                .await
                .unwrap();
            // Answer 100 ms after the empty ACK.
            if let Some((handle, at)) = accepted
                && at.elapsed() >= Duration::from_millis(100)
            {
                let now = server.now();
                let mut answer = MessageBuf::new(MessageType::Con, Code::CONTENT);
                answer.set_payload("late");
                server.endpoint().respond(now, handle, &answer).unwrap();
                accepted = None;
            }
        }
        assert!(delivered, "the separate response was not acknowledged");
        server
    });

    // The client drives turn() itself to see the events in order.
    let mut c = client("127.0.0.1:0").await;
    let now = c.now();
    let get = request(MessageType::Con, Code::GET, "slow", b"");
    let id = c.endpoint().request(now, addr, &get).unwrap();
    let mut events = Vec::new();
    let mut response = None;
    let started = Instant::now();
    while response.is_none() && started.elapsed() < LIMIT {
        c.turn(
            Some(Duration::from_millis(20)),
            |_ep, _now, event| match event {
                Event::Acknowledged(r) if r == id => events.push("acknowledged"),
                Event::Response(r) if r.id == id => {
                    events.push("response");
                    response = Some(MessageBuf::from(r.message()));
                }
                other => panic!("client: unexpected {other:?}"),
            },
        )
        .await
        .unwrap();
    }
    let r = response.expect("separate response");
    assert_eq!(events, ["acknowledged", "response"]);
    assert_eq!(
        (r.ty(), r.code(), r.payload()),
        (MessageType::Con, Code::CONTENT, &b"late"[..])
    );
    // The client's ACK for the CON response went out in the same turn.
    let mut server = server.await.unwrap();
    assert_eq!(server.endpoint().tables().separate, 0);
    assert_eq!(c.endpoint().tables().requests, 0);
}

/// Sends `datagram` from a raw socket and returns the answer, if any comes
/// within `wait`.
async fn exchange_raw(
    sock: &UdpSocket,
    to: SocketAddr,
    datagram: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    sock.send_to(datagram, to).await.unwrap();
    let mut buf = [0u8; 1500];
    match tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
        Ok(Ok((n, from))) => {
            assert_eq!(from, to);
            Some(buf[..n].to_vec())
        }
        Ok(Err(e)) => panic!("{e}"),
        Err(_elapsed) => None,
    }
}

#[tokio::test]
async fn duplicates_are_answered_once_from_the_cache() {
    // RFC 7252 §4.5
    let server = Server::start("127.0.0.1:0").await.unwrap();
    let raw = UdpSocket::bind("127.0.0.1:0").await.unwrap();

    let mut con = request(MessageType::Con, Code::POST, "echo", b"once");
    con.set_message_id(0x1234);
    con.set_token(&[1, 2, 3, 4]).unwrap();
    let bytes = con.to_bytes().unwrap();
    let first = exchange_raw(&raw, server.addr, &bytes, LIMIT)
        .await
        .expect("answer");
    let again = exchange_raw(&raw, server.addr, &bytes, LIMIT)
        .await
        .expect("replayed answer");
    assert_eq!(first, again, "the duplicate gets the same bytes");
    let m = Message::parse(&first).unwrap();
    assert_eq!(
        (m.ty(), m.code(), m.message_id(), m.token(), m.payload()),
        (
            MessageType::Ack,
            Code::CREATED,
            0x1234,
            &[1, 2, 3, 4][..],
            &b"once"[..]
        )
    );

    let mut non = request(MessageType::Non, Code::POST, "echo", b"non");
    non.set_message_id(0x2345);
    let bytes = non.to_bytes().unwrap();
    assert!(
        exchange_raw(&raw, server.addr, &bytes, LIMIT)
            .await
            .is_some()
    );
    assert_eq!(
        exchange_raw(&raw, server.addr, &bytes, Duration::from_millis(200)).await,
        None,
        "a duplicate NON is silently dropped"
    );

    assert_eq!(server.calls(), 2, "the handler saw each request once");
    let mut ep = server.stop().await;
    assert_eq!(ep.endpoint().stats().duplicates, 2);
}

#[tokio::test]
async fn malformed_con_gets_reset_and_the_server_keeps_serving() {
    let server = Server::start("127.0.0.1:0").await.unwrap();
    let raw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // A payload marker with no payload (RFC 7252 §3): a format error.
    let malformed = [0x40, 0x01, 0x43, 0x21, 0xff];
    let rst = exchange_raw(&raw, server.addr, &malformed, LIMIT)
        .await
        .expect("RST");
    assert_eq!(rst, [0x70, 0x00, 0x43, 0x21]);
    // Not CoAP at all, and an empty datagram: ignored.
    let short = Duration::from_millis(100);
    assert_eq!(
        exchange_raw(&raw, server.addr, b"\x00hello", short).await,
        None
    );
    assert_eq!(exchange_raw(&raw, server.addr, b"", short).await, None);

    let mut c = client("127.0.0.1:0").await;
    let get = request(MessageType::Con, Code::GET, "hello", b"");
    let r = expect_response(c.request(server.addr, &get, LIMIT).await.unwrap());
    assert_eq!(r.code(), Code::CONTENT);
    let mut ep = server.stop().await;
    assert_eq!(ep.endpoint().stats().format_errors, 3);
}

#[tokio::test]
async fn incoming_request_while_waiting_is_answered_busy() {
    // A raw peer that, before answering our request, sends us one.
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let mut c = client("127.0.0.1:0").await;
    let c_addr = c.local_addr().unwrap();
    let helper = tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        let (n, _) = peer.recv_from(&mut buf).await.unwrap();
        let ours = MessageBuf::from(Message::parse(&buf[..n]).unwrap());
        // Our own request to the client.
        let mut req = request(MessageType::Con, Code::GET, "you", b"");
        req.set_message_id(7);
        peer.send_to(&req.to_bytes().unwrap(), c_addr)
            .await
            .unwrap();
        let (n, _) = peer.recv_from(&mut buf).await.unwrap();
        let busy = MessageBuf::from(Message::parse(&buf[..n]).unwrap());
        // Now answer the client's request, piggybacked.
        let mut ack = MessageBuf::new(MessageType::Ack, Code::CONTENT);
        ack.set_message_id(ours.message_id());
        ack.set_token(ours.token()).unwrap();
        ack.set_payload("done");
        peer.send_to(&ack.to_bytes().unwrap(), c_addr)
            .await
            .unwrap();
        busy
    });
    let get = request(MessageType::Con, Code::GET, "me", b"");
    let r = expect_response(c.request(peer_addr, &get, LIMIT).await.unwrap());
    assert_eq!(r.payload(), b"done");
    let busy = tokio::time::timeout(LIMIT, helper).await.unwrap().unwrap();
    assert_eq!(
        (busy.ty(), busy.code(), busy.message_id()),
        (MessageType::Ack, Code::SERVICE_UNAVAILABLE, 7)
    );
}

#[tokio::test]
async fn trace_sees_every_datagram() {
    let server = Server::start("127.0.0.1:0").await.unwrap();
    let mut c = client("127.0.0.1:0").await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    c.set_trace(move |dir, peer, bytes| {
        let m = Message::parse(bytes).unwrap();
        log.lock().unwrap().push((dir, peer, m.ty(), m.code()));
    });
    let get = request(MessageType::Con, Code::GET, "hello", b"");
    expect_response(c.request(server.addr, &get, LIMIT).await.unwrap());
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            (Direction::Out, server.addr, MessageType::Con, Code::GET),
            (Direction::In, server.addr, MessageType::Ack, Code::CONTENT),
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn idle_turn_returns_after_max_wait() {
    let mut ep = client("127.0.0.1:0").await;
    let started = Instant::now();
    let mut events = 0;
    ep.turn(Some(Duration::from_millis(30)), |_, _, _| events += 1)
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(events, 0);
    assert!(took >= Duration::from_millis(29), "{took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[tokio::test]
async fn concurrent_clients() {
    let server = Server::start("127.0.0.1:0").await.unwrap();
    let addr = server.addr;
    let clients: Vec<_> = (0..4u8)
        .map(|k| {
            tokio::spawn(async move {
                let mut c = client("127.0.0.1:0").await;
                for i in 0..25u8 {
                    let post = request(MessageType::Con, Code::POST, "echo", &[k, i]);
                    let r = expect_response(c.request(addr, &post, LIMIT).await.unwrap());
                    assert_eq!(r.payload(), [k, i]);
                }
            })
        })
        .collect();
    for t in clients {
        tokio::time::timeout(LIMIT, t).await.unwrap().unwrap();
    }
    assert_eq!(server.calls(), 100);
    let mut ep = server.stop().await;
    assert_eq!(ep.endpoint().stats().requests_in, 100);
}
