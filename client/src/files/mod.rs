//! File transfers on the network thread: uploads (`!send`) read the file in
//! chunks, at most [`UPLOAD_WINDOW`] ahead of the server's `file_ack`;
//! downloads (`!accept`) write to `name.part`, acknowledge each chunk, and
//! are renamed to a name that overwrites nothing once the SHA-256 matches.
//! Unfinished transfers are resumed after a reconnect (`resume`).

mod hashing;
mod names;

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use chat_common::protocol::{validate_file_name, CHUNK, UPLOAD_WINDOW};
use chat_common::{ErrorCode, Request, ServerFrame};
use sha2::{Digest, Sha256};

pub use hashing::{spawn as spawn_hashing, Hashed, Hashing};
pub use names::free_name;

/// Request ids for transfers, apart from the session's (which count from 1).
const FIRST_ID: u64 = 1 << 40;

/// What a transfer has to say, for people.
pub type Says = Vec<String>;

struct Upload {
    path: PathBuf,
    to: String,
    name: String,
    size: u64,
    sha256: String,
    /// Set once the server answered `upload`.
    file: Option<u64>,
    reader: Option<File>,
    sent: u64,
    acked: u64,
}

/// How far a transfer has got, for a progress bar.
#[derive(Debug, Clone)]
pub struct Progress {
    pub upload: bool,
    pub file: u64,
    pub name: String,
    pub done: u64,
    pub total: u64,
}

