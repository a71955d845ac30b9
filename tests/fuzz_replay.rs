//! Replays every file under `fuzz/corpus/<target>/` and
//! `fuzz/artifacts/<target>/` through the in-crate fuzz bodies, so that the
//! corpus (and every crash ever found) is exercised by `cargo test` on
//! stable, without libFuzzer.
#![cfg(feature = "_internal")]

use std::path::Path;

use coap_proto::_internal::{fuzz, fuzz_endpoint};

type Body = fn(&[u8]);

const TARGETS: &[(&str, Body)] = &[
    ("parse", fuzz::parse),
    ("roundtrip", fuzz::roundtrip),
    ("encode", fuzz::encode),
    ("option_values", fuzz::option_values),
    ("uri", coap_proto::_internal::fuzz_uri::uri),
    ("link_format", coap_proto::_internal::fuzz_link::link_format),
    ("endpoint_server", fuzz_endpoint::endpoint_server),
    ("endpoint_client", fuzz_endpoint::endpoint_client),
    ("endpoint_pair", fuzz_endpoint::endpoint_pair),
    ("rd", coap_proto::_internal::fuzz_rd::rd),
];

fn replay(kind: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind);
    let mut count = 0;
    for (name, body) in TARGETS {
        let Ok(dir) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        let mut files: Vec<_> = dir.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for path in files {
            let data = std::fs::read(&path).unwrap();
            let result = std::panic::catch_unwind(|| body(&data));
            assert!(
                result.is_ok(),
                "fuzz body {name} failed on {}",
                path.display()
            );
            count += 1;
        }
    }
    count
}

#[test]
fn corpus_replays_cleanly() {
    let n = replay("corpus");
    assert!(
        n >= 80,
        "expected the seed corpus to be present, replayed {n} files"
    );
}

#[test]
fn artifacts_replay_cleanly() {
    // Every crash the fuzzers ever found is kept under fuzz/artifacts and must
    // stay fixed.
    replay("artifacts");
}
