//! Attack 5, slowloris: thousands of connections that open and then send
//! nothing, a byte now and then, half a line, or half a TLS handshake, to
//! hold the server's connections without ever using them. Each must be
//! dropped by its deadline (the TLS handshake timeout, the login timeout)
//! while a normal user still logs in at once. And the connection caps: the
//! 17th connection from one address is refused, and a place frees when one
//! closes.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{self, Next, Options, Server};

/// Connections in each attack.
const ATTACKERS: usize = 2000;

/// `--handshake-timeout` and `--login-timeout` during the attacks.
const DEADLINE: Duration = Duration::from_secs(3);

/// How late after its deadline an attacker may still be open: the
/// dispatcher checks logins once a second, and the machine is shared.
const LATE: Duration = Duration::from_millis(2500);

/// A normal login during the attack must take less than this.
const LOGIN_TARGET: Duration = Duration::from_secs(1);

/// What one attacking connection does after connecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Nothing at all.
    Silent,
    /// One byte a second of a login line that never ends.
    Trickle,
    /// Half a login line at once, then nothing.
    HalfLine,
    /// The first half of a real TLS ClientHello, then nothing.
    HalfHello,
    /// A real ClientHello, one byte a second.
    TrickleHello,
    /// A complete TLS handshake, then nothing (no login).
    Handshaken,
}

const LOGIN_LINE: &[u8] =
    br#"{"type":"login","id":1,"nick":"slowloris","password":"never finished"}"#;

enum Sock {
    Tcp(TcpStream),
    Tls(Box<native_tls::TlsStream<TcpStream>>),
}

impl Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.read(buf),
            Sock::Tls(s) => s.read(buf),
        }
    }

    fn write_byte(&mut self, byte: u8) {
        let _ = match self {
            Sock::Tcp(s) => s.write(&[byte]),
            Sock::Tls(s) => s.write(&[byte]),
        };
    }
}

struct Attacker {
    kind: Kind,
    sock: Sock,
    /// When its deadline started: connected (or, for `Handshaken`, when
    /// its handshake finished, which is when the server starts the login
    /// clock).
    opened: Instant,
    /// Bytes of its script written so far, and when the last one went.
    fed: usize,
    last_fed: Instant,
    /// What the server sent it (the start of it).
    got: Vec<u8>,
    /// How long after `opened` it saw the end, and how.
    ended: Option<(Duration, &'static str)>,
}

impl Attacker {
    fn open(server: &Server, kind: Kind, hello: &[u8]) -> Attacker {
        let tcp = TcpStream::connect(server.addr).expect("connecting an attacker");
        // A handshake's flights would otherwise wait on delayed ACKs.
        tcp.set_nodelay(true).unwrap();
        let mut opened = Instant::now();
        let mut sock = match kind {
            Kind::Handshaken => {
                let tls = connector()
                    .connect("localhost", tcp)
                    .expect("a TLS handshake");
                opened = Instant::now();
                tls.get_ref().set_nonblocking(true).unwrap();
                Sock::Tls(Box::new(tls))
            }
            _ => {
                tcp.set_nonblocking(true).unwrap();
                Sock::Tcp(tcp)
            }
        };
        let mut fed = 0;
        if let Sock::Tcp(tcp) = &mut sock {
            let once: &[u8] = match kind {
                Kind::HalfLine => &LOGIN_LINE[..LOGIN_LINE.len() / 2],
                Kind::HalfHello => &hello[..hello.len() / 2],
                _ => &[],
            };
            tcp.write_all(once).unwrap();
            fed = once.len();
        }
        Attacker {
            kind,
            sock,
            opened,
            fed,
            last_fed: opened,
            got: Vec::new(),
            ended: None,
        }
    }

