//! The browser client (issue 19), in a real browser: headless Chromium
//! opens the page the server serves, people log in through its form and
//! chat with each other and with a terminal user (the real `chat-client`,
//! in pipe mode). Every assertion is about what a person sees: the rows of
//! `#messages`, their senders and delivery ticks, `#status`, the transfers.
//! The hooks are the page's stable ids and data- attributes (`#messages
//! .msg[data-seq][data-sender]`, `.state[data-state]`, `#status`,
//! `.transfer[data-state]` …), which server/web/ promises to keep.
//!
//! Without Chromium and chromedriver these tests skip (say so, and pass);
//! under `CI=true` they fail. One runs at a time (see
//! `support::browser::Driver`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::browser::{
    page_url, random_bytes, sha256_hex, Browser, Driver, Msg, Terminal, DESKTOP, PHONE,
};
use crate::support::{password_of, Options, Server};

/// The terminal client binary, built once: it belongs to another crate, so
/// Cargo does not build it for `cargo test -p chat-server`. It sits beside
/// the server in the same target directory. Always asked of Cargo (a no-op
/// when current): a stale client would test yesterday's code.
fn client_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = Path::new(env!("CARGO_BIN_EXE_chat-server")).with_file_name("chat-client");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = std::process::Command::new(cargo);
        command
            .args(["build", "-q", "-p", "chat-client", "--bin", "chat-client"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        if !cfg!(debug_assertions) {
            command.arg("--release");
        }
        let status = command
            .status()
            .expect("running cargo build for chat-client");
        assert!(status.success(), "cargo build -p chat-client failed");
        assert!(bin.exists(), "{} missing after building", bin.display());
        bin
    })
}

/// A terminal user on `server`.
fn terminal(server: &Server, nick: &str) -> Terminal {
    Terminal::start(
        client_bin(),
        server.addr,
        server.is_tls(),
        nick,
        &password_of(nick),
    )
}

/// The page's address, after checking that the server printed it.
fn url(server: &mut Server) -> String {
    let url = page_url(server.addr, server.is_tls());
    let line = format!("web: {url}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.stdout().lines().any(|l| l == line) {
        assert!(
            Instant::now() < deadline,
            "the server did not print {line:?}; stdout:\n{}",
            server.stdout()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    url
}

/// A browser user of `size` who opened the page and logged in as `nick`.
fn user(driver: &Driver, url: &str, nick: &str, size: (u32, u32)) -> Browser {
    let browser = driver.browser(nick, size);
    browser.open(url);
    browser.login(nick, &password_of(nick));
    browser
}

/// Where a test's screenshots go (not the repository).
fn shot(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("browser")
        .join(name)
}

/// Starts recording, for each own message (`.msg[data-cid]`) by its text,
/// every `data-state` its `.state` shows, in order: a state that lasts a
/// millisecond is still seen, which polling would miss.
fn record_states(b: &Browser) {
    b.js(
        "if (window.__states) return;
         window.__states = {};
         const record = () => {
             for (const m of document.querySelectorAll('#messages .msg[data-cid]')) {
                 const t = m.querySelector('.text'), s = m.querySelector('.state');
                 if (!t || !s) continue;
                 const seen = (window.__states[t.textContent] ||= []);
                 if (seen[seen.length - 1] !== s.dataset.state) seen.push(s.dataset.state);
             }
         };
         new MutationObserver(record).observe(document.body,
             {subtree: true, childList: true, attributes: true, attributeFilter: ['data-state']});
         record();",
        vec![],
    );
}

/// The states recorded for own message `text`.
fn states_of(b: &Browser, text: &str) -> Vec<String> {
    let seen = b.js(
        "return (window.__states || {})[arguments[0]] || [];",
        vec![json!(text)],
    );
    serde_json::from_value(seen).unwrap()
}

/// Waits until own message `text` has gone through exactly `states`.
fn expect_states(b: &Browser, text: &str, states: &[&str]) {
    b.wait(&format!("{text:?} to go {}", states.join(" → ")), |b| {
        let seen = states_of(b, text);
        if seen == states {
            Ok(())
        } else {
            Err(format!("went {}", seen.join(" → ")))
        }
    });
}

/// `(sender, text)` of each row, for comparing whole conversations.
fn said(rows: &[Msg]) -> Vec<(String, String)> {
    rows.iter()
        .map(|m| (m.sender.clone(), m.text.clone()))
        .collect()
}

/// Waits until the open conversation shows exactly `expected`
/// (sender, text), in this order, each once.
fn expect_conversation(b: &Browser, expected: &[(&str, &str)]) -> Vec<Msg> {
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(s, t)| (s.to_string(), t.to_string()))
        .collect();
    b.wait("the conversation to be exactly what was said", |b| {
        let rows = b.messages();
        if said(&rows) == expected {
            Ok(rows)
        } else {
            Err(format!("{:?}\n  expected: {expected:?}", said(&rows)))
        }
    })
}

/// Fails if two rows show the same server seq (a message shown twice).
fn assert_no_repeats(who: &str, rows: &[Msg]) {
    let mut seqs: Vec<u64> = rows.iter().filter_map(|m| m.seq).collect();
    let shown = seqs.len();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), shown, "{who}: a message shown twice: {rows:#?}");
}

