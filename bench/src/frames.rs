//! What chat-bench sends, every frame of it encoded by `chat_common` (the
//! one crate that knows the wire format) from its `Request` types.
//!
//! Most frames are encoded as they are sent. The two that are sent by the
//! hundred thousand a second, a sender's `message` and an upload's `chunk`
//! line, are encoded once with stand-in values and cut around them (a
//! [`Template`]); each frame then copies the bytes between and writes its
//! own values where the stand-ins were. A full encode per frame costs
//! what chat-bench cannot spare on a machine it shares with the server it
//! measures: its strings, serde, a buffer and an `Arc` made chat-bench
//! spend some 13 % more CPU per delivery in `pairs` (where every delivery
//! is a send), and a fresh 256 KiB buffer and `Arc` per chunk slowed an
//! upload by 15 to 25 %.
//!
//! A template is exact as long as `chat_common` writes a number as its
//! decimal digits and the characters of a payload (digits, `:`, `~`, `B`,
//! `x`) as themselves. Each template checks itself against full encodes
//! when it is made; should that ever fail, its frames are encoded in full.

use std::io::Write as _;

use chat_common::codec::{encode, Frame};
use chat_common::protocol::{RawBytes, CHUNK};
use chat_common::{Request, EVERYONE};
use memchr::memmem;

use crate::scan::{encode_payload, Payload};

/// Appends the `login` request every simulated client starts with.
pub fn encode_login(out: &mut Vec<u8>, nick: &str, password: &str) {
    out.extend_from_slice(&encode(&Request::Login {
        id: 1,
        nick: nick.to_string(),
        password: password.to_string(),
        last_seq: None,
        last_public: None,
        register: None,
    }));
}

/// Stand-ins: numbers and a text that occur nowhere else in the frames
/// they are put in (which [`Template::cut`] checks).
const STAND_IN: [u64; 2] = [1_234_567_890_123_456_789, 9_876_543_210_987_654_321];
const STAND_IN_TEXT: &[u8] = b"~B~0:0:0:";

/// A frame encoded with stand-ins, in pieces.
struct Template {
    parts: Vec<Part>,
}

enum Part {
    Bytes(Vec<u8>),
    /// The `k`th number.
    Number(usize),
    /// The payload text.
    Text,
}

impl Template {
    /// Cuts `line` where each of `numbers` stand-ins (and the stand-in
    /// text, if `text`) is; `None` unless each is there exactly once.
    fn cut(line: &[u8], numbers: usize, text: bool) -> Option<Template> {
        let digits: Vec<String> = STAND_IN[..numbers].iter().map(u64::to_string).collect();
        let mut marks = Vec::new();
        for (k, digits) in digits.iter().enumerate() {
            marks.push((
                find_once(line, digits.as_bytes())?,
                digits.len(),
                Part::Number(k),
            ));
        }
        if text {
            marks.push((
                find_once(line, STAND_IN_TEXT)?,
                STAND_IN_TEXT.len(),
                Part::Text,
            ));
        }
        marks.sort_by_key(|m| m.0);
        let mut parts = Vec::new();
        let mut at = 0;
        for (start, len, part) in marks {
            if start < at {
                return None;
            }
            parts.push(Part::Bytes(line[at..start].to_vec()));
            parts.push(part);
            at = start + len;
        }
        parts.push(Part::Bytes(line[at..].to_vec()));
        Some(Template { parts })
    }

    /// Appends the frame with these numbers and this payload text.
    fn fill(&self, out: &mut Vec<u8>, numbers: &[u64], text: Option<(Payload, usize)>) {
        for part in &self.parts {
            match part {
                Part::Bytes(bytes) => out.extend_from_slice(bytes),
                // Writing to a Vec cannot fail.
                Part::Number(k) => {
                    let _ = write!(out, "{}", numbers[*k]);
                }
                Part::Text => {
                    let (p, size) = text.expect("a payload for the text");
                    encode_payload(out, p, size);
                }
            }
        }
    }
}

