//! Turning a typed line into a [`Line`]: a [`Command`] for the network
//! thread, as it is, or something the user interface answers itself
//! ([`Local`]). Messages too long to send are refused here.

use chat_common::codec::{self, DEFAULT_MAX_FRAME};
use chat_common::protocol::{GROUP_PREFIX, MAX_CID};
use chat_common::Request;

use super::table::{help, Kind, Spec, COMMANDS, GROUP_SUBCOMMANDS, PUBLIC_FLAG};
use super::{group_tag, paths, slash, Command, GroupOp};

/// What a typed line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// For the network thread (leaving, the user interface does its own
    /// way: it waits for the end).
    Command(Command),
    Local(Local),
}

/// What a typed line asks of the user interface alone: nothing is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    /// The line was blank.
    Nothing,
    Help,
    /// A command typed without the arguments it needs.
    Usage(&'static Spec),
    /// `!word` that is not a command; never sent as a message, since a typo
    /// in a command name should not be broadcast to everyone.
    Unknown(String),
    /// A message whose request would be `bytes` long, over the server's
    /// frame limit: the server would answer `too_large` and close the
    /// connection, so it is refused here instead.
    TooLong {
        bytes: usize,
    },
    /// `!password`: the interactive client asks for the passwords, hidden;
    /// pipe mode cannot.
    ChangePassword,
    /// Something to tell the person instead of sending the line: a `/word`
    /// that maps onto nothing sent (a usage, a command that does not exist
    /// here), a path that cannot be used.
    Hint(String),
}

impl Local {
    /// What to tell the person; `None` for a blank line.
    pub fn text(&self) -> Option<String> {
        Some(match self {
            Local::Nothing => return None,
            Local::Help => help(),
            Local::Usage(spec) => format!("usage: {}", spec.usage()),
            Local::Unknown(word) => format!("unknown command {word} — type !help for the list"),
            Local::TooLong { bytes } => too_long_hint(*bytes),
            Local::Hint(hint) => hint.clone(),
            Local::ChangePassword => "!password needs a terminal, to ask for the passwords \
                without showing them: run chat-client interactively"
                .into(),
        })
    }
}

/// What to tell the person for [`Local::TooLong`].
fn too_long_hint(bytes: usize) -> String {
    format!(
        "not sent: the line is too long ({bytes} bytes as a request; \
         the server takes at most {DEFAULT_MAX_FRAME})"
    )
}

/// Reads one typed line, refusing a message too long to send.
pub fn parse(line: &str) -> Line {
    let parsed = parse_line(line);
    let Line::Command(Command::Say { receiver, text }) = &parsed else {
        return parsed;
    };
    // Measured encoded, since JSON escaping can make a line of control
    // characters six times longer; with the largest id and client message
    // id, so that neither tips it over.
    let bytes = codec::encode(&request(receiver, text)).len() - 1;
    if bytes > DEFAULT_MAX_FRAME {
        Line::Local(Local::TooLong { bytes })
    } else {
        parsed
    }
}

fn request(receiver: &str, text: &str) -> Request {
    Request::Message {
        id: u64::MAX,
        receiver: receiver.to_string(),
        text: text.to_string(),
        cid: Some("c".repeat(MAX_CID)),
    }
}

fn parse_line(line: &str) -> Line {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Line::Local(Local::Nothing);
    }
    if trimmed.starts_with('/') {
        return slash::parse(line, trimmed);
    }
    let (word, rest) = match trimmed.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim_start()),
        None => (trimmed, ""),
    };
    // `#name message` posts to a group.
    if word.len() > 1 && word.starts_with(GROUP_PREFIX) && !rest.trim().is_empty() {
        return Line::Command(Command::Say {
            receiver: word.to_string(),
            text: rest.to_string(),
        });
    }
    if !word.starts_with('!') && word != ".exit" {
        // Sent as typed: leading spaces may be part of ASCII art.
        let text = line.trim_end_matches(['\r', '\n']).to_string();
        return Line::Command(Command::public(text));
    }
    let Some(spec) = COMMANDS
        .iter()
        .find(|spec| spec.name == word || spec.aliases.contains(&word))
    else {
        return Line::Local(Local::Unknown(word.to_string()));
    };
    with_arguments(spec.kind, rest).unwrap_or(Line::Local(Local::Usage(spec)))
}

