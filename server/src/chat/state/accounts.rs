//! The dispatcher's directory of accounts: every nickname ever registered,
//! with its password hash, loaded from the store at start and kept in step
//! with it: on one node the dispatcher is the only one who creates
//! accounts; in a cluster the others' are learnt as the listener hears of
//! them, and this node's new ids come from its own block.
//!
//! Names are found by identity key ([`crate::chat::state::identity`]): `ALICE`, `аlice`
//! (Cyrillic `а`) and `ａｌｉｃｅ` all find alice's account.

use std::collections::HashMap;

use crate::chat::state::identity;
use crate::store::{Account, UserId};

#[derive(Debug, Default)]
pub struct Accounts {
    by_id: HashMap<UserId, Account>,
    /// Identity key → id: one account per key.
    by_key: HashMap<String, UserId>,
    /// Glyph key → id ([`identity::glyph_key`]): what each name looks like
    /// when a capital I is read as an l, so that `aIice` cannot be
    /// registered next to `alice`.
    by_glyph: HashMap<String, UserId>,
    last_id: UserId,
    /// In a cluster: the next id of this node's block.
    next_in_block: Option<UserId>,
}

impl Accounts {
    pub fn new(accounts: Vec<Account>) -> Self {
        let mut directory = Accounts::default();
        for account in accounts {
            directory.insert(account);
        }
        directory
    }

    fn insert(&mut self, account: Account) {
        self.last_id = self.last_id.max(account.id);
        if let Some(key) = &account.key {
            self.by_key.insert(key.clone(), account.id);
            self.by_glyph
                .entry(identity::glyph_key(&account.nick))
                .or_insert(account.id);
        }
        self.by_id.insert(account.id, account);
    }

    /// New accounts take ids from `first` on (a cluster node's block).
    pub fn use_block(&mut self, first: UserId) {
        self.next_in_block = Some(first);
    }

    /// An account created, or whose password changed, on another node (or
    /// this one's, heard back). The database's word wins: if this node
    /// had given the same name to another id (two nodes registered it at
    /// the same instant, and this node's row was refused), that id is
    /// returned — its name now finds the stored account.
    pub fn learn(&mut self, account: Account) -> Option<UserId> {
        if let Some(known) = self.by_id.get_mut(&account.id) {
            known.hash = account.hash;
            return None;
        }
        let displaced = account
            .key
            .as_ref()
            .and_then(|key| self.by_key.get(key))
            .copied()
            .filter(|&other| other != account.id);
        if let Some(other) = displaced {
            // Its glyph key must find the stored account too.
            self.by_glyph.retain(|_, id| *id != other);
        }
        self.insert(account);
        displaced
    }

    /// The account `nick` names, however it is spelled.
    pub fn find(&self, nick: &str) -> Option<&Account> {
        self.by_id.get(self.by_key.get(&identity::key(nick))?)
    }

    /// An account whose name looks like `nick` although it is not the one
    /// `nick` names: a new account must not be created under `nick`.
    pub fn lookalike(&self, nick: &str) -> Option<&Account> {
        let (key, glyph) = (identity::key(nick), identity::glyph_key(nick));
        let id = self
            .by_glyph
            .get(&glyph)
            .or_else(|| self.by_glyph.get(&key))
            .or_else(|| self.by_key.get(&glyph))?;
        self.by_id.get(id)
    }

    /// The nickname as its owner registered it.
    pub fn nick(&self, id: UserId) -> &str {
        self.by_id.get(&id).map_or("?", |a| a.nick.as_str())
    }

    /// Adds an account under the NFKC form of `nick` and returns its new
    /// id; the caller stores it.
    pub fn create(&mut self, nick: &str, hash: String) -> UserId {
        let id = match &mut self.next_in_block {
            Some(next) => {
                *next += 1;
                *next - 1
            }
            None => self.last_id + 1,
        };
        let nick = identity::display(nick);
        self.insert(Account {
            id,
            key: Some(identity::key(&nick)),
            nick,
            hash,
        });
        id
    }

    /// The account numbered `id` (it exists: ids come from here).
    pub fn get(&self, id: UserId) -> &Account {
        &self.by_id[&id]
    }

    /// A new password's hash for `id`.
    pub fn set_hash(&mut self, id: UserId, hash: String) {
        if let Some(account) = self.by_id.get_mut(&id) {
            account.hash = hash;
        }
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: UserId, nick: &str, key: Option<&str>) -> Account {
        Account {
            id,
            nick: nick.into(),
            hash: format!("h{id}"),
            key: key.map(str::to_string),
        }
    }

    #[test]
    fn one_account_per_nickname_whatever_the_spelling() {
        let mut accounts = Accounts::new(vec![account(7, "Alice", Some("alice"))]);
        for spelling in [
            "ALICE",
            "alice",
            "аlice",
            "ａｌｉｃｅ",
            "alİce",
            "a\u{301}lice",
        ] {
            assert_eq!(accounts.find(spelling).map(|a| a.id), Some(7), "{spelling}");
        }
        assert_eq!(
            accounts.create("ｂｏｂ", "h2".into()),
            8,
            "ids continue after the stored ones"
        );
        assert_eq!(accounts.nick(8), "bob", "registered in NFKC form");
        assert_eq!(accounts.find("BOB").map(|a| a.id), Some(8));
        assert!(accounts.find("carol").is_none());
        assert_eq!(accounts.len(), 2);
    }

    #[test]
    fn a_capital_i_for_an_l_is_a_lookalike() {
        let accounts = Accounts::new(vec![account(1, "alice", Some("alice"))]);
        assert!(accounts.find("aIice").is_none(), "by case it reads aiice");
        assert_eq!(accounts.lookalike("aIice").map(|a| a.id), Some(1));
        assert!(accounts.lookalike("carol").is_none());

        let accounts = Accounts::new(vec![account(1, "aIice", Some("aiice"))]);
        assert_eq!(accounts.lookalike("alice").map(|a| a.id), Some(1));
    }

    /// In a cluster, an account heard of from the database wins over the
    /// one this node gave the same name (its row was refused).
    #[test]
    fn a_stored_account_displaces_this_nodes_of_the_same_name() {
        let mut accounts = Accounts::new(vec![account(1, "alice", Some("alice"))]);
        accounts.use_block(100);
        let bob = accounts.create("bob", "mine".into());
        assert_eq!(bob, 100, "from the block");
        assert_eq!(accounts.create("carol", "h".into()), 101);
        assert_eq!(accounts.learn(account(1, "alice", Some("alice"))), None);
        assert_eq!(accounts.learn(account(7, "bob", Some("bob"))), Some(100));
        assert_eq!(accounts.find("BOB").map(|a| a.id), Some(7));
        assert_eq!(accounts.nick(100), "bob", "its sessions still name it");
        let mut changed = account(7, "bob", Some("bob"));
        changed.hash = "new".into();
        assert_eq!(accounts.learn(changed), None);
        assert_eq!(accounts.find("bob").unwrap().hash, "new");
    }

    /// An account that lost its key when an older database was opened
    /// cannot be found by name.
    #[test]
    fn an_account_without_a_key_is_not_found() {
        let accounts = Accounts::new(vec![
            account(1, "alice", Some("alice")),
            account(2, "аlice", None),
        ]);
        assert_eq!(accounts.find("аlice").map(|a| a.id), Some(1));
        assert_eq!(accounts.nick(2), "аlice", "its messages still name it");
        assert_eq!(accounts.len(), 2);
    }
}
