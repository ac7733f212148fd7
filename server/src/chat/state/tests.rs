//! Unit tests of the chat state, against a fake store and fake hashers.

use super::*;
use super::{Op, Reply};
use crate::chat::auth::Verdict;
use crate::chat::state::policy::LoginPolicy;
use crate::store::Account;
use crate::store::{Appended, Page};
use chat_common::protocol::MAX_PASSWORD;

/// Records what the state asks for; a broadcast reaches the
/// connections subscribed at that moment, as the workers do it.
#[derive(Default)]
struct Recorder {
    sent: Vec<(ConnId, ServerFrame)>,
    closed: Vec<ConnId>,
    subscribed: std::collections::BTreeSet<ConnId>,
    bound: std::collections::BTreeMap<ConnId, UserId>,
    ops: VecDeque<Op>,
    jobs: VecDeque<Check>,
    files: Vec<crate::files::Job>,
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
    fn bind(&mut self, conn: ConnId, user: Option<UserId>) {
        match user {
            Some(user) => self.bound.insert(conn, user),
            None => self.bound.remove(&conn),
        };
    }
    fn broadcast(&mut self, frame: Frame) {
        for conn in self.subscribed.clone() {
            self.send(conn, frame.clone());
        }
    }
    fn store(&mut self, op: Op) {
        self.ops.push_back(op);
    }
    fn auth(&mut self, job: Check) {
        self.jobs.push_back(job);
    }
    fn files(&mut self, job: crate::files::Job) {
        self.files.push(job);
    }
}

impl Recorder {
    fn take(&mut self) -> Vec<(ConnId, ServerFrame)> {
        std::mem::take(&mut self.sent)
    }
}

/// A fake store and hashers: passwords are "pw-" + nick; messages get
/// consecutive numbers; backlogs are empty unless `backlog` says.
struct World {
    state: ChatState,
    out: Recorder,
    seq: u64,
    /// The time given to the state, in ms.
    now: u64,
}

impl World {
    fn new(accounts: &[&str]) -> World {
        let accounts = accounts
            .iter()
            .enumerate()
            .map(|(i, nick)| Account {
                id: i as UserId + 1,
                nick: nick.to_string(),
                hash: format!("pw-{nick}"),
                key: Some(crate::chat::state::identity::key(nick)),
            })
            .collect();
        World {
            state: ChatState::new(100, Accounts::new(accounts)),
            out: Recorder::default(),
            seq: 0,
            now: 0,
        }
    }

    fn with_policy(mut self, policy: LoginPolicy) -> World {
        self.state = self.state.with_login_policy(policy);
        self
    }

    /// Answers every pending job and op, in order, until none is left.
    fn settle(&mut self) {
        loop {
            if let Some(job) = self.out.jobs.pop_front() {
                // The fake's "hash" of a password is the password.
                let verdict = match (&job.hash, &job.change) {
                    (None, _) => Verdict::Hashed(job.password.clone()),
                    (Some(hash), Some(new)) if *hash == job.password => {
                        Verdict::Hashed(new.clone())
                    }
                    (Some(hash), None) if *hash == job.password => Verdict::Verified,
                    (Some(_), _) => Verdict::WrongPassword,
                };
                self.state
                    .authenticated(job, verdict, self.now, &mut self.out);
            } else if let Some(op) = self.out.ops.pop_front() {
                let reply = match op {
                    Op::Append { origin, message } if !message.fanout.is_empty() => {
                        let seqs = message
                            .fanout
                            .iter()
                            .map(|_| {
                                self.seq += 1;
                                self.seq
                            })
                            .collect();
                        Reply::Appended {
                            origin,
                            message,
                            outcome: Appended::Fanned(seqs),
                        }
                    }
                    Op::Append { origin, message } => {
                        self.seq += 1;
                        Reply::Appended {
                            origin,
                            message,
                            outcome: Appended::New { seq: self.seq },
                        }
                    }
                    Op::Group { origin, then, .. } => Reply::Grouped {
                        origin,
                        result: Ok(()),
                        then,
                    },
                    Op::Backlog { origin, user, .. } => Reply::Backlog {
                        origin,
                        user,
                        result: Ok(Page {
                            messages: Vec::new(),
                            public_head: self.seq,
                            last_seq: 0,
                            last_public: None,
                            left: 0,
                        }),
                    },
                    Op::Echo { origin, then } => Reply::Echo { origin, then },
                    Op::Notify(tx) => Reply::Notify(tx, true),
                    Op::Tail { stream, after } => Reply::Tail {
                        stream,
                        after,
                        result: Ok(Vec::new()),
                    },
                    Op::Heads(_) => Reply::Heads(Ok(Vec::new())),
                    Op::History { origin, .. }
                    | Op::Search { origin, .. }
                    | Op::GroupHistory { origin, .. } => Reply::Found {
                        origin,
                        result: Ok(Vec::new()),
                    },
                    Op::CreateAccount { .. }
                    | Op::SetPassword { .. }
                    | Op::Received { .. }
                    | Op::Sanction(..)
                    | Op::Online { .. }
                    | Op::Offline { .. }
                    | Op::Kick { .. }
                    | Op::File(_)
                    | Op::LoginFailed { .. }
                    | Op::Away { .. } => continue,
                };
                self.state.stored(reply, self.now, &mut self.out);
            } else {
                return;
            }
        }
    }

    fn connect(&mut self, conn: ConnId) {
        self.connect_from(conn, "127.0.0.1", false);
    }

    fn connect_from(&mut self, conn: ConnId, ip: &str, tls: bool) {
        let info = ConnInfo {
            id: conn,
            peer: std::net::SocketAddr::new(ip.parse().unwrap(), 1000 + conn as u16),
            tls,
        };
        self.state.connect(info, self.now);
    }

    fn request(&mut self, conn: ConnId, request: Request) {
        self.state.request(conn, request, self.now, &mut self.out);
    }

    fn login(&mut self, conn: ConnId, nick: &str, password: &str) {
        self.connect(conn);
        self.request(conn, login(nick, password));
        self.settle();
    }
}

