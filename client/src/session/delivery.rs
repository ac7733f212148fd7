//! Messages both ways: ours, from typed to stored (and, private, to
//! delivered), kept in the outbox until the server has them; theirs,
//! shown once each however often they come, and confirmed with
//! `received`.

use chat_common::protocol::GROUP_PREFIX;
use chat_common::{Request, EVERYONE};

use super::{Notice, Pending, Session, Update};

impl Session {
    /// A message to everyone (`receiver` is `*`) or to one person. It goes
    /// into the outbox; it is sent at once if logged in (the returned
    /// [`Update::Send`]), else after the next welcome.
    pub fn say(&mut self, receiver: String, text: String) -> Vec<Update> {
        let entry = self.outbox.push(receiver, text).clone();
        let mut updates = Vec::new();
        let group = entry.receiver.starts_with(GROUP_PREFIX);
        if entry.receiver != EVERYONE && !group {
            self.roster.lock().saw(&entry.receiver);
            updates.push(Update::Show(Notice::PrivateTo {
                receiver: entry.receiver.clone(),
                text: entry.text.clone(),
                number: entry.number,
            }));
        } else if !self.online {
            // Typed while connected, a public or group message is shown by
            // its echo.
            updates.push(Update::Show(Notice::PublicPending {
                text: entry.text.clone(),
                number: entry.number,
            }));
        }
        if self.online {
            updates.push(Update::Send(self.send_entry(&entry.cid)));
        }
        updates
    }

    /// The request carrying the outbox entry `cid`, tracked.
    pub(super) fn send_entry(&mut self, cid: &str) -> Request {
        let entry = self
            .outbox
            .entries()
            .find(|e| e.cid == cid)
            .expect("an entry of the outbox")
            .clone();
        let id = self.track(Pending::Message {
            cid: entry.cid.clone(),
        });
        self.outbox.sent(&entry.cid, id);
        Request::Message {
            id,
            receiver: entry.receiver,
            text: entry.text,
            cid: Some(entry.cid),
        }
    }

    /// Our message `cid` is stored; a private one not yet delivered says
    /// so (a public or group message shows by its echo).
    pub(super) fn on_stored(&mut self, cid: &str, offline: bool) -> Vec<Update> {
        match self.outbox.acked(cid) {
            Some(entry)
                if entry.receiver != EVERYONE
                    && !entry.receiver.starts_with(GROUP_PREFIX)
                    && !entry.delivered =>
            {
                vec![Update::Show(Notice::Stored {
                    number: entry.number,
                    receiver: entry.receiver,
                    offline,
                })]
            }
            _ => vec![],
        }
    }

    /// Our private message `cid` reached `to`'s client.
    pub(super) fn on_delivered(&mut self, cid: &str, to: String) -> Vec<Update> {
        let number = self.outbox.delivered(cid).map(|s| s.number);
        vec![Update::Show(Notice::Delivered {
            number,
            receiver: to,
        })]
    }

    /// The `received` to send after a batch of frames, if private messages
    /// were shown since the last one.
    pub fn received(&mut self) -> Option<Request> {
        if !self.online {
            return None;
        }
        self.streams.received().map(|seq| Request::Received { seq })
    }

    /// The messages never stored, for when we stop trying.
    pub fn unsent(&self) -> Vec<Notice> {
        self.outbox
            .entries()
            .map(|e| Notice::Unsent {
                number: e.number,
                receiver: e.receiver.clone(),
                text: e.text.clone(),
            })
            .collect()
    }

    /// A chat message, which may also be one of a page of missed ones.
    pub(super) fn on_message(
        &mut self,
        seq: u64,
        sender: String,
        receiver: String,
        text: String,
        time: u64,
        away: bool,
    ) -> Vec<Update> {
        let mut updates = self.show_message(seq, sender, receiver, text, time, away);
        updates.extend(self.read_one_of_page());
        updates
    }

