//! The client's side of the conversation, without I/O: numbering requests,
//! remembering what each was for, turning server frames into notices, and
//! what must survive a lost connection — the credentials, the last `seq`
//! shown in each stream ([`Streams`]) and the messages not yet acknowledged
//! ([`Outbox`]).
//!
//! The network thread owns one [`Session`] for the whole process, across
//! connections; keeping it free of sockets lets the tests play both sides.
//! This file holds the state and reads each frame to the part it is
//! about: logging in and catching up (`login`), messages both ways
//! (`delivery`), questions and their answers (`questions`), groups
//! (`groups`), who comes and goes (`presence`).

use std::collections::HashMap;

use chat_common::{ErrorCode, Request, ServerFrame};

use crate::command::GroupOp;
use crate::outbox::Outbox;
use crate::roster::SharedRoster;
use crate::streams::Streams;

mod delivery;
mod groups;
mod login;
mod notice;
mod presence;
mod questions;
#[cfg(test)]
mod testing;

use login::Welcome;
pub use notice::{Mark, Notice, Query};

/// Why the session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// We said bye and the server agreed (or closed), or we left while
    /// disconnected.
    Left,
    /// The operator removed us, or flood control did; never reconnected.
    Kicked,
    /// The server is going down (ends the session only when reconnecting
    /// is off).
    Shutdown,
    /// The connection broke or the server closed it unasked, and it could
    /// not be (or may not be) established again.
    Lost,
    /// Someone logged in to this account elsewhere; never reconnected, or
    /// the two clients would take turns forever.
    TakenOver,
    /// Logging in again after a lost connection was refused (the password
    /// no longer matches, say).
    Refused,
}

/// What a frame meant for the user interface and the network thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Something to show.
    Show(Notice),
    /// The login the user asked for was accepted under this nickname.
    LoggedIn(String),
    /// The login the user asked for was refused; the server's reason.
    LoginRefused { code: ErrorCode, reason: String },
    /// A request to write now: what waited for the welcome of a new
    /// connection (the outbox, questions not yet answered).
    Send(Request),
    /// The frame repeats a message already shown: show nothing, not even
    /// the raw line.
    Duplicate,
    /// The session is over, or (for [`Ending::Lost`] and
    /// [`Ending::Shutdown`]) this connection is.
    Ended(Ending),
    /// Logging in again was refused for now (`too_many_attempts`,
    /// `busy`): this connection is over; try again after `wait`, as the
    /// server said (`reason`).
    Throttled {
        wait: std::time::Duration,
        reason: String,
    },
}

/// A nickname and password, kept to log in again after a lost connection.
#[derive(Clone, PartialEq, Eq)]
struct Credentials {
    nick: String,
    password: String,
}

impl std::fmt::Debug for Credentials {
    /// Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({:?}, <password>)", self.nick)
    }
}

/// What a request was, kept until its answer arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    /// `again`: an automatic login after a lost connection, not the user's.
    Login {
        again: bool,
    },
    /// A message in the outbox, by its `cid`.
    Message {
        cid: String,
    },
    Online,
    /// `!away`; `again` when re-said after a reconnect (a new login is
    /// back), which is not shown.
    Away {
        text: Option<String>,
        again: bool,
    },
    /// `online` asked for the roster, not by the user: answered silently.
    Refresh,
    History {
        query: Query,
        limit: Option<u32>,
    },
    /// A `!group` subcommand.
    Group(GroupOp),
    /// The next page of what we missed.
    More,
    /// A keepalive.
    Ping,
    Bye,
    /// `!password`, with the new one to keep once it is stored.
    Password {
        new: Secret,
    },
}

/// A password kept in a pending request, which `Debug` does not print.
#[derive(Clone, PartialEq, Eq)]
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<password>")
    }
}

impl Pending {
    /// A question asked again after a reconnect if it was not answered.
    fn is_question(&self) -> bool {
        matches!(
            self,
            Pending::Online
                | Pending::Away { .. }
                | Pending::History { .. }
                | Pending::Group(GroupOp::List | GroupOp::Members { .. })
        )
    }
}

/// Request numbering and the state the answers need.
#[derive(Debug)]
pub struct Session {
    next_id: u64,
    pending: HashMap<u64, Pending>,
    /// Questions asked while disconnected, or lost with a connection: asked
    /// after the next welcome, in order.
    questions: Vec<Pending>,
    /// Our nickname as the server spells it.
    me: Option<String>,
    /// The last login accepted: a lost connection logs in with these.
    credentials: Option<Credentials>,
    /// The login on its way.
    trying: Option<Credentials>,
    /// Logged in on the current connection.
    online: bool,
    roster: SharedRoster,
    streams: Streams,
    outbox: Outbox,
    /// Catching up page by page (`docs/protocol.md`, "Reliable delivery"):
    /// the missed messages still to read in this page, and how many wait
    /// after it (asked for with `more` once this page is read).
    page_frames: u32,
    page_left: u32,
    /// Our away text, as last stored: said again after a reconnect.
    away: Option<String>,
}

