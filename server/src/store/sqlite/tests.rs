//! What only the SQLite backend has: search indexed a step at a time, and
//! the bounded WAL. The promises every backend keeps are tested against
//! both in `store/tests.rs`.

use super::*;
use crate::store::tests::{account, fold};
use crate::store::{NewMessage, Origin, To, UserId};
use search::INDEX_STEP;

/// The chat's `E` does not matter here.
type Op = crate::store::Op<()>;

/// Opens (or reopens) `dir`'s database.
fn open(dir: &Path, page_bytes: usize) -> (Sqlite, Startup) {
    Sqlite::open(dir, page_bytes, fold).unwrap()
}

fn origin() -> Origin {
    Origin { conn: 1, id: 1 }
}

/// A database with alice (1) and bob (2).
fn db() -> (tempfile::TempDir, Sqlite) {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(dir.path(), 64 * 1024).0;
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
    let synchronous: i64 = db
        .conn
        .pragma_query_value(None, "synchronous", |row| row.get(0))
        .unwrap();
    assert_eq!(synchronous, 2, "message commits stay FULL after a step");
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