/// An offer someone made us.
#[derive(Debug, Clone)]
pub struct Offer {
    pub sender: String,
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

struct Download {
    dir: PathBuf,
    name: String,
    size: u64,
    sha256: String,
    part: PathBuf,
    writer: File,
    hasher: Sha256,
    got: u64,
}

#[derive(Default)]
pub struct Transfers {
    next_id: u64,
    /// `downloaded` requests to send with the next answer.
    pending_done: Vec<Request>,
    /// Uploads by the id of their `offer` (kept to offer again on resume).
    uploads: BTreeMap<u64, Upload>,
    pub offers: BTreeMap<u64, Offer>,
    downloads: HashMap<u64, Download>,
    /// `accept`s waiting for `download`: file → directory.
    accepting: HashMap<u64, PathBuf>,
    /// Files being hashed before they are offered.
    hashing: usize,
    /// Progress since the last [`Transfers::take_progress`].
    progress: Vec<Progress>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a file, from its start.
fn hash_file(file: &mut File, upto: Option<u64>) -> io::Result<Sha256> {
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 256 * 1024];
    let mut left = upto.unwrap_or(u64::MAX);
    while left > 0 {
        let want = buf.len().min(left.min(usize::MAX as u64) as usize);
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(hasher)
}

impl Transfers {
    pub fn new() -> Self {
        Transfers {
            next_id: FIRST_ID,
            ..Transfers::default()
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn take_progress(&mut self) -> Vec<Progress> {
        std::mem::take(&mut self.progress)
    }

    /// Whether a transfer is under way (the client waits for it to leave).
    pub fn busy(&self) -> bool {
        !self.uploads.is_empty()
            || !self.downloads.is_empty()
            || !self.accepting.is_empty()
            || self.hashing > 0
    }

    /// `!send to path`, first half: checks the name and opens the file,
    /// to be hashed off the network thread ([`spawn_hashing`]).
    pub fn prepare(&mut self, to: String, path: PathBuf) -> Result<Hashing, String> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{} has no usable file name", path.display()))?
            .to_string();
        validate_file_name(&name)?;
        let file = File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let size = file.metadata().map_err(|e| e.to_string())?.len();
        self.hashing += 1;
        Ok(Hashing {
            to,
            path,
            name,
            size,
            file,
        })
    }

    /// `!send`, second half: the file is hashed; the `offer` to send.
    pub fn hashed(&mut self, (job, sha256): Hashed) -> Result<Request, String> {
        self.hashing -= 1;
        let sha256 = sha256?;
        let Hashing {
            to,
            path,
            name,
            size,
            ..
        } = job;
        let id = self.id();
        let upload = Upload {
            path,
            to,
            name,
            size,
            sha256,
            file: None,
            reader: None,
            sent: 0,
            acked: 0,
        };
        let request = offer_of(id, &upload);
        self.uploads.insert(id, upload);
        Ok(request)
    }

    /// `!accept file [dir]`.
    pub fn accept(&mut self, file: u64, dir: PathBuf) -> Request {
        let offset = self.downloads.get(&file).map_or(0, |d| d.got);
        self.accepting.insert(file, dir);
        Request::Accept {
            id: self.id(),
            file,
            offset,
        }
    }

    pub fn reject(&mut self, file: u64) -> Request {
        self.offers.remove(&file);
        Request::Reject {
            id: self.id(),
            file,
        }
    }

    /// After a reconnect: offer unfinished uploads again (the server says
    /// where to resume) and accept unfinished downloads from what we have.
    pub fn resume(&mut self) -> Vec<Request> {
        let mut requests = Vec::new();
        let uploads = std::mem::take(&mut self.uploads);
        for (_, mut upload) in uploads {
            upload.file = None;
            upload.reader = None;
            let id = self.id();
            requests.push(offer_of(id, &upload));
            self.uploads.insert(id, upload);
        }
        let files: Vec<(u64, u64, PathBuf)> = self
            .downloads
            .iter()
            .map(|(&f, d)| (f, d.got, d.dir.clone()))
            .collect();
        for (file, offset, dir) in files {
            self.accepting.insert(file, dir);
            requests.push(Request::Accept {
                id: self.id(),
                file,
                offset,
            });
        }
        requests
    }

    /// Chunks to send now: as many as the window allows.
    pub fn pump(&mut self) -> (Vec<Request>, Says) {
        let mut requests = Vec::new();
        let mut says = Vec::new();
        let window = UPLOAD_WINDOW * CHUNK as u64;
        let mut failed = Vec::new();
        for (&id, up) in self.uploads.iter_mut() {
            let (Some(file), Some(reader)) = (up.file, up.reader.as_mut()) else {
                continue;
            };
            while up.sent < up.size && up.sent - up.acked < window {
                let len = (up.size - up.sent).min(CHUNK as u64) as usize;
                let mut buf = vec![0; len];
                if let Err(e) = reader.read_exact(&mut buf) {
                    says.push(format!("cannot read {}: {e}; not sent", up.path.display()));
                    failed.push(id);
                    break;
                }
                requests.push(Request::Chunk {
                    file,
                    offset: up.sent,
                    data: buf.into(),
                });
                up.sent += len as u64;
            }
        }
        for id in failed {
            self.uploads.remove(&id);
        }
        (requests, says)
    }

    /// A frame about files (others are ignored); returns requests to send
    /// and what to tell the user.
    pub fn on_frame(&mut self, frame: &ServerFrame) -> (Vec<Request>, Says) {
        let mut requests = Vec::new();
        let mut says = Vec::new();
        match frame {
            ServerFrame::Upload { id, file, offset } => {
                says.extend(self.on_upload(*id, *file, *offset));
            }
            ServerFrame::FileAck {
                file,
                bytes,
                complete,
            } => says.extend(self.on_file_ack(*file, *bytes, *complete)),
            ServerFrame::FileOffer {
                file,
                sender,
                name,
                size,
                sha256,
                ..
            } => {
                let offer = Offer {
                    sender: sender.clone(),
                    name: name.clone(),
                    size: *size,
                    sha256: sha256.clone(),
                };
                says.push(self.on_offer(*file, offer));
            }
            ServerFrame::FileAnswer {
                file,
                name,
                to,
                accepted,
            } => {
                let verb = if *accepted { "accepted" } else { "rejected" };
                says.push(format!("{to} {verb} {name} (file {file})"));
            }
            ServerFrame::Download {
                file,
                name,
                size,
                sha256,
                offset,
                ..
            } => match self.start_download(*file, name, *size, sha256, *offset) {
                Ok(Some(say)) => says.push(say),
                Ok(None) => {}
                Err(why) => says.push(why),
            },
            ServerFrame::Chunk { file, offset, data } => {
                let (request, say) = self.on_chunk(*file, *offset, data.as_slice());
                requests.extend(request);
                requests.append(&mut self.pending_done);
                says.extend(say);
            }
            ServerFrame::Error { id, code, reason } => self.on_error(*id, *code, reason),
            _ => {}
        }
        (requests, says)
    }

    /// The server took our offer `id` as `file`, and has `offset` bytes of
    /// it: start (or resume) sending, or nothing if it has all.
    fn on_upload(&mut self, id: u64, file: u64, offset: u64) -> Option<String> {
        let up = self.uploads.get_mut(&id)?;
        up.file = Some(file);
        if offset >= up.size {
            let say = format!("{} is on the server already (file {file})", up.name);
            self.uploads.remove(&id);
            return Some(say);
        }
        match File::open(&up.path).and_then(|mut f| {
            f.seek(SeekFrom::Start(offset))?;
            Ok(f)
        }) {
            Ok(f) => {
                up.reader = Some(f);
                up.sent = offset;
                up.acked = offset;
                if offset > 0 {
                    Some(format!("resuming {} at byte {offset}", up.name))
                } else {
                    Some(format!(
                        "sending {} ({} bytes) to {} as file {file}",
                        up.name, up.size, up.to
                    ))
                }
            }
            Err(e) => {
                let say = format!("cannot read {}: {e}", up.path.display());
                self.uploads.remove(&id);
                Some(say)
            }
        }
    }

    /// Someone offers us `file`: what to tell the user.
    fn on_offer(&mut self, file: u64, offer: Offer) -> String {
        let Offer {
            sender, name, size, ..
        } = &offer;
        let say = format!(
            "{sender} offers you {name} ({size} bytes): !accept {file} [dir] or !reject {file}"
        );
        self.offers.insert(file, offer);
        say
    }

    /// An error answering an offer of ours (by its id), or saying that an
    /// upload stopped (without one).
    fn on_error(&mut self, id: Option<u64>, code: ErrorCode, reason: &str) {
        match (id, code) {
            (Some(id), _) => {
                self.uploads.remove(&id);
            }
            (None, ErrorCode::HashMismatch | ErrorCode::StoreFailed) => {
                // "file N: …": that upload stopped.
                let stopped = reason
                    .strip_prefix("file ")
                    .and_then(|r| r.split(':').next())
                    .and_then(|n| n.parse::<u64>().ok());
                self.uploads
                    .retain(|_, u| u.file != stopped || stopped.is_none());
            }
            _ => {}
        }
    }

    /// The server has `bytes` of upload `file` (all of it if `complete`).
    fn on_file_ack(&mut self, file: u64, bytes: u64, complete: bool) -> Option<String> {
        let id = self
            .uploads
            .iter()
            .find(|(_, u)| u.file == Some(file))
            .map(|(&id, _)| id)?;
        let up = &self.uploads[&id];
        self.progress.push(Progress {
            upload: true,
            file,
            name: up.name.clone(),
            done: if complete { up.size } else { bytes },
            total: up.size,
        });
        if complete {
            let up = self.uploads.remove(&id).expect("found");
            return Some(format!(
                "{} is on the server; {} is offered it (file {file})",
                up.name, up.to
            ));
        }
        if let Some(up) = self.uploads.get_mut(&id) {
            up.acked = up.acked.max(bytes);
        }
        None
    }

    fn start_download(
        &mut self,
        file: u64,
        name: &str,
        size: u64,
        sha256: &str,
        offset: u64,
    ) -> Result<Option<String>, String> {
        let Some(dir) = self.accepting.remove(&file) else {
            return Ok(None);
        };
        // The server checked the name; a client checks again, since the
        // name decides where bytes are written.
        validate_file_name(name).map_err(|why| format!("file {file} refused: {why}"))?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let part = dir.join(format!("{name}.part"));
        let mut writer = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&part)
            .map_err(|e| format!("cannot write {}: {e}", part.display()))?;
        writer.set_len(offset).map_err(|e| e.to_string())?;
        let hasher = hash_file(&mut writer, Some(offset)).map_err(|e| e.to_string())?;
        writer
            .seek(SeekFrom::Start(offset))
            .map_err(|e| e.to_string())?;
        let say = if offset > 0 {
            format!("resuming {name} at byte {offset}")
        } else {
            format!("receiving {name} ({size} bytes) into {}", dir.display())
        };
        self.downloads.insert(
            file,
            Download {
                dir,
                name: name.to_string(),
                size,
                sha256: sha256.to_string(),
                part,
                writer,
                hasher,
                got: offset,
            },
        );
        Ok(Some(say))
    }

