//! Every notice as it reads, without colour and with.

use chat_common::Departure;
use chrono::{DateTime, Local, TimeZone};

use super::{clean, Renderer};
use crate::session::{Mark, Notice, Query};

fn departure(nick: &str, reason: &str) -> Departure {
    Departure {
        nick: nick.into(),
        reason: reason.into(),
    }
}

fn noon() -> DateTime<Local> {
    Local.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
}

fn s(text: &str) -> String {
    text.to_string()
}

/// A table of the notices the server does not time, stamped with `now`:
/// long, but one row per case.
#[test]
fn formats() {
    let plain = Renderer { colour: false };
    let three = vec![s("alice"), s("bob"), s("carol")];
    let cases = vec![
        (
            Notice::PrivateTo {
                receiver: s("bob"),
                text: s("hi"),
                number: 3,
            },
            "[12:00:00] [private to bob] hi (#3 pending)",
        ),
        (
            Notice::PrivateSent {
                receiver: s("bob"),
                text: s("hi"),
                number: 3,
                state: Mark::Pending,
            },
            "[12:00:00] [private to bob] hi (#3 pending…)",
        ),
        (
            Notice::PrivateSent {
                receiver: s("bob"),
                text: s("hi"),
                number: 3,
                state: Mark::Stored,
            },
            "[12:00:00] [private to bob] hi (#3 ✓ stored)",
        ),
        (
            Notice::PrivateSent {
                receiver: s("bob"),
                text: s("hi"),
                number: 3,
                state: Mark::Offline,
            },
            "[12:00:00] [private to bob] hi (#3 ✓ stored, bob is offline)",
        ),
        (
            Notice::PrivateSent {
                receiver: s("bob"),
                text: s("hi"),
                number: 3,
                state: Mark::Delivered,
            },
            "[12:00:00] [private to bob] hi (#3 ✓✓ delivered)",
        ),
        (
            Notice::PrivateSent {
                receiver: s("bob"),
                text: s("hi"),
                number: 3,
                state: Mark::Refused,
            },
            "[12:00:00] [private to bob] hi (#3 not sent)",
        ),
        (
            Notice::States {
                stored: vec![5],
                delivered: vec![3, 4],
            },
            "[12:00:00] * stored ✓: #5; delivered ✓✓: #3 #4",
        ),
        (
            Notice::States {
                stored: vec![],
                delivered: vec![3],
            },
            "[12:00:00] * delivered ✓✓: #3",
        ),
        (
            Notice::PublicPending {
                text: s("all"),
                number: 4,
            },
            "[12:00:00] [to everyone] all (#4 pending)",
        ),
        (
            Notice::Stored {
                number: 3,
                receiver: s("bob"),
                offline: false,
            },
            "[12:00:00] * #3 stored",
        ),
        (
            Notice::Stored {
                number: 3,
                receiver: s("bob"),
                offline: true,
            },
            "[12:00:00] * #3 stored for bob (offline)",
        ),
        (
            Notice::Delivered {
                number: Some(3),
                receiver: s("bob"),
            },
            "[12:00:00] * #3 delivered to bob",
        ),
        (
            Notice::Delivered {
                number: None,
                receiver: s("bob"),
            },
            "[12:00:00] * a message sent earlier was delivered to bob",
        ),
        (
            Notice::Refused {
                number: 5,
                receiver: s("zed"),
                reason: s("no such user: zed"),
            },
            "[12:00:00] ! #5 to zed not sent: no such user: zed",
        ),
        (
            Notice::Unsent {
                number: 6,
                receiver: s("*"),
                text: s("lost?"),
            },
            "[12:00:00] ! #6 to everyone was never stored: lost?",
        ),
        (
            Notice::AccountCreated { nick: s("bob") },
            "[12:00:00] * account bob created: log in with the same password next time",
        ),
        (
            Notice::CaughtUp { count: 1 },
            "[12:00:00] * 1 message while you were away",
        ),
        (
            Notice::Reconnected { count: 3 },
            "[12:00:00] * reconnected; 3 messages caught up",
        ),
        (
            Notice::Reconnecting { reason: s("reset") },
            "[12:00:00] ! connection lost — reconnecting… (reset)",
        ),
        (
            Notice::RetryFailed {
                reason: s("refused"),
                retry_in: 2,
            },
            "[12:00:00] ! cannot reconnect yet: refused; trying again in 2 s",
        ),
        (
            Notice::Pinned {
                text: s("pinned the certificate of b:50445 (SHA-256 AB:CD) on first use"),
            },
            "[12:00:00] * pinned the certificate of b:50445 (SHA-256 AB:CD) on first use",
        ),
        (
            Notice::Connected {
                server: s("b:50445"),
            },
            "[12:00:00] * connected to b:50445",
        ),
        (
            Notice::ReconnectingTo {
                lost: s("a:50445"),
                next: s("b:50445"),
                reason: s("reset"),
            },
            "[12:00:00] ! connection to a:50445 lost — reconnecting to b:50445… (reset)",
        ),
        (
            Notice::Unreachable {
                server: s("b:50445"),
                next: s("c:50445"),
                reason: s("Connection refused"),
                retry_in: None,
            },
            "[12:00:00] ! b:50445 unreachable, trying c:50445 — Connection refused",
        ),
        (
            Notice::Unreachable {
                server: s("c:50445"),
                next: s("a:50445"),
                reason: s("timed out"),
                retry_in: Some(2),
            },
            "[12:00:00] ! c:50445 unreachable too; trying a:50445 again in 2 s — timed out",
        ),
        (
            Notice::GaveUp { after: 60 },
            "[12:00:00] ! gave up reconnecting after 60 s without a connection",
        ),
        (
            Notice::HistoryStart {
                query: Query::Public,
                count: 2,
            },
            "[12:00:00] * history: last 2 messages to everyone",
        ),
        (
            Notice::HistoryStart {
                query: Query::With(s("bob")),
                count: 1,
            },
            "[12:00:00] * history with bob: last 1 message",
        ),
        (
            Notice::HistoryStart {
                query: Query::Search {
                    words: s("exam date"),
                    from: Some(s("prof")),
                },
                count: 0,
            },
            "[12:00:00] * search \"exam date\" from prof: 0 messages, newest first",
        ),
        (
            Notice::HistoryStart {
                query: Query::Search {
                    words: s("\"exam date\""),
                    from: None,
                },
                count: 2,
            },
            "[12:00:00] * search \"exam date\": 2 messages, newest first",
        ),
        (
            Notice::Welcome {
                nick: s("alice"),
                online: three.clone(),
                more: 0,
            },
            "[12:00:00] * welcome, alice — 3 online: alice, bob, carol",
        ),
        (
            Notice::Welcome {
                nick: s("alice"),
                online: three.clone(),
                more: 9997,
            },
            "[12:00:00] * welcome, alice — 10000 online: alice, bob, carol and 9997 others",
        ),
        (
            Notice::Joined {
                nicks: vec![s("alice")],
                more: 0,
            },
            "[12:00:00] * alice joined",
        ),
        (
            Notice::Joined {
                nicks: vec![s("alice"), s("bob")],
                more: 0,
            },
            "[12:00:00] * alice and bob joined",
        ),
        (
            Notice::Joined {
                nicks: vec![s("alice"), s("bob"), s("carol")],
                more: 412,
            },
            "[12:00:00] * alice, bob, carol and 412 others joined",
        ),
        (
            Notice::Left {
                departures: vec![departure("alice", "connection lost")],
                more: 0,
            },
            "[12:00:00] * alice left (connection lost)",
        ),
        (
            Notice::Left {
                departures: vec![
                    departure("alice", "quit"),
                    departure("bob", "connection lost"),
                ],
                more: 1,
            },
            "[12:00:00] * alice (quit), bob (connection lost) and 1 other left",
        ),
        (
            Notice::Kicked {
                nick: s("bob"),
                reason: s("spam"),
            },
            "[12:00:00] * bob was kicked by the server: spam",
        ),
        (
            Notice::Shutdown {
                reason: s("bye all"),
            },
            "[12:00:00] * server is shutting down: bye all",
        ),
        (
            Notice::Online {
                users: three,
                away: [(s("bob"), s("at lunch"))].into(),
            },
            "[12:00:00] * 3 online: alice, bob (away: at lunch), carol",
        ),
        (
            Notice::Away {
                text: Some(s("at lunch")),
            },
            "[12:00:00] * you are away: at lunch (others see it in !online; !away alone: back)",
        ),
        (Notice::Away { text: None }, "[12:00:00] * you are back"),
        (
            Notice::Error {
                reason: s("bob is not online"),
            },
            "[12:00:00] ! bob is not online",
        ),
        (
            Notice::Lost { reason: s("reset") },
            "[12:00:00] ! connection lost: reset",
        ),
    ];
    for (notice, want) in cases {
        assert_eq!(plain.line(&notice, noon()), want);
    }
}

