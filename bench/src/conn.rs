//! One simulated client's socket: plain TCP, a TLS handshake in progress, or
//! TLS, always non-blocking. The only module that names a TLS library
//! (rustls, with ring's crypto). The bench accepts any certificate: it
//! measures a local server, it does not protect a conversation.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

/// What every TLS client shares: its configuration.
pub type Connector = Arc<ClientConfig>;

/// Builds the configuration every TLS client shares: TLS 1.2 and 1.3, no
/// verification at all, and no resumption (each client connects once, and
/// the server issues no tickets).
pub fn insecure_connector() -> anyhow::Result<Connector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// Takes whatever certificate the server shows and does not check its
/// signature over the handshake. A real client checks it on its own
/// machine; here 10,000 clients share the server's two cores, and checking
/// P-256 signatures took a quarter of chat-bench's CPU (~0.05 ms a
/// handshake) from the server it measures. The server's work is the same:
/// it still signs every handshake.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub enum Stream {
    /// `connect` issued, not yet known to have succeeded.
    Connecting(TcpStream),
    Plain(TcpStream),
    Handshaking(Box<Tls>),
    Tls(Box<Tls>),
    /// Closed, or left behind while a handshake step owned the stream.
    Gone,
}

/// What a step of connecting achieved.
pub enum Progress {
    /// Waiting for the network.
    Pending,
    /// Ready for data.
    Ready,
}

impl Stream {
    pub fn connect(addr: SocketAddr) -> io::Result<Stream> {
        Ok(Stream::Connecting(TcpStream::connect(addr)?))
    }

    /// The socket, to register with mio.
    pub fn tcp(&mut self) -> Option<&mut TcpStream> {
        match self {
            Stream::Connecting(tcp) | Stream::Plain(tcp) => Some(tcp),
            Stream::Handshaking(tls) | Stream::Tls(tls) => Some(&mut tls.tcp),
            Stream::Gone => None,
        }
    }

    pub fn is_plain(&self) -> bool {
        matches!(self, Stream::Plain(_))
    }

    /// Moves connecting on after a readiness event: TCP connect, then the
    /// TLS handshake when `tls` is given.
    pub fn advance(&mut self, tls: Option<&Connector>) -> io::Result<Progress> {
        match std::mem::replace(self, Stream::Gone) {
            Stream::Connecting(tcp) => {
                if let Some(err) = tcp.take_error()? {
                    return Err(err);
                }
                // A non-blocking connect has finished once the peer is known.
                match tcp.peer_addr() {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                        *self = Stream::Connecting(tcp);
                        return Ok(Progress::Pending);
                    }
                    Err(e) => return Err(e),
                }
                tcp.set_nodelay(true)?;
                crate::platform::quickack(&tcp);
                match tls {
                    None => {
                        *self = Stream::Plain(tcp);
                        Ok(Progress::Ready)
                    }
                    Some(config) => {
                        let name = ServerName::try_from("localhost").expect("a valid name");
                        let conn = ClientConnection::new(config.clone(), name)
                            .map_err(io::Error::other)?;
                        self.step(Box::new(Tls { conn, tcp, owed: 0 }))
                    }
                }
            }
            Stream::Handshaking(tls) => self.step(tls),
            other @ (Stream::Plain(_) | Stream::Tls(_)) => {
                *self = other;
                Ok(Progress::Ready)
            }
            Stream::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn step(&mut self, mut tls: Box<Tls>) -> io::Result<Progress> {
        if tls.handshake()? {
            *self = Stream::Tls(tls);
            Ok(Progress::Ready)
        } else {
            *self = Stream::Handshaking(tls);
            Ok(Progress::Pending)
        }
    }
}

/// A rustls client session over a non-blocking socket.
pub struct Tls {
    conn: ClientConnection,
    tcp: TcpStream,
    /// Plaintext bytes a `write` took whose records the socket has not all
    /// taken yet: that write said `WouldBlock`, and the retry (with the same
    /// bytes, as with OpenSSL) is answered with this count once they are out.
    owed: usize,
}

impl Tls {
    /// Reads and writes handshake records until the handshake is done and
    /// its last flight is on the wire (true) or the socket would block.
    fn handshake(&mut self) -> io::Result<bool> {
        loop {
            match self.send_pending() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
            if !self.conn.is_handshaking() {
                return Ok(true);
            }
            match self.conn.read_tls(&mut self.tcp) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => self.process()?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Decrypts what was read; on a TLS error, sends rustls's alert (best
    /// effort) and fails.
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
            match self.conn.write_tls(&mut self.tcp) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Read for Tls {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed without close_notify: an end like any other.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            match self.conn.read_tls(&mut self.tcp) {
                Ok(_) => self.process()?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // What reading produced (a key update) goes out when it can.
                    let _ = self.send_pending();
                    return Err(e);
                }
            }
        }
    }
}

impl Write for Tls {
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

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf),
            _ => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            Stream::Tls(tls) => tls.write(buf),
            _ => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            Stream::Tls(tls) => tls.flush(),
            _ => Ok(()),
        }
    }
}
