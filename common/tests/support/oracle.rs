//! The properties the fuzzers check, as plain functions that panic when one
//! does not hold. Shared by the property tests in `common/tests/` (proptest
//! makes the inputs) and the libFuzzer targets in `fuzz/` (coverage-guided
//! bytes), which include this file with `#[path]`; see `docs/security.md`.
//!
//! Each check works out independently of the code under test what the
//! answer must be (which error code a line deserves, which lines a byte
//! stream holds, what a handler must have been told) and compares.

use std::cell::RefCell;
use std::fmt::{self, Debug};
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::rc::Rc;

use chat_common::codec::{self, Frame, FrameError, LineReader};
use chat_common::handler::{Connection, Driver, RequestHandler};
use chat_common::payload::{Payload, RawBytes, MAX_PAYLOAD};
use chat_common::protocol::{self, ErrorCode, Request, ServerFrame};
use serde::de::{DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Every `type` a client may send.
pub const REQUEST_TYPES: &[&str] = &[
    "login",
    "message",
    "online",
    "more",
    "received",
    "history",
    "search",
    "bye",
    "ping",
    "pong",
    "group_create",
    "group_add",
    "group_remove",
    "group_join",
    "group_leave",
    "group_list",
    "group_members",
    "offer",
    "chunk",
    "accept",
    "reject",
    "file_ack",
    "downloaded",
    "password",
    "away",
];

/// Every `type` a server may send.
pub const SERVER_TYPES: &[&str] = &[
    "welcome",
    "ack",
    "online",
    "replay",
    "history",
    "pong",
    "error",
    "message",
    "delivered",
    "presence",
    "kicked",
    "announce",
    "shutdown",
    "ping",
    "group",
    "groups",
    "group_changed",
    "upload",
    "file_ack",
    "file_offer",
    "download",
    "chunk",
    "file_answer",
];

/// The four codes `decode` may answer with.
const DECODE_CODES: &[ErrorCode] = &[
    ErrorCode::InvalidUtf8,
    ErrorCode::BadJson,
    ErrorCode::BadFrame,
    ErrorCode::UnknownType,
];

/// The members of a JSON object in their order, duplicates kept (a
/// `serde_json::Value` keeps only the last of two equal keys).
struct Members(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Object)
    }
}

/// What a line is, as far as the error code goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    NotUtf8,
    NotJson,
    NotAnObject,
    /// An object with no `type`, or whose first `type` is a string that
    /// names no frame.
    UnknownType,
    /// An object whose first `type` is not a string, or names a frame but
    /// is followed by another `type`.
    BadType,
    /// An object whose one `type` names a frame.
    KnownType,
}

/// Classifies `line` without `codec::decode`, and says which `id` an error
/// about it must carry: that of an object with exactly one `id`, an integer
/// in the range of u64.
pub fn shape(line: &[u8], known: &[&str]) -> (Shape, Option<u64>) {
    if std::str::from_utf8(line).is_err() {
        return (Shape::NotUtf8, None);
    }
    if serde_json::from_slice::<Value>(line).is_err() {
        return (Shape::NotJson, None);
    }
    let Ok(Members(members)) = serde_json::from_slice::<Members>(line) else {
        return (Shape::NotAnObject, None);
    };
    let member = |name: &str| {
        members
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value)
            .collect::<Vec<_>>()
    };
    let id = match member("id")[..] {
        [value] => value.as_u64(),
        _ => None,
    };
    // The first `type` is read as soon as it is met: if it names no frame
    // that is the error, before a second `type` is seen.
    let types = member("type");
    let shape = match types.first() {
        None => Shape::UnknownType,
        Some(Value::String(name)) if known.contains(&name.as_str()) => {
            if types.len() == 1 {
                Shape::KnownType
            } else {
                Shape::BadType
            }
        }
        Some(Value::String(_)) => Shape::UnknownType,
        Some(_) => Shape::BadType,
    };
    (shape, id)
}

/// `encode` makes exactly one line, ending in its only newline.
pub fn check_one_line(frame: &[u8]) {
    assert_eq!(frame.last(), Some(&b'\n'), "a frame ends in a newline");
    assert_eq!(
        memchr::memchr(b'\n', frame),
        Some(frame.len() - 1),
        "a frame is one line: {}",
        String::from_utf8_lossy(frame)
    );
    assert!(!frame.contains(&b'\r'), "a raw CR in a frame");
}

