//! Raw bytes after a frame's line. File chunks travel this way: the line
//! says how many bytes follow (`"len"`), and exactly that many come right
//! after its newline, unencoded — no base64 to inflate them by a third, no
//! 40 KB JSON string to scan, and chunks bigger than the line limit.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Most bytes one frame may carry after its line. A peer announcing more is
/// answered like an over-long line (`too_large`) and cut off.
pub const MAX_PAYLOAD: usize = 256 * 1024;

/// The bytes a frame carries after its line. In the JSON they appear as
/// their length; a frame just decoded holds only that length until the
/// reader has the bytes and hands them over with [`Payload::set_payload`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RawBytes {
    len: usize,
    bytes: Vec<u8>,
}

impl RawBytes {
    /// How many bytes follow the line.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.bytes
    }

    pub(crate) fn fill(&mut self, bytes: Vec<u8>) {
        self.len = bytes.len();
        self.bytes = bytes;
    }
}

impl From<Vec<u8>> for RawBytes {
    fn from(bytes: Vec<u8>) -> Self {
        RawBytes {
            len: bytes.len(),
            bytes,
        }
    }
}

/// Only the length: a chunk's bytes do not belong in a log line.
impl fmt::Debug for RawBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.len)
    }
}

impl Serialize for RawBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.len as u64)
    }
}

impl<'de> Deserialize<'de> for RawBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let len = u64::deserialize(d)?;
        Ok(RawBytes {
            // Anything that does not fit is over MAX_PAYLOAD anyway.
            len: usize::try_from(len).unwrap_or(usize::MAX),
            bytes: Vec::new(),
        })
    }
}

/// A frame type some of whose frames carry raw bytes after their line.
pub trait Payload {
    /// The bytes this frame carries, if it is one that does.
    fn payload(&self) -> Option<&RawBytes> {
        None
    }

    /// Hands a just-decoded frame the bytes that followed its line.
    fn set_payload(&mut self, _bytes: Vec<u8>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appears_in_json_as_its_length() {
        let raw = RawBytes::from(vec![1, 2, 3]);
        assert_eq!(serde_json::to_string(&raw).unwrap(), "3");
        let back: RawBytes = serde_json::from_str("3").unwrap();
        assert_eq!(back.len(), 3);
        assert!(back.as_slice().is_empty());
        assert_eq!(format!("{raw:?}"), "<3 bytes>");
        assert!(serde_json::from_str::<RawBytes>("-1").is_err());
        assert!(serde_json::from_str::<RawBytes>("\"3\"").is_err());
    }
}
