//! Tab completion for the line editor: command names from the command table
//! at the start of a line, and nicknames (online, or written with) where a
//! command wants one: `!private`, `!send` and `!history` take one first,
//! `!search` after `from:`; after `!send <nick> `, file paths; after
//! `!accept` and `!reject`, the numbers of offers not yet answered.
//! `!group ` completes its subcommands, then group names (the groups we
//! are in, from the roster), then nicknames.
//! In the text of a message, a word completes to a nickname (`bob: ` at
//! the start of the line) or, starting with `#`, to a group.
//! A stale roster is refreshed on demand: the Tab that finds it stale offers
//! what it has and asks the network thread for the list; the next Tab sees it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::hint::Hinter;
use rustyline::{Context, Helper, Highlighter, Validator};

use crate::command::{Command, Kind, COMMANDS, GROUP_SUBCOMMANDS};
use crate::net::NetHandle;
use crate::roster::SharedRoster;

/// The command names that `typed` (`!` included) starts.
fn commands(typed: &str) -> Vec<Pair> {
    COMMANDS
        .iter()
        .filter(|spec| spec.name.starts_with(typed))
        .map(|spec| Pair {
            display: spec.name.to_string(),
            // A space, so the arguments can follow at once.
            replacement: if spec.args.is_empty() {
                spec.name.to_string()
            } else {
                format!("{} ", spec.name)
            },
        })
        .collect()
}

/// The rustyline helper: completion, and noting whether the line being
/// edited is empty (see [`ChatHelper::empty`]); no hints are shown, and
/// highlighting and validation are rustyline's defaults (none).
#[derive(Helper, Highlighter, Validator)]
pub struct ChatHelper {
    /// Whether the line being edited is empty, as of the last change
    /// (rustyline asks for a hint after each): the prompt may then be
    /// redrawn by restarting readline without losing anything typed.
    pub empty: Arc<AtomicBool>,
    roster: SharedRoster,
    /// Where to ask for a stale roster to be refreshed; `None` until the
    /// network thread runs (the editor exists before it).
    net: Option<NetHandle>,
    files: FilenameCompleter,
}

impl ChatHelper {
    pub fn new(roster: SharedRoster) -> Self {
        ChatHelper {
            empty: Arc::new(AtomicBool::new(true)),
            roster,
            net: None,
            files: FilenameCompleter::new(),
        }
    }

    pub fn set_net(&mut self, net: NetHandle) {
        self.net = Some(net);
    }

    /// Paths for the word before the cursor. `!send` takes the rest of the
    /// line as the path, as typed, so rustyline's shell-style escapes
    /// (`my\ notes.pdf`) are taken out again.
    /// Hidden entries (`.git/`) only when the name typed starts with `.`.
    fn paths(&self, before: &str) -> (usize, Vec<Pair>) {
        let (start, pairs) = self
            .files
            .complete_path(before, before.len())
            .unwrap_or_default();
        let name = before.rsplit(['/', ' ']).next().unwrap_or_default();
        let hidden = name.starts_with('.');
        let pairs = pairs
            .into_iter()
            .filter(|p| hidden || !p.display.starts_with('.'))
            .map(|p| Pair {
                display: p.display,
                replacement: unescape(&p.replacement),
            })
            .collect();
        (start, pairs)
    }

