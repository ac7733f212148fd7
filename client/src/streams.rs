//! The two numbered streams a client reads (`docs/protocol.md`, "Reliable
//! delivery"): the public stream and the account's own stream of private
//! messages. Remembers the last `seq` shown in each, so that a message seen
//! again (replayed after a reconnect whose `received` was lost) is never
//! shown twice, and says when a `received` is due.

/// The last `seq` shown in each stream, and the last one acknowledged.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Streams {
    public: Option<u64>,
    own: Option<u64>,
    /// The last own-stream `seq` sent in a `received`.
    received: Option<u64>,
}

impl Streams {
    /// Whether a message numbered `seq` in the public (`public`) or our own
    /// stream is new, and if so records it as shown. Numbers only increase,
    /// so anything at or below the last one shown has been shown. A `seq`
    /// of 0 means the server numbers nothing (an older server): always new.
    pub fn fresh(&mut self, public: bool, seq: u64) -> bool {
        if seq == 0 {
            return true;
        }
        let last = if public {
            &mut self.public
        } else {
            &mut self.own
        };
        if last.is_some_and(|last| seq <= last) {
            return false;
        }
        *last = Some(seq);
        true
    }

    /// The welcome said where the public stream stands: a client that has
    /// shown no public message yet resumes from there after a drop, so it
    /// misses nothing said while it was away. (When it has shown one, it
    /// asked for the replay after it, which follows the welcome.)
    pub fn public_from(&mut self, head: u64) {
        // 0 is a position too: the room was empty, so everything said from
        // now on must be replayed after a drop.
        if self.public.is_none() {
            self.public = Some(head);
        }
    }

    /// `last_seq` and `last_public` for the next login: what to resume after.
    pub fn resume(&self) -> (Option<u64>, Option<u64>) {
        (self.own, self.public)
    }

    /// The `seq` to acknowledge with `received`, if private messages were
    /// shown since the last one; called once per batch of frames read, so
    /// that one `received` covers them all.
    pub fn received(&mut self) -> Option<u64> {
        if self.own > self.received {
            self.received = self.own;
            self.own
        } else {
            None
        }
    }
}

impl Streams {
    /// The connection is gone, and the last `received` may have gone with
    /// it: the next batch acknowledges again, or the server would send
    /// those messages to this account's next new client as unread.
    pub fn disconnected(&mut self) {
        self.received = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_welcome_gives_a_public_starting_point_only_to_who_has_none() {
        let mut fresh_client = Streams::default();
        fresh_client.public_from(7);
        assert_eq!(fresh_client.resume(), (None, Some(7)));
        assert!(!fresh_client.fresh(true, 7));
        assert!(fresh_client.fresh(true, 8));
        let mut resuming = Streams::default();
        assert!(resuming.fresh(true, 3));
        resuming.public_from(7);
        assert_eq!(
            resuming.resume(),
            (None, Some(3)),
            "its replay from 3 follows"
        );
        let mut empty_room = Streams::default();
        empty_room.public_from(0);
        assert_eq!(
            empty_room.resume(),
            (None, Some(0)),
            "replay from the start"
        );
    }

    #[test]
    fn each_seq_is_shown_once_per_stream() {
        let mut streams = Streams::default();
        let cases = [
            (true, 5, true),
            (true, 5, false),
            (true, 3, false),
            (true, 9, true),
            // The other stream has its own numbers.
            (false, 3, true),
            (false, 3, false),
            (false, 4, true),
            (true, 0, true),
            (true, 0, true),
            (false, 2, false),
        ];
        for (public, seq, fresh) in cases {
            assert_eq!(streams.fresh(public, seq), fresh, "{public} {seq}");
        }
        assert_eq!(streams.resume(), (Some(4), Some(9)));
    }

    #[test]
    fn a_new_client_resumes_from_nothing() {
        assert_eq!(Streams::default().resume(), (None, None));
    }

    /// One `received` for a batch, none when nothing private was shown.
    #[test]
    fn received_is_coalesced() {
        let mut streams = Streams::default();
        assert_eq!(streams.received(), None);
        streams.fresh(true, 7);
        assert_eq!(streams.received(), None, "public messages need none");
        for seq in [1, 2, 3] {
            streams.fresh(false, seq);
        }
        assert_eq!(streams.received(), Some(3));
        assert_eq!(streams.received(), None);
        streams.fresh(false, 3);
        assert_eq!(streams.received(), None, "a duplicate is not news");
        streams.fresh(false, 8);
        assert_eq!(streams.received(), Some(8));
        // A `received` lost with a connection is sent again after it.
        streams.disconnected();
        assert_eq!(streams.received(), Some(8));
        assert_eq!(streams.received(), None);
    }
}
