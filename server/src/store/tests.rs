//! The promises of the store boundary (`store/mod.rs`), checked against
//! every backend: each test here runs on SQLite (`on_sqlite::…`) and on
//! PostgreSQL (`on_postgres::…`, a database of its own on the test
//! process's private server; skipped with a line if PostgreSQL is not
//! installed, failed under `CI=true`). What only one backend has is tested
//! beside it (`sqlite/tests.rs`, `postgres/tests.rs`).

use super::*;

/// The chat's `E` does not matter here.
pub(crate) type Op = super::Op<()>;
pub(crate) type Store = Box<dyn Backend<()>>;

/// What the chat computes for these ASCII names.
pub(crate) fn fold(nick: &str) -> String {
    nick.to_lowercase()
}

/// Where a test's store lives, so that it can be opened again.
pub(crate) enum Place {
    Sqlite(tempfile::TempDir),
    Postgres { url: String },
}

impl Place {
    fn sqlite() -> Place {
        Place::Sqlite(tempfile::tempdir().unwrap())
    }

    /// A new database, or `None` without PostgreSQL.
    pub(crate) fn postgres() -> Option<Place> {
        let server = postgres::testdb::shared()?;
        Some(Place::Postgres {
            url: server.database(),
        })
    }

    /// Opens (or opens again) the store.
    pub(crate) fn open(&self, page_bytes: usize) -> (Store, Startup) {
        let at = match self {
            Place::Sqlite(dir) => Location::Dir(dir.path()),
            Place::Postgres { url } => Location::Cluster { url, node: "n1" },
        };
        open(at, page_bytes, fold).unwrap_or_else(|err| panic!("opening the store: {err}"))
    }

    /// Whether the public stream is numbered 1, 2, 3 … (else by message).
    fn dense_public(&self) -> bool {
        matches!(self, Place::Postgres { .. })
    }
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[test]
            fn $name() {
                super::$name(super::Place::sqlite());
            })*
        }
        mod on_postgres {
            $(#[test]
            fn $name() {
                if let Some(place) = super::Place::postgres() {
                    super::$name(place);
                }
            })*
        }
    };
}

on_both!(
    a_long_backlog_comes_in_pages_that_fit_the_send_queue,
    streams_are_numbered_and_resends_dropped,
    backlog_follows_acknowledgements_and_merges_streams,
    history_and_search_respect_privacy,
    what_was_committed_survives_reopening,
    replies_keep_the_order_of_the_ops_and_reads_see_earlier_writes,
    group_messages_take_the_next_seq_in_every_members_stream,
    streams_stay_dense_in_a_large_mixed_batch,
    accounts_sanctions_groups_and_files_come_back_at_open,
    an_account_whose_name_or_key_is_taken_is_not_stored,
    texts_come_back_as_they_were_sent,
    tails_read_a_stream_after_a_seq,
    a_group_message_reaches_the_members_of_its_commit,
);

/// On PostgreSQL the fan-out is the `members` rows read in the append's
/// transaction (another node may have changed the group); on SQLite the
/// chat's list, the dispatcher being the only writer.
fn a_group_message_reaches_the_members_of_its_commit(place: Place) {
    let mut db = with_two(&place, 64 * 1024);
    db.commit(vec![account(3, "carol"), study(5, &[1, 2, 3])]);
    // The chat's memory lacks carol and has a stranger (user 4).
    let replies = db.commit(vec![append(NewMessage {
        fanout: vec![(1, false), (2, false), (4, false)],
        ..message(1, To::Group(5), None, "hello group")
    })]);
    let [Reply::Appended {
        message, outcome, ..
    }] = replies.as_slice()
    else {
        panic!("{replies:?}")
    };
    if place.dense_public() {
        assert_eq!(message.fanout, [(1, false), (2, false), (3, true)]);
        assert_eq!(*outcome, Appended::Fanned(vec![1, 1, 1]));
    } else {
        assert_eq!(message.fanout, [(1, false), (2, false), (4, false)]);
    }
}

pub(crate) fn account(user: UserId, nick: &str) -> Op {
    Op::CreateAccount {
        user,
        nick: nick.into(),
        folded: fold(nick),
        key: fold(nick),
        hash: "h".into(),
        time: 0,
    }
}

