//! The interactive client as a person uses it: typed into a pseudo-terminal,
//! read off an emulated screen, with a pipe-mode peer on the other side.
#![cfg(unix)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use crate::support::proxy::Proxy;
use crate::support::term::Term;
use crate::support::{self, body, Pipe, Server, TIMEOUT};

/// Starts a pipe-mode peer `nick` that stays (stdin open) and waits for its
/// welcome.
fn join(server: &Server, nick: &str) -> Pipe {
    let mut pipe = server.client().nick(nick).spawn();
    pipe.expect_that("the welcome", |l| {
        l.starts_with(&format!("* welcome, {nick} — "))
    });
    pipe
}

/// `bob` on a terminal, logged in and at his first prompt.
fn bob(server: &Server, no_color: bool) -> Term {
    let mut client = server.client();
    client.nick("bob");
    if no_color {
        client.env("NO_COLOR", Some("1"));
    }
    let term = Term::spawn(&client);
    term.expect("* welcome, bob — 2 online: alice, bob");
    term.expect_editing("bob >> ");
    term
}

/// `bob` without colours and with `args`, logged in, at his first prompt.
fn bob_with(server: &Server, args: &[&str]) -> Term {
    let mut client = server.client();
    client.nick("bob").args(args).env("NO_COLOR", Some("1"));
    let term = Term::spawn(&client);
    term.expect("* welcome, bob — 2 online: alice, bob");
    term.expect_editing("bob >> ");
    term
}

/// Bob chats with alice: public lines both ways, a half-typed line that
/// survives an incoming message, Tab completion of a command and a nickname,
/// a private message, and `!bye`.
#[test]
fn chat_complete_and_leave() {
    let server = Server::start(true);
    let mut alice = join(&server, "alice");
    let mut term = bob(&server, true);
    alice.expect("* bob joined");

    term.type_keys("hello from the pty\r");
    alice.expect("<bob> hello from the pty");
    term.expect("<bob (you)> hello from the pty");
    term.expect_editing("bob >> ");

    alice.send("hi bob");
    term.expect("<alice> hi bob");
    term.expect_editing("bob >> ");

    // A line being typed is redrawn below what arrives meanwhile.
    term.type_keys("half typ");
    term.expect_editing("bob >> half typ");
    alice.send("interruption");
    term.expect("<alice> interruption");
    term.expect_editing("bob >> half typ");
    term.type_keys("ed\r");
    alice.expect("<bob> half typed");
    term.expect_editing("bob >> ");

    term.type_keys("!pr");
    term.expect_editing("bob >> !pr");
    term.type_keys("\t");
    term.expect_editing("bob >> !private ");
    term.type_keys("a\t");
    term.expect_editing("bob >> !private alice ");
    term.type_keys("see you at 10\r");
    alice.expect("[private from bob] see you at 10");
    term.expect("[private to alice] see you at 10");
    term.expect_editing("bob >> ");

    term.type_keys("!bye\r");
    term.assert_exit(0);
    alice.expect("* bob left (quit)");
}

/// What is typed shows once: a message's typed line gives way to its
/// echo, and a private message is one line that says how far it got —
/// delivered to someone online, stored for someone offline — with a later
/// delivery gathered into a `* delivered` line.
#[test]
fn a_message_typed_shows_once_with_its_state() {
    let server = Server::start(false);
    server.client().nick("carol").run("").assert_code(0);
    // Her leaving is announced (every 100 ms) before bob is there to see it.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut alice = join(&server, "alice");
    let mut term = bob(&server, true);
    alice.expect("* bob joined");

    term.type_keys("hello all\r");
    term.expect("<bob (you)> hello all");
    term.expect_editing("bob >> ");
    term.type_keys("!private alice see you at 10\r");
    alice.expect("[private from bob] see you at 10");
    term.expect("[private to alice] see you at 10 (#2 ✓✓ delivered)");
    term.expect_editing("bob >> ");
    term.type_keys("!private carol are you there?\r");
    term.expect("[private to carol] are you there? (#3 ✓ stored, carol is offline)");
    term.expect_editing("bob >> ");
    let mut carol = join(&server, "carol");
    carol.expect("[private from bob] are you there? (while you were away)");
    term.expect("* delivered ✓✓: #3");
    term.expect_editing("bob >> ");

    let text = term.text();
    for typed in ["hello all", "see you at 10", "are you there?"] {
        assert_eq!(text.matches(typed).count(), 1, "{typed:?} once:\n{text}");
    }
    assert!(!text.contains(">> hello"), "{text}");
    assert!(!text.contains("* #"), "no line per state:\n{text}");
    term.type_keys("!bye\r");
    term.assert_exit(0);
}

