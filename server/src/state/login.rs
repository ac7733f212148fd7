//! Logging in: the password checked off-thread, the account created or
//! taken over, then what the user missed sent page by page before live
//! messages (Authenticating → Resuming → CatchingUp → Online).

use chat_common::codec::encode;
use chat_common::protocol::{validate_nick, MAX_PASSWORD, WELCOME_NAMES};
use chat_common::{ErrorCode, ServerFrame};

use super::delivery::store_failed;
use super::{fold, ChatState, Deliver, Phase, Refusal, Session};
use crate::auth::{Job, Verdict};
use crate::framework::ConnId;
use crate::store::{Op, Origin, Page, UserId};

impl ChatState {
    pub(super) fn login(&mut self, mut job: Job, out: &mut impl Deliver) -> Result<(), Refusal> {
        validate_nick(&job.nick).map_err(|why| (ErrorCode::NickInvalid, why))?;
        if job.password.is_empty() || job.password.len() > MAX_PASSWORD {
            return Err((
                ErrorCode::PasswordInvalid,
                format!("a password has 1 to {MAX_PASSWORD} bytes"),
            ));
        }
        let session = self
            .sessions
            .get_mut(&job.origin.conn)
            .expect("checked by request");
        session.phase = Phase::Authenticating;
        session.in_flight += 1;
        job.hash = self.accounts.find(&job.nick).map(|a| a.hash.clone());
        out.auth(job);
        Ok(())
    }

    /// The hashers' verdict on a login.
    pub fn authenticated(&mut self, job: Job, verdict: Verdict, now: u64, out: &mut impl Deliver) {
        let conn = job.origin.conn;
        let Some(session) = self.sessions.get_mut(&conn) else {
            return;
        };
        session.in_flight -= 1;
        if session.phase != Phase::Authenticating {
            return self.settle(conn, out);
        }
        let refusal = match verdict {
            Verdict::Verified => match self.accounts.find(&job.nick) {
                Some(account) => return self.attach(job, account.id, false, out),
                None => (ErrorCode::Other, "the account vanished; try again".into()),
            },
            Verdict::Hashed(hash) => {
                if let Some(account) = self.accounts.find(&job.nick) {
                    // Someone registered this nickname while we hashed:
                    // the password must now match theirs.
                    let hash = Some(account.hash.clone());
                    let session = self.sessions.get_mut(&conn).expect("present");
                    session.in_flight += 1;
                    return out.auth(Job { hash, ..job });
                }
                let user = self.accounts.create(&job.nick, hash.clone());
                out.store(Op::CreateAccount {
                    user,
                    nick: job.nick.clone(),
                    hash,
                    time: now,
                });
                return self.attach(job, user, true, out);
            }
            Verdict::WrongPassword => (
                ErrorCode::BadPassword,
                format!("wrong password for {}", job.nick),
            ),
            Verdict::Failed(why) => {
                tracing::error!("checking the password of {}: {why}", job.nick);
                (ErrorCode::Other, "could not check the password".into())
            }
        };
        let session = self.sessions.get_mut(&conn).expect("present");
        session.phase = Phase::New;
        self.answer(conn, job.origin.id, Err(refusal), out);
        self.run_queued(conn, out);
    }

    /// The login succeeded: take the nickname (from another connection if
    /// need be) and ask the store for what the user missed.
    pub(super) fn attach(
        &mut self,
        job: Job,
        user: UserId,
        new_account: bool,
        out: &mut impl Deliver,
    ) {
        let conn = job.origin.conn;
        let quiet = self
            .online
            .get(&user)
            .and_then(|old| self.sessions.get(old))
            .is_some_and(Session::announced);
        if let Some(&old) = self.online.get(&user) {
            self.take_over(old, out);
        }
        let nick = self.accounts.nick(user).to_string();
        self.nicks.insert(fold(&nick), conn);
        self.online.insert(user, conn);
        let session = self.sessions.get_mut(&conn).expect("present");
        session.user = Some(user);
        session.nick = Some(nick);
        session.phase = Phase::Resuming {
            id: job.origin.id,
            new_account,
            quiet,
        };
        session.in_flight += 1;
        out.store(Op::Backlog {
            origin: job.origin,
            user,
            last_seq: job.last_seq,
            last_public: job.last_public,
            first: true,
        });
    }

