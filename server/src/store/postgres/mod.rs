//! The PostgreSQL backend (`--cluster`): the same promises as SQLite's, on a
//! database server that several nodes share. Each registers in `nodes`
//! with a lease and holds a lock on its id ([`nodes`]); each batch rings
//! a doorbell for the others ([`bell`]), which each node's `cluster`
//! thread hears ([`listen`]); who is online where is a table too
//! ([`online`]).
//!
//! One transaction per batch, on the dispatcher's thread, through the sync
//! `postgres` client (no TLS: loopback or a trusted network). Sequence
//! numbers come from counter rows locked in that transaction (`heads`, see
//! [`schema`]). A failed statement aborts a PostgreSQL transaction, so what
//! may fail on its data runs in a savepoint ([`sql::guarded`]); anything
//! else that fails fails the whole batch, and every reply says so.
//!
//! A lost connection fails its batch and the next batch connects again. If
//! it was lost while the COMMIT was under way, the outcome is asked of the
//! database (`txid_status`) before the batch is answered either way, so an
//! acknowledgement never depends on a guess.

mod accounts;
mod bell;
mod failures;
mod files;
mod groups;
mod identities;
mod listen;
mod messages;
mod nodes;
mod online;
mod schema;
mod search;
mod sql;
/// The tests' private PostgreSQL server, shared with the integration tests
/// (which use more of it).
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../../tests/it/support/postgres.rs"]
pub(crate) mod testdb;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use postgres::{Config, NoTls};

use crate::store::failed::{fail_all, fail_replies};
use crate::store::{
    Appended, Backend, Cluster, NewMessage, Op, Origin, Reply, Startup, StoreError,
};
use bell::Bell;
use nodes::Lease;
use sql::{guarded, Conn, Tx};

/// Most ops applied in one transaction: bounds the latency of a batch.
const MAX_BATCH: usize = 4096;

/// A node's block of ids for new accounts and groups is `2^ID_BLOCK_BITS`
/// ids, one block per run of a node (ids from the single-node days sit
/// below the first block).
const ID_BLOCK_BITS: u32 = 32;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// After a failed connection attempt, batches fail at once for this long
/// before the next attempt (a database host that does not answer would
/// otherwise hold every batch for [`CONNECT_TIMEOUT`]).
const RETRY_AFTER: Duration = Duration::from_millis(250);

/// How long a batch whose COMMIT lost its answer waits to learn from the
/// database whether it was committed.
const RESOLVE_WITHIN: Duration = Duration::from_secs(5);

impl From<postgres::Error> for StoreError {
    fn from(err: postgres::Error) -> StoreError {
        StoreError::Database(std::sync::Arc::new(Described(err)))
    }
}

/// A `postgres` error that says its causes too: alone it says only "db
/// error" or "error connecting to server".
#[derive(Debug)]
struct Described(postgres::Error);

impl std::fmt::Display for Described {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = std::error::Error::source(&self.0);
        while let Some(err) = cause {
            write!(f, ": {err}")?;
            cause = err.source();
        }
        Ok(())
    }
}

impl std::error::Error for Described {}

/// The store on a PostgreSQL server.
pub struct Postgres {
    config: Config,
    /// `None` after the connection was lost, until the next batch.
    conn: Option<Conn>,
    /// About how much text one page of a backlog may hold.
    page_bytes: usize,
    /// The last failed connection attempt: when, and why.
    failed: Option<(Instant, StoreError)>,
    /// A batch answered as failed whose COMMIT's fate was still unknown
    /// (its transaction id): looked up at the next connection.
    unsure: Option<i64>,
    /// This node run, as the `online` table names it.
    me: online::Me,
    _lease: Lease,
    _listener: listen::Listener,
}

