//! The hot path of receiving: splitting a byte stream into lines without
//! parsing JSON, telling the few frames the bench cares about apart by
//! searching for fixed byte strings, and the payload that carries a
//! message's sender, sequence number and send time.
//!
//! A full JSON parse per delivery would cost more than the server spends on
//! it; a payload line is recognised by its marker (found with `memmem`) and
//! only the numbers after the marker are read. The byte strings that tell
//! frames apart are not typed here: they are cut, once, out of sample
//! frames encoded by `chat_common`, the one crate that knows the wire
//! format. (What the bench sends is in `frames.rs`.)

use std::io::Write as _;
use std::sync::OnceLock;

use chat_common::codec::encode;
use chat_common::{ErrorCode, ServerFrame};
use memchr::memmem;

/// Starts every payload text: `~B~<sender>:<seq>:<t_ns>:` then padding.
pub const MARKER: &[u8] = b"~B~";

/// Lines longer than this are classified by their first `LINE_CAP` bytes and
/// the rest is skipped (a `welcome` lists everyone online: with 10,000 users
/// it is over 100 KiB, and only its type matters here).
pub const LINE_CAP: usize = 8 * 1024;

/// What one payload says about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Payload {
    pub sender: u32,
    pub seq: u32,
    /// Nanoseconds since the process-wide epoch when it was sent.
    pub sent_ns: u64,
}

/// Appends the text of a payload, padded with `x` to `size` bytes (longer if
/// the numbers alone do not fit).
pub fn encode_payload(out: &mut Vec<u8>, p: Payload, size: usize) {
    let start = out.len();
    out.extend_from_slice(MARKER);
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{}:{}:{}:", p.sender, p.seq, p.sent_ns);
    let len = out.len() - start;
    if len < size {
        out.resize(start + size, b'x');
    }
}

/// The searcher for [`MARKER`], built once: `memmem::find` builds one per
/// call, which was chat-bench's largest cost per delivery (7 % of the
/// machine during the fan-out scenario).
fn marker_finder() -> &'static memmem::Finder<'static> {
    static FINDER: OnceLock<memmem::Finder<'static>> = OnceLock::new();
    FINDER.get_or_init(|| memmem::Finder::new(MARKER))
}

/// Reads the payload in a line, if it carries one.
pub fn parse_payload(line: &[u8]) -> Option<Payload> {
    let at = marker_finder().find(line)?;
    let mut rest = &line[at + MARKER.len()..];
    let mut next = || -> Option<u64> {
        let end = memchr::memchr(b':', rest)?;
        let n = parse_u64(&rest[..end])?;
        rest = &rest[end + 1..];
        Some(n)
    };
    let sender = u32::try_from(next()?).ok()?;
    let seq = u32::try_from(next()?).ok()?;
    let sent_ns = next()?;
    Some(Payload {
        sender,
        seq,
        sent_ns,
    })
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut n = 0u64;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(d - b'0');
    }
    Some(n)
}

/// The frames the bench acts on; everything else (`joined`, `left`,
/// `presence`, …) is `Other` and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    Payload(Payload),
    Ack,
    Welcome,
    Error,
    Other,
}

/// The byte strings [`classify`] looks for: the `"type":"…"` field of an
/// `ack`, a `welcome` and an `error` as `chat_common` encodes them, and the
/// start of an `ack` line (the tag is the first field: serde writes an
/// internally tagged enum's tag first).
struct Tags {
    ack_line: Vec<u8>,
    /// Where an `ack` line first differs from a `message` line: one byte
    /// there turns a delivery away before comparing the whole start.
    ack_at: usize,
    ack: memmem::Finder<'static>,
    welcome: memmem::Finder<'static>,
    error: memmem::Finder<'static>,
}

fn tags() -> &'static Tags {
    static TAGS: OnceLock<Tags> = OnceLock::new();
    TAGS.get_or_init(|| {
        let ack = ServerFrame::Ack {
            id: 1,
            offline: false,
            duplicate: false,
        };
        let welcome = ServerFrame::Welcome {
            id: 1,
            nick: "n".into(),
            online: vec!["n".into()],
            online_more: 0,
            new_account: false,
            replay: 0,
            replay_left: 0,
            public_seq: 0,
            groups: Vec::new(),
        };
        let error = ServerFrame::Error {
            id: Some(1),
            code: ErrorCode::BadJson,
            reason: "r".into(),
        };
        let finder = |frame: &ServerFrame| memmem::Finder::new(&tag_of(frame)).into_owned();
        let mut ack_line = b"{".to_vec();
        ack_line.extend_from_slice(&tag_of(&ack));
        let message = encode(&ServerFrame::Message {
            seq: 1,
            sender: "n".into(),
            receiver: "*".into(),
            text: "t".into(),
            time: 1,
            away: false,
        });
        let ack_at = ack_line
            .iter()
            .zip(message.iter())
            .position(|(a, m)| a != m)
            .unwrap_or(0);
        Tags {
            ack_line,
            ack_at,
            ack: finder(&ack),
            welcome: finder(&welcome),
            error: finder(&error),
        }
    })
}