fn login(nick: &str, password: &str) -> Request {
    Request::Login {
        id: 1,
        nick: nick.into(),
        password: password.into(),
        last_seq: None,
        last_public: None,
        register: None,
    }
}

fn message(id: u64, receiver: &str, text: &str) -> Request {
    Request::Message {
        id,
        receiver: receiver.into(),
        text: text.into(),
        cid: None,
    }
}

fn kinds(frames: &[(ConnId, ServerFrame)], conn: ConnId) -> Vec<String> {
    frames
        .iter()
        .filter(|(c, _)| *c == conn)
        .map(|(_, f)| match f {
            ServerFrame::Error { code, .. } => format!("error:{code:?}"),
            other => serde_json::to_value(other).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string(),
        })
        .collect()
}

#[test]
fn first_login_registers_and_later_ones_need_the_password() {
    let mut w = World::new(&["alice"]);
    w.login(1, "newbie", "secret");
    let sent = w.out.take();
    assert!(matches!(
        &sent[0].1,
        ServerFrame::Welcome { new_account: true, nick, .. } if nick == "newbie"
    ));
    assert!(w.state.stats(0).accounts == 2);
    w.login(2, "ALICE", "wrong");
    assert_eq!(kinds(&w.out.take(), 2), ["error:BadPassword"]);
    w.request(2, login("ALICE", "pw-alice"));
    w.settle();
    let sent = w.out.take();
    assert!(
        matches!(&sent[0].1, ServerFrame::Welcome { nick, new_account: false, .. } if nick == "alice"),
        "the account's spelling: {sent:?}"
    );
}

#[test]
fn requests_sent_with_the_login_wait_for_it_and_keep_their_order() {
    let mut w = World::new(&["alice"]);
    w.connect(1);
    w.request(1, login("alice", "pw-alice"));
    w.request(1, message(2, "*", "hi"));
    w.request(1, Request::Ping { id: 3 });
    w.settle();
    assert_eq!(
        kinds(&w.out.take(), 1),
        ["welcome", "ack", "message", "pong"],
        "not refused as not_logged_in, and the pong after the ack"
    );
}

#[test]
fn private_messages_are_acked_when_stored_and_offline_ones_say_so() {
    let mut w = World::new(&["alice", "bob", "carol"]);
    w.login(1, "alice", "pw-alice");
    w.login(2, "bob", "pw-bob");
    w.out.take();
    w.request(1, message(5, "bob", "psst"));
    assert!(w.out.take().is_empty(), "nothing before the store replies");
    w.settle();
    let sent = w.out.take();
    assert_eq!(kinds(&sent, 1), ["ack"]);
    assert_eq!(kinds(&sent, 2), ["message"]);
    w.request(1, message(6, "carol", "later"));
    w.request(1, message(7, "nobody", "x"));
    w.settle();
    let sent = w.out.take();
    assert!(
        matches!(
            sent[0].1,
            ServerFrame::Ack {
                id: 6,
                offline: true,
                ..
            }
        ),
        "{sent:?}"
    );
    assert!(
        matches!(
            sent[1].1,
            ServerFrame::Error {
                code: ErrorCode::NoSuchUser,
                ..
            }
        ),
        "{sent:?}"
    );
    assert_eq!(w.state.stats(0).stored_offline, 1);
}

#[test]
fn a_second_login_takes_over_quietly() {
    let mut w = World::new(&["alice", "bob"]);
    w.login(1, "alice", "pw-alice");
    w.login(2, "bob", "pw-bob");
    w.state.flush_presence(&mut w.out);
    w.out.take();
    w.login(3, "bob", "pw-bob");
    let sent = w.out.take();
    assert_eq!(kinds(&sent, 2), ["error:TakenOver"]);
    assert!(w.out.closed.contains(&2));
    assert_eq!(kinds(&sent, 3)[0], "welcome");
    assert!(
        !w.state.has_presence(),
        "nobody is told bob left and came back"
    );
    w.request(1, message(9, "bob", "still there?"));
    w.settle();
    assert_eq!(
        kinds(&w.out.take(), 3),
        ["message"],
        "the new connection gets it"
    );
}

#[test]
fn bye_is_answered_after_what_is_in_flight() {
    let mut w = World::new(&["alice"]);
    w.login(1, "alice", "pw-alice");
    w.out.take();
    w.request(1, message(2, "*", "last words"));
    w.request(1, Request::Bye { id: 3 });
    w.request(1, Request::Ping { id: 4 });
    w.settle();
    let sent = w.out.take();
    assert_eq!(
        kinds(&sent, 1),
        ["ack", "message", "ack"],
        "no pong after bye"
    );
    assert!(matches!(
        sent.last().unwrap().1,
        ServerFrame::Ack { id: 3, .. }
    ));
    assert_eq!(w.out.closed, [1]);
}

#[test]
fn a_half_close_behind_a_login_still_gets_every_answer() {
    let mut w = World::new(&["alice"]);
    w.connect(1);
    w.request(1, login("alice", "pw-alice"));
    w.request(1, message(2, "*", "built"));
    w.request(1, Request::Bye { id: 3 });
    w.state.peer_closed(1, &mut w.out);
    w.settle();
    assert_eq!(
        kinds(&w.out.take(), 1),
        ["welcome", "ack", "message", "ack"]
    );
    assert_eq!(w.out.closed, [1]);
}

#[test]
fn too_many_requests_before_the_welcome_are_refused_in_their_turn() {
    let mut w = World::new(&["alice"]);
    w.connect(1);
    w.request(1, login("alice", "pw-alice"));
    for id in 2..(MAX_QUEUED as u64 + 4) {
        w.request(1, Request::Ping { id });
    }
    assert!(w.out.take().is_empty(), "nothing before the welcome");
    w.settle();
    let kinds = kinds(&w.out.take(), 1);
    assert_eq!(kinds[0], "welcome");
    assert_eq!(
        kinds[1..=MAX_QUEUED]
            .iter()
            .filter(|k| *k == "pong")
            .count(),
        MAX_QUEUED
    );
    assert_eq!(
        kinds[MAX_QUEUED + 1..],
        ["error:BadRequest", "error:BadRequest"]
    );
}

