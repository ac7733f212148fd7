//! The SQLite database: schema, and one method per [`Op`]. Only the
//! dispatcher calls it (through [`super::Store`]).
//!
//! Tables: `users` (accounts, and how far each has acknowledged its
//! stream), `messages` (every message, once; `receiver` NULL means public,
//! negative the group `-receiver`; the public stream's `seq` is the
//! message's `id`), `inbox` (each private or group message's place in its
//! receivers' streams), `groups` and `members` (`groups.rs`), and `messages_fts` (a
//! contentless FTS5 index, filled a step at a time between commits, so that
//! indexing never slows a commit nor holds the dispatcher for long).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::groups;
use super::{
    log_batch_failure, Appended, Delivery, GroupId, Loaded, NewMessage, Op, Page, Reply, To, UserId,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("cannot start the checkpoint thread: {0}")]
    Thread(std::io::Error),
}

/// An account as the dispatcher keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: UserId,
    pub nick: String,
    /// The argon2id hash in PHC string form (it carries its own parameters).
    pub hash: String,
    /// Its identity key ([`crate::identity::key`]); `None` for an account
    /// from an older database whose name looks like an earlier account's:
    /// nobody can log in to it or name it any more.
    pub key: Option<String>,
}

/// What the operator forbade an account: logging in, or sending messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SanctionKind {
    Ban,
    Mute,
}

impl SanctionKind {
    fn as_str(self) -> &'static str {
        match self {
            SanctionKind::Ban => "ban",
            SanctionKind::Mute => "mute",
        }
    }
}

/// A ban or mute in force (or expired, until it is next lifted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sanction {
    pub user: UserId,
    pub kind: SanctionKind,
    /// Unix ms when it ends; `None`: until lifted.
    pub until: Option<u64>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id      INTEGER PRIMARY KEY,
    nick    TEXT NOT NULL,
    folded  TEXT NOT NULL UNIQUE,
    hash    TEXT NOT NULL,
    created INTEGER NOT NULL,
    acked   INTEGER NOT NULL DEFAULT 0,
    ident   TEXT
);
CREATE TABLE IF NOT EXISTS messages (
    id       INTEGER PRIMARY KEY,
    sender   INTEGER NOT NULL,
    receiver INTEGER,
    cid      TEXT,
    text     TEXT NOT NULL,
    time     INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_cid ON messages(sender, cid) WHERE cid IS NOT NULL;
-- Public messages are found by walking the rowid backwards: an index on
-- them would cost every public message a second B-tree insert.
DROP INDEX IF EXISTS messages_public;
CREATE INDEX IF NOT EXISTS messages_pair ON messages(sender, receiver) WHERE receiver IS NOT NULL;
CREATE TABLE IF NOT EXISTS inbox (
    user    INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    message INTEGER NOT NULL,
    away    INTEGER NOT NULL,
    PRIMARY KEY (user, seq)
) WITHOUT ROWID;
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts
    USING fts5(text, content='', tokenize='unicode61 remove_diacritics 2');
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
-- Bans and mutes set by the operator; `until` in ms since the epoch, NULL
-- for good.
CREATE TABLE IF NOT EXISTS sanctions (
    user  INTEGER NOT NULL,
    kind  TEXT NOT NULL,
    until INTEGER,
    PRIMARY KEY (user, kind)
) WITHOUT ROWID;
";

/// Messages added to the search index in one step: a millisecond or two of
/// work, so that a step never holds the dispatcher for long. A search
/// indexes at most one step itself: after a flood it searches what is
/// indexed rather than keep everyone waiting (1,080,000 messages, indexed
/// inline, held every client for 2 s).
const INDEX_STEP: i64 = if cfg!(test) { 100 } else { 1000 };

pub struct Db {
    conn: Connection,
    counters: Counters,
    /// About how much text one page of a backlog may hold.
    page_bytes: usize,
    /// Messages may have been committed that the search index lacks.
    unindexed: bool,
}

/// How many prepared statements the store keeps: more than it has.
const STATEMENT_CACHE: usize = 128;

/// Frames (4 KiB pages) in the WAL beyond which the checkpointer asks the
/// writer to [`Db::catch_up`]: ~16 MiB (1 MiB in tests).
const WAL_CATCH_UP_FRAMES: i64 = if cfg!(test) { 256 } else { 4096 };

/// Frames written during a checkpointer's pass small enough for the writer
/// to copy (~1 MiB: a millisecond or two).
const CATCH_UP_GAP: i64 = 256;

/// Back-to-back checkpoint passes before the writer is asked regardless.
const CHASE_PASSES: usize = 8;

/// The WAL's size kept when it starts over; beyond it the file is cut.
const WAL_KEEP_BYTES: i64 = if cfg!(test) { 4 << 20 } else { 64 << 20 };

/// Where each stream ends, kept in memory so that appending and logging in
/// never search for it.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// The last seq used in each user's stream.
    streams: HashMap<UserId, u64>,
    /// The last public message's id (its seq).
    public_head: u64,
}

