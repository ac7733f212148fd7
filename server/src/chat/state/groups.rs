//! Groups: who is in which, kept in memory like the accounts (loaded from
//! the store at start, changed here and stored before each change is
//! answered), and the `group_*` requests.
//!
//! A group is private (its owner adds members) or public (anyone may
//! join); its owner may always rejoin it. Names are compared by the same
//! identity key as nicknames, so `#Class` and `#сlass` (Cyrillic `с`) are
//! one group. [`ChatState::group_members`] is the one check that a user may
//! send to a group, for messages and anything else addressed to `#name`.

use std::collections::HashMap;

use chat_common::codec::encode;
use chat_common::protocol::{validate_group, GroupInfo, GROUP_PREFIX};
use chat_common::{ErrorCode, Request, ServerFrame};

use super::Op;
use super::{fold, ChatState, Deliver, Rejection};
use crate::chat::state::identity;
use crate::framework::ConnId;
use crate::store::{GroupChange, GroupId, GroupRow, Origin, UserId};

/// Most members in one group: a message to it is one row per member,
/// written in the commit its sender waits for.
pub const MAX_MEMBERS: usize = 1000;

/// Most groups one user may own.
pub const MAX_OWNED: usize = 50;

/// Most groups on the server.
pub const MAX_GROUPS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: GroupId,
    /// Without its `#`, as its owner spelled it (NFKC).
    pub name: String,
    pub owner: UserId,
    pub public: bool,
    /// In the order they joined (ownership passes to the first).
    pub members: Vec<UserId>,
}

impl Group {
    /// `#name`, as frames show it.
    pub fn tag(&self) -> String {
        format!("{GROUP_PREFIX}{}", self.name)
    }

    pub fn has(&self, user: UserId) -> bool {
        self.members.contains(&user)
    }
}

/// Every group, by id and by the identity key of its name.
#[derive(Debug, Default)]
pub struct Groups {
    by_id: HashMap<GroupId, Group>,
    by_key: HashMap<String, GroupId>,
    last_id: GroupId,
    /// In a cluster: the next id of this node's block.
    next_in_block: Option<GroupId>,
}

/// The identity key of a group name given with or without its `#`.
fn key(name: &str) -> String {
    identity::key(name.strip_prefix(GROUP_PREFIX).unwrap_or(name))
}

impl Groups {
    pub fn new(rows: Vec<GroupRow>) -> Self {
        let mut groups = Groups::default();
        for row in rows {
            groups.insert(Group {
                id: row.id,
                name: row.name,
                owner: row.owner,
                public: row.public,
                members: row.members,
            });
        }
        groups
    }

    fn insert(&mut self, group: Group) {
        self.last_id = self.last_id.max(group.id);
        self.by_key.insert(key(&group.name), group.id);
        self.by_id.insert(group.id, group);
    }

    /// New groups take ids from `first` on (a cluster node's block).
    pub fn use_block(&mut self, first: GroupId) {
        self.next_in_block = Some(first);
    }

    /// Every group as the store has it now (changed on some node).
    pub fn reload(&mut self, rows: Vec<GroupRow>) {
        let next_in_block = self.next_in_block;
        *self = Groups::new(rows);
        self.next_in_block = next_in_block;
    }

    /// The id for a new group.
    fn next_id(&mut self) -> GroupId {
        match &mut self.next_in_block {
            Some(next) => {
                *next += 1;
                *next - 1
            }
            None => self.last_id + 1,
        }
    }

    /// The group `name` names (with or without `#`), however it is spelled.
    pub fn find(&self, name: &str) -> Option<&Group> {
        self.by_id.get(self.by_key.get(&key(name))?)
    }

    pub fn get(&self, id: GroupId) -> Option<&Group> {
        self.by_id.get(&id)
    }

    fn get_mut(&mut self, id: GroupId) -> &mut Group {
        self.by_id.get_mut(&id).expect("a group found before")
    }

