//! The network thread's decisions, without its sockets: what a command or
//! a frame calls for (requests to send, lines to show, statuses for the
//! user interface), what a lost connection means (reconnect, when, to
//! which server of the list, or stop), and when leaving may say bye. The
//! worker does the I/O each decision asks for; the tests below drive the
//! engine alone.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chat_common::codec::FrameError;
use chat_common::protocol::MAX_HISTORY;
use chat_common::{ErrorCode, Request, ServerFrame};
use crossbeam_channel::Sender;

use super::backoff::Backoff;
use super::servers::Next;
use super::{without_server, Options, Output, Status};
use crate::command::Command;
use crate::files::{Hashed, Hashing, Transfers};
use crate::session::{Ending, Notice, Session, Update};

/// Everything the network thread knows besides its connection.
pub(super) struct Engine {
    session: Session,
    /// Uploads and downloads under way.
    transfers: Transfers,
    options: Options,
    output: Box<dyn Output>,
    status: Sender<Status>,
    /// The user asked to leave: bye once everything is answered.
    leaving: bool,
    /// The connection is plain TCP (`--no-tls`).
    plaintext: bool,
    /// Logging in again was refused for now: how long to wait, and the
    /// server's reason (taken by [`Engine::stopped`]).
    throttled: Option<(Duration, String)>,
    /// The first login, until it is answered: a cluster node without its
    /// database (`unavailable`) refuses it for now, not for good, so it
    /// goes to the next server as it was typed.
    first_login: Option<FirstLogin>,
    /// The first login was refused as `unavailable`: the next connection
    /// sends it again (any other loss before a welcome ends the client).
    first_again: bool,
}

/// A login as the user typed it (see [`Command::Login`]).
#[derive(Debug, Clone)]
struct FirstLogin {
    nick: String,
    password: String,
    register: Option<bool>,
}

/// What a command asks of the worker, besides the requests it made.
#[derive(Debug)]
pub(super) enum Taken {
    /// Take the next command.
    Next,
    /// Hash this file on a thread of its own, then offer it.
    Hash(Hashing),
    /// Leaving: take no more commands before the loop has gone round.
    Leaving,
    /// Stop now.
    End(Ending),
}

/// Why reading stopped.
#[derive(Debug)]
pub(super) enum Stop {
    /// The connection broke, with the reason for people.
    Broken(String),
    /// The session said it ended (or, for lost and shutdown, the connection).
    Ended(Ending),
}

/// Reconnecting after a lost connection: the backoff, and the last
/// failure shown for each server, so that the same one is not repeated at
/// every try.
#[derive(Debug)]
pub(super) struct Outage {
    backoff: Backoff,
    said: BTreeMap<String, String>,
}

impl Outage {
    fn new(backoff: Backoff) -> Self {
        Outage {
            backoff,
            said: BTreeMap::new(),
        }
    }
}

/// What follows a lost connection.
#[derive(Debug)]
pub(super) enum AfterLoss {
    /// Dial again at `at`.
    Retry {
        outage: Outage,
        at: Instant,
    },
    End(Ending),
}

/// Where the link stands, as leaving needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Connection {
    Up {
        bye_sent: bool,
    },
    /// Waiting to dial again, or dialing.
    Down,
}

/// What leaving calls for now.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Leave {
    Stay,
    /// Everything is answered: send this bye.
    Bye(Request),
    /// Left: nothing is left to deliver, or there never was a session.
    Gone,
}

impl Engine {
    pub(super) fn new(
        session: Session,
        options: Options,
        output: Box<dyn Output>,
        status: Sender<Status>,
        plaintext: bool,
    ) -> Self {
        Engine {
            session,
            transfers: Transfers::new(),
            options,
            output,
            status,
            leaving: false,
            plaintext,
            throttled: None,
            first_login: None,
            first_again: false,
        }
    }

    /// When the output wants its tick.
    pub(super) fn output_due(&self) -> Option<Instant> {
        self.output.due()
    }

    /// Lets the output print what it held back, if it is time.
    pub(super) fn output_tick(&mut self) {
        if self.output.due().is_some_and(|due| due <= Instant::now()) {
            self.output.tick();
        }
    }

