//! `chat-client`: command-line flags in, exit status out; the work is in the
//! library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chat_client::known_hosts::KnownHosts;
use chat_client::net::Servers;
use chat_client::{Config, Password, Security};
use clap::{CommandFactory as _, Parser};

/// Terminal client for the chat server.
///
/// With a terminal on stdin it is interactive: it asks for a nickname unless
/// --nick is given and for the password (not shown as typed) unless
/// --password-file or CHAT_PASSWORD gives it, then reads lines with history
/// and Tab completion. A line goes to everyone; type !help for the commands
/// (!private, !online, !history, !search, !bye …). A password typed for a
/// nickname that has no account is asked for again before the account is
/// created; one from --password-file or CHAT_PASSWORD creates it at once.
///
/// Otherwise it runs in pipe mode, for scripts: the nickname is --nick or the
/// first line of stdin, the password comes from --password-file or
/// CHAT_PASSWORD (there is no prompt), each further line is handled as if
/// typed, and each event is printed as one line on stdout. At end of input
/// it waits until every message is stored by the server and everything
/// asked is answered, says bye and exits. Refused messages (say, to a
/// nickname with no account) are printed as `! reason` lines but do not
/// change the exit status. In pipe mode stdout carries what the server said
/// and the echo of what was sent; hints, help and connection notices go to
/// stderr.
///
/// Every message gets a number (#1, #2 …) and waits in an outbox until the
/// server has stored it. In pipe mode a private message is shown
/// `(#N pending)` as sent, then `* #N stored` (or `stored for bob
/// (offline)`), then `* #N delivered to bob` when bob's client has it;
/// interactive mode shows it once with the state it reached (`(#N ✓✓
/// delivered)`) and gathers later states into one `* delivered ✓✓: #N`. When the connection is
/// lost the client reconnects by itself (0.5 s, doubling to 15 s), resumes
/// where it was without showing anything twice, and sends the outbox again.
/// It does not reconnect after being taken over by another login, kicked,
/// or refused.
///
/// --server may list several servers, the nodes of one cluster: the client
/// connects to the first that answers, trying the next at once when one
/// cannot be reached, and after a lost connection goes on with the next
/// one in the list (waiting as above only once every server failed), where
/// it logs in again and resumes as on any reconnect.
#[derive(Debug, Parser)]
#[command(
    name = "chat-client",
    version,
    args_override_self = true,
    after_help = "\
Exit status:
  0  left with !bye, .exit or end of input; or kicked; or taken over by a
     login elsewhere; or the server shut down (with --reconnect-for 0)
  1  could not connect (to any server listed), certificate refused, or
     the connection was lost and could not be re-established within
     --reconnect-for
  2  the login was refused (pipe mode; interactive mode asks again), or
     logging in again after a reconnect was refused; no nickname or no
     password in pipe mode; or the command line (or --password-file, or
     the config file) was wrong

Environment:
  CHAT_PASSWORD  the password, if --password-file is not given

TLS: the server's certificate is verified against --ca if given, else against
the system roots; if that fails, its SHA-256 fingerprint is pinned on first
use in the known_hosts file and must match on later connections. Each server
of a list is pinned under its own host:port; a changed certificate on any of
them ends the client."
)]
struct Args {
    /// Read settings from this TOML file first, one key per flag
    /// (`server = ["a:50445", "b:50445"]`, `nick = "alice"`, `no-tls =
    /// true`); flags given here win. Default: client.toml in the per-user
    /// config directory (e.g. ~/.config/chat/client.toml), if it exists.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Server to connect to: a host name or address, and a port unless it
    /// is the default (50445); or several, separated by commas
    /// (a:50445,b:50445,[::1]:6000), tried in order.
    #[arg(
        long,
        value_name = "HOST[:PORT],…",
        default_value = "127.0.0.1:50445",
        value_parser = Servers::parse
    )]
    server: Servers,

    /// Nickname to log in with (otherwise asked for, or read from stdin's
    /// first line in pipe mode).
    #[arg(long, value_name = "NICK")]
    nick: Option<String>,

    /// File whose first line is the password (instead of the prompt, or of
    /// CHAT_PASSWORD). There is no flag for the password itself: it would
    /// show in `ps`.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,

    /// Keep trying to reconnect for this long after the connection is lost
    /// or the server shuts down, then exit 1; 0 never reconnects
    /// [default: forever interactive, 60 in pipe mode].
    #[arg(long, value_name = "SECONDS")]
    reconnect_for: Option<u64>,

    /// After this many seconds without hearing from the server, check it is
    /// still there (a ping); with no answer within half as long again, the
    /// connection is taken as lost, and the client reconnects.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    keepalive: u64,

    /// Connect without TLS (plain TCP).
    #[arg(long, conflicts_with = "ca")]
    no_tls: bool,

    /// PEM root certificate to verify the server strictly against (its host
    /// name must match the host part of its --server entry); disables
    /// pinning.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,

    /// File of pinned server certificates
    /// [default: known_hosts in the user's config directory, e.g.
    /// ~/.config/chat/known_hosts].
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,

    /// Pipe mode: print each frame received as its raw JSON line instead of
    /// human-readable text.
    #[arg(long)]
    json: bool,

    /// Directory where accepted files are saved (`!accept ID [DIR]` may
    /// name another). A file never overwrites another: `name (1).ext`.
    /// [default: the user's download directory (XDG_DOWNLOAD_DIR,
    /// ~/Downloads), else downloads/ in the client's data directory, e.g.
    /// ~/.local/share/chat/downloads]
    #[arg(long, value_name = "DIR")]
    downloads: Option<PathBuf>,

    /// Interactive mode: ring the terminal's bell (BEL) for a private
    /// message and for a message that names you (never in pipe mode).
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = ["on", "off"])]
    bell: String,
}

