//! The client's config file, `client.toml`: see
//! [`chat_common::config_file`] for the rules (one key per flag, the
//! command line wins); `server` may be a list.

use std::ffi::OsString;

use chat_common::config_file::{self, Spec};

const SPEC: Spec<'static> = Spec {
    file_name: "client.toml",
    lists: &["server"],
};

/// The command line (`args`, for `command`) with the config file's
/// settings put in front.
pub fn args_with_file(
    args: Vec<OsString>,
    command: &clap::Command,
) -> anyhow::Result<Vec<OsString>> {
    Ok(config_file::args_with_file(args, command, &SPEC)?)
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
