//! The store: what the chat needs from durable storage, as one interface
//! ([`Backend`]) in the store's own terms — ops in, outcomes and rows out,
//! never chat frames — and its backends: SQLite ([`sqlite`], the embedded
//! default) and PostgreSQL ([`postgres`], `--cluster`: several nodes on one
//! database).
//!
//! What every backend promises (the chat state relies on it):
//! - **Order**: [`Backend::commit`] returns one reply per answered op, in
//!   the order of the ops; a read (`Backlog`, `History`, `Search`,
//!   `GroupHistory`) sees every write before it, in this batch or earlier.
//! - **Durability**: when `commit` returns, every write in the batch is on
//!   disk (fsync'd), or every reply of the batch says it failed: nothing is
//!   acknowledged or delivered before it is durable, and a batch costs one
//!   fsync, not one per message.
//! - **Sequence numbers**: the public stream's `seq` grows in the order of
//!   the commits (SQLite: the message's row number, with gaps; PostgreSQL:
//!   1, 2, 3 … with no gap); each user's stream is numbered 1, 2, 3 … with
//!   no gap, in the order of the commits; a group message takes the next number in every
//!   member's stream in the same commit. A resend (same sender and `cid`)
//!   stores nothing ([`Appended::Duplicate`]).
//! - **Fan-out**: a group message's [`NewMessage::fanout`] in its reply is
//!   the membership it was stored for: the chat's list on SQLite (the
//!   dispatcher is the only writer), the `members` rows read in the
//!   append's transaction on PostgreSQL (another node may have changed
//!   them).
//! - **Tails**: `Op::Tail` reads a stream after a seq, in seq order, with
//!   no gap: what another node committed reaches this node's users by it.
//! - **Opaque `E`**: `Op::Echo` and `Op::Group` carry a value of the
//!   chat's that comes back untouched, in its place among the replies.

mod accounts;
mod failed;
mod files;
mod groups;
pub mod postgres;
pub mod sqlite;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use crossbeam_channel::Sender;

use crate::framework::ConnId;

pub use accounts::{Account, Sanction, SanctionKind};
pub use files::{Answer, FileOp, FileRow, Receiver as FileReceiver};
pub use groups::{GroupChange, GroupRow};

/// An account's number in the database.
pub type UserId = i64;

/// A group's number in the database.
pub type GroupId = i64;

/// Why the store could not do something. Cheap to clone: one failed
/// commit fails every reply of its batch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(Arc<dyn std::error::Error + Send + Sync>),
    #[error("cannot start the checkpoint thread: {0}")]
    Thread(Arc<std::io::Error>),
    /// The store will not open, for a reason its message says in full
    /// (another node holds the cluster's lease, a newer schema).
    #[error("{0}")]
    Refused(String),
}

/// Errors compare by what they say: outcomes that carry one compare too.
impl PartialEq for StoreError {
    fn eq(&self, other: &StoreError) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for StoreError {}

/// Durable storage for the chat: see the module's promises.
pub trait Backend<E>: Send {
    /// Applies `ops` in order, durably, and returns their replies in order
    /// (`Op::Notify` is answered here and has none).
    fn commit(&mut self, ops: Vec<Op<E>>) -> Vec<Reply<E>>;
    /// Whether committed messages wait to be indexed for search.
    fn unindexed(&self) -> bool;
    /// Indexes the next few messages for search (a millisecond or two);
    /// false if that failed.
    fn index_step(&mut self) -> bool;
}

/// Where the store keeps its rows.
#[derive(Debug, Clone, Copy)]
pub enum Location<'a> {
    /// The embedded default: SQLite in this directory.
    Dir(&'a Path),
    /// PostgreSQL at `url` (`postgres://user@host:port/db`), as the node
    /// named `node`.
    Cluster { url: &'a str, node: &'a str },
}

/// Opens (creating if needed) the store: see [`sqlite::Sqlite::open`] and
/// [`postgres::Postgres::open`]. `page_bytes` bounds a backlog page's text;
/// `ident` is the chat's identity key of a nickname.
pub fn open<E: Send + 'static>(
    at: Location,
    page_bytes: usize,
    ident: fn(&str) -> String,
) -> Result<(Box<dyn Backend<E>>, Startup), StoreError> {
    Ok(match at {
        Location::Dir(dir) => {
            let (store, startup) = sqlite::Sqlite::open(dir, page_bytes, ident)?;
            (Box::new(store), startup)
        }
        Location::Cluster { url, node } => {
            let (store, startup) = postgres::Postgres::open(url, node, page_bytes, ident)?;
            (Box::new(store), startup)
        }
    })
}

