//! `make demo-web`'s story (demos/web.sh runs it): two people in headless
//! Chromium and one in the terminal client chat in public, in private and
//! in a group, send a file each way, and live through a SIGKILL of the
//! server, with a screenshot of the pages at each step.
//!
//! `cargo run -p chat-server --example web_demo -- BIN_DIR OUT_DIR`:
//! BIN_DIR holds `chat-server` and `chat-client`; the screenshots go to
//! OUT_DIR. It prints a transcript and `PASS`/`FAIL` lines, and exits 1
//! if a check failed (a wait that times out panics, with what the page
//! showed).
//!
//! It drives the page with the browser tests' own harness.

#[allow(dead_code)]
#[path = "../tests/it/support/browser.rs"]
mod browser;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use browser::{page_url, random_bytes, sha256_hex, Browser, Driver, Terminal, DESKTOP, PHONE};

/// Every demo user's password, as in demos/lib.sh.
fn password(nick: &str) -> String {
    format!("pw-{nick}")
}

/// The demo's server: TLS, a fixed port (it must come back on the same
/// one), its data directory kept across the restart.
struct ServerProcess {
    child: Child,
    _console: ChildStdin,
}

impl ServerProcess {
    fn start(bin: &Path, addr: SocketAddr, data: &Path) -> ServerProcess {
        let mut child = Command::new(bin.join("chat-server"))
            .arg("--bind")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chat-server");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(10))
                .expect("the server's banner and web line");
            println!("  server │ {line}");
            if line.starts_with("web: ") {
                break;
            }
        }
        let console = child.stdin.take().unwrap();
        ServerProcess {
            child,
            _console: console,
        }
    }

    /// SIGKILL, as a crash or a power cut would stop it.
    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The demo's checks and screenshots.
struct Story {
    out: PathBuf,
    shots: usize,
    failures: usize,
}

impl Story {
    fn say(&self, what: &str) {
        println!("\n\x1b[1m== {what}\x1b[0m");
    }

    fn check(&mut self, what: &str, ok: bool) {
        if ok {
            println!("  \x1b[32mPASS\x1b[0m {what}");
        } else {
            println!("  \x1b[31mFAIL\x1b[0m {what}");
            self.failures += 1;
        }
    }

    /// Saves `b`'s window as `NN-name.png` and says so.
    fn shot(&mut self, b: &Browser, name: &str) {
        self.shots += 1;
        let file = format!("{:02}-{name}.png", self.shots);
        b.screenshot(&self.out.join(&file));
        println!("  screenshot │ {file}");
    }

