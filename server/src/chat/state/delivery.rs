//! Messages through the store: accepted by [`ChatState::message`], then
//! acknowledged and delivered by [`ChatState::stored`] once durable;
//! `history`/`search` answers and `delivered` notices come back the same way.

use chat_common::codec::encode;
use chat_common::protocol::{GROUP_PREFIX, MAX_CID, MAX_HISTORY};
use chat_common::{ErrorCode, ServerFrame, Stored, EVERYONE};

use super::{ChatState, Deliver, Phase, Rejection};
use super::{Op, Reply};
use crate::framework::ConnId;
use crate::store::{Appended, Delivery, Loaded, NewMessage, Origin, StoreError, To, UserId};

impl ChatState {
    /// The connection of `user` if it is online and caught up: someone still
    /// resuming gets a new message with their backlog, which the store reads
    /// after this commit.
    pub(super) fn live_conn(&self, user: UserId) -> Option<ConnId> {
        let conn = *self.online.get(&user)?;
        (self.sessions.get(&conn)?.phase == Phase::Online).then_some(conn)
    }

    /// A reply from the store.
    pub fn stored(&mut self, reply: Reply, now: u64, out: &mut impl Deliver) {
        let origin = match reply {
            Reply::Delivered(deliveries) => return self.delivered(deliveries, out),
            // The store answers these itself.
            Reply::Notify(tx, saved) => {
                let _ = tx.send(saved);
                return;
            }
            Reply::Echo { origin, then } => {
                out.send(origin.conn, then);
                origin
            }
            Reply::Grouped {
                origin,
                result,
                then,
            } => {
                let frame = match result {
                    Ok(()) => then,
                    Err(err) => encode(&store_failed(origin.id, &err)),
                };
                out.send(origin.conn, frame);
                origin
            }
            Reply::Appended {
                origin,
                message,
                outcome,
            } => {
                self.appended(origin, message, outcome, now, out);
                origin
            }
            Reply::Backlog {
                origin,
                user,
                result,
            } => {
                self.resumed(origin, user, result, now, out);
                origin
            }
            Reply::Tail {
                stream,
                after,
                result,
            } => return self.tailed(stream, after, result, out),
            Reply::Heads(result) => {
                match result {
                    Ok(heads) => self.heads(heads, out),
                    Err(err) => tracing::warn!("polling the streams' heads: {err}"),
                }
                return;
            }
            Reply::Found { origin, result } => {
                if let Some(session) = self.sessions.get_mut(&origin.conn) {
                    session.reads -= 1;
                }
                let frame = match result {
                    Ok(found) => ServerFrame::History {
                        id: origin.id,
                        messages: found.into_iter().map(stored_of).collect(),
                    },
                    Err(err) => store_failed(origin.id, &err),
                };
                out.send(origin.conn, encode(&frame));
                origin
            }
        };
        if let Some(session) = self.sessions.get_mut(&origin.conn) {
            session.in_flight -= 1;
            self.run_queued(origin.conn, now, out);
        }
    }

    pub(super) fn appended(
        &mut self,
        origin: Origin,
        message: NewMessage,
        outcome: Appended,
        now: u64,
        out: &mut impl Deliver,
    ) {
        let seq = match outcome {
            Appended::New { seq } => seq,
            Appended::Fanned(seqs) => return self.fanned(origin, message, seqs, now, out),
            Appended::Duplicate => {
                self.duplicates += 1;
                let ack = ServerFrame::Ack {
                    id: origin.id,
                    offline: false,
                    duplicate: true,
                };
                return out.send(origin.conn, encode(&ack));
            }
            Appended::Failed(err) => {
                tracing::error!("storing a message: {err}");
                return out.send(origin.conn, encode(&store_failed(origin.id, &err)));
            }
        };
        self.messages += 1;
        self.rate.record(now);
        if let Some(session) = self.sessions.get_mut(&origin.conn) {
            session.messages_sent += 1;
        }
        // Acknowledge first, so a sender's ack never waits behind the fan-out.
        let ack = ServerFrame::Ack {
            id: origin.id,
            offline: message.away,
            duplicate: false,
        };
        out.send(origin.conn, encode(&ack));
        let sender = self.accounts.nick(message.sender).to_string();
        match message.to {
            To::Group(_) => {}
            To::Public => {
                let frame = encode(&ServerFrame::Message {
                    seq,
                    sender,
                    receiver: EVERYONE.into(),
                    text: message.text,
                    time: message.time,
                    away: false,
                });
                self.deliver_public(seq, frame, out);
            }
            To::User(to) => {
                self.private_messages += 1;
                if message.away {
                    self.stored_offline += 1;
                }
                let Some(conn) = self.live_conn(to) else {
                    return;
                };
                let frame = ServerFrame::Message {
                    seq,
                    sender,
                    receiver: self.accounts.nick(to).to_string(),
                    text: message.text,
                    time: message.time,
                    away: false,
                };
                self.deliver_own(conn, seq, encode(&frame), out);
            }
        }
    }