/// Two browser users and a terminal user chat in public, in private and in
/// a group: each sees the others' messages once, in order, from the right
/// sender; alice's own go pending → stored (→ delivered, privately).
#[test]
fn two_browsers_and_a_terminal_chat_in_public_private_and_a_group() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let mut server = Options::tls().start();
    let url = url(&mut server);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let alice = user(&driver, &url, "alice", DESKTOP);
    let bob = user(&driver, &url, "bob", DESKTOP);
    let mut carol = terminal(&server, "carol");
    for (b, others) in [(&alice, ["bob", "carol"]), (&bob, ["alice", "carol"])] {
        for nick in others {
            b.wait_js(
                &format!("{nick} in #online"),
                "return !!document.querySelector(`#online [data-nick=\"${arguments[0]}\"]`);",
                vec![json!(nick)],
            );
        }
    }
    for b in [&alice, &bob] {
        b.open_conv("*");
        record_states(b);
    }

    // In public, one after another, each waiting until all saw the last.
    alice.send("hello from alice");
    expect_states(&alice, "hello from alice", &["pending", "stored"]);
    bob.wait_msg("alice", "hello from alice");
    carol.expect("<alice> hello from alice");
    bob.send("hi, bob here");
    alice.wait_msg("bob", "hi, bob here");
    carol.expect("<bob> hi, bob here");
    carol.type_line("carol from the terminal");
    let public = [
        ("alice", "hello from alice"),
        ("bob", "hi, bob here"),
        ("carol", "carol from the terminal"),
    ];
    for b in [&alice, &bob] {
        let rows = expect_conversation(b, &public);
        assert!(rows.iter().all(|m| m.seq.is_some()), "{rows:?}");
        assert_no_repeats(&b.name, &rows);
    }
    assert_eq!(carol.count("hello from alice"), 1, "{:?}", carol.output());
    assert_eq!(carol.count("hi, bob here"), 1, "{:?}", carol.output());

    // In private: alice opens the conversation with a command, then types
    // into it; bob has one unread message there until he opens it.
    alice.send("!msg bob just between us");
    alice.open_conv("@bob");
    alice.send("second, typed in the conversation");
    bob.wait_js(
        "an unread count on bob's @alice",
        "const u = document.querySelector('#conversations [data-conv=\"@alice\"] .unread');
         return u && u.textContent.trim() !== '' && u.textContent.trim() !== '0'
             ? u.textContent.trim() : null;",
        vec![],
    );
    bob.open_conv("@alice");
    expect_conversation(
        &bob,
        &[
            ("alice", "just between us"),
            ("alice", "second, typed in the conversation"),
        ],
    );
    // Bob's page got them (and told the server): delivered, ✓✓.
    expect_states(
        &alice,
        "second, typed in the conversation",
        &["pending", "stored", "delivered"],
    );
    bob.send("got it, alice");
    alice.wait_msg("bob", "got it, alice");
    carol.type_line("!private alice psst, carol here");
    alice.wait_js(
        "a conversation with carol in alice's sidebar",
        "return !!document.querySelector('#conversations [data-conv=\"@carol\"]');",
        vec![],
    );
    alice.open_conv("@carol");
    alice.wait_msg("carol", "psst, carol here");
    carol.expect("delivered to alice");
    for text in ["just between us", "got it, alice"] {
        assert_eq!(carol.count(text), 0, "carol saw a private message");
    }
    bob.open_conv("*");
    assert!(
        !said(&bob.messages())
            .iter()
            .any(|(_, t)| t.contains("psst") || t.contains("between us")),
        "a private message in bob's public room: {:?}",
        bob.messages()
    );

    // A group, created from the page.
    alice.send("!create #study bob carol");
    alice.wait_js(
        "#study in alice's sidebar",
        "return !!document.querySelector('#conversations [data-conv=\"#study\"]');",
        vec![],
    );
    carol.expect("#study");
    alice.open_conv("#study");
    alice.send("group: exam on friday");
    expect_states(&alice, "group: exam on friday", &["pending", "stored"]);
    carol.expect("[#study] alice: group: exam on friday");
    bob.open_conv("#study");
    bob.wait_msg("alice", "group: exam on friday");
    carol.type_line("#study can we use calculators?");
    bob.send("and notes?");
    let group = [
        ("alice", "group: exam on friday"),
        ("carol", "can we use calculators?"),
        ("bob", "and notes?"),
    ];
    for b in [&alice, &bob] {
        let rows = expect_conversation(b, &group);
        assert_no_repeats(&b.name, &rows);
    }
    carol.expect("[#study] bob: and notes?");
    alice.screenshot(&shot("chat-alice.png"));
    bob.screenshot(&shot("chat-bob.png"));
}

