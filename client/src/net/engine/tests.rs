//! The engine against a server played by hand: frames in, requests and
//! lines out, no socket anywhere.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_common::codec;
use chat_common::{Request, ServerFrame};
use crossbeam_channel::Receiver;
use parking_lot::Mutex;

use super::*;
use crate::net::{Servers, KEEPALIVE};
use crate::outbox::Outbox;
use crate::roster::SharedRoster;

/// What the engine told its output, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Said {
    /// A frame's line and notices, and how many statuses had been sent
    /// when it was printed.
    Frame {
        raw: String,
        notices: Vec<Notice>,
        statuses_before: usize,
    },
    Local(Notice),
    Connection(Notice),
    Finishing,
}

#[derive(Clone)]
struct Recorder {
    said: Arc<Mutex<Vec<Said>>>,
    status: Receiver<Status>,
}

impl Output for Recorder {
    fn frame(&mut self, raw: &str, notices: &[Notice]) {
        self.said.lock().push(Said::Frame {
            raw: raw.to_string(),
            notices: notices.to_vec(),
            statuses_before: self.status.len(),
        });
    }
    fn local(&mut self, notice: &Notice) {
        self.said.lock().push(Said::Local(notice.clone()));
    }
    fn connection(&mut self, notice: &Notice) {
        self.said.lock().push(Said::Connection(notice.clone()));
    }
    fn finishing(&mut self) {
        self.said.lock().push(Said::Finishing);
    }
}

impl Recorder {
    /// What was said since the last call.
    fn take(&self) -> Vec<Said> {
        std::mem::take(&mut *self.said.lock())
    }

    /// The connection notices said since the last call (the rest dropped).
    fn connection(&self) -> Vec<Notice> {
        self.take()
            .into_iter()
            .filter_map(|said| match said {
                Said::Connection(notice) => Some(notice),
                _ => None,
            })
            .collect()
    }
}

struct Test {
    engine: Engine,
    said: Recorder,
    status: Receiver<Status>,
}

fn options(reconnect_for: Option<Duration>) -> Options {
    Options {
        servers: Servers::one("127.0.0.1:50445"),
        reconnect_for,
        keepalive: KEEPALIVE,
        downloads: PathBuf::from("downloads"),
    }
}

/// An engine whose message ids are `t-1`, `t-2` …
fn start(options: Options, plaintext: bool) -> Test {
    let (status_tx, status) = crossbeam_channel::unbounded();
    let said = Recorder {
        said: Arc::default(),
        status: status.clone(),
    };
    let session = Session::with_outbox(SharedRoster::default(), Outbox::new("t"));
    let engine = Engine::new(
        session,
        options,
        Box::new(said.clone()),
        status_tx,
        plaintext,
    );
    Test {
        engine,
        said,
        status,
    }
}

impl Test {
    fn command(&mut self, command: Command) -> (Taken, Vec<Request>) {
        let mut out = Vec::new();
        let taken = self.engine.command(command, &mut out);
        (taken, out)
    }

    /// Feeds the server's `line`, decoded as the reader would.
    fn feed(&mut self, line: &str) -> (Option<Ending>, Vec<Request>) {
        let mut out = Vec::new();
        let frame = codec::decode::<ServerFrame>(line.as_bytes());
        let ended = self.engine.frame(line.as_bytes(), frame, &mut out);
        (ended, out)
    }