    /// A chat message, unless its `seq` was shown already.
    fn show_message(
        &mut self,
        seq: u64,
        sender: String,
        receiver: String,
        text: String,
        time: u64,
        away: bool,
    ) -> Vec<Update> {
        let public = receiver == EVERYONE;
        if !self.streams.fresh(public, seq) {
            return vec![Update::Duplicate];
        }
        let own = self.me.as_deref() == Some(sender.as_str());
        if receiver.starts_with(GROUP_PREFIX) {
            self.roster.lock().add_group(&receiver);
            return vec![Update::Show(Notice::Group {
                group: receiver,
                sender,
                text,
                own,
                time,
                away,
            })];
        }
        if public {
            return vec![Update::Show(Notice::Public {
                sender,
                text,
                own,
                time,
                away,
            })];
        }
        if own && self.me.as_deref() != Some(receiver.as_str()) {
            // A copy of our own private message: it was shown as typed.
            return vec![];
        }
        self.roster.lock().saw(&sender);
        vec![Update::Show(Notice::PrivateFrom {
            sender,
            text,
            time,
            away,
        })]
    }
}

#[cfg(test)]
mod tests {
    use chat_common::{ErrorCode, Request, ServerFrame};

    use crate::session::testing::{ack, logged_in, message, s, say, sent, welcome};
    use crate::session::{Notice, Update};

    /// A message whose `seq` was shown is not shown again, in either
    /// stream; one `received` covers a batch of private messages.
    #[test]
    fn each_seq_is_shown_once_and_received_once() {
        let (mut session, _) = logged_in("bob", &["alice", "bob"]);
        for seq in 1..=3 {
            let updates = session.on_frame(message(seq, "alice", "bob", "p"));
            assert!(matches!(
                updates[..],
                [Update::Show(Notice::PrivateFrom { .. })]
            ));
        }
        let public = session.on_frame(message(10, "alice", "*", "all"));
        assert!(matches!(public[..], [Update::Show(Notice::Public { .. })]));
        assert_eq!(session.received(), Some(Request::Received { seq: 3 }));
        assert_eq!(session.received(), None);
        // A reconnect whose `received` was lost replays some of them.
        session.disconnected();
        let Some(Request::Login {
            id,
            last_seq,
            last_public,
            ..
        }) = session.relogin()
        else {
            panic!("a relogin")
        };
        assert_eq!((last_seq, last_public), (Some(3), Some(10)));
        session.on_frame(welcome(id, "bob", &["bob"]));
        for frame in [
            message(2, "alice", "bob", "p"),
            message(3, "alice", "bob", "p"),
            message(9, "alice", "*", "old"),
            message(10, "alice", "*", "all"),
        ] {
            assert_eq!(session.on_frame(frame), [Update::Duplicate]);
        }
        assert_eq!(
            session.received(),
            Some(Request::Received { seq: 3 }),
            "the last received may have been lost with the connection"
        );
        assert_eq!(session.received(), None);
        assert!(matches!(
            session.on_frame(message(4, "alice", "bob", "new"))[..],
            [Update::Show(_)]
        ));
        assert!(matches!(
            session.on_frame(message(11, "alice", "*", "new"))[..],
            [Update::Show(_)]
        ));
        assert_eq!(session.received(), Some(Request::Received { seq: 4 }));
    }

    /// Disconnected, nothing is acknowledged or asked: no `received`.
    #[test]
    fn no_received_while_disconnected() {
        let (mut session, _) = logged_in("bob", &["bob"]);
        session.on_frame(message(1, "alice", "bob", "p"));
        session.disconnected();
        assert_eq!(session.received(), None);
    }