/// The prompt says who you are and how many private messages came since
/// you last typed a line with the count in sight; with nothing typed it
/// is redrawn at once, else on the next line. `!away` shows there too.
#[test]
fn the_prompt_shows_the_status() {
    let server = Server::start(false);
    let mut alice = join(&server, "alice");
    let mut term = bob(&server, true);
    alice.expect("* bob joined");
    alice.send("!private bob one");
    term.expect("[private from alice] one");
    term.expect_editing("bob [1 private] >> ");
    alice.send("!private bob two");
    term.expect("[private from alice] two");
    term.expect_editing("bob [2 private] >> ");

    // Half a line typed: the prompt stays as it was drawn.
    term.type_keys("!away at lun");
    term.expect_editing("bob [2 private] >> !away at lun");
    alice.send("!private bob three");
    term.expect("[private from alice] three");
    term.expect_editing("bob [2 private] >> !away at lun");
    // The two in sight are read; the third came meanwhile.
    term.type_keys("ch\r");
    term.expect("* you are away: at lunch");
    term.expect_editing("bob (away) [1 private] >> ");
    term.type_keys("\r");
    term.expect_editing("bob (away) >> ");
    term.type_keys("/away\r");
    term.expect("* you are back");
    term.expect_editing("bob >> ");
    term.type_keys("!bye\r");
    term.assert_exit(0);
}

/// A message naming bob (as a word, any case) and a private one stand
/// out: highlighted, and one BEL each through the printer; others do not.
/// `--bell off` keeps the highlight and rings nothing.
#[test]
fn mentions_and_private_messages_stand_out() {
    let server = Server::start(false);
    let mut alice = join(&server, "alice");
    for bell in [true, false] {
        let mut client = server.client();
        client.nick("bob");
        if !bell {
            client.args(["--bell", "off"]);
        }
        let mut term = Term::spawn(&client);
        term.expect("* welcome, bob — 2 online: alice, bob");
        term.expect_editing("bob >> ");
        alice.expect("* bob joined");
        let bells = |term: &Term| term.raw().iter().filter(|b| **b == 0x07).count();
        alice.send("bobby is not you");
        term.expect("<alice> bobby is not you");
        alice.send("BOB: lunch?");
        term.expect("<alice> BOB: lunch?");
        alice.send("!private bob just you");
        term.expect("[private from alice] just you");
        term.expect_editing("bob [1 private] >> ");
        let raw = String::from_utf8_lossy(&term.raw()).into_owned();
        assert!(
            raw.contains("\x1b[1;36m<alice>\x1b[0m bobby is not you"),
            "{raw:?}"
        );
        assert!(!raw.contains("\x1b[1;35mbobby"), "{raw:?}");
        assert!(
            raw.contains("\x1b[1;36m<alice>\x1b[0m \x1b[1;35mBOB: lunch?\x1b[0m"),
            "{raw:?}"
        );
        assert!(raw.contains("\x1b[1;35mjust you\x1b[0m"), "{raw:?}");
        assert_eq!(bells(&term), if bell { 2 } else { 0 }, "{raw:?}");
        term.type_keys("!bye\r");
        term.assert_exit(0);
        alice.expect("* bob left (quit)");
    }
}

/// A pasted block (bracketed paste) is sent line by line as if typed; more
/// than five lines only when confirmed.
#[test]
fn a_big_paste_asks_first() {
    let server = Server::start_with(false, support::UNTHROTTLED);
    let mut alice = join(&server, "alice");
    let mut term = bob(&server, true);
    alice.expect("* bob joined");
    let paste = |n: usize, tag: &str| {
        let lines: Vec<String> = (1..=n).map(|i| format!("{tag} {i}")).collect();
        format!("\x1b[200~{}\x1b[201~\r", lines.join("\r"))
    };
    term.type_keys(&paste(12, "big"));
    term.expect_editing("send 12 lines? [y/N] ");
    term.type_keys("n\r");
    term.expect("* 12 pasted lines not sent");
    term.expect_editing("bob >> ");
    term.type_keys(&paste(3, "small"));
    for i in 1..=3 {
        alice.expect(&format!("<bob> small {i}"));
    }
    term.expect("<bob (you)> small 3");
    term.expect_editing("bob >> ");
    term.type_keys(&paste(6, "six"));
    term.expect_editing("send 6 lines? [y/N] ");
    term.type_keys("y\r");
    for i in 1..=6 {
        alice.expect(&format!("<bob> six {i}"));
    }
    term.expect("<bob (you)> six 6");
    term.type_keys("!bye\r");
    term.assert_exit(0);
    assert!(
        !alice.stdout.text().contains("big "),
        "{}",
        alice.transcript()
    );
}

