//! The connection as the backend uses it: a transaction whose statements
//! stay prepared (one round trip per statement, not two), and the text
//! conversions PostgreSQL needs (its `text` cannot hold a NUL).

use std::borrow::Cow;
use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{Client, Error, Row, Statement, Transaction};

/// Parameters of a statement.
pub(super) type Params<'p> = [&'p (dyn ToSql + Sync)];

/// One connection and the statements prepared on it (they live as long as
/// the connection, whatever its transactions do).
pub(super) struct Conn {
    pub(super) client: Client,
    statements: HashMap<String, Statement>,
}

impl Conn {
    pub(super) fn new(client: Client) -> Conn {
        Conn {
            client,
            statements: HashMap::new(),
        }
    }

    pub(super) fn begin(&mut self) -> Result<Tx<'_>, Error> {
        Ok(Tx {
            tx: self.client.transaction()?,
            statements: &mut self.statements,
        })
    }
}

/// A transaction (or a savepoint inside one) with prepared statements.
pub(super) struct Tx<'a> {
    tx: Transaction<'a>,
    statements: &'a mut HashMap<String, Statement>,
}

impl Tx<'_> {
    fn statement(&mut self, sql: &str) -> Result<Statement, Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.tx.prepare(sql)?;
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    pub(super) fn query(&mut self, sql: &str, params: &Params) -> Result<Vec<Row>, Error> {
        let statement = self.statement(sql)?;
        self.tx.query(&statement, params)
    }

    pub(super) fn query_opt(&mut self, sql: &str, params: &Params) -> Result<Option<Row>, Error> {
        let statement = self.statement(sql)?;
        self.tx.query_opt(&statement, params)
    }

    pub(super) fn query_one(&mut self, sql: &str, params: &Params) -> Result<Row, Error> {
        let statement = self.statement(sql)?;
        self.tx.query_one(&statement, params)
    }

    pub(super) fn execute(&mut self, sql: &str, params: &Params) -> Result<u64, Error> {
        let statement = self.statement(sql)?;
        self.tx.execute(&statement, params)
    }

    /// A savepoint: what it does is kept by [`Tx::commit`] and undone by
    /// [`Tx::rollback`] (or by dropping it), without aborting the batch —
    /// in PostgreSQL one failed statement aborts the whole transaction.
    pub(super) fn savepoint(&mut self) -> Result<Tx<'_>, Error> {
        Ok(Tx {
            tx: self.tx.transaction()?,
            statements: &mut *self.statements,
        })
    }

    pub(super) fn commit(self) -> Result<(), Error> {
        self.tx.commit()
    }

    pub(super) fn rollback(self) -> Result<(), Error> {
        self.tx.rollback()
    }
}

/// Runs `f` in a savepoint: its writes stay if it succeeds, and if it
/// fails with an error of the database's (not a lost connection), they are
/// undone and the batch goes on.
pub(super) fn guarded<T>(
    tx: &mut Tx,
    f: impl FnOnce(&mut Tx) -> Result<T, Error>,
) -> Result<T, Error> {
    let mut sp = tx.savepoint()?;
    match f(&mut sp) {
        Ok(value) => {
            sp.commit()?;
            Ok(value)
        }
        Err(err) => {
            if !err.is_closed() {
                sp.rollback()?;
            }
            Err(err)
        }
    }
}

/// A text as stored: PostgreSQL's `text` cannot hold a NUL, which a chat
/// message may (`\u0000` is valid JSON), so `\` becomes `\\` and NUL `\0`.
/// Most texts have neither and are stored as they are.
pub(super) fn escape(text: &str) -> Cow<'_, str> {
    if !text.contains(['\\', '\0']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The text [`escape`] stored.
pub(super) fn unescape(stored: String) -> String {
    if !stored.contains('\\') {
        return stored;
    }
    let mut out = String::with_capacity(stored.len());
    let mut chars = stored.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// A position the chat gave (`u64`) as PostgreSQL's `bigint`: anything
/// beyond the largest is "after everything".
pub(super) fn clamp(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_and_leaves_plain_text_alone() {
        for text in ["plain", "a\0b", "C:\\dir\\0", "\\", "\0\\0\\\\", ""] {
            let stored = escape(text);
            assert!(!stored.contains('\0'));
            assert_eq!(unescape(stored.into_owned()), text);
        }
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
    }
}
