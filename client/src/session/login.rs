//! Logging in, again after a lost connection, and catching up on what was
//! missed meanwhile, a page at a time.

use std::time::Duration;

use chat_common::{ErrorCode, Request};

use super::{Credentials, Notice, Pending, Secret, Session, Update};
use crate::streams::Streams;

/// What a `welcome` says, as the session reads it.
pub(super) struct Welcome {
    pub nick: String,
    pub online: Vec<String>,
    pub online_more: u32,
    pub new_account: bool,
    /// Missed messages in the first page, and how many wait after it.
    pub replay: u32,
    pub replay_left: u32,
    pub public_seq: u64,
    pub groups: Vec<String>,
}

/// How long to wait before logging in again after `code` with the
/// server's `reason`: it ends "try again in N s" (failed logins) or "try
/// again in N min" (too many new accounts from the address); 60 s if it
/// says neither, 5 s for a busy server.
pub(super) fn retry_after(code: ErrorCode, reason: &str) -> Duration {
    let fallback = if code == ErrorCode::Busy { 5 } else { 60 };
    let said = reason.rsplit_once("try again in ").and_then(|(_, tail)| {
        let (n, unit) = tail.trim().split_once(' ')?;
        let n: u64 = n.parse().ok()?;
        match unit.trim_end_matches(['.', ')']) {
            "s" => Some(n),
            "min" => Some(n.saturating_mul(60)),
            _ => None,
        }
    });
    Duration::from_secs(said.unwrap_or(fallback).max(1))
}

impl Session {
    /// The user's login, creating the account if there is none.
    pub fn login(&mut self, nick: String, password: String) -> Request {
        self.login_as(nick, password, None)
    }

    /// The user's login; `register` as in [`crate::command::Command::Login`].
    pub fn login_as(&mut self, nick: String, password: String, register: Option<bool>) -> Request {
        let (last_seq, last_public) = self.streams.resume();
        self.trying = Some(Credentials {
            nick: nick.clone(),
            password: password.clone(),
        });
        Request::Login {
            id: self.track(Pending::Login { again: false }),
            nick,
            password,
            last_seq,
            last_public,
            register,
        }
    }

    /// `!password`: answered by an `ack` (then the new password is the one
    /// to log in again with) or an error.
    pub fn change_password(&mut self, old: String, new: String) -> Request {
        Request::Password {
            id: self.track(Pending::Password {
                new: Secret(new.clone()),
            }),
            old,
            new,
        }
    }

    /// Logging in again on a new connection, resuming each stream after
    /// the last message shown; `None` if no login was ever accepted.
    pub fn relogin(&mut self) -> Option<Request> {
        let Credentials { nick, password } = self.credentials.clone()?;
        let (last_seq, last_public) = self.streams.resume();
        Some(Request::Login {
            id: self.track(Pending::Login { again: true }),
            nick,
            password,
            last_seq,
            last_public,
            register: None,
        })
    }

    /// The answer to a login (`id`): logged in on this connection, the
    /// public stream numbered from `public_seq`, the first page of missed
    /// messages on its way.
    pub(super) fn on_welcome(&mut self, id: u64, welcome: Welcome) -> Vec<Update> {
        let again = self.pending.remove(&id) == Some(Pending::Login { again: true });
        let (replay, left, public_seq) = (welcome.replay, welcome.replay_left, welcome.public_seq);
        let mut updates = self.logged_in(again, welcome);
        self.streams.public_from(public_seq);
        updates.extend(self.start_page(replay, left));
        updates
    }

