//! Presence: who joined and who left, told to everyone online in at most one
//! frame per `--presence-interval`, with a crowd's names listed up to
//! [`PRESENCE_NAMES`] and the rest counted. These tests run the server with
//! its default interval (one second), since the interval is what they check.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chat_common::protocol::PRESENCE_NAMES;
use serde_json::json;

use crate::support::{Client, Options, Presence, Server, DEFAULT_PRESENCE_MS};

/// The server's default interval.
const INTERVAL: Duration = Duration::from_millis(DEFAULT_PRESENCE_MS);

/// "At once": well under the interval, with room for a busy machine.
const AT_ONCE: Duration = Duration::from_millis(300);

/// A server with the default presence interval.
fn server() -> Server {
    Options::plain().presence_interval(None).crowd().start()
}

/// Connects and logs in as `nick` without waiting for the announcement.
fn arrive(server: &Server, nick: &str) -> Client {
    let mut client = server.connect(nick);
    client.login(nick);
    client
}

/// Set of (nick, reason) pairs, for departures whose order does not matter.
fn departures(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    pairs
        .iter()
        .map(|(n, r)| (n.to_string(), r.to_string()))
        .collect()
}

/// Makes the next close of `client` a reset (RST) rather than a clean
/// FIN, which the server reports as "connection lost".
fn reset_on_close(client: &Client) {
    socket2::SockRef::from(client.tcp())
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER");
}

/// The first arrival is announced at once, to the newcomer too; after a
/// quiet interval the next lone arrival is again announced at once — well
/// under the second that changes coming close together wait.
#[test]
fn a_lone_join_is_announced_at_once() {
    let server = server();
    let mut alice = server.connect("alice");
    let sent = Instant::now();
    alice.login("alice");
    assert_eq!(
        alice.recv(),
        json!({"type": "presence", "joined": ["alice"]})
    );
    let took = sent.elapsed();
    assert!(took < AT_ONCE, "alice's own arrival told after {took:?}");

    // A quiet interval: nothing to tell meanwhile.
    alice.expect_silence(INTERVAL + Duration::from_millis(100));
    let mut bob = server.connect("bob");
    let sent = Instant::now();
    bob.login("bob");
    let joined = json!({"type": "presence", "joined": ["bob"]});
    assert_eq!(alice.recv(), joined);
    let took = sent.elapsed();
    assert!(took < AT_ONCE, "bob's arrival told after {took:?}");
    assert_eq!(bob.recv(), joined);
    alice.expect_nothing_more();
}

/// Two arrivals 100 ms apart after a quiet interval: the first is told at
/// once, the second waits until an interval has passed since — two frames
/// about a second apart, never two within one interval.
#[test]
fn changes_close_together_wait_for_the_interval() {
    let server = server();
    let mut observer = server.login("observer");
    observer.expect_silence(INTERVAL + Duration::from_millis(100));

    let start = Instant::now();
    let _bob = arrive(&server, "bob");
    assert_eq!(
        observer.recv(),
        json!({"type": "presence", "joined": ["bob"]})
    );
    let first = start.elapsed();
    std::thread::sleep(Duration::from_millis(100).saturating_sub(start.elapsed()));
    let _carol = arrive(&server, "carol");
    assert_eq!(
        observer.recv(),
        json!({"type": "presence", "joined": ["carol"]})
    );
    let second = start.elapsed();
    assert!(first < AT_ONCE, "the first change told after {first:?}");
    let gap = second - first;
    assert!(
        gap >= INTERVAL - Duration::from_millis(100),
        "two presence frames {gap:?} apart"
    );
    assert!(
        gap <= INTERVAL + Duration::from_millis(600),
        "the second change waited {gap:?}"
    );
    observer.expect_nothing_more();
}

