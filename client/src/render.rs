//! Turning what happened ([`Notice`]) into one display line: the
//! `[HH:MM:SS]` stamp in local time, the exact wording, and optional colour.

use std::borrow::Cow;

use chat_common::protocol::GroupInfo;
use chrono::{DateTime, Local};

use crate::session::{Notice, Query};

/// Renders notices, with ANSI colours or without.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renderer {
    pub colour: bool,
}

const DIM: &str = "\x1b[2m";
const BOLD_CYAN: &str = "\x1b[1;36m";
const BOLD_GREEN: &str = "\x1b[1;32m";
const MAGENTA: &str = "\x1b[35m";
const YELLOW: &str = "\x1b[33m";
const BOLD_YELLOW: &str = "\x1b[1;33m";
const RED: &str = "\x1b[31m";
const RESET: &str = "\x1b[0m";

impl Renderer {
    /// Colour `text` if colours are on.
    fn paint<'a>(&self, colour: &str, text: &'a str) -> Cow<'a, str> {
        if self.colour {
            Cow::Owned(format!("{colour}{text}{RESET}"))
        } else {
            Cow::Borrowed(text)
        }
    }

    /// One line, without a newline. `now` stamps notices the server did not
    /// time itself.
    pub fn line(&self, notice: &Notice, now: DateTime<Local>) -> String {
        let at = notice
            .time()
            .and_then(|ms| DateTime::from_timestamp_millis(i64::try_from(ms).ok()?))
            .map_or(now, |utc| utc.with_timezone(&Local));
        // Messages from another day (caught up, history) carry the date.
        let format = if at.date_naive() == now.date_naive() {
            "[%H:%M:%S]"
        } else {
            "[%Y-%m-%d %H:%M:%S]"
        };
        let stamp = at.format(format).to_string();
        format!("{} {}", self.paint(DIM, &stamp), self.body(notice))
    }

    fn body(&self, notice: &Notice) -> String {
        match notice {
            Notice::Public {
                sender,
                text,
                own,
                away,
                ..
            } => {
                let who = if *own {
                    self.paint(BOLD_GREEN, &format!("<{} (you)>", clean(sender)))
                        .into_owned()
                } else {
                    self.paint(BOLD_CYAN, &format!("<{}>", clean(sender)))
                        .into_owned()
                };
                format!("{who} {}{}", clean(text), self.away(*away))
            }
            Notice::Group {
                group,
                sender,
                text,
                own,
                away,
                ..
            } => {
                let who = if *own {
                    format!("{} (you)", clean(sender))
                } else {
                    clean(sender).into_owned()
                };
                format!(
                    "{} {who}: {}{}",
                    self.paint(BOLD_CYAN, &format!("[{}]", clean(group))),
                    clean(text),
                    self.away(*away)
                )
            }
            Notice::GroupInfo {
                verb,
                group,
                members,
                online,
            } => self.system(&format!(
                "{verb} {} ({}): {}; online: {}",
                clean(&group.name),
                describe(group),
                clean(&members.join(", ")),
                if online.is_empty() {
                    "nobody".to_string()
                } else {
                    clean(&online.join(", ")).into_owned()
                }
            )),
            Notice::GroupList { groups } if groups.is_empty() => {
                self.system("no groups yet: !group create <name> [--public] [nick…]")
            }
            Notice::GroupList { groups } => {
                let line = |g: &GroupInfo| format!("{} ({})", clean(&g.name), describe(g));
                let mine: Vec<String> = groups.iter().filter(|g| g.member).map(line).collect();
                let other: Vec<String> = groups.iter().filter(|g| !g.member).map(line).collect();
                let mut text = format!(
                    "your groups: {}",
                    if mine.is_empty() {
                        "none".to_string()
                    } else {
                        mine.join(", ")
                    }
                );
                if !other.is_empty() {
                    text += &format!("; public groups to join: {}", other.join(", "));
                }
                self.system(&text)
            }
            Notice::GroupLeft { group } => self.system(&format!("you left {}", clean(group))),
            Notice::GroupChanged {
                group,
                by,
                added: true,
            } => self.system(&format!("{} added you to {}", clean(by), clean(group))),
            Notice::GroupChanged { group, by, .. } => {
                self.system(&format!("{} removed you from {}", clean(by), clean(group)))
            }
            Notice::PrivateFrom {
                sender, text, away, ..
            } => {
                let tag = format!("[private from {}]", clean(sender));
                format!(
                    "{} {}{}",
                    self.paint(MAGENTA, &tag),
                    clean(text),
                    self.away(*away)
                )
            }
            Notice::PrivateTo {
                receiver,
                text,
                number,
            } => {
                let tag = format!("[private to {}]", clean(receiver));
                let state = self
                    .paint(DIM, &format!("(#{number} pending)"))
                    .into_owned();
                format!("{} {} {state}", self.paint(MAGENTA, &tag), clean(text))
            }
            Notice::PublicPending { text, number } => {
                let state = self
                    .paint(DIM, &format!("(#{number} pending)"))
                    .into_owned();
                format!(
                    "{} {} {state}",
                    self.paint(DIM, "[to everyone]"),
                    clean(text)
                )
            }
            Notice::Stored {
                number,
                receiver,
                offline,
            } => {
                if *offline {
                    self.system(&format!(
                        "#{number} stored for {} (offline)",
                        clean(receiver)
                    ))
                } else {
                    self.system(&format!("#{number} stored"))
                }
            }
            Notice::Delivered { number, receiver } => match number {
                Some(number) => self.system(&format!("#{number} delivered to {}", clean(receiver))),
                None => self.system(&format!(
                    "a message sent earlier was delivered to {}",
                    clean(receiver)
                )),
            },
            Notice::Refused {
                number,
                receiver,
                reason,
            } => self
                .paint(
                    RED,
                    &format!(
                        "! #{number} to {} not sent: {}",
                        to(receiver),
                        clean(reason)
                    ),
                )
                .into(),
            Notice::Unsent {
                number,
                receiver,
                text,
            } => self
                .paint(
                    RED,
                    &format!(
                        "! #{number} to {} was never stored: {}",
                        to(receiver),
                        clean(text)
                    ),
                )
                .into(),
            Notice::Welcome { nick, online, more } => {
                let names = online.iter().map(|n| clean(n).into_owned()).collect();
                self.system(&format!(
                    "welcome, {} — {} online: {}",
                    clean(nick),
                    online.len() + *more as usize,
                    enumerate_all(names, *more)
                ))
            }
            Notice::AccountCreated { nick } => self.system(&format!(
                "account {} created: log in with the same password next time",
                clean(nick)
            )),
            Notice::CaughtUp { count } => self.system(&format!(
                "{} while you were away",
                plural(*count as usize, "message")
            )),
            Notice::Reconnected { count } => self.system(&format!(
                "reconnected; {} caught up",
                plural(*count as usize, "message")
            )),
            Notice::Joined { nicks, more } => {
                let names = nicks.iter().map(|n| clean(n).into_owned()).collect();
                self.system(&format!("{} joined", enumerate(names, *more)))
            }
            Notice::Left { departures, more } => {
                let text = match departures.as_slice() {
                    [one] if *more == 0 => {
                        format!("{} left ({})", clean(&one.nick), clean(&one.reason))
                    }
                    _ => {
                        let names = departures
                            .iter()
                            .map(|d| format!("{} ({})", clean(&d.nick), clean(&d.reason)))
                            .collect();
                        format!("{} left", enumerate(names, *more))
                    }
                };
                self.system(&text)
            }
            Notice::Kicked { nick, reason } => self.system(&format!(
                "{} was kicked by the server: {}",
                clean(nick),
                clean(reason)
            )),
            Notice::Announce { text, .. } => {
                format!("{} {}", self.paint(BOLD_YELLOW, "[server]"), clean(text))
            }
            Notice::Shutdown { reason } => {
                self.system(&format!("server is shutting down: {}", clean(reason)))
            }
            Notice::Online { users } => self.system(&who_is_online(users)),
            Notice::HistoryStart { query, count } => self.system(&history_title(query, *count)),
            Notice::Past {
                sender,
                receiver,
                text,
                me,
                ..
            } => {
                let who = |nick: &str| {
                    if nick == me {
                        "you".to_string()
                    } else {
                        clean(nick).into_owned()
                    }
                };
                let tag = if receiver == chat_common::EVERYONE {
                    format!("<{}>", who(sender))
                } else if receiver.starts_with(chat_common::protocol::GROUP_PREFIX) {
                    format!("[{}] {}:", clean(receiver), who(sender))
                } else {
                    format!("[{} → {}]", who(sender), who(receiver))
                };
                format!("{} {} {}", self.paint(DIM, "|"), tag, clean(text))
            }
            Notice::Error { reason } => self.paint(RED, &format!("! {}", clean(reason))).into(),
            Notice::File { text } => self.paint(DIM, &format!("* {}", clean(text))).into(),
            Notice::Lost { reason } => self
                .paint(RED, &format!("! connection lost: {}", clean(reason)))
                .into(),
            Notice::Reconnecting { reason } => self
                .paint(
                    RED,
                    &format!("! connection lost — reconnecting… ({})", clean(reason)),
                )
                .into(),
            Notice::RetryFailed { reason, retry_in } => self
                .paint(
                    RED,
                    &format!(
                        "! cannot reconnect yet: {}; trying again in {retry_in} s",
                        clean(reason)
                    ),
                )
                .into(),
            Notice::GaveUp { after } => self
                .paint(
                    RED,
                    &format!("! gave up reconnecting after {after} s without a connection"),
                )
                .into(),
        }
    }

    /// ` (while you were away)`, dimmed, for a message caught up.
    fn away(&self, away: bool) -> String {
        if away {
            format!(" {}", self.paint(DIM, "(while you were away)"))
        } else {
            String::new()
        }
    }

    /// A line about the chat rather than in it: `* …`.
    fn system(&self, text: &str) -> String {
        self.paint(YELLOW, &format!("* {text}")).into_owned()
    }
}

