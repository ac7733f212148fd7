//! Test support: a `chat-server` process on `127.0.0.1:0` with its own data
//! directory, and a raw JSON client (plain TCP or TLS) whose failures print
//! the transcript of every frame it sent and saw.
//!
//! Every read has a deadline ([`TIMEOUT`] unless said otherwise), so a server
//! that hangs fails the test instead of hanging it.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod browser;
pub mod cluster;
pub mod files;
pub mod postgres;
pub mod room;
pub mod serial;

pub use serial::serial;

use base64::Engine as _;
use chat_common::protocol::PRESENCE_NAMES;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// How long any single expectation waits before it fails.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The reason every connection is given when the server shuts down.
pub const SHUTDOWN_REASON: &str = "stopped by the operator";

/// The `--presence-interval` test servers run with unless a test asks for
/// another: short, so that a test waiting for a `presence` frame does not
/// wait a second, yet long enough that arrivals still get combined.
pub const FAST_PRESENCE_MS: u64 = 50;

/// The server's own default `--presence-interval`.
pub const DEFAULT_PRESENCE_MS: u64 = 1000;

/// The password test users log in with unless a test says otherwise.
pub fn password_of(nick: &str) -> String {
    format!("pw-{}", nick.to_lowercase())
}

/// Options for [`Server::start`].
#[derive(Debug, Clone)]
pub struct Options {
    tls: bool,
    args: Vec<String>,
    data_dir: Option<PathBuf>,
    /// `--presence-interval`; `None` leaves the server's default.
    presence_ms: Option<u64>,
    /// Hash passwords at the server's default (OWASP) cost instead of
    /// [`CHEAP_HASHES`].
    owasp_hashes: bool,
    /// Keep the server's default login throttle and hashing queue instead
    /// of [`LENIENT_LOGINS`].
    default_logins: bool,
}

/// The per-address connection cap of [`Options::crowd`].
pub const CROWD_CAP: usize = 10_000;

/// Argon2 settings that make a registration take microseconds: tests log
/// in hundreds of users and are not about the hash's cost.
pub const CHEAP_HASHES: [&str; 4] = ["--argon2-memory", "64", "--argon2-iterations", "1"];

/// A login throttle, hashing queue and registration limit no test meets
/// by accident: every test connects from 127.0.0.1, so the default limits
/// per address would be shared by a whole test.
pub const LENIENT_LOGINS: [&str; 6] = [
    "--max-login-failures",
    "1000000",
    "--auth-queue",
    "1000000",
    "--registrations-per-hour",
    "0",
];

impl Default for Options {
    fn default() -> Self {
        Options {
            tls: false,
            args: Vec::new(),
            data_dir: None,
            presence_ms: Some(FAST_PRESENCE_MS),
            owasp_hashes: false,
            default_logins: false,
        }
    }
}

impl Options {
    /// A plaintext server (`--no-tls`).
    pub fn plain() -> Self {
        Options::default()
    }

    /// A TLS server with a self-signed certificate in its data directory.
    pub fn tls() -> Self {
        Options {
            tls: true,
            ..Options::default()
        }
    }

    /// Plain or TLS, for tests run over both.
    pub fn with_tls(tls: bool) -> Self {
        Options {
            tls,
            ..Options::default()
        }
    }

    /// Runs with `--presence-interval ms` instead of [`FAST_PRESENCE_MS`];
    /// `None` passes no flag, so the server uses its default (1000).
    pub fn presence_interval(mut self, ms: Option<u64>) -> Self {
        self.presence_ms = ms;
        self
    }

    /// Adds `--flag value`.
    pub fn flag(mut self, flag: &str, value: impl ToString) -> Self {
        self.args.push(flag.to_string());
        self.args.push(value.to_string());
        self
    }

    /// Adds `--flag`, one that takes no value.
    pub fn switch(mut self, flag: &str) -> Self {
        self.args.push(flag.to_string());
        self
    }