impl Db {
    pub fn open(path: &Path, page_bytes: usize) -> Result<Db, StoreError> {
        let mut conn = Connection::open(path)?;
        // Every statement the store runs stays prepared: with rusqlite's
        // default of 16, a login's handful of queries evicted each other
        // and SQLite parsed them again for every login.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // WAL: readers never block the writer. FULL: the WAL is fsync'd at
        // every commit, so an acknowledged message survives a power cut.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Checkpoints (copying the WAL into the database, with fsyncs of
        // their own) run on the checkpointer's connection, not in a commit
        // that someone's ack is waiting for.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // A WAL that grew during a burst is cut back to this when it
        // starts over.
        conn.pragma_update(None, "journal_size_limit", WAL_KEEP_BYTES)?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(groups::SCHEMA)?;
        conn.execute_batch(super::files::SCHEMA)?;
        super::identities::index(&mut conn)?;
        let mut db = Db {
            conn,
            counters: Counters::default(),
            page_bytes,
            unindexed: true,
        };
        db.load_counters()?;
        Ok(db)
    }

    fn load_counters(&mut self) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT user, max(seq) FROM inbox GROUP BY user")?;
        self.counters.streams = stmt
            .query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))?
            .collect::<Result<_, _>>()?;
        // Walks back from the end once, at start (public messages have no
        // index of their own).
        let head: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM messages WHERE receiver IS NULL ORDER BY id DESC LIMIT 1",
                [],
                |row| row.get(0),
            )
            .optional()?;
        self.counters.public_head = head.unwrap_or(0) as u64;
        Ok(())
    }

    /// The connection, for reading what the dispatcher loads at start.
    pub(super) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn sanctions(&mut self) -> Result<Vec<Sanction>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT user, kind, until FROM sanctions")?;
        let rows = stmt.query_map([], |row| {
            let kind: String = row.get(1)?;
            let until: Option<i64> = row.get(2)?;
            Ok(Sanction {
                user: row.get(0)?,
                kind: if kind == "mute" {
                    SanctionKind::Mute
                } else {
                    SanctionKind::Ban
                },
                until: until.map(|t| t as u64),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every file offer and its receivers.
    pub fn files(&mut self) -> Result<Vec<super::files::FileRow>, StoreError> {
        super::files::load(&self.conn)
    }

    pub fn accounts(&mut self) -> Result<Vec<Account>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, nick, hash, ident FROM users")?;
        let rows = stmt.query_map([], |row| {
            Ok(Account {
                id: row.get(0)?,
                nick: row.get(1)?,
                hash: row.get(2)?,
                key: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Applies a batch in one transaction and returns the replies, which
    /// are valid only because the commit succeeded (or say it failed).
    pub fn apply(&mut self, batch: Vec<Op>) -> Vec<Reply> {
        let tx = match self.conn.transaction() {
            Ok(tx) => tx,
            Err(err) => return fail_all(batch, &err.into()),
        };
        let mut replies = Vec::with_capacity(batch.len());
        let mut ops = Vec::new();
        let appends = batch.iter().any(|op| matches!(op, Op::Append { .. }));
        for op in batch {
            replies.extend(apply_one(&tx, &mut self.counters, self.page_bytes, &op));
            ops.push(op);
        }
        if let Err(err) = tx.commit() {
            let err = StoreError::from(err);
            log_batch_failure(&err);
            // The counters may have moved for rows that are not there.
            if let Err(err) = self.load_counters() {
                log_batch_failure(&err);
            }
            return fail_all(ops, &err);
        }
        self.unindexed |= appends;
        replies
    }

    /// Opens a second connection that copies the WAL into the database every
    /// `every` until `stop` is dropped (a PASSIVE checkpoint never blocks
    /// the writer). A writer that never pauses would keep the WAL growing
    /// (1 GB in ten seconds of private pairs): SQLite starts it over only
    /// once a checkpoint has copied all of it. So past
    /// [`WAL_CATCH_UP_FRAMES`] the checkpointer passes again at once, each
    /// pass copying what was written during the one before, until one
    /// leaves at most [`CATCH_UP_GAP`] behind; then it sets `catch_up`, and
    /// the writer copies that little itself ([`Db::catch_up`]).
    pub fn checkpointer(
        path: &Path,
        every: std::time::Duration,
        stop: crossbeam_channel::Receiver<()>,
        catch_up: Arc<AtomicBool>,
    ) -> Result<std::thread::JoinHandle<()>, StoreError> {
        let conn = Connection::open(path)?;
        std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || loop {
                let last = stop.recv_timeout(every).is_err_and(|e| e.is_disconnected());
                if chase(&conn) {
                    catch_up.store(true, Relaxed);
                }
                if last {
                    return;
                }
            })
            .map_err(StoreError::Thread)
    }

    /// Copies into the database the frames the checkpointer left (those
    /// written during its last, short pass), between two transactions of
    /// the only writer, so that the WAL is then wholly copied and the next
    /// commit starts it over.
    pub fn catch_up(&mut self) {
        if let Err(err) = checkpoint(&self.conn) {
            tracing::warn!("checkpointing the database: {err}");
        }
    }

    /// Whether committed messages wait to be indexed for search.
    pub fn unindexed(&self) -> bool {
        self.unindexed
    }

    /// Indexes the next [`INDEX_STEP`] messages for search, in a
    /// transaction of its own.
    pub fn index_step(&mut self) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let done = index_chunk(&tx)?;
        tx.commit()?;
        self.unindexed = !done;
        Ok(())
    }
}

/// A PASSIVE checkpoint (it never waits for the writer); returns the frames
/// in the WAL and those of them now copied into the database.
fn checkpoint(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get(1)?, row.get(2)?))
    })
}

/// The checkpointer's turn: one pass, and while the WAL is large, passes
/// back to back until one finds at most [`CATCH_UP_GAP`] new frames. True
/// when the writer should finish the job ([`Db::catch_up`]).
fn chase(conn: &Connection) -> bool {
    let mut copied: Option<i64> = None;
    for _ in 0..CHASE_PASSES {
        let (frames, done) = match checkpoint(conn) {
            Ok(counts) => counts,
            Err(err) => {
                tracing::warn!("checkpointing the database: {err}");
                return false;
            }
        };
        if frames < WAL_CATCH_UP_FRAMES {
            return false; // small, or started over meanwhile
        }
        if copied.is_some_and(|before| frames - before <= CATCH_UP_GAP) {
            return true;
        }
        copied = Some(done);
    }
    // Written faster than copied: a longer pause for the writer, once,
    // rather than a WAL without end.
    true
}

fn fail_all(batch: Vec<Op>, err: &StoreError) -> Vec<Reply> {
    batch
        .into_iter()
        .filter_map(|op| match op {
            Op::Append { origin, message } => Some(Reply::Appended {
                origin,
                message,
                outcome: Appended::Failed(err.to_string()),
            }),
            Op::Backlog { origin, user, .. } => Some(Reply::Backlog {
                origin,
                user,
                result: Err(err.to_string()),
            }),
            Op::History { origin, .. }
            | Op::Search { origin, .. }
            | Op::GroupHistory { origin, .. } => Some(Reply::Found {
                origin,
                result: Err(err.to_string()),
            }),
            Op::Group { origin, .. } => Some(Reply::Echo {
                origin,
                frame: chat_common::codec::encode(&crate::state::store_failed(
                    origin.id,
                    &err.to_string(),
                )),
            }),
            Op::Echo { origin, frame } => Some(Reply::Echo { origin, frame }),
            Op::Notify(tx) => Some(Reply::Notify(tx, false)),
            Op::CreateAccount { .. } | Op::Received { .. } | Op::Sanction(..) | Op::File(_) => None,
        })
        .collect()
}

fn apply_one(
    tx: &Transaction,
    counters: &mut Counters,
    page_bytes: usize,
    op: &Op,
) -> Option<Reply> {
    Some(match op {
        Op::Notify(tx) => Reply::Notify(tx.clone(), true),
        Op::Echo { origin, frame } => Reply::Echo {
            origin: *origin,
            frame: frame.clone(),
        },
        Op::CreateAccount {
            user,
            nick,
            hash,
            time,
        } => {
            let result = tx
                .prepare_cached(
                    "INSERT INTO users (id, nick, folded, ident, hash, created)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .and_then(|mut s| {
                    let (folded, key) = (crate::state::fold(nick), crate::identity::key(nick));
                    s.execute(params![user, nick, folded, key, hash, *time as i64])
                });
            if let Err(err) = result {
                tracing::error!("storing the account {nick}: {err}");
            }
            return None;
        }
        Op::File(op) => {
            if let Err(err) = super::files::apply(tx, op) {
                tracing::error!("storing a file offer ({op:?}): {err}");
            }
            return None;
        }
        Op::Sanction(sanction, lift) => {
            let kind = sanction.kind.as_str();
            let result = if *lift {
                tx.prepare_cached("DELETE FROM sanctions WHERE user = ?1 AND kind = ?2")
                    .and_then(|mut s| s.execute(params![sanction.user, kind]))
            } else {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO sanctions (user, kind, until) VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        sanction.user,
                        kind,
                        sanction.until.map(|t| t as i64)
                    ])
                })
            };
            if let Err(err) = result {
                tracing::error!("storing a {kind} of user {}: {err}", sanction.user);
            }
            return None;
        }
        Op::Append { origin, message } => Reply::Appended {
            origin: *origin,
            message: message.clone(),
            outcome: append(tx, counters, message)
                .unwrap_or_else(|err| Appended::Failed(err.to_string())),
        },
        Op::Received { user, seq } => {
            Reply::Delivered(received(tx, counters, *user, *seq).unwrap_or_else(|err| {
                tracing::error!("recording what user {user} received: {err}");
                Vec::new()
            }))
        }
        Op::Backlog {
            origin,
            user,
            last_seq,
            last_public,
            first,
        } => Reply::Backlog {
            origin: *origin,
            user: *user,
            result: backlog(
                tx,
                counters,
                page_bytes,
                *user,
                *last_seq,
                *last_public,
                *first,
            )
            .map_err(|e| e.to_string()),
        },
        Op::History {
            origin,
            user,
            with,
            limit,
        } => Reply::Found {
            origin: *origin,
            result: history(tx, *user, *with, *limit).map_err(|e| e.to_string()),
        },
        Op::Group {
            origin,
            changes,
            answer,
        } => {
            // All of a request's changes or none of them.
            let result = tx.execute_batch("SAVEPOINT grp").and_then(|()| {
                for change in changes {
                    if let Err(err) = groups::apply(tx, change) {
                        tx.execute_batch("ROLLBACK TO grp; RELEASE grp")?;
                        return Err(err);
                    }
                }
                tx.execute_batch("RELEASE grp")
            });
            let frame = match result {
                Ok(()) => answer.clone(),
                Err(err) => {
                    tracing::error!("storing a change of groups: {err}");
                    chat_common::codec::encode(&crate::state::store_failed(
                        origin.id,
                        &err.to_string(),
                    ))
                }
            };
            Reply::Echo {
                origin: *origin,
                frame,
            }
        }
        Op::GroupHistory {
            origin,
            group,
            limit,
        } => Reply::Found {
            origin: *origin,
            result: group_history(tx, *group, *limit).map_err(|e| e.to_string()),
        },
        Op::Search {
            origin,
            user,
            words,
            from,
            limit,
        } => Reply::Found {
            origin: *origin,
            result: search(tx, *user, words, *from, *limit).map_err(|e| e.to_string()),
        },
    })
}