    /// Tells the senders of private messages that their receiver has them.
    pub(super) fn delivered(&mut self, deliveries: Vec<Delivery>, out: &mut impl Deliver) {
        for d in deliveries {
            let Some(&conn) = self.online.get(&d.sender) else {
                continue;
            };
            // Not before the welcome: a session still resuming misses it.
            let welcomed = self
                .sessions
                .get(&conn)
                .is_some_and(|s| matches!(s.phase, Phase::Online | Phase::CatchingUp { .. }));
            if welcomed {
                let frame = ServerFrame::Delivered {
                    cid: d.cid,
                    to: d.to,
                };
                out.send(conn, encode(&frame));
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn message(
        &mut self,
        conn: ConnId,
        id: u64,
        receiver: String,
        text: String,
        cid: Option<String>,
        now: u64,
        out: &mut impl Deliver,
    ) -> Result<(), Rejection> {
        if text.trim().is_empty() {
            return Err((ErrorCode::BadText, "empty message".into()));
        }
        if text.len() > self.max_text {
            return Err((
                ErrorCode::BadText,
                format!(
                    "message too long: {} bytes, the limit is {}",
                    text.len(),
                    self.max_text
                ),
            ));
        }
        if cid.as_ref().is_some_and(|c| c.len() > MAX_CID) {
            return Err((
                ErrorCode::BadRequest,
                format!("a cid has at most {MAX_CID} bytes"),
            ));
        }
        let sender = self.sessions[&conn].user.expect("online");
        let mut fanout = Vec::new();
        let to = if receiver == EVERYONE {
            To::Public
        } else if receiver.starts_with(GROUP_PREFIX) {
            let (group, members) = self.group_members(sender, &receiver)?;
            fanout = members.iter().map(|u| (*u, !self.is_online(*u))).collect();
            To::Group(group)
        } else {
            To::User(self.user_named(&receiver)?)
        };
        let away = matches!(to, To::User(user) if !self.is_online(user));
        let session = self.sessions.get_mut(&conn).expect("checked by request");
        session.in_flight += 1;
        out.store(Op::Append {
            origin: Origin { conn, id },
            message: NewMessage {
                sender: session.user.expect("online"),
                cid,
                to,
                text,
                time: now,
                away,
                fanout,
            },
        });
        Ok(())
    }

    /// A group message is durable: acknowledged, then sent to each member
    /// online with its place in that member's stream (the others get it
    /// with their backlog at their next login).
    fn fanned(
        &mut self,
        origin: Origin,
        message: NewMessage,
        seqs: Vec<u64>,
        now: u64,
        out: &mut impl Deliver,
    ) {
        self.messages += 1;
        self.rate.record(now);
        if let Some(session) = self.sessions.get_mut(&origin.conn) {
            session.messages_sent += 1;
        }
        let ack = ServerFrame::Ack {
            id: origin.id,
            offline: false,
            duplicate: false,
        };
        out.send(origin.conn, encode(&ack));
        let To::Group(group) = message.to else {
            return;
        };
        let receiver = self.groups.get(group).map_or_else(String::new, |g| g.tag());
        let sender = self.accounts.nick(message.sender).to_string();
        for (&(member, _), seq) in message.fanout.iter().zip(seqs) {
            let Some(conn) = self.live_conn(member) else {
                continue;
            };
            // Each member's copy carries that member's own seq, so it is
            // serialized once per member.
            let frame = ServerFrame::Message {
                seq,
                sender: sender.clone(),
                receiver: receiver.clone(),
                text: message.text.clone(),
                time: message.time,
                away: false,
            };
            self.deliver_own(conn, seq, encode(&frame), out);
        }
    }

    /// Sends `history` with `#name` to the store, for a member.
    pub(super) fn group_query(
        &mut self,
        origin: Origin,
        name: &str,
        limit: u32,
        out: &mut impl Deliver,
    ) -> Result<(), Rejection> {
        let conn = origin.conn;
        let user = self.sessions[&conn].user.expect("online");
        let (group, _) = self.group_members(user, name)?;
        let session = self.sessions.get_mut(&conn).expect("checked by request");
        session.in_flight += 1;
        session.reads += 1;
        out.store(Op::GroupHistory {
            origin,
            group,
            limit: limit.clamp(1, MAX_HISTORY),
        });
        Ok(())
    }

    /// Sends a `history` or `search` to the store, naming someone or not.
    pub(super) fn query(
        &mut self,
        conn: ConnId,
        nick: Option<String>,
        limit: u32,
        op: impl FnOnce(UserId, Option<UserId>, u32) -> Op,
        out: &mut impl Deliver,
    ) -> Result<(), Rejection> {
        let other = nick.map(|n| self.user_named(&n)).transpose()?;
        let session = self.sessions.get_mut(&conn).expect("checked by request");
        session.in_flight += 1;
        session.reads += 1;
        let user = session.user.expect("online");
        out.store(op(user, other, limit.clamp(1, MAX_HISTORY)));
        Ok(())
    }
}

pub(super) fn stored_of(m: Loaded) -> Stored {
    Stored {
        sender: m.sender,
        receiver: m.receiver,
        text: m.text,
        time: m.time,
    }
}

/// What a client is told when the store failed its request.
pub(super) fn store_failed(id: u64, err: &StoreError) -> ServerFrame {
    ServerFrame::Error {
        id: Some(id),
        code: ErrorCode::StoreFailed,
        reason: format!("the server could not store or read this: {err}"),
    }
}