/// Encodes `frame`, checks it is one line (and its payload after it, if
/// it has one), decodes it again: the same frame.
pub fn check_round_trip<T>(frame: &T)
where
    T: Serialize + DeserializeOwned + Payload + PartialEq + Debug,
{
    let bytes = codec::encode(frame);
    let payload = frame.payload().map_or(&[][..], RawBytes::as_slice);
    let (line, after) = bytes.split_at(bytes.len() - payload.len());
    assert_eq!(after, payload, "the payload follows the line");
    check_one_line(line);
    match codec::decode::<T>(&line[..line.len() - 1]) {
        Ok(mut back) => {
            if let Some(raw) = back.payload() {
                assert_eq!(raw.len(), payload.len(), "the line announces the payload");
                back.set_payload(payload.to_vec());
            }
            assert_eq!(&back, frame, "round trip changed the frame")
        }
        Err(err) => panic!(
            "an encoded frame does not decode ({err:?}): {}",
            String::from_utf8_lossy(&bytes)
        ),
    }
}

/// Decodes `line` as a `T` whose frame types are `known`: never panics, a
/// frame that comes out round-trips, and an error has the code and id the
/// line deserves and itself makes a frame that round-trips.
pub fn check_decode_as<T>(line: &[u8], known: &[&str])
where
    T: Serialize + DeserializeOwned + Payload + PartialEq + Debug,
{
    let (shape, id) = shape(line, known);
    let show = || String::from_utf8_lossy(line).into_owned();
    match codec::decode::<T>(line) {
        Ok(mut frame) => {
            assert_eq!(
                shape,
                Shape::KnownType,
                "decoded {frame:?} from {:?}",
                show()
            );
            // A frame with a payload holds only its length until a reader
            // adds the bytes that follow the line (none over the limit).
            match frame.payload().map(RawBytes::len) {
                Some(len) if len > MAX_PAYLOAD => return,
                Some(len) => frame.set_payload(vec![0; len]),
                None => {}
            }
            check_round_trip(&frame);
        }
        Err(err) => {
            assert!(DECODE_CODES.contains(&err.code), "{err:?}");
            assert!(!err.reason.is_empty(), "{err:?}");
            let (code, id) = match shape {
                Shape::NotUtf8 => (ErrorCode::InvalidUtf8, None),
                Shape::NotJson => (ErrorCode::BadJson, None),
                Shape::NotAnObject => (ErrorCode::BadFrame, None),
                Shape::UnknownType => (ErrorCode::UnknownType, id),
                Shape::BadType | Shape::KnownType => (ErrorCode::BadFrame, id),
            };
            assert_eq!(
                (err.code, err.id),
                (code, id),
                "{shape:?} line {:?}: {}",
                show(),
                err.reason
            );
            check_round_trip(&ServerFrame::Error {
                id: err.id,
                code: err.code,
                reason: err.reason,
            });
        }
    }
}

/// `line` as a request and as a server frame; and, when it is text, as a
/// nickname.
pub fn check_decode(line: &[u8]) {
    check_decode_as::<Request>(line, REQUEST_TYPES);
    check_decode_as::<ServerFrame>(line, SERVER_TYPES);
    if let Ok(text) = std::str::from_utf8(line) {
        check_nick(text);
    }
}

/// `validate_nick` accepts exactly the nicknames the rules allow.
pub fn check_nick(nick: &str) {
    let chars = nick.chars().count();
    let allowed = (1..=protocol::MAX_NICK_CHARS).contains(&chars)
        && !nick
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || protocol::is_invisible(c))
        && !nick.starts_with(['*', '#', '!', '/']);
    match protocol::validate_nick(nick) {
        Ok(()) => assert!(allowed, "accepted {nick:?}"),
        Err(reason) => assert!(!allowed && !reason.is_empty(), "refused {nick:?}: {reason}"),
    }
}

/// What a line reader must make of a whole stream: its lines (without `\n`
/// and a `\r` before it), whether one was too long (then nothing after it
/// counts), and how many bytes of an unfinished last line it holds.
pub struct Lines<'a> {
    pub lines: Vec<&'a [u8]>,
    pub too_large: bool,
    pub left: usize,
}

pub fn expected_lines(stream: &[u8], limit: usize) -> Lines<'_> {
    // The limit counts the bytes before the `\n`, a `\r` among them
    // (docs/protocol.md).
    let fits = |line: &[u8]| line.len() <= limit;
    let mut lines = Vec::new();
    let mut rest = stream;
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..end];
        if !fits(line) {
            return Lines {
                lines,
                too_large: true,
                left: 0,
            };
        }
        lines.push(line.strip_suffix(b"\r").unwrap_or(line));
        rest = &rest[end + 1..];
    }
    let too_large = !fits(rest);
    Lines {
        lines,
        too_large,
        left: if too_large { 0 } else { rest.len() },
    }
}