fn append(tx: &Transaction, counters: &mut Counters, m: &NewMessage) -> rusqlite::Result<Appended> {
    append_rows(tx, counters, m)
}

fn append_rows(
    tx: &Transaction,
    counters: &mut Counters,
    m: &NewMessage,
) -> rusqlite::Result<Appended> {
    let receiver = match m.to {
        To::Public => None,
        To::User(user) => Some(user),
        To::Group(group) => Some(groups::receiver(group)),
    };
    // OR IGNORE: a second (sender, cid) is a resend, not an error.
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO messages (sender, receiver, cid, text, time)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![m.sender, receiver, m.cid, m.text, m.time as i64])?;
    if inserted == 0 {
        return Ok(Appended::Duplicate);
    }
    let id = tx.last_insert_rowid();
    let seq = match m.to {
        To::Public => {
            counters.public_head = id as u64;
            id as u64
        }
        To::User(user) => {
            let seq = counters.streams.get(&user).copied().unwrap_or(0) + 1;
            let placed = tx
                .prepare_cached(
                    "INSERT INTO inbox (user, seq, message, away) VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut s| s.execute(params![user, seq as i64, id, m.away]));
            if let Err(err) = placed {
                // A private message is two rows, both or neither: without
                // its place in a stream the message must not stay (its cid
                // would make the sender's retry look like a duplicate).
                // Cheaper than a savepoint around every append.
                tx.prepare_cached("DELETE FROM messages WHERE id = ?1")?
                    .execute([id])?;
                return Err(err);
            }
            counters.streams.insert(user, seq);
            seq
        }
        To::Group(_) => return fan_out(tx, counters, id, &m.fanout),
    };
    Ok(Appended::New { seq })
}

