//! The login throttle across the nodes of a cluster: wrong passwords
//! spread over n1, n2 and n3 reach the limit (3 per account and address
//! by default) for the cluster, so the next login on any node — even with
//! the right password — is refused `too_many_attempts` before its password
//! is checked; another account from the same address is not held up, and
//! after the window the right password gets in. A node counts its own
//! failures once, and one restarted after a SIGKILL still counts the
//! failures of its previous run. Without PostgreSQL these skip; under
//! `CI=true` they fail.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{self, postgres, Options, Server};

/// The failure window of the test that waits it out (s): long enough for
/// the steps before it runs out, short enough to wait for.
const WINDOW: u64 = 5;

/// The window of the test that does not wait (s): room for a restart.
const LONG_WINDOW: u64 = 30;

/// More than a doorbell and the listener's read take (a few ms here).
const SPREAD: Duration = Duration::from_millis(500);

/// A node with the server's default login throttle (3 failures per
/// account and address) over `window` seconds.
fn node(url: &str, id: &str, data: &Path, window: u64) -> Server {
    Options::plain()
        .default_logins()
        .data_dir(data)
        .flag("--cluster", url)
        .flag("--node-id", id)
        .flag("--login-failure-window", window)
        .start()
}

/// Logs in to an existing account only (`register: false`), with the
/// right password, until the node knows the account (made elsewhere a
/// moment ago); then leaves.
fn knows(node: &Server, nick: &str) {
    let started = Instant::now();
    loop {
        let mut client = node.connect(nick);
        let id = client.id();
        client.send(json!({"type": "login", "id": id, "nick": nick,
                           "password": support::password_of(nick), "register": false}));
        let reply = client.expect_reply(id);
        if reply["type"] == "welcome" {
            client.bye();
            return;
        }
        assert_eq!(reply["code"], "no_such_user", "{reply}");
        assert!(started.elapsed() < Duration::from_secs(3), "never known");
        thread::sleep(Duration::from_millis(50));
    }
}

/// A wrong password for `nick` on `node`: it must be checked and wrong.
fn guess(node: &Server, nick: &str, password: &str) {
    let reply = node.connect("guesser").try_login_with(nick, password);
    assert_eq!(reply["code"], "bad_password", "{password:?}: {reply}");
}

/// The right password for `nick` on `node`, refused by the throttle;
/// returns in how many seconds it says to try again.
fn throttled(node: &Server, nick: &str) -> u64 {
    let reply: Value = node.connect(nick).try_login(nick);
    assert_eq!(reply["code"], "too_many_attempts", "{reply}");
    let reason = reply["reason"].as_str().unwrap();
    reason
        .split("try again in ")
        .nth(1)
        .and_then(|s| s.trim_end_matches(" s").parse().ok())
        .unwrap_or_else(|| panic!("no retry time in {reason:?}"))
}

#[test]
fn wrong_passwords_on_three_nodes_reach_one_limit() {
    let Some(pg) = postgres::shared() else { return };
    let url = pg.database();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = [
        node(&url, "n1", dirs[0].path(), WINDOW),
        node(&url, "n2", dirs[1].path(), WINDOW),
        node(&url, "n3", dirs[2].path(), WINDOW),
    ];
    nodes[0].connect("alice").login("alice");
    knows(&nodes[1], "alice");
    knows(&nodes[2], "alice");

    // One wrong password on each node: each is checked (none reaches
    // the limit where it is given).
    let mut first = None;
    for (node, password) in nodes.iter().zip(["one", "two", "three"]) {
        guess(node, "alice", password);
        // The failure was counted before its answer was sent.
        first.get_or_insert_with(Instant::now);
        thread::sleep(SPREAD);
    }
    // Each node refuses the right password now: with 1 failure of its
    // own in memory, only the other nodes' make the 3.
    for node in &nodes {
        let secs = throttled(node, "alice");
        assert!((1..=WINDOW).contains(&secs), "{secs} s");
    }
    // Bob, from the same address, is not held up: he is no target.
    nodes[1].connect("bob").login("bob");

    // The first failure leaves the window: the right password gets in
    // (on the node that never saw a failure before its last one).
    let after = Duration::from_secs(WINDOW) + Duration::from_millis(200);
    thread::sleep(after.saturating_sub(first.unwrap().elapsed()));
    let welcome = nodes[2].connect("alice").try_login("alice");
    assert_eq!(welcome["type"], "welcome", "{welcome}");
}

#[test]
fn a_node_counts_its_own_failures_once_and_after_a_restart() {
    let Some(pg) = postgres::shared() else { return };
    let url = pg.database();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let n1 = node(&url, "n1", d1.path(), LONG_WINDOW);
    let n2 = node(&url, "n2", d2.path(), LONG_WINDOW);
    n1.connect("carol").login("carol");
    knows(&n2, "carol");

    guess(&n1, "carol", "one");
    thread::sleep(SPREAD);
    guess(&n2, "carol", "two");
    thread::sleep(SPREAD);
    // n1 heard of its own failure through the table too: counted twice,
    // this would be refused.
    guess(&n1, "carol", "three");
    thread::sleep(SPREAD);
    throttled(&n2, "carol");

    // n1 starts again, its memory gone: the table still has the three.
    n1.kill();
    let n1 = node(&url, "n1", d1.path(), LONG_WINDOW);
    let started = Instant::now();
    throttled(&n1, "carol");
    eprintln!(
        "cluster throttle: the restarted n1 refused carol {:?} after its start",
        started.elapsed()
    );
}