/// The command `kind` with the arguments typed after it (`rest`); `None`
/// if they are not what it takes.
fn with_arguments(kind: Kind, rest: &str) -> Option<Line> {
    let command = match kind {
        Kind::Help => return Some(Line::Local(Local::Help)),
        Kind::Private => {
            let (to, text) = rest
                .split_once(char::is_whitespace)
                .filter(|(_, text)| !text.trim().is_empty())?;
            Command::Say {
                receiver: to.to_string(),
                text: text.trim_start().to_string(),
            }
        }
        Kind::Online => Command::Online,
        Kind::Away => away(rest),
        Kind::History => history(rest)?,
        Kind::Search => search(rest)?,
        Kind::Group => group(rest)?,
        Kind::Send => {
            let (to, path) = rest
                .split_once(char::is_whitespace)
                .filter(|(_, path)| !path.trim().is_empty())?;
            match paths::expand(path.trim()) {
                Ok(path) => Command::SendFile {
                    to: to.to_string(),
                    path,
                },
                Err(hint) => return Some(Line::Local(Local::Hint(hint))),
            }
        }
        Kind::Accept => {
            let (id, dir) = match rest.split_once(char::is_whitespace) {
                Some((id, dir)) => match paths::expand(dir.trim()) {
                    Ok(dir) => (id, Some(dir)),
                    Err(hint) => return Some(Line::Local(Local::Hint(hint))),
                },
                None => (rest, None),
            };
            Command::Accept {
                file: id.parse().ok()?,
                dir,
            }
        }
        Kind::Reject => Command::Reject {
            file: rest.trim().parse().ok()?,
        },
        Kind::Password if rest.is_empty() => return Some(Line::Local(Local::ChangePassword)),
        // A password typed on the line would be in the history.
        Kind::Password => return None,
        Kind::Bye => Command::Leave,
    };
    Some(Line::Command(command))
}

/// `!away [text]` (and `/away`): no text is back.
pub(super) fn away(rest: &str) -> Command {
    let text = rest.trim();
    Command::Away {
        text: (!text.is_empty()).then(|| text.to_string()),
    }
}

/// `!group <subcommand> …` or `!group <name> <message>`.
fn group(rest: &str) -> Option<Command> {
    let (first, tail) = match rest.split_once(char::is_whitespace) {
        Some((first, tail)) => (first, tail.trim_start()),
        None => (rest, ""),
    };
    let words: Vec<String> = tail.split_whitespace().map(str::to_string).collect();
    let op = match (first, words.as_slice()) {
        ("", _) => return None,
        ("list", []) => GroupOp::List,
        ("create", [name, rest @ ..]) => GroupOp::Create {
            name: name.clone(),
            public: rest.iter().any(|w| w == PUBLIC_FLAG),
            members: rest.iter().filter(|w| *w != PUBLIC_FLAG).cloned().collect(),
        },
        ("add", [name, members @ ..]) if !members.is_empty() => GroupOp::Add {
            name: name.clone(),
            members: members.to_vec(),
        },
        ("remove", [name, members @ ..]) if !members.is_empty() => GroupOp::Remove {
            name: name.clone(),
            members: members.to_vec(),
        },
        ("join", [name]) => GroupOp::Join { name: name.clone() },
        ("leave", [name]) => GroupOp::Leave { name: name.clone() },
        ("members", [name]) => GroupOp::Members { name: name.clone() },
        (sub, _) if GROUP_SUBCOMMANDS.contains(&sub) => return None,
        (name, _) if !tail.trim().is_empty() => {
            return Some(Command::Say {
                receiver: group_tag(name),
                text: tail.to_string(),
            })
        }
        _ => return None,
    };
    Some(Command::Group(op))
}