/// Gives group message `id` a place in every member's stream: one inbox row
/// each, in this transaction, so the commit that makes it durable makes it
/// everyone's. All or nothing, like a private message's two rows.
fn fan_out(
    tx: &Transaction,
    counters: &mut Counters,
    id: i64,
    fanout: &[(UserId, bool)],
) -> rusqlite::Result<Appended> {
    let mut seqs = Vec::with_capacity(fanout.len());
    let placed = (|| {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO inbox (user, seq, message, away) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for &(user, away) in fanout {
            let seq = counters.streams.get(&user).copied().unwrap_or(0) + 1;
            stmt.execute(params![user, seq as i64, id, away])?;
            seqs.push(seq);
        }
        Ok(())
    })();
    if let Err(err) = placed {
        let placed: Vec<(UserId, u64)> = fanout.iter().map(|f| f.0).zip(seqs).collect();
        let mut undo = tx.prepare_cached("DELETE FROM inbox WHERE user = ?1 AND seq = ?2")?;
        for (user, seq) in placed {
            undo.execute(params![user, seq as i64])?;
        }
        tx.prepare_cached("DELETE FROM messages WHERE id = ?1")?
            .execute([id])?;
        return Err(err);
    }
    for (&(user, _), &seq) in fanout.iter().zip(&seqs) {
        counters.streams.insert(user, seq);
    }
    Ok(Appended::Fanned(seqs))
}

