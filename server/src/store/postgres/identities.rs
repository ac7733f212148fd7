//! The `users.ident` column: each account's identity key, unique, brought
//! up to date every time the server opens the database, as SQLite's is
//! (see `sqlite/identities.rs`): a newer Unicode table in the chat's
//! identity function takes effect without a migration, and of two accounts
//! that now share a key the older keeps it.

use std::collections::HashMap;

use postgres::Client;

use crate::store::{StoreError, UserId};

/// Fills `users.ident` with `ident` of each nickname (the chat's identity
/// key).
pub(super) fn index(client: &mut Client, ident: fn(&str) -> String) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    // Two servers opening at once would compute the same keys; one at a
    // time.
    tx.batch_execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")?;
    let rows: Vec<(UserId, String, Option<String>)> = tx
        .query("SELECT id, nick, ident FROM users ORDER BY id", &[])?
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
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
        let (ids, keys): (Vec<UserId>, Vec<Option<String>>) =
            rows.iter().map(|r| r.0).zip(wanted).unzip();
        tx.execute("UPDATE users SET ident = NULL WHERE ident IS NOT NULL", &[])?;
        tx.execute(
            "UPDATE users AS u SET ident = t.key
             FROM unnest($1::bigint[], $2::text[]) AS t(id, key) WHERE u.id = t.id",
            &[&ids, &keys],
        )?;
    }
    tx.commit()?;
    Ok(())
}