/// Files both ways: alice (browser) sends one to carol (terminal), who
/// saves the same bytes; carol offers one to bob (browser), who accepts
/// it: the page checks its hash, and the bytes behind the download link
/// hash as the test's own do.
#[test]
fn a_file_from_a_browser_to_a_terminal_and_back() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let mut server = Options::tls().start();
    let url = url(&mut server);
    let alice = user(&driver, &url, "alice", DESKTOP);
    let bob = user(&driver, &url, "bob", DESKTOP);
    let mut carol = terminal(&server, "carol");
    let files = tempfile::tempdir().unwrap();

    let notes = random_bytes(300_000);
    let notes_path = files.path().join("notes.bin");
    std::fs::write(&notes_path, &notes).unwrap();
    alice.send("!msg carol here come the notes");
    carol.expect("[private from alice] here come the notes");
    alice.open_conv("@carol");
    alice.attach(&notes_path);
    alice.wait_js(
        "an upload (.transfer[data-dir=up]) after a file was put on #file-input \
         (the page must send it to the open conversation, @carol)",
        "return !!document.querySelector('.transfer[data-dir=\"up\"]');",
        vec![],
    );
    let offer = carol.expect("alice offers you notes.bin (300000 bytes)");
    let id = offer
        .split("!accept ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no offer number in {offer:?}"));
    carol.type_line(&format!("!accept {id}"));
    carol.expect("received ");
    carol.expect("notes.bin (300000 bytes, SHA-256 verified)");
    let got = std::fs::read(carol.downloads.join("notes.bin")).expect("carol's copy");
    assert_eq!(sha256_hex(&got), sha256_hex(&notes), "carol's bytes");
    alice.wait_attr(".transfer[data-dir=\"up\"]", "data-state", "done");
    alice.screenshot(&shot("file-alice.png"));

    let slides = random_bytes(250_000);
    let slides_path = files.path().join("slides.bin");
    std::fs::write(&slides_path, &slides).unwrap();
    carol.type_line(&format!("!send bob {}", slides_path.display()));
    bob.wait_visible(".offer .accept");
    let file = bob
        .attr(".offer", "data-file")
        .expect("the offer names its file (data-file)");
    bob.click(".offer .accept");
    let transfer = format!(".transfer[data-dir=\"down\"][data-file=\"{file}\"]");
    bob.wait_attr(&transfer, "data-state", "done");
    assert_eq!(
        bob.attr(&transfer, "data-hash-ok").as_deref(),
        Some("true"),
        "bob's page checked the hash: {}",
        bob.describe()
    );
    let name = bob
        .js(
            "const a = document.querySelector(arguments[0] + ' a.download-link');
             return a ? [a.getAttribute('download'), a.href] : null;",
            vec![json!(transfer)],
        )
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no a.download-link in {transfer}: {}", bob.describe()));
    assert_eq!(name[0], "slides.bin", "the link's download name");
    assert!(
        name[1].as_str().is_some_and(|h| h.starts_with("blob:")),
        "{name:?}"
    );
    let saved = bob.download(&transfer);
    assert_eq!(
        sha256_hex(&saved),
        sha256_hex(&slides),
        "the bytes bob saved"
    );
    carol.expect("bob accepted slides.bin");
    bob.screenshot(&shot("file-bob.png"));
}

