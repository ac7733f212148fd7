//! The SQLite backend: one database file in WAL mode, written only by the
//! dispatcher's thread (through [`Backend`]); a second connection
//! checkpoints on its own thread ([`wal`]).
//!
//! Tables: `users` and `sanctions` ([`accounts`]), `messages` and `inbox`
//! ([`messages`]: `receiver` NULL means public, negative the group
//! `-receiver`; the public stream's `seq` is the message's `id`), `groups`
//! and `members` ([`groups`]), `files` and `file_receivers` ([`files`]),
//! and `messages_fts` ([`search`]).

mod accounts;
mod files;
mod groups;
mod identities;
mod messages;
mod search;
#[cfg(test)]
mod tests;
mod wal;

use std::path::Path;

use rusqlite::{Connection, Transaction};

use crate::store::failed::{fail_all, fail_replies};
use crate::store::{Appended, Backend, Op, Reply, Startup, StoreError};
use messages::Counters;
use wal::Checkpointer;

/// Most ops applied in one transaction: bounds the latency of a batch.
const MAX_BATCH: usize = 4096;

/// How many prepared statements the store keeps: more than it has.
const STATEMENT_CACHE: usize = 128;

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

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> StoreError {
        StoreError::Database(std::sync::Arc::new(err))
    }
}

/// The database, owned by the dispatcher thread, which hands it each
/// batch's ops at the end of the batch: one transaction, one fsync, then
/// the replies, in order. (It used to be a thread of its own; the two
/// hand-overs per message cost more latency than the commit.)
pub struct Sqlite {
    conn: Connection,
    counters: Counters,
    /// About how much text one page of a backlog may hold.
    page_bytes: usize,
    /// Messages may have been committed that the search index lacks.
    unindexed: bool,
    checkpointer: Checkpointer,
}

impl Sqlite {
    /// Opens (creating if needed) `dir/chat.db` and starts the checkpointer.
    /// `page_bytes` bounds the text in one page of a backlog (see
    /// `Op::Backlog`); `ident` is the chat's identity key of a name, which
    /// the `users.ident` column keeps unique ([`identities`]). Returns the
    /// store and what the dispatcher keeps in memory.
    pub fn open(
        dir: &Path,
        page_bytes: usize,
        ident: fn(&str) -> String,
    ) -> Result<(Sqlite, Startup), StoreError> {
        let path = dir.join("chat.db");
        let conn = Self::connect(&path, ident)?;
        let counters = Counters::load(&conn)?;
        let startup = Startup {
            accounts: accounts::load(&conn)?,
            sanctions: accounts::sanctions(&conn)?,
            groups: groups::load(&conn)?,
            files: files::load(&conn)?,
            public_head: counters.public_head,
            cluster: None,
        };
        let store = Sqlite {
            counters,
            conn,
            page_bytes,
            unindexed: true,
            checkpointer: Checkpointer::start(&path)?,
        };
        Ok((store, startup))
    }

    fn connect(path: &Path, ident: fn(&str) -> String) -> Result<Connection, StoreError> {
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
        conn.pragma_update(None, "journal_size_limit", wal::WAL_KEEP_BYTES)?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(groups::SCHEMA)?;
        conn.execute_batch(files::SCHEMA)?;
        identities::index(&mut conn, ident)?;
        Ok(conn)
    }

    /// Applies a batch in one transaction and returns the replies, which
    /// are valid only because the commit succeeded (or say it failed).
    fn apply<E>(&mut self, batch: Vec<Op<E>>) -> Vec<Reply<E>> {
        let tx = match self.conn.transaction() {
            Ok(tx) => tx,
            Err(err) => return fail_all(batch, &err.into()),
        };
        let appends = batch.iter().any(|op| matches!(op, Op::Append { .. }));
        let mut replies = Vec::with_capacity(batch.len());
        for op in batch {
            replies.extend(apply_one(&tx, &mut self.counters, self.page_bytes, op));
        }
        if let Err(err) = tx.commit() {
            let err = StoreError::from(err);
            log_batch_failure(&err);
            match Counters::load(&self.conn) {
                Ok(counters) => self.counters = counters,
                Err(err) => log_batch_failure(&err.into()),
            }
            return fail_replies(replies, &err);
        }
        self.unindexed |= appends;
        replies
    }

    /// Whether committed messages wait to be indexed for search.
    pub fn unindexed(&self) -> bool {
        self.unindexed
    }

    /// Indexes the next [`search::INDEX_STEP`] messages, in a transaction
    /// of its own that waits for no fsync (`synchronous=NORMAL`): the index
    /// can always be rebuilt from the messages, a power cut loses at most
    /// this step (the WAL's checksums drop it whole, with its
    /// `fts_indexed`), and the next message commit's fsync makes it
    /// durable anyway. A step is then ~0.3 ms of CPU, not that and an
    /// fsync, in front of whatever arrives meanwhile.
    pub fn index_step(&mut self) -> bool {
        let stepped = (|| {
            self.conn.pragma_update(None, "synchronous", "NORMAL")?;
            let indexed = (|| {
                let tx = self.conn.transaction()?;
                let done = search::index_chunk(&tx)?;
                tx.commit()?;
                Ok::<_, rusqlite::Error>(done)
            })();
            // Every other commit stays FULL, even if the step failed.
            self.conn.pragma_update(None, "synchronous", "FULL")?;
            self.unindexed = !indexed?;
            Ok::<_, rusqlite::Error>(())
        })();
        // Steps back to back after a flood write to the WAL too.
        self.checkpointer.wrote(&self.conn);
        match stepped {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!("indexing messages for search: {err}");
                false
            }
        }
    }
}

