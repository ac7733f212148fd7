//! The one table of commands a person can type, and turning a typed line into
//! an [`Action`]; help, completion and parsing all read the same table.

use chat_common::codec::{self, DEFAULT_MAX_FRAME};
use chat_common::protocol::{GROUP_PREFIX, MAX_CID, MAX_HISTORY};
use chat_common::{Request, EVERYONE};

/// What a command does, so the table and the parser cannot drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Private,
    Online,
    History,
    Search,
    Group,
    Send,
    Accept,
    Reject,
    Help,
    Bye,
}

/// One row of the command table.
#[derive(Debug, PartialEq, Eq)]
pub struct Spec {
    /// What is typed, `!` included.
    pub name: &'static str,
    /// The arguments, for the usage line; empty when there are none.
    pub args: &'static str,
    /// One line for `!help`.
    pub help: &'static str,
    /// Other spellings that do the same (not completed).
    pub aliases: &'static [&'static str],
    pub kind: Kind,
}

impl Spec {
    /// `!private <nick> <message>`.
    pub fn usage(&self) -> String {
        if self.args.is_empty() {
            self.name.to_string()
        } else {
            format!("{} {}", self.name, self.args)
        }
    }
}

/// Every command, in the order `!help` lists them.
pub const COMMANDS: &[Spec] = &[
    Spec {
        name: "!private",
        args: "<nick> <message>",
        help: "send a message to one person only",
        aliases: &[],
        kind: Kind::Private,
    },
    Spec {
        name: "!online",
        args: "",
        help: "list who is online",
        aliases: &[],
        kind: Kind::Online,
    },
    Spec {
        name: "!history",
        args: "[nick] [N]",
        help: "the last N messages (20) to everyone, or with nick",
        aliases: &[],
        kind: Kind::History,
    },
    Spec {
        name: "!search",
        args: "<words> [from:nick]",
        help: "search everything you may read, newest first",
        aliases: &[],
        kind: Kind::Search,
    },
    Spec {
        name: "!group",
        args: "<subcommand|group> …",
        help: "groups: create <name> [--public] [nick…], add <name> <nick…>, remove <name> <nick…>, join|leave|members <name>, list; or <name> <message> (also #name message)",
        aliases: &[],
        kind: Kind::Group,
    },
    Spec {
        name: "!send",
        args: "<nick> <file>",
        help: "offer a file to one person (it waits on the server until answered)",
        aliases: &[],
        kind: Kind::Send,
    },
    Spec {
        name: "!accept",
        args: "<id> [dir]",
        help: "download an offered file (into the downloads directory, or dir)",
        aliases: &[],
        kind: Kind::Accept,
    },
    Spec {
        name: "!reject",
        args: "<id>",
        help: "refuse an offered file; the sender is told",
        aliases: &[],
        kind: Kind::Reject,
    },
    Spec {
        name: "!help",
        args: "",
        help: "show this list",
        aliases: &[],
        kind: Kind::Help,
    },
    Spec {
        name: "!bye",
        args: "",
        help: "leave the chat (also .exit, Ctrl-D or Ctrl-C)",
        aliases: &[".exit"],
        kind: Kind::Bye,
    },
];

/// The row for `kind`.
pub fn spec(kind: Kind) -> &'static Spec {
    COMMANDS
        .iter()
        .find(|spec| spec.kind == kind)
        .expect("every kind has a row")
}

/// What a typed line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing: the line was blank.
    Nothing,
    /// A message to everyone.
    Public(String),
    /// A message to one person, or to a group (`to` is `#name`).
    Private {
        to: String,
        text: String,
    },
    Online,
    /// A `!group` subcommand.
    Group(GroupOp),
    /// Stored messages: public, or the conversation `with` someone;
    /// `limit` as typed (the server's default when `None`).
    History {
        with: Option<String>,
        limit: Option<u32>,
    },
    /// A full-text search, optionally only of what `from` wrote.
    Search {
        words: String,
        from: Option<String>,
    },
    /// Offer the file at `path` to `to`.
    Send {
        to: String,
        path: std::path::PathBuf,
    },
    /// Download offer `file`, into `dir` or the downloads directory.
    Accept {
        file: u64,
        dir: Option<std::path::PathBuf>,
    },
    Reject {
        file: u64,
    },
    Help,
    Leave,
    /// A command that exists but does nothing yet.
    Unavailable(&'static Spec),
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
}

