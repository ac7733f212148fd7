//! Several nodes on one PostgreSQL database (`--cluster`, each its own
//! `--node-id`): messages reach recipients on other nodes exactly once and
//! in order, through a node's SIGKILL and restart (its users reconnect to
//! another node with `last_seq`/`last_public` and resend their outbox); a
//! lost doorbell still delivers, by the poll; an account registered on one
//! node is reachable from another; presence covers every node (a dead
//! node's users leave within its lease) and a login on another node takes
//! the session over. The clients are `postgres.rs`'s (and
//! `kill9.rs`'s `Link`). Without PostgreSQL these skip; under `CI=true`
//! they fail.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use chat_common::protocol::REPLAY_PUBLIC;
use serde_json::json;

use crate::kill9::{Address, Link};
use crate::postgres::{node, shown_from, tally};
use crate::support::cluster::{study_stream, Reader, Source, Stream, Writer};
use crate::support::postgres;
use crate::support::{self, Options, Server};

/// Sends `text` from `link` to `to` until it is acknowledged, waiting out
/// `no_such_user` while the sender's node has not heard of the account
/// yet; returns how long that took.
fn send_acked(link: &mut Link, to: &str, text: &str) -> Duration {
    let started = Instant::now();
    for id in 1.. {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{to} never known"
        );
        link.send(&json!({"type": "message", "id": id, "receiver": to, "text": text, "cid": text}))
            .unwrap();
        loop {
            let Some(frame) = link.recv().unwrap() else {
                continue;
            };
            if frame["id"] != id {
                continue;
            }
            match frame["type"].as_str() {
                Some("ack") => return started.elapsed(),
                Some("error") if frame["code"] == "no_such_user" => break,
                _ => panic!("{frame}"),
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
    unreachable!()
}

/// The next message `link` is sent within `within`, and when it came.
fn next_message(link: &mut Link, within: Duration) -> Option<(serde_json::Value, Instant)> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(frame) = link.recv().unwrap() {
            if frame["type"] == "message" {
                return Some((frame, Instant::now()));
            }
        }
    }
    None
}

#[test]
fn an_account_registered_on_one_node_is_reached_from_another() {
    let Some(pg) = postgres::shared() else { return };
    let url = pg.database();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (n1, n2) = (node(&url, "n1", d1.path()), node(&url, "n2", d2.path()));
    let (a1, a2): (Address, Address) = (
        Arc::new(Mutex::new(Some(n1.addr))),
        Arc::new(Mutex::new(Some(n2.addr))),
    );
    let (mut alice, _) = Link::open(&a2, "alice", None, None).unwrap();
    // Bob registers on n1 now, and alice on n2 writes to him at once.
    let (mut bob, welcome) = Link::open(&a1, "bob", None, None).unwrap();
    assert_eq!(welcome["new_account"], true, "{welcome}");
    let waited = send_acked(&mut alice, "bob", "hello from n2");
    let (message, _) = next_message(&mut bob, Duration::from_secs(3)).expect("bob got it");
    assert_eq!(message["text"], "hello from n2");
    assert_eq!(message["sender"], "alice");
    assert_eq!(message["seq"], 1);
    // And back: n1 knew alice from the start.
    send_acked(&mut bob, "alice", "hello from n1");
    let (message, _) = next_message(&mut alice, Duration::from_secs(3)).expect("alice got it");
    assert_eq!(message["text"], "hello from n1");
    eprintln!("cluster: n2 knew of bob, registered on n1, after {waited:?}");
    drop((n1, n2));
}