impl Session {
    pub fn new(roster: SharedRoster) -> Self {
        Session::with_outbox(roster, Outbox::random())
    }

    /// A session whose message ids are predictable, for tests.
    pub fn with_outbox(roster: SharedRoster, outbox: Outbox) -> Self {
        Session {
            next_id: 1,
            pending: HashMap::new(),
            questions: Vec::new(),
            me: None,
            credentials: None,
            trying: None,
            online: false,
            roster,
            streams: Streams::default(),
            outbox,
            page_frames: 0,
            page_left: 0,
            away: None,
        }
    }

    /// The file offers waiting for an answer, for completion.
    pub fn set_offers(&self, offers: Vec<u64>) {
        self.roster.lock().offers = offers;
    }

    /// Logged in on the current connection.
    pub fn is_logged_in(&self) -> bool {
        self.online
    }

    /// A login was accepted once in this process, so a lost connection is
    /// worth reconnecting.
    pub fn has_logged_in(&self) -> bool {
        self.credentials.is_some()
    }

    /// Whether something has not been answered yet: a request on its way,
    /// a message not acknowledged, a question waiting for a connection.
    pub fn is_waiting(&self) -> bool {
        !self.pending.is_empty() || !self.outbox.is_empty() || !self.questions.is_empty()
    }

    /// Whether some typed message has not been stored by the server yet.
    pub fn has_unacknowledged(&self) -> bool {
        !self.outbox.is_empty()
    }

