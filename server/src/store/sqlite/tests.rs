//! The SQLite backend against the promises of the store boundary.

use super::*;
use crate::store::{Delivery, NewMessage, Origin, Page, To, UserId};
use search::INDEX_STEP;

/// The chat's `E` does not matter here.
type Op = crate::store::Op<()>;

/// What the chat computes for these ASCII names.
fn fold(nick: &str) -> String {
    nick.to_lowercase()
}

fn account(user: UserId, nick: &str) -> Op {
    Op::CreateAccount {
        user,
        nick: nick.into(),
        folded: fold(nick),
        key: fold(nick),
        hash: "h".into(),
        time: 0,
    }
}

/// Opens (or reopens) `dir`'s database.
fn open(dir: &Path, page_bytes: usize) -> (Sqlite, Startup) {
    Sqlite::open(dir, page_bytes, fold).unwrap()
}

fn origin() -> Origin {
    Origin { conn: 1, id: 1 }
}

fn db() -> (tempfile::TempDir, Sqlite) {
    db_paging(64 * 1024)
}

/// A database with alice (1) and bob (2), whose backlog pages hold
/// about `page_bytes` of text.
fn db_paging(page_bytes: usize) -> (tempfile::TempDir, Sqlite) {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(dir.path(), page_bytes).0;
    for (id, nick) in [(1, "alice"), (2, "bob")] {
        db.commit(vec![account(id, nick)]);
    }
    (dir, db)
}

fn send(db: &mut Sqlite, from: UserId, to: To, cid: Option<&str>, text: &str) -> Appended {
    let message = NewMessage {
        sender: from,
        cid: cid.map(str::to_string),
        to,
        text: text.into(),
        time: 7,
        away: false,
        fanout: Vec::new(),
    };
    match db
        .commit(vec![Op::Append {
            origin: origin(),
            message,
        }])
        .pop()
    {
        Some(Reply::Appended { outcome, .. }) => outcome,
        other => panic!("{other:?}"),
    }
}

fn page(
    db: &mut Sqlite,
    user: UserId,
    last_seq: Option<u64>,
    last_public: Option<u64>,
    first: bool,
) -> Page {
    match db
        .commit(vec![Op::Backlog {
            origin: origin(),
            user,
            last_seq,
            last_public,
            first,
        }])
        .pop()
    {
        Some(Reply::Backlog { result: Ok(p), .. }) => p,
        other => panic!("{other:?}"),
    }
}

fn backlog_of(
    db: &mut Sqlite,
    user: UserId,
    last_seq: Option<u64>,
    last_public: Option<u64>,
) -> Vec<(u64, String)> {
    let p = page(db, user, last_seq, last_public, true);
    assert_eq!(p.left, 0, "one page");
    p.messages.into_iter().map(|m| (m.seq, m.text)).collect()
}

#[test]
fn a_long_backlog_comes_in_pages_that_fit_the_send_queue() {
    let (_dir, mut db) = db_paging(8 * 1024);
    let text = "x".repeat(100);
    for i in 0..300 {
        let to = if i % 3 == 0 { To::Public } else { To::User(2) };
        send(&mut db, 1, to, None, &format!("{i:03}{text}"));
    }
    let mut seen = Vec::new();
    let mut p = page(&mut db, 2, None, Some(0), true);
    assert_eq!(p.public_head, 298, "the last public message's number");
    assert_eq!(
        p.left as usize + p.messages.len(),
        300,
        "everything, counted"
    );
    loop {
        let bytes: usize = p.messages.iter().map(|m| m.text.len()).sum();
        assert!(bytes <= 8 * 1024, "{bytes} bytes in a page");
        seen.extend(p.messages.iter().map(|m| m.text[..3].to_string()));
        if p.left == 0 {
            break;
        }
        p = page(&mut db, 2, Some(p.last_seq), p.last_public, false);
    }
    let expected: Vec<String> = (0..300).map(|i| format!("{i:03}")).collect();
    assert_eq!(seen, expected, "all of both streams, once, in order");
}

