//! One node on PostgreSQL (`--cluster`, `--node-id`), keeping every promise
//! it keeps on SQLite: users chat in public, in private and in a group, an
//! offline one gets the backlog at login, and through the server's SIGKILL
//! and a restart of PostgreSQL itself every acknowledged message arrives
//! exactly once, in order. A second process under the same node id is
//! refused. (Several nodes: `cluster.rs`.) The clients behave as the protocol asks of a real one (like
//! `kill9.rs`'s, whose `Link` they log in with): an outbox resent with its
//! `cid`, `last_seq`/`last_public` at login, `more` for the next page of a
//! backlog, `received`, and `store_failed` answered by sending again.
//! (PostgreSQL: `support::postgres`; without it these tests skip, under
//! `CI=true` they fail.)

use std::collections::{BTreeMap, HashMap};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::Digest as _;

use crate::kill9::{Address, Link};
use crate::support::cluster::{Reader, Source, Stream, Writer};
use crate::support::postgres::{self, Postgres};
use crate::support::{self, Options, Server};

/// A server on `url` as node `node`, its other files in `data`.
pub(crate) fn node(url: &str, node: &str, data: &std::path::Path) -> Server {
    Options::plain()
        .unthrottled()
        .data_dir(data)
        .flag("--cluster", url)
        .flag("--node-id", node)
        .start()
}

/// What a reader saw: texts in the order shown, and how many frames it
/// ignored because their `seq` had been shown already.
#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) shown: Vec<String>,
    pub(crate) filtered: u64,
    pub(crate) reconnects: u32,
}

/// Reads its stream and the public stream until it has shown `expected`
/// messages (and half a second more) or `stop`, reconnecting with
/// `last_seq`/`last_public`, asking for `more` while a backlog has pages
/// left, acknowledging with `received`.
pub(crate) fn reader(
    address: Address,
    nick: &str,
    expected: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> Seen {
    let mut seen = Seen::default();
    let (mut last_seq, mut last_public): (Option<u64>, Option<u64>) = (None, Some(0));
    let mut complete_at: Option<Instant> = None;
    let done = |complete_at: &Option<Instant>| {
        stop.load(Ordering::SeqCst)
            || complete_at.is_some_and(|t| t.elapsed() > Duration::from_millis(500))
    };
    while !done(&complete_at) {
        let Ok((mut link, welcome)) = Link::open(&address, nick, last_seq, last_public) else {
            thread::sleep(Duration::from_millis(50));
            continue;
        };
        seen.reconnects += 1;
        let result: Result<(), String> = (|| {
            if welcome["replay_left"].as_u64().unwrap_or(0) > 0 {
                link.send(&json!({"type": "more", "id": 1}))?;
            }
            while !done(&complete_at) {
                if complete_at.is_none() && seen.shown.len() >= expected.load(Ordering::SeqCst) {
                    complete_at = Some(Instant::now());
                }
                let Some(frame) = link.recv()? else { continue };
                if frame["type"] == "replay" && frame["left"].as_u64().unwrap_or(0) > 0 {
                    link.send(&json!({"type": "more", "id": 1}))?;
                }
                if frame["type"] != "message" {
                    continue;
                }
                let seq = frame["seq"].as_u64().expect("a message has a seq");
                let public = frame["receiver"] == "*";
                let last = if public {
                    &mut last_public
                } else {
                    &mut last_seq
                };
                if last.is_some_and(|l| seq <= l) {
                    seen.filtered += 1;
                    continue;
                }
                *last = Some(seq);
                seen.shown.push(frame["text"].as_str().unwrap().to_string());
                if !public {
                    link.send(&json!({"type": "received", "seq": seq}))?;
                }
            }
            Ok(())
        })();
        let _ = result;
    }
    seen
}

/// Every acknowledged text shown exactly once: (delivered, duplicated,
/// missing).
pub(crate) fn tally<'a>(
    acked: impl Iterator<Item = &'a String>,
    seen: &Seen,
) -> (usize, usize, Vec<String>) {
    let mut shown: BTreeMap<&str, usize> = BTreeMap::new();
    for text in &seen.shown {
        *shown.entry(text.as_str()).or_default() += 1;
    }
    let duplicated = shown.values().filter(|&&n| n > 1).count();
    let (mut delivered, mut missing) = (0, Vec::new());
    for text in acked {
        if shown.contains_key(text.as_str()) {
            delivered += 1;
        } else {
            missing.push(text.clone());
        }
    }
    (delivered, duplicated, missing)
}