/// Moves `user`'s acknowledged mark to `seq` and returns the private
/// messages that this newly covers, for their senders.
fn received(
    tx: &Transaction,
    counters: &Counters,
    user: UserId,
    seq: u64,
) -> rusqlite::Result<Vec<Delivery>> {
    let seq = seq.min(counters.streams.get(&user).copied().unwrap_or(0)) as i64;
    let acked: i64 = tx
        .prepare_cached("SELECT acked FROM users WHERE id = ?1")?
        .query_row([user], |row| row.get(0))?;
    if seq <= acked {
        return Ok(Vec::new());
    }
    tx.prepare_cached("UPDATE users SET acked = ?2 WHERE id = ?1")?
        .execute(params![user, seq])?;
    let mut stmt = tx.prepare_cached(
        "SELECT m.sender, m.cid, u.nick FROM inbox i
         JOIN messages m ON m.id = i.message JOIN users u ON u.id = i.user
         WHERE i.user = ?1 AND i.seq > ?2 AND i.seq <= ?3 AND m.cid IS NOT NULL
           AND m.receiver > 0
         ORDER BY i.seq",
    )?;
    let rows = stmt.query_map(params![user, acked, seq], |row| {
        Ok(Delivery {
            sender: row.get(0)?,
            cid: row.get(1)?,
            to: row.get(2)?,
        })
    })?;
    rows.collect()
}

/// A message row as the queries below select it, for [`Loaded`]; they join
/// [`LOADED_JOINS`].
const LOADED_COLUMNS: &str = "s.nick, coalesce('#' || g.name, r.nick, '*'), m.text, m.time";

