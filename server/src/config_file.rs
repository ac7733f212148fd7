//! The server config file: the same settings as the flags, in TOML, one
//! key per flag (`queue-limit = 262144`, `no-tls = true`). The file is
//! turned into flags placed before the command line's, so clap checks it
//! exactly as it checks flags, and a flag given on the command line wins.
//!
//! Read from `--config FILE`, or else from `server.toml` in the per-user
//! config directory (e.g. `~/.config/chat/server.toml`) if it exists.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::CommandFactory as _;

/// The command line with the config file's settings put in front.
pub fn args_with_file(args: Vec<OsString>) -> anyhow::Result<Vec<OsString>> {
    let (explicit, rest) = take_config_flag(args)?;
    let path = match explicit {
        Some(path) => path,
        None => match default_path().filter(|p| p.exists()) {
            Some(path) => path,
            None => return Ok(rest),
        },
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    let given = long_flags(&rest);
    let flags: Vec<String> = flags_from(&text)
        .with_context(|| format!("in {}", path.display()))?
        .into_iter()
        .filter(|(key, _)| !overridden(key, &given))
        .flat_map(|(_, flag)| flag)
        .collect();
    let mut out = Vec::with_capacity(rest.len() + flags.len());
    let mut rest = rest.into_iter();
    out.extend(rest.next()); // the program's name
    out.extend(flags.into_iter().map(OsString::from));
    out.extend(rest);
    Ok(out)
}

pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "chat").map(|d| d.config_dir().join("server.toml"))
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
/// flag, or one clap refuses next to it (`--no-tls` and `--tls-cert`).
fn overridden(key: &str, given: &[String]) -> bool {
    let command = crate::Config::command();
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
            toml::Value::Float(x) => Some(format!("--{key}={x}")),
            other => bail!("{key}: expected a string, number or boolean, not {other}"),
        };
        flags.push((key, flag));
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use clap::Parser;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_file_is_flags_and_the_command_line_wins() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.toml");
        std::fs::write(
            &file,
            "bind = \"127.0.0.1:6000\"\nqueue-limit = 1000\nno-tls = true\nflood-rate = 2.5\nlog-level = \"warn\"\n",
        )
        .unwrap();
        let file = file.to_str().unwrap();
        let args = args_with_file(os(&[
            "chat-server",
            "--config",
            file,
            "--queue-limit",
            "2000",
        ]))
        .unwrap();
        let config = Config::try_parse_from(args).unwrap();
        assert_eq!(config.bind.to_string(), "127.0.0.1:6000");
        assert_eq!(config.queue_limit, 2000, "the command line wins");
        assert!(config.no_tls);
        assert_eq!(config.flood_rate, 2.5);
        assert_eq!(config.log_level, "warn");
    }

    /// The command line wins over the file also when the two would
    /// conflict (TLS on one side, `--no-tls` on the other), and a value may
    /// begin with a dash.
    #[test]
    fn the_command_line_wins_over_a_conflicting_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.toml");
        let file_arg = file.to_str().unwrap();
        std::fs::write(&file, "no-tls = true\ndata-dir = \"-odd\"\n").unwrap();
        let args = args_with_file(os(&[
            "chat-server",
            "--config",
            file_arg,
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ]))
        .unwrap();
        let config = Config::try_parse_from(args).unwrap();
        assert!(!config.no_tls);
        assert_eq!(config.tls_cert.unwrap().to_str(), Some("c.pem"));
        assert_eq!(config.data_dir.unwrap().to_str(), Some("-odd"));

        std::fs::write(&file, "tls-cert = \"c.pem\"\ntls-key = \"k.pem\"\n").unwrap();
        let args = args_with_file(os(&["chat-server", "--config", file_arg, "--no-tls"])).unwrap();
        let config = Config::try_parse_from(args).unwrap();
        assert!(config.no_tls);
        assert_eq!((config.tls_cert, config.tls_key), (None, None));
    }

    #[test]
    fn mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.toml");
        std::fs::write(&file, "queue-limt = 5\n").unwrap();
        let args =
            args_with_file(os(&["chat-server", "--config", file.to_str().unwrap()])).unwrap();
        let err = Config::try_parse_from(args).unwrap_err().to_string();
        assert!(err.contains("--queue-limt"), "{err}");

        std::fs::write(&file, "queue-limit = [1]\n").unwrap();
        let err =
            args_with_file(os(&["chat-server", "--config", file.to_str().unwrap()])).unwrap_err();
        assert!(
            format!("{err:#}").contains("queue-limit: expected"),
            "{err:#}"
        );

        let err =
            args_with_file(os(&["chat-server", "--config", "/nonexistent/x.toml"])).unwrap_err();
        assert!(
            format!("{err:#}").contains("/nonexistent/x.toml"),
            "{err:#}"
        );
        assert!(args_with_file(os(&["chat-server", "--config"])).is_err());
    }
}