    /// The groups `user` is in, sorted by name.
    pub fn of(&self, user: UserId) -> Vec<&Group> {
        let mut mine: Vec<&Group> = self.by_id.values().filter(|g| g.has(user)).collect();
        mine.sort_by_key(|g| fold(&g.name));
        mine
    }

    /// Every group, sorted by name.
    pub fn all(&self) -> Vec<&Group> {
        let mut all: Vec<&Group> = self.by_id.values().collect();
        all.sort_by_key(|g| fold(&g.name));
        all
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }
}

/// A group as the console's `/groups` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    pub name: String,
    pub owner: String,
    pub public: bool,
    pub members: usize,
    pub online: usize,
}

impl ChatState {
    /// Starts with the groups the store kept.
    pub fn with_groups(mut self, rows: Vec<GroupRow>) -> Self {
        self.groups = Groups::new(rows);
        self
    }

    /// Whether `user` may send to group `name`, and to whom: the group and
    /// its members (the sender included). `no_such_group` or
    /// `not_a_member` otherwise.
    pub fn group_members(
        &self,
        user: UserId,
        name: &str,
    ) -> Result<(GroupId, &[UserId]), Rejection> {
        let group = self.group_named(name)?;
        if !group.has(user) {
            return Err(not_a_member(group));
        }
        Ok((group.id, &group.members))
    }

    fn group_named(&self, name: &str) -> Result<&Group, Rejection> {
        self.groups
            .find(name)
            .ok_or_else(|| (ErrorCode::NoSuchGroup, format!("no such group: {name}")))
    }

    /// `#name` of the groups `user` is in, for the welcome.
    pub(super) fn group_tags(&self, user: UserId) -> Vec<String> {
        self.groups.of(user).iter().map(|g| g.tag()).collect()
    }

    /// Every group, for the console.
    pub fn group_summaries(&self) -> Vec<GroupSummary> {
        self.groups
            .all()
            .into_iter()
            .map(|g| GroupSummary {
                name: g.tag(),
                owner: self.accounts.nick(g.owner).to_string(),
                public: g.public,
                members: g.members.len(),
                online: g.members.iter().filter(|u| self.is_online(**u)).count(),
            })
            .collect()
    }

