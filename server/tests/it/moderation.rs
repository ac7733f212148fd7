//! The operator's sanctions from the console: `/ban` (kicks, refuses
//! logins, survives a restart, may expire) and `/mute` (refuses messages).

use std::time::Duration;

use crate::support::{self, Options, Server};

fn done(line: &str) -> bool {
    !line.is_empty()
}

#[test]
fn a_ban_kicks_refuses_logins_survives_a_restart_and_lifts() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Options::plain().data_dir(dir.path()).start();
    let mut alice = server.login("alice");
    let mut bob = server.login("bob");
    alice.expect_joined("bob");

    let output = server.admin_output("/ban BOB", done);
    assert_eq!(output, "banned bob until the operator lifts it");
    let kicked = bob.expect_type("kicked");
    assert_eq!(kicked["reason"], "banned until the operator lifts it");
    bob.expect_eof();
    assert_eq!(alice.expect_type("kicked")["nick"], "bob");

    let mut again = server.connect("bob again");
    let refusal = again.try_login("bob");
    assert_eq!(refusal["code"], "banned", "{refusal}");
    assert_eq!(
        refusal["reason"],
        "bob is banned until the operator lifts it"
    );
    // The ban is checked before the password: a guess learns nothing more.
    let refusal = again.try_login_with("bob", "wrong");
    assert_eq!(refusal["code"], "banned", "{refusal}");

    drop(server);
    let mut server = Options::plain().data_dir(dir.path()).start();
    let refusal = server.connect("bob").try_login("bob");
    assert_eq!(
        refusal["code"], "banned",
        "the ban outlives a restart: {refusal}"
    );
    assert_eq!(
        server.admin_output("/unban bob", done),
        "bob is no longer banned"
    );
    server.login("bob");
    assert_eq!(
        server.admin_output("/unban bob", done),
        "error: bob is not banned"
    );
    assert_eq!(
        server.admin_output("/ban nobody", done),
        "error: no account is called nobody"
    );
}

#[test]
fn a_timed_ban_expires() {
    let mut server = Server::plain();
    server.login("bob").bye();
    assert_eq!(
        server.admin_output("/ban bob 2s", done),
        "banned bob for another 2 s"
    );
    let refusal = server.connect("bob").try_login("bob");
    assert_eq!(refusal["code"], "banned", "{refusal}");
    std::thread::sleep(Duration::from_millis(2100));
    server.login("bob");
}

#[test]
fn a_muted_user_may_read_but_not_send() {
    let mut server = Server::plain();
    let mut alice = server.login("alice");
    let mut bob = server.login("bob");
    alice.expect_joined("bob");

    assert_eq!(
        server.admin_output("/mute bob 10m", done),
        "muted bob for another 10 min"
    );
    assert_eq!(
        bob.expect_type("announce")["text"],
        "the operator muted you for another 10 min"
    );
    let id = bob.send_message(None, "can anyone hear me?");
    let refusal = bob.expect_error(Some(id), "muted");
    assert_eq!(refusal["reason"], "you are muted for another 10 min");
    let id = bob.send_message(Some("alice"), "psst");
    bob.expect_error(Some(id), "muted");

    // Bob still reads; Alice still talks.
    let id = alice.send_message(None, "hello room");
    alice.expect_reply(id);
    assert_eq!(bob.expect_type("message")["text"], "hello room");

    assert_eq!(
        server.admin_output("/unmute bob", done),
        "bob is no longer muted"
    );
    let id = bob.send_message(None, "back");
    bob.expect_reply(id);
}

#[test]
fn an_address_ban_closes_and_refuses_its_connections_until_lifted() {
    let mut server = Server::plain();
    let mut bob = server.login("bob");
    let mut guest = server.connect("guest"); // connected, not logged in
    let id = guest.id();
    guest.send(serde_json::json!({"type": "ping", "id": id}));
    guest.expect_reply(id);
    let output = server.admin_output("/ban 127.0.0.1", done);
    assert_eq!(
        output,
        "banned 127.0.0.1 until /unban; 2 connections closed"
    );
    assert_eq!(
        bob.expect_type("kicked")["reason"],
        "address banned until /unban"
    );
    bob.expect_eof();
    guest.expect_closed_within(Duration::from_secs(5));

    // New connections from it are closed without a word.
    let mut refused = server.connect("refused");
    refused.expect_closed_within(Duration::from_secs(5));
    let stats = server.admin_output("/stats", |l| l.starts_with("uptime"));
    assert!(
        stats.contains("connections refused: 1 banned, 0 over the per-address cap"),
        "{stats}"
    );

    assert_eq!(
        server.admin_output("/unban 127.0.0.1", done),
        "127.0.0.1 is no longer banned"
    );
    server.login("bob");
    assert_eq!(
        server.admin_output("/unban 127.0.0.1", done),
        "error: 127.0.0.1 is not banned"
    );
}

/// A TLS connection accepted before the ban but still in its handshake
/// when the ban came is not set up afterwards: the ban would otherwise
/// miss it (the chat does not know it yet), and it could chat on.
#[test]
fn an_address_ban_also_stops_a_connection_still_in_its_tls_handshake() {
    use std::io::{BufRead, BufReader, Write};
    let mut server = Server::tls();
    let tcp = std::net::TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Accepted (the server has it) but no handshake yet.
    std::thread::sleep(Duration::from_millis(200));
    let output = server.admin_output("/ban 127.0.0.1", done);
    assert_eq!(
        output,
        "banned 127.0.0.1 until /unban; 0 connections closed"
    );
    let outcome = std::panic::catch_unwind(move || {
        let mut tls = support::tls_handshake(tcp);
        let _ = tls.write_all(b"{\"type\":\"ping\",\"id\":1}\n");
        let mut line = String::new();
        let _ = BufReader::new(tls).read_line(&mut line);
        line
    });
    if let Ok(line) = outcome {
        assert!(
            !line.contains("pong"),
            "a banned address finished its handshake and was answered: {line}"
        );
    }
}
