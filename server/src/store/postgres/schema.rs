//! The schema, created if missing and brought up to date by versioned
//! migrations: `schema_version` holds the last one applied, each runs once,
//! in one transaction with its version's row.
//!
//! The tables mirror SQLite's (`users`, `messages`, `inbox`, `groups`,
//! `members`, `sanctions`, `files`, `file_receivers`), with a column
//! `user_id` where SQLite says `user` (a reserved word here), plus:
//! - `heads(stream, head)`: the last seq of each stream (0: public, u: user
//!   u's), locked in the batch's transaction, so seqs are dense and in commit
//!   order (a sequence is neither: `nextval` is never rolled back and its
//!   numbers become visible out of order);
//! - `messages.pub_seq`: a public message's seq; `messages.words`: its
//!   search vector, written with the message;
//! - `nodes`: the servers using this database and their leases;
//! - `heads` rows -1 and -2: how many times accounts and groups changed
//!   (a node that missed a doorbell sees them move), and `id_blocks`: each
//!   node run's block of ids for new accounts and groups;
//! - `online`: which node each logged-in account is on, and `heads` row -3
//!   counting its changes ([`super::online`]);
//! - `heads` row -4: how many times bans and mutes changed;
//! - `login_failures`: the wrong passwords of the last window (the login
//!   throttle's, on the database's clock), and `heads` row -5 counting the
//!   batches that wrote some ([`super::failures`]);
//! - `heads` row -6: how many times the file offers changed;
//! - `online.away`: a user's away text, for the other nodes' `online`
//!   answers.

use postgres::Client;

use crate::store::StoreError;

