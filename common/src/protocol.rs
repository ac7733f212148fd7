//! The frames of the wire protocol: one enum per direction, serialized as
//! one JSON object per line with a `type` tag (see `docs/protocol.md`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::payload::{Payload, RawBytes, MAX_PAYLOAD};

/// The receiver that means "everyone online" (the public room).
pub const EVERYONE: &str = "*";

/// Longest nickname, in characters.
pub const MAX_NICK_CHARS: usize = 32;

/// Longest chat text, in bytes, by default.
pub const DEFAULT_MAX_TEXT: usize = 4096;

/// A frame a client sends. Every request but `received` and `pong` carries
/// a client-chosen `id`; the server answers each with exactly one frame
/// carrying the same `id`: `welcome`, `ack`, `online`, `history`, `pong` or
/// `error`.
///
/// Fields the server does not know are ignored, so the classic ClassChat
/// frame `{"type":"message","id":1,"status":"1","sender":"Alice",
/// "receiver":"Bob","text":"Hi"}` is accepted (the server fills in `sender`
/// itself: a client cannot speak for someone else).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Log in to an account, creating it if the nickname is new. Answered by
    /// `welcome` (then the messages being caught up) or `error`.
    Login {
        id: u64,
        nick: String,
        password: String,
        /// The last `seq` of your own stream this client has shown; the
        /// server sends everything after it. Absent: everything after what
        /// the account last acknowledged (`received`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_seq: Option<u64>,
        /// The last public `seq` this client has shown; the server sends the
        /// public messages after it (at most [`REPLAY_PUBLIC`]). Absent: none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_public: Option<u64>,
        /// `false`: log in to an existing account only (no account by that
        /// name: `no_such_user`, nothing created), so that a client can ask
        /// for a new account's password twice; `true` or absent: create the
        /// account if there is none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        register: Option<bool>,
    },
    /// Say something to everyone (`receiver` absent or `"*"`) or to one user.
    Message {
        id: u64,
        #[serde(default = "everyone")]
        receiver: String,
        text: String,
        /// A client-chosen id, unique per sender (at most [`MAX_CID`]
        /// bytes): a resend of an accepted message is acknowledged again
        /// and not delivered twice.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cid: Option<String>,
    },
    /// Ask who is online. Answered by `online`.
    Online { id: u64 },
    /// Say you are away (`text`: why, at most [`MAX_AWAY`] bytes), or back
    /// (`text` absent or empty). Others see it in `online`. Answered by
    /// `ack`; it lasts until changed or until you leave.
    Away {
        id: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// The next page of what you missed, after the `welcome` (or a
    /// `replay`) said more wait. Answered by `replay` and its messages.
    More { id: u64 },
    /// The client has shown everything in its stream up to `seq`. Not
    /// answered; the server stops resending those and tells their senders
    /// they were delivered.
    Received { seq: u64 },
    /// The last `limit` public messages, or of your conversation `with`
    /// someone. Answered by `history`, oldest first.
    History {
        id: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with: Option<String>,
        #[serde(default = "default_limit")]
        limit: u32,
    },
    /// Full-text search of what you may see, optionally only what `from`
    /// wrote. Answered by `history`, newest first.
    Search {
        id: u64,
        words: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        #[serde(default = "default_limit")]
        limit: u32,
    },
    /// Create a group you own, with these members (nicknames) and you.
    /// `public`: anyone may join it. Answered by `group`.
    GroupCreate {
        id: u64,
        name: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        members: Vec<String>,
        #[serde(default, skip_serializing_if = "is_false")]
        public: bool,
    },
    /// Add members to a group you own. Answered by `group`.
    GroupAdd {
        id: u64,
        name: String,
        members: Vec<String>,
    },
    /// Remove members from a group you own. Answered by `group`.
    GroupRemove {
        id: u64,
        name: String,
        members: Vec<String>,
    },
    /// Join a public group. Answered by `group`.
    GroupJoin { id: u64, name: String },
    /// Leave a group. Answered by `ack`.
    GroupLeave { id: u64, name: String },
    /// Your groups and the public ones. Answered by `groups`.
    GroupList { id: u64 },
    /// Who is in a group you are in (or a public one). Answered by `group`.
    GroupMembers { id: u64, name: String },
    /// Change your password: `old` must be the current one. Answered by
    /// `ack` once the new one is stored, or `error` (`bad_password`,
    /// `password_invalid`, `too_many_attempts`).
    Password { id: u64, old: String, new: String },
    /// Leave cleanly. Answered by `ack`; then the server closes the connection.
    Bye { id: u64 },
    /// Check that the server is alive and has read everything sent before.
    Ping { id: u64 },
    /// The answer to the server's `ping`: this client is still there. Not
    /// answered. Any request shows that, so a client that talks needs none.
    Pong,
    /// Offer a file to `to` (a nickname). Answered by `upload` (send the
    /// bytes from its `offset`) or `error`. The same offer again (same `to`,
    /// `name` and `sha256`) resumes an unfinished upload.
    Offer {
        id: u64,
        to: String,
        name: String,
        size: u64,
        /// Lowercase hex SHA-256 of the whole file.
        sha256: String,
    },
    /// Bytes of a file being uploaded, in order from the `upload` offset:
    /// the line says how many (`len`, at most [`CHUNK`]) and they follow
    /// it raw. Not answered: the server sends `file_ack` as it writes them;
    /// at most [`UPLOAD_WINDOW`] chunks may be unacknowledged.
    Chunk {
        file: u64,
        offset: u64,
        #[serde(rename = "len")]
        data: RawBytes,
    },
    /// Download an offered file from `offset` (the bytes the client already
    /// has). Answered by `download`, then `chunk` frames.
    Accept {
        id: u64,
        file: u64,
        #[serde(default, skip_serializing_if = "is_zero64")]
        offset: u64,
    },
    /// Refuse an offered file. Answered by `ack`; the sender is told.
    Reject { id: u64, file: u64 },
    /// The client has written a download's bytes up to `bytes`: the server
    /// sends more (flow control). Not answered.
    FileAck { file: u64, bytes: u64 },
    /// The download is complete and its SHA-256 matched. Answered by `ack`.
    Downloaded { id: u64, file: u64 },
}

