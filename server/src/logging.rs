//! Log output through `tracing`: to stderr, or above the admin console's
//! prompt once the console is up, so log lines never break what the
//! operator is typing.

use std::io::{IsTerminal, Write};

use anyhow::Context as _;
use parking_lot::Mutex;
use rustyline::ExternalPrinter;
use tracing_subscriber::EnvFilter;

type Printer = Box<dyn ExternalPrinter + Send>;

static PRINTER: Mutex<Option<Printer>> = Mutex::new(None);

/// Installs the global subscriber with `filter` (e.g. "info" or "debug").
pub fn init(filter: &str) -> anyhow::Result<()> {
    let filter =
        EnvFilter::try_new(filter).with_context(|| format!("bad --log-level {filter:?}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_writer(|| LogLine(Vec::new()))
        .try_init()
        .map_err(|e| anyhow::anyhow!("installing the logger: {e}"))
}

/// From now on, log lines go through `printer` (above the console prompt).
pub fn print_above_prompt(printer: Printer) {
    *PRINTER.lock() = Some(printer);
}

/// Back to stderr (the console prompt is gone).
pub fn print_to_stderr() {
    *PRINTER.lock() = None;
}

/// Prints a console line: through the prompt's printer when there is one,
/// so it is ordered with the log lines and never glued to one of them.
pub fn print_line(text: &str) {
    let mut printer = PRINTER.lock();
    if let Some(printer) = printer.as_mut() {
        if printer.print(format!("{text}\n")).is_ok() {
            return;
        }
    }
    println!("{text}");
}

/// Collects one log event and emits it whole when dropped.
struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let mut printer = PRINTER.lock();
        if let Some(printer) = printer.as_mut() {
            // The printer adds no newline when the prompt is not active.
            let line = format!("{}\n", String::from_utf8_lossy(&self.0).trim_end());
            if printer.print(line).is_ok() {
                return;
            }
        }
        let _ = std::io::stderr().write_all(&self.0);
    }
}
