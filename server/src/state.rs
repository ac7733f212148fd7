//! The chat state: who is connected, under which nickname, and what each
//! request or admin command produces. Pure: no I/O, no locks, no clock — the
//! dispatcher owns it, passes the time in, and performs the deliveries.

use std::collections::HashMap;
use std::net::SocketAddr;

use chat_common::codec::encode;
use chat_common::protocol::validate_nick;
use chat_common::{ErrorCode, Frame, Request, ServerFrame, EVERYONE};

use crate::framework::{ConnId, ConnInfo};

/// Where the state's output goes: the dispatcher's router, or a recorder in tests.
pub trait Deliver {
    fn send(&mut self, conn: ConnId, frame: Frame);
    /// Close `conn` once what was sent to it is written.
    fn close(&mut self, conn: ConnId);
}

impl Deliver for crate::framework::Router {
    fn send(&mut self, conn: ConnId, frame: Frame) {
        crate::framework::Router::send(self, conn, frame)
    }
    fn close(&mut self, conn: ConnId) {
        crate::framework::Router::close(self, conn)
    }
}

/// One connection, logged in or not.
#[derive(Debug)]
struct Session {
    info: ConnInfo,
    connected_at: u64,
    nick: Option<String>,
    messages_sent: u64,
    /// Said bye, was kicked or timed out: further requests are ignored and
    /// its departure has been announced already.
    leaving: bool,
}

/// A row of the admin console's `/list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub nick: String,
    pub peer: SocketAddr,
    pub connected_at: u64,
    pub tls: bool,
    pub messages_sent: u64,
}

/// The figures behind `/stats`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub connections: usize,
    pub users: usize,
    pub messages: u64,
    pub private_messages: u64,
    /// Messages per second over the last [`RATE_WINDOW_SECS`] seconds.
    pub rate: f64,
}

pub const RATE_WINDOW_SECS: u64 = 10;

/// Counts messages per second over a sliding window of whole seconds.
#[derive(Debug, Default)]
struct RateWindow {
    buckets: [(u64, u64); RATE_WINDOW_SECS as usize],
}

impl RateWindow {
    fn record(&mut self, now_ms: u64) {
        let sec = now_ms / 1000;
        let bucket = &mut self.buckets[(sec % RATE_WINDOW_SECS) as usize];
        if bucket.0 != sec {
            *bucket = (sec, 0);
        }
        bucket.1 += 1;
    }

    fn per_second(&self, now_ms: u64) -> f64 {
        let sec = now_ms / 1000;
        let total: u64 = self
            .buckets
            .iter()
            .filter(|(s, _)| *s + RATE_WINDOW_SECS > sec && *s <= sec)
            .map(|(_, n)| n)
            .sum();
        total as f64 / RATE_WINDOW_SECS as f64
    }
}

/// Nicknames are unique regardless of case: "Alice" and "alice" are one person.
fn fold(nick: &str) -> String {
    nick.to_lowercase()
}

/// The answer to a request: a frame, `None` if it was already sent, or an
/// error code and reason.
type Reply = Result<Option<ServerFrame>, (ErrorCode, String)>;

pub struct ChatState {
    sessions: HashMap<ConnId, Session>,
    /// Folded nickname → its session.
    nicks: HashMap<String, ConnId>,
    max_text: usize,
    messages: u64,
    private_messages: u64,
    rate: RateWindow,
}

impl ChatState {
    pub fn new(max_text: usize) -> Self {
        ChatState {
            sessions: HashMap::new(),
            nicks: HashMap::new(),
            max_text,
            messages: 0,
            private_messages: 0,
            rate: RateWindow::default(),
        }
    }

    pub fn connect(&mut self, info: ConnInfo, now: u64) {
        self.sessions.insert(
            info.id,
            Session {
                info,
                connected_at: now,
                nick: None,
                messages_sent: 0,
                leaving: false,
            },
        );
    }