    /// Reads what came; notes the end.
    fn poll(&mut self, buf: &mut [u8]) {
        while self.ended.is_none() {
            match self.sock.read(buf) {
                Ok(0) => self.ended = Some((self.opened.elapsed(), "EOF")),
                Ok(n) => {
                    let room = 4096usize.saturating_sub(self.got.len());
                    self.got.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.ended = Some((self.opened.elapsed(), "reset")),
            }
        }
    }

    /// The trickling kinds send their next byte once a second.
    fn trickle(&mut self, hello: &[u8]) {
        let script: &[u8] = match self.kind {
            Kind::Trickle => LOGIN_LINE,
            Kind::TrickleHello => hello,
            _ => return,
        };
        // Never the last byte: the line (or the hello) must not complete.
        if self.ended.is_none()
            && self.last_fed.elapsed() >= Duration::from_secs(1)
            && self.fed + 1 < script.len()
        {
            self.sock.write_byte(script[self.fed]);
            self.fed += 1;
            self.last_fed = Instant::now();
        }
    }
}

/// One TLS client configuration for all: building one reads the system's
/// root certificates, which takes longer than a handshake.
fn connector() -> &'static native_tls::TlsConnector {
    static CONNECTOR: std::sync::OnceLock<native_tls::TlsConnector> = std::sync::OnceLock::new();
    CONNECTOR.get_or_init(|| {
        native_tls::TlsConnector::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .expect("building a TLS connector")
    })
}

/// A real TLS ClientHello, as native-tls sends it (one record), caught by
/// a listener that never answers.
fn client_hello() -> Vec<u8> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = thread::spawn(move || {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = connector().connect("localhost", tcp);
    });
    let (mut peer, _) = listener.accept().unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut header = [0u8; 5];
    peer.read_exact(&mut header).unwrap();
    assert_eq!(header[0], 0x16, "a TLS handshake record");
    let len = u16::from_be_bytes([header[3], header[4]]) as usize;
    let mut hello = header.to_vec();
    hello.resize(5 + len, 0);
    peer.read_exact(&mut hello[5..]).unwrap();
    drop(peer);
    client.join().unwrap();
    hello
}

/// Open descriptors of process `pid` (Linux; `None` elsewhere).
fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// Resident memory of process `pid` in KiB (Linux; `None` elsewhere).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A byte stream, plain or TLS.
trait Duplex: Read + Write {}
impl<T: Read + Write> Duplex for T {}

/// A normal user's login, timed from connect (and TLS handshake) to the
/// `welcome`: what someone starting a client would wait for.
fn timed_login(server: &Server, nick: &str) -> Duration {
    let started = Instant::now();
    let tcp = TcpStream::connect(server.addr).expect("connecting");
    tcp.set_nodelay(true).unwrap();
    tcp.set_read_timeout(Some(support::TIMEOUT)).unwrap();
    let stream: Box<dyn Duplex> = if server.is_tls() {
        Box::new(
            connector()
                .connect("localhost", tcp)
                .expect("a TLS handshake"),
        )
    } else {
        Box::new(tcp)
    };
    let mut stream = io::BufReader::new(stream);
    let login = serde_json::json!({
        "type": "login", "id": 1, "nick": nick, "password": support::password_of(nick)
    });
    writeln!(stream.get_mut(), "{login}").expect("sending the login");
    let mut line = String::new();
    while !line.contains(r#""type":"welcome""#) {
        line.clear();
        let n = io::BufRead::read_line(&mut stream, &mut line).expect("the welcome in time");
        assert!(n > 0, "{nick}: closed before the welcome");
    }
    started.elapsed()
}

