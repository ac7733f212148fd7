//! The `online` table: which node each logged-in account is on, one row
//! per account (so one session per account across the cluster). A welcomed
//! login takes its account's row in the batch that answers it, telling the
//! node that had it if that node lives (the doorbell's `t:<user>:<node>`);
//! a departure deletes the row only if it is still this node run's and
//! this connection's, never a newer takeover's. The lease thread deletes
//! the rows of nodes whose lease ran out (on the database's clock), so a
//! dead node's users leave everyone's online list within a lease or so.
//! A user's away text is in their row, so the other nodes' `online`
//! answers show it; a new login or takeover starts "here" (no text).
//! Every change moves the `heads` row [`ONLINE`] and rings `o`: nodes
//! reload their replica (and a lost doorbell is seen in the counter).

use postgres::Client;

use super::bell::{Bell, ONLINE};
use super::sql::Tx;
use crate::framework::ConnId;
use crate::store::{Remote, UserId};

/// This node run: its id and incarnation.
#[derive(Debug, Clone)]
pub(super) struct Me {
    pub(super) node: String,
    pub(super) incarnation: i64,
}

/// `user` is online here through `conn`: takes the row; a live other
/// node that had it is told to close its session.
pub(super) fn claim(
    tx: &mut Tx,
    me: &Me,
    user: UserId,
    nick: &str,
    conn: ConnId,
    bell: &mut Bell,
) -> Result<(), postgres::Error> {
    let had = tx.query_opt(
        "SELECT o.node, EXISTS (SELECT 1 FROM nodes n WHERE n.node = o.node
             AND n.incarnation = o.incarnation AND n.lease_until > now())
         FROM online o WHERE o.user_id = $1 FOR UPDATE",
        &[&user],
    )?;
    if let Some(row) = had {
        let (node, live): (String, bool) = (row.get(0), row.get(1));
        if live && node != me.node {
            bell.takeovers.push((user, node));
        }
    }
    tx.execute(
        "INSERT INTO online (user_id, nick, node, incarnation, conn, since)
         VALUES ($1, $2, $3, $4, $5, now())
         ON CONFLICT (user_id) DO UPDATE SET nick = excluded.nick, node = excluded.node,
           incarnation = excluded.incarnation, conn = excluded.conn, since = excluded.since,
           away = NULL",
        &[&user, &nick, &me.node, &me.incarnation, &(conn as i64)],
    )?;
    bell.online = true;
    Ok(())
}

/// `user`'s session through `conn` is over: its row goes if still its own,
/// and the doorbell says why.
pub(super) fn release(
    tx: &mut Tx,
    me: &Me,
    user: UserId,
    conn: ConnId,
    reason: String,
    bell: &mut Bell,
) -> Result<(), postgres::Error> {
    let gone = tx.execute(
        "DELETE FROM online WHERE user_id = $1 AND node = $2 AND incarnation = $3 AND conn = $4",
        &[&user, &me.node, &me.incarnation, &(conn as i64)],
    )?;
    if gone > 0 {
        bell.online = true;
        bell.left.push((user, reason));
    }
    Ok(())
}

/// `user`, online here through `conn`, is away with `text` (`None`:
/// back): written into its row if the row is still this session's.
pub(super) fn set_away(
    tx: &mut Tx,
    me: &Me,
    user: UserId,
    conn: ConnId,
    text: Option<&str>,
    bell: &mut Bell,
) -> Result<(), postgres::Error> {
    let changed = tx.execute(
        "UPDATE online SET away = $5
         WHERE user_id = $1 AND node = $2 AND incarnation = $3 AND conn = $4
           AND away IS DISTINCT FROM $5",
        &[&user, &me.node, &me.incarnation, &(conn as i64), &text],
    )?;
    if changed > 0 {
        bell.online = true;
    }
    Ok(())
}

/// Deletes the rows of node runs whose lease ran out or that were started
/// again (and, with `mine`, every row of this node run: it is stopping),
/// ringing `o` if any went. The counter row is locked first, as batches
/// do, so the two never wait for each other in a cycle.
pub(super) fn reap(client: &mut Client, me: &Me, mine: bool) -> Result<u64, postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute(
        "UPDATE heads SET head = head + 1 WHERE stream = $1",
        &[&ONLINE],
    )?;
    let gone = tx.execute(
        "DELETE FROM online o WHERE NOT EXISTS (SELECT 1 FROM nodes n WHERE n.node = o.node
             AND n.incarnation = o.incarnation AND n.lease_until > now())
           OR (o.node = $1 AND (o.incarnation <> $2 OR $3))",
        &[&me.node, &me.incarnation, &mine],
    )?;
    if gone == 0 {
        tx.rollback()?;
        return Ok(0);
    }
    tx.execute("SELECT pg_notify($1, 'o')", &[&super::bell::CHANNEL])?;
    tx.commit()?;
    Ok(gone)
}

/// Who is online on the other nodes.
pub(super) fn others(client: &mut Client, me: &str) -> Result<Vec<Remote>, postgres::Error> {
    Ok(client
        .query(
            "SELECT user_id, nick, node, away FROM online WHERE node <> $1 ORDER BY user_id",
            &[&me],
        )?
        .into_iter()
        .map(|row| Remote {
            user: row.get(0),
            nick: row.get(1),
            node: row.get(2),
            away: row.get(3),
        })
        .collect())
}