/// The sender, and the user or group a message went to.
const LOADED_JOINS: &str = "JOIN users s ON s.id = m.sender LEFT JOIN users r ON r.id = m.receiver
     LEFT JOIN groups g ON g.id = -m.receiver";

fn loaded(row: &rusqlite::Row, seq: u64, away: bool) -> rusqlite::Result<Loaded> {
    Ok(Loaded {
        seq,
        sender: row.get(0)?,
        receiver: row.get(1)?,
        text: row.get(2)?,
        time: row.get::<_, i64>(3)? as u64,
        away,
    })
}

/// Most messages in one page of a backlog.
const PAGE_MESSAGES: usize = 256;

/// Reads the next page of what `user` missed: its stream after `last_seq`
/// (default: after what it acknowledged) merged, in the order the server
/// accepted them, with the public stream after `last_public` (on the first
/// page, at most the [`REPLAY_PUBLIC`] newest). A page holds at most
/// [`PAGE_MESSAGES`] messages and about `page_bytes` of text, so that it
/// fits the connection's send queue; `left` says how many more wait.
///
/// [`REPLAY_PUBLIC`]: chat_common::protocol::REPLAY_PUBLIC
fn backlog(
    tx: &Transaction,
    counters: &Counters,
    page_bytes: usize,
    user: UserId,
    last_seq: Option<u64>,
    last_public: Option<u64>,
    first: bool,
) -> rusqlite::Result<Page> {
    let since = match last_seq {
        Some(seq) => clamp(seq),
        None => tx
            .prepare_cached("SELECT acked FROM users WHERE id = ?1")?
            .query_row([user], |row| row.get(0))
            .optional()?
            .unwrap_or(0),
    };
    let mut public_after = last_public.map(clamp);
    if let (Some(after), true) = (public_after, first) {
        // Replay at most the newest REPLAY_PUBLIC public messages.
        let oldest_kept: Option<i64> = tx
            .prepare_cached(&format!(
                "SELECT id FROM messages WHERE receiver IS NULL AND id > ?1
                 ORDER BY id DESC LIMIT 1 OFFSET {}",
                chat_common::protocol::REPLAY_PUBLIC - 1
            ))?
            .query_row([after], |row| row.get(0))
            .optional()?;
        if let Some(oldest) = oldest_kept {
            public_after = Some(after.max(oldest - 1));
        }
    }
    // Constant limits are written into the SQL: a bound LIMIT makes SQLite
    // (built with STAT4) prepare the statement again at every run.
    let limit = PAGE_MESSAGES + 1;
    // (message id, is public, message), merged by message id.
    let mut candidates: Vec<(i64, bool, Loaded)> = Vec::new();
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {LOADED_COLUMNS}, i.seq, i.away, m.id FROM inbox i
         JOIN messages m ON m.id = i.message {LOADED_JOINS}
         WHERE i.user = ?1 AND i.seq > ?2 ORDER BY i.seq LIMIT {limit}"
    ))?;
    let rows = stmt.query_map(params![user, since], |row| {
        let m = loaded(row, row.get::<_, i64>(4)? as u64, row.get(5)?)?;
        Ok((row.get(6)?, false, m))
    })?;
    for row in rows {
        candidates.push(row?);
    }
    if let Some(after) = public_after {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {LOADED_COLUMNS}, m.id FROM messages m
             {LOADED_JOINS}
             WHERE m.receiver IS NULL AND m.id > ?1 ORDER BY m.id LIMIT {limit}"
        ))?;
        let rows = stmt.query_map([after], |row| {
            let id: i64 = row.get(4)?;
            Ok((id, true, loaded(row, id as u64, false)?))
        })?;
        for row in rows {
            candidates.push(row?);
        }
    }
    candidates.sort_by_key(|(id, _, _)| *id);
    let (mut cursor_seq, mut cursor_public) = (since, public_after);
    let (mut messages, mut bytes) = (Vec::new(), 0);
    for (id, public, m) in candidates {
        if messages.len() == PAGE_MESSAGES || (bytes > 0 && bytes + m.text.len() > page_bytes) {
            break;
        }
        bytes += m.text.len();
        if public {
            cursor_public = Some(id);
        } else {
            cursor_seq = m.seq as i64;
        }
        messages.push(m);
    }
    let own_left: i64 = tx
        .prepare_cached("SELECT count(*) FROM inbox WHERE user = ?1 AND seq > ?2")?
        .query_row(params![user, cursor_seq], |row| row.get(0))?;
    let public_left: i64 = match cursor_public {
        Some(after) => tx
            .prepare_cached("SELECT count(*) FROM messages WHERE receiver IS NULL AND id > ?1")?
            .query_row([after], |row| row.get(0))?,
        None => 0,
    };
    Ok(Page {
        messages,
        public_head: counters.public_head,
        last_seq: cursor_seq as u64,
        last_public: cursor_public.map(|p| p as u64),
        left: (own_left + public_left).min(u32::MAX as i64) as u32,
    })
}