    /// A `group_*` request. `Ok(None)`: the change went to the store, which
    /// answers once it is durable.
    pub(super) fn group_request(
        &mut self,
        conn: ConnId,
        request: Request,
        now: u64,
        out: &mut impl Deliver,
    ) -> Result<Option<ServerFrame>, Rejection> {
        let user = self
            .sessions
            .get(&conn)
            .and_then(|s| s.user)
            .expect("online");
        let id = request.id().expect("group requests have ids");
        let (changes, answer) = match request {
            Request::GroupList { id } => return Ok(Some(self.group_list(id, user))),
            Request::GroupMembers { id, name } => {
                let group = self.group_named(&name)?;
                if !group.public && !group.has(user) && group.owner != user {
                    return Err(not_a_member(group));
                }
                return Ok(Some(self.group_frame(id, group.id, user)));
            }
            Request::GroupCreate {
                name,
                members,
                public,
                ..
            } => {
                let (changes, gid) = self.group_create(user, &name, &members, public, now)?;
                (changes, self.group_frame(id, gid, user))
            }
            Request::GroupAdd { name, members, .. } => {
                let group = self.owned(user, &name)?;
                let users = self.users_named(&members)?;
                let new: Vec<UserId> = dedup(users)
                    .into_iter()
                    .filter(|u| !group.has(*u))
                    .collect();
                if group.members.len() + new.len() > MAX_MEMBERS {
                    return Err(full(group));
                }
                let gid = group.id;
                self.groups.get_mut(gid).members.extend(&new);
                let change = GroupChange::Join {
                    group: gid,
                    users: new,
                    time: now,
                };
                (vec![change], self.group_frame(id, gid, user))
            }
            Request::GroupRemove { name, members, .. } => {
                let group = self.owned(user, &name)?;
                let gid = group.id;
                let users = dedup(self.users_named(&members)?);
                if let Some(&stranger) = users.iter().find(|u| !group.has(**u)) {
                    let nick = self.accounts.nick(stranger);
                    return Err((
                        ErrorCode::NotAMember,
                        format!("{nick} is not in {}", group.tag()),
                    ));
                }
                let mut changes = Vec::new();
                for u in users {
                    changes.extend(self.depart(gid, u));
                }
                (changes, self.group_frame(id, gid, user))
            }
            Request::GroupJoin { name, .. } => {
                let group = self.group_named(&name)?;
                let gid = group.id;
                if group.has(user) {
                    return Ok(Some(self.group_frame(id, gid, user)));
                }
                if !group.public && group.owner != user {
                    return Err((
                        ErrorCode::NotAMember,
                        format!(
                            "{} is private: ask its owner, {}, to add you",
                            group.tag(),
                            self.accounts.nick(group.owner)
                        ),
                    ));
                }
                if group.members.len() >= MAX_MEMBERS {
                    return Err(full(group));
                }
                self.groups.get_mut(gid).members.push(user);
                let change = GroupChange::Join {
                    group: gid,
                    users: vec![user],
                    time: now,
                };
                (vec![change], self.group_frame(id, gid, user))
            }
            Request::GroupLeave { name, .. } => {
                let group = self.group_named(&name)?;
                if !group.has(user) {
                    return Err(not_a_member(group));
                }
                let gid = group.id;
                let ack = ServerFrame::Ack {
                    id,
                    offline: false,
                    duplicate: false,
                };
                (self.depart(gid, user), ack)
            }
            _ => unreachable!("only group requests come here"),
        };
        self.tell_changed(user, &changes, out);
        let session = self.sessions.get_mut(&conn).expect("online");
        session.in_flight += 1;
        out.store(Op::Group {
            origin: Origin { conn, id },
            changes,
            then: encode(&answer),
        });
        Ok(None)
    }

    fn group_create(
        &mut self,
        user: UserId,
        name: &str,
        members: &[String],
        public: bool,
        now: u64,
    ) -> Result<(Vec<GroupChange>, GroupId), Rejection> {
        validate_group(name).map_err(|why| (ErrorCode::GroupInvalid, why))?;
        let bare = identity::display(name.strip_prefix(GROUP_PREFIX).unwrap_or(name));
        if let Some(taken) = self.groups.find(&bare) {
            return Err((
                ErrorCode::GroupInvalid,
                format!("{} exists already: choose another name", taken.tag()),
            ));
        }
        if self.groups.len() >= MAX_GROUPS {
            return Err((
                ErrorCode::GroupFull,
                format!("the server has {MAX_GROUPS} groups, its limit"),
            ));
        }
        let owned = self.groups.all().iter().filter(|g| g.owner == user).count();
        if owned >= MAX_OWNED {
            return Err((
                ErrorCode::GroupFull,
                format!("you own {MAX_OWNED} groups, the limit"),
            ));
        }
        let mut users = vec![user];
        users.extend(self.users_named(members)?);
        let users = dedup(users);
        if users.len() > MAX_MEMBERS {
            return Err((
                ErrorCode::GroupFull,
                format!("a group has at most {MAX_MEMBERS} members"),
            ));
        }
        let gid = self.groups.next_id();
        let key = key(&bare);
        self.groups.insert(Group {
            id: gid,
            name: bare.clone(),
            owner: user,
            public,
            members: users.clone(),
        });
        let changes = vec![
            GroupChange::Create {
                group: gid,
                name: bare,
                key,
                owner: user,
                public,
                time: now,
            },
            GroupChange::Join {
                group: gid,
                users,
                time: now,
            },
        ];
        Ok((changes, gid))
    }

    /// The group `name`, if `user` owns it.
    fn owned(&self, user: UserId, name: &str) -> Result<&Group, Rejection> {
        let group = self.group_named(name)?;
        if group.owner != user {
            return Err((
                ErrorCode::NotOwner,
                format!(
                    "only {}'s owner, {}, adds and removes members",
                    group.tag(),
                    self.accounts.nick(group.owner)
                ),
            ));
        }
        Ok(group)
    }