    fn on_chunk(
        &mut self,
        file: u64,
        offset: u64,
        bytes: &[u8],
    ) -> (Option<Request>, Option<String>) {
        let Some(d) = self.downloads.get_mut(&file) else {
            return (None, None);
        };
        if offset != d.got {
            return (None, None);
        }
        if let Err(e) = d.writer.write_all(bytes) {
            self.downloads.remove(&file);
            return (None, Some(format!("cannot write file {file}: {e}")));
        }
        d.hasher.update(bytes);
        d.got += bytes.len() as u64;
        self.progress.push(Progress {
            upload: false,
            file,
            name: d.name.clone(),
            done: d.got,
            total: d.size,
        });
        let ack = Request::FileAck { file, bytes: d.got };
        if d.got < d.size {
            return (Some(ack), None);
        }
        let d = self.downloads.remove(&file).expect("present");
        self.offers.remove(&file);
        let got = hex(&d.hasher.finalize());
        if got != d.sha256 {
            let _ = std::fs::remove_file(&d.part);
            return (
                Some(ack),
                Some(format!(
                    "{}: SHA-256 mismatch (got {got}, offered {}); the download was deleted",
                    d.name, d.sha256
                )),
            );
        }
        let _ = d.writer.sync_all();
        drop(d.writer);
        let say = match free_name(&d.dir, &d.name).and_then(|path| {
            std::fs::rename(&d.part, &path)?;
            Ok(path)
        }) {
            Ok(path) => format!(
                "received {} ({} bytes, SHA-256 verified)",
                path.display(),
                d.size
            ),
            Err(e) => format!("cannot save {}: {e}", d.name),
        };
        // `downloaded` tells the server it may let the file go.
        let done = Request::Downloaded {
            id: self.id(),
            file,
        };
        self.pending_done.push(done);
        (Some(ack), Some(say))
    }
}

fn offer_of(id: u64, up: &Upload) -> Request {
    Request::Offer {
        id,
        to: up.to.clone(),
        name: up.name.clone(),
        size: up.size,
        sha256: up.sha256.clone(),
    }
}
