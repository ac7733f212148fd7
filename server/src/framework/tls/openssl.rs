//! The TLS backend where native-tls would use OpenSSL anyway (Linux, the
//! BSDs): the same library, configured here, because native-tls starts its
//! acceptor from Mozilla's "intermediate v4" profile, which sets
//! `NO_TLSV1_3`, and offers no way to clear it.
//!
//! Needs OpenSSL 1.1.1 or newer (TLS 1.3, `SSL_CTX_set_num_tickets`).

use std::io;

use ::openssl::pkey::PKey;
use ::openssl::ssl::{
    HandshakeError, MidHandshakeSslStream, SslAcceptor, SslMethod, SslOptions, SslSessionCacheMode,
    SslStream, SslVersion,
};
use ::openssl::x509::X509;
use anyhow::Context as _;
use mio::net::TcpStream;

/// A handshake in progress.
pub type Mid = MidHandshakeSslStream<TcpStream>;
/// An established TLS session.
pub type Tls = SslStream<TcpStream>;

/// Where a handshake step left the connection.
pub enum Handshake {
    Done(Tls),
    /// Waiting for the socket; go on with [`resume`] when it is ready.
    Pending(Mid),
    Failed(io::Error),
}

/// The server's TLS configuration, shared by every connection.
#[derive(Clone)]
pub struct Acceptor(SslAcceptor);

impl Acceptor {
    /// Builds the acceptor from a PEM chain (leaf first) and a PEM key;
    /// returns it with the leaf certificate's DER, for the fingerprint.
    pub fn new(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<(Acceptor, Vec<u8>)> {
        let mut chain = X509::stack_from_pem(cert_pem)
            .context("parsing the certificate")?
            .into_iter();
        let leaf = chain.next().context("no certificate in the PEM file")?;
        let key = PKey::private_key_from_pem(key_pem).context("parsing the private key")?;

        // Mozilla's "intermediate v5": forward-secret AEAD suites only for
        // TLS 1.2, the three TLS 1.3 suites, compression off.
        let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
        // The floor is the policy, so it is said here rather than left to
        // the profile's option bits; no ceiling, so TLS 1.3 is on.
        builder.set_min_proto_version(Some(SslVersion::TLS1_2))?;
        builder.set_max_proto_version(None)?;
        // No resumption: our clients never resume, so session tickets are
        // bytes and CPU spent on every handshake for nothing, and a ticket
        // key that lives as long as the process weakens forward secrecy
        // (Mozilla's generator turns tickets off for the same reason). The
        // server-side cache is off too, or every TLS 1.2 session would be
        // kept in memory after its connection closed.
        builder.set_options(SslOptions::NO_TICKET | SslOptions::NO_RENEGOTIATION);
        builder.set_num_tickets(0)?;
        builder.set_session_cache_mode(SslSessionCacheMode::OFF);

        builder.set_certificate(&leaf)?;
        for intermediate in chain {
            builder.add_extra_chain_cert(intermediate)?;
        }
        // Checked here, or a mismatch would only show as failed handshakes.
        builder
            .set_private_key(&key)
            .and_then(|()| builder.check_private_key())
            .context("the private key does not match the certificate")?;
        let der = leaf.to_der()?;
        Ok((Acceptor(builder.build()), der))
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
        Err(HandshakeError::Failure(mid)) => Handshake::Failed(io::Error::other(mid.into_error())),
        Err(HandshakeError::SetupFailure(err)) => Handshake::Failed(io::Error::other(err)),
    }
}

/// Sends close_notify, best effort: the socket is closed next regardless.
pub fn close_notify(tls: &mut Tls) {
    let _ = tls.shutdown();
}

/// The negotiated protocol, such as `TLSv1.3`.
pub fn version(tls: &Tls) -> &'static str {
    tls.ssl().version_str()
}

/// The negotiated cipher suite.
pub fn cipher(tls: &Tls) -> &'static str {
    tls.ssl().current_cipher().map_or("none", |c| c.name())
}
