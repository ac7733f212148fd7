//! The one table of commands a person can type, and turning a typed line into
//! an [`Action`]; help, completion and parsing all read the same table.

/// What a command does, so the table and the parser cannot drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Private,
    Online,
    Group,
    Send,
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
        name: "!group",
        args: "<group> <message>",
        help: "send a message to a group (not available yet)",
        aliases: &[],
        kind: Kind::Group,
    },
    Spec {
        name: "!send",
        args: "<nick> <file>",
        help: "send a file to one person (not available yet)",
        aliases: &[],
        kind: Kind::Send,
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
    /// A message to one person.
    Private {
        to: String,
        text: String,
    },
    Online,
    Help,
    Leave,
    /// A command that exists but does nothing yet.
    Unavailable(&'static Spec),
    /// A command typed without the arguments it needs.
    Usage(&'static Spec),
    /// `!word` that is not a command; never sent as a message, since a typo
    /// in a command name should not be broadcast to everyone.
    Unknown(String),
}

/// Reads one typed line.
pub fn parse(line: &str) -> Action {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Action::Nothing;
    }
    let (word, rest) = match trimmed.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim_start()),
        None => (trimmed, ""),
    };
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
        Kind::Group | Kind::Send => Action::Unavailable(spec),
        Kind::Help => Action::Help,
        Kind::Bye => Action::Leave,
    }
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
            ("!help", Action::Help),
            ("!bye", Action::Leave),
            (".exit", Action::Leave),
            (".exits", Action::Public(".exits".into())),
            ("!group g hi", Action::Unavailable(spec(Kind::Group))),
            ("!send bob f", Action::Unavailable(spec(Kind::Send))),
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
    fn every_kind_has_one_row() {
        for kind in [
            Kind::Private,
            Kind::Online,
            Kind::Group,
            Kind::Send,
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
        assert!(help.contains("  !private <nick> <message>  send a message"));
    }
}
