//! The per-connection handler, modelled on Python's
//! `socketserver.BaseRequestHandler`, and the driver that feeds it.
//!
//! The framework owns the socket and calls the hooks; a handler only sees
//! decoded requests and a [`Connection`] to answer on. Because a worker
//! thread multiplexes many connections, `handle` is called once per request
//! rather than once per connection as in Python.
//!
//! For the framework (the caller): [`Driver::setup`], [`Driver::feed`] with
//! each chunk read from the socket, and [`Driver::finish`] once, whatever
//! happened (like a `finally`).
//!
//! May be overridden (the handler): `setup`, `ready_at` (hold a request
//! until it is due: flood control), `handle`, `handle_error`, `handle_eof`
//! (the peer stopped sending) and `finish`.

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::time::Instant;

use serde::de::DeserializeOwned;

use crate::codec::{self, Frame, FrameError, FrameReader};
use crate::payload::Payload;
use crate::protocol::{ErrorCode, ServerFrame};

/// What a handler can do to its connection. Implemented by the framework.
pub trait Connection {
    /// Queues an encoded frame for the peer.
    fn send(&mut self, frame: Frame);
    /// Closes the connection once everything queued has been written; no
    /// further requests are read. `reason` reaches the handler's `finish`.
    fn close(&mut self, reason: &str);
    /// Whether `close` has been called.
    fn is_closing(&self) -> bool;
    /// The peer's address.
    fn peer_addr(&self) -> SocketAddr;
}

/// One connection's request handler.
pub trait RequestHandler {
    /// The frame type the peer sends.
    type Request: DeserializeOwned + Payload;

    /// Called once, when the connection is ready (after the TLS handshake).
    fn setup(&mut self, _conn: &mut dyn Connection) {}

    /// Called before `handle` with each request. A handler that limits its
    /// peer's rate returns when the request may be handled: the driver holds
    /// it and everything after it, and the framework reads nothing more from
    /// the peer until then (so TCP slows the peer down) and calls
    /// [`Driver::resume`]. A handler may also `close` here instead.
    fn ready_at(
        &mut self,
        _request: &Self::Request,
        _conn: &mut dyn Connection,
    ) -> Option<Instant> {
        None
    }

    /// Called for each request, in order.
    fn handle(&mut self, request: Self::Request, conn: &mut dyn Connection);

    /// Called for a line that is not a valid request. By default answers with
    /// an error frame; a frame over the size limit also closes the connection.
    fn handle_error(&mut self, error: FrameError, conn: &mut dyn Connection) {
        let fatal = error.code == ErrorCode::TooLarge;
        let reason = if fatal { "frame too large" } else { "" };
        conn.send(codec::encode(&ServerFrame::Error {
            id: error.id,
            code: error.code,
            reason: error.reason,
        }));
        if fatal {
            conn.close(reason);
        }
    }

    /// Called when the peer will send nothing more (it closed its side; it
    /// may still be reading). By default the connection closes once what is
    /// queued is written; a handler whose answers come later, from another
    /// thread, closes it itself once they are queued.
    fn handle_eof(&mut self, conn: &mut dyn Connection) {
        conn.close("connection closed");
    }

    /// Called exactly once when the connection ends, with why it ended.
    fn finish(&mut self, _reason: &str) {}
}

/// Feeds bytes from the socket through the line codec into a handler, and
/// guarantees `finish` is called exactly once.
pub struct Driver<H: RequestHandler> {
    reader: FrameReader<H::Request>,
    handler: H,
    finished: bool,
    /// A request the handler is not ready for yet (see `ready_at`)...
    held: Option<H::Request>,
    /// ...the time it will be,...
    paused_until: Option<Instant>,
    /// ...and the bytes read after it (at most one read's worth).
    unread: Vec<u8>,
}

impl<H: RequestHandler> Driver<H> {
    pub fn new(handler: H, max_frame: usize) -> Self {
        Driver {
            reader: FrameReader::new(max_frame),
            handler,
            finished: false,
            held: None,
            paused_until: None,
            unread: Vec::new(),
        }
    }

    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// Bytes held back: an unfinished line (never more than the limit) or
    /// payload (never more than `MAX_PAYLOAD`) and, while paused, what was
    /// read after the held request.
    pub fn buffered(&self) -> usize {
        self.reader.buffered() + self.unread.len()
    }

    /// How many bytes of a chunk's payload the bytes fed so far leave to
    /// come (0 between frames). A transport with its own message
    /// boundaries (WebSocket) checks that payloads and lines arrive in the
    /// messages meant for them.
    pub fn payload_wanted(&self) -> usize {
        self.reader.payload_wanted()
    }

    /// While `Some`, the handler is not ready for the next request: read
    /// nothing from the peer, and call [`resume`](Self::resume) at that time.
    pub fn paused_until(&self) -> Option<Instant> {
        self.paused_until
    }

