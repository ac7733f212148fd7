//! The dispatcher's handle on the workers: frames and close requests are
//! grouped per worker and handed over in one batch with one wake-up.

use chat_common::Frame;

use super::{ConnId, Op, ToWorker, WorkerHandle};

pub struct Router {
    workers: Vec<WorkerHandle>,
    pending: Vec<Vec<Op>>,
}

impl Router {
    pub(super) fn new(workers: Vec<WorkerHandle>) -> Self {
        let pending = workers.iter().map(|_| Vec::new()).collect();
        Router { workers, pending }
    }

    fn worker_of(&self, conn: ConnId) -> usize {
        (conn % self.workers.len() as u64) as usize
    }

    /// Queues `frame` for `conn`; it leaves at the next `flush`.
    pub fn send(&mut self, conn: ConnId, frame: Frame) {
        let w = self.worker_of(conn);
        self.pending[w].push(Op::Send(conn, frame));
    }

    /// Closes `conn` after what was sent to it before.
    pub fn close(&mut self, conn: ConnId) {
        let w = self.worker_of(conn);
        self.pending[w].push(Op::Close(conn));
    }

    /// Adds `conn` to the connections that [`Router::broadcast`] reaches.
    pub fn subscribe(&mut self, conn: ConnId) {
        let w = self.worker_of(conn);
        self.pending[w].push(Op::Subscribe(conn));
    }

    pub fn unsubscribe(&mut self, conn: ConnId) {
        let w = self.worker_of(conn);
        self.pending[w].push(Op::Unsubscribe(conn));
    }

    /// Queues `frame` for every subscribed connection: one operation per
    /// worker, whatever the number of recipients. Ordered with everything
    /// else routed, so it reaches exactly those subscribed at this point.
    pub fn broadcast(&mut self, frame: Frame) {
        for pending in &mut self.pending {
            pending.push(Op::Broadcast(frame.clone()));
        }
    }

    /// Hands every pending batch to its worker.
    pub fn flush(&mut self) {
        for (worker, pending) in self.workers.iter().zip(self.pending.iter_mut()) {
            if pending.is_empty() {
                continue;
            }
            let batch = std::mem::take(pending);
            if worker.tx.send(ToWorker::Batch(batch)).is_ok() {
                let _ = worker.waker.wake();
            }
        }
    }

    /// Flushes, then asks every worker to close all its connections and stop.
    pub fn shutdown(&mut self) {
        self.flush();
        for worker in &self.workers {
            if worker.tx.send(ToWorker::Shutdown).is_ok() {
                let _ = worker.waker.wake();
            }
        }
    }
}