/// Local commands answer on the terminal and send nothing.
#[test]
fn local_commands() {
    let server = Server::start(false);
    let mut alice = join(&server, "alice");
    let mut term = bob(&server, true);
    let cases = [
        ("!dance", "unknown command !dance — type !help for the list"),
        (
            "!group class hi",
            "! #1 to #class not sent: no such group: #class",
        ),
        (
            "!send alice notes.txt",
            "! cannot open notes.txt: No such file or directory",
        ),
        ("!private alice", "usage: !private <nick> <message>"),
        ("!history 0", "usage: !history [nick] [N]"),
        ("!search from:alice", "usage: !search <words> [from:nick]"),
        (
            "!help",
            "  !private <nick> <message>    send a message to one person only",
        ),
        ("!private zed hi", "! #2 to zed not sent: no such user: zed"),
        ("!online", "* 2 online: alice, bob"),
    ];
    for (line, answer) in cases {
        term.type_keys(&format!("{line}\r"));
        term.expect(answer);
        term.expect_editing("bob >> ");
    }
    term.type_keys("done\r");
    alice.expect("<bob> done");
    let leaked: Vec<_> = alice
        .stdout
        .all()
        .into_iter()
        .filter(|l| l.contains("[private from bob]") || l.contains("<bob>"))
        .collect();
    assert_eq!(leaked.len(), 1, "{}", alice.transcript());
    term.type_keys("!bye\r");
    term.assert_exit(0);
}

/// irssi habits: `/msg` is private, `/join` joins, `/me` is an action,
/// an unknown `/word` gets a hint; only `//` sends a line starting with
/// `/`. Nothing else of these reaches everyone.
#[test]
fn slash_lines_are_never_sent_to_everyone() {
    let server = Server::start(false);
    let mut alice = join(&server, "alice");
    let mut term = bob(&server, true);
    alice.expect("* bob joined");
    term.type_keys("/msg alice just you\r");
    alice.expect("[private from bob] just you");
    term.expect("[private to alice] just you");
    term.type_keys("/join #test\r");
    term.expect("! ");
    term.type_keys("/list\r");
    term.expect("/list is not a command here: commands start with !");
    term.type_keys("/nick bobby\r");
    term.expect("nicknames cannot be changed");
    term.type_keys("/me waves\r");
    alice.expect(" * bob waves");
    term.expect(" * bob (you) waves");
    term.type_keys("//etc/hosts is a file\r");
    alice.expect("<bob> /etc/hosts is a file");
    term.expect_editing("bob >> ");
    let public: Vec<_> = alice
        .stdout
        .all()
        .into_iter()
        .filter(|l| body(l).starts_with("<bob>") || body(l).starts_with(" * bob"))
        .collect();
    assert_eq!(public.len(), 2, "{}", alice.transcript());
    term.type_keys("/quit\r");
    term.assert_exit(0);
    alice.expect("* bob left (quit)");
}

/// Ctrl-C with something typed clears the line and stays (Ctrl-Y brings
/// it back, as in bash); on an empty line it leaves.
#[test]
fn ctrl_c_clears_a_half_typed_line() {
    let server = Server::start(false);
    let mut alice = join(&server, "alice");
    let mut term = bob(&server, true);
    alice.expect("* bob joined");
    term.type_keys("half typed");
    term.expect_editing("bob >> half typed");
    term.type_keys("\x03");
    term.expect_editing("bob >> ");
    term.type_keys("\x19");
    term.expect_editing("bob >> half typed");
    term.type_keys("\x03");
    term.expect_editing("bob >> ");
    term.type_keys("still here\r");
    alice.expect("<bob> still here");
    term.expect_editing("bob >> ");
    term.type_keys("\x03");
    term.assert_exit(0);
    alice.expect("* bob left (quit)");
    assert!(
        !alice.stdout.text().contains("half typed"),
        "{}",
        alice.transcript()
    );
}