    /// Logged in on this connection: say so, then send what waited for it —
    /// the outbox first, in the order typed, then the questions.
    fn logged_in(&mut self, again: bool, welcome: Welcome) -> Vec<Update> {
        let Welcome {
            nick,
            online,
            online_more,
            new_account,
            groups,
            ..
        } = welcome;
        // Said as one number: the first page and those after it.
        let replay = welcome.replay.saturating_add(welcome.replay_left);
        use Update::Show;
        self.online = true;
        self.me = Some(nick.clone());
        if let Some(credentials) = self.trying.take() {
            self.credentials = Some(credentials);
        }
        {
            let mut roster = self.roster.lock();
            roster.set_groups(&groups);
            roster.me = Some(nick.clone());
            roster.set(&online);
            roster.stale = online_more > 0;
        }
        let mut updates = Vec::new();
        if new_account {
            // Logging in again, a new account means a server that lost
            // its store: its numbers start again, so ours must too.
            self.streams = Streams::default();
            updates.push(Show(Notice::AccountCreated { nick: nick.clone() }));
        }
        if again {
            updates.push(Show(Notice::Reconnected { count: replay }));
        } else {
            updates.push(Show(Notice::Welcome {
                nick: nick.clone(),
                online,
                more: online_more,
            }));
            if replay > 0 {
                updates.push(Show(Notice::CaughtUp { count: replay }));
            }
            updates.push(Update::LoggedIn(nick));
        }
        for entry in self.outbox.unsent() {
            updates.push(Update::Send(self.send_entry(&entry.cid)));
        }
        if again {
            updates.extend(self.away_again().map(Update::Send));
        }
        for question in std::mem::take(&mut self.questions) {
            updates.push(Update::Send(self.question(question)));
        }
        updates
    }

    /// The answer to `more`: the next page.
    pub(super) fn on_replay(&mut self, id: u64, count: u32, left: u32) -> Vec<Update> {
        self.pending.remove(&id);
        self.start_page(count, left)
    }

    /// Starts a page of `frames` missed messages with `left` after it; asks
    /// for the next page at once if this one is empty.
    fn start_page(&mut self, frames: u32, left: u32) -> Vec<Update> {
        self.page_frames = frames;
        self.page_left = left;
        self.next_page_if_due()
    }

    /// A message was read: one fewer in the page, if one is being read.
    pub(super) fn read_one_of_page(&mut self) -> Vec<Update> {
        if self.page_frames == 0 {
            return Vec::new();
        }
        self.page_frames -= 1;
        self.next_page_if_due()
    }

