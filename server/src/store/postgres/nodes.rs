//! The `nodes` table: which servers use the database, each with a lease on
//! the database's clock (`lease_until = now() + LEASE`, so the nodes' own
//! clocks never matter), renewed by a small thread on its own connection.
//!
//! Several nodes share a database, each under its own id. The lease
//! thread's connection holds a session lock on the node's id (an advisory
//! lock), so a second process under the same id is refused while the
//! first runs; the lock goes with its connection, so after a crash (even
//! SIGKILL) the same id starts again within a moment, as a new
//! incarnation.

use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender};
use postgres::{Client, Config, NoTls};

use super::online::{self, Me};
use crate::store::{Renewed, StoreError};

/// How long a lease lasts without renewal (and so how long a node that
/// died keeps another from starting).
pub(super) const LEASE_SECS: u32 = if cfg!(test) { 2 } else { 5 };

/// How often the lease is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(1);

/// How soon a renewal that failed is tried again: a database restart of
/// ~2 s, retried once a second, left 3 s without a renewal and fenced the
/// node (its users sent away, and, on a busy public stream, back to only
/// the last 1,000 public messages at their next login).
const RETRY_EVERY: Duration = Duration::from_millis(200);

/// How long before its lease runs out (on the others' side) a node that
/// could not renew fences itself: two renewals' worth, so that the
/// dispatcher's 1 s tick and a renewal in flight still fit.
const FENCE_MARGIN: Duration = Duration::from_secs(2);

/// How long after its last renewal a node fences itself (closes its
/// clients, refuses logins): before the others reap its users, so that a
/// user is never online on two nodes at once in the others' eyes.
pub(super) fn fence_after() -> Duration {
    Duration::from_secs(LEASE_SECS.into()).saturating_sub(FENCE_MARGIN)
}

/// How long a node waits at start for the lock of its id, held by a
/// process of the same id that just died (its connection is closing).
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// The advisory lock's key for `node`.
const LOCK_KEY: &str = "hashtextextended('chat-server node ' || $1, 0)";

/// Takes the session lock of `node`'s id on `client` (false: another
/// session holds it).
fn lock(client: &mut Client, node: &str) -> Result<bool, postgres::Error> {
    Ok(client
        .query_one(
            &format!("SELECT pg_try_advisory_lock({LOCK_KEY})"),
            &[&node],
        )?
        .get(0))
}

/// Registers `node` with a fresh lease and returns its incarnation, with
/// the connection holding its id's lock; refused while another process
/// runs as `node`.
pub(super) fn claim(config: &Config, node: &str) -> Result<(Client, i64), StoreError> {
    let mut client = config.connect(NoTls)?;
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    while !lock(&mut client, node)? {
        if std::time::Instant::now() >= deadline {
            return Err(StoreError::Refused(format!(
                "node {node} is running already (another process holds its id): \
                 give each node its own --node-id"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut tx = client.transaction()?;
    let incarnation = tx
        .query_one(
            &format!(
                "INSERT INTO nodes (node, incarnation, lease_until, started)
                 VALUES ($1, 1, now() + interval '{LEASE_SECS} seconds', now())
                 ON CONFLICT (node) DO UPDATE SET incarnation = nodes.incarnation + 1,
                   lease_until = excluded.lease_until, started = excluded.started
                 RETURNING incarnation"
            ),
            &[&node],
        )?
        .get(0);
    tx.commit()?;
    Ok((client, incarnation))
}

/// The thread renewing a node's lease; lets go of the lease when dropped.
pub(super) struct Lease {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Lease {
    /// `client` holds the node's lock ([`claim`]). Each renewal also
    /// reaps the `online` rows of dead nodes ([`online::reap`]), and sets
    /// `renewed` to when it succeeded.
    pub(super) fn start(
        config: Config,
        client: Client,
        me: Me,
        renewed: Renewed,
    ) -> Result<Lease, StoreError> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("lease".into())
            .spawn(move || {
                let mut client: Option<Client> = Some(client);
                let mut failing = false;
                loop {
                    let wait = if failing { RETRY_EVERY } else { RENEW_EVERY };
                    // Told to stop (the store dropped): let go of the lease.
                    let end = !matches!(stopped.recv_timeout(wait), Err(RecvTimeoutError::Timeout));
                    let asked = std::time::Instant::now();
                    match renew(&config, &mut client, &me, end) {
                        // The lease runs from the database's now(), after
                        // `asked`: the node's count starts no later.
                        Ok(()) => {
                            renewed.set(asked);
                            if failing {
                                tracing::info!("node {}: the lease is renewed again", me.node);
                            }
                            failing = false;
                        }
                        Err(err) => {
                            client = None;
                            // Once per outage, not at every retry.
                            if !failing {
                                tracing::warn!("renewing the lease of node {}: {err}", me.node);
                            }
                            failing = true;
                        }
                    }
                    if end {
                        return;
                    }
                }
            })
            .map_err(|err| StoreError::Thread(std::sync::Arc::new(err)))?;
        Ok(Lease {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// Renews the lease (or, at the `end`, lets it go), connecting first if
/// the last try lost the connection.
fn renew(
    config: &Config,
    client: &mut Option<Client>,
    me: &Me,
    end: bool,
) -> Result<(), postgres::Error> {
    let (node, incarnation) = (me.node.as_str(), me.incarnation);
    let client = match client {
        Some(client) => client,
        None => {
            let mut new = config.connect(NoTls)?;
            if !lock(&mut new, node)? {
                tracing::error!(
                    "node {node}: another process took this node's id while its lease \
                     connection was lost"
                );
            }
            client.insert(new)
        }
    };
    let until = if end {
        "now()".to_string()
    } else {
        format!("now() + interval '{LEASE_SECS} seconds'")
    };
    let renewed = client.execute(
        &format!("UPDATE nodes SET lease_until = {until} WHERE node = $1 AND incarnation = $2"),
        &[&node, &incarnation],
    )?;
    if renewed == 0 {
        tracing::error!(
            "node {node} was started again elsewhere: this process no longer holds its lease"
        );
    }
    // Stopping: this run's users are gone too.
    let gone = online::reap(client, me, end)?;
    if gone > 0 {
        tracing::info!("{gone} users of stopped or lost nodes are offline now");
    }
    Ok(())
}

impl Drop for Lease {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The nodes whose lease is live now, by name.
pub(super) fn live(client: &mut Client) -> Result<Vec<String>, postgres::Error> {
    Ok(client
        .query(
            "SELECT node FROM nodes WHERE lease_until > now() ORDER BY node",
            &[],
        )?
        .into_iter()
        .map(|row| row.get(0))
        .collect())
}