/// What `!group` does, besides posting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupOp {
    Create {
        name: String,
        members: Vec<String>,
        public: bool,
    },
    Add {
        name: String,
        members: Vec<String>,
    },
    Remove {
        name: String,
        members: Vec<String>,
    },
    Join {
        name: String,
    },
    Leave {
        name: String,
    },
    List,
    Members {
        name: String,
    },
}

/// The words after `!group` that are subcommands (any other word names the
/// group to post to), in the order completion offers them.
pub const GROUP_SUBCOMMANDS: &[&str] = &[
    "create", "add", "remove", "join", "leave", "list", "members",
];

/// The option of `!group create` that makes a group anyone may join.
pub const PUBLIC_FLAG: &str = "--public";

impl GroupOp {
    /// The request for this operation, numbered `id`.
    pub fn request(&self, id: u64) -> Request {
        match self.clone() {
            GroupOp::Create {
                name,
                members,
                public,
            } => Request::GroupCreate {
                id,
                name,
                members,
                public,
            },
            GroupOp::Add { name, members } => Request::GroupAdd { id, name, members },
            GroupOp::Remove { name, members } => Request::GroupRemove { id, name, members },
            GroupOp::Join { name } => Request::GroupJoin { id, name },
            GroupOp::Leave { name } => Request::GroupLeave { id, name },
            GroupOp::List => Request::GroupList { id },
            GroupOp::Members { name } => Request::GroupMembers { id, name },
        }
    }
}

/// `#name`, whether typed with its `#` or not.
pub fn group_tag(name: &str) -> String {
    if name.starts_with(GROUP_PREFIX) {
        name.to_string()
    } else {
        format!("{GROUP_PREFIX}{name}")
    }
}

/// What to tell the person for [`Action::TooLong`].
pub fn too_long_hint(bytes: usize) -> String {
    format!(
        "not sent: the line is too long ({bytes} bytes as a request; \
         the server takes at most {DEFAULT_MAX_FRAME})"
    )
}

/// Reads one typed line, refusing a message too long to send.
pub fn parse(line: &str) -> Action {
    let action = parse_line(line);
    let request = match &action {
        Action::Public(text) => request(EVERYONE, text),
        Action::Private { to, text } => request(to, text),
        _ => return action,
    };
    // Measured encoded, since JSON escaping can make a line of control
    // characters six times longer; with the largest id and client message
    // id, so that neither tips it over.
    let bytes = codec::encode(&request).len() - 1;
    if bytes > DEFAULT_MAX_FRAME {
        Action::TooLong { bytes }
    } else {
        action
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

fn parse_line(line: &str) -> Action {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Action::Nothing;
    }
    let (word, rest) = match trimmed.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim_start()),
        None => (trimmed, ""),
    };
    // `#name message` posts to a group.
    if word.len() > 1 && word.starts_with(GROUP_PREFIX) && !rest.trim().is_empty() {
        return Action::Private {
            to: word.to_string(),
            text: rest.to_string(),
        };
    }
    if !word.starts_with('!') && word != ".exit" {
        // Sent as typed: leading spaces may be part of ASCII art.
        return Action::Public(line.trim_end_matches(['\r', '\n']).to_string());
    }
    let Some(spec) = COMMANDS
        .iter()
        .find(|spec| spec.name == word || spec.aliases.contains(&word))
    else {
        return Action::Unknown(word.to_string());
    };
    match spec.kind {
        Kind::Private => match rest.split_once(char::is_whitespace) {
            Some((to, text)) if !text.trim().is_empty() => Action::Private {
                to: to.to_string(),
                text: text.trim_start().to_string(),
            },
            _ => Action::Usage(spec),
        },
        Kind::Online => Action::Online,
        Kind::History => history(rest).unwrap_or(Action::Usage(spec)),
        Kind::Search => search(rest).unwrap_or(Action::Usage(spec)),
        Kind::Group => group(rest).unwrap_or(Action::Usage(spec)),
        Kind::Send => match rest.split_once(char::is_whitespace) {
            Some((to, path)) if !path.trim().is_empty() => Action::Send {
                to: to.to_string(),
                path: path.trim().into(),
            },
            _ => Action::Usage(spec),
        },
        Kind::Accept => {
            let (id, dir) = match rest.split_once(char::is_whitespace) {
                Some((id, dir)) => (id, Some(dir.trim().into())),
                None => (rest, None),
            };
            match id.parse() {
                Ok(file) => Action::Accept { file, dir },
                Err(_) => Action::Usage(spec),
            }
        }
        Kind::Reject => match rest.trim().parse() {
            Ok(file) => Action::Reject { file },
            Err(_) => Action::Usage(spec),
        },
        Kind::Help => Action::Help,
        Kind::Bye => Action::Leave,
    }
}

