//! Browser support: the distribution's headless Chromium driven through
//! `chromedriver` (WebDriver, with the fantoccini crate), and the terminal
//! client (`chat-client` in pipe mode) beside it, so that a test can make a
//! browser user and a terminal user talk and assert what each one sees.
//!
//! fantoccini is async; the tests are not. A [`Driver`] owns a
//! current-thread tokio runtime and every [`Browser`] it opens blocks on it,
//! so a test reads like the others: one call, one thing a person does.
//!
//! Without `/usr/bin/chromium` or `/usr/bin/chromedriver` the tests skip
//! with a line saying so; under `CI=true` they fail instead (`.ci/run`
//! installs both).
//!
//! This file stands alone (std, the dev-dependencies, nothing of
//! `support`'s): `examples/web_demo.rs` includes it too, so the demo and
//! the tests drive the page with the same code.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a wait for something on a page lasts before the test fails.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(100);

/// A laptop's window; [`PHONE`] is a phone's.
pub const DESKTOP: (u32, u32) = (1280, 900);
pub const PHONE: (u32, u32) = (390, 844);

/// Whether this run must not skip for want of a browser.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The page's address on a server at `addr`: https unless it runs
/// `--no-tls`.
pub fn page_url(addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{addr}/")
}

/// One browser test at a time: each runs two or three Chromiums, and
/// several tests' worth on two cores would make every page slow enough to
/// miss its deadlines.
static TURN: Mutex<()> = Mutex::new(());

/// A `chromedriver` on 127.0.0.1, killed (with its browsers) on drop, and
/// the runtime its sessions run on.
pub struct Driver {
    child: Child,
    url: String,
    runtime: Arc<tokio::runtime::Runtime>,
    _turn: MutexGuard<'static, ()>,
}

impl Driver {
    /// Starts chromedriver, or returns `None` (after saying why) when the
    /// browser is not installed and this is not CI.
    pub fn start() -> Option<Driver> {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(tool).exists() {
                let why = format!(
                    "{tool} is missing: install the packages chromium and chromium-driver \
                     (.ci/run does)"
                );
                assert!(!in_ci(), "CI=true and the browser tests cannot run: {why}");
                eprintln!("SKIPPED (browser test): {why}");
                return None;
            }
        }
        // A failed test panics while holding it; the lock guards nothing
        // but the turn, so a poisoned one is still good.
        let turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
        let port = free_port();
        let mut command = Command::new(CHROMEDRIVER);
        command
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        {
            // Its own process group, so that drop can end the browsers it
            // started too, even when a session was not closed.
            use std::os::unix::process::CommandExt as _;
            command.process_group(0);
        }
        let child = command.spawn().expect("starting chromedriver");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime for fantoccini");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            runtime: Arc::new(runtime),
            _turn: turn,
        };
        let deadline = Instant::now() + PAGE_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on 127.0.0.1:{port} within {PAGE_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(driver)
    }

    /// A new browser user: its own Chromium with its own fresh profile
    /// (so nothing in storage is shared with another user), a window of
    /// `size`. `name` is for failure messages.
    pub fn browser(&self, name: &str, size: (u32, u32)) -> Browser {
        let profile = tempfile::tempdir().expect("a temporary Chromium profile");
        let downloads = profile.path().join("Downloads");
        std::fs::create_dir_all(&downloads).expect("creating the downloads directory");
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--window-size={},{}", size.0, size.1),
        ];
        let capabilities = json!({
            "browserName": "chrome",
            // The server's certificate is self-signed.
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": args,
                // A click on a download link saves the file here, unasked.
                "prefs": {
                    "download.default_directory": downloads.display().to_string(),
                    "download.prompt_for_download": false,
                },
            },
        });
        let Value::Object(capabilities): Value = capabilities else {
            unreachable!("a JSON object")
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = self
            .runtime
            .block_on(
                ClientBuilder::new(connector)
                    .capabilities(capabilities)
                    .connect(&self.url),
            )
            .unwrap_or_else(|e| panic!("{name}: starting a WebDriver session: {e}"));
        let browser = Browser {
            name: name.to_string(),
            runtime: self.runtime.clone(),
            client: Some(client),
            downloads,
            _profile: profile,
        };
        // The window's size includes what headless Chromium counts as its
        // frame; the page itself should get the whole size asked for.
        let frame = browser.js(
            "return [outerWidth - innerWidth, outerHeight - innerHeight];",
            vec![],
        );
        let extra = |i: usize| frame[i].as_u64().unwrap_or(0) as u32;
        browser.run(
            browser
                .client()
                .set_window_size(size.0 + extra(0), size.1 + extra(1)),
        );
        browser
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            let group = self.child.id() as libc::pid_t;
            // SAFETY: kill(2) on the process group we created for our own
            // child (chromedriver and the browsers it started); the child
            // is not reaped yet, so the id is still ours.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port nobody listens on now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

/// One `.msg` row as a person sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    /// `data-seq`: absent while the message is pending.
    pub seq: Option<u64>,
    /// `data-sender`.
    pub sender: String,
    /// The `.text`'s text.
    pub text: String,
    /// Own messages: the `.state`'s `data-state`.
    pub state: Option<String>,
    /// Own messages: `data-cid`.
    pub cid: Option<String>,
}

