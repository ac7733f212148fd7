//! Every frame round-trips through encode and decode, alone and in a byte
//! stream cut anywhere. Longer runs: `make fuzz` (docs/security.md).

use std::collections::HashSet;
use std::ops::ControlFlow;

use chat_common::codec::{self, FrameReader};
use chat_common::payload::Payload;
use chat_common::protocol::{ErrorCode, ServerFrame};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use crate::support::{budget, oracle, strategies};

#[test]
fn every_request_round_trips() {
    budget::run(
        "request round trip",
        256,
        strategies::request(),
        |request| oracle::check_round_trip(&request),
    );
}

#[test]
fn every_server_frame_round_trips() {
    budget::run(
        "server frame round trip",
        256,
        strategies::server_frame(),
        |frame| oracle::check_round_trip(&frame),
    );
}

#[test]
fn every_error_code_round_trips() {
    for code in strategies::all_codes() {
        let json = serde_json::to_string(&code).unwrap();
        assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        oracle::check_round_trip(&ServerFrame::Error {
            id: None,
            code,
            reason: String::new(),
        });
    }
    let unknown: ErrorCode = serde_json::from_str("\"from_the_future\"").unwrap();
    assert_eq!(unknown, ErrorCode::Other);
}

/// Frames written one after another and read back through a frame reader,
/// cut into reads anywhere: the same frames (payloads and all), in order.
#[test]
fn frames_survive_any_cutting() {
    let frames = (
        vec(strategies::request(), 0..6),
        vec(strategies::server_frame(), 0..6),
        strategies::cuts(),
    );
    budget::run(
        "frames through a frame reader",
        64,
        frames,
        |(requests, server_frames, cuts)| {
            fn read_back<T>(frames: &[T], cuts: &[usize])
            where
                T: serde::Serialize
                    + serde::de::DeserializeOwned
                    + Payload
                    + PartialEq
                    + std::fmt::Debug,
            {
                let stream: Vec<u8> = frames
                    .iter()
                    .flat_map(|f| codec::encode(f).to_vec())
                    .collect();
                // The client reads server frames up to 16 MiB (a `history` page
                // can be big); generated text can be long too.
                let mut reader = FrameReader::<T>::new(16 << 20);
                let mut back = Vec::new();
                for chunk in oracle::chunks(&stream, cuts) {
                    let flow = reader.feed_until(chunk, |_, frame| {
                        back.push(frame.expect("a frame decodes"));
                        ControlFlow::Continue(())
                    });
                    assert_eq!(flow, Ok(ControlFlow::Continue(())));
                }
                assert_eq!(back, frames);
                assert_eq!(reader.buffered(), 0);
            }
            read_back(&requests, &cuts);
            read_back(&server_frames, &cuts);
        },
    );
}

/// The generators reach every variant (and with `request_kind` and
/// `server_kind`, which have no `_` arm, a new variant cannot be forgotten).
#[test]
fn every_variant_is_generated() {
    let mut runner = TestRunner::deterministic();
    let (requests, frames) = (strategies::request(), strategies::server_frame());
    let mut seen_requests = HashSet::new();
    let mut seen_frames = HashSet::new();
    for _ in 0..300 {
        let request = requests.new_tree(&mut runner).unwrap().current();
        seen_requests.insert(strategies::request_kind(&request));
        let frame = frames.new_tree(&mut runner).unwrap().current();
        seen_frames.insert(strategies::server_kind(&frame));
    }
    assert_eq!(seen_requests.len(), strategies::REQUEST_KINDS);
    assert_eq!(seen_frames.len(), strategies::SERVER_KINDS);
    assert_eq!(oracle::REQUEST_TYPES.len(), strategies::REQUEST_KINDS);
    assert_eq!(oracle::SERVER_TYPES.len(), strategies::SERVER_KINDS);
    // The type names the decode check uses are the ones on the wire.
    let mut names = HashSet::new();
    for _ in 0..300 {
        let request = requests.new_tree(&mut runner).unwrap().current();
        let value = serde_json::to_value(&request).unwrap();
        let name = value["type"].as_str().unwrap().to_string();
        assert!(oracle::REQUEST_TYPES.contains(&name.as_str()), "{name}");
        names.insert(name);
        let frame = frames.new_tree(&mut runner).unwrap().current();
        let value = serde_json::to_value(&frame).unwrap();
        let name = value["type"].as_str().unwrap().to_string();
        assert!(oracle::SERVER_TYPES.contains(&name.as_str()), "{name}");
    }
    assert_eq!(names.len(), oracle::REQUEST_TYPES.len());
}
