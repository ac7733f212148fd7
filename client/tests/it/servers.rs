//! A list of servers (`--server a,b`): the client skips one that is not
//! there, and moves to the next when the one it is on dies. Real servers
//! over TLS, each with its own data directory (not a cluster: the account
//! is new on each, which the client creates as it always does), and one
//! known_hosts file for the client, so each server is pinned on first use.

use std::net::TcpListener;
use std::path::Path;

use crate::support::{self, Client, Server};

/// A port that was free a moment ago and is very likely closed now.
fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    addr
}

/// A pipe-mode client `nick` for the `servers` listed, pinning in
/// `known_hosts`.
fn listing(servers: &[&str], known_hosts: &Path, nick: &str) -> Client {
    let mut client = Client::new(&servers.join(","));
    client.nick(nick).arg("--known-hosts").arg(known_hosts);
    client
}

/// Starts `nick` on `server` alone and waits for its welcome.
fn join(server: &Server, nick: &str) -> support::Pipe {
    let mut pipe = server.client().nick(nick).spawn();
    pipe.expect_that("the welcome", |l| {
        l.starts_with(&format!("* welcome, {nick} — "))
    });
    pipe
}

/// The first server listed is not there: the client says so, goes on to
/// the second at once, pins its certificate, and chats there.
#[test]
fn a_closed_first_server_is_skipped() {
    let server = Server::start(true);
    let closed = closed_port();
    let scratch = tempfile::tempdir().unwrap();
    let known_hosts = scratch.path().join("known_hosts");
    let mut ann = join(&server, "ann");

    let mut bob = listing(&[&closed, &server.addr], &known_hosts, "bob").spawn();
    bob.expect_that("the welcome", |l| l.starts_with("* welcome, bob — "));
    let skipped = bob.expect_stderr(&format!("! {closed} unreachable, trying {}", server.addr));
    assert!(
        skipped.ends_with(&format!(
            "unreachable, trying {} — Connection refused (is a chat server running \
             there, on that port? the default port is 50445)",
            server.addr
        )),
        "{skipped}\n{}",
        bob.transcript()
    );
    bob.expect_stderr(&format!("* connected to {}", server.addr));
    bob.expect_stderr(&format!("pinned the certificate of {}", server.addr));
    ann.expect("* bob joined");
    bob.send("hello from the second server");
    ann.expect("<bob> hello from the second server");
    ann.send("hi bob");
    bob.expect("<ann> hi bob");
    let bob = bob.finish();
    bob.assert_code(0);
    assert!(!bob.stderr.contains("cannot reconnect"), "{bob}");
    let pins = std::fs::read_to_string(&known_hosts).unwrap();
    assert!(pins.starts_with(&format!("{} ", server.addr)), "{pins}");
    assert!(!pins.contains(&closed), "{pins}");
}

