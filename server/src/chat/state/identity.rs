//! Who a nickname names: the key under which two spellings are one account
//! because a reader could take one for the other.
//!
//! `аlice` with a Cyrillic `а`, `ALICE`, fullwidth `ａｌｉｃｅ`, `alİce` and
//! `alicé` all look like `alice` in a chat window, so they all are alice:
//! logging in with any of them checks alice's password, and none can become
//! a second account. The key is built, in this order, by lower-casing;
//! the confusable skeleton of Unicode TR39 (`а` → `a`, `0` → `O`, `1` →
//! `l`); NFKC (fullwidth and mathematical letters become plain ones);
//! lower-casing again and dropping combining marks (accents, the dot of
//! `İ`); the skeleton again, lower-cased, without marks — repeated until
//! nothing changes. Lower-casing first means names equal but for case
//! always share a key, as the database's older `folded` column requires.
//!
//! Case and shape disagree on one letter: in `ALICE` a capital `I` is an
//! `i`, in `aIice` it passes for an `l`. The key reads it as `i` (so
//! `ALICE` is alice and `aIice` is the name `aiice`); [`glyph_key`] reads
//! it by its shape, and a new account is refused when that matches an
//! existing one, so `aIice` cannot be registered next to `alice`.
//!
//! The key is never shown: a nickname is displayed in the NFKC form its
//! owner registered ([`display`]).

use std::sync::OnceLock;

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;
use unicode_security::confusable_detection::skeleton;

/// Names nobody may log in with, nor anything that looks like them: they
/// would pass for the server or its operator.
pub const RESERVED: [&str; 7] = [
    "server",
    "admin",
    "administrator",
    "root",
    "system",
    "operator",
    "moderator",
];

/// Rounds of [`step`]: a skeleton can produce text that normalises or
/// lower-cases further; two rounds reach a fixed point for every name
/// tried, the third is a margin.
const ROUNDS: usize = 3;

/// The identity key of `nick`: equal for every spelling that looks alike.
pub fn key(nick: &str) -> String {
    let mut key = nick.to_lowercase();
    for _ in 0..ROUNDS {
        let next = match ascii(&key) {
            Some(table) => key
                .bytes()
                .map(|b| table[b as usize].step.as_str())
                .collect(),
            None => step(&key),
        };
        if next == key {
            break;
        }
        key = next;
    }
    key
}

fn step(text: &str) -> String {
    // A skeleton before NFKC too: NFKC turns some look-alikes into letters
    // that no longer look alike (a lunate sigma `ϲ` into a final `ς`).
    let plain: String = skeleton(text)
        .nfkc()
        .collect::<String>()
        .to_lowercase()
        .nfd()
        .filter(|&c| !is_combining_mark(c))
        .collect();
    skeleton(&plain)
        .collect::<String>()
        .to_lowercase()
        .chars()
        .filter(|&c| !is_combining_mark(c))
        .collect()
}

/// The key of `nick` read by the shapes of its letters before their case
/// is folded (a capital `I` becomes an `l`); differs from [`key`] only for
/// such letters.
pub fn glyph_key(nick: &str) -> String {
    if let Some(table) = ascii(nick) {
        return key(&nick
            .bytes()
            .map(|b| table[b as usize].skeleton.as_str())
            .collect::<String>());
    }
    let nfkc: String = nick.nfkc().collect();
    key(&skeleton(&nfkc).collect::<String>())
}

/// What the Unicode machinery makes of one ASCII character.
struct Ascii {
    skeleton: String,
    step: String,
}

/// The per-character table, if every character of `text` is ASCII with an
/// ASCII skeleton. Then NFKC and NFD leave the text alone, there are no
/// marks, and lower-casing and the skeleton go character by character, so
/// [`step`] and the skeleton of the whole are those of its characters put
/// together: the same keys, without the Unicode work. It made a login's
/// dispatcher time mostly normalisation (10,000 logins: `perf`).
fn ascii(text: &str) -> Option<&'static [Ascii; 128]> {
    static TABLE: OnceLock<([Ascii; 128], [bool; 128])> = OnceLock::new();
    let (table, usable) = TABLE.get_or_init(|| {
        let table: [Ascii; 128] = std::array::from_fn(|b| {
            let c = (b as u8 as char).to_string();
            Ascii {
                skeleton: skeleton(&c).collect(),
                step: step(&c),
            }
        });
        let usable = std::array::from_fn(|b| {
            let entry = &table[b];
            entry.skeleton.is_ascii()
                && entry.step.is_ascii()
                && (b as u8 as char)
                    .to_lowercase()
                    .all(|l| skeleton(&l.to_string()).all(|c| c.is_ascii()))
        });
        (table, usable)
    });
    text.bytes()
        .all(|b| b.is_ascii() && usable[b as usize])
        .then_some(table)
}

/// The nickname as shown and stored: its NFKC form, so that a fullwidth
/// or ligature spelling is displayed as the plain letters it stands for.
pub fn display(nick: &str) -> String {
    nick.nfkc().collect()
}

