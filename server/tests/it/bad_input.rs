//! Input the server must survive: every malformed line gets an error with
//! the right code and the connection goes on (except an over-long line,
//! which closes it), and nobody else notices.

use std::time::Duration;

use serde_json::json;

use crate::support::{Client, Next, Options, Server};

/// Malformed lines: the bytes sent (without the newline), the error code,
/// and the id the error should carry.
pub(crate) const MALFORMED: &[(&[u8], &str, Option<u64>)] = &[
    (b"hello", "bad_json", None),
    (b"{\"type\":\"ping\",\"id\":3", "bad_json", None),
    (b"{\"type\":\"ping\",\"id\":3}}", "bad_json", None),
    (b"{\"type\":\"dance\",\"id\":4}", "unknown_type", Some(4)),
    (b"{\"id\":5}", "unknown_type", Some(5)),
    (b"{\"type\":\"message\",\"id\":6}", "bad_frame", Some(6)),
    (
        b"{\"type\":\"message\",\"id\":7,\"text\":5}",
        "bad_frame",
        Some(7),
    ),
    (
        b"{\"type\":\"login\",\"id\":8,\"nick\":null}",
        "bad_frame",
        Some(8),
    ),
    (b"{\"type\":\"ping\",\"id\":\"nine\"}", "bad_frame", None),
    (b"{\"type\":\"ping\",\"id\":-1}", "bad_frame", None),
    (b"{\"type\":\"ping\"}", "bad_frame", None),
    (b"[1,2]", "bad_frame", None),
    (
        b"{\"type\":\"ping\",\"id\":10,\"x\":\"\xff\xfe\"}",
        "invalid_utf8",
        None,
    ),
    (b"\xc3\x28", "invalid_utf8", None),
];

fn line(bytes: &[u8]) -> Vec<u8> {
    let mut line = bytes.to_vec();
    line.push(b'\n');
    line
}

/// Sends each malformed line in turn and checks the error, then that the
/// connection still answers a ping.
pub(crate) fn send_malformed(client: &mut Client) {
    for &(bytes, code, id) in MALFORMED {
        client.send_raw(&line(bytes));
        let error = client.recv();
        let shown = String::from_utf8_lossy(bytes);
        assert_eq!(error["type"], "error", "{shown}: {error}");
        assert_eq!(error["code"], code, "{shown}: {error}");
        assert_eq!(
            error.get("id").and_then(|v| v.as_u64()),
            id,
            "{shown}: {error}"
        );
        assert!(
            !error["reason"].as_str().unwrap_or("").is_empty(),
            "{error}"
        );
        client.ping();
    }
}

