//! Accounts and the operator's sanctions as the store keeps them.

use super::UserId;

/// An account as the dispatcher keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: UserId,
    pub nick: String,
    /// The argon2id hash in PHC string form (it carries its own parameters).
    pub hash: String,
    /// Its identity key (the store's `ident` function, see [`open`]);
    /// `None` for an account from an older database whose name looks like
    /// an earlier account's: nobody can log in to it or name it any more.
    ///
    /// [`open`]: super::open
    pub key: Option<String>,
}

/// What the operator forbade an account: logging in, or sending messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SanctionKind {
    Ban,
    Mute,
}

impl SanctionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SanctionKind::Ban => "ban",
            SanctionKind::Mute => "mute",
        }
    }
}

/// A ban or mute in force (or expired, until it is next lifted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sanction {
    pub user: UserId,
    pub kind: SanctionKind,
    /// Unix ms when it ends; `None`: until lifted.
    pub until: Option<u64>,
}
