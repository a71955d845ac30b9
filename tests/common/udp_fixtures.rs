//! Fixtures shared by the driver tests (`adapter_std.rs`, `adapter_tokio.rs`):
//! the test resources, request builders and the fast-failing configuration.
//! Included with `#[path]`, so each driver test stays one file of scenarios.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use coap_proto::endpoint::Config;
use coap_proto::udp::Outcome;
use coap_proto::{Code, Message, MessageBuf, MessageType, OptionNumber};

/// Long enough for any loopback answer, short enough to end a stuck test.
pub const LIMIT: Duration = Duration::from_secs(5);

/// The test resources: `/hello` (GET), `/echo` (POST 2.01, PUT 2.04 with
/// the payload echoed, DELETE 2.02); anything else declines (4.04).
pub fn resources(req: &Message<'_>) -> Option<MessageBuf> {
    let path: Vec<&[u8]> = req.options_of(OptionNumber::URI_PATH).collect();
    let (code, payload) = match (req.code(), path.as_slice()) {
        (Code::GET, [b"hello"]) => (Code::CONTENT, b"hello".to_vec()),
        (Code::POST, [b"echo"]) => (Code::CREATED, req.payload().to_vec()),
        (Code::PUT, [b"echo"]) => (Code::CHANGED, req.payload().to_vec()),
        (Code::DELETE, [b"echo"]) => (Code::DELETED, Vec::new()),
        _ => return None,
    };
    let mut answer = MessageBuf::new(MessageType::Ack, code);
    answer.set_payload(payload);
    Some(answer)
}

/// A request of type `ty` to `/path` with `payload`.
pub fn request(ty: MessageType, code: Code, path: &str, payload: &[u8]) -> MessageBuf {
    let mut msg = MessageBuf::new(ty, code);
    msg.add_option(OptionNumber::URI_PATH, path);
    msg.set_payload(payload.to_vec());
    msg
}

/// A Config whose CON requests give up after ~0.2 s.
pub fn fast_config() -> Config {
    let mut config = Config::default();
    config.transmission.ack_timeout = Duration::from_millis(50);
    config.transmission.max_retransmit = 1;
    config
}

/// The response of a request that must have been answered.
pub fn expect_response(outcome: Outcome) -> MessageBuf {
    match outcome {
        Outcome::Response(r) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}
