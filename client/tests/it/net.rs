//! The network thread against a scripted fake server on a loopback port:
//! what it sends, in which order, and how each ending is reported.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use chat_client::command::Command;
use chat_client::net::{Dial, Net, Options, Output, Servers, Status, KEEPALIVE};
use chat_client::outbox::Outbox;
use chat_client::roster::SharedRoster;
use chat_client::session::{Ending, Notice, Session};
use chat_client::tls::{self, Security};
use parking_lot::Mutex;

/// Remembers every notice the thread wanted shown.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Notice>>>);

impl Output for Recorder {
    fn frame(&mut self, _raw: &str, notices: &[Notice]) {
        self.0.lock().extend_from_slice(notices);
    }
    fn connection(&mut self, notice: &Notice) {
        self.0.lock().push(notice.clone());
    }
}

/// The server's end of one connection, with a timeout so a hang fails.
struct Peer {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Peer {
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .expect("a line from the client");
        line.trim_end().to_string()
    }

    fn send(&mut self, json: &str) {
        self.writer
            .write_all(format!("{json}\n").as_bytes())
            .unwrap();
    }

    /// Nothing arrives for a while.
    fn quiet(&mut self) {
        self.reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut line = String::new();
        let err = self.reader.read_line(&mut line).unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{err}, got {line:?}"
        );
        self.reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
    }
}

/// The server's end of the next connection to `listener`.
fn accept(listener: &TcpListener) -> Peer {
    let (stream, _) = listener.accept().unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    Peer {
        reader: BufReader::new(stream.try_clone().unwrap()),
        writer: stream,
    }
}

/// Starts a client connected to a fake server running `script` on its
/// first connection; the client does not reconnect.
fn start(script: impl FnOnce(Peer) + Send + 'static) -> (Net, Recorder, thread::JoinHandle<()>) {
    start_serving(None, move |listener| script(accept(&listener)))
}

/// Starts a client whose fake server runs `script` with the listening
/// socket, so it can take the reconnections too; the client reconnects for
/// `reconnect_for` (`None`: not at all). Message ids are `t-1`, `t-2` …
fn start_serving(
    reconnect_for: Option<Duration>,
    script: impl FnOnce(TcpListener) + Send + 'static,
) -> (Net, Recorder, thread::JoinHandle<()>) {
    let options = options(Some(reconnect_for.unwrap_or(Duration::ZERO)), KEEPALIVE);
    start_with(options, script)
}

/// The thread's options, for the one fake server [`start_with`] starts.
fn options(reconnect_for: Option<Duration>, keepalive: Duration) -> Options {
    Options {
        // Set by `start_with` once the fake server listens.
        servers: Servers::one("127.0.0.1:0"),
        reconnect_for,
        keepalive,
        // No test here accepts a file.
        downloads: std::env::temp_dir(),
    }
}

/// [`start_serving`] with these options.
fn start_with(
    mut options: Options,
    script: impl FnOnce(TcpListener) + Send + 'static,
) -> (Net, Recorder, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = listener.local_addr().unwrap().to_string();
    options.servers = Servers::one(&server);
    let fake = thread::spawn(move || script(listener));
    let stream = tls::connect(&server, &Security::Plain, &mut |_| {}).unwrap();
    let recorder = Recorder::default();
    let dial: Dial = Arc::new(|server: &str, tell: &mut dyn FnMut(String)| {
        tls::connect(server, &Security::Plain, tell)
    });
    let session = Session::with_outbox(SharedRoster::default(), Outbox::new("t"));
    let net = Net::spawn_with(stream, dial, options, session, Box::new(recorder.clone())).unwrap();
    (net, recorder, fake)
}