/// The rows of `#messages` (or of another list, by selector) as JSON: what
/// [`Browser::messages`] reads.
const READ_MSGS: &str = r#"
    const list = document.querySelector(arguments[0]);
    if (!list) return null;
    return [...list.querySelectorAll('.msg')].map(m => {
        const text = m.querySelector('.text');
        const state = m.querySelector('.state');
        return {
            seq: m.dataset.seq === undefined ? null : m.dataset.seq,
            sender: m.dataset.sender === undefined ? null : m.dataset.sender,
            text: text ? text.textContent : null,
            state: state ? (state.dataset.state === undefined ? null : state.dataset.state) : null,
            cid: m.dataset.cid === undefined ? null : m.dataset.cid,
        };
    });
"#;

/// A page's state in a few words, for failure messages.
const DESCRIBE: &str = r#"
    const q = s => document.querySelector(s);
    const status = q('#status');
    const rows = [...document.querySelectorAll('#messages .msg')].slice(-8).map(m => {
        const t = m.querySelector('.text'), s = m.querySelector('.state');
        return `${m.dataset.seq ?? '-'} <${m.dataset.sender ?? '?'}> ${t ? t.textContent : '(no .text)'}`
            + (s ? ` [${s.dataset.state}]` : '');
    });
    const notices = [...document.querySelectorAll('#notices .notice')].slice(-4).map(n => n.textContent);
    const convs = [...document.querySelectorAll('#conversations [data-conv]')].map(c =>
        c.dataset.conv + (c.getAttribute('aria-current') === 'true' ? '(open)' : ''));
    return `url=${location.href} status=${status ? status.dataset.state : '(no #status)'} `
        + `me=${q('#me') ? q('#me').textContent : '(no #me)'} `
        + `login-error=${q('#login-error') ? JSON.stringify(q('#login-error').textContent) : '-'}\n`
        + `      conversations: ${convs.join(' ')}\n`
        + `      last messages:\n        ${rows.join('\n        ')}\n`
        + `      notices: ${notices.join(' | ')}`;
"#;

/// One browser user: a WebDriver session with its own Chromium; closed on
/// drop.
pub struct Browser {
    pub name: String,
    runtime: Arc<tokio::runtime::Runtime>,
    client: Option<Client>,
    /// Where Chromium saves what this user downloads.
    pub downloads: PathBuf,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn client(&self) -> &Client {
        self.client.as_ref().expect("the session is open")
    }

    /// Runs one WebDriver command to its end; a WebDriver failure fails
    /// the test with this user's name.
    fn run<T>(
        &self,
        command: impl std::future::Future<Output = Result<T, fantoccini::error::CmdError>>,
    ) -> T {
        self.runtime
            .block_on(command)
            .unwrap_or_else(|e| panic!("{}: WebDriver: {e}", self.name))
    }

    /// Opens `url` and waits for the login form.
    pub fn open(&self, url: &str) {
        self.run(self.client().goto(url));
        self.wait_visible("#login-form, #app");
    }

    /// Reloads the page (F5).
    pub fn refresh(&self) {
        self.run(self.client().refresh());
    }

