//! A WebSocket (RFC 6455) after the upgrade: tungstenite reads the peer's
//! frames (masking, fragments, control frames, UTF-8, size limits) from
//! bytes the worker hands it, and our frames go out as single unmasked
//! messages. No socket here: the connection moves the bytes.

use std::io::{self, Read, Write};
use std::ops::Range;

use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig, WebSocketContext};
use tungstenite::{Error, Message};

/// What the peer sent, as the chat's codec wants it.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A text message: one protocol line.
    Line(Vec<u8>),
    /// A binary message: the raw bytes of the chunk announced before it.
    Bytes(Vec<u8>),
    /// The peer closed the WebSocket.
    Closed,
}

/// Why the WebSocket is to be closed by us.
#[derive(Debug, PartialEq, Eq)]
pub struct Violation(pub String);

/// The peer's half of a WebSocket, fed with bytes from the socket.
pub struct Socket {
    context: WebSocketContext,
    /// Bytes from the socket that tungstenite has not taken yet.
    input: Vec<u8>,
    taken: usize,
    /// What tungstenite wrote (pongs, the close reply), for the outbox.
    output: Vec<u8>,
}

/// The in-memory stream tungstenite reads from and writes to.
struct Pipe<'a> {
    input: &'a [u8],
    taken: &'a mut usize,
    output: &'a mut Vec<u8>,
}

impl Read for Pipe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = &self.input[*self.taken..];
        if rest.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        *self.taken += n;
        Ok(n)
    }
}

impl Write for Pipe<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Socket {
    /// A WebSocket whose first bytes (`rest`, read with the upgrade
    /// request) may already be here. Messages larger than `max_message`
    /// are refused by tungstenite before they are buffered.
    pub fn new(rest: Vec<u8>, max_message: usize) -> Socket {
        let config = WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0)
            .max_message_size(Some(max_message))
            .max_frame_size(Some(max_message));
        Socket {
            context: WebSocketContext::new(Role::Server, Some(config)),
            input: rest,
            taken: 0,
            output: Vec::new(),
        }
    }

    /// Bytes read from the socket.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.taken == self.input.len() {
            self.input.clear();
            self.taken = 0;
        }
        self.input.extend_from_slice(bytes);
    }

    /// The next complete message, `Ok(None)` until more bytes come. Pings
    /// are answered (see [`take_output`](Self::take_output)) and skipped.
    pub fn next_message(&mut self) -> Result<Option<Incoming>, Violation> {
        loop {
            let mut pipe = Pipe {
                input: &self.input,
                taken: &mut self.taken,
                output: &mut self.output,
            };
            let read = self.context.read(&mut pipe);
            // Pongs and the close reply are written on the next flush.
            let _ = self.context.flush(&mut pipe);
            return match read {
                Ok(Message::Text(text)) => Ok(Some(Incoming::Line(text.as_bytes().to_vec()))),
                Ok(Message::Binary(bytes)) => Ok(Some(Incoming::Bytes(bytes.to_vec()))),
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
                Ok(Message::Close(_)) | Err(Error::ConnectionClosed | Error::AlreadyClosed) => {
                    Ok(Some(Incoming::Closed))
                }
                Err(Error::Io(err)) if err.kind() == io::ErrorKind::WouldBlock => Ok(None),
                Err(err) => Err(Violation(err.to_string())),
            };
        }
    }

    /// Bytes tungstenite wrote for the peer (pong, close reply), to queue.
    pub fn take_output(&mut self) -> Option<Vec<u8>> {
        (!self.output.is_empty()).then(|| std::mem::take(&mut self.output))
    }
}

/// A WebSocket message header of ours: unmasked, so at most 10 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    bytes: [u8; 10],
    len: u8,
}

impl Header {
    fn new(data: Data, len: usize) -> Header {
        let mut bytes = [0; 10];
        let mut rest = &mut bytes[..];
        FrameHeader {
            opcode: OpCode::Data(data),
            ..FrameHeader::default()
        }
        .format(len as u64, &mut rest)
        .expect("an unmasked header fits in 10 bytes");
        let len = (10 - rest.len()) as u8;
        Header { bytes, len }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// One of our frames (a protocol line, perhaps followed by a chunk's raw
/// bytes, as `codec::encode` makes them) as WebSocket messages: the line
/// without its newline as a text message, the bytes after it as one binary
/// message. Each message is a header and a range of the frame, so a
/// broadcast's bytes stay shared by all its recipients: only the few
/// header bytes are a recipient's own.
pub fn messages(frame: &[u8]) -> impl Iterator<Item = (Header, Range<usize>)> {
    let (line, payload) = match frame.iter().position(|&b| b == b'\n') {
        Some(end) => (0..end, end + 1..frame.len()),
        None => (0..frame.len(), frame.len()..frame.len()),
    };
    let text = (Header::new(Data::Text, line.len()), line);
    let binary = (!payload.is_empty()).then(|| (Header::new(Data::Binary, payload.len()), payload));
    std::iter::once(text).chain(binary)
}

/// Our frame's messages in one buffer, as the peer reads them (for tests
/// and tools; the outbox queues [`messages`] without copying).
pub fn encode(frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len() + 14);
    for (header, range) in messages(frame) {
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&frame[range]);
    }
    out
}

