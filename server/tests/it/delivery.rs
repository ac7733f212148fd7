//! Reliable delivery with the real binary: private messages for offline
//! users, `received` and `delivered`, resuming both streams with `last_seq`
//! and `last_public`, dropping resends by `cid`, `history` and `search`
//! (across a restart too), the `/stats` counters, and answers in request
//! order.

use serde_json::{json, Value};

use crate::support::{now_ms, Client, Options, Server};

/// The `seq` of a message frame; fails unless it is a positive number.
fn seq_of(client: &Client, frame: &Value) -> u64 {
    frame["seq"]
        .as_u64()
        .filter(|&s| s > 0)
        .unwrap_or_else(|| client.fail(&format!("a message without a seq: {frame}")))
}

/// The next frame, which must be a `message` with this sender, receiver and
/// text; returns it.
fn expect_message(client: &mut Client, sender: &str, receiver: &str, text: &str) -> Value {
    let frame = client.recv();
    if frame["type"] != "message"
        || frame["sender"] != sender
        || frame["receiver"] != receiver
        || frame["text"] != text
    {
        client.fail(&format!(
            "expected {sender} → {receiver}: {text:?}, got {frame}"
        ));
    }
    seq_of(client, &frame);
    frame
}

/// The message frames among `frames`.
fn messages(frames: Vec<Value>) -> Vec<Value> {
    frames
        .into_iter()
        .filter(|f| f["type"] == "message")
        .collect()
}

/// The texts of a `history` answer, checking its form on the way: a list
/// of entries with exactly sender, receiver, text and time.
fn texts(history: &Value) -> Vec<String> {
    assert_eq!(history["type"], "history", "{history}");
    history["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages list: {history}"))
        .iter()
        .map(|m| {
            let fields = m.as_object().expect("an entry is an object");
            let mut keys: Vec<&str> = fields.keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(keys, ["receiver", "sender", "text", "time"], "{m}");
            assert!(
                m["time"].as_u64().is_some_and(|t| t > 1_600_000_000_000),
                "{m}"
            );
            m["text"].as_str().unwrap().to_string()
        })
        .collect()
}

/// An entry of a history answer as the live frame showed it.
fn entry(frame: &Value) -> Value {
    json!({
        "sender": frame["sender"],
        "receiver": frame["receiver"],
        "text": frame["text"],
        "time": frame["time"],
    })
}

both! {
    /// Bob registered, then went away. Alice's private message to him is
    /// stored: the ack says `"offline":true`. When Bob logs in again his
    /// welcome says one message follows, and it does, at once: from Alice,
    /// stamped with the time she sent it, marked `"away":true`. What Alice
    /// sends him afterwards arrives live, not away, later in his stream.
    fn an_offline_message_arrives_at_the_next_login(tls) {
        let server = Server::with_tls(tls);
        server.login("bob").bye();
        let mut alice = server.login("alice");

        let before = now_ms();
        let id = alice.send_with_cid(Some("bob"), "see you at nine", "a-1");
        assert_eq!(alice.expect_reply(id), json!({"type": "ack", "id": id, "offline": true}));
        let after = now_ms();

        let mut bob = server.connect("bob");
        let welcome = bob.try_login("bob");
        assert_eq!(
            welcome,
            json!({"type": "welcome", "id": 1, "nick": "bob", "online": ["alice", "bob"],
                   "replay": 1})
        );
        let stored = expect_message(&mut bob, "alice", "bob", "see you at nine");
        let first = seq_of(&bob, &stored);
        let time = stored["time"].as_u64().unwrap();
        // The server counts time from the wall clock it read at start on a
        // monotonic clock (dispatcher::now_ms), so it may differ from this
        // process's wall clock by a few milliseconds of rounding and drift.
        let slack = 50;
        assert!(
            (before - slack..=after + slack).contains(&time),
            "sent in {before}..={after}: {stored}"
        );
        assert_eq!(
            stored,
            json!({"type": "message", "seq": first, "sender": "alice", "receiver": "bob",
                   "text": "see you at nine", "time": time, "away": true})
        );

        let id = alice.send_with_cid(Some("bob"), "and bring the notes", "a-2");
        alice.expect_ack(id);
        let live = bob.expect_type("message");
        assert_eq!(live["text"], "and bring the notes", "{live}");
        assert_eq!(live.get("away"), None, "{live}");
        assert!(seq_of(&bob, &live) > first, "{live} after seq {first}");
        assert!(messages(bob.sync()).is_empty());
    }
}

