//! The store thread: the only owner of the database. The dispatcher sends it
//! [`Op`]s; it applies everything that has arrived meanwhile in one
//! transaction with one fsync (group commit) and only then sends the
//! [`Reply`]s back, in order — so nothing is acknowledged or delivered
//! before it is durable, and durability costs one fsync per batch, not per
//! message.
//!
//! The dispatcher relies on the order: a reply is sent after the replies of
//! every op queued before it, and a read (`Backlog`, `History`, `Search`)
//! sees every write queued before it.

mod db;
mod files;
mod groups;
mod identities;

use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use chat_common::Frame;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
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

/// After this long with nothing to do, the store indexes messages for search.
const IDLE: Duration = Duration::from_millis(500);

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
    /// Handled by the store thread itself, after the commit (see
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

/// The running store thread. Dropping every `Sender<Op>` stops it after it
/// has committed what it was sent.
pub struct Store {
    pub ops: Sender<Op>,
    pub replies: Receiver<Reply>,
    thread: JoinHandle<()>,
}

impl Store {
    /// Opens (creating if needed) `dir/chat.db` and starts the thread.
    /// Returns the accounts, for the dispatcher's directory.
    /// `page_bytes` bounds the text in one page of a backlog (see `Op::Backlog`).
    /// Opens the database; returns the store thread and what the dispatcher
    /// keeps in memory: the accounts, the sanctions, the groups and the
    /// file offers.
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
        let checkpointer = Db::checkpointer(&path, CHECKPOINT_EVERY, stop)?;
        let (ops, inbox) = crossbeam_channel::unbounded();
        let (out, replies) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("store".into())
            .spawn(move || {
                run(&mut db, &inbox, &out);
                drop(stop_checkpoints);
                let _ = checkpointer.join();
            })
            .map_err(StoreError::Thread)?;
        Ok((
            Store {
                ops,
                replies,
                thread,
            },
            loaded,
        ))
    }

    /// Waits for the thread to commit what it was sent and stop; the caller
    /// must have dropped every other `Sender<Op>`.
    pub fn join(self) {
        drop(self.ops);
        let _ = self.thread.join();
    }
}

fn run(db: &mut Db, inbox: &Receiver<Op>, out: &Sender<Reply>) {
    loop {
        let first = match inbox.recv_timeout(IDLE) {
            Ok(op) => op,
            Err(RecvTimeoutError::Timeout) => {
                if let Err(err) = db.index_some() {
                    warn!("indexing messages for search: {err}");
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match inbox.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        for reply in db.apply(batch) {
            if let Reply::Notify(tx, saved) = reply {
                let _ = tx.send(saved);
            } else if out.send(reply).is_err() {
                return;
            }
        }
    }
}

/// Logs a failed batch once; the ops' replies carry the failure.
pub(crate) fn log_batch_failure(err: &StoreError) {
    error!("the store could not commit a batch: {err}");
}
