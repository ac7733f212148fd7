//! Accounts with the real binary: the first login registers a nickname with
//! its password and later logins need it; one account per nickname whatever
//! the case; passwords have 1 to 1,024 bytes and are kept only as argon2id
//! hashes; a correct login for an account that is online takes over.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Options, Server};

/// Every file in the data directory, read whole (the database, its WAL).
fn data_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(dir)
        .expect("reading the data directory")
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap_or_default())
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

both! {
    /// Alice registers with her first login. Someone trying her nickname
    /// with another password — even hers in capitals — gets `bad_password`
    /// and a connection that still works: it answers pings and refuses
    /// other requests as not logged in. With the right password the same
    /// connection gets in, to her existing account (no `new_account`).
    fn a_wrong_password_is_refused_and_the_connection_stays_usable(tls) {
        let server = Server::with_tls(tls);
        let mut alice = server.connect("alice");
        let welcome = alice.try_login("alice");
        assert_eq!(welcome["new_account"], true, "{welcome}");
        alice.bye();

        let mut again = server.connect("again");
        for wrong in ["pw-bob", "PW-ALICE", "pw-alice ", "p"] {
            let id = again.request(json!({"type": "login", "nick": "alice", "password": wrong}));
            let error = again.expect_error(Some(id), "bad_password");
            assert_eq!(error.as_object().unwrap().len(), 4, "{error}");
            again.ping();
        }
        let id = again.request(json!({"type": "online"}));
        again.expect_error(Some(id), "not_logged_in");

        let welcome = again.try_login("alice");
        let id = welcome["id"].as_u64().unwrap();
        assert_eq!(
            welcome,
            json!({"type": "welcome", "id": id, "nick": "alice", "online": ["alice"]})
        );
        again.say("back again");
        again.expect_type("message");
    }
}

/// At the server's default cost (argon2id, OWASP: 19 MiB, 2 passes) a
/// registration, a refused password and a login each still answer within
/// a second, and the data directory keeps the hash with those parameters —
/// never the password itself, which does not appear in the log either.
#[test]
fn the_default_hash_cost_is_quick_enough_and_only_the_hash_is_kept() {
    let server = Options::plain().owasp_hashes().start();
    let password = "correct horse battery staple";
    let timed = |nick: &str, password: &str| {
        let mut client = server.connect(nick);
        let start = Instant::now();
        let reply = client.try_login_with(nick, password);
        (client, reply, start.elapsed())
    };

    let (mut alice, welcome, registering) = timed("alice", password);
    assert_eq!(welcome["new_account"], true, "{welcome}");
    alice.bye();
    let (_, refused, refusing) = timed("alice", "Tr0ub4dor&3");
    assert_eq!(refused["code"], "bad_password", "{refused}");
    let (_, welcome, verifying) = timed("alice", password);
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome.get("new_account"), None, "{welcome}");
    for (what, took) in [
        ("registering", registering),
        ("refusing", refusing),
        ("logging in", verifying),
    ] {
        assert!(
            took < Duration::from_secs(1),
            "{what} took {took:?} at the default cost"
        );
    }

    // The account was stored before the welcome.
    let files = data_files(&server.data_dir);
    let owasp = b"$argon2id$v=19$m=19456,t=2,p=1$";
    assert!(
        files.iter().any(|(_, bytes)| contains(bytes, owasp)),
        "no argon2id hash at the default cost in {:?}",
        files.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for (name, bytes) in &files {
        assert!(
            !contains(bytes, password.as_bytes()),
            "{name} holds the password in clear"
        );
    }
    assert!(
        !server.stderr().contains(password),
        "the log shows the password"
    );
}

/// `ALICE` is Alice: her password logs in to her account, and the welcome,
/// the presence frame and the online list give the nickname as she
/// registered it; a private message to `ALICE` reaches her, addressed to
/// `alice`. Another password, under any spelling, is refused: there is no
/// second account.
#[test]
fn nicknames_are_one_account_whatever_the_case() {
    let server = Server::plain();
    let mut alice = server.connect("alice");
    alice.login("alice");
    alice.bye();
    let mut bob = server.login("bob");

    let mut intruder = server.connect("intruder");
    for spelling in ["Alice", "ALICE", "aLiCe"] {
        let reply = intruder.try_login_with(spelling, "another password");
        assert_eq!(reply["code"], "bad_password", "{spelling}: {reply}");
    }

    let mut shouting = server.connect("ALICE");
    let welcome = shouting.try_login("ALICE");
    assert_eq!(
        welcome,
        json!({"type": "welcome", "id": 1, "nick": "alice", "online": ["alice", "bob"]})
    );
    assert_eq!(bob.expect_joined("alice").joined, ["alice"]);
    let online = bob.ask(json!({"type": "online"}));
    assert_eq!(online["users"], json!(["alice", "bob"]));

    let id = bob.send_message(Some("ALICE"), "which alice are you?");
    bob.expect_ack(id);
    let message = shouting.expect_type("message");
    assert_eq!(message["sender"], "bob", "{message}");
    assert_eq!(message["receiver"], "alice", "{message}");
    assert_eq!(message["text"], "which alice are you?", "{message}");
}

