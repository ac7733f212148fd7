//! The one table of commands a person can type: `!help` lists it, the
//! completer offers it, the parser reads lines against it.

/// What a command does, so the table and the parser cannot drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Private,
    Online,
    Away,
    History,
    Search,
    Group,
    Send,
    Accept,
    Reject,
    Password,
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
        name: "!away",
        args: "[text]",
        help: "say you are away, and why (others see it in !online); alone: back",
        aliases: &[],
        kind: Kind::Away,
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
        help: "search everything you may read, newest first: every word must match; a word ending in * matches as a prefix (exa* finds exam, example)",
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
        name: "!password",
        args: "",
        help: "change your password (asked for, hidden: never type it on the line)",
        aliases: &[],
        kind: Kind::Password,
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

/// The words after `!group` that are subcommands (any other word names the
/// group to post to), in the order completion offers them.
pub const GROUP_SUBCOMMANDS: &[&str] = &[
    "create", "add", "remove", "join", "leave", "list", "members",
];

/// The option of `!group create` that makes a group anyone may join.
pub const PUBLIC_FLAG: &str = "--public";

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
    out.push_str(&format!(
        "irssi habits work too: {}; a line starting with / is never sent, \
         type //text to send /text",
        super::slash::ALIASES
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_row() {
        for kind in [
            Kind::Private,
            Kind::Online,
            Kind::Away,
            Kind::History,
            Kind::Search,
            Kind::Group,
            Kind::Send,
            Kind::Accept,
            Kind::Reject,
            Kind::Password,
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
        assert!(
            help.contains("a word ending in * matches as a prefix (exa*"),
            "{help}"
        );
    }
}
