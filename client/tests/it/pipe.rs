//! Pipe mode end to end: real `chat-client` processes, fed on stdin, against
//! a real `chat-server`, over TLS and plaintext.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::{self, body, Server, UNTHROTTLED};

/// Starts a pipe-mode client `nick` that stays (stdin open) and waits for
/// its welcome.
fn join(server: &Server, nick: &str) -> support::Pipe {
    let mut pipe = server.client().nick(nick).spawn();
    pipe.expect_that("the welcome", |l| {
        l.starts_with(&format!("* welcome, {nick} — "))
    });
    pipe
}

/// Starts a pipe-mode client `nick` and waits until `listener` sees it
/// join; only then may it leave and be seen leaving, since someone who
/// comes and goes within one presence interval is never announced.
fn arrive(server: &Server, nick: &str, listener: &mut support::Pipe) -> support::Pipe {
    let bot = join(server, nick);
    listener.expect(&format!("* {nick} joined"));
    bot
}

/// A line piped to a bot reaches a listener, and the bot leaves with 0.
#[test]
fn a_piped_line_is_posted() {
    for tls in [false, true] {
        let server = Server::start(tls);
        let mut listener = join(&server, "listener");
        let mut bot = arrive(&server, "bot", &mut listener);
        bot.send("hello");
        let bot = bot.finish();
        bot.assert_code(0)
            .assert_stdout_has("* welcome, bot — 2 online: bot, listener")
            .assert_stdout_has("<bot (you)> hello");
        // The listener came first, so it pinned the certificate, not the bot.
        assert!(!bot.stderr.contains("pinned"), "{bot}");
        if tls {
            listener.expect_stderr("pinned the certificate of");
        }
        listener.expect("<bot> hello");
        listener.expect("* bot left (quit)");
    }
}

/// `!away text` is said, others see it in `!online` until `/away` alone
/// says back; a text over 200 bytes is refused by the server.
#[test]
fn away_shows_in_online_until_back() {
    let server = Server::start(false);
    let mut ann = join(&server, "ann");
    let mut bob = arrive(&server, "bob", &mut ann);
    ann.send("!away at lunch");
    ann.expect("* you are away: at lunch (others see it in !online; !away alone: back)");
    bob.send("!online");
    bob.expect("* 2 online: ann (away: at lunch), bob");
    ann.send("/away");
    ann.expect("* you are back");
    bob.send("!online");
    bob.expect("* 2 online: ann, bob");
    ann.send(&format!("!away {}", "x".repeat(201)));
    ann.expect_that("the refusal", |l| l.starts_with("! "));
    bob.send("!online");
    bob.expect("* 2 online: ann, bob");
}

/// 200 lines piped at once all arrive, in order, before the bot leaves.
#[test]
fn many_lines_arrive_in_order() {
    for tls in [false, true] {
        let server = Server::start_with(tls, UNTHROTTLED);
        let mut listener = join(&server, "listener");
        let input: String = (1..=200).map(|i| format!("line {i}\n")).collect();
        let mut bot = arrive(&server, "bot", &mut listener);
        bot.write(&input).unwrap();
        let bot = bot.finish();
        bot.assert_code(0);
        // Echoes come after each ack; all 200 were printed, so all were acked
        // before the bot said bye.
        let own: Vec<_> = bot
            .bodies()
            .into_iter()
            .filter(|l| l.starts_with("<bot (you)> "))
            .map(str::to_string)
            .collect();
        let want: Vec<_> = (1..=200).map(|i| format!("<bot (you)> line {i}")).collect();
        assert_eq!(own, want, "{bot}");
        for i in 1..=200 {
            listener.expect(&format!("<bot> line {i}"));
        }
        listener.expect("* bot left (quit)");
    }
}