/// A password has 1 to 1,024 bytes: an empty one, 1,025 bytes, or 513 'é'
/// (1,026 bytes) is refused with `password_invalid`; a missing or
/// non-string password is a `bad_frame`. None of them creates the account
/// or closes the connection, on which exactly 1,024 bytes then register —
/// and only those 1,024 bytes log in later.
#[test]
fn a_password_has_1_to_1024_bytes() {
    let server = Server::plain();
    let mut carol = server.connect("carol");
    let long = "x".repeat(1025);
    let wide = "é".repeat(513);
    for (password, why) in [
        ("", "empty"),
        (long.as_str(), "1,025 bytes"),
        (wide.as_str(), "1,026 bytes"),
    ] {
        let id = carol.request(json!({"type": "login", "nick": "carol", "password": password}));
        let error = carol.expect_error(Some(id), "password_invalid");
        assert!(
            error["reason"].as_str().unwrap().contains("1024"),
            "{why}: {error}"
        );
        carol.ping();
    }
    for frame in [
        json!({"type": "login", "nick": "carol"}),
        json!({"type": "login", "nick": "carol", "password": 1234}),
        json!({"type": "login", "nick": "carol", "password": null}),
    ] {
        let id = carol.request(frame);
        carol.expect_error(Some(id), "bad_frame");
    }

    let exact = "é".repeat(512);
    assert_eq!(exact.len(), 1024);
    let welcome = carol.try_login_with("carol", &exact);
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(
        welcome["new_account"], true,
        "the refusals created nothing: {welcome}"
    );
    carol.bye();

    let mut again = server.connect("again");
    let shorter = "é".repeat(511);
    let reply = again.try_login_with("carol", &shorter);
    assert_eq!(reply["code"], "bad_password", "{reply}");
    let welcome = again.try_login_with("carol", &exact);
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome.get("new_account"), None, "{welcome}");
}

/// Two people register the same new nickname at the same moment, with
/// different passwords: one gets the account (`new_account`), the other
/// `bad_password` — never two accounts, never two welcomes.
#[test]
fn racing_registrations_make_one_account() {
    let server = Server::plain();
    for round in 0..5 {
        let nick = format!("zed{round}");
        let mut first = server.connect("first");
        let mut second = server.connect("second");
        for (client, password) in [(&mut first, "one"), (&mut second, "two")] {
            client.send(json!({"type": "login", "id": 1, "nick": nick, "password": password}));
        }
        let replies = [first.expect_reply(1), second.expect_reply(1)];
        let welcomed: Vec<&serde_json::Value> =
            replies.iter().filter(|r| r["type"] == "welcome").collect();
        assert_eq!(welcomed.len(), 1, "{replies:?}");
        assert_eq!(welcomed[0]["new_account"], true, "{replies:?}");
        assert!(
            replies.iter().any(|r| r["code"] == "bad_password"),
            "{replies:?}"
        );
    }
}

both! {
    /// Alice's first connection is half dead and she logs in from a second
    /// one. A wrong password takes nothing over. The right one does: the old
    /// connection gets `{"type":"error","code":"taken_over"}` (no id) and is
    /// closed; Carol sees no presence change at all, since Alice never left;
    /// the new connection is welcomed like a returning user, and Bob's
    /// private message reaches it. When the new one goes, Alice leaves once.
    fn a_second_login_takes_over(tls) {
        let server = Server::with_tls(tls);
        let mut carol = server.login("carol");
        let mut old = server.login("alice");
        carol.expect_joined("alice");
        old.sync();
        carol.sync();

        let mut intruder = server.connect("intruder");
        let reply = intruder.try_login_with("alice", "guess");
        assert_eq!(reply["code"], "bad_password", "{reply}");
        old.expect_nothing_more();

        let mut new = server.connect("new");
        let welcome = new.try_login("alice");
        assert_eq!(
            welcome,
            json!({"type": "welcome", "id": 1, "nick": "alice", "online": ["alice", "carol"]})
        );
        let taken = old.recv();
        assert_eq!(taken["type"], "error", "{taken}");
        assert_eq!(taken["code"], "taken_over", "{taken}");
        assert_eq!(taken.get("id"), None, "{taken}");
        assert!(taken["reason"].as_str().is_some_and(|r| !r.is_empty()), "{taken}");
        assert_eq!(taken.as_object().unwrap().len(), 3, "{taken}");
        old.expect_eof();

        // Not even once the presence interval has passed.
        carol.expect_silence(server.presence_settle());
        new.expect_nothing_more();
        let online = carol.ask(json!({"type": "online"}));
        assert_eq!(online["users"], json!(["alice", "carol"]));

        let mut bob = server.login("bob");
        new.expect_joined("bob");
        let id = bob.send_message(Some("alice"), "are you the new alice?");
        bob.expect_ack(id);
        let message = new.expect_type("message");
        assert_eq!(message["sender"], "bob", "{message}");
        assert_eq!(message["text"], "are you the new alice?", "{message}");
        assert_eq!(message.get("away"), None, "{message}");
        new.say("I am");
        assert_eq!(bob.expect_type("message")["text"], "I am");

        drop(new);
        let reason = carol.expect_left("alice");
        assert!(["connection closed", "connection lost"].contains(&reason.as_str()), "{reason}");
        let online = carol.ask(json!({"type": "online"}));
        assert_eq!(online["users"], json!(["bob", "carol"]));
    }
}