/// The server the client is on is killed (SIGKILL): the client says it
/// lost that one, moves to the next in the list, pins its certificate,
/// logs in there (the account is new there: created, as any first login
/// with a password from the environment), and chats on; what was typed
/// meanwhile goes out there.
#[test]
fn a_killed_server_moves_the_client_to_the_next() {
    let mut first = Server::start(true);
    let second = Server::start(true);
    let scratch = tempfile::tempdir().unwrap();
    let known_hosts = scratch.path().join("known_hosts");
    let mut ann = join(&first, "ann");
    let mut dan = join(&second, "dan");

    let servers = [first.addr.as_str(), second.addr.as_str()];
    let mut bob = listing(&servers, &known_hosts, "bob").spawn();
    bob.expect_that("the welcome", |l| l.starts_with("* welcome, bob — "));
    bob.expect_stderr(&format!("* connected to {}", first.addr));
    bob.expect_stderr(&format!("pinned the certificate of {}", first.addr));
    ann.expect("* bob joined");
    bob.send("on the first server");
    ann.expect("<bob> on the first server");
    bob.expect("<bob (you)> on the first server");

    first.kill();
    bob.expect_stderr(&format!(
        "! connection to {} lost — reconnecting to {}…",
        first.addr, second.addr
    ));
    bob.send("typed during the move");
    bob.expect_stderr(&format!("* connected to {}", second.addr));
    bob.expect_stderr(&format!("pinned the certificate of {}", second.addr));
    bob.expect("* account bob created: log in with the same password next time");
    bob.expect_that("the reconnect", |l| l.starts_with("* reconnected; "));
    dan.expect("* bob joined");
    dan.expect("<bob> typed during the move");
    dan.send("welcome to the second server");
    bob.expect("<dan> welcome to the second server");
    bob.send("on the second server");
    dan.expect("<bob> on the second server");

    let bob = bob.finish();
    bob.assert_code(0);
    // Each line once: nothing shown twice across the move.
    for line in [
        "<bob (you)> typed during the move",
        "<dan> welcome to the second server",
    ] {
        let count = bob.bodies().iter().filter(|l| **l == line).count();
        assert_eq!(count, 1, "{line:?}\n{bob}");
    }
    // Each server pinned under its own host:port, with its own certificate.
    let pins = std::fs::read_to_string(&known_hosts).unwrap();
    let want: Vec<String> = [&first, &second]
        .iter()
        .map(|s| format!("{} {}", s.addr, s.fingerprint.as_ref().unwrap()))
        .collect();
    assert_eq!(pins.lines().collect::<Vec<_>>(), want, "{pins}");
    drop(ann);
}

/// On a terminal the same: a server not there is skipped before the
/// prompt, and a killed one is left for the next, where the session goes
/// on; the next one's certificate is pinned without disturbing the prompt.
#[cfg(unix)]
#[test]
fn the_interactive_client_moves_along_the_list() {
    use crate::support::term::Term;

    let closed = closed_port();
    let mut first = Server::start(true);
    let second = Server::start(true);
    let scratch = tempfile::tempdir().unwrap();
    let known_hosts = scratch.path().join("known_hosts");
    let mut dan = join(&second, "dan");
    let mut client = listing(&[&closed, &first.addr, &second.addr], &known_hosts, "bob");
    client.env("NO_COLOR", Some("1"));
    let mut term = Term::spawn(&client);
    term.expect(&format!("! {closed} unreachable, trying {}", first.addr));
    term.expect(&format!("* connected to {}", first.addr));
    term.expect("* welcome, bob — 1 online: bob");
    term.expect_editing("bob >> ");

    first.kill();
    term.expect(&format!(
        "! connection to {} lost — reconnecting to {}…",
        first.addr, second.addr
    ));
    term.expect(&format!("* connected to {}", second.addr));
    term.expect("* reconnected; 0 messages caught up");
    // The new server's pin is a line of its own above the prompt, as
    // every line the network thread prints.
    term.expect(&format!("* pinned the certificate of {}", second.addr));
    assert!(!term.text().contains(">> pinned"), "{}", term.text());
    term.expect_editing("bob >> ");
    dan.expect("* bob joined");
    term.type_keys("hello dan\r");
    dan.expect("<bob> hello dan");
    term.expect("<bob (you)> hello dan");
    term.type_keys("!bye\r");
    term.assert_exit(0);
}

/// The list can live in the config file (`server = [...]`), with the
/// other settings; a flag on the command line still wins over it.
#[test]
fn the_list_can_live_in_the_config_file() {
    let server = Server::start(false);
    let closed = closed_port();
    let scratch = tempfile::tempdir().unwrap();
    let config = scratch.path().join("client.toml");
    std::fs::write(
        &config,
        format!(
            "server = [\"{closed}\", \"{}\"]\nnick = \"filed\"\nno-tls = true\n",
            server.addr
        ),
    )
    .unwrap();
    let mut client = Client::new(&server.addr);
    // Without the command line's --server: the file's list.
    client.args.clear();
    client.arg("--config").arg(&config);
    let bot = client.run("from the file\n");
    bot.assert_code(0)
        .assert_stdout_has("<filed (you)> from the file")
        .assert_stderr_contains(&format!("! {closed} unreachable, trying {}", server.addr))
        .assert_stderr_contains(&format!("* connected to {}", server.addr));

    // --server and --nick given: the file's are not used.
    client.args(["--server", &server.addr, "--nick", "flagged"]);
    let bot = client.run("from the flags\n");
    bot.assert_code(0)
        .assert_stdout_has("<flagged (you)> from the flags");
    assert!(!bot.stderr.contains("unreachable"), "{bot}");
    assert!(!bot.stderr.contains("connected to"), "{bot}");
}

