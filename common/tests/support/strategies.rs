//! Generators of protocol values and of hostile input for the property
//! tests: every `Request` and `ServerFrame` variant with every optional
//! field absent and present, text from all of Unicode plus a list of
//! troublemakers, numbers at the edges of u64 and of f64's exact range;
//! valid frames bent out of shape; token soup; byte streams with lines at
//! and around the size limit.

use chat_common::codec::{self, DEFAULT_MAX_FRAME};
use chat_common::payload::{Payload, RawBytes};
use chat_common::protocol::{Departure, ErrorCode, GroupInfo, Request, ServerFrame, Stored};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use serde_json::Value;

use super::oracle::{REQUEST_TYPES, SERVER_TYPES};

/// Texts that have broken parsers before: escapes, separators, invisible
/// and bidirectional characters, the decoder's own error messages, frames
/// inside strings, numbers as text.
pub const NASTY: &[&str] = &[
    "",
    " ",
    "*",
    "\n",
    "\r",
    "\r\n",
    "\t",
    "\"",
    "\\",
    "\\n",
    "\\u0000",
    "\u{0}",
    "\u{7f}",
    "\u{85}",
    "\u{a0}",
    "\u{2028}",
    "\u{2029}",
    "\u{FEFF}",
    "\u{202E}",
    "\u{200B}",
    "\u{FFFD}",
    "\u{10FFFF}",
    "é",
    "e\u{301}",
    "😀",
    "аlice",
    "missing field `type`",
    "missing field `id`",
    "unknown variant `ping`",
    "invalid type: string",
    "duplicate field `type`",
    "recursion limit exceeded",
    "{\"type\":\"ping\",\"id\":1}",
    "\"}\n{\"type\":\"bye\",\"id\":1}",
    "../../etc/passwd",
    "%s%n",
    "NaN",
    "-0",
    "1e400",
    "18446744073709551616",
];

/// Numbers around the interesting edges: small, u64's ends, and where f64
/// (which some JSON readers use for every number) stops being exact.
pub fn number() -> BoxedStrategy<u64> {
    prop_oneof![
        4 => 0..1000u64,
        3 => any::<u64>(),
        1 => select(vec![
            0,
            1,
            u64::MAX,
            u64::MAX - 1,
            i64::MAX as u64,
            i64::MAX as u64 + 1,
            1 << 53,
            (1 << 53) + 1,
            u32::MAX as u64,
            u32::MAX as u64 + 1,
        ]),
    ]
    .boxed()
}

pub fn count() -> impl Strategy<Value = u32> {
    prop_oneof![4 => 0..600u32, 1 => any::<u32>(), 1 => Just(u32::MAX)]
}

/// Any text: arbitrary Unicode scalar values, plain words, troublemakers
/// alone and inside other text, and long runs.
pub fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => vec(any::<char>(), 0..24).prop_map(String::from_iter),
        2 => "[a-zA-Z0-9 _.-]{1,16}",
        2 => select(NASTY).prop_map(String::from),
        1 => (select(NASTY), vec(any::<char>(), 0..6))
            .prop_map(|(nasty, around)| {
                let around = String::from_iter(around);
                format!("{around}{nasty}{around}")
            }),
        1 => (1usize..5000, any::<char>()).prop_map(|(n, c)| c.to_string().repeat(n)),
    ]
    .boxed()
}

/// A chunk's raw bytes: often none, newlines and CRs among them.
pub fn payload() -> BoxedStrategy<RawBytes> {
    prop_oneof![
        1 => Just(Vec::new()),
        3 => vec(select(vec![b'\n', b'\r', b'{', b'x', 0, 0xff]), 1..40),
        1 => vec(any::<u8>(), 1..300),
    ]
    .prop_map(RawBytes::from)
    .boxed()
}

pub fn texts() -> BoxedStrategy<Vec<String>> {
    vec(text(), 0..5).boxed()
}

