//! The `login_failures` table: recent wrong passwords, so that the login
//! throttle's limits hold for the cluster and not per node. The batch that
//! learns a wrong password writes it (with the database's `now()`, so the
//! nodes' clocks need not agree), deletes the rows older than the window,
//! moves the `heads` row [`FAILURES`](super::bell::FAILURES) and rings
//! `x`. Every node's listener
//! then reads the rows after the last id it read (also when the counter
//! moved: a lost doorbell costs a second) and passes on the other node
//! runs' failures with their age; this run's own are counted already.
//!
//! Ids are in commit order: each batch that writes here locks the counter
//! row first (`lock_batch`), so no other batch takes an id until it
//! commits, and reading "after the last id" misses none and reads each
//! once.

use std::net::IpAddr;

use postgres::Client;

use super::bell::Bell;
use super::online::Me;
use super::sql::Tx;
use crate::store::{Failure, UserId};

/// Records this batch's wrong passwords (account, address) and forgets
/// those older than `window_ms`.
pub(super) fn record(
    tx: &mut Tx,
    me: &Me,
    failed: &[(UserId, IpAddr)],
    window_ms: u64,
    bell: &mut Bell,
) -> Result<(), postgres::Error> {
    if failed.is_empty() {
        return Ok(());
    }
    let users: Vec<UserId> = failed.iter().map(|(user, _)| *user).collect();
    let networks: Vec<String> = failed.iter().map(|(_, net)| net.to_string()).collect();
    tx.execute(
        "INSERT INTO login_failures (user_id, network, node, incarnation, at)
         SELECT u, n, $3, $4, now() FROM unnest($1::bigint[], $2::text[]) AS f(u, n)",
        &[&users, &networks, &me.node, &me.incarnation],
    )?;
    tx.execute(
        "DELETE FROM login_failures WHERE at < now() - $1::float8 * interval '1 millisecond'",
        &[&(window_ms as f64)],
    )?;
    bell.failures = true;
    Ok(())
}

/// The failures after id `after` that were not this node run's (`me`:
/// node and incarnation), oldest first, and the last id read (`after` if
/// none).
pub(super) fn since(
    client: &mut Client,
    after: i64,
    me: (&str, i64),
) -> Result<(Vec<Failure>, i64), postgres::Error> {
    let rows = client.query(
        "SELECT id, user_id, network, node, incarnation,
                greatest(0, (extract(epoch FROM now() - at) * 1000)::bigint)
         FROM login_failures WHERE id > $1 ORDER BY id",
        &[&after],
    )?;
    let mut last = after;
    let mut failures = Vec::new();
    for row in rows {
        last = last.max(row.get(0));
        let (node, incarnation): (String, i64) = (row.get(3), row.get(4));
        if (node.as_str(), incarnation) == me {
            continue;
        }
        let network: String = row.get(2);
        let Ok(network) = network.parse() else {
            tracing::warn!("a login failure with an address that is none: {network:?}");
            continue;
        };
        failures.push(Failure {
            user: row.get(1),
            network,
            age_ms: row.get::<_, i64>(5) as u64,
        });
    }
    Ok((failures, last))
}
