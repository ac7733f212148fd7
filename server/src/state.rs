//! The chat state: who is connected, under which nickname, and what each
//! request or admin command produces. Pure: no I/O, no locks, no clock — the
//! dispatcher owns it, passes the time in, and performs the deliveries.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use chat_common::codec::encode;
use chat_common::protocol::{validate_nick, WELCOME_NAMES};
use chat_common::{ErrorCode, Frame, Request, ServerFrame, EVERYONE};

use crate::framework::{ConnId, ConnInfo};
use crate::presence::Presence;

/// Where the state's output goes: the dispatcher's router, or a recorder in tests.
pub trait Deliver {
    fn send(&mut self, conn: ConnId, frame: Frame);
    /// Close `conn` once what was sent to it is written.
    fn close(&mut self, conn: ConnId);
    /// `conn` is in the room: broadcasts reach it from now on.
    fn subscribe(&mut self, conn: ConnId);
    fn unsubscribe(&mut self, conn: ConnId);
    /// `frame` for everyone subscribed.
    fn broadcast(&mut self, frame: Frame);
}

impl Deliver for crate::framework::Router {
    fn send(&mut self, conn: ConnId, frame: Frame) {
        crate::framework::Router::send(self, conn, frame)
    }
    fn close(&mut self, conn: ConnId) {
        crate::framework::Router::close(self, conn)
    }
    fn subscribe(&mut self, conn: ConnId) {
        crate::framework::Router::subscribe(self, conn)
    }
    fn unsubscribe(&mut self, conn: ConnId) {
        crate::framework::Router::unsubscribe(self, conn)
    }
    fn broadcast(&mut self, frame: Frame) {
        crate::framework::Router::broadcast(self, frame)
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
pub(crate) fn fold(nick: &str) -> String {
    nick.to_lowercase()
}

/// The answer to a request: a frame, `None` if it was already sent, or an
/// error code and reason.
type Reply = Result<Option<ServerFrame>, (ErrorCode, String)>;

pub struct ChatState {
    sessions: HashMap<ConnId, Session>,
    /// Joins and departures not yet announced.
    presence: Presence,
    /// Folded nickname → its session.
    nicks: BTreeMap<String, ConnId>,
    max_text: usize,
    messages: u64,
    private_messages: u64,
    rate: RateWindow,
}

impl ChatState {
    pub fn new(max_text: usize) -> Self {
        ChatState {
            sessions: HashMap::new(),
            presence: Presence::default(),
            nicks: BTreeMap::new(),
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
            out.unsubscribe(conn);
            self.presence.left(nick, reason);
        }
    }

    /// The peer will send nothing more. Everything it sent before has been
    /// answered (events arrive in order), so it leaves now and the
    /// connection closes once those answers are written.
    pub fn peer_closed(&mut self, conn: ConnId, out: &mut impl Deliver) {
        if self.sessions.get(&conn).is_some_and(|s| !s.leaving) {
            self.leave(conn, "connection closed", out);
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

    fn login(&mut self, conn: ConnId, id: u64, nick: String, out: &mut impl Deliver) -> Reply {
        validate_nick(&nick).map_err(|why| (ErrorCode::NickInvalid, why))?;
        let key = fold(&nick);
        if self.nicks.contains_key(&key) {
            return Err((
                ErrorCode::NickTaken,
                format!("{nick} is taken by someone online; choose another nickname"),
            ));
        }
        self.nicks.insert(key, conn);
        out.subscribe(conn);
        self.presence.joined(&nick);
        if let Some(session) = self.sessions.get_mut(&conn) {
            session.nick = Some(nick.clone());
        }
        let online: Vec<String> = self.online_iter().take(WELCOME_NAMES).collect();
        let online_more = (self.nicks.len() - online.len()) as u32;
        Ok(Some(ServerFrame::Welcome {
            id,
            nick,
            online,
            online_more,
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

    /// Whether joins or departures wait to be announced.
    pub fn has_presence(&self) -> bool {
        !self.presence.is_empty()
    }

    /// Announces, in one frame to everyone online, who came and went since
    /// the last call; the dispatcher calls it at most once per interval.
    pub fn flush_presence(&mut self, out: &mut impl Deliver) {
        if let Some(frame) = self.presence.take_frame() {
            self.broadcast(&frame, out);
        }
    }

    /// Sends one frame, serialized once, to everyone logged in.
    fn broadcast(&self, frame: &ServerFrame, out: &mut impl Deliver) {
        out.broadcast(encode(frame));
    }

    /// Marks a user as gone, tells everyone, and closes the connection.
    fn leave(&mut self, conn: ConnId, reason: &str, out: &mut impl Deliver) {
        if let Some(session) = self.sessions.get_mut(&conn) {
            session.leaving = true;
            if let Some(nick) = session.nick.clone() {
                self.nicks.remove(&fold(&nick));
                out.unsubscribe(conn);
                self.presence.left(nick, reason);
            }
        }
        out.close(conn);
    }

    /// The nickname a connection logged in with.
    pub fn nick_of(&self, conn: ConnId) -> Option<&str> {
        self.sessions.get(&conn)?.nick.as_deref()
    }

    /// Nicknames online, sorted without regard to case.
    pub fn online(&self) -> Vec<String> {
        self.online_iter().collect()
    }

    /// Nicknames online as their users spelled them, in folded order: the
    /// map is kept sorted, so nothing is sorted per request.
    fn online_iter(&self) -> impl Iterator<Item = String> + '_ {
        self.nicks
            .values()
            .filter_map(|c| self.sessions.get(c)?.nick.clone())
    }

    /// The operator removes `nick`; everyone, the user included, is told why.
    /// Returns the nickname as the user spelled it.
    pub fn kick(
        &mut self,
        nick: &str,
        reason: &str,
        out: &mut impl Deliver,
    ) -> Result<String, String> {
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
        out.unsubscribe(conn);
        self.presence.kicked(&nick);
        out.close(conn);
        Ok(nick)
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

#[cfg(test)]
mod tests {
    use super::*;
    use chat_common::protocol::PRESENCE_NAMES;
    use chat_common::Departure;

    /// Records deliveries as (conn, decoded frame) and closes; expands a
    /// broadcast to the connections subscribed at that moment, as workers do.
    #[derive(Default)]
    struct Recorder {
        sent: Vec<(ConnId, ServerFrame)>,
        closed: Vec<ConnId>,
        subscribed: std::collections::BTreeSet<ConnId>,
    }

    impl Deliver for Recorder {
        fn send(&mut self, conn: ConnId, frame: Frame) {
            let frame = chat_common::codec::decode(&frame[..frame.len() - 1]).unwrap();
            self.sent.push((conn, frame));
        }
        fn close(&mut self, conn: ConnId) {
            self.closed.push(conn);
        }
        fn subscribe(&mut self, conn: ConnId) {
            self.subscribed.insert(conn);
        }
        fn unsubscribe(&mut self, conn: ConnId) {
            self.subscribed.remove(&conn);
        }
        fn broadcast(&mut self, frame: Frame) {
            for conn in self.subscribed.clone() {
                self.send(conn, frame.clone());
            }
        }
    }

    impl Recorder {
        fn take(&mut self) -> Vec<(ConnId, ServerFrame)> {
            std::mem::take(&mut self.sent)
        }
    }

    fn info(id: ConnId) -> ConnInfo {
        ConnInfo {
            id,
            peer: format!("127.0.0.1:{}", 1000 + id).parse().unwrap(),
            tls: id.is_multiple_of(2),
        }
    }

    /// A state with `nicks` logged in on connections 1, 2, …
    fn room(nicks: &[&str]) -> (ChatState, Recorder) {
        let mut state = ChatState::new(100);
        let mut out = Recorder::default();
        for (i, nick) in nicks.iter().enumerate() {
            let conn = i as ConnId + 1;
            state.connect(info(conn), 0);
            let login = Request::Login {
                id: 1,
                nick: nick.to_string(),
            };
            state.request(conn, login, 0, &mut out);
        }
        state.flush_presence(&mut out);
        out.take();
        (state, out)
    }

    fn message(id: u64, receiver: &str, text: &str) -> Request {
        Request::Message {
            id,
            receiver: receiver.into(),
            text: text.into(),
        }
    }

    fn error_code(frames: &[(ConnId, ServerFrame)]) -> Option<ErrorCode> {
        frames.iter().find_map(|(_, f)| match f {
            ServerFrame::Error { code, .. } => Some(*code),
            _ => None,
        })
    }

    #[test]
    fn login_welcomes_and_announces() {
        let (mut state, mut out) = room(&["alice"]);
        state.connect(info(2), 5);
        let login = Request::Login {
            id: 9,
            nick: "bob".into(),
        };
        state.request(2, login, 5, &mut out);
        assert_eq!(
            out.take(),
            [(
                2,
                ServerFrame::Welcome {
                    id: 9,
                    nick: "bob".into(),
                    online: vec!["alice".into(), "bob".into()],
                    online_more: 0,
                }
            )]
        );
        assert!(state.has_presence());
        state.flush_presence(&mut out);
        let mut sent = out.take();
        sent.sort_by_key(|(c, _)| *c);
        assert_eq!(
            sent,
            [(1, presence(&["bob"], &[])), (2, presence(&["bob"], &[]))]
        );
        assert!(!state.has_presence());
    }

    /// A presence frame with these joins and (nick, reason) departures.
    fn presence(joined: &[&str], left: &[(&str, &str)]) -> ServerFrame {
        ServerFrame::Presence {
            joined: joined.iter().map(|n| n.to_string()).collect(),
            joined_more: 0,
            left: left
                .iter()
                .map(|(nick, reason)| Departure {
                    nick: nick.to_string(),
                    reason: reason.to_string(),
                })
                .collect(),
            left_more: 0,
        }
    }

    #[test]
    fn welcome_lists_the_first_names_and_counts_the_rest() {
        let crowd: Vec<String> = (0..WELCOME_NAMES + 5).map(|i| format!("u{i:03}")).collect();
        let names: Vec<&str> = crowd.iter().map(String::as_str).collect();
        let (mut state, mut out) = room(&names);
        state.connect(info(1000), 0);
        let login = Request::Login {
            id: 1,
            nick: "zed".into(),
        };
        state.request(1000, login, 0, &mut out);
        let sent = out.take();
        let ServerFrame::Welcome {
            online,
            online_more,
            ..
        } = &sent[0].1
        else {
            panic!("{sent:?}");
        };
        assert_eq!(online.len(), WELCOME_NAMES);
        assert_eq!(online[..2], ["u000", "u001"], "sorted");
        assert_eq!(*online_more, 6, "5 more of the crowd, and zed");
        assert_eq!(state.online().len(), WELCOME_NAMES + 6);
    }

    #[test]
    fn presence_cancels_out_and_is_capped() {
        let (mut state, mut out) = room(&["alice", "bob"]);
        // Bob drops and comes back: nothing to say.
        state.disconnect(2, "connection lost", &mut out);
        state.connect(info(3), 0);
        state.request(
            3,
            Request::Login {
                id: 1,
                nick: "Bob".into(),
            },
            0,
            &mut out,
        );
        assert!(!state.has_presence());
        // Carol comes and goes: reported as gone.
        state.connect(info(4), 0);
        state.request(
            4,
            Request::Login {
                id: 1,
                nick: "carol".into(),
            },
            0,
            &mut out,
        );
        state.disconnect(4, "quit", &mut out);
        out.take();
        state.flush_presence(&mut out);
        assert_eq!(out.take()[0].1, presence(&[], &[("carol", "quit")]));
        // Dave comes, drops and comes back before anyone was told: he joined.
        state.connect(info(5), 0);
        let login = |nick: &str| Request::Login {
            id: 1,
            nick: nick.into(),
        };
        state.request(5, login("dave"), 0, &mut out);
        state.disconnect(5, "connection lost", &mut out);
        state.connect(info(6), 0);
        state.request(6, login("dave"), 0, &mut out);
        out.take();
        state.flush_presence(&mut out);
        assert_eq!(out.take()[0].1, presence(&["dave"], &[]));
        // A crowd arrives: the first names are listed, the rest counted.
        let crowd = PRESENCE_NAMES as u64 + 5;
        for i in 0..crowd {
            state.connect(info(10 + i), 0);
            let nick = format!("user{:02}", i);
            state.request(10 + i, Request::Login { id: 1, nick }, 0, &mut out);
        }
        out.take();
        state.flush_presence(&mut out);
        let sent = out.take();
        assert_eq!(
            sent.len(),
            state.online().len(),
            "one frame to everyone online"
        );
        let ServerFrame::Presence {
            joined,
            joined_more,
            left,
            left_more,
        } = &sent[0].1
        else {
            panic!("{:?}", sent[0]);
        };
        assert_eq!(joined.len(), PRESENCE_NAMES);
        assert_eq!(joined[0], "user00");
        assert_eq!((*joined_more, left.len(), *left_more), (5, 0, 0));
    }

    #[test]
    fn login_errors_keep_the_connection_usable() {
        let cases = [
            ("ALICE", ErrorCode::NickTaken),
            ("", ErrorCode::NickInvalid),
            ("two words", ErrorCode::NickInvalid),
            ("#class", ErrorCode::NickInvalid),
        ];
        for (nick, code) in cases {
            let (mut state, mut out) = room(&["alice"]);
            state.connect(info(2), 0);
            let login = Request::Login {
                id: 1,
                nick: nick.into(),
            };
            state.request(2, login, 0, &mut out);
            assert_eq!(error_code(&out.take()), Some(code), "{nick:?}");
            let retry = Request::Login {
                id: 2,
                nick: "bob".into(),
            };
            state.request(2, retry, 0, &mut out);
            assert!(out
                .take()
                .iter()
                .any(|(c, f)| *c == 2 && matches!(f, ServerFrame::Welcome { .. })));
        }
    }

    #[test]
    fn public_message_is_acked_then_reaches_everyone_once() {
        let (mut state, mut out) = room(&["alice", "bob", "carol"]);
        state.request(1, message(7, "*", "hi"), 42, &mut out);
        let sent = out.take();
        assert_eq!(sent[0], (1, ServerFrame::Ack { id: 7 }));
        let mut receivers: Vec<ConnId> = sent[1..].iter().map(|(c, _)| *c).collect();
        receivers.sort();
        assert_eq!(receivers, [1, 2, 3]);
        assert!(sent[1..].iter().all(|(_, f)| *f
            == ServerFrame::Message {
                sender: "alice".into(),
                receiver: "*".into(),
                text: "hi".into(),
                time: 42
            }));
    }

    #[test]
    fn private_message_reaches_only_its_receiver() {
        let (mut state, mut out) = room(&["alice", "bob", "carol"]);
        state.request(1, message(3, "BOB", "psst"), 1, &mut out);
        let sent = out.take();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0], (1, ServerFrame::Ack { id: 3 }));
        assert_eq!(
            sent[1],
            (
                2,
                ServerFrame::Message {
                    sender: "alice".into(),
                    receiver: "bob".into(),
                    text: "psst".into(),
                    time: 1
                }
            )
        );
        assert_eq!(state.stats(1).private_messages, 1);
    }

    #[test]
    fn message_errors() {
        let long = "x".repeat(101);
        let cases = [
            (message(1, "dave", "hi"), ErrorCode::NotOnline),
            (message(1, "*", ""), ErrorCode::BadText),
            (message(1, "*", "   "), ErrorCode::BadText),
            (message(1, "*", &long), ErrorCode::BadText),
        ];
        for (request, code) in cases {
            let (mut state, mut out) = room(&["alice", "bob"]);
            state.request(1, request, 0, &mut out);
            let sent = out.take();
            assert_eq!(sent.len(), 1);
            assert_eq!(error_code(&sent), Some(code));
        }
    }

    #[test]
    fn requests_before_login_are_refused_except_ping() {
        let mut state = ChatState::new(100);
        let mut out = Recorder::default();
        state.connect(info(1), 0);
        state.request(1, message(1, "*", "hi"), 0, &mut out);
        state.request(1, Request::Online { id: 2 }, 0, &mut out);
        state.request(1, Request::Ping { id: 3 }, 0, &mut out);
        let sent = out.take();
        assert_eq!(error_code(&sent[..1]), Some(ErrorCode::NotLoggedIn));
        assert_eq!(error_code(&sent[1..2]), Some(ErrorCode::NotLoggedIn));
        assert_eq!(sent[2], (1, ServerFrame::Pong { id: 3 }));
    }

    #[test]
    fn bye_announces_once_and_closes() {
        let (mut state, mut out) = room(&["alice", "bob"]);
        state.request(1, Request::Bye { id: 4 }, 0, &mut out);
        state.request(1, message(5, "*", "ignored after bye"), 0, &mut out);
        state.disconnect(1, "connection closed", &mut out);
        state.flush_presence(&mut out);
        assert_eq!(
            out.take(),
            [
                (1, ServerFrame::Ack { id: 4 }),
                (2, presence(&[], &[("alice", "quit")])),
            ]
        );
        assert_eq!(out.closed, [1]);
        assert_eq!(state.online(), ["bob"]);
    }

    #[test]
    fn dropped_connection_is_announced_with_its_reason() {
        let (mut state, mut out) = room(&["alice", "bob"]);
        state.disconnect(2, "send queue exceeded", &mut out);
        state.flush_presence(&mut out);
        assert_eq!(
            out.take(),
            [(1, presence(&[], &[("bob", "send queue exceeded")]))]
        );
        // The nickname is free again.
        state.connect(info(3), 0);
        let login = Request::Login {
            id: 1,
            nick: "bob".into(),
        };
        state.request(3, login, 0, &mut out);
        assert_eq!(state.online(), ["alice", "bob"]);
    }

    #[test]
    fn kick_tells_everyone_and_frees_the_nick() {
        let (mut state, mut out) = room(&["alice", "bob"]);
        assert!(state.kick("nobody", "x", &mut out).is_err());
        assert_eq!(state.kick("Bob", "spam", &mut out).unwrap(), "bob");
        let sent = out.take();
        assert_eq!(sent.len(), 2);
        assert!(sent.iter().all(|(_, f)| *f
            == ServerFrame::Kicked {
                nick: "bob".into(),
                reason: "spam".into()
            }));
        assert_eq!(out.closed, [2]);
        state.disconnect(2, "closed by server", &mut out);
        state.flush_presence(&mut out);
        assert!(out.take().is_empty(), "no `left` after a kick");
        // A kick before the join was announced: the join is never announced.
        state.connect(info(3), 0);
        state.request(
            3,
            Request::Login {
                id: 1,
                nick: "dave".into(),
            },
            0,
            &mut out,
        );
        state.kick("dave", "bye", &mut out).unwrap();
        assert!(!state.has_presence());
        assert_eq!(state.online(), ["alice"]);
    }

    #[test]
    fn login_timeout_closes_only_silent_connections() {
        let (mut state, mut out) = room(&["alice"]);
        state.connect(info(2), 1_000);
        state.expire_logins(30_999, 30_000, &mut out);
        assert!(out.closed.is_empty());
        state.expire_logins(31_000, 30_000, &mut out);
        assert_eq!(out.closed, [2]);
        assert_eq!(error_code(&out.take()), Some(ErrorCode::Timeout));
        state.expire_logins(60_000, 30_000, &mut out);
        assert_eq!(out.closed, [2], "expired once");
    }

    #[test]
    fn list_and_stats() {
        let (mut state, mut out) = room(&["bob", "alice"]);
        state.connect(info(3), 0);
        state.request(1, message(1, "*", "a"), 10_000, &mut out);
        state.request(1, message(2, "alice", "b"), 10_500, &mut out);
        let rows = state.list();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].nick.as_str(), rows[0].tls), ("alice", true));
        assert_eq!((rows[1].nick.as_str(), rows[1].messages_sent), ("bob", 2));
        let stats = state.stats(11_000);
        assert_eq!((stats.connections, stats.users), (3, 2));
        assert_eq!((stats.messages, stats.private_messages), (2, 1));
        assert!((stats.rate - 0.2).abs() < 1e-9);
        assert_eq!(state.stats(30_000).rate, 0.0);
    }

    #[test]
    fn shutdown_reaches_every_connection() {
        let (mut state, mut out) = room(&["alice", "bob"]);
        state.connect(info(3), 0);
        state.shutdown("bye all", &mut out);
        let mut to: Vec<ConnId> = out.take().into_iter().map(|(c, _)| c).collect();
        to.sort();
        assert_eq!(to, [1, 2, 3]);
    }
}