    fn users_named(&self, nicks: &[String]) -> Result<Vec<UserId>, Rejection> {
        nicks.iter().map(|n| self.user_named(n)).collect()
    }

    /// `user` leaves group `gid`; when the owner leaves, the member who
    /// joined first becomes the owner (an empty group keeps its owner, who
    /// may rejoin).
    /// Tells the members `by` added or removed (not `by` itself), if they
    /// are online, so that nobody is in a group unawares. Those offline see
    /// it in `welcome.groups`.
    fn tell_changed(&self, by: UserId, changes: &[GroupChange], out: &mut impl Deliver) {
        for change in changes {
            let (gid, users, added) = match change {
                GroupChange::Join { group, users, .. } => (*group, users, true),
                GroupChange::Leave { group, users } => (*group, users, false),
                _ => continue,
            };
            let Some(group) = self.groups.get(gid) else {
                continue;
            };
            let frame = encode(&ServerFrame::GroupChanged {
                group: group.tag(),
                by: self.accounts.nick(by).to_string(),
                added,
            });
            for &member in users.iter().filter(|&&u| u != by) {
                if let Some(conn) = self.live_conn(member) {
                    out.send(conn, frame.clone());
                }
            }
        }
    }

    fn depart(&mut self, gid: GroupId, user: UserId) -> Vec<GroupChange> {
        let group = self.groups.get_mut(gid);
        group.members.retain(|u| *u != user);
        let mut changes = vec![GroupChange::Leave {
            group: gid,
            users: vec![user],
        }];
        if group.owner == user {
            if let Some(&next) = group.members.first() {
                group.owner = next;
                changes.push(GroupChange::Owner {
                    group: gid,
                    owner: next,
                });
            }
        }
        changes
    }

    fn info(&self, group: &Group, user: UserId) -> GroupInfo {
        GroupInfo {
            name: group.tag(),
            owner: self.accounts.nick(group.owner).to_string(),
            public: group.public,
            size: group.members.len() as u32,
            member: group.has(user),
        }
    }

    /// The `group` answer: the group, its members and who of them is online.
    fn group_frame(&self, id: u64, gid: GroupId, user: UserId) -> ServerFrame {
        let group = self.groups.get(gid).expect("a group found before");
        let mut members: Vec<String> = group
            .members
            .iter()
            .map(|u| self.accounts.nick(*u).to_string())
            .collect();
        members.sort_by_key(|n| fold(n));
        let mut online: Vec<String> = group
            .members
            .iter()
            .filter(|u| self.is_online(**u))
            .map(|u| self.accounts.nick(*u).to_string())
            .collect();
        online.sort_by_key(|n| fold(n));
        ServerFrame::Group {
            id,
            group: self.info(group, user),
            members,
            online,
        }
    }

    /// The `groups` answer: `user`'s groups, then the public ones.
    fn group_list(&self, id: u64, user: UserId) -> ServerFrame {
        let all = self.groups.all();
        let mine = all.iter().filter(|g| g.has(user));
        let public = all.iter().filter(|g| g.public && !g.has(user));
        ServerFrame::Groups {
            id,
            groups: mine.chain(public).map(|g| self.info(g, user)).collect(),
        }
    }
}

fn not_a_member(group: &Group) -> Rejection {
    (
        ErrorCode::NotAMember,
        format!("you are not a member of {}", group.tag()),
    )
}

fn full(group: &Group) -> Rejection {
    (
        ErrorCode::GroupFull,
        format!("{} has {MAX_MEMBERS} members, the limit", group.tag()),
    )
}

/// `users` without repeats, first occurrence kept.
fn dedup(users: Vec<UserId>) -> Vec<UserId> {
    let mut seen = std::collections::HashSet::new();
    users.into_iter().filter(|u| seen.insert(*u)).collect()
}