impl<E: Send> Backend<E> for Sqlite {
    /// Splits at [`MAX_BATCH`]; `Op::Notify` is answered here.
    fn commit(&mut self, mut ops: Vec<Op<E>>) -> Vec<Reply<E>> {
        let mut replies = Vec::with_capacity(ops.len());
        while !ops.is_empty() {
            let rest = ops.split_off(ops.len().min(MAX_BATCH));
            for reply in self.apply(ops) {
                match reply {
                    Reply::Notify(tx, saved) => {
                        let _ = tx.send(saved);
                    }
                    reply => replies.push(reply),
                }
            }
            ops = rest;
        }
        self.checkpointer.wrote(&self.conn);
        replies
    }

    fn unindexed(&self) -> bool {
        self.unindexed()
    }

    fn index_step(&mut self) -> bool {
        self.index_step()
    }
}

/// Logs a failed batch once; the ops' replies carry the failure.
fn log_batch_failure(err: &StoreError) {
    tracing::error!("the store could not commit a batch: {err}");
}

/// Applies one op inside the batch's transaction; its reply, if it has one.
fn apply_one<E>(
    tx: &Transaction,
    counters: &mut Counters,
    page_bytes: usize,
    op: Op<E>,
) -> Option<Reply<E>> {
    Some(match op {
        Op::Notify(tx) => Reply::Notify(tx, true),
        Op::Echo { origin, then } => Reply::Echo { origin, then },
        Op::CreateAccount {
            user,
            nick,
            folded,
            key,
            hash,
            time,
        } => {
            if let Err(err) = accounts::create(tx, user, &nick, &folded, &key, &hash, time) {
                tracing::error!("storing the account {nick}: {err}");
            }
            return None;
        }
        Op::SetPassword { user, hash } => {
            if let Err(err) = accounts::set_password(tx, user, &hash) {
                tracing::error!("storing the new password of user {user}: {err}");
            }
            return None;
        }
        // One node: who is online (and away) lives in the chat's memory only.
        Op::Online { .. } | Op::Offline { .. } | Op::Kick { .. } | Op::Away { .. } => return None,
        // One node: its throttle's memory is the whole count.
        Op::LoginFailed { .. } => return None,
        Op::File(op) => {
            if let Err(err) = files::apply(tx, &op) {
                tracing::error!("storing a file offer ({op:?}): {err}");
            }
            return None;
        }
        Op::Sanction(sanction, lift) => {
            if let Err(err) = accounts::sanction(tx, &sanction, lift) {
                let kind = sanction.kind.as_str();
                tracing::error!("storing a {kind} of user {}: {err}", sanction.user);
            }
            return None;
        }
        Op::Append { origin, message } => Reply::Appended {
            origin,
            outcome: messages::append(tx, counters, &message)
                .unwrap_or_else(|err| Appended::Failed(err.into())),
            message,
        },
        Op::Received { user, seq } => Reply::Delivered(
            messages::received(tx, counters, user, seq).unwrap_or_else(|err| {
                tracing::error!("recording what user {user} received: {err}");
                Vec::new()
            }),
        ),
        Op::Backlog {
            origin,
            user,
            last_seq,
            last_public,
            first,
        } => Reply::Backlog {
            origin,
            user,
            result: messages::backlog(tx, counters, page_bytes, user, last_seq, last_public, first)
                .map_err(StoreError::from),
        },
        Op::History {
            origin,
            user,
            with,
            limit,
        } => Reply::Found {
            origin,
            result: messages::history(tx, user, with, limit).map_err(StoreError::from),
        },
        Op::GroupHistory {
            origin,
            group,
            limit,
        } => Reply::Found {
            origin,
            result: messages::group_history(tx, group, limit).map_err(StoreError::from),
        },
        Op::Search {
            origin,
            user,
            words,
            from,
            limit,
        } => Reply::Found {
            origin,
            result: search::search(tx, user, &words, from, limit).map_err(StoreError::from),
        },
        Op::Group {
            origin,
            changes,
            then,
        } => Reply::Grouped {
            origin,
            result: groups::apply_all(tx, &changes).map_err(|err| {
                tracing::error!("storing a change of groups: {err}");
                StoreError::from(err)
            }),
            then,
        },
        Op::Tail { stream, after } => Reply::Tail {
            stream,
            after,
            result: messages::tail(tx, stream, after).map_err(StoreError::from),
        },
        Op::Heads(streams) => Reply::Heads(Ok(streams
            .into_iter()
            .map(|s| (s, counters.head(s)))
            .collect())),
    })
}
