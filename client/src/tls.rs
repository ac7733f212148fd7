//! Connecting to the server: TCP, then TLS verified either against a given
//! root certificate, the system roots, or a fingerprint pinned on first use.
//! The only module that names native-tls.
//!
//! The socket is a mio `TcpStream` from the start, so the network thread can
//! register it on every OS; while connecting, [`Socket`] waits for readiness
//! itself, so the handshake code reads as if the socket were blocking.

use std::io::{self, Read, Write};
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use native_tls::{Certificate, HandshakeError, Protocol, TlsConnector, TlsStream};

use crate::known_hosts::{self, KnownHosts, Verdict};

/// How to secure the connection.
#[derive(Debug, Clone)]
pub enum Security {
    /// Plain TCP (`--no-tls`).
    Plain,
    /// Verify strictly against this PEM root certificate (`--ca`).
    Root(PathBuf),
    /// System roots, else trust on first use with this known_hosts file.
    Pinned(KnownHosts),
}

/// A connected, non-blocking byte stream, encrypted or not.
pub struct Stream(Inner);

enum Inner {
    Plain(Socket),
    Tls(Box<TlsStream<Socket>>),
}

/// A non-blocking TCP socket that, until [`Socket::release`], waits for
/// readiness (up to a deadline) instead of reporting `WouldBlock`.
#[derive(Debug)]
pub struct Socket {
    tcp: TcpStream,
    waiting: Option<(Poll, Instant)>,
}

impl Socket {
    fn connecting(tcp: TcpStream) -> io::Result<Socket> {
        let mut tcp = tcp;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut tcp, Token(0), Interest::READABLE | Interest::WRITABLE)?;
        Ok(Socket {
            tcp,
            waiting: Some((poll, Instant::now() + TIMEOUT)),
        })
    }

    /// From now on `WouldBlock` is the caller's business (the network thread).
    fn release(&mut self) -> io::Result<()> {
        if let Some((poll, _)) = self.waiting.take() {
            poll.registry().deregister(&mut self.tcp)?;
        }
        Ok(())
    }

    /// Runs `op` until it does not block, or the connect deadline passes.
    fn retry<T>(&mut self, mut op: impl FnMut(&mut TcpStream) -> io::Result<T>) -> io::Result<T> {
        loop {
            match op(&mut self.tcp) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let Some((poll, deadline)) = self.waiting.as_mut() else {
                        return Err(e);
                    };
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the server did not answer in time",
                        ));
                    }
                    // Any readiness change is worth another try.
                    poll.poll(&mut Events::with_capacity(2), Some(left))?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.retry(|tcp| tcp.read(buf))
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.retry(|tcp| tcp.write(buf))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.retry(|tcp| tcp.flush())
    }
}

/// A connect or handshake that takes longer than this is reported as an error
/// rather than leaving the user looking at nothing.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `server` (`host:port`). `tell` receives what the user should
/// know, such as a newly pinned certificate.
pub fn connect(
    server: &str,
    security: &Security,
    tell: &mut dyn FnMut(String),
) -> anyhow::Result<Stream> {
    let stream = match security {
        Security::Plain => Inner::Plain(dial(server)?),
        Security::Root(path) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read the CA certificate {}", path.display()))?;
            let root = Certificate::from_pem(&pem)
                .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
            let connector = builder()
                .add_root_certificate(root)
                .disable_built_in_roots(true)
                .build()?;
            let tls = handshake(&connector, server, dial(server)?).map_err(|err| {
                anyhow!(
                    "TLS handshake with {server} failed: {err} \
                     (is its certificate signed by {}?)",
                    path.display()
                )
            })?;
            Inner::Tls(Box::new(tls))
        }
        Security::Pinned(known_hosts) => Inner::Tls(Box::new(pinned(server, known_hosts, tell)?)),
    };
    let mut stream = Stream(stream);
    stream.socket().release()?;
    Ok(stream)
}

/// Tries the system roots first, so a server with a real certificate just
/// works; if that fails, the certificate is accepted unverified and its
/// fingerprint checked against known_hosts instead, like ssh.
fn pinned(
    server: &str,
    known_hosts: &KnownHosts,
    tell: &mut dyn FnMut(String),
) -> anyhow::Result<TlsStream<Socket>> {
    // A server pinned before has a certificate the system roots did not
    // verify then: go straight to the fingerprint, saving a handshake.
    if known_hosts.lookup(server)?.is_none() {
        match handshake(&builder().build()?, server, dial(server)?) {
            Ok(tls) => return Ok(tls),
            // Any TLS failure is worth a second try: an unverifiable
            // certificate is the common case, and anything else fails again
            // below, reported.
            Err(HandshakeError::Failure(_)) => {}
            Err(err) => bail!("TLS handshake with {server} failed: {err}"),
        }
    }
    let connector = builder()
        .danger_accept_invalid_certs(true)
        .danger_accept_invalid_hostnames(true)
        .build()?;
    let tls = handshake(&connector, server, dial(server)?).map_err(|err| {
        anyhow!(
            "TLS handshake with {server} failed: {err} \
             (if the server runs with --no-tls, use --no-tls too)"
        )
    })?;
    let der = tls
        .peer_certificate()?
        .context("the server sent no certificate")?
        .to_der()?;
    let print = known_hosts::fingerprint(&der);
    if known_hosts.check(server, &print)? == Verdict::Pinned {
        tell(format!(
            "pinned the certificate of {server} (SHA-256 {print}) on first use, \
             in {}: later connections must present the same one; if the server \
             changes it on purpose, delete that line and connect again",
            known_hosts.path().display()
        ));
    }
    Ok(tls)
}