#[test]
fn streams_are_numbered_and_resends_dropped() {
    let (_dir, mut db) = db();
    assert_eq!(
        send(&mut db, 1, To::User(2), Some("a"), "one"),
        Appended::New { seq: 1 }
    );
    assert_eq!(
        send(&mut db, 1, To::User(2), Some("a"), "one again"),
        Appended::Duplicate
    );
    assert_eq!(
        send(&mut db, 1, To::User(2), Some("b"), "two"),
        Appended::New { seq: 2 }
    );
    // Another sender may use the same cid.
    assert_eq!(
        send(&mut db, 2, To::User(1), Some("a"), "hi"),
        Appended::New { seq: 1 }
    );
    let Appended::New { seq: public } = send(&mut db, 1, To::Public, None, "all") else {
        panic!()
    };
    assert_eq!(public, 4, "the public seq is the message's number");
    assert!(
        matches!(
            send(&mut db, 1, To::Public, None, "all"),
            Appended::New { .. }
        ),
        "no cid, no dedup"
    );
}

#[test]
fn backlog_follows_acknowledgements_and_merges_streams() {
    let (_dir, mut db) = db();
    send(&mut db, 1, To::User(2), Some("a"), "p1");
    send(&mut db, 1, To::Public, None, "pub");
    send(&mut db, 1, To::User(2), Some("b"), "p2");
    assert_eq!(
        backlog_of(&mut db, 2, None, None),
        [(1, "p1".into()), (2, "p2".into())]
    );
    let delivered = match db.commit(vec![Op::Received { user: 2, seq: 1 }]).pop() {
        Some(Reply::Delivered(d)) => d,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        delivered,
        [Delivery {
            sender: 1,
            cid: "a".into(),
            to: "bob".into()
        }]
    );
    assert_eq!(backlog_of(&mut db, 2, None, None), [(2, "p2".into())]);
    assert_eq!(
        backlog_of(&mut db, 2, Some(0), Some(0)),
        [(1, "p1".into()), (2, "pub".into()), (2, "p2".into())]
    );
    // A claim beyond the stream's end changes nothing for later messages.
    db.commit(vec![Op::Received { user: 2, seq: 99 }]);
    send(&mut db, 1, To::User(2), Some("c"), "p3");
    assert_eq!(backlog_of(&mut db, 2, None, None), [(3, "p3".into())]);
}