impl Postgres {
    /// Connects to `url` (`postgres://user@host:port/db`), creates or
    /// migrates the schema, registers as `node` (refused while another
    /// node's lease is live), brings the identity keys up to date with
    /// `ident` and reads what the dispatcher keeps in memory.
    pub fn open(
        url: &str,
        node: &str,
        page_bytes: usize,
        ident: fn(&str) -> String,
    ) -> Result<(Postgres, Startup), StoreError> {
        let config = config_of(url, node)?;
        let mut conn = connect(&config)?;
        let client = &mut conn.client;
        schema::migrate(client)?;
        let claimed = Instant::now();
        let (locked, incarnation) = nodes::claim(&config, node)?;
        identities::index(client, ident)?;
        // The change counters before what they count: a change after this
        // is heard or seen by the listener.
        let versions = listen::versions(client)?;
        let accounts = accounts::load(client)?;
        let public_head: i64 = client
            .query_one("SELECT head FROM heads WHERE stream = 0", &[])?
            .get(0);
        let block: i64 = client.query_one("SELECT nextval('id_blocks')", &[])?.get(0);
        let (heard_tx, heard) = crossbeam_channel::unbounded();
        // The failures of the window so far, heard before any login (a
        // node started again has forgotten its own).
        let (failed, failures_after) = failures::since(client, 0, (node, incarnation))?;
        if !failed.is_empty() {
            let _ = heard_tx.send(crate::store::Heard::Failures(failed));
        }
        // Claimed just now: the lease runs from the claim's now().
        let renewed = crate::store::Renewed::new(claimed);
        let known = listen::Known {
            accounts_version: versions.accounts,
            groups_version: versions.groups,
            online_version: versions.online,
            sanctions_version: versions.sanctions,
            files_version: versions.files,
            failures_version: versions.failures,
            failures_after,
            incarnation,
            node: node.to_string(),
            hashes: accounts.iter().map(|a| (a.id, a.hash.clone())).collect(),
        };
        let startup = Startup {
            accounts,
            sanctions: accounts::sanctions(client)?,
            groups: groups::load(client)?,
            files: files::load(client)?,
            public_head: public_head as u64,
            cluster: Some(Cluster {
                heard,
                first_id: block << ID_BLOCK_BITS,
                renewed: renewed.clone(),
                fence_after: nodes::fence_after(),
            }),
        };
        let me = online::Me {
            node: node.to_string(),
            incarnation,
        };
        // The rows of this node's previous run go at once (and the others'
        // dead rows, whose nodes the listener would otherwise list).
        online::reap(client, &me, false)?;
        let lease = Lease::start(config.clone(), locked, me.clone(), renewed)?;
        let listener = listen::Listener::start(config.clone(), known, heard_tx)?;
        let store = Postgres {
            config,
            conn: Some(conn),
            page_bytes,
            failed: None,
            unsure: None,
            me,
            _lease: lease,
            _listener: listener,
        };
        Ok((store, startup))
    }

