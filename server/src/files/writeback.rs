//! Writing uploads back to disk behind the file thread, so that dirty
//! pages never pile up and the file thread never waits for the disk.
//!
//! Left to pile up, a gigabyte of dirty spool pages makes the store's next
//! fsync (every chat message's) wait for them: a private message took
//! 100–190 ms instead of 1. Syncing every MiB on the file thread itself
//! bounded that but made the upload wait for the disk once per MiB (a
//! synchronous MiB is ~4 ms here): ~250 MB/s at most. Here one thread
//! syncs while the file thread goes on writing and hashing; the channel
//! holds one request, so at most ~3 MiB are ever unwritten.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use tracing::warn;

/// A spool file shared by the file thread (writing) and the writeback
/// thread (syncing).
#[derive(Debug)]
pub struct Synced {
    pub file: File,
    /// A background sync failed: the bytes may not be on disk even if a
    /// later fsync succeeds (the kernel reports a write-back error once),
    /// so the upload must fail.
    failed: AtomicBool,
}

impl Synced {
    pub fn new(file: File) -> Arc<Synced> {
        Arc::new(Synced {
            file,
            failed: AtomicBool::new(false),
        })
    }

    /// Makes everything written durable; fails if any background sync did.
    pub fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all()?;
        if self.failed.load(Ordering::Acquire) {
            return Err(io::Error::other("writing the file back to disk failed"));
        }
        Ok(())
    }
}

/// The writeback thread; dropping it stops the thread after its last sync.
pub struct Writeback {
    requests: Option<Sender<Arc<Synced>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writeback {
    pub fn start() -> io::Result<Writeback> {
        let (requests, inbox) = crossbeam_channel::bounded::<Arc<Synced>>(1);
        let thread = std::thread::Builder::new()
            .name("writeback".into())
            .spawn(move || {
                for synced in inbox {
                    if let Err(e) = synced.file.sync_data() {
                        warn!("writing a spool file back: {e}");
                        synced.failed.store(true, Ordering::Release);
                    }
                }
            })?;
        Ok(Writeback {
            requests: Some(requests),
            thread: Some(thread),
        })
    }

    /// Asks for `file` to be written back; waits only while an earlier
    /// request is still queued behind the one being synced.
    pub fn request(&self, file: &Arc<Synced>) {
        if let Some(requests) = &self.requests {
            let _ = requests.send(Arc::clone(file));
        }
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