/// Every error code (a new one fails to compile here until it is listed).
pub fn all_codes() -> Vec<ErrorCode> {
    use ErrorCode::*;
    let codes = vec![
        BadJson,
        InvalidUtf8,
        UnknownType,
        BadFrame,
        TooLarge,
        NotLoggedIn,
        AlreadyLoggedIn,
        NickTaken,
        NickReserved,
        TooManyAttempts,
        RegistrationClosed,
        Busy,
        PlaintextRefused,
        BadPassword,
        PasswordInvalid,
        NoSuchUser,
        TakenOver,
        StoreFailed,
        BadRequest,
        NickInvalid,
        NotOnline,
        BadText,
        Timeout,
        Flooding,
        Banned,
        Muted,
        TooManyConnections,
        NoSuchGroup,
        NotAMember,
        NotOwner,
        GroupInvalid,
        GroupFull,
        BadFileName,
        FileTooLarge,
        QuotaExceeded,
        NoSuchFile,
        HashMismatch,
        Unavailable,
        Other,
    ];
    for code in &codes {
        match code {
            BadJson | InvalidUtf8 | UnknownType | BadFrame | TooLarge | NotLoggedIn
            | AlreadyLoggedIn | NickTaken | NickReserved | TooManyAttempts | RegistrationClosed
            | Busy | PlaintextRefused | BadPassword | PasswordInvalid | NoSuchUser | TakenOver
            | StoreFailed | BadRequest | NickInvalid | NotOnline | BadText | Timeout | Flooding
            | Banned | Muted | TooManyConnections | NoSuchGroup | NotAMember | NotOwner
            | GroupInvalid | GroupFull | BadFileName | FileTooLarge | QuotaExceeded
            | NoSuchFile | HashMismatch | Unavailable | Other => {}
        }
    }
    codes
}

pub fn code() -> impl Strategy<Value = ErrorCode> {
    select(all_codes())
}

/// Which variant a request is (no `_` arm: a new variant must be added to
/// `request()` and here, and `every_variant_is_generated` checks both).
pub fn request_kind(request: &Request) -> usize {
    match request {
        Request::Login { .. } => 0,
        Request::Message { .. } => 1,
        Request::Online { .. } => 2,
        Request::More { .. } => 3,
        Request::Received { .. } => 4,
        Request::History { .. } => 5,
        Request::Search { .. } => 6,
        Request::Bye { .. } => 7,
        Request::Ping { .. } => 8,
        Request::Pong => 9,
        Request::GroupCreate { .. } => 10,
        Request::GroupAdd { .. } => 11,
        Request::GroupRemove { .. } => 12,
        Request::GroupJoin { .. } => 13,
        Request::GroupLeave { .. } => 14,
        Request::GroupList { .. } => 15,
        Request::GroupMembers { .. } => 16,
        Request::Offer { .. } => 17,
        Request::Chunk { .. } => 18,
        Request::Accept { .. } => 19,
        Request::Reject { .. } => 20,
        Request::FileAck { .. } => 21,
        Request::Downloaded { .. } => 22,
        Request::Password { .. } => 23,
        Request::Away { .. } => 24,
    }
}
pub const REQUEST_KINDS: usize = 25;