/// Where `needle` is in `haystack`, if it is there exactly once.
fn find_once(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let at = memmem::find(haystack, needle)?;
    memmem::find(&haystack[at + 1..], needle)
        .is_none()
        .then_some(at)
}

/// The `message` requests of one sender to one receiver (public when `to`
/// is `None`).
pub struct MessageTemplate {
    receiver: String,
    /// `None`: every message is encoded in full.
    template: Option<Template>,
}

impl MessageTemplate {
    pub fn new(to: Option<&str>) -> MessageTemplate {
        let mut message = MessageTemplate {
            receiver: to.unwrap_or(EVERYONE).to_string(),
            template: None,
        };
        let line = message.full(STAND_IN[0], STAND_IN_TEXT.to_vec());
        let template = Template::cut(&line, 1, true);
        let samples = [
            (0, Payload::default(), 0),
            (
                u64::MAX,
                Payload {
                    sender: u32::MAX,
                    seq: u32::MAX,
                    sent_ns: u64::MAX,
                },
                100,
            ),
            (
                7,
                Payload {
                    sender: 12,
                    seq: 3_456,
                    sent_ns: 7_890_123_456,
                },
                64,
            ),
        ];
        message.template = template.filter(|template| {
            samples.iter().all(|&(id, p, size)| {
                let (mut filled, mut text) = (Vec::new(), Vec::new());
                template.fill(&mut filled, &[id], Some((p, size)));
                encode_payload(&mut text, p, size);
                filled[..] == message.full(id, text)[..]
            })
        });
        message
    }

    /// Appends the `message` request `id` carrying `p`, padded to `size`.
    pub fn encode(&self, out: &mut Vec<u8>, id: u64, p: Payload, size: usize) {
        match &self.template {
            Some(template) => template.fill(out, &[id], Some((p, size))),
            None => {
                let mut text = Vec::with_capacity(size);
                encode_payload(&mut text, p, size);
                out.extend_from_slice(&self.full(id, text));
            }
        }
    }

    /// The request encoded in full.
    fn full(&self, id: u64, text: Vec<u8>) -> Frame {
        encode(&Request::Message {
            id,
            receiver: self.receiver.clone(),
            text: String::from_utf8(text).expect("a payload is ASCII"),
            cid: None,
        })
    }
}

/// The `chunk` requests of one upload, [`CHUNK`] bytes each.
pub struct ChunkTemplate {
    /// The line of a whole chunk (newline included), cut around `file` and
    /// `offset`; `None`: every chunk is encoded in full.
    line: Option<Template>,
}

impl ChunkTemplate {
    pub fn new() -> ChunkTemplate {
        let line = |file, offset| {
            let frame = full(file, offset, &[0; CHUNK]);
            let end = memchr::memchr(b'\n', &frame).expect("a line") + 1;
            frame[..end].to_vec()
        };
        let template = Template::cut(&line(STAND_IN[0], STAND_IN[1]), 2, false);
        let samples = [(0, 0), (u64::MAX, u64::MAX), (17, 3 * CHUNK as u64)];
        ChunkTemplate {
            line: template.filter(|template| {
                samples.iter().all(|&(file, offset)| {
                    let mut filled = Vec::new();
                    template.fill(&mut filled, &[file, offset], None);
                    filled == line(file, offset)
                })
            }),
        }
    }

    /// Replaces `out` with the `chunk` request of `file` carrying `data`,
    /// its bytes at `offset`: a template's line and the bytes when `data`
    /// is a whole chunk, else the request encoded in full.
    pub fn encode(&self, out: &mut Vec<u8>, file: u64, offset: u64, data: &[u8]) {
        out.clear();
        match &self.line {
            Some(line) if data.len() == CHUNK => {
                line.fill(out, &[file, offset], None);
                out.extend_from_slice(data);
            }
            _ => out.extend_from_slice(&full(file, offset, data)),
        }
    }
}

impl Default for ChunkTemplate {
    fn default() -> Self {
        ChunkTemplate::new()
    }
}

