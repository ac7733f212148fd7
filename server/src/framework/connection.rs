//! One client connection as a worker sees it: the stream, the handler's
//! driver, and a bounded queue of frames waiting to be written.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::ops::{Deref, Range};
use std::rc::Rc;
use std::time::Instant;

use chat_common::{Connection, Driver, Frame, RequestHandler};

use super::tls::Stream;
use super::web::{http, ws, Site, Speech, Wire};

/// Most bytes of small frames copied together for one write (and one TLS
/// record).
const BATCH_BYTES: usize = 16 * 1024;

/// Frames this large are written from the queue, never copied.
const DIRECT: usize = 4 * 1024;

/// Most reads of one connection in a row: a peer that sends without pause
/// (blank lines, empty WebSocket messages) must not keep its worker from
/// the others' connections.
const READS_PER_TURN: usize = 4;

/// A write buffer larger than this is freed when the queue empties, so that
/// an idle connection costs little.
const KEEP_STAGED: usize = 4 * 1024;

/// A frame waiting in a connection's queue.
enum Queued {
    /// From the dispatcher or the handler (shared between threads).
    Frame(Frame),
    /// The worker's own copy of a broadcast, shared by its recipients on
    /// this worker with a plain reference count. With the dispatcher's
    /// `Arc`, every recipient's clone and drop was an atomic operation on
    /// one counter: two thirds of the worker's user time in the fan-out
    /// profile.
    Local(Rc<[u8]>),
    /// Part of a shared frame: a WebSocket message's payload within it.
    FramePart(Frame, Range<usize>),
    LocalPart(Rc<[u8]>, Range<usize>),
    /// A WebSocket message header, the one part a recipient has alone.
    Header(ws::Header),
    /// Bytes of the connection's own: an HTTP response, a control frame.
    Owned(Vec<u8>),
}

impl Deref for Queued {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Queued::Frame(frame) => frame,
            Queued::Local(frame) => frame,
            Queued::FramePart(frame, range) => &frame[range.clone()],
            Queued::LocalPart(frame, range) => &frame[range.clone()],
            Queued::Header(header) => header.as_bytes(),
            Queued::Owned(bytes) => bytes,
        }
    }
}

/// The write side of a connection, and the handle a handler answers on.
pub struct Outbox {
    peer: SocketAddr,
    queue: VecDeque<Queued>,
    /// Bytes of the front frame already written.
    written: usize,
    /// Bytes queued and not yet written (including `staged`).
    queued: usize,
    limit: usize,
    /// TLS only: frames copied into one buffer so each write is one record.
    staged: Vec<u8>,
    staged_written: usize,
    /// Set by `close`: write what is queued, then close, for this reason.
    closing: Option<String>,
    /// Set when a frame did not fit within `limit`.
    overflowed: bool,
    /// How the application's frames go out.
    encoding: Encoding,
}

/// How the application's frames are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// As they are: lines.
    Lines,
    /// Not at all, while an HTTP request is read and answered: a chat
    /// frame (the login deadline's) must not land in an HTTP response.
    Http,
    /// As WebSocket messages, after an upgrade.
    WebSocket,
    /// Not at all: the WebSocket's close frame is queued.
    Closed,
}

