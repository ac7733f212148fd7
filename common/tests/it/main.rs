//! The crate's integration tests in one binary: the property tests share
//! `support` (compiled once), and the memory test's counting allocator
//! counts per thread, so it may run beside them.

// `support` stays at `tests/support/`: the libFuzzer targets in `fuzz/`
// include `oracle.rs` from there by path.
#[path = "../support/mod.rs"]
mod support;

mod decode_props;
mod driver_memory;
mod driver_props;
mod roundtrip;
