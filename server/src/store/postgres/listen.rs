//! The `cluster` thread: a node's ear on the database. On its own idle
//! connection it LISTENs for the doorbell ([`super::bell`]) and hands
//! what it hears to the dispatcher as [`Heard`]; it reloads the accounts
//! and groups when another node changed them (told by the doorbell, or
//! seen once a second in their change counters, in case a doorbell was
//! lost). After every (re)connection it says [`Heard::Poll`]: whatever
//! rang while it was deaf is found by the dispatcher's poll of the heads.
//! It also keeps the dispatcher's replica of who is online on the other
//! nodes (`online`, reloaded when it changed and after every connection)
//! and passes on the takeovers of this node's sessions; it reloads the bans
//! and mutes when they changed (doorbell `s`, or their counter), passes
//! on the operators' kicks (`k`), and reloads the file offers whole when
//! their counter moved or `f` rang. It reads the other nodes' wrong
//! passwords after the last it read when `x` rang or their counter moved,
//! and after every connection ([`super::failures`]); it passes on the `delivered` notices
//! other nodes' receipts rang (`d`) for this node's senders, and says
//! which nodes' leases are live when that changed (read each second).
//! A lost connection is made again, with a backoff up to 2 s.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Config, NoTls};

use super::bell::{self, ACCOUNTS, CHANNEL, GROUPS, ONLINE, SANCTIONS};
use super::{accounts, groups, nodes, online};
use crate::store::{Account, Heard, StoreError, Stream, UserId};

/// How long one wait for notifications lasts (and so how soon a stop is
/// seen).
const WAIT: Duration = Duration::from_millis(250);

/// How often the change counters are read.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What this node knows already of the accounts and groups.
pub(super) struct Known {
    /// The change counters, as last read.
    pub(super) accounts_version: i64,
    pub(super) groups_version: i64,
    pub(super) online_version: i64,
    pub(super) sanctions_version: i64,
    pub(super) files_version: i64,
    pub(super) failures_version: i64,
    /// The last `login_failures` id read.
    pub(super) failures_after: i64,
    /// This node run's incarnation (its own failures are counted already).
    pub(super) incarnation: i64,
    /// This node's id (its own `online` rows are not another's users).
    pub(super) node: String,
    /// Each account's password hash.
    pub(super) hashes: HashMap<UserId, String>,
}

/// The change counters now.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Versions {
    pub(super) accounts: i64,
    pub(super) groups: i64,
    pub(super) online: i64,
    pub(super) sanctions: i64,
    pub(super) files: i64,
    pub(super) failures: i64,
}

/// Reads the change counters.
pub(super) fn versions(client: &mut Client) -> Result<Versions, postgres::Error> {
    let rows = client.query(
        "SELECT stream, head FROM heads WHERE stream = ANY($1)",
        &[&vec![
            ACCOUNTS,
            GROUPS,
            ONLINE,
            SANCTIONS,
            bell::FILES,
            bell::FAILURES,
        ]],
    )?;
    let mut found = Versions::default();
    for row in rows {
        match row.get::<_, i64>(0) {
            ACCOUNTS => found.accounts = row.get(1),
            GROUPS => found.groups = row.get(1),
            ONLINE => found.online = row.get(1),
            SANCTIONS => found.sanctions = row.get(1),
            bell::FAILURES => found.failures = row.get(1),
            _ => found.files = row.get(1),
        }
    }
    Ok(found)
}

/// The thread; it stops when dropped, or when the dispatcher is gone.
pub(super) struct Listener {
    _stop: Sender<()>,
}

impl Listener {
    pub(super) fn start(
        config: Config,
        known: Known,
        heard: Sender<Heard>,
    ) -> Result<Listener, StoreError> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let mut config = config;
        let name = format!("{} listener", config.get_application_name().unwrap_or(""));
        config.application_name(name.trim());
        std::thread::Builder::new()
            .name("cluster".into())
            .spawn(move || listen(config, known, heard, stopped))
            .map_err(|err| StoreError::Thread(std::sync::Arc::new(err)))?;
        Ok(Listener { _stop: stop })
    }
}

/// Why [`serve`] returned.
enum End {
    Stop,
    Lost(String),
}

