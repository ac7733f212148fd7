//! Bytes fed through a `Driver` into a recording handler and a fake
//! connection, and through a bare `LineReader`. The first bytes choose the
//! frame limit (1–600), whether the handler's `handle_error` stays quiet,
//! and how the rest is cut into reads; the rest is the stream. Checks
//! (`common/tests/support/oracle.rs`): the same lines and handler calls
//! however the stream is cut; every request and error accounted for, in
//! order; an over-long line reported once and the connection closed;
//! nothing held beyond the limit; `finish` exactly once.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};

#[allow(dead_code)]
#[path = "../../common/tests/support/oracle.rs"]
mod oracle;

fn setup(u: &mut Unstructured) -> Result<(usize, bool, Vec<usize>)> {
    let limit = u.int_in_range(1..=600)?;
    let quiet = u.arbitrary()?;
    let reads = u.int_in_range(0..=4)?;
    let sizes = (0..reads)
        .map(|_| u.int_in_range(1..=700))
        .collect::<Result<_>>()?;
    Ok((limit, quiet, sizes))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok((limit, quiet, sizes)) = setup(&mut u) else {
        return;
    };
    let stream = u.take_rest();
    oracle::check_lines(limit, stream, &sizes);
    oracle::check_driver(limit, stream, &sizes, quiet);
});
