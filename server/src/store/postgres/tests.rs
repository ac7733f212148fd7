//! What only the PostgreSQL backend has: the connection it loses and makes
//! again, the node lease, the schema's version, and its throughput. (The
//! promises every backend keeps: `store/tests.rs`.)

use std::time::Duration;

use super::*;
use crate::store::tests::{account, append, backlog_of, fold, message, send, Place, Store};
use crate::store::{Location, To};

type Op = crate::store::Op<()>;

/// A new database on the shared test server: its URL, or `None` (the
/// test skips) without PostgreSQL.
fn database() -> Option<String> {
    Some(testdb::shared()?.database())
}

fn open_as(url: &str, node: &str) -> Result<(Store, Startup), StoreError> {
    crate::store::open(Location::Cluster { url, node }, 64 * 1024, fold)
}

/// Cuts every session of `node`'s store on this test's database (other
/// tests share the server) from the database's side, as a database restart
/// or a broken network does.
fn cut_sessions(url: &str, node: &str) -> u64 {
    let db = url.rsplit('/').next().unwrap();
    let mut admin = testdb::shared().unwrap().client(db).unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = $1 AND datname = current_database()
               AND pid <> pg_backend_pid()",
            &[&format!("chat-server {node}")],
        )
        .unwrap()
}

#[test]
fn a_lost_connection_fails_its_batch_and_the_next_connects_again() {
    let Some(url) = database() else { return };
    let (mut db, _) = open_as(&url, "n1").unwrap();
    db.commit(vec![account(1, "alice"), account(2, "bob")]);
    assert_eq!(
        send(&mut db, 1, To::User(2), Some("a"), "before"),
        Appended::New { seq: 1 }
    );
    assert!(cut_sessions(&url, "n1") >= 1);
    // The cut is seen by the next statement: every reply of that batch
    // says it failed, and nothing of it stays.
    // An account between the appends: it runs first (appends wait in a
    // run), fails, and the appends waiting must still be answered.
    let replies = db.commit(vec![
        append(message(1, To::User(2), Some("b"), "lost")),
        account(3, "carol"),
        append(message(1, To::Public, None, "lost too")),
    ]);
    assert_eq!(replies.len(), 2, "{replies:?}");
    for reply in &replies {
        assert!(
            matches!(
                reply,
                Reply::Appended {
                    outcome: Appended::Failed(_),
                    ..
                }
            ),
            "{reply:?}"
        );
    }
    // The next batch connects again; the resend is stored, once, with the
    // next seq (the failed batch took none).
    std::thread::sleep(RETRY_AFTER);
    assert_eq!(
        send(&mut db, 1, To::User(2), Some("b"), "lost"),
        Appended::New { seq: 2 }
    );
    assert_eq!(
        send(&mut db, 1, To::Public, None, "lost too"),
        Appended::New { seq: 1 }
    );
    assert_eq!(
        backlog_of(&mut db, 2, Some(0), None),
        [(1, "before".into()), (2, "lost".into())]
    );
}

/// A statement that fails outside a savepoint aborts PostgreSQL's
/// transaction: the whole batch fails, every reply says so (the appends
/// waiting in a run included), and nothing of it is stored.
#[test]
fn a_failed_statement_fails_the_whole_batch() {
    let Some(url) = database() else { return };
    let (mut db, _) = open_as(&url, "n1").unwrap();
    db.commit(vec![account(1, "alice"), account(2, "bob")]);
    let receiver = crate::store::FileReceiver {
        user: 2,
        answer: crate::store::Answer::Pending,
        told: false,
    };
    // The same receiver twice: "ON CONFLICT DO UPDATE command cannot
    // affect row a second time". (The chat never sends that.)
    let bad = crate::store::FileRow {
        id: 1,
        sender: 1,
        name: "f".into(),
        size: 1,
        sha256: "00".repeat(32),
        time: 0,
        complete: false,
        receivers: vec![receiver.clone(), receiver],
    };
    let replies = db.commit(vec![
        append(message(1, To::User(2), Some("a"), "waits in a run")),
        Op::File(crate::store::FileOp::Offer(bad)),
        append(message(1, To::User(2), Some("b"), "after it")),
    ]);
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert!(replies.iter().all(|r| matches!(
        r,
        Reply::Appended {
            outcome: Appended::Failed(_),
            ..
        }
    )));
    assert_eq!(
        send(&mut db, 1, To::User(2), Some("a"), "waits in a run"),
        Appended::New { seq: 1 },
        "nothing of the failed batch was stored"
    );
}

/// What a batch whose COMMIT lost its answer asks: committed, rolled
/// back, or still in progress (the old session not gone yet).
#[test]
fn the_fate_of_a_transaction_is_asked_by_its_id() {
    let Some(url) = database() else { return };
    let db = url.rsplit('/').next().unwrap();
    let server = testdb::shared().unwrap();
    let mut other = server.client(db).unwrap();
    let mut xid_of = |commit: bool| -> i64 {
        let mut tx = other.transaction().unwrap();
        let xid: i64 = tx.query_one("SELECT txid_current()", &[]).unwrap().get(0);
        if commit {
            tx.commit().unwrap();
        } else {
            tx.rollback().unwrap();
        }
        xid
    };
    let (committed, rolled_back) = (xid_of(true), xid_of(false));
    let mut conn = Conn::new(server.client(db).unwrap());
    assert_eq!(status(&mut conn, committed).unwrap(), Some(true));
    assert_eq!(status(&mut conn, rolled_back).unwrap(), Some(false));
    let mut open = other.transaction().unwrap();
    let xid: i64 = open.query_one("SELECT txid_current()", &[]).unwrap().get(0);
    assert_eq!(status(&mut conn, xid).unwrap(), None, "in progress");
    open.commit().unwrap();
    assert_eq!(status(&mut conn, xid).unwrap(), Some(true));
}