/// Every way out says goodbye: `!bye`, `.exit`, Ctrl-D and Ctrl-C exit 0
/// and the others see `left (quit)`.
#[test]
fn every_way_out_says_goodbye() {
    let server = Server::start(false);
    let mut alice = join(&server, "alice");
    for keys in ["!bye\r", ".exit\r", "\x04", "\x03"] {
        let mut term = bob(&server, true);
        alice.expect("* bob joined");
        term.type_keys(keys);
        term.assert_exit(0);
        alice.expect("* bob left (quit)");
    }
}

/// Without --nick and a password from elsewhere the client asks for both;
/// the password is never shown as typed (Backspace edits it all the same).
/// A wrong one says so and asks again; Ctrl-D there leaves. The password
/// typed is the account's: a later login with it takes the terminal's
/// session over, which ends without reconnecting.
#[test]
fn hidden_password_prompt() {
    let server = Server::start(false);
    let mut alice = join(&server, "alice");
    let mut client = server.client();
    client.env("NO_COLOR", Some("1")).env("CHAT_PASSWORD", None);
    let mut term = Term::spawn(&client);
    term.expect_editing("nickname: ");
    term.type_keys("ALICE\r");
    term.expect_editing("password for ALICE: ");
    term.type_keys("wrong-guess\r");
    term.expect("! wrong password for ALICE; try again");
    term.wait_until("a second password prompt", |s| {
        s.editing("password for ALICE: ")
            && s.text()
                .lines()
                .filter(|l| l.starts_with("password for"))
                .count()
                == 2
    });
    term.type_keys("\x04");
    term.assert_exit(0);
    assert!(!term.text().contains("wrong-guess"), "{}", term.text());
    assert!(!String::from_utf8_lossy(&term.raw()).contains("wrong-guess"));

    let mut term = Term::spawn(&client);
    term.expect_editing("nickname: ");
    term.type_keys("bob\r");
    term.expect_editing("password for bob: ");
    term.type_keys("s3cret-typedX\x7f\r");
    // A new nickname: the password is asked twice before the account is made.
    term.expect("* bob is a new nickname: type a password for its account twice");
    term.expect_editing("new password for bob: ");
    term.type_keys("s3cret-typed\r");
    term.expect_editing("the same password again: ");
    term.type_keys("s3cret-typed\r");
    term.expect("* account bob created");
    term.expect("* welcome, bob — 2 online: alice, bob");
    term.expect_editing("bob >> ");
    alice.expect("* bob joined");
    let raw = String::from_utf8_lossy(&term.raw()).into_owned();
    assert!(!raw.contains("s3cret"), "{raw:?}");

    // Logging in elsewhere with what was typed takes the session over.
    let mut elsewhere = server.client();
    elsewhere
        .nick("bob")
        .env("CHAT_PASSWORD", Some("s3cret-typed"));
    let mut elsewhere = elsewhere.spawn();
    elsewhere.expect_that("the welcome", |l| l.starts_with("* welcome, bob"));
    term.expect("! ");
    term.assert_exit(0);
    assert!(!term.text().contains("reconnecting"), "{}", term.text());
    elsewhere.send("still bob");
    elsewhere.expect("<bob (you)> still bob");
    alice.expect("<bob> still bob");
}

