//! Groups in the database: the `groups` and `members` tables, read once at
//! start (the dispatcher keeps them in memory, like accounts) and changed
//! by [`GroupChange`]s, committed before the change is acknowledged.
//!
//! A group message is a row of `messages` whose `receiver` is the group's
//! id negated (public: NULL, private: the user's id), plus one `inbox` row
//! per member, so that it reaches offline members through their own stream.

use rusqlite::{params, Connection, Transaction};

use crate::store::{GroupChange, GroupId, GroupRow, UserId};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS groups (
    id      INTEGER PRIMARY KEY,
    name    TEXT NOT NULL,
    key     TEXT NOT NULL UNIQUE,
    owner   INTEGER NOT NULL,
    public  INTEGER NOT NULL,
    created INTEGER NOT NULL
);
-- `added`: when the member joined (Unix ms), the order members are listed
-- and ownership passes in.
CREATE TABLE IF NOT EXISTS members (
    grp   INTEGER NOT NULL,
    user  INTEGER NOT NULL,
    added INTEGER NOT NULL,
    PRIMARY KEY (grp, user)
) WITHOUT ROWID;
-- A group's history: only group messages (receiver < 0) are in it.
CREATE INDEX IF NOT EXISTS messages_group ON messages(receiver) WHERE receiver < 0;
";

pub(super) fn load(conn: &Connection) -> rusqlite::Result<Vec<GroupRow>> {
    let mut stmt = conn.prepare("SELECT id, name, owner, public FROM groups ORDER BY id")?;
    let mut groups: Vec<GroupRow> = stmt
        .query_map([], |row| {
            Ok(GroupRow {
                id: row.get(0)?,
                name: row.get(1)?,
                owner: row.get(2)?,
                public: row.get(3)?,
                members: Vec::new(),
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare("SELECT grp, user FROM members ORDER BY grp, added, user")?;
    let rows = stmt.query_map([], |row| {
        Ok((row.get::<_, GroupId>(0)?, row.get::<_, UserId>(1)?))
    })?;
    for row in rows {
        let (grp, user) = row?;
        if let Ok(i) = groups.binary_search_by_key(&grp, |g| g.id) {
            groups[i].members.push(user);
        }
    }
    Ok(groups)
}

pub(super) fn apply(tx: &Transaction, change: &GroupChange) -> rusqlite::Result<()> {
    match change {
        GroupChange::Create {
            group,
            name,
            key,
            owner,
            public,
            time,
        } => {
            tx.prepare_cached(
                "INSERT INTO groups (id, name, key, owner, public, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![group, name, key, owner, public, *time as i64])?;
        }
        GroupChange::Join { group, users, time } => {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO members (grp, user, added) VALUES (?1, ?2, ?3)",
            )?;
            for user in users {
                stmt.execute(params![group, user, *time as i64])?;
            }
        }
        GroupChange::Leave { group, users } => {
            let mut stmt = tx.prepare_cached("DELETE FROM members WHERE grp = ?1 AND user = ?2")?;
            for user in users {
                stmt.execute(params![group, user])?;
            }
        }
        GroupChange::Owner { group, owner } => {
            tx.prepare_cached("UPDATE groups SET owner = ?2 WHERE id = ?1")?
                .execute(params![group, owner])?;
        }
    }
    Ok(())
}

/// The `receiver` column of a message to `group`.
pub(super) fn receiver(group: GroupId) -> i64 {
    -group
}

/// Applies a request's changes: all of them or none.
pub(super) fn apply_all(tx: &Transaction, changes: &[GroupChange]) -> rusqlite::Result<()> {
    tx.execute_batch("SAVEPOINT grp")?;
    for change in changes {
        if let Err(err) = apply(tx, change) {
            tx.execute_batch("ROLLBACK TO grp; RELEASE grp")?;
            return Err(err);
        }
    }
    tx.execute_batch("RELEASE grp")
}