    /// Private: pending as typed, stored at the ack (for someone offline),
    /// delivered when the receiver's client has it.
    #[test]
    fn private_message_states() {
        let (mut session, roster) = logged_in("alice", &["alice"]);
        let updates = session.say(s("bob"), s("hi"));
        assert_eq!(
            updates[0],
            Update::Show(Notice::PrivateTo {
                receiver: s("bob"),
                text: s("hi"),
                number: 1
            })
        );
        let Request::Message { id, cid, .. } = sent(&updates)[0].clone() else {
            panic!("a message")
        };
        assert_eq!(cid.as_deref(), Some("t-1"));
        assert!(session.is_waiting() && session.has_unacknowledged());
        let stored = session.on_frame(ServerFrame::Ack {
            id,
            offline: true,
            duplicate: false,
        });
        assert_eq!(
            stored,
            [Update::Show(Notice::Stored {
                number: 1,
                receiver: s("bob"),
                offline: true
            })]
        );
        assert!(!session.is_waiting());
        let delivered = ServerFrame::Delivered {
            cid: s("t-1"),
            to: s("bob"),
        };
        assert_eq!(
            session.on_frame(delivered.clone()),
            [Update::Show(Notice::Delivered {
                number: Some(1),
                receiver: s("bob")
            })]
        );
        // Told again (another session's), it is no longer ours to number.
        assert_eq!(
            session.on_frame(delivered),
            [Update::Show(Notice::Delivered {
                number: None,
                receiver: s("bob")
            })]
        );
        assert!(roster.lock().known().contains(&&s("bob")), "completable");
    }

    /// Public messages typed while connected show by their echo; an ack
    /// says nothing.
    #[test]
    fn public_messages_show_by_their_echo() {
        let (mut session, _) = logged_in("alice", &["alice"]);
        let updates = session.say(s("*"), s("hello"));
        assert_eq!(updates.len(), 1, "only the request: {updates:?}");
        let id = sent(&updates)[0].id().unwrap();
        assert_eq!(session.on_frame(ack(id)), []);
        assert_eq!(
            session.on_frame(message(1, "alice", "*", "hello")),
            [Update::Show(Notice::Public {
                sender: s("alice"),
                text: s("hello"),
                own: true,
                time: 5,
                away: false
            })]
        );
    }

