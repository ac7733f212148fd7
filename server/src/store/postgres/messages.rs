//! The `messages`, `inbox` and `heads` tables: every message once, each
//! private or group message's place in its receivers' streams, and where
//! each stream ends; the backlog a login replays and the history a user
//! asks for.
//!
//! A run of appends is a handful of statements whatever its length (arrays
//! through `unnest`), not one round trip per message: lock the heads, find
//! resends, take ids, insert the messages, their inbox rows, move the heads.

use std::collections::{BTreeMap, HashMap, HashSet};

use postgres::{Error, Row};

use super::search::fold;
use super::sql::{clamp, escape, unescape, Tx};
use crate::store::{
    Appended, Delivery, GroupId, Loaded, NewMessage, Page, Stream, To, UserId, TAIL_MESSAGES,
};

/// The public stream's row in `heads` (users' ids start at 1).
pub(super) const PUBLIC: i64 = 0;

/// `stream`'s row in `heads`.
pub(super) fn row_of(stream: Stream) -> i64 {
    match stream {
        Stream::Public => PUBLIC,
        Stream::User(user) => user,
    }
}

/// The `receiver` column: NULL public, the user, or the group negated.
fn receiver(to: To) -> Option<i64> {
    match to {
        To::Public => None,
        To::User(user) => Some(user),
        To::Group(group) => Some(-group),
    }
}

/// The streams a message takes a place in.
pub(super) fn streams(m: &NewMessage) -> Vec<i64> {
    match m.to {
        To::Public => vec![PUBLIC],
        To::User(user) => vec![user],
        To::Group(_) => m.fanout.iter().map(|&(user, _)| user).collect(),
    }
}

/// Whether `m` takes a place in `user`'s stream.
pub(super) fn reaches(m: &NewMessage, user: UserId) -> bool {
    match m.to {
        To::Public => false,
        To::User(to) => to == user,
        To::Group(_) => m.fanout.iter().any(|&(member, _)| member == user),
    }
}

/// Reads the members of the groups `run` sends to, in this transaction,
/// and makes them each group message's fan-out: another node may have
/// changed a group since this one's memory of it (a member the chat did
/// not list is counted away, as it is not online here).
pub(super) fn fan_out(tx: &mut Tx, run: &mut [&mut NewMessage]) -> Result<(), Error> {
    let groups: Vec<GroupId> = run
        .iter()
        .filter_map(|m| match m.to {
            To::Group(g) => Some(g),
            _ => None,
        })
        .collect();
    if groups.is_empty() {
        return Ok(());
    }
    let mut members: HashMap<GroupId, Vec<UserId>> = HashMap::new();
    for row in tx.query(
        "SELECT grp, user_id FROM members WHERE grp = ANY($1) ORDER BY grp, added, user_id",
        &[&groups],
    )? {
        members.entry(row.get(0)).or_default().push(row.get(1));
    }
    for m in run.iter_mut() {
        let To::Group(g) = m.to else { continue };
        let away: HashMap<UserId, bool> = m.fanout.iter().copied().collect();
        m.fanout = members
            .get(&g)
            .map(|users| {
                users
                    .iter()
                    .map(|u| (*u, away.get(u).copied().unwrap_or(true)))
                    .collect()
            })
            .unwrap_or_default();
    }
    Ok(())
}

