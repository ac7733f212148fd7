//! rustls, with ring's crypto: the server's configuration (docs/security.md,
//! "TLS policy") and its TLS session (a [`Session`] that first looks at the
//! ClientHello's version).
//!
//! What the policy asks of a TLS library, rustls gives by construction or by
//! the settings below: TLS 1.2 and 1.3 only (it has no older version), AEAD
//! suites only with ECDHE (it has no other), no renegotiation (a request is
//! refused with a `no_renegotiation` alert), no compression. What is set
//! here: the versions, said explicitly; no session tickets and no session
//! cache; the server's order of suites; the key checked against the
//! certificate; and the `protocol_version` alert for a TLS 1.0 or 1.1
//! client (see [`Head`]).

use std::io::{self, Read, Write};
use std::sync::Arc;

use ::rustls::pki_types::pem::PemObject;
use ::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use ::rustls::server::NoServerSessionStorage;
use ::rustls::{ProtocolVersion, ServerConfig, ServerConnection};
use anyhow::Context as _;
use mio::net::TcpStream;

use super::session::Session;

/// Builds the configuration every connection shares from a PEM chain (leaf
/// first) and a PEM key (PKCS#8, PKCS#1 or SEC1); returns it with the leaf
/// certificate's DER, for the fingerprint.
pub fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> anyhow::Result<(Arc<ServerConfig>, Vec<u8>)> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .context("parsing the certificate")?;
    let leaf = chain
        .first()
        .context("no certificate in the PEM file")?
        .to_vec();
    let key = PrivateKeyDer::from_pem_slice(key_pem).context("parsing the private key")?;

    // ring's suites, in Mozilla's "intermediate v5" order, are the
    // policy's: the three TLS 1.3 suites, and for TLS 1.2 ECDHE with
    // AES-GCM or ChaCha20-Poly1305 only (rustls has no other kind). Key
    // exchange: ring's X25519, P-256, P-384.
    use ::rustls::crypto::ring::cipher_suite::*;
    let provider = Arc::new(::rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
            TLS13_CHACHA20_POLY1305_SHA256,
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        ..::rustls::crypto::ring::default_provider()
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&::rustls::version::TLS13, &::rustls::version::TLS12])
        .context("configuring TLS")?
        .with_no_client_auth()
        // Fails, among other reasons, when the key is not the certificate's:
        // checked here, or a mismatch would only show as failed handshakes.
        .with_single_cert(chain, key)
        .map_err(|err| match err {
            ::rustls::Error::InconsistentKeys(_) => {
                anyhow::anyhow!("the private key does not match the certificate")
            }
            other => anyhow::Error::new(other).context("loading the certificate and key"),
        })?;
    // No resumption: our clients never resume, so tickets are bytes and CPU
    // spent on every handshake for nothing, and no session outlives its
    // connection in the server's memory. The ticketer is rustls's default,
    // which never issues TLS 1.2 tickets; TLS 1.3 tickets are counted here.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    // The server's order, not the client's: OpenSSL clients (chat-client)
    // list AES-256-GCM-SHA384 first, and its SHA-384 key schedule cost 5–8 %
    // in connect time over AES-128-GCM-SHA256 (docs/decisions.md). Every
    // suite on the list is one the policy accepts.
    config.ignore_client_order = true;
    Ok((Arc::new(config), leaf))
}

/// A server TLS session over a non-blocking socket, which refuses a client
/// of TLS 1.1 or older with the alert that says so.
pub struct Tls {
    session: Session<TcpStream>,
    head: Head,
}

impl Tls {
    pub fn new(config: &Arc<ServerConfig>, tcp: TcpStream) -> io::Result<Tls> {
        let conn = ServerConnection::new(config.clone()).map_err(io::Error::other)?;
        Ok(Tls {
            session: Session::new(conn, tcp),
            head: Head::default(),
        })
    }

    pub fn get_mut(&mut self) -> &mut TcpStream {
        self.session.socket()
    }

    /// Reads and writes handshake records until the handshake is done and
    /// its last flight is in the socket (true), or the socket would block.
    /// The ClientHello's version is looked at before rustls sees it.
    pub fn handshake(&mut self) -> io::Result<bool> {
        let head = &mut self.head;
        self.session.handshake_reading(|conn, tcp| {
            if head.known {
                return conn.read_tls(tcp);
            }
            let read = conn.read_tls(&mut Noting { tcp, head })?;
            match head.too_old() {
                Some(version) => Err(refuse_version(tcp, version)),
                None => Ok(read),
            }
        })
    }

    /// Sends close_notify, best effort: the socket is closed next regardless.
    pub fn close_notify(&mut self) {
        self.session.close_notify();
    }

    /// The negotiated protocol, such as `TLSv1.3`.
    pub fn version(&self) -> &'static str {
        match self.session.connection().protocol_version() {
            Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
            Some(_) => "other",
            None => "none",
        }
    }

    /// The negotiated cipher suite, by its IANA name.
    pub fn cipher(&self) -> &'static str {
        self.session
            .connection()
            .negotiated_cipher_suite()
            .and_then(|suite| suite.suite().as_str())
            .unwrap_or("none")
    }
}

