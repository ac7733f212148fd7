//! A rustls session, client or server, over a non-blocking socket: reads
//! decrypt, writes encrypt, and the handshake moves on as the socket allows.
//! The server's connections use it (`rustls.rs` adds its ClientHello
//! check), and so do chat-bench's TLS clients, so both ends of a benchmark
//! run the same code.

use std::io::{self, Read, Write};

use rustls::Connection;

pub struct Session<S> {
    conn: Connection,
    sock: S,
    /// Plaintext bytes a `write` took whose records the socket has not all
    /// taken yet: that write said `WouldBlock`, and its retry (with the same
    /// bytes, as OpenSSL requires too) is answered with this count once they
    /// are out. So a writer counts bytes as written only once they are in
    /// the socket, and rustls holds at most one write's records.
    owed: usize,
}

impl<S: Read + Write> Session<S> {
    pub fn new(conn: impl Into<Connection>, sock: S) -> Session<S> {
        Session {
            conn: conn.into(),
            sock,
            owed: 0,
        }
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub fn socket(&mut self) -> &mut S {
        &mut self.sock
    }

    /// Reads and writes handshake records until the handshake is done and
    /// its last flight is in the socket (true), or the socket would block.
    pub fn handshake(&mut self) -> io::Result<bool> {
        self.handshake_reading(|conn, sock| conn.read_tls(sock))
    }

    /// [`Session::handshake`], with `read` taking the records from the
    /// socket into rustls (so that a server can look at them first).
    pub fn handshake_reading(
        &mut self,
        mut read: impl FnMut(&mut Connection, &mut S) -> io::Result<usize>,
    ) -> io::Result<bool> {
        loop {
            match self.send_pending() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
            if !self.conn.is_handshaking() {
                return Ok(true);
            }
            match read(&mut self.conn, &mut self.sock) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed during the handshake",
                    ))
                }
                Ok(_) => self.process()?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Decrypts what was read; on a TLS error, sends rustls's alert (best
    /// effort) and fails with rustls's reason.
    fn process(&mut self) -> io::Result<()> {
        if let Err(err) = self.conn.process_new_packets() {
            let _ = self.send_pending();
            return Err(io::Error::new(io::ErrorKind::InvalidData, err));
        }
        Ok(())
    }

    /// Writes the records rustls holds until there are none or the socket
    /// would block.
    fn send_pending(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sends close_notify, best effort: the socket is closed next regardless.
    pub fn close_notify(&mut self) {
        self.conn.send_close_notify();
        let _ = self.send_pending();
    }
}

impl<S: Read + Write> Read for Session<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed without close_notify (as native-tls
                // clients do): an end like a clean one, as with OpenSSL.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            match self.conn.read_tls(&mut self.sock) {
                Ok(_) => self.process()?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // What reading produced (a key update, the refusal of a
                    // renegotiation) goes out now if it can, or before the
                    // next write.
                    let _ = self.send_pending();
                    return Err(e);
                }
            }
        }
    }
}

impl<S: Read + Write> Write for Session<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send_pending()?;
        if self.owed > 0 {
            debug_assert!(
                self.owed <= buf.len(),
                "a blocked write retried with fewer bytes"
            );
            return Ok(std::mem::take(&mut self.owed).min(buf.len()));
        }
        let n = self.conn.writer().write(buf)?;
        match self.send_pending() {
            Ok(()) => Ok(n),
            Err(e) => {
                if e.kind() == io::ErrorKind::WouldBlock {
                    self.owed = n;
                }
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_pending()
    }
}
