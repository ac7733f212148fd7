//! Attack suite item 7, TLS policy: a real server is probed with the
//! `openssl s_client` command line tool, offering one protocol version (or
//! one set of cipher suites) at a time. TLS 1.0 and 1.1 must be refused by
//! the server, TLS 1.2 and 1.3 accepted, TLS 1.2 only with forward-secret
//! AEAD suites; renegotiation is refused; a chat works over TLS 1.3; and a
//! client logged in meanwhile notices none of it.
//!
//! Without the `openssl` binary each test prints a note and passes: the
//! checks need a client that can still speak TLS 1.0, which native-tls
//! cannot be made to.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{self, Options, Server};

/// How long one `s_client` run may take; each takes some 50 ms.
const S_CLIENT_LIMIT: Duration = Duration::from_secs(10);

/// The client's own security level lowered to 0, so that a refusal of TLS
/// 1.0/1.1 (or of old suites) is the server's, not OpenSSL 3's client
/// policy declining to offer them.
const SECLEVEL_0: &str = "DEFAULT@SECLEVEL=0";

/// Whether the `openssl` tool is here; if not, says so for the test log.
fn have_openssl() -> bool {
    match Command::new("openssl").arg("version").output() {
        Ok(out) if out.status.success() => true,
        _ => {
            eprintln!(
                "note: the `openssl` command line tool is missing; TLS policy test skipped \
                 (install openssl to run it)"
            );
            false
        }
    }
}

/// Runs `openssl s_client -connect addr ARGS`, writes `input` to its stdin
/// and closes it after `hold`, and returns everything it printed (stdout
/// and stderr) once it exits. Fails the test if it runs longer than
/// [`S_CLIENT_LIMIT`].
fn s_client(addr: SocketAddr, args: &[&str], input: &[u8], hold: Duration) -> String {
    let mut child = Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting openssl s_client");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
        std::thread::sleep(hold);
        // Dropping stdin is the EOF that ends s_client after its handshake.
    });
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let deadline = Instant::now() + S_CLIENT_LIMIT;
    while child.try_wait().expect("waiting for s_client").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "openssl s_client {args:?} still running after {S_CLIENT_LIMIT:?}:\n{}{}",
                out.recv().unwrap_or_default(),
                err.recv().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut text = out.recv().unwrap_or_default();
    text.push_str(&err.recv().unwrap_or_default());
    text
}

/// Reads a pipe to its end on a thread; the text arrives on the receiver.
fn drain(mut pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
    });
    rx
}

/// A handshake that offers only `version` (`-tls1` …), stdin closed at once.
fn handshake(addr: SocketAddr, version: &str, extra: &[&str]) -> String {
    let mut args = vec![version, "-cipher", SECLEVEL_0];
    args.extend_from_slice(extra);
    s_client(addr, &args, b"", Duration::ZERO)
}

/// The protocol and cipher from s_client's `New, TLSv1.3, Cipher is …`
/// line; None when the handshake failed (`New, (NONE), Cipher is (NONE)`).
fn negotiated(transcript: &str) -> Option<(String, String)> {
    let line = transcript.lines().find(|l| l.starts_with("New, "))?;
    let rest = line.strip_prefix("New, ")?;
    let (version, cipher) = rest.split_once(", Cipher is ")?;
    (version != "(NONE)").then(|| (version.to_string(), cipher.trim().to_string()))
}

/// `(read, written)` from `SSL handshake has read N bytes and written M bytes`.
fn handshake_bytes(transcript: &str) -> (u64, u64) {
    let line = transcript
        .lines()
        .find(|l| l.starts_with("SSL handshake has read "))
        .unwrap_or_else(|| panic!("no byte counts in:\n{transcript}"));
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(numbers.len(), 2, "{line}");
    (numbers[0], numbers[1])
}