/// `!private` reaches only its receiver; a nickname with no account is an
/// error line. Each private message is shown as sent, with its number and
/// `pending`, then `stored`, then `delivered` once the receiver has it.
#[test]
fn private_messages() {
    let server = Server::start(true);
    let mut listener = join(&server, "listener");
    let mut other = join(&server, "other");
    let bot = server.client().nick("bot").run(
        "!private listener psst, 5 minutes\n!private nobody x\n!private LISTENER case\nafter\n",
    );
    bot.assert_code(0)
        .assert_stdout_has("[private to listener] psst, 5 minutes (#1 pending)")
        .assert_stdout_has("[private to nobody] x (#2 pending)")
        .assert_stdout_has("* #1 stored")
        .assert_stdout_has("! #2 to nobody not sent: no such user: nobody")
        .assert_stdout_has("* #3 stored");
    listener.expect("[private from bot] psst, 5 minutes");
    // Nicknames are case-insensitive, so LISTENER is listener.
    listener.expect("[private from bot] case");
    listener.expect("<bot> after");
    other.expect("<bot> after");
    let leaked: Vec<_> = other
        .stdout
        .all()
        .into_iter()
        .filter(|l| body(l).starts_with("[private"))
        .collect();
    assert!(leaked.is_empty(), "{}", other.transcript());
}

/// A line whose request would be longer than the server's frame limit is
/// refused on the spot with a hint on stderr and never sent (the server
/// would close the connection); the lines after it go out as usual.
#[test]
fn a_line_over_the_frame_limit_is_not_sent() {
    let server = Server::start(false);
    let mut listener = join(&server, "listener");
    let long = "x".repeat(70 * 1024);
    let private = format!("!private listener {long}");
    let bot = server
        .client()
        .nick("bot")
        .run(&format!("{long}\n{private}\nafter\n"));
    bot.assert_code(0)
        .assert_stdout_has("<bot (you)> after")
        .assert_stderr_contains("not sent: the line is too long");
    assert_eq!(bot.stderr.matches("not sent").count(), 2, "{bot}");
    listener.expect("<bot> after");
    let from_bot: Vec<_> = listener
        .stdout
        .all()
        .into_iter()
        .filter(|l| l.contains("xxxx"))
        .collect();
    assert!(from_bot.is_empty(), "{}", listener.transcript());
}

/// The people a presence line names: `* amy, bea and cal joined` with
/// `verb` "joined" is {amy, bea, cal}.
fn named<'a>(line: &'a str, verb: &str) -> BTreeSet<&'a str> {
    let list = body(line)
        .strip_prefix("* ")
        .and_then(|l| l.strip_suffix(&format!(" {verb}")))
        .unwrap_or_else(|| panic!("not a presence line: {line:?}"));
    let (head, last) = list
        .rsplit_once(" and ")
        .unwrap_or_else(|| panic!("not several names: {line:?}"));
    head.split(", ").chain([last]).collect()
}

/// Three bots logging in together, within one presence interval (the
/// server's default), are shown in one line, `* amy, bea and cal joined`
/// in some order; two that quit together leave in one line, each with its
/// reason.
#[test]
fn arrivals_together_share_a_line() {
    let server = Server::start_with(false, &[]);
    // The listener's own arrival was just announced: the three have a
    // whole interval from now to log in.
    let mut listener = join(&server, "listener");
    let mut bots: Vec<_> = ["cal", "amy", "bea"]
        .iter()
        .map(|nick| server.client().nick(nick).spawn())
        .collect();
    let line = listener.expect_that("a line of arrivals", |l| l.ends_with(" joined"));
    assert_eq!(
        named(&line, "joined"),
        BTreeSet::from(["amy", "bea", "cal"]),
        "{}",
        listener.transcript()
    );

    let _cal = bots.remove(0);
    for bot in bots {
        bot.finish().assert_code(0);
    }
    let line = listener.expect_that("a line of departures", |l| l.ends_with(" left"));
    assert_eq!(
        named(&line, "left"),
        BTreeSet::from(["amy (quit)", "bea (quit)"]),
        "{}",
        listener.transcript()
    );
}

