//! Shared by the property tests: the checks (`oracle`, also used by the
//! libFuzzer targets in `fuzz/`), the input generators (`strategies`) and
//! the runner that stretches a test over a time budget (`budget`).

pub mod budget;
pub mod oracle;
pub mod strategies;
