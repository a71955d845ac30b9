//! The blocking std UDP driver (`coap_proto::udp`) on real loopback sockets,
//! IPv4 and IPv6: every method, ping, timeouts against a closed port, NON
//! requests, separate responses, deduplication, malformed input and the
//! trace hook. Every loop is bounded in count and time; servers are
//! stopped with `serve_until` and joined.
#![cfg(feature = "std")]

use std::io::{self, Write as _};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use coap_proto::endpoint::{Config, Event};
use coap_proto::udp::{Direction, Outcome, UdpEndpoint};
use coap_proto::{Code, Message, MessageBuf, MessageType};

#[path = "common/udp_fixtures.rs"]
mod fixtures;

use fixtures::{LIMIT, expect_response, fast_config, request, resources};

/// A `serve_until` server in a thread, counting handler calls.
struct Server {
    addr: SocketAddr,
    calls: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<io::Result<UdpEndpoint>>,
}

impl Server {
    fn start(bind: &str) -> io::Result<Self> {
        let mut ep = UdpEndpoint::bind(bind, Config::default())?;
        let addr = ep.local_addr()?;
        let calls = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (Arc::clone(&calls), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            ep.serve_until(&s, |req| {
                c.fetch_add(1, Ordering::SeqCst);
                resources(req)
            })?;
            Ok(ep)
        });
        Ok(Self {
            addr,
            calls,
            stop,
            thread,
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Stops the server (within `serve_until`'s 50 ms poll) and returns it.
    fn stop(self) -> UdpEndpoint {
        self.stop.store(true, Ordering::SeqCst);
        let started = Instant::now();
        let ep = self
            .thread
            .join()
            .expect("server thread")
            .expect("server I/O");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "serve_until did not stop promptly"
        );
        ep
    }
}

fn client(bind: &str) -> UdpEndpoint {
    UdpEndpoint::bind(bind, Config::default()).expect("bind client")
}

/// GET, POST, PUT, DELETE and a 4.04, with payloads, against `bind`.
fn methods_round_trip(bind: &str) {
    let server = Server::start(bind).expect("bind server");
    let mut c = client(bind);

    let r = expect_response(
        c.request(
            server.addr,
            &request(MessageType::Con, Code::GET, "hello", b""),
            LIMIT,
        )
        .unwrap(),
    );
    assert_eq!(
        (r.ty(), r.code(), r.payload()),
        (MessageType::Ack, Code::CONTENT, &b"hello"[..])
    );

    let r = expect_response(
        c.request(
            server.addr,
            &request(MessageType::Con, Code::POST, "echo", b"posted"),
            LIMIT,
        )
        .unwrap(),
    );
    assert_eq!((r.code(), r.payload()), (Code::CREATED, &b"posted"[..]));

    // A payload near the default max_message_size (1152) still fits.
    let big: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let r = expect_response(
        c.request(
            server.addr,
            &request(MessageType::Con, Code::PUT, "echo", &big),
            LIMIT,
        )
        .unwrap(),
    );
    assert_eq!((r.code(), r.payload()), (Code::CHANGED, &big[..]));

    let r = expect_response(
        c.request(
            server.addr,
            &request(MessageType::Con, Code::DELETE, "echo", b""),
            LIMIT,
        )
        .unwrap(),
    );
    assert_eq!((r.code(), r.payload()), (Code::DELETED, &b""[..]));

    let r = expect_response(
        c.request(
            server.addr,
            &request(MessageType::Con, Code::GET, "nothing", b""),
            LIMIT,
        )
        .unwrap(),
    );
    assert_eq!(r.code(), Code::NOT_FOUND);

    assert_eq!(c.endpoint().stats().responses_in, 5);
    assert_eq!(c.endpoint().stats().retransmissions, 0);
    assert_eq!(c.endpoint().tables().requests, 0);
    assert_eq!(server.calls(), 5);
    let mut ep = server.stop();
    assert_eq!(ep.endpoint().stats().requests_in, 5);
    assert_eq!(ep.endpoint().tables().pending, 0);
}

#[test]
fn methods_over_ipv4() {
    methods_round_trip("127.0.0.1:0");
}

#[test]
fn methods_over_ipv6() {
    if UdpSocket::bind("[::1]:0").is_err() {
        let _ = writeln!(
            io::stderr(),
            "SKIPPED: methods_over_ipv6: no IPv6 loopback here"
        );
        return;
    }
    methods_round_trip("[::1]:0");
}

#[test]
fn ping_round_trip() {
    let server = Server::start("127.0.0.1:0").unwrap();
    let mut c = client("127.0.0.1:0");
    let rtt = c.ping(server.addr, LIMIT).unwrap().expect("pong");
    assert!(rtt < Duration::from_secs(1), "{rtt:?}");
    assert_eq!(server.calls(), 0); // a ping is not a request
    let mut ep = server.stop();
    assert_eq!(ep.endpoint().stats().resets_sent, 1);
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

#[test]
fn closed_port_times_out_on_the_engines_schedule() {
    let peer = closed_port();
    let mut c = UdpEndpoint::bind("127.0.0.1:0", fast_config()).unwrap();
    let started = Instant::now();
    let outcome = c
        .request(peer, &request(MessageType::Con, Code::GET, "x", b""), LIMIT)
        .unwrap();
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
    let mut c = UdpEndpoint::bind("127.0.0.1:0", fast_config()).unwrap();
    let started = Instant::now();
    assert_eq!(c.ping(peer, LIMIT).unwrap(), None);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(c.endpoint().stats().timeouts, 1);
}

#[test]
fn caller_timeout_cancels_the_request() {
    let peer = closed_port();
    let mut c = client("127.0.0.1:0"); // default ACK_TIMEOUT: 2-3 s
    let started = Instant::now();
    let outcome = c
        .request(
            peer,
            &request(MessageType::Con, Code::GET, "x", b""),
            Duration::from_millis(60),
        )
        .unwrap();
    assert!(matches!(outcome, Outcome::TimedOut));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(
        c.endpoint().tables().requests,
        0,
        "cancelled, not left open"
    );
    // Duration::MAX means "no limit of the caller's", not an overflow.
    let mut c = UdpEndpoint::bind("127.0.0.1:0", fast_config()).unwrap();
    let outcome = c
        .request(
            peer,
            &request(MessageType::Con, Code::GET, "x", b""),
            Duration::MAX,
        )
        .unwrap();
    assert!(matches!(outcome, Outcome::TimedOut));
}

#[test]
fn non_requests_get_non_responses() {
    let server = Server::start("127.0.0.1:0").unwrap();
    let mut c = client("127.0.0.1:0");
    for i in 0..3u8 {
        let r = expect_response(
            c.request(
                server.addr,
                &request(MessageType::Non, Code::POST, "echo", &[i; 3]),
                LIMIT,
            )
            .unwrap(),
        );
        assert_eq!(
            (r.ty(), r.code(), r.payload()),
            (MessageType::Non, Code::CREATED, &[i; 3][..])
        );
    }
    assert_eq!(server.calls(), 3);
    server.stop();
}

#[test]
fn separate_response_after_accept() {
    let mut server = UdpEndpoint::bind("127.0.0.1:0", Config::default()).unwrap();
    let addr = server.local_addr().unwrap();
    let server = std::thread::spawn(move || {
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
    let mut c = client("127.0.0.1:0");
    let now = c.now();
    let id = c
        .endpoint()
        .request(
            now,
            addr,
            &request(MessageType::Con, Code::GET, "slow", b""),
        )
        .unwrap();
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
        .unwrap();
    }
    let r = response.expect("separate response");
    assert_eq!(events, ["acknowledged", "response"]);
    assert_eq!(
        (r.ty(), r.code(), r.payload()),
        (MessageType::Con, Code::CONTENT, &b"late"[..])
    );
    // The client's ACK for the CON response goes out in the same turn.
    let mut server = server.join().unwrap();
    assert_eq!(server.endpoint().tables().separate, 0);
    assert_eq!(c.endpoint().tables().requests, 0);
}

/// Sends `datagram` from a raw socket and returns the answer, if any comes
/// within `wait`.
fn exchange_raw(
    sock: &UdpSocket,
    to: SocketAddr,
    datagram: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    sock.send_to(datagram, to).unwrap();
    sock.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 1500];
    match sock.recv_from(&mut buf) {
        Ok((n, from)) => {
            assert_eq!(from, to);
            Some(buf[..n].to_vec())
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            None
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn duplicates_are_answered_once_from_the_cache() {
    // RFC 7252 §4.5
    let server = Server::start("127.0.0.1:0").unwrap();
    let raw = UdpSocket::bind("127.0.0.1:0").unwrap();

    let mut con = request(MessageType::Con, Code::POST, "echo", b"once");
    con.set_message_id(0x1234);
    con.set_token(&[1, 2, 3, 4]).unwrap();
    let bytes = con.to_bytes().unwrap();
    let first = exchange_raw(&raw, server.addr, &bytes, LIMIT).expect("answer");
    let again = exchange_raw(&raw, server.addr, &bytes, LIMIT).expect("replayed answer");
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
    assert!(exchange_raw(&raw, server.addr, &bytes, LIMIT).is_some());
    assert_eq!(
        exchange_raw(&raw, server.addr, &bytes, Duration::from_millis(200)),
        None,
        "a duplicate NON is silently dropped"
    );

    assert_eq!(server.calls(), 2, "the handler saw each request once");
    let mut ep = server.stop();
    assert_eq!(ep.endpoint().stats().duplicates, 2);
}

#[test]
fn malformed_con_gets_reset_and_the_server_keeps_serving() {
    let server = Server::start("127.0.0.1:0").unwrap();
    let raw = UdpSocket::bind("127.0.0.1:0").unwrap();
    // A payload marker with no payload (RFC 7252 §3): a format error.
    let rst = exchange_raw(&raw, server.addr, &[0x40, 0x01, 0x43, 0x21, 0xff], LIMIT).expect("RST");
    assert_eq!(rst, [0x70, 0x00, 0x43, 0x21]);
    // Not CoAP at all, and an empty datagram: ignored.
    assert_eq!(
        exchange_raw(&raw, server.addr, b"\x00hello", Duration::from_millis(100)),
        None
    );
    assert_eq!(
        exchange_raw(&raw, server.addr, b"", Duration::from_millis(100)),
        None
    );

    let mut c = client("127.0.0.1:0");
    let r = expect_response(
        c.request(
            server.addr,
            &request(MessageType::Con, Code::GET, "hello", b""),
            LIMIT,
        )
        .unwrap(),
    );
    assert_eq!(r.code(), Code::CONTENT);
    let mut ep = server.stop();
    assert_eq!(ep.endpoint().stats().format_errors, 3);
}

#[test]
fn incoming_request_while_waiting_is_answered_busy() {
    // A raw peer that, before answering our request, sends us one.
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let mut c = client("127.0.0.1:0");
    let c_addr = c.local_addr().unwrap();
    let helper = std::thread::spawn(move || {
        peer.set_read_timeout(Some(LIMIT)).unwrap();
        let mut buf = [0u8; 1500];
        let (n, _) = peer.recv_from(&mut buf).unwrap();
        let ours = MessageBuf::from(Message::parse(&buf[..n]).unwrap());
        // Our own request to the client.
        let mut req = request(MessageType::Con, Code::GET, "you", b"");
        req.set_message_id(7);
        peer.send_to(&req.to_bytes().unwrap(), c_addr).unwrap();
        let (n, _) = peer.recv_from(&mut buf).unwrap();
        let busy = MessageBuf::from(Message::parse(&buf[..n]).unwrap());
        // Now answer the client's request, piggybacked.
        let mut ack = MessageBuf::new(MessageType::Ack, Code::CONTENT);
        ack.set_message_id(ours.message_id());
        ack.set_token(ours.token()).unwrap();
        ack.set_payload("done");
        peer.send_to(&ack.to_bytes().unwrap(), c_addr).unwrap();
        busy
    });
    let r = expect_response(
        c.request(
            peer_addr,
            &request(MessageType::Con, Code::GET, "me", b""),
            LIMIT,
        )
        .unwrap(),
    );
    assert_eq!(r.payload(), b"done");
    let busy = helper.join().unwrap();
    assert_eq!(
        (busy.ty(), busy.code(), busy.message_id()),
        (MessageType::Ack, Code::SERVICE_UNAVAILABLE, 7)
    );
}

#[test]
fn trace_sees_every_datagram() {
    let server = Server::start("127.0.0.1:0").unwrap();
    let mut c = client("127.0.0.1:0");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    c.set_trace(move |dir, peer, bytes| {
        let m = Message::parse(bytes).unwrap();
        log.lock().unwrap().push((dir, peer, m.ty(), m.code()));
    });
    expect_response(
        c.request(
            server.addr,
            &request(MessageType::Con, Code::GET, "hello", b""),
            LIMIT,
        )
        .unwrap(),
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            (Direction::Out, server.addr, MessageType::Con, Code::GET),
            (Direction::In, server.addr, MessageType::Ack, Code::CONTENT),
        ]
    );
    server.stop();
}

#[test]
fn concurrent_clients() {
    let server = Server::start("127.0.0.1:0").unwrap();
    let addr = server.addr;
    let clients: Vec<_> = (0..4u8)
        .map(|k| {
            std::thread::spawn(move || {
                let mut c = client("127.0.0.1:0");
                for i in 0..25u8 {
                    let r = expect_response(
                        c.request(
                            addr,
                            &request(MessageType::Con, Code::POST, "echo", &[k, i]),
                            LIMIT,
                        )
                        .unwrap(),
                    );
                    assert_eq!(r.payload(), [k, i]);
                }
            })
        })
        .collect();
    for t in clients {
        t.join().unwrap();
    }
    assert_eq!(server.calls(), 100);
    let mut ep = server.stop();
    assert_eq!(ep.endpoint().stats().requests_in, 100);
}
