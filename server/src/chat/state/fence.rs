//! A cluster node that cannot renew its lease fences itself (`--cluster`):
//! before the other nodes reap its users it closes every connection with
//! `unavailable`, so that their clients move to another node, and refuses
//! logins until a renewal succeeds again. Nothing acknowledged is lost:
//! without the database nothing is acknowledged either.

use chat_common::codec::encode;
use chat_common::{ErrorCode, ServerFrame};

use super::{ChatState, Deliver, Phase, Rejection};
use crate::framework::ConnId;

/// What a fenced node says, to those it closes and to logins it refuses.
const UNAVAILABLE: &str = "this server lost its database; reconnect to another";

impl ChatState {
    /// The dispatcher found the lease too old (`true`) or renewed again
    /// (`false`). Fencing closes every connection, logged in or not.
    pub fn set_fenced(&mut self, fenced: bool, out: &mut impl Deliver) {
        if fenced == self.fenced {
            return;
        }
        self.fenced = fenced;
        if !fenced {
            tracing::warn!("the lease is renewed again: serving clients");
            return;
        }
        let frame = encode(&ServerFrame::Error {
            id: None,
            code: ErrorCode::Unavailable,
            reason: UNAVAILABLE.into(),
        });
        let conns: Vec<ConnId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.phase != Phase::Leaving)
            .map(|(&conn, _)| conn)
            .collect();
        tracing::error!(
            "the lease could not be renewed: fenced, closing {} connections",
            conns.len()
        );
        for conn in conns {
            out.send(conn, frame.clone());
            self.leave(conn, "server unavailable", out);
        }
    }

    /// Whether this node is fenced (its clients were sent away).
    pub fn is_fenced(&self) -> bool {
        self.fenced
    }

    /// A login on a fenced node: refused, not for the user's fault.
    pub(super) fn refuse_if_fenced(&self) -> Result<(), Rejection> {
        if self.fenced {
            return Err((ErrorCode::Unavailable, UNAVAILABLE.into()));
        }
        Ok(())
    }
}