    fn track(&mut self, what: Pending) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, what);
        id
    }

    /// A keepalive `ping` (answered by a `pong`, shown nowhere).
    pub fn ping(&mut self) -> Request {
        Request::Ping {
            id: self.track(Pending::Ping),
        }
    }

    /// Leaving: answered by an `ack` (or the server closing).
    pub fn bye(&mut self) -> Request {
        Request::Bye {
            id: self.track(Pending::Bye),
        }
    }

    /// The connection is gone: nothing pending on it will be answered.
    /// Messages stay in the outbox and questions are asked again after the
    /// next welcome; the rest is forgotten.
    pub fn disconnected(&mut self) {
        self.online = false;
        let mut lost: Vec<(u64, Pending)> = self.pending.drain().collect();
        lost.sort_by_key(|(id, _)| *id);
        let mut questions: Vec<Pending> = lost
            .into_iter()
            .map(|(_, what)| what)
            .filter(Pending::is_question)
            .collect();
        questions.append(&mut self.questions);
        self.questions = questions;
        self.outbox.disconnected();
        self.streams.disconnected();
        // The next welcome says afresh what is missed.
        self.page_frames = 0;
        self.page_left = 0;
    }

    /// Reads one frame from the server.
    pub fn on_frame(&mut self, frame: ServerFrame) -> Vec<Update> {
        use Update::Show;
        match frame {
            ServerFrame::Welcome {
                id,
                nick,
                online,
                online_more,
                new_account,
                replay,
                replay_left,
                public_seq,
                groups,
            } => self.on_welcome(
                id,
                Welcome {
                    nick,
                    online,
                    online_more,
                    new_account,
                    replay,
                    replay_left,
                    public_seq,
                    groups,
                },
            ),
            ServerFrame::Replay { id, count, left } => self.on_replay(id, count, left),
            ServerFrame::Ack { id, offline, .. } => self.on_ack(id, offline),
            ServerFrame::Delivered { cid, to } => self.on_delivered(&cid, to),
            ServerFrame::Message {
                seq,
                sender,
                receiver,
                text,
                time,
                away,
            } => self.on_message(seq, sender, receiver, text, time, away),
            ServerFrame::Online { id, users, away } => self.on_online(id, users, away),
            ServerFrame::History { id, messages } => self.on_history(id, messages),
            ServerFrame::Group {
                id,
                group,
                members,
                online,
            } => self.on_group(id, group, members, online),
            ServerFrame::GroupChanged { group, by, added } => {
                self.on_group_changed(group, by, added)
            }
            ServerFrame::Groups { id, groups } => self.on_groups(id, groups),
            ServerFrame::Presence {
                joined,
                joined_more,
                left,
                left_more,
            } => self.on_presence(joined, joined_more, left, left_more),
            ServerFrame::Kicked { nick, reason } => self.on_kicked(nick, reason),
            ServerFrame::Pong { id } => {
                self.pending.remove(&id);
                vec![]
            }
            // The server has not heard from us for a while: answer at once,
            // whatever else is going on (a page of backlog, a login).
            ServerFrame::Ping => vec![Update::Send(Request::Pong)],
            ServerFrame::Error { id, code, reason } => self.on_error(id, code, reason),
            ServerFrame::Announce { text, time } => vec![Show(Notice::Announce { text, time })],
            // File transfers are the network thread's `Transfers`.
            ServerFrame::Upload { .. }
            | ServerFrame::FileAck { .. }
            | ServerFrame::FileOffer { .. }
            | ServerFrame::Download { .. }
            | ServerFrame::Chunk { .. }
            | ServerFrame::FileAnswer { .. } => vec![],
            ServerFrame::Shutdown { reason } => vec![
                Show(Notice::Shutdown { reason }),
                Update::Ended(Ending::Shutdown),
            ],
        }
    }

    /// An `ack`: what it means depends on what the request was.
    fn on_ack(&mut self, id: u64, offline: bool) -> Vec<Update> {
        use Update::Show;
        match self.pending.remove(&id) {
            // A duplicate is stored too: the first ack was lost.
            Some(Pending::Message { cid }) => self.on_stored(&cid, offline),
            Some(Pending::Bye) => vec![Update::Ended(Ending::Left)],
            Some(Pending::Group(GroupOp::Leave { name })) => self.on_group_left(&name),
            Some(Pending::Away { text, again }) => {
                self.away = text.clone();
                if again {
                    vec![]
                } else {
                    vec![Show(Notice::Away { text })]
                }
            }
            Some(Pending::Password { new }) => {
                if let Some(credentials) = &mut self.credentials {
                    credentials.password = new.0;
                }
                vec![Show(Notice::PasswordChanged)]
            }
            _ => vec![],
        }
    }

    /// An `error`: what it ends, if anything, depends on what the request
    /// was (or, without an id, on its code).
    fn on_error(&mut self, id: Option<u64>, code: ErrorCode, reason: String) -> Vec<Update> {
        use Update::Show;
        if code == ErrorCode::Flooding {
            // Cut off by flood control: reconnecting would only resend the
            // flood. What was not stored is listed, as after a kick.
            if let Some(id) = id {
                self.pending.remove(&id);
            }
            return vec![
                Show(Notice::Error { reason }),
                Update::Ended(Ending::Kicked),
            ];
        }
        match id.and_then(|id| self.pending.remove(&id)) {
            Some(Pending::Login { again: false }) => {
                self.trying = None;
                vec![Update::LoginRefused { code, reason }]
            }
            // Refused for now, not for good: the server says when to come
            // back, and a client that stopped would lose the session.
            Some(Pending::Login { again: true })
                if matches!(code, ErrorCode::TooManyAttempts | ErrorCode::Busy) =>
            {
                let wait = login::retry_after(code, &reason);
                vec![Update::Throttled { wait, reason }]
            }
            // A cluster node that lost its database: not a refusal of
            // us; this connection is over, the next server is tried.
            Some(Pending::Login { again: true }) if code == ErrorCode::Unavailable => {
                vec![Show(Notice::Error { reason }), Update::Ended(Ending::Lost)]
            }
            Some(Pending::Login { again: true }) => vec![
                Show(Notice::Error { reason }),
                Update::Ended(Ending::Refused),
            ],
            // The server will close anyway; nothing is lost by going.
            Some(Pending::Bye) => vec![Update::Ended(Ending::Left)],
            Some(Pending::Message { cid }) => match self.outbox.refused(&cid) {
                Some(entry) => vec![Show(Notice::Refused {
                    number: entry.number,
                    receiver: entry.receiver,
                    reason,
                })],
                None => vec![Show(Notice::Error { reason })],
            },
            _ if code == ErrorCode::TakenOver => vec![
                Show(Notice::Error { reason }),
                Update::Ended(Ending::TakenOver),
            ],
            _ => vec![Show(Notice::Error { reason })],
        }
    }
}

#[cfg(test)]
mod tests {
    use chat_common::{ErrorCode, ServerFrame};

    use super::testing::{ack, logged_in, s, session};
    use super::{Ending, Notice, Update};