/// The first field of `frame`'s line, `"type":"<its type>"`.
fn tag_of(frame: &ServerFrame) -> Vec<u8> {
    let line = encode(frame);
    let tag = line
        .strip_prefix(b"{")
        .and_then(|rest| rest.split(|&b| b == b',' || b == b'}').next())
        .filter(|tag| tag.starts_with(b"\"type\":\""));
    let Some(tag) = tag else {
        panic!(
            "chat_common no longer writes the type first: {}",
            String::from_utf8_lossy(&line)
        );
    };
    tag.to_vec()
}

/// Classifies one line (without its newline) by searching, not parsing.
pub fn classify(line: &[u8]) -> Line {
    let tags = tags();
    // The server writes the tag first; the prefix test is the fast path for
    // the commonest answer, the searches below do not depend on field order.
    if line.get(tags.ack_at) == tags.ack_line.get(tags.ack_at) && line.starts_with(&tags.ack_line) {
        return Line::Ack;
    }
    if let Some(p) = parse_payload(line) {
        return Line::Payload(p);
    }
    if tags.ack.find(line).is_some() {
        Line::Ack
    } else if tags.welcome.find(line).is_some() {
        Line::Welcome
    } else if tags.error.find(line).is_some() {
        Line::Error
    } else {
        Line::Other
    }
}

/// Splits one connection's byte stream into lines. Complete lines inside a
/// read are handed out without copying; only a line cut by the end of a read
/// is kept, and at most `LINE_CAP` bytes of it.
#[derive(Debug, Default)]
pub struct LineScanner {
    partial: Vec<u8>,
    /// The start of an over-long line has been handed out; drop bytes up to
    /// its newline.
    skipping: bool,
}

impl LineScanner {
    /// Feeds the bytes of one read; calls `line` for each line completed
    /// (`\r` before the newline and empty lines are dropped).
    pub fn feed(&mut self, mut data: &[u8], mut line: impl FnMut(&[u8])) {
        if self.skipping {
            match memchr::memchr(b'\n', data) {
                Some(nl) => {
                    self.skipping = false;
                    data = &data[nl + 1..];
                }
                None => return,
            }
        }
        if !self.partial.is_empty() {
            match memchr::memchr(b'\n', data) {
                Some(nl) => {
                    let room = LINE_CAP.saturating_sub(self.partial.len());
                    self.partial.extend_from_slice(&data[..nl.min(room)]);
                    emit(&self.partial, &mut line);
                    self.partial.clear();
                    data = &data[nl + 1..];
                }
                None => {
                    self.keep(data, &mut line);
                    return;
                }
            }
        }
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', data) {
            emit(&data[start..nl], &mut line);
            start = nl + 1;
        }
        self.keep(&data[start..], &mut line);
    }

    /// Keeps the unfinished tail of a read, or hands out its start and skips
    /// the rest once it is longer than `LINE_CAP`.
    fn keep(&mut self, tail: &[u8], line: &mut impl FnMut(&[u8])) {
        let room = LINE_CAP - self.partial.len();
        if tail.len() < room {
            self.partial.extend_from_slice(tail);
        } else {
            self.partial.extend_from_slice(&tail[..room]);
            emit(&self.partial, line);
            self.partial = Vec::new();
            self.skipping = true;
        }
    }
}