/// A position a client sent, as SQLite's signed integer: anything beyond
/// the largest is "after everything".
fn clamp(seq: u64) -> i64 {
    seq.min(i64::MAX as u64) as i64
}

fn history(
    tx: &Transaction,
    user: UserId,
    with: Option<UserId>,
    limit: u32,
) -> rusqlite::Result<Vec<Loaded>> {
    let sql = match with {
        None => format!(
            "SELECT {LOADED_COLUMNS}, m.id FROM messages m
             {LOADED_JOINS}
             WHERE m.receiver IS NULL ORDER BY m.id DESC LIMIT ?3"
        ),
        Some(_) => format!(
            "SELECT {LOADED_COLUMNS}, m.id FROM messages m
             {LOADED_JOINS}
             WHERE (m.sender = ?1 AND m.receiver = ?2) OR (m.sender = ?2 AND m.receiver = ?1)
             ORDER BY m.id DESC LIMIT ?3"
        ),
    };
    let mut stmt = tx.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![user, with.unwrap_or(0), limit], |row| {
        loaded(row, row.get::<_, i64>(4)? as u64, false)
    })?;
    let mut found: Vec<Loaded> = rows.collect::<Result<_, _>>()?;
    found.reverse();
    Ok(found)
}

/// The last `limit` messages to `group`, oldest first.
fn group_history(tx: &Transaction, group: GroupId, limit: u32) -> rusqlite::Result<Vec<Loaded>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {LOADED_COLUMNS}, m.id FROM messages m {LOADED_JOINS}
         WHERE m.receiver = ?1 ORDER BY m.id DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![groups::receiver(group), limit], |row| {
        loaded(row, row.get::<_, i64>(4)? as u64, false)
    })?;
    let mut found: Vec<Loaded> = rows.collect::<Result<_, _>>()?;
    found.reverse();
    Ok(found)
}

/// Turns what a user typed into an FTS5 query: each word a quoted phrase,
/// all required, so FTS5's own syntax (`AND`, `*`, `:` …) is never
/// interpreted and a stray quote cannot make the query fail.
pub(crate) fn fts_query(words: &str) -> Option<String> {
    // A NUL ends a C string: SQLite would see a cut-off query.
    let terms: Vec<String> = words
        .split(|c: char| c.is_whitespace() || c == '\0')
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

fn search(
    tx: &Transaction,
    user: UserId,
    words: &str,
    from: Option<UserId>,
    limit: u32,
) -> rusqlite::Result<Vec<Loaded>> {
    // One step, all or nothing (a step cut between its two statements
    // would index those messages again, and FTS5 refuses a rowid twice);
    // if it fails, the search still runs on what is indexed.
    let stepped = tx.execute_batch("SAVEPOINT step").and_then(|()| {
        if let Err(err) = index_chunk(tx) {
            tx.execute_batch("ROLLBACK TO step; RELEASE step")?;
            return Err(err);
        }
        tx.execute_batch("RELEASE step")
    });
    if let Err(err) = stepped {
        tracing::warn!("indexing messages for search: {err}");
    }
    let Some(query) = fts_query(words) else {
        return Ok(Vec::new());
    };
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {LOADED_COLUMNS}, m.id FROM messages_fts f
         JOIN messages m ON m.id = f.rowid
         {LOADED_JOINS}
         WHERE messages_fts MATCH ?1
           AND (m.receiver IS NULL OR m.sender = ?2 OR m.receiver = ?2
                OR (m.receiver < 0 AND EXISTS
                    (SELECT 1 FROM members WHERE grp = -m.receiver AND user = ?2)))
           AND (?3 IS NULL OR m.sender = ?3)
         ORDER BY m.id DESC LIMIT ?4"
    ))?;
    let rows = stmt.query_map(params![query, user, from, limit], |row| {
        loaded(row, row.get::<_, i64>(4)? as u64, false)
    })?;
    rows.collect()
}

