//! What the admin console shows: `/list` rows and `/stats` figures; in a
//! cluster, how many users each live node has.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::ChatState;

/// A row of the admin console's `/list`: a user of this node, or (with
/// `node`) of another node of the cluster, whose connection's details
/// that node alone knows (the other fields are then empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub nick: String,
    pub node: Option<String>,
    pub peer: SocketAddr,
    pub connected_at: u64,
    pub tls: bool,
    pub messages_sent: u64,
}

/// The figures behind `/stats`; counts are since the server started.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub connections: usize,
    pub users: usize,
    pub accounts: usize,
    pub messages: u64,
    pub private_messages: u64,
    /// Private messages stored for a receiver who was offline.
    pub stored_offline: u64,
    /// Messages sent again at a login: missed while away or disconnected.
    pub redelivered: u64,
    /// Resends dropped because their `cid` had been accepted before.
    pub duplicates: u64,
    /// Times flood control began slowing a client down.
    pub floods_throttled: u64,
    /// Clients disconnected for flooding.
    pub flooders_cut: u64,
    /// Clients disconnected for not reading ("send queue exceeded").
    pub slow_consumers_cut: u64,
    /// Messages per second over the last [`RATE_WINDOW_SECS`] seconds.
    pub rate: f64,
    /// In a cluster, each node and its users, by name (empty on one node).
    pub nodes: Vec<NodeUsers>,
}

/// A node of the cluster and how many users are online on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeUsers {
    pub node: String,
    /// This node.
    pub here: bool,
    pub users: usize,
}

/// What the listener last said of the cluster's nodes.
#[derive(Debug, Default)]
pub(super) struct Nodes {
    /// This node's id.
    pub(super) here: String,
    /// The nodes whose lease is live, this one's included.
    pub(super) live: Vec<String>,
}

impl ChatState {
    /// The listener read which nodes' leases are live.
    pub(super) fn nodes_heard(&mut self, here: String, live: Vec<String>) {
        self.nodes = Nodes { here, live };
    }

    /// Each node and its users (a node with none too): the live nodes,
    /// and any the replica still shows users on (its lease just ran out).
    /// Empty on one node.
    pub(super) fn node_users(&self) -> Vec<NodeUsers> {
        if !self.cluster {
            return Vec::new();
        }
        // Its name comes with the listener's first word, at once.
        let here = match self.nodes.here.as_str() {
            "" => "this node",
            name => name,
        };
        let mut users: BTreeMap<&str, usize> =
            self.nodes.live.iter().map(|n| (n.as_str(), 0)).collect();
        users.insert(here, self.nicks.len());
        for (key, remote) in &self.remote {
            // A takeover's placeholder (no node yet) waits for the reload.
            if !self.nicks.contains_key(key) && !remote.node.is_empty() {
                *users.entry(remote.node.as_str()).or_default() += 1;
            }
        }
        users
            .into_iter()
            .map(|(node, users)| NodeUsers {
                node: node.to_string(),
                here: node == here,
                users,
            })
            .collect()
    }
}

pub const RATE_WINDOW_SECS: u64 = 10;

/// Counts messages per second over a sliding window of whole seconds.
#[derive(Debug, Default)]
pub(super) struct RateWindow {
    buckets: [(u64, u64); RATE_WINDOW_SECS as usize],
}

impl RateWindow {
    pub(super) fn record(&mut self, now_ms: u64) {
        let sec = now_ms / 1000;
        let bucket = &mut self.buckets[(sec % RATE_WINDOW_SECS) as usize];
        if bucket.0 != sec {
            *bucket = (sec, 0);
        }
        bucket.1 += 1;
    }

    pub(super) fn per_second(&self, now_ms: u64) -> f64 {
        let sec = now_ms / 1000;
        let total: u64 = self
            .buckets
            .iter()
            .filter(|(s, _)| *s + RATE_WINDOW_SECS > sec && *s <= sec)
            .map(|(_, n)| n)
            .sum();
        total as f64 / RATE_WINDOW_SECS as f64
    }
}
