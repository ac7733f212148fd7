//! Any bytes as one line: `decode` as a request and as a server frame, and
//! `validate_nick`. The checks are the property tests' own
//! (`common/tests/support/oracle.rs`): no panic; a decoded frame
//! round-trips; a refused line gets the code and id it deserves.
#![no_main]

#[allow(dead_code)]
#[path = "../../common/tests/support/oracle.rs"]
mod oracle;

libfuzzer_sys::fuzz_target!(|line: &[u8]| oracle::check_decode(line));
