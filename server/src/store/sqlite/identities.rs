//! The `users.ident` column: each account's identity key, unique, filled
//! (and brought up to date) every time the database opens.
//!
//! Databases from before identity keys have no such column: it is added
//! here. Keys are computed again at every open, so a newer Unicode table in
//! the chat's identity function (`unicode-security`) takes effect without a migration of its own. Two old
//! accounts may now share a key (`alice`, then `аlice` with a Cyrillic
//! `а`): the older keeps it, the later one gets none — it can no longer log
//! in or be named, which is the point: it passed for someone else. Its
//! messages stay where they are.

use std::collections::HashMap;

use rusqlite::{params, Connection};

use crate::store::{StoreError, UserId};

/// Fills `users.ident` with `ident` of each nickname (the chat's identity
/// key), and makes it unique.
pub(super) fn index(conn: &mut Connection, ident: fn(&str) -> String) -> Result<(), StoreError> {
    let has_column = conn
        .prepare("SELECT 1 FROM pragma_table_info('users') WHERE name = 'ident'")?
        .exists([])?;
    if !has_column {
        conn.execute_batch("ALTER TABLE users ADD COLUMN ident TEXT")?;
        tracing::info!("accounts: added identity keys to an older database");
    }
    let rows: Vec<(UserId, String, Option<String>)> = conn
        .prepare("SELECT id, nick, ident FROM users ORDER BY id")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut owners: HashMap<String, (UserId, &str)> = HashMap::new();
    let mut wanted = Vec::with_capacity(rows.len());
    for (id, nick, _) in &rows {
        let key = ident(nick);
        if let Some(&(first, first_nick)) = owners.get(&key) {
            tracing::warn!(
                "account {nick:?} (#{id}) looks like {first_nick:?} (#{first}): \
                 it cannot log in any more"
            );
            wanted.push(None);
        } else {
            owners.insert(key.clone(), (*id, nick));
            wanted.push(Some(key));
        }
    }
    let stale = rows
        .iter()
        .zip(&wanted)
        .any(|((_, _, ident), want)| ident != want);
    if stale {
        // Cleared first: a key may move from one row to another.
        let tx = conn.transaction()?;
        tx.execute("DROP INDEX IF EXISTS users_ident", [])?;
        tx.execute("UPDATE users SET ident = NULL", [])?;
        {
            let mut set = tx.prepare("UPDATE users SET ident = ?2 WHERE id = ?1")?;
            for ((id, _, _), key) in rows.iter().zip(&wanted) {
                if let Some(key) = key {
                    set.execute(params![id, key])?;
                }
            }
        }
        tx.commit()?;
    }
    conn.execute_batch("CREATE UNIQUE INDEX IF NOT EXISTS users_ident ON users(ident)")?;
    Ok(())
}