/// Bob shows Alice's private messages and says so with `received`, which
/// is not answered. Alice learns that each one up to the seq Bob named
/// reached him (`delivered` with her cid), and no others. A fresh login of
/// Bob (no `last_seq`) replays only what he has not acknowledged; once he
/// has acknowledged everything, nothing. A `received` before logging in is
/// ignored.
#[test]
fn received_moves_the_mark_and_tells_the_sender() {
    let server = Server::plain();
    let mut bob = server.login("bob");
    let mut alice = server.login("alice");
    for (text, cid) in [("one", "c-1"), ("two", "c-2")] {
        let id = alice.send_with_cid(Some("bob"), text, cid);
        alice.expect_ack(id);
    }
    let one = bob.expect_type("message");
    let two = expect_message(&mut bob, "alice", "bob", "two");
    assert_eq!(one["text"], "one");
    let (s1, s2) = (seq_of(&bob, &one), seq_of(&bob, &two));
    assert!(s1 < s2, "{one} {two}");

    bob.send(json!({"type": "received", "seq": s1}));
    bob.expect_nothing_more();
    assert_eq!(
        alice.expect_type("delivered"),
        json!({"type": "delivered", "cid": "c-1", "to": "bob"})
    );
    // A `delivered` for c-2 would have come with the first.
    assert!(alice.sync().iter().all(|f| f["type"] != "delivered"));

    bob.bye();
    let mut bob = server.connect("bob");
    bob.send(json!({"type": "received", "seq": s2}));
    bob.expect_nothing_more();
    let welcome = bob.try_login("bob");
    assert_eq!(welcome["replay"], 1, "{welcome}");
    let again = expect_message(&mut bob, "alice", "bob", "two");
    assert_eq!(again, two, "the same frame as the first time, not away");

    bob.send(json!({"type": "received", "seq": s2}));
    assert_eq!(
        alice.expect_type("delivered"),
        json!({"type": "delivered", "cid": "c-2", "to": "bob"})
    );
    bob.bye();
    let mut bob = server.connect("bob");
    let welcome = bob.try_login("bob");
    assert_eq!(welcome.get("replay"), None, "{welcome}");
    assert!(messages(bob.sync()).is_empty());
    assert!(alice.sync().iter().all(|f| f["type"] != "delivered"));
}

/// Alice and Carol both write to Bob, with cids of their own. One
/// `received` from Bob covers both messages: each sender is told about
/// her own message, and neither learns the other's cid.
#[test]
fn delivered_goes_to_each_sender_alone() {
    let server = Server::plain();
    let mut bob = server.login("bob");
    let mut alice = server.login("alice");
    let mut carol = server.login("carol");
    for (client, cid) in [(&mut alice, "alice-1"), (&mut carol, "carol-1")] {
        let id = client.send_with_cid(Some("bob"), "hello", cid);
        client.expect_ack(id);
    }
    bob.expect_type("message");
    let last = bob.expect_type("message");
    bob.send(json!({"type": "received", "seq": seq_of(&bob, &last)}));
    for (client, cid) in [(&mut alice, "alice-1"), (&mut carol, "carol-1")] {
        assert_eq!(
            client.expect_type("delivered"),
            json!({"type": "delivered", "cid": cid, "to": "bob"})
        );
        let more: Vec<Value> = client
            .sync()
            .into_iter()
            .filter(|f| f["type"] == "delivered")
            .collect();
        assert!(more.is_empty(), "{}: {more:?}", client.name);
    }
    bob.expect_nothing_more();
}

/// The welcome says where the public stream stands (`public_seq`, absent
/// while nothing was said in public; private messages do not move it).
/// Dan, who has shown no public message yet, drops right after logging in
/// while Alice goes on talking; resuming with `last_public` = that
/// `public_seq`, he gets exactly what was said since, and nothing before.
#[test]
fn the_welcome_says_where_the_public_stream_stands() {
    let server = Server::plain();
    let mut alice = server.login("alice");
    let mut dan = server.connect("dan");
    assert_eq!(dan.try_login("dan").get("public_seq"), None);
    dan.bye();

    alice.say("before");
    let before = alice.expect_type("message");
    let id = alice.send_message(Some("dan"), "private, not public");
    assert_eq!(alice.expect_reply(id)["offline"], true);
    let mut dan = server.connect("dan");
    let welcome = dan.try_login("dan");
    assert_eq!(welcome["public_seq"], seq_of(&dan, &before), "{welcome}");
    drop(dan);
    alice.expect_left("dan");

    alice.say("after");
    let after = alice.expect_type("message");
    let mut dan = server.connect("dan");
    let welcome = dan.try_resume("dan", None, welcome["public_seq"].as_u64());
    assert_eq!(welcome["replay"], 2, "{welcome}");
    assert_eq!(welcome["public_seq"], seq_of(&dan, &after), "{welcome}");
    expect_message(&mut dan, "alice", "dan", "private, not public");
    assert_eq!(dan.recv(), after);
    assert!(messages(dan.sync()).is_empty());
}

