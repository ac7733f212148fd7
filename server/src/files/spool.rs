//! The spool directory: `<id>.part` while an upload is under way, `<id>`
//! once it is complete, fsync'd and its SHA-256 matched the offer.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::writeback::{Synced, Writeback};
use super::FileId;

/// Bytes of an upload between two requests to write it back.
const SYNC_EVERY: u64 = 1 << 20;

pub struct Spool {
    dir: PathBuf,
    writeback: Writeback,
}

/// An upload being written: the file, and the hash of what it holds.
pub struct Upload {
    file: Arc<Synced>,
    hasher: Sha256,
    received: u64,
    size: u64,
    sha256: String,
}

impl Upload {
    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn is_full(&self) -> bool {
        self.received >= self.size
    }

    /// Appends `bytes`, which must start where the file ends.
    pub fn append(&mut self, offset: u64, bytes: &[u8], spool: &Spool) -> Result<(), String> {
        if offset != self.received {
            return Err(format!(
                "chunk at {offset}, expected the one at {}",
                self.received
            ));
        }
        if self.received + bytes.len() as u64 > self.size {
            return Err(format!("more bytes than the offered {}", self.size));
        }
        (&self.file.file)
            .write_all(bytes)
            .map_err(|e| format!("cannot write the spool file: {e}"))?;
        self.hasher.update(bytes);
        let before = self.received;
        self.received += bytes.len() as u64;
        if before / SYNC_EVERY != self.received / SYNC_EVERY {
            spool.writeback.request(&self.file);
        }
        Ok(())
    }
}

impl Spool {
    /// Creates `dir` if needed and deletes every file in it not in `keep`
    /// (offers that were finished, expired, or never stored).
    pub fn open(dir: PathBuf, keep: &[FileId]) -> io::Result<Spool> {
        fs::create_dir_all(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let id = path
                .file_name()
                .and_then(|n| n.to_str())
                .map(|n| n.trim_end_matches(".part"))
                .and_then(|n| n.parse::<FileId>().ok());
            if !id.is_some_and(|id| keep.contains(&id)) {
                let _ = fs::remove_file(&path);
            }
        }
        Ok(Spool {
            dir,
            writeback: Writeback::start()?,
        })
    }

    fn part(&self, file: FileId) -> PathBuf {
        self.dir.join(format!("{file}.part"))
    }

    fn complete(&self, file: FileId) -> PathBuf {
        self.dir.join(file.to_string())
    }

    /// Opens the partial file (creating it), hashing what it holds already
    /// so that the upload resumes where it stopped.
    pub fn open_upload(&self, file: FileId, size: u64, sha256: String) -> io::Result<Upload> {
        let path = self.part(file);
        let mut handle = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .append(true)
            .open(&path)?;
        let mut hasher = Sha256::new();
        let mut received = 0u64;
        let mut buf = vec![0; 256 * 1024];
        loop {
            let n = handle.read(&mut buf)?;
            if n == 0 {
                break;
            }
            // A file longer than the offer was not written by us: restart.
            if received + n as u64 > size {
                handle.set_len(0)?;
                hasher = Sha256::new();
                received = 0;
                break;
            }
            hasher.update(&buf[..n]);
            received += n as u64;
        }
        Ok(Upload {
            file: Synced::new(handle),
            hasher,
            received,
            size,
            sha256,
        })
    }

    /// Checks the hash, makes the bytes durable and moves them to their
    /// final name. `Err((reason, true))`: the hash did not match (the
    /// bytes are deleted).
    pub fn finish(&self, file: FileId, upload: Upload) -> Result<(), (String, bool)> {
        let got = hex(&upload.hasher.finalize());
        if got != upload.sha256 {
            let _ = fs::remove_file(self.part(file));
            return Err((
                format!(
                    "the upload's SHA-256 is {got}, the offer said {}; it was thrown away",
                    upload.sha256
                ),
                true,
            ));
        }
        let io = |e: io::Error| (format!("cannot store the file: {e}"), false);
        upload.file.sync_all().map_err(io)?;
        fs::rename(self.part(file), self.complete(file)).map_err(io)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(())
    }

    pub fn open_complete(&self, file: FileId) -> io::Result<File> {
        File::open(self.complete(file))
    }

    pub fn delete(&self, file: FileId) -> io::Result<()> {
        for path in [self.part(file), self.complete(file)] {
            match fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Lowercase hex, as offers carry hashes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
