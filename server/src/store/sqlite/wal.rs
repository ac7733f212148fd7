//! The WAL's upkeep: a second connection on its own thread copies the WAL
//! into the database (checkpoints, with fsyncs of their own) so that no
//! commit someone's ack waits for does it, and the WAL stays bounded under
//! a writer that never pauses. An idle server's checkpointer sleeps: it
//! passes only after something was written.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{select, Receiver, Sender};
use rusqlite::Connection;

use crate::store::StoreError;

/// How long after a write the WAL is copied into the database (at most
/// once per this, however much is written).
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Frames (4 KiB pages) in the WAL beyond which the checkpointer asks the
/// writer to [`Checkpointer::wrote`]: ~16 MiB (1 MiB in tests).
const WAL_CATCH_UP_FRAMES: i64 = if cfg!(test) { 256 } else { 4096 };

/// Frames written during a checkpointer's pass small enough for the writer
/// to copy (~1 MiB: a millisecond or two).
const CATCH_UP_GAP: i64 = 256;

/// Back-to-back checkpoint passes before the writer is asked regardless.
const CHASE_PASSES: usize = 8;

/// The WAL's size kept when it starts over; beyond it the file is cut.
pub(super) const WAL_KEEP_BYTES: i64 = if cfg!(test) { 4 << 20 } else { 64 << 20 };

/// The checkpoint thread, stopped and joined when dropped.
pub(super) struct Checkpointer {
    /// Set by the thread when the WAL has grown: see [`Checkpointer::wrote`].
    asked: Arc<AtomicBool>,
    /// Wakes the thread after a write (one waiting nudge is enough).
    nudge: Sender<()>,
    /// Dropped to stop the thread.
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a second connection that copies the WAL into the database
    /// [`CHECKPOINT_EVERY`] after a write (a PASSIVE checkpoint never blocks
    /// the writer).
    /// A writer that never pauses would keep the WAL growing (1 GB in ten
    /// seconds of private pairs): SQLite starts it over only once a
    /// checkpoint has copied all of it. So past [`WAL_CATCH_UP_FRAMES`] the
    /// checkpointer passes again at once, each pass copying what was
    /// written during the one before, until one leaves at most
    /// [`CATCH_UP_GAP`] behind; then it asks the writer to copy that little
    /// itself ([`Checkpointer::wrote`]).
    pub(super) fn start(path: &Path) -> Result<Checkpointer, StoreError> {
        let conn = Connection::open(path)?;
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let (nudge, nudged) = crossbeam_channel::bounded::<()>(1);
        let asked = Arc::new(AtomicBool::new(false));
        let ask = asked.clone();
        let thread = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || run(&conn, &nudged, &stopped, &ask))
            .map_err(|err| StoreError::Thread(Arc::new(err)))?;
        Ok(Checkpointer {
            asked,
            nudge,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Called by the writer after each write, between two transactions:
    /// wakes the thread, and if it asked, copies into the database the
    /// frames it left (those written during its last, short pass), so that
    /// the WAL is then wholly copied and the next commit starts it over.
    pub(super) fn wrote(&self, writer: &Connection) {
        let _ = self.nudge.try_send(());
        if self.asked.swap(false, Relaxed) {
            if let Err(err) = checkpoint(writer) {
                tracing::warn!("checkpointing the database: {err}");
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread: waits for a write, lets [`CHECKPOINT_EVERY`] pass (writes
/// meanwhile join the same pass), checkpoints; a last pass when stopped.
fn run(conn: &Connection, nudged: &Receiver<()>, stopped: &Receiver<()>, ask: &AtomicBool) {
    loop {
        select! {
            recv(nudged) -> _ => {}
            recv(stopped) -> _ => break,
        }
        let last = stopped
            .recv_timeout(CHECKPOINT_EVERY)
            .is_err_and(|e| e.is_disconnected());
        if chase(conn) {
            ask.store(true, Relaxed);
        }
        if last {
            return;
        }
    }
    chase(conn);
}

/// A PASSIVE checkpoint (it never waits for the writer); returns the frames
/// in the WAL and those of them now copied into the database.
fn checkpoint(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get(1)?, row.get(2)?))
    })
}

/// The checkpointer's turn: one pass, and while the WAL is large, passes
/// back to back until one finds at most [`CATCH_UP_GAP`] new frames. True
/// when the writer should finish the job ([`Checkpointer::wrote`]).
fn chase(conn: &Connection) -> bool {
    let mut copied: Option<i64> = None;
    for _ in 0..CHASE_PASSES {
        let (frames, done) = match checkpoint(conn) {
            Ok(counts) => counts,
            Err(err) => {
                tracing::warn!("checkpointing the database: {err}");
                return false;
            }
        };
        if frames < WAL_CATCH_UP_FRAMES {
            return false; // small, or started over meanwhile
        }
        if copied.is_some_and(|before| frames - before <= CATCH_UP_GAP) {
            return true;
        }
        copied = Some(done);
    }
    // Written faster than copied: a longer pause for the writer, once,
    // rather than a WAL without end.
    true
}
