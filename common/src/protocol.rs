//! The frames of the wire protocol: one enum per direction, serialized as
//! one JSON object per line with a `type` tag (see `docs/protocol.md`).

use serde::{Deserialize, Serialize};

/// The receiver that means "everyone online" (the public room).
pub const EVERYONE: &str = "*";

/// Longest nickname, in characters.
pub const MAX_NICK_CHARS: usize = 32;

/// Longest chat text, in bytes, by default.
pub const DEFAULT_MAX_TEXT: usize = 4096;

/// A frame a client sends. Every request carries a client-chosen `id`; the
/// server answers each with exactly one frame carrying the same `id`:
/// `welcome`, `ack`, `online`, `pong` or `error`.
///
/// Fields the server does not know are ignored, so the classic ClassChat
/// frame `{"type":"message","id":1,"status":"1","sender":"Alice",
/// "receiver":"Bob","text":"Hi"}` is accepted (the server fills in `sender`
/// itself: a client cannot speak for someone else).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Take a nickname and join. Answered by `welcome` or `error`.
    Login { id: u64, nick: String },
    /// Say something to everyone (`receiver` absent or `"*"`) or to one user.
    Message {
        id: u64,
        #[serde(default = "everyone")]
        receiver: String,
        text: String,
    },
    /// Ask who is online. Answered by `online`.
    Online { id: u64 },
    /// Leave cleanly. Answered by `ack`; then the server closes the connection.
    Bye { id: u64 },
    /// Check that the server is alive and has read everything sent before.
    Ping { id: u64 },
}

fn everyone() -> String {
    EVERYONE.to_string()
}

impl Request {
    /// The id the server echoes in its answer.
    pub fn id(&self) -> u64 {
        match self {
            Request::Login { id, .. }
            | Request::Message { id, .. }
            | Request::Online { id }
            | Request::Bye { id }
            | Request::Ping { id } => *id,
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
    },
    /// Answer to `message` and `bye`: the server has accepted the request.
    Ack { id: u64 },
    /// Answer to `online`.
    Online { id: u64, users: Vec<String> },
    /// Answer to `ping`.
    Pong { id: u64 },
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
        sender: String,
        receiver: String,
        text: String,
        /// Unix time in milliseconds at which the server accepted it.
        time: u64,
    },
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
}

/// Most names listed in a welcome: 10,000 names per login would make a
/// crowd's arrival cost gigabytes.
pub const WELCOME_NAMES: usize = 100;

/// Most names listed on each side of one presence frame.
pub const PRESENCE_NAMES: usize = 20;

/// Someone who left, and why: `quit`, `connection closed`, `connection
/// lost`, `send queue exceeded`, `frame too large`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Departure {
    pub nick: String,
    pub reason: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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
    /// Someone online already has this nickname.
    NickTaken,
    /// The nickname breaks the rules (length, whitespace, control characters).
    NickInvalid,
    /// A private message to someone who is not online.
    NotOnline,
    /// An empty or over-long text.
    BadText,
    /// The connection took too long to log in.
    Timeout,
    /// A code this version does not know (sent by a newer peer).
    #[serde(other)]
    Other,
}

/// Characters that change how a line looks without being seen: soft hyphen,
/// zero-width spaces and joiners, bidirectional overrides and isolates, line
/// and paragraph separators, the byte-order mark. Shown raw, they can make one
/// name look like another or reorder a line.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}'
        | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Whether `nick` is a valid nickname; the error says why not, for people.
///
/// Rules: 1–32 characters, no whitespace, control or invisible characters
/// ([`is_invisible`]), and not starting with `*`, `#`, `!` or `/` (which mean
/// everyone, groups and commands).
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
                text: "Hi".into()
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
                text: "x".into()
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
