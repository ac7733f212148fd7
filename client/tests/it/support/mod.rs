//! Test support: a real `chat-server` on `127.0.0.1:0` with its own data
//! directory, and `chat-client` processes in pipe mode whose output is
//! collected line by line.
//!
//! Every wait has a deadline ([`TIMEOUT`]), so a client or server that hangs
//! fails the test with the transcript of what it printed instead of hanging.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub mod proxy;
#[cfg(unix)]
pub mod term;

/// How long any one expectation waits before it fails. Generous, since a
/// loaded two-core machine runs several servers and clients at once; a
/// passing test never waits this long.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The presence interval servers run with unless a test asks for the
/// default (1000 ms): short, so that waiting for `* bob joined` does not
/// take a second.
const FAST_PRESENCE: [&str; 2] = ["--presence-interval", "100"];

/// For a test that holds more connections from 127.0.0.1 at once than the
/// server's per-address cap (16) allows.
pub const CROWD: [&str; 2] = ["--max-connections-per-ip", "1000"];

/// Cheap password hashes: the default argon2 cost is meant to be slow.
const CHEAP_HASHES: [&str; 4] = ["--argon2-memory", "64", "--argon2-iterations", "1"];

/// The password every test client has unless a test says otherwise
/// (`CHAT_PASSWORD`; the first login of a nickname creates its account).
/// Server flags that turn flood control off, for tests that send thousands
/// of messages from one client.
pub const UNTHROTTLED: &[&str] = &["--flood-rate", "0"];

pub const PASSWORD: &str = "correct horse";

/// The client under test.
pub const CLIENT: &str = env!("CARGO_BIN_EXE_chat-client");

/// The server binary, built once if it is missing. It belongs to another
/// crate, so Cargo does not build it for `cargo test -p chat-client`; it sits
/// beside the client in the same target directory (`target/debug`).
pub fn server_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = Path::new(CLIENT).with_file_name("chat-server");
        if !bin.exists() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "chat-server", "--bin", "chat-server"])
                .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
                .status()
                .expect("running cargo build for chat-server");
            assert!(status.success(), "cargo build -p chat-server failed");
            assert!(
                bin.exists(),
                "{} still missing after building",
                bin.display()
            );
        }
        bin
    })
}

/// The lines a child process prints on one stream, collected by a thread so
/// a test can wait for one with a deadline.
#[derive(Clone, Default)]
pub struct Lines(Arc<(Mutex<Collected>, Condvar)>);

#[derive(Default)]
struct Collected {
    lines: Vec<String>,
    closed: bool,
}

impl Lines {
    /// Starts collecting from `pipe` until it closes.
    pub fn collect(pipe: impl Read + Send + 'static) -> Lines {
        let lines = Lines::default();
        let sink = lines.clone();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let (lock, cvar) = &*sink.0;
                lock.lock().unwrap().lines.push(line);
                cvar.notify_all();
            }
            let (lock, cvar) = &*sink.0;
            lock.lock().unwrap().closed = true;
            cvar.notify_all();
        });
        lines
    }

    pub fn all(&self) -> Vec<String> {
        self.0 .0.lock().unwrap().lines.clone()
    }

    pub fn text(&self) -> String {
        self.all().iter().map(|l| format!("{l}\n")).collect()
    }

    /// The first line from index `from` on that satisfies `pred`, with its
    /// index; `None` if the stream closed or `timeout` passed first.
    pub fn find_from(
        &self,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<(usize, String)> {
        let deadline = Instant::now() + timeout;
        let (lock, cvar) = &*self.0;
        let mut seen = lock.lock().unwrap();
        let mut next = from;
        loop {
            while next < seen.lines.len() {
                if pred(&seen.lines[next]) {
                    return Some((next, seen.lines[next].clone()));
                }
                next += 1;
            }
            let now = Instant::now();
            if seen.closed || now >= deadline {
                return None;
            }
            seen = cvar.wait_timeout(seen, deadline - now).unwrap().0;
        }
    }

    /// Waits until the stream is closed (the process exited).
    fn wait_closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (lock, cvar) = &*self.0;
        let mut seen = lock.lock().unwrap();
        while !seen.closed {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            seen = cvar.wait_timeout(seen, deadline - now).unwrap().0;
        }
        true
    }
}

