//! The `users` and `sanctions` tables: accounts (and how far each has
//! acknowledged its stream) and the operator's bans and mutes.

use postgres::{Client, Error};

use super::sql::{clamp, Tx};
use crate::store::{Account, Sanction, SanctionKind, UserId};

/// Every account, for the dispatcher's memory.
pub(super) fn load(client: &mut Client) -> Result<Vec<Account>, Error> {
    let rows = client.query("SELECT id, nick, hash, ident FROM users ORDER BY id", &[])?;
    Ok(rows
        .iter()
        .map(|row| Account {
            id: row.get(0),
            nick: row.get(1),
            hash: row.get(2),
            key: row.get(3),
        })
        .collect())
}

/// Every ban and mute, for the dispatcher's memory.
pub(super) fn sanctions(client: &mut Client) -> Result<Vec<Sanction>, Error> {
    let rows = client.query(
        "SELECT user_id, kind, until FROM sanctions ORDER BY user_id, kind",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|row| Sanction {
            user: row.get(0),
            kind: if row.get::<_, &str>(1) == "mute" {
                SanctionKind::Mute
            } else {
                SanctionKind::Ban
            },
            until: row.get::<_, Option<i64>>(2).map(|t| t as u64),
        })
        .collect())
}

/// A new account and its stream's head; false (nothing stored) if its id,
/// name or identity key is taken.
pub(super) fn create(
    tx: &mut Tx,
    user: UserId,
    nick: &str,
    folded: &str,
    key: &str,
    hash: &str,
    time: u64,
) -> Result<bool, Error> {
    let stored = tx.execute(
        "WITH account AS (
             INSERT INTO users (id, nick, folded, ident, hash, created)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING id)
         INSERT INTO heads (stream, head) SELECT id, 0 FROM account ON CONFLICT DO NOTHING",
        &[&user, &nick, &folded, &key, &hash, &clamp(time)],
    )?;
    // The head row may exist already (messages to an id before it had an
    // account): then look at the account itself.
    Ok(stored == 1
        || tx
            .query_opt(
                "SELECT 1 FROM users WHERE id = $1 AND folded = $2",
                &[&user, &folded],
            )?
            .is_some())
}

/// Sets a ban or mute, or lifts it.
pub(super) fn sanction(tx: &mut Tx, sanction: &Sanction, lift: bool) -> Result<u64, Error> {
    let kind = sanction.kind.as_str();
    if lift {
        tx.execute(
            "DELETE FROM sanctions WHERE user_id = $1 AND kind = $2",
            &[&sanction.user, &kind],
        )
    } else {
        tx.execute(
            "INSERT INTO sanctions (user_id, kind, until) VALUES ($1, $2, $3)
             ON CONFLICT (user_id, kind) DO UPDATE SET until = excluded.until",
            &[&sanction.user, &kind, &sanction.until.map(clamp)],
        )
    }
}

pub(super) fn set_password(tx: &mut Tx, user: UserId, hash: &str) -> Result<u64, Error> {
    tx.execute("UPDATE users SET hash = $2 WHERE id = $1", &[&user, &hash])
}
