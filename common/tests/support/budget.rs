//! How long a property test runs. Under `cargo test`: a fixed, small
//! number of cases (the whole crate's tests stay around a second). With
//! `CHAT_FUZZ_SECONDS=N` (what `make fuzz` sets): fresh random cases, batch
//! after batch, for N seconds, then one line on stderr saying how many ran
//! (`fuzz: <name>: <cases> cases in <s> s`), which `make fuzz` collects.

use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestRunner};

/// Cases per batch in a timed run; the budget is checked between batches.
const BATCH: u32 = 1000;

/// Runs `test` on values of `strategy` (see the module comment). A failing
/// case is shrunk and the test panics with the smallest input found. Set
/// `PROPTEST_CASES` to change `cases` for an untimed run.
pub fn run<S: Strategy>(name: &str, cases: u32, strategy: S, test: impl Fn(S::Value)) {
    let budget = std::env::var("CHAT_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0);
    let config = |cases| Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let one_batch = |cases| {
        TestRunner::new(config(cases))
            .run(&strategy, |value| {
                test(value);
                Ok(())
            })
            .unwrap_or_else(|err| panic!("{name}: {err}"));
    };
    let Some(seconds) = budget else {
        let cases = if std::env::var_os("PROPTEST_CASES").is_some() {
            Config::default().cases
        } else {
            cases
        };
        one_batch(cases);
        return;
    };
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut total: u64 = 0;
    while Instant::now() < deadline {
        one_batch(BATCH);
        total += u64::from(BATCH);
    }
    eprintln!(
        "fuzz: {name}: {total} cases in {:.0} s",
        start.elapsed().as_secs_f64()
    );
}
