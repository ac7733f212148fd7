//! A simulated client's WebSocket, spoken as the browser's page speaks it
//! (issue 19): the HTTP upgrade and its `101` checked, every protocol line
//! sent as one masked text message (a chunk's raw bytes as one masked
//! binary message after it), and the server's messages deframed back into
//! lines for the same scanner the TCP clients feed, so a WebSocket delivery
//! is counted exactly as a TCP one. The framing is tungstenite's
//! (`FrameHeader`, `Frame`, `derive_accept_key`); the sockets and the event
//! loop stay the bench's own (`engine.rs`).

use std::io::Cursor;
use std::net::SocketAddr;

use anyhow::{bail, Context as _};
use tungstenite::handshake::{client::generate_key, derive_accept_key};
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::{Frame, FrameHeader};

/// Where the server takes WebSocket upgrades.
pub const PATH: &str = "/ws";

/// The longest `101` response head accepted.
const HEAD_CAP: usize = 8 * 1024;

/// A WebSocket frame header is at most 14 bytes (2, 8 of length, 4 of mask).
const HEADER_MAX: usize = 14;

/// One client's WebSocket: the upgrade until the `101`, then the open socket.
pub struct Client {
    state: State,
    masks: Masks,
}

enum State {
    /// The upgrade request is sent; the response head is read into `head`.
    Upgrading {
        key: String,
        head: Vec<u8>,
    },
    Open(Deframer),
}

/// What the bytes of a read meant during the upgrade.
#[derive(Debug)]
pub enum Upgraded {
    /// The response head is not complete yet.
    Pending,
    /// The `101` came and its accept key is right; `rest` came after it.
    Open { rest: Vec<u8> },
}

impl Client {
    /// A client about to upgrade, whose upgrade request is appended to `out`.
    /// `seed` makes its masks differ from other clients'.
    pub fn start(out: &mut Vec<u8>, addr: SocketAddr, seed: u64) -> Client {
        let key = generate_key();
        out.extend_from_slice(
            format!(
                "GET {PATH} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
            )
            .as_bytes(),
        );
        Client {
            state: State::Upgrading {
                key,
                head: Vec::new(),
            },
            masks: Masks::new(seed),
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open(_))
    }

    /// Feeds bytes read during the upgrade: the response head is checked
    /// once complete (status 101, the accept key derived from ours).
    pub fn upgrade(&mut self, data: &[u8]) -> anyhow::Result<Upgraded> {
        let State::Upgrading { key, head } = &mut self.state else {
            bail!("the WebSocket is already open");
        };
        head.extend_from_slice(data);
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut headers);
        let len = match response.parse(head).context("the upgrade's response")? {
            httparse::Status::Complete(len) => len,
            httparse::Status::Partial if head.len() > HEAD_CAP => {
                bail!("the upgrade's response head is over {HEAD_CAP} bytes")
            }
            httparse::Status::Partial => return Ok(Upgraded::Pending),
        };
        if response.code != Some(101) {
            bail!(
                "the upgrade was answered {} {}",
                response.code.unwrap_or(0),
                response.reason.unwrap_or("")
            );
        }
        let accept = response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("Sec-WebSocket-Accept"))
            .map(|h| h.value);
        if accept != Some(derive_accept_key(key.as_bytes()).as_bytes()) {
            bail!("the 101's Sec-WebSocket-Accept does not match our key");
        }
        let rest = head[len..].to_vec();
        self.state = State::Open(Deframer::default());
        Ok(Upgraded::Open { rest })
    }

    /// Appends one of our frames (see [`encode`]) as client messages.
    pub fn send(&mut self, out: &mut Vec<u8>, frame: &[u8]) {
        encode(out, frame, &mut self.masks);
    }

    /// Appends a pong answering a ping's `payload`.
    pub fn pong(&mut self, out: &mut Vec<u8>, payload: &[u8]) {
        let mut frame = Frame::pong(payload.to_vec());
        frame.header_mut().mask = Some(self.masks.next());
        frame.format(out).expect("writing to a Vec cannot fail");
    }

    /// The open socket's deframer.
    pub fn deframer(&mut self) -> Option<&mut Deframer> {
        match &mut self.state {
            State::Open(deframer) => Some(deframer),
            State::Upgrading { .. } => None,
        }
    }
}

/// Masking keys (RFC 6455 section 5.3). The RFC wants them unpredictable so
/// that a page's script cannot steer the bytes an intermediary sees; the
/// bench runs no scripts and talks to loopback, so an xorshift per client
/// is enough and costs nothing beside the server it measures.
pub struct Masks(u64);