    /// Where the completed word starts in `before` (the line up to the
    /// cursor), and what it could become.
    fn candidates(&self, before: &str) -> (usize, Vec<Pair>) {
        let Some(rest) = before.strip_prefix('!') else {
            if before.starts_with('/') {
                return (0, Vec::new());
            }
            return self.in_text(before);
        };
        let Some((name, args)) = rest.split_once(' ') else {
            return (0, commands(before));
        };
        let kind = COMMANDS
            .iter()
            .find(|spec| spec.name[1..] == *name)
            .map(|spec| spec.kind);
        let prefix = match kind {
            // `!send <nick> <path>`: past the nickname, a path.
            Some(Kind::Send) if args.trim_start().contains(char::is_whitespace) => {
                return self.paths(before);
            }
            // The offer's number, the only argument that is not a directory.
            Some(Kind::Accept | Kind::Reject) => {
                let first = args.trim_start();
                if first.contains(char::is_whitespace) {
                    return match kind {
                        Some(Kind::Accept) => self.paths(before),
                        _ => (0, Vec::new()),
                    };
                }
                return (before.len() - first.len(), self.offers(first));
            }
            // Only the first argument is a nickname; leading spaces are allowed.
            Some(Kind::Private | Kind::Send | Kind::History) => {
                let first = args.trim_start();
                if first.contains(char::is_whitespace) {
                    return (0, Vec::new());
                }
                first
            }
            Some(Kind::Group) => return self.group_candidates(before, args),
            // The word being typed, if it is `from:…`.
            Some(Kind::Search) => {
                let word = &args[args.rfind(char::is_whitespace).map_or(0, |i| i + 1)..];
                match word.strip_prefix("from:") {
                    Some(nick) => nick,
                    None => return (0, Vec::new()),
                }
            }
            _ => return (0, Vec::new()),
        };
        let (start, mut pairs) = self.nicknames(before, prefix);
        // A file or a history can be a group's too.
        if matches!(kind, Some(Kind::Send | Kind::History)) {
            let prefix = prefix.to_lowercase();
            pairs.extend(
                self.roster
                    .lock()
                    .groups()
                    .iter()
                    .filter(|g| g.to_lowercase().starts_with(&prefix))
                    .map(|g| Pair {
                        display: g.clone(),
                        replacement: format!("{g} "),
                    }),
            );
        }
        (start, pairs)
    }

    /// In the text of a message, as in irssi: a nickname, `bob: ` when it
    /// starts the line (addressing bob), `bob ` further on; a group we
    /// are in for a word starting with `#`, anywhere. Both compared
    /// without regard to case.
    fn in_text(&self, before: &str) -> (usize, Vec<Pair>) {
        let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let word = &before[start..];
        if word.is_empty() {
            return (0, Vec::new());
        }
        let lower = word.to_lowercase();
        if word.starts_with('#') {
            let pairs = self
                .roster
                .lock()
                .groups()
                .iter()
                .filter(|g| g.to_lowercase().starts_with(&lower))
                .map(|g| Pair {
                    display: g.clone(),
                    replacement: format!("{g} "),
                })
                .collect();
            return (start, pairs);
        }
        let (_, nicks) = self.nicknames(before, "");
        let pairs = nicks
            .into_iter()
            .filter(|p| p.display.to_lowercase().starts_with(&lower))
            .map(|p| Pair {
                replacement: if start == 0 {
                    format!("{}: ", p.display)
                } else {
                    format!("{} ", p.display)
                },
                display: p.display,
            })
            .collect();
        (start, pairs)
    }

    /// The offers not yet answered whose numbers start with `prefix`.
    fn offers(&self, prefix: &str) -> Vec<Pair> {
        self.roster
            .lock()
            .offers
            .iter()
            .map(u64::to_string)
            .filter(|id| id.starts_with(prefix))
            .map(|id| Pair {
                replacement: format!("{id} "),
                display: id,
            })
            .collect()
    }

    /// `!group <sub>`, then `<group>`, then nicknames (for `create`, `add`
    /// and `remove`).
    fn group_candidates(&self, before: &str, args: &str) -> (usize, Vec<Pair>) {
        let words: Vec<&str> = args.split_whitespace().collect();
        let typing = !args.is_empty() && !args.ends_with(char::is_whitespace);
        let done = if typing { words.len() - 1 } else { words.len() };
        let prefix = if typing { words[words.len() - 1] } else { "" };
        let start = before.len() - prefix.len();
        let offer = |items: Vec<String>| {
            let pairs = items
                .into_iter()
                .filter(|item| item.starts_with(prefix))
                .map(|item| Pair {
                    display: item.clone(),
                    replacement: format!("{item} "),
                })
                .collect();
            (start, pairs)
        };
        let groups = || {
            let roster = self.roster.lock();
            let bare = prefix.strip_prefix('#').is_none();
            roster
                .groups()
                .iter()
                // Offered as typed: with its `#` or without.
                .map(|g| if bare { g[1..].to_string() } else { g.clone() })
                .collect::<Vec<_>>()
        };
        match (done, words.first().copied()) {
            (0, _) => {
                let mut items: Vec<String> =
                    GROUP_SUBCOMMANDS.iter().map(|s| s.to_string()).collect();
                items.extend(groups());
                offer(items)
            }
            (1, Some(sub)) if sub != "create" && GROUP_SUBCOMMANDS.contains(&sub) => {
                offer(groups())
            }
            (n, Some("create" | "add" | "remove")) if n >= 2 => self.nicknames(before, prefix),
            _ => (0, Vec::new()),
        }
    }