    /// Logged in as alice, with what that said forgotten.
    fn logged_in(options: Options) -> Test {
        let mut test = start(options, true);
        let (_, login) = test.command(Command::Login {
            nick: "alice".into(),
            password: "pw".into(),
            register: None,
        });
        assert!(
            matches!(login[..], [Request::Login { id: 1, .. }]),
            "{login:?}"
        );
        test.feed(r#"{"type":"welcome","id":1,"nick":"alice","online":["alice"]}"#);
        assert_eq!(test.status.try_recv(), Ok(Status::LoggedIn("alice".into())));
        test.said.take();
        test
    }

    /// Says `text` to `to`; the message request it made.
    fn say(&mut self, to: &str, text: &str) -> Vec<Request> {
        let (taken, out) = self.command(Command::Say {
            receiver: to.into(),
            text: text.into(),
        });
        assert!(matches!(taken, Taken::Next));
        out
    }
}

fn unsent(number: u64, receiver: &str, text: &str) -> Notice {
    Notice::Unsent {
        number,
        receiver: receiver.into(),
        text: text.into(),
    }
}

/// Before any login nothing is worth reconnecting for; over plain TCP the
/// likely reason is a TLS server, which the notice says.
#[test]
fn a_connection_lost_before_logging_in_is_the_end() {
    for (plaintext, reason) in [
        (
            true,
            "reset (if the server uses TLS, the default, leave out --no-tls)",
        ),
        (false, "reset"),
    ] {
        let mut test = start(options(None), plaintext);
        let after = test
            .engine
            .lost(Ending::Lost, "reset".into(), Instant::now());
        assert!(matches!(after, AfterLoss::End(Ending::Lost)), "{after:?}");
        assert_eq!(
            test.said.connection(),
            [Notice::Lost {
                reason: reason.into()
            }]
        );
    }
}

/// Once logged in, a lost connection is tried again about half a second
/// later; the session is no longer logged in meanwhile.
#[test]
fn a_connection_lost_after_logging_in_is_tried_again_soon() {
    let mut test = Test::logged_in(options(None));
    let now = Instant::now();
    let after = test.engine.lost(Ending::Lost, "reset".into(), now);
    let AfterLoss::Retry { at, .. } = after else {
        panic!("{after:?}");
    };
    let wait = at - now;
    assert!(
        wait >= Duration::from_millis(375) && wait <= Duration::from_millis(625),
        "{wait:?}"
    );
    assert_eq!(
        test.said.connection(),
        [Notice::Reconnecting {
            reason: "reset".into()
        }]
    );
    assert!(!test.engine.session.is_logged_in());
    // What is typed meanwhile waits, shown as pending.
    assert!(test.say("*", "later").is_empty());
    assert_eq!(
        test.said.take(),
        [Said::Local(Notice::PublicPending {
            text: "later".into(),
            number: 1
        })]
    );
}

/// No reconnecting when it is off (`--reconnect-for 0`), nor when leaving
/// with nothing left to deliver; a shutdown is then no loss to report.
#[test]
fn endings_that_need_no_reconnect() {
    let off = options(Some(Duration::ZERO));
    let now = Instant::now();
    let mut test = Test::logged_in(off.clone());
    let after = test.engine.lost(Ending::Lost, "reset".into(), now);
    assert!(matches!(after, AfterLoss::End(Ending::Lost)), "{after:?}");
    // Logged in once: the plaintext hint would be wrong.
    assert_eq!(
        test.said.connection(),
        [Notice::Lost {
            reason: "reset".into()
        }]
    );

    let mut test = Test::logged_in(off);
    let after = test
        .engine
        .stopped(Stop::Ended(Ending::Shutdown), false, now);
    assert!(
        matches!(after, AfterLoss::End(Ending::Shutdown)),
        "{after:?}"
    );
    assert_eq!(test.said.take(), []);

    let mut test = Test::logged_in(options(None));
    assert!(matches!(test.command(Command::Leave).0, Taken::Leaving));
    let after = test.engine.lost(Ending::Lost, "reset".into(), now);
    assert!(matches!(after, AfterLoss::End(Ending::Left)), "{after:?}");

    // Leaving with a message not yet stored: come back to deliver it.
    let mut test = Test::logged_in(options(None));
    test.say("bob", "wait for me");
    test.command(Command::Leave);
    let after = test.engine.lost(Ending::Lost, "reset".into(), now);
    assert!(matches!(after, AfterLoss::Retry { .. }), "{after:?}");
}

/// A server that shuts down is reconnected to, like a lost connection.
#[test]
fn a_shutdown_is_reconnected_when_allowed() {
    let mut test = Test::logged_in(options(None));
    let (ended, _) = test.feed(r#"{"type":"shutdown","reason":"restart"}"#);
    assert_eq!(ended, Some(Ending::Shutdown));
    let after = test
        .engine
        .stopped(Stop::Ended(Ending::Shutdown), false, Instant::now());
    assert!(matches!(after, AfterLoss::Retry { .. }), "{after:?}");
    assert_eq!(
        test.said.connection(),
        [Notice::Reconnecting {
            reason: "the server shut down".into()
        }]
    );
}

/// After our bye, a connection that breaks is the end we asked for.
#[test]
fn broken_after_bye_is_left() {
    let mut test = Test::logged_in(options(None));
    let now = Instant::now();
    let after = test.engine.broken(true, "reset".into(), now);
    assert!(matches!(after, AfterLoss::End(Ending::Left)), "{after:?}");
    assert_eq!(test.said.take(), []);
    let after = test
        .engine
        .stopped(Stop::Broken("reset".into()), false, now);
    assert!(matches!(after, AfterLoss::Retry { .. }), "{after:?}");
}

/// Each new reason for a failed try is said once; at the limit the client
/// gives up and lists what was never stored.
#[test]
fn failed_tries_are_said_once_each_then_it_gives_up() {
    // Long enough for five tries: about 0.5, 1.5, 3.5, 7.5 and 15.5 s in.
    let limit = Duration::from_secs(60);
    let mut test = Test::logged_in(options(Some(limit)));
    test.say("bob", "hi");
    let start = Instant::now();
    let mut after = test.engine.lost(Ending::Lost, "reset".into(), start);
    for reason in ["refused", "refused", "timed out", "timed out", "refused"] {
        let AfterLoss::Retry { outage, at } = after else {
            panic!("{after:?}");
        };
        assert!(at <= start + limit);
        after = test.engine.retry(outage, reason.into(), at);
    }
    let reasons: Vec<(String, u64)> = test
        .said
        .connection()
        .into_iter()
        .filter_map(|notice| match notice {
            Notice::RetryFailed { reason, retry_in } => Some((reason, retry_in)),
            _ => None,
        })
        .collect();
    let said: Vec<&str> = reasons.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(said, ["refused", "timed out", "refused"]);
    assert!(reasons.iter().all(|(_, retry_in)| *retry_in >= 1));
    let AfterLoss::Retry { outage, .. } = after else {
        panic!("{after:?}");
    };
    let after = test.engine.retry(outage, "refused".into(), start + limit);
    assert!(matches!(after, AfterLoss::End(Ending::Lost)), "{after:?}");
    assert_eq!(
        test.said.connection(),
        [Notice::GaveUp { after: 60 }, unsent(1, "bob", "hi")]
    );
}

/// Kicked or taken over, nothing will resend the outbox: it is listed.
#[test]
fn a_kick_or_a_takeover_lists_what_was_never_stored() {
    for ending in [Ending::Kicked, Ending::TakenOver] {
        let mut test = Test::logged_in(options(None));
        test.say("bob", "hi");
        let after = test
            .engine
            .stopped(Stop::Ended(ending.clone()), false, Instant::now());
        assert!(
            matches!(&after, AfterLoss::End(e) if *e == ending),
            "{after:?}"
        );
        assert_eq!(test.said.connection(), [unsent(1, "bob", "hi")]);
    }
    let mut test = Test::logged_in(options(None));
    test.say("bob", "hi");
    test.said.take();
    let after = test
        .engine
        .stopped(Stop::Ended(Ending::Refused), false, Instant::now());
    assert!(
        matches!(after, AfterLoss::End(Ending::Refused)),
        "{after:?}"
    );
    assert_eq!(test.said.take(), []);
}

/// Bye goes out once every message is stored, and once only; without a
/// connection and with nothing to deliver, leaving needs no bye.
#[test]
fn bye_waits_for_every_answer() {
    let up = Connection::Up { bye_sent: false };
    let mut test = Test::logged_in(options(None));
    assert_eq!(test.engine.leave_if_done(up), Leave::Stay, "not leaving");
    let message = test.say("bob", "hi");
    let Some(Request::Message { id, .. }) = message.first() else {
        panic!("{message:?}");
    };
    let id = *id;
    assert!(matches!(test.command(Command::Leave).0, Taken::Leaving));
    assert_eq!(test.engine.leave_if_done(up), Leave::Stay, "not stored yet");
    assert_eq!(test.engine.leave_if_done(Connection::Down), Leave::Stay);
    test.feed(&format!(r#"{{"type":"ack","id":{id}}}"#));
    let Leave::Bye(Request::Bye { .. }) = test.engine.leave_if_done(up) else {
        panic!("a bye");
    };
    let sent = Connection::Up { bye_sent: true };
    assert_eq!(test.engine.leave_if_done(sent), Leave::Stay, "one bye");
    assert_eq!(test.engine.leave_if_done(Connection::Down), Leave::Gone);

    // Never logged in: nothing to say bye to.
    let mut test = start(options(None), false);
    test.command(Command::Leave);
    assert_eq!(test.engine.leave_if_done(up), Leave::Gone);
}

/// Commands become requests (only while logged in) and local echoes;
/// `!accept` without a directory uses the downloads directory.
#[test]
fn commands_become_requests_and_echoes() {
    let mut test = start(options(None), false);
    assert!(test.say("*", "early").is_empty(), "not logged in");
    test.command(Command::Login {
        nick: "alice".into(),
        password: "pw".into(),
        register: None,
    });
    let (_, resent) = test.feed(r#"{"type":"welcome","id":1,"nick":"alice","online":["alice"]}"#);
    assert!(
        matches!(&resent[..], [Request::Message { text, cid: Some(cid), .. }] if text == "early" && cid == "t-1"),
        "the outbox after the welcome: {resent:?}"
    );
    test.said.take();

    let private = test.say("bob", "psst");
    assert!(
        matches!(&private[..], [Request::Message { receiver, text, cid: Some(cid), .. }]
            if receiver == "bob" && text == "psst" && cid == "t-2"),
        "{private:?}"
    );
    assert_eq!(
        test.said.take(),
        [Said::Local(Notice::PrivateTo {
            receiver: "bob".into(),
            text: "psst".into(),
            number: 2
        })]
    );

    let (taken, accept) = test.command(Command::Accept { file: 7, dir: None });
    assert!(matches!(taken, Taken::Next));
    assert!(
        matches!(
            accept[..],
            [Request::Accept {
                file: 7,
                offset: 0,
                ..
            }]
        ),
        "{accept:?}"
    );
    // Made absolute, so that the lines about the file say where it is.
    let here = std::env::current_dir().unwrap();
    assert_eq!(test.engine.download_dir(None), here.join("downloads"));
    assert_eq!(test.engine.download_dir(Some("x".into())), here.join("x"));

    let (taken, none) = test.command(Command::SendFile {
        to: "bob".into(),
        path: "/nonexistent/notes.pdf".into(),
    });
    assert!(matches!(taken, Taken::Next) && none.is_empty());
    assert!(
        matches!(&test.said.take()[..], [Said::Local(Notice::Error { reason })]
            if reason.starts_with("cannot open /nonexistent/notes.pdf")),
    );

    let (taken, _) = test.command(Command::Abandon);
    assert!(matches!(taken, Taken::End(Ending::Left)));
    assert_eq!(
        test.said.connection(),
        [unsent(1, "*", "early"), unsent(2, "bob", "psst")]
    );
}

/// A frame's line is printed before its status goes to the user interface
/// (the welcome is up before the prompt); a repeat is not printed at all;
/// a frame this client cannot read is said and skipped.
#[test]
fn frames_are_printed_then_told() {
    let mut test = start(options(None), false);
    test.command(Command::Login {
        nick: "alice".into(),
        password: "pw".into(),
        register: None,
    });
    let welcome = r#"{"type":"welcome","id":1,"nick":"alice","online":["alice"]}"#;
    test.feed(welcome);
    let said = test.said.take();
    let [Said::Frame {
        raw,
        statuses_before: 0,
        ..
    }] = &said[..]
    else {
        panic!("{said:?}");
    };
    assert_eq!(raw, welcome);
    assert_eq!(test.status.try_recv(), Ok(Status::LoggedIn("alice".into())));

    let message =
        r#"{"type":"message","seq":3,"sender":"bob","receiver":"alice","text":"hi","time":5}"#;
    test.feed(message);
    assert_eq!(test.said.take().len(), 1);
    assert_eq!(test.engine.received(), Some(Request::Received { seq: 3 }));
    test.feed(message);
    assert_eq!(test.said.take(), [], "shown once");

    let (ended, out) = test.feed(r#"{"type":"from_the_future"}"#);
    assert_eq!((ended, out), (None, vec![]));
    let said = test.said.take();
    assert!(
        matches!(&said[..], [Said::Frame { notices, .. }]
            if matches!(&notices[..], [Notice::Error { reason }] if reason.starts_with("unreadable frame from the server"))),
        "{said:?}"
    );

    let (_, pong) = test.feed(r#"{"type":"ping"}"#);
    assert_eq!(pong, [Request::Pong]);
    let (ended, _) = test.feed(r#"{"type":"kicked","nick":"alice","reason":"spam"}"#);
    assert_eq!(ended, Some(Ending::Kicked));

    test.engine.finish(Ending::Kicked);
    assert_eq!(test.said.take().last(), Some(&Said::Finishing));
    assert_eq!(test.status.try_recv(), Ok(Status::Finished(Ending::Kicked)));
}

/// Logging in again refused by the throttle does not end the session: the
/// connection is dropped and the next try comes when the server said.
#[test]
fn a_throttled_relogin_is_tried_again_when_the_server_says() {
    let mut test = Test::logged_in(options(None));
    let now = Instant::now();
    let after = test.engine.lost(Ending::Lost, "reset".into(), now);
    assert!(matches!(after, AfterLoss::Retry { .. }), "{after:?}");
    let login = test.engine.reconnected().expect("a relogin");
    test.said.take();
    let (ended, _) = test.feed(&format!(
        r#"{{"type":"error","id":{},"code":"too_many_attempts","reason":"too many failed logins for this account or from your address; try again in 42 s"}}"#,
        login.id().unwrap()
    ));
    assert_eq!(ended, Some(Ending::Lost), "this connection is over");
    let after = test.engine.stopped(Stop::Ended(Ending::Lost), false, now);
    let AfterLoss::Retry { at, .. } = after else {
        panic!("{after:?}");
    };
    assert_eq!(at - now, Duration::from_secs(42));
    assert_eq!(
        test.said.connection(),
        [Notice::Throttled {
            reason:
                "too many failed logins for this account or from your address; try again in 42 s"
                    .into(),
            retry_in: 42
        }]
    );
    assert!(test.status.try_recv().is_err(), "no status: nothing ended");
    // Beyond --reconnect-for it gives up instead of waiting.
    let mut test = Test::logged_in(options(Some(Duration::from_secs(10))));
    test.engine.lost(Ending::Lost, "reset".into(), now);
    let login = test.engine.reconnected().unwrap();
    test.feed(&format!(
        r#"{{"type":"error","id":{},"code":"too_many_attempts","reason":"x; try again in 42 s"}}"#,
        login.id().unwrap()
    ));
    let after = test.engine.stopped(Stop::Ended(Ending::Lost), false, now);
    assert!(matches!(after, AfterLoss::End(Ending::Lost)), "{after:?}");
}

/// The options of a client given `--server a,b,c`, connected to a.
fn listed(reconnect_for: Option<Duration>) -> Options {
    Options {
        servers: Servers::parse("a,b,c").unwrap(),
        ..options(reconnect_for)
    }
}

fn unreachable(server: &str, next: &str, reason: &str, retry_in: Option<u64>) -> Notice {
    Notice::Unreachable {
        server: server.into(),
        next: next.into(),
        reason: reason.into(),
        retry_in,
    }
}

/// With a list, a dropped connection goes on with the next server, a
/// failed try with the next one at once; only when all of them failed in
/// a row does the backoff wait, and a failure said once for a server is
/// not said again.
#[test]
fn a_list_moves_on_to_the_next_server() {
    let mut test = Test::logged_in(listed(None));
    let start = Instant::now();
    let AfterLoss::Retry { outage, at } = test.engine.lost(Ending::Lost, "reset".into(), start)
    else {
        panic!("a retry");
    };
    // The first try waits the backoff's first step, as with one server.
    assert!(at - start <= Duration::from_millis(625), "{:?}", at - start);
    assert_eq!(
        test.said.connection(),
        [Notice::ReconnectingTo {
            lost: "a:50445".into(),
            next: "b:50445".into(),
            reason: "reset".into()
        }]
    );
    let mut said = Vec::new();
    let (mut outage, mut now) = (outage, at);
    let mut waits = Vec::new();
    for _round in 0..2 {
        for server in ["b:50445", "c:50445", "a:50445"] {
            assert_eq!(test.engine.server(), server);
            let refused = format!("cannot connect to {server}: Connection refused");
            let AfterLoss::Retry { outage: next, at } = test.engine.retry(outage, refused, now)
            else {
                panic!("a retry");
            };
            waits.push(at - now);
            (outage, now) = (next, at);
            said.extend(test.said.connection());
        }
    }
    // b and c fail over at once; a, the last of the round, waits about 1 s.
    for round in waits.chunks(3) {
        assert_eq!(round[..2], [Duration::ZERO, Duration::ZERO], "{waits:?}");
        assert!(round[2] >= Duration::from_millis(750), "{waits:?}");
    }
    let again = (waits[2].as_secs_f64().round() as u64).max(1);
    assert_eq!(
        said,
        [
            unreachable("b:50445", "c:50445", "Connection refused", None),
            unreachable("c:50445", "a:50445", "Connection refused", None),
            unreachable("a:50445", "b:50445", "Connection refused", Some(again)),
        ],
        "the second round says nothing new"
    );
    // A new reason for one server is said.
    assert_eq!(test.engine.server(), "b:50445");
    let AfterLoss::Retry { .. } = test.engine.retry(outage, "timed out".into(), now) else {
        panic!("a retry");
    };
    assert_eq!(
        test.said.connection(),
        [unreachable("b:50445", "c:50445", "timed out", None)]
    );
    // c answers: said, and logged in again as on a reconnect.
    assert_eq!(test.engine.server(), "c:50445");
    let login = test.engine.reconnected();
    assert!(
        matches!(&login, Some(Request::Login { nick, .. }) if nick == "alice"),
        "{login:?}"
    );
    assert_eq!(
        test.said.connection(),
        [Notice::Connected {
            server: "c:50445".into()
        }]
    );
    // Dropped again: a is next, wrapping around.
    test.engine.lost(Ending::Lost, "reset".into(), now);
    assert_eq!(test.engine.server(), "a:50445");
}

/// What waited in the outbox goes to the next server with its cid, as
/// after any reconnect: the nodes share one database, which drops a
/// resend it has already stored.
#[test]
fn the_outbox_follows_the_session_to_the_next_server() {
    let mut test = Test::logged_in(listed(None));
    let sent = test.say("bob", "hi");
    assert!(
        matches!(&sent[..], [Request::Message { cid: Some(cid), .. }] if cid == "t-1"),
        "{sent:?}"
    );
    test.engine
        .lost(Ending::Lost, "reset".into(), Instant::now());
    let Some(Request::Login { id, .. }) = test.engine.reconnected() else {
        panic!("a relogin");
    };
    assert_eq!(test.engine.server(), "b:50445");
    let (_, out) = test.feed(&format!(
        r#"{{"type":"welcome","id":{id},"nick":"alice","online":["alice"]}}"#
    ));
    assert!(
        matches!(&out[..], [Request::Message { cid: Some(cid), text, .. }] if cid == "t-1" && text == "hi"),
        "{out:?}"
    );
}

/// A round once begun is finished even past `--reconnect-for`, so each
/// server gets its try; a new round is not begun past it.
#[test]
fn a_list_gives_up_only_at_the_end_of_a_round() {
    let limit = Duration::from_secs(5);
    let mut test = Test::logged_in(listed(Some(limit)));
    test.say("bob", "hi");
    let start = Instant::now();
    let AfterLoss::Retry { mut outage, .. } = test.engine.lost(Ending::Lost, "reset".into(), start)
    else {
        panic!("a retry");
    };
    let late = start + limit + Duration::from_secs(1);
    for _ in 0..2 {
        let AfterLoss::Retry { outage: next, at } = test.engine.retry(outage, "x".into(), late)
        else {
            panic!("the round goes on");
        };
        assert_eq!(at, late);
        outage = next;
    }
    let after = test.engine.retry(outage, "x".into(), late);
    assert!(matches!(after, AfterLoss::End(Ending::Lost)), "{after:?}");
    assert_eq!(
        test.said.connection()[3..],
        [Notice::GaveUp { after: 6 }, unsent(1, "bob", "hi")]
    );
}

/// A throttled or busy relogin tries the next server when the wait is over.
#[test]
fn a_throttled_relogin_waits_then_tries_the_next_server() {
    let mut test = Test::logged_in(listed(None));
    let now = Instant::now();
    test.engine.lost(Ending::Lost, "reset".into(), now);
    let login = test.engine.reconnected().unwrap();
    assert_eq!(test.engine.server(), "b:50445");
    test.feed(&format!(
        r#"{{"type":"error","id":{},"code":"busy","reason":"the server is busy"}}"#,
        login.id().unwrap()
    ));
    let after = test.engine.stopped(Stop::Ended(Ending::Lost), false, now);
    let AfterLoss::Retry { at, .. } = after else {
        panic!("{after:?}");
    };
    assert_eq!(at - now, Duration::from_secs(5));
    assert_eq!(test.engine.server(), "c:50445");
}
