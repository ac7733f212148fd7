//! What a person can ask of the chat: the one [`Command`] vocabulary, made
//! by the parser ([`parse`]) from a typed line and carried unchanged to the
//! network thread, which acts on it. The table of what can be typed
//! (`table`) serves help, completion and parsing alike.
//!
//! This module knows nothing of the user interfaces or the network thread:
//! both depend on it, the session too (for [`GroupOp`]).

mod parse;
mod paths;
mod slash;
mod table;

use std::path::PathBuf;

use chat_common::protocol::GROUP_PREFIX;
use chat_common::{Request, EVERYONE};

pub use parse::{parse, Line, Local};
pub use paths::{expand as expand_home, expand_with};
pub use slash::ACTION;
pub use table::{help, spec, Kind, Spec, COMMANDS, GROUP_SUBCOMMANDS, PUBLIC_FLAG};

/// What the user interface asks of the network thread.
#[derive(Clone, PartialEq, Eq)]
pub enum Command {
    /// `register`: `Some(false)` logs in to an existing account only
    /// (the server answers `no_such_user` for a new name), `None` creates
    /// the account if there is none.
    Login {
        nick: String,
        password: String,
        register: Option<bool>,
    },
    /// `!password`: change the account's password (asked for, hidden, by
    /// the interactive client).
    ChangePassword {
        old: String,
        new: String,
    },
    /// A message; `receiver` is `*` for everyone, `#name` for a group, or
    /// one person's nickname.
    Say {
        receiver: String,
        text: String,
    },
    Online,
    /// `!away [text]`: say we are away (`None`: back).
    Away {
        text: Option<String>,
    },
    /// Stored messages: public, or the conversation `with` someone;
    /// `limit` as typed (the server's default when `None`).
    History {
        with: Option<String>,
        limit: Option<u32>,
    },
    /// A full-text search, optionally only of what `from` wrote.
    Search {
        words: String,
        from: Option<String>,
    },
    /// A `!group` subcommand.
    Group(GroupOp),
    /// Fetch who is online quietly, into the roster, if it is stale and no
    /// such request is on its way already (completion needs nicknames).
    RefreshRoster,
    /// Leave cleanly: once every request has been answered and every
    /// message stored (reconnecting for it if need be), say bye and wait
    /// for its answer (or the server closing).
    Leave,
    /// Leave now: list the messages never stored and stop.
    Abandon,
    /// Offer the file at `path` to `to` (`!send`).
    SendFile {
        to: String,
        path: PathBuf,
    },
    /// Download offer `file` (`!accept`), into `dir` or, when `None`, the
    /// downloads directory.
    Accept {
        file: u64,
        dir: Option<PathBuf>,
    },
    Reject {
        file: u64,
    },
}

impl std::fmt::Debug for Command {
    /// Like the derived one, but never prints a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Login { nick, register, .. } => {
                write!(f, "Login({nick:?}, <password>, {register:?})")
            }
            Command::ChangePassword { .. } => write!(f, "ChangePassword(<passwords>)"),
            Command::Say { receiver, text } => write!(f, "Say({receiver:?}, {text:?})"),
            Command::Online => write!(f, "Online"),
            Command::Away { text } => write!(f, "Away({text:?})"),
            Command::History { with, limit } => write!(f, "History({with:?}, {limit:?})"),
            Command::Search { words, from } => write!(f, "Search({words:?}, {from:?})"),
            Command::Group(op) => write!(f, "Group({op:?})"),
            Command::RefreshRoster => write!(f, "RefreshRoster"),
            Command::Leave => write!(f, "Leave"),
            Command::Abandon => write!(f, "Abandon"),
            Command::SendFile { to, path } => write!(f, "SendFile({to:?}, {path:?})"),
            Command::Accept { file, dir } => write!(f, "Accept({file}, {dir:?})"),
            Command::Reject { file } => write!(f, "Reject({file})"),
        }
    }
}

impl Command {
    /// A message to everyone.
    pub fn public(text: String) -> Self {
        Command::Say {
            receiver: EVERYONE.to_string(),
            text,
        }
    }
}

/// What `!group` does, besides posting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupOp {
    Create {
        name: String,
        members: Vec<String>,
        public: bool,
    },
    Add {
        name: String,
        members: Vec<String>,
    },
    Remove {
        name: String,
        members: Vec<String>,
    },
    Join {
        name: String,
    },
    Leave {
        name: String,
    },
    List,
    Members {
        name: String,
    },
}

impl GroupOp {
    /// The request for this operation, numbered `id`.
    pub fn request(&self, id: u64) -> Request {
        match self.clone() {
            GroupOp::Create {
                name,
                members,
                public,
            } => Request::GroupCreate {
                id,
                name,
                members,
                public,
            },
            GroupOp::Add { name, members } => Request::GroupAdd { id, name, members },
            GroupOp::Remove { name, members } => Request::GroupRemove { id, name, members },
            GroupOp::Join { name } => Request::GroupJoin { id, name },
            GroupOp::Leave { name } => Request::GroupLeave { id, name },
            GroupOp::List => Request::GroupList { id },
            GroupOp::Members { name } => Request::GroupMembers { id, name },
        }
    }
}

/// `#name`, whether typed with its `#` or not.
pub fn group_tag(name: &str) -> String {
    if name.starts_with(GROUP_PREFIX) {
        name.to_string()
    } else {
        format!("{GROUP_PREFIX}{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let login = Command::Login {
            nick: "bob".into(),
            password: "hunter2".into(),
            register: Some(false),
        };
        assert_eq!(
            format!("{login:?}"),
            r#"Login("bob", <password>, Some(false))"#
        );
        let change = Command::ChangePassword {
            old: "hunter2".into(),
            new: "hunter3".into(),
        };
        assert_eq!(format!("{change:?}"), "ChangePassword(<passwords>)");
    }

    #[test]
    fn group_tags_have_one_hash() {
        assert_eq!(group_tag("class"), "#class");
        assert_eq!(group_tag("#class"), "#class");
    }
}
