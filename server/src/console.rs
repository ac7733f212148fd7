//! The admin console: `/list`, `/groups`, `/kick`, `/ban`, `/unban`,
//! `/mute`, `/unmute`, `/announce`, `/stats`, `/help`, `/quit`. On a terminal it is a rustyline prompt with completion and log
//! lines printed above it; otherwise commands are read line by line from
//! stdin, and EOF only ends the console, not the server.

use std::io::BufRead;
use std::net::IpAddr;
use std::time::Duration;

use chrono::{Local, TimeZone};
use crossbeam_channel::Sender;
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{Context, Editor, Helper, Highlighter, Hinter, Validator};

use crate::chat::auth::{self, Cost};
use crate::chat::dispatcher::{Admin, AdminReply, Event};
use crate::chat::state::NodeUsers;
use crate::logging;
use crate::store::SanctionKind;

/// Every console command: name, arguments, what it does.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    (
        "/list",
        "",
        "users online: nick, address, connected since, TLS, messages sent",
    ),
    (
        "/groups",
        "",
        "groups: name, owner, public or private, members (online)",
    ),
    (
        "/kick",
        "<nick> [reason]",
        "disconnect a user; they and everyone else see the reason",
    ),
    (
        "/announce",
        "<text>",
        "send a message to everyone, marked as from the server",
    ),
    (
        "/stats",
        "",
        "connections, messages, offline/redelivered/duplicates, floods, slow clients cut, rate, uptime",
    ),
    (
        "/ban",
        "<nick|ip> [duration]",
        "refuse a user's logins, or an address's connections (IPv6: its /64), and close them, for a time (30s, 10m, 2h, 7d) or until /unban",
    ),
    ("/unban", "<nick|ip>", "lift a ban"),
    (
        "/mute",
        "<nick> [duration]",
        "refuse a user's messages for a time (30s, 10m, 2h, 7d) or until /unmute",
    ),
    ("/unmute", "<nick>", "lift a mute"),
    (
        "/register",
        "<nick>",
        "create an account with a new password, printed here (for --registration closed)",
    ),
    ("/help", "", "this list"),
    ("/quit", "", "tell everyone, close all connections, stop"),
];

/// A console line, parsed.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Empty,
    Help,
    Quit,
    Command(Admin),
    /// `/register nick`: the console makes up the password.
    Register(String),
}

pub fn parse(line: &str) -> Result<Line, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(Line::Empty);
    }
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    match word {
        "/list" => Ok(Line::Command(Admin::List)),
        "/groups" => Ok(Line::Command(Admin::Groups)),
        "/stats" => Ok(Line::Command(Admin::Stats)),
        "/help" => Ok(Line::Help),
        "/quit" => Ok(Line::Quit),
        "/announce" if rest.is_empty() => Err("usage: /announce <text>".into()),
        "/announce" => Ok(Line::Command(Admin::Announce(rest.to_string()))),
        "/kick" if rest.is_empty() => Err("usage: /kick <nick> [reason]".into()),
        "/kick" => {
            let (nick, reason) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let reason = match reason.trim() {
                "" => "kicked by the operator",
                r => r,
            };
            Ok(Line::Command(Admin::Kick {
                nick: nick.to_string(),
                reason: reason.to_string(),
            }))
        }
        "/ban" | "/mute" | "/unban" | "/unmute" => sanction(word, rest),
        "/register" if rest.is_empty() || rest.contains(char::is_whitespace) => {
            Err("usage: /register <nick>".into())
        }
        "/register" => Ok(Line::Register(rest.to_string())),
        other => Err(format!("unknown command {other:?}; type /help")),
    }
}

/// `/ban`, `/mute` (with an optional duration) and `/unban`, `/unmute`.
fn sanction(word: &str, rest: &str) -> Result<Line, String> {
    let kind = match word {
        "/ban" | "/unban" => SanctionKind::Ban,
        _ => SanctionKind::Mute,
    };
    let lifting = word.starts_with("/un");
    let mut args = rest.split_whitespace();
    let (nick, duration, extra) = (args.next(), args.next(), args.next());
    let usage = || {
        if lifting {
            format!("usage: {word} <nick>")
        } else {
            format!("usage: {word} <nick> [duration: 30s, 10m, 2h, 7d]")
        }
    };
    let Some(nick) = nick.filter(|_| extra.is_none()) else {
        return Err(usage());
    };
    let ip = nick
        .parse::<IpAddr>()
        .ok()
        .filter(|_| kind == SanctionKind::Ban);
    let nick = nick.to_string();
    if lifting {
        return match (duration, ip) {
            (Some(_), _) => Err(usage()),
            (None, Some(ip)) => Ok(Line::Command(Admin::UnbanAddress(ip))),
            (None, None) => Ok(Line::Command(Admin::Lift { kind, nick })),
        };
    }
    let duration = match duration {
        None => None,
        Some(text) => Some(parse_duration(text).ok_or_else(usage)?),
    };
    Ok(Line::Command(match ip {
        Some(ip) => Admin::BanAddress { ip, duration },
        None => Admin::Sanction {
            kind,
            nick,
            duration,
        },
    }))
}

