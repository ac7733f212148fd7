//! The chat as users see it: logging in, public and private messages, who
//! is online, and leaving — each over plaintext and TLS.

use serde_json::{json, Value};

use crate::support::{self, Options, Server};

fn texts_of(frames: &[Value], kind: &str) -> Vec<Value> {
    frames
        .iter()
        .filter(|f| f["type"] == kind)
        .cloned()
        .collect()
}

both! {
    /// Alice's first login creates her account and she is welcomed with
    /// herself online; when Bob registers, his welcome lists both and Alice
    /// is told he joined — in a presence frame that Bob gets too, since it
    /// goes to everyone online.
    fn registration(tls) {
        let server = Server::with_tls(tls);
        let mut alice = server.connect("alice");
        let welcome = alice.try_login("alice");
        assert_eq!(
            welcome,
            json!({"type": "welcome", "id": 1, "nick": "alice", "online": ["alice"], "new_account": true})
        );
        assert_eq!(alice.recv(), json!({"type": "presence", "joined": ["alice"]}));

        let mut bob = server.connect("bob");
        let welcome = bob.try_login("bob");
        assert_eq!(
            welcome,
            json!({"type": "welcome", "id": 1, "nick": "bob", "online": ["alice", "bob"], "new_account": true})
        );
        let joined = json!({"type": "presence", "joined": ["bob"]});
        assert_eq!(alice.recv(), joined);
        assert_eq!(bob.recv(), joined);
        // Nothing more, not even once the presence interval has passed.
        bob.expect_silence(server.presence_settle());
        alice.expect_nothing_more();
    }

    /// A nickname that has an account, in any case, is refused with
    /// `bad_password` to anyone without its password — while its owner is
    /// online, and after she left; the same connection then logs in under
    /// another name, and only that login is announced. Alice herself gets
    /// back in with any case: her account keeps the spelling she chose.
    fn registered_nick_needs_its_password(tls) {
        let server = Server::with_tls(tls);
        let mut alice = server.login("alice");
        let mut other = server.connect("other");
        for taken in ["alice", "ALICE", "Alice"] {
            let reply = other.try_login_with(taken, "not alice's password");
            assert_eq!(reply["type"], "error", "{taken}: {reply}");
            assert_eq!(reply["code"], "bad_password", "{taken}: {reply}");
        }
        let welcome = other.login("bob");
        assert_eq!(welcome["new_account"], true, "{welcome}");
        // Only the successful login was announced.
        assert_eq!(alice.recv(), json!({"type": "presence", "joined": ["bob"]}));
        alice.expect_nothing_more();

        drop(alice);
        other.expect_left("alice");
        let mut again = server.connect("again");
        let reply = again.try_login_with("Alice", "not alice's password");
        assert_eq!(reply["code"], "bad_password", "{reply}");
        let welcome = again.try_login("ALICE");
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        assert_eq!(welcome["nick"], "alice", "{welcome}");
        assert_eq!(welcome.get("new_account"), None, "{welcome}");
        assert_eq!(other.expect_joined("alice").joined, ["alice"]);
    }

    /// Each invalid nickname is refused with `nick_invalid` and nobody hears
    /// of it; the same connection can keep trying and finally log in.
    fn invalid_nicks(tls) {
        let server = Server::with_tls(tls);
        let mut observer = server.login("observer");
        let mut client = server.connect("client");
        let long = "x".repeat(33);
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            (&long, "33 characters"),
            ("al ice", "a space"),
            ("al\tice", "a tab"),
            ("al\u{1}ice", "a control character"),
            ("bell\u{7}", "a bell"),
            ("#alice", "a leading '#'"),
            ("*alice", "a leading '*'"),
            ("!alice", "a leading '!'"),
            ("/alice", "a leading '/'"),
        ];
        for (nick, why) in cases {
            let reply = client.try_login(nick);
            assert_eq!(reply["type"], "error", "{why}: {reply}");
            assert_eq!(reply["code"], "nick_invalid", "{why}: {reply}");
            assert!(reply["reason"].as_str().is_some_and(|r| !r.is_empty()), "{why}: {reply}");
        }
        // The limits themselves are fine: 32 characters, '#' inside.
        let longest = "é".repeat(32);
        let welcome = client.login(&longest);
        // Sorted by lowercase code points: "é" comes after "o".
        assert_eq!(welcome["online"], json!(["observer", longest]));
        assert_eq!(observer.recv(), json!({"type": "presence", "joined": [longest]}));
        observer.expect_nothing_more();
        let mut hash = server.connect("hash");
        hash.login("mid#dle");
    }

    /// Fifty users each say hello once: every user receives every hello
    /// exactly once, their own included, and each sender gets its ack.
    fn broadcast_to_fifty(tls) {
        let server = Options::with_tls(tls).flag("--workers", 3).crowd().start();
        // Logged in without waiting for each arrival to be announced: the
        // presence frames come whenever they come, among the messages.
        let mut clients: Vec<_> = (0..50)
            .map(|i| {
                let nick = format!("user{i:02}");
                let mut client = server.connect(&nick);
                client.login(&nick);
                client
            })
            .collect();
        let ids: Vec<u64> = clients
            .iter_mut()
            .enumerate()
            .map(|(i, c)| c.send_message(None, &format!("hello from user{i:02}")))
            .collect();
        for (i, client) in clients.iter_mut().enumerate() {
            let mut acked = false;
            let mut seen = std::collections::BTreeMap::new();
            while seen.len() < 50 || !acked {
                let frame = client.recv();
                if frame["type"] == "presence" {
                    continue;
                }
                if frame["type"] == "ack" {
                    assert_eq!(frame["id"], ids[i], "{frame}");
                    acked = true;
                    continue;
                }
                assert_eq!(frame["type"], "message", "{frame}");
                let sender = frame["sender"].as_str().unwrap().to_string();
                assert_eq!(frame["receiver"], "*", "{frame}");
                assert_eq!(frame["text"], format!("hello from {sender}"), "{frame}");
                assert!(frame["time"].as_u64().is_some_and(|t| t > 1_600_000_000_000), "{frame}");
                *seen.entry(sender).or_insert(0) += 1;
                if seen.values().any(|&n| n > 1) {
                    client.fail(&format!("a second copy: {seen:?}"));
                }
            }
            assert!(seen.contains_key(&format!("user{i:02}")), "user{i:02} missed its own");
            let extra = texts_of(&client.sync(), "message");
            assert!(extra.is_empty(), "user{i:02} got extra copies: {extra:?}");
        }
    }

    /// A private message reaches only its receiver (whose name may be
    /// written in any case); the sender gets the ack and a bystander nothing.
    fn private_message(tls) {
        let server = Server::with_tls(tls);
        let mut alice = server.login("alice");
        let mut bob = server.login("Bob");
        let mut carol = server.login("carol");
        alice.sync();
        bob.sync();

        let id = alice.send_message(Some("bob"), "psst, Bob");
        alice.expect_ack(id);
        let frame = bob.expect_type("message");
        assert_eq!(frame["sender"], "alice");
        assert_eq!(frame["receiver"], "Bob");
        assert_eq!(frame["text"], "psst, Bob");
        assert!(frame["time"].is_u64(), "{frame}");

        carol.expect_nothing_more();
        bob.expect_nothing_more();
        alice.expect_nothing_more();
    }

    /// A private message to a nickname with no account is refused with
    /// `no_such_user` and no ack; the sender can go on chatting.
    fn unknown_receiver(tls) {
        let server = Server::with_tls(tls);
        let mut alice = server.login("alice");
        let id = alice.send_message(Some("bob"), "are you there?");
        let error = alice.expect_error(Some(id), "no_such_user");
        assert!(error["reason"].as_str().unwrap().contains("bob"), "{error}");
        alice.say("anyone?");
        alice.expect_type("message");
        alice.expect_nothing_more();
    }

    /// `online` answers with every user, sorted without regard to case,
    /// and follows users as they come and go.
    fn online_list(tls) {
        let server = Server::with_tls(tls);
        let mut carol = server.login("carol");
        let _alice = server.login("alice");
        let bob = server.login("Bob");
        let online = |c: &mut support::Client| {
            let id = c.id();
            c.send(json!({"type": "online", "id": id}));
            c.expect_reply(id)
        };
        assert_eq!(online(&mut carol), json!({"type": "online", "id": 1 + 1, "users": ["alice", "Bob", "carol"]}));
        drop(bob);
        carol.expect_left("Bob");
        assert_eq!(online(&mut carol)["users"], json!(["alice", "carol"]));
    }

    /// When Bob's socket simply goes away, the others are told he left
    /// (connection closed or lost) and his nickname is free again.
    fn dropped_socket(tls) {
        let server = Server::with_tls(tls);
        let mut alice = server.login("alice");
        let bob = server.login("bob");
        assert_eq!(alice.recv(), json!({"type": "presence", "joined": ["bob"]}));
        drop(bob);
        let left = alice.recv();
        let reason = left["left"][0]["reason"].as_str().unwrap_or_default().to_string();
        assert!(
            ["connection closed", "connection lost"].contains(&reason.as_str()),
            "reason: {left}"
        );
        assert_eq!(left, json!({"type": "presence", "left": [{"nick": "bob", "reason": reason}]}));
        server.login("bob");
        assert_eq!(alice.recv(), json!({"type": "presence", "joined": ["bob"]}));
    }

    /// Bob says bye: his bye is acked, then his connection closes, and the
    /// others hear he left with reason "quit".
    fn bye(tls) {
        let server = Server::with_tls(tls);
        let mut alice = server.login("alice");
        let mut bob = server.login("bob");
        bob.send(json!({"type": "bye", "id": 9}));
        assert_eq!(bob.recv(), json!({"type": "ack", "id": 9}));
        bob.expect_eof();
        assert_eq!(alice.recv(), json!({"type": "presence", "joined": ["bob"]}));
        assert_eq!(alice.recv(), json!({"type": "presence", "left": [{"nick": "bob", "reason": "quit"}]}));
        alice.expect_silence(server.presence_settle());
    }
}
