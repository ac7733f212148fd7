//! Logging in: the password checked off-thread, the account created or
//! taken over, then what the user missed sent page by page before live
//! messages (Authenticating → Resuming → CatchingUp → Online).

use chat_common::codec::encode;
use chat_common::protocol::{validate_nick, MAX_PASSWORD};
use chat_common::{ErrorCode, ServerFrame};

use super::delivery::store_failed;
use super::policy::Registration;
use super::Op;
use super::{fold, ChatState, Deliver, Phase, Rejection, Session};
use crate::chat::auth::{Check, Verdict};
use crate::chat::state::identity;
use crate::chat::state::throttle::{self, Attempt, Gate, Unparked};
use crate::framework::ConnId;
use crate::store::{Failure, Origin, Page, StoreError, UserId};

impl ChatState {
    /// A login request: checked against the rules (nickname, password
    /// length, reserved names, plaintext, look-alikes, the throttle, the
    /// hashers' queue) before its password goes to be hashed.
    /// `register`: whether a missing account may be created (`false`:
    /// `no_such_user` instead, so a client can confirm a new password).
    pub(super) fn login(
        &mut self,
        mut job: Check,
        register: bool,
        now: u64,
        out: &mut impl Deliver,
    ) -> Result<(), Rejection> {
        self.refuse_if_fenced()?;
        validate_nick(&job.nick).map_err(|why| (ErrorCode::NickInvalid, why))?;
        let shown = identity::display(&job.nick);
        validate_nick(&shown).map_err(|why| {
            (
                ErrorCode::NickInvalid,
                format!("{why}, once normalised (NFKC) to {shown:?}"),
            )
        })?;
        if job.password.is_empty() || job.password.len() > MAX_PASSWORD {
            return Err((
                ErrorCode::PasswordInvalid,
                format!("a password has 1 to {MAX_PASSWORD} bytes"),
            ));
        }
        if identity::is_reserved(&job.nick) {
            return Err((
                ErrorCode::NickReserved,
                format!(
                    "{} is reserved (it would pass for the server or its operator); \
                     choose another nickname",
                    job.nick
                ),
            ));
        }
        let session = self
            .sessions
            .get(&job.origin.conn)
            .expect("checked by request");
        if !self.policy.plaintext.allows(session.info.tls, job.peer) {
            return Err((
                ErrorCode::PlaintextRefused,
                "this server takes passwords only over TLS from your address; \
                 connect with TLS (without --no-tls)"
                    .into(),
            ));
        }
        match self.accounts.find(&job.nick) {
            Some(account) => {
                job.account = Some(account.id);
                job.hash = Some(account.hash.clone());
            }
            None if !register => {
                return Err((
                    ErrorCode::NoSuchUser,
                    format!(
                        "no account is called {}; log in with register to create it",
                        job.nick
                    ),
                ))
            }
            None => {
                self.refuse_lookalike(&job.nick)?;
                self.may_register(job.peer, now)?;
            }
        }
        if self.pending_logins >= self.policy.max_pending {
            // Unless the throttle would refuse it anyway, which costs nothing.
            if let Gate::Shut { retry_at } = self.throttle.gate(job.attempt(), now) {
                return Err(too_many_attempts(retry_at, now));
            }
            return Err((
                ErrorCode::Busy,
                format!(
                    "the server is checking {} logins already; try again in a few seconds",
                    self.pending_logins
                ),
            ));
        }
        let conn = job.origin.conn;
        self.admit(job, now, out)?;
        let session = self.sessions.get_mut(&conn).expect("checked by request");
        session.phase = Phase::Authenticating;
        session.in_flight += 1;
        Ok(())
    }

