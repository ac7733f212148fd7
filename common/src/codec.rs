//! Newline-delimited JSON: splitting a byte stream into lines under a size
//! limit, and turning lines into frames and frames into shared byte buffers.

use std::ops::ControlFlow;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::payload::{Payload, RawBytes, MAX_PAYLOAD};
use crate::protocol::ErrorCode;

/// Default longest line, in bytes, not counting the newline.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// One encoded frame, newline included. Serialized once and shared by every
/// recipient's queue, so a message to 1,000 people is one allocation.
pub type Frame = Arc<[u8]>;

/// Serializes `frame` as one line, followed by its raw payload if it has
/// one (a file chunk). JSON escapes newlines inside strings, so the only
/// newline is the terminator.
pub fn encode<T: Serialize + Payload + ?Sized>(frame: &T) -> Frame {
    let payload = frame.payload().map_or(&[][..], RawBytes::as_slice);
    let mut bytes = Vec::with_capacity(64 + payload.len());
    serde_json::to_writer(&mut bytes, frame).expect("protocol frames always serialize");
    bytes.push(b'\n');
    bytes.extend_from_slice(payload);
    bytes.into()
}

/// A line was longer than the limit. The rest of it is never buffered, so
/// the connection cannot be resynchronised: the caller closes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("frame exceeds the limit of {limit} bytes")]
pub struct TooLarge {
    pub limit: usize,
}

/// Splits a byte stream into lines of at most `limit` bytes.
///
/// Complete lines in the input are handed out without copying; only a
/// trailing partial line is kept, and never more than `limit` bytes of it.
///
/// Once it has reported [`TooLarge`] the reader is spent: it lets go of what
/// it held and ignores everything fed to it later, so a caller that goes on
/// reading can never be handed a "line" spliced together from both sides of
/// the bytes that were dropped.
#[derive(Debug)]
pub struct LineReader {
    partial: Vec<u8>,
    limit: usize,
    spent: bool,
}

impl LineReader {
    pub fn new(limit: usize) -> Self {
        LineReader {
            partial: Vec::new(),
            limit,
            spent: false,
        }
    }

    /// Bytes of an unfinished line held back.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Feeds `input` and calls `on_line` for each complete line (without its
    /// `\n` or a `\r` before it), until it returns `Break`; the rest of
    /// `input` is then dropped (the caller is done reading).
    ///
    /// A line over the limit is reported once, as `Err`; after that the
    /// reader is spent and every later call returns `Ok(Break)` at once.
    pub fn feed(
        &mut self,
        input: &[u8],
        on_line: impl FnMut(&[u8]) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, TooLarge> {
        Ok(match self.feed_until(input, on_line)? {
            ControlFlow::Continue(()) => ControlFlow::Continue(()),
            ControlFlow::Break(_) => ControlFlow::Break(()),
        })
    }

    /// Like [`feed`](Self::feed), but a `Break` says how many bytes of
    /// `input` were used (up to the end of the line it stopped at), so a
    /// caller that only pauses can feed the rest later. Nothing is held
    /// back after a `Break`.
    pub fn feed_until(
        &mut self,
        input: &[u8],
        on_line: impl FnMut(&[u8]) -> ControlFlow<()>,
    ) -> Result<ControlFlow<usize>, TooLarge> {
        if self.spent {
            return Ok(ControlFlow::Break(input.len()));
        }
        let result = self.split(input, on_line);
        if result.is_err() {
            self.spent = true;
            self.partial = Vec::new();
        }
        result
    }

    fn split(
        &mut self,
        whole: &[u8],
        mut on_line: impl FnMut(&[u8]) -> ControlFlow<()>,
    ) -> Result<ControlFlow<usize>, TooLarge> {
        let too_large = TooLarge { limit: self.limit };
        let mut input = whole;
        if !self.partial.is_empty() {
            let Some(end) = memchr::memchr(b'\n', input) else {
                if self.partial.len() + input.len() > self.limit {
                    return Err(too_large);
                }
                self.partial.extend_from_slice(input);
                return Ok(ControlFlow::Continue(()));
            };
            if self.partial.len() + end > self.limit {
                return Err(too_large);
            }
            self.partial.extend_from_slice(&input[..end]);
            input = &input[end + 1..];
            let line = std::mem::take(&mut self.partial);
            let flow = on_line(trim_cr(&line));
            // Keep the allocation for the next partial line.
            self.partial = line;
            self.partial.clear();
            if flow.is_break() {
                return Ok(ControlFlow::Break(whole.len() - input.len()));
            }
        }
        while let Some(end) = memchr::memchr(b'\n', input) {
            if end > self.limit {
                return Err(too_large);
            }
            let flow = on_line(trim_cr(&input[..end]));
            input = &input[end + 1..];
            if flow.is_break() {
                return Ok(ControlFlow::Break(whole.len() - input.len()));
            }
        }
        if input.len() > self.limit {
            return Err(too_large);
        }
        self.partial.extend_from_slice(input);
        Ok(ControlFlow::Continue(()))
    }
}

/// Splits a byte stream into frames: lines under a size limit, each
/// decoded, and after a frame that announces a payload (a file chunk)
/// exactly that many raw bytes, at most [`MAX_PAYLOAD`].
///
/// Like [`LineReader`], spent after [`TooLarge`].
#[derive(Debug)]
pub struct FrameReader<T> {
    lines: LineReader,
    /// A frame whose payload is still arriving: its line, itself, the bytes so far.
    filling: Option<(Vec<u8>, T, Vec<u8>)>,
    spent: bool,
}

impl<T: DeserializeOwned + Payload> FrameReader<T> {
    pub fn new(limit: usize) -> Self {
        FrameReader {
            lines: LineReader::new(limit),
            filling: None,
            spent: false,
        }
    }

