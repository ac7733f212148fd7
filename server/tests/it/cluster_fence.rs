//! A cluster node that cannot reach PostgreSQL fences itself (issue 17):
//! one of three nodes reaches the database through a TCP forwarder this
//! test cuts; that node's clients are closed with `unavailable` within the
//! lease, their logins there are refused with it, they log in on another
//! node, and messages sent before and after arrive exactly once. With the
//! forwarder back the node serves again. Without PostgreSQL this skips;
//! under `CI=true` it fails.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::kill9::{Address, Link};
use crate::postgres::node;
use crate::support::postgres;

/// A forwarder on 127.0.0.1 to `upstream` that can be cut: every
/// connection through it is shut down and new ones are closed at once,
/// until it is mended.
struct Forwarder {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Forwarder {
    fn start(upstream: SocketAddr) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (cut2, open2) = (cut.clone(), open.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if cut2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let mut open = open2.lock().unwrap();
                open.push(client.try_clone().unwrap());
                open.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Forwarder { addr, cut, open }
    }

    /// Every connection through it ends, and new ones are refused.
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    fn mend(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

fn address(addr: SocketAddr) -> Address {
    Arc::new(Mutex::new(Some(addr)))
}

/// Sends `text` from `link` to `to` and waits for its `ack`.
fn send_acked(link: &mut Link, id: u64, to: &str, text: &str) {
    link.send(&json!({"type": "message", "id": id, "receiver": to, "text": text, "cid": text}))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(frame) = link.recv().unwrap() {
            if frame["id"] == id {
                assert_eq!(frame["type"], "ack", "{frame}");
                return;
            }
        }
    }
    panic!("no ack for {text}");
}

/// The texts of the messages `link` is sent within `within`, acknowledged
/// with `received`.
fn texts(link: &mut Link, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut texts = Vec::new();
    while Instant::now() < deadline {
        match link.recv() {
            Ok(Some(frame)) if frame["type"] == "message" => {
                texts.push(frame["text"].as_str().unwrap().to_string());
                if let Some(seq) = frame["seq"].as_u64() {
                    if frame["receiver"] != "*" {
                        let _ = link.send(&json!({"type": "received", "seq": seq}));
                    }
                }
            }
            Ok(_) => {}
            Err(err) => panic!("{err}"),
        }
    }
    texts
}

/// Reads `link` until the server closes it; the frames it sent last.
fn until_closed(link: &mut Link, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let mut frames = Vec::new();
    while Instant::now() < deadline {
        match link.recv() {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => {}
            Err(_) => return frames,
        }
    }
    panic!("not closed within {within:?}; it sent {frames:?}");
}

#[test]
fn a_node_without_its_database_sends_its_clients_to_another() {
    let Some(pg) = postgres::shared() else { return };
    let url = pg.database();
    let forwarder = Forwarder::start(SocketAddr::from(([127, 0, 0, 1], pg.port)));
    let proxied = url.replace(
        &format!("127.0.0.1:{}", pg.port),
        &forwarder.addr.to_string(),
    );
    assert_ne!(proxied, url);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let n1 = node(&proxied, "n1", dirs[0].path());
    let n2 = node(&url, "n2", dirs[1].path());
    let n3 = node(&url, "n3", dirs[2].path());
    let servers = [address(n1.addr), address(n2.addr), address(n3.addr)];

    let (mut bob, _) = Link::open(&servers[1], "bob", None, None).unwrap();
    let (mut alice, _) = Link::open(&servers[0], "alice", None, None).unwrap();
    // Both accounts known on both nodes before the messages.
    thread::sleep(Duration::from_millis(500));
    // (Each reads before it sends: waiting for an ack skips other frames.)
    send_acked(&mut alice, 1, "bob", "before");
    assert_eq!(texts(&mut bob, Duration::from_secs(1)), ["before"]);
    send_acked(&mut bob, 1, "alice", "to alice before");
    assert_eq!(
        texts(&mut alice, Duration::from_secs(1)),
        ["to alice before"]
    );

    let cut = Instant::now();
    forwarder.cut();
    let last = until_closed(&mut alice, Duration::from_secs(10));
    let fenced = cut.elapsed();
    eprintln!("n1 fenced {fenced:?} after the cut");
    // The lease is 5 s from the last renewal (at most 1 s before the cut).
    assert!(fenced < Duration::from_secs(5), "fenced after {fenced:?}");
    let error = last
        .iter()
        .find(|f| f["type"] == "error")
        .expect("an error");
    assert_eq!(error["code"], "unavailable", "{last:?}");

    // Alice goes along her server list: n1 refuses her, n2 takes her.
    let refused = Link::open(&servers[0], "alice", Some(1), Some(0))
        .err()
        .expect("n1 refuses logins while fenced");
    assert!(refused.contains("unavailable"), "{refused}");
    let (mut alice, welcome) = Link::open(&servers[2], "alice", Some(1), Some(0)).unwrap();
    assert_eq!(welcome["type"], "welcome");
    send_acked(&mut alice, 2, "bob", "after");
    assert_eq!(texts(&mut bob, Duration::from_secs(2)), ["after"]);
    send_acked(&mut bob, 2, "alice", "to alice after");
    assert_eq!(
        texts(&mut alice, Duration::from_secs(2)),
        ["to alice after"]
    );

    // The database back: n1 serves again within a few renewals.
    forwarder.mend();
    let mended = Instant::now();
    let mut carol = loop {
        match Link::open(&servers[0], "carol", None, None) {
            Ok((link, _)) => break link,
            Err(err) => {
                assert!(
                    mended.elapsed() < Duration::from_secs(15),
                    "n1 never served again: {err}"
                );
                thread::sleep(Duration::from_millis(200));
            }
        }
    };
    eprintln!("n1 served again {:?} after the mend", mended.elapsed());
    thread::sleep(Duration::from_millis(500));
    send_acked(&mut carol, 1, "bob", "carol on n1");
    assert_eq!(texts(&mut bob, Duration::from_secs(2)), ["carol on n1"]);
    drop((n1, n2, n3));
}