/// Most file bytes in one `chunk` (its raw payload); uploads send chunks
/// of this size.
pub const CHUNK: usize = MAX_PAYLOAD;

/// Chunks a client may send ahead of the server's `file_ack`.
pub const UPLOAD_WINDOW: u64 = 8;

/// The size of the chunks the server sends: smaller than uploads', so that
/// a download's window leaves room for chat in the send queue.
pub const DOWNLOAD_CHUNK: usize = 64 * 1024;

/// Chunks the server sends ahead of the client's `file_ack` (3 × 64 KiB
/// stays well inside the 256 KiB send queue, with room for chat).
pub const DOWNLOAD_WINDOW: u64 = 3;

/// Longest file name, in bytes.
pub const MAX_FILE_NAME: usize = 255;

/// Whether `name` may name a file on both sides: not empty, no path
/// separator, not `.` or `..`, no control or invisible characters, at most
/// [`MAX_FILE_NAME`] bytes. The error says why not, for people.
pub fn validate_file_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a file name cannot be empty".into());
    }
    if name.len() > MAX_FILE_NAME {
        return Err(format!("a file name has at most {MAX_FILE_NAME} bytes"));
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not a file name"));
    }
    if name.contains(['/', '\\']) {
        return Err(format!(
            "a file name cannot contain a path separator: {name:?}"
        ));
    }
    if name.chars().any(|c| c.is_control() || is_invisible(c)) {
        return Err(format!(
            "a file name cannot contain control or invisible characters: {name:?}"
        ));
    }
    Ok(())
}

fn everyone() -> String {
    EVERYONE.to_string()
}

fn default_limit() -> u32 {
    DEFAULT_HISTORY
}

/// How many messages `history` and `search` return when not told.
pub const DEFAULT_HISTORY: u32 = 20;

/// Most messages one `history` or `search` answer holds.
pub const MAX_HISTORY: u32 = 500;

/// Most public messages replayed at a login with `last_public`; older ones
/// are in `history`.
pub const REPLAY_PUBLIC: u32 = 1000;

/// Longest client message id (`cid`), in bytes.
pub const MAX_CID: usize = 64;

/// Longest password, in bytes (argon2 hashes any length; this bounds the work).
pub const MAX_PASSWORD: usize = 1024;

impl Payload for Request {
    fn payload(&self) -> Option<&RawBytes> {
        match self {
            Request::Chunk { data, .. } => Some(data),
            _ => None,
        }
    }

