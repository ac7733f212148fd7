//! A TCP proxy on 127.0.0.1 between clients and the server, which a test can
//! use to cut every connection through it at once (both sides see the
//! connection end, as when a network drops), to cut the next connection
//! after so many bytes from the client, or to hold new connections (a
//! client trying to reconnect waits, as behind a dead network) until
//! released.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

/// The proxy; it stops accepting when dropped.
pub struct Proxy {
    /// `127.0.0.1:PORT`, for the client's `--server`.
    pub addr: String,
    state: Arc<State>,
}

struct State {
    upstream: String,
    /// Both sockets of every live connection, to cut them.
    live: Mutex<Vec<[TcpStream; 2]>>,
    /// New connections wait while this is true.
    held: Mutex<bool>,
    released: Condvar,
    /// The next connection is cut after this many bytes from the client.
    cut_after: Mutex<Option<usize>>,
    accepted: AtomicUsize,
    stop: AtomicBool,
}

impl Proxy {
    /// A proxy to `upstream` (`127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(State {
            upstream: upstream.to_string(),
            live: Mutex::new(Vec::new()),
            held: Mutex::new(false),
            released: Condvar::new(),
            cut_after: Mutex::new(None),
            accepted: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let accepting = state.clone();
        thread::spawn(move || {
            while !accepting.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        accepting.accepted.fetch_add(1, Ordering::SeqCst);
                        let limit = accepting.cut_after.lock().unwrap().take();
                        let state = accepting.clone();
                        thread::spawn(move || state.serve(client, limit));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy { addr, state }
    }

    /// Ends every connection through the proxy now, both ways.
    pub fn cut(&self) {
        for [a, b] in self.state.live.lock().unwrap().drain(..) {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }

    /// Cuts the next connection once the client has sent `bytes` through it.
    pub fn cut_next_after(&self, bytes: usize) {
        *self.state.cut_after.lock().unwrap() = Some(bytes);
    }

    /// New connections are accepted but wait, unconnected, until
    /// [`Proxy::release`].
    pub fn hold(&self) {
        *self.state.held.lock().unwrap() = true;
    }

    pub fn release(&self) {
        *self.state.held.lock().unwrap() = false;
        self.state.released.notify_all();
    }

    /// How many connections were accepted so far.
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        self.release();
        self.cut();
    }
}

impl State {
    fn serve(self: Arc<State>, client: TcpStream, limit: Option<usize>) {
        {
            let mut held = self.held.lock().unwrap();
            while *held {
                held = self.released.wait(held).unwrap();
            }
        }
        let Ok(server) = TcpStream::connect(&self.upstream) else {
            let _ = client.shutdown(Shutdown::Both);
            return;
        };
        let _ = server.set_nodelay(true);
        let _ = client.set_nodelay(true);
        self.live
            .lock()
            .unwrap()
            .push([client.try_clone().unwrap(), server.try_clone().unwrap()]);
        let (up_from, up_to) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        thread::spawn(move || pump(up_from, up_to, limit));
        pump(server, client, None);
    }
}

/// Copies `from` to `to` until either ends (or `limit` bytes have gone),
/// then ends both.
fn pump(mut from: TcpStream, mut to: TcpStream, limit: Option<usize>) {
    let mut buf = [0; 16 * 1024];
    let mut left = limit.unwrap_or(usize::MAX);
    while left > 0 {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n.min(left),
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        left -= n;
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
