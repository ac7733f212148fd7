//! The operator's side: console commands on stdin, and stopping the server
//! with a signal or `/quit`.

use serde_json::json;

use crate::support::Server;

/// The last line of `/list`: "N online" or "nobody is online".
fn end_of_list(line: &str) -> bool {
    line.ends_with(" online")
}

fn end_of_stats(line: &str) -> bool {
    line.starts_with("uptime: ")
}

both! {
    /// `/kick bob spamming` tells everyone, Bob included, that Bob was
    /// kicked and why; Bob's connection closes and no presence `left`
    /// follows.
    fn kick(tls) {
        let mut server = Server::with_tls(tls);
        let mut alice = server.login("alice");
        let mut bob = server.login("bob");
        let mut carol = server.login("carol");
        alice.sync();
        bob.sync();

        let output = server.admin_output("/kick bob spamming", |l| l.contains("bob"));
        assert_eq!(output, "kicked bob");
        let kicked = json!({"type": "kicked", "nick": "bob", "reason": "spamming"});
        assert_eq!(bob.recv(), kicked);
        bob.expect_eof();
        for client in [&mut alice, &mut carol] {
            assert_eq!(client.expect_type("kicked"), kicked);
            client.expect_nothing_more();
        }
        // Not even once the presence interval has passed.
        alice.expect_silence(server.presence_settle());

        // Any case works, and the reason has a default.
        let output = server.admin_output("/kick CAROL", |l| l.contains("CAROL") || l.contains("carol"));
        // The console echoes the name as typed; the frames carry the real one.
        assert_eq!(output.to_lowercase(), "kicked carol");
        let kicked = json!({"type": "kicked", "nick": "carol", "reason": "kicked by the operator"});
        assert_eq!(carol.recv(), kicked);
        carol.expect_eof();
        assert_eq!(alice.recv(), kicked);

        // Someone not online cannot be kicked; a kicked nick is free again.
        let output = server.admin_output("/kick bob again", |l| l.starts_with("error"));
        assert_eq!(output, "error: bob is not online");
        // (A `left` for bob or carol still pending would show here: bob's
        // would cancel his return, carol's would come along with it.)
        let _bob = server.login("bob");
        assert_eq!(alice.recv(), json!({"type": "presence", "joined": ["bob"]}));
        alice.expect_nothing_more();
    }

    /// `/announce` reaches every logged-in user with the text and a time,
    /// but not connections that have not logged in.
    fn announce(tls) {
        let mut server = Server::with_tls(tls);
        let mut alice = server.login("alice");
        let mut bob = server.login("bob");
        let mut anonymous = server.connect("anonymous");
        anonymous.ping();
        let output = server.admin_output("/announce class starts at 9", |l| l.starts_with("announced"));
        assert_eq!(output, "announced to 2 users");
        for client in [&mut alice, &mut bob] {
            let frame = client.expect_type("announce");
            assert_eq!(frame["text"], "class starts at 9");
            assert!(frame["time"].as_u64().is_some_and(|t| t > 1_600_000_000_000), "{frame}");
            assert_eq!(frame.as_object().unwrap().len(), 3, "{frame}");
        }
        anonymous.expect_nothing_more();
    }

    /// `/list` shows each user with their address, TLS or not and messages
    /// sent; `/stats` counts connections, users, accounts and messages, and
    /// (all zero here) what the store did for reliable delivery.
    fn list_and_stats(tls) {
        let mut server = Server::with_tls(tls);
        assert_eq!(server.admin_output("/list", end_of_list), "nobody is online");

        let mut alice = server.login("alice");
        let bob = server.login("bob");
        let mut anonymous = server.connect("anonymous");
        anonymous.ping();
        alice.say("one");
        let id = alice.send_message(Some("bob"), "two");
        alice.expect_ack(id);

        let list = server.admin_output("/list", end_of_list);
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines.len(), 4, "{list}");
        assert!(lines[0].starts_with("NICK"), "{list}");
        let tls_column = if tls { "yes" } else { "no" };
        for (line, nick, port, sent) in [
            (lines[1], "alice", alice.tcp().local_addr().unwrap().port(), 2),
            (lines[2], "bob", bob.tcp().local_addr().unwrap().port(), 0),
        ] {
            let words: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(words[0], nick, "{list}");
            assert_eq!(words[1], format!("127.0.0.1:{port}"), "{list}");
            assert_eq!(words[3], tls_column, "{list}");
            assert_eq!(words[4], sent.to_string(), "{list}");
        }
        assert_eq!(lines[3], "2 online");

        let stats = server.admin_output("/stats", end_of_stats);
        let lines: Vec<&str> = stats.lines().collect();
        for expected in [
            "connections: 3 (2 logged in, 2 accounts)",
            "messages: 2 (1 private)",
            "stored for offline users: 0",
            "redelivered at login: 0",
            "duplicates dropped: 0",
        ] {
            assert!(lines.contains(&expected), "no line {expected:?} in:\n{stats}");
        }
        assert!(stats.contains("rate: 0.2 msg/s"), "{stats}");
    }
}

/// `/help` lists every command; an unknown command says so, and the
/// console goes on.
#[test]
fn help_and_unknown_commands() {
    let mut server = Server::plain();
    let help = server.admin_output("/help", |l| l.contains("/quit"));
    for command in ["/list", "/kick", "/announce", "/stats", "/help", "/quit"] {
        assert!(help.contains(command), "{help}");
    }
    let output = server.admin_output("/frobnicate", |l| l.contains("unknown"));
    assert!(output.contains("/frobnicate"), "{output}");
    let output = server.admin_output("/kick", |l| l.contains("usage"));
    assert_eq!(output, "usage: /kick <nick> [reason]");
    assert_eq!(
        server.admin_output("/list", end_of_list),
        "nobody is online"
    );
}