/// Cuts `stream` into chunks of the given sizes (taken in turn, a size 0
/// read as 1, the last chunk whatever is left).
pub fn chunks<'a>(stream: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    if sizes.is_empty() {
        return vec![stream];
    }
    let mut out = Vec::new();
    let mut rest = stream;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at((*size).clamp(1, rest.len()));
        out.push(chunk);
        rest = tail;
    }
    out
}

/// A `LineReader` fed `stream` in chunks yields the same lines as the whole
/// stream would, never holds more than `limit` bytes, reports a line over
/// the limit exactly once, and after that hands out nothing.
pub fn check_lines(limit: usize, stream: &[u8], sizes: &[usize]) {
    let expected = expected_lines(stream, limit);
    let mut reader = LineReader::new(limit);
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut errors = 0;
    for chunk in chunks(stream, sizes) {
        let before = lines.len();
        let result = reader.feed(chunk, |line| {
            lines.push(line.to_vec());
            ControlFlow::Continue(())
        });
        match result {
            Ok(ControlFlow::Continue(())) => assert_eq!(errors, 0, "read on after too large"),
            Ok(ControlFlow::Break(())) => {
                assert_eq!(errors, 1, "stopped without being asked");
                assert_eq!(lines.len(), before, "a line after too large");
            }
            Err(err) => {
                assert_eq!(err.limit, limit);
                errors += 1;
            }
        }
        assert!(reader.buffered() <= limit, "holds {}", reader.buffered());
    }
    assert_eq!(lines, expected.lines, "limit {limit}");
    assert_eq!(errors, usize::from(expected.too_large), "too-large reports");
    assert_eq!(reader.buffered(), expected.left);
}

/// What the driver did, in order, as the handler and connection saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Setup,
    Request(Request),
    /// Seen by a handler that overrides `handle_error`.
    Error(ErrorCode, Option<u64>),
    Eof,
    /// A frame the connection was given.
    Sent(ServerFrame),
    Close(String),
    Finish(String),
}

/// One log, written by the handler and the connection in call order.
type Log = Rc<RefCell<Vec<Event>>>;

/// The fake connection: records what is done to it.
pub struct FakeConn {
    log: Log,
    closing: bool,
}

impl Connection for FakeConn {
    fn send(&mut self, frame: Frame) {
        assert!(!self.closing, "sent after close");
        check_one_line(&frame);
        let frame = codec::decode::<ServerFrame>(&frame[..frame.len() - 1])
            .expect("the handler sent a frame that does not decode");
        self.log.borrow_mut().push(Event::Sent(frame));
    }
    fn close(&mut self, reason: &str) {
        assert!(!self.closing, "closed twice");
        self.closing = true;
        self.log.borrow_mut().push(Event::Close(reason.to_string()));
    }
    fn is_closing(&self) -> bool {
        self.closing
    }
    fn peer_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 50445))
    }
}

/// A handler like the chat's: `pong` for `ping`, `ack` and close for
/// `bye`. Unless `quiet`, its `handle_error` does what the trait's default
/// does (an error frame; close if too large); a `quiet` one only takes note
/// (answers nothing, closes nothing).
pub struct Recorder {
    log: Log,
    quiet: bool,
}

impl Recorder {
    fn note(&self, event: Event) {
        self.log.borrow_mut().push(event);
    }
}

impl RequestHandler for Recorder {
    type Request = Request;

    fn setup(&mut self, _conn: &mut dyn Connection) {
        self.note(Event::Setup);
    }

    fn handle(&mut self, request: Request, conn: &mut dyn Connection) {
        self.note(Event::Request(request.clone()));
        match request {
            Request::Ping { id } => conn.send(codec::encode(&ServerFrame::Pong { id })),
            Request::Bye { id } => {
                conn.send(codec::encode(&ServerFrame::Ack {
                    id,
                    offline: false,
                    duplicate: false,
                }));
                conn.close("quit");
            }
            _ => {}
        }
    }

    fn handle_error(&mut self, error: FrameError, conn: &mut dyn Connection) {
        if self.quiet {
            self.note(Event::Error(error.code, error.id));
            return;
        }
        // The trait's default (which an override cannot call).
        let fatal = error.code == ErrorCode::TooLarge;
        conn.send(codec::encode(&ServerFrame::Error {
            id: error.id,
            code: error.code,
            reason: error.reason,
        }));
        if fatal {
            conn.close("frame too large");
        }
    }

