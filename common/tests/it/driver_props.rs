//! The line reader and the driver: byte streams cut into reads anywhere
//! yield the same lines and the same handler calls; over-long lines are
//! reported once and close the connection; nothing is held beyond the
//! limit; `finish` runs once. Longer runs: `make fuzz` (docs/security.md).

use proptest::prelude::*;

use crate::support::{budget, oracle, strategies};

fn limit_stream_cuts() -> impl Strategy<Value = (usize, Vec<u8>, Vec<usize>)> {
    strategies::limit()
        .prop_flat_map(|limit| (Just(limit), strategies::stream(limit), strategies::cuts()))
}

#[test]
fn line_reader_is_indifferent_to_cutting() {
    budget::run(
        "line reader cuttings",
        128,
        limit_stream_cuts(),
        |(limit, stream, cuts)| oracle::check_lines(limit, &stream, &cuts),
    );
}

#[test]
fn driver_accounts_for_every_line() {
    budget::run(
        "driver feeds a handler",
        128,
        (limit_stream_cuts(), any::<bool>()),
        |((limit, stream, cuts), quiet)| oracle::check_driver(limit, &stream, &cuts, quiet),
    );
}

#[test]
fn driver_handles_known_streams() {
    let cases: &[(usize, &[u8])] = &[
        (16, b""),
        (16, b"\n\n\r\n  \n"),
        (16, b"{\"type\":\"ping\",\"id\":1}\n"),
        (32, b"{\"type\":\"ping\",\"id\":1}\nnot json\n{\"type\":\"bye\",\"id\":2}\n{\"type\":\"ping\",\"id\":3}\n"),
        (4, b"abcd\r\n"),
        (5, b"abcd\r\n"),
        (4, b"abc"),
        (4, b"abcde"),
        (4, b"abcd\r"),
        (4, b"abcd\r\r\n"),
        (4, b"abcd\rx\n"),
        (4, b"abc\r\n"),
        (8, b"ok\nxxxxxxxxxxxxxxxxxxxxxxxx\n{\"type\":\"ping\",\"id\":3}\n"),
        // Raw payloads: newlines and a too-long "line" inside are bytes;
        // one cut short by the end; one announced over the limit.
        (64, b"{\"type\":\"chunk\",\"file\":1,\"offset\":0,\"len\":5}\n\na\nb\n{\"type\":\"ping\",\"id\":1}\n"),
        (64, b"{\"type\":\"chunk\",\"file\":1,\"offset\":0,\"len\":40}\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"),
        (64, b"{\"type\":\"chunk\",\"file\":1,\"offset\":0,\"len\":0}\n{\"type\":\"ping\",\"id\":1}\n"),
        (64, b"{\"type\":\"chunk\",\"file\":1,\"offset\":0,\"len\":9}\nabc"),
        (64, b"{\"type\":\"chunk\",\"file\":1,\"offset\":0,\"len\":262145}\n{\"type\":\"ping\",\"id\":1}\n"),
        (64, b"{\"type\":\"chunk\",\"file\":1,\"offset\":0,\"len\":-1}\n{\"type\":\"ping\",\"id\":1}\n"),
    ];
    for (limit, stream) in cases {
        for cuts in [&[][..], &[1], &[2, 3], &[7]] {
            for quiet in [false, true] {
                oracle::check_lines(*limit, stream, cuts);
                oracle::check_driver(*limit, stream, cuts, quiet);
            }
        }
    }
}