fn emit(mut l: &[u8], line: &mut impl FnMut(&[u8])) {
    if let [rest @ .., b'\r'] = l {
        l = rest;
    }
    if !l.is_empty() {
        line(l);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(sender: u32, seq: u32, sent_ns: u64) -> Payload {
        Payload {
            sender,
            seq,
            sent_ns,
        }
    }

    #[test]
    fn payload_round_trip_and_padding() {
        let p = payload(7, 123_456, 9_876_543_210);
        let mut text = Vec::new();
        encode_payload(&mut text, p, 64);
        assert_eq!(text.len(), 64);
        assert!(text.starts_with(b"~B~7:123456:9876543210:xxx"));
        assert_eq!(parse_payload(&text), Some(p));

        // Too small a size: the numbers are never cut.
        let mut short = Vec::new();
        encode_payload(&mut short, p, 4);
        assert_eq!(short, b"~B~7:123456:9876543210:");
        assert_eq!(parse_payload(&short), Some(p));
    }

    #[test]
    fn classification() {
        let cases: &[(&str, Line)] = &[
            (r#"{"type":"ack","id":3}"#, Line::Ack),
            (r#"{"id":3,"type":"ack"}"#, Line::Ack),
            (
                r#"{"type":"welcome","id":1,"nick":"a","online":["a"]}"#,
                Line::Welcome,
            ),
            (
                r#"{"type":"error","id":2,"code":"nick_taken","reason":"r"}"#,
                Line::Error,
            ),
            (r#"{"type":"joined","nick":"a"}"#, Line::Other),
            (
                r#"{"type":"presence","joined":["a"],"left":[]}"#,
                Line::Other,
            ),
            (
                r#"{"type":"message","sender":"a","receiver":"*","text":"hi","time":1}"#,
                Line::Other,
            ),
            (
                r#"{"type":"message","text":"~B~1:2:x:","time":1}"#,
                Line::Other,
            ),
        ];
        for (line, want) in cases {
            assert_eq!(classify(line.as_bytes()), *want, "{line}");
        }
    }

    /// The same, for frames as `chat_common` encodes them.
    #[test]
    fn classification_of_encoded_frames() {
        let cases = [
            (
                ServerFrame::Ack {
                    id: 3,
                    offline: true,
                    duplicate: false,
                },
                Line::Ack,
            ),
            (
                ServerFrame::Welcome {
                    id: 1,
                    nick: "a".into(),
                    online: vec!["a".into(), "b".into()],
                    online_more: 2,
                    new_account: true,
                    replay: 0,
                    replay_left: 0,
                    public_seq: 12,
                    groups: Vec::new(),
                },
                Line::Welcome,
            ),
            (
                ServerFrame::Error {
                    id: None,
                    code: ErrorCode::NickTaken,
                    reason: "r".into(),
                },
                Line::Error,
            ),
            (ServerFrame::Pong { id: 4 }, Line::Other),
            (
                ServerFrame::Online {
                    id: 5,
                    users: vec!["a".into()],
                    away: Default::default(),
                },
                Line::Other,
            ),
            (
                ServerFrame::Message {
                    seq: 1,
                    sender: "a".into(),
                    receiver: "*".into(),
                    text: "an ack, a welcome or an error: not a payload".into(),
                    time: 1,
                    away: false,
                },
                Line::Other,
            ),
        ];
        for (frame, want) in cases {
            let line = encode(&frame);
            let line = line.strip_suffix(b"\n").unwrap();
            assert_eq!(classify(line), want, "{}", String::from_utf8_lossy(line));
        }
    }

    fn scan_in_pieces(stream: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut scanner = LineScanner::default();
        let mut lines = Vec::new();
        let mut at = 0;
        for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
            scanner.feed(&stream[at..cut], |l| lines.push(l.to_vec()));
            at = cut;
        }
        lines
    }

    #[test]
    fn lines_across_read_boundaries() {
        let stream = b"one\r\ntwo\n\nthree-is-longer\nfour\n";
        let want: Vec<Vec<u8>> = ["one", "two", "three-is-longer", "four"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        // Every single cut, and every pair of cuts.
        for a in 0..=stream.len() {
            assert_eq!(scan_in_pieces(stream, &[a]), want, "cut at {a}");
            for b in a..=stream.len() {
                assert_eq!(scan_in_pieces(stream, &[a, b]), want, "cuts at {a}, {b}");
            }
        }
        // One byte at a time.
        let cuts: Vec<usize> = (1..stream.len()).collect();
        assert_eq!(scan_in_pieces(stream, &cuts), want);
    }

    #[test]
    fn an_over_long_line_is_cut_and_the_next_one_survives() {
        let mut stream = b"{\"type\":\"welcome\",\"online\":[".to_vec();
        stream.resize(3 * LINE_CAP, b'a');
        stream.extend_from_slice(b"]}\n{\"type\":\"ack\",\"id\":2}\n");
        for cuts in [
            vec![],
            vec![100],
            vec![LINE_CAP - 1, LINE_CAP, 2 * LINE_CAP + 3],
        ] {
            let lines = scan_in_pieces(&stream, &cuts);
            assert_eq!(lines.len(), 2, "{cuts:?}");
            // Whole when it arrived in one read (no copy), else its start.
            let whole = 3 * LINE_CAP + 2;
            assert!([whole, LINE_CAP].contains(&lines[0].len()), "{cuts:?}");
            assert_eq!(classify(&lines[0]), Line::Welcome);
            assert_eq!(classify(&lines[1]), Line::Ack);
        }
    }
}
