//! The server's config file, `server.toml`: see
//! [`chat_common::config_file`] for the rules (one key per flag, the
//! command line wins).

use std::ffi::OsString;

use clap::CommandFactory as _;

use chat_common::config_file::{self, Spec};

/// The command line with the config file's settings put in front.
pub fn args_with_file(args: Vec<OsString>) -> anyhow::Result<Vec<OsString>> {
    let spec = Spec {
        file_name: "server.toml",
        lists: &[],
    };
    Ok(config_file::args_with_file(
        args,
        &crate::Config::command(),
        &spec,
    )?)
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
