//! The client's config file: the same settings as the flags, in TOML, one
//! key per flag (`server = ["a:50445", "b:50445"]`, `nick = "alice"`,
//! `no-tls = true`). The file is turned into flags placed before the
//! command line's, so clap checks it exactly as it checks flags, and a
//! flag given on the command line wins. The server reads its own file the
//! same way (`server/src/config_file.rs`); the client cannot use that
//! crate, so this is the client's copy.
//!
//! Read from `--config FILE`, or else from `client.toml` in the per-user
//! config directory (e.g. `~/.config/chat/client.toml`) if it exists.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{bail, Context as _};

/// Keys whose value may be a TOML array of strings, joined by commas into
/// the one flag (`server = ["a", "b"]` is `--server=a,b`).
const LISTS: &[&str] = &["server"];

/// The command line (`args`, for `command`) with the config file's
/// settings put in front.
pub fn args_with_file(
    args: Vec<OsString>,
    command: &clap::Command,
) -> anyhow::Result<Vec<OsString>> {
    let (explicit, rest) = take_config_flag(args)?;
    let path = match explicit {
        Some(path) => path,
        None => match default_path().filter(|p| p.exists()) {
            Some(path) => path,
            None => return Ok(rest),
        },
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let given = long_flags(&rest);
    let flags: Vec<String> = flags_from(&text)
        .with_context(|| format!("in {}", path.display()))?
        .into_iter()
        .filter(|(key, _)| !overridden(command, key, &given))
        .flat_map(|(_, flag)| flag)
        .collect();
    let mut out = Vec::with_capacity(rest.len() + flags.len());
    let mut rest = rest.into_iter();
    out.extend(rest.next()); // the program's name
    out.extend(flags.into_iter().map(OsString::from));
    out.extend(rest);
    Ok(out)
}

/// `client.toml` in the per-user config directory.
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "chat").map(|d| d.config_dir().join("client.toml"))
}

/// Removes `--config FILE` / `--config=FILE` from the arguments.
fn take_config_flag(args: Vec<OsString>) -> anyhow::Result<(Option<PathBuf>, Vec<OsString>)> {
    let mut path = None;
    let mut rest = Vec::with_capacity(args.len());
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            rest.push(arg);
            rest.extend(args.by_ref());
            break;
        }
        let text = arg.to_string_lossy();
        if text == "--config" {
            let Some(value) = args.next() else {
                bail!("--config needs a file");
            };
            path = Some(PathBuf::from(value));
        } else if let Some(value) = text.strip_prefix("--config=") {
            path = Some(PathBuf::from(value));
        } else {
            rest.push(arg);
        }
    }
    Ok((path, rest))
}

/// The long flags on the command line, without their dashes or values.
fn long_flags(args: &[OsString]) -> Vec<String> {
    args.iter()
        .skip(1)
        .map(|arg| arg.to_string_lossy())
        .take_while(|arg| arg != "--")
        .filter_map(|arg| {
            let name = arg.strip_prefix("--")?;
            Some(name.split('=').next().unwrap_or(name).to_string())
        })
        .collect()
}

/// Whether the command line overrides the file's `key`: it gives the same
/// flag, or one clap refuses next to it (`--no-tls` and `--ca`).
fn overridden(command: &clap::Command, key: &str, given: &[String]) -> bool {
    let find = |long: &str| command.get_arguments().find(|a| a.get_long() == Some(long));
    // An unknown key is left for clap to name.
    let Some(arg) = find(key) else {
        return false;
    };
    let conflict = |a: &clap::Arg, b: &clap::Arg| {
        command
            .get_arg_conflicts_with(a)
            .iter()
            .any(|c| c.get_id() == b.get_id())
    };
    given.iter().any(|name| {
        name == key || find(name).is_some_and(|other| conflict(arg, other) || conflict(other, arg))
    })
}