    /// Nicknames starting with `prefix`, which ends `before`.
    fn nicknames(&self, before: &str, prefix: &str) -> (usize, Vec<Pair>) {
        let start = before.len() - prefix.len();
        let roster = self.roster.lock();
        // The network thread sends at most one refresh at a time, so a Tab
        // pressed again before the answer asks for nothing more.
        if roster.stale {
            if let Some(net) = &self.net {
                net.send(Command::RefreshRoster);
            }
        }
        let nicks = roster
            .known()
            .into_iter()
            .filter(|nick| nick.starts_with(prefix) && roster.me.as_ref() != Some(*nick))
            .map(|nick| Pair {
                display: nick.clone(),
                replacement: format!("{nick} "),
            })
            .collect();
        (start, nicks)
    }
}

/// `a\ b` → `a b`: a backslash keeps the character after it.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

impl Hinter for ChatHelper {
    type Hint = String;

    fn hint(&self, line: &str, _pos: usize, _ctx: &Context<'_>) -> Option<String> {
        self.empty.store(line.is_empty(), Ordering::SeqCst);
        None
    }
}

impl Completer for ChatHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        Ok(self.candidates(&line[..pos]))
    }
}

#[cfg(test)]
mod tests {
    use rustyline::history::DefaultHistory;

    use super::*;

    fn complete(helper: &ChatHelper, line: &str) -> (usize, Vec<String>) {
        let history = DefaultHistory::new();
        let (start, pairs) = helper
            .complete(line, line.len(), &Context::new(&history))
            .unwrap();
        (start, pairs.into_iter().map(|p| p.replacement).collect())
    }

    /// A table of lines and what Tab offers for each: long, but one row
    /// per case.
    #[test]
    fn candidates() {
        let roster = SharedRoster::default();
        {
            let mut roster = roster.lock();
            roster.me = Some("me".into());
            roster.set(&["alice".into(), "alan".into(), "bob".into(), "me".into()]);
            // Written with, not online.
            roster.saw("carol");
            roster.set_groups(&["#class".into(), "#chess".into()]);
            roster.offers = vec![3, 12, 30];
        }
        let helper = ChatHelper::new(roster);
        let cases: &[(&str, usize, &[&str])] = &[
            ("!pr", 0, &["!private "]),
            ("!o", 0, &["!online"]),
            (
                "!",
                0,
                &[
                    "!private ",
                    "!online",
                    "!away ",
                    "!history ",
                    "!search ",
                    "!group ",
                    "!send ",
                    "!accept ",
                    "!reject ",
                    "!password",
                    "!help",
                    "!bye",
                ],
            ),
            ("!hi", 0, &["!history "]),
            ("!se", 0, &["!search ", "!send "]),
            ("!history a", 9, &["alan ", "alice "]),
            ("!history bob 5", 0, &[]),
            ("!search exam", 0, &[]),
            ("!search exam from:a", 18, &["alan ", "alice "]),
            ("!search from:b", 13, &["bob "]),
            ("!search from:bob exam", 0, &[]),
            ("!private c", 9, &["carol "]),
            ("!x", 0, &[]),
            ("hello", 0, &[]),
            ("", 0, &[]),
            ("b", 0, &["bob: "]),
            ("Al", 0, &["alan: ", "alice: "]),
            ("hello ali", 6, &["alice "]),
            ("hello ", 0, &[]),
            ("hello m", 6, &[]),
            ("see #c", 4, &["#chess ", "#class "]),
            ("#CL", 0, &["#class "]),
            ("#class hi c", 10, &["carol "]),
            ("/msg b", 0, &[]),
            ("!private a", 9, &["alan ", "alice "]),
            ("!private ali", 9, &["alice "]),
            ("!private ", 9, &["alan ", "alice ", "bob ", "carol "]),
            ("!private   b", 11, &["bob "]),
            ("!send b", 6, &["bob "]),
            ("!private m", 9, &[]),
            ("!private alice h", 0, &[]),
            ("!online a", 0, &[]),
            ("!gr", 0, &["!group "]),
            (
                "!group ",
                7,
                &[
                    "create ", "add ", "remove ", "join ", "leave ", "list ", "members ", "chess ",
                    "class ",
                ],
            ),
            ("!group l", 7, &["leave ", "list "]),
            ("!group c", 7, &["create ", "chess ", "class "]),
            ("!group add ", 11, &["chess ", "class "]),
            ("!group add #cl", 11, &["#class "]),
            ("!group members ch", 15, &["chess "]),
            ("!group create ", 0, &[]),
            ("!group add class a", 17, &["alan ", "alice "]),
            ("!group create lab b", 18, &["bob "]),
            ("!group join class b", 0, &[]),
            ("!group class hello", 0, &[]),
            ("!send #c", 6, &["#chess ", "#class "]),
            ("!history #cl", 9, &["#class "]),
            ("!accept ", 8, &["3 ", "12 ", "30 "]),
            ("!accept 3", 8, &["3 ", "30 "]),
            ("!reject 1", 8, &["12 "]),
            ("!reject 12 ", 0, &[]),
            ("!accept 4", 8, &[]),
        ];
        for (line, start, want) in cases {
            assert_eq!(
                complete(&helper, line),
                (*start, want.iter().map(|s| s.to_string()).collect()),
                "{line:?}"
            );
        }
    }