#[test]
fn history_and_search_respect_privacy() {
    let (_dir, mut db) = db();
    db.commit(vec![account(3, "eve")]);
    send(&mut db, 1, To::User(2), None, "the exam is on Friday");
    send(&mut db, 2, To::Public, None, "when is the exam?");
    send(&mut db, 1, To::Public, None, "café au lait");
    let found = |db: &mut Sqlite, user, words: &str, from| match db
        .commit(vec![Op::Search {
            origin: origin(),
            user,
            words: words.into(),
            from,
            limit: 10,
        }])
        .pop()
    {
        Some(Reply::Found { result: Ok(m), .. }) => {
            m.into_iter().map(|m| m.text).collect::<Vec<_>>()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(
        found(&mut db, 2, "exam", None),
        ["when is the exam?", "the exam is on Friday"]
    );
    assert_eq!(
        found(&mut db, 3, "exam", None),
        ["when is the exam?"],
        "eve cannot see the private one"
    );
    assert_eq!(
        found(&mut db, 2, "exam", Some(1)),
        ["the exam is on Friday"]
    );
    assert_eq!(
        found(&mut db, 2, "cafe", None),
        ["café au lait"],
        "diacritics folded"
    );
    assert!(
        found(&mut db, 2, "\"AND* (", None).is_empty(),
        "FTS syntax is not interpreted"
    );
    assert_eq!(
        found(&mut db, 2, "exa*", None).len(),
        2,
        "a word ending in * is a prefix"
    );
    assert_eq!(found(&mut db, 2, "caf* lai*", None), ["café au lait"]);
    assert!(found(&mut db, 2, "* **", None).is_empty(), "no word at all");
    let history = match db
        .commit(vec![Op::History {
            origin: origin(),
            user: 3,
            with: Some(1),
            limit: 10,
        }])
        .pop()
    {
        Some(Reply::Found { result: Ok(m), .. }) => m,
        other => panic!("{other:?}"),
    };
    assert!(history.is_empty(), "eve has no conversation with alice");
}

/// A search after a flood indexes one step itself, not the whole
/// backlog (which held every client for seconds); the steps between
/// commits do the rest.
#[test]
fn a_search_indexes_one_step_and_the_steps_catch_up() {
    let (_dir, mut db) = db();
    let flood = 3 * INDEX_STEP as usize + 50;
    let batch = (0..flood)
        .map(|i| Op::Append {
            origin: origin(),
            message: NewMessage {
                sender: 1,
                cid: None,
                to: To::Public,
                text: if i == 0 || i == flood - 1 {
                    format!("needle {i}")
                } else {
                    format!("hay {i}")
                },
                time: 7,
                away: false,
                fanout: Vec::new(),
            },
        })
        .collect();
    db.commit(batch);
    assert!(db.unindexed());
    let search = |db: &mut Sqlite| match db
        .commit(vec![Op::Search {
            origin: origin(),
            user: 2,
            words: "needle".into(),
            from: None,
            limit: 10,
        }])
        .pop()
    {
        Some(Reply::Found { result: Ok(m), .. }) => {
            m.into_iter().map(|m| m.text).collect::<Vec<_>>()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(search(&mut db), ["needle 0"], "one step indexed");
    let mut steps = 0;
    while db.unindexed() {
        assert!(db.index_step());
        steps += 1;
    }
    assert_eq!(steps, 3, "the rest, a step at a time");
    let last = format!("needle {}", flood - 1);
    assert_eq!(search(&mut db), [last.as_str(), "needle 0"]);
    send(&mut db, 1, To::Public, None, "needle again");
    assert!(
        db.unindexed(),
        "a commit with messages leaves some to index"
    );
    assert!(db.index_step());
    assert!(!db.unindexed());
}

#[test]
fn counters_survive_reopening() {
    let (dir, mut db) = db();
    send(&mut db, 1, To::User(2), None, "one");
    drop(db);
    let (mut db, startup) = open(dir.path(), 64 * 1024);
    assert_eq!(startup.accounts.len(), 2);
    assert_eq!(
        send(&mut db, 1, To::User(2), None, "two"),
        Appended::New { seq: 2 }
    );
}

/// A writer that never pauses used to keep the WAL growing without
/// bound (the checkpointer never found it wholly copied).
#[test]
fn the_wal_stays_bounded_under_writes_that_never_pause() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = open(dir.path(), 64 * 1024);
    store.commit(vec![account(1, "alice")]);
    let wal = dir.path().join("chat.db-wal");
    let text = "x".repeat(2000);
    let (mut written, mut largest) = (0u64, 0u64);
    let started = std::time::Instant::now();
    // Long enough for several checkpoint cycles: one that falls behind
    // on a busy machine (the WAL then grows for a cycle) is not failure.
    while written < 64 << 20 || started.elapsed() < wal::CHECKPOINT_EVERY * 8 {
        let ops = (0..100)
            .map(|i| Op::Append {
                origin: Origin { conn: 1, id: i },
                message: NewMessage {
                    sender: 1,
                    cid: None,
                    to: To::Public,
                    text: text.clone(),
                    time: 0,
                    away: false,
                    fanout: Vec::new(),
                },
            })
            .collect();
        for reply in store.commit(ops) {
            assert!(matches!(
                reply,
                Reply::Appended {
                    outcome: Appended::New { .. },
                    ..
                }
            ));
        }
        written += 100 * text.len() as u64;
        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    assert!(
        largest < written / 2,
        "the WAL reached {largest} bytes for {written} bytes of messages"
    );
}