    fn set_payload(&mut self, bytes: Vec<u8>) {
        if let Request::Chunk { data, .. } = self {
            data.fill(bytes);
        }
    }
}

impl Payload for ServerFrame {
    fn payload(&self) -> Option<&RawBytes> {
        match self {
            ServerFrame::Chunk { data, .. } => Some(data),
            _ => None,
        }
    }

    fn set_payload(&mut self, bytes: Vec<u8>) {
        if let ServerFrame::Chunk { data, .. } = self {
            data.fill(bytes);
        }
    }
}

impl Request {
    /// The id the server echoes in its answer; `received` and `pong` have none.
    pub fn id(&self) -> Option<u64> {
        match self {
            Request::Login { id, .. }
            | Request::Message { id, .. }
            | Request::Online { id }
            | Request::More { id }
            | Request::History { id, .. }
            | Request::Search { id, .. }
            | Request::GroupCreate { id, .. }
            | Request::GroupAdd { id, .. }
            | Request::GroupRemove { id, .. }
            | Request::GroupJoin { id, .. }
            | Request::GroupLeave { id, .. }
            | Request::GroupList { id }
            | Request::GroupMembers { id, .. }
            | Request::Password { id, .. }
            | Request::Away { id, .. }
            | Request::Bye { id }
            | Request::Ping { id }
            | Request::Offer { id, .. }
            | Request::Accept { id, .. }
            | Request::Reject { id, .. }
            | Request::Downloaded { id, .. } => Some(*id),
            Request::Received { .. }
            | Request::Pong
            | Request::Chunk { .. }
            | Request::FileAck { .. } => None,
        }
    }
}