/// A cluster node that lost its database: it accepts connections (so a
/// load balancer's TCP check passes) and answers every login with
/// `unavailable`, as a fenced node of `chat-server --cluster` does. It
/// counts the logins it refused.
fn fenced_node() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = listener.local_addr().unwrap().to_string();
    let refused = std::sync::Arc::new(AtomicUsize::new(0));
    let count = refused.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut line = String::new();
            if BufReader::new(&stream).read_line(&mut line).is_err() {
                continue;
            }
            let login: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if login["type"] != "login" {
                continue;
            }
            count.fetch_add(1, Ordering::SeqCst);
            let refusal = serde_json::json!({
                "type": "error", "id": login["id"], "code": "unavailable",
                "reason": "this server lost its database; reconnect to another",
            });
            let _ = writeln!(stream, "{refusal}");
        }
    });
    (addr, refused)
}

/// `client` says it left the `fenced` node for `next`, and connects there.
fn moved_past(client: &mut support::Pipe, fenced: &str, next: &str) {
    client.expect_stderr(&format!(
        "! connection to {fenced} lost — reconnecting to {next}… (the server lost its database)"
    ));
    client.expect_stderr(&format!("* connected to {next}"));
}

/// The very first login lands on a fenced node: not a refusal of the
/// user — the client says why, moves to the next server and logs in
/// there with what was typed, as it does after a reconnect.
#[test]
fn a_first_login_refused_as_unavailable_goes_to_the_next_server() {
    let server = Server::start(false);
    let (fenced, refused) = fenced_node();
    let mut ann = join(&server, "ann");

    let mut bob = Client::new(&format!("{fenced},{}", server.addr));
    bob.nick("bob").arg("--no-tls");
    let mut bob = bob.spawn();
    bob.expect("! this server lost its database; reconnect to another");
    bob.expect_that("the welcome", |l| l.starts_with("* welcome, bob — "));
    moved_past(&mut bob, &fenced, &server.addr);
    ann.expect("* bob joined");
    bob.send("made it");
    ann.expect("<bob> made it");
    assert_eq!(refused.load(std::sync::atomic::Ordering::SeqCst), 1);
    bob.finish().assert_code(0);
    drop(ann);
}

/// After a reconnect the same: bob's server dies, the next in his list is
/// a fenced node that refuses his login again with `unavailable`, and he
/// goes on to the third, where nothing typed meanwhile is lost.
#[test]
fn a_relogin_refused_as_unavailable_goes_to_the_next_server() {
    let mut first = Server::start(false);
    let third = Server::start(false);
    let (fenced, refused) = fenced_node();
    let mut dan = join(&third, "dan");

    let mut bob = Client::new(&format!("{},{fenced},{}", first.addr, third.addr));
    bob.nick("bob").arg("--no-tls");
    let mut bob = bob.spawn();
    bob.expect_that("the welcome", |l| l.starts_with("* welcome, bob — "));
    first.kill();
    bob.send("typed during the move");
    moved_past(&mut bob, &fenced, &third.addr);
    dan.expect("* bob joined");
    dan.expect("<bob> typed during the move");
    assert_eq!(refused.load(std::sync::atomic::Ordering::SeqCst), 1);
    bob.finish().assert_code(0);
    drop(dan);
}
