//! irssi and WeeChat habits: a line starting with `/` is never sent as a
//! message. The common IRC commands map onto ours (`/msg bob hi` is
//! `!private bob hi`); any other `/word` gets a hint; `//text` sends
//! `/text`.
//!
//! `/me waves` is sent as the text `/me waves`: a client that does not
//! know the convention shows `<alice> /me waves`, which still reads
//! right, and ours draws it `* alice waves` (see `render`).

use super::parse::{Line, Local};
use super::table::{spec, Kind};
use super::{group_tag, Command, GroupOp};

/// The prefix of an action's text (`/me waves`), as sent and stored.
pub const ACTION: &str = "/me ";

/// What an IRC command is here, for the hint that lists them.
pub const ALIASES: &str = "/msg and /query <nick> <message>, /me <action>, \
    /join and /part <#group>, /names, /quit, /help";

/// Reads `trimmed` (a line starting with `/`; `line` as typed).
pub fn parse(line: &str, trimmed: &str) -> Line {
    // `//text`: a message that starts with one `/`, sent as typed after
    // the first slash (leading spaces kept, as for any message).
    if trimmed.starts_with("//") {
        let text = line.trim_end_matches(['\r', '\n']).replacen("//", "/", 1);
        return Line::Command(Command::public(text));
    }
    let (word, rest) = match trimmed.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim_start()),
        None => (trimmed, ""),
    };
    let usage = |usage: &'static str| Line::Local(Local::Hint(usage.to_string()));
    let command = match word.to_ascii_lowercase().as_str() {
        "/msg" | "/query" | "/m" => {
            match rest
                .split_once(char::is_whitespace)
                .filter(|(_, text)| !text.trim().is_empty())
            {
                Some((to, text)) => Command::Say {
                    receiver: to.to_string(),
                    text: text.trim_start().to_string(),
                },
                None => return usage("usage: /msg <nick> <message> (or !private)"),
            }
        }
        "/me" if rest.trim().is_empty() => return usage("usage: /me <action>"),
        "/me" => Command::public(format!("{ACTION}{}", rest.trim_end())),
        "/join" | "/j" => match one(rest) {
            Some(name) => Command::Group(GroupOp::Join {
                name: group_tag(name),
            }),
            None => return usage("usage: /join <#group> (or !group join)"),
        },
        "/part" | "/leave" => match one(rest) {
            Some(name) => Command::Group(GroupOp::Leave {
                name: group_tag(name),
            }),
            None => return usage("usage: /part <#group> (or !group leave)"),
        },
        "/names" | "/who" => Command::Online,
        "/quit" | "/exit" | "/bye" => Command::Leave,
        "/help" => return Line::Local(Local::Help),
        "/nick" => {
            return usage(
                "nicknames cannot be changed: each is an account; \
                 to be someone else, leave and log in with --nick",
            )
        }
        "/away" => super::parse::away(rest),
        _ => {
            return Line::Local(Local::Hint(format!(
                "{word} is not a command here: commands start with ! ({} lists them; \
                 also {ALIASES}); to send a line starting with /, type //",
                spec(Kind::Help).name
            )))
        }
    };
    Line::Command(command)
}

/// The only word of `rest`, if it is one word.
fn one(rest: &str) -> Option<&str> {
    let mut words = rest.split_whitespace();
    let word = words.next()?;
    words.next().is_none().then_some(word)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::parse as parse_line;

    fn say(to: &str, text: &str) -> Line {
        Line::Command(Command::Say {
            receiver: to.into(),
            text: text.into(),
        })
    }

    /// What each IRC habit becomes; nothing starting with `/` is a
    /// message unless typed with `//`.
    #[test]
    fn irc_commands_map_onto_ours() {
        let cases: Vec<(&str, Line)> = vec![
            ("/msg bob hi there", say("bob", "hi there")),
            ("/MSG  bob   hi", say("bob", "hi")),
            ("/query bob hi", say("bob", "hi")),
            ("/me waves", say("*", "/me waves")),
            ("  /me waves  ", say("*", "/me waves")),
            (
                "/join #test",
                Line::Command(Command::Group(GroupOp::Join {
                    name: "#test".into(),
                })),
            ),
            (
                "/join test",
                Line::Command(Command::Group(GroupOp::Join {
                    name: "#test".into(),
                })),
            ),
            (
                "/part #test",
                Line::Command(Command::Group(GroupOp::Leave {
                    name: "#test".into(),
                })),
            ),
            ("/names", Line::Command(Command::Online)),
            (
                "/away at lunch ",
                Line::Command(Command::Away {
                    text: Some("at lunch".into()),
                }),
            ),
            ("/away", Line::Command(Command::Away { text: None })),
            ("/quit", Line::Command(Command::Leave)),
            ("/quit see you", Line::Command(Command::Leave)),
            ("/help", Line::Local(Local::Help)),
            ("//etc is a path", say("*", "/etc is a path")),
            ("  //x", say("*", "  /x")),
            ("//", say("*", "/")),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line), want, "{line:?}");
        }
    }

    /// Usages and hints answer locally: none of these is sent.
    #[test]
    fn other_slash_lines_get_a_hint() {
        let cases = [
            ("/msg bob", "usage: /msg <nick> <message>"),
            ("/msg", "usage: /msg <nick> <message>"),
            ("/me", "usage: /me <action>"),
            ("/join", "usage: /join <#group>"),
            ("/join a b", "usage: /join <#group>"),
            ("/part", "usage: /part <#group>"),
            ("/nick alice2", "nicknames cannot be changed"),
            (
                "/list",
                "/list is not a command here: commands start with !",
            ),
            ("/", "/ is not a command here"),
            ("/etc/passwd", "to send a line starting with /, type //"),
        ];
        for (line, hint) in cases {
            let Line::Local(local) = parse_line(line) else {
                panic!("{line:?} would be sent");
            };
            let text = local.text().unwrap();
            assert!(text.contains(hint), "{line:?}: {text}");
        }
    }
}