fn builder() -> native_tls::TlsConnectorBuilder {
    let mut builder = TlsConnector::builder();
    builder.min_protocol_version(Some(Protocol::Tlsv12));
    builder
}

/// The handshake. Errors must be reported with their own text, not `{:#}`:
/// native-tls repeats its source's text in its own.
fn handshake(
    connector: &TlsConnector,
    server: &str,
    socket: Socket,
) -> Result<TlsStream<Socket>, HandshakeError<Socket>> {
    connector.connect(host(server), socket)
}

/// The server's port unless `--server` says otherwise.
pub const DEFAULT_PORT: u16 = 50445;

/// `--server` as typed, with [`DEFAULT_PORT`] if it names no port:
/// `host`, `1.2.3.4`, `::1` and `[::1]` alike. Host names are resolved
/// when dialing.
pub fn with_default_port(server: &str) -> String {
    let server = server.trim();
    if server.parse::<std::net::SocketAddr>().is_ok() {
        return server.to_string();
    }
    if server.parse::<std::net::Ipv6Addr>().is_ok() {
        return format!("[{server}]:{DEFAULT_PORT}");
    }
    if server.starts_with('[') && server.ends_with(']') {
        return format!("{server}:{DEFAULT_PORT}");
    }
    match server.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() => server.to_string(),
        _ => format!("{server}:{DEFAULT_PORT}"),
    }
}

/// The host part of `host:port`, without IPv6 brackets.
fn host(server: &str) -> &str {
    let host = server.rsplit_once(':').map_or(server, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Opens the TCP connection, with a hint when nobody is listening.
fn dial(server: &str) -> anyhow::Result<Socket> {
    let addrs: Vec<_> = server
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {server}"))?
        .collect();
    let mut last = None;
    for addr in addrs {
        match std::net::TcpStream::connect_timeout(&addr, TIMEOUT) {
            Ok(tcp) => {
                // Chat lines are small and should leave at once.
                tcp.set_nodelay(true)?;
                tcp.set_nonblocking(true)?;
                return Ok(Socket::connecting(TcpStream::from_std(tcp))?);
            }
            Err(err) => last = Some(err),
        }
    }
    match last {
        Some(err) if err.kind() == io::ErrorKind::ConnectionRefused => bail!(
            "cannot connect to {server}: Connection refused \
             (is a chat server running there, on that port? \
             the default port is {DEFAULT_PORT})"
        ),
        Some(err) => bail!("cannot connect to {server}: {err}"),
        None => bail!("cannot connect to {server}: no address found"),
    }
}

impl Stream {
    fn socket(&mut self) -> &mut Socket {
        match &mut self.0 {
            Inner::Plain(socket) => socket,
            Inner::Tls(tls) => tls.get_mut(),
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.0, Inner::Tls(_))
    }

    /// The TCP socket underneath, for the network thread's poller.
    pub fn source(&mut self) -> &mut TcpStream {
        &mut self.socket().tcp
    }

    /// Closes the connection: a TLS goodbye if encrypted, then the socket.
    pub fn shutdown(&mut self) {
        if let Inner::Tls(tls) = &mut self.0 {
            let _ = tls.shutdown();
        }
        let _ = self.source().shutdown(std::net::Shutdown::Both);
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.0 {
            Inner::Plain(tcp) => tcp.read(buf),
            Inner::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            Inner::Plain(tcp) => tcp.write(buf),
            Inner::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.0 {
            Inner::Plain(tcp) => tcp.flush(),
            Inner::Tls(tls) => tls.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_part() {
        assert_eq!(host("127.0.0.1:50445"), "127.0.0.1");
        assert_eq!(host("chat.example.org:1"), "chat.example.org");
        assert_eq!(host("[::1]:50445"), "::1");
        assert_eq!(host("nohost"), "nohost");
    }

    #[test]
    fn refused_connection_gets_a_hint() {
        // Bind then drop, so the port is very likely closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = format!("127.0.0.1:{port}");
        let err = dial(&server).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "cannot connect to {server}: Connection refused \
                 (is a chat server running there, on that port? \
                 the default port is 50445)"
            )
        );
    }

    #[test]
    fn the_port_defaults_to_the_servers() {
        let cases = [
            ("127.0.0.1", "127.0.0.1:50445"),
            ("127.0.0.1:6000", "127.0.0.1:6000"),
            ("localhost", "localhost:50445"),
            ("chat.example.org:7", "chat.example.org:7"),
            ("::1", "[::1]:50445"),
            ("[::1]", "[::1]:50445"),
            ("[::1]:6000", "[::1]:6000"),
            (" localhost ", "localhost:50445"),
        ];
        for (typed, want) in cases {
            assert_eq!(with_default_port(typed), want, "{typed:?}");
        }
    }

    /// A host name is resolved (only ever localhost in tests).
    #[test]
    fn host_names_are_resolved() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(dial(&format!("localhost:{port}")).is_ok());
    }
}