/// Sixty users log in within one interval: an observer gets at most two
/// presence frames for them, listing at most twenty names each and counting
/// the rest, so that names and counts add up to exactly sixty; `online`
/// then lists everyone. When they all leave at once, it is the same story
/// with their reasons.
#[test]
fn a_crowd_is_listed_then_counted() {
    const CROWD: usize = 60;
    let server = server();
    let mut observer = server.login("observer");
    let nicks: Vec<String> = (0..CROWD).map(|i| format!("crowd{i:02}")).collect();
    let mut crowd: Vec<Client> = nicks.iter().map(|nick| arrive(&server, nick)).collect();

    crowd_frames(&mut observer, &nicks, Side::Joined);
    observer.expect_nothing_more();

    let id = observer.id();
    observer.send(json!({"type": "online", "id": id}));
    let mut everyone = nicks.clone();
    everyone.push("observer".into());
    assert_eq!(observer.expect_reply(id)["users"], json!(everyone));

    // The newcomers are told too: the last one's first presence frame
    // names or counts it.
    let last = crowd.last_mut().unwrap();
    let presence = last.recv_presence();
    assert!(
        presence.joined.contains(&nicks[CROWD - 1]) || presence.joined_more > 0,
        "{presence:?}"
    );

    // They all go at once; each socket still holds unread frames, so the
    // server may see a reset as well as a clean close.
    drop(crowd);
    crowd_frames(&mut observer, &nicks, Side::Left);
    let id = observer.id();
    observer.send(json!({"type": "online", "id": id}));
    assert_eq!(observer.expect_reply(id)["users"], json!(["observer"]));
}

/// Which side of presence frames a crowd shows up on.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    Joined,
    Left,
}

/// Reads the presence frames that announce `nicks` all arriving (or all
/// leaving) at once: at most two frames, nothing on the other side, every
/// name in the crowd and named once, names plus counts exactly the crowd,
/// and one frame listing [`PRESENCE_NAMES`] names and counting the rest.
fn crowd_frames(observer: &mut Client, nicks: &[String], side: Side) -> Vec<Presence> {
    let mut frames: Vec<Presence> = Vec::new();
    let mut named = BTreeSet::new();
    let mut counted = 0;
    while named.len() + counted < nicks.len() {
        if frames.len() == 2 {
            observer.fail(&format!(
                "more than two presence frames for the crowd ({side:?}): {frames:?}"
            ));
        }
        let presence = observer.recv_presence();
        let (names, more, other_side_empty): (Vec<&String>, u64, bool) = match side {
            Side::Joined => (
                presence.joined.iter().collect(),
                presence.joined_more,
                presence.left.is_empty() && presence.left_more == 0,
            ),
            Side::Left => {
                for (nick, reason) in &presence.left {
                    assert!(
                        ["connection closed", "connection lost"].contains(&reason.as_str()),
                        "{nick} left with {reason:?}"
                    );
                }
                (
                    presence.left.iter().map(|(nick, _)| nick).collect(),
                    presence.left_more,
                    presence.joined.is_empty() && presence.joined_more == 0,
                )
            }
        };
        assert!(other_side_empty, "{presence:?}");
        for nick in names {
            assert!(nicks.contains(nick), "{nick} is not in the crowd");
            assert!(named.insert(nick.clone()), "{nick} announced twice");
        }
        counted += more as usize;
        frames.push(presence);
    }
    assert_eq!(named.len() + counted, nicks.len(), "{frames:?}");
    assert!(
        frames.iter().any(|p| match side {
            Side::Joined => p.joined.len() == PRESENCE_NAMES && p.joined_more > 0,
            Side::Left => p.left.len() == PRESENCE_NAMES && p.left_more > 0,
        }),
        "a frame listing {PRESENCE_NAMES} names and counting the rest: {frames:?}"
    );
    frames
}