/// A typed password for a new nickname creates nothing until it has been
/// typed twice alike (a typo would lose the name for good); Enter alone
/// there chooses another nickname. `!password` asks the old one and the
/// new one twice, and the new one is the account's from then on.
#[test]
fn a_new_account_and_a_new_password_are_typed_twice() {
    let server = Server::start(false);
    let mut client = server.client();
    client.env("NO_COLOR", Some("1")).env("CHAT_PASSWORD", None);
    let mut term = Term::spawn(&client);
    term.expect_editing("nickname: ");
    term.type_keys("bbo\r");
    term.expect_editing("password for bbo: ");
    term.type_keys("typo\r");
    term.expect("* bbo is a new nickname");
    term.expect_editing("new password for bbo: ");
    term.type_keys("\r");
    term.expect_editing("nickname: ");
    term.type_keys("carol\r");
    term.expect_editing("password for carol: ");
    term.type_keys("first\r");
    term.expect("* carol is a new nickname");
    term.expect_editing("new password for carol: ");
    term.type_keys("abc\r");
    term.expect_editing("the same password again: ");
    term.type_keys("abd\r");
    term.expect("! the two passwords differ; type them again");
    term.wait_until("a second new-password prompt", |s| {
        s.editing("new password for carol: ")
            && s.text().matches("new password for carol:").count() == 2
    });
    term.type_keys("xyz\r");
    term.expect_editing("the same password again: ");
    term.type_keys("xyz\r");
    term.expect("* account carol created");
    term.expect_editing("carol >> ");

    term.type_keys("!password\r");
    term.expect_editing("current password: ");
    term.type_keys("xyz\r");
    term.expect_editing("new password: ");
    term.type_keys("n3w-pass\r");
    term.expect_editing("the same password again: ");
    term.type_keys("n3w-pass\r");
    term.expect("* password changed: log in with the new one from now on");
    term.expect_editing("carol >> ");
    let raw = String::from_utf8_lossy(&term.raw()).into_owned();
    assert!(!raw.contains("n3w-pass") && !raw.contains("xyz"), "{raw:?}");
    term.type_keys("!bye\r");
    term.assert_exit(0);

    // Nothing was made for the typo, and the new password is carol's.
    let old = server
        .client()
        .nick("carol")
        .env("CHAT_PASSWORD", Some("xyz"))
        .run("");
    old.assert_code(2)
        .assert_stderr_contains("wrong password for carol");
    let new = server
        .client()
        .nick("carol")
        .env("CHAT_PASSWORD", Some("n3w-pass"))
        .run("");
    new.assert_code(0)
        .assert_stdout_has("* welcome, carol — 1 online: carol");
    let bbo = server.client().nick("bbo").run("");
    bbo.assert_code(0)
        .assert_stdout_has("* account bbo created: log in with the same password next time");
    // Pipe mode cannot ask: it says so.
    let piped = server
        .client()
        .nick("carol")
        .env("CHAT_PASSWORD", Some("n3w-pass"))
        .run("!password\n");
    piped
        .assert_code(0)
        .assert_stderr_contains("!password needs a terminal");
}

/// Lines are coloured on a terminal, and not with NO_COLOR set.
#[test]
fn colours_unless_no_color() {
    let server = Server::start(false);
    let mut alice = join(&server, "alice");
    for no_color in [false, true] {
        let mut term = bob(&server, no_color);
        // Announced before he leaves, so that his leaving is too.
        alice.expect("* bob joined");
        alice.send("colourful?");
        term.expect("<alice> colourful?");
        let raw = String::from_utf8_lossy(&term.raw()).into_owned();
        // Select Graphic Rendition: ESC [ digits and semicolons, then m.
        let has_sgr = raw.split("\x1b[").skip(1).any(|rest| {
            let end = rest.find(|c: char| !(c.is_ascii_digit() || c == ';'));
            end.is_some_and(|i| rest[i..].starts_with('m'))
        });
        assert_eq!(has_sgr, !no_color, "NO_COLOR={no_color}: {raw:?}");
        if !no_color {
            assert!(raw.contains("\x1b[33m* welcome, bob"), "{raw:?}");
            assert!(
                raw.contains("\x1b[1;36m<alice>\x1b[0m colourful?"),
                "{raw:?}"
            );
        }
        term.type_keys("!bye\r");
        term.assert_exit(0);
        alice.expect("* bob left (quit)");
    }
}

/// Endings the server decides, when the client does not reconnect
/// (`--reconnect-for 0`): kicked and shut down exit 0, a dead server 1;
/// each is shown on the terminal first.
#[test]
fn the_server_ends_the_session() {
    #[derive(Clone, Copy)]
    enum End {
        Kick,
        Quit,
        Kill,
    }
    let cases = [
        (End::Kick, "* bob was kicked by the server: spam", 0),
        (End::Quit, "* server is shutting down", 0),
        (End::Kill, "! connection lost", 1),
    ];
    for (end, shown, code) in cases {
        let mut server = Server::start(true);
        let _alice = join(&server, "alice");
        let mut term = bob_with(&server, &["--reconnect-for", "0"]);
        term.type_keys("half a li");
        term.expect_editing("bob >> half a li");
        match end {
            End::Kick => server.admin("/kick bob spam"),
            End::Quit => server.admin("/quit"),
            End::Kill => server.kill(),
        }
        term.expect(shown);
        term.assert_exit(code);
    }
}