    /// After each missed message read: at the end of a page with more
    /// after it, ask for the next (so no more than one page waits in the
    /// server's send queue).
    fn next_page_if_due(&mut self) -> Vec<Update> {
        if self.page_frames > 0 || self.page_left == 0 {
            return Vec::new();
        }
        self.page_left = 0;
        let id = self.track(Pending::More);
        vec![Update::Send(Request::More { id })]
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chat_common::{ErrorCode, Request, ServerFrame};

    use super::retry_after;

    use crate::session::testing::{logged_in, message, s, sent, session, welcome};
    use crate::session::{Notice, Update};

    /// The two forms the server words a wait in, and a fallback.
    #[test]
    fn the_wait_is_read_from_the_reason() {
        let cases = [
            ("too many failed logins; try again in 42 s", 42),
            (
                "too many new accounts from your address; try again in 3 min",
                180,
            ),
            ("too many failed logins; try again later", 60),
            ("try again in x s", 60),
            ("try again in 0 s", 1),
        ];
        for (reason, secs) in cases {
            assert_eq!(
                retry_after(ErrorCode::TooManyAttempts, reason),
                Duration::from_secs(secs),
                "{reason}"
            );
        }
        assert_eq!(retry_after(ErrorCode::Busy, "busy"), Duration::from_secs(5));
    }

    #[test]
    fn login_refused_then_accepted() {
        let (mut session, _) = session();
        let first = session.login(s("bob"), s("wrong"));
        assert_eq!(
            first,
            Request::Login {
                id: 1,
                nick: s("bob"),
                password: s("wrong"),
                last_seq: None,
                last_public: None,
                register: None,
            }
        );
        let updates = session.on_frame(ServerFrame::Error {
            id: Some(1),
            code: ErrorCode::BadPassword,
            reason: s("wrong password"),
        });
        assert_eq!(
            updates,
            [Update::LoginRefused {
                code: ErrorCode::BadPassword,
                reason: s("wrong password")
            }]
        );
        assert!(!session.has_logged_in());
        assert_eq!(session.relogin(), None, "nothing accepted to log in with");
        let id = session.login(s("bob"), s("right")).id().unwrap();
        session.on_frame(welcome(id, "bob", &["bob"]));
        assert!(session.is_logged_in() && session.has_logged_in());
        let Some(Request::Login { nick, password, .. }) = session.relogin() else {
            panic!("a relogin")
        };
        assert_eq!((nick, password), (s("bob"), s("right")));
    }

    /// A new account and messages that came while away are both said.
    #[test]
    fn welcome_says_new_account_and_what_was_missed() {
        let (mut session, _) = session();
        let id = session.login(s("bob"), s("pw")).id().unwrap();
        let updates = session.on_frame(ServerFrame::Welcome {
            id,
            nick: s("bob"),
            online: vec![s("bob")],
            online_more: 0,
            new_account: true,
            replay: 2,
            public_seq: 0,
            groups: vec![],
            replay_left: 0,
        });
        assert_eq!(
            updates,
            [
                Update::Show(Notice::AccountCreated { nick: s("bob") }),
                Update::Show(Notice::Welcome {
                    nick: s("bob"),
                    online: vec![s("bob")],
                    more: 0
                }),
                Update::Show(Notice::CaughtUp { count: 2 }),
                Update::LoggedIn(s("bob")),
            ]
        );
        let away = ServerFrame::Message {
            seq: 4,
            sender: s("alice"),
            receiver: s("bob"),
            text: s("hi"),
            time: 7,
            away: true,
        };
        assert_eq!(
            session.on_frame(away),
            [Update::Show(Notice::PrivateFrom {
                sender: s("alice"),
                text: s("hi"),
                time: 7,
                away: true
            })]
        );
        assert_eq!(session.received(), Some(Request::Received { seq: 4 }));
    }

    /// A server that lost its store numbers from 1 again: after a welcome
    /// that says the account is new, its messages are not taken for ones
    /// already shown.
    #[test]
    fn a_new_account_on_a_reconnect_starts_the_numbers_again() {
        let (mut session, _) = logged_in("bob", &["bob"]);
        session.on_frame(message(7, "alice", "bob", "old"));
        session.on_frame(message(9, "alice", "*", "old"));
        session.disconnected();
        let login = session.relogin().unwrap();
        session.on_frame(ServerFrame::Welcome {
            id: login.id().unwrap(),
            nick: s("bob"),
            online: vec![s("bob")],
            online_more: 0,
            new_account: true,
            replay: 0,
            public_seq: 0,
            groups: vec![],
            replay_left: 0,
        });
        for frame in [
            message(1, "alice", "bob", "new"),
            message(1, "alice", "*", "new"),
        ] {
            assert!(matches!(session.on_frame(frame)[..], [Update::Show(_)]));
        }
    }

    #[test]
    fn a_big_room_welcome_makes_the_roster_stale() {
        let (mut session, roster) = session();
        let id = session.login(s("alice"), s("pw")).id().unwrap();
        let updates = session.on_frame(ServerFrame::Welcome {
            id,
            nick: s("alice"),
            online: vec![s("alice")],
            online_more: 9_999,
            new_account: false,
            replay: 0,
            public_seq: 0,
            groups: vec![],
            replay_left: 0,
        });
        assert_eq!(updates.len(), 2, "no request of its own: {updates:?}");
        assert!(roster.lock().stale);
        assert!(matches!(session.refresh(), Some(Request::Online { .. })));
    }

    fn private(seq: u64) -> ServerFrame {
        ServerFrame::Message {
            seq,
            sender: "alice".into(),
            receiver: "bob".into(),
            text: format!("m{seq}"),
            time: 0,
            away: true,
        }
    }

    /// A long absence comes in pages: `more` goes out only once the page
    /// has been read, and not after the last one.
    #[test]
    fn the_next_page_is_asked_for_when_this_one_is_read() {
        let (mut session, _) = session();
        let id = session.login("bob".into(), "pw".into()).id().unwrap();
        let welcome = ServerFrame::Welcome {
            id,
            nick: "bob".into(),
            online: vec!["bob".into()],
            online_more: 0,
            new_account: false,
            replay: 2,
            replay_left: 3,
            public_seq: 0,
            groups: vec![],
        };
        let updates = session.on_frame(welcome);
        assert!(
            updates.contains(&Update::Show(Notice::CaughtUp { count: 5 })),
            "{updates:?}"
        );
        assert!(sent(&updates).is_empty(), "not before the page is read");
        assert!(sent(&session.on_frame(private(1))).is_empty());
        let more = sent(&session.on_frame(private(2)));
        let [Request::More { id }] = more[..] else {
            panic!("{more:?}");
        };
        let updates = session.on_frame(ServerFrame::Replay {
            id,
            count: 3,
            left: 0,
        });
        assert!(sent(&updates).is_empty());
        for seq in 3..=5 {
            assert!(
                sent(&session.on_frame(private(seq))).is_empty(),
                "last page"
            );
        }
    }
}
