//! Stream tests on PostgreSQL (`postgres.rs`, `cluster.rs`,
//! `cluster_proof.rs`): readers and senders running while a test kills
//! nodes or restarts PostgreSQL ([`Stream`]), the cast most of them use
//! ([`study_stream`]), and the verdict: for each reader and each sender it
//! reads (one kind of message each: private, group, public), how many
//! messages were acknowledged, delivered, duplicated, out of order and
//! missing. The reader and sender loops themselves are `postgres.rs`'s.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::kill9::{Address, Link};
use crate::postgres::{reader, sender, shown_from, tally, Acked, Seen};

/// One sender a reader should have heard, and what kind its messages are.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    pub nick: &'a str,
    pub kind: &'a str,
}

/// A reader of a [`Stream`]: whom it reads, and where.
pub struct Reader {
    pub nick: &'static str,
    pub address: Address,
    pub hears: Vec<Source<'static>>,
}

/// A sender of a [`Stream`]: to whom (`None`: everyone, `#name`: a
/// group), and where.
pub struct Writer {
    pub nick: &'static str,
    pub address: Address,
    pub to: Option<&'static str>,
}

/// Readers and senders running on their own threads (see `postgres.rs`'s
/// `reader` and `sender`) while the test does its damage.
pub struct Stream {
    stop: Arc<AtomicBool>,
    enough: Arc<AtomicBool>,
    readers: Vec<(Reader, Arc<AtomicUsize>, JoinHandle<Seen>)>,
    senders: Vec<(&'static str, JoinHandle<Acked>)>,
}

/// What a [`Stream`] sent and what each of its readers saw.
pub struct Streamed {
    pub sent: Vec<(&'static str, Acked)>,
    pub seen: Vec<(Reader, Seen)>,
}

impl Stream {
    /// Starts every reader, then every sender.
    pub fn start(readers: Vec<Reader>, writers: Vec<Writer>) -> Stream {
        let stop = Arc::new(AtomicBool::new(false));
        let enough = Arc::new(AtomicBool::new(false));
        let readers = readers
            .into_iter()
            .map(|r| {
                let expected = Arc::new(AtomicUsize::new(usize::MAX));
                let (address, nick) = (r.address.clone(), r.nick);
                let (stop, wanted) = (stop.clone(), expected.clone());
                let thread = thread::spawn(move || reader(address, nick, wanted, stop));
                (r, expected, thread)
            })
            .collect();
        let senders = writers
            .into_iter()
            .map(|w| {
                let (enough, nick) = (enough.clone(), w.nick);
                (
                    nick,
                    thread::spawn(move || sender(w.address, nick, w.to, enough)),
                )
            })
            .collect();
        Stream {
            stop,
            enough,
            readers,
            senders,
        }
    }

