//! What other nodes commit, delivered to this node's users (`--cluster`;
//! on SQLite none of this runs). Delivery by cursor: each live session
//! keeps the last seq of its own stream written to it, and the node the
//! last public seq it broadcast to its room. A head beyond a cursor (from
//! this node's own commit, the doorbell, or the 1 s poll) makes the store
//! read the stream after the cursor (`Op::Tail`), delivered in order.
//! **Never a seq beyond cursor + 1**: a client drops what is at or below
//! the last seq it showed, so a skipped seq would be lost without a trace.

use chat_common::codec::encode;
use chat_common::{Frame, ServerFrame};

use super::{ChatState, Deliver, Op, Phase};
use crate::framework::ConnId;
use crate::store::{Heard, Loaded, StoreError, Stream, UserId, TAIL_MESSAGES};

/// Where a stream's delivery stands on this node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Cursor {
    /// The last seq delivered.
    pub(super) at: u64,
    /// The highest head heard of.
    pub(super) head: u64,
    /// A tail is at the store.
    pub(super) tailing: bool,
}

impl Cursor {
    pub(super) fn at(seq: u64) -> Cursor {
        Cursor {
            at: seq,
            head: seq,
            tailing: false,
        }
    }

    /// Whether a tail should go to the store now (and marks it sent).
    fn wants_tail(&mut self) -> bool {
        if self.head > self.at && !self.tailing {
            self.tailing = true;
            true
        } else {
            false
        }
    }
}

/// What to do with a message of seq `seq` that is ready to go out.
enum Step {
    /// Delivered already.
    Old,
    /// The next one: out it goes.
    Next,
    /// Beyond the next one: something before it must come first.
    Gap,
}

fn step(cursor: &Cursor, seq: u64) -> Step {
    if seq <= cursor.at {
        Step::Old
    } else if seq == cursor.at + 1 {
        Step::Next
    } else {
        Step::Gap
    }
}

/// A message read back by a tail, as a live frame (`away` is for a
/// backlog: a live message is never "while away").
fn frame_of(m: Loaded) -> Frame {
    encode(&ServerFrame::Message {
        seq: m.seq,
        sender: m.sender,
        receiver: m.receiver,
        text: m.text,
        time: m.time,
        away: false,
    })
}

impl ChatState {
    /// Shares a database with other nodes: new accounts and groups take
    /// ids from `first_id` on, and the room's public cursor starts at
    /// `public_head`.
    pub fn with_cluster(mut self, first_id: i64, public_head: u64) -> Self {
        self.cluster = true;
        self.accounts.use_block(first_id);
        self.groups.use_block(first_id);
        self.files.use_block(first_id);
        self.room = Cursor::at(public_head);
        self
    }

    /// Whether other nodes share the store.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// A public message is stored (`frame` is it): broadcast if it is the
    /// room's next, else a tail fills in what comes before.
    pub(super) fn deliver_public(&mut self, seq: u64, frame: Frame, out: &mut impl Deliver) {
        if !self.cluster {
            return out.broadcast(frame);
        }
        match step(&self.room, seq) {
            Step::Old => {}
            Step::Next => {
                self.room.at = seq;
                self.room.head = self.room.head.max(seq);
                out.broadcast(frame);
            }
            Step::Gap => {
                self.room.head = self.room.head.max(seq);
                self.tail_public(out);
            }
        }
    }

    /// A message in `conn`'s (live) user's stream is stored: sent if it is
    /// the next, else a tail fills in what comes before.
    pub(super) fn deliver_own(
        &mut self,
        conn: ConnId,
        seq: u64,
        frame: Frame,
        out: &mut impl Deliver,
    ) {
        if !self.cluster {
            return out.send(conn, frame);
        }
        let Some(session) = self.sessions.get_mut(&conn) else {
            return;
        };
        let cursor = &mut session.cursor;
        match step(cursor, seq) {
            Step::Old => {}
            Step::Next => {
                cursor.at = seq;
                cursor.head = cursor.head.max(seq);
                out.send(conn, frame);
            }
            Step::Gap => {
                cursor.head = cursor.head.max(seq);
                let user = session.user.expect("a live session has a user");
                self.tail_own(conn, user, out);
            }
        }
    }

    fn tail_public(&mut self, out: &mut impl Deliver) {
        if self.room.wants_tail() {
            out.store(Op::Tail {
                stream: Stream::Public,
                after: self.room.at,
            });
        }
    }

    fn tail_own(&mut self, conn: ConnId, user: UserId, out: &mut impl Deliver) {
        let Some(session) = self.sessions.get_mut(&conn) else {
            return;
        };
        if session.cursor.wants_tail() {
            out.store(Op::Tail {
                stream: Stream::User(user),
                after: session.cursor.at,
            });
        }
    }

    /// A session goes live at `last_seq` of its stream (its last backlog
    /// page's): in a cluster, what another node committed to it since the
    /// page was read is tailed at once, before anything newer can go out.
    pub(super) fn go_live(
        &mut self,
        conn: ConnId,
        user: UserId,
        last_seq: u64,
        out: &mut impl Deliver,
    ) {
        if !self.cluster {
            return;
        }
        let Some(session) = self.sessions.get_mut(&conn) else {
            return;
        };
        session.cursor = Cursor {
            at: last_seq,
            head: last_seq.saturating_add(1),
            tailing: false,
        };
        self.tail_own(conn, user, out);
    }