    /// The connection, made again if it was lost.
    fn connection(&mut self) -> Result<&mut Conn, StoreError> {
        if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            if let Some((at, err)) = &self.failed {
                if at.elapsed() < RETRY_AFTER {
                    return Err(err.clone());
                }
            }
            match connect(&self.config) {
                Ok(conn) => {
                    tracing::info!("connected to the database again");
                    self.conn = Some(conn);
                    self.failed = None;
                }
                Err(err) => {
                    self.failed = Some((Instant::now(), err.clone()));
                    return Err(err);
                }
            }
            if let Some(xid) = self.unsure.take() {
                self.report_unsure(xid);
            }
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    /// Applies a batch in one transaction and returns the replies, which
    /// are valid only because the commit succeeded (or say it failed).
    fn apply<E>(&mut self, batch: Vec<Op<E>>) -> Vec<Reply<E>> {
        let page_bytes = self.page_bytes;
        let me = self.me.clone();
        let conn = match self.connection() {
            Ok(conn) => conn,
            Err(err) => return fail_all(batch, &err),
        };
        match run(conn, page_bytes, &me, batch) {
            Ended::Committed(replies) => replies,
            Ended::Failed(replies, err) => {
                // Whatever went wrong, the next batch starts on a fresh
                // connection.
                self.conn = None;
                log_batch_failure(&err);
                fail_replies(replies, &err)
            }
            Ended::Unsure(replies, xid, err) => {
                self.conn = None;
                match self.resolve(xid) {
                    Some(true) => {
                        tracing::warn!("the answer to a COMMIT was lost ({err}); it was committed");
                        replies
                    }
                    Some(false) => {
                        log_batch_failure(&err);
                        fail_replies(replies, &err)
                    }
                    None => {
                        log_batch_failure(&err);
                        self.unsure = Some(xid);
                        fail_replies(replies, &err)
                    }
                }
            }
        }
    }

    /// Whether transaction `xid` committed, asked on a new connection for
    /// up to [`RESOLVE_WITHIN`]; `None` if the database did not answer.
    fn resolve(&mut self, xid: i64) -> Option<bool> {
        let deadline = Instant::now() + RESOLVE_WITHIN;
        loop {
            if let Ok(mut conn) = connect(&self.config) {
                // `None`: still in progress, the old session not gone yet.
                if let Ok(Some(committed)) = status(&mut conn, xid) {
                    self.conn = Some(conn);
                    return Some(committed);
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Says what became of a batch answered as failed without knowing.
    fn report_unsure(&mut self, xid: i64) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        match status(conn, xid) {
            Ok(Some(true)) => tracing::error!(
                "a batch answered as failed while the database was away had been committed: \
                 its messages are stored (a resend with its cid is recognised), but receivers \
                 online then see them only at their next login"
            ),
            Ok(_) => {
                tracing::info!("the batch cut off while the database went away was not committed")
            }
            Err(err) => tracing::warn!("asking whether transaction {xid} committed: {err}"),
        }
    }
}

impl<E: Send> Backend<E> for Postgres {
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
        replies
    }

    /// Never: messages are indexed in the transaction that stores them
    /// (see [`search`]).
    fn unindexed(&self) -> bool {
        false
    }

    fn index_step(&mut self) -> bool {
        true
    }
}

/// The connection settings: `url`'s, with the timeouts that turn a
/// vanished database into a failed batch rather than a hung server.
fn config_of(url: &str, node: &str) -> Result<Config, StoreError> {
    let mut config: Config = url.parse().map_err(|err| {
        StoreError::Refused(format!(
            "--cluster: not a PostgreSQL URL (postgres://user@host:port/db): {err}"
        ))
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config
        .application_name(&format!("chat-server {node}"))
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(5))
        .tcp_user_timeout(Duration::from_secs(10));
    Ok(config)
}

/// A new connection, set up for the store: every commit waits for its
/// WAL flush (`synchronous_commit`), whatever the server's default; and
/// statements are planned for their parameters each time
/// (`force_custom_plan`): the generic plan PostgreSQL switches a prepared
/// statement to after five runs cannot see an array's length, and looking
/// up a run's resends with it took 20–40 ms instead of 0.5. A statement
/// that waits 10 s (a lock someone else holds) fails its batch rather than
/// hold the chat.
fn connect(config: &Config) -> Result<Conn, StoreError> {
    let mut client = config.connect(NoTls)?;
    client.batch_execute(
        "SET synchronous_commit = on; SET client_min_messages = warning;
         SET plan_cache_mode = force_custom_plan; SET statement_timeout = '10s'",
    )?;
    Ok(Conn::new(client))
}

/// Whether transaction `xid` committed; `None` while it is in progress.
fn status(conn: &mut Conn, xid: i64) -> Result<Option<bool>, postgres::Error> {
    let row = conn.client.query_one("SELECT txid_status($1)", &[&xid])?;
    Ok(match row.get::<_, Option<&str>>(0) {
        Some("committed") => Some(true),
        Some("in progress") => None,
        _ => Some(false),
    })
}

/// Logs a failed batch once; the ops' replies carry the failure.
fn log_batch_failure(err: &StoreError) {
    tracing::error!("the store could not commit a batch: {err}");
}

/// How a batch's transaction ended.
enum Ended<E> {
    Committed(Vec<Reply<E>>),
    /// Rolled back: the replies are to be failed with the error.
    Failed(Vec<Reply<E>>, StoreError),
    /// The COMMIT of transaction `xid` was sent and its answer lost.
    Unsure(Vec<Reply<E>>, i64, StoreError),
}

/// Whether an op writes (a batch of reads alone needs no transaction id).
fn writes<E>(op: &Op<E>) -> bool {
    !matches!(
        op,
        Op::Backlog { .. }
            | Op::History { .. }
            | Op::Search { .. }
            | Op::GroupHistory { .. }
            | Op::Echo { .. }
            | Op::Notify(_)
            | Op::Tail { .. }
            | Op::Heads(_)
    )
}

/// Locks, in one statement and ascending order, every `heads` row the
/// batch may move: the streams its messages take places in (a group's
/// members as the chat listed them and as the database has them now), the
/// accounts' and groups' change counters. A run locks its rows again,
/// which costs nothing once they are held.
fn lock_batch<E>(tx: &mut Tx, batch: &[Op<E>]) -> Result<(), postgres::Error> {
    let mut rows: Vec<i64> = Vec::new();
    let mut groups = Vec::new();
    for op in batch {
        match op {
            Op::Append { message, .. } => {
                rows.extend(messages::streams(message));
                if let crate::store::To::Group(g) = message.to {
                    groups.push(g);
                }
            }
            Op::CreateAccount { .. } | Op::SetPassword { .. } => rows.push(bell::ACCOUNTS),
            Op::Group { .. } => rows.push(bell::GROUPS),
            Op::Online { .. } | Op::Offline { .. } | Op::Away { .. } => rows.push(bell::ONLINE),
            Op::Sanction(..) => rows.push(bell::SANCTIONS),
            // Held to COMMIT: the failures' ids are in commit order.
            Op::LoginFailed { .. } => rows.push(bell::FAILURES),
            _ => {}
        }
    }
    if !groups.is_empty() {
        rows.extend(messages::members_of(tx, &groups)?);
    }
    if rows.is_empty() {
        return Ok(());
    }
    rows.sort_unstable();
    rows.dedup();
    messages::lock_heads(tx, &rows)?;
    Ok(())
}

/// Runs a batch in one transaction. Appends wait in a run, stored by a few
/// multi-row statements when the run ends: before an op that reads them
/// (a backlog, history, search, or a `Received` in a stream the run
/// writes), and at the end. Replies keep the ops' order.
fn run<E>(conn: &mut Conn, page_bytes: usize, me: &online::Me, batch: Vec<Op<E>>) -> Ended<E> {
    let any_writes = batch.iter().any(writes);
    let mut tx = match conn.begin() {
        Ok(tx) => tx,
        Err(err) => {
            let err = StoreError::from(err);
            return Ended::Failed(fail_all(batch, &err), err);
        }
    };
    let xid: Option<i64> = if any_writes {
        match tx.query_one("SELECT txid_current()", &[]) {
            Ok(row) => Some(row.get(0)),
            Err(err) => {
                let err = StoreError::from(err);
                return Ended::Failed(fail_all(batch, &err), err);
            }
        }
    } else {
        None
    };
    // Every counter row the batch may move, locked at once in one order:
    // two nodes' batches never wait for each other in a cycle.
    let mut bell = Bell::default();
    if let Err(err) = lock_batch(&mut tx, &batch) {
        let err = StoreError::from(err);
        return Ended::Failed(fail_all(batch, &err), err);
    }
    // One place per reply; an append's is filled when its run is stored.
    let mut slots: Vec<Option<Reply<E>>> = Vec::with_capacity(batch.len());
    let mut run: Vec<(usize, Origin, NewMessage)> = Vec::new();
    let mut fatal: Option<StoreError> = None;
    // Wrong passwords, written together after the loop.
    let (mut failed_logins, mut window) = (Vec::new(), 0);
    for op in batch {
        if let Some(err) = &fatal {
            slots.extend(fail_all(vec![op], err).into_iter().map(Some));
            continue;
        }
        let reads_run = match &op {
            Op::Backlog { .. }
            | Op::History { .. }
            | Op::Search { .. }
            | Op::GroupHistory { .. }
            | Op::Tail { .. }
            | Op::Heads(_) => true,
            Op::Received { user, .. } => run.iter().any(|(_, _, m)| messages::reaches(m, *user)),
            _ => false,
        };
        if reads_run && !run.is_empty() {
            fatal = store_run(&mut tx, &mut run, &mut slots, &mut bell);
            if let Some(err) = &fatal {
                slots.extend(fail_all(vec![op], err).into_iter().map(Some));
                continue;
            }
        }
        match op {
            Op::Append { origin, message } => {
                run.push((slots.len(), origin, message));
                slots.push(None);
            }
            Op::Online { user, nick, conn } => {
                if let Err(err) = online::claim(&mut tx, me, user, &nick, conn, &mut bell) {
                    fatal = Some(err.into());
                }
            }
            Op::Offline { user, conn, reason } => {
                if let Err(err) = online::release(&mut tx, me, user, conn, reason, &mut bell) {
                    fatal = Some(err.into());
                }
            }
            Op::LoginFailed {
                user,
                network,
                window_ms,
            } => {
                failed_logins.push((user, network));
                window = window.max(window_ms);
            }
            Op::Away { user, conn, text } => {
                let text = text.as_deref();
                if let Err(err) = online::set_away(&mut tx, me, user, conn, text, &mut bell) {
                    fatal = Some(err.into());
                }
            }
            op => {
                match &op {
                    Op::CreateAccount { .. } | Op::SetPassword { .. } => bell.accounts = true,
                    Op::Group { .. } => bell.groups = true,
                    Op::Sanction(..) => bell.sanctions = true,
                    Op::Kick { user, reason } => bell.kicks.push((*user, reason.clone())),
                    Op::File(_) => bell.files = true,
                    _ => {}
                }
                let (reply, failed) = apply_one(&mut tx, page_bytes, op);
                // Senders online elsewhere learn of it from the doorbell.
                if let Some(Reply::Delivered(deliveries)) = &reply {
                    if !deliveries.is_empty() {
                        bell.here.clone_from(&me.node);
                        bell.delivered.extend(deliveries.iter().cloned());
                    }
                }
                slots.push(reply);
                fatal = failed;
            }
        }
    }
    match &fatal {
        None if !run.is_empty() => fatal = store_run(&mut tx, &mut run, &mut slots, &mut bell),
        // Appends still waiting when the batch failed are answered too.
        Some(err) => {
            for (slot, origin, message) in run.drain(..) {
                slots[slot] = Some(Reply::Appended {
                    origin,
                    message,
                    outcome: Appended::Failed(err.clone()),
                });
            }
        }
        None => {}
    }
    if fatal.is_none() {
        if let Err(err) = failures::record(&mut tx, me, &failed_logins, window, &mut bell) {
            fatal = Some(err.into());
        }
    }
    if fatal.is_none() {
        if let Err(err) = bell.ring(&mut tx) {
            fatal = Some(err.into());
        }
    }
    let replies: Vec<Reply<E>> = slots.into_iter().flatten().collect();
    if let Some(err) = fatal {
        // Dropping the transaction rolls it back.
        return Ended::Failed(replies, err);
    }
    match tx.commit() {
        Ok(()) => Ended::Committed(replies),
        Err(err) => match xid {
            Some(xid) => Ended::Unsure(replies, xid, err.into()),
            None => Ended::Failed(replies, err.into()),
        },
    }
}

/// What an append that never reached [`store_run`] says (none does).
fn placeholder() -> StoreError {
    StoreError::Refused("an append outside a run".into())
}

/// Stores the appends waiting in `run` and fills their places in `slots`.
/// The run is tried whole in a savepoint; if that fails on its data, each
/// message is tried alone, so only the one at fault fails. Returns an
/// error that fails the batch (the connection was lost).
fn store_run<E>(
    tx: &mut Tx,
    run: &mut Vec<(usize, Origin, NewMessage)>,
    slots: &mut [Option<Reply<E>>],
    bell: &mut Bell,
) -> Option<StoreError> {
    {
        let mut group_messages: Vec<&mut NewMessage> = run
            .iter_mut()
            .map(|(_, _, m)| m)
            .filter(|m| matches!(m.to, crate::store::To::Group(_)))
            .collect();
        if let Err(err) = messages::fan_out(tx, &mut group_messages) {
            let err = StoreError::from(err);
            for (slot, origin, message) in run.drain(..) {
                slots[slot] = Some(Reply::Appended {
                    origin,
                    message,
                    outcome: Appended::Failed(err.clone()),
                });
            }
            return Some(err);
        }
    }
    let messages: Vec<&NewMessage> = run.iter().map(|(_, _, m)| m).collect();
    let mut append = |tx: &mut Tx, messages: &[&NewMessage]| {
        let mut moved = std::collections::BTreeMap::new();
        let outcomes = guarded(tx, |tx| messages::append_run(tx, messages, &mut moved))?;
        bell.heads.extend(moved);
        Ok::<_, postgres::Error>(outcomes)
    };
    let outcomes = match append(tx, &messages) {
        Ok(outcomes) => Ok(outcomes),
        Err(err) if err.is_closed() => Err(StoreError::from(err)),
        Err(err) => {
            tracing::warn!(
                "storing {} messages at once: {err}; one by one",
                messages.len()
            );
            let mut outcomes = Vec::with_capacity(messages.len());
            let mut lost = None;
            for m in &messages {
                match append(tx, &[*m]) {
                    Ok(mut one) => outcomes.push(one.pop().unwrap_or(Appended::Duplicate)),
                    Err(err) if err.is_closed() => {
                        lost = Some(StoreError::from(err));
                        break;
                    }
                    Err(err) => {
                        tracing::error!("storing a message of user {}: {err}", m.sender);
                        outcomes.push(Appended::Failed(err.into()));
                    }
                }
            }
            match lost {
                Some(err) => Err(err),
                None => Ok(outcomes),
            }
        }
    };
    let (outcomes, fatal) = match outcomes {
        Ok(outcomes) => (outcomes, None),
        Err(err) => (vec![Appended::Failed(err.clone()); run.len()], Some(err)),
    };
    for ((slot, origin, message), outcome) in run.drain(..).zip(outcomes) {
        slots[slot] = Some(Reply::Appended {
            origin,
            message,
            outcome,
        });
    }
    fatal
}

/// Applies one op (not an append) inside the batch's transaction: its
/// reply, if it has one, and the error that fails the batch, if any.
fn apply_one<E>(
    tx: &mut Tx,
    page_bytes: usize,
    op: Op<E>,
) -> (Option<Reply<E>>, Option<StoreError>) {
    let mut fatal = None;
    // An error outside a savepoint has aborted the transaction.
    let mut abort = |err: postgres::Error| {
        let err = StoreError::from(err);
        fatal = Some(err.clone());
        err
    };
    let reply = match op {
        Op::Notify(saved) => Some(Reply::Notify(saved, true)),
        Op::Echo { origin, then } => Some(Reply::Echo { origin, then }),
        Op::CreateAccount {
            user,
            nick,
            folded,
            key,
            hash,
            time,
        } => {
            match accounts::create(tx, user, &nick, &folded, &key, &hash, time) {
                Ok(true) => {}
                Ok(false) => tracing::error!(
                    "storing the account {nick}: its id, name or identity key is taken"
                ),
                Err(err) => {
                    abort(err);
                }
            }
            None
        }
        Op::SetPassword { user, hash } => {
            if let Err(err) = accounts::set_password(tx, user, &hash) {
                abort(err);
            }
            None
        }
        Op::File(op) => {
            if let Err(err) = files::apply(tx, &op) {
                abort(err);
            }
            None
        }
        Op::Sanction(sanction, lift) => {
            if let Err(err) = accounts::sanction(tx, &sanction, lift) {
                abort(err);
            }
            None
        }
        // The doorbell alone carries a kick (`run` rings it).
        Op::Kick { .. } => None,
        // `run` writes these (they ring the doorbell); never reached.
        Op::Online { .. } | Op::Offline { .. } | Op::LoginFailed { .. } | Op::Away { .. } => None,
        Op::Append { origin, message } => {
            // Appends go through `store_run`; this is never reached.
            Some(Reply::Appended {
                origin,
                message,
                outcome: Appended::Failed(placeholder()),
            })
        }
        Op::Received { user, seq } => Some(Reply::Delivered(
            messages::received(tx, user, seq).unwrap_or_else(|err| {
                abort(err);
                Vec::new()
            }),
        )),
        Op::Backlog {
            origin,
            user,
            last_seq,
            last_public,
            first,
        } => Some(Reply::Backlog {
            origin,
            user,
            result: messages::backlog(tx, page_bytes, user, last_seq, last_public, first)
                .map_err(&mut abort),
        }),
        Op::History {
            origin,
            user,
            with,
            limit,
        } => Some(Reply::Found {
            origin,
            result: messages::history(tx, user, with, limit).map_err(&mut abort),
        }),
        Op::GroupHistory {
            origin,
            group,
            limit,
        } => Some(Reply::Found {
            origin,
            result: messages::group_history(tx, group, limit).map_err(&mut abort),
        }),
        Op::Search {
            origin,
            user,
            words,
            from,
            limit,
        } => Some(Reply::Found {
            origin,
            // In a savepoint: a query PostgreSQL refuses fails this search
            // alone.
            result: guarded(tx, |tx| search::search(tx, user, &words, from, limit)).map_err(
                |err| {
                    if err.is_closed() {
                        abort(err)
                    } else {
                        tracing::warn!("searching for {words:?}: {err}");
                        StoreError::from(err)
                    }
                },
            ),
        }),
        Op::Tail { stream, after } => Some(Reply::Tail {
            stream,
            after,
            result: messages::tail(tx, stream, after).map_err(&mut abort),
        }),
        Op::Heads(streams) => Some(Reply::Heads(
            messages::heads(tx, &streams).map_err(&mut abort),
        )),
        Op::Group {
            origin,
            changes,
            then,
        } => Some(Reply::Grouped {
            origin,
            result: groups::apply_all(tx, &changes).map_err(|err| {
                if err.is_closed() {
                    abort(err)
                } else {
                    tracing::error!("storing a change of groups: {err}");
                    StoreError::from(err)
                }
            }),
            then,
        }),
    };
    (reply, fatal)
}
