//! The durability proof: clients stream private and public messages while
//! the server is killed with SIGKILL several times and restarted on the same
//! data directory. Every message the server acknowledged must reach its
//! receiver exactly once, in order. The clients here behave as the protocol
//! asks of a real one (docs/protocol.md, "Reliable delivery"): an outbox
//! resent with the same `cid` after a reconnect, `last_seq`/`last_public`
//! at login, `received` after reading. (`postgres.rs` logs in with `Link`.)

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{self, password_of, Options};

/// Where the server is now (its port changes at each restart).
pub(crate) type Address = Arc<Mutex<Option<SocketAddr>>>;

/// A connection that is logged in, or an error saying why it is not.
pub(crate) struct Link {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Link {
    /// Connects and logs in; `Err` while the server is down.
    pub(crate) fn open(
        address: &Address,
        nick: &str,
        last_seq: Option<u64>,
        last_public: Option<u64>,
    ) -> Result<(Link, Value), String> {
        let addr = address.lock().unwrap().ok_or("server down")?;
        let stream =
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut link = Link {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        };
        let mut login =
            json!({"type": "login", "id": 0, "nick": nick, "password": password_of(nick)});
        if let Some(seq) = last_seq {
            login["last_seq"] = json!(seq);
        }
        if let Some(seq) = last_public {
            login["last_public"] = json!(seq);
        }
        link.send(&login)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(frame) = link.recv()? {
                match frame["type"].as_str() {
                    Some("welcome") => return Ok((link, frame)),
                    Some("error") => return Err(format!("login refused: {frame}")),
                    _ => {}
                }
            }
        }
        Err("no welcome".into())
    }

    pub(crate) fn send(&mut self, frame: &Value) -> Result<(), String> {
        let mut line = frame.to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| e.to_string())
    }

    /// The next frame; `Ok(None)` when nothing came within the read timeout.
    pub(crate) fn recv(&mut self) -> Result<Option<Value>, String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err("connection closed".into()),
            Ok(_) => serde_json::from_str(&line)
                .map(Some)
                .map_err(|e| format!("{e}: {line}")),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                // A partial line stays in `line` only if the read timed out
                // mid-line; the server writes whole lines, so that is rare,
                // and a torn line would fail the parse above next time.
                if line.is_empty() {
                    Ok(None)
                } else {
                    Err(format!("torn line: {line}"))
                }
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// What one sender ended with.
struct Sent {
    /// Texts acknowledged, in the order they were sent.
    acked: Vec<String>,
    reconnects: u32,
}

/// Sends messages (to `to`, or public) with at most `window`
/// unacknowledged until `enough`, resending the unacknowledged ones after
/// each reconnect, and returns once every message it sent is acknowledged.
fn sender(
    address: Address,
    nick: &str,
    to: Option<&str>,
    enough: Arc<AtomicBool>,
    window: usize,
) -> Sent {
    let mut texts: Vec<String> = Vec::new();
    let mut next = 0; // the next text never sent
    let mut acked: Vec<bool> = Vec::new();
    let mut acked_order = Vec::new();
    let mut reconnects = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    let finished = |acked_order: &Vec<String>, next: usize| {
        enough.load(Ordering::SeqCst) && acked_order.len() == next
    };
    while !finished(&acked_order, next) {
        assert!(Instant::now() < deadline, "{nick}: not done after 120 s");
        let Ok((mut link, _)) = Link::open(&address, nick, None, None) else {
            thread::sleep(Duration::from_millis(50));
            continue;
        };
        reconnects += 1;
        // Request id → index of the text it carries, on this connection.
        let mut in_flight: HashMap<u64, usize> = HashMap::new();
        let mut id = 0;
        // The outbox: everything sent before and not acknowledged, first.
        let mut todo: Vec<usize> = (0..next).filter(|&i| !acked[i]).collect();
        todo.reverse();
        let result: Result<(), String> = (|| loop {
            while in_flight.len() < window {
                let i = match todo.pop() {
                    Some(i) => i,
                    None if !enough.load(Ordering::SeqCst) => {
                        texts.push(format!("{nick} {next}"));
                        acked.push(false);
                        next += 1;
                        next - 1
                    }
                    None => break,
                };
                id += 1;
                let mut frame =
                    json!({"type": "message", "id": id, "text": texts[i], "cid": format!("c{i}")});
                if let Some(to) = to {
                    frame["receiver"] = json!(to);
                }
                link.send(&frame)?;
                in_flight.insert(id, i);
            }
            if in_flight.is_empty() {
                return Ok(());
            }
            if let Some(frame) = link.recv()? {
                if frame["type"] == "ack" {
                    let i = in_flight
                        .remove(&frame["id"].as_u64().unwrap())
                        .expect("an ack for a message in flight");
                    if !acked[i] {
                        acked[i] = true;
                        acked_order.push(texts[i].clone());
                    }
                } else if frame["type"] == "error" {
                    panic!("{nick}: {frame}");
                }
            }
        })();
        if result.is_ok() && finished(&acked_order, next) {
            break;
        }
    }
    Sent {
        acked: acked_order,
        reconnects,
    }
}

