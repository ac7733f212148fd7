//! Groups in the database: the `groups` and `members` tables, read once at
//! start (the dispatcher keeps them in memory) and changed by
//! [`GroupChange`]s, all of a request's or none (a savepoint).
//!
//! A group message is a row of `messages` whose `receiver` is the group's
//! id negated, plus one `inbox` row per member.

use postgres::{Client, Error};

use super::sql::{clamp, guarded, Tx};
use crate::store::{GroupChange, GroupId, GroupRow, UserId};

pub(super) fn load(client: &mut Client) -> Result<Vec<GroupRow>, Error> {
    let mut groups: Vec<GroupRow> = client
        .query(
            "SELECT id, name, owner, public FROM groups ORDER BY id",
            &[],
        )?
        .iter()
        .map(|row| GroupRow {
            id: row.get(0),
            name: row.get(1),
            owner: row.get(2),
            public: row.get(3),
            members: Vec::new(),
        })
        .collect();
    for row in client.query(
        "SELECT grp, user_id FROM members ORDER BY grp, added, user_id",
        &[],
    )? {
        let (grp, user): (GroupId, UserId) = (row.get(0), row.get(1));
        if let Ok(i) = groups.binary_search_by_key(&grp, |g| g.id) {
            groups[i].members.push(user);
        }
    }
    Ok(groups)
}

fn apply(tx: &mut Tx, change: &GroupChange) -> Result<(), Error> {
    match change {
        GroupChange::Create {
            group,
            name,
            key,
            owner,
            public,
            time,
        } => {
            tx.execute(
                "INSERT INTO groups (id, name, key, owner, public, created)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[group, name, key, owner, public, &clamp(*time)],
            )?;
        }
        GroupChange::Join { group, users, time } => {
            tx.execute(
                "INSERT INTO members (grp, user_id, added)
                 SELECT $1, unnest($2::bigint[]), $3 ON CONFLICT DO NOTHING",
                &[group, users, &clamp(*time)],
            )?;
        }
        GroupChange::Leave { group, users } => {
            tx.execute(
                "DELETE FROM members WHERE grp = $1 AND user_id = ANY($2)",
                &[group, users],
            )?;
        }
        GroupChange::Owner { group, owner } => {
            tx.execute(
                "UPDATE groups SET owner = $2 WHERE id = $1",
                &[group, owner],
            )?;
        }
    }
    Ok(())
}

/// Applies a request's changes: all of them or none.
pub(super) fn apply_all(tx: &mut Tx, changes: &[GroupChange]) -> Result<(), Error> {
    guarded(tx, |tx| {
        changes.iter().try_for_each(|change| apply(tx, change))
    })
}