pub(crate) fn origin() -> Origin {
    Origin { conn: 1, id: 1 }
}

/// The store at `place` with alice (1) and bob (2), whose backlog pages
/// hold about `page_bytes` of text.
fn with_two(place: &Place, page_bytes: usize) -> Store {
    let mut db = place.open(page_bytes).0;
    for (id, nick) in [(1, "alice"), (2, "bob")] {
        db.commit(vec![account(id, nick)]);
    }
    db
}

pub(crate) fn message(from: UserId, to: To, cid: Option<&str>, text: &str) -> NewMessage {
    NewMessage {
        sender: from,
        cid: cid.map(str::to_string),
        to,
        text: text.into(),
        time: 7,
        away: false,
        fanout: Vec::new(),
    }
}

pub(crate) fn append(m: NewMessage) -> Op {
    Op::Append {
        origin: origin(),
        message: m,
    }
}

pub(crate) fn send(
    db: &mut Store,
    from: UserId,
    to: To,
    cid: Option<&str>,
    text: &str,
) -> Appended {
    match db.commit(vec![append(message(from, to, cid, text))]).pop() {
        Some(Reply::Appended { outcome, .. }) => outcome,
        other => panic!("{other:?}"),
    }
}

fn page(
    db: &mut Store,
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

pub(crate) fn backlog_of(
    db: &mut Store,
    user: UserId,
    last_seq: Option<u64>,
    last_public: Option<u64>,
) -> Vec<(u64, String)> {
    let p = page(db, user, last_seq, last_public, true);
    assert_eq!(p.left, 0, "one page");
    p.messages.into_iter().map(|m| (m.seq, m.text)).collect()
}

fn found(db: &mut Store, op: Op) -> Vec<String> {
    match db.commit(vec![op]).pop() {
        Some(Reply::Found { result: Ok(m), .. }) => m.into_iter().map(|m| m.text).collect(),
        other => panic!("{other:?}"),
    }
}

fn a_long_backlog_comes_in_pages_that_fit_the_send_queue(place: Place) {
    let mut db = with_two(&place, 8 * 1024);
    let text = "x".repeat(100);
    for i in 0..300 {
        let to = if i % 3 == 0 { To::Public } else { To::User(2) };
        send(&mut db, 1, to, None, &format!("{i:03}{text}"));
    }
    let mut seen = Vec::new();
    let mut p = page(&mut db, 2, None, Some(0), true);
    let last_public = if place.dense_public() { 100 } else { 298 };
    assert_eq!(p.public_head, last_public, "the last public message's seq");
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

fn streams_are_numbered_and_resends_dropped(place: Place) {
    let mut db = with_two(&place, 64 * 1024);
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
    let Appended::New { seq: public } = send(&mut db, 1, To::Public, Some("p"), "all") else {
        panic!()
    };
    let expected = if place.dense_public() { 1 } else { 4 };
    assert_eq!(public, expected, "the public seq");
    assert_eq!(
        send(&mut db, 1, To::Public, Some("p"), "all"),
        Appended::Duplicate,
        "a public resend"
    );
    let Appended::New { seq: next } = send(&mut db, 1, To::Public, None, "all") else {
        panic!("no cid, no dedup")
    };
    assert!(next > public);
    if place.dense_public() {
        assert_eq!(next, 2, "the resend took no number");
    }
    // Resends within one batch, and of an earlier batch's message.
    let replies = db.commit(vec![
        append(message(1, To::User(2), Some("c"), "three")),
        append(message(1, To::User(2), Some("c"), "three again")),
        append(message(1, To::User(2), Some("b"), "two again")),
        append(message(1, To::User(2), Some("d"), "four")),
    ]);
    let outcomes: Vec<Appended> = replies
        .into_iter()
        .map(|r| match r {
            Reply::Appended { outcome, .. } => outcome,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            Appended::New { seq: 3 },
            Appended::Duplicate,
            Appended::Duplicate,
            Appended::New { seq: 4 }
        ]
    );
    assert_eq!(
        backlog_of(&mut db, 2, Some(0), None),
        [
            (1, "one".into()),
            (2, "two".into()),
            (3, "three".into()),
            (4, "four".into())
        ]
    );
}

fn backlog_follows_acknowledgements_and_merges_streams(place: Place) {
    let mut db = with_two(&place, 64 * 1024);
    send(&mut db, 1, To::User(2), Some("a"), "p1");
    let Appended::New { seq: public } = send(&mut db, 1, To::Public, None, "pub") else {
        panic!()
    };
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
        [(1, "p1".into()), (public, "pub".into()), (2, "p2".into())]
    );
    // A claim beyond the stream's end changes nothing for later messages.
    db.commit(vec![Op::Received { user: 2, seq: 99 }]);
    send(&mut db, 1, To::User(2), Some("c"), "p3");
    assert_eq!(backlog_of(&mut db, 2, None, None), [(3, "p3".into())]);
    // Positions beyond anything a database holds.
    assert!(backlog_of(&mut db, 2, Some(u64::MAX), Some(u64::MAX)).is_empty());
}

fn history_and_search_respect_privacy(place: Place) {
    let mut db = with_two(&place, 64 * 1024);
    db.commit(vec![account(3, "eve")]);
    send(&mut db, 1, To::User(2), None, "the exam is on Friday");
    send(&mut db, 2, To::Public, None, "when is the exam?");
    send(&mut db, 1, To::Public, None, "café au lait");
    let search = |db: &mut Store, user, words: &str, from| {
        found(
            db,
            Op::Search {
                origin: origin(),
                user,
                words: words.into(),
                from,
                limit: 10,
            },
        )
    };
    assert_eq!(
        search(&mut db, 2, "exam", None),
        ["when is the exam?", "the exam is on Friday"]
    );
    assert_eq!(
        search(&mut db, 3, "exam", None),
        ["when is the exam?"],
        "eve cannot see the private one"
    );
    assert_eq!(
        search(&mut db, 2, "exam", Some(1)),
        ["the exam is on Friday"]
    );
    assert_eq!(
        search(&mut db, 2, "cafe", None),
        ["café au lait"],
        "diacritics folded"
    );
    assert_eq!(search(&mut db, 2, "CAFÉ", None), ["café au lait"]);
    assert!(
        search(&mut db, 2, "\"AND* (", None).is_empty(),
        "query syntax is not interpreted"
    );
    assert_eq!(
        search(&mut db, 2, "exa*", None).len(),
        2,
        "a word ending in * is a prefix"
    );
    assert_eq!(search(&mut db, 2, "caf* lai*", None), ["café au lait"]);
    assert!(
        search(&mut db, 2, "* **", None).is_empty(),
        "no word at all"
    );
    assert!(search(&mut db, 2, "\0", None).is_empty(), "a NUL");
    let history = |db: &mut Store, user, with| {
        found(
            db,
            Op::History {
                origin: origin(),
                user,
                with,
                limit: 10,
            },
        )
    };
    assert!(
        history(&mut db, 3, Some(1)).is_empty(),
        "eve has no conversation with alice"
    );
    assert_eq!(history(&mut db, 2, Some(1)), ["the exam is on Friday"]);
    assert_eq!(
        history(&mut db, 3, None),
        ["when is the exam?", "café au lait"],
        "the public history, oldest first"
    );
}

/// Durability on reopen: what a commit returned is there when the store
/// opens again, and the streams go on where they were.
fn what_was_committed_survives_reopening(place: Place) {
    let mut db = with_two(&place, 64 * 1024);
    send(&mut db, 1, To::User(2), Some("a"), "one");
    let Appended::New { seq: public } = send(&mut db, 2, To::Public, None, "all") else {
        panic!()
    };
    drop(db);
    let (mut db, startup) = place.open(64 * 1024);
    assert_eq!(startup.accounts.len(), 2);
    assert_eq!(
        send(&mut db, 1, To::User(2), Some("b"), "two"),
        Appended::New { seq: 2 }
    );
    assert_eq!(
        send(&mut db, 1, To::User(2), Some("a"), "one again"),
        Appended::Duplicate,
        "the cid is remembered"
    );
    let Appended::New { seq: next } = send(&mut db, 2, To::Public, None, "all again") else {
        panic!()
    };
    assert!(next > public);
    assert_eq!(
        backlog_of(&mut db, 2, Some(0), Some(0)),
        [
            (1, "one".into()),
            (public, "all".into()),
            (2, "two".into()),
            (next, "all again".into())
        ]
    );
}

/// One reply per answered op, in order, whatever ran in between; a read
/// sees the writes queued before it in the same batch.
fn replies_keep_the_order_of_the_ops_and_reads_see_earlier_writes(place: Place) {
    let mut db = with_two(&place, 64 * 1024);
    let (saved_tx, saved) = crossbeam_channel::bounded(1);
    let echo = |id| Op::Echo {
        origin: Origin { conn: 9, id },
        then: (),
    };
    let replies = db.commit(vec![
        append(message(1, To::User(2), Some("a"), "first")),
        echo(1),
        account(3, "carol"),
        append(message(3, To::User(2), Some("a"), "from carol")),
        Op::Received { user: 2, seq: 1 },
        append(message(2, To::Public, None, "to all")),
        Op::Backlog {
            origin: origin(),
            user: 2,
            last_seq: Some(0),
            last_public: Some(0),
            first: true,
        },
        Op::Notify(saved_tx),
        append(message(1, To::User(3), None, "hello carol")),
        echo(2),
    ]);
    assert_eq!(saved.try_recv(), Ok(true), "told once committed");
    let kinds: Vec<String> = replies
        .iter()
        .map(|r| match r {
            Reply::Appended {
                outcome: Appended::New { seq },
                message,
                ..
            } => format!("{}:{seq}", message.text),
            Reply::Echo { origin, .. } => format!("echo {}", origin.id),
            Reply::Delivered(d) => format!("delivered {}", d.len()),
            Reply::Backlog {
                result: Ok(page), ..
            } => format!("backlog {}", page.messages.len()),
            other => panic!("{other:?}"),
        })
        .collect();
    let public = if place.dense_public() { 1 } else { 3 };
    assert_eq!(
        kinds,
        [
            "first:1".to_string(),
            "echo 1".into(),
            "from carol:2".into(),
            "delivered 1".into(),
            format!("to all:{public}"),
            "backlog 3".into(),
            "hello carol:1".into(),
            "echo 2".into(),
        ]
    );
}

/// A group `id` called Study with `members`.
fn study(id: GroupId, members: &[UserId]) -> Op {
    Op::Group {
        origin: origin(),
        changes: vec![
            GroupChange::Create {
                group: id,
                name: "Study".into(),
                key: "study".into(),
                owner: members[0],
                public: false,
                time: 1,
            },
            GroupChange::Join {
                group: id,
                users: members.to_vec(),
                time: 2,
            },
        ],
        then: (),
    }
}

/// A tail reads a stream after a seq, in order, and sees the batch's own
/// appends before it; heads say where streams end.
fn tails_read_a_stream_after_a_seq(place: Place) {
    let mut db = with_two(&place, 64 * 1024);
    for i in 0..5 {
        send(&mut db, 1, To::User(2), None, &format!("to bob {i}"));
        send(&mut db, 2, To::Public, None, &format!("public {i}"));
    }
    let replies = db.commit(vec![
        append(message(1, To::User(2), None, "in the batch")),
        Op::Tail {
            stream: Stream::User(2),
            after: 3,
        },
        Op::Tail {
            stream: Stream::Public,
            after: 0,
        },
        Op::Heads(vec![Stream::User(2), Stream::User(1), Stream::Public]),
    ]);
    let [_, Reply::Tail {
        result: Ok(own), ..
    }, Reply::Tail {
        result: Ok(public), ..
    }, Reply::Heads(Ok(heads))] = replies.as_slice()
    else {
        panic!("{replies:?}")
    };
    let own: Vec<(u64, &str)> = own.iter().map(|m| (m.seq, m.text.as_str())).collect();
    assert_eq!(own, [(4, "to bob 3"), (5, "to bob 4"), (6, "in the batch")]);
    assert_eq!(public.len(), 5);
    assert!(public.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(public[4].receiver, "*");
    assert_eq!(heads[0], (Stream::User(2), 6));
    assert_eq!(heads[1], (Stream::User(1), 0));
    assert_eq!(heads[2], (Stream::Public, public[4].seq));
}

fn group_messages_take_the_next_seq_in_every_members_stream(place: Place) {
    let mut db = with_two(&place, 64 * 1024);
    db.commit(vec![account(3, "carol")]);
    let grouped = db.commit(vec![Op::Group {
        origin: origin(),
        changes: vec![
            GroupChange::Create {
                group: 5,
                name: "Study".into(),
                key: "study".into(),
                owner: 1,
                public: false,
                time: 1,
            },
            GroupChange::Join {
                group: 5,
                users: vec![1, 2, 3],
                time: 2,
            },
        ],
        then: (),
    }]);
    assert!(matches!(
        grouped.as_slice(),
        [Reply::Grouped { result: Ok(()), .. }]
    ));
    send(&mut db, 1, To::User(2), None, "private to bob");
    let fanout = vec![(1, false), (2, true), (3, false)];
    let group = |text: &str| {
        append(NewMessage {
            fanout: fanout.clone(),
            ..message(1, To::Group(5), None, text)
        })
    };
    let replies = db.commit(vec![
        group("g1"),
        append(message(3, To::User(2), None, "p")),
        group("g2"),
    ]);
    let outcomes: Vec<Appended> = replies
        .into_iter()
        .map(|r| match r {
            Reply::Appended { outcome, .. } => outcome,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            Appended::Fanned(vec![1, 2, 1]),
            Appended::New { seq: 3 },
            Appended::Fanned(vec![2, 4, 2]),
        ],
        "each member's own next seq, in the order of the fan-out"
    );
    let bob: Vec<(u64, String)> = backlog_of(&mut db, 2, Some(0), None);
    assert_eq!(
        bob,
        [
            (1, "private to bob".into()),
            (2, "g1".into()),
            (3, "p".into()),
            (4, "g2".into())
        ]
    );
    let away: Vec<bool> = page(&mut db, 2, Some(0), None, true)
        .messages
        .iter()
        .map(|m| m.away)
        .collect();
    assert_eq!(
        away,
        [false, true, false, true],
        "bob was away for the group"
    );
    let p = page(&mut db, 2, Some(0), None, true);
    assert_eq!(p.messages[1].receiver, "#Study");
    assert_eq!(
        found(
            &mut db,
            Op::GroupHistory {
                origin: origin(),
                group: 5,
                limit: 10
            }
        ),
        ["g1", "g2"]
    );
    // A change that fails is undone whole, and the batch goes on.
    let replies = db.commit(vec![
        Op::Group {
            origin: origin(),
            changes: vec![
                GroupChange::Join {
                    group: 5,
                    users: vec![4],
                    time: 3,
                },
                GroupChange::Create {
                    group: 6,
                    name: "study".into(),
                    key: "study".into(),
                    owner: 1,
                    public: true,
                    time: 3,
                },
            ],
            then: (),
        },
        append(message(1, To::User(2), None, "after")),
    ]);
    assert!(
        matches!(
            replies.as_slice(),
            [
                Reply::Grouped { result: Err(_), .. },
                Reply::Appended {
                    outcome: Appended::New { seq: 5 },
                    ..
                }
            ]
        ),
        "{replies:?}"
    );
    drop(db);
    let (_, startup) = place.open(64 * 1024);
    assert_eq!(
        startup.groups,
        [GroupRow {
            id: 5,
            name: "Study".into(),
            owner: 1,
            public: false,
            members: vec![1, 2, 3]
        }],
        "the failed change left nothing"
    );
}

/// Dense streams through one large batch of private, group and public
/// messages: each stream 1, 2, 3 … in the order of the ops.
fn streams_stay_dense_in_a_large_mixed_batch(place: Place) {
    let mut db = with_two(&place, 1 << 20);
    db.commit(vec![account(3, "carol"), study(9, &[2, 3])]);
    let mut ops = Vec::new();
    let mut expected: std::collections::HashMap<UserId, Vec<u64>> = Default::default();
    for i in 0..1500u64 {
        let to = match i % 4 {
            0 => To::Public,
            1 => To::User(2),
            2 => To::User(3),
            _ => To::Group(9),
        };
        let mut m = message(1, to, Some(&format!("c{i}")), &format!("m{i}"));
        if to == To::Group(9) {
            m.fanout = vec![(2, false), (3, false)];
        }
        ops.push(append(m));
    }
    let mut public = Vec::new();
    for reply in db.commit(ops) {
        let Reply::Appended {
            outcome, message, ..
        } = reply
        else {
            panic!()
        };
        match (message.to, outcome) {
            (To::Public, Appended::New { seq }) => public.push(seq),
            (To::User(u), Appended::New { seq }) => expected.entry(u).or_default().push(seq),
            (To::Group(_), Appended::Fanned(seqs)) => {
                expected.entry(2).or_default().push(seqs[0]);
                expected.entry(3).or_default().push(seqs[1]);
            }
            other => panic!("{other:?}"),
        }
    }
    for user in [2, 3] {
        let seqs = &expected[&user];
        assert_eq!(
            *seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "user {user}"
        );
    }
    assert!(public.windows(2).all(|w| w[0] < w[1]));
    if place.dense_public() {
        assert_eq!(public, (1..=375).collect::<Vec<_>>());
    }
    let mut p = page(&mut db, 2, Some(0), None, true);
    assert_eq!(p.left as usize + p.messages.len(), 750);
    let mut seqs: Vec<u64> = Vec::new();
    loop {
        seqs.extend(p.messages.iter().map(|m| m.seq));
        if p.left == 0 {
            break;
        }
        p = page(&mut db, 2, Some(p.last_seq), None, false);
    }
    assert_eq!(seqs, (1..=750).collect::<Vec<_>>());
}

fn accounts_sanctions_groups_and_files_come_back_at_open(place: Place) {
    let mut db = with_two(&place, 64 * 1024);
    let offer = FileRow {
        id: 7,
        sender: 1,
        name: "notes.pdf".into(),
        size: 1 << 33,
        sha256: "ab".repeat(32),
        time: 3,
        complete: false,
        receivers: vec![
            FileReceiver {
                user: 2,
                answer: Answer::Pending,
                told: false,
            },
            FileReceiver {
                user: 3,
                answer: Answer::Pending,
                told: false,
            },
        ],
    };
    let gone = FileRow {
        id: 8,
        receivers: Vec::new(),
        ..offer.clone()
    };
    db.commit(vec![
        account(3, "carol"),
        Op::SetPassword {
            user: 2,
            hash: "h2".into(),
        },
        Op::Sanction(
            Sanction {
                user: 2,
                kind: SanctionKind::Mute,
                until: Some(99),
            },
            false,
        ),
        Op::Sanction(
            Sanction {
                user: 3,
                kind: SanctionKind::Ban,
                until: None,
            },
            false,
        ),
        Op::Sanction(
            Sanction {
                user: 2,
                kind: SanctionKind::Mute,
                until: Some(100),
            },
            false,
        ),
        Op::Sanction(
            Sanction {
                user: 3,
                kind: SanctionKind::Mute,
                until: None,
            },
            false,
        ),
        Op::Sanction(
            Sanction {
                user: 3,
                kind: SanctionKind::Mute,
                until: None,
            },
            true,
        ),
        Op::File(FileOp::Offer(offer.clone())),
        Op::File(FileOp::Offer(gone)),
        Op::File(FileOp::Complete(7)),
        Op::File(FileOp::Answer {
            file: 7,
            user: 2,
            answer: Answer::Downloaded,
            told: false,
        }),
        Op::File(FileOp::Told { file: 7, user: 2 }),
        Op::File(FileOp::Answer {
            file: 7,
            user: 3,
            answer: Answer::Rejected,
            told: true,
        }),
        Op::File(FileOp::Delete(8)),
    ]);
    drop(db);
    let (_, startup) = place.open(64 * 1024);
    let accounts: Vec<(UserId, String, String, Option<String>)> = startup
        .accounts
        .into_iter()
        .map(|a| (a.id, a.nick, a.hash, a.key))
        .collect();
    assert_eq!(
        accounts,
        [
            (1, "alice".into(), "h".into(), Some("alice".into())),
            (2, "bob".into(), "h2".into(), Some("bob".into())),
            (3, "carol".into(), "h".into(), Some("carol".into())),
        ]
    );
    assert_eq!(
        startup.sanctions,
        [
            Sanction {
                user: 2,
                kind: SanctionKind::Mute,
                until: Some(100)
            },
            Sanction {
                user: 3,
                kind: SanctionKind::Ban,
                until: None
            },
        ]
    );
    assert_eq!(
        startup.files,
        [FileRow {
            complete: true,
            receivers: vec![
                FileReceiver {
                    user: 2,
                    answer: Answer::Downloaded,
                    told: true,
                },
                FileReceiver {
                    user: 3,
                    answer: Answer::Rejected,
                    told: true,
                },
            ],
            ..offer
        }]
    );
}

/// Names and identity keys are unique: a second account that would share
/// one is not stored, and the batch goes on.
fn an_account_whose_name_or_key_is_taken_is_not_stored(place: Place) {
    let mut db = with_two(&place, 64 * 1024);
    let look_alike = Op::CreateAccount {
        user: 3,
        nick: "ALICE".into(),
        folded: "alice".into(),
        key: "alice".into(),
        hash: "h".into(),
        time: 0,
    };
    let same_key = Op::CreateAccount {
        user: 4,
        nick: "a1ice".into(),
        folded: "a1ice".into(),
        key: "alice".into(),
        hash: "h".into(),
        time: 0,
    };
    let replies = db.commit(vec![
        look_alike,
        same_key,
        account(5, "dave"),
        append(message(5, To::User(1), None, "hi")),
    ]);
    assert!(matches!(
        replies.as_slice(),
        [Reply::Appended {
            outcome: Appended::New { seq: 1 },
            ..
        }]
    ));
    drop(db);
    let (_, startup) = place.open(64 * 1024);
    let nicks: Vec<String> = startup.accounts.into_iter().map(|a| a.nick).collect();
    assert_eq!(nicks, ["alice", "bob", "dave"]);
}

fn texts_come_back_as_they_were_sent(place: Place) {
    let mut db = with_two(&place, 64 * 1024);
    let texts = ["a\0b", "C:\\dir\\0", "\\0", "emoji 🎉 and ünïcödé", ""];
    for (i, text) in texts.iter().enumerate() {
        let cid = format!("c\0{i}\\");
        assert!(matches!(
            send(&mut db, 1, To::User(2), Some(&cid), text),
            Appended::New { .. }
        ));
        assert_eq!(
            send(&mut db, 1, To::User(2), Some(&cid), text),
            Appended::Duplicate
        );
    }
    let back: Vec<String> = backlog_of(&mut db, 2, Some(0), None)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(back, texts);
    let delivered = match db.commit(vec![Op::Received { user: 2, seq: 5 }]).pop() {
        Some(Reply::Delivered(d)) => d,
        other => panic!("{other:?}"),
    };
    let cids: Vec<String> = delivered.into_iter().map(|d| d.cid).collect();
    assert_eq!(
        cids,
        (0..5).map(|i| format!("c\0{i}\\")).collect::<Vec<_>>()
    );
}

/// Messages per second through each backend: batches of private and
/// public messages (what a busy dispatcher hands over), durable commits.
/// `cargo test -p chat-server --release --lib store::tests::throughput -- --ignored --nocapture`
mod throughput {
    use super::*;
    use std::time::Instant;

    fn measure(place: Place) {
        let (mut db, _) = place.open(64 * 1024);
        db.commit((1..=100).map(|u| account(u, &format!("u{u}"))).collect());
        let name = if place.dense_public() {
            "PostgreSQL"
        } else {
            "SQLite"
        };
        for batch in [1usize, 16, 64, 256] {
            let total = 20_000usize.min(batch * 400);
            let started = Instant::now();
            let mut i = 0u64;
            while (i as usize) < total {
                let ops = (0..batch)
                    .map(|_| {
                        i += 1;
                        let to = if i.is_multiple_of(4) {
                            To::Public
                        } else {
                            To::User((i % 100 + 1) as i64)
                        };
                        append(message(
                            (i * 7 % 100 + 1) as i64,
                            to,
                            Some(&format!("b{batch}-{i}")),
                            "a message of about the length of a chat line, forty-odd bytes",
                        ))
                    })
                    .collect();
                for reply in db.commit(ops) {
                    assert!(matches!(
                        reply,
                        Reply::Appended {
                            outcome: Appended::New { .. },
                            ..
                        }
                    ));
                }
            }
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "{name}, batches of {batch:3}: {total} messages in {secs:.2} s = {:.0} \
                 messages/s, {:.2} ms per batch",
                total as f64 / secs,
                secs * 1000.0 / (total / batch) as f64
            );
        }
    }

    #[test]
    #[ignore]
    fn sqlite() {
        measure(Place::sqlite());
    }

    #[test]
    #[ignore]
    fn postgres() {
        if let Some(place) = Place::postgres() {
            measure(place);
        }
    }
}
