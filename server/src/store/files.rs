//! File offers as the store keeps them: the offer, each receiver's answer
//! and whether the sender has been told it. The bytes live in the spool
//! (the file thread's); these rows say which spooled files still matter,
//! so offers survive a restart and offline receivers see them at login.

use super::UserId;

/// A receiver's answer to an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Pending = 0,
    Accepted = 1,
    Downloaded = 2,
    Rejected = 3,
}

impl Answer {
    /// Nothing more is expected of this receiver.
    pub fn is_final(self) -> bool {
        matches!(self, Answer::Downloaded | Answer::Rejected)
    }
}

/// One receiver of an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receiver {
    pub user: UserId,
    pub answer: Answer,
    /// The sender has been told the answer.
    pub told: bool,
}

/// An offer as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    pub id: u64,
    pub sender: UserId,
    pub name: String,
    pub size: u64,
    pub sha256: String,
    pub time: u64,
    /// Uploaded in full and verified.
    pub complete: bool,
    pub receivers: Vec<Receiver>,
}

/// A change to the offers; the store applies them in order, unanswered.
#[derive(Debug)]
pub enum FileOp {
    Offer(FileRow),
    Complete(u64),
    Answer {
        file: u64,
        user: UserId,
        answer: Answer,
        told: bool,
    },
    Told {
        file: u64,
        user: UserId,
    },
    Delete(u64),
}