    /// The connection is gone; if it was a user who had not left yet,
    /// everyone is told why.
    pub fn disconnect(&mut self, conn: ConnId, reason: &str, out: &mut impl Deliver) {
        let Some(session) = self.sessions.remove(&conn) else {
            return;
        };
        if let (Some(nick), false) = (session.nick, session.leaving) {
            self.nicks.remove(&fold(&nick));
            self.broadcast(
                &ServerFrame::Left {
                    nick,
                    reason: reason.to_string(),
                },
                out,
            );
        }
    }

    pub fn request(&mut self, conn: ConnId, request: Request, now: u64, out: &mut impl Deliver) {
        let Some(session) = self.sessions.get(&conn) else {
            return;
        };
        if session.leaving {
            return;
        }
        let id = request.id();
        let logged_in = session.nick.is_some();
        let result = match request {
            Request::Ping { id } => Ok(Some(ServerFrame::Pong { id })),
            Request::Login { id, nick } if !logged_in => self.login(conn, id, nick, out),
            Request::Login { .. } => Err((
                ErrorCode::AlreadyLoggedIn,
                "you are already logged in".to_string(),
            )),
            _ if !logged_in => Err((
                ErrorCode::NotLoggedIn,
                "log in first: {\"type\":\"login\",\"id\":1,\"nick\":\"yourname\"}".to_string(),
            )),
            Request::Message { id, receiver, text } => {
                self.message(conn, id, receiver, text, now, out)
            }
            Request::Online { id } => Ok(Some(ServerFrame::Online {
                id,
                users: self.online(),
            })),
            Request::Bye { id } => {
                out.send(conn, encode(&ServerFrame::Ack { id }));
                self.leave(conn, "quit", out);
                return;
            }
        };
        let frame = match result {
            Ok(None) => return,
            Ok(Some(frame)) => frame,
            Err((code, reason)) => ServerFrame::Error {
                id: Some(id),
                code,
                reason,
            },
        };
        out.send(conn, encode(&frame));
    }

    fn login(
        &mut self,
        conn: ConnId,
        id: u64,
        nick: String,
        out: &mut impl Deliver,
    ) -> Reply {
        validate_nick(&nick).map_err(|why| (ErrorCode::NickInvalid, why))?;
        let key = fold(&nick);
        if self.nicks.contains_key(&key) {
            return Err((
                ErrorCode::NickTaken,
                format!("{nick} is taken by someone online; choose another nickname"),
            ));
        }
        let joined = encode(&ServerFrame::Joined { nick: nick.clone() });
        for &other in self.nicks.values() {
            out.send(other, joined.clone());
        }
        self.nicks.insert(key, conn);
        if let Some(session) = self.sessions.get_mut(&conn) {
            session.nick = Some(nick.clone());
        }
        Ok(Some(ServerFrame::Welcome {
            id,
            nick,
            online: self.online(),
        }))
    }

    fn message(
        &mut self,
        conn: ConnId,
        id: u64,
        receiver: String,
        text: String,
        now: u64,
        out: &mut impl Deliver,
    ) -> Reply {
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
        let target = if receiver == EVERYONE {
            None
        } else {
            match self.nicks.get(&fold(&receiver)) {
                Some(&to) => Some(to),
                None => {
                    return Err((ErrorCode::NotOnline, format!("{receiver} is not online")));
                }
            }
        };
        let session = self.sessions.get_mut(&conn).expect("logged-in session");
        session.messages_sent += 1;
        let sender = session.nick.clone().expect("logged in");
        self.messages += 1;
        self.rate.record(now);
        // Acknowledge first, so a sender's ack never waits behind the fan-out.
        out.send(conn, encode(&ServerFrame::Ack { id }));
        match target {
            None => self.broadcast(
                &ServerFrame::Message {
                    sender,
                    receiver: EVERYONE.into(),
                    text,
                    time: now,
                },
                out,
            ),
            Some(to) => {
                self.private_messages += 1;
                let receiver = self.sessions[&to].nick.clone().expect("logged in");
                let frame = ServerFrame::Message {
                    sender,
                    receiver,
                    text,
                    time: now,
                };
                out.send(to, encode(&frame));
            }
        }
        Ok(None)
    }

