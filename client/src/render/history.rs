//! Answers to `!history` and `!search`: a title, then one `|` line per
//! stored message.

use chat_common::protocol::GROUP_PREFIX;
use chat_common::EVERYONE;

use super::words::{clean, plural};
use super::{Renderer, DIM};
use crate::session::Query;

impl Renderer {
    pub(super) fn history_start(&self, query: &Query, count: usize) -> String {
        self.system(&history_title(query, count))
    }

    /// `| <alice> old`, `| [you → alice] psst`; `me` is our nickname.
    pub(super) fn past(&self, sender: &str, receiver: &str, text: &str, me: &str) -> String {
        let who = |nick: &str| {
            if nick == me {
                "you".to_string()
            } else {
                clean(nick).into_owned()
            }
        };
        let tag = if receiver == EVERYONE {
            format!("<{}>", who(sender))
        } else if receiver.starts_with(GROUP_PREFIX) {
            format!("[{}] {}:", clean(receiver), who(sender))
        } else {
            format!("[{} → {}]", who(sender), who(receiver))
        };
        format!("{} {} {}", self.paint(DIM, "|"), tag, clean(text))
    }
}

/// The line above a history answer.
fn history_title(query: &Query, count: usize) -> String {
    let found = plural(count, "message");
    match query {
        Query::Public => format!("history: last {found} to everyone"),
        Query::With(nick) => format!("history with {}: last {found}", clean(nick)),
        Query::Search { words, from } => {
            let from = match from {
                Some(nick) => format!(" from {}", clean(nick)),
                None => String::new(),
            };
            // Quotes typed mean nothing to the search (every word must
            // match anyway) and would be doubled by the title's own.
            let words = words.replace('"', "");
            format!(
                "search \"{}\"{from}: {found}, newest first",
                clean(words.trim())
            )
        }
    }
}