/// `[nick] [N]`: a number alone is a count (so the conversation with a
/// nickname made of digits is `!history 42 20`).
fn history(rest: &str) -> Option<Command> {
    let words: Vec<&str> = rest.split_whitespace().collect();
    // Over the server's cap (MAX_HISTORY) is asked all the same: the
    // network thread asks for the cap and says so.
    let count = |word: &str| word.parse::<u32>().ok().filter(|n| *n >= 1);
    let (with, limit) = match words.as_slice() {
        [] => (None, None),
        [n] if n.bytes().all(|b| b.is_ascii_digit()) => (None, Some(count(n)?)),
        [nick] => (Some(nick.to_string()), None),
        [nick, n] => (Some(nick.to_string()), Some(count(n)?)),
        _ => return None,
    };
    Some(Command::History { with, limit })
}

/// `<words> [from:nick]`: the `from:` word may stand anywhere, once.
fn search(rest: &str) -> Option<Command> {
    let mut from = None;
    let mut words = Vec::new();
    for word in rest.split_whitespace() {
        match word.strip_prefix("from:") {
            Some(nick) if from.is_none() && !nick.is_empty() => from = Some(nick.to_string()),
            Some(_) => return None,
            None => words.push(word),
        }
    }
    if words.is_empty() {
        return None;
    }
    Some(Command::Search {
        words: words.join(" "),
        from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::spec;

    fn public(text: String) -> Line {
        Line::Command(Command::public(text))
    }

    fn private(to: &str, text: &str) -> Line {
        Line::Command(Command::Say {
            receiver: to.into(),
            text: text.into(),
        })
    }

    fn hist(with: Option<&str>, limit: Option<u32>) -> Line {
        Line::Command(Command::History {
            with: with.map(Into::into),
            limit,
        })
    }

    fn find(words: &str, from: Option<&str>) -> Line {
        Line::Command(Command::Search {
            words: words.into(),
            from: from.map(Into::into),
        })
    }

    fn usage(kind: Kind) -> Line {
        Line::Local(Local::Usage(spec(kind)))
    }

    /// A table of typed lines and what each asks for: long, but one row
    /// per case.
    #[test]
    fn parses_lines() {
        let cases: Vec<(&str, Line)> = vec![
            ("", Line::Local(Local::Nothing)),
            ("   \t", Line::Local(Local::Nothing)),
            ("hello", public("hello".into())),
            ("  indented  ", public("  indented  ".into())),
            ("hello!", public("hello!".into())),
            ("a !private b", public("a !private b".into())),
            ("!private bob hi", private("bob", "hi")),
            ("!private  bob   hi  there", private("bob", "hi  there")),
            ("!private bob", usage(Kind::Private)),
            ("!private bob   ", usage(Kind::Private)),
            ("!private", usage(Kind::Private)),
            ("!online", Line::Command(Command::Online)),
            (
                "!away  back at 2",
                Line::Command(Command::Away {
                    text: Some("back at 2".into()),
                }),
            ),
            ("!away", Line::Command(Command::Away { text: None })),
            ("!away   ", Line::Command(Command::Away { text: None })),
            ("  !online  ", Line::Command(Command::Online)),
            ("!history", hist(None, None)),
            ("!history 50", hist(None, Some(50))),
            ("!history bob", hist(Some("bob"), None)),
            ("!history  bob  7 ", hist(Some("bob"), Some(7))),
            ("!history 42 20", hist(Some("42"), Some(20))),
            ("!history 0", usage(Kind::History)),
            ("!history 501", hist(None, Some(501))),
            ("!history bob 9999", hist(Some("bob"), Some(9999))),
            ("!history 99999999999", usage(Kind::History)),
            ("!history bob x", usage(Kind::History)),
            ("!history bob 1 2", usage(Kind::History)),
            ("!search exam", find("exam", None)),
            ("!search  exam   date ", find("exam date", None)),
            ("!search exam from:prof", find("exam", Some("prof"))),
            (
                "!search from:prof exam date",
                find("exam date", Some("prof")),
            ),
            ("!search", usage(Kind::Search)),
            ("!search from:prof", usage(Kind::Search)),
            ("!search a from:", usage(Kind::Search)),
            ("!search a from:x from:y", usage(Kind::Search)),
            ("!help", Line::Local(Local::Help)),
            ("!bye", Line::Command(Command::Leave)),
            (".exit", Line::Command(Command::Leave)),
            (".exits", public(".exits".into())),
            ("!group g hi there", private("#g", "hi there")),
            ("!group #g hi", private("#g", "hi")),
            (
                "#class when is the exam?",
                private("#class", "when is the exam?"),
            ),
            ("#class", public("#class".into())),
            ("# hi", public("# hi".into())),
            ("!group list", Line::Command(Command::Group(GroupOp::List))),
            (
                "!group create class --public bob carol",
                Line::Command(Command::Group(GroupOp::Create {
                    name: "class".into(),
                    members: vec!["bob".into(), "carol".into()],
                    public: true,
                })),
            ),
            (
                "!group create #class",
                Line::Command(Command::Group(GroupOp::Create {
                    name: "#class".into(),
                    members: vec![],
                    public: false,
                })),
            ),
            (
                "!group add class bob",
                Line::Command(Command::Group(GroupOp::Add {
                    name: "class".into(),
                    members: vec!["bob".into()],
                })),
            ),
            (
                "!group remove class bob",
                Line::Command(Command::Group(GroupOp::Remove {
                    name: "class".into(),
                    members: vec!["bob".into()],
                })),
            ),
            (
                "!group join class",
                Line::Command(Command::Group(GroupOp::Join {
                    name: "class".into(),
                })),
            ),
            (
                "!group leave class",
                Line::Command(Command::Group(GroupOp::Leave {
                    name: "class".into(),
                })),
            ),
            (
                "!group members class",
                Line::Command(Command::Group(GroupOp::Members {
                    name: "class".into(),
                })),
            ),
            ("!group", usage(Kind::Group)),
            ("!group add class", usage(Kind::Group)),
            ("!group join", usage(Kind::Group)),
            ("!group class", usage(Kind::Group)),
            (
                "!send bob my notes.pdf",
                Line::Command(Command::SendFile {
                    to: "bob".into(),
                    path: "my notes.pdf".into(),
                }),
            ),
            ("!send bob", usage(Kind::Send)),
            (
                "!accept 3",
                Line::Command(Command::Accept { file: 3, dir: None }),
            ),
            (
                "!accept 3 /tmp/x",
                Line::Command(Command::Accept {
                    file: 3,
                    dir: Some("/tmp/x".into()),
                }),
            ),
            ("!accept x", usage(Kind::Accept)),
            ("!reject 4", Line::Command(Command::Reject { file: 4 })),
            ("!password", Line::Local(Local::ChangePassword)),
            ("!password hunter2", usage(Kind::Password)),
            ("!dance", Line::Local(Local::Unknown("!dance".into()))),
            (
                "!privat bob hi",
                Line::Local(Local::Unknown("!privat".into())),
            ),
            ("!", Line::Local(Local::Unknown("!".into()))),
            (
                "!PRIVATE bob hi",
                Line::Local(Local::Unknown("!PRIVATE".into())),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line), want, "{line:?}");
        }
    }

    #[test]
    fn a_message_too_long_to_send_is_refused() {
        let fits = "x".repeat(DEFAULT_MAX_FRAME - 200);
        assert_eq!(parse(&fits), public(fits.clone()));
        let long = "x".repeat(DEFAULT_MAX_FRAME);
        assert!(
            matches!(parse(&long), Line::Local(Local::TooLong { bytes }) if bytes > DEFAULT_MAX_FRAME)
        );
        let private = format!("!private bob {long}");
        assert!(matches!(
            parse(&private),
            Line::Local(Local::TooLong { .. })
        ));
        // Short as typed, but six times longer escaped in JSON.
        let controls = "\u{1}".repeat(DEFAULT_MAX_FRAME / 5);
        assert!(matches!(
            parse(&controls),
            Line::Local(Local::TooLong { .. })
        ));
        // Commands are not messages.
        assert_eq!(
            parse(&format!("!dance {long}")),
            Line::Local(Local::Unknown("!dance".into()))
        );
        assert!(too_long_hint(70_000).contains("70000 bytes"));
    }
}