    /// Acts on one command from the user interface; the requests it calls
    /// for go to `out`.
    pub(super) fn command(&mut self, command: Command, out: &mut Vec<Request>) -> Taken {
        match command {
            Command::Login {
                nick,
                password,
                register,
            } => {
                self.first_login = Some(FirstLogin {
                    nick: nick.clone(),
                    password: password.clone(),
                    register,
                });
                out.push(self.session.login_as(nick, password, register))
            }
            Command::ChangePassword { old, new } => {
                out.push(self.session.change_password(old, new))
            }
            Command::Say { receiver, text } => {
                for update in self.session.say(receiver, text) {
                    match update {
                        Update::Show(notice) => self.output.local(&notice),
                        Update::Send(request) => out.push(request),
                        _ => {}
                    }
                }
            }
            Command::Online => out.extend(self.session.online()),
            Command::Away { text } => out.extend(self.session.away(text)),
            Command::History { with, mut limit } => {
                if let Some(asked) = limit.filter(|n| *n > MAX_HISTORY) {
                    self.output.local(&Notice::File {
                        text: format!(
                            "{asked} asked: showing the last {MAX_HISTORY} \
                             (the most the server gives)"
                        ),
                    });
                    limit = Some(MAX_HISTORY);
                }
                out.extend(self.session.history(with, limit))
            }
            Command::Search { words, from } => out.extend(self.session.search(words, from)),
            Command::Group(op) => out.extend(self.session.group(op)),
            Command::RefreshRoster => out.extend(self.session.refresh()),
            Command::SendFile { to, path } => match self.transfers.prepare(to, path) {
                Ok(job) => return Taken::Hash(job),
                Err(reason) => self.output.local(&Notice::Error { reason }),
            },
            Command::Accept { file, dir } => {
                let dir = self.download_dir(dir);
                out.push(self.transfers.accept(file, dir));
            }
            Command::Reject { file } => {
                out.push(self.transfers.reject(file));
                self.session.set_offers(self.offers());
            }
            Command::Abandon => {
                self.list_unsent();
                return Taken::End(Ending::Left);
            }
            Command::Leave => {
                self.leaving = true;
                return Taken::Leaving;
            }
        }
        Taken::Next
    }

    /// Where `!accept` puts a file: where it says, else the downloads
    /// directory; made absolute, so that what is said of it says where.
    fn download_dir(&self, dir: Option<PathBuf>) -> PathBuf {
        let dir = dir.unwrap_or_else(|| self.options.downloads.clone());
        std::path::absolute(&dir).unwrap_or(dir)
    }

    /// The offers not yet answered, for completion.
    fn offers(&self) -> Vec<u64> {
        self.transfers.offers.keys().copied().collect()
    }

    /// Handles one frame from the server (`line`, and what it decoded to);
    /// requests it calls for go to `out`. The ending, if it ended the
    /// session (or, for lost and shutdown, the connection).
    pub(super) fn frame(
        &mut self,
        line: &[u8],
        frame: Result<ServerFrame, FrameError>,
        out: &mut Vec<Request>,
    ) -> Option<Ending> {
        let raw = String::from_utf8_lossy(line);
        let frame = match frame {
            Ok(frame) => frame,
            Err(err) => {
                // A newer server may send frames we do not know: say so, go on.
                let reason = format!("unreadable frame from the server: {err}");
                self.output.frame(&raw, &[Notice::Error { reason }]);
                return None;
            }
        };
        let mut notices = Vec::new();
        // File frames feed the transfers; a welcome resumes the unfinished ones.
        let (mut file_requests, says) = self.transfers.on_frame(&frame);
        if matches!(frame, ServerFrame::Welcome { .. }) {
            file_requests.extend(self.transfers.resume());
        }
        notices.extend(says.into_iter().map(|text| Notice::File { text }));
        for progress in self.transfers.take_progress() {
            self.output.progress(&progress);
        }
        self.session.set_offers(self.offers());
        let mut statuses = Vec::new();
        let mut ended = None;
        let mut duplicate = false;
        for update in self.session.on_frame(frame) {
            match update {
                Update::Show(notice) => notices.push(notice),
                Update::LoggedIn(nick) => {
                    self.first_login = None;
                    self.first_again = false;
                    statuses.push(Status::LoggedIn(nick))
                }
                // Not a refusal of us: this connection is over and the
                // login goes to the next server (`stopped`).
                Update::LoginRefused {
                    code: ErrorCode::Unavailable,
                    reason,
                } if self.first_login.is_some() => {
                    self.first_again = true;
                    notices.push(Notice::Error { reason });
                    ended = Some(Ending::Lost);
                }
                Update::LoginRefused { code, reason } => {
                    self.first_login = None;
                    self.first_again = false;
                    statuses.push(Status::LoginRefused { code, reason })
                }
                Update::Send(request) => out.push(request),
                Update::Duplicate => duplicate = true,
                Update::Ended(ending) => ended = Some(ending),
                Update::Throttled { wait, reason } => {
                    // This connection is done; `stopped` schedules the next.
                    self.throttled = Some((wait, reason));
                    ended = Some(Ending::Lost);
                }
            }
        }
        out.extend(file_requests);
        // Printed first, so the welcome line is up before the prompt.
        if !duplicate {
            self.output.frame(&raw, &notices);
        }
        for status in statuses {
            let _ = self.status.send(status);
        }
        ended
    }

