//! The file thread: the only code that touches the spool. The dispatcher
//! must never wait for a disk, so it sends [`Job`]s here and gets [`Done`]s
//! back, in order; chunks are hashed and written here, and download
//! frames are read and encoded here, off the chat's path.

mod spool;
mod writeback;

use std::collections::HashMap;
use std::path::PathBuf;
use std::thread::JoinHandle;

use chat_common::codec::encode;
use chat_common::{Frame, ServerFrame};
use crossbeam_channel::{Receiver, Sender};
use tracing::warn;

use crate::framework::ConnId;
pub use spool::Spool;
use spool::Upload;

/// A file offer's number.
pub type FileId = u64;

/// What the dispatcher asks of the file thread.
#[derive(Debug)]
pub enum Job {
    /// Open (or reopen, to resume) the upload of `file`: answered by
    /// `Opened` with the bytes already there.
    Open {
        conn: ConnId,
        id: u64,
        file: FileId,
        size: u64,
        sha256: String,
    },
    /// Append `data` at `offset` to an open upload.
    Write {
        conn: ConnId,
        file: FileId,
        offset: u64,
        data: Vec<u8>,
    },
    /// Read `len` bytes at `offset` of a complete file as a `chunk` frame.
    Read {
        conn: ConnId,
        file: FileId,
        offset: u64,
        len: usize,
    },
    /// The uploader left: close the partial file (it stays, to resume).
    Close { file: FileId },
    /// Every receiver answered, or the offer expired: delete its bytes.
    Delete { file: FileId },
}

/// What the file thread answers, in the order of the jobs.
#[derive(Debug)]
pub enum Done {
    Opened {
        conn: ConnId,
        id: u64,
        file: FileId,
        result: Result<u64, String>,
    },
    /// `bytes` of the upload are written; `complete`: all, hash verified,
    /// fsync'd and renamed.
    Written {
        conn: ConnId,
        file: FileId,
        bytes: u64,
        complete: bool,
    },
    /// A chunk of a download, ready to send.
    Read {
        conn: ConnId,
        file: FileId,
        frame: Frame,
    },
    /// The job failed; `mismatch`: the upload's hash was wrong.
    Failed {
        conn: ConnId,
        file: FileId,
        reason: String,
        mismatch: bool,
    },
}

/// The running file thread; dropping the `Sender<Job>` stops it.
pub struct FileThread {
    pub jobs: Sender<Job>,
    pub done: Receiver<Done>,
    thread: JoinHandle<()>,
}

impl FileThread {
    /// Starts the thread on `dir` (created if needed), deleting partial
    /// or finished files whose offers are not in `keep`.
    pub fn start(dir: PathBuf, keep: &[FileId]) -> std::io::Result<FileThread> {
        let spool = Spool::open(dir, keep)?;
        // Bounded by the flow-control windows of the connections.
        let (jobs, inbox) = crossbeam_channel::unbounded();
        let (out, done) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("files".into())
            .spawn(move || run(spool, &inbox, &out))?;
        Ok(FileThread { jobs, done, thread })
    }

    pub fn join(self) {
        drop(self.jobs);
        let _ = self.thread.join();
    }
}

fn run(spool: Spool, inbox: &Receiver<Job>, out: &Sender<Done>) {
    let mut uploads: HashMap<FileId, Upload> = HashMap::new();
    let mut readers: HashMap<FileId, std::fs::File> = HashMap::new();
    while let Ok(job) = inbox.recv() {
        let done = match job {
            Job::Open {
                conn,
                id,
                file,
                size,
                sha256,
            } => {
                let result = match uploads.get(&file) {
                    Some(upload) => Ok(upload.received()),
                    None => spool.open_upload(file, size, sha256).map(|upload| {
                        let at = upload.received();
                        uploads.insert(file, upload);
                        at
                    }),
                };
                let result = result.map_err(|e| format!("cannot open the spool file: {e}"));
                Some(Done::Opened {
                    conn,
                    id,
                    file,
                    result,
                })
            }
            Job::Write {
                conn,
                file,
                offset,
                data,
            } => write(&spool, &mut uploads, conn, file, offset, &data),
            Job::Read {
                conn,
                file,
                offset,
                len,
            } => Some(match read(&spool, &mut readers, file, offset, len) {
                Ok(frame) => Done::Read { conn, file, frame },
                Err(e) => Done::Failed {
                    conn,
                    file,
                    reason: format!("cannot read the spooled file: {e}"),
                    mismatch: false,
                },
            }),
            Job::Close { file } => {
                uploads.remove(&file);
                None
            }
            Job::Delete { file } => {
                uploads.remove(&file);
                readers.remove(&file);
                if let Err(e) = spool.delete(file) {
                    warn!("deleting spooled file {file}: {e}");
                }
                None
            }
        };
        if let Some(done) = done {
            if out.send(done).is_err() {
                return;
            }
        }
    }
}

fn write(
    spool: &Spool,
    uploads: &mut HashMap<FileId, Upload>,
    conn: ConnId,
    file: FileId,
    offset: u64,
    data: &[u8],
) -> Option<Done> {
    let failed = |reason: String, mismatch: bool| {
        Some(Done::Failed {
            conn,
            file,
            reason,
            mismatch,
        })
    };
    // Chunks behind a failed one arrive too: the first failure speaks.
    let upload = uploads.get_mut(&file)?;
    if let Err(reason) = upload.append(offset, data, spool) {
        uploads.remove(&file);
        return failed(reason, false);
    }
    if !upload.is_full() {
        return Some(Done::Written {
            conn,
            file,
            bytes: upload.received(),
            complete: false,
        });
    }
    let upload = uploads.remove(&file).expect("present");
    let bytes = upload.received();
    match spool.finish(file, upload) {
        Ok(()) => Some(Done::Written {
            conn,
            file,
            bytes,
            complete: true,
        }),
        Err((reason, mismatch)) => failed(reason, mismatch),
    }
}

fn read(
    spool: &Spool,
    readers: &mut HashMap<FileId, std::fs::File>,
    file: FileId,
    offset: u64,
    len: usize,
) -> std::io::Result<Frame> {
    use std::io::{Read, Seek, SeekFrom};
    let reader = match readers.entry(file) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => e.insert(spool.open_complete(file)?),
    };
    reader.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0; len];
    reader.read_exact(&mut buf)?;
    Ok(encode(&ServerFrame::Chunk {
        file,
        offset,
        data: buf.into(),
    }))
}
