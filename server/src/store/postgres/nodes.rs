//! The `nodes` table: which servers use the database, each with a lease on
//! the database's clock (`lease_until = now() + LEASE`, so the nodes' own
//! clocks never matter), renewed by a small thread on its own connection.
//!
//! Cluster mode with several nodes is not built yet: a node refuses to
//! start while another node's lease is live. The same node id may start
//! again at once (after a crash): it takes a new incarnation.

use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender};
use postgres::{Client, Config, NoTls};

use crate::store::StoreError;

/// How long a lease lasts without renewal (and so how long a node that
/// died keeps another from starting).
pub(super) const LEASE_SECS: u32 = if cfg!(test) { 2 } else { 5 };

/// How often the lease is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(1);

/// Registers `node` with a fresh lease, unless another node's is live;
/// returns the node's incarnation.
pub(super) fn claim(client: &mut Client, node: &str) -> Result<i64, StoreError> {
    let mut tx = client.transaction()?;
    // Two nodes starting at once: one registers, the other then sees it.
    tx.batch_execute("LOCK TABLE nodes IN SHARE ROW EXCLUSIVE MODE")?;
    let live = tx.query_opt(
        "SELECT node FROM nodes WHERE node <> $1 AND lease_until > now() ORDER BY node LIMIT 1",
        &[&node],
    )?;
    if let Some(row) = live {
        let other: String = row.get(0);
        return Err(StoreError::Refused(format!(
            "cluster mode with several nodes is not built yet: node {other} holds the lease \
             (it renews it every second; a node that stopped lets go within {LEASE_SECS} s)"
        )));
    }
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
    Ok(incarnation)
}

/// The thread renewing a node's lease; lets go of the lease when dropped.
pub(super) struct Lease {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Lease {
    pub(super) fn start(
        config: Config,
        node: String,
        incarnation: i64,
    ) -> Result<Lease, StoreError> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("lease".into())
            .spawn(move || {
                let mut client: Option<Client> = None;
                loop {
                    // Told to stop (the store dropped): let go of the lease.
                    let end = !matches!(
                        stopped.recv_timeout(RENEW_EVERY),
                        Err(RecvTimeoutError::Timeout)
                    );
                    if let Err(err) = renew(&config, &mut client, &node, incarnation, end) {
                        client = None;
                        tracing::warn!("renewing the lease of node {node}: {err}");
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
    node: &str,
    incarnation: i64,
    end: bool,
) -> Result<(), postgres::Error> {
    let client = match client {
        Some(client) => client,
        None => client.insert(config.connect(NoTls)?),
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