#[test]
fn messages_use_the_server_time() {
    let plain = Renderer { colour: false };
    let at = Local.with_ymd_and_hms(2024, 5, 1, 9, 30, 5).unwrap();
    let time = at.timestamp_millis() as u64;
    let cases = vec![
        (
            Notice::Public {
                sender: s("alice"),
                text: s("hello"),
                own: false,
                time,
                away: false,
            },
            "[09:30:05] <alice> hello",
        ),
        (
            Notice::Public {
                sender: s("alice"),
                text: s("hello"),
                own: true,
                time,
                away: false,
            },
            "[09:30:05] <alice (you)> hello",
        ),
        (
            Notice::PrivateFrom {
                sender: s("alice"),
                text: s("hi"),
                time,
                away: false,
            },
            "[09:30:05] [private from alice] hi",
        ),
        (
            Notice::PrivateFrom {
                sender: s("alice"),
                text: s("hi"),
                time,
                away: true,
            },
            "[09:30:05] [private from alice] hi (while you were away)",
        ),
        (
            Notice::Past {
                sender: s("alice"),
                receiver: s("*"),
                text: s("old"),
                time,
                me: s("bob"),
            },
            "[09:30:05] | <alice> old",
        ),
        (
            Notice::Past {
                sender: s("bob"),
                receiver: s("alice"),
                text: s("psst"),
                time,
                me: s("bob"),
            },
            "[09:30:05] | [you → alice] psst",
        ),
        (
            Notice::Announce {
                text: s("maintenance at 5"),
                time,
            },
            "[09:30:05] [server] maintenance at 5",
        ),
    ];
    for (notice, want) in cases {
        assert_eq!(plain.line(&notice, noon()), want);
    }
}