/// Migration `n + 1` is `MIGRATIONS[n]`.
const MIGRATIONS: &[&str] = &[
    // 1: the schema.
    "
CREATE TABLE users (
    id      BIGINT PRIMARY KEY,
    nick    TEXT NOT NULL,
    folded  TEXT NOT NULL UNIQUE,
    hash    TEXT NOT NULL,
    created BIGINT NOT NULL,
    acked   BIGINT NOT NULL DEFAULT 0,
    ident   TEXT UNIQUE
);
CREATE TABLE heads (
    stream BIGINT PRIMARY KEY,
    head   BIGINT NOT NULL
);
INSERT INTO heads (stream, head) VALUES (0, 0);
-- Message ids only order and join; seqs come from `heads`.
CREATE SEQUENCE message_ids;
CREATE TABLE messages (
    id       BIGINT PRIMARY KEY DEFAULT nextval('message_ids'),
    sender   BIGINT NOT NULL,
    receiver BIGINT,
    cid      TEXT,
    text     TEXT NOT NULL,
    time     BIGINT NOT NULL,
    pub_seq  BIGINT,
    words    TSVECTOR NOT NULL
);
CREATE UNIQUE INDEX messages_cid ON messages (sender, cid) WHERE cid IS NOT NULL;
CREATE UNIQUE INDEX messages_public ON messages (pub_seq) WHERE pub_seq IS NOT NULL;
CREATE INDEX messages_pair ON messages (sender, receiver) WHERE receiver IS NOT NULL;
CREATE INDEX messages_group ON messages (receiver) WHERE receiver < 0;
CREATE INDEX messages_words ON messages USING GIN (words);
CREATE TABLE inbox (
    user_id BIGINT NOT NULL,
    seq     BIGINT NOT NULL,
    message BIGINT NOT NULL,
    away    BOOLEAN NOT NULL,
    PRIMARY KEY (user_id, seq)
);
-- Bans and mutes; `until` in ms since the epoch, NULL for good.
CREATE TABLE sanctions (
    user_id BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    until   BIGINT,
    PRIMARY KEY (user_id, kind)
);
CREATE TABLE groups (
    id      BIGINT PRIMARY KEY,
    name    TEXT NOT NULL,
    key     TEXT NOT NULL UNIQUE,
    owner   BIGINT NOT NULL,
    public  BOOLEAN NOT NULL,
    created BIGINT NOT NULL
);
CREATE TABLE members (
    grp     BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    added   BIGINT NOT NULL,
    PRIMARY KEY (grp, user_id)
);
CREATE TABLE files (
    id       BIGINT PRIMARY KEY,
    sender   BIGINT NOT NULL,
    name     TEXT NOT NULL,
    size     BIGINT NOT NULL,
    sha256   TEXT NOT NULL,
    time     BIGINT NOT NULL,
    complete BOOLEAN NOT NULL DEFAULT false
);
CREATE TABLE file_receivers (
    file    BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    answer  SMALLINT NOT NULL DEFAULT 0,
    told    BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (file, user_id)
);
-- The servers on this database; a lease on the database's clock.
CREATE TABLE nodes (
    node        TEXT PRIMARY KEY,
    incarnation BIGINT NOT NULL,
    lease_until TIMESTAMPTZ NOT NULL,
    started     TIMESTAMPTZ NOT NULL
);
",
    // 2: several nodes. Change counters for accounts (-1) and groups (-2)
    // in `heads`, moved by the batch that changes them; blocks of ids for
    // each node's new accounts and groups.
    "
INSERT INTO heads (stream, head) VALUES (-1, 0), (-2, 0) ON CONFLICT DO NOTHING;
CREATE SEQUENCE id_blocks;
",
    // 3: presence across nodes. Who is online where (one row per account),
    // and its change counter (-3) in `heads`.
    "
CREATE TABLE online (
    user_id     BIGINT PRIMARY KEY,
    nick        TEXT NOT NULL,
    node        TEXT NOT NULL,
    incarnation BIGINT NOT NULL,
    conn        BIGINT NOT NULL,
    since       TIMESTAMPTZ NOT NULL
);
INSERT INTO heads (stream, head) VALUES (-3, 0) ON CONFLICT DO NOTHING;
",
    // 4: moderation across nodes: the sanctions' change counter (-4) in
    // `heads`.
    "
INSERT INTO heads (stream, head) VALUES (-4, 0) ON CONFLICT DO NOTHING;
",
    // 5: login throttles across nodes. Recent wrong passwords (on the
    // database's clock), and their change counter (-5) in `heads`.
    "
CREATE TABLE login_failures (
    id          BIGSERIAL PRIMARY KEY,
    user_id     BIGINT NOT NULL,
    network     TEXT NOT NULL,
    node        TEXT NOT NULL,
    incarnation BIGINT NOT NULL,
    at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX login_failures_at ON login_failures (at);
INSERT INTO heads (stream, head) VALUES (-5, 0) ON CONFLICT DO NOTHING;
",
    // 6: file offers across nodes. Their change counter (-6) in `heads`.
    "
INSERT INTO heads (stream, head) VALUES (-6, 0) ON CONFLICT DO NOTHING;
",
    // 7: away texts across nodes (NULL: here).
    "
ALTER TABLE online ADD COLUMN away TEXT;
",
];

/// Creates the schema or brings it up to date; refuses a database whose
/// schema is newer than this server's.
pub(super) fn migrate(client: &mut Client) -> Result<(), StoreError> {
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY)")?;
    let mut tx = client.transaction()?;
    // Two servers starting at once: the second waits, then finds it done.
    tx.batch_execute("LOCK TABLE schema_version IN EXCLUSIVE MODE")?;
    let current: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])?
        .get(0);
    let known = MIGRATIONS.len() as i32;
    if current > known {
        return Err(StoreError::Refused(format!(
            "the database's schema is version {current}, newer than this server's ({known}): \
             run a newer chat-server"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.batch_execute(sql)?;
        let version = version as i32 + 1;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&version],
        )?;
        tracing::info!("database schema: migration {version} applied");
    }
    tx.commit()?;
    Ok(())
}

/// The schema version this server brings a database to.
#[cfg(test)]
pub(super) const VERSION: i32 = MIGRATIONS.len() as i32;