/// `!group <subcommand> …` or `!group <name> <message>`.
fn group(rest: &str) -> Option<Action> {
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
            return Some(Action::Private {
                to: group_tag(name),
                text: tail.to_string(),
            })
        }
        _ => return None,
    };
    Some(Action::Group(op))
}

/// `[nick] [N]`: a number alone is a count (so the conversation with a
/// nickname made of digits is `!history 42 20`).
fn history(rest: &str) -> Option<Action> {
    let words: Vec<&str> = rest.split_whitespace().collect();
    let count = |word: &str| {
        word.parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_HISTORY).contains(n))
    };
    let (with, limit) = match words.as_slice() {
        [] => (None, None),
        [n] if n.bytes().all(|b| b.is_ascii_digit()) => (None, Some(count(n)?)),
        [nick] => (Some(nick.to_string()), None),
        [nick, n] => (Some(nick.to_string()), Some(count(n)?)),
        _ => return None,
    };
    Some(Action::History { with, limit })
}

/// `<words> [from:nick]`: the `from:` word may stand anywhere, once.
fn search(rest: &str) -> Option<Action> {
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
    Some(Action::Search {
        words: words.join(" "),
        from,
    })
}

/// The text `!help` prints, one command per line.
pub fn help() -> String {
    let width = COMMANDS
        .iter()
        .map(|spec| spec.usage().chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::from("type a line to send it to everyone, or a command:\n");
    for spec in COMMANDS {
        out.push_str(&format!("  {:width$}  {}\n", spec.usage(), spec.help));
    }
    out.pop();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn private(to: &str, text: &str) -> Action {
        Action::Private {
            to: to.into(),
            text: text.into(),
        }
    }

    fn hist(with: Option<&str>, limit: Option<u32>) -> Action {
        Action::History {
            with: with.map(Into::into),
            limit,
        }
    }

    fn find(words: &str, from: Option<&str>) -> Action {
        Action::Search {
            words: words.into(),
            from: from.map(Into::into),
        }
    }

    #[test]
    fn parses_lines() {
        let cases: Vec<(&str, Action)> = vec![
            ("", Action::Nothing),
            ("   \t", Action::Nothing),
            ("hello", Action::Public("hello".into())),
            ("  indented  ", Action::Public("  indented  ".into())),
            ("hello!", Action::Public("hello!".into())),
            ("a !private b", Action::Public("a !private b".into())),
            ("!private bob hi", private("bob", "hi")),
            ("!private  bob   hi  there", private("bob", "hi  there")),
            ("!private bob", Action::Usage(spec(Kind::Private))),
            ("!private bob   ", Action::Usage(spec(Kind::Private))),
            ("!private", Action::Usage(spec(Kind::Private))),
            ("!online", Action::Online),
            ("  !online  ", Action::Online),
            ("!history", hist(None, None)),
            ("!history 50", hist(None, Some(50))),
            ("!history bob", hist(Some("bob"), None)),
            ("!history  bob  7 ", hist(Some("bob"), Some(7))),
            ("!history 42 20", hist(Some("42"), Some(20))),
            ("!history 0", Action::Usage(spec(Kind::History))),
            ("!history 501", Action::Usage(spec(Kind::History))),
            ("!history bob x", Action::Usage(spec(Kind::History))),
            ("!history bob 1 2", Action::Usage(spec(Kind::History))),
            ("!search exam", find("exam", None)),
            ("!search  exam   date ", find("exam date", None)),
            ("!search exam from:prof", find("exam", Some("prof"))),
            (
                "!search from:prof exam date",
                find("exam date", Some("prof")),
            ),
            ("!search", Action::Usage(spec(Kind::Search))),
            ("!search from:prof", Action::Usage(spec(Kind::Search))),
            ("!search a from:", Action::Usage(spec(Kind::Search))),
            ("!search a from:x from:y", Action::Usage(spec(Kind::Search))),
            ("!help", Action::Help),
            ("!bye", Action::Leave),
            (".exit", Action::Leave),
            (".exits", Action::Public(".exits".into())),
            ("!group g hi there", private("#g", "hi there")),
            ("!group #g hi", private("#g", "hi")),
            (
                "#class when is the exam?",
                private("#class", "when is the exam?"),
            ),
            ("#class", Action::Public("#class".into())),
            ("# hi", Action::Public("# hi".into())),
            ("!group list", Action::Group(GroupOp::List)),
            (
                "!group create class --public bob carol",
                Action::Group(GroupOp::Create {
                    name: "class".into(),
                    members: vec!["bob".into(), "carol".into()],
                    public: true,
                }),
            ),
            (
                "!group create #class",
                Action::Group(GroupOp::Create {
                    name: "#class".into(),
                    members: vec![],
                    public: false,
                }),
            ),
            (
                "!group add class bob",
                Action::Group(GroupOp::Add {
                    name: "class".into(),
                    members: vec!["bob".into()],
                }),
            ),
            (
                "!group remove class bob",
                Action::Group(GroupOp::Remove {
                    name: "class".into(),
                    members: vec!["bob".into()],
                }),
            ),
            (
                "!group join class",
                Action::Group(GroupOp::Join {
                    name: "class".into(),
                }),
            ),
            (
                "!group leave class",
                Action::Group(GroupOp::Leave {
                    name: "class".into(),
                }),
            ),
            (
                "!group members class",
                Action::Group(GroupOp::Members {
                    name: "class".into(),
                }),
            ),
            ("!group", Action::Usage(spec(Kind::Group))),
            ("!group add class", Action::Usage(spec(Kind::Group))),
            ("!group join", Action::Usage(spec(Kind::Group))),
            ("!group class", Action::Usage(spec(Kind::Group))),
            (
                "!send bob my notes.pdf",
                Action::Send {
                    to: "bob".into(),
                    path: "my notes.pdf".into(),
                },
            ),
            ("!send bob", Action::Usage(spec(Kind::Send))),
            ("!accept 3", Action::Accept { file: 3, dir: None }),
            (
                "!accept 3 /tmp/x",
                Action::Accept {
                    file: 3,
                    dir: Some("/tmp/x".into()),
                },
            ),
            ("!accept x", Action::Usage(spec(Kind::Accept))),
            ("!reject 4", Action::Reject { file: 4 }),
            ("!dance", Action::Unknown("!dance".into())),
            ("!privat bob hi", Action::Unknown("!privat".into())),
            ("!", Action::Unknown("!".into())),
            ("!PRIVATE bob hi", Action::Unknown("!PRIVATE".into())),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line), want, "{line:?}");
        }
    }

    #[test]
    fn a_message_too_long_to_send_is_refused() {
        let fits = "x".repeat(DEFAULT_MAX_FRAME - 200);
        assert_eq!(parse(&fits), Action::Public(fits.clone()));
        let long = "x".repeat(DEFAULT_MAX_FRAME);
        assert!(matches!(parse(&long), Action::TooLong { bytes } if bytes > DEFAULT_MAX_FRAME));
        let private = format!("!private bob {long}");
        assert!(matches!(parse(&private), Action::TooLong { .. }));
        // Short as typed, but six times longer escaped in JSON.
        let controls = "\u{1}".repeat(DEFAULT_MAX_FRAME / 5);
        assert!(matches!(parse(&controls), Action::TooLong { .. }));
        // Commands are not messages.
        assert_eq!(
            parse(&format!("!dance {long}")),
            Action::Unknown("!dance".into())
        );
        assert!(too_long_hint(70_000).contains("70000 bytes"));
    }

    #[test]
    fn every_kind_has_one_row() {
        for kind in [
            Kind::Private,
            Kind::Online,
            Kind::History,
            Kind::Search,
            Kind::Group,
            Kind::Send,
            Kind::Accept,
            Kind::Reject,
            Kind::Help,
            Kind::Bye,
        ] {
            assert_eq!(COMMANDS.iter().filter(|s| s.kind == kind).count(), 1);
        }
    }

    #[test]
    fn help_lists_every_command() {
        let help = help();
        for spec in COMMANDS {
            assert!(help.contains(&spec.usage()), "{help}");
        }
        assert!(help.contains("  !private <nick> <message>"), "{help}");
        assert!(help.contains("  !search <words> [from:nick]"), "{help}");
    }
}
