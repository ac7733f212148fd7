//! One simulated client's socket: plain TCP, a TLS handshake in progress, or
//! TLS, always non-blocking. The only module that names a TLS library
//! (rustls, with ring's crypto; the session itself is the server's
//! [`Session`]). The bench accepts any certificate: it measures a local
//! server, it does not protect a conversation.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

use chat_server::framework::tls::Session;

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
            Stream::Handshaking(tls) | Stream::Tls(tls) => Some(tls.socket()),
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
                        self.step(Box::new(Tls::new(conn, tcp)))
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

/// A rustls client session over a non-blocking socket: the server's own
/// adapter, so both ends of a benchmark run the same code.
pub type Tls = Session<TcpStream>;

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