    /// After the frames of one read: the `received` for the private
    /// messages shown, if any.
    pub(super) fn received(&mut self) -> Option<Request> {
        self.session.received()
    }

    /// A keepalive `ping`.
    pub(super) fn ping(&mut self) -> Request {
        self.session.ping()
    }

    /// What a dial had to tell: certificates pinned on first use.
    pub(super) fn pinned(&mut self, told: Vec<String>) {
        for text in told {
            self.output.connection(&Notice::Pinned { text });
        }
    }

    /// The server to dial next.
    pub(super) fn server(&self) -> &str {
        self.options.servers.current()
    }

    /// A new connection is up (to [`Engine::server`]): which server it is,
    /// if there are several, and the login again, if one was ever accepted.
    pub(super) fn reconnected(&mut self) -> Option<Request> {
        let servers = &mut self.options.servers;
        servers.connected();
        if servers.is_list() {
            let server = servers.current().to_string();
            self.output.connection(&Notice::Connected { server });
        }
        self.session.relogin().or_else(|| {
            let login = self.first_login.clone().filter(|_| self.first_again)?;
            Some(
                self.session
                    .login_as(login.nick, login.password, login.register),
            )
        })
    }

    /// Reading stopped, for `stop`; `bye_sent` if our bye went out on the
    /// connection, which is closed by now.
    pub(super) fn stopped(&mut self, stop: Stop, bye_sent: bool, now: Instant) -> AfterLoss {
        if let Some((wait, reason)) = self.throttled.take() {
            return self.throttle(wait, reason, now);
        }
        match stop {
            Stop::Broken(reason) => self.broken(bye_sent, reason, now),
            Stop::Ended(Ending::Shutdown) => {
                self.lost(Ending::Shutdown, "the server shut down".into(), now)
            }
            // A cluster node without its database (`unavailable`): another
            // node may have it.
            Stop::Ended(Ending::Lost) => {
                self.lost(Ending::Lost, "the server lost its database".into(), now)
            }
            Stop::Ended(ending) => {
                // Kicked or taken over: no reconnect will send what waits
                // in the outbox, so say what was not stored.
                if matches!(ending, Ending::Kicked | Ending::TakenOver) {
                    self.list_unsent();
                }
                AfterLoss::End(ending)
            }
        }
    }

    /// The connection broke for `reason`: after our bye, the end we asked
    /// for; else as [`Engine::lost`].
    pub(super) fn broken(&mut self, bye_sent: bool, reason: String, now: Instant) -> AfterLoss {
        if bye_sent {
            return AfterLoss::End(Ending::Left);
        }
        self.lost(Ending::Lost, reason, now)
    }

    /// The connection ended as `ending` (lost, or the server shutting
    /// down) at `now`: reconnect if that is allowed and worth it.
    pub(super) fn lost(&mut self, ending: Ending, reason: String, now: Instant) -> AfterLoss {
        let ever = self.session.has_logged_in() || self.first_again;
        self.session.disconnected();
        let allowed = self.options.reconnect_for != Some(Duration::ZERO);
        if !ever || !allowed {
            if ending == Ending::Lost {
                self.say_lost(reason);
            }
            return AfterLoss::End(ending);
        }
        if self.leaving && !self.session.has_unacknowledged() {
            // Nothing left to deliver: no need to come back to say bye.
            return AfterLoss::End(Ending::Left);
        }
        // The server that dropped may be the one that died: the next first.
        let servers = &mut self.options.servers;
        let lost = servers.current().to_string();
        servers.dropped();
        if servers.is_list() {
            let next = servers.current().to_string();
            self.output
                .connection(&Notice::ReconnectingTo { lost, next, reason });
        } else {
            self.output.connection(&Notice::Reconnecting { reason });
        }
        let mut backoff = Backoff::new(now, self.options.reconnect_for);
        match backoff.next_try(now) {
            Some(at) => AfterLoss::Retry {
                outage: Outage::new(backoff),
                at,
            },
            None => AfterLoss::End(self.give_up(&backoff, now)),
        }
    }

    /// Logging in again was refused for `wait` (the server's `reason`):
    /// say so and try again then, unless that is past `--reconnect-for`.
    /// The next try goes to the next server of a list: a busy node's
    /// neighbour may have room, and a cluster shares its login throttle.
    fn throttle(&mut self, wait: Duration, reason: String, now: Instant) -> AfterLoss {
        self.session.disconnected();
        self.options.servers.dropped();
        let backoff = Backoff::new(now, self.options.reconnect_for);
        if self.options.reconnect_for.is_some_and(|limit| wait > limit) {
            self.output.connection(&Notice::Error { reason });
            return AfterLoss::End(self.give_up(&backoff, now));
        }
        self.output.connection(&Notice::Throttled {
            reason,
            retry_in: wait.as_secs(),
        });
        AfterLoss::Retry {
            outage: Outage::new(backoff),
            at: now + wait,
        }
    }

