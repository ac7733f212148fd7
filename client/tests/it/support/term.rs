//! The interactive client in a pseudo-terminal: keys go in as a person types
//! them, and what the client draws is replayed on an emulated screen
//! (`vt100`), so tests read the lines and the cursor a person would see.

use std::io::{Read, Write};
use std::num::NonZeroU16;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use portable_pty::{Child, CommandBuilder, MasterPty, PtySize};

use super::{Client, CLIENT, TIMEOUT};

/// The window: tall enough that nothing in a test scrolls off the top.
pub const ROWS: u16 = 50;
pub const COLS: u16 = 120;

/// What the client drew so far.
pub struct Screen {
    parser: vt100::Parser,
    /// Every byte, escapes included, for colour checks and transcripts.
    pub raw: Vec<u8>,
    closed: bool,
}

impl Screen {
    /// The visible text, one line per row, trailing blanks trimmed.
    pub fn text(&self) -> String {
        self.parser.screen().contents()
    }

    /// The row the cursor is on, trailing blanks trimmed, and the cursor's
    /// column in it.
    pub fn cursor_line(&self) -> (String, u16) {
        let screen = self.parser.screen();
        let (row, col) = screen.cursor_position();
        let line = screen
            .rows(0, COLS)
            .nth(usize::from(row))
            .unwrap_or_default();
        (line.trim_end().to_string(), col)
    }

    /// Whether the row being edited reads `line` with the cursor at its end
    /// (trailing spaces included, which the screen alone cannot show).
    pub fn editing(&self, line: &str) -> bool {
        let (text, col) = self.cursor_line();
        text == line.trim_end() && usize::from(col) == line.chars().count()
    }
}

/// A `chat-client` on a pseudo-terminal; killed on drop.
pub struct Term {
    line: String,
    child: Box<dyn Child + Send + Sync>,
    keys: Box<dyn Write + Send>,
    screen: Arc<(Mutex<Screen>, Condvar)>,
    exit: Option<u32>,
    // Kept so the terminal stays open while the client runs.
    _master: Box<dyn MasterPty + Send>,
}

impl Term {
    /// Starts `client` on a new terminal of [`ROWS`]×[`COLS`].
    pub fn spawn(client: &Client) -> Term {
        let pty = portable_pty::native_pty_system()
            .openpty(PtySize {
                rows: ROWS,
                cols: COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("opening a pseudo-terminal");
        let mut command = CommandBuilder::new(CLIENT);
        command.args(&client.args);
        command.env("TERM", "xterm-256color");
        if let Some(cwd) = &client.cwd {
            command.cwd(cwd);
        }
        // Whether colours are on is each test's choice, not the caller's.
        command.env_remove("NO_COLOR");
        for (key, value) in &client.env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            }
        }
        let child = pty
            .slave
            .spawn_command(command)
            .expect("starting chat-client");
        // Only the client may hold the terminal's other end, or reading it
        // would never see the end when the client exits.
        drop(pty.slave);
        let mut output = pty.master.try_clone_reader().unwrap();
        let keys = pty.master.take_writer().unwrap();
        let size = |n| NonZeroU16::new(n).unwrap();
        let screen = Arc::new((
            Mutex::new(Screen {
                parser: vt100::Parser::new(size(ROWS), size(COLS), 0),
                raw: Vec::new(),
                closed: false,
            }),
            Condvar::new(),
        ));
        let sink = screen.clone();
        thread::spawn(move || {
            let mut buf = [0; 4096];
            loop {
                // EIO, not 0, once the client has exited (Linux).
                let n = output.read(&mut buf).unwrap_or(0);
                let (lock, cvar) = &*sink;
                let mut screen = lock.lock().unwrap_or_else(PoisonError::into_inner);
                if n == 0 {
                    screen.closed = true;
                    cvar.notify_all();
                    return;
                }
                screen.parser.process(&buf[..n]);
                screen.raw.extend_from_slice(&buf[..n]);
                cvar.notify_all();
            }
        });
        Term {
            line: client.display(),
            child,
            keys,
            screen,
            exit: None,
            _master: pty.master,
        }
    }

    /// Types `keys` (`\r` is Enter, `\t` Tab, `\x04` Ctrl-D).
    pub fn type_keys(&mut self, keys: &str) {
        self.keys.write_all(keys.as_bytes()).expect("typing");
        self.keys.flush().unwrap();
    }

    /// Waits until `pred` holds for the screen; `what` says what was awaited
    /// if it never does.
    pub fn wait_until(&self, what: &str, pred: impl Fn(&Screen) -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        let cvar = &self.screen.1;
        let mut screen = self.lock();
        loop {
            if pred(&screen) {
                return;
            }
            let now = Instant::now();
            if screen.closed || now >= deadline {
                let why = if screen.closed {
                    "the client exited"
                } else {
                    "timed out"
                };
                panic!("{why} waiting for {what}\n{}", self.dump(&screen));
            }
            screen = cvar
                .wait_timeout(screen, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits until `text` is somewhere on the screen.
    pub fn expect(&self, text: &str) {
        self.wait_until(&format!("{text:?} on the screen"), |s| {
            s.text().contains(text)
        });
    }

    /// Waits until the line being edited reads `line`, cursor at its end.
    pub fn expect_editing(&self, line: &str) {
        self.wait_until(&format!("the line being edited to be {line:?}"), |s| {
            s.editing(line)
        });
    }

    /// The screen, even if a failed test poisoned the lock.
    fn lock(&self) -> MutexGuard<'_, Screen> {
        self.screen.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Everything drawn so far, escapes included.
    pub fn raw(&self) -> Vec<u8> {
        self.lock().raw.clone()
    }

    pub fn text(&self) -> String {
        self.lock().text()
    }

    /// Waits for the client to exit by itself; its exit status, or the
    /// signal that killed it (which portable-pty would report as status 1).
    pub fn wait_exit(&mut self) -> Result<u32, String> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the client") {
                let code = status.exit_code();
                self.exit = Some(code);
                return match status.signal() {
                    Some(signal) => Err(signal.to_string()),
                    None => Ok(code),
                };
            }
            if Instant::now() >= deadline {
                let screen = self.lock();
                panic!("the client did not exit\n{}", self.dump(&screen));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the exit and checks its status; being killed by a signal
    /// is never the right exit.
    pub fn assert_exit(&mut self, code: u32) {
        let got = self.wait_exit();
        let screen = self.lock();
        assert_eq!(got, Ok(code), "wrong exit status\n{}", self.dump(&screen));
    }

    fn dump(&self, screen: &Screen) -> String {
        let (line, col) = screen.cursor_line();
        format!(
            "$ {}\nexit status: {:?}\n--- screen (cursor at column {col} of {line:?}) ---\n{}\n--- bytes ---\n{}",
            self.line,
            self.exit,
            screen.text(),
            String::from_utf8_lossy(&screen.raw).escape_debug()
        )
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