both! {
    /// Bob has shown private message p1 and public message m1 when his
    /// connection drops. Meanwhile Alice sends p2, m2, p3, m3. Bob logs in
    /// with `last_seq` = p1's seq and `last_public` = m1's: the welcome says
    /// 4, and exactly p2, m2, p3, m3 follow, in the order they were sent,
    /// with the seqs Alice's copies had (the public stream is numbered the
    /// same for everyone). Resuming at the end replays nothing; without
    /// `last_seq`, every private message he has not acknowledged comes
    /// again, merged with the public ones after `last_public`.
    fn resume_replays_exactly_the_later_messages_of_both_streams(tls) {
        let server = Server::with_tls(tls);
        let mut alice = server.login("alice");
        let mut bob = server.login("bob");
        alice.expect_joined("bob");

        let id = alice.send_message(Some("bob"), "p1");
        alice.expect_ack(id);
        alice.say("m1");
        let m1 = alice.expect_type("message");
        let p1 = expect_message(&mut bob, "alice", "bob", "p1");
        assert_eq!(bob.expect_type("message"), m1, "the same public frame for everyone");
        drop(bob);
        alice.expect_left("bob");

        let mut sent = Vec::new();
        for text in ["p2", "m2", "p3", "m3"] {
            if text.starts_with('p') {
                let id = alice.send_message(Some("bob"), text);
                let ack = alice.expect_reply(id);
                assert_eq!(ack, json!({"type": "ack", "id": id, "offline": true}));
            } else {
                alice.say(text);
                sent.push(alice.expect_type("message"));
            }
        }
        let (m2, m3) = (&sent[0], &sent[1]);

        let mut bob = server.connect("bob");
        let welcome = bob.try_resume("bob", Some(seq_of(&bob, &p1)), Some(seq_of(&bob, &m1)));
        assert_eq!(welcome["replay"], 4, "{welcome}");
        let p2 = expect_message(&mut bob, "alice", "bob", "p2");
        assert_eq!(&bob.recv(), m2);
        let p3 = expect_message(&mut bob, "alice", "bob", "p3");
        assert_eq!(&bob.recv(), m3);
        for p in [&p2, &p3] {
            assert_eq!(p["away"], true, "{p}");
        }
        assert!(seq_of(&bob, &p1) < seq_of(&bob, &p2) && seq_of(&bob, &p2) < seq_of(&bob, &p3));
        assert!(seq_of(&bob, &m1) < seq_of(&bob, m2) && seq_of(&bob, m2) < seq_of(&bob, m3));
        assert!(messages(bob.sync()).is_empty());

        bob.bye();
        let mut bob = server.connect("bob");
        let welcome = bob.try_resume("bob", Some(seq_of(&bob, &p3)), Some(seq_of(&bob, m3)));
        assert_eq!(welcome.get("replay"), None, "{welcome}");
        assert!(messages(bob.sync()).is_empty());

        bob.bye();
        let mut bob = server.connect("bob");
        let welcome = bob.try_resume("bob", None, Some(seq_of(&bob, m2)));
        assert_eq!(welcome["replay"], 4, "{welcome}");
        assert_eq!(bob.recv(), p1);
        assert_eq!(bob.recv(), p2);
        assert_eq!(bob.recv(), p3);
        assert_eq!(&bob.recv(), m3);
        assert!(messages(bob.sync()).is_empty());
    }
}

