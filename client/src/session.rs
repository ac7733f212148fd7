//! The client's side of the conversation, without I/O: numbering requests,
//! remembering what each was for, and turning server frames into notices.
//!
//! The network thread owns one [`Session`]; keeping it free of sockets lets
//! the tests below play both sides.

use std::collections::HashMap;

use chat_common::{Departure, ErrorCode, Request, ServerFrame, EVERYONE};

use crate::render::Notice;
use crate::roster::SharedRoster;

/// Why the session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// We said bye and the server agreed (or closed).
    Left,
    /// The operator removed us.
    Kicked,
    /// The server is going down.
    Shutdown,
    /// The connection broke or the server closed it unasked.
    Lost,
}

/// What a frame meant for the user interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Something to show.
    Show(Notice),
    /// Our login was accepted under this nickname.
    LoggedIn(String),
    /// Our login was refused; the server's reason.
    LoginRefused { code: ErrorCode, reason: String },
    /// The session is over.
    Ended(Ending),
}

/// What a request was, kept until its answer arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    Login,
    Public,
    Private {
        to: String,
        text: String,
    },
    Online,
    /// `online` asked for the roster, not by the user: answered silently.
    Refresh,
    Bye,
}

/// Request numbering and the state the answers need.
#[derive(Debug)]
pub struct Session {
    next_id: u64,
    pending: HashMap<u64, Pending>,
    me: Option<String>,
    roster: SharedRoster,
}

impl Session {
    pub fn new(roster: SharedRoster) -> Self {
        Session {
            next_id: 1,
            pending: HashMap::new(),
            me: None,
            roster,
        }
    }

    pub fn is_logged_in(&self) -> bool {
        self.me.is_some()
    }

    /// Whether some request has not been answered yet.
    pub fn is_waiting(&self) -> bool {
        !self.pending.is_empty()
    }