    /// Runs `script` (a function body: `arguments`, `return`) in the page.
    pub fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.run(self.client().execute(script, args))
    }

    /// The page in a few words: status, conversations, the last messages.
    pub fn describe(&self) -> String {
        match self
            .runtime
            .block_on(self.client().execute(DESCRIBE, vec![]))
        {
            Ok(Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(e) => format!("(could not read the page: {e})"),
        }
    }

    /// Polls `probe` until it gives `Ok`, for at most [`PAGE_TIMEOUT`];
    /// then fails with `what`, the last thing `probe` found and the page.
    pub fn wait<T>(&self, what: &str, mut probe: impl FnMut(&Browser) -> Result<T, String>) -> T {
        let deadline = Instant::now() + PAGE_TIMEOUT;
        loop {
            let found = match probe(self) {
                Ok(value) => return value,
                Err(found) => found,
            };
            if Instant::now() >= deadline {
                panic!(
                    "{}: waited {PAGE_TIMEOUT:?} for {what}\n  found: {found}\n  page: {}",
                    self.name,
                    self.describe()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until `script` returns something truthy, and returns it;
    /// `what` says what was awaited.
    pub fn wait_js(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        self.wait(what, |b| {
            let value = b.js(script, args.clone());
            match &value {
                Value::Null | Value::Bool(false) => Err(format!("{value}")),
                Value::String(s) if s.is_empty() => Err("\"\"".into()),
                _ => Ok(value),
            }
        })
    }

    /// Waits until an element matching `selector` is displayed.
    pub fn wait_visible(&self, selector: &str) {
        self.wait_js(
            &format!("{selector} to be shown"),
            "const e = document.querySelector(arguments[0]);
             return !!e && !e.closest('[hidden]') && e.getClientRects().length > 0;",
            vec![json!(selector)],
        );
    }

    /// Waits until `selector` has attribute `attr` equal to `value`.
    pub fn wait_attr(&self, selector: &str, attr: &str, value: &str) {
        self.wait(&format!("{selector}[{attr}={value:?}]"), |b| {
            let found = b.attr(selector, attr);
            match found.as_deref() {
                Some(v) if v == value => Ok(()),
                _ => Err(format!("{selector} {attr}={found:?}")),
            }
        })
    }

    /// The attribute `attr` of the first element matching `selector`
    /// (`None`: no such element, or no such attribute).
    pub fn attr(&self, selector: &str, attr: &str) -> Option<String> {
        self.js(
            "const e = document.querySelector(arguments[0]);
             return e ? e.getAttribute(arguments[1]) : null;",
            vec![json!(selector), json!(attr)],
        )
        .as_str()
        .map(str::to_string)
    }

    /// The text of the first element matching `selector`.
    pub fn text(&self, selector: &str) -> Option<String> {
        self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            vec![json!(selector)],
        )
        .as_str()
        .map(str::to_string)
    }

    /// How many elements match `selector`.
    pub fn count(&self, selector: &str) -> usize {
        self.js(
            "return document.querySelectorAll(arguments[0]).length;",
            vec![json!(selector)],
        )
        .as_u64()
        .unwrap_or(0) as usize
    }

    /// Clicks the element `selector` (waiting for it to be shown).
    pub fn click(&self, selector: &str) {
        self.wait_visible(selector);
        let element = self.run(self.client().find(Locator::Css(selector)));
        self.run(element.click());
    }

    /// Logs in as `nick` through the login form, and waits until the page
    /// says who it is and that it is online. A nickname without an account
    /// makes the page ask for the password again (`#login-password2`, as
    /// the terminal client does), before it creates the account.
    pub fn login(&self, nick: &str, password: &str) {
        self.wait_visible("#login-form");
        for (field, value) in [("#login-nick", nick), ("#login-password", password)] {
            let element = self.run(self.client().find(Locator::Css(field)));
            self.run(element.clear());
            self.run(element.send_keys(value));
        }
        self.click("#login-submit");
        let shown = self.wait_js(
            "the app, or the form asking for the password again",
            "const shown = s => { const e = document.querySelector(s);
                 return !!e && !e.closest('[hidden]') && e.getClientRects().length > 0; };
             return shown('#app') ? 'app' : shown('#login-password2') ? 'again' : null;",
            vec![],
        );
        if shown == "again" {
            self.type_into("#login-password2", password);
            self.click("#login-submit");
        }
        self.wait_logged_in(nick);
    }

    /// Types `keys` into the element `selector`.
    pub fn type_into(&self, selector: &str, keys: &str) {
        let element = self.run(self.client().find(Locator::Css(selector)));
        self.run(element.send_keys(keys));
    }

    /// Waits until the app is shown for `nick`, online.
    pub fn wait_logged_in(&self, nick: &str) {
        self.wait_visible("#app");
        self.wait(&format!("#me to say {nick:?}"), |b| {
            let me = b.text("#me");
            match me.as_deref().map(str::trim) {
                Some(m) if m == nick => Ok(()),
                _ => Err(format!("#me = {me:?}")),
            }
        });
        self.wait_online();
    }

    /// Waits until `#status` says online.
    pub fn wait_online(&self) {
        self.wait_attr("#status", "data-state", "online");
    }

    /// Types `line` into `#input` and presses Enter.
    pub fn send(&self, line: &str) {
        let input = self.run(self.client().find(Locator::Css("#input")));
        self.run(input.send_keys(line));
        self.run(input.send_keys(&fantoccini::key::Key::Enter.to_string()));
    }

    /// Opens the conversation `conv` (`*`, `@nick`, `#group`) from the
    /// sidebar, waiting for it to appear there first.
    pub fn open_conv(&self, conv: &str) {
        let selector = format!("#conversations [data-conv=\"{conv}\"]");
        self.click(&selector);
        self.wait_attr(&selector, "aria-current", "true");
    }

    /// The `.msg` rows of the open conversation.
    pub fn messages(&self) -> Vec<Msg> {
        self.messages_in("#messages")
    }

    /// The `.msg` rows inside the element `list` (e.g. `#search-results`).
    pub fn messages_in(&self, list: &str) -> Vec<Msg> {
        let rows = self.js(READ_MSGS, vec![json!(list)]);
        let Value::Array(rows) = rows else {
            panic!("{}: no {list} on the page: {}", self.name, self.describe());
        };
        rows.iter()
            .map(|row| Msg {
                seq: row["seq"].as_str().map(|s| {
                    s.parse().unwrap_or_else(|_| {
                        panic!("{}: a .msg with data-seq={s:?}, not a number", self.name)
                    })
                }),
                sender: row["sender"].as_str().unwrap_or_default().to_string(),
                text: row["text"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{}: a .msg without .text: {row}", self.name))
                    .to_string(),
                state: row["state"].as_str().map(str::to_string),
                cid: row["cid"].as_str().map(str::to_string),
            })
            .collect()
    }

    /// Waits until the open conversation shows a message with `text` from
    /// `sender`, and returns it.
    pub fn wait_msg(&self, sender: &str, text: &str) -> Msg {
        self.wait(&format!("a message <{sender}> {text:?}"), |b| {
            let rows = b.messages();
            rows.iter()
                .find(|m| m.sender == sender && m.text == text)
                .cloned()
                .ok_or_else(|| format!("{} rows", rows.len()))
        })
    }

    /// Waits until own message `text` shows delivery state `state`.
    pub fn wait_state(&self, text: &str, state: &str) -> Msg {
        self.wait(&format!("own message {text:?} to be {state}"), |b| {
            let rows = b.messages();
            match rows.iter().find(|m| m.text == text) {
                Some(m) if m.state.as_deref() == Some(state) => Ok(m.clone()),
                Some(m) => Err(format!("{m:?}")),
                None => Err("no such message".into()),
            }
        })
    }

    /// Saves a PNG screenshot of the window at `path`.
    pub fn screenshot(&self, path: &Path) {
        let png = self.run(self.client().screenshot());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("creating the screenshot directory");
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// Sends the file at `path` to the open conversation as a person does:
    /// a click on `#attach`, then the file chosen (WebDriver types its
    /// path into `#file-input`, as the file dialog would fill it).
    pub fn attach(&self, path: &Path) {
        self.click("#attach");
        let input = self.run(self.client().find(Locator::Css("#file-input")));
        self.run(input.send_keys(&path.display().to_string()));
    }

    /// Clicks the first `a.download-link` inside `selector`, as a person
    /// saving the file would, and returns the bytes Chromium saved under
    /// the link's `download` name. (Fetching the blob: URL from a script
    /// instead is refused by the page's CSP, `connect-src 'self'`.)
    pub fn download(&self, selector: &str) -> Vec<u8> {
        let link = format!("{selector} a.download-link");
        let name = self.attr(&link, "download").unwrap_or_else(|| {
            panic!(
                "{}: no {link} with a download name: {}",
                self.name,
                self.describe()
            )
        });
        self.click(&link);
        let path = self.downloads.join(&name);
        self.wait(&format!("{name} saved in the downloads"), |_| {
            let listing: Vec<String> = std::fs::read_dir(&self.downloads)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            // Chromium writes NAME.crdownload, then renames it.
            match path.exists() && !listing.iter().any(|n| n.ends_with(".crdownload")) {
                true => Ok(()),
                false => Err(format!("downloads: {listing:?}")),
            }
        });
        std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let close =
                async { tokio::time::timeout(Duration::from_secs(5), client.close()).await };
            let _ = self.runtime.block_on(close);
        }
    }
}

/// The SHA-256 of `bytes`, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `len` bytes that do not compress, different at each call.
pub fn random_bytes(len: usize) -> Vec<u8> {
    // xorshift64*, seeded from the clock: no crate needed for noise.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = now ^ 0x9E37_79B9_7F4A_7C15 ^ (len as u64).rotate_left(17);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A terminal user: the real `chat-client` in pipe mode (one line typed,
/// one line of output per event), its output collected by a thread.
pub struct Terminal {
    pub nick: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
    /// Where `!accept` saves files.
    pub downloads: PathBuf,
    _home: tempfile::TempDir,
}

impl Terminal {
    /// Starts the client `bin` as `nick` (the password given as
    /// `CHAT_PASSWORD`) against the server at `addr`, and waits for its
    /// welcome. Its home, known hosts and downloads are a fresh temporary
    /// directory.
    pub fn start(bin: &Path, addr: SocketAddr, tls: bool, nick: &str, password: &str) -> Terminal {
        let home = tempfile::tempdir().expect("a temporary home for the client");
        let downloads = home.path().join("downloads");
        std::fs::create_dir_all(&downloads).unwrap();
        let mut command = Command::new(bin);
        command
            .arg("--server")
            .arg(addr.to_string())
            .arg("--nick")
            .arg(nick)
            .arg("--known-hosts")
            .arg(home.path().join("known_hosts"))
            .arg("--downloads")
            .arg(&downloads)
            .env("CHAT_PASSWORD", password)
            .env("HOME", home.path())
            .env("XDG_DATA_HOME", home.path().join("data"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !tls {
            command.arg("--no-tls");
        }
        let mut child = command.spawn().expect("starting chat-client");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sink = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    sink.lock().unwrap().push(line);
                }
            });
        }
        let stdin = child.stdin.take();
        let terminal = Terminal {
            nick: nick.to_string(),
            child,
            stdin,
            lines,
            downloads,
            _home: home,
        };
        terminal.expect(&format!("welcome, {nick}"));
        terminal
    }

    /// Types one line.
    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("the client's stdin is open");
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .unwrap_or_else(|e| panic!("{}: typing {line:?}: {e}", self.nick));
    }

    /// Everything the client printed so far.
    pub fn output(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until a line contains `needle`, and returns it.
    pub fn expect(&self, needle: &str) -> String {
        self.expect_from(0, needle)
    }

    /// Waits until a line at index `from` or later contains `needle`.
    pub fn expect_from(&self, from: usize, needle: &str) -> String {
        let deadline = Instant::now() + PAGE_TIMEOUT;
        loop {
            if let Some(line) = self.output().iter().skip(from).find(|l| l.contains(needle)) {
                return line.clone();
            }
            if Instant::now() >= deadline {
                panic!(
                    "terminal user {}: no line with {needle:?} within {PAGE_TIMEOUT:?}; \
                     output:\n    {}",
                    self.nick,
                    self.output().join("\n    ")
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// How many lines contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.output().iter().filter(|l| l.contains(needle)).count()
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- terminal user {} ---\n    {}",
                self.nick,
                self.output().join("\n    ")
            );
        }
    }
}
