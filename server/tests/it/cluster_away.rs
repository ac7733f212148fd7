//! Away texts, `delivered` notices and `/stats` across the nodes of a
//! cluster: alice's away text set on n1 is in the `online` answer bob
//! asks of n2, and gone when she is back or logs in again elsewhere; bob's
//! `received` on n2 tells alice on n1 `delivered`, once, as it does when
//! both are on one node; `/stats` on n1 counts each live node's users
//! and `/list` names each user's node. Without PostgreSQL these skip;
//! under `CI=true` they fail.

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

/// `sender` sends `receiver` a private message with `cid`; `receiver`
/// shows it and says `received`; `sender` is told `delivered` exactly once
/// (nothing more in the next 1.5 s, a doorbell and a poll later).
fn delivered_once(
    sender: &mut support::Client,
    receiver: &mut support::Client,
    to: &str,
    cid: &str,
) {
    let id = sender.send_with_cid(Some(to), "did you get this?", cid);
    sender.expect_ack(id);
    let message = receiver.expect_within("the message", Duration::from_secs(3), |f| {
        f["type"] == "message" && f["text"] == "did you get this?"
    });
    let started = Instant::now();
    receiver.send(json!({"type": "received", "seq": message["seq"]}));
    let told = sender.expect_within("delivered", Duration::from_secs(3), |f| {
        f["type"] == "delivered"
    });
    eprintln!(
        "cluster delivered: {cid:?} told {:?} after received",
        started.elapsed()
    );
    assert_eq!(told, json!({"type": "delivered", "cid": cid, "to": to}));
    thread::sleep(Duration::from_millis(1500));
    let again: Vec<Value> = sender
        .sync()
        .into_iter()
        .filter(|f| f["type"] == "delivered")
        .collect();
    assert!(again.is_empty(), "told twice: {again:?}");
}

/// Alice on n1 writes to bob on n2 (a cid with the doorbell's own
/// separators in it): his `received` there reaches her as `delivered`,
/// once; and with both on n1 (n2 hearing the same doorbell), once too.
#[test]
fn delivered_reaches_the_sender_on_another_node_once() {
    let Some(pg) = postgres::shared() else { return };
    let url = pg.database();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (n1, n2) = (node(&url, "n1", d1.path()), node(&url, "n2", d2.path()));
    let mut alice = n1.login("alice");
    let mut bob = n2.login("bob");
    // Until n1 sees bob online, its ack would say offline.
    alice.expect_joined("bob");
    delivered_once(&mut alice, &mut bob, "bob", "a;1:%3B%:d:n1:2:x");
    delivered_once(&mut bob, &mut alice, "alice", "b-1");

    // Both on n1: n1 tells alice from its own store's answer, and its
    // listener ignores its own doorbell.
    bob.bye();
    let mut bob = n1.connect("bob on n1");
    bob.login("bob");
    delivered_once(&mut alice, &mut bob, "bob", "a-2");
    drop((n1, n2));
}

/// `node`'s `/stats` until its `nodes:` line is `want` (within `within`);
/// returns the whole output.
fn stats_say(node: &mut support::Server, want: &str, within: Duration) -> String {
    let started = Instant::now();
    loop {
        let stats = node.admin_output("/stats", |l| l.starts_with("uptime: "));
        let line = stats
            .lines()
            .find(|l| l.starts_with("nodes: "))
            .unwrap_or("");
        if line == want {
            return stats;
        }
        assert!(
            started.elapsed() < within,
            "no {want:?} after {within:?} in:\n{stats}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Alice and carol on n1, bob on n2, nobody on n3: n1's `/stats` lists
/// the three nodes with their users, n1 as here, and its `/list` names
/// each user's node. n3 SIGKILLed leaves the list once its lease is over.
#[test]
fn stats_and_list_show_each_nodes_users() {
    let Some(pg) = postgres::shared() else { return };
    let url = pg.database();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut n1 = node(&url, "n1", dirs[0].path());
    let n2 = node(&url, "n2", dirs[1].path());
    let n3 = node(&url, "n3", dirs[2].path());
    let _alice = n1.login("alice");
    let _carol = n1.login("carol");
    let _bob = n2.login("bob");

    let stats = stats_say(
        &mut n1,
        "nodes: n1 (here) 2 users, n2 1 user, n3 0 users",
        Duration::from_secs(3),
    );
    let lines: Vec<&str> = stats.lines().collect();
    assert_eq!(
        lines[0], "connections: 2 (3 logged in, 3 accounts)",
        "{stats}"
    );
    assert!(lines[1].starts_with("nodes: "), "{stats}");

    let list = n1.admin_output("/list", |l| l.ends_with(" online"));
    let rows: Vec<Vec<&str>> = list
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let nodes: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r.len() > 2)
        .map(|r| (r[0], *r.last().unwrap()))
        .collect();
    assert_eq!(
        nodes,
        [("alice", "here"), ("bob", "n2"), ("carol", "here")],
        "{list}"
    );
    assert!(list.ends_with("3 online"), "{list}");

    // n2 counts the same cluster from its side.
    let mut n2 = n2;
    stats_say(
        &mut n2,
        "nodes: n1 2 users, n2 (here) 1 user, n3 0 users",
        Duration::from_secs(3),
    );
    n3.kill();
    let started = Instant::now();
    stats_say(
        &mut n1,
        "nodes: n1 (here) 2 users, n2 1 user",
        Duration::from_secs(8),
    );
    eprintln!(
        "cluster stats: n3 gone from n1's /stats {:?} after its SIGKILL",
        started.elapsed()
    );
    drop((n1, n2));
}
