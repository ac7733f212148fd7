//! Attack 6 of issue 5: taking a registered name. Alice has an account and
//! private messages waiting for her; a thousand logins try her name —
//! wrong passwords under her exact name, in capitals, with Cyrillic,
//! Greek and fullwidth letters, digits and pipes for the l, accents and
//! combining marks — fifty connections at once, each sending its twenty
//! logins in one write.
//!
//! Two runs. With the throttle out of the way, every attempt is checked
//! against alice's password (`bad_password`): no spelling is a second
//! account. With the server's defaults (3 failures a minute per account
//! and per address, OWASP hashes), three are hashed and the rest refused
//! at once (`too_many_attempts`), which the server's CPU time shows. In
//! both, no attempt sees a message meant for alice, and alice still gets
//! them all afterwards.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{Client, Options, Server};

const ATTEMPTS: usize = 1000;
const CONNECTIONS: usize = 50;
const ALICE_PASSWORD: &str = "correct horse battery staple";
/// What bob tells alice while she is away; no impostor may see it.
const SECRET: &str = "the exam key is";
const SECRETS: usize = 5;

/// Ways to write each letter of "alice" that look like it.
const LOOKALIKES: [&[&str]; 5] = [
    &[
        "a", "A", "а", "А", "ａ", "Ａ", "á", "a\u{301}", "𝐚", "ɑ", "α", "ä", "ȧ",
    ],
    &[
        "l", "L", "1", "ｌ", "Ｌ", "ℓ", "|", "ǀ", "ĺ", "ⅼ", "l\u{323}",
    ],
    &["i", "I", "і", "ı", "İ", "ｉ", "Ｉ", "í", "ï", "ⅰ", "ɩ", "ι"],
    &["c", "C", "с", "С", "ｃ", "ç", "ⅽ", "ϲ", "ć", "Ⅽ"],
    &["e", "E", "е", "Е", "ｅ", "é", "ė", "ℯ", "ê", "ë", "ҽ"],
];

const GUESSES: [&str; 8] = [
    "123456",
    "password",
    "alice",
    "correct horse battery stapl",
    "Correct horse battery staple",
    "CORRECT HORSE BATTERY STAPLE",
    "correct horse battery staple ",
    "letmein",
];

/// A thousand (nickname, password) attempts: every tenth is alice's exact
/// name; the rest pick a look-alike for each letter (xorshift, fixed seed).
fn attempts() -> Vec<(String, String)> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    (0..ATTEMPTS)
        .map(|i| {
            let nick = if i % 10 == 0 {
                "alice".to_string()
            } else {
                LOOKALIKES
                    .iter()
                    .map(|options| options[next(options.len())])
                    .collect()
            };
            (nick, GUESSES[next(GUESSES.len())].to_string())
        })
        .collect()
}

/// What the attempts got, by error code; and everything they saw.
#[derive(Debug, Default)]
struct Outcome {
    codes: std::collections::BTreeMap<String, usize>,
    frames: Vec<Value>,
    took: Duration,
}

impl Outcome {
    fn count(&self, code: &str) -> usize {
        self.codes.get(code).copied().unwrap_or(0)
    }
}

/// Sends the attempts over [`CONNECTIONS`] connections at once (each its
/// share in one write, so they queue behind each other on the server),
/// reads every answer and then a pong, so that anything sent to those
/// connections meanwhile is in `frames`.
fn attack(server: &Server, attempts: &[(String, String)]) -> Outcome {
    let start = Instant::now();
    let mut clients: Vec<(Client, Vec<u64>)> = (0..CONNECTIONS)
        .map(|i| (server.connect(&format!("impostor{i}")), Vec::new()))
        .collect();
    let mut batches = vec![Vec::new(); CONNECTIONS];
    for (i, (nick, password)) in attempts.iter().enumerate() {
        let (client, ids) = &mut clients[i % CONNECTIONS];
        let id = client.id();
        ids.push(id);
        let frame = json!({"type": "login", "id": id, "nick": nick, "password": password});
        let batch = &mut batches[i % CONNECTIONS];
        batch.extend(serde_json::to_vec(&frame).unwrap());
        batch.push(b'\n');
    }
    for ((client, _), batch) in clients.iter_mut().zip(&batches) {
        client.send_raw(batch);
    }
    let mut outcome = Outcome::default();
    for (client, ids) in &mut clients {
        for &id in ids.iter() {
            let answer = client.expect_reply(id);
            let code = match answer["type"].as_str() {
                Some("error") => answer["code"].as_str().unwrap_or("?").to_string(),
                other => format!("{other:?}"),
            };
            *outcome.codes.entry(code).or_default() += 1;
            outcome.frames.push(answer);
        }
        outcome.frames.extend(client.sync());
    }
    outcome.took = start.elapsed();
    outcome
}

/// No attempt was let in or saw anything of alice's.
fn assert_nothing_leaked(outcome: &Outcome) {
    for frame in &outcome.frames {
        assert_eq!(frame["type"], "error", "an impostor got {frame}");
        assert!(
            !frame.to_string().contains(SECRET),
            "an impostor saw a secret: {frame}"
        );
    }
}

/// Registers alice and bob; bob leaves alice [`SECRETS`] private messages
/// while she is offline.
fn alice_has_mail(server: &Server) {
    let mut alice = server.connect("alice");
    let welcome = alice.try_login_with("alice", ALICE_PASSWORD);
    assert_eq!(welcome["new_account"], true, "{welcome}");
    alice.bye();
    let mut bob = server.login("bob");
    for n in 1..=SECRETS {
        let id = bob.send_message(Some("alice"), &format!("{SECRET} {n}"));
        assert_eq!(
            bob.expect_reply(id),
            json!({"type": "ack", "id": id, "offline": true})
        );
    }
    bob.bye();
}