/// The server is killed with SIGKILL under open pages; alice types while
/// it is down. Restarted on the same port and data directory, the pages
/// come back online by themselves, the message typed meanwhile is
/// delivered once, nothing shows twice, and a reload keeps it all.
#[test]
fn pages_reconnect_after_sigkill_and_show_nothing_twice() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let port = crate::support::browser::free_port();
    let options = || {
        Options::tls()
            .data_dir(data.path())
            .flag("--bind", format!("127.0.0.1:{port}"))
    };
    let mut server = options().start();
    let url = url(&mut server);
    let alice = user(&driver, &url, "alice", DESKTOP);
    let bob = user(&driver, &url, "bob", DESKTOP);
    for b in [&alice, &bob] {
        b.open_conv("*");
    }
    alice.send("before the crash, from alice");
    bob.wait_msg("alice", "before the crash, from alice");
    bob.send("before the crash, from bob");
    alice.wait_msg("bob", "before the crash, from bob");
    alice.wait_state("before the crash, from alice", "stored");
    bob.wait_state("before the crash, from bob", "stored");
    let before = [
        ("alice", "before the crash, from alice"),
        ("bob", "before the crash, from bob"),
    ];
    let alice_before = expect_conversation(&alice, &before);
    let bob_before = expect_conversation(&bob, &before);

    server.kill();
    for b in [&alice, &bob] {
        b.wait_attr("#status", "data-state", "offline");
    }
    let typed = "typed while the server was down";
    alice.send(typed);
    let pending = alice.wait_msg("alice", typed);
    assert_eq!(pending.seq, None, "a pending message has no seq yet");
    assert_eq!(pending.state.as_deref(), Some("pending"), "{pending:?}");
    let cid = pending.cid.clone().expect("an own message has data-cid");
    let kept = alice.js(
        "return Object.keys(localStorage).some(k => localStorage.getItem(k).includes(arguments[0]));",
        vec![json!(typed)],
    );
    assert_eq!(kept, json!(true), "the outbox is kept in localStorage");
    alice.screenshot(&shot("reconnect-offline-alice.png"));

    let _server = options().start();
    for b in [&alice, &bob] {
        b.wait_online();
    }
    let mut after = before.to_vec();
    after.push(("alice", typed));
    let bob_after = expect_conversation(&bob, &after);
    let alice_after = expect_conversation(&alice, &after);
    let sent = alice.wait_state(typed, "stored");
    assert_eq!(
        sent.cid.as_deref(),
        Some(cid.as_str()),
        "the resend kept its cid"
    );
    for (who, was, now) in [
        ("alice", &alice_before, &alice_after),
        ("bob", &bob_before, &bob_after),
    ] {
        assert_eq!(
            &now[..was.len()],
            &was[..],
            "{who}: the rows before the crash"
        );
        assert_no_repeats(who, now);
    }
    // Nothing more comes: the resend was not shown twice later either.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        said(&bob.messages()),
        said(&bob_after),
        "bob, a moment later"
    );

    // A reload: the page logs in again (the password is in sessionStorage
    // for the tab) and shows the conversation as it was.
    alice.refresh();
    alice.wait_logged_in("alice");
    assert_eq!(
        alice.js(
            "return Object.keys(localStorage).some(k => localStorage.getItem(k).includes(arguments[0]));",
            vec![json!(password_of("alice"))],
        ),
        json!(false),
        "the password is never in localStorage"
    );
    alice.open_conv("*");
    // Each message once, in order. (The rows come back from the server's
    // `history`, whose entries carry no seq: docs/protocol.md.)
    let reloaded = expect_conversation(&alice, &after);
    assert_no_repeats("alice after the reload", &reloaded);
    assert_eq!(
        reloaded.last().and_then(|m| m.state.as_deref()),
        Some("stored"),
        "the message typed while down, after the reload: {reloaded:?}"
    );
    alice.screenshot(&shot("reconnect-reloaded-alice.png"));
}