pub fn request() -> BoxedStrategy<Request> {
    prop_oneof![
        (
            number(),
            text(),
            text(),
            option::of(number()),
            option::of(number()),
            option::of(any::<bool>())
        )
            .prop_map(|(id, nick, password, last_seq, last_public, register)| {
                Request::Login {
                    id,
                    nick,
                    password,
                    last_seq,
                    last_public,
                    register,
                }
            }),
        (number(), text(), text()).prop_map(|(id, old, new)| Request::Password { id, old, new }),
        (number(), option::of(text())).prop_map(|(id, text)| Request::Away { id, text }),
        (number(), text(), text(), option::of(text())).prop_map(|(id, receiver, text, cid)| {
            Request::Message {
                id,
                receiver,
                text,
                cid,
            }
        }),
        number().prop_map(|id| Request::Online { id }),
        number().prop_map(|id| Request::More { id }),
        number().prop_map(|seq| Request::Received { seq }),
        (number(), option::of(text()), count()).prop_map(|(id, with, limit)| Request::History {
            id,
            with,
            limit
        }),
        (number(), text(), option::of(text()), count()).prop_map(|(id, words, from, limit)| {
            Request::Search {
                id,
                words,
                from,
                limit,
            }
        }),
        number().prop_map(|id| Request::Bye { id }),
        number().prop_map(|id| Request::Ping { id }),
        Just(Request::Pong),
        (number(), text(), texts(), any::<bool>()).prop_map(|(id, name, members, public)| {
            Request::GroupCreate {
                id,
                name,
                members,
                public,
            }
        }),
        (number(), text(), texts()).prop_map(|(id, name, members)| Request::GroupAdd {
            id,
            name,
            members
        }),
        (number(), text(), texts()).prop_map(|(id, name, members)| Request::GroupRemove {
            id,
            name,
            members
        }),
        (number(), text()).prop_map(|(id, name)| Request::GroupJoin { id, name }),
        (number(), text()).prop_map(|(id, name)| Request::GroupLeave { id, name }),
        number().prop_map(|id| Request::GroupList { id }),
        (number(), text()).prop_map(|(id, name)| Request::GroupMembers { id, name }),
        (number(), text(), text(), number(), text()).prop_map(|(id, to, name, size, sha256)| {
            Request::Offer {
                id,
                to,
                name,
                size,
                sha256,
            }
        }),
        (number(), number(), payload()).prop_map(|(file, offset, data)| Request::Chunk {
            file,
            offset,
            data
        }),
        (number(), number(), number()).prop_map(|(id, file, offset)| Request::Accept {
            id,
            file,
            offset
        }),
        (number(), number()).prop_map(|(id, file)| Request::Reject { id, file }),
        (number(), number()).prop_map(|(file, bytes)| Request::FileAck { file, bytes }),
        (number(), number()).prop_map(|(id, file)| Request::Downloaded { id, file }),
    ]
    .boxed()
}

/// Which variant a server frame is (see `request_kind`).
pub fn server_kind(frame: &ServerFrame) -> usize {
    match frame {
        ServerFrame::Welcome { .. } => 0,
        ServerFrame::Ack { .. } => 1,
        ServerFrame::Online { .. } => 2,
        ServerFrame::Replay { .. } => 3,
        ServerFrame::History { .. } => 4,
        ServerFrame::Pong { .. } => 5,
        ServerFrame::Error { .. } => 6,
        ServerFrame::Message { .. } => 7,
        ServerFrame::Delivered { .. } => 8,
        ServerFrame::Presence { .. } => 9,
        ServerFrame::Kicked { .. } => 10,
        ServerFrame::Announce { .. } => 11,
        ServerFrame::Shutdown { .. } => 12,
        ServerFrame::Ping => 13,
        ServerFrame::Group { .. } => 14,
        ServerFrame::Groups { .. } => 15,
        ServerFrame::GroupChanged { .. } => 16,
        ServerFrame::Upload { .. } => 17,
        ServerFrame::FileAck { .. } => 18,
        ServerFrame::FileOffer { .. } => 19,
        ServerFrame::Download { .. } => 20,
        ServerFrame::Chunk { .. } => 21,
        ServerFrame::FileAnswer { .. } => 22,
    }
}
pub const SERVER_KINDS: usize = 23;

fn group_info() -> impl Strategy<Value = GroupInfo> {
    (text(), text(), any::<bool>(), count(), any::<bool>()).prop_map(
        |(name, owner, public, size, member)| GroupInfo {
            name,
            owner,
            public,
            size,
            member,
        },
    )
}

fn stored() -> impl Strategy<Value = Stored> {
    (text(), text(), text(), number()).prop_map(|(sender, receiver, text, time)| Stored {
        sender,
        receiver,
        text,
        time,
    })
}

fn departure() -> impl Strategy<Value = Departure> {
    (text(), text()).prop_map(|(nick, reason)| Departure { nick, reason })
}