/// Alice's client resends a message whose ack it never saw, with the same
/// `cid`: the server answers `"duplicate":true` and delivers nothing, so
/// Bob sees it once. The same holds for a public message, and for a resend
/// from a new connection. The same cid from another sender, or a message
/// without one, is new; a cid over 64 bytes is a `bad_request`.
#[test]
fn a_resend_with_a_known_cid_is_acknowledged_and_dropped() {
    let server = Server::plain();
    let mut bob = server.login("bob");
    let mut carol = server.login("carol");
    let mut alice = server.login("alice");
    bob.expect_joined("alice");
    carol.expect_joined("alice");

    let id = alice.send_with_cid(Some("bob"), "only once", "k-1");
    alice.expect_ack(id);
    expect_message(&mut bob, "alice", "bob", "only once");
    let id = alice.send_with_cid(Some("bob"), "only once", "k-1");
    assert_eq!(
        alice.expect_reply(id),
        json!({"type": "ack", "id": id, "duplicate": true})
    );
    assert!(messages(bob.sync()).is_empty());

    let id = alice.send_with_cid(None, "everyone, once", "k-2");
    alice.expect_ack(id);
    for client in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(client.expect_type("message")["text"], "everyone, once");
    }
    let id = alice.send_with_cid(None, "everyone, once", "k-2");
    assert_eq!(
        alice.expect_reply(id),
        json!({"type": "ack", "id": id, "duplicate": true})
    );

    alice.bye();
    let mut alice = server.connect("alice");
    alice.login("alice");
    // Even with another text: the cid names the message.
    let id = alice.send_with_cid(Some("bob"), "only once (resent)", "k-1");
    assert_eq!(
        alice.expect_reply(id),
        json!({"type": "ack", "id": id, "duplicate": true})
    );
    for client in [&mut alice, &mut bob, &mut carol] {
        assert!(messages(client.sync()).is_empty(), "{}", client.name);
    }

    let id = carol.send_with_cid(Some("bob"), "carol's k-1", "k-1");
    carol.expect_ack(id);
    expect_message(&mut bob, "carol", "bob", "carol's k-1");
    for _ in 0..2 {
        let id = alice.send_message(Some("bob"), "no cid");
        alice.expect_ack(id);
        expect_message(&mut bob, "alice", "bob", "no cid");
    }

    let id = alice.send_with_cid(Some("bob"), "cid too long", &"c".repeat(65));
    alice.expect_error(Some(id), "bad_request");
    let id = alice.send_with_cid(Some("bob"), "longest cid", &"c".repeat(64));
    alice.expect_ack(id);
    expect_message(&mut bob, "alice", "bob", "longest cid");
    assert!(messages(bob.sync()).is_empty());
}

/// `history` reads the store: the last public messages oldest first,
/// `limit` of them (default 20), each as {sender, receiver, text, time}
/// exactly as they were delivered; or the private conversation `with`
/// someone (any case), both directions and nobody else's. A nickname with
/// no account is `no_such_user`.
#[test]
fn history_of_the_room_and_of_a_conversation() {
    let server = Server::plain();
    let mut alice = server.login("alice");
    let mut bob = server.login("bob");
    let mut carol = server.login("carol");
    alice.sync();
    bob.sync();

    let mut public = Vec::new();
    for i in 1..=22 {
        let speaker = if i % 2 == 0 { &mut bob } else { &mut alice };
        speaker.say(&format!("public {i}"));
        public.push(entry(&carol.expect_type("message")));
    }
    for (from, to, text) in [
        ("alice", "bob", "hi bob"),
        ("bob", "alice", "hi alice"),
        ("carol", "alice", "hi from carol"),
        ("alice", "carol", "hi carol"),
    ] {
        let client = match from {
            "alice" => &mut alice,
            "bob" => &mut bob,
            _ => &mut carol,
        };
        let id = client.send_message(Some(to), text);
        client.expect_ack(id);
    }

    let history = alice.ask(json!({"type": "history"}));
    assert_eq!(
        history["messages"],
        Value::from(public[2..].to_vec()),
        "the last 20, oldest first"
    );
    assert_eq!(texts(&history).len(), 20);
    let history = bob.ask(json!({"type": "history", "limit": 2}));
    assert_eq!(texts(&history), ["public 21", "public 22"]);

    for (who, with) in [("alice", "bob"), ("alice", "BOB"), ("bob", "alice")] {
        let client = if who == "alice" { &mut alice } else { &mut bob };
        let history = client.ask(json!({"type": "history", "with": with}));
        assert_eq!(
            texts(&history),
            ["hi bob", "hi alice"],
            "{} with {with}",
            client.name
        );
        assert_eq!(history["messages"][0]["sender"], "alice");
        assert_eq!(history["messages"][0]["receiver"], "bob");
        assert_eq!(history["messages"][1]["sender"], "bob");
        assert_eq!(history["messages"][1]["receiver"], "alice");
    }
    let history = carol.ask(json!({"type": "history", "with": "bob"}));
    assert!(texts(&history).is_empty(), "{history}");
    let history = carol.ask(json!({"type": "history", "with": "alice", "limit": 1}));
    assert_eq!(texts(&history), ["hi carol"]);

    let id = carol.request(json!({"type": "history", "with": "nobody"}));
    carol.expect_error(Some(id), "no_such_user");
}