/// `nick`'s texts in the order `seen` showed them.
pub(crate) fn shown_from<'a>(seen: &'a Seen, nick: &str) -> Vec<&'a String> {
    let prefix = format!("{nick} ");
    seen.shown
        .iter()
        .filter(|t| t.starts_with(&prefix))
        .collect()
}

/// bob reading at `address` what `senders` (nick, to, kind) send there.
fn bob_reads(
    address: &Address,
    senders: &[(&'static str, Option<&'static str>, &'static str)],
) -> Stream {
    let reader = Reader {
        nick: "bob",
        address: address.clone(),
        hears: senders
            .iter()
            .map(|&(nick, _, kind)| Source { nick, kind })
            .collect(),
    };
    let writers = senders
        .iter()
        .map(|&(nick, to, _)| Writer {
            nick,
            address: address.clone(),
            to,
        })
        .collect();
    Stream::start(vec![reader], writers)
}

#[test]
fn chat_on_postgres_survives_sigkill_exactly_once_in_order() {
    let Some(pg) = postgres::shared() else { return };
    // Needs a few hundred messages acknowledged in some 3 s: alone.
    let _serial = support::serial();
    let url = pg.database();
    let data = tempfile::tempdir().unwrap();
    let start = || node(&url, "n1", data.path());
    let mut server = start();
    let address: Address = Arc::new(Mutex::new(Some(server.addr)));
    for nick in ["bob", "alice", "carol", "dave", "erin"] {
        Link::open(&address, nick, None, None).unwrap();
    }
    {
        let mut alice = server.connect("alice");
        alice.login("alice");
        let group = alice.ask(json!({"type": "group_create", "name": "study",
                                     "members": ["bob", "carol"]}));
        assert_eq!(group["type"], "group", "{group}");
        // Erin is offline: these wait for her in her stream.
        for i in 0..3 {
            let id = alice.send_with_cid(Some("erin"), &format!("for erin {i}"), &format!("e{i}"));
            let ack = alice.expect_reply(id);
            assert_eq!(ack, json!({"type": "ack", "id": id, "offline": true}));
        }
    }

    let stream = bob_reads(
        &address,
        &[
            ("alice", Some("bob"), "private"),
            ("carol", Some("#study"), "group"),
            ("dave", None, "public"),
        ],
    );

    const KILLS: usize = 2;
    for _ in 0..KILLS {
        thread::sleep(Duration::from_millis(1000));
        *address.lock().unwrap() = None;
        server.kill();
        thread::sleep(Duration::from_millis(100));
        // The same node id starts again at once: its lease is its own.
        server = start();
        *address.lock().unwrap() = Some(server.addr);
    }
    thread::sleep(Duration::from_millis(700));
    let streamed = stream.finish();
    let (sent, seen) = (&streamed.sent, streamed.seen("bob"));
    let acked_total = streamed.acked_for("bob");

    let (delivered, duplicated, missing) = tally(sent.iter().flat_map(|(_, s)| &s.acked), seen);
    for (nick, s) in sent {
        let order = shown_from(seen, nick);
        let numbers: Vec<usize> = order
            .iter()
            .map(|t| t[nick.len() + 1..].parse().unwrap())
            .collect();
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "{nick}'s messages out of order at bob: {numbers:?}"
        );
        assert_eq!(
            order,
            s.acked.iter().collect::<Vec<_>>(),
            "{nick}: shown against acked"
        );
    }
    eprintln!(
        "postgres, kill -9 x{KILLS}: acknowledged {acked_total} / delivered {delivered} / \
         duplicated {duplicated} / missing {} (resends ignored by seq: {}; reconnects: bob {}, \
         senders {:?})",
        missing.len(),
        seen.filtered,
        seen.reconnects,
        sent.iter()
            .map(|(n, s)| (*n, s.reconnects))
            .collect::<Vec<_>>()
    );
    assert!(
        acked_total > 100,
        "too few messages to prove anything: {acked_total}"
    );
    assert!(
        missing.is_empty(),
        "acknowledged but never delivered: {missing:?}"
    );
    assert_eq!(duplicated, 0, "a message shown twice");
    assert!(
        sent.iter().all(|(_, s)| s.reconnects as usize > KILLS / 2),
        "the kills did not interrupt the senders"
    );

    // Erin logs in at last: her backlog, in order, from the first seq.
    let (mut erin, welcome) = Link::open(&address, "erin", None, None).unwrap();
    assert_eq!(welcome["type"], "welcome");
    let mut backlog = Vec::new();
    let deadline = Instant::now() + support::TIMEOUT;
    while backlog.len() < 3 && Instant::now() < deadline {
        if let Some(frame) = erin.recv().unwrap() {
            if frame["type"] == "message" {
                backlog.push((
                    frame["seq"].as_u64().unwrap(),
                    frame["text"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    assert_eq!(
        backlog,
        (0..3)
            .map(|i| (i + 1, format!("for erin {i}")))
            .collect::<Vec<_>>(),
        "erin's backlog"
    );
}

#[test]
fn a_second_process_under_the_same_node_id_is_refused() {
    let Some(pg) = postgres::shared() else { return };
    let url = pg.database();
    let data = tempfile::tempdir().unwrap();
    let _first = node(&url, "n1", data.path());
    let other = tempfile::tempdir().unwrap();
    let mut second = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--no-tls",
            "--node-id",
            "n1",
            "--cluster",
            &url,
        ])
        .arg("--data-dir")
        .arg(other.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while second.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = second.kill();
            panic!("a second n1 started beside the first");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let out = second.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("node n1 is running already (another process holds its id)"),
        "{stderr}"
    );
}

/// What the store-failure-aware sender ended with.
pub(crate) struct Acked {
    /// Texts in the order their acks came.
    pub(crate) acked: Vec<String>,
    /// When each ack came.
    pub(crate) times: Vec<Instant>,
    pub(crate) store_failed: u32,
    pub(crate) reconnects: u32,
}

/// Sends messages (to `to`, or public) with at most 16 unacknowledged
/// until `enough`, resending the unacknowledged ones after each reconnect,
/// and returns once every message it sent is acknowledged. A `store_failed`
/// answer is a message to send again: once what is in flight is answered
/// (so that acks keep the order the messages were stored in), the failed
/// ones go again, in order. It reads nothing of its own stream (it logs in
/// after its end), so its own group messages never make it a backlog.
pub(crate) fn sender(
    address: Address,
    nick: &str,
    to: Option<&str>,
    enough: Arc<AtomicBool>,
) -> Acked {
    let mut out = Acked {
        acked: Vec::new(),
        times: Vec::new(),
        store_failed: 0,
        reconnects: 0,
    };
    let (mut texts, mut acked): (Vec<String>, Vec<bool>) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = |out: &Acked, texts: &Vec<String>| {
        enough.load(Ordering::SeqCst) && out.acked.len() == texts.len()
    };
    while !done(&out, &texts) {
        assert!(Instant::now() < deadline, "{nick}: not done after 120 s");
        let Ok((mut link, _)) = Link::open(&address, nick, Some(u64::MAX), None) else {
            thread::sleep(Duration::from_millis(50));
            continue;
        };
        out.reconnects += 1;
        let mut in_flight: HashMap<u64, usize> = HashMap::new();
        let mut retry: Vec<usize> = Vec::new();
        let mut todo: Vec<usize> = (0..texts.len()).filter(|&i| !acked[i]).rev().collect();
        let mut id = 0;
        let result: Result<(), String> = (|| loop {
            if in_flight.is_empty() && !retry.is_empty() {
                thread::sleep(Duration::from_millis(100));
                retry.sort_unstable();
                todo.extend(retry.drain(..).rev());
            }
            while in_flight.len() < 16 && retry.is_empty() {
                let i = match todo.pop() {
                    Some(i) => i,
                    None if !enough.load(Ordering::SeqCst) => {
                        texts.push(format!("{nick} {}", texts.len()));
                        acked.push(false);
                        texts.len() - 1
                    }
                    None => break,
                };
                id += 1;
                let mut frame =
                    json!({"type": "message", "id": id, "text": texts[i], "cid": format!("c{i}")});
                if let Some(to) = to {
                    frame["receiver"] = json!(to);
                }
                link.send(&frame)?;
                in_flight.insert(id, i);
            }
            if in_flight.is_empty() && retry.is_empty() {
                return Ok(());
            }
            let Some(frame): Option<Value> = link.recv()? else {
                continue;
            };
            let Some(i) = frame["id"].as_u64().and_then(|id| in_flight.remove(&id)) else {
                continue;
            };
            match frame["type"].as_str() {
                Some("ack") if !acked[i] => {
                    acked[i] = true;
                    out.acked.push(texts[i].clone());
                    out.times.push(Instant::now());
                }
                Some("ack") => {}
                Some("error") if frame["code"] == "store_failed" => {
                    out.store_failed += 1;
                    retry.push(i);
                }
                _ => panic!("{nick}: {frame}"),
            }
        })();
        let _ = result;
    }
    out
}

#[test]
fn acknowledgements_stop_while_postgres_is_down_and_resume_after() {
    // A server of this test's own: it is stopped and started again.
    let Some(pg) = Postgres::start() else { return };
    let _serial = support::serial();
    let url = pg.database();
    let data = tempfile::tempdir().unwrap();
    let server = node(&url, "n1", data.path());
    let address: Address = Arc::new(Mutex::new(Some(server.addr)));
    for nick in ["bob", "alice", "dave"] {
        Link::open(&address, nick, None, None).unwrap();
    }
    let stream = bob_reads(
        &address,
        &[("alice", Some("bob"), "private"), ("dave", None, "public")],
    );
    thread::sleep(Duration::from_millis(800));
    pg.down();
    let down_at = Instant::now();
    thread::sleep(Duration::from_millis(1500));
    // Acks may come as soon as it accepts again, before `up` has seen it.
    let up_at = Instant::now();
    pg.up();
    thread::sleep(Duration::from_millis(1200));
    let streamed = stream.finish();
    let (sent, seen) = (&streamed.sent, streamed.seen("bob"));
    let acked_total = streamed.acked_for("bob");

    let (delivered, duplicated, missing) = tally(sent.iter().flat_map(|(_, s)| &s.acked), seen);
    let while_down: usize = sent
        .iter()
        .flat_map(|(_, s)| &s.times)
        // An ack read a little late (a busy machine) was sent before.
        .filter(|&&t| t > down_at + Duration::from_millis(500) && t < up_at)
        .count();
    let after: usize = sent
        .iter()
        .flat_map(|(_, s)| &s.times)
        .filter(|&&t| t > up_at)
        .count();
    let store_failed: u32 = sent.iter().map(|(_, s)| s.store_failed).sum();
    eprintln!(
        "postgres restarted: acknowledged {acked_total} / delivered {delivered} / duplicated \
         {duplicated} / missing {}; acks while down {while_down}, after {after}; store_failed \
         {store_failed}",
        missing.len()
    );
    // Either way acks stop: batches fail (`store_failed`), or one whose
    // COMMIT lost its answer waits for the database to say what became of it.
    assert_eq!(while_down, 0, "acknowledged while the database was down");
    assert!(after > 20, "acknowledgements did not resume: {after}");
    assert!(
        missing.is_empty(),
        "acknowledged but never delivered: {missing:?}"
    );
    assert_eq!(duplicated, 0, "a message shown twice");
    for (nick, s) in sent {
        let order: Vec<&String> = shown_from(seen, nick);
        let acked: Vec<&String> = s.acked.iter().collect();
        assert_eq!(
            order, acked,
            "{nick}'s messages at bob, against the order of the acks"
        );
    }
    drop(server);
}

/// Files go to `--spool-dir` (the next step shares it between nodes), not
/// to the data directory; their rows to PostgreSQL.
#[test]
fn files_of_a_node_go_to_its_spool_dir() {
    let Some(pg) = postgres::shared() else { return };
    let url = pg.database();
    let (data, spool) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = Options::plain()
        .data_dir(data.path())
        .flag("--cluster", &url)
        .flag("--node-id", "n1")
        .flag("--spool-dir", spool.path().join("files").display())
        .start();
    let mut alice = server.login("alice");
    server.login("bob");
    let bytes = b"notes for the exam".to_vec();
    let sha256: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let answer = alice.ask(json!({"type": "offer", "to": "bob", "name": "notes.txt",
                                  "size": bytes.len(), "sha256": sha256}));
    assert_eq!(answer["type"], "upload", "{answer}");
    let file = answer["file"].as_u64().unwrap();
    alice.send_chunk(file, 0, &bytes);
    let ack = alice.expect("the file_ack", |f| {
        f["type"] == "file_ack" || f["type"] == "error"
    });
    assert_eq!(ack["complete"], true, "{ack}");
    let spooled: Vec<_> = std::fs::read_dir(spool.path().join("files"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.metadata().is_ok_and(|m| m.len() == bytes.len() as u64))
        .collect();
    assert_eq!(spooled.len(), 1, "the file in --spool-dir");
    assert!(
        !data.path().join("spool").exists(),
        "nothing in the data directory's spool"
    );
    let db = url.rsplit('/').next().unwrap();
    let rows: i64 = pg
        .client(db)
        .unwrap()
        .query_one("SELECT count(*) FROM files WHERE complete", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 1, "the offer's row in PostgreSQL");
}