/// A frame the server sends: either the answer to a request (it carries the
/// request's `id`) or an event (no `id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Answer to `login`: you are in, and these people are online (you
    /// included, sorted): the first [`WELCOME_NAMES`], and how many more
    /// (`online` gives them all).
    Welcome {
        id: u64,
        nick: String,
        online: Vec<String>,
        #[serde(default, skip_serializing_if = "is_zero")]
        online_more: u32,
        /// This login created the account.
        #[serde(default, skip_serializing_if = "is_false")]
        new_account: bool,
        /// How many `message` frames follow at once: what you missed (the
        /// first page of it).
        #[serde(default, skip_serializing_if = "is_zero")]
        replay: u32,
        /// How many more missed messages wait after those: ask with `more`
        /// once you have read them. Live messages wait until you have all.
        #[serde(default, skip_serializing_if = "is_zero")]
        replay_left: u32,
        /// The last `seq` of the public stream when you logged in: where a
        /// client that has shown no public message yet resumes from.
        #[serde(default, skip_serializing_if = "is_zero64")]
        public_seq: u64,
        /// The groups you are a member of (`#name`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        groups: Vec<String>,
    },
    /// Answer to `message` and `bye`: the server has accepted the request.
    /// For a message, it is durable: on disk, and it will reach its
    /// receivers even if the server is killed right after this frame.
    Ack {
        id: u64,
        /// The receiver of this private message is offline: it is stored
        /// for them and delivered at their next login.
        #[serde(default, skip_serializing_if = "is_false")]
        offline: bool,
        /// The `cid` had been accepted before: this is a resend, and it was
        /// not delivered again.
        #[serde(default, skip_serializing_if = "is_false")]
        duplicate: bool,
    },
    /// Answer to `online`: who is online, and who of them said they are
    /// away (nickname → their text; absent when nobody is).
    Online {
        id: u64,
        users: Vec<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        away: BTreeMap<String, String>,
    },
    /// Answer to `more`: `count` `message` frames follow, and `left` more
    /// wait after them (0: you have everything; live messages follow).
    Replay { id: u64, count: u32, left: u32 },
    /// Answer to `history` and `search`.
    History { id: u64, messages: Vec<Stored> },
    /// Answer to `ping`.
    Pong { id: u64 },
    /// Answer to `group_create`, `group_add`, `group_remove`, `group_join`
    /// and `group_members`: the group as it is now.
    Group {
        id: u64,
        group: GroupInfo,
        /// Its members, sorted.
        members: Vec<String>,
        /// Those of them online now.
        online: Vec<String>,
    },
    /// Answer to `group_list`: your groups, then the public ones you are
    /// not in, each sorted by name.
    Groups { id: u64, groups: Vec<GroupInfo> },
    /// Unasked: the group's owner (`by`) added you to `group` (`added`), or
    /// removed you from it. Sent to the member if online; one who is not
    /// finds the group in (or gone from) `welcome.groups` at next login.
    GroupChanged {
        group: String,
        by: String,
        added: bool,
    },
    /// A request failed, or a line could not be read as a request (then `id`
    /// is absent when it could not be recovered).
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        code: ErrorCode,
        reason: String,
    },
    /// A chat message; `receiver` is `"*"` for everyone, else a nickname.
    Message {
        /// Its place in the receiver's stream: the public stream for `"*"`,
        /// else your own. Increasing; a client shows each `seq` once.
        #[serde(default, skip_serializing_if = "is_zero64")]
        seq: u64,
        sender: String,
        receiver: String,
        text: String,
        /// Unix time in milliseconds at which the server accepted it.
        time: u64,
        /// It arrived while you were offline.
        #[serde(default, skip_serializing_if = "is_false")]
        away: bool,
    },
    /// A private message you sent (`cid`) was received by `to`'s client.
    Delivered { cid: String, to: String },
    /// Who joined and who left since the previous presence frame. The
    /// server sends at most one per second (`--presence-interval`), so that
    /// 10,000 arrivals are not 50 million lines. Someone who came and went
    /// within the interval is listed in `left` only; someone who left and
    /// came back (a reconnect) is not listed. At most
    /// [`PRESENCE_NAMES`] names are listed per side; `joined_more` and
    /// `left_more` count the rest (ask `online` for the exact list).
    Presence {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        joined: Vec<String>,
        #[serde(default, skip_serializing_if = "is_zero")]
        joined_more: u32,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        left: Vec<Departure>,
        #[serde(default, skip_serializing_if = "is_zero")]
        left_more: u32,
    },
    /// The operator removed someone; they are gone (no presence `left` follows).
    Kicked { nick: String, reason: String },
    /// A message from the server's operator to everyone.
    Announce { text: String, time: u64 },
    /// The server is going down; the connection closes after this frame.
    Shutdown { reason: String },
    /// The server has heard nothing from you for a while (90 s by default)
    /// and asks for a `pong`; silence until 150 s closes the connection.
    Ping,
    /// Answer to `offer`: send the file's bytes from `offset` (equal to the
    /// size: the server has them all already).
    Upload { id: u64, file: u64, offset: u64 },
    /// The server has written an upload's bytes up to `bytes`; `complete`:
    /// all of them, the SHA-256 matched, and the receivers are offered it.
    FileAck {
        file: u64,
        bytes: u64,
        #[serde(default, skip_serializing_if = "is_false")]
        complete: bool,
    },
    /// Someone offers you a file (sent when its upload is complete, or at
    /// login while you have not answered): `accept` or `reject` it.
    FileOffer {
        file: u64,
        sender: String,
        name: String,
        size: u64,
        sha256: String,
        time: u64,
    },
    /// Answer to `accept`: `chunk` frames follow from `offset`.
    Download {
        id: u64,
        file: u64,
        name: String,
        size: u64,
        sha256: String,
        offset: u64,
    },
    /// Bytes of a file being downloaded, in order, raw after the line
    /// like the request's; at most [`DOWNLOAD_WINDOW`] beyond the client's
    /// last `file_ack`.
    Chunk {
        file: u64,
        offset: u64,
        #[serde(rename = "len")]
        data: RawBytes,
    },
    /// A receiver answered your offer (at once if you are online, else at
    /// your next login).
    FileAnswer {
        file: u64,
        name: String,
        to: String,
        accepted: bool,
    },
}

/// A message from the store, as `history` and `search` return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub sender: String,
    pub receiver: String,
    pub text: String,
    pub time: u64,
}

/// A group as `group` and `groups` describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// `#name`, as its owner spelled it.
    pub name: String,
    pub owner: String,
    /// Anyone may join it (else only its owner adds members).
    #[serde(default, skip_serializing_if = "is_false")]
    pub public: bool,
    /// How many members it has.
    pub size: u32,
    /// You are one of them.
    #[serde(default, skip_serializing_if = "is_false")]
    pub member: bool,
}

/// The first character of a group's name, in `receiver`, `history.with`
/// and every frame that names a group.
pub const GROUP_PREFIX: char = '#';

