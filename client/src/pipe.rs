//! Pipe mode, for scripts and bots: each stdin line is handled as if typed,
//! each event is one line on stdout; at end of input, wait until every
//! message is stored and every question answered (reconnecting if need be,
//! for at most `--reconnect-for`), say bye and exit.
//!
//! stdout carries what the server said (rendered, or raw with `--json`)
//! and, rendered, the echo of each private message sent with its number;
//! everything else local (hints, help, a pinned certificate, a lost
//! connection, reconnecting) goes to stderr, so stdout stays
//! machine-readable.

use std::io::{self, BufRead, Write};
use std::process::ExitCode;
use std::thread;

use anyhow::Context;
use chrono::Local;
use crossbeam_channel::{select, Receiver};

use crate::command::{self, Command, Line};
use crate::net::{self, Net, Output, Status};
use crate::refusal::refusal;
use crate::render::Renderer;
use crate::roster::SharedRoster;
use crate::session::{Ending, Notice};
use crate::{exit_code, Config, EXIT_LOGIN_REFUSED, PIPE_RECONNECT_FOR};

/// Prints to stdout, one flushed line per event.
struct PipeOutput {
    json: bool,
    renderer: Renderer,
}

impl Output for PipeOutput {
    fn frame(&mut self, raw: &str, notices: &[Notice]) {
        let mut out = io::stdout().lock();
        // A closed stdout (`| head -1`) is the reader's choice, not an error.
        let _ = if self.json {
            writeln!(out, "{raw}")
        } else {
            notices
                .iter()
                .try_for_each(|n| writeln!(out, "{}", self.renderer.line(n, Local::now())))
        };
        let _ = out.flush();
    }

    /// The echo of a message sent; nothing with `--json`, where stdout is
    /// only frames.
    fn local(&mut self, notice: &Notice) {
        if !self.json {
            self.frame("", std::slice::from_ref(notice));
        }
    }

    fn connection(&mut self, notice: &Notice) {
        eprintln!("{}", self.renderer.line(notice, Local::now()));
    }
}

pub fn run(config: &Config) -> anyhow::Result<ExitCode> {
    let Some(password) = config.password.as_ref().map(|p| p.text.clone()) else {
        eprintln!(
            "no password: pass --password-file FILE or set CHAT_PASSWORD \
             (pipe mode does not prompt)"
        );
        return Ok(ExitCode::from(EXIT_LOGIN_REFUSED));
    };
    let renderer = Renderer { colour: false };
    let dial = config.dial();
    let mut servers = config.servers.clone();
    let stream = net::connect(&mut servers, &dial, &mut |notice| {
        eprintln!("{}", renderer.line(notice, Local::now()))
    })?;
    let output = PipeOutput {
        json: config.json,
        renderer,
    };
    let net = Net::spawn(
        stream,
        dial,
        config.options(Some(PIPE_RECONNECT_FOR), servers),
        SharedRoster::default(),
        Box::new(output),
    )
    .context("cannot start the network thread")?;
    let lines = read_stdin();

    if let Some(code) = login(config, password, &net, &lines) {
        return Ok(code);
    }

    loop {
        select! {
            recv(lines) -> line => match line.map(|line| command::parse(&line)) {
                Ok(Line::Command(Command::Leave)) | Err(_) => break,
                Ok(Line::Command(command)) => net.send(command),
                Ok(Line::Local(local)) => tell(&local),
            },
            recv(net.status()) -> status => match status {
                Ok(Status::Finished(ending)) => return Ok(exit_code(ending)),
                Ok(_) => {}
                Err(_) => return Ok(exit_code(Ending::Lost)),
            },
        }
    }
    net.send(Command::Leave);
    Ok(exit_code(net.wait()))
}

/// Logs in with --nick or the first line; the exit status if that failed.
fn login(
    config: &Config,
    password: String,
    net: &Net,
    lines: &Receiver<String>,
) -> Option<ExitCode> {
    let nick = match &config.nick {
        Some(nick) => nick.clone(),
        None => select! {
            recv(lines) -> line => match line {
                Ok(line) => line.trim().to_string(),
                Err(_) => {
                    eprintln!("no nickname: pass --nick NICK or write it on the first line of input");
                    return Some(ExitCode::from(EXIT_LOGIN_REFUSED));
                }
            },
            // Before a login, the only status is the end.
            recv(net.status()) -> status => return Some(exit_code(match status {
                Ok(Status::Finished(ending)) => ending,
                _ => net.wait(),
            })),
        },
    };
    // Scripts create accounts with their one password, as before: there
    // is nobody to ask twice.
    net.send(Command::Login {
        nick: nick.clone(),
        password,
        register: None,
    });
    match net.status().recv() {
        Ok(Status::LoggedIn(_)) => None,
        Ok(Status::LoginRefused { code, reason }) => {
            // Pipe mode never tries again: a script decides.
            eprintln!("login refused: {}", refusal(code, &nick, &reason).0);
            Some(ExitCode::from(EXIT_LOGIN_REFUSED))
        }
        Ok(Status::Finished(ending)) => Some(exit_code(ending)),
        Err(_) => Some(exit_code(net.wait())),
    }
}

/// Answers a line that asks nothing of the server, on stderr.
fn tell(local: &command::Local) {
    if let Some(text) = local.text() {
        eprintln!("{text}");
    }
}

/// Lines of stdin on a channel, which closes at end of input, so the main
/// loop can wait for input and the server at once.
fn read_stdin() -> Receiver<String> {
    let (tx, rx) = crossbeam_channel::unbounded();
    thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match stdin.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim_end_matches('\n').trim_end_matches('\r');
            if tx.send(line.to_string()).is_err() {
                return;
            }
        }
    });
    rx
}