/// Within one interval: a ghost logs in and says bye, another logs in and
/// drops its socket, a regular (already announced) says bye and comes
/// back, and a newcomer stays. The next presence frame says the newcomer
/// joined and the two who came and went left (their departure implies their
/// arrival); the regular's reconnect is not news.
#[test]
fn came_and_went_is_a_departure_and_a_reconnect_is_not_news() {
    let server = server();
    let mut observer = server.login("observer");
    let mut regular = server.login("regular");
    assert_eq!(
        observer.recv(),
        json!({"type": "presence", "joined": ["regular"]})
    );
    // An interval starts now: everything below happens well within it.
    let start = Instant::now();

    let mut ghost = arrive(&server, "ghost");
    ghost.send(json!({"type": "bye", "id": 9}));
    ghost.expect_ack(9);
    ghost.expect_eof();
    drop(arrive(&server, "phantom"));
    regular.send(json!({"type": "bye", "id": 9}));
    regular.expect_ack(9);
    let _regular = arrive(&server, "regular");
    let _stayer = arrive(&server, "stayer");
    let within = start.elapsed();
    assert!(
        within < INTERVAL / 2,
        "the changes took {within:?}, too long to share an interval"
    );

    assert_eq!(
        observer.recv(),
        json!({"type": "presence", "joined": ["stayer"], "left": [
            {"nick": "ghost", "reason": "quit"},
            {"nick": "phantom", "reason": "connection closed"},
        ]})
    );
    observer.expect_nothing_more();
    let id = observer.id();
    observer.send(json!({"type": "online", "id": id}));
    assert_eq!(
        observer.expect_reply(id)["users"],
        json!(["observer", "regular", "stayer"])
    );
}

/// Four users leave within one interval, each in another way: one frame
/// tells all four departures, each with its own reason.
#[test]
fn departures_keep_their_reasons_when_combined() {
    let server = Options::plain()
        .presence_interval(None)
        .flag("--max-frame", 1024)
        .start();
    let mut observer = server.login("observer");
    let nicks = ["quitter", "closer", "resetter", "bigmouth"];
    let mut clients: Vec<Client> = nicks.iter().map(|nick| arrive(&server, nick)).collect();
    // Their arrivals share one frame; each reads it, so that closing a
    // socket leaves nothing unread (which would make it a reset).
    let presence = observer.recv_presence();
    let joined: BTreeSet<&str> = presence.joined.iter().map(String::as_str).collect();
    assert_eq!(joined, nicks.into_iter().collect(), "{presence:?}");
    assert_eq!((presence.joined_more, presence.left.len()), (0, 0));
    for client in &mut clients {
        client.recv_presence();
    }
    let [mut quitter, closer, resetter, mut bigmouth] =
        <[Client; 4]>::try_from(clients).unwrap_or_else(|_| unreachable!("four clients"));
    let start = Instant::now();

    quitter.send(json!({"type": "bye", "id": 9}));
    quitter.expect_ack(9);
    quitter.expect_eof();
    drop(closer);
    reset_on_close(&resetter);
    drop(resetter);
    bigmouth.send_raw(format!("{}\n", "x".repeat(2000)).as_bytes());
    bigmouth.expect_error(None, "too_large");
    bigmouth.expect_eof();
    let within = start.elapsed();
    assert!(within < INTERVAL / 2, "the departures took {within:?}");

    let frame = observer.recv();
    let presence = Presence::parse(&frame).unwrap_or_else(|why| observer.fail(&why));
    let left: BTreeSet<(String, String)> = presence.left.iter().cloned().collect();
    assert_eq!(
        left,
        departures(&[
            ("bigmouth", "frame too large"),
            ("closer", "connection closed"),
            ("quitter", "quit"),
            ("resetter", "connection lost"),
        ]),
        "{frame}"
    );
    assert_eq!(presence.left.len(), 4, "{frame}");
    assert!(
        presence.joined.is_empty() && presence.left_more == 0,
        "{frame}"
    );
    observer.expect_nothing_more();
}

/// A user kicked before their arrival was announced is never announced:
/// the others get the `kicked` frame, and the next presence frame — due
/// with the kicked one's join — names only a later arrival.
#[test]
fn a_kick_drops_a_join_not_yet_announced() {
    let mut server = server();
    let mut observer = server.login("observer");
    let _dave = arrive(&server, "dave");
    let output = server.admin_output("/kick dave flooding", |l| l.contains("dave"));
    assert_eq!(output, "kicked dave");
    assert_eq!(
        observer.recv(),
        json!({"type": "kicked", "nick": "dave", "reason": "flooding"})
    );
    let _witness = arrive(&server, "witness");
    assert_eq!(
        observer.recv(),
        json!({"type": "presence", "joined": ["witness"]})
    );
    observer.expect_nothing_more();
}