/// Longest group name, in characters, without the `#`.
pub const MAX_GROUP_CHARS: usize = 32;

/// Whether `name` (with or without its `#`) is a valid group name; the
/// error says why not, for people. Rules: 1–32 characters after the `#`,
/// no whitespace, control or invisible characters.
pub fn validate_group(name: &str) -> Result<(), String> {
    let bare = name.strip_prefix(GROUP_PREFIX).unwrap_or(name);
    let chars = bare.chars().count();
    if chars == 0 || chars > MAX_GROUP_CHARS {
        return Err(format!(
            "a group name has 1 to {MAX_GROUP_CHARS} characters after the '#'"
        ));
    }
    if let Some(c) = bare
        .chars()
        .find(|&c| c.is_whitespace() || c.is_control() || is_invisible(c))
    {
        return Err(format!(
            "a group name cannot contain whitespace, control or invisible characters (found {c:?})"
        ));
    }
    if bare.starts_with(GROUP_PREFIX) {
        return Err("a group name has one '#'".into());
    }
    Ok(())
}

/// Most names listed in a welcome: 10,000 names per login would make a
/// crowd's arrival cost gigabytes.
pub const WELCOME_NAMES: usize = 100;

/// Longest `away` text, in bytes.
pub const MAX_AWAY: usize = 200;

/// Most names listed on each side of one presence frame.
pub const PRESENCE_NAMES: usize = 20;

/// Someone who left, and why: `quit`, `connection closed`, `connection
/// lost`, `keepalive timeout`, `send queue exceeded`, `frame too large`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Departure {
    pub nick: String,
    pub reason: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero64(n: &u64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Why a request failed, for programs; `reason` says it for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The line is not JSON.
    BadJson,
    /// The line is not valid UTF-8.
    InvalidUtf8,
    /// JSON, but not a known frame type.
    UnknownType,
    /// A known type with a missing or mistyped field.
    BadFrame,
    /// The line is longer than the frame limit; the connection is closed.
    TooLarge,
    /// Only `login` and `ping` are allowed before logging in.
    NotLoggedIn,
    /// A second `login` on a connection that is logged in.
    AlreadyLoggedIn,
    /// No account has this nickname, but one has a name that looks like
    /// it (`aIice` with a capital I next to `alice`): choose another.
    /// (Older servers sent it when someone online had the nickname.)
    NickTaken,
    /// The nickname is, or looks like, a reserved name (`server`,
    /// `admin`, …): choose another.
    NickReserved,
    /// Too many failed logins for this account or from this address, or
    /// too many new accounts from this address: refused without checking
    /// the password; the reason says when to try again. A client must not
    /// retry before then.
    TooManyAttempts,
    /// This server takes no new accounts (`--registration closed`): only
    /// its operator creates them.
    RegistrationClosed,
    /// The server has too many logins waiting for their passwords to be
    /// checked; try again in a few seconds.
    Busy,
    /// This server does not take passwords over a plaintext connection
    /// from your address: connect with TLS.
    PlaintextRefused,
    /// Wrong password for this account.
    BadPassword,
    /// The password is empty or longer than 1,024 bytes.
    PasswordInvalid,
    /// No account has this nickname.
    NoSuchUser,
    /// You logged in from another connection; this one is closed.
    TakenOver,
    /// The server could not store the message (disk full, I/O error): it
    /// was not accepted; try again later.
    StoreFailed,
    /// A bad `cid`, `limit` or search.
    BadRequest,
    /// The nickname breaks the rules (length, whitespace, control characters).
    NickInvalid,
    /// A private message to someone who is not online (older servers; this
    /// one stores it, see `ack.offline`).
    NotOnline,
    /// An empty or over-long text.
    BadText,
    /// The connection took too long to log in, or was silent too long
    /// (the keepalive); it is closed.
    Timeout,
    /// Kept sending messages faster than the server's flood limit (by
    /// default 10 a second after a burst of 20) for too long (30 s); the
    /// connection is closed. Slower floods are only slowed down.
    Flooding,
    /// The operator banned this account (for a time, or until lifted); the
    /// reason says which.
    Banned,
    /// The operator muted you: your messages are refused (for a time, or
    /// until lifted).
    Muted,
    /// No group has this name (or it is private and you are not in it,
    /// for `group_join`: see `not_a_member`).
    NoSuchGroup,
    /// You are not a member of this group: you cannot post to it, read it,
    /// or join it when it is private (its owner adds members).
    NotAMember,
    /// Only the group's owner may add and remove members.
    NotOwner,
    /// The group name breaks the rules (`#` and 1–32 characters, no
    /// whitespace), or is taken.
    GroupInvalid,
    /// A limit on groups was reached: members in a group, groups one user
    /// owns.
    GroupFull,
    /// The server refused the connection: too many at once from your
    /// address, or in all. Sent once, then the connection is closed.
    TooManyConnections,
    /// A file name that is empty, has a path separator, is `.` or `..`,
    /// or has control characters.
    BadFileName,
    /// The file is larger than the server takes (`--max-file-size`).
    FileTooLarge,
    /// Your files waiting on the server would exceed your quota
    /// (`--spool-quota`): wait until they are downloaded or rejected.
    QuotaExceeded,
    /// No such file offer, or not one for you.
    NoSuchFile,
    /// The uploaded bytes do not have the SHA-256 of the offer; they were
    /// thrown away.
    HashMismatch,
    /// This server lost its database (a cluster node that cannot renew its
    /// lease): it closes every connection and refuses logins until it is
    /// back. Not a refusal of you: reconnect to another server.
    Unavailable,
    /// A code this version does not know (sent by a newer peer).
    #[serde(other)]
    Other,
}

