//! What happened, for people: the session (and the network thread, for the
//! connection) says it as a [`Notice`]; `render` decides how it looks.

use std::collections::BTreeMap;

use chat_common::protocol::GroupInfo;
use chat_common::Departure;

/// Something worth showing a person, already matched to its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A message to everyone; `own` when it is the echo of ours; `away`
    /// when it arrived while we were offline.
    Public {
        sender: String,
        text: String,
        own: bool,
        time: u64,
        away: bool,
    },
    /// A message to a group we are in (`group` is `#name`); `own` when it
    /// is the echo of ours.
    Group {
        group: String,
        sender: String,
        text: String,
        own: bool,
        time: u64,
        away: bool,
    },
    /// The answer to a `!group` subcommand: what happened (`created`,
    /// `joined`, `changed`, `members of`) and the group as it is now.
    GroupInfo {
        verb: String,
        group: GroupInfo,
        members: Vec<String>,
        online: Vec<String>,
    },
    /// The answer to `!group list`.
    GroupList {
        groups: Vec<GroupInfo>,
    },
    /// The owner added or removed us.
    GroupChanged {
        group: String,
        by: String,
        added: bool,
    },
    /// We left the group.
    GroupLeft {
        group: String,
    },
    /// A private message to us.
    PrivateFrom {
        sender: String,
        text: String,
        time: u64,
        away: bool,
    },
    /// Our private message, as typed: pending until the server stores it.
    PrivateTo {
        receiver: String,
        text: String,
        number: u64,
    },
    /// Interactive mode: our private message with the state it reached
    /// while the line was held back, so that one line says it all.
    PrivateSent {
        receiver: String,
        text: String,
        number: u64,
        state: Mark,
    },
    /// Interactive mode: later states of our messages already shown,
    /// gathered into one line.
    States {
        stored: Vec<u64>,
        delivered: Vec<u64>,
    },
    /// Our public message, typed while not connected: it waits in the
    /// outbox (typed while connected, its echo is what shows it).
    PublicPending {
        text: String,
        number: u64,
    },
    /// The server stored our message `#number` (`offline`: for someone
    /// who is not connected, who gets it at their next login).
    Stored {
        number: u64,
        receiver: String,
        offline: bool,
    },
    /// Our private message reached its receiver's client; `number` is
    /// `None` for one this process did not send (or no longer remembers).
    Delivered {
        number: Option<u64>,
        receiver: String,
    },
    /// The server refused our message `#number` (to `receiver`).
    Refused {
        number: u64,
        receiver: String,
        reason: String,
    },
    /// A message still in the outbox when we stopped trying.
    Unsent {
        number: u64,
        receiver: String,
        text: String,
    },
    /// Logged in; who is online (the first names, and how many more).
    Welcome {
        nick: String,
        online: Vec<String>,
        more: u32,
    },
    /// This login created the account.
    AccountCreated {
        nick: String,
    },
    /// `!password` was stored: the next login needs the new one.
    PasswordChanged,
    /// `count` messages that came while we were offline follow.
    CaughtUp {
        count: u32,
    },
    /// Logged in again after a lost connection; `count` messages follow.
    Reconnected {
        count: u32,
    },
    /// Arrivals: the names listed, and how many more were only counted.
    Joined {
        nicks: Vec<String>,
        more: u32,
    },
    /// Departures with their reasons, and how many more were only counted.
    Left {
        departures: Vec<Departure>,
        more: u32,
    },
    Kicked {
        nick: String,
        reason: String,
    },
    Announce {
        text: String,
        time: u64,
    },
    Shutdown {
        reason: String,
    },
    /// `away`: who of `users` is away, and why.
    Online {
        users: Vec<String>,
        away: BTreeMap<String, String>,
    },
    /// The server has our `!away` (`None`: we are back).
    Away {
        text: Option<String>,
    },
    /// The start of an answer to `!history` or `!search`: what was asked,
    /// and how many [`Notice::Past`] lines follow.
    HistoryStart {
        query: Query,
        count: usize,
    },
    /// One message of a history or search answer; `me` is our nickname.
    Past {
        sender: String,
        receiver: String,
        text: String,
        time: u64,
        me: String,
    },
    /// A file transfer's news: an offer, progress, an answer, a download saved.
    File {
        text: String,
    },
    /// The server refused something; `reason` is its text for people.
    Error {
        reason: String,
    },
    /// The connection ended without a goodbye.
    Lost {
        reason: String,
    },
    /// The connection ended; trying again.
    Reconnecting {
        reason: String,
    },
    /// A server's certificate was pinned on first use: `text` says which,
    /// where, and what to do if it changes.
    Pinned {
        text: String,
    },
    /// Connected to `server`, one of several (`--server a,b`).
    Connected {
        server: String,
    },
    /// The connection to `lost`, one of several servers, ended for
    /// `reason`; `next` is tried next.
    ReconnectingTo {
        lost: String,
        next: String,
        reason: String,
    },
    /// A try at `server`, one of several, failed for `reason`; `next` is
    /// tried now, or, after a round in which every server failed, in
    /// `retry_in` seconds.
    Unreachable {
        server: String,
        next: String,
        reason: String,
        retry_in: Option<u64>,
    },
    /// A try to reconnect failed; the next comes in `retry_in` seconds.
    RetryFailed {
        reason: String,
        retry_in: u64,
    },
    /// Logging in again was refused for now (the server's `reason`); the
    /// next try comes in `retry_in` seconds.
    Throttled {
        reason: String,
        retry_in: u64,
    },
    /// No connection for `after` seconds: giving up.
    GaveUp {
        after: u64,
    },
}

/// How far one of our private messages got, for [`Notice::PrivateSent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Pending,
    Stored,
    /// Stored for someone who is not connected.
    Offline,
    Delivered,
    Refused,
}

/// What a history answer was asked for, to title it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `!history [N]`.
    Public,
    /// `!history <nick> [N]`.
    With(String),
    /// `!search <words> [from:nick]`.
    Search { words: String, from: Option<String> },
}

impl Notice {
    /// When it happened by the server's clock, if the frame said.
    pub fn time(&self) -> Option<u64> {
        match self {
            Notice::Public { time, .. }
            | Notice::Group { time, .. }
            | Notice::PrivateFrom { time, .. }
            | Notice::Announce { time, .. }
            | Notice::Past { time, .. } => Some(*time),
            _ => None,
        }
    }
}
