//! A refused first login as the person at the keyboard is told it, and
//! what the client does next. Nothing here retries by itself: a refusal
//! is shown, and only a person (typing a password or a name again) tries
//! again. (Logging in again after a lost connection is the network
//! thread's: a throttled one waits as long as the server says.)

use chat_common::ErrorCode;

use crate::render::clean;

/// What the interactive client asks for after a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The password again, for the same nickname.
    Password,
    /// A nickname (and its password) again.
    Nickname,
    /// Nothing: trying again cannot help; the session ends.
    Stop,
}

/// The line to show for a login of `nick` refused with `code` and the
/// server's `reason`, and what comes next.
pub fn refusal(code: ErrorCode, nick: &str, reason: &str) -> (String, Next) {
    let nick = clean(nick);
    let reason = clean(reason);
    match code {
        ErrorCode::BadPassword => (format!("wrong password for {nick}"), Next::Password),
        ErrorCode::PasswordInvalid => (reason.into_owned(), Next::Password),
        ErrorCode::TooManyAttempts => (
            format!("{reason} (nothing is retried by itself)"),
            Next::Nickname,
        ),
        ErrorCode::Busy => (
            "the server is busy checking other logins; try again in a few seconds".into(),
            Next::Password,
        ),
        ErrorCode::RegistrationClosed => (
            format!("{reason} (this server creates no accounts: log in with an existing one)"),
            Next::Nickname,
        ),
        ErrorCode::NoSuchUser => (format!("there is no account named {nick}"), Next::Nickname),
        ErrorCode::PlaintextRefused => (
            "the server takes passwords only over TLS from here; \
             connect without --no-tls"
                .into(),
            Next::Stop,
        ),
        // nick_reserved, nick_taken, nick_invalid: the reason names the rule.
        _ => (reason.into_owned(), Next::Nickname),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_says_what_to_do() {
        let cases = [
            (ErrorCode::BadPassword, "x", "wrong password for alice", Next::Password),
            (
                ErrorCode::TooManyAttempts,
                "too many failed logins for this account or from your address; try again in 42 s",
                "too many failed logins for this account or from your address; try again in 42 s (nothing is retried by itself)",
                Next::Nickname,
            ),
            (
                ErrorCode::Busy,
                "x",
                "the server is busy checking other logins; try again in a few seconds",
                Next::Password,
            ),
            (
                ErrorCode::PlaintextRefused,
                "x",
                "the server takes passwords only over TLS from here; connect without --no-tls",
                Next::Stop,
            ),
            (
                ErrorCode::NickReserved,
                "admin is reserved (it would pass for the server or its operator); choose another nickname",
                "admin is reserved (it would pass for the server or its operator); choose another nickname",
                Next::Nickname,
            ),
            (
                ErrorCode::RegistrationClosed,
                "registration is closed",
                "registration is closed (this server creates no accounts: log in with an existing one)",
                Next::Nickname,
            ),
            (ErrorCode::NoSuchUser, "x", "there is no account named alice", Next::Nickname),
            (ErrorCode::NickTaken, "aIice looks too much like alice", "aIice looks too much like alice", Next::Nickname),
            (ErrorCode::Other, "odd\u{1b}[2J", "odd\\u{1b}[2J", Next::Nickname),
        ];
        for (code, reason, shown, next) in cases {
            assert_eq!(
                refusal(code, "alice", reason),
                (shown.to_string(), next),
                "{code:?}"
            );
        }
    }
}