/// A stream a node follows: the public one or a user's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    Public,
    User(UserId),
}

/// Most messages one `Op::Tail` returns; the chat asks again for more.
pub const TAIL_MESSAGES: usize = 256;

/// What a node hears from the others through the database (PostgreSQL's
/// `cluster` listener thread; SQLite hears nothing): a doorbell, never the
/// facts themselves, except the accounts and groups it reloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// These streams end here now (a commit, on this node or another).
    Heads(Vec<(Stream, u64)>),
    /// Something may have been missed (the listener reconnected, or a
    /// doorbell too long to say it all): ask where the streams end.
    Poll,
    /// Accounts created, or whose password changed, on any node.
    Accounts(Vec<Account>),
    /// Every group as it is now (one changed somewhere).
    Groups(Vec<GroupRow>),
    /// Who is online on the other nodes now (the `online` table changed
    /// somewhere); `left`: users whose node said why they left (the others
    /// went with their node).
    Online {
        users: Vec<Remote>,
        left: Vec<(UserId, String)>,
    },
    /// `user` logged in on another node while online here: its session
    /// here is closed (a takeover).
    TakenOver(UserId),
    /// Every ban and mute as they are now (one changed somewhere).
    Sanctions(Vec<Sanction>),
    /// An operator kicked `user`, wherever they are online.
    Kicked { user: UserId, reason: String },
    /// Every file offer as it is now (one was made, completed, answered
    /// or deleted somewhere).
    Files(Vec<FileRow>),
    /// Wrong passwords given on other nodes since the last such news.
    Failures(Vec<Failure>),
    /// Private messages whose receivers' clients have shown them, said on
    /// another node: their senders online here are told.
    Delivered(Vec<Delivery>),
    /// The nodes whose lease is live now (`live`, sorted, this one's
    /// included), and this node's id: for `/stats`.
    Nodes { here: String, live: Vec<String> },
}

/// A wrong password given on another node (the `login_failures` table),
/// for the login throttle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub user: UserId,
    /// The address as the throttle counts it (IPv4, or an IPv6 /64).
    pub network: IpAddr,
    /// How long ago, by the database's clock (ms).
    pub age_ms: u64,
}

/// A user online on another node (the `online` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub user: UserId,
    pub nick: String,
    pub node: String,
    /// Their away text (`None`: here).
    pub away: Option<String>,
}

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

