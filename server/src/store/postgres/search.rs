//! Full-text search: `messages.words`, a `tsvector` (the `simple`
//! configuration: lower-cased words, no stemming, no stop words, like
//! SQLite's unicode61) with a GIN index, written in the same statement as
//! the message. So nothing waits to be indexed: a search sees every
//! committed message, and [`Backend::unindexed`] is always false.
//!
//! Diacritics are folded here, in Rust, for the text and the query alike
//! (`café` finds `cafe`): PostgreSQL's `unaccent` is an extension a
//! database may lack, and not immutable.
//!
//! [`Backend::unindexed`]: crate::store::Backend::unindexed

use postgres::Error;
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization as _;

use super::messages::{loaded, LOADED_COLUMNS, LOADED_JOINS};
use super::sql::Tx;
use crate::store::{Loaded, UserId};

/// The most of a message's text that is indexed: `tsvector` has a limit of
/// its own (1 MB), which a longer `--max-text` would reach.
const INDEXED_BYTES: usize = 256 * 1024;

/// A text as the search index sees it: compatibility-decomposed, marks
/// dropped, NULs made spaces.
pub(super) fn fold(text: &str) -> String {
    let mut end = text.len().min(INDEXED_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end]
        .nfkd()
        .filter(|&c| !is_combining_mark(c))
        .map(|c| if c == '\0' { ' ' } else { c })
        .collect()
}

/// Turns what a user typed into a `tsquery`: every word required, a word
/// made of several tokens (`e-mail`) a phrase, a word ending in `*` a
/// prefix (`exa*`: exam, example). Only letters and digits reach the
/// query, each quoted, so its syntax (`&`, `!`, `:`) is never interpreted.
pub(super) fn tsquery(words: &str) -> Option<String> {
    let terms: Vec<String> = words
        .split(|c: char| c.is_whitespace() || c == '\0')
        .filter_map(|w| {
            let (word, prefix) = match w.strip_suffix('*') {
                Some(stem) => (stem.trim_end_matches('*'), ":*"),
                None => (w, ""),
            };
            let folded = fold(word);
            let tokens: Vec<&str> = folded
                .split(|c: char| !c.is_alphanumeric())
                .filter(|t| !t.is_empty())
                .collect();
            let (last, rest) = tokens.split_last()?;
            let mut term: Vec<String> = rest.iter().map(|t| format!("'{t}'")).collect();
            term.push(format!("'{last}'{prefix}"));
            Some(term.join(" <-> "))
        })
        .collect();
    (!terms.is_empty()).then(|| terms.join(" & "))
}

pub(super) fn search(
    tx: &mut Tx,
    user: UserId,
    words: &str,
    from: Option<UserId>,
    limit: u32,
) -> Result<Vec<Loaded>, Error> {
    let Some(query) = tsquery(words) else {
        return Ok(Vec::new());
    };
    let rows = tx.query(
        &format!(
            "SELECT {LOADED_COLUMNS}, m.id FROM messages m {LOADED_JOINS}
             WHERE m.words @@ to_tsquery('simple', $1)
               AND (m.receiver IS NULL OR m.sender = $2 OR m.receiver = $2
                    OR (m.receiver < 0 AND EXISTS
                        (SELECT 1 FROM members WHERE grp = -m.receiver AND user_id = $2)))
               AND ($3::bigint IS NULL OR m.sender = $3)
             ORDER BY m.id DESC LIMIT $4"
        ),
        &[&query, &user, &from, &(limit as i64)],
    )?;
    Ok(rows.iter().map(|r| loaded(r, r.get(4), false)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_quote_every_token() {
        assert_eq!(tsquery("exam"), Some("'exam'".into()));
        assert_eq!(tsquery("exa* Café"), Some("'exa':* & 'Cafe'".into()));
        assert_eq!(tsquery("e-mail"), Some("'e' <-> 'mail'".into()));
        assert_eq!(tsquery("\"AND* ( !:"), Some("'AND':*".into()));
        assert_eq!(tsquery("* ** \0"), None);
    }
}
