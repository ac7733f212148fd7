//! File offers: who offered what to whom, each receiver's answer, and the
//! transfers under way with their flow control. The bytes never come here:
//! the dispatcher hands them to the file thread ([`crate::files`]) and
//! routes what it reads back, so chat frames interleave with chunks on the
//! same connection and a transfer never fills a send queue.
//!
//! A receiver is "a list of users": an offer to a nickname has one, and an
//! offer to a group would have its members.
//!
//! In a cluster every node keeps all the offers: another node's changes
//! arrive as the whole table ([`ChatState::files_reloaded`]), the bytes are
//! in the shared spool, and a transfer's offset is the spool's (an upload
//! resumes from what the part file holds), so it resumes on any node.

use std::collections::{BTreeMap, HashMap, HashSet};

use chat_common::codec::encode;
use chat_common::protocol::{
    validate_file_name, CHUNK, DOWNLOAD_CHUNK, DOWNLOAD_WINDOW, UPLOAD_WINDOW,
};
use chat_common::{ErrorCode, ServerFrame};

use super::Op;
use super::{ChatState, Deliver, Rejection};
use crate::files::{Done, FileId, Job};
use crate::framework::ConnId;
use crate::store::{Answer, FileOp, FileReceiver, FileRow, Origin, UserId};

/// Limits on what is spooled (`--max-file-size`, `--spool-quota`,
/// `--spool-retention`).
#[derive(Debug, Clone, Copy)]
pub struct FileLimits {
    pub max_size: u64,
    pub quota: u64,
    pub retention_ms: u64,
}

