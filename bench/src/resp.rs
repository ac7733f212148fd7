//! The Redis side of `--target redis` (issue 18): just enough RESP to run
//! the same scenarios against `redis-server` pub/sub, for comparison.
//!
//! Each simulated client is a subscriber connection (`SUBSCRIBE` to the
//! room's channel, or in `pairs` to its own); each sender publishes on a
//! second connection (`PING` first, as its "login"). The payload text is the
//! chat's (`scan::encode_payload`), so the same marker search, latency
//! histogram, loss and duplicate counts apply.
//!
//! Receiving reuses `scan::LineScanner`: RESP ends every element with
//! `\r\n`, so a pushed message
//! `*3\r\n$7\r\nmessage\r\n$<n>\r\n<channel>\r\n$<n>\r\n<payload>\r\n`
//! splits into the lines `*3`, `$7`, `message`, `$<n>`, `<channel>`,
//! `$<n>`, `<payload>`, and only the payload line carries the marker. That
//! is exact here because every bulk string the bench receives is one it
//! chose (channel names, payloads) and none holds a CR or LF.

use crate::scan::{parse_payload, Line, Payload, MARKER};

/// The channel of the public room.
pub const ROOM: &str = "room";

/// Appends a RESP command: an array of bulk strings.
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    push_len(out, b'*', args.len());
    for arg in args {
        push_len(out, b'$', arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// `<kind><n>\r\n`.
fn push_len(out: &mut Vec<u8>, kind: u8, n: usize) {
    out.push(kind);
    push_decimal(out, n as u64);
    out.extend_from_slice(b"\r\n");
}

fn push_decimal(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// The length `scan::encode_payload` gives `p` at `size`.
fn payload_len(p: Payload, size: usize) -> usize {
    let natural = MARKER.len()
        + decimal_len(u64::from(p.sender))
        + decimal_len(u64::from(p.seq))
        + decimal_len(p.sent_ns)
        + 3;
    natural.max(size)
}

/// A sender's `PUBLISH <channel> <payload>` commands: everything before the
/// payload's length encoded once.
pub struct PublishTemplate {
    head: Vec<u8>,
}

impl PublishTemplate {
    pub fn new(channel: &str) -> PublishTemplate {
        let mut head = Vec::new();
        push_len(&mut head, b'*', 3);
        push_len(&mut head, b'$', 7);
        head.extend_from_slice(b"PUBLISH\r\n");
        push_len(&mut head, b'$', channel.len());
        head.extend_from_slice(channel.as_bytes());
        head.extend_from_slice(b"\r\n");
        PublishTemplate { head }
    }

    /// Appends one `PUBLISH` carrying `p`, padded to `size`.
    pub fn encode(&self, out: &mut Vec<u8>, p: Payload, size: usize) {
        out.extend_from_slice(&self.head);
        push_len(out, b'$', payload_len(p, size));
        crate::scan::encode_payload(out, p, size);
        out.extend_from_slice(b"\r\n");
    }
}

/// A subscriber's first command.
pub fn encode_subscribe(out: &mut Vec<u8>, channel: &str) {
    encode_command(out, &[b"SUBSCRIBE", channel.as_bytes()]);
}

/// A publisher's first command; its `+PONG` counts as logged in.
pub fn encode_ping(out: &mut Vec<u8>) {
    encode_command(out, &[b"PING"]);
}

/// One line (CRLF removed) on a subscriber connection: the payload of a
/// pushed message, the `subscribe` confirmation (as `Welcome`), an error,
/// or one of the other elements (`*3`, `$7`, `message`, the channel, the
/// subscription count `:1`).
pub fn classify_subscriber(line: &[u8]) -> Line {
    match line.first() {
        Some(b'-') => Line::Error,
        Some(b'*' | b'$' | b':') => Line::Other,
        _ if line == b"subscribe" => Line::Welcome,
        _ => parse_payload(line).map_or(Line::Other, Line::Payload),
    }
}

/// One line on a publisher connection: `:<receivers>` answers a `PUBLISH`
/// (an ack), `+PONG` the first `PING`, `-…` is an error.
pub fn classify_publisher(line: &[u8]) -> Line {
    match line.first() {
        Some(b':') => Line::Ack,
        Some(b'-') => Line::Error,
        _ if line == b"+PONG" => Line::Welcome,
        _ => Line::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::{encode_payload, LineScanner};

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode_subscribe(&mut out, "room");
        assert_eq!(out, b"*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nroom\r\n");
        out.clear();
        encode_ping(&mut out);
        assert_eq!(out, b"*1\r\n$4\r\nPING\r\n");
        out.clear();
        encode_command(&mut out, &[b"", b"0123456789"]);
        assert_eq!(out, b"*2\r\n$0\r\n\r\n$10\r\n0123456789\r\n");
    }

    #[test]
    fn publish_template_matches_a_full_encode() {
        let t = PublishTemplate::new("b1a2-7");
        let samples = [
            (Payload::default(), 0),
            (Payload::default(), 64),
            (
                Payload {
                    sender: 12,
                    seq: 3_456,
                    sent_ns: 7_890_123_456,
                },
                64,
            ),
            (
                Payload {
                    sender: u32::MAX,
                    seq: u32::MAX,
                    sent_ns: u64::MAX,
                },
                10,
            ),
            (
                Payload {
                    sender: 9,
                    seq: 99,
                    sent_ns: 999,
                },
                1000,
            ),
        ];
        for (p, size) in samples {
            let mut text = Vec::new();
            encode_payload(&mut text, p, size);
            assert_eq!(payload_len(p, size), text.len(), "{p:?} {size}");
            let mut want = Vec::new();
            encode_command(&mut want, &[b"PUBLISH", b"b1a2-7", &text]);
            let mut got = Vec::new();
            t.encode(&mut got, p, size);
            assert_eq!(got, want, "{p:?} {size}");
        }
    }

    /// What redis-server 7 writes to a subscriber, split at every byte
    /// boundary: the confirmation, then pushed messages.
    #[test]
    fn a_subscriber_stream_gives_the_payloads() {
        let p1 = Payload {
            sender: 3,
            seq: 0,
            sent_ns: 123_456,
        };
        let p2 = Payload {
            sender: 3,
            seq: 1,
            sent_ns: 123_999,
        };
        let mut stream = b"*3\r\n$9\r\nsubscribe\r\n$4\r\nroom\r\n:1\r\n".to_vec();
        for p in [p1, p2] {
            let mut text = Vec::new();
            encode_payload(&mut text, p, 64);
            encode_command(&mut stream, &[b"message", b"room", &text]);
        }
        for cut in 0..=stream.len() {
            let mut scanner = LineScanner::default();
            let mut seen = Vec::new();
            for part in [&stream[..cut], &stream[cut..]] {
                scanner.feed(part, |line| match classify_subscriber(line) {
                    Line::Other => {}
                    other => seen.push(other),
                });
            }
            assert_eq!(
                seen,
                [Line::Welcome, Line::Payload(p1), Line::Payload(p2)],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn publisher_replies() {
        let stream = b"+PONG\r\n:100\r\n:0\r\n-ERR unknown command\r\n";
        let mut scanner = LineScanner::default();
        let mut seen = Vec::new();
        scanner.feed(stream, |line| seen.push(classify_publisher(line)));
        assert_eq!(seen, [Line::Welcome, Line::Ack, Line::Ack, Line::Error]);
        assert_eq!(classify_subscriber(b"-ERR wrong"), Line::Error);
        assert_eq!(classify_subscriber(b"message"), Line::Other);
        assert_eq!(classify_subscriber(b"room"), Line::Other);
    }
}