/// `!online` prints who is online, with a count.
#[test]
fn online_lists_everyone() {
    let server = Server::start(false);
    let _listener = join(&server, "listener");
    let _zed = join(&server, "Zed");
    server
        .client()
        .nick("bot")
        .run("!online\n")
        .assert_code(0)
        .assert_stdout_has("* 3 online: bot, listener, Zed");
}

/// Local commands print on stderr and never reach the server.
#[test]
fn local_commands_are_not_sent() {
    let server = Server::start(false);
    let mut listener = join(&server, "listener");
    let cases = [
        ("!dance", "unknown command !dance — type !help for the list"),
        ("!PRIVATE listener hi", "unknown command !PRIVATE"),
        ("!group join", "usage: !group <subcommand|group> …"),
        ("!private listener", "usage: !private <nick> <message>"),
        ("!help", "!private <nick> <message>"),
    ];
    let input: String = cases.iter().map(|(line, _)| format!("{line}\n")).collect();
    let bot = server.client().nick("bot").run(&format!("{input}done\n"));
    bot.assert_code(0);
    for (line, hint) in cases {
        assert!(bot.stderr.contains(hint), "{line:?}: no {hint:?}\n{bot}");
    }
    // stdout is only what the server said.
    assert_eq!(
        bot.bodies(),
        [
            "* account bot created: log in with the same password next time",
            "* welcome, bot — 2 online: bot, listener",
            "<bot (you)> done"
        ],
        "{bot}"
    );
    listener.expect("<bot> done");
    let from_bot: Vec<_> = listener
        .stdout
        .all()
        .into_iter()
        .filter(|l| body(l).contains("bot]") || body(l).starts_with("<bot>"))
        .collect();
    assert_eq!(from_bot.len(), 1, "{}", listener.transcript());
}

/// Without --nick the first input line is the nickname.
#[test]
fn nick_from_the_first_line() {
    let server = Server::start(false);
    let mut listener = join(&server, "listener");
    let mut carol = server.client().spawn();
    carol.send("  carol  ");
    listener.expect("* carol joined");
    carol.send("hi from carol");
    carol
        .finish()
        .assert_code(0)
        .assert_stdout_has("* welcome, carol — 2 online: carol, listener")
        .assert_stdout_has("<carol (you)> hi from carol");
    listener.expect("<carol> hi from carol");
    // No input at all: no nickname.
    server
        .client()
        .run("")
        .assert_code(2)
        .assert_stderr_contains("no nickname");
}

/// A refused login exits 2 with the reason on stderr: a wrong password
/// (for the account, whatever the case of its nickname), a bad nickname,
/// or no password at all (pipe mode has no prompt).
#[test]
fn a_refused_login_exits_2() {
    let server = Server::start(false);
    let mut listener = join(&server, "listener");
    let cases = [
        (
            "listener",
            Some("guess"),
            "login refused: wrong password for listener",
        ),
        (
            "LISTENER",
            Some("guess"),
            "login refused: wrong password for LISTENER",
        ),
        ("#class", None, "login refused: "),
        ("two words", None, "login refused: "),
        (
            "bot",
            Some(""),
            "no password: pass --password-file FILE or set CHAT_PASSWORD",
        ),
    ];
    for (nick, password, reason) in cases {
        let mut client = server.client();
        client.nick(nick);
        if let Some(password) = password {
            client.env("CHAT_PASSWORD", Some(password));
        }
        let bot = client.run("never sent\n");
        bot.assert_code(2).assert_stderr_contains(reason);
        assert!(bot.stdout.is_empty(), "{nick:?}\n{bot}");
    }
    // The listener was not taken over by the wrong passwords.
    listener.send("still here");
    listener.expect("<listener (you)> still here");
}

