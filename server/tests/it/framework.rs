//! The framework on its own, with a test handler: a panic in one handler
//! costs only its connection, and `finish` is still called for it.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chat_common::codec::encode;
use chat_common::{Connection, Request, RequestHandler, ServerFrame};
use chat_server::framework::{self, Admission, Caps, ConnInfo, Limits};

/// Answers `ping` with `pong`; panics on a login as "boom".
struct Touchy {
    finished: Arc<AtomicUsize>,
}

impl RequestHandler for Touchy {
    type Request = Request;

    fn handle(&mut self, request: Request, conn: &mut dyn Connection) {
        match request {
            Request::Login { nick, .. } if nick == "boom" => panic!("the handler broke"),
            Request::Ping { id } => conn.send(encode(&ServerFrame::Pong { id })),
            _ => {}
        }
    }

    fn finish(&mut self, _reason: &str) {
        self.finished.fetch_add(1, Ordering::SeqCst);
    }
}

fn limits() -> Limits {
    Limits {
        max_frame: 1024,
        queue_limit: 64 * 1024,
        handshake_timeout: Duration::from_secs(5),
        close_grace: Duration::from_secs(1),
        stall_timeout: Duration::from_secs(10),
        send_buffer: None,
    }
}

fn uncapped() -> Arc<Admission> {
    Admission::new(
        Caps {
            per_address: 1000,
            total: 1000,
        },
        |_| None,
    )
}

fn connect(addr: std::net::SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let reader = BufReader::new(stream.try_clone().unwrap());
    (stream, reader)
}

fn line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("a line or EOF in time");
    line
}

/// A handler panics: its client sees the connection close, `finish` runs, and
/// another client on the same single worker is still served.
#[test]
fn a_panicking_handler_costs_only_its_connection() {
    crate::support::serial::share();
    let finished = Arc::new(AtomicUsize::new(0));
    let counter = finished.clone();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (mut router, running) = framework::start(
        listener,
        None,
        1,
        limits(),
        uncapped(),
        None,
        move |_: ConnInfo| Touchy {
            finished: counter.clone(),
        },
    )
    .unwrap();
    let addr = running.local_addr;

    let (mut calm, mut calm_reader) = connect(addr);
    calm.write_all(b"{\"type\":\"ping\",\"id\":1}\n").unwrap();
    assert_eq!(line(&mut calm_reader), "{\"type\":\"pong\",\"id\":1}\n");

    let (mut doomed, mut doomed_reader) = connect(addr);
    doomed
        .write_all(b"{\"type\":\"login\",\"id\":1,\"nick\":\"boom\",\"password\":\"pw\"}\n")
        .unwrap();
    assert_eq!(
        line(&mut doomed_reader),
        "",
        "the panicking connection is closed"
    );

    calm.write_all(b"{\"type\":\"ping\",\"id\":2}\n").unwrap();
    assert_eq!(line(&mut calm_reader), "{\"type\":\"pong\",\"id\":2}\n");
    assert_eq!(
        finished.load(Ordering::SeqCst),
        1,
        "finish ran for the panicked one"
    );

    router.shutdown();
    running.join();
    assert_eq!(line(&mut calm_reader), "", "shutdown closes the rest");
    assert_eq!(finished.load(Ordering::SeqCst), 2);
}

/// Every way a connection ends gives its place under the caps back: the
/// peer hanging up, a handler panic, an over-long line, the server closing
/// it, and shutdown. With a cap of 2, a third connection is refused only
/// while two are open.
#[test]
fn every_close_frees_the_connections_place() {
    crate::support::serial::share();
    let finished = Arc::new(AtomicUsize::new(0));
    let counter = finished.clone();
    let admission = Admission::new(
        Caps {
            per_address: 2,
            total: 100,
        },
        |_| Some(b"refused\n".to_vec().into()),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (mut router, running) = framework::start(
        listener,
        None,
        1,
        limits(),
        admission.clone(),
        None,
        move |_: ConnInfo| Touchy {
            finished: counter.clone(),
        },
    )
    .unwrap();
    let addr = running.local_addr;
    let ping = |stream: &mut TcpStream, reader: &mut BufReader<TcpStream>| {
        stream.write_all(b"{\"type\":\"ping\",\"id\":1}\n").unwrap();
        line(reader)
    };
    let open = || admission.stats().open;

    let (mut keep, mut keep_reader) = connect(addr);
    assert_eq!(
        ping(&mut keep, &mut keep_reader),
        "{\"type\":\"pong\",\"id\":1}\n"
    );
    let endings: [(&str, &[u8]); 3] = [
        ("hangs up", b""),
        (
            "panics",
            b"{\"type\":\"login\",\"id\":1,\"nick\":\"boom\",\"password\":\"p\"}\n",
        ),
        ("sends a line over the limit", &[b'x'; 2000]),
    ];
    for (how, bytes) in endings {
        let (mut second, mut second_reader) = connect(addr);
        assert_eq!(
            ping(&mut second, &mut second_reader),
            "{\"type\":\"pong\",\"id\":1}\n"
        );
        let (_third, mut third_reader) = connect(addr);
        assert_eq!(line(&mut third_reader), "refused\n", "over the cap");
        assert_eq!(line(&mut third_reader), "", "and closed");
        if bytes.is_empty() {
            second.shutdown(std::net::Shutdown::Write).unwrap();
        } else {
            second.write_all(bytes).unwrap();
        }
        // The framework's own handler closes on EOF and on an over-long line.
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut second_reader, &mut rest);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while open() != 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "{how}: {} open",
                open()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // The application closes one (connection ids count admitted ones: the
    // fifth is this).
    let (mut second, mut second_reader) = connect(addr);
    assert_eq!(
        ping(&mut second, &mut second_reader),
        "{\"type\":\"pong\",\"id\":1}\n"
    );
    assert_eq!(open(), 2);
    router.close(5);
    router.flush();
    assert_eq!(line(&mut second_reader), "", "closed by the server");
    assert_eq!(open(), 1, "freed before the peer sees the close");
    assert_eq!(admission.stats().refused_per_address, 3);
    router.shutdown();
    running.join();
    assert_eq!(line(&mut keep_reader), "");
    assert_eq!(open(), 0, "shutdown frees every place");
    assert_eq!(finished.load(Ordering::SeqCst), 5);
}
