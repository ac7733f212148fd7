//! The operator's sanctions: a ban keeps an account from logging in, a mute
//! keeps it from sending messages; each for a time or until lifted. Kept in
//! memory for the checks and in the store so they survive a restart. In a
//! cluster the store's list is the truth: a change on any node reloads it
//! here (`Heard::Sanctions`), and a user online here newly banned is
//! kicked, one newly muted told, as if this node's console had said so.

use std::collections::HashMap;

use chat_common::codec::encode;
use chat_common::{ErrorCode, ServerFrame};

use super::Op;
use super::{fold, ChatState, Deliver, Rejection};
use crate::store::{Sanction, SanctionKind, UserId};

#[derive(Debug, Default)]
pub struct Sanctions {
    /// (account, kind) → until (Unix ms), `None` for good.
    active: HashMap<(UserId, SanctionKind), Option<u64>>,
}

impl Sanctions {
    pub fn new(list: Vec<Sanction>) -> Self {
        Sanctions {
            active: list
                .into_iter()
                .map(|s| ((s.user, s.kind), s.until))
                .collect(),
        }
    }

    /// `Some(until)` if `user` is under `kind` at `now`.
    fn get(&self, user: UserId, kind: SanctionKind, now: u64) -> Option<Option<u64>> {
        self.active
            .get(&(user, kind))
            .copied()
            .filter(|until| until.is_none_or(|t| t > now))
    }
}

/// "for good" or "for another 9 min", for people.
fn remaining(until: Option<u64>, now: u64) -> String {
    match until {
        None => "until the operator lifts it".into(),
        Some(t) => {
            let secs = t.saturating_sub(now).div_ceil(1000);
            match secs {
                0..=59 => format!("for another {secs} s"),
                60..=7199 => format!("for another {} min", secs.div_ceil(60)),
                _ => format!("for another {} h", secs.div_ceil(3600)),
            }
        }
    }
}

impl ChatState {
    /// Why `nick` may not log in now, if it is banned.
    pub(super) fn ban_refusal(&self, nick: &str, now: u64) -> Option<Rejection> {
        let user = self.accounts.find(nick)?.id;
        let until = self.sanctions.get(user, SanctionKind::Ban, now)?;
        Some((
            ErrorCode::Banned,
            format!("{nick} is banned {}", remaining(until, now)),
        ))
    }

    /// Why `user` may not send a message now, if it is muted.
    pub(super) fn mute_refusal(&self, user: UserId, now: u64) -> Option<Rejection> {
        let until = self.sanctions.get(user, SanctionKind::Mute, now)?;
        Some((
            ErrorCode::Muted,
            format!("you are muted {}", remaining(until, now)),
        ))
    }

    /// Why the user on `conn` may not send a message now, if muted.
    pub(super) fn muted(&self, conn: super::ConnId, now: u64) -> Option<Rejection> {
        let user = self.sessions.get(&conn)?.user?;
        self.mute_refusal(user, now)
    }

    /// The account `nick` names (under any look-alike spelling): its id and
    /// its name as registered.
    fn account_named(&self, nick: &str) -> Result<(UserId, String), String> {
        let account = self
            .accounts
            .find(nick)
            .ok_or_else(|| format!("no account is called {nick}"))?;
        Ok((account.id, account.nick.clone()))
    }

    /// Bans or mutes `nick` (registered, online or not) until `until`
    /// (Unix ms; `None`: until lifted). A banned user online is kicked.
    pub fn sanction(
        &mut self,
        kind: SanctionKind,
        nick: &str,
        until: Option<u64>,
        now: u64,
        out: &mut impl Deliver,
    ) -> Result<String, String> {
        let (user, nick) = self.account_named(nick)?;
        self.sanctions.active.insert((user, kind), until);
        out.store(Op::Sanction(Sanction { user, kind, until }, false));
        let how = remaining(until, now);
        match kind {
            SanctionKind::Ban => {
                if self.nicks.contains_key(&fold(&nick)) {
                    let _ = self.kick(&nick, &format!("banned {how}"), out);
                }
                Ok(format!("banned {nick} {how}"))
            }
            SanctionKind::Mute => {
                if let Some(&conn) = self.nicks.get(&fold(&nick)) {
                    let frame = ServerFrame::Announce {
                        text: format!("the operator muted you {how}"),
                        time: now,
                    };
                    out.send(conn, encode(&frame));
                }
                Ok(format!("muted {nick} {how}"))
            }
        }
    }

    /// Another node changed the bans or mutes: `list` (the store's, whole)
    /// replaces this node's; a user online here under a new ban is kicked
    /// and one under a new mute told, with a local sanction's frames.
    pub(super) fn sanctions_reloaded(
        &mut self,
        list: Vec<Sanction>,
        now: u64,
        out: &mut impl Deliver,
    ) {
        let old = std::mem::replace(&mut self.sanctions, Sanctions::new(list));
        let mut new: Vec<(UserId, SanctionKind, Option<u64>)> = self
            .sanctions
            .active
            .keys()
            .filter_map(|&(user, kind)| {
                let until = self.sanctions.get(user, kind, now)?;
                (old.get(user, kind, now) != Some(until)).then_some((user, kind, until))
            })
            .collect();
        new.sort_unstable_by_key(|&(user, kind, _)| (user, kind == SanctionKind::Mute));
        for (user, kind, until) in new {
            let Some(&conn) = self.online.get(&user) else {
                continue;
            };
            let how = remaining(until, now);
            let nick = self.accounts.nick(user).to_string();
            match kind {
                SanctionKind::Ban => {
                    tracing::warn!("{nick} was banned {how} on another node: kicked here");
                    let _ = self.kick(&nick, &format!("banned {how}"), out);
                }
                SanctionKind::Mute => {
                    let frame = ServerFrame::Announce {
                        text: format!("the operator muted you {how}"),
                        time: now,
                    };
                    out.send(conn, encode(&frame));
                }
            }
        }
    }

    /// Another node's operator kicked `user`: if online here, the session
    /// ends as a kick on this node's console ends it.
    pub(super) fn kicked_elsewhere(&mut self, user: UserId, reason: &str, out: &mut impl Deliver) {
        if !self.online.contains_key(&user) {
            return;
        }
        let nick = self.accounts.nick(user).to_string();
        tracing::warn!("kicked {nick} from another node: {reason}");
        let _ = self.kick(&nick, reason, out);
    }

    /// Lifts a ban or mute.
    pub fn lift(
        &mut self,
        kind: SanctionKind,
        nick: &str,
        out: &mut impl Deliver,
    ) -> Result<String, String> {
        let (user, nick) = self.account_named(nick)?;
        let what = match kind {
            SanctionKind::Ban => "banned",
            SanctionKind::Mute => "muted",
        };
        if self.sanctions.active.remove(&(user, kind)).is_none() {
            return Err(format!("{nick} is not {what}"));
        }
        out.store(Op::Sanction(
            Sanction {
                user,
                kind,
                until: None,
            },
            true,
        ));
        Ok(format!("{nick} is no longer {what}"))
    }
}