/// A display line without its `[HH:MM:SS] ` stamp (or
/// `[YYYY-MM-DD HH:MM:SS] `, for a message from another day).
pub fn body(line: &str) -> &str {
    let b = line.as_bytes();
    let dated = b.len() >= 22
        && b[0] == b'['
        && b[5] == b'-'
        && b[8] == b'-'
        && b[11] == b' '
        && b[20] == b']';
    if dated {
        return &line[22..];
    }
    let stamped = b.len() >= 11
        && b[0] == b'['
        && b[3] == b':'
        && b[6] == b':'
        && b[9] == b']'
        && b[10] == b' '
        && [1, 2, 4, 5, 7, 8].iter().all(|&i| b[i].is_ascii_digit());
    if stamped {
        &line[11..]
    } else {
        line
    }
}

/// One `chat-server` process, started and listening.
struct Process {
    child: Child,
    stdin: Option<ChildStdin>,
    addr: String,
    fingerprint: Option<String>,
    stdout: Lines,
    stderr: Lines,
}

impl Process {
    fn start(tls: bool, bind: &str, data_dir: &Path, args: &[String]) -> Result<Process, String> {
        let mut command = Command::new(server_bin());
        command
            .args(["--bind", bind, "--data-dir"])
            .arg(data_dir)
            .args(CHEAP_HASHES)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !tls {
            command.arg("--no-tls");
        }
        let mut child = command.spawn().expect("starting chat-server");
        let stdin = child.stdin.take();
        let stdout = Lines::collect(child.stdout.take().unwrap());
        let stderr = Lines::collect(child.stderr.take().unwrap());
        let transcript = |stdout: &Lines, stderr: &Lines| {
            format!(
                "--- server stdout ---\n{}--- server stderr ---\n{}",
                stdout.text(),
                stderr.text()
            )
        };
        let Some((_, banner)) =
            stdout.find_from(0, TIMEOUT, |l| l.starts_with("chat-server listening on "))
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "no listening banner\n{}",
                transcript(&stdout, &stderr)
            ));
        };
        let rest = &banner["chat-server listening on ".len()..];
        let (addr, mode) = rest.split_once(' ').expect("address and mode");
        assert!(addr.starts_with("127.0.0.1:"), "{banner}");
        assert_eq!(mode, if tls { "(TLS)" } else { "(plaintext)" }, "{banner}");
        let mut fingerprint = None;
        if tls {
            let prefix = "certificate fingerprint: SHA-256 ";
            let (_, line) = stdout
                .find_from(0, TIMEOUT, |l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no fingerprint\n{}", transcript(&stdout, &stderr)));
            fingerprint = Some(line[prefix.len()..].to_string());
        }
        Ok(Process {
            child,
            stdin,
            addr: addr.to_string(),
            fingerprint,
            stdout,
            stderr,
        })
    }
}

/// A running `chat-server`; killed on drop. It owns a scratch directory
/// holding its data directory and a known_hosts file for its clients.
pub struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The flags it was started with, for a restart.
    args: Vec<String>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    pub tls: bool,
    /// The fingerprint printed at start (TLS only), `AA:BB:…`.
    pub fingerprint: Option<String>,
    pub data_dir: PathBuf,
    pub known_hosts: PathBuf,
    stdout: Lines,
    stderr: Lines,
    _scratch: TempDir,
}

impl Server {
    /// A server on a free port with a new data directory (so a new
    /// certificate when `tls`), announcing presence every 100 ms.
    pub fn start(tls: bool) -> Server {
        Server::start_with(tls, &FAST_PRESENCE)
    }

    /// Like [`Server::start`], with `args` for the server instead of the
    /// short presence interval (`&[]`: the server's defaults).
    pub fn start_with(tls: bool, args: &[&str]) -> Server {
        let scratch = tempfile::tempdir().expect("a scratch directory");
        let data_dir = scratch.path().join("data");
        Server::launch(tls, "127.0.0.1:0", &data_dir, scratch, args)
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// A server on `bind` with `data_dir`; the error (with the server's
    /// output) if it did not come up, say because the port is taken.
    pub fn start_at(
        tls: bool,
        bind: &str,
        data_dir: &Path,
        scratch: TempDir,
    ) -> Result<Server, String> {
        Server::launch(tls, bind, data_dir, scratch, &FAST_PRESENCE)
    }

    fn launch(
        tls: bool,
        bind: &str,
        data_dir: &Path,
        scratch: TempDir,
        args: &[&str],
    ) -> Result<Server, String> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let process = Process::start(tls, bind, data_dir, &args)?;
        Ok(Server {
            child: process.child,
            stdin: process.stdin,
            args,
            addr: process.addr,
            tls,
            fingerprint: process.fingerprint,
            data_dir: data_dir.to_path_buf(),
            known_hosts: scratch.path().join("known_hosts"),
            stdout: process.stdout,
            stderr: process.stderr,
            _scratch: scratch,
        })
    }

