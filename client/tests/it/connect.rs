//! Getting connected: a server that is not there, certificates pinned on
//! first use and refused when they change, strict verification with --ca.

use std::fs;
use std::time::{Duration, Instant};

use crate::support::{Client, Server, TIMEOUT};

/// Nobody listening: exit 1 with a hint to start the server.
#[test]
fn connection_refused_has_a_hint() {
    // Bound then dropped, so the port is very likely closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join("known_hosts");
    let addr = format!("127.0.0.1:{port}");
    for plain in [false, true] {
        let mut client = Client::new(&addr);
        client.nick("bot").arg("--known-hosts").arg(&known_hosts);
        if plain {
            client.arg("--no-tls");
        }
        client
            .run("hello\n")
            .assert_code(1)
            .assert_stderr_contains(&format!("cannot connect to {addr}: Connection refused"))
            .assert_stderr_contains(
                "(is a chat server running there, on that port? the default port is 50445)",
            );
    }
    assert!(!known_hosts.exists());
}

/// A plaintext client at a TLS server fails with 1 rather than hanging.
#[test]
fn a_plaintext_client_cannot_talk_to_a_tls_server() {
    let server = Server::start(true);
    Client::new(&server.addr)
        .args(["--no-tls", "--nick", "bot", "--known-hosts"])
        .arg(&server.known_hosts)
        .run("hello\n")
        .assert_code(1)
        .assert_stderr_contains("connection lost");
}

/// The first connection pins the fingerprint the server printed, later ones
/// check it quietly, and a new certificate on the same address is refused.
#[test]
fn pins_on_first_use_and_refuses_a_changed_certificate() {
    let mut first = Server::start(true);
    let addr = first.addr.clone();
    let print = first.fingerprint.clone().unwrap();
    let known_hosts = first.known_hosts.clone();

    let pinned = first.client().nick("bot").run("one\n");
    pinned.assert_code(0).assert_stderr_contains(&format!(
        "pinned the certificate of {addr} (SHA-256 {print}) on first use, in {}: \
         later connections must present the same one; if the server changes it \
         on purpose, delete that line and connect again",
        known_hosts.display()
    ));
    assert_eq!(
        fs::read_to_string(&known_hosts).unwrap(),
        format!("{addr} {print}\n")
    );

    let again = first.client().nick("bot").run("two\n");
    again.assert_code(0).assert_stdout_has("<bot (you)> two");
    assert!(!again.stderr.contains("pinned"), "{again}");

    // A new data directory means a new certificate; same address.
    first.kill();
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = scratch.path().join("data");
    let second = restart_on(&addr, &data_dir, scratch);
    let new_print = second.fingerprint.clone().unwrap();
    assert_ne!(new_print, print);

    let refused = Client::new(&addr)
        .arg("--known-hosts")
        .arg(&known_hosts)
        .nick("bot")
        .run("three\n");
    refused.assert_code(1);
    for want in [
        format!("the certificate of {addr} has changed"),
        format!("pinned:    SHA-256 {print}"),
        format!("presented: SHA-256 {new_print}"),
        format!("delete line 1 of {}", known_hosts.display()),
    ] {
        refused.assert_stderr_contains(&want);
    }
    assert!(refused.stdout.is_empty(), "{refused}");
    // The refused certificate is not recorded.
    assert_eq!(
        fs::read_to_string(&known_hosts).unwrap(),
        format!("{addr} {print}\n")
    );
}