    /// Whether `peer` may create an account now (`--registration`,
    /// `--registrations-per-hour`); if so, the attempt is counted.
    fn may_register(&mut self, peer: std::net::IpAddr, now: u64) -> Result<(), Rejection> {
        if self.policy.registration == Registration::Closed {
            return Err((
                ErrorCode::RegistrationClosed,
                "this server takes no new accounts: ask its operator to register you \
                 (/register on the console), or log in to your account"
                    .into(),
            ));
        }
        let limit = self.policy.registrations_per_hour;
        if let Err(retry_at) = self.registrations.check(peer, limit, now) {
            let minutes = retry_at.saturating_sub(now).div_ceil(60_000).max(1);
            return Err((
                ErrorCode::TooManyAttempts,
                format!(
                    "{limit} new accounts from your address in the last hour; \
                     try again in {minutes} min, or log in to an account you have"
                ),
            ));
        }
        self.registrations.record(peer, limit, now);
        Ok(())
    }

    /// Creates the account `nick` for the operator (`/register`); its
    /// spelling as registered, or why not.
    pub fn register(
        &mut self,
        nick: &str,
        hash: String,
        now: u64,
        out: &mut impl Deliver,
    ) -> Result<String, String> {
        validate_nick(nick)?;
        validate_nick(&identity::display(nick))?;
        if identity::is_reserved(nick) {
            return Err(format!("{nick} is reserved"));
        }
        if let Some(account) = self.accounts.find(nick) {
            return Err(format!("{} has an account already", account.nick));
        }
        self.refuse_lookalike(nick).map_err(|(_, why)| why)?;
        let user = self.accounts.create(nick, hash.clone());
        let nick = self.accounts.nick(user).to_string();
        out.store(Op::CreateAccount {
            user,
            folded: fold(&nick),
            key: identity::key(&nick),
            nick: nick.clone(),
            hash,
            time: now,
        });
        Ok(nick)
    }

    /// A new account may not take a name that looks like an existing one.
    fn refuse_lookalike(&self, nick: &str) -> Result<(), Rejection> {
        match self.accounts.lookalike(nick) {
            Some(other) => Err((
                ErrorCode::NickTaken,
                format!(
                    "{nick} looks too much like {}, which is taken; choose another nickname",
                    other.nick
                ),
            )),
            None => Ok(()),
        }
    }

    /// Sends a login's password to the hashers, parks it until checks in
    /// progress are decided, or refuses it, as the throttle says.
    fn admit(&mut self, job: Check, now: u64, out: &mut impl Deliver) -> Result<(), Rejection> {
        let attempt = job.attempt();
        match self.throttle.gate(attempt, now) {
            Gate::Shut { retry_at } => return Err(too_many_attempts(retry_at, now)),
            Gate::Wait => self.throttle.park(attempt, job),
            Gate::Go => {
                self.throttle.begin(attempt);
                out.auth(job);
            }
        }
        self.pending_logins += 1;
        Ok(())
    }

    /// Lets go the parked logins whose turn has come: to the hashers, or
    /// refused if the checks they waited for used up the limit.
    pub(super) fn unpark(&mut self, now: u64, out: &mut impl Deliver) {
        let sessions = &self.sessions;
        let waiting = |job: &Check| {
            sessions
                .get(&job.origin.conn)
                .is_some_and(|s| s.phase == Phase::Authenticating)
        };
        for unparked in self.throttle.unpark(now, waiting) {
            match unparked {
                Unparked::Go(job) => out.auth(job),
                Unparked::Dropped(_) => self.pending_logins -= 1,
                Unparked::Shut(job, retry_at) => {
                    self.pending_logins -= 1;
                    let refusal = too_many_attempts(retry_at, now);
                    self.refuse_login(job.origin, refusal, now, out);
                }
            }
        }
    }

    /// Answers a login that was under way with an error; the connection
    /// may try again.
    fn refuse_login(
        &mut self,
        origin: Origin,
        refusal: Rejection,
        now: u64,
        out: &mut impl Deliver,
    ) {
        let Some(session) = self.sessions.get_mut(&origin.conn) else {
            return;
        };
        session.in_flight -= 1;
        session.phase = Phase::New;
        out.bind(origin.conn, None);
        self.answer(origin.conn, origin.id, Err(refusal), out);
        self.run_queued(origin.conn, now, out);
    }