/// What the receiver saw: texts in the order shown, and how many frames it
/// ignored because their `seq` had been shown already.
#[derive(Default)]
struct Seen {
    shown: Vec<String>,
    filtered: u64,
    reconnects: u32,
}

/// Reads its stream and the public stream until it has shown `expected`
/// messages (and half a second more) or `stop`, reconnecting with
/// `last_seq`/`last_public`, acknowledging with `received`.
fn receiver(
    address: Address,
    nick: &str,
    expected: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> Seen {
    let mut seen = Seen::default();
    let (mut last_seq, mut last_public): (Option<u64>, Option<u64>) = (None, Some(0));
    let mut complete_at: Option<Instant> = None;
    let done = |complete_at: &Option<Instant>| {
        stop.load(Ordering::SeqCst)
            || complete_at.is_some_and(|t| t.elapsed() > Duration::from_millis(500))
    };
    while !done(&complete_at) {
        let Ok((mut link, _)) = Link::open(&address, nick, last_seq, last_public) else {
            thread::sleep(Duration::from_millis(50));
            continue;
        };
        seen.reconnects += 1;
        let result: Result<(), String> = (|| {
            while !done(&complete_at) {
                if complete_at.is_none() && seen.shown.len() >= expected.load(Ordering::SeqCst) {
                    complete_at = Some(Instant::now());
                }
                let Some(frame) = link.recv()? else { continue };
                if frame["type"] != "message" {
                    continue;
                }
                let seq = frame["seq"].as_u64().expect("a message has a seq");
                let last = if frame["receiver"] == "*" {
                    &mut last_public
                } else {
                    &mut last_seq
                };
                if last.is_some_and(|l| seq <= l) {
                    seen.filtered += 1;
                    continue;
                }
                *last = Some(seq);
                seen.shown.push(frame["text"].as_str().unwrap().to_string());
                if frame["receiver"] != "*" {
                    link.send(&json!({"type": "received", "seq": seq}))?;
                }
            }
            Ok(())
        })();
        let _ = result;
    }
    seen
}

#[test]
fn acknowledged_messages_survive_sigkill_exactly_once_in_order() {
    // Needs more than 300 messages acknowledged in some 3 s (alone, some
    // 400 are): alone, as when this file was its own test binary (see
    // `support::serial`).
    let _serial = support::serial();
    let data = tempfile::tempdir().unwrap();
    let start = || Options::plain().data_dir(data.path()).start();
    let mut server = start();
    let address: Address = Arc::new(Mutex::new(Some(server.addr)));
    // Register everyone once, so a sender's first login cannot race bob's.
    for nick in ["bob", "alice", "carol", "dave"] {
        Link::open(&address, nick, None, None).unwrap();
    }

    let stop = Arc::new(AtomicBool::new(false));
    let enough = Arc::new(AtomicBool::new(false));
    // How many messages bob must show; known once the senders are done.
    let expected = Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
    let bob = {
        let (address, stop, expected) = (address.clone(), stop.clone(), expected.clone());
        thread::spawn(move || receiver(address, "bob", expected, stop))
    };
    let senders: Vec<_> = [
        ("alice", Some("bob")),
        ("carol", Some("bob")),
        ("dave", None),
    ]
    .into_iter()
    .map(|(nick, to)| {
        let (address, enough) = (address.clone(), enough.clone());
        (
            nick,
            thread::spawn(move || sender(address, nick, to, enough, 16)),
        )
    })
    .collect();

    // Kill the server mid-stream, several times.
    const KILLS: usize = 4;
    for _ in 0..KILLS {
        thread::sleep(Duration::from_millis(700));
        *address.lock().unwrap() = None;
        server.kill();
        thread::sleep(Duration::from_millis(100));
        server = start();
        *address.lock().unwrap() = Some(server.addr);
    }
    thread::sleep(Duration::from_millis(300));
    enough.store(true, Ordering::SeqCst);
    let sent: Vec<(&str, Sent)> = senders
        .into_iter()
        .map(|(nick, h)| (nick, h.join().expect("sender panicked")))
        .collect();

    // Bob stops by himself once he has shown as many messages as were
    // acknowledged, and a little later (to catch a late duplicate).
    let acked_total: usize = sent.iter().map(|(_, s)| s.acked.len()).sum();
    expected.store(acked_total, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !bob.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::SeqCst);
    let seen = bob.join().expect("receiver panicked");

    // Every acknowledged message shown exactly once, each sender's in order.
    let mut shown_count: BTreeMap<&str, usize> = BTreeMap::new();
    for text in &seen.shown {
        *shown_count.entry(text.as_str()).or_default() += 1;
    }
    let duplicated = shown_count.values().filter(|&&n| n > 1).count();
    let mut missing = Vec::new();
    for (nick, s) in &sent {
        let prefix = format!("{nick} ");
        let order: Vec<&String> = seen
            .shown
            .iter()
            .filter(|t| t.starts_with(&prefix))
            .collect();
        let numbers: Vec<usize> = order
            .iter()
            .map(|t| t[prefix.len()..].parse().unwrap())
            .collect();
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "{nick}'s messages out of order at bob: {numbers:?}"
        );
        missing.extend(
            s.acked
                .iter()
                .filter(|t| !shown_count.contains_key(t.as_str()))
                .cloned(),
        );
    }
    let delivered = sent
        .iter()
        .flat_map(|(_, s)| &s.acked)
        .filter(|t| shown_count.contains_key(t.as_str()))
        .count();
    eprintln!(
        "kill -9 x{KILLS}: acknowledged {acked_total} / delivered {delivered} / duplicated {duplicated} \
         (resends ignored by seq: {}; reconnects: bob {}, senders {:?})",
        seen.filtered,
        seen.reconnects,
        sent.iter().map(|(n, s)| (*n, s.reconnects)).collect::<Vec<_>>()
    );
    assert!(
        acked_total > 300,
        "too few messages to prove anything: {acked_total}"
    );
    assert!(
        missing.is_empty(),
        "acknowledged but never delivered: {missing:?}"
    );
    assert_eq!(duplicated, 0, "a message shown twice");
    assert_eq!(delivered, acked_total);
    assert!(
        sent.iter().all(|(_, s)| s.reconnects as usize > KILLS / 2),
        "the kills did not interrupt the senders: {:?}",
        sent.iter()
            .map(|(n, s)| (*n, s.reconnects))
            .collect::<Vec<_>>()
    );
}
