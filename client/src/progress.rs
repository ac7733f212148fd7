//! Progress bars for big transfers in interactive mode (none in pipe mode).
//!
//! indicatif redraws a bar in place with cursor movements, which would
//! fight rustyline over the prompt line. Here its draw target is a
//! [`TermLike`] that turns each redraw into one finished line handed to
//! rustyline's external printer — printed above the prompt like a message,
//! a half-typed line kept — at most once a second per bar, and once more
//! when the transfer ends.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Local};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use rustyline::ExternalPrinter;

use crate::files::Progress;
use crate::render::Renderer;
use crate::session::Notice;

/// `[12:00:00] * receiving big.bin [===>   ] …`: a bar's line, stamped
/// and worded like a transfer's other news.
fn bar_line(renderer: Renderer, line: &str, now: DateTime<Local>) -> String {
    let notice = Notice::File {
        text: line.to_string(),
    };
    renderer.line(&notice, now)
}

/// Transfers smaller than this get no bar ("over a few MB").
pub const MIN_SIZE: u64 = 4 << 20;

/// Least time between two lines of one bar.
const INTERVAL: Duration = Duration::from_secs(1);

/// The printer both the chat lines and the bars go through.
pub type SharedPrinter = Arc<Mutex<dyn ExternalPrinter + Send>>;

/// The bars under way, by direction and file number.
pub struct Bars {
    printer: SharedPrinter,
    /// Stamps each bar's line like the others.
    renderer: Renderer,
    /// Each bar, and the flag that makes its last line print.
    bars: HashMap<(bool, u64), (ProgressBar, Arc<AtomicBool>)>,
}

impl Bars {
    pub fn new(printer: SharedPrinter, renderer: Renderer) -> Bars {
        Bars {
            printer,
            renderer,
            bars: HashMap::new(),
        }
    }

    /// Moves (or starts, or ends) the bar of `p`.
    pub fn update(&mut self, p: &Progress) {
        if p.total < MIN_SIZE {
            return;
        }
        let key = (p.upload, p.file);
        let printer = self.printer.clone();
        let (bar, last) = self.bars.entry(key).or_insert_with(|| {
            let last = Arc::new(AtomicBool::new(false));
            let target = ProgressDrawTarget::term_like_with_hz(
                Box::new(PrinterTerm {
                    printer,
                    renderer: self.renderer,
                    line: Mutex::new(String::new()),
                    printed: Mutex::new(None),
                    last: last.clone(),
                }),
                1,
            );
            let bar = ProgressBar::with_draw_target(Some(p.total), target);
            bar.set_style(style());
            let verb = if p.upload { "sending" } else { "receiving" };
            bar.set_prefix(format!("{verb} {}", p.name));
            (bar, last)
        });
        if p.done >= p.total {
            last.store(true, Ordering::SeqCst);
            bar.set_position(p.done);
            bar.finish();
            self.bars.remove(&key);
        } else {
            bar.set_position(p.done);
        }
    }
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}, {eta} left",
    )
    .expect("a valid template")
    .progress_chars("=> ")
}

/// A terminal for indicatif that prints whole lines through rustyline.
struct PrinterTerm {
    printer: SharedPrinter,
    renderer: Renderer,
    /// The line being drawn, printed on `flush`.
    line: Mutex<String>,
    /// When a line was last printed: indicatif's own limit lets bursts
    /// through, and a line a chunk would scroll the chat away.
    printed: Mutex<Option<Instant>>,
    /// The transfer ended: its last line prints whatever the time.
    last: Arc<AtomicBool>,
}

impl fmt::Debug for PrinterTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrinterTerm")
    }
}

impl TermLike for PrinterTerm {
    fn width(&self) -> u16 {
        100
    }

    // Lines are printed, never redrawn: cursor movements do nothing.
    fn move_cursor_up(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn clear_line(&self) -> io::Result<()> {
        Ok(())
    }

    fn write_line(&self, s: &str) -> io::Result<()> {
        self.write_str(s)
    }

    fn write_str(&self, s: &str) -> io::Result<()> {
        self.line.lock().expect("the line").push_str(s);
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        let line = std::mem::take(&mut *self.line.lock().expect("the line"));
        let line = line.trim_end();
        let mut printed = self.printed.lock().expect("the time");
        let due = printed.is_none_or(|at| at.elapsed() >= INTERVAL);
        if line.is_empty() || !(due || self.last.load(Ordering::SeqCst)) {
            return Ok(());
        }
        *printed = Some(Instant::now());
        let line = bar_line(self.renderer, line, Local::now());
        // The printer adds no newline when the terminal is not in raw mode.
        self.printer
            .lock()
            .expect("the printer")
            .print(format!("{line}\n"))
            .map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_bar_line_is_stamped_like_the_others() {
        let noon = Local.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        let plain = Renderer { colour: false };
        assert_eq!(
            bar_line(plain, "receiving big.bin [==>  ] 1 MiB/4 MiB", noon),
            "[12:00:00] * receiving big.bin [==>  ] 1 MiB/4 MiB"
        );
    }
}