/// `alice`, `alice and bob`, `alice, bob and carol`, `alice, bob and 412 others`.
fn enumerate(mut names: Vec<String>, more: u32) -> String {
    match more {
        0 => {}
        1 => names.push("1 other".into()),
        n => names.push(format!("{n} others")),
    }
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// `alice, bob, carol`, or `alice, bob, carol and 9997 others`: a list
/// that is complete reads as one, without "and".
fn enumerate_all(names: Vec<String>, more: u32) -> String {
    if more == 0 {
        names.join(", ")
    } else {
        enumerate(names, more)
    }
}

/// `everyone` for `*`, else the nickname.
fn to(receiver: &str) -> Cow<'_, str> {
    if receiver == chat_common::EVERYONE {
        Cow::Borrowed("everyone")
    } else {
        clean(receiver)
    }
}

/// `public, 3 members, owner alice`.
fn describe(group: &GroupInfo) -> String {
    format!(
        "{}, {}, owner {}",
        if group.public { "public" } else { "private" },
        plural(group.size as usize, "member"),
        clean(&group.owner)
    )
}

/// `1 message`, `3 messages`.
fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The line above a history answer.
fn history_title(query: &Query, count: usize) -> String {
    let found = plural(count, "message");
    match query {
        Query::Public => format!("history: last {found} to everyone"),
        Query::With(nick) => format!("history with {}: last {found}", clean(nick)),
        Query::Search { words, from } => {
            let from = match from {
                Some(nick) => format!(" from {}", clean(nick)),
                None => String::new(),
            };
            format!("search \"{}\"{from}: {found}, newest first", clean(words))
        }
    }
}