/// Whether `nick` is, or looks like, a reserved name.
pub fn is_reserved(nick: &str) -> bool {
    static KEYS: OnceLock<Vec<String>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| RESERVED.iter().map(|name| key(name)).collect());
    keys.contains(&key(nick))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every spelling here reads as `alice` and must be alice.
    const ALICES: &[&str] = &[
        "alice",
        "ALICE",
        "Alice",
        "аlice",         // Cyrillic а
        "alicе",         // Cyrillic е
        "аliсе",         // Cyrillic а, с, е
        "ａｌｉｃｅ",    // fullwidth
        "ＡＬＩＣＥ",    // fullwidth capitals
        "alİce",         // capital I with dot above
        "alıce",         // dotless i
        "alіce",         // Cyrillic і
        "a1ice",         // digit one
        "a\u{2113}ice",  // script small l
        "\u{1d41a}lice", // mathematical bold a
        "álice",         // precomposed acute
        "a\u{301}lice",  // combining acute
        "ali\u{308}ce",  // combining diaeresis
        "ålice",
        "ALİCE",
    ];

    #[test]
    fn spellings_that_look_alike_share_a_key() {
        let alice = key("alice");
        for spelling in ALICES {
            assert_eq!(key(spelling), alice, "{spelling:?}");
        }
    }

    /// A capital I is an i by case and an l by shape: the key takes the
    /// first reading, the glyph key the second.
    #[test]
    fn a_capital_i_is_read_both_ways() {
        assert_eq!(key("aIice"), key("aiice"));
        assert_eq!(glyph_key("aIice"), key("alice"));
        assert_eq!(glyph_key("alice"), key("alice"));
        assert_eq!(key("ALICE"), key("alice"));
        assert_eq!(glyph_key("аlicе"), key("alice"), "Cyrillic а and е");
        assert_eq!(glyph_key("ａIｉｃｅ"), key("alice"), "fullwidth");
    }

    #[test]
    fn different_names_keep_different_keys() {
        let names = ["alice", "alicia", "bob", "bobby", "carol", "alice2", "al"];
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert_ne!(key(a), key(b), "{a} and {b}");
            }
        }
        assert_ne!(key("日本"), key("中国"));
        assert_ne!(key("Ωmega"), key("omega"));
    }

    #[test]
    fn the_key_is_stable() {
        for spelling in ALICES.iter().chain(&["ﷺ", "ǅemal", "Straße", "ꜰᴀᴋᴇ"]) {
            let once = key(spelling);
            assert_eq!(key(&once), once, "{spelling:?}");
        }
    }

    #[test]
    fn case_alone_never_separates_two_names() {
        for name in ["Ǆ", "ΣΊΣΥΦΟΣ", "İstanbul", "ẞig", "K", "Å"] {
            assert_eq!(key(name), key(&name.to_lowercase()), "{name}");
        }
    }

    #[test]
    fn reserved_names_and_their_look_alikes() {
        for nick in [
            "server",
            "SERVER",
            "ѕerver",
            "Admin",
            "аdmin",
            "ＡＤＭＩＮ",
            "root",
            "r00t",
            "System",
            "operator",
            "moderator",
            "Administrator",
        ] {
            assert!(is_reserved(nick), "{nick}");
        }
        for nick in ["alice", "servers", "admins", "rooted", "sys"] {
            assert!(!is_reserved(nick), "{nick}");
        }
    }

    /// The slow path, whole strings through the Unicode machinery.
    fn key_slowly(nick: &str) -> String {
        let mut key = nick.to_lowercase();
        for _ in 0..ROUNDS {
            let next = step(&key);
            if next == key {
                break;
            }
            key = next;
        }
        key
    }

    /// The ASCII fast path gives exactly the keys of the slow one: every
    /// printable pair and triple of characters from a mixed alphabet, and
    /// names with the characters that have skeletons of their own.
    #[test]
    fn ascii_keys_are_the_slow_keys() {
        let printable: Vec<char> = (b' '..=b'~').map(char::from).collect();
        // Letters and digits take the fast path (a few punctuation marks
        // have skeletons outside ASCII, and take the slow one).
        assert!(printable
            .iter()
            .filter(|c| c.is_ascii_alphanumeric() || **c == '_' || **c == '-')
            .all(|c| ascii(&c.to_string()).is_some()));
        for a in &printable {
            for b in &printable {
                let name = format!("{a}{b}");
                assert_eq!(key(&name), key_slowly(&name), "{name:?}");
                let nfkc: String = name.nfkc().collect();
                let glyph_slowly = key_slowly(&skeleton(&nfkc).collect::<String>());
                assert_eq!(glyph_key(&name), glyph_slowly, "{name:?}");
            }
        }
        let few = "aIl1|0Om rn-_.'`vwW";
        for a in few.chars() {
            for b in few.chars() {
                for c in few.chars() {
                    let name = format!("{a}{b}{c}x");
                    assert_eq!(key(&name), key_slowly(&name), "{name:?}");
                }
            }
        }
        for name in ["r00t", "aIice", "Administrator", "rnoderator", "a1ice"] {
            assert_eq!(key(name), key_slowly(name), "{name:?}");
        }
    }

    #[test]
    fn display_is_nfkc() {
        assert_eq!(display("ａｌｉｃｅ"), "alice");
        assert_eq!(display("Alice"), "Alice");
        assert_eq!(display("a\u{301}lice"), "álice");
        assert_eq!(display("\u{1d41a}lice"), "alice");
    }
}

/// The store keeps these keys unique (`users.ident`), recomputed at every
/// open: with the real key, look-alikes of an older database lose theirs.
#[cfg(test)]
mod stored_keys {
    use std::path::Path;

    use crate::store::sqlite::Sqlite;

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

    /// Opens the store at `path` (then closes it): each account's key.
    fn keys(path: &Path) -> Vec<(i64, Option<String>)> {
        let dir = path.parent().unwrap();
        let (_, startup) = Sqlite::open(dir, 64 * 1024, super::key).unwrap();
        let mut accounts = startup.accounts;
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
        assert_eq!(keys(&path), expected);
        assert_eq!(keys(&path), expected, "the same after reopening");

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
        keys(&path);
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "INSERT INTO users (id, nick, folded, ident, hash, created)
                 VALUES (1, 'Carol', 'carol', 'wrong', 'h', 0);",
        )
        .unwrap();
        drop(conn);
        assert_eq!(keys(&path), vec![(1, Some("carol".to_string()))]);
    }
}