    /// Turns flood control off (`--flood-rate 0`), for tests that send
    /// thousands of messages from one client to load something else.
    pub fn unthrottled(self) -> Self {
        self.flag("--flood-rate", 0)
    }

    /// Raises the per-address connection cap (16 by default) for a test
    /// that holds more connections from 127.0.0.1 at once.
    pub fn crowd(self) -> Self {
        self.flag("--max-connections-per-ip", CROWD_CAP)
    }

    /// Hashes passwords at the server's default cost.
    pub fn owasp_hashes(mut self) -> Self {
        self.owasp_hashes = true;
        self
    }

    /// Keeps the server's default login throttle and hashing queue.
    pub fn default_logins(mut self) -> Self {
        self.default_logins = true;
        self
    }

    /// Uses `dir` as the data directory (kept after the server stops).
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_path_buf());
        self
    }

    pub fn start(self) -> Server {
        Server::start(self)
    }
}

/// A running `chat-server` process; killed on drop.
pub struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    pub addr: SocketAddr,
    /// The fingerprint printed at start (TLS only), `AA:BB:…`.
    pub fingerprint: Option<String>,
    /// The address printed for browsers (`web: …`), unless `--no-web`.
    pub web_url: Option<String>,
    pub data_dir: PathBuf,
    /// The least time between two presence frames this server was given.
    pub presence_interval: Duration,
    /// Lines the server prints on stdout after its banner.
    stdout: Receiver<String>,
    /// Everything printed on stdout so far (banner included).
    stdout_seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
    _temp: Option<tempfile::TempDir>,
}

impl Server {
    pub fn plain() -> Server {
        Options::plain().start()
    }

    pub fn tls() -> Server {
        Options::tls().start()
    }

    pub fn with_tls(tls: bool) -> Server {
        Options::with_tls(tls).start()
    }