    /// `password`: checks `old` (with the throttle, as a login would) and
    /// has `new` hashed; answered once the new hash is stored.
    pub(super) fn change_password(
        &mut self,
        origin: Origin,
        old: String,
        new: String,
        now: u64,
        out: &mut impl Deliver,
    ) -> Result<(), Rejection> {
        if new.is_empty() || new.len() > MAX_PASSWORD {
            return Err((
                ErrorCode::PasswordInvalid,
                format!("a password has 1 to {MAX_PASSWORD} bytes"),
            ));
        }
        let session = &self.sessions[&origin.conn];
        let (user, peer) = (session.user.expect("online"), session.info.peer.ip());
        let account = self.accounts.get(user);
        let job = Check {
            origin,
            peer,
            nick: account.nick.clone(),
            password: old,
            account: Some(user),
            hash: Some(account.hash.clone()),
            last_seq: None,
            last_public: None,
            change: Some(new),
        };
        if self.pending_logins >= self.policy.max_pending {
            return Err((
                ErrorCode::Busy,
                "the server is busy; try again in a few seconds".into(),
            ));
        }
        // Not parked like a login (only logins wait for their turn): a
        // change that could use up the last tries is checked all the same.
        if let Gate::Shut { retry_at } = self.throttle.gate(job.attempt(), now) {
            return Err(too_many_attempts(retry_at, now));
        }
        self.throttle.begin(job.attempt());
        self.pending_logins += 1;
        self.sessions
            .get_mut(&origin.conn)
            .expect("online")
            .in_flight += 1;
        out.auth(job);
        Ok(())
    }

    /// The hashers' verdict on a password change.
    fn password_changed(&mut self, job: Check, verdict: Verdict, out: &mut impl Deliver) {
        let origin = job.origin;
        let Some(session) = self.sessions.get_mut(&origin.conn) else {
            return;
        };
        session.in_flight -= 1;
        let user = job.account.expect("a change has its account");
        let result = match verdict {
            Verdict::Hashed(hash) => {
                self.accounts.set_hash(user, hash.clone());
                out.store(Op::SetPassword { user, hash });
                Ok(ServerFrame::Ack {
                    id: origin.id,
                    offline: false,
                    duplicate: false,
                })
            }
            Verdict::WrongPassword => Err((
                ErrorCode::BadPassword,
                "that is not your current password".into(),
            )),
            Verdict::Verified | Verdict::Failed(_) => {
                tracing::error!("changing the password of {}: {verdict:?}", job.nick);
                Err((ErrorCode::Other, "could not change the password".into()))
            }
        };
        self.answer(origin.conn, origin.id, result, out);
        self.settle(origin.conn, out);
    }

    /// The hashers' verdict on a login or a password change.
    pub fn authenticated(
        &mut self,
        job: Check,
        verdict: Verdict,
        now: u64,
        out: &mut impl Deliver,
    ) {
        self.pending_logins -= 1;
        let failed = verdict == Verdict::WrongPassword;
        if let (true, true, Some(user)) = (failed, self.cluster, job.account) {
            // The other nodes count it too.
            out.store(Op::LoginFailed {
                user,
                network: throttle::network(job.peer),
                window_ms: self.policy.failure_window_ms,
            });
        }
        if self.throttle.end(job.attempt(), failed, now) {
            tracing::warn!(
                "{} failed logins within {} s for {} or from {}: refusing more for a while",
                self.policy.max_failures,
                self.policy.failure_window_ms / 1000,
                job.nick,
                job.peer
            );
        }
        if job.change.is_some() {
            self.password_changed(job, verdict, out);
        } else {
            self.judged(job, verdict, now, out);
        }
        self.unpark(now, out);
    }

    /// Wrong passwords given on other nodes of the cluster: counted here
    /// too, as if they were this node's, `age_ms` before `now`. A login
    /// waiting for checks in progress may now be over a limit.
    pub(super) fn failed_elsewhere(
        &mut self,
        failures: Vec<Failure>,
        now: u64,
        out: &mut impl Deliver,
    ) {
        for failure in failures {
            let attempt = Attempt {
                account: Some(failure.user),
                peer: failure.network,
            };
            self.throttle
                .learn(attempt, now.saturating_sub(failure.age_ms), now);
        }
        self.unpark(now, out);
    }