pub fn server_frame() -> BoxedStrategy<ServerFrame> {
    prop_oneof![
        (
            number(),
            text(),
            texts(),
            count(),
            any::<bool>(),
            count(),
            count(),
            (number(), texts())
        )
            .prop_map(
                |(
                    id,
                    nick,
                    online,
                    online_more,
                    new_account,
                    replay,
                    replay_left,
                    (public_seq, groups),
                )| {
                    ServerFrame::Welcome {
                        id,
                        nick,
                        online,
                        online_more,
                        new_account,
                        replay,
                        replay_left,
                        public_seq,
                        groups,
                    }
                }
            ),
        (number(), any::<bool>(), any::<bool>()).prop_map(|(id, offline, duplicate)| {
            ServerFrame::Ack {
                id,
                offline,
                duplicate,
            }
        }),
        (number(), texts(), texts()).prop_map(|(id, users, away)| ServerFrame::Online {
            id,
            away: away
                .iter()
                .map(|n| (n.clone(), format!("away: {n}")))
                .collect(),
            users,
        }),
        (number(), count(), count()).prop_map(|(id, count, left)| ServerFrame::Replay {
            id,
            count,
            left
        }),
        (number(), vec(stored(), 0..4))
            .prop_map(|(id, messages)| ServerFrame::History { id, messages }),
        number().prop_map(|id| ServerFrame::Pong { id }),
        (option::of(number()), code(), text()).prop_map(|(id, code, reason)| ServerFrame::Error {
            id,
            code,
            reason
        }),
        (number(), text(), text(), text(), number(), any::<bool>()).prop_map(
            |(seq, sender, receiver, text, time, away)| ServerFrame::Message {
                seq,
                sender,
                receiver,
                text,
                time,
                away,
            }
        ),
        (text(), text()).prop_map(|(cid, to)| ServerFrame::Delivered { cid, to }),
        (texts(), count(), vec(departure(), 0..4), count()).prop_map(
            |(joined, joined_more, left, left_more)| ServerFrame::Presence {
                joined,
                joined_more,
                left,
                left_more,
            }
        ),
        (text(), text()).prop_map(|(nick, reason)| ServerFrame::Kicked { nick, reason }),
        (text(), number()).prop_map(|(text, time)| ServerFrame::Announce { text, time }),
        text().prop_map(|reason| ServerFrame::Shutdown { reason }),
        Just(ServerFrame::Ping),
        (number(), group_info(), texts(), texts()).prop_map(|(id, group, members, online)| {
            ServerFrame::Group {
                id,
                group,
                members,
                online,
            }
        }),
        (number(), vec(group_info(), 0..4))
            .prop_map(|(id, groups)| ServerFrame::Groups { id, groups }),
        (text(), text(), any::<bool>()).prop_map(|(group, by, added)| ServerFrame::GroupChanged {
            group,
            by,
            added
        }),
        (number(), number(), number()).prop_map(|(id, file, offset)| ServerFrame::Upload {
            id,
            file,
            offset
        }),
        (number(), number(), any::<bool>()).prop_map(|(file, bytes, complete)| {
            ServerFrame::FileAck {
                file,
                bytes,
                complete,
            }
        }),
        (number(), text(), text(), number(), text(), number()).prop_map(
            |(file, sender, name, size, sha256, time)| ServerFrame::FileOffer {
                file,
                sender,
                name,
                size,
                sha256,
                time,
            }
        ),
        (number(), number(), text(), number(), text(), number()).prop_map(
            |(id, file, name, size, sha256, offset)| ServerFrame::Download {
                id,
                file,
                name,
                size,
                sha256,
                offset,
            }
        ),
        (number(), number(), payload()).prop_map(|(file, offset, data)| ServerFrame::Chunk {
            file,
            offset,
            data
        }),
        (number(), text(), text(), any::<bool>()).prop_map(|(file, name, to, accepted)| {
            ServerFrame::FileAnswer {
                file,
                name,
                to,
                accepted,
            }
        }),
    ]
    .boxed()
}