/// `30s`, `10m`, `2h`, `7d`.
fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok().filter(|&n| n > 0)?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    number.checked_mul(secs).map(Duration::from_secs)
}

pub fn help() -> String {
    COMMANDS
        .iter()
        .map(|(name, args, what)| format!("  {:<26} {what}", format!("{name} {args}")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Sends admin commands to the dispatcher and waits for the answer.
#[derive(Clone)]
pub struct Console {
    events: Sender<Event>,
    /// The cost `/register` hashes its passwords at: the server's.
    cost: Cost,
}

impl Console {
    pub fn new(events: Sender<Event>, cost: Cost) -> Self {
        Console { events, cost }
    }

    fn ask(&self, command: Admin, wait: Duration) -> Option<AdminReply> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.events.send(Event::Admin(command, tx)).ok()?;
        rx.recv_timeout(wait).ok()
    }

    /// Runs one line; returns its output and whether the server should stop.
    pub fn execute(&self, line: &str) -> (String, bool) {
        match parse(line) {
            Ok(Line::Empty) => (String::new(), false),
            Ok(Line::Help) => (help(), false),
            Ok(Line::Quit) => {
                let _ = self.events.send(Event::Shutdown {
                    reason: crate::chat::dispatcher::SHUTDOWN_REASON.into(),
                });
                ("shutting down".into(), true)
            }
            Ok(Line::Register(nick)) => {
                let password = auth::new_password();
                match auth::hash(self.cost, &password) {
                    Ok(hash) => self.execute_command(Admin::Register {
                        nick,
                        password,
                        hash,
                    }),
                    Err(why) => (format!("error: hashing the password: {why}"), false),
                }
            }
            Ok(Line::Command(command)) => self.execute_command(command),
            Err(why) => (why, false),
        }
    }

    fn execute_command(&self, command: Admin) -> (String, bool) {
        match self.ask(command, Duration::from_secs(5)) {
            Some(reply) => (format_reply(reply), false),
            None => ("the server did not answer".into(), false),
        }
    }

    /// Reads commands from a non-terminal stdin until EOF.
    pub fn run_lines(&self, input: impl BufRead) {
        for line in input.lines() {
            let Ok(line) = line else { break };
            let (output, quit) = self.execute(&line);
            if !output.is_empty() {
                println!("{output}");
            }
            if quit {
                return;
            }
        }
    }

    /// The interactive console; returns when the operator quits.
    pub fn run_interactive(&self) -> anyhow::Result<()> {
        let mut editor: Editor<ConsoleHelper, DefaultHistory> = Editor::new()?;
        editor.set_helper(Some(ConsoleHelper {
            console: self.clone(),
        }));
        logging::print_above_prompt(Box::new(editor.create_external_printer()?));
        println!("admin console ready; type /help for the commands");
        loop {
            match editor.readline("admin> ") {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    let (output, quit) = self.execute(&line);
                    if !output.is_empty() {
                        logging::print_line(&output);
                    }
                    if quit {
                        break;
                    }
                }
                // Ctrl-C and Ctrl-D stop the server, as /quit does.
                Err(ReadlineError::Interrupted | ReadlineError::Eof) => {
                    self.execute("/quit");
                    break;
                }
                Err(err) => {
                    logging::print_to_stderr();
                    return Err(err.into());
                }
            }
        }
        logging::print_to_stderr();
        Ok(())
    }
}

fn format_reply(reply: AdminReply) -> String {
    match reply {
        AdminReply::List(rows) if rows.is_empty() => "nobody is online".into(),
        AdminReply::List(rows) => {
            // A cluster's other nodes' users: a NODE column ("here" for
            // this node's), their connections' details being there.
            let cluster = rows.iter().any(|r| r.node.is_some());
            let mut out = format!(
                "{:<20} {:<22} {:<9} {:<4} {:>6}",
                "NICK", "ADDRESS", "SINCE", "TLS", "SENT"
            );
            out += if cluster { " NODE\n" } else { "\n" };
            for row in &rows {
                match &row.node {
                    None => {
                        out += &format!(
                            "{:<20} {:<22} {:<9} {:<4} {:>6}",
                            row.nick,
                            row.peer.to_string(),
                            clock(row.connected_at),
                            if row.tls { "yes" } else { "no" },
                            row.messages_sent
                        );
                        out += if cluster { " here\n" } else { "\n" };
                    }
                    Some(node) => {
                        out += &format!(
                            "{:<20} {:<22} {:<9} {:<4} {:>6} {node}\n",
                            row.nick, "-", "-", "-", "-"
                        );
                    }
                }
            }
            out + &format!("{} online", rows.len())
        }
        AdminReply::Stats {
            stats,
            connections,
            uptime,
        } => {
            let secs = uptime.as_secs();
            let text = format!(
                "connections: {} ({} logged in, {} accounts)\nmessages: {} ({} private)\nstored for offline users: {}\nredelivered at login: {}\nduplicates dropped: {}\nfloods throttled: {} ({} flooders disconnected)\nslow clients cut: {}\nconnections refused: {} banned, {} over the per-address cap, {} over the total cap\nrate: {:.1} msg/s over the last {} s\nuptime: {}h {:02}m {:02}s",
                stats.connections,
                stats.users,
                stats.accounts,
                stats.messages,
                stats.private_messages,
                stats.stored_offline,
                stats.redelivered,
                stats.duplicates,
                stats.floods_throttled,
                stats.flooders_cut,
                stats.slow_consumers_cut,
                connections.refused_banned,
                connections.refused_per_address,
                connections.refused_total,
                stats.rate,
                crate::chat::state::RATE_WINDOW_SECS,
                secs / 3600,
                secs / 60 % 60,
                secs % 60
            );
            // A cluster's nodes, after the first line.
            match text.split_once('\n') {
                Some((first, rest)) if !stats.nodes.is_empty() => {
                    format!("{first}\n{}\n{rest}", nodes_line(&stats.nodes))
                }
                _ => text,
            }
        }
        AdminReply::Groups(groups) if groups.is_empty() => "no groups".into(),
        AdminReply::Groups(groups) => {
            let mut out = format!(
                "{:<34} {:<20} {:<8} {:>7} {:>6}\n",
                "GROUP", "OWNER", "KIND", "MEMBERS", "ONLINE"
            );
            for g in &groups {
                out += &format!(
                    "{:<34} {:<20} {:<8} {:>7} {:>6}\n",
                    g.name,
                    g.owner,
                    if g.public { "public" } else { "private" },
                    g.members,
                    g.online
                );
            }
            out + &format!("{} groups", groups.len())
        }
        AdminReply::Nicks(nicks) => nicks.join(" "),
        AdminReply::Done(text) => text,
        // Said once the store has it on disk.
        AdminReply::Saved { text, saved } => match saved.recv_timeout(Duration::from_secs(5)) {
            Ok(true) => text,
            Ok(false) => format!("error: {text} in memory, but saving it failed (see the log)"),
            Err(_) => format!("{text} (not yet confirmed on disk)"),
        },
        AdminReply::Failed(text) => format!("error: {text}"),
    }
}

/// `nodes: n1 (here) 2 users, n2 1 user, n3 0 users`.
fn nodes_line(nodes: &[NodeUsers]) -> String {
    let each: Vec<String> = nodes
        .iter()
        .map(|n| {
            format!(
                "{}{} {} user{}",
                n.node,
                if n.here { " (here)" } else { "" },
                n.users,
                if n.users == 1 { "" } else { "s" }
            )
        })
        .collect();
    format!("nodes: {}", each.join(", "))
}

fn clock(unix_ms: u64) -> String {
    Local
        .timestamp_millis_opt(unix_ms as i64)
        .single()
        .map_or_else(|| "?".into(), |t| t.format("%H:%M:%S").to_string())
}

/// Completes command names, and nicknames after `/kick`, `/ban` and the like.
#[derive(Helper, Hinter, Highlighter, Validator)]
struct ConsoleHelper {
    console: Console,
}

impl Completer for ConsoleHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let line = &line[..pos];
        if !line.contains(' ') {
            let names = COMMANDS
                .iter()
                .filter(|(name, _, _)| name.starts_with(line))
                .map(|(name, _, _)| format!("{name} "))
                .collect();
            return Ok((0, names));
        }
        let takes_nick = ["/kick ", "/ban ", "/unban ", "/mute ", "/unmute "];
        let prefix = takes_nick.iter().find_map(|c| line.strip_prefix(c));
        if let Some(prefix) = prefix.filter(|p| !p.contains(' ')) {
            let nicks = match self.console.ask(Admin::Nicks, Duration::from_millis(300)) {
                Some(AdminReply::Nicks(nicks)) => nicks,
                _ => Vec::new(),
            };
            let matches = nicks
                .into_iter()
                .filter(|n| n.to_lowercase().starts_with(&prefix.to_lowercase()))
                .map(|n| format!("{n} "))
                .collect();
            return Ok((line.len() - prefix.len(), matches));
        }
        Ok((pos, Vec::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/stats` in a cluster has a `nodes:` line after the first; on one
    /// node (no nodes) the text is as it always was.
    #[test]
    fn stats_show_a_clusters_nodes() {
        let stats = |nodes: Vec<NodeUsers>| AdminReply::Stats {
            stats: crate::chat::state::Stats {
                connections: 3,
                users: 3,
                accounts: 4,
                messages: 0,
                private_messages: 0,
                stored_offline: 0,
                redelivered: 0,
                duplicates: 0,
                floods_throttled: 0,
                flooders_cut: 0,
                slow_consumers_cut: 0,
                rate: 0.0,
                nodes,
            },
            connections: Default::default(),
            uptime: Duration::from_secs(61),
        };
        let node = |node: &str, here, users| NodeUsers {
            node: node.into(),
            here,
            users,
        };
        let one = format_reply(stats(vec![]));
        assert!(one.starts_with("connections: 3 (3 logged in, 4 accounts)\nmessages: 0"));
        assert!(!one.contains("nodes"), "{one}");
        let cluster = format_reply(stats(vec![
            node("n1", true, 2),
            node("n2", false, 1),
            node("n3", false, 0),
        ]));
        let lines: Vec<&str> = cluster.lines().collect();
        assert_eq!(lines[1], "nodes: n1 (here) 2 users, n2 1 user, n3 0 users");
        assert_eq!(lines.len(), one.lines().count() + 1, "{cluster}");
        assert_eq!(lines.last(), one.lines().last().as_ref());
    }

    #[test]
    fn sanctions_parse() {
        let ban = |nick: &str, secs: Option<u64>| {
            Ok(Line::Command(Admin::Sanction {
                kind: SanctionKind::Ban,
                nick: nick.into(),
                duration: secs.map(Duration::from_secs),
            }))
        };
        assert_eq!(parse("/ban bob"), ban("bob", None));
        assert_eq!(parse("/ban bob 10m"), ban("bob", Some(600)));
        assert_eq!(parse("/ban  bob  2h "), ban("bob", Some(7200)));
        assert_eq!(parse("/ban bob 7d"), ban("bob", Some(7 * 86_400)));
        assert_eq!(
            parse("/mute bob 30s"),
            Ok(Line::Command(Admin::Sanction {
                kind: SanctionKind::Mute,
                nick: "bob".into(),
                duration: Some(Duration::from_secs(30)),
            }))
        );
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            parse("/ban 2001:db8::1 1h"),
            Ok(Line::Command(Admin::BanAddress {
                ip,
                duration: Some(Duration::from_secs(3600)),
            }))
        );
        assert_eq!(
            parse("/unban 2001:db8::1"),
            Ok(Line::Command(Admin::UnbanAddress(ip)))
        );
        assert_eq!(
            parse("/unmute bob"),
            Ok(Line::Command(Admin::Lift {
                kind: SanctionKind::Mute,
                nick: "bob".into()
            }))
        );
        for bad in [
            "/ban",
            "/ban bob 10",
            "/ban bob 0m",
            "/ban bob 5y",
            "/ban bob 1m x",
            "/unban bob 1m",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.starts_with("usage: /"), "{bad}: {err}");
        }
    }

    #[test]
    fn parses_commands() {
        let kick = |nick: &str, reason: &str| {
            Ok(Line::Command(Admin::Kick {
                nick: nick.into(),
                reason: reason.into(),
            }))
        };
        let cases: Vec<(&str, Result<Line, String>)> = vec![
            ("", Ok(Line::Empty)),
            ("  /list ", Ok(Line::Command(Admin::List))),
            ("/groups", Ok(Line::Command(Admin::Groups))),
            ("/stats", Ok(Line::Command(Admin::Stats))),
            ("/help", Ok(Line::Help)),
            ("/quit", Ok(Line::Quit)),
            ("/kick bob", kick("bob", "kicked by the operator")),
            (
                "/kick bob  spamming the room ",
                kick("bob", "spamming the room"),
            ),
            ("/kick", Err("usage: /kick <nick> [reason]".into())),
            (
                "/announce class starts at 9",
                Ok(Line::Command(Admin::Announce("class starts at 9".into()))),
            ),
            ("/announce   ", Err("usage: /announce <text>".into())),
            (
                "/frobnicate",
                Err("unknown command \"/frobnicate\"; type /help".into()),
            ),
            ("hello", Err("unknown command \"hello\"; type /help".into())),
        ];
        for (line, expected) in cases {
            assert_eq!(parse(line), expected, "{line:?}");
        }
    }

    #[test]
    fn help_lists_every_command() {
        let text = help();
        for (name, _, _) in COMMANDS {
            assert!(text.contains(name), "{name}");
        }
    }
}
