//! Tests that must run alone.
//!
//! The integration tests are one binary, so the harness runs them on
//! parallel threads of one process (as many as there are cores). When each
//! file was its own binary, the binaries ran one after another, and a file
//! with a single test (or whose tests took a lock of their own) ran with
//! nothing beside it. A few of those compare the room's latency under
//! attack with a quiet baseline, or check deadlines and throughput, on a
//! 2-core machine: with another test's server busy on the other core, the
//! baseline and the attack would each see a different, unknown load, and
//! the comparison would fail for no fault of the server's. Those tests call
//! [`serial`] first, and then run with no other test beside them:
//! `attack_flood`, `attack_stuck_reader`, the two slowloris attacks and
//! `kill9`. (`keepalive`, alone in its file too, allows a second or more
//! on each deadline it checks: it shares.)
//!
//! Every other test takes a share with [`share`] (which
//! [`Server::start`](super::Server::start) does) and so waits while a
//! serial test runs; any number of shares run side by side. A share lasts
//! until the test's thread ends (the harness gives each test a thread of
//! its own), not just while one server lives: a serial test must not slip
//! in between two servers of a test that restarts one, or a timed test
//! (a ban that expires, a throttle window) would see a pause it did not
//! ask for. A serial test must start its servers on its own thread.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Who runs now: `shares` tests side by side, or one serial test.
struct Gate {
    shares: usize,
    serial: bool,
}

static GATE: Mutex<Gate> = Mutex::new(Gate {
    shares: 0,
    serial: false,
});
static CHANGED: Condvar = Condvar::new();

thread_local! {
    /// This thread's share, given back when the thread ends.
    static SHARE: RefCell<Option<Share>> = const { RefCell::new(None) };
    /// Whether this thread holds the [`Serial`] guard.
    static SERIAL: Cell<bool> = const { Cell::new(false) };
}

/// A panicking test never holds the lock (only the counts change under
/// it), so a poisoned lock is still consistent.
fn gate() -> MutexGuard<'static, Gate> {
    GATE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn wait(gate: MutexGuard<'static, Gate>) -> MutexGuard<'static, Gate> {
    CHANGED.wait(gate).unwrap_or_else(PoisonError::into_inner)
}

/// Runs the calling test alone: waits until no other test runs, and keeps
/// every other test waiting until the guard is dropped. Call it first
/// thing in the test, before it starts a server.
#[must_use = "the test runs alone only while the guard lives"]
pub fn serial() -> Serial {
    assert!(
        SHARE.with(|share| share.borrow().is_none()),
        "support::serial() must come before the test starts a server"
    );
    let mut gate = gate();
    while gate.serial || gate.shares > 0 {
        gate = wait(gate);
    }
    gate.serial = true;
    SERIAL.with(|serial| serial.set(true));
    Serial {
        _thread: PhantomData,
    }
}

/// Held by a test that runs alone; see [`serial`].
pub struct Serial {
    /// Dropped on the thread that took it (which the thread-local says).
    _thread: PhantomData<*const ()>,
}

impl Drop for Serial {
    fn drop(&mut self) {
        SERIAL.with(|serial| serial.set(false));
        gate().serial = false;
        CHANGED.notify_all();
    }
}

/// Lets the calling test run beside other tests, but not beside a serial
/// one, until its thread ends: waits while a serial test runs. Does nothing
/// if the thread has its share already, or runs alone.
pub fn share() {
    if SERIAL.with(Cell::get) || SHARE.with(|share| share.borrow().is_some()) {
        return;
    }
    let mut gate = gate();
    while gate.serial {
        gate = wait(gate);
    }
    gate.shares += 1;
    drop(gate);
    SHARE.with(|share| *share.borrow_mut() = Some(Share));
}

/// One running test's share of the gate.
struct Share;

impl Drop for Share {
    fn drop(&mut self) {
        gate().shares -= 1;
        CHANGED.notify_all();
    }
}