    /// Prints the open conversation as `b` sees it.
    fn show(&self, b: &Browser) {
        for m in b.messages() {
            let state = m.state.map(|s| format!("  [{s}]")).unwrap_or_default();
            println!("  {:<7}│ <{}> {}{state}", b.name, m.sender, m.text);
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(bin), Some(out)) = (args.next(), args.next()) else {
        eprintln!("usage: web_demo BIN_DIR OUT_DIR");
        std::process::exit(2);
    };
    let bin = std::fs::canonicalize(&bin).expect("the bin directory");
    let out = PathBuf::from(out);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("creating the output directory");
    let Some(driver) = Driver::start() else {
        println!("demo-web: skipped (no Chromium; see above)");
        return;
    };
    let work = tempfile::tempdir().expect("a work directory");
    let data = work.path().join("data");
    let addr: SocketAddr = format!("127.0.0.1:{}", browser::free_port())
        .parse()
        .unwrap();
    let url = page_url(addr, true);
    let mut story = Story {
        out: out.clone(),
        shots: 0,
        failures: 0,
    };

    story.say("a TLS server; it prints the page's address");
    let server = ServerProcess::start(&bin, addr, &data);

    story.say("alice and bob open it in a browser and log in; carol uses the terminal client");
    let alice = driver.browser("alice", DESKTOP);
    alice.open(&url);
    story.shot(&alice, "alice-login");
    alice.login("alice", &password("alice"));
    let bob = driver.browser("bob", DESKTOP);
    bob.open(&url);
    bob.login("bob", &password("bob"));
    let mut carol = Terminal::start(
        &bin.join("chat-client"),
        addr,
        true,
        "carol",
        &password("carol"),
    );
    for b in [&alice, &bob] {
        b.wait_js(
            "carol in #online",
            "return !!document.querySelector('#online [data-nick=\"carol\"]');",
            vec![],
        );
        b.open_conv("*");
    }

    story.say("in public: each says hello");
    alice.send("hello everyone, alice here");
    bob.wait_msg("alice", "hello everyone, alice here");
    bob.send("hi alice! bob here");
    alice.wait_msg("bob", "hi alice! bob here");
    carol.type_line("hello from the terminal");
    for b in [&alice, &bob] {
        b.wait_msg("carol", "hello from the terminal");
    }
    alice.wait_state("hello everyone, alice here", "stored");
    story.show(&alice);
    story.check(
        "alice's page shows the three messages once each, in order",
        alice
            .messages()
            .iter()
            .map(|m| m.text.as_str())
            .collect::<Vec<_>>()
            == [
                "hello everyone, alice here",
                "hi alice! bob here",
                "hello from the terminal",
            ],
    );
    carol.expect("<alice> hello everyone, alice here");
    story.check(
        "carol's terminal shows alice's and bob's",
        carol.count("<alice> hello everyone") == 1 && carol.count("<bob> hi alice!") == 1,
    );
    story.shot(&alice, "public-alice");

    story.say("in private: alice and bob");
    alice.send("!msg bob lunch at noon?");
    alice.open_conv("@bob");
    bob.open_conv("@alice");
    bob.wait_msg("alice", "lunch at noon?");
    let delivered = alice.wait_state("lunch at noon?", "delivered");
    story.check(
        "alice sees her private message delivered (✓✓)",
        delivered.state.as_deref() == Some("delivered"),
    );
    bob.send("sure, see you there");
    alice.wait_msg("bob", "sure, see you there");
    story.show(&bob);
    story.check(
        "carol saw none of it",
        carol.count("lunch at noon") == 0 && carol.count("see you there") == 0,
    );
    story.shot(&bob, "private-bob");

    story.say("a group: alice creates #study with bob and carol");
    alice.send("!create #study bob carol");
    alice.open_conv("#study");
    alice.send("exam on friday, bring a pencil");
    carol.expect("[#study] alice: exam on friday, bring a pencil");
    carol.type_line("#study can we use calculators?");
    bob.open_conv("#study");
    bob.wait_msg("alice", "exam on friday, bring a pencil");
    bob.wait_msg("carol", "can we use calculators?");
    alice.wait_msg("carol", "can we use calculators?");
    story.show(&bob);
    story.check(
        "carol got the group message in her terminal",
        carol.count("[#study] alice: exam on friday") == 1,
    );
    story.shot(&bob, "group-bob");

    story.say("files: alice sends notes to carol; carol sends slides to bob");
    let notes = random_bytes(400_000);
    let notes_path = work.path().join("notes.pdf");
    std::fs::write(&notes_path, &notes).unwrap();
    alice.send("!msg carol the notes, as promised");
    alice.open_conv("@carol");
    alice.attach(&notes_path);
    let offer = carol.expect("alice offers you notes.pdf");
    let id = offer
        .split("!accept ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("an offer number")
        .to_string();
    carol.type_line(&format!("!accept {id}"));
    carol.expect("notes.pdf (400000 bytes, SHA-256 verified)");
    let got = std::fs::read(carol.downloads.join("notes.pdf")).unwrap_or_default();
    story.check(
        "carol's copy of notes.pdf has alice's SHA-256",
        sha256_hex(&got) == sha256_hex(&notes),
    );
    alice.wait_attr(".transfer[data-dir=\"up\"]", "data-state", "done");
    story.shot(&alice, "file-sent-alice");
    let slides = random_bytes(300_000);
    let slides_path = work.path().join("slides.pdf");
    std::fs::write(&slides_path, &slides).unwrap();
    carol.type_line(&format!("!send bob {}", slides_path.display()));
    bob.wait_visible(".offer .accept");
    story.shot(&bob, "file-offered-bob");
    bob.click(".offer .accept");
    bob.wait_attr(".transfer[data-dir=\"down\"]", "data-state", "done");
    story.check(
        "bob's page checked the SHA-256 (data-hash-ok)",
        bob.attr(".transfer[data-dir=\"down\"]", "data-hash-ok")
            .as_deref()
            == Some("true"),
    );
    let saved = bob.download(".transfer[data-dir=\"down\"]");
    story.check(
        "the slides bob saved have carol's SHA-256",
        sha256_hex(&saved) == sha256_hex(&slides),
    );
    story.shot(&bob, "file-received-bob");

    story.say("kill -9 the server while the pages are open; alice types meanwhile");
    for b in [&alice, &bob] {
        b.open_conv("*");
    }
    let before = alice.messages().len();
    server.kill9();
    for b in [&alice, &bob] {
        b.wait_attr("#status", "data-state", "offline");
    }
    alice.send("did the server just crash?");
    let pending = alice.wait_state("did the server just crash?", "pending");
    story.check(
        "alice's message waits in the outbox (pending)",
        pending.seq.is_none(),
    );
    story.shot(&alice, "offline-alice");

    story.say("restart it on the same port and data directory");
    let _server = ServerProcess::start(&bin, addr, &data);
    for b in [&alice, &bob] {
        b.wait_online();
    }
    bob.wait_msg("alice", "did the server just crash?");
    alice.wait_state("did the server just crash?", "stored");
    story.show(&bob);
    for b in [&alice, &bob] {
        let rows = b.messages();
        let mut seqs: Vec<u64> = rows.iter().filter_map(|m| m.seq).collect();
        let n = seqs.len();
        seqs.sort_unstable();
        seqs.dedup();
        story.check(
            &format!(
                "{}'s page reconnected by itself and shows nothing twice",
                b.name
            ),
            seqs.len() == n && rows.len() == before + 1,
        );
    }
    for (b, other) in [(&alice, "bob"), (&bob, "alice")] {
        b.wait_js(
            &format!("{other} back in {}'s #online", b.name),
            "return !!document.querySelector(`#online [data-nick=\"${arguments[0]}\"]`);",
            vec![serde_json::json!(other)],
        );
    }
    carol.expect("<alice> did the server just crash?");
    story.check(
        "carol's terminal reconnected too and got it once",
        carol.count("did the server just crash?") == 1,
    );
    story.shot(&alice, "back-online-alice");
    story.shot(&bob, "back-online-bob");

    story.say("dana joins from a phone");
    let dana = driver.browser("dana", PHONE);
    dana.open(&url);
    dana.login("dana", &password("dana"));
    dana.send("hi all, from my phone");
    dana.wait_state("hi all, from my phone", "stored");
    alice.wait_msg("dana", "hi all, from my phone");
    story.shot(&dana, "phone-dana");

    story.say("carol's terminal");
    for line in carol.output() {
        println!("  carol  │ {line}");
    }
    println!();
    if story.failures == 0 {
        println!(
            "\x1b[32mdemo-web: all checks passed\x1b[0m ({} screenshots in {})",
            story.shots,
            out.display()
        );
    } else {
        println!(
            "\x1b[31mdemo-web: {} check(s) failed\x1b[0m",
            story.failures
        );
        std::process::exit(1);
    }
}