/// Any JSON value, a few levels deep.
pub fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec((key(), inner), 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// Member names: the protocol's, and anything.
pub fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(vec![
            "type", "id", "nick", "password", "text", "receiver", "cid", "seq", "limit",
            "with", "words", "from", "last_seq", "last_public", "users", "code", "reason",
            "online", "messages", "sender", "time", "status", "TYPE", "Id",
        ])
        .prop_map(String::from),
        1 => text(),
    ]
}

/// A `type` value: any known name from either direction, near misses, and
/// anything at all.
pub fn type_value() -> BoxedStrategy<Value> {
    let mut names: Vec<&str> = REQUEST_TYPES.iter().chain(SERVER_TYPES).copied().collect();
    names.extend([
        "Ping", "PING", "ping ", " ping", "pin", "pingg", "", "other",
    ]);
    prop_oneof![
        4 => select(names).prop_map(Value::from),
        1 => text().prop_map(Value::String),
        1 => json_value(),
    ]
    .boxed()
}

/// One change to an object's members (in order, duplicates allowed).
#[derive(Debug, Clone)]
pub enum Edit {
    Remove(Index),
    Set(Index, Value),
    /// Set the `type` member, wherever it is.
    SetType(Value),
    Insert(Index, String, Value),
    /// Repeat a member elsewhere, value and all.
    Repeat(Index, Index),
}

/// One change to the line's bytes after the members are written out.
#[derive(Debug, Clone)]
pub enum Bytes {
    Keep,
    Truncate(Index),
    InsertByte(Index, u8),
    Append(&'static str),
    /// `[ ... ]` around the object, or its values in an array with the type
    /// first (which serde would take for a tagged enum).
    WrapInArray,
    ValuesAsArray,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        2 => any::<Index>().prop_map(Edit::Remove),
        3 => (any::<Index>(), json_value()).prop_map(|(i, v)| Edit::Set(i, v)),
        2 => type_value().prop_map(Edit::SetType),
        2 => (any::<Index>(), key(), json_value()).prop_map(|(i, k, v)| Edit::Insert(i, k, v)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(i, j)| Edit::Repeat(i, j)),
    ]
}

fn bytes_edit() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        6 => Just(Bytes::Keep),
        1 => any::<Index>().prop_map(Bytes::Truncate),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Bytes::InsertByte(i, b)),
        1 => select(vec!["}", "x", " ", "\t", "{", "\"", ",", "\0", "]", "\r", " {}", "\u{FEFF}"])
            .prop_map(Bytes::Append),
        1 => Just(Bytes::WrapInArray),
        1 => Just(Bytes::ValuesAsArray),
    ]
}

fn to_line(members: &[(String, Value)]) -> Vec<u8> {
    let members: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), v))
        .collect();
    format!("{{{}}}", members.join(",")).into_bytes()
}

/// Applies the edits to a frame's members and writes out the line.
pub fn bend(frame: Value, edits: &[Edit], bytes: &Bytes) -> Vec<u8> {
    let Value::Object(object) = frame else {
        panic!("a frame is an object");
    };
    let mut members: Vec<(String, Value)> = object.into_iter().collect();
    for edit in edits {
        let n = members.len();
        match edit.clone() {
            Edit::Remove(i) if n > 0 => {
                members.remove(i.index(n));
            }
            Edit::Set(i, v) if n > 0 => members[i.index(n)].1 = v,
            Edit::SetType(v) => match members.iter_mut().find(|(k, _)| k == "type") {
                Some(member) => member.1 = v,
                None => members.push(("type".into(), v)),
            },
            Edit::Insert(i, k, v) => members.insert(i.index(n + 1), (k, v)),
            Edit::Repeat(i, j) if n > 0 => {
                let member = members[i.index(n)].clone();
                members.insert(j.index(n + 1), member);
            }
            _ => {}
        }
    }
    let mut line = to_line(&members);
    match bytes {
        Bytes::Keep => {}
        Bytes::Truncate(i) => line.truncate(i.index(line.len() + 1)),
        Bytes::InsertByte(i, b) => line.insert(i.index(line.len() + 1), *b),
        Bytes::Append(tail) => line.extend_from_slice(tail.as_bytes()),
        Bytes::WrapInArray => {
            line.insert(0, b'[');
            line.push(b']');
        }
        Bytes::ValuesAsArray => {
            members.sort_by_key(|(k, _)| k != "type");
            let values: Vec<Value> = members.into_iter().map(|(_, v)| v).collect();
            line = Value::Array(values).to_string().into_bytes();
        }
    }
    line
}