    /// Sends one frame, serialized once, to everyone logged in.
    fn broadcast(&self, frame: &ServerFrame, out: &mut impl Deliver) {
        let bytes = encode(frame);
        for &conn in self.nicks.values() {
            out.send(conn, bytes.clone());
        }
    }

    /// Marks a user as gone, tells everyone, and closes the connection.
    fn leave(&mut self, conn: ConnId, reason: &str, out: &mut impl Deliver) {
        if let Some(session) = self.sessions.get_mut(&conn) {
            session.leaving = true;
            if let Some(nick) = session.nick.clone() {
                self.nicks.remove(&fold(&nick));
                self.broadcast(
                    &ServerFrame::Left {
                        nick,
                        reason: reason.to_string(),
                    },
                    out,
                );
            }
        }
        out.close(conn);
    }

    /// Nicknames online, sorted without regard to case.
    pub fn online(&self) -> Vec<String> {
        let mut users: Vec<String> = self
            .nicks
            .values()
            .filter_map(|c| self.sessions.get(c)?.nick.clone())
            .collect();
        users.sort_by_key(|n| fold(n));
        users
    }

    /// The operator removes `nick`; everyone, the user included, is told why.
    pub fn kick(&mut self, nick: &str, reason: &str, out: &mut impl Deliver) -> Result<(), String> {
        let conn = *self
            .nicks
            .get(&fold(nick))
            .ok_or_else(|| format!("{nick} is not online"))?;
        let session = self.sessions.get_mut(&conn).expect("session of a nick");
        session.leaving = true;
        let nick = session.nick.clone().expect("logged in");
        self.broadcast(
            &ServerFrame::Kicked {
                nick: nick.clone(),
                reason: reason.to_string(),
            },
            out,
        );
        self.nicks.remove(&fold(&nick));
        out.close(conn);
        Ok(())
    }

    /// A message from the operator to everyone; returns how many received it.
    pub fn announce(&mut self, text: &str, now: u64, out: &mut impl Deliver) -> usize {
        self.broadcast(
            &ServerFrame::Announce {
                text: text.to_string(),
                time: now,
            },
            out,
        );
        self.nicks.len()
    }

    /// Drops connections that have not logged in within `timeout_ms`.
    pub fn expire_logins(&mut self, now: u64, timeout_ms: u64, out: &mut impl Deliver) {
        let frame = encode(&ServerFrame::Error {
            id: None,
            code: ErrorCode::Timeout,
            reason: format!("no login within {} s; closing", timeout_ms / 1000),
        });
        for (&conn, session) in self.sessions.iter_mut() {
            if session.nick.is_none()
                && !session.leaving
                && now.saturating_sub(session.connected_at) >= timeout_ms
            {
                session.leaving = true;
                out.send(conn, frame.clone());
                out.close(conn);
            }
        }
    }

    /// Tells every connection the server is going down.
    pub fn shutdown(&mut self, reason: &str, out: &mut impl Deliver) {
        let frame = encode(&ServerFrame::Shutdown {
            reason: reason.to_string(),
        });
        for (&conn, session) in self.sessions.iter_mut() {
            session.leaving = true;
            out.send(conn, frame.clone());
        }
    }

    pub fn list(&self) -> Vec<SessionRow> {
        let mut rows: Vec<SessionRow> = self
            .sessions
            .values()
            .filter_map(|s| {
                Some(SessionRow {
                    nick: s.nick.clone().filter(|_| !s.leaving)?,
                    peer: s.info.peer,
                    connected_at: s.connected_at,
                    tls: s.info.tls,
                    messages_sent: s.messages_sent,
                })
            })
            .collect();
        rows.sort_by_key(|r| fold(&r.nick));
        rows
    }

    pub fn stats(&self, now: u64) -> Stats {
        Stats {
            connections: self.sessions.len(),
            users: self.nicks.len(),
            messages: self.messages,
            private_messages: self.private_messages,
            rate: self.rate.per_second(now),
        }
    }
}