    fn track(&mut self, what: Pending) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, what);
        id
    }

    pub fn login(&mut self, nick: String) -> Request {
        Request::Login {
            id: self.track(Pending::Login),
            nick,
        }
    }

    /// A message to everyone (`receiver` is `*`) or to one person.
    pub fn say(&mut self, receiver: String, text: String) -> Request {
        let what = if receiver == EVERYONE {
            Pending::Public
        } else {
            Pending::Private {
                to: receiver.clone(),
                text: text.clone(),
            }
        };
        Request::Message {
            id: self.track(what),
            receiver,
            text,
        }
    }

    pub fn online(&mut self) -> Request {
        Request::Online {
            id: self.track(Pending::Online),
        }
    }

    /// A quiet `online` request, answered silently into the roster, if the
    /// roster is stale and no such request is already on its way.
    pub fn refresh(&mut self) -> Option<Request> {
        let refreshing = self.pending.values().any(|p| *p == Pending::Refresh);
        if !self.is_logged_in() || refreshing || !self.roster.lock().stale {
            return None;
        }
        Some(Request::Online {
            id: self.track(Pending::Refresh),
        })
    }

    pub fn bye(&mut self) -> Request {
        Request::Bye {
            id: self.track(Pending::Bye),
        }
    }

    /// Who came and went: keeps the roster current and says it.
    fn on_presence(
        &mut self,
        mut joined: Vec<String>,
        joined_more: u32,
        left: Vec<Departure>,
        left_more: u32,
    ) -> Vec<Update> {
        {
            let mut roster = self.roster.lock();
            for departure in &left {
                roster.remove(&departure.nick);
            }
            for nick in &joined {
                roster.add(nick);
            }
            // A crowd is only counted: completion will ask for the list.
            if joined_more > 0 || left_more > 0 {
                roster.stale = true;
            }
        }
        let mut updates = Vec::new();
        // Our own arrival was the welcome.
        joined.retain(|nick| Some(nick) != self.me.as_ref());
        if !joined.is_empty() || joined_more > 0 {
            updates.push(Update::Show(Notice::Joined {
                nicks: joined,
                more: joined_more,
            }));
        }
        if !left.is_empty() || left_more > 0 {
            updates.push(Update::Show(Notice::Left {
                departures: left,
                more: left_more,
            }));
        }
        updates
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
            } => {
                self.pending.remove(&id);
                self.me = Some(nick.clone());
                {
                    let mut roster = self.roster.lock();
                    roster.me = Some(nick.clone());
                    roster.set(&online);
                    roster.stale = online_more > 0;
                }
                vec![
                    Show(Notice::Welcome {
                        nick: nick.clone(),
                        online,
                        more: online_more,
                    }),
                    Update::LoggedIn(nick),
                ]
            }
            ServerFrame::Ack { id } => match self.pending.remove(&id) {
                Some(Pending::Private { to, text }) => {
                    vec![Show(Notice::PrivateTo { receiver: to, text })]
                }
                Some(Pending::Bye) => vec![Update::Ended(Ending::Left)],
                _ => vec![],
            },
            ServerFrame::Online { id, users } => {
                let silent = self.pending.remove(&id) == Some(Pending::Refresh);
                {
                    // The whole list, whoever asked: the roster is current.
                    let mut roster = self.roster.lock();
                    roster.set(&users);
                    roster.stale = false;
                }
                if silent {
                    vec![]
                } else {
                    vec![Show(Notice::Online { users })]
                }
            }
            ServerFrame::Pong { id } => {
                self.pending.remove(&id);
                vec![]
            }
            ServerFrame::Error { id, code, reason } => {
                match id.and_then(|id| self.pending.remove(&id)) {
                    Some(Pending::Login) => vec![Update::LoginRefused { code, reason }],
                    // The server will close anyway; nothing is lost by going.
                    Some(Pending::Bye) => vec![Update::Ended(Ending::Left)],
                    _ => vec![Show(Notice::Error { reason })],
                }
            }
            ServerFrame::Message {
                sender,
                receiver,
                text,
                time,
            } => {
                let own = self.me.as_deref() == Some(sender.as_str());
                if receiver == EVERYONE {
                    vec![Show(Notice::Public {
                        sender,
                        text,
                        own,
                        time,
                    })]
                } else if own {
                    // Our own private message: shown when it is acked.
                    vec![]
                } else {
                    vec![Show(Notice::PrivateFrom { sender, text, time })]
                }
            }
            ServerFrame::Presence {
                joined,
                joined_more,
                left,
                left_more,
            } => self.on_presence(joined, joined_more, left, left_more),
            ServerFrame::Kicked { nick, reason } => {
                self.roster.lock().remove(&nick);
                let me = self.me.as_deref() == Some(nick.as_str());
                let mut updates = vec![Show(Notice::Kicked { nick, reason })];
                if me {
                    updates.push(Update::Ended(Ending::Kicked));
                }
                updates
            }
            ServerFrame::Announce { text, time } => vec![Show(Notice::Announce { text, time })],
            ServerFrame::Shutdown { reason } => vec![
                Show(Notice::Shutdown { reason }),
                Update::Ended(Ending::Shutdown),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roster::Roster;

    fn s(text: &str) -> String {
        text.to_string()
    }

    fn logged_in(nick: &str, online: &[&str]) -> (Session, SharedRoster) {
        let roster = SharedRoster::default();
        let mut session = Session::new(roster.clone());
        let Request::Login { id, .. } = session.login(s(nick)) else {
            unreachable!()
        };
        let online: Vec<String> = online.iter().map(|n| s(n)).collect();
        let updates = session.on_frame(ServerFrame::Welcome {
            id,
            nick: s(nick),
            online: online.clone(),
            online_more: 0,
        });
        assert_eq!(updates[1], Update::LoggedIn(s(nick)));
        assert!(!session.is_waiting());
        (session, roster)
    }

    #[test]
    fn login_refused_then_accepted() {
        let mut session = Session::new(SharedRoster::default());
        let first = session.login(s("bob"));
        let second_id = first.id() + 1;
        let updates = session.on_frame(ServerFrame::Error {
            id: Some(first.id()),
            code: ErrorCode::NickTaken,
            reason: s("bob is taken"),
        });
        assert_eq!(
            updates,
            [Update::LoginRefused {
                code: ErrorCode::NickTaken,
                reason: s("bob is taken")
            }]
        );
        assert_eq!(session.login(s("bob2")).id(), second_id);
        assert!(!session.is_logged_in());
    }

    #[test]
    fn private_is_shown_when_acked_or_refused() {
        let (mut session, _) = logged_in("alice", &["alice", "bob"]);
        let sent = session.say(s("bob"), s("hi"));
        assert!(session.is_waiting());
        assert_eq!(
            session.on_frame(ServerFrame::Ack { id: sent.id() }),
            [Update::Show(Notice::PrivateTo {
                receiver: s("bob"),
                text: s("hi")
            })]
        );
        let sent = session.say(s("zed"), s("hi"));
        assert_eq!(
            session.on_frame(ServerFrame::Error {
                id: Some(sent.id()),
                code: ErrorCode::NotOnline,
                reason: s("zed is not online")
            }),
            [Update::Show(Notice::Error {
                reason: s("zed is not online")
            })]
        );
        assert!(!session.is_waiting());
    }

    #[test]
    fn messages_are_told_apart() {
        let (mut session, _) = logged_in("alice", &["alice"]);
        let public = session.say(s("*"), s("hello"));
        assert_eq!(session.on_frame(ServerFrame::Ack { id: public.id() }), []);
        let message = |sender: &str, receiver: &str| ServerFrame::Message {
            sender: s(sender),
            receiver: s(receiver),
            text: s("t"),
            time: 5,
        };
        let cases = vec![
            (
                message("alice", "*"),
                vec![Update::Show(Notice::Public {
                    sender: s("alice"),
                    text: s("t"),
                    own: true,
                    time: 5,
                })],
            ),
            (
                message("bob", "*"),
                vec![Update::Show(Notice::Public {
                    sender: s("bob"),
                    text: s("t"),
                    own: false,
                    time: 5,
                })],
            ),
            (
                message("bob", "alice"),
                vec![Update::Show(Notice::PrivateFrom {
                    sender: s("bob"),
                    text: s("t"),
                    time: 5,
                })],
            ),
            (message("alice", "bob"), vec![]),
        ];
        for (frame, want) in cases {
            assert_eq!(session.on_frame(frame.clone()), want, "{frame:?}");
        }
    }

    #[test]
    fn roster_follows_events() {
        let (mut session, roster) = logged_in("alice", &["bob", "alice"]);
        let updates = session.on_frame(ServerFrame::Presence {
            joined: vec![s("carol"), s("alice")],
            joined_more: 0,
            left: vec![Departure {
                nick: s("bob"),
                reason: s("quit"),
            }],
            left_more: 0,
        });
        // Our own name is not news to us.
        assert_eq!(
            updates[0],
            Update::Show(Notice::Joined {
                nicks: vec![s("carol")],
                more: 0
            })
        );
        let mut want = Roster::default();
        want.me = Some(s("alice"));
        want.set(&[s("alice"), s("carol")]);
        assert_eq!(*roster.lock(), want);
        let updates = session.on_frame(ServerFrame::Kicked {
            nick: s("carol"),
            reason: s("spam"),
        });
        assert_eq!(updates.len(), 1);
        assert_eq!(roster.lock().online(), [s("alice")]);
    }

    #[test]
    fn a_crowd_makes_the_roster_stale_and_one_quiet_refresh_fixes_it() {
        let (mut session, roster) = logged_in("alice", &["alice"]);
        assert_eq!(session.refresh(), None, "a complete roster needs none");
        let crowd = ServerFrame::Presence {
            joined: vec![s("bob")],
            joined_more: 30,
            left: vec![],
            left_more: 0,
        };
        // Nothing is asked on the crowd's account: only completion asks.
        session.on_frame(crowd.clone());
        assert!(!session.is_waiting());
        assert!(roster.lock().stale);
        let Some(Request::Online { id }) = session.refresh() else {
            panic!("expected a refresh");
        };
        assert_eq!(session.refresh(), None, "one at a time");
        session.on_frame(crowd);
        assert_eq!(session.refresh(), None, "still one at a time");
        let everyone: Vec<String> = (0..32).map(|i| format!("u{i}")).collect();
        let answer = ServerFrame::Online {
            id,
            users: everyone.clone(),
        };
        assert_eq!(session.on_frame(answer), vec![], "answered silently");
        assert_eq!(roster.lock().online().len(), 32);
        assert!(!roster.lock().stale);
        assert_eq!(session.refresh(), None);
    }

    #[test]
    fn a_big_room_welcome_makes_the_roster_stale() {
        let roster = SharedRoster::default();
        let mut session = Session::new(roster.clone());
        let id = session.login(s("alice")).id();
        let updates = session.on_frame(ServerFrame::Welcome {
            id,
            nick: s("alice"),
            online: vec![s("alice")],
            online_more: 9_999,
        });
        assert_eq!(updates.len(), 2, "no request of its own: {updates:?}");
        assert!(roster.lock().stale);
        assert!(matches!(session.refresh(), Some(Request::Online { .. })));
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
            session.on_frame(ServerFrame::Ack { id: bye.id() }),
            [Update::Ended(Ending::Left)]
        );
    }
}
