//! Stopping the server: SIGTERM, SIGINT and `/quit` all tell every
//! connection, close it cleanly, print `chat-server stopped` and exit 0.
// The signals are Unix ones; on other systems these tests are not built.
#![cfg(unix)]

use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;

use crate::support::{Options, Server, SHUTDOWN_REASON};

/// How the operator stops the server.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Signal(libc::c_int),
    Quit,
}

/// Every connection, logged in or not, receives `shutdown` and then a clean
/// close; the process prints `chat-server stopped`, exits 0, and no longer
/// accepts connections.
fn graceful_shutdown(tls: bool, stop: Stop) {
    let mut server = Server::with_tls(tls);
    let mut alice = server.login("alice");
    let mut bob = server.login("bob");
    let mut anonymous = server.connect("anonymous");
    anonymous.ping();
    alice.sync();
    let addr = server.addr;

    match stop {
        Stop::Signal(signal) => server.signal(signal),
        Stop::Quit => server.admin("/quit"),
    }
    let shutdown = json!({"type": "shutdown", "reason": SHUTDOWN_REASON});
    for client in [&mut alice, &mut bob, &mut anonymous] {
        assert_eq!(client.recv(), shutdown, "{}", client.name);
        client.expect_eof();
    }
    let status = server.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "{status:?} after {stop:?}");
    let stdout = server.stdout();
    assert!(
        stdout.lines().any(|l| l == "chat-server stopped"),
        "stdout:\n{stdout}"
    );
    assert!(
        TcpStream::connect(addr).is_err(),
        "still accepting after {stop:?}"
    );
}

both! {
    /// SIGTERM shuts the server down gracefully.
    fn sigterm(tls) {
        graceful_shutdown(tls, Stop::Signal(libc::SIGTERM));
    }

    /// `/quit` on the console shuts the server down gracefully.
    fn quit(tls) {
        graceful_shutdown(tls, Stop::Quit);
    }
}

/// SIGINT (Ctrl-C) shuts the server down gracefully too.
#[test]
fn sigint() {
    graceful_shutdown(false, Stop::Signal(libc::SIGINT));
}

/// Closing the server's stdin ends the console, not the server: users can
/// still log in and chat, and SIGTERM still stops it cleanly.
#[test]
fn stdin_eof_does_not_stop_the_server() {
    let mut server = Server::plain();
    server.close_stdin();
    std::thread::sleep(Duration::from_millis(200));
    let mut alice = server.login("alice");
    alice.say("still up");
    alice.expect_type("message");
    server.signal(libc::SIGTERM);
    assert_eq!(
        alice.recv(),
        json!({"type": "shutdown", "reason": SHUTDOWN_REASON})
    );
    alice.expect_eof();
    assert!(server.wait_exit(Duration::from_secs(5)).success());
}

/// Runs `round` on three threads, `rounds` times each: races show up when
/// the two cores are busy.
fn stress(rounds: usize, round: fn(usize)) {
    let threads: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || (0..rounds).for_each(round)))
        .collect();
    for thread in threads {
        if let Err(panic) = thread.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

/// A user logs in and the operator quits at once, many times over: every
/// time, the user gets `shutdown` and the server exits. (Catches a lost
/// wake-up: a worker whose waker is dropped before it polls never sees the
/// shutdown and the process hangs.)
#[test]
fn shutdown_right_after_login_never_hangs() {
    stress(10, |round| {
        // Debug logging slows the threads down just enough to widen the window.
        let mut server = Options::plain().flag("--log-level", "debug").start();
        let mut alice = server.login("alice");
        server.admin("/quit");
        let frame = alice.recv();
        assert_eq!(
            frame,
            json!({"type": "shutdown", "reason": SHUTDOWN_REASON}),
            "round {round}"
        );
        alice.expect_eof();
        assert!(server.wait_exit(Duration::from_secs(5)).success());
    });
}

/// SIGTERM right after the server says it is listening still shuts it down
/// gracefully (exit 0, `chat-server stopped`): the banner is the signal that
/// the server is ready, so the handler must be installed by then.
#[test]
fn sigterm_right_after_start_is_graceful() {
    stress(8, |round| {
        let mut server = Server::plain();
        server.signal(libc::SIGTERM);
        let status = server.wait_exit(Duration::from_secs(5));
        let stdout = server.stdout();
        assert!(
            status.success(),
            "round {round}: {status:?}; stdout:\n{stdout}"
        );
        assert!(
            stdout.lines().any(|l| l == "chat-server stopped"),
            "round {round}: stdout:\n{stdout}"
        );
    });
}
