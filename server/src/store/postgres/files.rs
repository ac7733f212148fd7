//! The `files` and `file_receivers` tables: one row per offer and one per
//! receiver ([`FileRow`]), changed by [`FileOp`]s.

use postgres::{Client, Error};

use super::sql::{clamp, Tx};
use crate::store::{Answer, FileOp, FileReceiver as Receiver, FileRow};

pub(super) fn apply(tx: &mut Tx, op: &FileOp) -> Result<u64, Error> {
    match op {
        FileOp::Offer(row) => {
            let id = clamp(row.id);
            tx.execute(
                "INSERT INTO files (id, sender, name, size, sha256, time, complete)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (id) DO UPDATE SET sender = excluded.sender, name = excluded.name,
                   size = excluded.size, sha256 = excluded.sha256, time = excluded.time,
                   complete = excluded.complete",
                &[
                    &id,
                    &row.sender,
                    &row.name,
                    &clamp(row.size),
                    &row.sha256,
                    &clamp(row.time),
                    &row.complete,
                ],
            )?;
            let users: Vec<i64> = row.receivers.iter().map(|r| r.user).collect();
            let answers: Vec<i16> = row.receivers.iter().map(|r| r.answer as i16).collect();
            let told: Vec<bool> = row.receivers.iter().map(|r| r.told).collect();
            tx.execute(
                "INSERT INTO file_receivers (file, user_id, answer, told)
                 SELECT $1, * FROM unnest($2::bigint[], $3::smallint[], $4::boolean[])
                 ON CONFLICT (file, user_id)
                 DO UPDATE SET answer = excluded.answer, told = excluded.told",
                &[&id, &users, &answers, &told],
            )
        }
        FileOp::Complete(id) => tx.execute(
            "UPDATE files SET complete = true WHERE id = $1",
            &[&clamp(*id)],
        ),
        FileOp::Answer {
            file,
            user,
            answer,
            told,
        } => tx.execute(
            "UPDATE file_receivers SET answer = $3, told = $4 WHERE file = $1 AND user_id = $2",
            &[&clamp(*file), user, &(*answer as i16), told],
        ),
        FileOp::Told { file, user } => tx.execute(
            "UPDATE file_receivers SET told = true WHERE file = $1 AND user_id = $2",
            &[&clamp(*file), user],
        ),
        FileOp::Delete(id) => tx.execute(
            "WITH gone AS (DELETE FROM file_receivers WHERE file = $1)
             DELETE FROM files WHERE id = $1",
            &[&clamp(*id)],
        ),
    }
}

/// Every offer, with its receivers, for the dispatcher's memory.
pub(super) fn load(client: &mut Client) -> Result<Vec<FileRow>, Error> {
    let mut rows: Vec<FileRow> = client
        .query(
            "SELECT id, sender, name, size, sha256, time, complete FROM files ORDER BY id",
            &[],
        )?
        .iter()
        .map(|row| FileRow {
            id: row.get::<_, i64>(0) as u64,
            sender: row.get(1),
            name: row.get(2),
            size: row.get::<_, i64>(3) as u64,
            sha256: row.get(4),
            time: row.get::<_, i64>(5) as u64,
            complete: row.get(6),
            receivers: Vec::new(),
        })
        .collect();
    for row in client.query(
        "SELECT file, user_id, answer, told FROM file_receivers ORDER BY file, user_id",
        &[],
    )? {
        let file = row.get::<_, i64>(0) as u64;
        let receiver = Receiver {
            user: row.get(1),
            answer: answer_of(row.get(2)),
            told: row.get(3),
        };
        if let Ok(i) = rows.binary_search_by_key(&file, |r| r.id) {
            rows[i].receivers.push(receiver);
        }
    }
    Ok(rows)
}

fn answer_of(n: i16) -> Answer {
    match n {
        1 => Answer::Accepted,
        2 => Answer::Downloaded,
        3 => Answer::Rejected,
        _ => Answer::Pending,
    }
}