/// Checks the transcript of a handshake the server refused with `alert`:
/// the client sent its hello, received the server's alert (s_client reports
/// an alert it *received* from `ssl3_read_bytes`), and agreed on nothing.
fn assert_refused_by_server(what: &str, transcript: &str, alert: &str) {
    assert_eq!(negotiated(transcript), None, "{what}:\n{transcript}");
    let (read, written) = handshake_bytes(transcript);
    assert!(
        written > 0,
        "{what}: the client sent no hello:\n{transcript}"
    );
    assert!(read > 0, "{what}: the server sent nothing:\n{transcript}");
    assert!(
        transcript.contains(&format!("ssl3_read_bytes:{alert}")),
        "{what}: expected the server's alert {alert:?}:\n{transcript}"
    );
    assert!(
        !transcript.contains("no protocols available") && !transcript.contains("no ciphers"),
        "{what}: the client refused by itself:\n{transcript}"
    );
}

/// TLS 1.0 and 1.1 ClientHellos get a protocol_version alert (70) from the
/// server; a client logged in before notices nothing.
#[test]
fn tls_1_0_and_1_1_are_refused_by_the_server() {
    if !have_openssl() {
        return;
    }
    // At debug level a failed handshake is logged wherever it fails (the
    // worker logs one that fails after the first step at debug only).
    let server = Options::tls().flag("--log-level", "debug").start();
    let mut bystander = server.login("alice");
    for version in ["-tls1", "-tls1_1"] {
        let transcript = handshake(server.addr, version, &[]);
        assert_refused_by_server(version, &transcript, "tlsv1 alert protocol version");
    }
    // The server's own account of it.
    let log = log_lines(&server, "unsupported protocol version", 2);
    assert_eq!(log.len(), 2, "server log:\n{}", server.stderr());
    assert!(
        log[0].contains("TLS 1.0") && log[1].contains("TLS 1.1"),
        "{log:#?}"
    );
    bystander.ping();
}

/// TLS 1.2 and TLS 1.3 handshakes complete; TLS 1.2 settles on an ECDHE
/// suite with an AEAD cipher (GCM or ChaCha20-Poly1305).
#[test]
fn tls_1_2_and_1_3_are_accepted() {
    if !have_openssl() {
        return;
    }
    let server = Server::tls();
    let transcript = handshake(server.addr, "-tls1_2", &[]);
    let (version, cipher) =
        negotiated(&transcript).unwrap_or_else(|| panic!("TLS 1.2 refused:\n{transcript}"));
    assert_eq!(version, "TLSv1.2", "{transcript}");
    assert!(
        cipher.starts_with("ECDHE-") && (cipher.contains("GCM") || cipher.contains("CHACHA20")),
        "TLS 1.2 cipher {cipher}"
    );
    assert!(transcript.contains("Protocol  : TLSv1.2"), "{transcript}");
    // No resumption in TLS 1.2 either: no ticket, and no session id to
    // resume by.
    assert!(!transcript.contains("TLS session ticket"), "{transcript}");
    assert!(
        transcript.lines().any(|l| l.trim() == "Session-ID:"),
        "{transcript}"
    );

    let transcript = handshake(server.addr, "-tls1_3", &[]);
    let (version, cipher) =
        negotiated(&transcript).unwrap_or_else(|| panic!("TLS 1.3 refused:\n{transcript}"));
    assert_eq!(version, "TLSv1.3", "{transcript}");
    assert!(cipher.starts_with("TLS_"), "TLS 1.3 cipher {cipher}");
    // No session tickets: the server offers no resumption.
    assert!(
        !transcript.contains("Post-Handshake New Session Ticket"),
        "{transcript}"
    );
    server.login("alice").ping();
}

/// A TLS 1.2 client offering only CBC suites with SHA-1/SHA-2 MACs (which
/// Mozilla's old "intermediate v4" profile still took) is refused with a
/// handshake_failure alert: there is no suite both sides accept.
#[test]
fn tls_1_2_without_an_aead_suite_is_refused() {
    if !have_openssl() {
        return;
    }
    let server = Server::tls();
    let old_suites = "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:\
                      ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:\
                      ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:AES128-SHA:AES256-SHA:\
                      @SECLEVEL=0";
    let transcript = s_client(
        server.addr,
        &["-tls1_2", "-cipher", old_suites],
        b"",
        Duration::ZERO,
    );
    assert_refused_by_server("CBC suites", &transcript, "sslv3 alert handshake failure");
    server.login("alice").ping();
}