impl Read for Tls {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.session.read(buf)
    }
}

impl Write for Tls {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.session.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.session.flush()
    }
}

/// Answers a ClientHello of TLS 1.1 or older with a fatal
/// `protocol_version` alert, in a record of the client's own version,
/// written straight to the socket (rustls has processed nothing yet).
fn refuse_version(tcp: &mut TcpStream, client_version: u16) -> io::Error {
    let [major, minor] = client_version.to_be_bytes();
    let alert = [ALERT, major, minor, 0, 2, FATAL, PROTOCOL_VERSION];
    let _ = tcp.write(&alert);
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "unsupported protocol version: the client offers {} at most, the server \
             TLS 1.2 and 1.3",
            version_name(client_version)
        ),
    )
}

/// The start of what the client sent, kept until the version in its
/// ClientHello is known.
///
/// rustls refuses a TLS 1.0 or 1.1 client, but with `handshake_failure`:
/// it first requires the `signature_algorithms` extension, which such
/// clients do not send. RFC 8446 (appendix D.2) and RFC 8996 ask for
/// `protocol_version`, which tells the client (and its user) what is
/// wrong, so the version is read here first: a ClientHello whose
/// `client_version` is below TLS 1.2 comes from a client that can speak
/// nothing newer (a TLS 1.3 client says 1.2 there and lists 1.3 in
/// `supported_versions`).
#[derive(Default)]
struct Head {
    bytes: [u8; HEAD],
    len: usize,
    /// The version has been looked at (or could not be): nothing more is noted.
    known: bool,
}

/// Record header (5 bytes), handshake header (4), `client_version` (2).
const HEAD: usize = 11;
const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const ALERT: u8 = 21;
const FATAL: u8 = 2;
const PROTOCOL_VERSION: u8 = 70;
const TLS1_2: u16 = 0x0303;
const SSL3: u16 = 0x0300;

impl Head {
    fn note(&mut self, read: &[u8]) {
        let take = read.len().min(HEAD - self.len);
        self.bytes[self.len..self.len + take].copy_from_slice(&read[..take]);
        self.len += take;
    }

    /// Once the first bytes are in: the client's version if it is a
    /// ClientHello of SSL 3.0, TLS 1.0 or TLS 1.1. Anything else (a modern
    /// hello, or bytes that are no hello at all) is left to rustls.
    fn too_old(&mut self) -> Option<u16> {
        if self.known || self.len < HEAD {
            return None;
        }
        self.known = true;
        let b = &self.bytes;
        let version = u16::from_be_bytes([b[9], b[10]]);
        (b[0] == HANDSHAKE && b[5] == CLIENT_HELLO && (SSL3..TLS1_2).contains(&version))
            .then_some(version)
    }
}

/// The socket, read through while the first bytes are noted.
struct Noting<'a> {
    tcp: &'a mut TcpStream,
    head: &'a mut Head,
}

impl Read for Noting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.tcp.read(buf)?;
        self.head.note(&buf[..n]);
        Ok(n)
    }
}

fn version_name(version: u16) -> &'static str {
    match version {
        0x0300 => "SSL 3.0",
        0x0301 => "TLS 1.0",
        0x0302 => "TLS 1.1",
        _ => "an unknown version",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first 11 bytes of a ClientHello record of `version`.
    fn hello(version: u16) -> [u8; HEAD] {
        let [major, minor] = version.to_be_bytes();
        [
            HANDSHAKE,
            3,
            1,
            0,
            200,
            CLIENT_HELLO,
            0,
            0,
            196,
            major,
            minor,
        ]
    }

    #[test]
    fn clients_of_tls_1_1_and_older_are_told_the_version() {
        for version in [0x0300, 0x0301, 0x0302] {
            let mut head = Head::default();
            head.note(&hello(version));
            assert_eq!(head.too_old(), Some(version));
            assert!(head.known);
        }
    }

    #[test]
    fn a_modern_hello_or_no_hello_is_left_to_rustls() {
        // TLS 1.2, and TLS 1.3 (which says 1.2 here).
        let mut head = Head::default();
        head.note(&hello(0x0303));
        assert_eq!(head.too_old(), None);
        assert!(head.known);
        // Plaintext JSON sent to the TLS port.
        let mut head = Head::default();
        head.note(br#"{"type":"login"}"#);
        assert_eq!(head.too_old(), None);
    }

    #[test]
    fn the_version_waits_for_its_bytes() {
        let bytes = hello(0x0301);
        let mut head = Head::default();
        for (i, byte) in bytes.iter().enumerate() {
            assert_eq!(head.too_old(), None, "after {i} bytes");
            head.note(std::slice::from_ref(byte));
        }
        assert_eq!(head.too_old(), Some(0x0301));
        // Noted once: later reads change nothing.
        head.note(&hello(0x0303));
        assert_eq!(head.too_old(), None);
    }
}
