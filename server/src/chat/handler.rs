//! The chat's per-connection handler: it runs on an I/O worker and passes
//! each decoded request to the dispatcher, which owns the chat state.

use std::sync::Arc;
use std::time::Instant;

use chat_common::protocol::{ErrorCode, ServerFrame};
use chat_common::{codec, Connection, Request, RequestHandler};
use crossbeam_channel::Sender;

use crate::chat::dispatcher::Event;
use crate::chat::flood::{self, Ledger, Verdict};
use crate::framework::ConnInfo;

pub struct ChatHandler {
    info: ConnInfo,
    events: Sender<Event>,
    flood: flood::Policy,
    ledger: Arc<Ledger>,
}

impl ChatHandler {
    pub fn new(
        info: ConnInfo,
        events: Sender<Event>,
        flood: flood::Policy,
        ledger: Arc<Ledger>,
    ) -> Self {
        ChatHandler {
            info,
            events,
            flood,
            ledger,
        }
    }
}

impl RequestHandler for ChatHandler {
    type Request = Request;

    fn setup(&mut self, _conn: &mut dyn Connection) {
        tracing::info!(conn = self.info.id, peer = %self.info.peer, tls = self.info.tls, "connected");
        // A send fails only when the dispatcher is gone (shutdown): nothing to do then.
        let _ = self.events.send(Event::Connected(self.info));
    }

    /// Flood control, here on the worker so that a flooder's frames wait in
    /// its own socket rather than in the dispatcher's queue.
    fn ready_at(&mut self, request: &Request, conn: &mut dyn Connection) -> Option<Instant> {
        if matches!(request, Request::Login { .. }) && !self.flood.is_off() {
            self.ledger.login_sent(self.info.id);
        }
        let Request::Message { id, .. } = request else {
            return None;
        };
        let peer = self.info.peer.ip();
        match self
            .ledger
            .take(self.info.id, peer, &self.flood, Instant::now())
        {
            Verdict::Go => None,
            Verdict::Hold(until) => Some(until),
            Verdict::Wait { until, started } => {
                if started {
                    tracing::info!(conn = self.info.id, peer = %self.info.peer, "flood throttled");
                    let _ = self.events.send(Event::Flood {
                        conn: self.info.id,
                        cut: false,
                    });
                }
                Some(until)
            }
            Verdict::Cut => {
                let reason = format!(
                    "disconnected for flooding: over {} messages a second for {} s",
                    self.flood.per_second,
                    self.flood.cut_after.as_secs()
                );
                conn.send(codec::encode(&ServerFrame::Error {
                    id: Some(*id),
                    code: ErrorCode::Flooding,
                    reason,
                }));
                conn.close("flooding");
                let _ = self.events.send(Event::Flood {
                    conn: self.info.id,
                    cut: true,
                });
                None
            }
        }
    }

    fn handle(&mut self, request: Request, _conn: &mut dyn Connection) {
        // The channel is bounded: when the dispatcher falls behind, this
        // worker waits here and stops reading, and TCP pushes back on clients.
        let _ = self.events.send(Event::Request {
            conn: self.info.id,
            request,
        });
    }

    /// The answers to what the peer sent are still with the dispatcher: it
    /// closes the connection after them, in order.
    fn handle_eof(&mut self, _conn: &mut dyn Connection) {
        let _ = self.events.send(Event::PeerClosed { conn: self.info.id });
    }

    fn finish(&mut self, reason: &str) {
        tracing::info!(conn = self.info.id, peer = %self.info.peer, "disconnected: {reason}");
        let _ = self.events.send(Event::Disconnected {
            conn: self.info.id,
            reason: reason.to_string(),
        });
    }
}
