//! The acceptor: takes new TCP connections off the listening socket and
//! deals them out to the workers in turn.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use tracing::{debug, warn};

use super::{ConnId, ToWorker, WorkerHandle};

const LISTENER: Token = Token(0);
const STOP: Token = Token(1);

pub struct Acceptor {
    poll: Poll,
    listener: TcpListener,
    workers: Vec<WorkerHandle>,
    next_id: ConnId,
}

impl Acceptor {
    /// Returns the acceptor and the waker that stops it.
    pub fn new(
        mut listener: TcpListener,
        workers: Vec<WorkerHandle>,
    ) -> io::Result<(Self, Arc<Waker>)> {
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let stop = Arc::new(Waker::new(poll.registry(), STOP)?);
        let acceptor = Acceptor {
            poll,
            listener,
            workers,
            next_id: 1,
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
                    // Chat frames are small and latency matters more than
                    // packet count: do not let Nagle hold them back.
                    if let Err(err) = tcp.set_nodelay(true) {
                        debug!(%peer, "set_nodelay failed: {err}");
                    }
                    let id = self.next_id;
                    self.next_id += 1;
                    let worker = &self.workers[(id % self.workers.len() as u64) as usize];
                    if worker.tx.send(ToWorker::Accept { id, tcp, peer }).is_ok() {
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
}