    /// The client asks for the next page of what it missed.
    pub(super) fn more(&mut self, conn: ConnId, id: u64, out: &mut impl Deliver) {
        let Some(session) = self.sessions.get_mut(&conn) else {
            return;
        };
        let (
            Phase::CatchingUp {
                last_seq,
                last_public,
                ..
            },
            Some(user),
        ) = (session.phase, session.user)
        else {
            return;
        };
        session.in_flight += 1;
        out.store(Op::Backlog {
            origin: Origin { conn, id },
            user,
            last_seq: Some(last_seq),
            last_public,
            first: false,
        });
    }

    /// Closes `old`, whose user just logged in elsewhere; nobody else is
    /// told (the user has not left).
    pub(super) fn take_over(&mut self, old: ConnId, out: &mut impl Deliver) {
        let Some(session) = self.sessions.remove(&old) else {
            return;
        };
        self.forget(old, &session, out);
        let frame = ServerFrame::Error {
            id: None,
            code: ErrorCode::TakenOver,
            reason: "you logged in from somewhere else; this connection is closed".into(),
        };
        out.send(old, encode(&frame));
        out.close(old);
        self.sessions.insert(
            old,
            Session {
                phase: Phase::Leaving,
                ..session
            },
        );
    }

    /// The store has read a page of what the user missed: the first comes
    /// after the welcome, the others after the `replay` answering `more`.
    /// Live messages start once the last page is out.
    pub(super) fn resumed(
        &mut self,
        origin: Origin,
        user: UserId,
        result: Result<Page, String>,
        out: &mut impl Deliver,
    ) {
        let conn = origin.conn;
        let Some(session) = self.sessions.get_mut(&conn) else {
            return;
        };
        if session.user != Some(user) {
            return;
        }
        let page = match result {
            Ok(page) => page,
            Err(why) => {
                tracing::error!("reading the backlog of {:?}: {why}", session.nick);
                out.send(conn, encode(&store_failed(origin.id, &why)));
                self.leave(conn, "internal error", out);
                return;
            }
        };
        let quiet = match session.phase {
            Phase::Resuming {
                id,
                new_account,
                quiet,
            } => {
                let nick = session.nick.clone().expect("resuming has a nick");
                let online: Vec<String> = self.online_iter().take(WELCOME_NAMES).collect();
                let welcome = ServerFrame::Welcome {
                    id,
                    nick,
                    online_more: (self.nicks.len() - online.len()) as u32,
                    online,
                    new_account,
                    replay: page.messages.len() as u32,
                    replay_left: page.left,
                    public_seq: page.public_head,
                };
                out.send(conn, encode(&welcome));
                quiet
            }
            Phase::CatchingUp { quiet, .. } => {
                let replay = ServerFrame::Replay {
                    id: origin.id,
                    count: page.messages.len() as u32,
                    left: page.left,
                };
                out.send(conn, encode(&replay));
                quiet
            }
            _ => return,
        };
        self.redelivered += page.messages.len() as u64;
        for m in page.messages {
            let frame = ServerFrame::Message {
                seq: m.seq,
                sender: m.sender,
                receiver: m.receiver,
                text: m.text,
                time: m.time,
                away: m.away,
            };
            out.send(conn, encode(&frame));
        }
        let session = self.sessions.get_mut(&conn).expect("present");
        if page.left > 0 {
            session.phase = Phase::CatchingUp {
                quiet,
                last_seq: page.last_seq,
                last_public: page.last_public,
            };
            return;
        }
        session.phase = Phase::Online;
        let nick = session.nick.clone().expect("resuming has a nick");
        out.subscribe(conn);
        if !quiet {
            self.presence.joined(&nick);
        }
        self.run_queued(conn, out);
    }
}