/// The login refusals of issue 5 are told plainly and end pipe mode at
/// once (exit 2), never retried: passwords over plaintext where the server
/// refuses them, a reserved name, and — after three wrong passwords — the
/// throttle, which refuses even the right one for the rest of the minute.
#[test]
fn login_policy_refusals_exit_2() {
    let server = Server::start_with(false, &["--plaintext-login", "refuse"]);
    server
        .client()
        .nick("bot")
        .run("never sent\n")
        .assert_code(2)
        .assert_stderr_contains("login refused: the server takes passwords only over TLS from here; connect without --no-tls");

    let server = Server::start(false);
    server
        .client()
        .nick("Admin")
        .run("")
        .assert_code(2)
        .assert_stderr_contains("login refused: Admin is reserved");
    let _owner = join(&server, "owner");
    for _ in 0..3 {
        server
            .client()
            .nick("owner")
            .env("CHAT_PASSWORD", Some("guess"))
            .run("")
            .assert_code(2)
            .assert_stderr_contains("login refused: wrong password for owner");
    }
    let started = std::time::Instant::now();
    let throttled = server.client().nick("owner").run("never sent\n");
    throttled
        .assert_code(2)
        .assert_stderr_contains("login refused: too many failed logins")
        .assert_stderr_contains("(nothing is retried by itself)");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{throttled}"
    );
}

/// The password may come from the first line of a file instead.
#[test]
fn password_from_a_file() {
    let server = Server::start(false);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, format!("{}\nignored\n", support::PASSWORD)).unwrap();
    let _listener = join(&server, "listener");
    server
        .client()
        .nick("listener2")
        .env("CHAT_PASSWORD", None)
        .arg("--password-file")
        .arg(&file)
        .run("hi\n")
        .assert_code(0)
        .assert_stdout_has("<listener2 (you)> hi");
    // It is the same password: the account made with CHAT_PASSWORD takes it.
    std::fs::write(&file, "another\n").unwrap();
    server
        .client()
        .nick("listener2")
        .arg("--password-file")
        .arg(&file)
        .run("hi\n")
        .assert_code(2)
        .assert_stderr_contains("wrong password");
    server
        .client()
        .nick("bot")
        .arg("--password-file")
        .arg(dir.path().join("missing"))
        .run("hi\n")
        .assert_code(2)
        .assert_stderr_contains("cannot read the password file");
}

