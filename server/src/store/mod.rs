//! The store: the database, owned by the dispatcher thread. The chat state
//! emits [`Op`]s while the dispatcher handles a batch of events; at the end
//! of the batch [`Store::commit`] applies them all in one transaction with
//! one fsync (group commit) and only then returns the [`Reply`]s, in order
//! — so nothing is acknowledged or delivered before it is durable, and
//! durability costs one fsync per batch, not per message.
//!
//! The chat state relies on the order: a reply comes after the replies of
//! every op emitted before it, and a read (`Backlog`, `History`, `Search`)
//! sees every write emitted before it.

mod db;
mod files;
mod groups;
mod identities;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use chat_common::Frame;
use crossbeam_channel::Sender;
use tracing::{error, warn};

use crate::framework::ConnId;

pub use db::{Account, Db, Sanction, SanctionKind, StoreError};
pub use files::{Answer, FileOp, FileRow, Receiver as FileReceiver};
pub use groups::{GroupChange, GroupRow};

/// An account's number in the database.
pub type UserId = i64;

/// A group's number in the database.
pub type GroupId = i64;

/// Most ops applied in one transaction: bounds the latency of a batch.
const MAX_BATCH: usize = 4096;

/// How often the WAL is copied into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    Public,
    User(UserId),
    /// Every member of the group: a place in each member's stream
    /// ([`NewMessage::fanout`]).
    Group(GroupId),
}

/// A message the dispatcher has accepted, to be made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub sender: UserId,
    pub cid: Option<String>,
    pub to: To,
    pub text: String,
    pub time: u64,
    /// The receiver was offline when it was sent (shown as "while away").
    pub away: bool,
    /// For a group message: its members, and whether each was offline.
    pub fanout: Vec<(UserId, bool)>,
}

/// Which request a reply answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub conn: ConnId,
    pub id: u64,
}

/// What the dispatcher asks of the store.
#[derive(Debug)]
pub enum Op {
    /// Says (`true`) once everything before it is committed, or `false` if
    /// that failed: the console waits on it so that "banned bob" means the
    /// ban is on disk.
    Notify(Sender<bool>),
    CreateAccount {
        user: UserId,
        nick: String,
        hash: String,
        time: u64,
    },
    Append {
        origin: Origin,
        message: NewMessage,
    },
    /// A change to the file offers (not answered).
    File(FileOp),
    /// Sets a ban or mute (`true`: lifts it).
    Sanction(Sanction, bool),
    /// `user`'s client has shown its stream up to `seq`.
    Received {
        user: UserId,
        seq: u64,
    },
    /// A page of what `user` missed: its stream after `last_seq` (default:
    /// after what it acknowledged) and the public stream after
    /// `last_public`. `first`: the page sent with the welcome.
    Backlog {
        origin: Origin,
        user: UserId,
        last_seq: Option<u64>,
        last_public: Option<u64>,
        first: bool,
    },
    History {
        origin: Origin,
        user: UserId,
        with: Option<UserId>,
        limit: u32,
    },
    Search {
        origin: Origin,
        user: UserId,
        words: String,
        from: Option<UserId>,
        limit: u32,
    },
    /// Changes groups and memberships, then answers `answer` (or
    /// `store_failed`) to `origin`, as [`Reply::Echo`].
    Group {
        origin: Origin,
        changes: Vec<GroupChange>,
        answer: Frame,
    },
    /// A group's last `limit` messages, for `history` with `#name`.
    GroupHistory {
        origin: Origin,
        group: GroupId,
        limit: u32,
    },
    /// Hands `frame` back untouched, in order: an answer that must not
    /// overtake the answers to the connection's earlier requests.
    Echo {
        origin: Origin,
        frame: Frame,
    },
}

/// A message read back from the store, ready to become a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The public seq (the message's number) or the receiver's stream seq.
    pub seq: u64,
    pub sender: String,
    /// `"*"` or the receiver's nickname.
    pub receiver: String,
    pub text: String,
    pub time: u64,
    pub away: bool,
}

/// One page of a backlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub messages: Vec<Loaded>,
    /// The public stream's last `seq` now.
    pub public_head: u64,
    /// Where the next page starts: the last own-stream seq and the last
    /// public seq in this page (or where this one started).
    pub last_seq: u64,
    pub last_public: Option<u64>,
    /// Messages missed after this page.
    pub left: u32,
}

/// How an `Append` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Durable; `seq` is its number in the public stream or the receiver's.
    New {
        seq: u64,
    },
    /// A group message, durable: its `seq` in each member's stream, in the
    /// order of [`NewMessage::fanout`].
    Fanned(Vec<u64>),
    /// The sender had sent this `cid` before; nothing was stored.
    Duplicate,
    Failed(String),
}

/// A private message whose receiver's client has shown it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub sender: UserId,
    pub cid: String,
    pub to: String,
}