both! {
    /// Before logging in, malformed lines and requests other than login and
    /// ping are answered with errors; the same connection then logs in.
    fn before_login(tls) {
        let server = Server::with_tls(tls);
        let mut bystander = server.login("bystander");
        let mut client = server.connect("client");
        client.ping();
        send_malformed(&mut client);
        let requests = [
            json!({"type": "message", "id": 11, "text": "hi"}),
            json!({"type": "message", "id": 12, "receiver": "bystander", "text": "hi"}),
            json!({"type": "online", "id": 13}),
            json!({"type": "bye", "id": 14}),
        ];
        for request in requests {
            let id = request["id"].as_u64();
            client.send(request);
            client.expect_error(id, "not_logged_in");
            client.ping();
        }
        client.login("client");
        // The bystander heard nothing but the login.
        assert_eq!(bystander.recv(), json!({"type": "presence", "joined": ["client"]}));
        bystander.expect_nothing_more();
    }

    /// A logged-in user's malformed lines, empty or over-long texts and a
    /// second login are refused; the user can still chat, and a second
    /// client sees only the messages that were accepted.
    fn after_login(tls) {
        let server = Options::with_tls(tls).flag("--max-text", 100).start();
        let mut alice = server.login("alice");
        let mut bob = server.login("bob");
        alice.expect_joined("bob");
        send_malformed(&mut bob);

        let ninety_nine = "x".repeat(99);
        let bad_texts: &[(Option<&str>, &str, &str)] = &[
            (None, "", "empty"),
            (None, "   ", "blank"),
            (None, "\n\t", "whitespace"),
            (Some("alice"), "", "empty, private"),
            (None, &"x".repeat(101), "101 bytes"),
            (None, &"é".repeat(51), "51 characters, 102 bytes"),
            (Some("alice"), &"x".repeat(101), "101 bytes, private"),
        ];
        for (to, text, why) in bad_texts {
            let id = bob.send_message(*to, text);
            let error = bob.expect_error(Some(id), "bad_text");
            assert!(!error["reason"].as_str().unwrap().is_empty(), "{why}");
            bob.ping();
        }
        let id = bob.id();
        bob.send(json!({"type": "login", "id": id, "nick": "bobby", "password": "pw"}));
        bob.expect_error(Some(id), "already_logged_in");

        // The limits themselves are allowed: exactly 100 bytes.
        for text in [format!("{ninety_nine}y"), "é".repeat(50)] {
            bob.say(&text);
            let frame = alice.expect_type("message");
            assert_eq!(frame["text"], text);
        }
        let errors: Vec<_> = alice.sync().into_iter().filter(|f| f["type"] != "message").collect();
        assert!(errors.is_empty(), "alice saw {errors:?}");
        assert_eq!(bob.sync().iter().filter(|f| f["type"] == "error").count(), 0);
    }

    /// Blank lines are ignored, CRLF is accepted, several requests may come
    /// in one write and one request may arrive in pieces.
    fn framing(tls) {
        let server = Server::with_tls(tls);
        let mut client = server.connect("client");
        client.send_raw(b"\n\n   \r\n{\"type\":\"ping\",\"id\":1}\r\n");
        assert_eq!(client.recv(), json!({"type": "pong", "id": 1}));
        client.send_raw(b"{\"type\":\"ping\",\"id\":2}\n{\"type\":\"ping\",\"id\":3}\n");
        assert_eq!(client.recv(), json!({"type": "pong", "id": 2}));
        assert_eq!(client.recv(), json!({"type": "pong", "id": 3}));
        for piece in [&b"{\"type\":\"pi"[..], b"ng\",\"id\"", b":4}", b"\n"] {
            client.send_raw(piece);
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(client.recv(), json!({"type": "pong", "id": 4}));
        client.expect_nothing_more();
    }

    /// A line over --max-frame is answered with `too_large` and the
    /// connection is closed, whether or not it ends in a newline; a line of
    /// exactly the limit is fine. Others are unaffected, and a logged-in
    /// victim is reported as left.
    fn too_large(tls) {
        let server = Options::with_tls(tls).flag("--max-frame", 1024).start();
        let mut bystander = server.login("bystander");

        // Exactly 1024 bytes, not counting the newline, is accepted.
        let mut exact = server.connect("exact");
        let head = "{\"type\":\"ping\",\"id\":1,\"pad\":\"";
        let pad = "x".repeat(1024 - head.len() - 2);
        let frame = format!("{head}{pad}\"}}");
        assert_eq!(frame.len(), 1024);
        exact.send_raw(&line(frame.as_bytes()));
        assert_eq!(exact.recv(), json!({"type": "pong", "id": 1}));

        // What is sent, whether to log in first, and whether the close must
        // be clean: a client still writing when the server closes may see
        // a reset instead of an EOF.
        let cases: &[(&str, Vec<u8>, bool, bool)] = &[
            ("1025 bytes and a newline", line(&[b'x'; 1025]), false, true),
            ("1025 bytes, no newline", vec![b'y'; 1025], false, true),
            ("a padded ping of 1025 bytes", line(format!("{head}{pad}x\"}}").as_bytes()), true, true),
            // Over TLS the server may see the first records and close while
            // the rest is still being written.
            ("64 KiB, logged in", line(&[b'z'; 64 * 1024]), true, !tls),
            ("4 MiB", line(&[b'w'; 4 << 20]), false, false),
        ];
        for (i, (why, bytes, log_in, clean)) in cases.iter().enumerate() {
            let nick = format!("big{i}");
            let mut client = server.connect(&nick);
            if *log_in {
                client.login_announced(&nick);
                assert_eq!(bystander.recv(), json!({"type": "presence", "joined": [nick]}), "{why}");
            }
            if client.try_send_raw(bytes).is_err() && *clean {
                client.fail(&format!("{why}: the server closed before reading it all"));
            }
            let error = client.recv();
            assert_eq!(error["type"], "error", "{why}: {error}");
            assert_eq!(error["code"], "too_large", "{why}: {error}");
            assert_eq!(error.get("id"), None, "{why}: {error}");
            match client.expect_closed_within(Duration::from_secs(5)) {
                Next::Eof => {}
                Next::Broken(_) if !clean => {}
                other => client.fail(&format!("{why}: expected a clean close, got {other:?}")),
            }
            if *log_in {
                assert_eq!(
                    bystander.recv(),
                    json!({"type": "presence", "left": [{"nick": nick, "reason": "frame too large"}]}),
                    "{why}"
                );
            }
        }
        exact.ping();
        bystander.say("still here");
        bystander.expect_type("message");
        bystander.expect_nothing_more();
    }
}
