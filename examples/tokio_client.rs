//! A small CoAP client on tokio.
//!
//! ```text
//! cargo run --example tokio_client --features tokio -- 127.0.0.1:5683 hello
//! cargo run --example tokio_client --features tokio -- 127.0.0.1:5683 echo "some text"
//! ```
//!
//! Sends `GET /PATH` (or `POST /PATH` with a payload), prints every datagram
//! and the response payload, and exits 0 on 2.xx, 1 on an error code, 3 on a
//! timeout or Reset.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use coap_proto::endpoint::Config;
use coap_proto::tokio::TokioEndpoint;
use coap_proto::udp::{Direction, Outcome};
use coap_proto::{Code, Message, MessageBuf, MessageType, OptionNumber};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<ExitCode> {
    let mut args = std::env::args().skip(1);
    let server = args.next().unwrap_or_else(|| "127.0.0.1:5683".to_owned());
    let path = args.next().unwrap_or_else(|| "hello".to_owned());
    let payload = args.next();
    let Ok(peer) = server.parse::<SocketAddr>() else {
        eprintln!("usage: tokio_client ADDR:PORT [PATH [PAYLOAD]]");
        return Ok(ExitCode::from(2));
    };

    let bind = if peer.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    };
    let mut client = TokioEndpoint::bind(bind, Config::default()).await?;
    client.set_trace(|dir, peer, bytes| {
        let arrow = if dir == Direction::Out { "->" } else { "<-" };
        match Message::parse(bytes) {
            Ok(m) => println!("{arrow} {peer} {m}"),
            Err(e) => println!("{arrow} {peer} malformed: {e}"),
        }
    });

    let method = if payload.is_some() {
        Code::POST
    } else {
        Code::GET
    };
    let mut request = MessageBuf::new(MessageType::Con, method);
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        request.add_option(OptionNumber::URI_PATH, segment);
    }
    if let Some(p) = payload {
        request.set_payload(p);
    }
    let outcome = client.request(peer, &request, Duration::from_secs(10));
    match outcome.await? {
        Outcome::Response(r) => {
            if !r.payload().is_empty() {
                println!("{}", String::from_utf8_lossy(r.payload()));
            }
            Ok(ExitCode::from(u8::from(!r.code().is_success())))
        }
        other => {
            eprintln!("{other:?}");
            Ok(ExitCode::from(3))
        }
    }
}
