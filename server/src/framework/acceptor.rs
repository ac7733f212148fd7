//! The acceptor: takes new TCP connections off the listening socket, turns
//! away those over a cap or from a banned address ([`Admission`]), and
//! deals the rest out to the workers in turn.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use tracing::{debug, warn};

use super::admission::{Admission, Refusal};
use super::web::Speech;
use super::{ToWorker, WorkerHandle};

const LISTENER: Token = Token(0);
const STOP: Token = Token(1);

pub struct Acceptor {
    poll: Poll,
    listener: TcpListener,
    workers: Vec<WorkerHandle>,
    /// Shared with the other listeners' acceptors.
    next_id: Arc<AtomicU64>,
    admission: Arc<Admission>,
    /// Plain TCP: a refused peer can be told why in one line. A TLS peer
    /// cannot without a handshake, which is what a refusal must not cost.
    plaintext: bool,
    /// How this listener's connections may speak.
    speech: Speech,
}

impl Acceptor {
    /// Returns the acceptor and the waker that stops it.
    pub fn new(
        mut listener: TcpListener,
        workers: Vec<WorkerHandle>,
        admission: Arc<Admission>,
        (plaintext, speech): (bool, Speech),
        next_id: Arc<AtomicU64>,
    ) -> io::Result<(Self, Arc<Waker>)> {
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let stop = Arc::new(Waker::new(poll.registry(), STOP)?);
        let acceptor = Acceptor {
            poll,
            listener,
            workers,
            next_id,
            admission,
            plaintext,
            speech,
        };
        Ok((acceptor, stop))
    }

    /// Accepts until woken by the stop waker.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(16);
        loop {
            if let Err(err) = self.poll.poll(&mut events, None) {
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                warn!("acceptor poll failed: {err}");
                return;
            }
            for event in events.iter() {
                if event.token() == STOP {
                    debug!("acceptor stopped");
                    return;
                }
            }
            self.accept_all();
        }
    }

    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((tcp, peer)) => {
                    let slot = match self.admission.admit(peer.ip()) {
                        Ok(slot) => slot,
                        Err(refusal) => {
                            self.refuse(tcp, peer, refusal);
                            continue;
                        }
                    };
                    // Chat frames are small and latency matters more than
                    // packet count: do not let Nagle hold them back.
                    if let Err(err) = tcp.set_nodelay(true) {
                        debug!(%peer, "set_nodelay failed: {err}");
                    }
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                    let worker = &self.workers[(id % self.workers.len() as u64) as usize];
                    if worker
                        .tx
                        .send(ToWorker::Accept {
                            id,
                            tcp,
                            peer,
                            slot,
                            speech: self.speech,
                        })
                        .is_ok()
                    {
                        let _ = worker.waker.wake();
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    // Typically out of file descriptors: back off instead of
                    // spinning on a listener that stays readable.
                    warn!("accept failed: {err}");
                    std::thread::sleep(Duration::from_millis(50));
                    return;
                }
            }
        }
    }

    /// Closes a connection turned away, telling a plaintext peer why (best
    /// effort: one write to a fresh socket, which has room for it).
    fn refuse(&self, mut tcp: TcpStream, peer: SocketAddr, refusal: Refusal) {
        debug!(%peer, ?refusal, "connection refused");
        // A browser would show the line as garbage: it is told nothing.
        let notice = self
            .admission
            .notice(refusal)
            .filter(|_| self.plaintext && self.speech != Speech::Http);
        if let Some(line) = notice {
            // What the peer sent already is read first: closing a socket
            // with unread bytes sends a reset, which can destroy the line
            // before the peer reads it.
            let mut scratch = [0; 4096];
            for _ in 0..16 {
                if !matches!(tcp.read(&mut scratch), Ok(n) if n > 0) {
                    break;
                }
            }
            let _ = tcp.write(&line);
            let _ = tcp.shutdown(Shutdown::Write);
        }
    }
}
