//! Groups as the store keeps them: read once at start (the dispatcher keeps
//! them in memory, like accounts) and changed by [`GroupChange`]s,
//! committed before the change is acknowledged.

use super::{GroupId, UserId};

/// A group as stored: what the dispatcher loads at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    pub id: GroupId,
    pub name: String,
    pub owner: UserId,
    pub public: bool,
    /// In the order they joined.
    pub members: Vec<UserId>,
}

/// One change to the groups, in the order the dispatcher made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChange {
    Create {
        group: GroupId,
        name: String,
        key: String,
        owner: UserId,
        public: bool,
        time: u64,
    },
    Join {
        group: GroupId,
        users: Vec<UserId>,
        time: u64,
    },
    Leave {
        group: GroupId,
        users: Vec<UserId>,
    },
    Owner {
        group: GroupId,
        owner: UserId,
    },
}
