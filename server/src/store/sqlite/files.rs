//! The `files` and `file_receivers` tables: one row per offer and one per
//! receiver ([`FileRow`]), changed by [`FileOp`]s.

use rusqlite::{params, Transaction};

use crate::store::{Answer, FileOp, FileReceiver as Receiver, FileRow, StoreError};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS files (
    id       INTEGER PRIMARY KEY,
    sender   INTEGER NOT NULL,
    name     TEXT NOT NULL,
    size     INTEGER NOT NULL,
    sha256   TEXT NOT NULL,
    time     INTEGER NOT NULL,
    complete INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS file_receivers (
    file   INTEGER NOT NULL,
    user   INTEGER NOT NULL,
    answer INTEGER NOT NULL DEFAULT 0,
    told   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (file, user)
) WITHOUT ROWID;
";

pub(super) fn apply(tx: &Transaction, op: &FileOp) -> rusqlite::Result<usize> {
    match op {
        FileOp::Offer(row) => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO files (id, sender, name, size, sha256, time, complete)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                row.id as i64,
                row.sender,
                row.name,
                row.size as i64,
                row.sha256,
                row.time as i64,
                row.complete
            ])?;
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO file_receivers (file, user, answer, told)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for r in &row.receivers {
                insert.execute(params![row.id as i64, r.user, r.answer as i64, r.told])?;
            }
            Ok(1)
        }
        FileOp::Complete(id) => tx
            .prepare_cached("UPDATE files SET complete = 1 WHERE id = ?1")?
            .execute(params![*id as i64]),
        FileOp::Answer {
            file,
            user,
            answer,
            told,
        } => tx
            .prepare_cached(
                "UPDATE file_receivers SET answer = ?3, told = ?4 WHERE file = ?1 AND user = ?2",
            )?
            .execute(params![*file as i64, user, *answer as i64, told]),
        FileOp::Told { file, user } => tx
            .prepare_cached("UPDATE file_receivers SET told = 1 WHERE file = ?1 AND user = ?2")?
            .execute(params![*file as i64, user]),
        FileOp::Delete(id) => {
            tx.prepare_cached("DELETE FROM file_receivers WHERE file = ?1")?
                .execute(params![*id as i64])?;
            tx.prepare_cached("DELETE FROM files WHERE id = ?1")?
                .execute(params![*id as i64])
        }
    }
}

/// Every offer, with its receivers, for the dispatcher's memory.
pub(super) fn load(conn: &rusqlite::Connection) -> Result<Vec<FileRow>, StoreError> {
    let mut rows: Vec<FileRow> = conn
        .prepare("SELECT id, sender, name, size, sha256, time, complete FROM files ORDER BY id")?
        .query_map([], |row| {
            Ok(FileRow {
                id: row.get::<_, i64>(0)? as u64,
                sender: row.get(1)?,
                name: row.get(2)?,
                size: row.get::<_, i64>(3)? as u64,
                sha256: row.get(4)?,
                time: row.get::<_, i64>(5)? as u64,
                complete: row.get(6)?,
                receivers: Vec::new(),
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare("SELECT file, user, answer, told FROM file_receivers")?;
    let receivers = stmt.query_map([], |row| {
        Ok((
            row.get::<_, i64>(0)? as u64,
            Receiver {
                user: row.get(1)?,
                answer: answer_of(row.get(2)?),
                told: row.get(3)?,
            },
        ))
    })?;
    for receiver in receivers {
        let (file, receiver) = receiver?;
        if let Ok(i) = rows.binary_search_by_key(&file, |r| r.id) {
            rows[i].receivers.push(receiver);
        }
    }
    Ok(rows)
}

fn answer_of(n: i64) -> Answer {
    match n {
        1 => Answer::Accepted,
        2 => Answer::Downloaded,
        3 => Answer::Rejected,
        _ => Answer::Pending,
    }
}