    /// Everything not acknowledged when the connection drops is sent again
    /// after the next welcome, in the order typed, with the same ids;
    /// what is typed while disconnected waits, shown as pending.
    #[test]
    fn the_outbox_is_resent_in_order_after_a_reconnect() {
        let (mut session, _) = logged_in("alice", &["alice"]);
        let first = say(&mut session, "*", "one");
        say(&mut session, "bob", "two");
        say(&mut session, "*", "three");
        session.on_frame(ack(first.id().unwrap()));
        session.disconnected();
        assert!(!session.is_logged_in());
        let waiting = session.say(s("*"), s("four"));
        assert_eq!(
            waiting,
            [Update::Show(Notice::PublicPending {
                text: s("four"),
                number: 4
            })],
            "nothing is sent while disconnected"
        );
        let private = session.say(s("bob"), s("five"));
        assert_eq!(private.len(), 1);
        assert!(session.is_waiting());
        let login = session.relogin().unwrap();
        let updates = session.on_frame(ServerFrame::Welcome {
            id: login.id().unwrap(),
            nick: s("alice"),
            online: vec![s("alice")],
            online_more: 0,
            new_account: false,
            replay: 3,
            public_seq: 0,
            groups: vec![],
            replay_left: 0,
        });
        assert_eq!(
            updates[0],
            Update::Show(Notice::Reconnected { count: 3 }),
            "no welcome line, no LoggedIn status: {updates:?}"
        );
        assert!(!updates.iter().any(|u| matches!(u, Update::LoggedIn(_))));
        let resent: Vec<(Option<String>, String)> = sent(&updates)
            .into_iter()
            .map(|r| match r {
                Request::Message { cid, text, .. } => (cid, text),
                other => panic!("{other:?}"),
            })
            .collect();
        let want = [
            ("t-2", "two"),
            ("t-3", "three"),
            ("t-4", "four"),
            ("t-5", "five"),
        ]
        .map(|(cid, text)| (Some(s(cid)), s(text)));
        assert_eq!(resent, want);
        // Lost again during the resend: the same ones, again in order.
        session.disconnected();
        let login = session.relogin().unwrap();
        let updates = session.on_frame(welcome(login.id().unwrap(), "alice", &["alice"]));
        let cids: Vec<_> = sent(&updates)
            .into_iter()
            .map(|r| match r {
                Request::Message { cid, .. } => cid.unwrap(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(cids, ["t-2", "t-3", "t-4", "t-5"]);
    }

    /// A resend the server already had is acknowledged as a duplicate:
    /// stored all the same, and shown once.
    #[test]
    fn a_duplicate_ack_marks_it_stored() {
        let (mut session, _) = logged_in("alice", &["alice"]);
        say(&mut session, "bob", "hi");
        session.disconnected();
        let login = session.relogin().unwrap();
        let updates = session.on_frame(welcome(login.id().unwrap(), "alice", &["alice"]));
        let resend = sent(&updates)[0].id().unwrap();
        let stored = session.on_frame(ServerFrame::Ack {
            id: resend,
            offline: false,
            duplicate: true,
        });
        assert_eq!(
            stored,
            [Update::Show(Notice::Stored {
                number: 1,
                receiver: s("bob"),
                offline: false
            })]
        );
        assert!(!session.is_waiting());
    }

    /// States only move forward: a `delivered` before the resend's ack
    /// leaves that ack nothing to say.
    #[test]
    fn delivered_before_the_resend_ack() {
        let (mut session, _) = logged_in("alice", &["alice"]);
        say(&mut session, "bob", "hi");
        session.disconnected();
        let login = session.relogin().unwrap();
        let updates = session.on_frame(welcome(login.id().unwrap(), "alice", &["alice"]));
        let resend = sent(&updates)[0].id().unwrap();
        let delivered = session.on_frame(ServerFrame::Delivered {
            cid: s("t-1"),
            to: s("bob"),
        });
        assert_eq!(
            delivered,
            [Update::Show(Notice::Delivered {
                number: Some(1),
                receiver: s("bob")
            })]
        );
        assert_eq!(session.on_frame(ack(resend)), []);
        assert!(!session.is_waiting());
    }

    #[test]
    fn a_refused_message_leaves_the_outbox() {
        let (mut session, _) = logged_in("alice", &["alice"]);
        let sent = say(&mut session, "zed", "hi");
        assert_eq!(
            session.on_frame(ServerFrame::Error {
                id: sent.id(),
                code: ErrorCode::NoSuchUser,
                reason: s("no such user: zed")
            }),
            [Update::Show(Notice::Refused {
                number: 1,
                receiver: s("zed"),
                reason: s("no such user: zed")
            })]
        );
        assert!(!session.is_waiting());
        assert!(session.unsent().is_empty());
    }

    #[test]
    fn messages_are_told_apart() {
        let (mut session, _) = logged_in("alice", &["alice"]);
        let public = |sender: &str, own| {
            vec![Update::Show(Notice::Public {
                sender: s(sender),
                text: s("t"),
                own,
                time: 5,
                away: false,
            })]
        };
        let cases = vec![
            (message(1, "alice", "*", "t"), public("alice", true)),
            (message(2, "bob", "*", "t"), public("bob", false)),
            (
                message(1, "bob", "alice", "t"),
                vec![Update::Show(Notice::PrivateFrom {
                    sender: s("bob"),
                    text: s("t"),
                    time: 5,
                    away: false,
                })],
            ),
            (message(2, "alice", "bob", "t"), vec![]),
            // No seq (an older server): shown, never deduplicated.
            (message(0, "bob", "*", "t"), public("bob", false)),
            (message(0, "bob", "*", "t"), public("bob", false)),
        ];
        for (frame, want) in cases {
            assert_eq!(session.on_frame(frame.clone()), want, "{frame:?}");
        }
    }
}
