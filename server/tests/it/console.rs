//! The interactive admin console in a pseudo-terminal, as an operator uses
//! it: Tab completes commands and nicknames, commands run, and a server
//! stopped by a signal gives the terminal back as it found it.

// Pseudo-terminals and signals are Unix; finding the server's pid uses /proc.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::num::NonZeroU16;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize};

const SERVER: &str = env!("CARGO_BIN_EXE_chat-server");
const ROWS: u16 = 40;
const COLS: u16 = 120;

/// A shell on a pseudo-terminal running the server in the foreground, then
/// printing the server's exit status and the terminal's settings.
struct Console {
    screen: Arc<Mutex<vt100::Parser>>,
    keys: Box<dyn Write + Send>,
    shell: u32,
    _master: Box<dyn portable_pty::MasterPty + Send>,
    _child: Box<dyn portable_pty::Child + Send + Sync>,
    _data: tempfile::TempDir,
}

impl Console {
    fn start() -> Console {
        // Not a `support::Server`, so it takes its share itself.
        crate::support::serial::share();
        let data = tempfile::tempdir().unwrap();
        let pty = portable_pty::native_pty_system()
            .openpty(PtySize {
                rows: ROWS,
                cols: COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let script = format!(
            "{SERVER} --no-tls --bind 127.0.0.1:0 --data-dir {}; echo EXIT=$?; stty -a",
            data.path().display()
        );
        let mut command = CommandBuilder::new("sh");
        command.args(["-c", &script]);
        command.env("TERM", "xterm-256color");
        let child = pty.slave.spawn_command(command).unwrap();
        drop(pty.slave);
        let shell = child.process_id().unwrap();
        let mut output = pty.master.try_clone_reader().unwrap();
        let size = |n| NonZeroU16::new(n).unwrap();
        let screen = Arc::new(Mutex::new(vt100::Parser::new(size(ROWS), size(COLS), 0)));
        let sink = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = output.read(&mut buf) {
                sink.lock().unwrap().process(&buf[..n]);
            }
        });
        Console {
            screen,
            keys: pty.master.take_writer().unwrap(),
            shell,
            _master: pty.master,
            _child: child,
            _data: data,
        }
    }

    fn text(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    /// Waits until the screen shows `what`; fails with the screen if not.
    fn wait_for(&self, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.text();
            if text.contains(what) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "waited for {what:?}; the screen:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn type_keys(&mut self, keys: &str) {
        self.keys.write_all(keys.as_bytes()).unwrap();
        self.keys.flush().unwrap();
    }

    fn port(&self) -> u16 {
        let text = self.wait_for("admin> ");
        let at = text.find("127.0.0.1:").expect("the banner") + "127.0.0.1:".len();
        let digits: String = text[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap()
    }

    /// The server: the shell's child, found in /proc.
    fn server_pid(&self) -> i32 {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid …; comm may contain spaces, so split after ')'.
            let Some((_, rest)) = stat.rsplit_once(") ") else {
                continue;
            };
            let ppid: u32 = rest.split(' ').nth(1).unwrap().parse().unwrap();
            if ppid == self.shell && stat.contains("(chat-server)") {
                return entry.file_name().to_str().unwrap().parse().unwrap();
            }
        }
        panic!("chat-server is not running under the shell");
    }
}

/// Logs in over plaintext and returns a reader for what the server sends.
fn login(port: u16, nick: &str) -> BufReader<TcpStream> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let login =
        format!("{{\"type\":\"login\",\"id\":1,\"nick\":\"{nick}\",\"password\":\"pw\"}}\n");
    tcp.write_all(login.as_bytes()).unwrap();
    let mut reader = BufReader::new(tcp);
    let mut welcome = String::new();
    reader.read_line(&mut welcome).unwrap();
    assert!(welcome.contains("\"welcome\""), "{welcome}");
    reader
}

/// The operator completes `/li` to `/list` and a nickname after `/kick `,
/// lists the users, kicks one (who is told why), then the server is stopped
/// with SIGTERM: it exits 0 and the terminal has its echo and line editing
/// back.
#[test]
fn completion_commands_and_a_clean_terminal_after_sigterm() {
    let mut console = Console::start();
    let port = console.port();
    let mut alice = login(port, "alice");

    console.type_keys("/li\t");
    console.wait_for("admin> /list");
    console.type_keys("\r");
    console.wait_for("1 online");
    assert!(console.text().contains("alice"), "{}", console.text());

    console.type_keys("/kick a\t");
    console.wait_for("admin> /kick alice");
    console.type_keys("spamming\r");
    console.wait_for("kicked alice");
    let mut kicked = String::new();
    loop {
        kicked.clear();
        alice.read_line(&mut kicked).unwrap();
        if !kicked.contains("\"presence\"") {
            break;
        }
    }
    assert_eq!(
        kicked.trim(),
        r#"{"type":"kicked","nick":"alice","reason":"spamming"}"#
    );

    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(
        unsafe { libc::kill(console.server_pid(), libc::SIGTERM) },
        0
    );
    let text = console.wait_for("EXIT=");
    assert!(text.contains("EXIT=0"), "{text}");
    let settings = console.wait_for("icanon");
    let flags: Vec<&str> = settings.split_whitespace().collect();
    for flag in ["echo", "icanon"] {
        assert!(
            flags.contains(&flag),
            "{flag} is still off after the server stopped:\n{settings}"
        );
    }
}