    /// Kills the server (SIGKILL) and starts it again with the same data
    /// directory and flags, on the same address (`same_port`, retrying
    /// while the port is still held) or a new one.
    pub fn restart(&mut self, same_port: bool) {
        self.kill();
        let bind = if same_port {
            self.addr.clone()
        } else {
            "127.0.0.1:0".to_string()
        };
        let deadline = Instant::now() + TIMEOUT;
        let process = loop {
            match Process::start(self.tls, &bind, &self.data_dir, &self.args) {
                Ok(process) => break process,
                Err(err) if Instant::now() < deadline => {
                    eprintln!("retrying the restart: {err}");
                    thread::sleep(Duration::from_millis(100));
                }
                Err(err) => panic!("cannot restart the server on {bind}: {err}"),
            }
        };
        self.child = process.child;
        self.stdin = process.stdin;
        self.addr = process.addr;
        self.fingerprint = process.fingerprint;
        self.stdout = process.stdout;
        self.stderr = process.stderr;
    }

    /// The server's certificate (TLS only).
    pub fn cert(&self) -> PathBuf {
        self.data_dir.join("cert.pem")
    }

    /// Writes one line to the admin console.
    pub fn admin(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("the console is open");
        writeln!(stdin, "{line}").expect("writing to the console");
        stdin.flush().unwrap();
    }

    /// Kills the process at once (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self) {
        let deadline = Instant::now() + TIMEOUT;
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "the server did not stop\n{}",
                self.transcript()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn transcript(&self) -> String {
        format!(
            "--- server stdout ---\n{}--- server stderr ---\n{}",
            self.stdout.text(),
            self.stderr.text()
        )
    }

    /// A client command for this server: `--server`, `--no-tls` when the
    /// server is plaintext, and this server's own known_hosts file.
    pub fn client(&self) -> Client {
        let mut client = Client::new(&self.addr);
        client.args(["--known-hosts"]).arg(&self.known_hosts);
        if !self.tls {
            client.arg("--no-tls");
        }
        client
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `chat-client` command line being put together, for pipe mode
/// ([`Client::spawn`], [`Client::run`]) or a terminal ([`term::Term`]).
pub struct Client {
    pub args: Vec<OsString>,
    /// Variables to set (`Some`) or remove (`None`).
    pub env: Vec<(OsString, Option<OsString>)>,
    /// The working directory, if not the test's.
    pub cwd: Option<PathBuf>,
}

impl Client {
    /// `chat-client --server ADDR` with `CHAT_PASSWORD` set to [`PASSWORD`],
    /// nothing else.
    pub fn new(server: &str) -> Client {
        Client {
            args: vec!["--server".into(), server.into()],
            env: vec![("CHAT_PASSWORD".into(), Some(PASSWORD.into()))],
            cwd: None,
        }
    }

    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Client {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&mut self, args: I) -> &mut Client {
        for arg in args {
            self.arg(arg);
        }
        self
    }

    pub fn nick(&mut self, nick: &str) -> &mut Client {
        self.args(["--nick", nick])
    }

    pub fn env(&mut self, key: &str, value: Option<&str>) -> &mut Client {
        self.env.push((key.into(), value.map(Into::into)));
        self
    }

    /// A home of its own: `HOME` is `home`, and the XDG variables that
    /// would point elsewhere are removed; it runs in `home` too, so that
    /// anything written to the current directory shows there.
    pub fn home(&mut self, home: &Path) -> &mut Client {
        self.env
            .push(("HOME".into(), Some(home.as_os_str().to_owned())));
        for key in ["XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_DOWNLOAD_DIR"] {
            self.env(key, None);
        }
        self.cwd = Some(home.to_path_buf());
        self
    }

    /// The command line, for transcripts.
    pub fn display(&self) -> String {
        let mut line = String::from("chat-client");
        for arg in &self.args {
            line.push(' ');
            line.push_str(&arg.to_string_lossy());
        }
        line
    }

    /// Starts it in pipe mode with stdin kept open.
    pub fn spawn(&mut self) -> Pipe {
        let mut command = Command::new(CLIENT);
        command.args(&self.args);
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        for (key, value) in &self.env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting chat-client");
        Pipe {
            line: self.display(),
            stdin: child.stdin.take(),
            stdout: Lines::collect(child.stdout.take().unwrap()),
            stderr: Lines::collect(child.stderr.take().unwrap()),
            child,
            next: 0,
            exit: None,
        }
    }

    /// Runs it with `input` as the whole of stdin, like `printf … | chat-client`,
    /// and waits for it to exit.
    pub fn run(&mut self, input: &str) -> Finished {
        let mut pipe = self.spawn();
        // A client that gives up early (no server, login refused) exits
        // without reading its input: a broken pipe here is its business.
        let _ = pipe.write(input);
        pipe.finish()
    }
}

/// How a client process ended and everything it printed.
#[derive(Debug)]
pub struct Finished {
    pub line: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Stdout lines without their stamps.
    pub fn bodies(&self) -> Vec<&str> {
        self.stdout.lines().map(body).collect()
    }

    pub fn assert_code(&self, code: i32) -> &Finished {
        assert_eq!(self.code, Some(code), "wrong exit status\n{self}");
        self
    }

    pub fn assert_stdout_has(&self, want: &str) -> &Finished {
        assert!(
            self.bodies().contains(&want),
            "no stdout line {want:?}\n{self}"
        );
        self
    }

    pub fn assert_stderr_contains(&self, want: &str) -> &Finished {
        assert!(self.stderr.contains(want), "{want:?} not on stderr\n{self}");
        self
    }
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ {}\nexit status: {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.line, self.code, self.stdout, self.stderr
        )
    }
}

/// A client in pipe mode with its stdin open; killed on drop.
pub struct Pipe {
    line: String,
    child: Child,
    stdin: Option<ChildStdin>,
    pub stdout: Lines,
    pub stderr: Lines,
    /// Where the next [`Pipe::expect`] starts looking on stdout.
    next: usize,
    exit: Option<Option<i32>>,
}

impl Pipe {
    /// Writes to stdin as is.
    pub fn write(&mut self, text: &str) -> std::io::Result<()> {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(text.as_bytes())?;
        stdin.flush()
    }