/// A client that asks to renegotiate a TLS 1.2 session (s_client's `R`
/// command) is told no_renegotiation; the server goes on serving.
#[test]
fn renegotiation_is_refused() {
    if !have_openssl() {
        return;
    }
    let server = Server::tls();
    let mut bystander = server.login("alice");
    let transcript = s_client(
        server.addr,
        &["-tls1_2"],
        b"R\n",
        Duration::from_millis(500),
    );
    assert!(transcript.contains("RENEGOTIATING"), "{transcript}");
    assert!(
        transcript.contains("ssl3_read_bytes:no renegotiation"),
        "renegotiation was not refused:\n{transcript}"
    );
    bystander.ping();
}

/// An s_client session that can only speak TLS 1.3 logs in and chats with
/// a client using native-tls's defaults (like chat-client), which
/// negotiates TLS 1.3 too, as the server's log shows.
#[test]
fn a_chat_over_tls_1_3() {
    if !have_openssl() {
        return;
    }
    let server = Options::tls().flag("--log-level", "debug").start();
    let mut alice = SClientChat::start(server.addr, "-tls1_3");
    alice.send(json!({"type": "login", "id": 1, "nick": "alice", "password": "pw-alice"}));
    assert_eq!(alice.expect(|f| f["id"] == 1)["type"], "welcome");
    let mut bob = server.login("bob");
    alice.expect(|f| f["type"] == "presence");

    alice.send(json!({"type": "message", "id": 2, "text": "hello over 1.3"}));
    assert_eq!(
        alice.expect(|f| f["id"] == 2),
        json!({"type": "ack", "id": 2})
    );
    let heard = bob.expect_type("message");
    assert_eq!(heard["sender"], "alice");
    assert_eq!(heard["text"], "hello over 1.3");

    bob.say("and back");
    // Alice's own message comes back to her first, as to everyone.
    let heard = alice.expect(|f| f["type"] == "message" && f["sender"] == "bob");
    assert_eq!(heard["text"], "and back");
    assert!(
        alice.seen.iter().any(|l| l.starts_with("New, TLSv1.3, ")),
        "{:#?}",
        alice.seen
    );

    // Both handshakes, as the server saw them.
    let done = log_lines(&server, "TLS handshake done", 2);
    assert_eq!(done.len(), 2, "server log:\n{}", server.stderr());
    assert!(
        done.iter().all(|l| l.contains("version=\"TLSv1.3\"")),
        "{done:#?}"
    );
}

/// The server's log lines that contain `text`, once there are `count` of
/// them or [`support::TIMEOUT`] has passed: the log is read on a thread.
fn log_lines(server: &Server, text: &str, count: usize) -> Vec<String> {
    let deadline = Instant::now() + support::TIMEOUT;
    loop {
        let lines: Vec<String> = server
            .stderr()
            .lines()
            .filter(|l| l.contains(text))
            .map(str::to_string)
            .collect();
        if lines.len() >= count || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A chat client made of `openssl s_client`: JSON lines in on its stdin,
/// everything it prints collected line by line.
struct SClientChat {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl SClientChat {
    fn start(addr: SocketAddr, version: &str) -> SClientChat {
        let mut child = Command::new("openssl")
            .arg("s_client")
            .arg("-connect")
            .arg(addr.to_string())
            .arg(version)
            .arg("-ign_eof")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting openssl s_client");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        SClientChat {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    fn send(&mut self, frame: Value) {
        writeln!(self.stdin, "{frame}").expect("writing to s_client");
        self.stdin.flush().unwrap();
    }

    /// The next frame (a line that parses as JSON) that satisfies `pred`.
    fn expect(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + support::TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                panic!(
                    "s_client: no such frame; printed:\n{}",
                    self.seen.join("\n")
                );
            };
            self.seen.push(line.clone());
            if let Ok(frame) = serde_json::from_str::<Value>(&line) {
                if pred(&frame) {
                    return frame;
                }
            }
        }
    }
}

impl Drop for SClientChat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