/// `search` finds words in what the user may see, newest first: public
/// messages and their own private ones, never someone else's — Eve cannot
/// find what Alice told Bob. `from` narrows it to one sender; `limit`
/// keeps the newest. No words is a `bad_request`, an unknown `from` is
/// `no_such_user`.
#[test]
fn search_finds_only_what_the_user_may_see() {
    let server = Server::plain();
    let mut alice = server.login("alice");
    let mut bob = server.login("bob");
    let mut carol = server.login("carol");
    let mut eve = server.login("eve");
    for client in [&mut alice, &mut bob, &mut carol] {
        client.sync();
    }

    bob.say("when is the exam?");
    let id = alice.send_message(Some("bob"), "the exam is on Friday");
    alice.expect_ack(id);
    alice.say("exam room is 101");
    let id = carol.send_message(Some("alice"), "my exam notes");
    carol.expect_ack(id);
    eve.say("lunch anyone?");

    let search = |client: &mut Client, frame: Value| texts(&client.ask(frame));
    assert_eq!(
        search(&mut bob, json!({"type": "search", "words": "exam"})),
        [
            "exam room is 101",
            "the exam is on Friday",
            "when is the exam?"
        ]
    );
    assert_eq!(
        search(&mut eve, json!({"type": "search", "words": "exam"})),
        ["exam room is 101", "when is the exam?"],
        "eve sees no private message"
    );
    assert!(search(&mut eve, json!({"type": "search", "words": "Friday"})).is_empty());
    assert!(search(&mut eve, json!({"type": "search", "words": "notes"})).is_empty());
    assert_eq!(
        search(&mut alice, json!({"type": "search", "words": "notes"})),
        ["my exam notes"]
    );
    assert_eq!(
        search(
            &mut bob,
            json!({"type": "search", "words": "exam", "from": "alice"})
        ),
        ["exam room is 101", "the exam is on Friday"]
    );
    assert_eq!(
        search(
            &mut eve,
            json!({"type": "search", "words": "exam", "from": "ALICE"})
        ),
        ["exam room is 101"]
    );
    assert_eq!(
        search(
            &mut bob,
            json!({"type": "search", "words": "exam", "limit": 1})
        ),
        ["exam room is 101"]
    );

    // What a user types is words, not query syntax: nothing makes it fail.
    for words in [
        "\"",
        "exam OR",
        "AND",
        "(exam",
        "exam*",
        "NEAR(exam",
        "from:alice",
        "-exam",
    ] {
        let found = bob.ask(json!({"type": "search", "words": words}));
        assert_eq!(found["type"], "history", "{words:?}: {found}");
    }
    for words in ["", "   "] {
        let id = bob.request(json!({"type": "search", "words": words}));
        bob.expect_error(Some(id), "bad_request");
    }
    let id = bob.request(json!({"type": "search", "words": "exam", "from": "nobody"}));
    bob.expect_error(Some(id), "no_such_user");
}

/// Everything is in the data directory, so a server killed with SIGKILL
/// and started again on it forgets nothing: the accounts and their
/// passwords, a private message Bob has not seen yet (with its `away`
/// mark), the history of the room and of a conversation, search, the cids
/// already accepted, and where each stream's numbering stands.
#[test]
fn everything_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Options::plain().data_dir(dir.path()).start();
    let mut alice = server.login("alice");
    let mut bob = server.login("bob");
    alice.say("the exam is on Friday");
    let id = alice.send_with_cid(Some("bob"), "exam room 101", "r-1");
    alice.expect_ack(id);
    let said = bob.expect_type("message");
    let live = expect_message(&mut bob, "alice", "bob", "exam room 101");
    bob.bye();
    let id = alice.send_with_cid(Some("bob"), "bring a pencil", "r-2");
    assert_eq!(
        alice.expect_reply(id),
        json!({"type": "ack", "id": id, "offline": true})
    );
    let public = alice.ask(json!({"type": "history"}));
    let private = alice.ask(json!({"type": "history", "with": "bob"}));
    server.kill();

    let server = Options::plain().data_dir(dir.path()).start();
    let mut bob = server.connect("bob");
    let reply = bob.try_login_with("bob", "not bob's");
    assert_eq!(reply["code"], "bad_password", "{reply}");
    let welcome = bob.try_login("bob");
    assert_eq!(
        welcome,
        json!({"type": "welcome", "id": 2, "nick": "bob", "online": ["bob"], "replay": 2,
               "public_seq": seq_of(&bob, &said)}),
        "not a new account; two private messages not acknowledged; the public stream's head"
    );
    assert_eq!(bob.recv(), live, "the one he saw but did not acknowledge");
    let away = expect_message(&mut bob, "alice", "bob", "bring a pencil");
    assert_eq!(away["away"], true, "{away}");
    assert!(seq_of(&bob, &away) > seq_of(&bob, &live));

    let (p_hist, w_hist) = (
        bob.ask(json!({"type": "history"})),
        bob.ask(json!({"type": "history", "with": "alice"})),
    );
    assert_eq!(p_hist["messages"], public["messages"]);
    assert_eq!(w_hist["messages"], private["messages"]);
    assert_eq!(texts(&w_hist), ["exam room 101", "bring a pencil"]);
    let found = bob.ask(json!({"type": "search", "words": "exam"}));
    assert_eq!(texts(&found), ["exam room 101", "the exam is on Friday"]);

    let mut alice = server.connect("alice");
    let welcome = alice.try_login("alice");
    assert_eq!(welcome.get("new_account"), None, "{welcome}");
    let id = alice.send_with_cid(Some("bob"), "bring a pencil", "r-2");
    assert_eq!(
        alice.expect_reply(id),
        json!({"type": "ack", "id": id, "duplicate": true})
    );
    let id = alice.send_with_cid(Some("bob"), "and an eraser", "r-3");
    alice.expect_ack(id);
    let next = expect_message(&mut bob, "alice", "bob", "and an eraser");
    assert!(
        seq_of(&bob, &next) > seq_of(&bob, &away),
        "numbering goes on"
    );
    assert!(messages(bob.sync()).is_empty(), "the resend was dropped");

    let mut carol = server.connect("carol");
    assert_eq!(carol.try_login("carol")["new_account"], true);
    let found = carol.ask(json!({"type": "search", "words": "exam"}));
    assert_eq!(texts(&found), ["the exam is on Friday"]);
}

