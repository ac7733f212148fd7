//! Hashing a file to offer on its own thread: a gigabyte takes about a
//! second, which on the network thread would stop chat for as long. The
//! result comes back on a channel, and the network thread's waker is
//! rung so it picks it up at once.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;

use crossbeam_channel::Sender;
use mio::Waker;
use sha2::Digest as _;

use super::{hash_file, hex};

/// A file checked (name, size) and being hashed before it is offered.
#[derive(Debug)]
pub struct Hashing {
    pub to: String,
    pub path: PathBuf,
    pub name: String,
    pub size: u64,
    pub(super) file: File,
}

/// What the hashing thread sends back: the file and its SHA-256 (lowercase
/// hex), or why it could not be read.
pub type Hashed = (Hashing, Result<String, String>);

/// Hashes `job` on a new thread; sends the result on `done` and wakes
/// `waker`.
pub fn spawn(mut job: Hashing, done: Sender<Hashed>, waker: Arc<Waker>) {
    let name = format!("hash {}", job.name);
    let run = move || {
        let result = hash_file(&mut job.file, None)
            .map(|h| hex(&h.finalize()))
            .map_err(|e| format!("cannot read {}: {e}", job.path.display()));
        if done.send((job, result)).is_ok() {
            let _ = waker.wake();
        }
    };
    if let Err(e) = thread::Builder::new().name(name).spawn(run) {
        // No thread: nothing to report back through, so say it here.
        eprintln!("cannot start hashing: {e}");
    }
}
