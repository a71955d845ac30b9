//! Crashes the endpoint fuzz targets found, kept as named regression tests.
//! Each input is also kept under `fuzz/artifacts/<target>/` (replayed by
//! `tests/fuzz_replay.rs`); here each gets a name saying what it was.
#![cfg(feature = "_internal")]

use coap_proto::_internal::fuzz_endpoint::{endpoint_client, endpoint_pair, endpoint_server};

fn artifact(target: &str, name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/artifacts")
        .join(target)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `endpoint_server`, custom configuration with `max_dedup = 0`: the first
/// request still created a deduplication entry, so the dedup table held 1
/// entry over its bound of 0 (and `memory_usage` could exceed
/// `memory_bound`). Fixed: with a zero bound nothing is cached and the
/// entry counts as evicted at once.
#[test]
fn dedup_table_over_zero_bound() {
    endpoint_server(&artifact(
        "endpoint_server",
        "crash-dedup-table-over-zero-bound",
    ));
}

/// `endpoint_pair`, ACK_TIMEOUT ~1.5 s × ACK_RANDOM_FACTOR 2.5 with
/// MAX_RETRANSMIT 7 but MAX_LATENCY only 8.8 s: MAX_TRANSMIT_WAIT (980 s)
/// exceeds EXCHANGE_LIFETIME (508 s). A separate CON response still waiting
/// for its ACK had its MID handed to a new separate response once
/// EXCHANGE_LIFETIME had passed, overwriting the first one's (peer, MID)
/// match entry (RFC 7252 §4.4). Fixed: a MID stays taken for
/// max(EXCHANGE_LIFETIME, MAX_TRANSMIT_WAIT).
#[test]
fn mid_reused_while_con_awaits_ack() {
    endpoint_pair(&artifact(
        "endpoint_pair",
        "crash-mid-reused-while-con-awaits-ack",
    ));
}

/// `endpoint_client`, with `handle_timeout` called late (time jumps): a
/// separate CON response's retransmissions ran past the MID lifetime, its
/// MID was handed to a ping while it still awaited its ACK, and the ping's
/// (peer, MID) match entry replaced the response's. Fixed: a MID still
/// matched to a live exchange with that peer is skipped.
#[test]
fn ping_mid_collides_with_late_separate_response() {
    endpoint_client(&artifact(
        "endpoint_client",
        "crash-ping-mid-collides-with-late-separate-response",
    ));
}

/// `endpoint_server`, same root cause on the server side: an Observe
/// notification got the MID of a separate CON response still in flight
/// (late timers), so that MID was sent in six CONs (MAX_RETRANSMIT 4).
#[test]
fn notification_mid_collides_with_late_separate_response() {
    endpoint_server(&artifact(
        "endpoint_server",
        "crash-notification-mid-collides-with-late-separate-response",
    ));
}

/// Replays one file by hand:
/// `COAP_FUZZ_TARGET=endpoint_pair COAP_FUZZ_FILE=crash-... COAP_FUZZ_DEBUG=1
/// cargo test --all-features --test regressions -- --ignored replay_file --nocapture`
#[test]
#[ignore = "manual: replays $COAP_FUZZ_FILE through $COAP_FUZZ_TARGET"]
fn replay_file() {
    let target = std::env::var("COAP_FUZZ_TARGET").expect("COAP_FUZZ_TARGET");
    let data = std::fs::read(std::env::var("COAP_FUZZ_FILE").expect("COAP_FUZZ_FILE")).unwrap();
    match target.as_str() {
        "endpoint_server" => endpoint_server(&data),
        "endpoint_client" => endpoint_client(&data),
        "endpoint_pair" => endpoint_pair(&data),
        t => panic!("unknown target {t}"),
    }
}

/// Fuzz `encode` (fuzz/artifacts/encode/crash-c4e5a38d…): an Empty-code
/// message with options and a too-small buffer. `MessageBuf::encode` used to
/// say BufferTooSmall, then EmptyMessageNotEmpty with a larger buffer; it now
/// reports the message's own error first, whatever the buffer.
#[test]
fn encode_empty_code_with_options_reports_the_message_error_first() {
    coap_proto::_internal::fuzz::encode(b"\x0c\x00\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff");
    let mut m = coap_proto::MessageBuf::new(coap_proto::MessageType::Con, coap_proto::Code::EMPTY);
    m.add_option(coap_proto::OptionNumber::URI_PATH, "x");
    assert_eq!(
        m.encode(&mut [0u8; 2]),
        Err(coap_proto::EncodeError::EmptyMessageNotEmpty)
    );
}

/// `endpoint_pair`, block-wise scenario (`BLK/` inputs): a resource shrank
/// while the client layer completed a block-wise notification (RFC 7959
/// §2.6); the server answered the GET for a block past the new end with
/// 4.02, and the layer delivered that error as a `Notification` (the
/// harness found a notification without the server's ETag). Fixed: an
/// error answer ends the completion with `NotificationFailed`
/// (`ErrorResponse`); see also `tests/observe_block.rs`.
#[test]
fn notification_completion_error_answer() {
    endpoint_pair(&artifact(
        "endpoint_pair",
        "crash-notification-completion-error-answer",
    ));
}