/// After a long absence, resuming with `last_public` replays only the most
/// recent 1,000 public messages (the oldest of them first); `history` has
/// the rest, at most 500 per request.
#[test]
fn a_long_absence_replays_the_last_1000_public_messages() {
    let server = Options::plain().unthrottled().start();
    server.login("bob").bye();
    let mut alice = server.login("alice");
    const SENT: u64 = 1005;
    let mut batch = Vec::new();
    for i in 1..=SENT {
        let frame = json!({"type": "message", "id": 1000 + i, "text": format!("m{i}")});
        batch.extend(serde_json::to_vec(&frame).unwrap());
        batch.push(b'\n');
    }
    alice.send_raw(&batch);
    let (mut copies, mut acks) = (Vec::new(), 0);
    while copies.len() < SENT as usize || acks < SENT {
        let frame = alice.recv();
        match frame["type"].as_str() {
            Some("message") => copies.push(frame),
            Some("ack") => acks += 1,
            Some("presence") => {}
            _ => alice.fail(&format!("unexpected {frame}")),
        }
    }

    let mut bob = server.connect("bob");
    let welcome = bob.try_resume("bob", None, Some(0));
    let count = |frame: &Value, key: &str| frame[key].as_u64().unwrap_or(0) as usize;
    assert_eq!(
        count(&welcome, "replay") + count(&welcome, "replay_left"),
        1000,
        "{welcome}"
    );
    // In pages: read one, ask for the next with `more`.
    let (mut page, mut left) = (count(&welcome, "replay"), count(&welcome, "replay_left"));
    let mut replayed = Vec::new();
    loop {
        for _ in 0..page {
            replayed.push(bob.recv());
        }
        if left == 0 {
            break;
        }
        let replay = bob.ask(json!({"type": "more"}));
        (page, left) = (count(&replay, "count"), count(&replay, "left"));
    }
    assert!(
        replayed == copies[5..],
        "the newest 1,000, oldest first, once"
    );
    assert!(messages(bob.sync()).is_empty());

    let history = bob.ask(json!({"type": "history", "limit": 1000}));
    let texts = texts(&history);
    assert_eq!(texts.len(), 500);
    assert_eq!((texts[0].as_str(), texts[499].as_str()), ("m506", "m1005"));
}

/// `/stats` counts what reliable delivery did: a private message stored
/// for an offline user, messages replayed at a login (a private one missed
/// while away and a public one after `last_public`), and a resend dropped
/// as a duplicate — which is not counted as a message.
#[test]
fn stats_count_offline_redelivered_and_duplicates() {
    let mut server = Server::plain();
    server.login("bob").bye();
    let mut alice = server.login("alice");
    let id = alice.send_with_cid(Some("bob"), "while you were out", "s-1");
    assert_eq!(alice.expect_reply(id)["offline"], true);
    let id = alice.send_with_cid(Some("bob"), "while you were out", "s-1");
    assert_eq!(alice.expect_reply(id)["duplicate"], true);
    alice.say("hello room");

    let mut bob = server.connect("bob");
    let welcome = bob.try_resume("bob", None, Some(0));
    assert_eq!(welcome["replay"], 2, "{welcome}");

    let stats = server.admin_output("/stats", |l| l.starts_with("uptime: "));
    let lines: Vec<&str> = stats.lines().collect();
    for expected in [
        "connections: 2 (2 logged in, 2 accounts)",
        "messages: 2 (1 private)",
        "stored for offline users: 1",
        "redelivered at login: 2",
        "duplicates dropped: 1",
    ] {
        assert!(
            lines.contains(&expected),
            "no line {expected:?} in:\n{stats}"
        );
    }
}