/// Alice logs in (as she registered) and gets every message bob left her,
/// once, marked as sent while she was away.
fn alice_reads_her_mail(server: &Server) {
    let mut alice = server.connect("alice");
    let welcome = alice.try_login_with("alice", ALICE_PASSWORD);
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["nick"], "alice", "{welcome}");
    assert_eq!(welcome.get("new_account"), None, "{welcome}");
    assert_eq!(welcome["replay"], SECRETS, "{welcome}");
    for n in 1..=SECRETS {
        let message = alice.expect_type("message");
        assert_eq!(message["text"], format!("{SECRET} {n}"), "{message}");
        assert_eq!(message["sender"], "bob", "{message}");
        assert_eq!(message["away"], true, "{message}");
    }
    let more: Vec<Value> = alice.sync();
    assert!(
        more.iter().all(|f| f["type"] == "presence"),
        "only her own arrival after them: {more:?}"
    );
}

/// The number of accounts, from the admin console's `/stats`.
fn accounts(server: &mut Server) -> usize {
    let stats = server.admin_output("/stats", |l| l.starts_with("uptime"));
    let line = stats
        .lines()
        .find(|l| l.starts_with("connections:"))
        .unwrap_or_else(|| panic!("no connections line in {stats}"));
    let (_, tail) = line.split_once("logged in, ").expect(line);
    tail.trim_end_matches(" accounts)").parse().expect(line)
}

/// CPU time the server process has used, from /proc (Linux).
fn cpu_time(server: &Server) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", server.pid())).ok()?;
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().ok()? + fields[12].parse::<u64>().ok()?;
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Some(Duration::from_millis(ticks * 1000 / per_second))
}

/// With the throttle out of the way, every one of the thousand spellings
/// and guesses is checked against alice's password and refused as
/// `bad_password`: none registers a second account, none is let in, none
/// sees her messages; then she logs in and reads them all.
#[test]
fn every_lookalike_is_checked_against_the_victims_password() {
    let mut server = Options::plain().crowd().start();
    alice_has_mail(&server);
    let attempts = attempts();
    let spellings: std::collections::BTreeSet<&str> =
        attempts.iter().map(|(n, _)| n.as_str()).collect();

    let outcome = attack(&server, &attempts);
    eprintln!(
        "{ATTEMPTS} attempts ({} spellings) over {CONNECTIONS} connections in {:?}: {:?}",
        spellings.len(),
        outcome.took,
        outcome.codes
    );
    assert_nothing_leaked(&outcome);
    assert_eq!(
        outcome.count("bad_password"),
        ATTEMPTS,
        "every attempt checked against alice's password: {:?}",
        outcome.codes
    );
    assert!(spellings.len() > 850, "{} spellings", spellings.len());
    assert_eq!(accounts(&mut server), 2, "alice and bob, nobody else");
    alice_reads_her_mail(&server);
}

/// The server's defaults against the same thousand attempts, alice's
/// password hashed at OWASP's cost: three are hashed, 997 refused at once
/// as `too_many_attempts`, and the server spends on the whole attack far
/// less CPU than a hundred hashes. Alice herself is refused too, for the
/// minute (the price of a per-account limit); after a restart she logs in
/// and reads her mail.
#[test]
fn the_throttle_hashes_three_of_a_thousand() {
    let dir = tempfile::tempdir().unwrap();
    let server = Options::plain()
        .owasp_hashes()
        .default_logins()
        .crowd()
        .data_dir(dir.path())
        .start();
    let before = cpu_time(&server);
    alice_has_mail(&server);
    let registering = cpu_time(&server)
        .zip(before)
        .map(|(after, before)| after - before);

    let start = cpu_time(&server);
    let outcome = attack(&server, &attempts());
    let spent = cpu_time(&server).zip(start).map(|(end, start)| end - start);
    eprintln!(
        "{ATTEMPTS} attempts over {CONNECTIONS} connections in {:?}: {:?}; \
         server CPU {spent:?} (registering alice and bob: {registering:?})",
        outcome.took, outcome.codes
    );
    assert_nothing_leaked(&outcome);
    assert_eq!(
        outcome.count("bad_password"),
        3,
        "three hashed: {:?}",
        outcome.codes
    );
    assert_eq!(
        outcome.count("too_many_attempts"),
        ATTEMPTS - 3,
        "{:?}",
        outcome.codes
    );
    let throttled = outcome
        .frames
        .iter()
        .find(|f| f["code"] == "too_many_attempts")
        .unwrap();
    let reason = throttled["reason"].as_str().unwrap();
    assert!(reason.contains("try again in "), "{throttled}");
    if let (Some(spent), Some(registering)) = (spent, registering) {
        // Two registrations are two hashes (and a little more): a thousand
        // hashes would cost 500 times that, a hundred 50 times.
        assert!(
            spent < registering * 50,
            "the attack cost {spent:?} of CPU; two hashes cost {registering:?}"
        );
    }

    let mut alice = server.connect("alice");
    let refused = alice.try_login_with("alice", ALICE_PASSWORD);
    assert_eq!(refused["code"], "too_many_attempts", "{refused}");
    server.kill();

    let server = Options::plain()
        .owasp_hashes()
        .default_logins()
        .crowd()
        .data_dir(dir.path())
        .start();
    alice_reads_her_mail(&server);
}