    /// Tells the senders to stop and waits for their last acks; then waits
    /// (30 s at most) until every reader has shown all that its senders had
    /// acknowledged, and a little more for a late duplicate.
    pub fn finish(self) -> Streamed {
        self.enough.store(true, Ordering::SeqCst);
        let sent: Vec<(&'static str, Acked)> = self
            .senders
            .into_iter()
            .map(|(nick, h)| (nick, h.join().expect("sender panicked")))
            .collect();
        for (r, expected, _) in &self.readers {
            let total = sent
                .iter()
                .filter(|(n, _)| r.hears.iter().any(|s| s.nick == *n))
                .map(|(_, s)| s.acked.len())
                .sum();
            expected.store(total, Ordering::SeqCst);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.readers.iter().all(|(_, _, t)| t.is_finished()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        self.stop.store(true, Ordering::SeqCst);
        let seen = self
            .readers
            .into_iter()
            .map(|(r, _, t)| (r, t.join().expect("reader panicked")))
            .collect();
        Streamed { sent, seen }
    }
}

impl Streamed {
    /// What `nick` saw.
    pub fn seen(&self, nick: &str) -> &Seen {
        &self.seen.iter().find(|(r, _)| r.nick == nick).unwrap().1
    }

    /// How many messages `nick`'s senders had acknowledged.
    pub fn acked_for(&self, nick: &str) -> usize {
        let (reader, _) = self.seen.iter().find(|(r, _)| r.nick == nick).unwrap();
        self.sent
            .iter()
            .filter(|(n, _)| reader.hears.iter().any(|s| s.nick == *n))
            .map(|(_, s)| s.acked.len())
            .sum()
    }

    /// [`verdict`] for every reader.
    pub fn verdict(&self, label: &str) -> Vec<String> {
        self.seen
            .iter()
            .flat_map(|(r, seen)| verdict(label, r.nick, &self.sent, seen, &r.hears))
            .collect()
    }

    /// (sender, acked, connections, store_failed), for the log.
    pub fn senders(&self) -> Vec<(&'static str, usize, u32, u32)> {
        self.sent
            .iter()
            .map(|(n, s)| (*n, s.acked.len(), s.reconnects, s.store_failed))
            .collect()
    }
}

/// The cast of the cluster stream tests, each user at `home(nick)`: bob
/// reads alice's private messages, carol's to #study (bob, carol, frank)
/// and dave's public ones; frank reads #study and public. The accounts and
/// the group are made first (the group on carol's node, which may not
/// know bob and frank yet), and every node is given time to hear of them.
pub fn study_stream(home: impl Fn(&str) -> Address) -> Stream {
    for nick in ["bob", "frank", "alice", "carol", "dave"] {
        Link::open(&home(nick), nick, None, None).unwrap();
    }
    {
        let (mut carol, _) = Link::open(&home("carol"), "carol", None, None).unwrap();
        create_group(&mut carol, "study", &["bob", "frank"]);
    }
    thread::sleep(Duration::from_millis(1500));
    let private = Source {
        nick: "alice",
        kind: "private",
    };
    let group = Source {
        nick: "carol",
        kind: "group",
    };
    let public = Source {
        nick: "dave",
        kind: "public",
    };
    let read = |nick, hears| Reader {
        nick,
        address: home(nick),
        hears,
    };
    let write = |nick, to| Writer {
        nick,
        address: home(nick),
        to,
    };
    Stream::start(
        vec![
            read("bob", vec![private, group, public]),
            read("frank", vec![group, public]),
        ],
        vec![
            write("alice", Some("bob")),
            write("carol", Some("#study")),
            write("dave", None),
        ],
    )
}

/// Prints one line per source of `reader` (prefixed with `label`) and
/// returns what failed: a text acknowledged but never shown, shown twice,
/// or shown out of the order of its acks.
pub fn verdict(
    label: &str,
    reader: &str,
    sent: &[(&str, Acked)],
    seen: &Seen,
    sources: &[Source],
) -> Vec<String> {
    let mut failures = Vec::new();
    for source in sources {
        let nick = source.nick;
        let Some((_, acked)) = sent.iter().find(|(n, _)| *n == nick) else {
            failures.push(format!("{reader}: no sender {nick}"));
            continue;
        };
        let (delivered, _, missing) = tally(acked.acked.iter(), seen);
        let order = shown_from(seen, nick);
        let distinct: std::collections::HashSet<&&String> = order.iter().collect();
        let duplicated = order.len() - distinct.len();
        let numbers: Vec<usize> = order
            .iter()
            .map(|t| t[nick.len() + 1..].parse().unwrap())
            .collect();
        let out_of_order = numbers.windows(2).filter(|w| w[0] >= w[1]).count();
        eprintln!(
            "{label}: {reader} ← {nick} ({}): acknowledged {} / delivered {delivered} / \
             duplicated {duplicated} / out of order {out_of_order} / missing {}",
            source.kind,
            acked.acked.len(),
            missing.len(),
        );
        if order != acked.acked.iter().collect::<Vec<_>>() {
            failures.push(format!("{reader}: {nick}'s shown against acked differ"));
        }
        if !missing.is_empty() {
            failures.push(format!(
                "{reader}: {nick}'s acknowledged but never delivered: {missing:?}"
            ));
        }
        if duplicated > 0 || out_of_order > 0 {
            failures.push(format!(
                "{reader}: {nick}'s {duplicated} duplicated, {out_of_order} out of order"
            ));
        }
    }
    eprintln!(
        "{label}: {reader}: resends ignored by seq {}, reconnects {}",
        seen.filtered, seen.reconnects
    );
    failures
}

/// `link`'s user creates group `name` with `members`, asking again while
/// its node has not heard of a member's account yet (5 s at most).
pub fn create_group(link: &mut Link, name: &str, members: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        link.send(&json!({"type": "group_create", "id": 1, "name": name, "members": members}))
            .unwrap();
        let answer = loop {
            if let Some(f) = link.recv().unwrap() {
                if f["id"] == 1 {
                    break f;
                }
            }
        };
        if answer["type"] == "group" {
            return;
        }
        assert_eq!(answer["code"], "no_such_user", "{answer}");
        assert!(
            Instant::now() < deadline,
            "the node never heard of {members:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}