    /// Writes one line to stdin; the client must still be reading.
    pub fn send(&mut self, line: &str) {
        if let Err(err) = self.write(&format!("{line}\n")) {
            panic!("cannot write to the client: {err}\n{}", self.transcript());
        }
    }

    /// Waits for a stdout line whose body (stamp removed) is exactly `want`,
    /// after the one the last expectation matched; returns the whole line.
    pub fn expect(&mut self, want: &str) -> String {
        self.expect_that(want, |l| body(l) == want)
    }

    /// Like [`Pipe::expect`] with a predicate on the body; `what` describes it.
    pub fn expect_that(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        match self.stdout.find_from(self.next, TIMEOUT, |l| pred(body(l))) {
            Some((index, line)) => {
                self.next = index + 1;
                line
            }
            None => panic!(
                "no stdout line {what:?} after line {}\n{}",
                self.next,
                self.transcript()
            ),
        }
    }

    /// Waits for a stderr line containing `want`.
    pub fn expect_stderr(&mut self, want: &str) -> String {
        match self.stderr.find_from(0, TIMEOUT, |l| l.contains(want)) {
            Some((_, line)) => line,
            None => panic!("no stderr line containing {want:?}\n{}", self.transcript()),
        }
    }

    /// Closes stdin (end of input) and waits for the exit.
    pub fn finish(mut self) -> Finished {
        self.stdin = None;
        self.wait()
    }

    /// Waits for the process to exit by itself, stdin left as it is.
    pub fn wait(mut self) -> Finished {
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the client") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("the client did not exit\n{}", self.transcript());
            }
            thread::sleep(Duration::from_millis(10));
        };
        self.exit = Some(status.code());
        // The pipes close at exit; their last lines may still be in flight.
        assert!(self.stdout.wait_closed(TIMEOUT) && self.stderr.wait_closed(TIMEOUT));
        Finished {
            line: self.line.clone(),
            code: status.code(),
            stdout: self.stdout.text(),
            stderr: self.stderr.text(),
        }
    }

    pub fn transcript(&self) -> String {
        format!(
            "$ {}\nexit status: {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.line,
            match self.exit {
                Some(code) => format!("{code:?}"),
                None => "still running".into(),
            },
            self.stdout.text(),
            self.stderr.text()
        )
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
