//! A private PostgreSQL server for tests: `initdb` into a fresh directory
//! under the temp dir, `postgres` on a free 127.0.0.1 port with its socket
//! in that directory. [`shared`] is one server per test process (a test
//! takes a database of its own, [`Postgres::database`]); [`Postgres::start`]
//! is one of a test's own, which it may stop and start again.
//!
//! `initdb` refuses to run as root: as root, the server and its directory
//! belong to the `postgres` user (`runuser -u postgres --`). A small shell
//! watches the server: when its stdin closes — the test dropped the
//! [`Postgres`], or the test process ended, even by a panic or a signal —
//! it stops the server and removes the directory.
//!
//! Without PostgreSQL installed a test skips with a line saying so; under
//! `CI=true` it fails instead. (Shared by the unit tests of
//! `store::postgres`, through `#[path]`: it names nothing of the crate.)

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The superuser `initdb` creates; trusted on 127.0.0.1 and the socket.
pub const USER: &str = "postgres";

/// Runs the server and waits for `up` / `down` lines on stdin; on EOF,
/// stops it and removes its directory.
const WATCHDOG: &str = r#"
bin=$1; dir=$2; port=$3
up() {
    "$bin/postgres" -D "$dir/data" -p "$port" -c listen_addresses=127.0.0.1 \
        -k "$dir" -c max_connections=300 -c fsync=on >>"$dir/log" 2>&1 &
    pid=$!
}
up
while read -r command; do
    case "$command" in
        down) kill -INT "$pid"; wait "$pid"; echo down ;;
        up) up; echo up ;;
    esac
done
kill -INT "$pid" 2>/dev/null; wait "$pid"; rm -rf "$dir"
"#;

/// A running PostgreSQL server of the test's.
pub struct Postgres {
    pub port: u16,
    dir: PathBuf,
    watchdog: Mutex<Watchdog>,
}

struct Watchdog {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

/// The server every test of this process shares (each in a database of its
/// own); `None` (after a line saying so) if PostgreSQL is not installed.
pub fn shared() -> Option<&'static Postgres> {
    static SHARED: OnceLock<Option<Postgres>> = OnceLock::new();
    SHARED.get_or_init(Postgres::start).as_ref()
}

/// Says why a PostgreSQL test cannot run: a skip, or under CI a failure.
fn missing(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("PostgreSQL is needed under CI=true: {why}");
    }
    eprintln!("skipped: {why} (apt-get install postgresql to run the PostgreSQL tests)");
}

/// Where `initdb` and `postgres` are: on PATH, or the newest in
/// /usr/lib/postgresql/*/bin (Debian does not put them on PATH).
fn programs() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| {
            dir.filter_map(|e| Some(e.ok()?.path().join("bin")))
                .collect()
        })
        .unwrap_or_default();
    versions.sort_by_key(|p| {
        let version = p
            .parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<f64>().ok());
        std::cmp::Reverse((version.unwrap_or(0.0) * 100.0) as u64)
    });
    on_path
        .into_iter()
        .chain(versions)
        .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
        // The real directory: initdb finds its share files next to itself.
        .and_then(|dir| std::fs::canonicalize(dir.join("initdb")).ok())
        .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
}

/// The uid and gid of the `postgres` user, when this runs as root.
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, USER])
            .output()
            .expect("running id");
        assert!(
            out.status.success(),
            "running as root, and there is no {USER} user to run PostgreSQL as"
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    Some((id("-u"), id("-g")))
}

/// `program` as the user the server runs as.
fn command(program: &Path, root: bool) -> Command {
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", USER, "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Postgres {
    /// Starts a server of the caller's; `None` (after a line saying so) if
    /// PostgreSQL is not installed.
    pub fn start() -> Option<Postgres> {
        static STARTED: AtomicU64 = AtomicU64::new(0);
        let Some(bin) = programs() else {
            missing("initdb not found on PATH or in /usr/lib/postgresql/*/bin");
            return None;
        };
        let ids = run_as();
        let n = STARTED.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("chat-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("creating the PostgreSQL directory");
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown");
        }
        let out = command(&bin.join("initdb"), ids.is_some())
            .arg("-D")
            .arg(dir.join("data"))
            .args([
                "-U",
                USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .output()
            .expect("running initdb");
        assert!(
            out.status.success(),
            "initdb failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut child = command(Path::new("sh"), ids.is_some())
            .arg("-c")
            .arg(WATCHDOG)
            .arg("watchdog")
            .arg(&bin)
            .arg(&dir)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting postgres");
        let watchdog = Watchdog {
            stdin: child.stdin.take(),
            stdout: BufReader::new(child.stdout.take().expect("piped")),
            child,
        };
        let server = Postgres {
            port,
            dir,
            watchdog: Mutex::new(watchdog),
        };
        server.wait_ready();
        Some(server)
    }

    /// The URL of database `db` for the chat server's `--cluster`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// A connection to database `db`, as the superuser.
    pub fn client(&self, db: &str) -> Result<postgres::Client, postgres::Error> {
        postgres::Client::connect(
            &format!(
                "host=127.0.0.1 port={} user={USER} dbname={db} connect_timeout=2",
                self.port
            ),
            postgres::NoTls,
        )
    }

    /// A new, empty database of the caller's (`t_1`, `t_2` …); its URL.
    pub fn database(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let db = format!("t_{}", NEXT.fetch_add(1, Ordering::SeqCst));
        self.client("postgres")
            .and_then(|mut c| c.batch_execute(&format!("CREATE DATABASE {db}")))
            .unwrap_or_else(|err| panic!("creating database {db}: {err}\n{}", self.log()));
        self.url(&db)
    }

    /// Stops the server (a fast shutdown: sessions are cut, as in a
    /// restart), until [`Postgres::up`].
    pub fn down(&self) {
        self.tell("down");
    }

    /// Starts the server again after [`Postgres::down`] and waits until it
    /// accepts connections.
    pub fn up(&self) {
        self.tell("up");
        self.wait_ready();
    }

    fn tell(&self, command: &str) {
        let mut watchdog = self.watchdog.lock().unwrap();
        let stdin = watchdog.stdin.as_mut().expect("running");
        writeln!(stdin, "{command}").expect("telling the watchdog");
        stdin.flush().unwrap();
        let mut line = String::new();
        watchdog
            .stdout
            .read_line(&mut line)
            .expect("the watchdog's answer");
        assert_eq!(line.trim(), command, "the watchdog's answer");
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.client("postgres") {
                Ok(_) => return,
                Err(err) if Instant::now() > deadline => {
                    panic!("PostgreSQL did not start: {err}\n{}", self.log())
                }
                Err(_) => {
                    let exited = self.watchdog.lock().unwrap().child.try_wait();
                    if let Ok(Some(status)) = exited {
                        panic!("PostgreSQL's watchdog exited ({status}):\n{}", self.log());
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let watchdog = self.watchdog.get_mut().unwrap_or_else(|e| e.into_inner());
        // EOF: the watchdog stops the server and removes the directory.
        drop(watchdog.stdin.take());
        let _ = watchdog.child.wait();
    }
}
