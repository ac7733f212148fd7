//! Words the renderers share: lists of names, plurals, and making other
//! people's text safe to print.

use std::borrow::Cow;

use chat_common::EVERYONE;

/// `alice`, `alice and bob`, `alice, bob and carol`, `alice, bob and 412 others`.
pub(super) fn enumerate(mut names: Vec<String>, more: u32) -> String {
    match more {
        0 => {}
        1 => names.push("1 other".into()),
        n => names.push(format!("{n} others")),
    }
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// `alice, bob, carol`, or `alice, bob, carol and 9997 others`: a list
/// that is complete reads as one, without "and".
pub(super) fn enumerate_all(names: Vec<String>, more: u32) -> String {
    if more == 0 {
        names.join(", ")
    } else {
        enumerate(names, more)
    }
}

/// `everyone` for `*`, else the nickname.
pub(super) fn to(receiver: &str) -> Cow<'_, str> {
    if receiver == EVERYONE {
        Cow::Borrowed("everyone")
    } else {
        clean(receiver)
    }
}

/// `1 message`, `3 messages`.
pub(super) fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Whether `text` names `nick` as a word, without regard to case: not
/// inside a longer word (`bobby` does not name bob), but next to
/// punctuation (`bob:`, `@bob`, `bob?`).
pub fn names(text: &str, nick: &str) -> bool {
    let (text, nick) = (text.to_lowercase(), nick.to_lowercase());
    if nick.is_empty() {
        return false;
    }
    let part = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    text.match_indices(&nick).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + nick.len()..].chars().next();
        !before.is_some_and(part) && !after.is_some_and(part)
    })
}

/// Whether `c` must be shown escaped rather than printed: controls, and
/// the invisible characters that can make a line look like something it is
/// not (bidirectional overrides that reorder what follows, zero-width
/// characters that make two names look alike, line separators) — the same
/// table that nicknames are checked against.
fn unsafe_to_print(c: char) -> bool {
    c.is_control() || chat_common::protocol::is_invisible(c)
}

/// Makes text from other people safe to print on one line: control
/// characters (newlines, escape sequences that could repaint the terminal)
/// and invisible characters ([`chat_common::protocol::is_invisible`]) are shown escaped
/// (`\u{202e}`) instead of being obeyed.
pub fn clean(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_to_print) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if unsafe_to_print(c) {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}