/// A close frame: `normal` for a connection the chat ended, a policy or
/// protocol code for one the peer broke. The reason is cut to fit the 123
/// bytes a close frame allows.
pub fn close(code: CloseCode, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = Vec::new();
    let frame = tungstenite::protocol::frame::Frame::close(Some(CloseFrame {
        code,
        reason: reason[..end].to_string().into(),
    }));
    frame
        .format(&mut out)
        .expect("writing to a Vec cannot fail");
    out
}

pub use tungstenite::protocol::frame::coding::CloseCode as Code;

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's frame: masked, as browsers send them.
    fn client_frame(opcode: OpCode, payload: &[u8], last: bool) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut out = Vec::new();
        FrameHeader {
            is_final: last,
            opcode,
            mask: Some(mask),
            ..FrameHeader::default()
        }
        .format(payload.len() as u64, &mut out)
        .unwrap();
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn messages_come_whole_however_the_bytes_are_cut() {
        let mut bytes = client_frame(OpCode::Data(Data::Text), br#"{"type":"ping","id":1}"#, true);
        bytes.extend(client_frame(
            OpCode::Data(Data::Binary),
            &[0, 1, 2, 255],
            true,
        ));
        // A fragmented text message with a ping between its fragments.
        bytes.extend(client_frame(OpCode::Data(Data::Text), b"{\"a\":", false));
        bytes.extend(client_frame(
            OpCode::Control(tungstenite::protocol::frame::coding::Control::Ping),
            b"hi",
            true,
        ));
        bytes.extend(client_frame(OpCode::Data(Data::Continue), b"1}", true));
        let mut socket = Socket::new(Vec::new(), 1 << 20);
        let mut got = Vec::new();
        for byte in &bytes {
            socket.feed(std::slice::from_ref(byte));
            while let Some(incoming) = socket.next_message().unwrap() {
                got.push(incoming);
            }
        }
        assert_eq!(
            got,
            vec![
                Incoming::Line(br#"{"type":"ping","id":1}"#.to_vec()),
                Incoming::Bytes(vec![0, 1, 2, 255]),
                Incoming::Line(br#"{"a":1}"#.to_vec()),
            ]
        );
        let pong = socket.take_output().expect("the ping is answered");
        assert_eq!(pong, [0x8a, 2, b'h', b'i']);
    }

    #[test]
    fn broken_frames_are_violations() {
        // Unmasked (a client must mask), bad UTF-8, oversized, bad opcode.
        let mut unmasked = encode(b"hi\n");
        unmasked.truncate(4);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("unmasked", unmasked),
            (
                "bad utf-8",
                client_frame(OpCode::Data(Data::Text), &[0xff, 0xfe], true),
            ),
            (
                "oversized",
                client_frame(OpCode::Data(Data::Binary), &[7; 2000], true),
            ),
            ("reserved opcode", {
                let mut frame = client_frame(OpCode::Data(Data::Text), b"x", true);
                frame[0] = 0x83;
                frame
            }),
        ];
        for (what, bytes) in cases {
            let mut socket = Socket::new(bytes, 1000);
            assert!(socket.next_message().is_err(), "{what} was accepted");
        }
    }

    #[test]
    fn a_close_is_answered_and_reported() {
        let mut socket = Socket::new(
            client_frame(
                OpCode::Control(tungstenite::protocol::frame::coding::Control::Close),
                &[3, 232],
                true,
            ),
            1000,
        );
        assert_eq!(socket.next_message().unwrap(), Some(Incoming::Closed));
        let reply = socket.take_output().expect("the close is answered");
        assert_eq!(reply[0], 0x88);
    }

    #[test]
    fn our_frames_are_a_text_message_and_the_bytes_after_it() {
        let out = encode(b"{\"type\":\"chunk\",\"len\":3}\nabc");
        assert_eq!(out[0], 0x81);
        assert_eq!(out[1] as usize, 24);
        assert_eq!(&out[2..26], b"{\"type\":\"chunk\",\"len\":3}");
        assert_eq!(&out[26..], [0x82, 3, b'a', b'b', b'c']);
        let long = encode(&[b'x'; 300]);
        assert_eq!(&long[..4], [0x81, 126, 1, 44]);
        let reason = "é".repeat(100);
        let frame = close(CloseCode::Policy, &reason);
        assert!(
            frame.len() <= 2 + 125,
            "a control frame's payload is at most 125"
        );
    }
}