    fn handle_eof(&mut self, conn: &mut dyn Connection) {
        self.note(Event::Eof);
        conn.close("connection closed");
    }

    fn finish(&mut self, reason: &str) {
        self.note(Event::Finish(reason.to_string()));
    }
}

/// What the driver must do with `stream`, worked out from the whole stream
/// at once, as a worker runs it: setup, feed, eof if still open, finish.
/// A frame that announces a payload takes that many raw bytes after its
/// line; one that announces more than `MAX_PAYLOAD` is too large.
pub fn expected_events(limit: usize, stream: &[u8], quiet: bool) -> Vec<Event> {
    let mut log = vec![Event::Setup];
    let mut rest = stream;
    let too_large = loop {
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            // An unfinished last line (or none).
            break (rest.len() > limit).then_some(limit);
        };
        let line = &rest[..end];
        if line.len() > limit {
            break Some(limit);
        }
        rest = &rest[end + 1..];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match codec::decode::<Request>(line) {
            Ok(mut request) => {
                let announced = request.payload().map_or(0, RawBytes::len);
                if announced > MAX_PAYLOAD {
                    break Some(MAX_PAYLOAD);
                }
                if announced > 0 {
                    if rest.len() < announced {
                        // Cut off in its payload: the peer went away.
                        break None;
                    }
                    request.set_payload(rest[..announced].to_vec());
                    rest = &rest[announced..];
                }
                log.push(Event::Request(request.clone()));
                match request {
                    Request::Ping { id } => log.push(Event::Sent(ServerFrame::Pong { id })),
                    Request::Bye { id } => {
                        log.push(Event::Sent(ServerFrame::Ack {
                            id,
                            offline: false,
                            duplicate: false,
                        }));
                        log.push(Event::Close("quit".into()));
                        log.push(Event::Finish("the end".into()));
                        return log;
                    }
                    _ => {}
                }
            }
            Err(err) if quiet => log.push(Event::Error(err.code, err.id)),
            Err(err) => log.push(Event::Sent(ServerFrame::Error {
                id: err.id,
                code: err.code,
                reason: err.reason,
            })),
        }
    };
    if let Some(limit) = too_large {
        log.push(if quiet {
            Event::Error(ErrorCode::TooLarge, None)
        } else {
            Event::Sent(ServerFrame::Error {
                id: None,
                code: ErrorCode::TooLarge,
                reason: format!("frame exceeds the limit of {limit} bytes"),
            })
        });
        log.push(Event::Close("frame too large".into()));
    } else {
        log.push(Event::Eof);
        log.push(Event::Close("connection closed".into()));
    }
    log.push(Event::Finish("the end".into()));
    log
}

/// Feeds `stream` in chunks through a `Driver` into a recording handler,
/// as a worker does (setup; feed each chunk read, and go on feeding even
/// after a close, as a careless framework might; eof unless closing; finish,
/// twice): never panics; every request and every error reaches the handler
/// or the peer, in order; nothing happens after the close; `finish` runs
/// exactly once; the driver never holds more than `limit` bytes (or a
/// payload's `MAX_PAYLOAD`).
pub fn check_driver(limit: usize, stream: &[u8], sizes: &[usize], quiet: bool) {
    let log = Log::default();
    let mut conn = FakeConn {
        log: log.clone(),
        closing: false,
    };
    let handler = Recorder {
        log: log.clone(),
        quiet,
    };
    let mut driver = Driver::new(handler, limit);
    driver.setup(&mut conn);
    for chunk in chunks(stream, sizes) {
        let closing = conn.closing;
        let before = log.borrow().len();
        driver.feed(chunk, &mut conn);
        if closing {
            assert_eq!(log.borrow().len(), before, "fed after close");
        }
        let most = limit.max(MAX_PAYLOAD);
        assert!(driver.buffered() <= most, "holds {}", driver.buffered());
    }
    if !conn.is_closing() {
        driver.eof(&mut conn);
    }
    driver.finish("the end");
    driver.finish("again");
    let got = log.borrow().clone();
    let want = expected_events(limit, stream, quiet);
    if got != want {
        let at = got
            .iter()
            .zip(&want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "driver log differs at event {at} (limit {limit}, quiet {quiet}):\n got {:?}\nwant {:?}",
            &got[at..got.len().min(at + 3)],
            &want[at..want.len().min(at + 3)],
        );
    }
}