/// Tab completes command names and the nicknames of people online (not
/// one's own), following who joins and leaves; Up recalls earlier lines.
#[test]
fn completion_and_history() {
    let server = Server::start(false);
    let mut alice = join(&server, "alice");
    let albert = join(&server, "albert");
    // Albert's arrival is announced before he goes, so his leaving is too.
    alice.expect("* albert joined");
    let mut client = server.client();
    client.nick("bob").env("NO_COLOR", Some("1"));
    let mut term = Term::spawn(&client);
    term.expect("* welcome, bob — 3 online: albert, alice, bob");
    term.expect_editing("bob >> ");
    // Ctrl-U clears the line between cases.
    let cases = [
        ("!o\t", "bob >> !online"),
        ("!he\t", "bob >> !help"),
        ("!private ali\t", "bob >> !private alice "),
        ("!private alb\t", "bob >> !private albert "),
        ("!private b\t", "bob >> !private b"),
        ("!send alb\t", "bob >> !send albert "),
        ("hello ali\t", "bob >> hello alice "),
        ("ali\t", "bob >> alice: "),
        ("hello Alb\t", "bob >> hello albert "),
        ("!hi\t", "bob >> !history "),
        ("!history ali\t", "bob >> !history alice "),
        ("!sea\t", "bob >> !search "),
        (
            "!search exam from:alb\t",
            "bob >> !search exam from:albert ",
        ),
    ];
    for (keys, line) in cases {
        term.type_keys(keys);
        term.expect_editing(line);
        term.type_keys("\x15");
        term.expect_editing("bob >> ");
    }
    // Ambiguous: the first Tab completes what the candidates share, the
    // second lists them under the line, which stays as typed.
    term.type_keys("hi a\t");
    term.expect_editing("bob >> hi al");
    term.type_keys("\t");
    term.wait_until("the candidates listed", |s| {
        s.text().lines().any(|l| l.trim_end() == "albert  alice") && s.editing("bob >> hi al")
    });
    term.type_keys("\x15");
    term.expect_editing("bob >> ");
    // A group of ours, anywhere in a line.
    term.type_keys("!group create lab\r");
    term.expect("* created #lab");
    term.expect_editing("bob >> ");
    term.type_keys("see #l\t");
    term.expect_editing("bob >> see #lab ");
    term.type_keys("\x15");
    term.expect_editing("bob >> ");
    // The nicknames follow who joins and leaves.
    drop(albert);
    term.expect("* albert left (");
    let _carl = join(&server, "carl");
    term.expect("* carl joined");
    for (keys, line) in [
        ("!private al\t", "bob >> !private alice "),
        ("!private c\t", "bob >> !private carl "),
    ] {
        term.type_keys(keys);
        term.expect_editing(line);
        term.type_keys("\x15");
        term.expect_editing("bob >> ");
    }

    term.type_keys("first line\r");
    alice.expect("<bob> first line");
    term.expect_editing("bob >> ");
    term.type_keys("second line\r");
    alice.expect("<bob> second line");
    term.expect_editing("bob >> ");
    term.type_keys("\x1b[A");
    term.expect_editing("bob >> second line");
    term.type_keys("\x1b[A");
    term.expect_editing("bob >> first line");
    term.type_keys("\r");
    alice.expect("<bob> first line");
    term.type_keys("!bye\r");
    term.assert_exit(0);
}

/// Lines typed ahead, faster than the client reads them, all go out in order.
#[test]
fn keys_typed_ahead_are_not_lost() {
    let server = Server::start(false);
    let mut alice = join(&server, "alice");
    let mut term = bob(&server, true);
    term.type_keys("one\rtwo\rthree\r");
    for line in ["<bob> one", "<bob> two", "<bob> three"] {
        alice.expect(line);
    }
    term.expect("<bob (you)> three");
    term.type_keys("!bye\r");
    term.assert_exit(0);
}

/// The server going away while the client asks for a nickname ends it too.
#[test]
fn server_lost_at_the_nickname_prompt() {
    let mut server = Server::start(false);
    let mut client = server.client();
    client.env("NO_COLOR", Some("1"));
    let mut term = Term::spawn(&client);
    term.expect_editing("nickname: ");
    server.kill();
    term.expect("! connection lost");
    term.assert_exit(1);
}