fn login(peer: &mut Peer, nick: &str) {
    assert_eq!(
        peer.line(),
        format!(r#"{{"type":"login","id":1,"nick":"{nick}","password":"pw"}}"#)
    );
    peer.send(&format!(
        r#"{{"type":"welcome","id":1,"nick":"{nick}","online":["{nick}","bob"]}}"#
    ));
}

fn log_in(net: &Net, nick: &str) {
    net.send(Command::Login {
        nick: nick.into(),
        password: "pw".into(),
        register: None,
    });
}

/// Leaving waits for every answer before saying bye, then for bye's ack.
#[test]
fn leave_waits_for_answers_then_says_bye() {
    let (net, recorder, fake) = start(|mut peer| {
        login(&mut peer, "alice");
        assert_eq!(
            peer.line(),
            r#"{"type":"message","id":2,"receiver":"bob","text":"hi","cid":"t-1"}"#
        );
        peer.quiet();
        peer.send(r#"{"type":"ack","id":2}"#);
        assert_eq!(peer.line(), r#"{"type":"bye","id":3}"#);
        peer.send(r#"{"type":"ack","id":3}"#);
    });
    log_in(&net, "alice");
    assert_eq!(
        net.status().recv().unwrap(),
        Status::LoggedIn("alice".into())
    );
    net.send(Command::Say {
        receiver: "bob".into(),
        text: "hi".into(),
    });
    net.send(Command::Leave);
    assert_eq!(net.wait(), Ending::Left);
    fake.join().unwrap();
    let notices = recorder.0.lock().clone();
    assert_eq!(
        notices[1..],
        [
            Notice::PrivateTo {
                receiver: "bob".into(),
                text: "hi".into(),
                number: 1
            },
            Notice::Stored {
                number: 1,
                receiver: "bob".into(),
                offline: false
            }
        ],
        "{notices:?}"
    );
}

/// A refused login leaves the connection open for another try.
#[test]
fn refused_login_can_be_retried() {
    let (net, _, fake) = start(|mut peer| {
        peer.line();
        peer.send(r#"{"type":"error","id":1,"code":"bad_password","reason":"wrong password"}"#);
        assert_eq!(
            peer.line(),
            r#"{"type":"login","id":2,"nick":"bob2","password":"pw"}"#
        );
        peer.send(r#"{"type":"welcome","id":2,"nick":"bob2","online":["bob2"]}"#);
        peer.send(r#"{"type":"shutdown","reason":"maintenance"}"#);
    });
    log_in(&net, "bob");
    assert!(matches!(
        net.status().recv().unwrap(),
        Status::LoginRefused { reason, .. } if reason == "wrong password"
    ));
    log_in(&net, "bob2");
    assert_eq!(
        net.status().recv().unwrap(),
        Status::LoggedIn("bob2".into())
    );
    assert_eq!(net.wait(), Ending::Shutdown);
    fake.join().unwrap();
}

/// A server that goes silent without closing anything (a network that
/// dropped without a FIN or RST) is noticed: after `keepalive` of silence
/// the client pings, and with no answer it gives the connection up and
/// logs in again on a new one.
#[test]
fn a_silent_server_is_noticed_by_the_keepalive() {
    let options = options(Some(Duration::from_secs(10)), Duration::from_millis(600));
    let (net, recorder, fake) = start_with(options, |listener| {
        let mut peer = accept(&listener);
        login(&mut peer, "alice");
        let started = std::time::Instant::now();
        let ping = peer.line();
        assert!(ping.starts_with(r#"{"type":"ping","id":"#), "{ping}");
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "not before the silence"
        );
        // No answer, and the socket stays open: only the keepalive can tell.
        let mut again = accept(&listener);
        let relogin = again.line();
        assert!(relogin.contains(r#""type":"login""#), "{relogin}");
        assert!(
            started.elapsed() >= Duration::from_millis(800),
            "{:?}",
            started.elapsed()
        );
        drop(peer);
    });
    log_in(&net, "alice");
    fake.join().unwrap();
    let lost = recorder.0.lock().iter().any(
        |n| matches!(n, Notice::Reconnecting { reason } if reason.contains("no answer from the server for 1 s")),
    );
    assert!(lost, "{:?}", recorder.0.lock());
}

/// A server that hangs up without a word is a lost connection.
#[test]
fn hang_up_is_lost() {
    let (net, recorder, fake) = start(|mut peer| login(&mut peer, "alice"));
    log_in(&net, "alice");
    assert_eq!(net.wait(), Ending::Lost);
    fake.join().unwrap();
    assert!(matches!(
        recorder.0.lock().last(),
        Some(Notice::Lost { .. })
    ));
}

/// An `online` answer in a big room is far longer than a request may be
/// (10,000 nicknames of up to 128 bytes): the client reads it whole.
#[test]
fn a_long_online_answer_is_read() {
    let users: Vec<String> = (0..6_000).map(|i| format!("{i:0>32}")).collect();
    let answer = serde_json::json!({"type": "online", "id": 2, "users": users}).to_string();
    assert!(answer.len() > 200 * 1024, "{}", answer.len());
    let (net, recorder, fake) = start(move |mut peer| {
        login(&mut peer, "alice");
        assert_eq!(peer.line(), r#"{"type":"online","id":2}"#);
        peer.send(&answer);
        assert_eq!(peer.line(), r#"{"type":"bye","id":3}"#);
        peer.send(r#"{"type":"ack","id":3}"#);
    });
    log_in(&net, "alice");
    assert_eq!(
        net.status().recv().unwrap(),
        Status::LoggedIn("alice".into())
    );
    net.send(Command::Online);
    net.send(Command::Leave);
    assert_eq!(net.wait(), Ending::Left);
    fake.join().unwrap();
    let notices = recorder.0.lock().clone();
    assert_eq!(notices.len(), 2, "{:?}", notices.last());
    assert_eq!(
        notices[1],
        Notice::Online {
            users,
            away: Default::default()
        }
    );
}

/// Waits until the client has shown a notice matching `pred`.
fn shown(recorder: &Recorder, pred: impl Fn(&Notice) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !recorder.0.lock().iter().any(&pred) {
        assert!(
            std::time::Instant::now() < deadline,
            "not shown: {:?}",
            recorder.0.lock()
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// A crowd the server only counted makes the roster stale, but the client
/// asks for the list only when completion wants it, one request at a time,
/// and not again once it is current.
#[test]
fn the_roster_is_refreshed_on_demand_once_at_a_time() {
    let (net, recorder, fake) = start(|mut peer| {
        login(&mut peer, "alice");
        peer.send(r#"{"type":"presence","joined":["carol"],"joined_more":40}"#);
        peer.send(r#"{"type":"presence","left_more":3}"#);
        // Nothing on the crowd's account: the message comes first.
        assert_eq!(
            peer.line(),
            r#"{"type":"message","id":2,"receiver":"bob","text":"hi","cid":"t-1"}"#
        );
        assert_eq!(peer.line(), r#"{"type":"online","id":3}"#);
        peer.quiet();
        peer.send(r#"{"type":"online","id":3,"users":["alice","bob","carol","zed"]}"#);
        peer.send(r#"{"type":"ack","id":2}"#);
        // The roster is current now: the next request is the goodbye.
        assert_eq!(peer.line(), r#"{"type":"bye","id":4}"#);
        peer.send(r#"{"type":"ack","id":4}"#);
    });
    log_in(&net, "alice");
    assert_eq!(
        net.status().recv().unwrap(),
        Status::LoggedIn("alice".into())
    );
    shown(&recorder, |n| matches!(n, Notice::Left { more: 3, .. }));
    net.send(Command::Say {
        receiver: "bob".into(),
        text: "hi".into(),
    });
    // Tab pressed three times before the answer.
    for _ in 0..3 {
        net.send(Command::RefreshRoster);
    }
    shown(&recorder, |n| matches!(n, Notice::Stored { .. }));
    net.send(Command::RefreshRoster);
    net.send(Command::Leave);
    assert_eq!(net.wait(), Ending::Left);
    fake.join().unwrap();
    let notices = recorder.0.lock().clone();
    assert!(
        !notices.iter().any(|n| matches!(n, Notice::Online { .. })),
        "the refresh is quiet: {notices:?}"
    );
}

/// A connection lost mid-conversation: the client reconnects by itself,
/// logs in again resuming after the last `seq` it showed in each stream,
/// shows nothing twice, acknowledges what is new, and sends again, in
/// order and under the same ids, every message not acknowledged —
/// including one typed while it was disconnected. Leaving then waits for
/// the outbox before saying bye. (Long: one conversation, told in order.)
#[test]
fn reconnects_resumes_and_resends_the_outbox() {
    let (net, recorder, fake) = start_serving(Some(Duration::from_secs(10)), |listener| {
        let mut peer = accept(&listener);
        login(&mut peer, "alice");
        peer.send(
            r#"{"type":"message","seq":1,"sender":"bob","receiver":"alice","text":"p1","time":1}"#,
        );
        peer.send(
            r#"{"type":"message","seq":5,"sender":"bob","receiver":"*","text":"all","time":1}"#,
        );
        assert_eq!(peer.line(), r#"{"type":"received","seq":1}"#);
        assert_eq!(
            peer.line(),
            r#"{"type":"message","id":2,"receiver":"bob","text":"one","cid":"t-1"}"#
        );
        assert_eq!(
            peer.line(),
            r#"{"type":"message","id":3,"receiver":"*","text":"two","cid":"t-2"}"#
        );
        // t-2 is stored, but its ack is lost with the connection.
        peer.send(r#"{"type":"ack","id":2}"#);
        drop(peer);

        let mut peer = accept(&listener);
        assert_eq!(
            peer.line(),
            r#"{"type":"login","id":4,"nick":"alice","password":"pw","last_seq":1,"last_public":5}"#
        );
        peer.send(r#"{"type":"welcome","id":4,"nick":"alice","online":["alice"],"replay":3}"#);
        peer.send(
            r#"{"type":"message","seq":1,"sender":"bob","receiver":"alice","text":"p1","time":1}"#,
        );
        peer.send(
            r#"{"type":"message","seq":5,"sender":"bob","receiver":"*","text":"all","time":1}"#,
        );
        peer.send(
            r#"{"type":"message","seq":2,"sender":"bob","receiver":"alice","text":"p2","time":2}"#,
        );
        assert_eq!(
            peer.line(),
            r#"{"type":"message","id":5,"receiver":"*","text":"two","cid":"t-2"}"#
        );
        assert_eq!(
            peer.line(),
            r#"{"type":"message","id":6,"receiver":"*","text":"three","cid":"t-3"}"#
        );
        // The `received` of before the cut may have been lost: it is sent
        // again (alone, if the welcome came in a batch of its own).
        let mut received = peer.line();
        if received == r#"{"type":"received","seq":1}"# {
            received = peer.line();
        }
        assert_eq!(received, r#"{"type":"received","seq":2}"#);
        peer.send(r#"{"type":"ack","id":5,"duplicate":true}"#);
        peer.send(r#"{"type":"delivered","cid":"t-1","to":"bob"}"#);
        peer.quiet();
        peer.send(r#"{"type":"ack","id":6}"#);
        assert_eq!(peer.line(), r#"{"type":"bye","id":7}"#);
        peer.send(r#"{"type":"ack","id":7}"#);
    });
    log_in(&net, "alice");
    assert_eq!(
        net.status().recv().unwrap(),
        Status::LoggedIn("alice".into())
    );
    shown(&recorder, |n| matches!(n, Notice::PrivateFrom { .. }));
    shown(&recorder, |n| matches!(n, Notice::Public { .. }));
    net.send(Command::Say {
        receiver: "bob".into(),
        text: "one".into(),
    });
    net.send(Command::public("two".into()));
    shown(&recorder, |n| matches!(n, Notice::Reconnecting { .. }));
    net.send(Command::public("three".into()));
    net.send(Command::Leave);
    assert_eq!(net.wait(), Ending::Left);
    fake.join().unwrap();
    let notices = recorder.0.lock().clone();
    let texts: Vec<&str> = notices
        .iter()
        .filter_map(|n| match n {
            Notice::PrivateFrom { text, .. } | Notice::Public { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["p1", "all", "p2"], "{notices:?}");
    for want in [
        Notice::Stored {
            number: 1,
            receiver: "bob".into(),
            offline: false,
        },
        Notice::PublicPending {
            text: "three".into(),
            number: 3,
        },
        Notice::Reconnected { count: 3 },
        Notice::Delivered {
            number: Some(1),
            receiver: "bob".into(),
        },
    ] {
        assert_eq!(
            notices.iter().filter(|n| **n == want).count(),
            1,
            "{want:?} once in {notices:?}"
        );
    }
    let welcomes = notices
        .iter()
        .filter(|n| matches!(n, Notice::Welcome { .. }))
        .count();
    assert_eq!(welcomes, 1, "a reconnect is no new welcome: {notices:?}");
}

/// Taken over by a login elsewhere, the client ends and does not come
/// back (two clients would take turns forever).
#[test]
fn taken_over_is_not_reconnected() {
    let (net, recorder, fake) = start_serving(Some(Duration::from_secs(10)), |listener| {
        let mut peer = accept(&listener);
        login(&mut peer, "alice");
        // A message on its way, never acknowledged: the user must learn
        // it was not stored, since no reconnect will send it.
        assert!(peer.line().contains(r#""text":"lost in the takeover""#));
        peer.send(r#"{"type":"error","code":"taken_over","reason":"you logged in elsewhere"}"#);
        drop(peer);
        listener.set_nonblocking(true).unwrap();
        thread::sleep(Duration::from_millis(1500));
        assert!(listener.accept().is_err(), "the client came back");
    });
    log_in(&net, "alice");
    net.send(Command::Say {
        receiver: "*".into(),
        text: "lost in the takeover".into(),
    });
    assert_eq!(net.wait(), Ending::TakenOver);
    fake.join().unwrap();
    let notices = recorder.0.lock().clone();
    assert!(
        notices
            .iter()
            .any(|n| matches!(n, Notice::Unsent { text, .. } if text == "lost in the takeover")),
        "{notices:?}"
    );
    assert!(
        notices.contains(&Notice::Error {
            reason: "you logged in elsewhere".into()
        }),
        "{notices:?}"
    );
    assert!(
        !notices
            .iter()
            .any(|n| matches!(n, Notice::Reconnecting { .. })),
        "{notices:?}"
    );
}

/// A server that does not come back: the client tries for
/// `reconnect_for`, then gives up, listing what was never stored.
#[test]
fn gives_up_after_reconnect_for() {
    let (net, recorder, fake) = start_serving(Some(Duration::from_secs(1)), |listener| {
        let mut peer = accept(&listener);
        login(&mut peer, "alice");
        assert_eq!(
            peer.line(),
            r#"{"type":"message","id":2,"receiver":"*","text":"lost?","cid":"t-1"}"#
        );
        // Gone for good: the port refuses from now on.
        drop(listener);
        drop(peer);
    });
    log_in(&net, "alice");
    assert_eq!(
        net.status().recv().unwrap(),
        Status::LoggedIn("alice".into())
    );
    net.send(Command::public("lost?".into()));
    let started = std::time::Instant::now();
    assert_eq!(net.wait(), Ending::Lost);
    assert!(started.elapsed() < Duration::from_secs(3));
    fake.join().unwrap();
    let notices = recorder.0.lock().clone();
    let tail: Vec<_> = notices.iter().rev().take(2).rev().cloned().collect();
    assert!(matches!(tail[0], Notice::GaveUp { .. }), "{notices:?}");
    assert_eq!(
        tail[1],
        Notice::Unsent {
            number: 1,
            receiver: "*".into(),
            text: "lost?".into()
        }
    );
    assert!(
        notices
            .iter()
            .any(|n| matches!(n, Notice::RetryFailed { .. })),
        "{notices:?}"
    );
}

/// The server's keepalive `ping` is answered with `pong` at once, also in
/// the middle of a page of missed messages (before the client asks for the
/// next page), and it counts as hearing from the server: while the server
/// pings every 250 ms, the client's own keepalive (due after 600 ms of
/// silence) never sends a ping of its own.
#[test]
fn a_server_ping_is_answered_at_once_even_while_catching_up() {
    let options = options(Some(Duration::ZERO), Duration::from_millis(600));
    let (net, recorder, fake) = start_with(options, |listener| {
        let mut peer = accept(&listener);
        assert_eq!(
            peer.line(),
            r#"{"type":"login","id":1,"nick":"alice","password":"pw"}"#
        );
        peer.send(
            r#"{"type":"welcome","id":1,"nick":"alice","online":["alice"],"replay":2,"replay_left":5}"#,
        );
        peer.send(
            r#"{"type":"message","seq":1,"sender":"bob","receiver":"*","text":"m1","time":1}"#,
        );
        peer.send(r#"{"type":"ping"}"#);
        assert_eq!(peer.line(), r#"{"type":"pong"}"#, "before the page is read");
        peer.send(
            r#"{"type":"message","seq":2,"sender":"bob","receiver":"*","text":"m2","time":2}"#,
        );
        assert_eq!(peer.line(), r#"{"type":"more","id":2}"#);
        for _ in 0..6 {
            thread::sleep(Duration::from_millis(250));
            peer.send(r#"{"type":"ping"}"#);
            assert_eq!(peer.line(), r#"{"type":"pong"}"#, "and no ping of its own");
        }
        peer.send(r#"{"type":"shutdown","reason":"maintenance"}"#);
    });
    log_in(&net, "alice");
    assert_eq!(net.wait(), Ending::Shutdown);
    fake.join().unwrap();
    let notices = recorder.0.lock().clone();
    assert!(
        !notices
            .iter()
            .any(|n| matches!(n, Notice::Error { .. } | Notice::Reconnecting { .. })),
        "a ping shows nothing: {notices:?}"
    );
}
