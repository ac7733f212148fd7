//! What a login must pass before its password is checked, with the real
//! binary: plaintext passwords only where allowed, reserved names, names
//! that imitate others, the failure limit and the hashing queue. (The
//! thousand-attempt attack is `attack_identity.rs`.)

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Options, Server};

/// Over plaintext from 127.0.0.1 logins work by default (`--plaintext-login
/// auto`: the password does not leave the machine). With `refuse` they are
/// refused with `plaintext_refused` before anything is hashed or created,
/// and the connection stays usable; over TLS the same flag changes nothing.
/// (A non-loopback peer cannot be tested here: see the unit tests of
/// `policy.rs` and `state`.)
#[test]
fn plaintext_passwords_follow_the_policy() {
    let server = Server::plain();
    let welcome = server.connect("zed").try_login("zed");
    assert_eq!(
        welcome["new_account"], true,
        "auto allows loopback: {welcome}"
    );

    let server = Options::plain().flag("--plaintext-login", "refuse").start();
    let mut zed = server.connect("zed");
    let id = zed.request(json!({"type": "login", "nick": "zed", "password": "pw-zed"}));
    let refused = zed.expect_error(Some(id), "plaintext_refused");
    assert!(
        refused["reason"].as_str().unwrap().contains("TLS"),
        "{refused}"
    );
    zed.ping();

    let server = Options::tls().flag("--plaintext-login", "refuse").start();
    let welcome = server.connect("zed").try_login("zed");
    assert_eq!(welcome["new_account"], true, "TLS is fine: {welcome}");
}

/// `server`, `admin` and their like, in any spelling, are refused with
/// `nick_reserved`; the connection then logs in under a name of its own.
#[test]
fn reserved_names_are_refused() {
    let server = Server::plain();
    let mut client = server.connect("client");
    for nick in [
        "server",
        "Admin",
        "ＡＤＭＩＮ",
        "аdmin",
        "root",
        "r00t",
        "moderator",
    ] {
        let id = client.request(json!({"type": "login", "nick": nick, "password": "pw"}));
        let refused = client.expect_error(Some(id), "nick_reserved");
        assert!(
            refused["reason"].as_str().unwrap().contains("reserved"),
            "{refused}"
        );
    }
    let welcome = client.try_login("carol");
    assert_eq!(welcome["new_account"], true, "{welcome}");
}

/// A look-alike of alice's name is alice: with her password it logs in to
/// her account, shown as she registered it; a private message, a history
/// and a search that name her by a look-alike find her. A capital I for
/// her l (`aIice`, by case the name `aiice`) may not be registered.
#[test]
fn lookalikes_are_the_account_they_imitate() {
    let server = Server::plain();
    let mut alice = server.connect("alice");
    alice.try_login("alice");
    alice.bye();
    let mut bob = server.login("bob");

    let mut impostor = server.connect("impostor");
    let id = impostor.request(json!({"type": "login", "nick": "aIice", "password": "pw"}));
    let refused = impostor.expect_error(Some(id), "nick_taken");
    assert!(
        refused["reason"].as_str().unwrap().contains("alice"),
        "{refused}"
    );

    let mut alice = server.connect("alice");
    let welcome = alice.try_login_with("ａｌｉｃｅ", "pw-alice");
    assert_eq!(welcome["nick"], "alice", "{welcome}");
    assert_eq!(welcome.get("new_account"), None, "{welcome}");
    bob.expect_joined("alice");

    let id = bob.send_message(Some("аlicе"), "which alice?");
    bob.expect_ack(id);
    let message = alice.expect_type("message");
    assert_eq!(message["receiver"], "alice", "{message}");
    assert_eq!(message["text"], "which alice?", "{message}");

    let history = bob.ask(json!({"type": "history", "with": "ALİCE"}));
    assert_eq!(history["messages"][0]["text"], "which alice?", "{history}");
    alice.say("this one");
    let found = bob.ask(json!({"type": "search", "words": "one", "from": "a\u{301}lice"}));
    assert_eq!(found["messages"][0]["text"], "this one", "{found}");
}

/// Three wrong passwords; the fourth login — even the right password — is
/// refused at once with `too_many_attempts` and when to retry; after that
/// long (a 2 s window here, a minute by default) the right one gets in.
#[test]
fn the_fourth_failure_waits_for_the_window() {
    let server = Options::plain()
        .default_logins()
        .flag("--login-failure-window", 2)
        .start();
    let mut alice = server.connect("alice");
    alice.try_login("alice");
    alice.bye();

    let mut client = server.connect("guesser");
    for guess in ["one", "two", "three"] {
        let reply = client.try_login_with("alice", guess);
        assert_eq!(reply["code"], "bad_password", "{reply}");
    }
    let throttled = Instant::now();
    let reply = client.try_login("alice");
    assert_eq!(reply["code"], "too_many_attempts", "{reply}");
    let reason = reply["reason"].as_str().unwrap();
    let secs: u64 = reason
        .split("try again in ")
        .nth(1)
        .and_then(|s| s.trim_end_matches(" s").parse().ok())
        .unwrap_or_else(|| panic!("no retry time in {reason:?}"));
    assert!((1..=2).contains(&secs), "{reason}");
    client.ping();

    std::thread::sleep(Duration::from_secs(secs).saturating_sub(throttled.elapsed()));
    let welcome = client.try_login("alice");
    assert_eq!(welcome["type"], "welcome", "{welcome}");
}

/// With room for one login at the hashers (`--auth-queue 1`, hashes at
/// OWASP's cost), ten registrations at once: the first is hashed, the
/// others refused `busy` at once rather than queued; they get in when they
/// try again.
#[test]
fn logins_beyond_the_hashing_queue_are_busy() {
    let server = Options::plain()
        .owasp_hashes()
        .default_logins()
        .flag("--auth-queue", 1)
        .start();
    let mut clients: Vec<_> = (0..10)
        .map(|i| server.connect(&format!("user{i}")))
        .collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client
            .send(json!({"type": "login", "id": 1, "nick": format!("user{i}"), "password": "pw"}));
    }
    let replies: Vec<_> = clients.iter_mut().map(|c| c.expect_reply(1)).collect();
    let busy = replies.iter().filter(|r| r["code"] == "busy").count();
    let welcomed = replies.iter().filter(|r| r["type"] == "welcome").count();
    assert!(busy >= 1 && welcomed >= 1, "{replies:?}");
    assert_eq!(busy + welcomed, 10, "{replies:?}");
    for (i, (client, reply)) in clients.iter_mut().zip(&replies).enumerate() {
        if reply["code"] == "busy" {
            let welcome = client.try_login_with(&format!("user{i}"), "pw");
            assert_eq!(welcome["new_account"], true, "{welcome}");
        }
    }
}