/// Logs in as `nick` over a bare socket, speaking the protocol directly,
/// and returns the connection once welcomed (kept open by the caller).
fn raw_login(server: &Server, nick: &str) -> BufReader<TcpStream> {
    let mut tcp = TcpStream::connect(&server.addr).expect("connecting to the server");
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    writeln!(
        tcp,
        r#"{{"type":"login","id":1,"nick":"{nick}","password":"pw"}}"#
    )
    .unwrap();
    let mut reader = BufReader::new(tcp);
    let mut line = String::new();
    reader.read_line(&mut line).expect("reading the welcome");
    assert!(line.starts_with(r#"{"type":"welcome""#), "{nick}: {line}");
    reader
}

/// A crowd arriving within one presence interval (the server's default):
/// twenty names are shown and the rest counted, `… and 1 other joined`.
/// The first Tab that wants a nickname fetches the roster quietly — no
/// `online` line — so the next one completes the nickname only counted.
#[test]
fn a_crowd_is_counted_and_completion_still_knows_everyone() {
    let server = Server::start_with(false, &support::CROWD);
    let mut client = server.client();
    client.nick("bob").env("NO_COLOR", Some("1"));
    let mut term = Term::spawn(&client);
    term.expect("* welcome, bob — 1 online: bob");
    term.expect_editing("bob >> ");
    // Twenty names that come first however the server orders them, by
    // name or by arrival; zed, last either way, is the one counted.
    let mut nicks: Vec<String> = ["a", "b"]
        .iter()
        .flat_map(|c| (0..10).map(move |i| format!("{c}{i}")))
        .collect();
    nicks.push("zed".into());
    let _crowd: Vec<_> = nicks.iter().map(|nick| raw_login(&server, nick)).collect();

    term.expect(" and 1 other joined");
    let text = term.text();
    let line = text
        .lines()
        .find(|l| l.ends_with(" and 1 other joined"))
        .unwrap();
    let listed: BTreeSet<&str> = body(line)
        .trim_start_matches("* ")
        .trim_end_matches(" and 1 other joined")
        .split(", ")
        .collect();
    let want: BTreeSet<&str> = nicks[..20].iter().map(String::as_str).collect();
    assert_eq!(listed, want, "{text}");

    // Nothing to offer yet: this Tab asks for the list.
    term.type_keys("!private z\t");
    term.expect_editing("bob >> !private z");
    term.type_keys("\x15");
    term.expect_editing("bob >> ");
    // The echo of a message follows its ack, which follows the answer to
    // the refresh the client sent before it.
    term.type_keys("sync\r");
    term.expect("<bob (you)> sync");
    term.expect_editing("bob >> ");
    term.type_keys("!private z\t");
    term.expect_editing("bob >> !private zed ");
    term.type_keys("\x15");
    term.expect_editing("bob >> ");
    let text = term.text();
    assert_eq!(
        text.matches(" online").count(),
        1,
        "only the welcome:\n{text}"
    );
    term.type_keys("!bye\r");
    term.assert_exit(0);
}

/// `--no-tls` against a TLS server: the server drops the plaintext login,
/// the client says why and exits 1 — it is not killed by the signal it
/// sends itself to wake a prompt it is not sitting in.
#[test]
fn plaintext_against_tls_exits_1() {
    let server = Server::start(true);
    let mut client = support::Client::new(&server.addr);
    client
        .args(["--no-tls", "--nick", "bob"])
        .env("NO_COLOR", Some("1"));
    let mut term = Term::spawn(&client);
    term.expect("leave out --no-tls");
    term.assert_exit(1);
}

/// A terminal whose connection drops: it says so, keeps what is typed
/// meanwhile (shown pending), reconnects by itself, says how much it caught
/// up and sends what waited; a server killed and restarted on the same
/// address is reconnected to as well. `!history` shows the store.
#[test]
fn reconnects_by_itself() {
    let mut server = Server::start(false);
    let proxy = Proxy::start(&server.addr);
    let mut alice = join(&server, "alice");
    let mut client = support::Client::new(&proxy.addr);
    client
        .args(["--no-tls", "--nick", "bob"])
        .env("NO_COLOR", Some("1"));
    let mut term = Term::spawn(&client);
    term.expect("* welcome, bob — 2 online: alice, bob");
    term.expect_editing("bob >> ");
    alice.send("before");
    term.expect("<alice> before");

    proxy.hold();
    proxy.cut();
    term.expect("! connection lost — reconnecting…");
    // The prompt says so, redrawn at once as nothing is typed.
    term.expect_editing("bob (reconnecting) >> ");
    term.type_keys("typed offline\r");
    term.expect("[to everyone] typed offline (#1 pending)");
    term.expect_editing("bob (reconnecting) >> ");
    alice.send("meanwhile");
    alice.expect("<alice (you)> meanwhile");
    proxy.release();
    term.expect("* reconnected; 1 message caught up");
    term.expect("<alice> meanwhile");
    term.expect("<bob (you)> typed offline");
    alice.expect("<bob> typed offline");
    term.expect_editing("bob >> ");

    // The proxy forwards to the same address, where the server comes back.
    server.restart(true);
    term.wait_until("a second reconnect", |s| {
        s.text().matches("* reconnected; ").count() == 2
    });
    term.type_keys("!history 3\r");
    term.expect("* history: last 3 messages to everyone");
    term.expect("| <you> typed offline");
    term.expect_editing("bob >> ");
    // Shown once each as they came (the history lines are `| <alice> …`).
    let text = term.text();
    assert_eq!(text.matches("] <alice> before").count(), 1, "{text}");
    assert_eq!(text.matches("] <alice> meanwhile").count(), 1, "{text}");
    term.type_keys("\x04");
    term.assert_exit(0);
}

/// A big download draws a progress bar above the prompt (bytes, rate, time
/// left) without losing a half-typed line; the pipe-mode sender draws none.
#[test]
fn a_big_download_shows_a_progress_bar_above_the_prompt() {
    let server = Server::start(true);
    let temp = tempfile::tempdir().unwrap();
    let big = temp.path().join("big.bin");
    let bytes: Vec<u8> = (0..24u32 << 20).map(|i| (i * 7 + i / 4099) as u8).collect();
    std::fs::write(&big, &bytes).unwrap();
    let downloads = temp.path().join("downloads");
    let mut alice = join(&server, "alice");
    let downloads_arg = downloads.display().to_string();
    let mut term = bob_with(&server, &["--downloads", &downloads_arg]);
    alice.send(&format!("!send bob {}", big.display()));
    term.expect("* alice offers you big.bin (25165824 bytes): !accept 1 [dir] or !reject 1");
    term.type_keys("!accept 1\r");
    term.type_keys("half typ");
    term.expect("receiving big.bin [");
    term.expect("24.00 MiB/24.00 MiB");
    term.expect(&format!(
        "* received {} (25165824 bytes, SHA-256 verified)",
        downloads.join("big.bin").display()
    ));
    term.expect_editing("bob >> half typ");
    // Stamped like every other line.
    let text = term.text();
    let bars: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("receiving big.bin ["))
        .collect();
    assert!(!bars.is_empty(), "{text}");
    for bar in bars {
        assert!(
            bar.starts_with('[') && body(bar).starts_with("* receiving big.bin ["),
            "{text}"
        );
    }
    assert_eq!(std::fs::read(downloads.join("big.bin")).unwrap(), bytes);
    alice.expect("* bob accepted big.bin (file 1)");
    let alice = alice.finish();
    alice.assert_code(0);
    assert!(
        !alice.stdout.contains("big.bin [") && !alice.stderr.contains("big.bin ["),
        "no bar in pipe mode\n{alice}"
    );
}

/// Tab after `!reject ` offers the pending offers' numbers; after `!send `,
/// nicknames, then the file's path.
#[test]
fn completion_of_offers_nicknames_and_paths() {
    let server = Server::start(true);
    let temp = tempfile::tempdir().unwrap();
    let notes = temp.path().join("notes.txt");
    std::fs::write(&notes, b"the notes").unwrap();
    std::fs::write(temp.path().join("slides.pdf"), b"the slides").unwrap();
    let mut alice = join(&server, "alice");
    let mut term = bob(&server, true);
    alice.send(&format!("!send bob {}", notes.display()));
    term.expect("* alice offers you notes.txt (9 bytes): !accept 1 [dir] or !reject 1");
    // The editor cycles through candidates on Tab: the command is typed out.
    term.type_keys("!reject \t");
    term.expect_editing("bob >> !reject 1 ");
    term.type_keys("\r");
    alice.expect("* bob rejected notes.txt (file 1)");

    term.type_keys("!send al\t");
    term.expect_editing("bob >> !send alice ");
    term.type_keys(&format!("{}/sl\t", temp.path().display()));
    term.expect_editing(&format!(
        "bob >> !send alice {}/slides.pdf",
        temp.path().display()
    ));
    term.type_keys("\r");
    alice.expect("* bob offers you slides.pdf (10 bytes): !accept 2 [dir] or !reject 2");
}