both! {
    /// Answers come in the order of the requests, even when some wait for
    /// the disk: in one write, a public message, a ping, a private
    /// message, a ping, history, online, search, a ping, a message to
    /// nobody and a ping are answered 1, 2, … 10 — each `pong` after the
    /// `ack` before it — and Alice's own copy comes after its ack.
    fn answers_keep_request_order(tls) {
        let server = Server::with_tls(tls);
        let _bob = server.login("bob");
        let mut alice = server.login("alice");
        alice.sync();
        let requests = [
            json!({"type": "message", "id": 101, "text": "first"}),
            json!({"type": "ping", "id": 102}),
            json!({"type": "message", "id": 103, "receiver": "bob", "text": "second"}),
            json!({"type": "ping", "id": 104}),
            json!({"type": "history", "id": 105}),
            json!({"type": "online", "id": 106}),
            json!({"type": "search", "id": 107, "words": "first"}),
            json!({"type": "ping", "id": 108}),
            json!({"type": "message", "id": 109, "receiver": "nobody", "text": "third"}),
            json!({"type": "ping", "id": 110}),
        ];
        let mut batch = Vec::new();
        for request in &requests {
            batch.extend(serde_json::to_vec(request).unwrap());
            batch.push(b'\n');
        }
        alice.send_raw(&batch);

        let mut frames = Vec::new();
        loop {
            let frame = alice.recv();
            let last = frame["id"] == 110;
            if frame["type"] != "presence" {
                frames.push(frame);
            }
            if last {
                break;
            }
        }
        let kinds: Vec<String> = frames
            .iter()
            .map(|f| match f["id"].as_u64() {
                Some(id) => format!("{} {id}", f["type"].as_str().unwrap()),
                None => f["type"].as_str().unwrap().to_string(),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "ack 101", "message", "pong 102", "ack 103", "pong 104", "history 105",
                "online 106", "history 107", "pong 108", "error 109", "pong 110"
            ],
            "{frames:?}"
        );
        assert_eq!(texts(&frames[5]), ["first"]);
        assert_eq!(texts(&frames[7]), ["first"]);
        assert_eq!(frames[9]["code"], "no_such_user");
    }

    /// A client may send its first requests in the same write as its login:
    /// they wait for the password check (at the default cost, so it takes a
    /// while) and are answered after the welcome, in order — not refused as
    /// `not_logged_in`; a second login among them is `already_logged_in`,
    /// and a bye among them closes only after the others were answered.
    /// Behind a refused login they are `not_logged_in`, as any request
    /// before a login.
    fn requests_pipelined_after_login_wait_for_the_welcome(tls) {
        let server = Options::with_tls(tls).owasp_hashes().start();
        let mut bob = server.login("bob");

        let mut alice = server.connect("alice");
        let lines = [
            json!({"type": "login", "id": 1, "nick": "alice", "password": "pw-alice"}),
            json!({"type": "message", "id": 2, "text": "early bird"}),
            json!({"type": "ping", "id": 3}),
            json!({"type": "online", "id": 4}),
            json!({"type": "login", "id": 5, "nick": "alice", "password": "pw-alice"}),
            json!({"type": "bye", "id": 6}),
        ];
        let mut batch = Vec::new();
        for line in &lines {
            batch.extend(serde_json::to_vec(line).unwrap());
            batch.push(b'\n');
        }
        alice.send_raw(&batch);
        let welcome = alice.recv();
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        assert_eq!(welcome["id"], 1, "{welcome}");
        assert_eq!(alice.expect_reply(2), json!({"type": "ack", "id": 2}));
        assert_eq!(alice.expect_type("message")["text"], "early bird");
        assert_eq!(alice.expect_reply(3), json!({"type": "pong", "id": 3}));
        assert_eq!(alice.expect_reply(4)["users"], json!(["alice", "bob"]));
        alice.expect_error(Some(5), "already_logged_in");
        assert_eq!(alice.expect_reply(6), json!({"type": "ack", "id": 6}));
        alice.expect_eof();
        let heard = bob.expect_type("message");
        assert_eq!(heard["sender"], "alice", "{heard}");
        assert!(messages(bob.sync()).is_empty(), "once");

        let mut mallory = server.connect("mallory");
        mallory.send_raw(
            concat!(
                r#"{"type":"login","id":1,"nick":"alice","password":"guess"}"#, "\n",
                r#"{"type":"message","id":2,"text":"it's me, alice"}"#, "\n",
                r#"{"type":"ping","id":3}"#, "\n",
            )
            .as_bytes(),
        );
        mallory.expect_error(Some(1), "bad_password");
        mallory.expect_error(Some(2), "not_logged_in");
        assert_eq!(mallory.recv(), json!({"type": "pong", "id": 3}));
        assert!(messages(bob.sync()).is_empty());
    }

    /// However many requests come behind a login in one write (here 300
    /// pings, while the password is checked at the default cost), the
    /// welcome is the first answer and every request is answered once, in
    /// the order sent.
    fn a_long_pipeline_behind_a_login_is_answered_in_order(tls) {
        let server = Options::with_tls(tls).owasp_hashes().start();
        let mut alice = server.connect("alice");
        let mut batch = serde_json::to_vec(
            &json!({"type": "login", "id": 1, "nick": "alice", "password": "pw-alice"}),
        )
        .unwrap();
        batch.push(b'\n');
        for id in 2..=301 {
            batch.extend(serde_json::to_vec(&json!({"type": "ping", "id": id})).unwrap());
            batch.push(b'\n');
        }
        alice.send_raw(&batch);
        let mut answered = Vec::new();
        while answered.last() != Some(&301) {
            let frame = alice.recv();
            if let Some(id) = frame["id"].as_u64() {
                if answered.is_empty() && frame["type"] != "welcome" {
                    alice.fail(&format!("the first answer is not the welcome: {frame}"));
                }
                answered.push(id);
            }
        }
        let expected: Vec<u64> = (1..=301).collect();
        if answered != expected {
            let out_of_order: Vec<_> = answered.windows(2).filter(|w| w[0] + 1 != w[1]).collect();
            alice.fail(&format!("answers out of order or missing: {out_of_order:?}"));
        }
    }
}