    /// A try to reconnect (to [`Engine::server`]) failed for `reason` at
    /// `now`: the next server at once, or, once every server failed in
    /// this round, the next try after the backoff, or giving up. A round
    /// once begun is finished, so each server gets its chance.
    pub(super) fn retry(&mut self, mut outage: Outage, reason: String, now: Instant) -> AfterLoss {
        let servers = &mut self.options.servers;
        let server = servers.current().to_string();
        let (at, round_over) = match servers.failed() {
            Next::Now => (now, false),
            Next::AfterRound => match outage.backoff.next_try(now) {
                Some(at) => (at, true),
                None => return AfterLoss::End(self.give_up(&outage.backoff, now)),
            },
        };
        if outage.said.get(&server) != Some(&reason) {
            let retry_in = at.saturating_duration_since(now).as_secs_f64().round() as u64;
            let retry_in = retry_in.max(1);
            let notice = if servers.is_list() {
                Notice::Unreachable {
                    next: servers.current().to_string(),
                    reason: without_server(&server, reason.clone()),
                    server: server.clone(),
                    retry_in: round_over.then_some(retry_in),
                }
            } else {
                Notice::RetryFailed {
                    reason: reason.clone(),
                    retry_in,
                }
            };
            self.output.connection(&notice);
        }
        outage.said.insert(server, reason);
        AfterLoss::Retry { outage, at }
    }

    fn give_up(&mut self, backoff: &Backoff, now: Instant) -> Ending {
        let after = backoff.elapsed(now).as_secs();
        self.output.connection(&Notice::GaveUp { after });
        self.list_unsent();
        Ending::Lost
    }

    fn list_unsent(&mut self) {
        for notice in self.session.unsent() {
            self.output.connection(&notice);
        }
    }

    /// Leaving: a bye once everything is answered; or, disconnected with
    /// nothing left to deliver, just going.
    pub(super) fn leave_if_done(&mut self, connection: Connection) -> Leave {
        if !self.leaving {
            return Leave::Stay;
        }
        if !self.session.has_logged_in() {
            return Leave::Gone;
        }
        let waiting = self.session.is_waiting() || self.transfers.busy();
        match connection {
            Connection::Up { bye_sent: false } if self.session.is_logged_in() && !waiting => {
                Leave::Bye(self.session.bye())
            }
            Connection::Down if !self.session.has_unacknowledged() => Leave::Gone,
            _ => Leave::Stay,
        }
    }

    /// A file is hashed: its offer, to send now if logged in (else it is
    /// offered after the next welcome, by `Transfers::resume`).
    pub(super) fn hashed(&mut self, hashed: Hashed) -> Option<Request> {
        match self.transfers.hashed(hashed) {
            Ok(offer) if self.session.is_logged_in() => Some(offer),
            Ok(_) => None,
            Err(reason) => {
                self.output.local(&Notice::Error { reason });
                None
            }
        }
    }

    /// The chunks the upload windows allow, while logged in.
    pub(super) fn pump_files(&mut self) -> Vec<Request> {
        if !self.session.is_logged_in() {
            return Vec::new();
        }
        let (requests, says) = self.transfers.pump();
        for text in says {
            self.output.local(&Notice::File { text });
        }
        requests
    }

    /// Reconnecting met a certificate other than the one pinned: the
    /// warning (`text`, several lines) is printed line by line, not
    /// escaped onto one, listing what was never stored, and the client
    /// stops — exit 1, as when it meets one at start-up.
    pub(super) fn certificate_changed(&mut self, text: String) -> Ending {
        let mut lines = text.lines();
        if let Some(first) = lines.next() {
            self.output.connection(&Notice::Lost {
                reason: first.to_string(),
            });
        }
        for line in lines {
            self.output.connection(&Notice::Error {
                reason: line.to_string(),
            });
        }
        self.list_unsent();
        Ending::Lost
    }

    /// The thread cannot go on (it cannot wait for the server): says why,
    /// as for a connection lost for good.
    pub(super) fn fail(&mut self, reason: String) -> Ending {
        self.say_lost(reason);
        Ending::Lost
    }

    /// Says the connection is lost for good.
    fn say_lost(&mut self, mut reason: String) {
        // A TLS server drops a plaintext client's first line: say so.
        if !self.session.has_logged_in() && self.plaintext {
            reason += " (if the server uses TLS, the default, leave out --no-tls)";
        }
        self.output.connection(&Notice::Lost { reason });
    }

    /// The last word: the output first, then the user interface.
    pub(super) fn finish(&mut self, ending: Ending) {
        self.output.finishing();
        let _ = self.status.send(Status::Finished(ending));
    }
}

#[cfg(test)]
mod tests;