/// Adds the next [`INDEX_STEP`] messages to the search index; true when
/// none is left.
fn index_chunk(tx: &Transaction) -> rusqlite::Result<bool> {
    let indexed: i64 = tx
        .prepare_cached("SELECT value FROM meta WHERE key = 'fts_indexed'")?
        .query_row([], |row| row.get(0))
        .optional()?
        .unwrap_or(0);
    let (upto, count): (Option<i64>, i64) = tx
        .prepare_cached(&format!(
            "SELECT max(id), count(*) FROM
               (SELECT id FROM messages WHERE id > ?1 ORDER BY id LIMIT {INDEX_STEP})"
        ))?
        .query_row([indexed], |row| Ok((row.get(0)?, row.get(1)?)))?;
    let Some(upto) = upto else {
        return Ok(true);
    };
    tx.prepare_cached(
        "INSERT INTO messages_fts (rowid, text) SELECT id, text FROM messages WHERE id > ?1 AND id <= ?2",
    )?
    .execute(params![indexed, upto])?;
    tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('fts_indexed', ?1)")?
        .execute([upto])?;
    Ok(count < INDEX_STEP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Origin;

    fn origin() -> Origin {
        Origin { conn: 1, id: 1 }
    }

    fn db() -> (tempfile::TempDir, Db) {
        db_paging(64 * 1024)
    }

    /// A database with alice (1) and bob (2), whose backlog pages hold
    /// about `page_bytes` of text.
    fn db_paging(page_bytes: usize) -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("chat.db"), page_bytes).unwrap();
        for (id, nick) in [(1, "alice"), (2, "bob")] {
            db.apply(vec![Op::CreateAccount {
                user: id,
                nick: nick.into(),
                hash: "h".into(),
                time: 0,
            }]);
        }
        (dir, db)
    }

    fn send(db: &mut Db, from: UserId, to: To, cid: Option<&str>, text: &str) -> Appended {
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
            .apply(vec![Op::Append {
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
        db: &mut Db,
        user: UserId,
        last_seq: Option<u64>,
        last_public: Option<u64>,
        first: bool,
    ) -> Page {
        match db
            .apply(vec![Op::Backlog {
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
        db: &mut Db,
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
        let delivered = match db.apply(vec![Op::Received { user: 2, seq: 1 }]).pop() {
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
        db.apply(vec![Op::Received { user: 2, seq: 99 }]);
        send(&mut db, 1, To::User(2), Some("c"), "p3");
        assert_eq!(backlog_of(&mut db, 2, None, None), [(3, "p3".into())]);
    }

    #[test]
    fn history_and_search_respect_privacy() {
        let (_dir, mut db) = db();
        db.apply(vec![Op::CreateAccount {
            user: 3,
            nick: "eve".into(),
            hash: "h".into(),
            time: 0,
        }]);
        send(&mut db, 1, To::User(2), None, "the exam is on Friday");
        send(&mut db, 2, To::Public, None, "when is the exam?");
        send(&mut db, 1, To::Public, None, "café au lait");
        let found = |db: &mut Db, user, words: &str, from| match db
            .apply(vec![Op::Search {
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
        let history = match db
            .apply(vec![Op::History {
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
        db.apply(batch);
        assert!(db.unindexed());
        let search = |db: &mut Db| match db
            .apply(vec![Op::Search {
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
            db.index_step().unwrap();
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
        db.index_step().unwrap();
        assert!(!db.unindexed());
    }

    #[test]
    fn counters_survive_reopening() {
        let (dir, mut db) = db();
        send(&mut db, 1, To::User(2), None, "one");
        drop(db);
        let mut db = Db::open(&dir.path().join("chat.db"), 64 * 1024).unwrap();
        assert_eq!(db.accounts().unwrap().len(), 2);
        assert_eq!(
            send(&mut db, 1, To::User(2), None, "two"),
            Appended::New { seq: 2 }
        );
    }
}
