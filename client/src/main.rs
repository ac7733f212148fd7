//! `chat-client`: command-line flags in, exit status out; the work is in the
//! library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chat_client::known_hosts::KnownHosts;
use chat_client::{Config, Security};
use clap::Parser;

/// Terminal client for the chat server.
///
/// With a terminal on stdin it is interactive: it asks for a nickname unless
/// --nick is given, then reads lines with history and Tab completion. A line
/// goes to everyone; type !help for the commands (!private, !online, !bye …).
///
/// Otherwise it runs in pipe mode, for scripts: the nickname is --nick or the
/// first line of stdin, each further line is handled as if typed, and each
/// event is printed as one line on stdout. At end of input it waits until the
/// server has answered everything sent, says bye and exits. Refused messages
/// (say, to someone not online) are printed as `! reason` lines but do not
/// change the exit status. In pipe mode stdout carries only what the server
/// said; hints, help and notices go to stderr.
#[derive(Debug, Parser)]
#[command(
    name = "chat-client",
    version,
    after_help = "\
Exit status:
  0  left with !bye, .exit or end of input; or kicked; or the server shut down
  1  could not connect, certificate refused, or the connection was lost
  2  pipe mode: the login was refused or no nickname was given;
     or the command line was wrong

TLS: the server's certificate is verified against --ca if given, else against
the system roots; if that fails, its SHA-256 fingerprint is pinned on first
use in the known_hosts file and must match on later connections."
)]
struct Args {
    /// Server to connect to.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50445")]
    server: String,

    /// Nickname to log in with (otherwise asked for, or read from stdin's
    /// first line in pipe mode).
    #[arg(long, value_name = "NICK")]
    nick: Option<String>,

    /// Connect without TLS (plain TCP).
    #[arg(long, conflicts_with = "ca")]
    no_tls: bool,

    /// PEM root certificate to verify the server strictly against (the host
    /// name must match the host part of --server); disables pinning.
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
}

fn main() -> ExitCode {
    let args = Args::parse();
    match config(args).and_then(chat_client::run) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("chat-client: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn config(args: Args) -> anyhow::Result<Config> {
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
        server: args.server,
        nick: args.nick,
        security,
        json: args.json,
    })
}