#[test]
fn one_connection_has_at_most_4_reads_at_the_store() {
    let mut w = World::new(&["alice"]);
    w.login(1, "alice", "pw-alice");
    w.out.take();
    for id in 1..=100 {
        let history = Request::History {
            id,
            with: None,
            limit: 500,
        };
        w.request(1, history);
    }
    w.request(1, Request::Ping { id: 101 });
    assert_eq!(w.out.ops.len(), MAX_READS as usize, "the rest wait");
    w.settle();
    let ids: Vec<u64> = w
        .out
        .take()
        .into_iter()
        .map(|(_, f)| match f {
            ServerFrame::History { id, .. } | ServerFrame::Pong { id } => id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, (1..=101).collect::<Vec<_>>(), "all answered, in order");
}

#[test]
fn received_counts_even_after_bye() {
    let mut w = World::new(&["alice"]);
    w.login(1, "alice", "pw-alice");
    w.request(1, Request::Bye { id: 5 });
    w.request(1, Request::Received { seq: 3 });
    assert!(
        w.out
            .ops
            .iter()
            .any(|op| matches!(op, Op::Received { seq: 3, .. })),
        "{:?}",
        w.out.ops
    );
}

#[test]
fn refusals_keep_the_connection_usable() {
    let cases = [
        (login("", "pw"), ErrorCode::NickInvalid),
        (login("two words", "pw"), ErrorCode::NickInvalid),
        (login("zed", ""), ErrorCode::PasswordInvalid),
        (
            login("zed", &"x".repeat(MAX_PASSWORD + 1)),
            ErrorCode::PasswordInvalid,
        ),
        (message(1, "*", "before login"), ErrorCode::NotLoggedIn),
    ];
    for (request, code) in cases {
        let mut w = World::new(&[]);
        w.connect(1);
        w.request(1, request);
        w.settle();
        assert_eq!(kinds(&w.out.take(), 1), [format!("error:{code:?}")]);
        w.request(1, login("zed", "pw"));
        w.settle();
        assert_eq!(kinds(&w.out.take(), 1)[0], "welcome");
    }
}

// Identity, the login throttle and the plaintext policy.

/// The default policy but for the throttle, which these tests do not meet.
fn lenient() -> LoginPolicy {
    LoginPolicy {
        max_failures: 1000,
        ..LoginPolicy::default()
    }
}

/// Every look-alike of a registered name logs in to that account: with
/// the wrong password it is refused, with the right one it is the account
/// (shown as registered); none becomes a second account.
#[test]
fn lookalikes_of_a_name_are_that_account() {
    let mut w = World::new(&["alice"]).with_policy(lenient());
    let spellings = [
        "ALICE",
        "аlice",
        "ａｌｉｃｅ",
        "alİce",
        "a\u{301}lice",
        "\u{1d41a}lice",
    ];
    for (i, spelling) in spellings.iter().enumerate() {
        w.login(i as ConnId + 1, spelling, "guess");
        assert_eq!(
            kinds(&w.out.take(), i as ConnId + 1),
            ["error:BadPassword"],
            "{spelling}"
        );
    }
    w.login(99, "ａｌｉｃｅ", "pw-alice");
    let sent = w.out.take();
    assert!(
        matches!(&sent[0].1, ServerFrame::Welcome { nick, new_account: false, .. } if nick == "alice"),
        "{sent:?}"
    );
    assert_eq!(w.state.stats(0).accounts, 1);
}

/// A private message, a kick, a history request find the account under
/// any look-alike of its name.
#[test]
fn requests_naming_a_lookalike_reach_the_account() {
    let mut w = World::new(&["alice", "bob"]);
    w.login(1, "alice", "pw-alice");
    w.login(2, "bob", "pw-bob");
    w.out.take();
    w.request(2, message(5, "АLICE", "hi"));
    w.settle();
    let sent = w.out.take();
    assert!(
        matches!(&sent.iter().find(|(c, _)| *c == 1).unwrap().1,
            ServerFrame::Message { receiver, text, .. } if receiver == "alice" && text == "hi"),
        "{sent:?}"
    );
    let history = Request::History {
        id: 6,
        with: Some("ａｌｉｃｅ".into()),
        limit: 5,
    };
    w.request(2, history);
    assert!(
        matches!(w.out.ops.back(), Some(Op::History { with: Some(1), .. })),
        "{:?}",
        w.out.ops
    );
    w.settle();
    assert_eq!(
        w.state.kick("ALİCE", "test", &mut w.out),
        Ok("alice".into())
    );
}

#[test]
fn reserved_names_are_refused_before_hashing() {
    let mut w = World::new(&[]);
    for (conn, nick) in [(1, "admin"), (2, "ＳＥＲＶＥＲ"), (3, "аdmin"), (4, "Root")] {
        w.connect(conn);
        w.request(conn, login(nick, "pw"));
        assert_eq!(kinds(&w.out.take(), conn), ["error:NickReserved"], "{nick}");
    }
    assert!(w.out.jobs.is_empty(), "no hashing");
    assert_eq!(w.state.stats(0).accounts, 0);
}

/// A capital I for an l cannot register next to the name it imitates,
/// and a name is registered in its NFKC form.
#[test]
fn new_names_are_normalised_and_may_not_imitate() {
    let mut w = World::new(&["alice"]);
    w.login(1, "aIice", "pw");
    assert_eq!(kinds(&w.out.take(), 1), ["error:NickTaken"]);
    assert!(w.out.jobs.is_empty());
    w.request(1, login("ｂｏｂ", "pw"));
    w.settle();
    let sent = w.out.take();
    assert!(
        matches!(&sent[0].1, ServerFrame::Welcome { nick, new_account: true, .. } if nick == "bob"),
        "{sent:?}"
    );
    w.connect(2);
    w.request(2, login("a\u{a8}", "pw"));
    assert_eq!(
        kinds(&w.out.take(), 2),
        ["error:NickInvalid"],
        "a diaeresis is a space and a mark once normalised"
    );
}

/// Three wrong passwords in the window; the fourth try, even with the
/// right password, is refused at once without hashing, until the first
/// failure is a window old.
#[test]
fn the_fourth_failure_in_a_minute_is_not_hashed() {
    let mut w = World::new(&["alice"]);
    for conn in 1..=3 {
        w.now = conn * 1000;
        w.login(conn, "alice", "guess");
        assert_eq!(kinds(&w.out.take(), conn), ["error:BadPassword"]);
    }
    w.now = 60_999;
    w.connect(4);
    w.request(4, login("alice", "pw-alice"));
    assert!(w.out.jobs.is_empty(), "nothing to hash");
    let sent = w.out.take();
    assert!(
        matches!(&sent[0].1, ServerFrame::Error { code: ErrorCode::TooManyAttempts, reason, .. }
            if reason.contains("try again in 1 s")),
        "{sent:?}"
    );
    w.now = 61_000;
    w.request(4, login("alice", "pw-alice"));
    w.settle();
    assert_eq!(kinds(&w.out.take(), 4)[0], "welcome");
}

/// A burst of guesses sent at once from many addresses: the account's
/// limit (twice the limit per address) is hashed, the others wait for them
/// and are then refused.
#[test]
fn a_burst_of_guesses_gets_six_hashed() {
    let mut w = World::new(&["alice"]);
    for conn in 1..=20 {
        w.connect_from(conn, &format!("10.0.0.{conn}"), true);
        w.request(conn, login("alice", "guess"));
    }
    assert_eq!(w.out.jobs.len(), 6);
    w.settle();
    let sent = w.out.take();
    let count = |code: ErrorCode| {
        sent.iter()
            .filter(|(_, f)| matches!(f, ServerFrame::Error { code: c, .. } if *c == code))
            .count()
    };
    assert_eq!(count(ErrorCode::BadPassword), 6);
    assert_eq!(count(ErrorCode::TooManyAttempts), 14);
}

/// A classroom on one address: one student's three typos lock out only
/// that student there; the others log in.
#[test]
fn one_students_typos_do_not_lock_out_the_class() {
    let mut w = World::new(&["ann", "ben"]);
    for conn in 1..=3 {
        w.login(conn, "ann", "guess");
    }
    w.out.take();
    w.login(4, "ann", "pw-ann");
    w.login(5, "ben", "pw-ben");
    w.login(6, "newbie", "pw");
    let sent = w.out.take();
    assert_eq!(kinds(&sent, 4), ["error:TooManyAttempts"]);
    assert_eq!(kinds(&sent, 5)[0], "welcome", "another account");
    assert_eq!(kinds(&sent, 6)[0], "welcome", "a registration");
}

/// One address that fails on sixty accounts: it may not register, nor log
/// in to an account under attack, but an account never the target is
/// checked as usual; a connection from another address is not touched.
#[test]
fn an_address_spraying_accounts_is_stopped_for_targets() {
    let nicks: Vec<String> = (0..=60).map(|i| format!("u{i}")).collect();
    let names: Vec<&str> = nicks.iter().map(String::as_str).collect();
    let mut w = World::new(&names);
    for (conn, nick) in (1..).zip(&names[..60]) {
        w.login(conn, nick, "guess");
    }
    w.out.take();
    w.login(100, "u0", "pw-u0");
    w.login(101, "newbie", "pw");
    w.login(102, "u60", "pw-u60");
    let sent = w.out.take();
    assert_eq!(kinds(&sent, 100), ["error:TooManyAttempts"]);
    assert_eq!(kinds(&sent, 101), ["error:TooManyAttempts"]);
    assert_eq!(kinds(&sent, 102)[0], "welcome", "never the target");
    w.connect_from(103, "10.9.9.9", true);
    w.request(103, login("u0", "pw-u0"));
    w.settle();
    assert_eq!(kinds(&w.out.take(), 103)[0], "welcome", "another address");
}

#[test]
fn logins_beyond_the_queue_are_busy() {
    let mut w = World::new(&[]).with_policy(LoginPolicy {
        max_pending: 2,
        ..LoginPolicy::default()
    });
    for conn in 1..=3 {
        w.connect(conn);
        w.request(conn, login(&format!("user{conn}"), "pw"));
    }
    assert_eq!(w.out.jobs.len(), 2);
    assert_eq!(kinds(&w.out.take(), 3), ["error:Busy"]);
    w.settle();
    w.request(3, login("user3", "pw"));
    w.settle();
    assert_eq!(
        kinds(&w.out.take(), 3)[0],
        "welcome",
        "once the queue emptied"
    );
}

#[test]
fn plaintext_passwords_follow_the_policy() {
    use crate::chat::state::policy::PlaintextLogin;
    let cases = [
        (PlaintextLogin::Auto, "127.0.0.1", false, true),
        (PlaintextLogin::Auto, "192.168.1.5", false, false),
        (PlaintextLogin::Auto, "192.168.1.5", true, true),
        (PlaintextLogin::Allow, "192.168.1.5", false, true),
        (PlaintextLogin::Refuse, "127.0.0.1", false, false),
        (PlaintextLogin::Refuse, "192.168.1.5", true, true),
    ];
    for (plaintext, ip, tls, allowed) in cases {
        let mut w = World::new(&[]).with_policy(LoginPolicy {
            plaintext,
            ..LoginPolicy::default()
        });
        w.connect_from(1, ip, tls);
        w.request(1, login("zed", "pw"));
        w.settle();
        let expected = if allowed {
            "welcome"
        } else {
            "error:PlaintextRefused"
        };
        assert_eq!(
            kinds(&w.out.take(), 1)[0],
            expected,
            "{plaintext:?} {ip} tls {tls}"
        );
    }
}

/// The keepalive pings a silent connection once per silence, cuts it at the
/// idle timeout with a `timeout` error and tells the others it left; a
/// `pong` (or any request) restarts the clock and is not answered.
#[test]
fn the_keepalive_pings_the_silent_and_cuts_the_lost() {
    let keepalive = Keepalive {
        ping_after: std::time::Duration::from_secs(90),
        idle_timeout: std::time::Duration::from_secs(150),
    };
    let mut w = World::new(&["alice", "bob"]);
    w.login(1, "alice", "pw-alice");
    w.login(2, "bob", "pw-bob");
    w.state.flush_presence(&mut w.out);
    w.out.take();
    let tick = |w: &mut World, at_s: u64| {
        let cut = w.state.keep_alive(at_s * 1000, keepalive, &mut w.out);
        w.state.flush_presence(&mut w.out);
        (cut, w.out.take())
    };
    assert_eq!(tick(&mut w, 89), (vec![], vec![]));
    let (cut, sent) = tick(&mut w, 90);
    assert!(cut.is_empty());
    assert_eq!(
        (kinds(&sent, 1), kinds(&sent, 2)),
        (vec!["ping".into()], vec!["ping".into()])
    );
    w.state.request(2, Request::Pong, 100_000, &mut w.out);
    assert_eq!(w.out.take(), vec![], "a pong is not answered");
    assert_eq!(tick(&mut w, 120), (vec![], vec![]), "one ping per silence");
    let (cut, sent) = tick(&mut w, 150);
    assert_eq!(cut, vec![1]);
    assert_eq!(kinds(&sent, 1), ["error:Timeout"]);
    assert_eq!(w.out.closed, [1]);
    assert!(
        sent.iter().any(|(c, f)| *c == 2
            && matches!(f, ServerFrame::Presence { left, .. }
                if left[0].nick == "alice" && left[0].reason == "keepalive timeout")),
        "{sent:?}"
    );
    assert_eq!(w.state.online(), ["bob"]);
    // Bob was heard at 100 s: pinged again at 190, not before.
    assert_eq!(tick(&mut w, 189), (vec![], vec![]));
    assert_eq!(kinds(&tick(&mut w, 190).1, 2), ["ping"]);
    // A closing connection is neither pinged nor cut again.
    assert_eq!(tick(&mut w, 400).0, vec![2]);
    assert_eq!(tick(&mut w, 600), (vec![], vec![]));
}

/// A ban the operator gives while the password is being checked holds:
/// the check passing must not let the banned user in.
#[test]
fn a_ban_given_while_the_password_is_checked_holds() {
    let mut w = World::new(&["alice"]);
    w.connect(1);
    w.request(1, login("alice", "pw-alice"));
    assert_eq!(w.out.jobs.len(), 1, "the password is being checked");
    let now = w.now;
    w.state
        .sanction(
            crate::store::SanctionKind::Ban,
            "alice",
            None,
            now,
            &mut w.out,
        )
        .unwrap();
    w.settle();
    assert_eq!(kinds(&w.out.take(), 1), ["error:Banned"]);
    assert!(w.state.online().is_empty(), "alice is not online");
}

/// With more than `WELCOME_NAMES` online, a newcomer whose name sorts
/// after the first hundred is still in its own welcome (it says "you
/// included"), and the count of the others adds up.
#[test]
fn a_welcome_in_a_crowd_names_the_newcomer() {
    let mut w = World::new(&[]).with_policy(LoginPolicy {
        registrations_per_hour: 0,
        ..LoginPolicy::default()
    });
    for i in 0..120u64 {
        w.login(i + 1, &format!("user{i:03}"), "pw");
    }
    w.out.take();
    w.login(500, "zed", "pw");
    let sent = w.out.take();
    let Some(ServerFrame::Welcome {
        online,
        online_more,
        ..
    }) = sent.iter().find(|(c, _)| *c == 500).map(|(_, f)| f)
    else {
        panic!("no welcome: {sent:?}");
    };
    assert_eq!(online.len(), chat_common::protocol::WELCOME_NAMES);
    assert_eq!(online.last().map(String::as_str), Some("zed"), "{online:?}");
    assert_eq!(online[0], "user000", "still in order");
    assert_eq!(online.len() + *online_more as usize, 121);
}

/// `register: false` logs in to an existing account only: a new name gets
/// `no_such_user` and nothing is created, so a client can ask for the new
/// password twice before creating it.
#[test]
fn a_login_that_must_not_register_creates_nothing() {
    let mut w = World::new(&["alice"]);
    w.connect(1);
    let only = |nick: &str, password: &str| Request::Login {
        id: 1,
        nick: nick.into(),
        password: password.into(),
        last_seq: None,
        last_public: None,
        register: Some(false),
    };
    w.request(1, only("newbie", "secret"));
    w.settle();
    assert_eq!(kinds(&w.out.take(), 1), ["error:NoSuchUser"]);
    assert_eq!(w.state.stats(0).accounts, 1, "nothing created");
    w.request(1, only("alice", "pw-alice"));
    w.settle();
    assert_eq!(kinds(&w.out.take(), 1)[0], "welcome");
}

/// `password`: the old one must match; the new one is what logs in next.
#[test]
fn a_password_change_needs_the_old_one() {
    let mut w = World::new(&["alice"]);
    w.login(1, "alice", "pw-alice");
    w.out.take();
    let change = |id, old: &str, new: &str| Request::Password {
        id,
        old: old.into(),
        new: new.into(),
    };
    w.request(1, change(2, "wrong", "fresh"));
    w.settle();
    assert_eq!(kinds(&w.out.take(), 1), ["error:BadPassword"]);
    w.request(1, change(3, "pw-alice", ""));
    w.settle();
    assert_eq!(kinds(&w.out.take(), 1), ["error:PasswordInvalid"]);
    w.request(1, change(4, "pw-alice", "fresh"));
    w.settle();
    assert_eq!(kinds(&w.out.take(), 1), ["ack"]);
    w.login(2, "alice", "pw-alice");
    assert_eq!(
        kinds(&w.out.take(), 2),
        ["error:BadPassword"],
        "the old one"
    );
    w.login(3, "alice", "fresh");
    assert_eq!(kinds(&w.out.take(), 3)[0], "welcome");
}

/// `--registration closed`: only the operator creates accounts; those
/// that exist log in as before.
#[test]
fn closed_registration_refuses_new_names() {
    let mut w = World::new(&["alice"]).with_policy(LoginPolicy {
        registration: crate::chat::state::policy::Registration::Closed,
        ..LoginPolicy::default()
    });
    w.login(1, "newbie", "pw");
    assert_eq!(kinds(&w.out.take(), 1), ["error:RegistrationClosed"]);
    let nick = w.state.register("Newbie", "pw".into(), 0, &mut w.out);
    assert_eq!(nick.as_deref(), Ok("Newbie"));
    assert!(w
        .state
        .register("NEWBIE", "x".into(), 0, &mut w.out)
        .is_err());
    w.login(2, "newbie", "pw");
    assert_eq!(kinds(&w.out.take(), 2)[0], "welcome");
    w.login(3, "alice", "pw-alice");
    assert_eq!(kinds(&w.out.take(), 3)[0], "welcome");
}

/// One address may create `--registrations-per-hour` accounts an hour.
#[test]
fn registrations_are_limited_per_address() {
    let mut w = World::new(&[]).with_policy(LoginPolicy {
        registrations_per_hour: 3,
        ..LoginPolicy::default()
    });
    for conn in 1..=3 {
        w.login(conn, &format!("user{conn}"), "pw");
        assert_eq!(kinds(&w.out.take(), conn)[0], "welcome");
    }
    w.login(4, "user4", "pw");
    let sent = w.out.take();
    assert!(
        matches!(&sent[0].1, ServerFrame::Error { code: ErrorCode::TooManyAttempts, reason, .. }
            if reason.contains("60 min")),
        "{sent:?}"
    );
    w.login(5, "user1", "pw");
    assert_eq!(kinds(&w.out.take(), 5)[0], "welcome", "an account it has");
    w.connect_from(6, "10.9.9.9", true);
    w.request(6, login("user6", "pw"));
    w.settle();
    assert_eq!(kinds(&w.out.take(), 6)[0], "welcome", "another address");
}

/// A row a tail reads back.
fn row(seq: u64, receiver: &str, text: &str) -> crate::store::Loaded {
    crate::store::Loaded {
        seq,
        sender: "alice".into(),
        receiver: receiver.into(),
        text: text.into(),
        time: 0,
        away: true,
    }
}

/// The seqs of the messages sent to `conn`.
fn seqs_to(frames: &[(ConnId, ServerFrame)], conn: ConnId) -> Vec<u64> {
    frames
        .iter()
        .filter_map(|(c, f)| match f {
            ServerFrame::Message { seq, .. } if *c == conn => Some(*seq),
            _ => None,
        })
        .collect()
}

/// The tail ops waiting, taken out.
fn tails(out: &mut Recorder) -> Vec<(crate::store::Stream, u64)> {
    let (tails, rest): (Vec<Op>, Vec<Op>) = out
        .ops
        .drain(..)
        .partition(|op| matches!(op, Op::Tail { .. }));
    out.ops.extend(rest);
    tails
        .into_iter()
        .map(|op| match op {
            Op::Tail { stream, after } => (stream, after),
            _ => unreachable!(),
        })
        .collect()
}

/// In a cluster, what other nodes committed arrives by cursor: a head
/// beyond it asks for a tail, and nothing beyond cursor + 1 ever goes out
/// — not even this node's own commit, which waits for what comes before.
#[test]
fn in_a_cluster_deliveries_go_by_cursor_and_never_skip_a_seq() {
    use crate::store::{Heard, Stream};
    let mut w = World::new(&["alice", "bob"]);
    w.state = std::mem::replace(&mut w.state, ChatState::new(100, Accounts::default()))
        .with_cluster(1 << 32, 0);
    w.login(1, "alice", "pw-alice");
    w.login(2, "bob", "pw-bob");
    w.out.take();
    // Another node stored 1 and 2 for bob; the doorbell says so.
    w.state
        .heard(Heard::Heads(vec![(Stream::User(2), 2)]), 0, &mut w.out);
    assert_eq!(tails(&mut w.out), [(Stream::User(2), 0)]);
    // Meanwhile alice's message to bob is stored here as his 3: it waits.
    w.request(1, message(7, "bob", "third"));
    let Some(Op::Append { origin, message }) = w.out.ops.pop_front() else {
        panic!("{:?}", w.out.ops)
    };
    w.state.stored(
        Reply::Appended {
            origin,
            message,
            outcome: Appended::New { seq: 3 },
        },
        0,
        &mut w.out,
    );
    assert!(seqs_to(&w.out.sent, 2).is_empty(), "3 before 1 and 2");
    assert!(tails(&mut w.out).is_empty(), "one tail at a time");
    let reply = |after, rows| Reply::Tail {
        stream: Stream::User(2),
        after,
        result: Ok(rows),
    };
    w.state.stored(
        reply(0, vec![row(1, "bob", "one"), row(2, "bob", "two")]),
        0,
        &mut w.out,
    );
    assert_eq!(
        tails(&mut w.out),
        [(Stream::User(2), 2)],
        "3 is still ahead"
    );
    w.state
        .stored(reply(2, vec![row(3, "bob", "third")]), 0, &mut w.out);
    // A late doorbell for what was delivered: nothing again.
    w.state
        .heard(Heard::Heads(vec![(Stream::User(2), 3)]), 0, &mut w.out);
    assert!(tails(&mut w.out).is_empty());
    let sent = w.out.take();
    assert_eq!(seqs_to(&sent, 2), [1, 2, 3]);
    assert!(
        sent.iter()
            .all(|(_, f)| !matches!(f, ServerFrame::Message { away: true, .. })),
        "a live message is never 'while away'"
    );

    // The public stream: a row beyond the room's next is never broadcast.
    w.state
        .heard(Heard::Heads(vec![(Stream::Public, 2)]), 0, &mut w.out);
    assert_eq!(tails(&mut w.out), [(Stream::Public, 0)]);
    w.state.stored(
        Reply::Tail {
            stream: Stream::Public,
            after: 0,
            result: Ok(vec![row(2, "*", "two")]),
        },
        0,
        &mut w.out,
    );
    assert!(seqs_to(&w.out.take(), 1).is_empty(), "2 without 1");
    // The poll asks for the public stream and both live users' streams.
    w.state.poll(&mut w.out);
    let Some(Op::Heads(mut streams)) = w.out.ops.pop_back() else {
        panic!("no poll")
    };
    streams.sort();
    assert_eq!(streams, [Stream::Public, Stream::User(1), Stream::User(2)]);
    w.state
        .stored(Reply::Heads(Ok(vec![(Stream::Public, 2)])), 0, &mut w.out);
    assert_eq!(tails(&mut w.out), [(Stream::Public, 0)], "asked again");
}

/// In a cluster, the other nodes' users (the listener's replica) are in
/// the online list and their comings and goings in the presence lines; a
/// takeover by another node closes the session here without a word to
/// anyone; this node's logins and departures claim and release rows.
#[test]
fn in_a_cluster_the_other_nodes_users_are_online_here() {
    use crate::store::{Heard, Remote};
    let remote = |user, nick: &str| Remote {
        user,
        nick: nick.into(),
        node: "n2".into(),
        away: None,
    };
    let presence = |out: &mut Recorder, state: &mut ChatState| {
        state.flush_presence(out);
        let frames: Vec<ServerFrame> = out.take().into_iter().map(|(_, f)| f).collect();
        match frames.first() {
            Some(ServerFrame::Presence { joined, left, .. }) => Some((
                joined.clone(),
                left.iter()
                    .map(|d| (d.nick.clone(), d.reason.clone()))
                    .collect::<Vec<_>>(),
            )),
            _ => None,
        }
    };
    let mut w = World::new(&["alice", "bob", "carol"]);
    w.state = std::mem::replace(&mut w.state, ChatState::new(100, Accounts::default()))
        .with_cluster(1 << 32, 0);
    w.login(1, "alice", "pw-alice");
    assert!(
        w.out.ops.iter().all(|op| !matches!(op, Op::Online { .. })),
        "settled"
    );
    w.state.flush_presence(&mut w.out);
    w.out.take();
    w.state.heard(
        Heard::Online {
            users: vec![remote(2, "bob")],
            left: vec![],
        },
        0,
        &mut w.out,
    );
    assert_eq!(w.state.online(), ["alice", "bob"]);
    assert_eq!(w.state.stats(0).users, 2);
    let rows = w.state.list();
    assert_eq!(rows[1].node.as_deref(), Some("n2"));
    assert_eq!(
        presence(&mut w.out, &mut w.state),
        Some((vec!["bob".to_string()], vec![]))
    );
    // Bob quits there (his node says why); carol comes and her node dies.
    w.state.heard(
        Heard::Online {
            users: vec![remote(3, "carol")],
            left: vec![(2, "quit".into())],
        },
        0,
        &mut w.out,
    );
    assert_eq!(
        presence(&mut w.out, &mut w.state),
        Some((
            vec!["carol".to_string()],
            vec![("bob".into(), "quit".into())]
        ))
    );
    w.state.heard(
        Heard::Online {
            users: vec![],
            left: vec![],
        },
        0,
        &mut w.out,
    );
    assert_eq!(
        presence(&mut w.out, &mut w.state),
        Some((vec![], vec![("carol".into(), "connection lost".into())]))
    );
    // Alice logs in on n2: taken over here, and nobody is told.
    w.state.heard(Heard::TakenOver(1), 0, &mut w.out);
    let sent = w.out.take();
    assert!(
        matches!(
            &sent[..],
            [(
                1,
                ServerFrame::Error {
                    code: ErrorCode::TakenOver,
                    ..
                }
            )]
        ),
        "{sent:?}"
    );
    assert_eq!(w.out.closed, [1]);
    assert!(
        !w.out.ops.iter().any(|op| matches!(op, Op::Offline { .. })),
        "the row is n2's now"
    );
    w.state.heard(
        Heard::Online {
            users: vec![remote(1, "alice")],
            left: vec![],
        },
        0,
        &mut w.out,
    );
    assert_eq!(presence(&mut w.out, &mut w.state), None, "alice never left");
    assert_eq!(w.state.online(), ["alice"]);
    // Bob logs in here: his row is claimed before his backlog is read,
    // and his departure releases it.
    w.out.ops.clear();
    w.connect(2);
    w.request(2, login("bob", "pw-bob"));
    let job = w.out.jobs.pop_front().expect("to the hashers");
    w.state
        .authenticated(job, Verdict::Verified, w.now, &mut w.out);
    assert!(
        matches!(
            w.out.ops.make_contiguous(),
            [
                Op::Online {
                    user: 2,
                    conn: 2,
                    ..
                },
                Op::Backlog { .. }
            ]
        ),
        "{:?}",
        w.out.ops
    );
    w.settle();
    w.state.disconnect(2, "connection lost", &mut w.out);
    assert!(
        matches!(
            w.out.ops.make_contiguous(),
            [Op::Offline { user: 2, conn: 2, reason }] if reason == "connection lost"
        ),
        "{:?}",
        w.out.ops
    );
}

/// In a cluster, `online`'s away texts cover the other nodes' users (the
/// replica's), and an away text set or cleared here goes to the store for
/// the others' (once per change; nothing on one node).
#[test]
fn in_a_cluster_away_texts_cover_every_node() {
    use crate::store::{Heard, Remote};
    let away_ops = |out: &mut Recorder| -> Vec<(UserId, ConnId, Option<String>)> {
        out.ops
            .drain(..)
            .filter_map(|op| match op {
                Op::Away { user, conn, text } => Some((user, conn, text)),
                _ => None,
            })
            .collect()
    };
    let away_of = |w: &mut World| {
        w.request(1, Request::Online { id: 9 });
        match w.out.take().pop() {
            Some((1, ServerFrame::Online { away, .. })) => away,
            other => panic!("{other:?}"),
        }
    };
    // One node: away is the session's alone.
    let mut w = World::new(&["alice"]);
    w.login(1, "alice", "pw-alice");
    w.request(
        1,
        Request::Away {
            id: 2,
            text: Some("lunch".into()),
        },
    );
    assert!(away_ops(&mut w.out).is_empty(), "nothing for SQLite");

    let mut w = World::new(&["alice", "bob", "carol"]);
    w.state = std::mem::replace(&mut w.state, ChatState::new(100, Accounts::default()))
        .with_cluster(1 << 32, 0);
    w.login(1, "alice", "pw-alice");
    w.out.ops.clear();
    let remote = |user, nick: &str, away: Option<&str>| Remote {
        user,
        nick: nick.into(),
        node: "n2".into(),
        away: away.map(String::from),
    };
    w.state.heard(
        Heard::Online {
            users: vec![remote(2, "bob", Some("lunch")), remote(3, "carol", None)],
            left: vec![],
        },
        0,
        &mut w.out,
    );
    w.out.take();
    let away = away_of(&mut w);
    assert_eq!(away.len(), 1, "{away:?}");
    assert_eq!(away["bob"], "lunch");

    w.request(
        1,
        Request::Away {
            id: 3,
            text: Some("meeting".into()),
        },
    );
    assert_eq!(away_ops(&mut w.out), [(1, 1, Some("meeting".to_string()))]);
    w.request(
        1,
        Request::Away {
            id: 4,
            text: Some("meeting".into()),
        },
    );
    assert!(away_ops(&mut w.out).is_empty(), "no change, no write");
    assert_eq!(away_of(&mut w)["alice"], "meeting");
    w.request(1, Request::Away { id: 5, text: None });
    assert_eq!(away_ops(&mut w.out), [(1, 1, None)]);

    // Bob is back on n2.
    w.state.heard(
        Heard::Online {
            users: vec![remote(2, "bob", None), remote(3, "carol", None)],
            left: vec![],
        },
        0,
        &mut w.out,
    );
    w.out.take();
    assert!(away_of(&mut w).is_empty());
}

/// In a cluster, a receipt said on another node (`Heard::Delivered`) tells
/// the senders online here, each of their own message, and nobody else;
/// a sender online nowhere here is not told (best effort, as on one node).
#[test]
fn in_a_cluster_a_receipt_heard_from_another_node_tells_the_sender_here() {
    use crate::store::{Delivery, Heard};
    let mut w = World::new(&["alice", "bob", "carol", "dave"]);
    w.state = std::mem::replace(&mut w.state, ChatState::new(100, Accounts::default()))
        .with_cluster(1 << 32, 0);
    w.login(1, "alice", "pw-alice");
    w.login(3, "carol", "pw-carol");
    w.out.take();
    let receipt = |sender, cid: &str| Delivery {
        sender,
        cid: cid.into(),
        to: "bob".into(),
    };
    w.state.heard(
        Heard::Delivered(vec![
            receipt(1, "a;1:%"),
            receipt(4, "dave's"),
            receipt(1, "a-2"),
        ]),
        0,
        &mut w.out,
    );
    let sent = w.out.take();
    let told: Vec<(ConnId, String, String)> = sent
        .into_iter()
        .map(|(conn, frame)| match frame {
            ServerFrame::Delivered { cid, to } => (conn, cid, to),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        told,
        [
            (1, "a;1:%".to_string(), "bob".to_string()),
            (1, "a-2".to_string(), "bob".to_string())
        ]
    );
    assert!(w.out.ops.is_empty(), "{:?}", w.out.ops);
}

/// `/stats` in a cluster counts each node's users: this node's sessions,
/// the replica's by node, and live nodes with nobody (a node whose lease
/// just ran out while the replica still shows its users counts too); on
/// one node there is no such list.
#[test]
fn in_a_cluster_stats_count_each_nodes_users() {
    use crate::store::{Heard, Remote};
    let mut w = World::new(&["alice", "bob", "carol", "dave"]);
    w.login(1, "alice", "pw-alice");
    assert_eq!(w.state.stats(0).nodes, []);

    let mut w = World::new(&["alice", "bob", "carol", "dave"]);
    w.state = std::mem::replace(&mut w.state, ChatState::new(100, Accounts::default()))
        .with_cluster(1 << 32, 0);
    w.login(1, "alice", "pw-alice");
    w.login(2, "bob", "pw-bob");
    let remote = |user, nick: &str, node: &str| Remote {
        user,
        nick: nick.into(),
        node: node.into(),
        away: None,
    };
    w.state.heard(
        Heard::Online {
            users: vec![remote(3, "carol", "n2"), remote(4, "dave", "n4")],
            left: vec![],
        },
        0,
        &mut w.out,
    );
    w.state.heard(
        Heard::Nodes {
            here: "n1".into(),
            live: vec!["n1".into(), "n2".into(), "n3".into()],
        },
        0,
        &mut w.out,
    );
    let nodes: Vec<(String, bool, usize)> = w
        .state
        .stats(0)
        .nodes
        .into_iter()
        .map(|n| (n.node, n.here, n.users))
        .collect();
    let want = |list: &[(&str, bool, usize)]| -> Vec<(String, bool, usize)> {
        list.iter()
            .map(|(n, h, u)| (n.to_string(), *h, *u))
            .collect()
    };
    assert_eq!(
        nodes,
        want(&[
            ("n1", true, 2),
            ("n2", false, 1),
            ("n3", false, 0),
            ("n4", false, 1)
        ])
    );
    assert_eq!(w.state.stats(0).users, 4);
}
