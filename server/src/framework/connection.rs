//! One client connection as a worker sees it: the stream, the handler's
//! driver, and a bounded queue of frames waiting to be written.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::ops::Deref;
use std::rc::Rc;
use std::time::Instant;

use chat_common::{Connection, Driver, Frame, RequestHandler};

use super::tls::Stream;

/// Most bytes of small frames copied together for one write (and one TLS
/// record).
const BATCH_BYTES: usize = 16 * 1024;

/// Frames this large are written from the queue, never copied.
const DIRECT: usize = 4 * 1024;

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
}

impl Deref for Queued {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Queued::Frame(frame) => frame,
            Queued::Local(frame) => frame,
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

    /// Queues a frame unless that would overflow the limit.
    fn push(&mut self, frame: Queued) {
        // Once the queue has overflowed the connection is being dropped.
        if self.overflowed {
            return;
        }
        // The limit bounds a backlog, not one answer: a frame larger than
        // the limit (the `online` list of a huge room) is accepted into an
        // empty queue, so asking for it never gets the asker dropped.
        if self.queued > 0 && self.queued + frame.len() > self.limit {
            self.overflowed = true;
            return;
        }
        self.queued += frame.len();
        self.queue.push_back(frame);
    }
}

impl Connection for Outbox {
    fn send(&mut self, frame: Frame) {
        self.push(Queued::Frame(frame));
    }

    fn close(&mut self, reason: &str) {
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
}

impl<H: RequestHandler> Conn<H> {
    pub fn new(
        stream: Stream,
        peer: SocketAddr,
        handler: H,
        max_frame: usize,
        queue_limit: usize,
    ) -> Self {
        Conn {
            stream,
            outbox: Outbox::new(peer, queue_limit),
            driver: None,
            pending: Some(handler),
            max_frame,
            accepted: Instant::now(),
            closing_since: None,
            subscribed: false,
            read_closed: false,
            stalled_since: None,
        }
    }

    /// Whether the handler has been set up (the TLS handshake is done).
    pub fn is_ready(&self) -> bool {
        self.driver.is_some()
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

    /// Reads until the socket is drained, handing lines to the handler.
    pub fn read(&mut self, buf: &mut [u8]) -> Status {
        let Some(driver) = self.driver.as_mut() else {
            return Status::Open;
        };
        loop {
            if self.outbox.is_closing() || self.read_closed || driver.paused_until().is_some() {
                return Status::Open;
            }
            match self.stream.read(buf) {
                Ok(0) => {
                    self.read_closed = true;
                    driver.eof(&mut self.outbox);
                    return Status::Open;
                }
                Ok(n) => driver.feed(&buf[..n], &mut self.outbox),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Status::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Status::Closed("connection lost".into()),
            }
        }
    }

    /// Queues a frame from outside the handler (the dispatcher).
    pub fn send(&mut self, frame: Frame) {
        self.outbox.send(frame);
    }

    /// Queues the worker's copy of a broadcast frame.
    pub fn send_local(&mut self, frame: Rc<[u8]>) {
        self.outbox.push(Queued::Local(frame));
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