#[test]
fn a_lost_doorbell_costs_latency_not_a_message() {
    let Some(pg) = postgres::shared() else { return };
    let url = pg.database();
    let db = url.rsplit('/').next().unwrap().to_string();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (n1, n2) = (node(&url, "n1", d1.path()), node(&url, "n2", d2.path()));
    let (a1, a2): (Address, Address) = (
        Arc::new(Mutex::new(Some(n1.addr))),
        Arc::new(Mutex::new(Some(n2.addr))),
    );
    Link::open(&a1, "bob", None, None).unwrap();
    let (mut alice, _) = Link::open(&a2, "alice", None, None).unwrap();
    let (mut bob, _) = Link::open(&a1, "bob", None, Some(0)).unwrap();
    send_acked(&mut alice, "bob", "rung");
    let (_, _) = next_message(&mut bob, Duration::from_secs(3)).expect("with the doorbell");
    // Cut n1's listener again and again: the doorbells rung meanwhile are
    // lost; what alice sends must still reach bob, in order, by the poll.
    let mut admin = pg.client(&db).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let cutter = {
        let (stop, mut admin) = (stop.clone(), pg.client(&db).unwrap());
        thread::spawn(move || {
            let mut cuts = 0;
            while !stop.load(Ordering::SeqCst) {
                cuts += admin
                    .execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                         WHERE application_name = 'chat-server n1 listener'
                           AND datname = current_database()",
                        &[],
                    )
                    .unwrap();
                thread::sleep(Duration::from_millis(20));
            }
            cuts
        })
    };
    // By now the listener waits up to seconds between its tries.
    thread::sleep(Duration::from_millis(1500));
    let mut latencies = Vec::new();
    for i in 0..5 {
        thread::sleep(Duration::from_millis(300));
        let sent = Instant::now();
        send_acked(&mut alice, "bob", &format!("deaf {i}"));
        let (message, at) = next_message(&mut bob, Duration::from_secs(3))
            .unwrap_or_else(|| panic!("deaf {i} never reached bob"));
        assert_eq!(message["text"], format!("deaf {i}"));
        assert_eq!(message["seq"], 2 + i);
        latencies.push(at - sent);
    }
    stop.store(true, Ordering::SeqCst);
    let cuts = cutter.join().unwrap();
    let listening: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'chat-server n1 listener'",
            &[],
        )
        .unwrap()
        .get(0);
    eprintln!("cluster: listener cut {cuts} times; delivered by the poll in {latencies:?}");
    assert!(cuts >= 2, "the listener was not cut: {cuts}");
    assert!(
        latencies.iter().all(|l| *l < Duration::from_millis(2500)),
        "{latencies:?}"
    );
    // Once left alone the listener connects again, and the doorbell works.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut listening = listening;
    while listening == 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
        listening = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE application_name = 'chat-server n1 listener'",
                &[],
            )
            .unwrap()
            .get(0);
    }
    assert_eq!(listening, 1, "the listener did not come back");
    drop((n1, n2));
}

/// Three nodes; users spread over them send private, group and public
/// messages to users on other nodes while n2, then n3, are SIGKILLed and
/// restarted; their users reconnect to another node.
#[test]
fn messages_cross_nodes_exactly_once_in_order_through_sigkills() {
    let Some(pg) = postgres::shared() else { return };
    // A few hundred messages in some seconds: alone.
    let _serial = support::serial();
    let url = pg.database();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let start = |i: usize| node(&url, &format!("n{}", i + 1), dirs[i].path());
    let mut nodes: Vec<Option<Server>> = (0..3).map(|i| Some(start(i))).collect();
    // Each user's address: the node it is on.
    let homes: Vec<Address> = nodes
        .iter()
        .map(|n| Arc::new(Mutex::new(n.as_ref().map(|n| n.addr))))
        .collect();
    // bob reads on n1, frank on n2; alice (n2) writes to bob, carol (n3)
    // to #study (bob, carol, frank), dave (n2) to everyone.
    let placed = [
        ("bob", 0),
        ("frank", 1),
        ("alice", 1),
        ("carol", 2),
        ("dave", 1),
    ];
    let stream = study_stream(|nick| {
        let (_, home) = placed.iter().find(|(n, _)| *n == nick).unwrap();
        homes[*home].clone()
    });

    // Kill n2, then n3: their users move to n1 (the next node), and the
    // node starts again under its id.
    let first = nodes[0].as_ref().unwrap().addr;
    for victim in [1, 2] {
        thread::sleep(Duration::from_millis(1200));
        *homes[victim].lock().unwrap() = Some(first);
        nodes[victim].take().unwrap().kill();
        // At once under the same id: the killed process's lock on it goes
        // with its connection.
        nodes[victim] = Some(start(victim));
    }
    thread::sleep(Duration::from_millis(1200));
    let streamed = stream.finish();
    let failures = streamed.verdict("cluster, 3 nodes, kill -9 of n2 and n3");
    eprintln!("senders: {:?}", streamed.senders());
    let (sent, bob_total) = (&streamed.sent, streamed.acked_for("bob"));
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(
        bob_total > 100,
        "too few messages to prove anything: {bob_total}"
    );
    assert!(
        sent.iter().all(|(_, s)| s.reconnects >= 2),
        "the kills did not interrupt the senders"
    );
    assert!(
        streamed.seen("frank").reconnects >= 2,
        "frank was never moved"
    );
}

