//! The network thread against a scripted fake server on a loopback port:
//! what it sends, in which order, and how each ending is reported.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use chat_client::net::{Command, Net, Output, Status};
use chat_client::render::Notice;
use chat_client::roster::SharedRoster;
use chat_client::session::Ending;
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

/// Starts a client connected to a fake server running `script`.
fn start(script: impl FnOnce(Peer) + Send + 'static) -> (Net, Recorder, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = listener.local_addr().unwrap().to_string();
    let fake = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        script(Peer {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        });
    });
    let stream = tls::connect(&server, &Security::Plain, &mut |_| {}).unwrap();
    let recorder = Recorder::default();
    let net = Net::spawn(stream, SharedRoster::default(), Box::new(recorder.clone())).unwrap();
    (net, recorder, fake)
}

fn login(peer: &mut Peer, nick: &str) {
    assert_eq!(
        peer.line(),
        format!(r#"{{"type":"login","id":1,"nick":"{nick}"}}"#)
    );
    peer.send(&format!(
        r#"{{"type":"welcome","id":1,"nick":"{nick}","online":["{nick}","bob"]}}"#
    ));
}

/// Leaving waits for every answer before saying bye, then for bye's ack.
#[test]
fn leave_waits_for_answers_then_says_bye() {
    let (net, recorder, fake) = start(|mut peer| {
        login(&mut peer, "alice");
        assert_eq!(
            peer.line(),
            r#"{"type":"message","id":2,"receiver":"bob","text":"hi"}"#
        );
        peer.quiet();
        peer.send(r#"{"type":"ack","id":2}"#);
        assert_eq!(peer.line(), r#"{"type":"bye","id":3}"#);
        peer.send(r#"{"type":"ack","id":3}"#);
    });
    net.send(Command::Login("alice".into()));
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
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert_eq!(
        notices[1],
        Notice::PrivateTo {
            receiver: "bob".into(),
            text: "hi".into()
        }
    );
}

/// A refused login leaves the connection open for another try.
#[test]
fn refused_login_can_be_retried() {
    let (net, _, fake) = start(|mut peer| {
        peer.line();
        peer.send(r#"{"type":"error","id":1,"code":"nick_taken","reason":"bob is taken"}"#);
        assert_eq!(peer.line(), r#"{"type":"login","id":2,"nick":"bob2"}"#);
        peer.send(r#"{"type":"welcome","id":2,"nick":"bob2","online":["bob2"]}"#);
        peer.send(r#"{"type":"shutdown","reason":"maintenance"}"#);
    });
    net.send(Command::Login("bob".into()));
    assert!(matches!(
        net.status().recv().unwrap(),
        Status::LoginRefused { reason, .. } if reason == "bob is taken"
    ));
    net.send(Command::Login("bob2".into()));
    assert_eq!(
        net.status().recv().unwrap(),
        Status::LoggedIn("bob2".into())
    );
    assert_eq!(net.wait(), Ending::Shutdown);
    fake.join().unwrap();
}

/// A server that hangs up without a word is a lost connection.
#[test]
fn hang_up_is_lost() {
    let (net, recorder, fake) = start(|mut peer| login(&mut peer, "alice"));
    net.send(Command::Login("alice".into()));
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
    net.send(Command::Login("alice".into()));
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
    assert_eq!(notices[1], Notice::Online { users });
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
            r#"{"type":"message","id":2,"receiver":"bob","text":"hi"}"#
        );
        assert_eq!(peer.line(), r#"{"type":"online","id":3}"#);
        peer.quiet();
        peer.send(r#"{"type":"online","id":3,"users":["alice","bob","carol","zed"]}"#);
        peer.send(r#"{"type":"ack","id":2}"#);
        // The roster is current now: the next request is the goodbye.
        assert_eq!(peer.line(), r#"{"type":"bye","id":4}"#);
        peer.send(r#"{"type":"ack","id":4}"#);
    });
    net.send(Command::Login("alice".into()));
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
    shown(&recorder, |n| matches!(n, Notice::PrivateTo { .. }));
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
