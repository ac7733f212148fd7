//! The TLS backend on Windows and macOS: native-tls over the system's
//! library (SChannel, Secure Transport), whatever versions that offers
//! above the floor of TLS 1.2 set here.

use std::io;

use anyhow::Context as _;
use mio::net::TcpStream;
use native_tls::{HandshakeError, Identity, MidHandshakeTlsStream, Protocol, TlsStream};

/// A handshake in progress.
pub type Mid = MidHandshakeTlsStream<TcpStream>;
/// An established TLS session.
pub type Tls = TlsStream<TcpStream>;

/// Where a handshake step left the connection.
pub enum Handshake {
    Done(Tls),
    /// Waiting for the socket; go on with [`resume`] when it is ready.
    Pending(Mid),
    Failed(io::Error),
}

/// The server's TLS configuration, shared by every connection.
#[derive(Clone)]
pub struct Acceptor(native_tls::TlsAcceptor);

impl Acceptor {
    /// Builds the acceptor from a PEM chain (leaf first) and a PKCS#8 PEM
    /// key; returns it with the leaf certificate's DER, for the fingerprint.
    pub fn new(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<(Acceptor, Vec<u8>)> {
        let leaf =
            native_tls::Certificate::from_pem(cert_pem).context("parsing the certificate")?;
        let identity = Identity::from_pkcs8(cert_pem, key_pem)?;
        // native-tls would otherwise accept TLS 1.0; 1.2 is the floor we promise.
        let acceptor = native_tls::TlsAcceptor::builder(identity)
            .min_protocol_version(Some(Protocol::Tlsv12))
            .build()
            .context("configuring TLS")?;
        Ok((Acceptor(acceptor), leaf.to_der()?))
    }

    /// Starts a server handshake on `tcp`.
    pub fn accept(&self, tcp: TcpStream) -> Handshake {
        step(self.0.accept(tcp))
    }
}

/// Advances a handshake in progress.
pub fn resume(mid: Mid) -> Handshake {
    step(mid.handshake())
}

fn step(result: Result<Tls, HandshakeError<TcpStream>>) -> Handshake {
    match result {
        Ok(tls) => Handshake::Done(tls),
        Err(HandshakeError::WouldBlock(mid)) => Handshake::Pending(mid),
        Err(HandshakeError::Failure(err)) => Handshake::Failed(io::Error::other(err)),
    }
}

/// Sends close_notify, best effort: the socket is closed next regardless.
pub fn close_notify(tls: &mut Tls) {
    let _ = tls.shutdown();
}

/// native-tls does not say which version was negotiated.
pub fn version(_: &Tls) -> &'static str {
    "unknown"
}

/// Nor which cipher suite.
pub fn cipher(_: &Tls) -> &'static str {
    "unknown"
}