/// A message from another day is stamped with its date.
#[test]
fn older_messages_carry_their_date() {
    let plain = Renderer { colour: false };
    let before = Local.with_ymd_and_hms(2024, 4, 30, 23, 59, 58).unwrap();
    let line = plain.line(
        &Notice::PrivateFrom {
            sender: s("alice"),
            text: s("late"),
            time: before.timestamp_millis() as u64,
            away: true,
        },
        noon(),
    );
    assert_eq!(
        line,
        "[2024-04-30 23:59:58] [private from alice] late (while you were away)"
    );
}

#[test]
fn being_added_to_or_removed_from_a_group_is_shown() {
    let plain = Renderer { colour: false };
    let changed = |added| Notice::GroupChanged {
        group: s("#class"),
        by: s("prof"),
        added,
    };
    assert!(plain
        .line(&changed(true), noon())
        .ends_with("* prof added you to #class"));
    assert!(plain
        .line(&changed(false), noon())
        .ends_with("* prof removed you from #class"));
}

#[test]
fn colour_wraps_but_keeps_the_words() {
    let line = Renderer { colour: true }.line(
        &Notice::Error {
            reason: s("bob is not online"),
        },
        noon(),
    );
    assert!(
        line.contains("\x1b[31m! bob is not online\x1b[0m"),
        "{line:?}"
    );
    assert!(line.starts_with("\x1b[2m[12:00:00]\x1b[0m "));
}