/// Starts a TLS server on exactly `addr`, retrying while the port is still
/// held by the server just killed.
fn restart_on(addr: &str, data_dir: &std::path::Path, scratch: tempfile::TempDir) -> Server {
    let deadline = Instant::now() + TIMEOUT;
    let mut scratch = Some(scratch);
    loop {
        let dir = scratch
            .take()
            .unwrap_or_else(|| tempfile::tempdir().unwrap());
        match Server::start_at(true, addr, data_dir, dir) {
            Ok(server) => return server,
            Err(err) if Instant::now() < deadline => {
                eprintln!("retrying the bind: {err}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(err) => panic!("cannot start a server on {addr} again: {err}"),
        }
    }
}

/// `--ca` verifies strictly: the server's own certificate connects without
/// pinning anything; another server's certificate is refused.
#[test]
fn ca_verifies_strictly() {
    let server = Server::start(true);
    let other = Server::start(true);
    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join("known_hosts");

    let trusted = Client::new(&server.addr)
        .arg("--ca")
        .arg(server.cert())
        .arg("--known-hosts")
        .arg(&known_hosts)
        .nick("bot")
        .run("verified\n");
    trusted
        .assert_code(0)
        .assert_stdout_has("<bot (you)> verified");
    assert!(!trusted.stderr.contains("pinned"), "{trusted}");
    assert!(!known_hosts.exists(), "--ca must not write known_hosts");

    let untrusted = Client::new(&server.addr)
        .arg("--ca")
        .arg(other.cert())
        .arg("--known-hosts")
        .arg(&known_hosts)
        .nick("bot")
        .run("never\n");
    untrusted
        .assert_code(1)
        .assert_stderr_contains(&format!("TLS handshake with {} failed", server.addr));
    assert!(untrusted.stdout.is_empty(), "{untrusted}");
    assert!(!known_hosts.exists(), "--ca must not write known_hosts");
}

/// Three wrong passwords for bob from his address lock his account there
/// for a while; his own client, cut off meanwhile, is then refused by the
/// throttle when it logs in again. It says so and waits to try again by
/// itself, instead of exiting for good as it used to.
#[test]
fn a_throttled_reconnect_waits_and_tries_again() {
    use std::io::{BufRead, BufReader, Write};
    let server = Server::start(false);
    let proxy = crate::support::proxy::Proxy::start(&server.addr);
    let mut bob = Client::new(&proxy.addr)
        .args(["--no-tls", "--nick", "bob"])
        .spawn();
    bob.expect_that("the welcome", |l| l.starts_with("* welcome, bob"));
    for id in 1..=4 {
        let mut tcp = std::net::TcpStream::connect(&server.addr).unwrap();
        tcp.set_read_timeout(Some(crate::support::TIMEOUT)).unwrap();
        writeln!(
            tcp,
            r#"{{"type":"login","id":{id},"nick":"bob","password":"guess{id}"}}"#
        )
        .unwrap();
        let mut line = String::new();
        BufReader::new(tcp).read_line(&mut line).unwrap();
        assert!(line.contains(r#""type":"error""#), "{line}");
    }
    proxy.cut();
    let said = bob.expect_stderr("trying again in ");
    assert!(
        said.contains("* too many failed logins") && said.ends_with(" s"),
        "{said}\n{}",
        bob.transcript()
    );
    assert!(!said.contains("try again in"), "said once: {said}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    bob.send("!online");
    let transcript = bob.transcript();
    assert!(
        transcript.contains("exit status: still running"),
        "{transcript}"
    );
}

/// A new certificate met while reconnecting is refused like one met at
/// start-up: the warning on lines of its own (no literal `\n`), no more
/// tries, exit 1.
#[test]
fn a_changed_certificate_while_reconnecting_ends_the_client() {
    let mut first = Server::start(true);
    let addr = first.addr.clone();
    let known_hosts = first.known_hosts.clone();
    let mut bot = first.client();
    let mut bot = bot.nick("bot").spawn();
    bot.expect_that("the welcome", |l| l.starts_with("* welcome, bot"));
    bot.expect_stderr("pinned the certificate of");

    first.kill();
    bot.expect_stderr("reconnecting");
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = scratch.path().join("data");
    let _second = restart_on(&addr, &data_dir, scratch);
    let done = bot.wait();
    done.assert_code(1);
    for want in [
        format!("! connection lost: refusing to connect: the certificate of {addr} has changed"),
        "! @    WARNING: SERVER CERTIFICATE HAS CHANGED!           @".to_string(),
        format!("delete line 1 of {}", known_hosts.display()),
    ] {
        done.assert_stderr_contains(&want);
    }
    assert!(!done.stderr.contains("\\n"), "escaped newlines\n{done}");
    let tries = done.stderr.matches("has changed").count();
    assert_eq!(tries, 1, "tried again after the refusal\n{done}");
}

/// `--server` takes a host name, and the port defaults to the server's.
#[test]
fn a_host_name_and_no_port_are_understood() {
    let server = Server::start(false);
    let port = server.addr.rsplit_once(':').unwrap().1;
    Client::new(&format!("localhost:{port}"))
        .args(["--no-tls", "--nick", "bot"])
        .run("by name\n")
        .assert_code(0)
        .assert_stdout_has("<bot (you)> by name");
    // Whatever listens on 50445 here (nothing, or another server), the
    // address is understood, and the hint is for users of the binary.
    let dir = tempfile::tempdir().unwrap();
    let done = Client::new("127.0.0.1")
        .args(["--nick", "bot", "--reconnect-for", "0", "--known-hosts"])
        .arg(dir.path().join("known_hosts"))
        .run("");
    assert!(!done.stderr.contains("invalid socket address"), "{done}");
    assert!(!done.stderr.contains("make run-server"), "{done}");
    if done.code == Some(1) {
        done.assert_stderr_contains("127.0.0.1:50445");
    }
}