    /// Starts a server; the calling test waits first while a serial test
    /// runs (see [`serial`]).
    pub fn start(options: Options) -> Server {
        serial::share();
        let (temp, data_dir) = match options.data_dir {
            Some(dir) => (None, dir),
            None => {
                let temp = tempfile::tempdir().expect("creating a temporary data directory");
                let dir = temp.path().to_path_buf();
                (Some(temp), dir)
            }
        };
        let mut command = Command::new(env!("CARGO_BIN_EXE_chat-server"));
        command
            .arg("--bind")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(&options.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !options.tls {
            command.arg("--no-tls");
        }
        if !options.owasp_hashes {
            command.args(CHEAP_HASHES);
        }
        if !options.default_logins {
            command.args(LENIENT_LOGINS);
        }
        if let Some(ms) = options.presence_ms {
            command.arg("--presence-interval").arg(ms.to_string());
        }
        let mut child = command.spawn().expect("starting chat-server");

        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // The pipe must be drained or a chatty server would block on it.
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut sink = sink.lock().unwrap();
                sink.push_str(&line);
                sink.push('\n');
            }
        });

        let stdin = child.stdin.take();
        let mut server = Server {
            child,
            stdin,
            addr: "127.0.0.1:0".parse().unwrap(),
            fingerprint: None,
            web_url: None,
            data_dir,
            presence_interval: Duration::from_millis(
                options.presence_ms.unwrap_or(DEFAULT_PRESENCE_MS),
            ),
            stdout: lines,
            stdout_seen: Vec::new(),
            stderr,
            _temp: temp,
        };
        let banner = server.expect_stdout("the listening banner", |l| {
            l.starts_with("chat-server listening on ")
        });
        let rest = banner.trim_start_matches("chat-server listening on ");
        let (addr, mode) = rest
            .split_once(' ')
            .expect("address and mode in the banner");
        server.addr = addr.parse().expect("a socket address in the banner");
        assert_eq!(
            mode,
            if options.tls { "(TLS)" } else { "(plaintext)" },
            "banner: {banner}"
        );
        assert_eq!(server.addr.ip().to_string(), "127.0.0.1");
        if options.tls {
            let line = server.expect_stdout("the certificate fingerprint", |l| {
                l.starts_with("certificate fingerprint: SHA-256 ")
            });
            let fp = line.trim_start_matches("certificate fingerprint: SHA-256 ");
            assert!(is_fingerprint(fp), "malformed fingerprint line: {line}");
            server.fingerprint = Some(fp.to_string());
        }
        if !options.args.iter().any(|arg| arg == "--no-web") {
            let line = server.expect_stdout("the web address", |l| l.starts_with("web: "));
            server.web_url = Some(line.trim_start_matches("web: ").to_string());
        }
        server
    }

    pub fn is_tls(&self) -> bool {
        self.fingerprint.is_some()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes one line to the admin console.
    pub fn admin(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is still open");
        writeln!(stdin, "{command}").expect("writing to the server's stdin");
        stdin.flush().unwrap();
    }

    /// Runs an admin command and returns its output: the stdout lines up to
    /// and including the first that satisfies `last`.
    pub fn admin_output(&mut self, command: &str, last: impl Fn(&str) -> bool) -> String {
        let start = self.stdout_seen.len();
        self.admin(command);
        self.expect_stdout(&format!("the output of {command:?}"), last);
        self.stdout_seen[start..].join("\n")
    }

    /// Closes the server's stdin (EOF for the console).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Reads stdout lines until one satisfies `pred`, which is returned.
    pub fn expect_stdout(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    self.stdout_seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(err) => panic!(
                    "server stdout: no line with {what} ({}); stdout so far:\n{}\nstderr:\n{}",
                    match err {
                        RecvTimeoutError::Timeout => "timed out",
                        RecvTimeoutError::Disconnected => "stdout closed",
                    },
                    self.stdout_seen.join("\n"),
                    self.stderr()
                ),
            }
        }
    }

    /// Everything printed on stdout so far, after collecting what is pending.
    pub fn stdout(&mut self) -> String {
        while let Ok(line) = self.stdout.try_recv() {
            self.stdout_seen.push(line);
        }
        self.stdout_seen.join("\n")
    }

    /// What the server logged so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends a signal to the server process.
    #[cfg(unix)]
    pub fn signal(&self, signal: libc::c_int) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) with the pid of our own child, which we have not
        // yet reaped, so it cannot name another process.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {signal}): {}",
            io::Error::last_os_error()
        );
    }

    /// Waits for the process to exit, then collects the rest of its stdout.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // The reader thread ends at EOF; take everything it read.
                while let Ok(line) = self.stdout.recv_timeout(Duration::from_secs(1)) {
                    self.stdout_seen.push(line);
                }
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "the server did not exit within {within:?}; stdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server at once with SIGKILL, as a crash would: nothing is
    /// flushed or closed cleanly. A data directory given with
    /// [`Options::data_dir`] stays, for a server started on it again.
    pub fn kill(self) {
        drop(self);
    }

    /// Connects a raw client (TLS when the server serves TLS).
    pub fn connect(&self, name: &str) -> Client {
        Client::connect(self, name)
    }

    /// Connects a client, logs it in as `nick` and waits until the server
    /// has announced the arrival (to it, and so to everyone online): after
    /// this, a `sync` of any other client sees that presence frame.
    pub fn login(&self, nick: &str) -> Client {
        let mut client = self.connect(nick);
        client.login_announced(nick);
        client
    }

    /// How long to watch a connection to be sure that no presence frame is
    /// still to come: two intervals and some slack for a busy machine.
    pub fn presence_settle(&self) -> Duration {
        self.presence_interval * 2 + Duration::from_millis(150)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let stderr = self.stderr();
            let tail: String = {
                let lines: Vec<&str> = stderr.lines().collect();
                lines[lines.len().saturating_sub(40)..].join("\n")
            };
            eprintln!(
                "--- server stdout ---\n{}\n--- server stderr (last 40 lines) ---\n{tail}",
                self.stdout_seen.join("\n")
            );
        }
    }
}

/// The wall clock in Unix milliseconds, as the server stamps messages.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis() as u64
}

