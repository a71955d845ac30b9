//! Fuzz target bodies. The `fuzz/` crate's targets are one-line calls into
//! these, and `tests/fuzz_replay.rs` runs every corpus file through them on
//! stable, so `cargo test` exercises the corpus.