/// What the store answers, in the order of the ops.
#[derive(Debug)]
pub enum Reply {
    /// Answered by [`Store::commit`] itself, after the commit (see
    /// `Op::Notify`); never reaches the dispatcher.
    Notify(Sender<bool>, bool),
    Appended {
        origin: Origin,
        message: NewMessage,
        outcome: Appended,
    },
    Delivered(Vec<Delivery>),
    Backlog {
        origin: Origin,
        user: UserId,
        result: Result<Page, String>,
    },
    Found {
        origin: Origin,
        result: Result<Vec<Loaded>, String>,
    },
    Echo {
        origin: Origin,
        frame: Frame,
    },
}

/// What the dispatcher keeps in memory, read from the database at start.
pub struct Startup {
    pub accounts: Vec<Account>,
    pub sanctions: Vec<Sanction>,
    pub groups: Vec<GroupRow>,
    pub files: Vec<FileRow>,
}

/// The database, owned by the dispatcher thread, which hands it each
/// batch's ops at the end of the batch: one transaction, one fsync, then
/// the replies, in order. (It used to be a thread of its own; the two
/// hand-overs per message cost more latency than the commit.) A second
/// connection checkpoints on its own thread.
pub struct Store {
    db: Db,
    /// Set by the checkpointer when the WAL has grown: see [`Db::catch_up`].
    catch_up: Arc<AtomicBool>,
    /// Dropped to stop the checkpointer.
    stop_checkpoints: Option<Sender<()>>,
    checkpointer: Option<JoinHandle<()>>,
}

impl Store {
    /// Opens (creating if needed) `dir/chat.db` and starts the checkpointer.
    /// `page_bytes` bounds the text in one page of a backlog (see
    /// `Op::Backlog`). Returns the store and what the dispatcher keeps in
    /// memory: the accounts, the sanctions, the groups and the file offers.
    pub fn open(dir: &Path, page_bytes: usize) -> Result<(Store, Startup), StoreError> {
        let path = dir.join("chat.db");
        let mut db = Db::open(&path, page_bytes)?;
        let loaded = Startup {
            accounts: db.accounts()?,
            sanctions: db.sanctions()?,
            groups: groups::load(db.conn())?,
            files: db.files()?,
        };
        let (stop_checkpoints, stop) = crossbeam_channel::bounded(0);
        let catch_up = Arc::new(AtomicBool::new(false));
        let checkpointer = Db::checkpointer(&path, CHECKPOINT_EVERY, stop, catch_up.clone())?;
        Ok((
            Store {
                db,
                catch_up,
                stop_checkpoints: Some(stop_checkpoints),
                checkpointer: Some(checkpointer),
            },
            loaded,
        ))
    }

    /// Applies `ops` in one transaction (split at [`MAX_BATCH`]) and returns
    /// their replies in order; `Op::Notify` is answered here.
    pub fn commit(&mut self, mut ops: Vec<Op>) -> Vec<Reply> {
        let mut replies = Vec::with_capacity(ops.len());
        while !ops.is_empty() {
            let rest = ops.split_off(ops.len().min(MAX_BATCH));
            for reply in self.db.apply(ops) {
                match reply {
                    Reply::Notify(tx, saved) => {
                        let _ = tx.send(saved);
                    }
                    reply => replies.push(reply),
                }
            }
            ops = rest;
        }
        self.catch_up_if_asked();
        replies
    }

    /// Copies into the database what the checkpointer left, if it asked
    /// (between two transactions; see [`Db::checkpointer`]).
    fn catch_up_if_asked(&mut self) {
        if self.catch_up.swap(false, Relaxed) {
            self.db.catch_up();
        }
    }

    /// Whether committed messages wait to be indexed for search.
    pub fn unindexed(&self) -> bool {
        self.db.unindexed()
    }

    /// Indexes the next few messages for search (a millisecond or two);
    /// false if that failed.
    pub fn index_step(&mut self) -> bool {
        let stepped = match self.db.index_step() {
            Ok(()) => true,
            Err(err) => {
                warn!("indexing messages for search: {err}");
                false
            }
        };
        // Steps back to back after a flood write to the WAL too.
        self.catch_up_if_asked();
        stepped
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        drop(self.stop_checkpoints.take());
        if let Some(thread) = self.checkpointer.take() {
            let _ = thread.join();
        }
    }
}

/// Logs a failed batch once; the ops' replies carry the failure.
pub(crate) fn log_batch_failure(err: &StoreError) {
    error!("the store could not commit a batch: {err}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that never pauses used to keep the WAL growing without
    /// bound (the checkpointer never found it wholly copied).
    #[test]
    fn the_wal_stays_bounded_under_writes_that_never_pause() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = Store::open(dir.path(), 64 * 1024).unwrap();
        store.commit(vec![Op::CreateAccount {
            user: 1,
            nick: "alice".into(),
            hash: "h".into(),
            time: 0,
        }]);
        let wal = dir.path().join("chat.db-wal");
        let text = "x".repeat(2000);
        let (mut written, mut largest) = (0u64, 0u64);
        let started = std::time::Instant::now();
        // Long enough for several checkpoint cycles: one that falls behind
        // on a busy machine (the WAL then grows for a cycle) is not failure.
        while written < 64 << 20 || started.elapsed() < CHECKPOINT_EVERY * 8 {
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
}