/// Characters that change how a line looks without being seen: soft hyphen,
/// zero-width spaces and joiners, bidirectional overrides and isolates, line
/// and paragraph separators, the byte-order mark. Shown raw, they can make one
/// name look like another or reorder a line.
pub fn is_invisible(c: char) -> bool {
    // Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt),
    // the line and paragraph separators, and blanks that render as nothing
    // (Hangul fillers, the braille blank).
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}'..='\u{1160}'
        | '\u{17B4}'..='\u{17B5}' | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{2800}' | '\u{3164}'
        | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFF8}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// Whether `nick` is a valid nickname; the error says why not, for people.
///
/// Rules: 1–32 characters, no whitespace, control or invisible characters
/// ([`is_invisible`]), not starting with `*`, `#`, `!` or `/` (which mean
/// everyone, groups and commands), and at least one character that is not
/// a combining mark (something that shows by itself).
pub fn validate_nick(nick: &str) -> Result<(), String> {
    let chars = nick.chars().count();
    if chars == 0 {
        return Err("a nickname needs at least one character".into());
    }
    if chars > MAX_NICK_CHARS {
        return Err(format!(
            "a nickname has at most {MAX_NICK_CHARS} characters (this one has {chars})"
        ));
    }
    if let Some(c) = nick
        .chars()
        .find(|&c| c.is_whitespace() || c.is_control() || is_invisible(c))
    {
        return Err(format!(
            "a nickname cannot contain whitespace, control or invisible characters (found {c:?})"
        ));
    }
    if let Some(c) = nick.chars().next().filter(|c| "*#!/".contains(*c)) {
        return Err(format!("a nickname cannot start with '{c}'"));
    }
    // A lone accent (U+0301) would show as nothing, or on its neighbour.
    if nick
        .chars()
        .all(unicode_normalization::char::is_combining_mark)
    {
        return Err("a nickname needs a letter, digit or symbol, not only accents".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nick_rules() {
        let cases: &[(&str, bool)] = &[
            ("alice", true),
            ("Ünïcødé", true),
            ("a", true),
            (&"x".repeat(32), true),
            (&"é".repeat(32), true),
            ("", false),
            (&"x".repeat(33), false),
            ("al ice", false),
            ("tab\there", false),
            ("nul\0", false),
            ("bell\u{7}", false),
            ("nbsp\u{a0}x", false),
            ("*star", false),
            ("#group", false),
            ("!cmd", false),
            ("/cmd", false),
            ("mid#dle", true),
            ("zero\u{200B}width", false),
            ("\u{202E}ecila", false),
            ("soft\u{00AD}hyphen", false),
            ("bom\u{FEFF}", false),
            ("\u{0301}", false),
            ("\u{0301}\u{0308}", false),
            ("e\u{0301}", true),
            ("\u{3164}", false),
            ("han\u{115F}", false),
            ("vs\u{FE0F}", false),
            ("tag\u{E0041}", false),
            ("cgj\u{034F}", false),
            ("\u{2800}", false),
            ("日本", true),
        ];
        for (nick, ok) in cases {
            assert_eq!(validate_nick(nick).is_ok(), *ok, "{nick:?}");
        }
    }

    #[test]
    fn classic_frame_is_accepted() {
        let line = r#"{"status":"1","type":"message","id":7,"sender":"Alice","receiver":"Bob","text":"Hi"}"#;
        let req: Request = serde_json::from_str(line).unwrap();
        assert_eq!(
            req,
            Request::Message {
                id: 7,
                receiver: "Bob".into(),
                text: "Hi".into(),
                cid: None
            }
        );
    }

    #[test]
    fn receiver_defaults_to_everyone() {
        let req: Request = serde_json::from_str(r#"{"type":"message","id":1,"text":"x"}"#).unwrap();
        assert_eq!(
            req,
            Request::Message {
                id: 1,
                receiver: "*".into(),
                text: "x".into(),
                cid: None
            }
        );
    }

    #[test]
    fn presence_omits_empty_parts() {
        let frame = ServerFrame::Presence {
            joined: vec!["alice".into()],
            joined_more: 0,
            left: vec![],
            left_more: 0,
        };
        let json = serde_json::to_string(&frame).unwrap();
        assert_eq!(json, r#"{"type":"presence","joined":["alice"]}"#);
        assert_eq!(serde_json::from_str::<ServerFrame>(&json).unwrap(), frame);
    }

    #[test]
    fn new_frames_round_trip_and_omit_defaults() {
        let cases: Vec<(Request, &str)> = vec![
            (
                Request::Login {
                    id: 1,
                    nick: "bob".into(),
                    password: "pw".into(),
                    last_seq: Some(3),
                    last_public: None,
                    register: None,
                },
                r#"{"type":"login","id":1,"nick":"bob","password":"pw","last_seq":3}"#,
            ),
            (
                Request::Login {
                    id: 2,
                    nick: "bob".into(),
                    password: "pw".into(),
                    last_seq: None,
                    last_public: None,
                    register: Some(false),
                },
                r#"{"type":"login","id":2,"nick":"bob","password":"pw","register":false}"#,
            ),
            (
                Request::Password {
                    id: 3,
                    old: "a".into(),
                    new: "b".into(),
                },
                r#"{"type":"password","id":3,"old":"a","new":"b"}"#,
            ),
            (
                Request::Received { seq: 9 },
                r#"{"type":"received","seq":9}"#,
            ),
            (Request::Pong, r#"{"type":"pong"}"#),
            (
                Request::History {
                    id: 2,
                    with: None,
                    limit: 20,
                },
                r#"{"type":"history","id":2,"limit":20}"#,
            ),
        ];
        for (req, json) in cases {
            assert_eq!(serde_json::to_string(&req).unwrap(), json);
            assert_eq!(serde_json::from_str::<Request>(json).unwrap(), req);
        }
        let ack = ServerFrame::Ack {
            id: 4,
            offline: false,
            duplicate: false,
        };
        assert_eq!(
            serde_json::to_string(&ack).unwrap(),
            r#"{"type":"ack","id":4}"#
        );
        let search: Request =
            serde_json::from_str(r#"{"type":"search","id":3,"words":"exam"}"#).unwrap();
        assert_eq!(
            search,
            Request::Search {
                id: 3,
                words: "exam".into(),
                from: None,
                limit: DEFAULT_HISTORY
            }
        );
        assert_eq!(Request::Received { seq: 1 }.id(), None);
        assert_eq!(Request::Pong.id(), None);
        assert_eq!(
            serde_json::to_string(&ServerFrame::Ping).unwrap(),
            r#"{"type":"ping"}"#
        );
        assert_eq!(
            serde_json::from_str::<ServerFrame>(r#"{"type":"ping"}"#).unwrap(),
            ServerFrame::Ping
        );
    }

    #[test]
    fn unknown_error_code_reads_as_other() {
        let f: ServerFrame =
            serde_json::from_str(r#"{"type":"error","code":"from_the_future","reason":"r"}"#)
                .unwrap();
        assert_eq!(
            f,
            ServerFrame::Error {
                id: None,
                code: ErrorCode::Other,
                reason: "r".into()
            }
        );
    }
}
