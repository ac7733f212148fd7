//! The `users.ident` column: each account's identity key, unique, filled
//! (and brought up to date) every time the database opens.
//!
//! Databases from before identity keys have no such column: it is added
//! here. Keys are computed again at every open, so a newer Unicode table in
//! `unicode-security` takes effect without a migration of its own. Two old
//! accounts may now share a key (`alice`, then `аlice` with a Cyrillic
//! `а`): the older keeps it, the later one gets none — it can no longer log
//! in or be named, which is the point: it passed for someone else. Its
//! messages stay where they are.

use std::collections::HashMap;

use rusqlite::{params, Connection};

use super::{StoreError, UserId};
use crate::identity;

pub(super) fn index(conn: &mut Connection) -> Result<(), StoreError> {
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
        let key = identity::key(nick);
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

#[cfg(test)]
mod tests {
    use crate::store::Db;

    /// The `users` table as it was before identity keys.
    const OLD_USERS: &str = "
        CREATE TABLE users (
            id      INTEGER PRIMARY KEY,
            nick    TEXT NOT NULL,
            folded  TEXT NOT NULL UNIQUE,
            hash    TEXT NOT NULL,
            created INTEGER NOT NULL,
            acked   INTEGER NOT NULL DEFAULT 0
        );
        INSERT INTO users (id, nick, folded, hash, created) VALUES
            (1, 'alice', 'alice', 'h1', 0),
            (2, 'Bob', 'bob', 'h2', 0),
            (3, 'аlice', 'аlice', 'h3', 0),
            (4, 'ａｌｉｃｅ', 'ａｌｉｃｅ', 'h4', 0);
    ";

    fn keys(db: &mut Db) -> Vec<(i64, Option<String>)> {
        let mut accounts = db.accounts().unwrap();
        accounts.sort_by_key(|a| a.id);
        accounts.into_iter().map(|a| (a.id, a.key)).collect()
    }

    /// An older database opens: the column is added and filled, the first
    /// of several look-alike accounts keeps the key, and the key is unique
    /// from then on.
    #[test]
    fn an_older_database_gets_identity_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(OLD_USERS)
            .unwrap();
        let expected = vec![
            (1, Some("alice".to_string())),
            (2, Some("bob".to_string())),
            (3, None),
            (4, None),
        ];
        let mut db = Db::open(&path, 64 * 1024).unwrap();
        assert_eq!(keys(&mut db), expected);
        drop(db);
        let mut db = Db::open(&path, 64 * 1024).unwrap();
        assert_eq!(keys(&mut db), expected, "the same after reopening");
        drop(db);

        let conn = rusqlite::Connection::open(&path).unwrap();
        let duplicate = conn.execute(
            "INSERT INTO users (id, nick, folded, ident, hash, created)
             VALUES (5, 'ALICE!', 'alice!', 'alice', 'h', 0)",
            [],
        );
        assert!(duplicate.is_err(), "the index is unique: {duplicate:?}");
    }

    /// A key that went stale (computed by an older table, or by hand) is
    /// recomputed at open.
    #[test]
    fn stale_keys_are_recomputed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        drop(Db::open(&path, 64 * 1024).unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "INSERT INTO users (id, nick, folded, ident, hash, created)
                 VALUES (1, 'Carol', 'carol', 'wrong', 'h', 0);",
        )
        .unwrap();
        drop(conn);
        let mut db = Db::open(&path, 64 * 1024).unwrap();
        assert_eq!(keys(&mut db), vec![(1, Some("carol".to_string()))]);
    }
}