/// `key = value` lines → `--key=value` flags (one word, so that a value
/// may begin with a dash), with the key they came from.
fn flags_from(text: &str) -> anyhow::Result<Vec<(String, Option<String>)>> {
    let table: toml::Table = text.parse().context("not valid TOML")?;
    let mut flags = Vec::new();
    for (key, value) in table {
        if key == "config" || key.starts_with('-') {
            bail!("{key:?} cannot be set in a config file");
        }
        let flag = match value {
            toml::Value::Boolean(true) => Some(format!("--{key}")),
            toml::Value::Boolean(false) => None,
            toml::Value::String(s) => Some(format!("--{key}={s}")),
            toml::Value::Integer(n) => Some(format!("--{key}={n}")),
            toml::Value::Array(items) if LISTS.contains(&key.as_str()) => {
                let items: Option<Vec<&str>> = items.iter().map(toml::Value::as_str).collect();
                let Some(items) = items else {
                    bail!("{key}: expected a list of strings");
                };
                Some(format!("--{key}={}", items.join(",")))
            }
            other => bail!("{key}: expected a string, number or boolean, not {other}"),
        };
        flags.push((key, flag));
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};

    /// The client's flags that these tests use, shaped as `main.rs` has
    /// them.
    fn command() -> clap::Command {
        clap::Command::new("chat-client")
            .args_override_self(true)
            .arg(
                Arg::new("server")
                    .long("server")
                    .default_value("127.0.0.1:50445"),
            )
            .arg(Arg::new("nick").long("nick"))
            .arg(Arg::new("keepalive").long("keepalive"))
            .arg(
                Arg::new("no-tls")
                    .long("no-tls")
                    .action(ArgAction::SetTrue)
                    .conflicts_with("ca"),
            )
            .arg(Arg::new("ca").long("ca"))
    }

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    /// The parsed command line with `file` (the config file's text).
    fn parse(file: &str, args: &[&str]) -> anyhow::Result<clap::ArgMatches> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.toml");
        std::fs::write(&path, file).unwrap();
        let mut line = vec!["chat-client", "--config", path.to_str().unwrap()];
        line.extend(args);
        let args = args_with_file(os(&line), &command())?;
        Ok(command().try_get_matches_from(args)?)
    }

    fn value(matches: &clap::ArgMatches, id: &str) -> Option<String> {
        matches.get_one::<String>(id).cloned()
    }

    #[test]
    fn the_file_is_flags_and_the_command_line_wins() {
        let file =
            "server = [\"a:50445\", \"b\"]\nnick = \"alice\"\nkeepalive = 10\nno-tls = true\n";
        let matches = parse(file, &[]).unwrap();
        assert_eq!(value(&matches, "server").as_deref(), Some("a:50445,b"));
        assert_eq!(value(&matches, "nick").as_deref(), Some("alice"));
        assert_eq!(value(&matches, "keepalive").as_deref(), Some("10"));
        assert!(matches.get_flag("no-tls"));

        let matches = parse(file, &["--server", "c", "--nick=bob"]).unwrap();
        assert_eq!(value(&matches, "server").as_deref(), Some("c"));
        assert_eq!(value(&matches, "nick").as_deref(), Some("bob"));
        assert_eq!(value(&matches, "keepalive").as_deref(), Some("10"));

        // One string is a list too, as on the command line.
        let matches = parse("server = \"a,b\"\n", &[]).unwrap();
        assert_eq!(value(&matches, "server").as_deref(), Some("a,b"));
    }

    /// The command line wins also when it conflicts with the file.
    #[test]
    fn a_conflicting_flag_wins_over_the_file() {
        let matches = parse("no-tls = true\n", &["--ca", "root.pem"]).unwrap();
        assert!(!matches.get_flag("no-tls"));
        assert_eq!(value(&matches, "ca").as_deref(), Some("root.pem"));
        let matches = parse("ca = \"root.pem\"\n", &["--no-tls"]).unwrap();
        assert!(matches.get_flag("no-tls"));
        assert_eq!(value(&matches, "ca"), None);
    }

    #[test]
    fn mistakes_are_named() {
        let err = parse("nik = \"alice\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("--nik"), "{err}");
        let err = format!("{:#}", parse("nick = [\"a\"]\n", &[]).unwrap_err());
        assert!(err.contains("nick: expected"), "{err}");
        let err = format!("{:#}", parse("server = [1]\n", &[]).unwrap_err());
        assert!(err.contains("server: expected a list of strings"), "{err}");
        let err = format!("{:#}", parse("server = \n", &[]).unwrap_err());
        assert!(err.contains("not valid TOML"), "{err}");
        let err = format!("{:#}", parse("config = \"x\"\n", &[]).unwrap_err());
        assert!(err.contains("cannot be set in a config file"), "{err}");

        let missing = args_with_file(
            os(&["chat-client", "--config", "/nonexistent/c.toml"]),
            &command(),
        );
        let err = format!("{:#}", missing.unwrap_err());
        assert!(err.contains("/nonexistent/c.toml"), "{err}");
        assert!(args_with_file(os(&["chat-client", "--config"]), &command()).is_err());
    }
}