#[test]
fn nodes_share_a_database_but_not_an_id() {
    let Some(url) = database() else { return };
    let (first, _) = open_as(&url, "n1").unwrap();
    let (beside, _) = open_as(&url, "n2").expect("a second node beside the first");
    let refused = open_as(&url, "n1")
        .err()
        .expect("the same id twice refused");
    assert!(
        refused
            .to_string()
            .starts_with("node n1 is running already (another process holds its id)"),
        "{refused}"
    );
    // Still refused once its lease would have run out unrenewed.
    std::thread::sleep(Duration::from_secs(nodes::LEASE_SECS as u64 + 1));
    assert!(open_as(&url, "n1").is_err(), "the id's lock was let go");
    // A node that stops lets go at once; the same id starts again as a new
    // incarnation.
    drop(first);
    let (again, _) = open_as(&url, "n1").expect("n1 after n1 stopped");
    let mut admin = testdb::shared()
        .unwrap()
        .client(url.rsplit('/').next().unwrap())
        .unwrap();
    let incarnation: i64 = admin
        .query_one("SELECT incarnation FROM nodes WHERE node = 'n1'", &[])
        .unwrap()
        .get(0);
    assert_eq!(incarnation, 2);
    drop(again);
    drop(beside);
}

/// A wrong password is a row another node reads once, with its age on
/// the database's clock; its own node skips it; rows older than the
/// window go with the next batch that writes one.
#[test]
fn login_failures_are_read_once_and_pruned() {
    let Some(url) = database() else { return };
    let (mut db, _) = open_as(&url, "n1").unwrap();
    let failed = |network: &str| Op::LoginFailed {
        user: 7,
        network: network.parse().unwrap(),
        window_ms: 60_000,
    };
    assert!(
        db.commit(vec![failed("10.0.0.1")]).is_empty(),
        "not answered"
    );
    let mut admin = testdb::shared()
        .unwrap()
        .client(url.rsplit('/').next().unwrap())
        .unwrap();
    let incarnation: i64 = admin
        .query_one("SELECT incarnation FROM nodes WHERE node = 'n1'", &[])
        .unwrap()
        .get(0);
    let (mine, last) = failures::since(&mut admin, 0, ("n1", incarnation)).unwrap();
    assert!(mine.is_empty() && last >= 1, "its own: {mine:?}");
    let (heard, last) = failures::since(&mut admin, 0, ("n2", 1)).unwrap();
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert_eq!(
        (heard[0].user, heard[0].network.to_string()),
        (7, "10.0.0.1".into())
    );
    assert!(heard[0].age_ms < 5_000, "{heard:?}");
    assert!(failures::since(&mut admin, last, ("n2", 1))
        .unwrap()
        .0
        .is_empty());

    admin
        .execute(
            "UPDATE login_failures SET at = now() - interval '61 seconds'",
            &[],
        )
        .unwrap();
    db.commit(vec![failed("10.0.0.2")]);
    let (heard, _) = failures::since(&mut admin, 0, ("n2", 1)).unwrap();
    assert_eq!(heard.len(), 1, "the old one went: {heard:?}");
    assert_eq!(heard[0].network.to_string(), "10.0.0.2");
    let counter: i64 = admin
        .query_one(
            "SELECT head FROM heads WHERE stream = $1",
            &[&bell::FAILURES],
        )
        .unwrap()
        .get(0);
    assert_eq!(counter, 2, "one per batch that wrote failures");
}

#[test]
fn the_schema_is_versioned_and_a_newer_one_refused() {
    let Some(url) = database() else { return };
    drop(open_as(&url, "n1").unwrap());
    drop(open_as(&url, "n1").unwrap());
    let db = url.rsplit('/').next().unwrap();
    let mut admin = testdb::shared().unwrap().client(db).unwrap();
    let versions: Vec<i32> = admin
        .query("SELECT version FROM schema_version ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, (1..=schema::VERSION).collect::<Vec<_>>());
    admin
        .execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&(schema::VERSION + 1)],
        )
        .unwrap();
    let refused = open_as(&url, "n1").err().expect("a newer schema refused");
    assert!(
        refused.to_string().contains("newer than this server's"),
        "{refused}"
    );
}

#[test]
fn identity_keys_are_brought_up_to_date_at_open() {
    let Some(place) = Place::postgres() else {
        return;
    };
    let (mut db, _) = place.open(1024);
    db.commit(vec![account(1, "alice"), account(2, "bob")]);
    drop(db);
    // A newer identity function: bob now looks like alice.
    fn newer(nick: &str) -> String {
        if nick == "bob" {
            "alice".into()
        } else {
            nick.to_lowercase()
        }
    }
    let Place::Postgres { url } = &place else {
        unreachable!()
    };
    let (_, startup) =
        crate::store::open::<()>(Location::Cluster { url, node: "n1" }, 1024, newer).unwrap();
    let keys: Vec<Option<String>> = startup.accounts.into_iter().map(|a| a.key).collect();
    assert_eq!(keys, [Some("alice".into()), None], "the older keeps it");
}