    pub fn setup(&mut self, conn: &mut dyn Connection) {
        self.handler.setup(conn);
    }

    /// Decodes every complete frame in `bytes` and hands it to the handler.
    /// Stops early once the connection is closing. Empty lines are ignored,
    /// so a person typing into `nc` may press Enter freely.
    pub fn feed(&mut self, bytes: &[u8], conn: &mut dyn Connection) {
        if conn.is_closing() {
            return;
        }
        if self.paused_until.is_some() {
            // The framework should not have read: keep the bytes in order.
            self.unread.extend_from_slice(bytes);
            return;
        }
        let Driver {
            reader,
            handler,
            held,
            paused_until,
            ..
        } = self;
        let result = reader.feed_until(bytes, |_line, decoded| {
            match decoded {
                Ok(request) => {
                    let wait = handler.ready_at(&request, conn);
                    if conn.is_closing() {
                        return ControlFlow::Break(());
                    }
                    match wait {
                        Some(at) => {
                            *held = Some(request);
                            *paused_until = Some(at);
                            return ControlFlow::Break(());
                        }
                        None => handler.handle(request, conn),
                    }
                }
                Err(error) => handler.handle_error(error, conn),
            }
            if conn.is_closing() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        match result {
            Ok(ControlFlow::Break(used)) if self.paused_until.is_some() => {
                self.unread.extend_from_slice(&bytes[used..]);
            }
            Ok(_) => {}
            Err(too_large) => {
                self.handler.handle_error(
                    FrameError {
                        id: None,
                        code: ErrorCode::TooLarge,
                        reason: too_large.to_string(),
                    },
                    conn,
                );
                // The rest of the line was never buffered, so the stream cannot
                // be read on: close even if the handler's `handle_error` did not.
                if !conn.is_closing() {
                    conn.close("frame too large");
                }
            }
        }
    }

    /// The pause is over: offers the held request again, then goes on with
    /// what was read after it (which may pause again).
    pub fn resume(&mut self, conn: &mut dyn Connection) {
        let Some(request) = self.held.take() else {
            self.paused_until = None;
            return;
        };
        self.paused_until = None;
        if conn.is_closing() {
            return;
        }
        let wait = self.handler.ready_at(&request, conn);
        if conn.is_closing() {
            return;
        }
        if let Some(at) = wait {
            self.held = Some(request);
            self.paused_until = Some(at);
            return;
        }
        self.handler.handle(request, conn);
        let unread = std::mem::take(&mut self.unread);
        self.feed(&unread, conn);
    }

    /// The peer closed its side: no more bytes will come.
    pub fn eof(&mut self, conn: &mut dyn Connection) {
        self.handler.handle_eof(conn);
    }

    /// Ends the connection's life for the handler; later calls do nothing.
    pub fn finish(&mut self, reason: &str) {
        if !self.finished {
            self.finished = true;
            self.handler.finish(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Request;

    #[derive(Default)]
    struct Recorder {
        sent: Vec<String>,
        closing: bool,
    }

    impl Connection for Recorder {
        fn send(&mut self, frame: Frame) {
            self.sent.push(String::from_utf8(frame.to_vec()).unwrap());
        }
        fn close(&mut self, _reason: &str) {
            self.closing = true;
        }
        fn is_closing(&self) -> bool {
            self.closing
        }
        fn peer_addr(&self) -> SocketAddr {
            "127.0.0.1:1".parse().unwrap()
        }
    }

    #[derive(Default)]
    struct Echo {
        requests: Vec<Request>,
        finished: Vec<String>,
    }

    impl RequestHandler for Echo {
        type Request = Request;
        fn handle(&mut self, request: Request, conn: &mut dyn Connection) {
            if matches!(request, Request::Bye { .. }) {
                conn.close("quit");
            }
            self.requests.push(request);
        }
        fn finish(&mut self, reason: &str) {
            self.finished.push(reason.to_string());
        }
    }

    #[test]
    fn requests_errors_and_close() {
        let mut conn = Recorder::default();
        let mut driver = Driver::new(Echo::default(), 128);
        driver.feed(b"{\"type\":\"ping\",\"id\":1}\n\nnot json\n  \n", &mut conn);
        driver.feed(
            b"{\"type\":\"bye\",\"id\":2}\n{\"type\":\"ping\",\"id\":3}\n",
            &mut conn,
        );
        assert_eq!(
            driver.handler().requests,
            [Request::Ping { id: 1 }, Request::Bye { id: 2 }]
        );
        assert_eq!(conn.sent.len(), 1);
        assert!(conn.sent[0].contains("\"code\":\"bad_json\""));
        driver.finish("quit");
        driver.finish("again");
        assert_eq!(driver.handler().finished, ["quit"]);
    }

    /// A handler whose `handle_error` neither answers nor closes.
    #[derive(Default)]
    struct Quiet(Echo, Vec<ErrorCode>);

    impl RequestHandler for Quiet {
        type Request = Request;
        fn handle(&mut self, request: Request, conn: &mut dyn Connection) {
            self.0.handle(request, conn);
        }
        fn handle_error(&mut self, error: FrameError, _conn: &mut dyn Connection) {
            self.1.push(error.code);
        }
    }

    #[test]
    fn oversized_frame_closes_even_when_the_handler_does_not() {
        let mut conn = Recorder::default();
        let mut driver = Driver::new(Quiet::default(), 16);
        driver.feed(b"{\"type\":\"ping\",", &mut conn);
        driver.feed(&[b' '; 100], &mut conn);
        assert!(conn.closing);
        assert_eq!(driver.buffered(), 0);
        conn.closing = false; // a framework that went on reading anyway
        driver.feed(b"\"id\":1}\n{\"type\":\"ping\",\"id\":2}\n", &mut conn);
        assert_eq!(driver.handler().1, [ErrorCode::TooLarge]);
        assert!(driver.handler().0.requests.is_empty());
    }

    #[test]
    fn oversized_frame_is_an_error_then_close() {
        let mut conn = Recorder::default();
        let mut driver = Driver::new(Echo::default(), 16);
        driver.feed(&[b'x'; 100], &mut conn);
        assert!(conn.closing);
        assert!(conn.sent[0].contains("\"code\":\"too_large\""));
    }

    /// Lets `tokens` requests through, then asks to wait until refilled.
    struct Rationed {
        echo: Echo,
        tokens: usize,
        refill_at: Instant,
        asked: usize,
    }

    impl RequestHandler for Rationed {
        type Request = Request;
        fn ready_at(&mut self, _request: &Request, _conn: &mut dyn Connection) -> Option<Instant> {
            self.asked += 1;
            if self.tokens == 0 {
                return Some(self.refill_at);
            }
            self.tokens -= 1;
            None
        }
        fn handle(&mut self, request: Request, conn: &mut dyn Connection) {
            self.echo.handle(request, conn);
        }
    }

    fn pings(ids: std::ops::Range<u64>) -> Vec<u8> {
        ids.flat_map(|id| format!("{{\"type\":\"ping\",\"id\":{id}}}\n").into_bytes())
            .collect()
    }

    fn ids(driver: &Driver<Rationed>) -> Vec<u64> {
        let requests = &driver.handler().echo.requests;
        requests
            .iter()
            .map(|r| match r {
                Request::Ping { id } => *id,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_handler_that_is_not_ready_pauses_the_stream_in_order() {
        let mut conn = Recorder::default();
        let at = Instant::now();
        let rationed = Rationed {
            echo: Echo::default(),
            tokens: 2,
            refill_at: at,
            asked: 0,
        };
        let mut driver = Driver::new(rationed, 128);
        let mut bytes = pings(1..6);
        bytes.extend_from_slice(b"{\"type\":\"pi"); // and half a line
        driver.feed(&bytes, &mut conn);
        assert_eq!(ids(&driver), [1, 2]);
        assert_eq!(driver.paused_until(), Some(at));
        let held_back = driver.buffered();
        assert!(held_back > 0, "the rest of the read is kept");

        // Bytes fed while paused (a framework that read anyway) queue up.
        driver.feed(b"ng\",\"id\":6}\n", &mut conn);
        assert_eq!(ids(&driver), [1, 2]);

        driver.resume(&mut conn);
        assert_eq!(ids(&driver), [1, 2], "still no tokens: still paused");
        assert!(driver.paused_until().is_some());

        driver.handler.tokens = 10;
        driver.resume(&mut conn);
        assert_eq!(ids(&driver), [1, 2, 3, 4, 5, 6]);
        assert_eq!(driver.paused_until(), None);
        assert_eq!(driver.buffered(), 0);
        driver.feed(&pings(7..8), &mut conn);
        assert_eq!(ids(&driver), [1, 2, 3, 4, 5, 6, 7]);
        assert!(conn.sent.is_empty(), "no errors: nothing was spliced");
    }

    #[test]
    fn a_handler_may_close_instead_of_waiting() {
        struct Strict;
        impl RequestHandler for Strict {
            type Request = Request;
            fn ready_at(&mut self, _: &Request, conn: &mut dyn Connection) -> Option<Instant> {
                conn.close("flooding");
                None
            }
            fn handle(&mut self, request: Request, _: &mut dyn Connection) {
                panic!("handled {request:?} after close");
            }
        }
        let mut conn = Recorder::default();
        let mut driver = Driver::new(Strict, 128);
        driver.feed(&pings(1..3), &mut conn);
        assert!(conn.closing);
        assert_eq!(driver.paused_until(), None);
    }
}