/// The members of `groups` now (for the batch's locks).
pub(super) fn members_of(tx: &mut Tx, groups: &[GroupId]) -> Result<Vec<UserId>, Error> {
    Ok(tx
        .query(
            "SELECT DISTINCT user_id FROM members WHERE grp = ANY($1)",
            &[&groups],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Up to [`TAIL_MESSAGES`] messages of `stream` after `after`, in order.
pub(super) fn tail(tx: &mut Tx, stream: Stream, after: u64) -> Result<Vec<Loaded>, Error> {
    let limit = TAIL_MESSAGES as i64;
    let rows = match stream {
        Stream::User(user) => tx.query(
            &format!(
                "SELECT {LOADED_COLUMNS}, i.seq, i.away FROM inbox i
                 JOIN messages m ON m.id = i.message {LOADED_JOINS}
                 WHERE i.user_id = $1 AND i.seq > $2 ORDER BY i.seq LIMIT $3"
            ),
            &[&user, &clamp(after), &limit],
        )?,
        Stream::Public => tx.query(
            &format!(
                "SELECT {LOADED_COLUMNS}, m.pub_seq, false FROM messages m {LOADED_JOINS}
                 WHERE m.pub_seq > $1 ORDER BY m.pub_seq LIMIT $2"
            ),
            &[&clamp(after), &limit],
        )?,
    };
    Ok(rows.iter().map(|r| loaded(r, r.get(4), r.get(5))).collect())
}

/// Where each of `streams` ends now.
pub(super) fn heads(tx: &mut Tx, streams: &[Stream]) -> Result<Vec<(Stream, u64)>, Error> {
    let rows: Vec<i64> = streams.iter().map(|s| row_of(*s)).collect();
    let found: HashMap<i64, i64> = tx
        .query(
            "SELECT stream, head FROM heads WHERE stream = ANY($1)",
            &[&rows],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(streams
        .iter()
        .map(|s| (*s, found.get(&row_of(*s)).copied().unwrap_or(0) as u64))
        .collect())
}

/// Locks the heads of `streams` (sorted, no repeats) for this transaction
/// and returns them: ascending, public first, so that two writers never
/// wait for each other in a cycle. A stream without a row gets one.
pub(super) fn lock_heads(tx: &mut Tx, streams: &[i64]) -> Result<HashMap<i64, i64>, Error> {
    const LOCK: &str =
        "SELECT stream, head FROM heads WHERE stream = ANY($1) ORDER BY stream FOR UPDATE";
    let mut rows = tx.query(LOCK, &[&streams])?;
    if rows.len() < streams.len() {
        tx.execute(
            "INSERT INTO heads (stream, head) SELECT unnest($1::bigint[]), 0
             ON CONFLICT DO NOTHING",
            &[&streams],
        )?;
        rows = tx.query(LOCK, &[&streams])?;
    }
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The columns of `messages` rows to insert, one vector per column.
#[derive(Default)]
struct Columns {
    id: Vec<i64>,
    sender: Vec<i64>,
    receiver: Vec<Option<i64>>,
    cid: Vec<Option<String>>,
    text: Vec<String>,
    time: Vec<i64>,
    pub_seq: Vec<Option<i64>>,
    folded: Vec<String>,
}

/// The `inbox` rows to insert: a message's place in a stream.
#[derive(Default)]
struct Places {
    user: Vec<i64>,
    seq: Vec<i64>,
    message: Vec<i64>,
    away: Vec<bool>,
}

impl Places {
    fn push(&mut self, user: UserId, seq: i64, message: i64, away: bool) {
        self.user.push(user);
        self.seq.push(seq);
        self.message.push(message);
        self.away.push(away);
    }
}

/// Stores `run` in this transaction and returns each message's outcome, in
/// order. A resend (same sender and cid, stored before or earlier in the
/// run) stores nothing. Fails as a whole: the caller retries the messages
/// one by one to find the one at fault.
/// `moved` gets each stream's new head (for the doorbell).
pub(super) fn append_run(
    tx: &mut Tx,
    run: &[&NewMessage],
    moved: &mut BTreeMap<i64, i64>,
) -> Result<Vec<Appended>, Error> {
    let mut wanted: Vec<i64> = run.iter().flat_map(|m| streams(m)).collect();
    wanted.sort_unstable();
    wanted.dedup();
    // Locked first: a resend on another connection waits here, and then
    // finds the original below.
    let mut heads = lock_heads(tx, &wanted)?;
    let keyed: Vec<(i64, String)> = run
        .iter()
        .filter_map(|m| Some((m.sender, escape(m.cid.as_deref()?).into_owned())))
        .collect();
    let mut stored: HashSet<(i64, String)> = HashSet::new();
    if !keyed.is_empty() {
        let (senders, cids): (Vec<i64>, Vec<&str>) =
            keyed.iter().map(|(s, c)| (*s, c.as_str())).unzip();
        // `cid IS NOT NULL` said outright: a join clause alone does not let
        // the planner use the partial index (it scanned every message).
        for row in tx.query(
            "SELECT t.sender, t.cid FROM unnest($1::bigint[], $2::text[]) AS t(sender, cid)
             WHERE EXISTS (SELECT 1 FROM messages m
                           WHERE m.sender = t.sender AND m.cid = t.cid AND m.cid IS NOT NULL)",
            &[&senders, &cids],
        )? {
            stored.insert((row.get(0), row.get(1)));
        }
    }
    let fresh: Vec<usize> = (0..run.len())
        .filter(|&i| match &run[i].cid {
            // A second time in this run counts as stored by the first.
            Some(cid) => stored.insert((run[i].sender, escape(cid).into_owned())),
            None => true,
        })
        .collect();
    let mut outcomes: Vec<Appended> = vec![Appended::Duplicate; run.len()];
    if fresh.is_empty() {
        return Ok(outcomes);
    }
    let mut ids: Vec<i64> = tx
        .query(
            "SELECT nextval('message_ids') FROM generate_series(1, $1::int)",
            &[&(fresh.len() as i32)],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    ids.sort_unstable();
    let mut rows = Columns::default();
    let mut places = Places::default();
    let mut next = |stream: i64| {
        let head = heads.entry(stream).or_insert(0);
        *head += 1;
        *head
    };
    for (&i, &id) in fresh.iter().zip(&ids) {
        let m = run[i];
        let mut pub_seq = None;
        outcomes[i] = match m.to {
            To::Public => {
                let seq = next(PUBLIC);
                pub_seq = Some(seq);
                Appended::New { seq: seq as u64 }
            }
            To::User(user) => {
                let seq = next(user);
                places.push(user, seq, id, m.away);
                Appended::New { seq: seq as u64 }
            }
            To::Group(_) => Appended::Fanned(
                m.fanout
                    .iter()
                    .map(|&(user, away)| {
                        let seq = next(user);
                        places.push(user, seq, id, away);
                        seq as u64
                    })
                    .collect(),
            ),
        };
        rows.id.push(id);
        rows.sender.push(m.sender);
        rows.receiver.push(receiver(m.to));
        rows.cid
            .push(m.cid.as_deref().map(|c| escape(c).into_owned()));
        rows.text.push(escape(&m.text).into_owned());
        rows.time.push(clamp(m.time));
        rows.pub_seq.push(pub_seq);
        rows.folded.push(fold(&m.text));
    }
    // No ON CONFLICT: a resend that committed elsewhere since the check
    // above fails the run, and the one-by-one retry finds it stored.
    tx.execute(
        "INSERT INTO messages (id, sender, receiver, cid, text, time, pub_seq, words)
         SELECT id, sender, receiver, cid, text, time, pub_seq, to_tsvector('simple', folded)
         FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[],
                     $6::bigint[], $7::bigint[], $8::text[])
           AS t(id, sender, receiver, cid, text, time, pub_seq, folded)",
        &[
            &rows.id,
            &rows.sender,
            &rows.receiver,
            &rows.cid,
            &rows.text,
            &rows.time,
            &rows.pub_seq,
            &rows.folded,
        ],
    )?;
    if !places.user.is_empty() {
        tx.execute(
            "INSERT INTO inbox (user_id, seq, message, away)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::boolean[])",
            &[&places.user, &places.seq, &places.message, &places.away],
        )?;
    }
    let (streams, ends): (Vec<i64>, Vec<i64>) = heads.into_iter().unzip();
    for (stream, end) in streams.iter().zip(&ends) {
        moved.insert(*stream, *end);
    }
    tx.execute(
        "UPDATE heads AS h SET head = t.head
         FROM unnest($1::bigint[], $2::bigint[]) AS t(stream, head)
         WHERE h.stream = t.stream AND h.head <> t.head",
        &[&streams, &ends],
    )?;
    Ok(outcomes)
}

/// Moves `user`'s acknowledged mark to `seq` (at most its stream's end) and
/// returns the private messages that this newly covers, for their senders:
/// one statement.
pub(super) fn received(tx: &mut Tx, user: UserId, seq: u64) -> Result<Vec<Delivery>, Error> {
    let rows = tx.query(
        "WITH upto AS (SELECT least($2, coalesce(
                          (SELECT head FROM heads WHERE stream = $1), 0)) AS seq),
              before AS (SELECT acked FROM users WHERE id = $1),
              moved AS (UPDATE users SET acked = (SELECT seq FROM upto)
                        WHERE id = $1 AND acked < (SELECT seq FROM upto))
         SELECT m.sender, m.cid, u.nick FROM inbox i
         JOIN messages m ON m.id = i.message JOIN users u ON u.id = i.user_id
         WHERE i.user_id = $1 AND i.seq > (SELECT acked FROM before)
           AND i.seq <= (SELECT seq FROM upto) AND m.cid IS NOT NULL AND m.receiver > 0
         ORDER BY i.seq",
        &[&user, &clamp(seq)],
    )?;
    Ok(rows
        .iter()
        .map(|row| Delivery {
            sender: row.get(0),
            cid: unescape(row.get(1)),
            to: row.get(2),
        })
        .collect())
}

/// A message row as the queries below select it, for [`Loaded`]; they join
/// [`LOADED_JOINS`].
pub(super) const LOADED_COLUMNS: &str =
    "s.nick, coalesce('#' || g.name, r.nick, '*'), m.text, m.time";

/// The sender, and the user or group a message went to.
pub(super) const LOADED_JOINS: &str =
    "JOIN users s ON s.id = m.sender LEFT JOIN users r ON r.id = m.receiver
     LEFT JOIN groups g ON g.id = -m.receiver";

pub(super) fn loaded(row: &Row, seq: i64, away: bool) -> Loaded {
    Loaded {
        seq: seq as u64,
        sender: row.get(0),
        receiver: row.get(1),
        text: unescape(row.get(2)),
        time: row.get::<_, i64>(3) as u64,
        away,
    }
}

/// Most messages in one page of a backlog.
const PAGE_MESSAGES: usize = 256;

/// Where `user`'s stream and the public stream end now.
fn ends(tx: &mut Tx, user: UserId) -> Result<(i64, i64), Error> {
    let row = tx.query_one(
        "SELECT coalesce(max(head) FILTER (WHERE stream = $1), 0),
                coalesce(max(head) FILTER (WHERE stream = 0), 0)
         FROM heads WHERE stream IN (0, $1)",
        &[&user],
    )?;
    Ok((row.get(0), row.get(1)))
}

/// Reads the next page of what `user` missed, as SQLite's backlog does: its
/// stream after `last_seq` (default: after what it acknowledged) merged, in
/// the order the server accepted them, with the public stream after
/// `last_public` (on the first page, at most the [`REPLAY_PUBLIC`] newest).
/// Both streams are dense, so what is left is counted from their heads.
///
/// [`REPLAY_PUBLIC`]: chat_common::protocol::REPLAY_PUBLIC
pub(super) fn backlog(
    tx: &mut Tx,
    page_bytes: usize,
    user: UserId,
    last_seq: Option<u64>,
    last_public: Option<u64>,
    first: bool,
) -> Result<Page, Error> {
    let (own_head, public_head) = ends(tx, user)?;
    let since = match last_seq {
        Some(seq) => clamp(seq),
        None => tx
            .query_opt("SELECT acked FROM users WHERE id = $1", &[&user])?
            .map_or(0, |row| row.get(0)),
    };
    let mut public_after = last_public.map(clamp);
    if let (Some(after), true) = (public_after, first) {
        let replay = chat_common::protocol::REPLAY_PUBLIC as i64;
        public_after = Some(after.max(public_head - replay));
    }
    let limit = PAGE_MESSAGES as i64 + 1;
    // (message id, is public, message), merged by message id.
    let mut candidates: Vec<(i64, bool, Loaded)> = Vec::new();
    let own = format!(
        "SELECT {LOADED_COLUMNS}, i.seq, i.away, m.id FROM inbox i
         JOIN messages m ON m.id = i.message {LOADED_JOINS}
         WHERE i.user_id = $1 AND i.seq > $2 ORDER BY i.seq LIMIT $3"
    );
    for row in tx.query(&own, &[&user, &since, &limit])? {
        let m = loaded(&row, row.get(4), row.get(5));
        candidates.push((row.get(6), false, m));
    }
    if let Some(after) = public_after {
        let public = format!(
            "SELECT {LOADED_COLUMNS}, m.pub_seq, m.id FROM messages m {LOADED_JOINS}
             WHERE m.pub_seq > $1 ORDER BY m.pub_seq LIMIT $2"
        );
        for row in tx.query(&public, &[&after, &limit])? {
            let m = loaded(&row, row.get(4), false);
            candidates.push((row.get(5), true, m));
        }
    }
    candidates.sort_by_key(|(id, _, _)| *id);
    let (mut cursor_seq, mut cursor_public) = (since, public_after);
    let (mut messages, mut bytes) = (Vec::new(), 0);
    for (_, public, m) in candidates {
        if messages.len() == PAGE_MESSAGES || (bytes > 0 && bytes + m.text.len() > page_bytes) {
            break;
        }
        bytes += m.text.len();
        if public {
            cursor_public = Some(m.seq as i64);
        } else {
            cursor_seq = m.seq as i64;
        }
        messages.push(m);
    }
    let own_left = (own_head - cursor_seq).max(0);
    let public_left = cursor_public.map_or(0, |after| (public_head - after).max(0));
    Ok(Page {
        messages,
        public_head: public_head as u64,
        last_seq: cursor_seq as u64,
        last_public: cursor_public.map(|p| p as u64),
        left: (own_left + public_left).min(u32::MAX as i64) as u32,
    })
}

/// The last `limit` public messages (`with` None) or those between `user`
/// and `with`, oldest first.
pub(super) fn history(
    tx: &mut Tx,
    user: UserId,
    with: Option<UserId>,
    limit: u32,
) -> Result<Vec<Loaded>, Error> {
    let limit = limit as i64;
    let rows = match with {
        None => tx.query(
            &format!(
                "SELECT {LOADED_COLUMNS}, m.pub_seq FROM messages m {LOADED_JOINS}
                 WHERE m.pub_seq IS NOT NULL ORDER BY m.pub_seq DESC LIMIT $1"
            ),
            &[&limit],
        )?,
        Some(with) => tx.query(
            &format!(
                "SELECT {LOADED_COLUMNS}, m.id FROM messages m {LOADED_JOINS}
                 WHERE (m.sender = $1 AND m.receiver = $2) OR (m.sender = $2 AND m.receiver = $1)
                 ORDER BY m.id DESC LIMIT $3"
            ),
            &[&user, &with, &limit],
        )?,
    };
    Ok(rows
        .iter()
        .rev()
        .map(|r| loaded(r, r.get(4), false))
        .collect())
}

/// The last `limit` messages to `group`, oldest first.
pub(super) fn group_history(tx: &mut Tx, group: GroupId, limit: u32) -> Result<Vec<Loaded>, Error> {
    let rows = tx.query(
        &format!(
            "SELECT {LOADED_COLUMNS}, m.id FROM messages m {LOADED_JOINS}
             WHERE m.receiver = $1 ORDER BY m.id DESC LIMIT $2"
        ),
        &[&-group, &(limit as i64)],
    )?;
    Ok(rows
        .iter()
        .rev()
        .map(|r| loaded(r, r.get(4), false))
        .collect())
}