/// Whether `fp` looks like `AA:BB:…`: 32 uppercase hex pairs.
pub fn is_fingerprint(fp: &str) -> bool {
    let pairs: Vec<&str> = fp.split(':').collect();
    pairs.len() == 32
        && pairs.iter().all(|p| {
            p.len() == 2
                && p.chars()
                    .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
        })
}

/// The fingerprint of a DER certificate in the server's format.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A connected socket, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<native_tls::TlsStream<TcpStream>>),
}

impl Stream {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// What one attempt to read a line produced.
#[derive(Debug)]
pub enum Next {
    Frame(Value),
    /// The server closed the connection cleanly.
    Eof,
    /// The connection broke (reset, TLS error …).
    Broken(io::Error),
    Timeout,
}

/// A raw protocol client: writes JSON lines, reads JSON lines, and keeps a
/// transcript for failure messages.
pub struct Client {
    pub name: String,
    stream: Stream,
    buf: Vec<u8>,
    next_id: u64,
    transcript: Vec<String>,
    /// The server's certificate fingerprint as this client saw it (TLS).
    pub peer_fingerprint: Option<String>,
}

impl Client {
    /// Connects to `server`; over TLS, also checks that the certificate the
    /// client sees is the one whose fingerprint the server printed.
    pub fn connect(server: &Server, name: &str) -> Client {
        let tcp = TcpStream::connect(server.addr).expect("connecting to the server");
        tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
        tcp.set_write_timeout(Some(TIMEOUT)).unwrap();
        let (stream, peer_fingerprint) = match &server.fingerprint {
            None => (Stream::Plain(tcp), None),
            Some(printed) => {
                let tls = tls_handshake(tcp);
                let cert = tls
                    .peer_certificate()
                    .expect("reading the peer certificate")
                    .expect("the server presents a certificate");
                let seen = fingerprint(&cert.to_der().unwrap());
                assert_eq!(&seen, printed, "{name}: certificate fingerprint");
                (Stream::Tls(Box::new(tls)), Some(seen))
            }
        };
        Client {
            name: name.to_string(),
            stream,
            buf: Vec::new(),
            next_id: 1,
            transcript: Vec::new(),
            peer_fingerprint,
        }
    }

    pub fn tcp(&self) -> &TcpStream {
        self.stream.tcp()
    }

    /// A fresh request id.
    pub fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Writes raw bytes (a newline is not added).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let shown = String::from_utf8_lossy(bytes);
        let shown: String = if shown.len() > 200 {
            format!("{}… ({} bytes)", prefix(&shown, 200), bytes.len())
        } else {
            shown.trim_end().to_string()
        };
        self.transcript.push(format!("→ {shown}"));
        if let Err(err) = self
            .stream
            .write_all(bytes)
            .and_then(|_| self.stream.flush())
        {
            self.fail(&format!("writing failed: {err}"));
        }
    }

