//! The config file both programs read: the same settings as the flags, in
//! TOML, one key per flag (`queue-limit = 262144`, `no-tls = true`,
//! `server = ["a:50445", "b:50445"]`). The file is turned into flags
//! placed before the command line's, so clap checks it exactly as it
//! checks flags, and a flag given on the command line wins.
//!
//! Read from `--config FILE`, or else from the program's file in the
//! per-user config directory (e.g. `~/.config/chat/server.toml`) if it
//! exists.

use std::ffi::OsString;
use std::path::PathBuf;

/// What is wrong with a config file, or with `--config`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--config needs a file")]
    NoFile,
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("in {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Which file a program reads, and how its values become flags.
pub struct Spec<'a> {
    /// The file's name in the per-user config directory (`server.toml`).
    pub file_name: &'a str,
    /// Keys whose value may be a TOML array of strings, joined by commas
    /// into the one flag (`server = ["a", "b"]` is `--server=a,b`).
    pub lists: &'a [&'a str],
}

/// The command line (`args`, for `command`) with the config file's
/// settings put in front.
pub fn args_with_file(
    args: Vec<OsString>,
    command: &clap::Command,
    spec: &Spec,
) -> Result<Vec<OsString>, ConfigError> {
    let (explicit, rest) = take_config_flag(args)?;
    let path = match explicit {
        Some(path) => path,
        None => match default_path(spec.file_name).filter(|p| p.exists()) {
            Some(path) => path,
            None => return Ok(rest),
        },
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let given = long_flags(&rest);
    let flags: Vec<String> = flags_from(&text, spec.lists)
        .map_err(|reason| ConfigError::Invalid { path, reason })?
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

/// `file_name` in the per-user config directory (`~/.config/chat/` on Linux).
pub fn default_path(file_name: &str) -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "chat").map(|d| d.config_dir().join(file_name))
}

/// Removes `--config FILE` / `--config=FILE` from the arguments.
fn take_config_flag(args: Vec<OsString>) -> Result<(Option<PathBuf>, Vec<OsString>), ConfigError> {
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
                return Err(ConfigError::NoFile);
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
/// flag, or one clap refuses next to it (`--no-tls` beside `--tls-cert`).
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
fn flags_from(text: &str, lists: &[&str]) -> Result<Vec<(String, Option<String>)>, String> {
    let table: toml::Table = text
        .parse()
        .map_err(|err| format!("not valid TOML: {err}"))?;
    let mut flags = Vec::new();
    for (key, value) in table {
        if key == "config" || key.starts_with('-') {
            return Err(format!("{key:?} cannot be set in a config file"));
        }
        let flag = match value {
            toml::Value::Boolean(true) => Some(format!("--{key}")),
            toml::Value::Boolean(false) => None,
            toml::Value::String(s) => Some(format!("--{key}={s}")),
            toml::Value::Integer(n) => Some(format!("--{key}={n}")),
            toml::Value::Float(x) => Some(format!("--{key}={x}")),
            toml::Value::Array(items) if lists.contains(&key.as_str()) => {
                let items: Option<Vec<&str>> = items.iter().map(toml::Value::as_str).collect();
                let Some(items) = items else {
                    return Err(format!("{key}: expected a list of strings"));
                };
                Some(format!("--{key}={}", items.join(",")))
            }
            other => {
                return Err(format!(
                    "{key}: expected a string, number or boolean, not {other}"
                ))
            }
        };
        flags.push((key, flag));
    }
    Ok(flags)
}