/// Runs one attack of [`ATTACKERS`] connections, `plan` saying how many of
/// each kind, against `server`; checks that each was dropped by its
/// deadline and that normal logins went on meanwhile, and prints figures.
fn attack(server: &Server, label: &str, plan: &[(Kind, usize)]) {
    assert_eq!(plan.iter().map(|p| p.1).sum::<usize>(), ATTACKERS);
    let limit = chat_server::platform::raise_fd_limit();
    assert!(
        limit.is_none_or(|l| l >= 2 * ATTACKERS as u64 + 200),
        "this test needs {} open files (ulimit -n), has {limit:?}",
        2 * ATTACKERS + 200
    );
    let hello = client_hello();
    let pid = server.pid();
    // Warm up: the first login creates the database's first account.
    timed_login(server, "warmup");
    let fds_before = open_fds(pid);
    let rss_before = rss_kib(pid);

    // Handshakes first (they are slow), then the raw connections, the
    // kinds interleaved so that every worker gets a mix.
    let started = Instant::now();
    let mut attackers: Vec<Attacker> = Vec::with_capacity(ATTACKERS);
    let (handshaken, raw): (Vec<_>, Vec<_>) = plan.iter().partition(|p| p.0 == Kind::Handshaken);
    for &(kind, n) in &handshaken {
        attackers.extend((0..n).map(|_| Attacker::open(server, kind, &hello)));
    }
    let mut left = raw;
    while left.iter().any(|p| p.1 > 0) {
        for (kind, n) in left.iter_mut().filter(|p| p.1 > 0) {
            attackers.push(Attacker::open(server, *kind, &hello));
            *n -= 1;
        }
    }
    let opening = started.elapsed();

    let mut buf = vec![0u8; 16 * 1024];
    let mut logins: Vec<(Duration, usize)> = Vec::new();
    let mut fds_peak = fds_before;
    let mut rss_peak = rss_before;
    let mut last_probe = Instant::now() - Duration::from_secs(1);
    let give_up = Instant::now() + DEADLINE + LATE + Duration::from_secs(5);
    loop {
        for a in attackers.iter_mut() {
            a.trickle(&hello);
            a.poll(&mut buf);
        }
        let open = attackers.iter().filter(|a| a.ended.is_none()).count();
        if open == 0 || Instant::now() > give_up {
            break;
        }
        if last_probe.elapsed() >= Duration::from_millis(200) {
            let n = logins.len();
            logins.push((timed_login(server, &format!("user{n}")), open));
            fds_peak = fds_peak.max(open_fds(pid));
            rss_peak = rss_peak.max(rss_kib(pid));
            last_probe = Instant::now();
        }
        thread::sleep(Duration::from_millis(20));
    }
    let all_ended = started.elapsed();

    // The server's count of open connections (its descriptors) comes back down.
    let mut fds_after = open_fds(pid);
    let settle = Instant::now() + Duration::from_secs(3);
    while fds_after.zip(fds_before).is_some_and(|(a, b)| a > b + 2) && Instant::now() < settle {
        thread::sleep(Duration::from_millis(50));
        fds_after = open_fds(pid);
    }

    // Figures.
    let mut summary = Vec::new();
    for &(kind, _) in plan {
        let ends: Vec<Duration> = attackers
            .iter()
            .filter(|a| a.kind == kind)
            .filter_map(|a| a.ended.map(|e| e.0))
            .collect();
        let (min, max) = (ends.iter().min(), ends.iter().max());
        let resets = attackers
            .iter()
            .filter(|a| a.kind == kind && a.ended.is_some_and(|e| e.1 == "reset"))
            .count();
        summary.push(format!(
            "{kind:?} {}: dropped {:.2}–{:.2} s after opening ({resets} by reset)",
            ends.len(),
            min.map_or(f64::NAN, Duration::as_secs_f64),
            max.map_or(f64::NAN, Duration::as_secs_f64),
        ));
    }
    let during: Vec<&(Duration, usize)> = logins.iter().filter(|l| l.1 == ATTACKERS).collect();
    let slowest = logins.iter().map(|l| l.0).max().unwrap_or_default();
    let slowest_during = during.iter().map(|l| l.0).max().unwrap_or_default();
    eprintln!(
        "attack_slowloris {label}: {ATTACKERS} connections opened in {:.2} s, all dropped {:.2} s after the first; \
         {}; {} normal logins meanwhile ({} with all {ATTACKERS} open), slowest {:.1} ms (with all open {:.1} ms); \
         server fds {fds_before:?} before, {fds_peak:?} peak, {fds_after:?} after; \
         VmRSS KiB {rss_before:?} before, {rss_peak:?} peak",
        opening.as_secs_f64(),
        all_ended.as_secs_f64(),
        summary.join("; "),
        logins.len(),
        during.len(),
        slowest.as_secs_f64() * 1000.0,
        slowest_during.as_secs_f64() * 1000.0,
    );

    // Every attacker was dropped, by its deadline: not before it (a refusal
    // or an error would be early), not much after.
    let still_open = attackers.iter().filter(|a| a.ended.is_none()).count();
    assert_eq!(still_open, 0, "{still_open} attackers still open");
    for a in &attackers {
        let (after, how) = a.ended.unwrap();
        assert!(
            after + Duration::from_millis(50) >= DEADLINE && after <= DEADLINE + LATE,
            "{:?} dropped after {after:?} ({how}); the deadline is {DEADLINE:?}",
            a.kind
        );
    }
    // Those that got as far as the chat were told why, as `nc` would show
    // it; a half-finished TLS handshake is not even answered.
    for a in &attackers {
        let said = String::from_utf8_lossy(&a.got);
        let chat = match a.kind {
            Kind::Silent | Kind::Trickle | Kind::HalfLine => !server.is_tls(),
            Kind::Handshaken => true,
            Kind::HalfHello | Kind::TrickleHello => false,
        };
        if chat {
            let frame: Value = serde_json::from_str(said.trim_end()).unwrap_or_else(|e| {
                panic!("{:?} was sent {said:?}, not one error frame: {e}", a.kind)
            });
            assert_eq!(frame["code"], "timeout", "{frame}");
        } else {
            assert!(a.got.is_empty(), "{:?} was sent {said:?}", a.kind);
        }
    }
    assert!(
        during.len() >= 3,
        "only {} logins while all attackers were open: {logins:?}",
        during.len()
    );
    assert!(
        slowest < LOGIN_TARGET,
        "a login took {slowest:?} during the attack: {logins:?}"
    );
    if let (Some(before), Some(after)) = (fds_before, fds_after) {
        assert!(
            after <= before + 2,
            "the server holds {after} descriptors, {before} before the attack"
        );
    }
}