    /// Writes raw bytes, returning a write error instead of failing (for a
    /// peer that may close before everything is written).
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.transcript.push(format!(
            "→ {}… ({} bytes)",
            abbreviate(&String::from_utf8_lossy(&bytes[..bytes.len().min(40)])),
            bytes.len()
        ));
        let result = self
            .stream
            .write_all(bytes)
            .and_then(|_| self.stream.flush());
        if let Err(err) = &result {
            self.transcript.push(format!("  (write failed: {err})"));
        }
        result
    }

    /// Writes one JSON frame as a line.
    pub fn send(&mut self, frame: Value) {
        let mut line = serde_json::to_vec(&frame).unwrap();
        line.push(b'\n');
        self.send_raw(&line);
    }

    /// Writes a `chunk` frame: its line, then its bytes raw.
    pub fn send_chunk(&mut self, file: u64, offset: u64, bytes: &[u8]) {
        let header = serde_json::json!({"type": "chunk", "file": file, "offset": offset,
            "len": bytes.len()});
        let mut frame = serde_json::to_vec(&header).unwrap();
        frame.push(b'\n');
        frame.extend_from_slice(bytes);
        self.send_raw(&frame);
    }

    /// Reads the next frame, waiting at most until `deadline`. A `chunk`'s
    /// raw bytes after its line are read too, and put into the frame as
    /// `data`, in base64, for the tests' convenience.
    pub fn next_until(&mut self, deadline: Instant) -> Next {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let text = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let mut frame: Value = match serde_json::from_slice(&self.buf[..end]) {
                    Ok(frame) => frame,
                    Err(err) => {
                        self.fail(&format!("the server sent a non-JSON line ({err}): {text}"))
                    }
                };
                let payload = match frame["type"] == "chunk" {
                    true => frame["len"].as_u64().unwrap_or(0) as usize,
                    false => 0,
                };
                if self.buf.len() > end + payload {
                    let frame_bytes: Vec<u8> = self.buf.drain(..=end + payload).collect();
                    if payload > 0 {
                        frame["data"] = Value::from(
                            base64::engine::general_purpose::STANDARD
                                .encode(&frame_bytes[end + 1..]),
                        );
                    }
                    self.transcript.push(format!("← {}", abbreviate(&text)));
                    return Next::Frame(frame);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Next::Timeout;
            }
            self.stream.tcp().set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    if !self.buf.is_empty() {
                        // The server cut a frame short (a dropped slow consumer).
                        let why =
                            format!("EOF after {} bytes of an unterminated line", self.buf.len());
                        self.transcript.push(format!("← {why}"));
                        self.buf.clear();
                        return Next::Broken(io::Error::new(io::ErrorKind::UnexpectedEof, why));
                    }
                    self.transcript.push("← EOF".into());
                    return Next::Eof;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Next::Timeout
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.transcript.push(format!("← broken: {e}"));
                    return Next::Broken(e);
                }
            }
        }
    }

    /// Reads the next frame; fails on EOF or timeout.
    pub fn recv(&mut self) -> Value {
        match self.next_until(Instant::now() + TIMEOUT) {
            Next::Frame(frame) => frame,
            other => self.fail(&format!("expected a frame, got {other:?}")),
        }
    }

    /// Reads frames until one satisfies `pred` and returns it; fails on EOF
    /// or after [`TIMEOUT`].
    pub fn expect(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.expect_within(what, TIMEOUT, pred)
    }

    pub fn expect_within(
        &mut self,
        what: &str,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            match self.next_until(deadline) {
                Next::Frame(frame) if pred(&frame) => return frame,
                Next::Frame(_) => {}
                other => self.fail(&format!("waiting for {what}: {other:?}")),
            }
        }
    }

    /// Reads frames until one of `type` arrives.
    pub fn expect_type(&mut self, kind: &str) -> Value {
        self.expect(&format!("a {kind:?} frame"), |f| f["type"] == kind)
    }

    /// Reads frames until the answer to request `id` arrives.
    pub fn expect_reply(&mut self, id: u64) -> Value {
        self.expect(&format!("the answer to request {id}"), |f| f["id"] == id)
    }

    /// Reads frames until an `error` answers request `id` (or, with `None`,
    /// an error without id); checks its code and returns it.
    pub fn expect_error(&mut self, id: Option<u64>, code: &str) -> Value {
        let frame = self.expect(&format!("an error {code:?} for id {id:?}"), |f| {
            f["type"] == "error" && f.get("id").and_then(Value::as_u64) == id
        });
        if frame["code"] != code {
            self.fail(&format!("expected error code {code:?}, got {frame}"));
        }
        if frame["reason"].as_str().unwrap_or("").is_empty() {
            self.fail(&format!("an error without a reason: {frame}"));
        }
        frame
    }

    /// The next thing on the connection is a clean end: no more frames.
    pub fn expect_eof(&mut self) {
        match self.next_until(Instant::now() + TIMEOUT) {
            Next::Eof => {}
            other => self.fail(&format!("expected the server to close, got {other:?}")),
        }
    }

    /// Reads and discards whatever comes until the connection ends (EOF or
    /// an error); fails if it is still open after `within`.
    pub fn expect_closed_within(&mut self, within: Duration) -> Next {
        let deadline = Instant::now() + within;
        loop {
            match self.next_until(deadline) {
                Next::Frame(_) => {
                    // Keep the transcript short when draining a backlog.
                    if self.transcript.len() > 200 {
                        self.transcript.drain(..100);
                    }
                }
                Next::Timeout => self.fail(&format!("still open after {within:?}")),
                end => return end,
            }
        }
    }

    /// Sends `login` with [`password_of`] the nick and returns the answer
    /// (`welcome` or `error`).
    pub fn try_login(&mut self, nick: &str) -> Value {
        self.try_login_with(nick, &password_of(nick))
    }

    /// Sends `login` with this password and returns the answer.
    pub fn try_login_with(&mut self, nick: &str, password: &str) -> Value {
        let id = self.id();
        self.send(json!({"type": "login", "id": id, "nick": nick, "password": password}));
        self.expect_reply(id)
    }

    /// Sends `login` with [`password_of`] the nick and, when given,
    /// `last_seq` and `last_public`; returns the answer.
    pub fn try_resume(
        &mut self,
        nick: &str,
        last_seq: Option<u64>,
        last_public: Option<u64>,
    ) -> Value {
        let mut frame = json!({"type": "login", "nick": nick, "password": password_of(nick)});
        if let Some(seq) = last_seq {
            frame["last_seq"] = json!(seq);
        }
        if let Some(seq) = last_public {
            frame["last_public"] = json!(seq);
        }
        self.ask(frame)
    }

    /// Logs in as `nick`; fails unless welcomed. Returns the `welcome`.
    pub fn login(&mut self, nick: &str) -> Value {
        let reply = self.try_login(nick);
        if reply["type"] != "welcome" || reply["nick"] != nick {
            self.fail(&format!("login as {nick:?} refused: {reply}"));
        }
        reply
    }

    /// Logs in as `nick`, then waits for the presence frame that announces
    /// the arrival: the server tells the newcomer too, in the same frame as
    /// everyone else, so once it is here the others have theirs queued. It
    /// must be the next frame after the welcome. Returns the `welcome`.
    pub fn login_announced(&mut self, nick: &str) -> Value {
        let welcome = self.login(nick);
        let presence = self.recv_presence();
        if !presence.joined.iter().any(|n| n == nick) {
            self.fail(&format!("{nick} not among those who joined: {presence:?}"));
        }
        welcome
    }

    /// The next frame, which must be a well-formed `presence` frame.
    pub fn recv_presence(&mut self) -> Presence {
        let frame = self.recv();
        Presence::parse(&frame).unwrap_or_else(|why| self.fail(&why))
    }

    /// Reads frames until a presence frame lists `nick` as joined, and
    /// returns it; frames of other kinds are skipped.
    pub fn expect_joined(&mut self, nick: &str) -> Presence {
        let frame = self.expect(&format!("a presence frame with {nick} joined"), |f| {
            Presence::parse(f).is_ok_and(|p| p.joined.iter().any(|n| n == nick))
        });
        Presence::parse(&frame).unwrap()
    }

    /// Reads frames until a presence frame lists `nick` as gone, and returns
    /// the reason given; frames of other kinds are skipped.
    pub fn expect_left(&mut self, nick: &str) -> String {
        let frame = self.expect(&format!("a presence frame with {nick} left"), |f| {
            Presence::parse(f).is_ok_and(|p| p.left.iter().any(|(n, _)| n == nick))
        });
        let presence = Presence::parse(&frame).unwrap();
        let (_, reason) = presence.left.into_iter().find(|(n, _)| n == nick).unwrap();
        reason
    }

    /// Fails if any frame arrives within `within` (say, a presence frame
    /// still to come), then checks the connection still answers a ping.
    pub fn expect_silence(&mut self, within: Duration) {
        match self.next_until(Instant::now() + within) {
            Next::Timeout => self.expect_nothing_more(),
            other => self.fail(&format!("expected nothing for {within:?}, got {other:?}")),
        }
    }

    /// Sends a message (`to` = None: everyone) and returns its id, without
    /// waiting for the answer.
    pub fn send_message(&mut self, to: Option<&str>, text: &str) -> u64 {
        let id = self.id();
        let mut frame = json!({"type": "message", "id": id, "text": text});
        if let Some(to) = to {
            frame["receiver"] = json!(to);
        }
        self.send(frame);
        id
    }

    /// Sends `frame` (a request without its `id`) with a fresh id, which is
    /// returned; the answer is not awaited.
    pub fn request(&mut self, mut frame: Value) -> u64 {
        let id = self.id();
        frame["id"] = json!(id);
        self.send(frame);
        id
    }

    /// Sends `frame` with a fresh id and returns the answer; frames that
    /// arrive before it are skipped.
    pub fn ask(&mut self, frame: Value) -> Value {
        let id = self.request(frame);
        self.expect_reply(id)
    }

    /// Says bye: the ack comes, then the server closes the connection.
    pub fn bye(&mut self) {
        let id = self.request(json!({"type": "bye"}));
        let ack = self.expect_reply(id);
        if ack != json!({"type": "ack", "id": id}) {
            self.fail(&format!("expected the bye's ack, got {ack}"));
        }
        self.expect_eof();
    }

    /// Sends a message with a client-chosen `cid` (`to` = None: everyone)
    /// and returns its id, without waiting for the answer.
    pub fn send_with_cid(&mut self, to: Option<&str>, text: &str, cid: &str) -> u64 {
        let mut frame = json!({"type": "message", "text": text, "cid": cid});
        if let Some(to) = to {
            frame["receiver"] = json!(to);
        }
        self.request(frame)
    }

    /// Says `text` to everyone and waits for the ack.
    pub fn say(&mut self, text: &str) {
        let id = self.send_message(None, text);
        self.expect_ack(id);
    }

    /// Waits for the answer to `id` and checks it is an `ack`.
    pub fn expect_ack(&mut self, id: u64) {
        let reply = self.expect_reply(id);
        if reply != json!({"type": "ack", "id": id}) {
            self.fail(&format!("expected an ack for {id}, got {reply}"));
        }
    }

    /// Pings and waits for the pong: proves the connection still works.
    pub fn ping(&mut self) {
        self.sync();
    }

    /// Pings and returns every frame that arrived before the pong. The
    /// dispatcher handles requests in order, so anything it sent this client
    /// before handling the ping is in the list: a way to check that nothing
    /// (more) arrived, without sleeping.
    pub fn sync(&mut self) -> Vec<Value> {
        let id = self.id();
        self.send(json!({"type": "ping", "id": id}));
        let mut seen = Vec::new();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.next_until(deadline) {
                Next::Frame(frame) if frame == json!({"type": "pong", "id": id}) => return seen,
                Next::Frame(frame) => seen.push(frame),
                other => self.fail(&format!("waiting for pong {id}: {other:?}")),
            }
        }
    }

    /// Fails unless nothing but the pong arrives in answer to a ping.
    pub fn expect_nothing_more(&mut self) {
        let extra = self.sync();
        if !extra.is_empty() {
            self.fail(&format!("unexpected frames: {extra:?}"));
        }
    }

    /// Panics with the transcript.
    pub fn fail(&self, why: &str) -> ! {
        let mut text = String::new();
        for line in &self.transcript {
            let _ = writeln!(text, "    {line}");
        }
        panic!("client {:?}: {why}\ntranscript:\n{text}", self.name)
    }
}