/// What the chat asks of the store. `E` is the chat's own: the store hands
/// it back untouched, in order (see [`Op::Echo`]), and never looks inside.
#[derive(Debug)]
pub enum Op<E> {
    /// Says (`true`) once everything before it is committed, or `false` if
    /// that failed: the console waits on it so that "banned bob" means the
    /// ban is on disk.
    Notify(Sender<bool>),
    /// A new account. `folded` and `key` are the chat's lower-cased name
    /// and identity key: both unique.
    CreateAccount {
        user: UserId,
        nick: String,
        folded: String,
        key: String,
        hash: String,
        time: u64,
    },
    /// A new password hash for an account (not answered).
    SetPassword {
        user: UserId,
        hash: String,
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
    /// Changes groups and memberships, all or none, and answers
    /// [`Reply::Grouped`] with `then`.
    Group {
        origin: Origin,
        changes: Vec<GroupChange>,
        then: E,
    },
    /// A group's last `limit` messages, for `history` with `#name`.
    GroupHistory {
        origin: Origin,
        group: GroupId,
        limit: u32,
    },
    /// Hands `then` back untouched, in order: an answer that must not
    /// overtake the answers to the connection's earlier requests.
    Echo {
        origin: Origin,
        then: E,
    },
    /// Up to [`TAIL_MESSAGES`] messages of `stream` after seq `after`, in
    /// order: what committed elsewhere, for a node's live users.
    Tail {
        stream: Stream,
        after: u64,
    },
    /// Where each of `streams` ends now (the 1 s poll behind the doorbell).
    Heads(Vec<Stream>),
    /// `user` is online on this node through `conn` (a cluster's `online`
    /// table; not answered, nothing on SQLite): takes the account's row
    /// from whichever node had it, which is told if it lives.
    Online {
        user: UserId,
        nick: String,
        conn: ConnId,
    },
    /// The operator kicks `user`, online on another node: that node closes
    /// the session (a cluster's doorbell; not answered, nothing on SQLite).
    Kick {
        user: UserId,
        reason: String,
    },
    /// `user`'s session through `conn` is over (`reason`, as the presence
    /// line says): its row goes, if it is still this one's (not answered,
    /// nothing on SQLite).
    Offline {
        user: UserId,
        conn: ConnId,
        reason: String,
    },
    /// A wrong password for `user` from `network` (the throttle's
    /// address): a cluster's other nodes count it too; the failures older
    /// than `window_ms` go (not answered, nothing on SQLite).
    LoginFailed {
        user: UserId,
        network: IpAddr,
        window_ms: u64,
    },
    /// `user`, online here through `conn`, is away with `text` (`None`:
    /// back), for the other nodes' online lists (a cluster's `online`
    /// table; not answered, nothing on SQLite).
    Away {
        user: UserId,
        conn: ConnId,
        text: Option<String>,
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
    Failed(StoreError),
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
pub enum Reply<E> {
    /// Answered by [`Store::commit`] itself, after the commit (see
    /// `Op::Notify`); never reaches the chat.
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
        result: Result<Page, StoreError>,
    },
    Found {
        origin: Origin,
        result: Result<Vec<Loaded>, StoreError>,
    },
    Grouped {
        origin: Origin,
        result: Result<(), StoreError>,
        then: E,
    },
    Echo {
        origin: Origin,
        then: E,
    },
    /// The answer to `Op::Tail`.
    Tail {
        stream: Stream,
        after: u64,
        result: Result<Vec<Loaded>, StoreError>,
    },
    /// The answer to `Op::Heads`.
    Heads(Result<Vec<(Stream, u64)>, StoreError>),
}

/// What the dispatcher keeps in memory, read from the database at start.
pub struct Startup {
    pub accounts: Vec<Account>,
    pub sanctions: Vec<Sanction>,
    pub groups: Vec<GroupRow>,
    pub files: Vec<FileRow>,
    /// The public stream's last seq now.
    pub public_head: u64,
    /// Shared with other nodes (PostgreSQL): what they commit is heard
    /// here, and this node's new accounts and groups take their ids from
    /// its own block, starting here (`None`: the next after the largest).
    pub cluster: Option<Cluster>,
}

/// A node's part in a cluster.
pub struct Cluster {
    /// What the listener hears, for the dispatcher.
    pub heard: crossbeam_channel::Receiver<Heard>,
    /// The first id of this node's block for new accounts and groups
    /// (unique to this run of the node: ids never collide across nodes).
    pub first_id: i64,
    /// When the lease was last renewed, by this node's monotonic clock.
    pub renewed: Renewed,
    /// How long after the last renewal the node fences itself: early
    /// enough that the others have not yet reaped its users.
    pub fence_after: std::time::Duration,
}

/// The instant of a node's last lease renewal, set by the lease thread
/// and read by the dispatcher (which fences the node when it is too old).
#[derive(Debug, Clone)]
pub struct Renewed(std::sync::Arc<std::sync::Mutex<std::time::Instant>>);

impl Renewed {
    pub fn new(at: std::time::Instant) -> Renewed {
        Renewed(std::sync::Arc::new(std::sync::Mutex::new(at)))
    }

    /// The last renewal.
    pub fn at(&self) -> std::time::Instant {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A renewal succeeded at `at`.
    pub fn set(&self, at: std::time::Instant) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}
