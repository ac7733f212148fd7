//! What the session's tests share: a session with predictable message ids,
//! one logged in, and the frames they feed it.

use chat_common::{Request, ServerFrame};

use super::{Session, Update};
use crate::outbox::Outbox;
use crate::roster::SharedRoster;

pub fn s(text: &str) -> String {
    text.to_string()
}

pub fn session() -> (Session, SharedRoster) {
    let roster = SharedRoster::default();
    let session = Session::with_outbox(roster.clone(), Outbox::new("t"));
    (session, roster)
}

pub fn welcome(id: u64, nick: &str, online: &[&str]) -> ServerFrame {
    ServerFrame::Welcome {
        id,
        nick: s(nick),
        online: online.iter().map(|n| s(n)).collect(),
        online_more: 0,
        new_account: false,
        replay: 0,
        public_seq: 0,
        groups: vec![],
        replay_left: 0,
    }
}

pub fn logged_in(nick: &str, online: &[&str]) -> (Session, SharedRoster) {
    let (mut session, roster) = session();
    let id = session.login(s(nick), s("pw")).id().unwrap();
    let updates = session.on_frame(welcome(id, nick, online));
    assert_eq!(updates.last(), Some(&Update::LoggedIn(s(nick))));
    assert!(!session.is_waiting());
    (session, roster)
}

pub fn message(seq: u64, sender: &str, receiver: &str, text: &str) -> ServerFrame {
    ServerFrame::Message {
        seq,
        sender: s(sender),
        receiver: s(receiver),
        text: s(text),
        time: 5,
        away: false,
    }
}

pub fn ack(id: u64) -> ServerFrame {
    ServerFrame::Ack {
        id,
        offline: false,
        duplicate: false,
    }
}

/// The requests among `updates`.
pub fn sent(updates: &[Update]) -> Vec<Request> {
    updates
        .iter()
        .filter_map(|u| match u {
            Update::Send(request) => Some(request.clone()),
            _ => None,
        })
        .collect()
}

/// The one request `say` made.
pub fn say(session: &mut Session, to: &str, text: &str) -> Request {
    let requests = sent(&session.say(s(to), s(text)));
    assert_eq!(requests.len(), 1, "{requests:?}");
    requests[0].clone()
}