/// A `presence` frame read apart: who joined and who left (with why), and
/// how many more on each side were only counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Presence {
    pub joined: Vec<String>,
    pub joined_more: u64,
    /// (nick, reason) pairs.
    pub left: Vec<(String, String)>,
    pub left_more: u64,
}

impl Presence {
    /// Reads `frame` as a presence frame, holding it to the wire format:
    /// no fields but the four, empty lists and zero counts left out, at
    /// most [`PRESENCE_NAMES`] names a side, a departure is exactly a nick
    /// and a reason, and the frame says something.
    pub fn parse(frame: &Value) -> Result<Presence, String> {
        let bad = |why: &str| Err(format!("{why}: {frame}"));
        let Some(fields) = frame.as_object() else {
            return bad("not an object");
        };
        if frame["type"] != "presence" {
            return bad("not a presence frame");
        }
        let mut presence = Presence::default();
        for (key, value) in fields {
            match key.as_str() {
                "type" => {}
                "joined" => {
                    let Some(names) = value.as_array() else {
                        return bad("`joined` is not a list");
                    };
                    for name in names {
                        let Some(name) = name.as_str() else {
                            return bad("a joined name is not a string");
                        };
                        presence.joined.push(name.to_string());
                    }
                    if presence.joined.is_empty() {
                        return bad("an empty `joined` is sent, not left out");
                    }
                }
                "left" => {
                    let Some(departures) = value.as_array() else {
                        return bad("`left` is not a list");
                    };
                    for departure in departures {
                        let pair = departure
                            .as_object()
                            .filter(|d| d.len() == 2)
                            .and_then(|d| {
                                Some((d.get("nick")?.as_str()?, d.get("reason")?.as_str()?))
                            });
                        let Some((nick, reason)) = pair else {
                            return bad("a departure is not {nick, reason}");
                        };
                        presence.left.push((nick.to_string(), reason.to_string()));
                    }
                    if presence.left.is_empty() {
                        return bad("an empty `left` is sent, not left out");
                    }
                }
                "joined_more" | "left_more" => {
                    let Some(n) = value.as_u64().filter(|&n| n > 0) else {
                        return bad(&format!("`{key}` is not a positive count"));
                    };
                    if key == "joined_more" {
                        presence.joined_more = n;
                    } else {
                        presence.left_more = n;
                    }
                }
                other => return bad(&format!("unknown field `{other}`")),
            }
        }
        if presence.joined.len() > PRESENCE_NAMES || presence.left.len() > PRESENCE_NAMES {
            return bad(&format!("more than {PRESENCE_NAMES} names on a side"));
        }
        if presence.joined_more > 0 && presence.joined.len() < PRESENCE_NAMES
            || presence.left_more > 0 && presence.left.len() < PRESENCE_NAMES
        {
            return bad("names counted while there was room to list them");
        }
        if presence == Presence::default() {
            return bad("a presence frame that says nothing");
        }
        Ok(presence)
    }
}

