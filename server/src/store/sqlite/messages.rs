//! The `messages` and `inbox` tables: every message once, and each private
//! or group message's place in its receivers' streams; the backlog a login
//! replays and the history a user asks for.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension, Transaction};

use super::groups;
use crate::store::{
    Appended, Delivery, GroupId, Loaded, NewMessage, Page, Stream, To, UserId, TAIL_MESSAGES,
};

/// Where each stream ends, kept in memory so that appending and logging in
/// never search for it.
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// The last seq used in each user's stream.
    pub(super) streams: HashMap<UserId, u64>,
    /// The last public message's id (its seq).
    pub(super) public_head: u64,
}

impl Counters {
    /// Reads where every stream ends (once, at start, and after a commit
    /// failed: the counters may have moved for rows that are not there).
    pub(super) fn load(conn: &rusqlite::Connection) -> rusqlite::Result<Counters> {
        let streams = conn
            .prepare("SELECT user, max(seq) FROM inbox GROUP BY user")?
            .query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))?
            .collect::<Result<_, _>>()?;
        // Walks back from the end once (public messages have no index of
        // their own).
        let head: Option<i64> = conn
            .query_row(
                "SELECT id FROM messages WHERE receiver IS NULL ORDER BY id DESC LIMIT 1",
                [],
                |row| row.get(0),
            )
            .optional()?;
        Ok(Counters {
            streams,
            public_head: head.unwrap_or(0) as u64,
        })
    }
}

impl Counters {
    /// Where `stream` ends.
    pub(super) fn head(&self, stream: Stream) -> u64 {
        match stream {
            Stream::Public => self.public_head,
            Stream::User(user) => self.streams.get(&user).copied().unwrap_or(0),
        }
    }
}

/// Up to [`TAIL_MESSAGES`] messages of `stream` after `after`, in order
/// (the backlog's queries, one stream at a time).
pub(super) fn tail(tx: &Transaction, stream: Stream, after: u64) -> rusqlite::Result<Vec<Loaded>> {
    let (sql, key) = match stream {
        Stream::User(user) => (
            format!(
                "SELECT {LOADED_COLUMNS}, i.seq, i.away FROM inbox i
                 JOIN messages m ON m.id = i.message {LOADED_JOINS}
                 WHERE i.user = ?1 AND i.seq > ?2 ORDER BY i.seq LIMIT {TAIL_MESSAGES}"
            ),
            user,
        ),
        Stream::Public => (
            format!(
                "SELECT {LOADED_COLUMNS}, m.id, 0 FROM messages m {LOADED_JOINS}
                 WHERE m.receiver IS NULL AND ?1 = ?1 AND m.id > ?2
                 ORDER BY m.id LIMIT {TAIL_MESSAGES}"
            ),
            0,
        ),
    };
    let mut stmt = tx.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![key, clamp(after)], |row| {
        loaded(row, row.get::<_, i64>(4)? as u64, row.get(5)?)
    })?;
    rows.collect()
}

pub(super) fn append(
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
pub(super) fn received(
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
pub(super) const LOADED_COLUMNS: &str =
    "s.nick, coalesce('#' || g.name, r.nick, '*'), m.text, m.time";

/// The sender, and the user or group a message went to.
pub(super) const LOADED_JOINS: &str =
    "JOIN users s ON s.id = m.sender LEFT JOIN users r ON r.id = m.receiver
     LEFT JOIN groups g ON g.id = -m.receiver";

pub(super) fn loaded(row: &rusqlite::Row, seq: u64, away: bool) -> rusqlite::Result<Loaded> {
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
pub(super) fn backlog(
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

pub(super) fn history(
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
pub(super) fn group_history(
    tx: &Transaction,
    group: GroupId,
    limit: u32,
) -> rusqlite::Result<Vec<Loaded>> {
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