/// A `chunk` request encoded in full, its bytes after its line.
fn full(file: u64, offset: u64, data: &[u8]) -> Frame {
    encode(&Request::Chunk {
        file,
        offset,
        data: RawBytes::from(data.to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::{classify, Line};
    use chat_common::ServerFrame;

    fn payload(sender: u32, seq: u32, sent_ns: u64) -> Payload {
        Payload {
            sender,
            seq,
            sent_ns,
        }
    }

    /// One request line, newline included, decoded by `chat_common`.
    fn decoded(line: &[u8]) -> Request {
        let (line, rest) = line.split_at(line.len() - 1);
        assert_eq!(rest, b"\n", "one line");
        assert!(!line.contains(&b'\n'), "one line");
        chat_common::codec::decode(line).expect("a request the server reads")
    }

    #[test]
    fn login() {
        let mut req = Vec::new();
        encode_login(&mut req, "b1-7", "bench");
        assert_eq!(
            decoded(&req),
            Request::Login {
                id: 1,
                nick: "b1-7".into(),
                password: "bench".into(),
                last_seq: None,
                last_public: None,
                register: None,
            }
        );
    }

    #[test]
    fn payload_inside_a_server_frame() {
        for to in [Some("b1-2"), None] {
            let mut req = Vec::new();
            MessageTemplate::new(to).encode(&mut req, 5, payload(1, 2, 3), 32);
            let Request::Message {
                id,
                receiver,
                text,
                cid,
            } = decoded(&req)
            else {
                panic!("not a message: {}", String::from_utf8_lossy(&req));
            };
            assert_eq!(id, 5);
            assert_eq!(receiver, to.unwrap_or("*"));
            assert_eq!(text.len(), 32);
            assert_eq!(cid, None);

            let frame = encode(&ServerFrame::Message {
                seq: 9,
                sender: "b1-1".into(),
                receiver,
                text,
                time: 17,
                away: false,
            });
            let line = frame.strip_suffix(b"\n").unwrap();
            assert_eq!(classify(line), Line::Payload(payload(1, 2, 3)));
        }
    }

    fn random() -> impl FnMut() -> u64 {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// A template writes what `chat_common` encodes, byte for byte, and so
    /// does a message that is encoded in full.
    #[test]
    fn a_message_template_writes_what_chat_common_encodes() {
        let mut next = random();
        for to in [None, Some("b1a2b3-17"), Some("*")] {
            let template = MessageTemplate::new(to);
            assert!(template.template.is_some(), "the fast path for {to:?}");
            let full = MessageTemplate {
                receiver: template.receiver.clone(),
                template: None,
            };
            for _ in 0..1000 {
                let id = next() >> (next() % 64);
                let p = payload(next() as u32, next() as u32, next());
                let size = (next() % 200) as usize;
                let (mut fast, mut slow) = (Vec::new(), Vec::new());
                template.encode(&mut fast, id, p, size);
                full.encode(&mut slow, id, p, size);
                let mut text = Vec::new();
                encode_payload(&mut text, p, size);
                assert_eq!(fast, &template.full(id, text)[..]);
                assert_eq!(fast, slow);
            }
        }
    }

    #[test]
    fn a_chunk_template_writes_what_chat_common_encodes() {
        let template = ChunkTemplate::new();
        assert!(template.line.is_some(), "the fast path");
        let mut next = random();
        let data: Vec<u8> = (0..CHUNK).map(|_| next() as u8).collect();
        let mut out = Vec::new();
        for _ in 0..100 {
            let (file, offset) = (next() >> (next() % 64), next() >> (next() % 64));
            for len in [CHUNK, CHUNK - 1, 1] {
                template.encode(&mut out, file, offset, &data[..len]);
                assert_eq!(out, &full(file, offset, &data[..len])[..]);
            }
        }
        template.encode(&mut out, 3, 4, &data);
        let line = memchr::memchr(b'\n', &out).unwrap();
        let Request::Chunk {
            file,
            offset,
            data: raw,
        } = decoded(&out[..=line])
        else {
            panic!("not a chunk");
        };
        assert_eq!((file, offset, raw.len()), (3, 4, CHUNK));
        assert_eq!(&out[line + 1..], &data[..]);
    }
}