/// `3 online: alice, bob, carol`.
fn who_is_online(users: &[String]) -> String {
    let names: Vec<_> = users.iter().map(|u| clean(u)).collect();
    format!("{} online: {}", users.len(), names.join(", "))
}

/// Whether `c` must be shown escaped rather than printed: controls, and
/// the invisible characters that can make a line look like something it is
/// not (bidirectional overrides that reorder what follows, zero-width
/// characters that make two names look alike, line separators) — the same
/// table that nicknames are checked against.
fn unsafe_to_print(c: char) -> bool {
    c.is_control() || chat_common::protocol::is_invisible(c)
}

/// Makes text from other people safe to print on one line: control
/// characters (newlines, escape sequences that could repaint the terminal)
/// and invisible characters ([`chat_common::protocol::is_invisible`]) are shown escaped
/// (`\u{202e}`) instead of being obeyed.
pub fn clean(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_to_print) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if unsafe_to_print(c) {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use chat_common::Departure;
    use chrono::TimeZone;

    fn departure(nick: &str, reason: &str) -> Departure {
        Departure {
            nick: nick.into(),
            reason: reason.into(),
        }
    }

    use super::*;

    fn noon() -> DateTime<Local> {
        Local.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
    }

    fn s(text: &str) -> String {
        text.to_string()
    }

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
                Notice::Online { users: three },
                "[12:00:00] * 3 online: alice, bob, carol",
            ),
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
            // Neighbours of the table stay as they are.
            (
                "\u{2027}\u{202F}\u{2065}\u{206A}",
                "\u{2027}\u{202F}\u{2065}\u{206A}",
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
}
