//! A small CoAP server on tokio.
//!
//! ```text
//! cargo run --example tokio_server --features tokio -- 127.0.0.1:5683
//! ```
//!
//! `GET /hello` answers "hello from tokio", `POST` or `PUT /echo` echoes the
//! payload, `DELETE /echo` answers 2.02; anything else is 4.04. Every
//! datagram is printed as a one-line dump.

use coap_proto::endpoint::Config;
use coap_proto::tokio::TokioEndpoint;
use coap_proto::udp::Direction;
use coap_proto::{Code, Message, MessageBuf, MessageType, OptionNumber};

/// The request's Uri-Path, `/`-joined.
fn path(req: &Message<'_>) -> String {
    let segments: Vec<_> = req
        .options_of(OptionNumber::URI_PATH)
        .map(String::from_utf8_lossy)
        .collect();
    segments.join("/")
}

fn handle(req: &Message<'_>) -> Option<MessageBuf> {
    let (code, payload) = match (req.code(), path(req).as_str()) {
        (Code::GET, "hello") => (Code::CONTENT, b"hello from tokio".to_vec()),
        (Code::POST, "echo") => (Code::CREATED, req.payload().to_vec()),
        (Code::PUT, "echo") => (Code::CHANGED, req.payload().to_vec()),
        (Code::DELETE, "echo") => (Code::DELETED, Vec::new()),
        _ => return None, // 4.04
    };
    let mut answer = MessageBuf::new(MessageType::Ack, code);
    answer.set_payload(payload);
    Some(answer)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5683".to_owned());
    let mut server = TokioEndpoint::bind(addr.as_str(), Config::default()).await?;
    println!("listening on coap://{}", server.local_addr()?);
    server.set_trace(|dir, peer, bytes| {
        let arrow = if dir == Direction::In { "<-" } else { "->" };
        match Message::parse(bytes) {
            Ok(m) => println!("{arrow} {peer} {m}"),
            Err(e) => println!("{arrow} {peer} malformed: {e}"),
        }
    });
    server.serve(handle).await
}
