//! Groups: the `!group` subcommands and their answers, and the roster's
//! list of the groups we are in, which completion offers.

use chat_common::protocol::GroupInfo;
use chat_common::Request;

use super::{Notice, Pending, Session, Update};
use crate::command::{group_tag, GroupOp};

impl Session {
    /// `!group …` (posting goes through [`Session::say`]).
    pub fn group(&mut self, op: GroupOp) -> Option<Request> {
        self.ask(Pending::Group(op))
    }

    /// The answer to a `!group` subcommand: the group as it is now.
    pub(super) fn on_group(
        &mut self,
        id: u64,
        group: GroupInfo,
        members: Vec<String>,
        online: Vec<String>,
    ) -> Vec<Update> {
        let what = self.pending.remove(&id);
        if group.member {
            self.roster.lock().add_group(&group.name);
        }
        let verb = match what {
            Some(Pending::Group(GroupOp::Create { .. })) => "created",
            Some(Pending::Group(GroupOp::Add { .. } | GroupOp::Remove { .. })) => "changed",
            Some(Pending::Group(GroupOp::Join { .. })) => "joined",
            _ => "members of",
        };
        vec![Update::Show(Notice::GroupInfo {
            verb: verb.to_string(),
            group,
            members,
            online,
        })]
    }

    /// The owner added us to `group` or removed us from it.
    pub(super) fn on_group_changed(
        &mut self,
        group: String,
        by: String,
        added: bool,
    ) -> Vec<Update> {
        {
            let mut roster = self.roster.lock();
            if added {
                roster.add_group(&group);
            } else {
                roster.remove_group(&group);
            }
        }
        vec![Update::Show(Notice::GroupChanged { group, by, added })]
    }

    /// The answer to `!group list`.
    pub(super) fn on_groups(&mut self, id: u64, groups: Vec<GroupInfo>) -> Vec<Update> {
        self.pending.remove(&id);
        let mine: Vec<String> = groups
            .iter()
            .filter(|g| g.member)
            .map(|g| g.name.clone())
            .collect();
        self.roster.lock().set_groups(&mine);
        vec![Update::Show(Notice::GroupList { groups })]
    }

    /// `!group leave` was acknowledged.
    pub(super) fn on_group_left(&mut self, name: &str) -> Vec<Update> {
        let group = group_tag(name);
        self.roster.lock().remove_group(&group);
        vec![Update::Show(Notice::GroupLeft { group })]
    }
}
