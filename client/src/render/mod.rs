//! Turning what happened ([`Notice`]) into one display line: the
//! `[HH:MM:SS]` stamp in local time, the exact wording, and optional colour.
//! The wording lives by subject: chat messages (`chat`), the states of
//! ours (`delivery`), history answers (`history`), groups (`groups`),
//! the room (`room`), the connection (`connection`); `words` holds
//! what they share, such as escaping other people's text.

mod chat;
mod connection;
mod delivery;
mod groups;
mod history;
mod room;
mod words;

use std::borrow::Cow;

use chrono::{DateTime, Local};

use crate::session::Notice;

pub use words::{clean, names};

/// Renders notices, with ANSI colours or without.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renderer {
    pub colour: bool,
}

const DIM: &str = "\x1b[2m";
const BOLD_CYAN: &str = "\x1b[1;36m";
const BOLD_GREEN: &str = "\x1b[1;32m";
const MAGENTA: &str = "\x1b[35m";
const YELLOW: &str = "\x1b[33m";
const BOLD_YELLOW: &str = "\x1b[1;33m";
const RED: &str = "\x1b[31m";
const RESET: &str = "\x1b[0m";
/// The text of a message that wants attention: a private one, or one
/// that names us.
const HIGHLIGHT: &str = "\x1b[1;35m";

impl Renderer {
    /// Colour `text` if colours are on.
    fn paint<'a>(&self, colour: &str, text: &'a str) -> Cow<'a, str> {
        if self.colour {
            Cow::Owned(format!("{colour}{text}{RESET}"))
        } else {
            Cow::Borrowed(text)
        }
    }

    /// One line, without a newline. `now` stamps notices the server did not
    /// time itself.
    pub fn line(&self, notice: &Notice, now: DateTime<Local>) -> String {
        self.line_marked(notice, now, false)
    }

    /// Like [`Renderer::line`], with the message's text highlighted (when
    /// colours are on) if `marked`.
    pub fn line_marked(&self, notice: &Notice, now: DateTime<Local>, marked: bool) -> String {
        let at = notice
            .time()
            .and_then(|ms| DateTime::from_timestamp_millis(i64::try_from(ms).ok()?))
            .map_or(now, |utc| utc.with_timezone(&Local));
        // Messages from another day (caught up, history) carry the date.
        let format = if at.date_naive() == now.date_naive() {
            "[%H:%M:%S]"
        } else {
            "[%Y-%m-%d %H:%M:%S]"
        };
        let stamp = at.format(format).to_string();
        format!("{} {}", self.paint(DIM, &stamp), self.body(notice, marked))
    }

    /// The message's text, highlighted if `marked`.
    fn text<'a>(&self, text: &'a str, marked: bool) -> Cow<'a, str> {
        if marked {
            Cow::Owned(self.paint(HIGHLIGHT, &clean(text)).into_owned())
        } else {
            clean(text)
        }
    }

    /// The line after the stamp: one arm per notice, worded by subject.
    fn body(&self, notice: &Notice, marked: bool) -> String {
        use Notice::*;
        match notice {
            Public {
                sender,
                text,
                own,
                away,
                ..
            } => self.public(sender, text, *own, *away, marked),
            Group {
                group,
                sender,
                text,
                own,
                away,
                ..
            } => self.group_message(group, sender, text, *own, *away, marked),
            PrivateFrom {
                sender, text, away, ..
            } => self.private_from(sender, text, *away, marked),
            Announce { text, .. } => self.announce(text),
            PrivateTo {
                receiver,
                text,
                number,
            } => self.private_to(receiver, text, *number),
            PrivateSent {
                receiver,
                text,
                number,
                state,
            } => self.private_sent(receiver, text, *number, *state),
            States { stored, delivered } => self.states(stored, delivered),
            PublicPending { text, number } => self.public_pending(text, *number),
            Stored {
                number,
                receiver,
                offline,
            } => self.stored(*number, receiver, *offline),
            Delivered { number, receiver } => self.delivered(*number, receiver),
            Refused {
                number,
                receiver,
                reason,
            } => self.refused(*number, receiver, reason),
            Unsent {
                number,
                receiver,
                text,
            } => self.unsent(*number, receiver, text),
            HistoryStart { query, count } => self.history_start(query, *count),
            Past {
                sender,
                receiver,
                text,
                me,
                ..
            } => self.past(sender, receiver, text, me),
            GroupInfo {
                verb,
                group,
                members,
                online,
            } => self.group_info(verb, group, members, online),
            GroupList { groups } => self.group_list(groups),
            GroupLeft { group } => self.group_left(group),
            GroupChanged { group, by, added } => self.group_changed(group, by, *added),
            Welcome { nick, online, more } => self.welcome(nick, online, *more),
            AccountCreated { nick } => self.account_created(nick),
            PasswordChanged => self.system("password changed: log in with the new one from now on"),
            CaughtUp { count } => self.caught_up(*count),
            Reconnected { count } => self.reconnected(*count),
            Joined { nicks, more } => self.joined(nicks, *more),
            Left { departures, more } => self.left(departures, *more),
            Kicked { nick, reason } => self.kicked(nick, reason),
            Shutdown { reason } => self.shutdown(reason),
            Online { users, away } => self.online(users, away),
            Away { text } => self.away_status(text.as_deref()),
            Error { reason } => self.error(reason),
            File { text } => self.file(text),
            Lost { reason } => self.lost(reason),
            Reconnecting { reason } => self.reconnecting(reason),
            RetryFailed { reason, retry_in } => self.retry_failed(reason, *retry_in),
            GaveUp { after } => self.gave_up(*after),
            Pinned { text } => self.system(&clean(text)),
            Connected { server } => self.system(&format!("connected to {}", clean(server))),
            ReconnectingTo { lost, next, reason } => self.reconnecting_to(lost, next, reason),
            Unreachable {
                server,
                next,
                reason,
                retry_in,
            } => self.unreachable(server, next, reason, *retry_in),
            Throttled { reason, retry_in } => self.throttled(reason, *retry_in),
        }
    }

    /// ` (while you were away)`, dimmed, for a message caught up.
    fn away(&self, away: bool) -> String {
        if away {
            format!(" {}", self.paint(DIM, "(while you were away)"))
        } else {
            String::new()
        }
    }

    /// A line about the chat rather than in it: `* …`.
    fn system(&self, text: &str) -> String {
        self.paint(YELLOW, &format!("* {text}")).into_owned()
    }

    /// `! reason`: the server refused something.
    fn error(&self, reason: &str) -> String {
        self.paint(RED, &format!("! {}", clean(reason))).into()
    }

    /// `* text`, dimmed: a file transfer's news.
    fn file(&self, text: &str) -> String {
        self.paint(DIM, &format!("* {}", clean(text))).into()
    }
}

#[cfg(test)]
mod tests;