/// Two people register the same nickname on two nodes at the same moment:
/// one account is stored, and afterwards exactly one of the two passwords
/// logs in, on either node (the other node's session, if it was welcomed,
/// is closed with `nick_taken` once the stored account is heard of).
#[test]
fn one_nickname_registered_on_two_nodes_at_once_is_one_account() {
    let Some(pg) = postgres::shared() else { return };
    let url = pg.database();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let nodes = [node(&url, "n1", d1.path()), node(&url, "n2", d2.path())];
    let mut closed = 0;
    for round in 0..4 {
        let nick = format!("zed{round}");
        let clients: Vec<support::Client> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| n.connect(&format!("racer{i}")))
            .collect();
        let answers: Vec<(support::Client, serde_json::Value)> = thread::scope(|s| {
            let racers: Vec<_> = clients
                .into_iter()
                .enumerate()
                .map(|(i, mut c)| {
                    let nick = nick.clone();
                    s.spawn(move || {
                        let answer = c.try_login_with(&nick, &format!("password of racer {i}"));
                        (c, answer)
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        // A welcomed loser is told within a moment; the winner is not.
        let welcomed = answers
            .iter()
            .filter(|(_, a)| a["type"] == "welcome")
            .count();
        let closed_before = closed;
        for (mut c, answer) in answers {
            if answer["type"] != "welcome" {
                continue;
            }
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                match c.next_until(Instant::now() + Duration::from_millis(100)) {
                    support::Next::Frame(f) if f["code"] == "nick_taken" => {
                        closed += 1;
                        break;
                    }
                    support::Next::Eof | support::Next::Broken(_) => break,
                    _ => {}
                }
            }
        }
        assert_eq!(
            closed - closed_before,
            welcomed.saturating_sub(1),
            "{nick}: {welcomed} welcomed, {} closed",
            closed - closed_before
        );
        thread::sleep(Duration::from_millis(300));
        let mut works = Vec::new();
        for racer in 0..2 {
            for n in &nodes {
                let mut c = n.connect("check");
                let answer = c.try_login_with(&nick, &format!("password of racer {racer}"));
                works.push((racer, answer["type"] == "welcome"));
            }
        }
        let winners: Vec<usize> = (0..2)
            .filter(|&r| works.iter().filter(|(w, ok)| *w == r && *ok).count() == 2)
            .collect();
        let losers: Vec<usize> = (0..2)
            .filter(|&r| works.iter().all(|(w, ok)| *w != r || !*ok))
            .collect();
        assert_eq!(
            (winners.len(), losers.len()),
            (1, 1),
            "{nick}: one password on both nodes, the other on neither: {works:?}"
        );
    }
    eprintln!(
        "cluster: same nickname on two nodes at once, 4 rounds: {closed} welcomed losers closed"
    );
}

/// Messages a second each sender of the restart test may send: the
/// nodes' flood control slows a faster one (it never refuses). Through the
/// restart a node may fence itself (no lease renewed for 3 s: the database
/// away ~2 s, and a renewal a second at most), closing bob's connection for
/// a second or more while n2 goes on; bob's next login replays only the
/// newest [`REPLAY_PUBLIC`] public messages (the protocol's rule, not a
/// loss). Unpaced, dave sent 1,000 in under a second, and bob missed the
/// older ones (a reader behind by a second before the stop, too). At
/// this pace 1,000 take over 6 s, longer than a lease (5 s).
const RESTART_PACE: u32 = 150;
const _: () = assert!(RESTART_PACE * 6 <= REPLAY_PUBLIC);

/// A node of the restart test: its senders paced at [`RESTART_PACE`].
fn paced_node(url: &str, id: &str, data: &Path) -> Server {
    Options::plain()
        .data_dir(data)
        .flag("--cluster", url)
        .flag("--node-id", id)
        .flag("--flood-rate", RESTART_PACE)
        .flag("--flood-cut", 600)
        .start()
}

/// Two nodes through a restart of PostgreSQL itself: every listener and
/// store connection is cut; acks stop, then resume; what alice (n2)
/// and dave (n2, public) had acknowledged reaches bob (n1) once, in order,
/// whether or not a node fenced itself meanwhile (bob then logs in again).
#[test]
fn messages_cross_nodes_through_a_postgres_restart() {
    // A server of this test's own: it is stopped and started again.
    let Some(pg) = postgres::Postgres::start() else {
        return;
    };
    let _serial = support::serial();
    let url = pg.database();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (n1, n2) = (
        paced_node(&url, "n1", d1.path()),
        paced_node(&url, "n2", d2.path()),
    );
    let (a1, a2): (Address, Address) = (
        Arc::new(Mutex::new(Some(n1.addr))),
        Arc::new(Mutex::new(Some(n2.addr))),
    );
    Link::open(&a1, "bob", None, None).unwrap();
    for nick in ["alice", "dave"] {
        Link::open(&a2, nick, None, None).unwrap();
    }
    thread::sleep(Duration::from_millis(300));
    let (private, public) = (
        Source {
            nick: "alice",
            kind: "private",
        },
        Source {
            nick: "dave",
            kind: "public",
        },
    );
    let stream = Stream::start(
        vec![Reader {
            nick: "bob",
            address: a1.clone(),
            hears: vec![private, public],
        }],
        ["alice", "dave"]
            .into_iter()
            .zip([Some("bob"), None])
            .map(|(nick, to)| Writer {
                nick,
                address: a2.clone(),
                to,
            })
            .collect(),
    );
    thread::sleep(Duration::from_millis(800));
    pg.down();
    let down_at = Instant::now();
    thread::sleep(Duration::from_millis(1500));
    let up_at = Instant::now();
    pg.up();
    thread::sleep(Duration::from_millis(1500));
    let streamed = stream.finish();
    let (sent, seen) = (&streamed.sent, streamed.seen("bob"));
    let total = streamed.acked_for("bob");
    let acks_between = |from: Instant, to: Instant| {
        sent.iter()
            .flat_map(|(_, s)| &s.times)
            .filter(|&&t| t > from && t < to)
            .count()
    };
    let while_down = acks_between(down_at + Duration::from_millis(500), up_at);
    let after = acks_between(up_at, Instant::now());
    let (delivered, duplicated, missing) = tally(sent.iter().flat_map(|(_, s)| &s.acked), seen);
    let mut out_of_order = 0;
    for (nick, s) in sent {
        let order = shown_from(seen, nick);
        if order != s.acked.iter().collect::<Vec<_>>() {
            out_of_order += 1;
        }
    }
    let fenced: Vec<&str> = [("n1", &n1), ("n2", &n2)]
        .into_iter()
        .filter(|(_, n)| n.stderr().contains("fenced, closing"))
        .map(|(id, _)| id)
        .collect();
    eprintln!(
        "cluster, 2 nodes, postgres restarted: bob: acknowledged {total} / delivered {delivered} / \
         duplicated {duplicated} / out of order {out_of_order} / missing {}; acks while down \
         {while_down}, after {after}; store_failed {:?}; bob's connections {}; fenced {fenced:?}",
        missing.len(),
        sent.iter().map(|(n, s)| (*n, s.store_failed)).collect::<Vec<_>>(),
        seen.reconnects,
    );
    if !missing.is_empty() || duplicated > 0 || out_of_order > 0 {
        let at = |t: Instant| {
            let ms = |a: Instant| match t.checked_duration_since(a) {
                Some(d) => format!("+{}", d.as_millis()),
                None => format!("-{}", (a - t).as_millis()),
            };
            format!(
                "{} ms from the stop, {} ms from the start",
                ms(down_at),
                ms(up_at)
            )
        };
        let evidence = Evidence {
            pg: &pg,
            url: &url,
            streamed: &streamed,
            at: &at,
        };
        eprintln!("{}", evidence.tell(&missing, [&n1, &n2]));
    }
    assert!(
        missing.is_empty(),
        "acknowledged but never delivered: {missing:?}"
    );
    assert_eq!((duplicated, out_of_order), (0, 0));
    assert_eq!(while_down, 0, "acknowledged while the database was down");
    assert!(after > 20, "acknowledgements did not resume: {after}");
    drop((n1, n2));
}

/// What a failed restart test leaves to go on.
struct Evidence<'a> {
    pg: &'a postgres::Postgres,
    url: &'a str,
    streamed: &'a support::cluster::Streamed,
    /// When an instant was, from the stop and the start of PostgreSQL.
    at: &'a dyn Fn(Instant) -> String,
}

impl Evidence<'_> {
    /// The missing texts as runs of each sender's numbers; for the first
    /// and last of each run, when it was acknowledged, what the database
    /// holds of it and what bob showed of its sender around it; then the
    /// nodes' logs and PostgreSQL's.
    fn tell(&self, missing: &[String], nodes: [&Server; 2]) -> String {
        let seen = self.streamed.seen("bob");
        let mut out = format!(
            "--- evidence ---\nbob: shown {}, ignored by seq {}, connections {}\n",
            seen.shown.len(),
            seen.filtered,
            seen.reconnects
        );
        let db = self.url.rsplit('/').next().unwrap();
        let mut client = self.pg.client(db).map_err(|e| e.to_string());
        let mut numbered: Vec<(&str, usize)> = missing.iter().map(|t| split(t)).collect();
        numbered.sort_unstable();
        let mut runs: Vec<((&str, usize), usize)> = Vec::new();
        for (nick, n) in numbered {
            match runs.last_mut() {
                Some(((last, first), end)) if *last == nick && *first + *end == n => *end += 1,
                _ => runs.push(((nick, n), 1)),
            }
        }
        for ((nick, first), len) in runs {
            out += &format!("missing {nick} {first}..={} ({len})\n", first + len - 1);
            for n in [first, first + len - 1].into_iter().take(len.min(2)) {
                out += &self.one(&format!("{nick} {n}"), &mut client);
            }
        }
        for (i, node) in nodes.iter().enumerate() {
            let log = digest(&node.stderr());
            let tail = log[log.len().saturating_sub(60)..].join("\n");
            out += &format!(
                "--- n{} stderr (last 60 kinds of line) ---\n{tail}\n",
                i + 1
            );
        }
        let log = self.pg.log();
        let lines: Vec<&str> = log.lines().collect();
        out += &format!(
            "--- postgres log (last 30 lines) ---\n{}",
            lines[lines.len().saturating_sub(30)..].join("\n")
        );
        out
    }

    /// When `text` was acknowledged, its rows in the database, and what bob
    /// showed of its sender within 3 of it.
    fn one(&self, text: &str, client: &mut Result<::postgres::Client, String>) -> String {
        let acked = self.streamed.sent.iter().find_map(|(_, s)| {
            let i = s.acked.iter().position(|t| t == text)?;
            Some((i, s.times[i]))
        });
        let when = match acked {
            Some((i, t)) => format!("ack #{i}, {}", (self.at)(t)),
            None => "never acknowledged".into(),
        };
        let rows = client.as_mut().map_err(|e| e.clone()).and_then(|c| {
            let rows = c
                .query(
                    "SELECT m.id, m.pub_seq, i.user_id, i.seq FROM messages m \
                     LEFT JOIN inbox i ON i.message = m.id WHERE m.text = $1",
                    &[&text],
                )
                .map_err(|e| e.to_string())?;
            let row = |r: &::postgres::Row| {
                let (id, pub_seq): (i64, Option<i64>) = (r.get(0), r.get(1));
                let (user, seq): (Option<i64>, Option<i64>) = (r.get(2), r.get(3));
                format!("id {id}, pub_seq {pub_seq:?}, inbox {user:?} seq {seq:?}")
            };
            Ok(rows.iter().map(row).collect::<Vec<_>>())
        });
        let (nick, number) = split(text);
        let near: Vec<&String> = shown_from(self.streamed.seen("bob"), nick)
            .into_iter()
            .filter(|t| split(t).1.abs_diff(number) <= 3)
            .collect();
        format!("  {text:?}: {when}; in the database: {rows:?}; bob showed near it: {near:?}\n")
    }
}

/// A stream text's sender and number ("dave 12").
fn split(text: &str) -> (&str, usize) {
    let (nick, n) = text.split_once(' ').expect("a stream text");
    (nick, n.parse().expect("a stream text's number"))
}

/// `log`'s lines, a run of the same line after its timestamp as its first
/// and a count.
fn digest(log: &str) -> Vec<String> {
    let mut out: Vec<(String, &str, usize)> = Vec::new();
    for line in log.lines() {
        let rest = line.split_once(' ').map_or(line, |(_, rest)| rest);
        match out.last_mut() {
            Some((_, last, n)) if *last == rest => *n += 1,
            _ => out.push((line.to_string(), rest, 1)),
        }
    }
    out.into_iter()
        .map(|(line, _, n)| {
            if n > 1 {
                format!("{line} (×{n})")
            } else {
                line
            }
        })
        .collect()
}

/// Polls `client`'s `online` answer until it is `want` (the replica of
/// the other node's users follows its doorbell within a moment).
fn online_becomes(client: &mut support::Client, want: serde_json::Value) -> Duration {
    let started = Instant::now();
    loop {
        let online = client.ask(json!({"type": "online"}));
        if online["users"] == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "online is {}, not {want}",
            online["users"]
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Users on n1 and n2 see each other in `welcome`, `online`, presence
/// lines, and n1's console `/list` (with the node) and `/stats`.
#[test]
fn presence_covers_the_users_of_every_node() {
    let Some(pg) = postgres::shared() else { return };
    let url = pg.database();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut n1, n2) = (node(&url, "n1", d1.path()), node(&url, "n2", d2.path()));
    let mut ann = n1.login("ann");
    // n2 hears of ann's row by the doorbell (or, at worst, the 1 s poll).
    let mut probe = n2.login("probe");
    online_becomes(&mut probe, json!(["ann", "probe"]));
    drop(probe);
    ann.expect_left("probe");
    let mut bob = n2.connect("bob");
    let welcome = bob.login("bob");
    assert_eq!(welcome["online"], json!(["ann", "bob"]), "{welcome}");
    let joined_at = Instant::now();
    ann.expect_joined("bob");
    let presence_took = joined_at.elapsed();
    assert_eq!(
        ann.ask(json!({"type": "online"}))["users"],
        json!(["ann", "bob"])
    );
    assert_eq!(
        bob.ask(json!({"type": "online"}))["users"],
        json!(["ann", "bob"])
    );

    let list = n1.admin_output("/list", |l| l.ends_with(" online"));
    eprintln!("cluster: n1's /list:\n{list}");
    let bob_row = list
        .lines()
        .find(|l| l.starts_with("bob "))
        .unwrap_or_else(|| panic!("bob not in n1's /list:\n{list}"));
    assert!(bob_row.trim_end().ends_with(" n2"), "{bob_row}");
    let ann_row = list.lines().find(|l| l.starts_with("ann ")).unwrap();
    assert!(ann_row.trim_end().ends_with(" here"), "{ann_row}");
    assert!(list.ends_with("2 online"), "{list}");
    let stats = n1.admin_output("/stats", |l| l.starts_with("uptime:"));
    assert!(stats.contains("(2 logged in,"), "{stats}");
    // A message to bob is not "stored for an offline user": he is on n2.
    let id = ann.request(json!({"type": "message", "receiver": "bob", "text": "hi"}));
    let ack = ann.expect_reply(id);
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_ne!(ack["offline"], true, "{ack}");

    // Bob leaves n2: ann, on n1, is told.
    bob.send(json!({"type": "bye", "id": 99}));
    let reason = ann.expect_left("bob");
    eprintln!(
        "cluster: bob (n2) announced on n1 within {presence_took:?} of his welcome; \
         his departure said {reason:?}"
    );
    assert_eq!(reason, "quit", "as n2 says it");
    assert_eq!(ann.ask(json!({"type": "online"}))["users"], json!(["ann"]));
    drop((n1, n2));
}

/// n2 is SIGKILLed: its users leave n1's online list, with a presence
/// line, within its lease (5 s) and the reaper's second.
#[test]
fn a_dead_nodes_users_leave_the_online_list_within_the_lease() {
    let Some(pg) = postgres::shared() else { return };
    let url = pg.database();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut n1, n2) = (node(&url, "n1", d1.path()), node(&url, "n2", d2.path()));
    let mut ann = n1.login("ann");
    let _carl = n2.login("carl");
    ann.expect_joined("carl");
    let list = n1.admin_output("/list", |l| l.ends_with(" online"));
    assert!(list.contains("carl "), "{list}");
    let killed = Instant::now();
    n2.kill();
    let frame = ann.expect_within("carl gone", Duration::from_secs(9), |f| {
        f["type"] == "presence"
            && f["left"]
                .as_array()
                .is_some_and(|l| l.iter().any(|d| d["nick"] == "carl"))
    });
    let gone_after = killed.elapsed();
    let reason = frame["left"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["nick"] == "carl")
        .unwrap()["reason"]
        .clone();
    eprintln!("cluster: n2 killed; carl left n1's list after {gone_after:?} ({reason})");
    assert_eq!(reason, "connection lost");
    assert!(
        gone_after >= Duration::from_secs(3),
        "before the lease ran out?"
    );
    assert_eq!(ann.ask(json!({"type": "online"}))["users"], json!(["ann"]));
    let list = n1.admin_output("/list", |l| l.ends_with(" online"));
    assert!(!list.contains("carl"), "{list}");
    drop(n1);
}

/// The same account logs in on n1, then on n2: one session remains. The
/// n1 connection is told it was taken over, as on one node; a watcher
/// sees no presence change (dora never left), and one dora online.
#[test]
fn a_login_on_another_node_takes_the_session_over() {
    let Some(pg) = postgres::shared() else { return };
    let url = pg.database();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (n1, n2) = (node(&url, "n1", d1.path()), node(&url, "n2", d2.path()));
    let mut watcher = n1.login("watcher");
    let mut old = n1.login("dora");
    watcher.expect_joined("dora");
    // n2 knows of dora's row before she logs in there.
    let mut probe = n2.login("probe");
    online_becomes(&mut probe, json!(["dora", "probe", "watcher"]));
    drop(probe);
    // probe's visit may be too short for n1's replica to see it at all
    // (joined and left between two reloads: no line, as for a blink on one
    // node); either way it is over once n1's list is back and a presence
    // interval has passed.
    online_becomes(&mut watcher, json!(["dora", "watcher"]));
    thread::sleep(Duration::from_millis(1500));
    watcher.sync();
    old.sync();

    let mut new = n2.connect("new");
    let started = Instant::now();
    let welcome = new.login("dora");
    assert_eq!(welcome["online"], json!(["dora", "watcher"]), "{welcome}");
    let taken = old.expect_within("taken_over", Duration::from_secs(3), |f| {
        f["type"] == "error"
    });
    let told_after = started.elapsed();
    assert_eq!(taken["code"], "taken_over", "{taken}");
    assert_eq!(taken.get("id"), None, "{taken}");
    assert_eq!(taken.as_object().unwrap().len(), 3, "{taken}");
    old.expect_eof();
    eprintln!("cluster: dora's n1 session told of the takeover {told_after:?} after her login");
    // Nobody is told anything: dora never left.
    watcher.expect_silence(Duration::from_millis(2000));
    assert_eq!(
        watcher.ask(json!({"type": "online"}))["users"],
        json!(["dora", "watcher"])
    );
    // And again the other way: n2's session is taken over by n1.
    let mut back = n1.connect("back");
    back.login("dora");
    new.expect_within("taken_over", Duration::from_secs(3), |f| {
        f["type"] == "error" && f["code"] == "taken_over"
    });
    new.expect_eof();
    watcher.expect_silence(Duration::from_millis(1500));
    drop((n1, n2));
}