/// A message made to look like HTML shows as text, in both pages, and
/// runs nothing. Over `--no-tls` (http://).
#[test]
fn markup_in_a_message_shows_as_text_and_runs_nothing() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let mut server = Options::plain().start();
    let url = url(&mut server);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let alice = user(&driver, &url, "alice", DESKTOP);
    let bob = user(&driver, &url, "bob", DESKTOP);
    let mut carol = terminal(&server, "carol");
    let payload = r#"<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">"#;
    carol.type_line(payload);
    for b in [&alice, &bob] {
        b.open_conv("*");
        let row = b.wait_msg("carol", payload);
        assert_eq!(row.text, payload);
    }
    // Also typed in a page, and so also in a private conversation.
    alice.send(&format!("!msg bob {payload}"));
    bob.open_conv("@alice");
    bob.wait_msg("alice", payload);
    // Give an <img onerror> time to have fired, were there one.
    std::thread::sleep(Duration::from_millis(300));
    for b in [&alice, &bob] {
        let pwned = b.js("return typeof window.__pwned;", vec![]);
        assert_eq!(pwned, json!("undefined"), "{}: the markup ran", b.name);
        for tag in ["img", "script"] {
            assert_eq!(
                b.count(&format!(
                    "#messages {tag}, #conversations {tag}, #notices {tag}"
                )),
                0,
                "{}: an <{tag}> was made from a message",
                b.name
            );
        }
    }
    carol.expect(payload);
}

/// On a phone-sized screen the page is usable: log in, type, send, see
/// the message stored, all without scrolling sideways.
#[test]
fn the_page_works_on_a_phone_sized_screen() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let mut server = Options::plain().start();
    let url = url(&mut server);
    let phone = driver.browser("dana", PHONE);
    phone.open(&url);
    phone.screenshot(&shot("phone-login.png"));
    phone.login("dana", &password_of("dana"));
    let mut carol = terminal(&server, "carol");
    phone.send("hello from a phone");
    phone.wait_state("hello from a phone", "stored");
    carol.expect("<dana> hello from a phone");
    carol.type_line("hi dana");
    phone.wait_msg("carol", "hi dana");
    let layout = phone.js(
        "const fits = s => { const e = document.querySelector(s); if (!e) return s + ' missing';
             const r = e.getBoundingClientRect();
             return r.width > 0 && r.left >= 0 && r.right <= innerWidth + 1 && r.bottom <= innerHeight + 1
                 ? null : `${s} at ${r.left},${r.top} to ${r.right},${r.bottom} in ${innerWidth}x${innerHeight}`; };
         const problems = ['#input', '#send', '#messages'].map(fits).filter(x => x);
         if (document.documentElement.scrollWidth > innerWidth + 1)
             problems.push(`the page is ${document.documentElement.scrollWidth}px wide in ${innerWidth}`);
         return problems;",
        vec![],
    );
    assert_eq!(layout, Value::Array(vec![]), "on a phone: {layout}");
    phone.screenshot(&shot("phone-chat.png"));
}