impl Default for FileLimits {
    fn default() -> Self {
        FileLimits {
            max_size: 1 << 30,
            quota: 4 << 30,
            retention_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

/// A download under way: what was read for it and what the client wrote.
#[derive(Debug)]
struct Download {
    next: u64,
    acked: u64,
    size: u64,
}

/// An upload under way.
#[derive(Debug)]
struct Uploading {
    /// The connection sending it.
    conn: ConnId,
    /// The bytes the file thread has written: the sender may be at most
    /// the upload window ahead of them.
    written: u64,
}

/// The offers (as stored) and the transfers under way.
#[derive(Debug, Default)]
pub(super) struct Files {
    offers: BTreeMap<FileId, FileRow>,
    next_id: FileId,
    /// Uploads under way.
    uploads: HashMap<FileId, Uploading>,
    downloads: HashMap<(ConnId, FileId), Download>,
    limits: FileLimits,
    /// The offers known to be in the store (loaded, or in the last reload):
    /// one of them missing from a reload was deleted by another node.
    shared: HashSet<FileId>,
}

impl Files {
    pub(super) fn new(rows: Vec<FileRow>, limits: FileLimits) -> Files {
        let next_id = rows.iter().map(|r| r.id).max().unwrap_or(0) + 1;
        Files {
            shared: rows.iter().map(|r| r.id).collect(),
            offers: rows.into_iter().map(|r| (r.id, r)).collect(),
            next_id,
            uploads: HashMap::new(),
            downloads: HashMap::new(),
            limits,
        }
    }

    /// New offers take ids from `first` on: this node's block, so that
    /// ids never collide across nodes.
    pub(super) fn use_block(&mut self, first: i64) {
        self.next_id = self.next_id.max(first as u64);
    }
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn offer_frame(row: &FileRow, sender: &str) -> ServerFrame {
    ServerFrame::FileOffer {
        file: row.id,
        sender: sender.to_string(),
        name: row.name.clone(),
        size: row.size,
        sha256: row.sha256.clone(),
        time: row.time,
    }
}

fn no_such_file(file: FileId) -> Rejection {
    (
        ErrorCode::NoSuchFile,
        format!("no file {file} is offered to you"),
    )
}

impl ChatState {
    /// Starts with the offers the store kept and the file limits.
    pub fn with_files(mut self, rows: Vec<FileRow>, limits: FileLimits) -> Self {
        self.files = Files::new(rows, limits);
        self
    }

    /// The ids of the offers kept: the spool deletes every other file.
    pub fn file_ids(&self) -> Vec<FileId> {
        self.files.offers.keys().copied().collect()
    }

    fn user_of(&self, conn: ConnId) -> Option<UserId> {
        self.sessions.get(&conn)?.user
    }

    /// Who an offer to `to` goes to: one user, or every other member of a
    /// group (`#name`) the sender is in.
    fn receivers_of(&self, sender: UserId, to: &str) -> Result<Vec<UserId>, Rejection> {
        if !to.starts_with(chat_common::protocol::GROUP_PREFIX) {
            return Ok(vec![self.user_named(to)?]);
        }
        let (_, members) = self.group_members(sender, to)?;
        let others: Vec<UserId> = members.iter().copied().filter(|&u| u != sender).collect();
        if others.is_empty() {
            return Err((ErrorCode::BadRequest, format!("nobody else is in {to}")));
        }
        Ok(others)
    }

    /// `offer`: checks it, stores it, and asks the file thread where the
    /// upload starts; answered by `upload` when it says.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn offer(
        &mut self,
        conn: ConnId,
        id: u64,
        to: &str,
        name: String,
        size: u64,
        sha256: String,
        now: u64,
        out: &mut impl Deliver,
    ) -> Result<Option<ServerFrame>, Rejection> {
        let sender = self.user_of(conn).ok_or_else(|| no_such_file(0))?;
        validate_file_name(&name).map_err(|why| (ErrorCode::BadFileName, why))?;
        let limits = self.files.limits;
        if size > limits.max_size {
            return Err((
                ErrorCode::FileTooLarge,
                format!(
                    "{name} has {size} bytes; this server takes files of at most {} bytes",
                    limits.max_size
                ),
            ));
        }
        if size == 0 {
            return Err((ErrorCode::BadRequest, format!("{name} is empty")));
        }
        if !is_sha256(&sha256) {
            return Err((
                ErrorCode::BadRequest,
                "sha256 must be 64 lowercase hex digits".into(),
            ));
        }
        let mut users = self.receivers_of(sender, to)?;
        users.sort_unstable();
        // The same offer again resumes its upload (or finds it done).
        let same = self.files.offers.values().find(|r| {
            r.sender == sender
                && !answered(r)
                && r.name == name
                && r.sha256 == sha256
                && r.size == size
                && r.receivers.iter().map(|x| x.user).eq(users.iter().copied())
        });
        let file = match same {
            Some(row) if row.complete => {
                return Ok(Some(ServerFrame::Upload {
                    id,
                    file: row.id,
                    offset: size,
                }))
            }
            Some(row) => row.id,
            None => {
                let spooled: u64 = self
                    .files
                    .offers
                    .values()
                    .filter(|r| r.sender == sender && !answered(r))
                    .map(|r| r.size)
                    .sum();
                if spooled.saturating_add(size) > limits.quota {
                    return Err((
                        ErrorCode::QuotaExceeded,
                        format!(
                            "you have {spooled} bytes waiting on the server; with {size} more \
                             you would pass your quota of {} bytes",
                            limits.quota
                        ),
                    ));
                }
                let file = self.files.next_id;
                self.files.next_id += 1;
                let row = FileRow {
                    id: file,
                    sender,
                    name,
                    size,
                    sha256: sha256.clone(),
                    time: now,
                    complete: false,
                    receivers: users
                        .into_iter()
                        .map(|user| FileReceiver {
                            user,
                            answer: Answer::Pending,
                            told: false,
                        })
                        .collect(),
                };
                out.store(Op::File(FileOp::Offer(row.clone())));
                self.files.offers.insert(file, row);
                file
            }
        };
        self.files
            .uploads
            .insert(file, Uploading { conn, written: 0 });
        out.files(Job::Open {
            conn,
            id,
            file,
            size,
            sha256,
        });
        Ok(None)
    }

    /// A chunk of an upload this connection is sending; others are dropped
    /// (the failure that stopped the upload was reported once).
    pub(super) fn chunk(
        &mut self,
        conn: ConnId,
        file: FileId,
        offset: u64,
        data: Vec<u8>,
        out: &mut impl Deliver,
    ) {
        let Some(upload) = self.files.uploads.get(&file).filter(|u| u.conn == conn) else {
            return;
        };
        // The window bounds what waits for the file thread: a client that
        // ignores it is stopped rather than queued without end.
        if offset + data.len() as u64 > upload.written + UPLOAD_WINDOW * CHUNK as u64 {
            self.files.uploads.remove(&file);
            out.files(Job::Close { file });
            let reason = format!(
                "file {file}: the chunk at {offset} is beyond the upload window \
                 ({UPLOAD_WINDOW} chunks past the last file_ack); the upload stopped"
            );
            let error = ServerFrame::Error {
                id: None,
                code: ErrorCode::BadFrame,
                reason,
            };
            return out.send(conn, encode(&error));
        }
        out.files(Job::Write {
            conn,
            file,
            offset,
            data,
        });
    }

    /// What the file thread did.
    pub fn file_done(&mut self, done: Done, out: &mut impl Deliver) {
        match done {
            Done::Opened {
                conn,
                id,
                file,
                result,
            } => {
                let frame = match result {
                    Ok(offset) => {
                        if let Some(upload) = self.files.uploads.get_mut(&file) {
                            upload.written = offset;
                        }
                        ServerFrame::Upload { id, file, offset }
                    }
                    Err(reason) => {
                        self.files.uploads.remove(&file);
                        ServerFrame::Error {
                            id: Some(id),
                            code: ErrorCode::StoreFailed,
                            reason,
                        }
                    }
                };
                out.send(conn, encode(&frame));
            }
            Done::Written {
                conn,
                file,
                bytes,
                complete,
            } => {
                let frame = encode(&ServerFrame::FileAck {
                    file,
                    bytes,
                    complete,
                });
                if let Some(upload) = self.files.uploads.get_mut(&file) {
                    upload.written = bytes;
                }
                if !complete {
                    return out.send(conn, frame);
                }
                self.uploaded(file, out);
                // The last ack says "stored": it goes once the store has
                // committed the offer as complete, like a message's ack.
                match self.sessions.get_mut(&conn) {
                    Some(session) => {
                        session.in_flight += 1;
                        out.store(Op::Echo {
                            origin: Origin { conn, id: 0 },
                            then: frame,
                        });
                    }
                    None => out.send(conn, frame),
                }
            }
            Done::Read { conn, frame, .. } => out.send(conn, frame),
            Done::Failed {
                conn,
                file,
                reason,
                mismatch,
            } => {
                self.files.uploads.remove(&file);
                self.files.downloads.remove(&(conn, file));
                let code = if mismatch {
                    ErrorCode::HashMismatch
                } else {
                    ErrorCode::StoreFailed
                };
                if mismatch {
                    self.delete_file(file, out);
                }
                let reason = format!("file {file}: {reason}");
                out.send(
                    conn,
                    encode(&ServerFrame::Error {
                        id: None,
                        code,
                        reason,
                    }),
                );
            }
        }
    }

    /// The upload is complete and verified: its receivers online are offered it.
    fn uploaded(&mut self, file: FileId, out: &mut impl Deliver) {
        self.files.uploads.remove(&file);
        let Some(row) = self.files.offers.get_mut(&file) else {
            return;
        };
        row.complete = true;
        out.store(Op::File(FileOp::Complete(file)));
        let frame = encode(&offer_frame(row, self.accounts.nick(row.sender)));
        for r in &row.receivers {
            if let Some(&conn) = self.online.get(&r.user) {
                out.send(conn, frame.clone());
            }
        }
    }

    /// The offer `file` to the user of `conn` (the user, the offer, and
    /// that user's answer so far), or why not.
    fn offered(&self, conn: ConnId, file: FileId) -> Result<(UserId, &FileRow, Answer), Rejection> {
        let user = self.user_of(conn).ok_or_else(|| no_such_file(file))?;
        let row = self
            .files
            .offers
            .get(&file)
            .filter(|r| r.complete)
            .ok_or_else(|| no_such_file(file))?;
        let answer = row
            .receivers
            .iter()
            .find(|r| r.user == user)
            .ok_or_else(|| no_such_file(file))?
            .answer;
        Ok((user, row, answer))
    }

    /// Records `user`'s answer to `file`, telling the sender when it changes
    /// from pending (now if online, else at its next login).
    fn set_answer(&mut self, file: FileId, user: UserId, answer: Answer, out: &mut impl Deliver) {
        let Some(row) = self.files.offers.get_mut(&file) else {
            return;
        };
        let Some(r) = row.receivers.iter_mut().find(|r| r.user == user) else {
            return;
        };
        let news = r.answer == Answer::Pending || answer == Answer::Rejected;
        r.answer = answer;
        if news {
            r.told = false;
            if let Some(&conn) = self.online.get(&row.sender) {
                r.told = true;
                let frame = ServerFrame::FileAnswer {
                    file,
                    name: row.name.clone(),
                    to: self.accounts.nick(user).to_string(),
                    accepted: answer != Answer::Rejected,
                };
                out.send(conn, encode(&frame));
            }
        }
        let told = r.told;
        out.store(Op::File(FileOp::Answer {
            file,
            user,
            answer,
            told,
        }));
        self.settle_file(file, out);
    }

    /// Once every receiver has answered, the bytes go; the offer goes too
    /// once the sender has been told every answer.
    fn settle_file(&mut self, file: FileId, out: &mut impl Deliver) {
        let Some(row) = self.files.offers.get(&file) else {
            return;
        };
        if !answered(row) {
            return;
        }
        if row.receivers.iter().all(|r| r.told) {
            self.delete_file(file, out);
        } else {
            self.files.downloads.retain(|&(_, f), _| f != file);
            out.files(Job::Delete { file });
        }
    }

    /// `accept`: answered by `download`, then the chunks as the client
    /// acknowledges them.
    pub(super) fn accept(
        &mut self,
        conn: ConnId,
        id: u64,
        file: FileId,
        offset: u64,
        out: &mut impl Deliver,
    ) -> Result<Option<ServerFrame>, Rejection> {
        let (user, row, answer) = self.offered(conn, file)?;
        match answer {
            Answer::Rejected => {
                return Err((ErrorCode::NoSuchFile, format!("you rejected file {file}")))
            }
            Answer::Downloaded => {
                return Err((
                    ErrorCode::NoSuchFile,
                    format!("you downloaded file {file} already"),
                ))
            }
            _ => {}
        }
        if offset > row.size {
            return Err((
                ErrorCode::BadRequest,
                format!("file {file} has only {} bytes", row.size),
            ));
        }
        let frame = ServerFrame::Download {
            id,
            file,
            name: row.name.clone(),
            size: row.size,
            sha256: row.sha256.clone(),
            offset,
        };
        let size = row.size;
        if answer == Answer::Pending {
            self.set_answer(file, user, Answer::Accepted, out);
        }
        out.send(conn, encode(&frame));
        self.files.downloads.insert(
            (conn, file),
            Download {
                next: offset,
                acked: offset,
                size,
            },
        );
        self.pump(conn, file, out);
        Ok(None)
    }

    /// Reads the next chunks of a download, up to the window.
    fn pump(&mut self, conn: ConnId, file: FileId, out: &mut impl Deliver) {
        let Some(d) = self.files.downloads.get_mut(&(conn, file)) else {
            return;
        };
        let window = DOWNLOAD_WINDOW * DOWNLOAD_CHUNK as u64;
        while d.next < d.size && d.next - d.acked < window {
            let len = (d.size - d.next).min(DOWNLOAD_CHUNK as u64) as usize;
            out.files(Job::Read {
                conn,
                file,
                offset: d.next,
                len,
            });
            d.next += len as u64;
        }
        if d.acked >= d.size {
            self.files.downloads.remove(&(conn, file));
        }
    }

    /// The client wrote a download up to `bytes`.
    pub(super) fn file_ack(
        &mut self,
        conn: ConnId,
        file: FileId,
        bytes: u64,
        out: &mut impl Deliver,
    ) {
        if let Some(d) = self.files.downloads.get_mut(&(conn, file)) {
            d.acked = d.acked.max(bytes.min(d.next));
            self.pump(conn, file, out);
        }
    }

    /// `downloaded`: the receiver has the file and its hash matched.
    pub(super) fn downloaded(
        &mut self,
        conn: ConnId,
        id: u64,
        file: FileId,
        out: &mut impl Deliver,
    ) -> Result<Option<ServerFrame>, Rejection> {
        let (user, _, _) = self.offered(conn, file)?;
        self.files.downloads.remove(&(conn, file));
        self.set_answer(file, user, Answer::Downloaded, out);
        Ok(Some(ack(id)))
    }

    /// `reject`: the sender is told; the file goes once all have answered.
    pub(super) fn reject(
        &mut self,
        conn: ConnId,
        id: u64,
        file: FileId,
        out: &mut impl Deliver,
    ) -> Result<Option<ServerFrame>, Rejection> {
        let (user, _, answer) = self.offered(conn, file)?;
        if answer == Answer::Downloaded {
            return Err((
                ErrorCode::BadRequest,
                format!("you downloaded file {file} already"),
            ));
        }
        self.files.downloads.remove(&(conn, file));
        if answer != Answer::Rejected {
            self.set_answer(file, user, Answer::Rejected, out);
        }
        Ok(Some(ack(id)))
    }

    /// Forgets the offer and deletes its bytes.
    fn delete_file(&mut self, file: FileId, out: &mut impl Deliver) {
        if self.files.offers.remove(&file).is_some() {
            out.store(Op::File(FileOp::Delete(file)));
        }
        self.files.uploads.remove(&file);
        self.files.downloads.retain(|&(_, f), _| f != file);
        out.files(Job::Delete { file });
    }

    /// At login: the offers waiting for this user's answer, and the answers
    /// to its own offers it has not been told.
    pub(super) fn files_at_login(&mut self, conn: ConnId, user: UserId, out: &mut impl Deliver) {
        let mut own = Vec::new();
        for row in self.files.offers.values() {
            if row.complete
                && row
                    .receivers
                    .iter()
                    .any(|r| r.user == user && !r.answer.is_final())
            {
                out.send(
                    conn,
                    encode(&offer_frame(row, self.accounts.nick(row.sender))),
                );
            }
            if row.sender == user {
                own.push(row.id);
            }
        }
        for file in own {
            self.tell_answers(conn, file, out);
        }
    }

    /// Tells the sender of `file`, on `conn`, the answers it has not been
    /// told; the offer settles if that was all.
    fn tell_answers(&mut self, conn: ConnId, file: FileId, out: &mut impl Deliver) {
        let Some(row) = self.files.offers.get_mut(&file) else {
            return;
        };
        let mut told = Vec::new();
        for r in row
            .receivers
            .iter_mut()
            .filter(|r| !r.told && r.answer != Answer::Pending)
        {
            r.told = true;
            told.push(r.user);
            let frame = ServerFrame::FileAnswer {
                file,
                name: row.name.clone(),
                to: self.accounts.nick(r.user).to_string(),
                accepted: r.answer != Answer::Rejected,
            };
            out.send(conn, encode(&frame));
        }
        if told.is_empty() {
            return;
        }
        for user in told {
            out.store(Op::File(FileOp::Told { file, user }));
        }
        self.settle_file(file, out);
    }

    /// The offers as the store holds them now (another node changed one),
    /// merged into ours. Answers only move forward and `complete` only
    /// becomes true, so a reload read before a change of ours was committed
    /// undoes nothing. An offer newly complete is offered to its receivers
    /// online here, answers given on other nodes are told to a sender online
    /// here, and an offer deleted elsewhere is forgotten.
    pub(super) fn files_reloaded(&mut self, rows: Vec<FileRow>, out: &mut impl Deliver) {
        let ids: HashSet<FileId> = rows.iter().map(|r| r.id).collect();
        let gone: Vec<FileId> = self
            .files
            .offers
            .keys()
            .filter(|id| self.files.shared.contains(id) && !ids.contains(id))
            .copied()
            .collect();
        for file in gone {
            self.files.offers.remove(&file);
            self.files.uploads.remove(&file);
            self.files.downloads.retain(|&(_, f), _| f != file);
            out.files(Job::Delete { file });
        }
        let mut completed = Vec::new();
        for row in rows {
            let id = row.id;
            match self.files.offers.entry(id) {
                std::collections::btree_map::Entry::Vacant(e) => {
                    if e.insert(row).complete {
                        completed.push(id);
                    }
                }
                std::collections::btree_map::Entry::Occupied(mut e) => {
                    let mine = e.get_mut();
                    if row.complete && !mine.complete {
                        mine.complete = true;
                        completed.push(id);
                    }
                    for theirs in row.receivers {
                        let Some(r) = mine.receivers.iter_mut().find(|r| r.user == theirs.user)
                        else {
                            continue;
                        };
                        // As in `set_answer`: only news (a first answer,
                        // or a reject) is told again.
                        let news = r.answer == Answer::Pending || theirs.answer == Answer::Rejected;
                        if theirs.answer as u8 > r.answer as u8 {
                            r.told = theirs.told || (r.told && !news);
                            r.answer = theirs.answer;
                        } else if theirs.answer == r.answer {
                            r.told |= theirs.told;
                        }
                    }
                }
            }
        }
        self.files.shared = ids;
        for file in completed {
            let row = &self.files.offers[&file];
            let frame = encode(&offer_frame(row, self.accounts.nick(row.sender)));
            for r in row.receivers.iter().filter(|r| !r.answer.is_final()) {
                if let Some(&conn) = self.online.get(&r.user) {
                    out.send(conn, frame.clone());
                }
            }
        }
        let senders: Vec<(FileId, ConnId)> = self
            .files
            .offers
            .values()
            .filter_map(|row| Some((row.id, *self.online.get(&row.sender)?)))
            .collect();
        for (file, conn) in senders {
            self.tell_answers(conn, file, out);
        }
        // Answered and told, here or on the answering node: the offer goes.
        let done: Vec<FileId> = self
            .files
            .offers
            .values()
            .filter(|row| answered(row) && row.receivers.iter().all(|r| r.told))
            .map(|row| row.id)
            .collect();
        for file in done {
            self.delete_file(file, out);
        }
    }

    /// The connection is gone: its uploads stop (the bytes stay, to
    /// resume), its downloads too.
    pub(super) fn files_gone(&mut self, conn: ConnId, out: &mut impl Deliver) {
        let files = &mut self.files;
        files.uploads.retain(|&file, upload| {
            if upload.conn == conn {
                out.files(Job::Close { file });
            }
            upload.conn != conn
        });
        files.downloads.retain(|&(c, _), _| c != conn);
    }

    /// Deletes the offers older than `--spool-retention`.
    pub fn expire_files(&mut self, now: u64, out: &mut impl Deliver) {
        let retention = self.files.limits.retention_ms;
        let old: Vec<FileId> = self
            .files
            .offers
            .values()
            .filter(|r| now.saturating_sub(r.time) >= retention)
            .map(|r| r.id)
            .collect();
        for file in old {
            tracing::info!("file {file} expired after {} s", retention / 1000);
            self.delete_file(file, out);
        }
    }
}

/// Every receiver has answered: the bytes are no longer needed.
fn answered(row: &FileRow) -> bool {
    row.receivers.iter().all(|r| r.answer.is_final())
}

fn ack(id: u64) -> ServerFrame {
    ServerFrame::Ack {
        id,
        offline: false,
        duplicate: false,
    }
}