    fn judged(&mut self, mut job: Check, verdict: Verdict, now: u64, out: &mut impl Deliver) {
        let (conn, origin) = (job.origin.conn, job.origin);
        let Some(session) = self.sessions.get_mut(&conn) else {
            return;
        };
        if session.phase != Phase::Authenticating {
            session.in_flight -= 1;
            return self.settle(conn, out);
        }
        let refusal = match verdict {
            Verdict::Verified => match job.account {
                // Banned while its password was checked (or while parked).
                Some(_) if self.ban_refusal(&job.nick, now).is_some() => {
                    self.ban_refusal(&job.nick, now).expect("just checked")
                }
                Some(user) => {
                    self.checked(conn);
                    return self.attach(job, user, false, out);
                }
                None => (ErrorCode::Other, "the account vanished; try again".into()),
            },
            Verdict::Hashed(hash) => {
                if let Some(account) = self.accounts.find(&job.nick) {
                    // Someone registered this nickname while we hashed:
                    // the password must now match theirs.
                    job.account = Some(account.id);
                    job.hash = Some(account.hash.clone());
                    match self.admit(job, now, out) {
                        Ok(()) => return,
                        Err(refusal) => refusal,
                    }
                } else if let Err(refusal) = self.refuse_lookalike(&job.nick) {
                    refusal
                } else {
                    self.checked(conn);
                    let user = self.accounts.create(&job.nick, hash.clone());
                    let nick = self.accounts.nick(user).to_string();
                    out.store(Op::CreateAccount {
                        user,
                        folded: super::fold(&nick),
                        key: identity::key(&nick),
                        nick,
                        hash,
                        time: now,
                    });
                    return self.attach(job, user, true, out);
                }
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
        self.refuse_login(origin, refusal, now, out);
    }

    /// A login's check is over: it no longer holds the answers behind it.
    fn checked(&mut self, conn: ConnId) {
        if let Some(session) = self.sessions.get_mut(&conn) {
            session.in_flight -= 1;
        }
    }

    /// The login succeeded: take the nickname (from another connection if
    /// need be) and ask the store for what the user missed.
    pub(super) fn attach(
        &mut self,
        job: Check,
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
        // Online on another node: a takeover too, as quiet.
        let quiet = quiet || self.is_remote(&nick);
        if self.cluster {
            out.store(Op::Online {
                user,
                nick: nick.clone(),
                conn,
            });
        }
        self.nicks.insert(fold(&nick), conn);
        self.online.insert(user, conn);
        out.bind(conn, Some(user));
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
        self.forget(old, &session, None, out);
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
        result: Result<Page, StoreError>,
        now: u64,
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
            Err(err) => {
                tracing::error!("reading the backlog of {:?}: {err}", session.nick);
                out.send(conn, encode(&store_failed(origin.id, &err)));
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
                let online = self.welcome_names(&nick);
                let groups = self.group_tags(user);
                let welcome = ServerFrame::Welcome {
                    id,
                    nick,
                    online_more: (self.online_count() - online.len()) as u32,
                    online,
                    new_account,
                    replay: page.messages.len() as u32,
                    replay_left: page.left,
                    public_seq: page.public_head,
                    groups,
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
        let user = session.user;
        out.subscribe(conn);
        if let Some(user) = user {
            self.go_live(conn, user, page.last_seq, out);
        }
        if !quiet {
            self.presence.joined(&nick);
        }
        if let Some(user) = user {
            self.files_at_login(conn, user, out);
        }
        self.run_queued(conn, now, out);
    }
}

/// The refusal of a login over the throttle's limit.
fn too_many_attempts(retry_at: u64, now: u64) -> Rejection {
    let secs = retry_at.saturating_sub(now).div_ceil(1000).max(1);
    (
        ErrorCode::TooManyAttempts,
        format!(
            "too many failed logins for this account or from your address; try again in {secs} s"
        ),
    )
}