    /// A cluster node without its database (`unavailable`) ends only the
    /// connection, whether it closes us or refuses our login again: the
    /// next server of the list is tried.
    #[test]
    fn unavailable_moves_to_another_server() {
        let (mut session, _) = logged_in("alice", &["alice"]);
        let updates = session.on_frame(ServerFrame::Error {
            id: None,
            code: ErrorCode::Unavailable,
            reason: s("this server lost its database; reconnect to another"),
        });
        assert!(
            !updates.iter().any(|u| matches!(u, Update::Ended(_))),
            "{updates:?}"
        );
        session.disconnected();
        let login = session.relogin().unwrap();
        let updates = session.on_frame(ServerFrame::Error {
            id: login.id(),
            code: ErrorCode::Unavailable,
            reason: s("this server lost its database; reconnect to another"),
        });
        assert_eq!(updates.last(), Some(&Update::Ended(Ending::Lost)));
        assert!(session.relogin().is_some(), "the credentials are kept");
    }

    /// After a lost connection, a refused login ends the session; being
    /// taken over too. Neither is reconnected.
    #[test]
    fn endings_that_are_not_reconnected() {
        let (mut session, _) = logged_in("alice", &["alice"]);
        session.disconnected();
        let login = session.relogin().unwrap();
        let updates = session.on_frame(ServerFrame::Error {
            id: login.id(),
            code: ErrorCode::BadPassword,
            reason: s("wrong password"),
        });
        assert_eq!(updates.last(), Some(&Update::Ended(Ending::Refused)));
        let (mut session, _) = logged_in("alice", &["alice"]);
        let updates = session.on_frame(ServerFrame::Error {
            id: None,
            code: ErrorCode::TakenOver,
            reason: s("logged in elsewhere"),
        });
        assert_eq!(updates.last(), Some(&Update::Ended(Ending::TakenOver)));
        let (mut session, _) = logged_in("alice", &["alice"]);
        let updates = session.on_frame(ServerFrame::Error {
            id: Some(42),
            code: ErrorCode::Flooding,
            reason: s("disconnected for flooding"),
        });
        assert_eq!(updates.last(), Some(&Update::Ended(Ending::Kicked)));
    }

    /// Logging in again refused by the throttle is no ending: the client
    /// waits as long as the server says, then tries again.
    #[test]
    fn a_throttled_relogin_waits_as_told() {
        let reason =
            "too many failed logins for this account or from your address; try again in 42 s";
        let (mut session, _) = logged_in("alice", &["alice"]);
        session.disconnected();
        let login = session.relogin().unwrap();
        let updates = session.on_frame(ServerFrame::Error {
            id: login.id(),
            code: ErrorCode::TooManyAttempts,
            reason: s(reason),
        });
        assert_eq!(
            updates,
            [Update::Throttled {
                wait: std::time::Duration::from_secs(42),
                reason: s(reason)
            }]
        );
        assert!(session.has_logged_in(), "the credentials are kept");
        assert!(session.relogin().is_some());
    }

    #[test]
    fn endings() {
        let (mut session, _) = logged_in("alice", &["alice"]);
        let kicked = session.on_frame(ServerFrame::Kicked {
            nick: s("alice"),
            reason: s("spam"),
        });
        assert_eq!(kicked.last(), Some(&Update::Ended(Ending::Kicked)));
        let down = session.on_frame(ServerFrame::Shutdown { reason: s("x") });
        assert_eq!(down.last(), Some(&Update::Ended(Ending::Shutdown)));
        let bye = session.bye();
        assert_eq!(
            session.on_frame(ack(bye.id().unwrap())),
            [Update::Ended(Ending::Left)]
        );
    }

    #[test]
    fn debug_never_shows_the_password() {
        let (mut session, _) = session();
        session.login(s("bob"), s("hunter2"));
        assert!(!format!("{session:?}").contains("hunter2"));
        session.change_password(s("hunter2"), s("hunter3"));
        assert!(!format!("{session:?}").contains("hunter3"));
    }

    /// `!password`: once stored, the new password is the one a reconnect
    /// logs in with; refused, the old one stays.
    #[test]
    fn a_changed_password_is_the_one_to_log_in_again_with() {
        let (mut session, _) = logged_in("alice", &["alice"]);
        let refused = session.change_password(s("nope"), s("new1"));
        let updates = session.on_frame(ServerFrame::Error {
            id: refused.id(),
            code: ErrorCode::BadPassword,
            reason: s("the old password is wrong"),
        });
        assert!(matches!(&updates[..], [Update::Show(Notice::Error { .. })]));
        let change = session.change_password(s("pw"), s("new2"));
        assert_eq!(
            change,
            chat_common::Request::Password {
                id: change.id().unwrap(),
                old: s("pw"),
                new: s("new2")
            }
        );
        assert_eq!(
            session.on_frame(ack(change.id().unwrap())),
            [Update::Show(Notice::PasswordChanged)]
        );
        session.disconnected();
        let Some(chat_common::Request::Login { password, .. }) = session.relogin() else {
            panic!("a relogin");
        };
        assert_eq!(password, "new2");
    }
}