fn abbreviate(text: &str) -> String {
    if text.len() > 300 {
        format!("{}… ({} bytes)", prefix(text, 300), text.len())
    } else {
        text.to_string()
    }
}

/// A TLS client handshake that accepts the self-signed certificate (the
/// caller checks its fingerprint instead).
pub fn tls_handshake(tcp: TcpStream) -> native_tls::TlsStream<TcpStream> {
    let connector = native_tls::TlsConnector::builder()
        .danger_accept_invalid_certs(true)
        .danger_accept_invalid_hostnames(true)
        .build()
        .expect("building a TLS connector");
    connector
        .connect("localhost", tcp)
        .expect("TLS handshake with the server")
}

/// The longest prefix of `text` with at most `max` bytes.
fn prefix(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Declares a test run twice, in parallel: `NAME::plain` and `NAME::tls`.
/// The body sees `tls: bool` under the name given.
///
/// ```ignore
/// both! {
///     /// Story.
///     fn name(tls) { let server = Server::with_tls(tls); … }
/// }
/// ```
macro_rules! both {
    ($($(#[$meta:meta])* fn $name:ident($tls:ident) $body:block)*) => {$(
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn run($tls: bool) $body

            #[test]
            fn plain() {
                run(false)
            }

            #[test]
            fn tls() {
                run(true)
            }
        }
    )*};
}