fn listen(config: Config, mut known: Known, heard: Sender<Heard>, stopped: Receiver<()>) {
    let mut backoff = Duration::from_millis(100);
    let mut reconnecting = false;
    loop {
        match config.connect(NoTls) {
            Ok(client) => {
                if reconnecting {
                    tracing::info!("the cluster listener is connected again");
                }
                backoff = Duration::from_millis(100);
                match serve(client, &mut known, &heard, &stopped) {
                    End::Stop => return,
                    End::Lost(why) => {
                        tracing::warn!("the cluster listener lost its connection: {why}")
                    }
                }
            }
            Err(err) => {
                if !reconnecting {
                    tracing::warn!("the cluster listener cannot connect: {err}");
                }
            }
        }
        reconnecting = true;
        // Sleep the backoff, unless told to stop.
        match stopped.recv_timeout(backoff) {
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Listens on one connection until it is lost or the thread is stopped.
fn serve(
    mut client: Client,
    known: &mut Known,
    heard: &Sender<Heard>,
    stopped: &Receiver<()>,
) -> End {
    let lost = |err: postgres::Error| End::Lost(super::Described(err).to_string());
    if let Err(err) = client.batch_execute(&format!("LISTEN {CHANNEL}")) {
        return lost(err);
    }
    // Deaf until now: whatever rang meanwhile is found by a poll.
    if heard.send(Heard::Poll).is_err() {
        return End::Stop;
    }
    let mut checked: Option<Instant> = None;
    // Deaf until now: who is online elsewhere is read again.
    let mut reload_online = true;
    // Deaf until now: the file offers too, and the failures.
    let mut reload_files = true;
    let mut read_failures = true;
    // The live nodes as last said (for `/stats`), read with the counters.
    let mut live_nodes: Option<Vec<String>> = None;
    loop {
        if !matches!(stopped.try_recv(), Err(TryRecvError::Empty)) {
            return End::Stop;
        }
        let (mut accounts, mut groups, mut online) = (false, false, reload_online);
        let mut sanctions = false;
        let mut kicks = Vec::new();
        reload_online = false;
        let (mut left, mut takeovers) = (Vec::new(), Vec::new());
        let mut delivered = Vec::new();
        let mut files = reload_files;
        reload_files = false;
        let mut failures = read_failures;
        read_failures = false;
        if checked.is_none_or(|t| t.elapsed() >= CHECK_EVERY) {
            checked = Some(Instant::now());
            match versions(&mut client) {
                Ok(v) => {
                    accounts = v.accounts != known.accounts_version;
                    groups = v.groups != known.groups_version;
                    online |= v.online != known.online_version;
                    sanctions = v.sanctions != known.sanctions_version;
                    files |= v.files != known.files_version;
                    failures |= v.failures != known.failures_version;
                }
                Err(err) => return lost(err),
            }
            match nodes::live(&mut client) {
                Ok(live) if live_nodes.as_ref() != Some(&live) => {
                    live_nodes = Some(live.clone());
                    let here = known.node.clone();
                    if heard.send(Heard::Nodes { here, live }).is_err() {
                        return End::Stop;
                    }
                }
                Ok(_) => {}
                Err(err) => return lost(err),
            }
        }
        let mut heads: HashMap<Stream, u64> = HashMap::new();
        let mut poll = false;
        {
            // Wait for the first; then take whatever else is buffered, and
            // go: a doorbell is passed on at once.
            let mut notifications = client.notifications();
            let mut notes = Vec::new();
            let first = notifications.timeout_iter(WAIT).next();
            if let Ok(Some(first)) = first {
                notes.push(first);
                let mut more = notifications.iter();
                while notes.len() < 4096 {
                    match more.next() {
                        Ok(Some(note)) => notes.push(note),
                        _ => break,
                    }
                }
            }
            for note in notes {
                let rung = bell::parse(note.payload());
                for (stream, head) in rung.heads {
                    let h = heads.entry(stream).or_default();
                    *h = (*h).max(head);
                }
                poll |= rung.poll;
                accounts |= rung.accounts;
                groups |= rung.groups;
                online |= rung.online;
                sanctions |= rung.sanctions;
                kicks.extend(rung.kicks);
                files |= rung.files;
                failures |= rung.failures;
                left.extend(rung.left);
                // This node told its own senders when its store answered.
                delivered.extend(
                    rung.delivered
                        .into_iter()
                        .filter(|(node, _)| *node != known.node)
                        .map(|(_, d)| d),
                );
                takeovers.extend(
                    rung.takeovers
                        .into_iter()
                        .filter(|(_, node)| *node == known.node)
                        .map(|(user, _)| user),
                );
            }
        }
        if client.is_closed() {
            return End::Lost("closed".into());
        }
        if accounts {
            match reload_accounts(&mut client, known) {
                Ok(changed) if !changed.is_empty() => {
                    if heard.send(Heard::Accounts(changed)).is_err() {
                        return End::Stop;
                    }
                }
                Ok(_) => {}
                Err(err) => return lost(err),
            }
        }
        if groups {
            match reload_groups(&mut client, known) {
                Ok(rows) => {
                    if heard.send(Heard::Groups(rows)).is_err() {
                        return End::Stop;
                    }
                }
                Err(err) => return lost(err),
            }
        }
        // Sanctions before kicks and presence: a ban's kick finds the ban.
        if sanctions {
            let reloaded = versions(&mut client).and_then(|v| {
                known.sanctions_version = v.sanctions;
                accounts::sanctions(&mut client)
            });
            match reloaded {
                Ok(list) => {
                    if heard.send(Heard::Sanctions(list)).is_err() {
                        return End::Stop;
                    }
                }
                Err(err) => return lost(err),
            }
        }
        for (user, reason) in kicks {
            if heard.send(Heard::Kicked { user, reason }).is_err() {
                return End::Stop;
            }
        }
        // Takeovers first: the session here closes before the replica
        // shows the user on its new node.
        for user in takeovers {
            if heard.send(Heard::TakenOver(user)).is_err() {
                return End::Stop;
            }
        }
        if online {
            let reloaded = versions(&mut client).and_then(|v| {
                known.online_version = v.online;
                online::others(&mut client, &known.node)
            });
            match reloaded {
                Ok(users) => {
                    if heard.send(Heard::Online { users, left }).is_err() {
                        return End::Stop;
                    }
                }
                Err(err) => return lost(err),
            }
        }
        if files {
            let reloaded = versions(&mut client).and_then(|v| {
                known.files_version = v.files;
                super::files::load(&mut client)
            });
            match reloaded {
                Ok(rows) => {
                    if heard.send(Heard::Files(rows)).is_err() {
                        return End::Stop;
                    }
                }
                Err(err) => return lost(err),
            }
        }
        if failures {
            let read = versions(&mut client).and_then(|v| {
                known.failures_version = v.failures;
                let me = (known.node.as_str(), known.incarnation);
                super::failures::since(&mut client, known.failures_after, me)
            });
            match read {
                Ok((list, last)) => {
                    known.failures_after = last;
                    if !list.is_empty() && heard.send(Heard::Failures(list)).is_err() {
                        return End::Stop;
                    }
                }
                Err(err) => return lost(err),
            }
        }
        let mut said = Vec::new();
        if !delivered.is_empty() {
            said.push(Heard::Delivered(delivered));
        }
        if !heads.is_empty() {
            let mut heads: Vec<(Stream, u64)> = heads.into_iter().collect();
            heads.sort_unstable();
            said.push(Heard::Heads(heads));
        }
        if poll {
            said.push(Heard::Poll);
        }
        for h in said {
            if heard.send(h).is_err() {
                return End::Stop;
            }
        }
    }
}

/// The accounts created or changed since last time.
fn reload_accounts(
    client: &mut Client,
    known: &mut Known,
) -> Result<Vec<Account>, postgres::Error> {
    // The counter first: a change after it is seen next time.
    known.accounts_version = versions(client)?.accounts;
    let mut changed = Vec::new();
    for account in accounts::load(client)? {
        if known.hashes.get(&account.id) != Some(&account.hash) {
            known.hashes.insert(account.id, account.hash.clone());
            changed.push(account);
        }
    }
    Ok(changed)
}

fn reload_groups(
    client: &mut Client,
    known: &mut Known,
) -> Result<Vec<crate::store::GroupRow>, postgres::Error> {
    known.groups_version = versions(client)?.groups;
    groups::load(client)
}