    /// Bytes held back: an unfinished line or payload.
    pub fn buffered(&self) -> usize {
        self.lines.buffered() + self.filling.as_ref().map_or(0, |(_, _, got)| got.len())
    }

    /// How many bytes of a frame's raw payload are still to come (a
    /// `chunk` was read and not all its bytes); 0 between frames.
    pub fn payload_wanted(&self) -> usize {
        self.filling.as_ref().map_or(0, |(_, frame, got)| {
            frame.payload().map_or(0, RawBytes::len) - got.len()
        })
    }

    /// Feeds `input` and calls `on_frame` with each complete frame's line
    /// and what it decoded to (blank lines are skipped), until it returns
    /// `Break`; then says how many bytes of `input` were used, so that a
    /// caller that only pauses can feed the rest later.
    pub fn feed_until(
        &mut self,
        whole: &[u8],
        mut on_frame: impl FnMut(&[u8], Result<T, FrameError>) -> ControlFlow<()>,
    ) -> Result<ControlFlow<usize>, TooLarge> {
        if self.spent {
            return Ok(ControlFlow::Break(whole.len()));
        }
        let mut input = whole;
        loop {
            if let Some((_, frame, got)) = &mut self.filling {
                let want = frame.payload().map_or(0, RawBytes::len) - got.len();
                let take = want.min(input.len());
                got.extend_from_slice(&input[..take]);
                input = &input[take..];
                if take < want {
                    return Ok(ControlFlow::Continue(()));
                }
                let (line, mut frame, got) = self.filling.take().expect("filling");
                frame.set_payload(got);
                if on_frame(&line, Ok(frame)).is_break() {
                    return Ok(ControlFlow::Break(whole.len() - input.len()));
                }
            }
            if input.is_empty() {
                return Ok(ControlFlow::Continue(()));
            }
            let (filling, mut over) = (&mut self.filling, false);
            let flow = self.lines.feed_until(input, |line| {
                if line.iter().all(u8::is_ascii_whitespace) {
                    return ControlFlow::Continue(());
                }
                let frame = match decode::<T>(line) {
                    Ok(frame) => frame,
                    Err(error) => return on_frame(line, Err(error)),
                };
                match frame.payload().map_or(0, RawBytes::len) {
                    0 => on_frame(line, Ok(frame)),
                    len if len > MAX_PAYLOAD => {
                        over = true;
                        ControlFlow::Break(())
                    }
                    len => {
                        // Grown as bytes come, not at the word of the
                        // line: a peer that announces a payload and sends
                        // none costs no more than its line.
                        let got = Vec::with_capacity(len.min(64 * 1024));
                        *filling = Some((line.to_vec(), frame, got));
                        ControlFlow::Break(())
                    }
                }
            });
            let flow = match flow {
                Err(too_large) => Err(too_large),
                Ok(_) if over => Err(TooLarge { limit: MAX_PAYLOAD }),
                Ok(flow) => Ok(flow),
            };
            match flow {
                Err(too_large) => {
                    self.spent = true;
                    self.filling = None;
                    return Err(too_large);
                }
                Ok(ControlFlow::Continue(())) => return Ok(ControlFlow::Continue(())),
                Ok(ControlFlow::Break(used)) => {
                    input = &input[used..];
                    if self.filling.is_none() {
                        return Ok(ControlFlow::Break(whole.len() - input.len()));
                    }
                }
            }
        }
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A line that is not a valid frame: what to tell the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct FrameError {
    /// The request's id, when it could be read despite the error.
    pub id: Option<u64>,
    pub code: ErrorCode,
    pub reason: String,
}

/// Parses one line as a frame, classifying what went wrong for the peer:
/// `invalid_utf8`; `bad_json` (not JSON at all); `bad_frame` (JSON, but not
/// an object, or a known type with a missing or mistyped field); or
/// `unknown_type` (an object with no `type`, or a type nobody knows).
pub fn decode<T: DeserializeOwned>(line: &[u8]) -> Result<T, FrameError> {
    if std::str::from_utf8(line).is_err() {
        return Err(FrameError {
            id: None,
            code: ErrorCode::InvalidUtf8,
            reason: "frame is not valid UTF-8".into(),
        });
    }
    // Only objects: serde would also take `["ping",1]` for a tagged enum,
    // which the protocol does not allow.
    if !line.trim_ascii_start().starts_with(b"{") {
        return Err(match is_json(line) {
            Ok(()) => FrameError {
                id: None,
                code: ErrorCode::BadFrame,
                reason: "invalid frame: not a JSON object".into(),
            },
            Err(err) => bad_json(&err),
        });
    }
    serde_json::from_slice(line).map_err(|err| {
        if !err.is_data() {
            return bad_json(&err);
        }
        // A data error may come before a syntax error further on (an
        // unknown `type` stops the reading; what trails the object is read
        // last): such a line is not JSON.
        if let Err(syntax) = is_json(line) {
            return bad_json(&syntax);
        }
        // serde's messages start with a fixed text; only what follows it
        // may quote the peer's input, so only the start is looked at.
        let message = err.to_string();
        let (code, what) = if message.starts_with("unknown variant")
            || message.starts_with("missing field `type`")
        {
            (ErrorCode::UnknownType, "unknown frame type")
        } else {
            (ErrorCode::BadFrame, "invalid frame")
        };
        FrameError {
            id: recover_id(line),
            code,
            reason: format!("{what}: {message}"),
        }
    })
}

/// Whether `line` is one JSON value, strings and all (skipping a value
/// with `IgnoredAny` would not check its escapes, such as a lone surrogate).
fn is_json(line: &[u8]) -> Result<(), serde_json::Error> {
    serde_json::from_slice::<serde_json::Value>(line).map(drop)
}

fn bad_json(err: &serde_json::Error) -> FrameError {
    FrameError {
        id: None,
        code: ErrorCode::BadJson,
        reason: format!("not a JSON object: {err}"),
    }
}

/// Reads just the `id` of an object that failed to parse as a frame, so the
/// error can still be matched to its request.
fn recover_id(line: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct IdOnly {
        id: Option<u64>,
    }
    serde_json::from_slice::<IdOnly>(line).ok()?.id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Request;

    fn lines(reader: &mut LineReader, input: &[u8]) -> Result<Vec<String>, TooLarge> {
        let mut out = Vec::new();
        let _ = reader.feed(input, |line| {
            out.push(String::from_utf8_lossy(line).into_owned());
            ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    #[test]
    fn splits_lines_across_reads() {
        let mut r = LineReader::new(16);
        assert_eq!(lines(&mut r, b"ab").unwrap(), Vec::<String>::new());
        assert_eq!(lines(&mut r, b"c\nde\r\nf").unwrap(), ["abc", "de"]);
        assert_eq!(r.buffered(), 1);
        assert_eq!(lines(&mut r, b"\n\n").unwrap(), ["f", ""]);
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn limit_is_inclusive_and_enforced_without_buffering() {
        let mut r = LineReader::new(4);
        assert_eq!(lines(&mut r, b"abcd\n").unwrap(), ["abcd"]);
        assert_eq!(lines(&mut r, b"abcde\n"), Err(TooLarge { limit: 4 }));
        let mut r = LineReader::new(4);
        assert_eq!(lines(&mut r, b"abc").unwrap(), Vec::<String>::new());
        assert_eq!(lines(&mut r, b"de"), Err(TooLarge { limit: 4 }));
        let mut r = LineReader::new(4);
        assert_eq!(lines(&mut r, &[b'x'; 1000]), Err(TooLarge { limit: 4 }));
        assert!(r.buffered() <= 4);
    }

    /// The limit counts a `\r` before the newline (docs/protocol.md), in
    /// every cutting of the stream.
    #[test]
    fn the_cr_of_a_crlf_counts() {
        for cuts in [&[6][..], &[4, 2], &[5, 1], &[1, 1, 1, 1, 1, 1]] {
            let mut r = LineReader::new(4);
            let mut result = Ok(Vec::new());
            let mut rest = &b"abcd\r\n"[..];
            for &cut in cuts {
                let (chunk, tail) = rest.split_at(cut);
                result = lines(&mut r, chunk);
                if result.is_err() {
                    break;
                }
                rest = tail;
            }
            assert_eq!(result, Err(TooLarge { limit: 4 }), "{cuts:?}");
        }
        let mut r = LineReader::new(5);
        assert_eq!(lines(&mut r, b"abcd\r\n").unwrap(), ["abcd"]);
    }

    #[test]
    fn stops_when_asked() {
        let mut r = LineReader::new(16);
        let mut seen = 0;
        let flow = r
            .feed(b"a\nb\nc\n", |_| {
                seen += 1;
                ControlFlow::Break(())
            })
            .unwrap();
        assert!(flow.is_break());
        assert_eq!(seen, 1);
    }

    #[test]
    fn decode_classifies_errors() {
        let cases: &[(&[u8], ErrorCode, Option<u64>)] = &[
            (b"hello", ErrorCode::BadJson, None),
            (b"{\"type\":\"login\",\"id\":3", ErrorCode::BadJson, None),
            (b"[1,2]", ErrorCode::BadFrame, None),
            (
                b"{\"type\":\"dance\",\"id\":4}",
                ErrorCode::UnknownType,
                Some(4),
            ),
            (b"{\"id\":5}", ErrorCode::UnknownType, Some(5)),
            (
                b"{\"type\":\"login\",\"id\":6}",
                ErrorCode::BadFrame,
                Some(6),
            ),
            (
                b"{\"type\":\"login\",\"id\":-1,\"nick\":\"a\"}",
                ErrorCode::BadFrame,
                None,
            ),
            (
                b"{\"type\":\"login\",\"id\":1,\"nick\":5}",
                ErrorCode::BadFrame,
                Some(1),
            ),
            (
                b"{\"type\":\"login\",\"id\":1,\"nick\":\"\xff\"}",
                ErrorCode::InvalidUtf8,
                None,
            ),
        ];
        for (line, code, id) in cases {
            let err = decode::<Request>(line).unwrap_err();
            assert_eq!(
                (err.code, err.id),
                (*code, *id),
                "{}",
                String::from_utf8_lossy(line)
            );
            assert!(!err.reason.is_empty());
        }
    }

    /// Found while writing the fuzz properties (docs/security.md): serde's
    /// message quotes the peer's string, and a `contains` on it let a field
    /// value decide the error code.
    #[test]
    fn a_field_value_cannot_change_the_error_code() {
        for line in [
            r#"{"type":"ping","id":"missing field `type`"}"#,
            r#"{"type":"login","id":1,"nick":"unknown variant","password":7}"#,
        ] {
            let err = decode::<Request>(line.as_bytes()).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadFrame, "{line}");
        }
    }

    /// Found by the fuzz properties: serde takes `["ping",1]` for a tagged
    /// enum, and an object followed by junk was judged by the object alone.
    #[test]
    fn only_a_json_object_alone_on_its_line_is_a_frame() {
        let cases: &[(&str, ErrorCode)] = &[
            (r#"["ping",5]"#, ErrorCode::BadFrame),
            (r#"["login",1,"nick","pw"]"#, ErrorCode::BadFrame),
            (r#" [7]"#, ErrorCode::BadFrame),
            (r#""ping""#, ErrorCode::BadFrame),
            (r#"{"id":1} xyz"#, ErrorCode::BadJson),
            (r#"{"type":"dance","id":2}}"#, ErrorCode::BadJson),
            (r#"{"type":"ping","id":"x"} {"#, ErrorCode::BadJson),
        ];
        for (line, code) in cases {
            let err = decode::<Request>(line.as_bytes()).unwrap_err();
            assert_eq!((err.code, err.id), (*code, None), "{line}");
        }
        assert_eq!(
            decode::<Request>(b" \t{\"type\":\"ping\",\"id\":1} ").unwrap(),
            Request::Ping { id: 1 }
        );
    }

    /// Found by the fuzz properties: fed on after a `TooLarge`, the reader
    /// joined the bytes before and after the ones it had dropped into one
    /// line that was never sent.
    #[test]
    fn a_spent_reader_hands_out_nothing() {
        let mut r = LineReader::new(4);
        assert_eq!(lines(&mut r, b"abc").unwrap(), Vec::<String>::new());
        assert_eq!(lines(&mut r, b"defgh"), Err(TooLarge { limit: 4 }));
        assert_eq!(r.buffered(), 0);
        assert_eq!(lines(&mut r, b"i\nok\n").unwrap(), Vec::<String>::new());
        let flow = r.feed(b"j\n", |_| ControlFlow::Continue(())).unwrap();
        assert!(flow.is_break());
    }

    #[test]
    fn encode_is_one_line() {
        let frame = encode(&Request::Message {
            id: 1,
            receiver: "*".into(),
            text: "two\nlines".into(),
            cid: None,
        });
        assert_eq!(frame.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(frame.last(), Some(&b'\n'));
        let back: Request = decode(&frame[..frame.len() - 1]).unwrap();
        assert!(matches!(back, Request::Message { text, .. } if text == "two\nlines"));
    }
}
