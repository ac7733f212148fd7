//! The dispatcher's directory of accounts: every nickname ever registered,
//! with its password hash, loaded from the store at start and kept in step
//! with it (the dispatcher is the only one who creates accounts).

use std::collections::HashMap;

use crate::state::fold;
use crate::store::{Account, UserId};

#[derive(Debug, Default)]
pub struct Accounts {
    by_id: HashMap<UserId, Account>,
    /// Folded nickname → id: one account per nickname, whatever the case.
    by_name: HashMap<String, UserId>,
    last_id: UserId,
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
        self.by_name.insert(fold(&account.nick), account.id);
        self.by_id.insert(account.id, account);
    }

    pub fn find(&self, nick: &str) -> Option<&Account> {
        self.by_id.get(self.by_name.get(&fold(nick))?)
    }

    /// The nickname as its owner registered it.
    pub fn nick(&self, id: UserId) -> &str {
        self.by_id.get(&id).map_or("?", |a| a.nick.as_str())
    }

    /// Adds an account and returns its new id; the caller stores it.
    pub fn create(&mut self, nick: &str, hash: String) -> UserId {
        let id = self.last_id + 1;
        self.insert(Account {
            id,
            nick: nick.to_string(),
            hash,
        });
        id
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

    #[test]
    fn one_account_per_nickname_whatever_the_case() {
        let mut accounts = Accounts::new(vec![Account {
            id: 7,
            nick: "Alice".into(),
            hash: "h".into(),
        }]);
        assert_eq!(accounts.find("ALICE").map(|a| a.id), Some(7));
        assert_eq!(
            accounts.create("bob", "h2".into()),
            8,
            "ids continue after the stored ones"
        );
        assert_eq!(accounts.nick(8), "bob");
        assert!(accounts.find("carol").is_none());
        assert_eq!(accounts.len(), 2);
    }
}
