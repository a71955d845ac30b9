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
