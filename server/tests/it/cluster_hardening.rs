//! Bad input and the hardening defaults on a cluster node behave as on one
//! server: the same errors for malformed lines, an over-long line closes
//! the connection, a flooder is cut — and a user on another node sees
//! only what one server's users would (the departures, with their reason).
//! Without PostgreSQL these skip; under `CI=true` they fail.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::attack_flood::flood;
use crate::bad_input::send_malformed;
use crate::support::{postgres, Options, Server};

/// A node with the server's defaults (flood control on), a few limits
/// lowered so the test is quick.
fn hardened_node(url: &str, id: &str, data: &std::path::Path) -> Server {
    Options::plain()
        .data_dir(data)
        .flag("--cluster", url)
        .flag("--node-id", id)
        .flag("--max-frame", 1024)
        .flag("--max-text", 100)
        .flag("--flood-cut", 2)
        .start()
}

#[test]
fn bad_input_on_one_node_is_answered_there_and_others_see_only_departures() {
    let Some(pg) = postgres::shared() else { return };
    let url = pg.database();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let n1 = hardened_node(&url, "n1", d1.path());
    let n2 = hardened_node(&url, "n2", d2.path());
    let mut carol = n2.login("carol");

    // Before and after login: the table of bad_input.rs, code for code.
    let mut bob = n1.connect("bob");
    send_malformed(&mut bob);
    bob.login_announced("bob");
    assert_eq!(carol.expect_joined("bob").joined, vec!["bob".to_string()]);
    send_malformed(&mut bob);
    let id = bob.send_message(None, &"x".repeat(101));
    bob.expect_error(Some(id), "bad_text");
    let id = bob.send_message(Some("carol"), "");
    bob.expect_error(Some(id), "bad_text");
    // What was accepted crosses the nodes once; nothing else does.
    bob.say("only this");
    let message = carol.expect_type("message");
    assert_eq!(
        (message["sender"].as_str(), message["text"].as_str()),
        (Some("bob"), Some("only this"))
    );

    // An over-long line: `too_large`, closed; carol is told bob left, and why.
    bob.send_raw(&[b'x'; 2048]);
    bob.send_raw(b"\n");
    bob.expect_error(None, "too_large");
    bob.expect_eof();
    assert_eq!(carol.expect_left("bob"), "frame too large");

    // A flooder on n1: cut after --flood-cut seconds, as on one server;
    // carol on n2 learns it left and why.
    let started = Instant::now();
    let flooder = flood(&n1, 10_000);
    while flooder.error.lock().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "still flooding after 15 s"
        );
        thread::sleep(Duration::from_millis(50));
    }
    let error = flooder.error.lock().unwrap().clone().unwrap();
    assert_eq!(error["code"], "flooding", "{error}");
    flooder
        .stop
        .store(true, std::sync::atomic::Ordering::Relaxed);
    // Its arrival and the messages it was allowed reached carol too.
    let why = loop {
        let frame = carol.recv();
        if frame["type"] == "presence" && frame.get("left").is_some() {
            assert_eq!(frame["left"][0]["nick"], "flooder", "{frame}");
            break frame["left"][0]["reason"].clone();
        }
        let arrival = json!({"type": "presence", "joined": ["flooder"]});
        assert!(frame["type"] == "message" || frame == arrival, "{frame}");
    };
    assert_eq!(why, json!("flooding"));
    // And carol's node is untouched.
    carol.ping();
}