/// `--json` prints each frame as the raw JSON line received.
#[test]
fn json_prints_raw_frames() {
    let server = Server::start(true);
    let bot = server
        .client()
        .nick("bot")
        .arg("--json")
        .run("hello\n!private nobody x\n");
    bot.assert_code(0);
    assert!(bot.stdout.contains(r#""type":"ack""#), "{bot}");
    let frames: Vec<Value> = bot
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}\n{bot}")))
        .collect();
    let types: Vec<_> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    // The server announces the bot's own arrival to it, at once since it
    // is the first. The echo of the private message sent is not a frame:
    // it is not printed.
    assert_eq!(
        types,
        ["welcome", "presence", "ack", "message", "error", "ack"],
        "{bot}"
    );
    assert_eq!(frames[0]["new_account"], true);
    assert_eq!(
        frames[1],
        serde_json::json!({"type": "presence", "joined": ["bot"]})
    );
    assert_eq!(frames[3]["text"], "hello");
    assert_eq!(frames[3]["sender"], "bot");
    assert!(frames[3]["seq"].as_u64().is_some(), "{bot}");
    assert_eq!(frames[4]["code"], "no_such_user");
}

/// The operator's `/kick` ends the kicked client with 0 and tells the others.
#[test]
fn kicked_by_the_console() {
    let mut server = Server::start(true);
    let mut listener = join(&server, "listener");
    let mut bot = join(&server, "bot");
    listener.expect("* bot joined");
    server.admin("/kick bot spam");
    bot.expect("* bot was kicked by the server: spam");
    bot.wait().assert_code(0);
    listener.expect("* bot was kicked by the server: spam");
}

/// The operator's `/announce` reaches everyone, marked as from the server.
#[test]
fn announce_from_the_console() {
    let mut server = Server::start(false);
    let mut listener = join(&server, "listener");
    let mut bot = join(&server, "bot");
    server.admin("/announce hi all");
    listener.expect("[server] hi all");
    bot.expect("[server] hi all");
}

/// A server that dies and does not come back leaves its clients with 1:
/// at once without reconnecting, or after trying for `--reconnect-for`.
#[test]
fn a_killed_server_means_exit_1() {
    for tls in [false, true] {
        let mut server = Server::start(tls);
        let mut never = server.client();
        never.nick("never").args(["--reconnect-for", "0"]);
        let mut never = never.spawn();
        never.expect_that("the welcome", |l| l.starts_with("* welcome, never"));
        let mut briefly = server.client();
        briefly.nick("briefly").args(["--reconnect-for", "1"]);
        let mut briefly = briefly.spawn();
        briefly.expect_that("the welcome", |l| l.starts_with("* welcome, briefly"));
        server.kill();
        let finished = never.wait();
        finished
            .assert_code(1)
            .assert_stderr_contains("connection lost");
        assert!(!finished.stderr.contains("reconnecting"), "{finished}");
        let finished = briefly.wait();
        finished
            .assert_code(1)
            .assert_stderr_contains("! connection lost — reconnecting…")
            .assert_stderr_contains("! gave up reconnecting after 1 s");
    }
}

/// `/quit` on the console tells every client; told not to reconnect, they
/// exit 0.
#[test]
fn a_server_shutdown_means_exit_0() {
    let mut server = Server::start(true);
    let client = |nick: &str| {
        let mut client = server.client();
        client.nick(nick).args(["--reconnect-for", "0"]);
        let mut pipe = client.spawn();
        pipe.expect_that("the welcome", |l| l.starts_with("* welcome, "));
        pipe
    };
    let mut listeners = [client("ann"), client("ben")];
    listeners[0].expect("* ben joined");
    server.admin("/quit");
    for mut listener in listeners {
        listener.expect_that("the shutdown notice", |l| {
            l.starts_with("* server is shutting down")
        });
        listener.wait().assert_code(0);
    }
    server.wait_exit();
}

/// Text goes out as typed (Unicode, leading spaces, a CRLF ending trimmed),
/// control characters are shown escaped, and nothing after `!bye` is sent.
#[test]
fn text_is_sent_as_typed() {
    let server = Server::start(false);
    let mut listener = join(&server, "listener");
    let cases = [
        ("héllo ✓ — ünïcode", "<bot> héllo ✓ — ünïcode"),
        ("crlf ending\r", "<bot> crlf ending"),
        ("   indented", "<bot>    indented"),
        ("clear \x1b[2J screen", "<bot> clear \\u{1b}[2J screen"),
        ("a\tb", "<bot> a\\tb"),
    ];
    let input: String = cases.iter().map(|(line, _)| format!("{line}\n")).collect();
    let mut bot = arrive(&server, "bot", &mut listener);
    bot.write(&format!("{input}!bye\nnever sent\n")).unwrap();
    bot.finish().assert_code(0);
    for (_, shown) in cases {
        listener.expect(shown);
    }
    listener.expect("* bot left (quit)");
    assert!(
        !listener.stdout.text().contains("never sent"),
        "{}",
        listener.transcript()
    );
}

/// Messages the server refuses are `! reason` lines; the exit status stays 0.
#[test]
fn refused_messages_keep_exit_0() {
    let server = Server::start(false);
    let long = "x".repeat(5000);
    let bot = server
        .client()
        .nick("bot")
        .run(&format!("{long}\n!private nobody hi\nfine\n"));
    bot.assert_code(0)
        .assert_stdout_has(
            "! #1 to everyone not sent: message too long: 5000 bytes, the limit is 4096",
        )
        .assert_stdout_has("! #2 to nobody not sent: no such user: nobody")
        .assert_stdout_has("<bot (you)> fine");
    let errors = bot.bodies().iter().filter(|l| l.starts_with("! ")).count();
    assert_eq!(errors, 2, "{bot}");
    assert!(!bot.stdout.contains(&long), "{bot}");
}
