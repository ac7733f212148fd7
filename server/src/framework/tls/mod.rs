//! TLS for the framework: loading the server identity and a non-blocking
//! stream that is plain TCP, a TLS handshake in progress, or TLS. The only
//! server module that names a TLS library; the rest of the framework sees
//! [`TlsAcceptor`] and [`Stream`].
//!
//! The library is rustls, with ring's crypto, on every platform
//! (`rustls.rs`; `session.rs`, the session over a non-blocking socket, is
//! chat-bench's too): the same TLS 1.2 and 1.3 policy everywhere
//! (docs/security.md, "TLS policy"), nothing to install beyond a C
//! compiler, and less CPU and memory per connection than OpenSSL
//! (docs/decisions.md).

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use mio::net::TcpStream;
use sha2::{Digest, Sha256};

mod rustls;
pub mod session;

use self::rustls::Tls;
pub use self::session::Session;

/// Accepts TLS connections with the server's certificate.
#[derive(Clone)]
pub struct TlsAcceptor(Arc<::rustls::ServerConfig>);

impl TlsAcceptor {
    /// Loads a PEM certificate (chain, leaf first) and PEM private key.
    /// Returns the acceptor and the SHA-256 fingerprint of the leaf.
    pub fn from_pem_files(cert: &Path, key: &Path) -> anyhow::Result<(Self, String)> {
        let cert_pem = std::fs::read(cert)
            .with_context(|| format!("reading certificate {}", cert.display()))?;
        let key_pem =
            std::fs::read(key).with_context(|| format!("reading private key {}", key.display()))?;
        let (config, leaf_der) = self::rustls::server_config(&cert_pem, &key_pem)
            .with_context(|| format!("loading {} with {}", cert.display(), key.display()))?;
        Ok((TlsAcceptor(config), fingerprint(&leaf_der)))
    }
}

/// The SHA-256 of a DER certificate as uppercase hex pairs joined by ':',
/// the form the client pins and shows.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// A connection's byte stream, whatever its security.
pub enum Stream {
    Plain(TcpStream),
    Handshaking(Box<Tls>),
    Tls(Box<Tls>),
    /// Left behind while a handshake step owns the stream, or after it failed.
    Gone,
}

impl Stream {
    /// Starts a TLS handshake on `tcp`, or wraps it as plain TCP.
    pub fn new(tcp: TcpStream, tls: Option<&TlsAcceptor>) -> io::Result<Stream> {
        match tls {
            None => Ok(Stream::Plain(tcp)),
            Some(acceptor) => Self::step(Box::new(Tls::new(&acceptor.0, tcp)?)),
        }
    }

    fn step(mut tls: Box<Tls>) -> io::Result<Stream> {
        if tls.handshake()? {
            tracing::debug!(
                version = tls.version(),
                cipher = tls.cipher(),
                "TLS handshake done"
            );
            Ok(Stream::Tls(tls))
        } else {
            Ok(Stream::Handshaking(tls))
        }
    }

    /// Advances a handshake in progress. True once the stream is ready for data.
    pub fn handshake(&mut self) -> io::Result<bool> {
        if let Stream::Handshaking(_) = self {
            let Stream::Handshaking(tls) = std::mem::replace(self, Stream::Gone) else {
                unreachable!()
            };
            *self = Self::step(tls)?;
        }
        Ok(self.is_ready())
    }

    pub fn is_ready(&self) -> bool {
        matches!(self, Stream::Plain(_) | Stream::Tls(_))
    }

    pub fn is_tls(&self) -> bool {
        !matches!(self, Stream::Plain(_))
    }

    /// The TCP socket underneath, for (de)registering with the poller.
    pub fn tcp(&mut self) -> Option<&mut TcpStream> {
        match self {
            Stream::Plain(s) => Some(s),
            Stream::Handshaking(s) => Some(s.get_mut()),
            Stream::Tls(s) => Some(s.get_mut()),
            Stream::Gone => None,
        }
    }

    /// Whether every write must go through one buffer: each TLS write is a
    /// record with its own overhead, and one that would block must be
    /// retried with the same bytes. Plain TCP may also be written straight
    /// from a frame.
    pub fn wants_coalesced_writes(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Sends TLS close_notify (best effort) and shuts the socket down, so the
    /// peer sees a clean end rather than a reset.
    pub fn shutdown(&mut self) {
        if let Stream::Tls(tls) = self {
            tls.close_notify();
        }
        if let Some(tcp) = self.tcp() {
            let _ = tcp.shutdown(Shutdown::Both);
        }
    }
}

fn not_ready() -> io::Error {
    io::Error::new(io::ErrorKind::WouldBlock, "TLS handshake in progress")
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            Stream::Handshaking(_) => Err(not_ready()),
            Stream::Gone => Ok(0),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
            Stream::Handshaking(_) => Err(not_ready()),
            Stream::Gone => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
            _ => Ok(()),
        }
    }
}