impl Masks {
    pub fn new(seed: u64) -> Masks {
        // Never zero: xorshift would stay there.
        Masks(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> [u8; 4] {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x as u32).to_be_bytes()
    }
}

/// Appends `frame` (a protocol line with its newline, perhaps followed by a
/// chunk's raw bytes) as a browser sends it: the line without its newline
/// as one masked text message, the bytes after it as one masked binary
/// message.
pub fn encode(out: &mut Vec<u8>, frame: &[u8], masks: &mut Masks) {
    let (line, bytes) = match memchr::memchr(b'\n', frame) {
        Some(end) => (&frame[..end], &frame[end + 1..]),
        None => (frame, &[][..]),
    };
    message(out, Data::Text, line, masks);
    if !bytes.is_empty() {
        message(out, Data::Binary, bytes, masks);
    }
}

fn message(out: &mut Vec<u8>, data: Data, payload: &[u8], masks: &mut Masks) {
    let mut frame = Frame::message(payload.to_vec(), OpCode::Data(data), true);
    frame.header_mut().mask = Some(masks.next());
    // Masks the payload as it writes it.
    frame.format(out).expect("writing to a Vec cannot fail");
}

/// A piece of what the server sent, as the deframer finds it.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Bytes of a text message (a protocol line, without its newline).
    Text(&'a [u8]),
    /// The text message is complete.
    TextEnd,
    /// Bytes of a binary message (a chunk's raw bytes).
    Binary(&'a [u8]),
    BinaryEnd,
    /// A ping, to be answered with a pong carrying this payload.
    Ping(&'a [u8]),
    /// The server closed the WebSocket.
    Close,
}

/// Splits the server's byte stream into messages without gathering them:
/// a data frame's payload is handed out as it arrives, cut wherever the
/// reads cut it, so a text message goes into the line scanner without a
/// copy. Only a header cut by a read's end, and control payloads (at most
/// 125 bytes), are kept.
#[derive(Debug, Default)]
pub struct Deframer {
    /// A header cut by the end of a read.
    head: Vec<u8>,
    /// The frame whose payload is arriving, and the bytes of it still to come.
    frame: Option<(OpCode, bool)>,
    left: u64,
    /// The data message under way (for continuation frames).
    message: Option<Data>,
    control: Vec<u8>,
}

impl Deframer {
    /// Feeds the bytes of one read; `piece` gets what they complete. A frame
    /// no server may send (masked, a reserved opcode, a control frame
    /// fragmented or over 125 bytes, a continuation of nothing) is an error.
    pub fn feed(&mut self, mut data: &[u8], mut piece: impl FnMut(Piece)) -> anyhow::Result<()> {
        loop {
            if self.frame.is_none() {
                if data.is_empty() {
                    return Ok(());
                }
                let Some(consumed) = self.header(data)? else {
                    return Ok(());
                };
                data = &data[consumed..];
                if self.left == 0 {
                    self.end_frame(&mut piece);
                }
                continue;
            }
            let (opcode, _) = self.frame.expect("a frame under way");
            if data.is_empty() {
                return Ok(());
            }
            let n = data
                .len()
                .min(usize::try_from(self.left).unwrap_or(usize::MAX));
            let (now, later) = data.split_at(n);
            match opcode {
                OpCode::Data(_) => match self.message {
                    Some(Data::Text) => piece(Piece::Text(now)),
                    _ => piece(Piece::Binary(now)),
                },
                OpCode::Control(_) => self.control.extend_from_slice(now),
            }
            self.left -= n as u64;
            data = later;
            if self.left == 0 {
                self.end_frame(&mut piece);
            }
        }
    }

    /// Parses the next header from what was kept and `data`: how many
    /// bytes of `data` it took, or `None` (all kept) when it is cut.
    fn header(&mut self, data: &[u8]) -> anyhow::Result<Option<usize>> {
        let kept = self.head.len();
        let parsed = if kept == 0 {
            let mut cursor = Cursor::new(data);
            FrameHeader::parse(&mut cursor)?.map(|h| (h, cursor.position() as usize))
        } else {
            let take = data.len().min(HEADER_MAX - kept);
            self.head.extend_from_slice(&data[..take]);
            let mut cursor = Cursor::new(&self.head[..]);
            let parsed = FrameHeader::parse(&mut cursor)?;
            let at = cursor.position() as usize;
            self.head.truncate(kept);
            parsed.map(|h| (h, at - kept))
        };
        let Some(((header, len), consumed)) = parsed else {
            self.head.extend_from_slice(data);
            return Ok(None);
        };
        self.head.clear();
        if header.mask.is_some() {
            bail!("the server masked a frame");
        }
        if header.rsv1 || header.rsv2 || header.rsv3 {
            bail!("the server set a reserved bit (no extension was agreed)");
        }
        match header.opcode {
            OpCode::Control(Control::Reserved(_)) | OpCode::Data(Data::Reserved(_)) => {
                bail!("a reserved opcode")
            }
            OpCode::Control(_) if !header.is_final || len > 125 => {
                bail!("a fragmented or over-long control frame")
            }
            OpCode::Control(_) => self.control.clear(),
            OpCode::Data(Data::Continue) if self.message.is_none() => {
                bail!("a continuation frame outside a message")
            }
            OpCode::Data(Data::Continue) => {}
            OpCode::Data(_) if self.message.is_some() => {
                bail!("a new message inside a fragmented one")
            }
            OpCode::Data(data) => self.message = Some(data),
        }
        self.frame = Some((header.opcode, header.is_final));
        self.left = len;
        Ok(Some(consumed))
    }

    fn end_frame(&mut self, piece: &mut impl FnMut(Piece)) {
        let Some((opcode, last)) = self.frame.take() else {
            return;
        };
        match opcode {
            OpCode::Data(_) if last => match self.message.take() {
                Some(Data::Text) => piece(Piece::TextEnd),
                _ => piece(Piece::BinaryEnd),
            },
            OpCode::Data(_) => {}
            OpCode::Control(Control::Ping) => piece(Piece::Ping(&self.control)),
            OpCode::Control(Control::Close) => piece(Piece::Close),
            OpCode::Control(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_server::framework::web::ws::{self as server, Incoming};

    /// Everything `bytes` deframe into, cut into reads of `step` bytes,
    /// with consecutive pieces of one message joined.
    fn deframe(bytes: &[u8], step: usize) -> Vec<(String, Vec<u8>)> {
        let mut deframer = Deframer::default();
        let mut got: Vec<(String, Vec<u8>)> = Vec::new();
        for read in bytes.chunks(step) {
            deframer
                .feed(read, |piece| {
                    let (kind, data) = match piece {
                        Piece::Text(t) => ("text", t),
                        Piece::Binary(b) => ("binary", b),
                        Piece::TextEnd => ("text end", &[][..]),
                        Piece::BinaryEnd => ("binary end", &[][..]),
                        Piece::Ping(p) => ("ping", p),
                        Piece::Close => ("close", &[][..]),
                    };
                    match got.last_mut() {
                        Some((k, d)) if k == kind && matches!(kind, "text" | "binary") => {
                            d.extend_from_slice(data)
                        }
                        _ => got.push((kind.to_string(), data.to_vec())),
                    }
                })
                .unwrap();
        }
        got
    }

    fn owned(kind: &str, data: &[u8]) -> (String, Vec<u8>) {
        (kind.to_string(), data.to_vec())
    }

    #[test]
    fn our_writes_are_masked_and_the_server_reads_them() {
        let mut masks = Masks::new(7);
        let mut out = Vec::new();
        encode(&mut out, b"{\"type\":\"ping\",\"id\":1}\n", &mut masks);
        encode(
            &mut out,
            b"{\"type\":\"chunk\",\"len\":4}\n\x00\x01\xfe\xff",
            &mut masks,
        );
        // Masked: the line is not in the bytes as it is.
        assert!(memchr::memmem::find(&out, b"ping").is_none());
        let mut cursor = Cursor::new(&out[..]);
        let (header, len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
        assert!(header.mask.is_some() && header.is_final);
        assert_eq!(header.opcode, OpCode::Data(Data::Text));
        assert_eq!(len, 22, "without the newline");

        // The server's own reader takes them, cut at every byte.
        let mut socket = server::Socket::new(Vec::new(), 1 << 20);
        let mut got = Vec::new();
        for byte in &out {
            socket.feed(std::slice::from_ref(byte));
            while let Some(incoming) = socket.next_message().unwrap() {
                got.push(incoming);
            }
        }
        assert_eq!(
            got,
            vec![
                Incoming::Line(b"{\"type\":\"ping\",\"id\":1}".to_vec()),
                Incoming::Line(b"{\"type\":\"chunk\",\"len\":4}".to_vec()),
                Incoming::Bytes(vec![0, 1, 0xfe, 0xff]),
            ]
        );
        // Each frame has its own mask.
        let mut again = Vec::new();
        encode(&mut again, b"{\"type\":\"ping\",\"id\":1}\n", &mut masks);
        assert_ne!(again, out[..again.len()]);
    }

    #[test]
    fn the_servers_messages_deframe_across_any_read_boundary() {
        let long = vec![b'x'; 70_000]; // a 64-bit length
        let mut bytes = server::encode(b"{\"type\":\"ack\",\"id\":2}\n");
        bytes.extend(server::encode(&[b'y'; 300])); // a 16-bit length
        bytes.extend(server::encode(&long));
        bytes.extend(server::encode(b"{}"));
        let want = vec![
            owned("text", b"{\"type\":\"ack\",\"id\":2}"),
            owned("text end", b""),
            owned("text", &[b'y'; 300]),
            owned("text end", b""),
            owned("text", &long),
            owned("text end", b""),
            owned("text", b"{}"),
            owned("text end", b""),
        ];
        for step in [1, 2, 3, 5, 13, 14, 15, 301, 4096, bytes.len()] {
            assert_eq!(deframe(&bytes, step), want, "reads of {step} bytes");
        }
    }

    #[test]
    fn a_chunks_bytes_are_one_binary_message_after_its_line() {
        let bytes = server::encode(b"{\"type\":\"chunk\",\"len\":5}\nab\ncd");
        for step in [1, 3, bytes.len()] {
            assert_eq!(
                deframe(&bytes, step),
                vec![
                    owned("text", b"{\"type\":\"chunk\",\"len\":5}"),
                    owned("text end", b""),
                    owned("binary", b"ab\ncd"),
                    owned("binary end", b""),
                ]
            );
        }
    }

    #[test]
    fn fragments_pings_and_a_close() {
        let frame = |opcode, last, payload: &[u8]| {
            let mut out = Vec::new();
            FrameHeader {
                is_final: last,
                opcode,
                ..FrameHeader::default()
            }
            .format(payload.len() as u64, &mut out)
            .unwrap();
            out.extend_from_slice(payload);
            out
        };
        let mut bytes = frame(OpCode::Data(Data::Text), false, b"{\"a\":");
        bytes.extend(frame(OpCode::Control(Control::Ping), true, b"hi"));
        bytes.extend(frame(OpCode::Data(Data::Continue), true, b"1}"));
        bytes.extend(server::close(server::Code::Normal, "bye"));
        for step in [1, bytes.len()] {
            assert_eq!(
                deframe(&bytes, step),
                vec![
                    owned("text", b"{\"a\":"),
                    owned("ping", b"hi"),
                    owned("text", b"1}"),
                    owned("text end", b""),
                    owned("close", b""),
                ]
            );
        }
    }

    #[test]
    fn frames_no_server_may_send_are_errors() {
        let mut masked = Vec::new();
        encode(&mut masked, b"{}", &mut Masks::new(1));
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("masked", masked),
            ("reserved opcode", vec![0x83, 0]),
            ("reserved bit", vec![0xc1, 0]),
            ("continuation of nothing", vec![0x80, 0]),
            ("long ping", {
                let mut v = vec![0x89, 126, 0, 200];
                v.extend([0; 200]);
                v
            }),
        ];
        for (what, bytes) in cases {
            let result = Deframer::default().feed(&bytes, |_| {});
            assert!(result.is_err(), "{what} was accepted");
        }
    }

    #[test]
    fn the_upgrade_checks_the_101() {
        let addr: SocketAddr = "127.0.0.1:50445".parse().unwrap();
        let mut request = Vec::new();
        let mut client = Client::start(&mut request, addr, 1);
        let text = String::from_utf8(request).unwrap();
        assert!(text.starts_with("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:50445\r\n"));
        let key = text
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap();
        let head = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            derive_accept_key(key.as_bytes())
        );
        let mut response = head.clone().into_bytes();
        response.extend_from_slice(b"\x81\x02{}");
        let (first, second) = response.split_at(40);
        assert!(matches!(client.upgrade(first).unwrap(), Upgraded::Pending));
        match client.upgrade(second).unwrap() {
            Upgraded::Open { rest } => assert_eq!(rest, b"\x81\x02{}"),
            Upgraded::Pending => panic!("the head was complete"),
        }
        assert!(client.is_open());

        let mut wrong = Client::start(&mut Vec::new(), addr, 2);
        let bad_key = head.replace(&derive_accept_key(key.as_bytes()), "AAAA");
        assert!(wrong.upgrade(bad_key.as_bytes()).is_err());
        let mut refused = Client::start(&mut Vec::new(), addr, 3);
        let err = refused
            .upgrade(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            .unwrap_err();
        assert!(err.to_string().contains("403"), "{err}");
    }
}
