//! Full-text search: `messages_fts`, a contentless FTS5 index filled a
//! step at a time between commits, so that indexing never slows a commit
//! nor holds the dispatcher for long.

use rusqlite::{params, OptionalExtension, Transaction};

use super::messages::{loaded, LOADED_COLUMNS, LOADED_JOINS};
use crate::store::{Loaded, UserId};

/// Messages added to the search index in one step: ~0.3 ms of work, so
/// that a step never holds the dispatcher for long (1,000 took ~1 ms and
/// held the messages behind it at the latency's p99.9). A search
/// indexes at most one step itself: after a flood it searches what is
/// indexed rather than keep everyone waiting (1,080,000 messages, indexed
/// inline, held every client for 2 s).
pub(super) const INDEX_STEP: i64 = if cfg!(test) { 100 } else { 250 };

/// Turns what a user typed into an FTS5 query: each word a quoted phrase,
/// all required, so FTS5's own syntax (`AND`, `:` …) is never interpreted
/// and a stray quote cannot make the query fail. A word ending in `*`
/// matches as a prefix (`exa*`: exam, example), as search boxes do.
pub(crate) fn fts_query(words: &str) -> Option<String> {
    // A NUL ends a C string: SQLite would see a cut-off query.
    let terms: Vec<String> = words
        .split(|c: char| c.is_whitespace() || c == '\0')
        .filter_map(|w| {
            let (word, prefix) = match w.strip_suffix('*') {
                Some(stem) => (stem.trim_end_matches('*'), "*"),
                None => (w, ""),
            };
            (!word.is_empty()).then(|| format!("\"{}\"{prefix}", word.replace('"', "\"\"")))
        })
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

pub(super) fn search(
    tx: &Transaction,
    user: UserId,
    words: &str,
    from: Option<UserId>,
    limit: u32,
) -> rusqlite::Result<Vec<Loaded>> {
    // One step, all or nothing (a step cut between its two statements
    // would index those messages again, and FTS5 refuses a rowid twice);
    // if it fails, the search still runs on what is indexed.
    let stepped = tx.execute_batch("SAVEPOINT step").and_then(|()| {
        if let Err(err) = index_chunk(tx) {
            tx.execute_batch("ROLLBACK TO step; RELEASE step")?;
            return Err(err);
        }
        tx.execute_batch("RELEASE step")
    });
    if let Err(err) = stepped {
        tracing::warn!("indexing messages for search: {err}");
    }
    let Some(query) = fts_query(words) else {
        return Ok(Vec::new());
    };
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {LOADED_COLUMNS}, m.id FROM messages_fts f
         JOIN messages m ON m.id = f.rowid
         {LOADED_JOINS}
         WHERE messages_fts MATCH ?1
           AND (m.receiver IS NULL OR m.sender = ?2 OR m.receiver = ?2
                OR (m.receiver < 0 AND EXISTS
                    (SELECT 1 FROM members WHERE grp = -m.receiver AND user = ?2)))
           AND (?3 IS NULL OR m.sender = ?3)
         ORDER BY m.id DESC LIMIT ?4"
    ))?;
    let rows = stmt.query_map(params![query, user, from, limit], |row| {
        loaded(row, row.get::<_, i64>(4)? as u64, false)
    })?;
    rows.collect()
}

/// Adds the next [`INDEX_STEP`] messages to the search index; true when
/// none is left.
pub(super) fn index_chunk(tx: &Transaction) -> rusqlite::Result<bool> {
    let indexed: i64 = tx
        .prepare_cached("SELECT value FROM meta WHERE key = 'fts_indexed'")?
        .query_row([], |row| row.get(0))
        .optional()?
        .unwrap_or(0);
    let (upto, count): (Option<i64>, i64) = tx
        .prepare_cached(&format!(
            "SELECT max(id), count(*) FROM
               (SELECT id FROM messages WHERE id > ?1 ORDER BY id LIMIT {INDEX_STEP})"
        ))?
        .query_row([indexed], |row| Ok((row.get(0)?, row.get(1)?)))?;
    let Some(upto) = upto else {
        return Ok(true);
    };
    tx.prepare_cached(
        "INSERT INTO messages_fts (rowid, text) SELECT id, text FROM messages WHERE id > ?1 AND id <= ?2",
    )?
    .execute(params![indexed, upto])?;
    tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('fts_indexed', ?1)")?
        .execute([upto])?;
    Ok(count < INDEX_STEP)
}
