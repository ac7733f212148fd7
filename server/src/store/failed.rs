//! The replies of a batch that failed, whichever backend: every op that
//! answers says so, and nothing only a commit would make true survives.

use super::{Appended, Op, Reply, StoreError};

/// The replies of a batch whose transaction could not begin.
pub(super) fn fail_all<E>(batch: Vec<Op<E>>, err: &StoreError) -> Vec<Reply<E>> {
    batch
        .into_iter()
        .filter_map(|op| {
            Some(match op {
                Op::Append { origin, message } => Reply::Appended {
                    origin,
                    message,
                    outcome: Appended::Failed(err.clone()),
                },
                Op::Backlog { origin, user, .. } => Reply::Backlog {
                    origin,
                    user,
                    result: Err(err.clone()),
                },
                Op::History { origin, .. }
                | Op::Search { origin, .. }
                | Op::GroupHistory { origin, .. } => Reply::Found {
                    origin,
                    result: Err(err.clone()),
                },
                Op::Group { origin, then, .. } => Reply::Grouped {
                    origin,
                    result: Err(err.clone()),
                    then,
                },
                Op::Echo { origin, then } => Reply::Echo { origin, then },
                Op::Notify(tx) => Reply::Notify(tx, false),
                Op::Tail { stream, after } => Reply::Tail {
                    stream,
                    after,
                    result: Err(err.clone()),
                },
                Op::Heads(_) => Reply::Heads(Err(err.clone())),
                Op::CreateAccount { .. }
                | Op::SetPassword { .. }
                | Op::Received { .. }
                | Op::Sanction(..)
                | Op::Online { .. }
                | Op::Offline { .. }
                | Op::Kick { .. }
                | Op::File(_)
                | Op::LoginFailed { .. }
                | Op::Away { .. } => return None,
            })
        })
        .collect()
}

/// The replies of a batch whose commit failed: every op that answers says
/// so, and what only a commit would have made true (deliveries) is gone.
pub(super) fn fail_replies<E>(replies: Vec<Reply<E>>, err: &StoreError) -> Vec<Reply<E>> {
    replies
        .into_iter()
        .filter_map(|reply| {
            Some(match reply {
                Reply::Appended {
                    origin, message, ..
                } => Reply::Appended {
                    origin,
                    message,
                    outcome: Appended::Failed(err.clone()),
                },
                Reply::Backlog { origin, user, .. } => Reply::Backlog {
                    origin,
                    user,
                    result: Err(err.clone()),
                },
                Reply::Found { origin, .. } => Reply::Found {
                    origin,
                    result: Err(err.clone()),
                },
                Reply::Grouped { origin, then, .. } => Reply::Grouped {
                    origin,
                    result: Err(err.clone()),
                    then,
                },
                Reply::Notify(tx, _) => Reply::Notify(tx, false),
                Reply::Tail { stream, after, .. } => Reply::Tail {
                    stream,
                    after,
                    result: Err(err.clone()),
                },
                Reply::Heads(_) => Reply::Heads(Err(err.clone())),
                Reply::Delivered(_) => return None,
                echo @ Reply::Echo { .. } => echo,
            })
        })
        .collect()
}
