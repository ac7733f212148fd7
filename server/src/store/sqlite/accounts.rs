//! The `users` and `sanctions` tables: accounts (and how far each has
//! acknowledged its stream) and the operator's bans and mutes.

use rusqlite::{params, Connection, Transaction};

use crate::store::{Account, Sanction, SanctionKind, StoreError, UserId};

/// Every account, for the dispatcher's memory.
pub(super) fn load(conn: &Connection) -> Result<Vec<Account>, StoreError> {
    let mut stmt = conn.prepare("SELECT id, nick, hash, ident FROM users")?;
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

/// Every ban and mute, for the dispatcher's memory.
pub(super) fn sanctions(conn: &Connection) -> Result<Vec<Sanction>, StoreError> {
    let mut stmt = conn.prepare("SELECT user, kind, until FROM sanctions")?;
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

pub(super) fn create(
    tx: &Transaction,
    user: UserId,
    nick: &str,
    folded: &str,
    key: &str,
    hash: &str,
    time: u64,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(
        "INSERT INTO users (id, nick, folded, ident, hash, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![user, nick, folded, key, hash, time as i64])
}

/// Sets a ban or mute, or lifts it.
pub(super) fn sanction(
    tx: &Transaction,
    sanction: &Sanction,
    lift: bool,
) -> rusqlite::Result<usize> {
    let kind = sanction.kind.as_str();
    if lift {
        tx.prepare_cached("DELETE FROM sanctions WHERE user = ?1 AND kind = ?2")?
            .execute(params![sanction.user, kind])
    } else {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO sanctions (user, kind, until) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![
            sanction.user,
            kind,
            sanction.until.map(|t| t as i64)
        ])
    }
}

pub(super) fn set_password(tx: &Transaction, user: UserId, hash: &str) -> rusqlite::Result<usize> {
    tx.prepare_cached("UPDATE users SET hash = ?2 WHERE id = ?1")?
        .execute(params![user, hash])
}