fn main() -> ExitCode {
    let args =
        chat_client::config_file::args_with_file(std::env::args_os().collect(), &Args::command());
    let mut args = match args {
        Ok(args) => Args::parse_from(args),
        Err(err) => {
            eprintln!("chat-client: {err:#}");
            return ExitCode::from(chat_client::EXIT_LOGIN_REFUSED);
        }
    };
    // A path quoted in a shell (or written in a script) keeps its `~`.
    for path in [
        &mut args.password_file,
        &mut args.ca,
        &mut args.known_hosts,
        &mut args.downloads,
    ]
    .into_iter()
    .flatten()
    {
        match chat_client::command::expand_home(&path.to_string_lossy()) {
            Ok(expanded) => *path = expanded,
            Err(err) => {
                eprintln!("chat-client: {err}");
                return ExitCode::from(chat_client::EXIT_LOGIN_REFUSED);
            }
        }
    }
    let password = match password(args.password_file.as_deref()) {
        Ok(password) => password,
        Err(err) => {
            eprintln!("chat-client: {err:#}");
            return ExitCode::from(chat_client::EXIT_LOGIN_REFUSED);
        }
    };
    match config(args, password).and_then(chat_client::run) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("chat-client: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The password from the file's first line, else from CHAT_PASSWORD.
fn password(file: Option<&Path>) -> anyhow::Result<Option<Password>> {
    let (text, source) = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the password file {}", path.display()))?;
            let first = text.lines().next().unwrap_or_default().to_string();
            anyhow::ensure!(
                !first.is_empty(),
                "the password file {} has an empty first line",
                path.display()
            );
            (first, "--password-file")
        }
        None => match std::env::var("CHAT_PASSWORD") {
            Ok(text) if !text.is_empty() => (text, "CHAT_PASSWORD"),
            _ => return Ok(None),
        },
    };
    Ok(Some(Password { text, source }))
}

fn config(args: Args, password: Option<Password>) -> anyhow::Result<Config> {
    let security = if args.no_tls {
        Security::Plain
    } else if let Some(ca) = args.ca {
        Security::Root(ca)
    } else {
        let path = match args.known_hosts {
            Some(path) => path,
            None => directories::ProjectDirs::from("", "", "chat")
                .map(|dirs| dirs.config_dir().join("known_hosts"))
                .context(
                    "cannot find a config directory for known_hosts; pass --known-hosts FILE",
                )?,
        };
        Security::Pinned(KnownHosts::new(path))
    };
    Ok(Config {
        servers: args.server,
        nick: args.nick,
        password,
        security,
        json: args.json,
        reconnect_for: args.reconnect_for,
        keepalive: args.keepalive,
        bell: args.bell == "on",
        downloads: match args.downloads {
            Some(dir) => dir,
            None => default_downloads().context(
                "cannot find a home or data directory for downloads; pass --downloads DIR",
            )?,
        },
    })
}

/// Where files go unless told: the OS's download directory (on Linux the
/// XDG user dirs' DOWNLOAD), else `~/Downloads` if there is one, else a
/// `downloads` folder in the client's data directory (created at the
/// first download) — never the current directory.
fn default_downloads() -> Option<PathBuf> {
    let user = directories::UserDirs::new();
    if let Some(dir) = user.as_ref().and_then(|dirs| dirs.download_dir()) {
        return Some(dir.to_path_buf());
    }
    if let Some(dir) = user
        .as_ref()
        .map(|dirs| dirs.home_dir().join("Downloads"))
        .filter(|dir| dir.is_dir())
    {
        return Some(dir);
    }
    directories::ProjectDirs::from("", "", "chat").map(|dirs| dirs.data_dir().join("downloads"))
}