#[test]
fn control_characters_are_escaped() {
    assert_eq!(clean("plain"), "plain");
    assert_eq!(clean("two\nlines"), "two\\nlines");
    assert_eq!(clean("\x1b[2Jboo"), "\\u{1b}[2Jboo");
}

#[test]
fn invisible_and_bidi_characters_are_escaped() {
    let cases = [
        (
            "caf\u{e9} \u{1F600} \u{05D0}",
            "caf\u{e9} \u{1F600} \u{05D0}",
        ),
        ("soft\u{AD}hyphen", "soft\\u{ad}hyphen"),
        ("\u{61C}", "\\u{61c}"),
        ("\u{180E}", "\\u{180e}"),
        ("zero\u{200B}width", "zero\\u{200b}width"),
        ("\u{200F}", "\\u{200f}"),
        ("line\u{2028}sep", "line\\u{2028}sep"),
        ("admin\u{202E}txt.exe", "admin\\u{202e}txt.exe"),
        ("\u{2060}\u{2064}", "\\u{2060}\\u{2064}"),
        ("\u{2066}x\u{2069}", "\\u{2066}x\\u{2069}"),
        ("\u{FEFF}bom", "\\u{feff}bom"),
        // The whole default-ignorable block 2060-206F, variation selectors,
        // Hangul fillers (common's is_invisible since issue 16).
        ("\u{2065}\u{206A}", "\\u{2065}\\u{206a}"),
        ("a\u{FE0F}\u{3164}", "a\\u{fe0f}\\u{3164}"),
        // Neighbours of the table stay as they are.
        (
            "\u{2027}\u{202F}\u{205F}\u{2070}",
            "\u{2027}\u{202F}\u{205F}\u{2070}",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(clean(text), want, "{text:?}");
    }
    // In nicknames as well as in text.
    let line = Renderer { colour: false }.line(
        &Notice::Public {
            sender: "bob\u{200B}".into(),
            text: "\u{202E}olleh".into(),
            own: false,
            time: noon().timestamp_millis() as u64,
            away: false,
        },
        noon(),
    );
    assert!(line.ends_with("<bob\\u{200b}> \\u{202e}olleh"), "{line}");
}

/// `/me` texts are drawn as actions wherever a message can go, set apart
/// from the client's own `* …` lines by their leading space.
#[test]
fn actions_are_drawn_like_irssi() {
    let plain = Renderer { colour: false };
    let body = |notice: Notice| {
        let line = plain.line(&notice, noon());
        line.split_once("] ").unwrap().1.to_string()
    };
    let public = |text: &str, own| Notice::Public {
        sender: s("alice"),
        text: s(text),
        own,
        time: 0,
        away: false,
    };
    assert_eq!(body(public("/me waves", false)), " * alice waves");
    assert_eq!(body(public("/me waves", true)), " * alice (you) waves");
    assert_eq!(body(public("/me joined", false)), " * alice joined");
    // Not an action: `/me` alone, or without its space.
    assert_eq!(body(public("/me", false)), "<alice> /me");
    assert_eq!(body(public("/meow", false)), "<alice> /meow");
    let group = Notice::Group {
        group: s("#class"),
        sender: s("bob"),
        text: s("/me \u{1b}[2Jsighs"),
        own: false,
        time: 0,
        away: false,
    };
    assert_eq!(body(group), "[#class] * bob \\u{1b}[2Jsighs");
    let private = Notice::PrivateFrom {
        sender: s("bob"),
        text: s("/me nods"),
        time: 0,
        away: false,
    };
    assert_eq!(body(private), "[private from bob] * bob nods");
}