/// 2,000 plaintext connections that send nothing, one byte a second of a
/// line, or half a line: all get the `timeout` error and are closed by the
/// login deadline, while normal users log in in well under a second.
#[test]
fn slowloris_plaintext() {
    // Thousands of sockets, deadlines and login times: alone, neither
    // beside the other attack nor any other test (see `support::serial`).
    let _serial = support::serial();
    let server = Options::plain()
        .flag("--login-timeout", DEADLINE.as_secs())
        .crowd()
        .start();
    attack(
        &server,
        "plaintext",
        &[
            (Kind::Silent, 700),
            (Kind::Trickle, 700),
            (Kind::HalfLine, 600),
        ],
    );
}

/// 2,000 TLS connections that send nothing, half a ClientHello, a
/// ClientHello one byte a second, or finish the handshake and then say
/// nothing: dropped by the handshake deadline (the last by the login
/// deadline), while normal users log in over TLS in well under a second.
#[test]
fn slowloris_tls() {
    // Thousands of sockets, deadlines and login times: alone, neither
    // beside the other attack nor any other test (see `support::serial`).
    let _serial = support::serial();
    let server = Options::tls()
        .flag("--handshake-timeout", DEADLINE.as_secs())
        .flag("--login-timeout", DEADLINE.as_secs())
        .crowd()
        .start();
    attack(
        &server,
        "TLS",
        &[
            (Kind::Silent, 600),
            (Kind::HalfHello, 600),
            (Kind::TrickleHello, 600),
            (Kind::Handshaken, 200),
        ],
    );
}

/// Opens a connection and reads what the server says at once: a refused
/// one gets one line (plaintext) and the end; an admitted one nothing yet.
fn refused_line(server: &Server, name: &str) -> Option<Value> {
    let mut client = server.connect(name);
    match client.next_until(Instant::now() + Duration::from_millis(300)) {
        Next::Frame(frame) => {
            client.expect_eof();
            Some(frame)
        }
        Next::Timeout => None,
        other => panic!("{name}: {other:?}"),
    }
}

/// With the default caps, 16 connections from 127.0.0.1 are served and the
/// 17th is refused with `too_many_connections` and closed; when one of the
/// 16 leaves, the next connection is served again.
#[test]
fn the_17th_connection_from_one_address_is_refused() {
    let server = Options::plain().start();
    let mut sixteen: Vec<_> = (0..16)
        .map(|i| {
            let mut client = server.connect(&format!("c{i}"));
            client.ping();
            client
        })
        .collect();
    let refused = refused_line(&server, "17th").expect("the 17th is refused");
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "too_many_connections", "{refused}");
    assert!(refused.get("id").is_none(), "{refused}");
    assert!(
        refused["reason"].as_str().unwrap().contains("your address"),
        "{refused}"
    );
    // A refusal takes no place: still refused.
    assert!(refused_line(&server, "18th").is_some());

    // One leaves (bye, then the server closes): its place is free.
    let mut leaver = sixteen.pop().unwrap();
    leaver.login("leaver");
    leaver.bye();
    let mut again = server.connect("again");
    again.ping();
    assert!(refused_line(&server, "one too many").is_some());
    // One that just hangs up frees its place too, once the server notices.
    drop(sixteen.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = server.connect("last");
    loop {
        match last.next_until(Instant::now() + Duration::from_millis(100)) {
            Next::Timeout => break,
            Next::Frame(f) if f["code"] == "too_many_connections" => {}
            other => panic!("{other:?}"),
        }
        assert!(Instant::now() < deadline, "the place was never freed");
        last = server.connect("last");
    }
    last.ping();
}

/// Over TLS a refused connection is closed at once, before any handshake.
#[test]
fn over_tls_a_refused_connection_is_just_closed() {
    let server = Options::tls().flag("--max-connections-per-ip", 2).start();
    let mut two: Vec<_> = (0..2).map(|i| server.connect(&format!("c{i}"))).collect();
    for client in &mut two {
        client.ping();
    }
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    let n = tcp.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed without a byte, got {:?}", &buf[..n]);
    two[0].ping();
}

/// The cap on all connections holds whatever the address, and says so.
#[test]
fn the_total_cap_holds() {
    let server = Options::plain()
        .flag("--max-connections", 3)
        .crowd()
        .start();
    let mut three: Vec<_> = (0..3).map(|i| server.connect(&format!("c{i}"))).collect();
    for client in &mut three {
        client.ping();
    }
    let refused = refused_line(&server, "4th").expect("the 4th is refused");
    assert_eq!(refused["code"], "too_many_connections", "{refused}");
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains("try again later"),
        "{refused}"
    );
}