/// A request or server frame, bent: members removed, retyped, repeated,
/// added; then perhaps cut short, a byte slipped in, junk after it, or
/// turned into an array.
pub fn bent_line() -> BoxedStrategy<Vec<u8>> {
    let frame = prop_oneof![
        request().prop_map(|r| serde_json::to_value(r).unwrap()),
        server_frame().prop_map(|f| serde_json::to_value(f).unwrap()),
    ];
    (frame, vec(edit(), 0..4), bytes_edit())
        .prop_map(|(f, e, b)| bend(f, &e, &b))
        .boxed()
}

/// JSON-ish token soup, with bytes that are not UTF-8 among the tokens.
pub fn soup() -> BoxedStrategy<Vec<u8>> {
    const TOKENS: &[&[u8]] = &[
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b" ",
        b"\"type\"",
        b"\"id\"",
        b"\"ping\"",
        b"\"login\"",
        b"\"message\"",
        b"\"error\"",
        b"\"text\"",
        b"\"nick\"",
        b"\"x\"",
        b"0",
        b"1",
        b"-1",
        b"-0",
        b"1.5",
        b"1e3",
        b"18446744073709551615",
        b"18446744073709551616",
        b"null",
        b"true",
        b"\"\\u0000\"",
        b"\"\\ud800\"",
        b"\"\\ud83d\\ude00\"",
        b"\"missing field `type`\"",
        b"\"\\\"\"",
        b"\xff",
        b"\xc3",
        b"\xe2\x80",
        b"\xed\xa0\x80",
        b"\0",
        b"\r",
    ];
    vec(select(TOKENS), 0..32)
        .prop_map(|tokens| tokens.concat())
        .boxed()
}

/// A stream for a line reader or driver with this `limit`: frames, bent
/// lines, soup, blank lines, and runs of one byte sized at and around the
/// limit, each followed by `\n`, `\r\n`, `\r` or nothing (running into the
/// next piece).
pub fn stream(limit: usize) -> BoxedStrategy<Vec<u8>> {
    let run = (-3i64..=3, select(vec![b'x', b' ', b'{', b'\r', b'\n']))
        .prop_map(move |(delta, byte)| vec![byte; (limit as i64 + delta).max(0) as usize]);
    let piece = prop_oneof![
        // The line and its payload; the ending comes after the payload.
        4 => request().prop_map(|r| {
            let mut bytes = codec::encode(&r).to_vec();
            let at = memchr::memchr(b'\n', &bytes).expect("a line");
            bytes.remove(at);
            if r.payload().is_some_and(|p| !p.is_empty()) {
                bytes.insert(at, b'\n');
            }
            bytes
        }),
        3 => bent_line(),
        1 => soup(),
        1 => Just(Vec::new()),
        1 => vec(any::<u8>(), 0..64),
        1 => run,
    ];
    let ending = select(vec![&b"\n"[..], b"\n", b"\r\n", b"\r", b""]);
    vec((piece, ending), 0..10)
        .prop_map(|pieces| {
            pieces
                .into_iter()
                .flat_map(|(mut piece, ending)| {
                    piece.extend_from_slice(ending);
                    piece
                })
                .collect()
        })
        .boxed()
}

/// A frame limit: tiny (every line is over it), small, or the default.
pub fn limit() -> impl Strategy<Value = usize> {
    prop_oneof![
        2 => 1usize..48,
        3 => 48usize..600,
        1 => Just(DEFAULT_MAX_FRAME),
    ]
}

/// How a stream is cut into reads: sizes taken in turn (none: one read).
pub fn cuts() -> impl Strategy<Value = Vec<usize>> {
    vec(prop_oneof![1usize..4, 1usize..100, 1usize..20_000], 0..6)
}
