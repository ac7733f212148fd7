//! One simulated client's socket: plain TCP, a TLS handshake in progress, or
//! TLS, always non-blocking. The only module that names native-tls. The
//! bench accepts any certificate: it measures a local server, it does not
//! protect a conversation.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;
use native_tls::{HandshakeError, MidHandshakeTlsStream, TlsConnector, TlsStream};

/// Builds the connector every TLS client shares: no certificate or host
/// name verification, and no root store — OpenSSL would otherwise still look
/// the issuer up in the system's certificate directory on every handshake,
/// and the load generator, not the server, would be what is measured.
pub fn insecure_connector() -> anyhow::Result<TlsConnector> {
    Ok(TlsConnector::builder()
        .danger_accept_invalid_certs(true)
        .danger_accept_invalid_hostnames(true)
        .disable_built_in_roots(true)
        .build()?)
}

pub enum Stream {
    /// `connect` issued, not yet known to have succeeded.
    Connecting(TcpStream),
    Plain(TcpStream),
    Handshaking(MidHandshakeTlsStream<TcpStream>),
    Tls(Box<TlsStream<TcpStream>>),
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
            Stream::Handshaking(mid) => Some(mid.get_mut()),
            Stream::Tls(tls) => Some(tls.get_mut()),
            Stream::Gone => None,
        }
    }

    pub fn is_plain(&self) -> bool {
        matches!(self, Stream::Plain(_))
    }

    /// Moves connecting on after a readiness event: TCP connect, then the
    /// TLS handshake when `tls` is given.
    pub fn advance(&mut self, tls: Option<&TlsConnector>) -> io::Result<Progress> {
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
                    Some(connector) => self.step(connector.connect("localhost", tcp)),
                }
            }
            Stream::Handshaking(mid) => self.step(mid.handshake()),
            other @ (Stream::Plain(_) | Stream::Tls(_)) => {
                *self = other;
                Ok(Progress::Ready)
            }
            Stream::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn step(
        &mut self,
        result: Result<TlsStream<TcpStream>, HandshakeError<TcpStream>>,
    ) -> io::Result<Progress> {
        match result {
            Ok(tls) => {
                *self = Stream::Tls(Box::new(tls));
                Ok(Progress::Ready)
            }
            Err(HandshakeError::WouldBlock(mid)) => {
                *self = Stream::Handshaking(mid);
                Ok(Progress::Pending)
            }
            Err(HandshakeError::Failure(err)) => Err(io::Error::other(err)),
        }
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
