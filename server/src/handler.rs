//! The chat's per-connection handler: it runs on an I/O worker and passes
//! each decoded request to the dispatcher, which owns the chat state.

use chat_common::{Connection, Request, RequestHandler};
use crossbeam_channel::Sender;

use crate::dispatcher::Event;
use crate::framework::ConnInfo;

pub struct ChatHandler {
    info: ConnInfo,
    events: Sender<Event>,
}

impl ChatHandler {
    pub fn new(info: ConnInfo, events: Sender<Event>) -> Self {
        ChatHandler { info, events }
    }
}

impl RequestHandler for ChatHandler {
    type Request = Request;

    fn setup(&mut self, _conn: &mut dyn Connection) {
        tracing::info!(conn = self.info.id, peer = %self.info.peer, tls = self.info.tls, "connected");
        // A send fails only when the dispatcher is gone (shutdown): nothing to do then.
        let _ = self.events.send(Event::Connected(self.info));
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