    /// What the cluster listener heard.
    pub fn heard(&mut self, heard: Heard, now: u64, out: &mut impl Deliver) {
        match heard {
            Heard::Heads(heads) => self.heads(heads, out),
            Heard::Poll => self.poll(out),
            Heard::Accounts(accounts) => {
                for account in accounts {
                    let nick = account.nick.clone();
                    let Some(phantom) = self.accounts.learn(account) else {
                        continue;
                    };
                    tracing::warn!(
                        "{nick} was registered on another node at the same moment as here; \
                         the session that registered it here must log in again"
                    );
                    if let Some(&conn) = self.online.get(&phantom) {
                        self.lost_the_name(conn, out);
                    }
                }
            }
            Heard::Groups(rows) => self.groups.reload(rows),
            Heard::Online { users, left } => self.remote_online(users, left),
            Heard::TakenOver(user) => self.taken_over_elsewhere(user, out),
            Heard::Sanctions(list) => self.sanctions_reloaded(list, now, out),
            Heard::Kicked { user, reason } => self.kicked_elsewhere(user, &reason, out),
            Heard::Files(rows) => self.files_reloaded(rows, out),
            Heard::Failures(failures) => self.failed_elsewhere(failures, now, out),
            Heard::Delivered(deliveries) => self.delivered(deliveries, out),
            Heard::Nodes { here, live } => self.nodes_heard(here, live),
        }
    }

    /// Closes a session whose account was never stored: another node
    /// registered its name first. Its client logs in again, to the stored
    /// account (with that account's password).
    fn lost_the_name(&mut self, conn: ConnId, out: &mut impl Deliver) {
        let frame = ServerFrame::Error {
            id: None,
            code: chat_common::ErrorCode::NickTaken,
            reason: "this nickname was registered on another server of the cluster at the \
                     same moment; log in again"
                .into(),
        };
        out.send(conn, encode(&frame));
        self.leave(conn, "registered elsewhere", out);
    }

    /// Asks the store where the public stream and the live users' streams
    /// end (the backstop behind the doorbell, once a second).
    pub fn poll(&mut self, out: &mut impl Deliver) {
        if !self.cluster {
            return;
        }
        let mut streams = vec![Stream::Public];
        streams.extend(
            self.sessions
                .values()
                .filter(|s| s.phase == Phase::Online)
                .filter_map(|s| s.user.map(Stream::User)),
        );
        out.store(Op::Heads(streams));
    }

    /// Streams end at these heads: tail those behind.
    pub(super) fn heads(&mut self, heads: Vec<(Stream, u64)>, out: &mut impl Deliver) {
        if !self.cluster {
            return;
        }
        for (stream, head) in heads {
            match stream {
                Stream::Public => {
                    self.room.head = self.room.head.max(head);
                    self.tail_public(out);
                }
                Stream::User(user) => {
                    let Some(conn) = self.live_conn(user) else {
                        continue;
                    };
                    let session = self.sessions.get_mut(&conn).expect("live");
                    session.cursor.head = session.cursor.head.max(head);
                    self.tail_own(conn, user, out);
                }
            }
        }
    }

    /// The store read a stream after `after`: delivered in order from the
    /// cursor on, and tailed again while the head is still ahead.
    pub(super) fn tailed(
        &mut self,
        stream: Stream,
        after: u64,
        result: Result<Vec<Loaded>, StoreError>,
        out: &mut impl Deliver,
    ) {
        let conn = match stream {
            Stream::Public => None,
            Stream::User(user) => match self.live_conn(user) {
                Some(conn) => Some(conn),
                None => return,
            },
        };
        let cursor = match conn {
            None => &mut self.room,
            Some(conn) => &mut self.sessions.get_mut(&conn).expect("live").cursor,
        };
        cursor.tailing = false;
        let rows = match result {
            Ok(rows) => rows,
            Err(err) => {
                tracing::warn!("reading {stream:?} after {after}: {err}; again at the next poll");
                return;
            }
        };
        let (count, mut frames) = (rows.len(), Vec::new());
        for m in rows {
            match step(cursor, m.seq) {
                Step::Old => continue,
                Step::Next => {
                    cursor.at = m.seq;
                    cursor.head = cursor.head.max(m.seq);
                    frames.push(frame_of(m));
                }
                // Seqs are dense: a hole means a row not visible yet; the
                // next tail reads from here.
                Step::Gap => break,
            }
        }
        // Nothing new although a head said so: it was read before that
        // commit, or the head was wrong; the next doorbell or poll says.
        if count < TAIL_MESSAGES && frames.is_empty() {
            cursor.head = cursor.at;
        }
        match conn {
            None => {
                for frame in frames {
                    out.broadcast(frame);
                }
                self.tail_public(out);
            }
            Some(conn) => {
                for frame in frames {
                    out.send(conn, frame);
                }
                if let Stream::User(user) = stream {
                    self.tail_own(conn, user, out);
                }
            }
        }
    }
}