impl Outbox {
    fn new(peer: SocketAddr, limit: usize) -> Self {
        Outbox {
            peer,
            queue: VecDeque::new(),
            written: 0,
            queued: 0,
            limit,
            staged: Vec::new(),
            staged_written: 0,
            closing: None,
            overflowed: false,
            encoding: Encoding::Lines,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// A frame did not fit: the connection is to be dropped.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Writes as much as the socket takes. `Ok` with data left means the
    /// socket is full; a writable event will bring us back.
    ///
    /// Small frames are copied into one buffer and written with one plain
    /// `write`: a `writev` of 64 frames of ~150 bytes cost the kernel more
    /// per segment than the copy costs here (fan-out 8.3-8.6M -> 9.6-10.2M
    /// deliveries/s, with less CPU). Large frames (file chunks) and a lone
    /// frame are written straight from the queue. Under TLS every write
    /// goes through the buffer, so that each is one record and a write that
    /// would block is retried with the same bytes.
    fn flush_to(&mut self, stream: &mut Stream) -> io::Result<()> {
        let tls = stream.wants_coalesced_writes();
        loop {
            if self.staged_written == self.staged.len() {
                self.staged.clear();
                self.staged_written = 0;
                let Some(front) = self.queue.front() else {
                    // Idle again: a buffer a burst left behind is let go.
                    if self.staged.capacity() > KEEP_STAGED {
                        self.staged = Vec::new();
                    }
                    return Ok(());
                };
                let left = front.len() - self.written;
                if !tls && (left >= DIRECT || self.queue.len() == 1) {
                    if !self.write_front(stream)? {
                        return Ok(()); // the socket is full
                    }
                    continue;
                }
                self.stage();
            }
            match stream.write(&self.staged[self.staged_written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.staged_written += n;
                    self.queued -= n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves frames from the queue into `staged`, up to [`BATCH_BYTES`]
    /// (at least one frame), stopping before a frame to be written directly.
    fn stage(&mut self) {
        while let Some(frame) = self.queue.front() {
            let rest = &frame[self.written..];
            if !self.staged.is_empty()
                && (self.staged.len() + rest.len() > BATCH_BYTES || rest.len() >= DIRECT)
            {
                break;
            }
            self.staged.extend_from_slice(rest);
            self.written = 0;
            self.queue.pop_front();
        }
    }

    /// Writes the front frame's unwritten bytes straight from the queue:
    /// `true` once it is all written, `false` if the socket is full.
    fn write_front(&mut self, stream: &mut Stream) -> io::Result<bool> {
        let Some(front) = self.queue.front() else {
            return Ok(true);
        };
        while self.written < front.len() {
            match stream.write(&front[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.written += n;
                    self.queued -= n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.written = 0;
        self.queue.pop_front();
        Ok(true)
    }

    /// Queues bytes exactly as they are to go out (an HTTP response, a
    /// WebSocket control frame).
    fn push_raw(&mut self, bytes: Vec<u8>) {
        self.push(Queued::Owned(bytes));
    }

    /// Queues a WebSocket close frame, the last frame the peer gets.
    fn close_websocket(&mut self, code: ws::Code, reason: &str) {
        if self.encoding == Encoding::WebSocket {
            self.push_raw(ws::close(code, reason));
        }
        self.encoding = Encoding::Closed;
    }

    /// Queues one of the application's frames, as a WebSocket message
    /// after an upgrade.
    fn push_frame(&mut self, frame: Queued) {
        match self.encoding {
            Encoding::Lines => self.push(frame),
            Encoding::WebSocket => {
                // Shared bytes stay shared: a recipient's own are the
                // headers (a copy of the frame per recipient was a third
                // of the server's CPU in a half-WebSocket fan-out).
                let messages: Vec<_> = ws::messages(&frame).collect();
                let total = messages
                    .iter()
                    .map(|(header, range)| header.as_bytes().len() + range.len())
                    .sum();
                if !self.admits(total) {
                    return;
                }
                for (header, range) in messages {
                    self.enqueue(Queued::Header(header));
                    self.enqueue(match &frame {
                        Queued::Frame(shared) => Queued::FramePart(shared.clone(), range),
                        Queued::Local(shared) => Queued::LocalPart(shared.clone(), range),
                        other => Queued::Owned(other[range].to_vec()),
                    });
                }
            }
            Encoding::Http | Encoding::Closed => {}
        }
    }

    /// Queues a frame unless that would overflow the limit.
    fn push(&mut self, frame: Queued) {
        if self.admits(frame.len()) {
            self.enqueue(frame);
        }
    }

    /// Whether `len` more bytes may be queued; marks the connection for
    /// dropping if not.
    fn admits(&mut self, len: usize) -> bool {
        // Once the queue has overflowed the connection is being dropped.
        if self.overflowed {
            return false;
        }
        // The limit bounds a backlog, not one answer: a frame larger than
        // the limit (the `online` list of a huge room) is accepted into an
        // empty queue, so asking for it never gets the asker dropped.
        if self.queued > 0 && self.queued + len > self.limit {
            self.overflowed = true;
            return false;
        }
        true
    }

    fn enqueue(&mut self, frame: Queued) {
        self.queued += frame.len();
        self.queue.push_back(frame);
    }
}

impl Connection for Outbox {
    fn send(&mut self, frame: Frame) {
        self.push_frame(Queued::Frame(frame));
    }

    fn close(&mut self, reason: &str) {
        if self.encoding == Encoding::WebSocket {
            // A browser shows a clean close, not a dropped connection.
            self.close_websocket(ws::Code::Normal, reason);
        }
        self.closing.get_or_insert_with(|| reason.to_string());
    }

    fn is_closing(&self) -> bool {
        self.closing.is_some() || self.overflowed
    }

    fn peer_addr(&self) -> SocketAddr {
        self.peer
    }
}

/// What a read or write turned up.
pub enum Status {
    /// Still open.
    Open,
    /// Done: close it, for this reason.
    Closed(String),
}

/// A connection owned by one worker.
pub struct Conn<H: RequestHandler> {
    pub stream: Stream,
    pub outbox: Outbox,
    /// Created when the stream is ready (after any TLS handshake).
    driver: Option<Driver<H>>,
    /// Lines, or HTTP and a WebSocket (see [`super::web`]).
    wire: Wire,
    site: Option<&'static Site>,
    /// Holds the handler until the stream is ready.
    pending: Option<H>,
    max_frame: usize,
    pub accepted: Instant,
    /// When `close` was first seen, to bound the time spent flushing.
    pub closing_since: Option<Instant>,
    /// Whether broadcasts reach this connection.
    pub subscribed: bool,
    /// The peer closed its side: nothing more to read, but answers may
    /// still be on their way to it.
    pub read_closed: bool,
    /// Since when frames have waited without the socket taking a byte: a
    /// peer that stops reading is cut after `Limits::stall_timeout`, even
    /// if too little is queued to reach the queue limit.
    pub stalled_since: Option<Instant>,
    /// The last `read` stopped at its budget with bytes left in the socket
    /// (whose readiness event was used up): read again this turn.
    pub more_to_read: bool,
}

impl<H: RequestHandler> Conn<H> {
    pub fn new(
        stream: Stream,
        peer: SocketAddr,
        handler: H,
        (max_frame, queue_limit): (usize, usize),
        site: Option<&'static Site>,
        speech: Speech,
    ) -> Self {
        let speech = if site.is_some() {
            speech
        } else {
            Speech::Lines
        };
        let mut outbox = Outbox::new(peer, queue_limit);
        if speech == Speech::Http {
            outbox.encoding = Encoding::Http;
        }
        Conn {
            stream,
            outbox,
            driver: None,
            wire: Wire::new(speech),
            site,
            pending: Some(handler),
            max_frame,
            accepted: Instant::now(),
            closing_since: None,
            subscribed: false,
            read_closed: false,
            stalled_since: None,
            more_to_read: false,
        }
    }

    /// Whether the handler has been set up: the TLS handshake is done, and
    /// what comes is read.
    pub fn is_set_up(&self) -> bool {
        self.driver.is_some()
    }

    /// Whether it is set up and not in the middle of an HTTP request head:
    /// until then it is held to the handshake's deadline.
    pub fn is_ready(&self) -> bool {
        self.is_set_up() && !self.wire.is_settling()
    }

    /// Drives the handshake; once the stream is ready, sets up the handler.
    pub fn advance_handshake(&mut self) -> io::Result<()> {
        if self.driver.is_none() && self.stream.handshake()? {
            let mut driver = Driver::new(self.pending.take().expect("handler"), self.max_frame);
            driver.setup(&mut self.outbox);
            self.driver = Some(driver);
        }
        Ok(())
    }

    /// Until when the handler asked not to be given requests (flood
    /// control): nothing is read meanwhile, so TCP pushes back on the peer.
    pub fn paused_until(&self) -> Option<Instant> {
        self.driver.as_ref().and_then(Driver::paused_until)
    }

    /// Ends a pause: the handler gets what it held back. Reading goes on at
    /// the next `read`.
    pub fn resume(&mut self) {
        if let Some(driver) = self.driver.as_mut() {
            driver.resume(&mut self.outbox);
        }
    }

    /// Reads until the socket is drained, or [`READS_PER_TURN`] reads, then
    /// sets `more_to_read` so that the worker comes back after the others.
    pub fn read(&mut self, buf: &mut [u8]) -> Status {
        self.more_to_read = false;
        if self.driver.is_none() {
            return Status::Open;
        }
        for _ in 0..READS_PER_TURN {
            let paused = self
                .driver
                .as_ref()
                .is_some_and(|d| d.paused_until().is_some());
            if self.outbox.is_closing() || self.read_closed || paused {
                return Status::Open;
            }
            // A WebSocket's messages already read go first.
            self.take(&[]);
            if self.outbox.is_closing() || self.paused_until().is_some() {
                return Status::Open;
            }
            match self.stream.read(buf) {
                Ok(0) => {
                    self.read_closed = true;
                    if let Some(driver) = self.driver.as_mut() {
                        driver.eof(&mut self.outbox);
                    }
                    return Status::Open;
                }
                Ok(n) => self.take(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Status::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Status::Closed("connection lost".into()),
            }
        }
        self.more_to_read = true;
        Status::Open
    }

    /// Hands bytes read from the socket to whatever the connection speaks.
    fn take(&mut self, mut bytes: &[u8]) {
        let Some(driver) = self.driver.as_mut() else {
            return;
        };
        let outbox = &mut self.outbox;
        loop {
            match &mut self.wire {
                Wire::Lines => return driver.feed(bytes, outbox),
                Wire::Undecided(first) => {
                    first.extend_from_slice(bytes);
                    match http::looks_like_http(first) {
                        None => return,
                        Some(true) => {
                            self.wire = Wire::Head(std::mem::take(first));
                            outbox.encoding = Encoding::Http;
                        }
                        Some(false) => {
                            let first = std::mem::take(first);
                            self.wire = Wire::Lines;
                            return driver.feed(&first, outbox);
                        }
                    }
                    bytes = &[];
                }
                Wire::Head(head) => {
                    head.extend_from_slice(bytes);
                    outbox.encoding = Encoding::Http;
                    // A head ends with a line: parse again only when one
                    // may have ended (a trickled head costs one scan a line).
                    if !bytes.is_empty() && !bytes.contains(&b'\n') {
                        return;
                    }
                    let site = self.site.expect("HTTP is spoken only with a site");
                    match http::answer(head, site, self.stream.is_tls()) {
                        http::Answer::Incomplete => return,
                        http::Answer::Respond(response) => {
                            outbox.push_raw(response);
                            outbox.close("HTTP request answered");
                            self.wire = Wire::Answered;
                            return;
                        }
                        http::Answer::Upgrade { response, rest } => {
                            outbox.push_raw(response);
                            outbox.encoding = Encoding::WebSocket;
                            let limit =
                                self.max_frame.max(chat_common::payload::MAX_PAYLOAD) + 1024;
                            self.wire = Wire::Socket(Box::new(ws::Socket::new(rest, limit)));
                        }
                    }
                    bytes = &[];
                }
                Wire::Socket(socket) => {
                    socket.feed(bytes);
                    return pump(socket, driver, outbox);
                }
                Wire::Answered => return,
            }
        }
    }

    /// Queues a frame from outside the handler (the dispatcher).
    pub fn send(&mut self, frame: Frame) {
        self.outbox.send(frame);
    }

    /// Queues the worker's copy of a broadcast frame.
    pub fn send_local(&mut self, frame: Rc<[u8]>) {
        self.outbox.push_frame(Queued::Local(frame));
    }

    /// Writes what is queued; reports whether the connection should end now.
    pub fn flush(&mut self) -> Status {
        if self.outbox.overflowed {
            return Status::Closed(super::SLOW_CONSUMER.into());
        }
        if !self.stream.is_ready() {
            return Status::Open;
        }
        let before = self.outbox.queued;
        if self.outbox.flush_to(&mut self.stream).is_err() {
            return Status::Closed("connection lost".into());
        }
        self.stalled_since = match self.outbox.queued {
            0 => None,
            // Some bytes went: the clock starts again.
            left if left < before => Some(Instant::now()),
            _ => self.stalled_since.or_else(|| Some(Instant::now())),
        };
        if let Some(reason) = self
            .outbox
            .closing
            .as_ref()
            .filter(|_| self.outbox.is_empty())
        {
            return Status::Closed(reason.clone());
        }
        Status::Open
    }

    /// Tells the handler the connection is over (only if it was set up).
    pub fn finish(&mut self, reason: &str) {
        if let Some(driver) = self.driver.as_mut() {
            driver.finish(reason);
        }
    }
}

/// Hands a WebSocket's complete messages to the driver: a text message is
/// a line, a binary message the raw bytes of the chunk before it. A peer
/// that mixes them up (bytes with no chunk, a line inside a chunk's bytes)
/// would have the codec read one as the other, so the WebSocket is closed.
fn pump<H: RequestHandler>(socket: &mut ws::Socket, driver: &mut Driver<H>, outbox: &mut Outbox) {
    while !outbox.is_closing() && driver.paused_until().is_none() {
        let broken = match socket.next_message() {
            Ok(None) => break,
            Ok(Some(ws::Incoming::Line(mut line))) if driver.payload_wanted() == 0 => {
                line.push(b'\n');
                driver.feed(&line, outbox);
                None
            }
            Ok(Some(ws::Incoming::Line(_))) => Some("a text message inside a chunk's bytes"),
            Ok(Some(ws::Incoming::Bytes(bytes))) if bytes.len() > driver.payload_wanted() => {
                Some(if driver.payload_wanted() == 0 {
                    "a binary message with no chunk before it"
                } else {
                    "a binary message longer than its chunk"
                })
            }
            Ok(Some(ws::Incoming::Bytes(bytes))) => {
                driver.feed(&bytes, outbox);
                None
            }
            Ok(Some(ws::Incoming::Closed)) => {
                // tungstenite wrote the close reply: no second close frame.
                if let Some(reply) = socket.take_output() {
                    outbox.push_raw(reply);
                }
                outbox.encoding = Encoding::Closed;
                outbox.close("connection closed");
                return;
            }
            Err(ws::Violation(why)) => {
                outbox.close_websocket(ws::Code::Protocol, &why);
                outbox.close("WebSocket protocol error");
                return;
            }
        };
        if let Some(why) = broken {
            outbox.close_websocket(ws::Code::Policy, why);
            outbox.close("WebSocket protocol error");
            return;
        }
    }
    // Pongs, unless the close frame is already queued.
    if let Some(pong) = socket.take_output() {
        if outbox.encoding == Encoding::WebSocket {
            outbox.push_raw(pong);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> Frame {
        vec![b'x'; len].into()
    }

    #[test]
    fn the_limit_bounds_the_backlog_not_one_frame() {
        let mut outbox = Outbox::new("127.0.0.1:1".parse().unwrap(), 100);
        outbox.send(frame(60));
        outbox.send(frame(40));
        assert!(!outbox.overflowed(), "exactly at the limit");
        outbox.send(frame(1));
        assert!(outbox.overflowed(), "one byte over a backlog");

        let mut outbox = Outbox::new("127.0.0.1:1".parse().unwrap(), 100);
        outbox.send(frame(500));
        assert!(!outbox.overflowed(), "a large answer into an empty queue");
        outbox.send(frame(1));
        assert!(outbox.overflowed(), "but nothing may pile up behind it");
    }

    /// Small frames go out coalesced, large ones and lone ones straight from
    /// the queue; whatever the socket takes at a time (a tiny send buffer,
    /// a slow reader), the peer reads every byte once, in order.
    #[test]
    fn every_byte_arrives_once_in_order_whatever_the_socket_takes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        peer.set_recv_buffer_size(4096).unwrap();
        peer.connect(&listener.local_addr().unwrap().into())
            .unwrap();
        let mut peer = std::net::TcpStream::from(peer);
        let (ours, addr) = listener.accept().unwrap();
        socket2::SockRef::from(&ours)
            .set_send_buffer_size(4096)
            .unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut stream = Stream::new(mio::net::TcpStream::from_std(ours), None).unwrap();
        let mut outbox = Outbox::new(addr, usize::MAX);
        // Lone small, many small, large among small, large at the front.
        let sizes = [
            100, 150, 150, 150, 9_000, 150, 70_000, 10, 4_100, 300, 5_000, 5,
        ];
        let mut expected = Vec::new();
        for (i, &len) in sizes.iter().cycle().take(400).enumerate() {
            let bytes: Vec<u8> = (0..len).map(|k| (i * 31 + k) as u8).collect();
            expected.extend_from_slice(&bytes);
            outbox.send(bytes.into());
        }
        let mut got = Vec::new();
        let mut buf = vec![0; 1_000];
        peer.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        while got.len() < expected.len() {
            outbox.flush_to(&mut stream).unwrap();
            let n = peer.read(&mut buf).unwrap();
            assert!(n > 0, "the peer saw the end after {} bytes", got.len());
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got == expected, "the bytes differ");
        outbox.flush_to(&mut stream).unwrap();
        assert!(outbox.is_empty());
        assert!(outbox.staged.capacity() <= KEEP_STAGED, "the buffer let go");
    }
}