    /// Only a stale roster is refreshed, and only when a nickname is being
    /// completed; the Tab that asks offers what the roster has meanwhile.
    #[test]
    fn a_stale_roster_is_refreshed_when_nicknames_are_wanted() {
        let poll = mio::Poll::new().unwrap();
        let waker = std::sync::Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let (commands, asked) = crossbeam_channel::unbounded();
        let roster = SharedRoster::default();
        roster.lock().set(&["alice".into()]);
        let mut helper = ChatHelper::new(roster.clone());
        helper.set_net(NetHandle::new(commands, waker));

        complete(&helper, "!private a");
        assert!(asked.try_recv().is_err(), "the roster is complete");
        roster.lock().stale = true;
        for line in ["!o", "hello #a", "!online a", "!private alice h"] {
            complete(&helper, line);
            assert!(asked.try_recv().is_err(), "{line:?} wants no nickname");
        }
        for line in ["!private a", "!send ", "hello a"] {
            let (_, offered) = complete(&helper, line);
            assert_eq!(asked.try_recv(), Ok(Command::RefreshRoster), "{line:?}");
            assert_eq!(offered, ["alice "], "{line:?}");
        }
    }

    /// Past `!send <nick> `, the word is a path: files in the directory it
    /// names, directories with a separator.
    #[test]
    fn send_completes_paths_after_the_nickname() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.pdf"), b"x").unwrap();
        std::fs::write(dir.path().join("nothing.txt"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("slides")).unwrap();
        std::fs::write(dir.path().join("my notes.txt"), b"x").unwrap();
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join(".notes.swp"), b"x").unwrap();
        let helper = ChatHelper::new(SharedRoster::default());
        let base = format!("!send bob {}/", dir.path().display());
        let (start, mut got) = complete(&helper, &format!("{base}no"));
        got.sort();
        assert_eq!(start, "!send bob ".len());
        let at = |name: &str| format!("{}{name}", &base["!send bob ".len()..]);
        assert_eq!(got, [at("notes.pdf"), at("nothing.txt")]);
        let (_, got) = complete(&helper, &format!("{base}sl"));
        assert_eq!(got, [at("slides/")]);
        // Taken as typed: no shell escape before the space.
        let (_, got) = complete(&helper, &format!("{base}my"));
        assert_eq!(got, [at("my notes.txt")]);
        // Hidden entries only for a name typed with its dot.
        let (_, mut got) = complete(&helper, &base);
        got.sort();
        let visible = ["my notes.txt", "notes.pdf", "nothing.txt", "slides/"];
        assert_eq!(got, visible.map(at));
        let (_, mut got) = complete(&helper, &format!("{base}."));
        got.sort();
        assert_eq!(got, [at(".git/"), at(".notes.swp")]);
    }

    #[test]
    fn completes_at_the_cursor() {
        let helper = ChatHelper::new(SharedRoster::default());
        let history = DefaultHistory::new();
        let (start, pairs) = helper
            .complete("!pr and more", 3, &Context::new(&history))
            .unwrap();
        assert_eq!((start, pairs[0].replacement.as_str()), (0, "!private "));
    }
}
