//! Away texts across the nodes of a cluster: alice's away text set on n1
//! is in the `online` answer bob asks of n2, and gone when she is back
//! or logs in again elsewhere. Without PostgreSQL these skip; under
//! `CI=true` they fail.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::postgres::node;
use crate::support::{self, postgres};

/// Asks `client`'s node who is online until `nick`'s away text is `want`
/// (3 s at most); returns how long that took.
fn away_becomes(client: &mut support::Client, nick: &str, want: Option<&str>) -> Duration {
    let started = Instant::now();
    let want = want.map_or(Value::Null, |t| json!(t));
    loop {
        let online = client.ask(json!({"type": "online"}));
        let away = online.get("away").and_then(|a| a.get(nick)).cloned();
        if away.unwrap_or(Value::Null) == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{nick}'s away text is not {want} in {online}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Alice on n1 goes away ("lunch"): bob on n2 sees it in `online`; back,
/// it is gone; away again and then logged in on n2, she starts "here"
/// as on one node, in carol's list on n1 too.
#[test]
fn an_away_text_set_on_one_node_is_seen_on_another() {
    let Some(pg) = postgres::shared() else { return };
    let url = pg.database();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (n1, n2) = (node(&url, "n1", d1.path()), node(&url, "n2", d2.path()));
    let mut alice = n1.login("alice");
    let mut carol = n1.login("carol");
    let mut bob = n2.login("bob");

    let id = alice.request(json!({"type": "away", "text": "lunch"}));
    alice.expect_ack(id);
    let took = away_becomes(&mut bob, "alice", Some("lunch"));
    eprintln!("cluster away: n2 shows alice's away text {took:?} after n1's ack");
    let online = bob.ask(json!({"type": "online"}));
    assert_eq!(
        online["users"],
        json!(["alice", "bob", "carol"]),
        "{online}"
    );
    assert_eq!(online["away"], json!({"alice": "lunch"}), "{online}");

    let id = alice.request(json!({"type": "away"}));
    alice.expect_ack(id);
    away_becomes(&mut bob, "alice", None);

    // Away again, then a login on n2 takes her session over: "here".
    let id = alice.request(json!({"type": "away", "text": "gone fishing"}));
    alice.expect_ack(id);
    away_becomes(&mut carol, "alice", Some("gone fishing"));
    away_becomes(&mut bob, "alice", Some("gone fishing"));
    let mut again = n2.connect("alice on n2");
    again.login("alice");
    alice.expect_within("taken_over", Duration::from_secs(3), |f| {
        f["type"] == "error" && f["code"] == "taken_over"
    });
    away_becomes(&mut bob, "alice", None);
    // n1 holds alice as n2's from the takeover on, before its replica
    // has her row: only after a reload (a second at most) does it say.
    thread::sleep(Duration::from_millis(1500));
    let online = carol.ask(json!({"type": "online"}));
    assert_eq!(
        online["users"],
        json!(["alice", "bob", "carol"]),
        "{online}"
    );
    assert_eq!(online.get("away"), None, "a new session is here: {online}");
    drop((n1, n2));
}
