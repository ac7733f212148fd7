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
//! May be overridden (the handler): `setup`, `handle`, `handle_error`, `finish`.

use std::net::SocketAddr;
use std::ops::ControlFlow;

use serde::de::DeserializeOwned;

use crate::codec::{self, Frame, FrameError, LineReader};
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
    type Request: DeserializeOwned;

    /// Called once, when the connection is ready (after the TLS handshake).
    fn setup(&mut self, _conn: &mut dyn Connection) {}

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
    reader: LineReader,
    handler: H,
    finished: bool,
}

impl<H: RequestHandler> Driver<H> {
    pub fn new(handler: H, max_frame: usize) -> Self {
        Driver {
            reader: LineReader::new(max_frame),
            handler,
            finished: false,
        }
    }

    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// Bytes of an unfinished line held back (never more than the limit).
    pub fn buffered(&self) -> usize {
        self.reader.buffered()
    }

    pub fn setup(&mut self, conn: &mut dyn Connection) {
        self.handler.setup(conn);
    }

    /// Decodes every complete line in `bytes` and hands it to the handler.
    /// Stops early once the connection is closing. Empty lines are ignored,
    /// so a person typing into `nc` may press Enter freely.
    pub fn feed(&mut self, bytes: &[u8], conn: &mut dyn Connection) {
        if conn.is_closing() {
            return;
        }
        let handler = &mut self.handler;
        let result = self.reader.feed(bytes, |line| {
            if !line.iter().all(u8::is_ascii_whitespace) {
                match codec::decode::<H::Request>(line) {
                    Ok(request) => handler.handle(request, conn),
                    Err(error) => handler.handle_error(error, conn),
                }
            }
            if conn.is_closing() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        if let Err(too_large) = result {
            handler.handle_error(
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
}