/// A long absence does not lock anyone out: 3,000 messages (about 400 KiB,
/// more than the 256 KiB send queue) wait for bob; his login gets them in
/// pages, each asked for with `more` once the one before is read, all of
/// them once and in order, and only then live messages.
#[test]
fn a_huge_backlog_comes_in_pages() {
    let server = Options::plain().unthrottled().start();
    let mut bob = server.connect("bob");
    bob.login("bob");
    bob.bye();
    let mut alice = server.connect("alice");
    alice.login("alice");
    const N: usize = 3000;
    let pad = "x".repeat(120);
    let mut ids = Vec::new();
    for i in 0..N {
        ids.push(alice.send_message(Some("bob"), &format!("{i:04} {pad}")));
    }
    for id in ids {
        let ack = alice.expect_reply(id);
        assert_eq!(ack["type"], "ack", "{ack}");
    }

    let mut bob = server.connect("bob");
    let welcome = bob.try_login("bob");
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let mut page = welcome["replay"].as_u64().unwrap() as usize;
    let mut left = welcome["replay_left"].as_u64().unwrap_or(0) as usize;
    assert_eq!(page + left, N, "{welcome}");
    assert!(left > 0, "one page cannot hold it all: {welcome}");
    let mut seen = Vec::new();
    let mut pages = 1;
    loop {
        for _ in 0..page {
            let m = bob.expect_type("message");
            seen.push(m["text"].as_str().unwrap()[..4].to_string());
        }
        if left == 0 {
            break;
        }
        let replay = bob.ask(json!({"type": "more"}));
        assert_eq!(replay["type"], "replay", "{replay}");
        page = replay["count"].as_u64().unwrap() as usize;
        left = replay["left"].as_u64().unwrap() as usize;
        pages += 1;
    }
    let expected: Vec<String> = (0..N).map(|i| format!("{i:04}")).collect();
    assert!(
        seen == expected,
        "{} messages, not all in order",
        seen.len()
    );
    assert!(pages > 2, "{pages} pages");
    // Caught up: live messages flow again.
    alice.send_message(Some("bob"), "live again");
    let live = bob.expect("the live message", |f| f["type"] == "message");
    assert_eq!(live["text"], "live again", "{live}");
    let done = bob.ask(json!({"type": "more"}));
    assert_eq!(done["count"], 0, "{done}");
}
