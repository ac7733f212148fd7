//! TLS: the certificate clients see, its persistence across restarts, and
//! connections that never finish (or never start) a handshake.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{fingerprint, is_fingerprint, Options, Server};

/// The certificate a client receives hashes to the printed fingerprint,
/// which is also the hash of the `cert.pem` written to the data directory;
/// the private key beside it is readable by its owner only.
#[test]
fn fingerprint_matches_the_certificate() {
    let server = Server::tls();
    let printed = server.fingerprint.clone().unwrap();
    assert!(is_fingerprint(&printed), "{printed}");
    let mut alice = server.connect("alice");
    assert_eq!(alice.peer_fingerprint.as_deref(), Some(printed.as_str()));
    alice.login("alice");

    let pem = std::fs::read(server.data_dir.join("cert.pem")).expect("cert.pem");
    let cert = native_tls::Certificate::from_pem(&pem).expect("a PEM certificate");
    assert_eq!(fingerprint(&cert.to_der().unwrap()), printed);
    let key = server.data_dir.join("key.pem");
    assert!(key.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "key.pem mode {mode:o}");
    }
}

/// Restarting with the same data directory reuses the certificate, so the
/// fingerprint clients pinned stays valid; another directory gets another.
#[test]
fn restart_keeps_the_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let first = Options::tls().data_dir(dir.path()).start();
    let fp = first.fingerprint.clone().unwrap();
    first.login("alice");
    drop(first);

    let second = Options::tls().data_dir(dir.path()).start();
    assert_eq!(second.fingerprint.as_deref(), Some(fp.as_str()));
    // `connect` checks the certificate against the printed fingerprint.
    second.login("alice");

    let other = Server::tls();
    assert_ne!(other.fingerprint.as_deref(), Some(fp.as_str()));
}

/// A certificate and key given with --tls-cert/--tls-key are what clients
/// see; a key that belongs to another certificate stops the server at start
/// with a clear error, rather than failing every handshake later (where
/// the server configures OpenSSL itself; native-tls has no such check).
#[test]
fn given_certificate_and_key() {
    let first = Server::tls();
    let cert = first.data_dir.join("cert.pem");
    let given = Options::tls()
        .flag("--tls-cert", cert.display())
        .flag("--tls-key", first.data_dir.join("key.pem").display())
        .start();
    assert_eq!(given.fingerprint, first.fingerprint);
    // `login` checks the certificate it is shown against the fingerprint.
    given.login("alice").ping();
    #[cfg(not(any(target_os = "windows", target_vendor = "apple")))]
    refuses_a_key_of_another_certificate(&cert);
}

#[cfg(not(any(target_os = "windows", target_vendor = "apple")))]
fn refuses_a_key_of_another_certificate(cert: &std::path::Path) {
    use std::process::{Command, Stdio};

    let other = Server::tls();
    let key = other.data_dir.join("key.pem");
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(&key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server started with a key that does not match its certificate");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains("the private key does not match the certificate"),
        "{stderr}"
    );
}

/// Reads from `tcp` until the server closes it; returns the time from
/// `start` (when it connected) until then.
fn time_to_close(mut tcp: TcpStream, start: Instant, limit: Duration) -> Duration {
    tcp.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            // A TLS alert may come first.
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("still open after {limit:?}")
            }
            Err(_) => return start.elapsed(),
        }
    }
}

/// A TCP connection to the TLS port that never sends a ClientHello is
/// dropped within --handshake-timeout + 1 s; a client that completed its
/// handshake at the same time is not affected.
#[test]
fn handshake_timeout() {
    let server = Options::tls().flag("--handshake-timeout", 1).start();
    let start = Instant::now();
    let silent = TcpStream::connect(server.addr).unwrap();
    let mut alice = server.connect("alice");
    let elapsed = time_to_close(silent, start, Duration::from_secs(3));
    assert!(
        elapsed >= Duration::from_millis(900),
        "closed after only {elapsed:?}"
    );
    assert!(
        elapsed <= Duration::from_secs(2),
        "closed after {elapsed:?}"
    );
    // A handshake that stalls half-way is dropped too.
    let start = Instant::now();
    let mut partial = TcpStream::connect(server.addr).unwrap();
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    let elapsed = time_to_close(partial, start, Duration::from_secs(3));
    assert!(
        elapsed <= Duration::from_secs(2),
        "closed after {elapsed:?}"
    );

    alice.login("alice");
    alice.ping();
}

/// Plaintext JSON sent to the TLS port fails the handshake and is closed
/// at once; the server goes on serving TLS clients, those connected before
/// and new ones.
#[test]
fn plaintext_client_on_the_tls_port() {
    let server = Server::tls();
    let mut bystander = server.login("bob");
    let start = Instant::now();
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.write_all(b"{\"type\":\"login\",\"id\":1,\"nick\":\"alice\",\"password\":\"pw\"}\n")
        .unwrap();
    let elapsed = time_to_close(tcp, start, Duration::from_secs(3));
    assert!(elapsed < Duration::from_secs(1), "closed after {elapsed:?}");
    server.login("alice").ping();
    bystander.expect_joined("alice");
    bystander.ping();
}

/// A TLS client on the plaintext port fails its handshake; the server
/// treats the ClientHello as garbage, and goes on serving.
#[test]
fn tls_client_on_the_plaintext_port() {
    let server = Server::plain();
    let tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let connector = native_tls::TlsConnector::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    assert!(connector.connect("localhost", tcp).is_err());
    let mut alice = server.login("alice");
    let id = alice.id();
    alice.send(json!({"type": "online", "id": id}));
    assert_eq!(alice.expect_reply(id)["users"], json!(["alice"]));
}
