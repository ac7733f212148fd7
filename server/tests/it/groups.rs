//! Groups over real sockets: the lifecycle (create, add, remove, join,
//! leave, list, members with who is online), who may do what, messages
//! fanned out to every member — offline ones at their next login, in order
//! — and groups, memberships and messages surviving a restart.

use serde_json::{json, Value};

use crate::support::{Client, Options, Server};

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

/// Posts `text` to `group` and returns the `ack`.
fn post(client: &mut Client, group: &str, text: &str, cid: &str) -> Value {
    client.ask(json!({"type": "message", "receiver": group, "text": text, "cid": cid}))
}

/// The next `message` frame: `(receiver, sender, text)`.
fn next_message(client: &mut Client) -> (String, String, String) {
    let m = client.expect_type("message");
    (
        m["receiver"].as_str().unwrap().into(),
        m["sender"].as_str().unwrap().into(),
        m["text"].as_str().unwrap().into(),
    )
}

fn said(group: &str, sender: &str, text: &str) -> (String, String, String) {
    (group.into(), sender.into(), text.into())
}

/// The instructor makes a private class group with two students; they, and
/// only they, see what is posted; owner-only changes and a public group
/// anyone may join.
#[test]
fn lifecycle_and_permissions() {
    let server = Server::plain();
    let mut prof = server.login("prof");
    let mut ann = server.login("ann");
    let mut ben = server.login("ben");
    let mut eve = server.login("eve");

    let created =
        prof.ask(json!({"type": "group_create", "name": "#Class", "members": ["ann", "BEN"]}));
    assert_eq!(created["type"], "group", "{created}");
    assert_eq!(created["group"]["name"], "#Class");
    assert_eq!(created["group"]["owner"], "prof");
    assert_eq!(created["group"]["size"], 3);
    assert_eq!(created["group"].get("public"), None, "private by default");
    assert_eq!(names(&created["members"]), ["ann", "ben", "prof"]);
    assert_eq!(names(&created["online"]), ["ann", "ben", "prof"]);
    // Those added are told, and by whom; the owner is not told of himself.
    let told = json!({"type": "group_changed", "group": "#Class", "by": "prof", "added": true});
    for member in [&mut ann, &mut ben] {
        assert_eq!(member.expect_type("group_changed"), told);
    }

    // Names follow the nickname identity rules: `#class`, `#CLASS`, `#сlass`
    // (Cyrillic с) are the same group.
    let taken = prof.ask(json!({"type": "group_create", "name": "#сlass"}));
    assert_eq!(taken["code"], "group_invalid", "{taken}");
    for bad in ["#", "#two words", &format!("#{}", "x".repeat(33))] {
        let refused = prof.ask(json!({"type": "group_create", "name": bad}));
        assert_eq!(refused["code"], "group_invalid", "{bad:?}: {refused}");
    }
    let unknown = prof.ask(json!({"type": "group_create", "name": "x", "members": ["nobody"]}));
    assert_eq!(unknown["code"], "no_such_user", "{unknown}");

    // A post reaches every member (the sender too), tagged with the group.
    let ack = post(&mut prof, "#class", "welcome to the class", "p1");
    assert_eq!(ack["type"], "ack", "{ack}");
    for member in [&mut prof, &mut ann, &mut ben] {
        assert_eq!(
            next_message(member),
            said("#Class", "prof", "welcome to the class")
        );
    }
    // Non-members can neither post, read, nor join a private group.
    let refused = post(&mut eve, "#class", "let me in", "e1");
    assert_eq!(refused["code"], "not_a_member", "{refused}");
    let refused = eve.ask(json!({"type": "history", "with": "#class"}));
    assert_eq!(refused["code"], "not_a_member", "{refused}");
    let refused = eve.ask(json!({"type": "group_join", "name": "class"}));
    assert_eq!(refused["code"], "not_a_member", "{refused}");
    assert!(refused["reason"].as_str().unwrap().contains("prof"));
    let refused = eve.ask(json!({"type": "group_members", "name": "class"}));
    assert_eq!(refused["code"], "not_a_member", "{refused}");
    let refused = post(&mut eve, "#nowhere", "hello?", "e2");
    assert_eq!(refused["code"], "no_such_group", "{refused}");
    // Only the owner adds and removes.
    let refused = ann.ask(json!({"type": "group_add", "name": "class", "members": ["eve"]}));
    assert_eq!(refused["code"], "not_owner", "{refused}");
    let refused = ann.ask(json!({"type": "group_remove", "name": "class", "members": ["ben"]}));
    assert_eq!(refused["code"], "not_owner", "{refused}");

    let added = prof.ask(json!({"type": "group_add", "name": "class", "members": ["eve"]}));
    assert_eq!(names(&added["members"]), ["ann", "ben", "eve", "prof"]);
    assert_eq!(eve.expect_type("group_changed"), told);
    let removed = prof.ask(json!({"type": "group_remove", "name": "class", "members": ["ben"]}));
    assert_eq!(names(&removed["members"]), ["ann", "eve", "prof"]);
    assert_eq!(
        ben.expect_type("group_changed"),
        json!({"type": "group_changed", "group": "#Class", "by": "prof", "added": false})
    );
    let refused = post(&mut ben, "#class", "still here?", "b1");
    assert_eq!(refused["code"], "not_a_member", "removed: {refused}");

    // History of the group, for members only; the whole of it.
    post(&mut eve, "#class", "thanks for adding me", "e3");
    let history = ann.ask(json!({"type": "history", "with": "#CLASS", "limit": 10}));
    let texts: Vec<&str> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["receiver"], "#Class", "{m}");
            m["text"].as_str().unwrap()
        })
        .collect();
    assert_eq!(texts, ["welcome to the class", "thanks for adding me"]);

    // A public group: anyone may join, leave, and see who is in it.
    let public = ben.ask(json!({"type": "group_create", "name": "chess", "public": true}));
    assert_eq!(public["group"]["public"], true, "{public}");
    let joined = eve.ask(json!({"type": "group_join", "name": "#chess"}));
    assert_eq!(names(&joined["members"]), ["ben", "eve"]);
    eve.bye();
    let members = ann.ask(json!({"type": "group_members", "name": "chess"}));
    assert_eq!(names(&members["members"]), ["ben", "eve"]);
    assert_eq!(names(&members["online"]), ["ben"], "eve left: {members}");

    // The list: your groups, then public ones you are not in.
    let list = ann.ask(json!({"type": "group_list"}));
    let rows: Vec<(&str, bool, u64)> = list["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap(),
                g["member"] == true,
                g["size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, [("#Class", true, 3), ("#chess", false, 2)]);

    // Leaving: the answer is an ack, and the group's messages stop.
    let left = ben.ask(json!({"type": "group_leave", "name": "chess"}));
    assert_eq!(left["type"], "ack", "{left}");
    let refused = ben.ask(json!({"type": "group_leave", "name": "chess"}));
    assert_eq!(refused["code"], "not_a_member", "{refused}");
    let members = ann.ask(json!({"type": "group_members", "name": "chess"}));
    assert_eq!(
        members["group"]["owner"], "eve",
        "the owner left: the member who joined first owns it: {members}"
    );
}

/// Members who are offline get the group's messages at their next login,
/// in order, with the private messages sent meanwhile; after a restart the
/// group, its members and its history are still there.
#[test]
fn offline_members_catch_up_and_groups_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Options::plain().data_dir(dir.path()).start();
    let mut prof = server.login("prof");
    let mut ann = server.login("ann");
    server.login("ben").bye();
    prof.ask(json!({"type": "group_create", "name": "class", "members": ["ann", "ben"]}));
    ann.bye();

    post(&mut prof, "#class", "exam on friday", "p1");
    prof.ask(json!({"type": "message", "receiver": "ben", "text": "see me after", "cid": "p2"}));
    post(&mut prof, "#class", "bring a pencil", "p3");

    // ann and ben log in (a new client: no last_seq) and get all, in order.
    let mut ann = server.connect("ann");
    let welcome = ann.login("ann");
    assert_eq!(welcome["groups"], json!(["#class"]), "{welcome}");
    assert_eq!(welcome["replay"], 2, "{welcome}");
    assert_eq!(
        next_message(&mut ann),
        said("#class", "prof", "exam on friday")
    );
    let m = ann.expect_type("message");
    assert_eq!(
        (m["text"].as_str(), m["away"].as_bool()),
        (Some("bring a pencil"), Some(true))
    );
    let mut ben = server.connect("ben");
    ben.login("ben");
    assert_eq!(
        next_message(&mut ben),
        said("#class", "prof", "exam on friday")
    );
    assert_eq!(next_message(&mut ben), said("ben", "prof", "see me after"));
    assert_eq!(
        next_message(&mut ben),
        said("#class", "prof", "bring a pencil")
    );
    // A resend of an accepted cid is a duplicate, delivered to nobody.
    let again = post(&mut prof, "#class", "exam on friday", "p1");
    assert_eq!(again["duplicate"], true, "{again}");
    ben.expect_silence(std::time::Duration::from_millis(300));
    drop((prof, ann, ben));
    drop(server);

    let server = Options::plain().data_dir(dir.path()).start();
    // Neither said `received`: what they were shown comes again (with
    // `last_seq` a client would not be sent it).
    let mut ann = server.connect("ann");
    ann.login("ann");
    let members = ann.ask(json!({"type": "group_members", "name": "#class"}));
    assert_eq!(names(&members["members"]), ["ann", "ben", "prof"]);
    assert_eq!(members["group"]["owner"], "prof");
    let history = ann.ask(json!({"type": "history", "with": "#class"}));
    assert_eq!(
        history["messages"].as_array().unwrap().len(),
        2,
        "{history}"
    );
    let mut ben = server.connect("ben");
    ben.try_resume("ben", Some(3), None);
    post(&mut ann, "#class", "what about calculators?", "a1");
    let m = ben.expect_type("message");
    assert_eq!(
        (
            m["seq"].as_u64(),
            m["receiver"].as_str(),
            m["text"].as_str()
        ),
        (Some(4), Some("#class"), Some("what about calculators?")),
        "ben's stream goes on after a restart: {m}"
    );
}

/// The console's `/groups` lists each group with its owner and counts.
#[test]
fn console_lists_groups() {
    let mut server = Server::plain();
    let mut prof = server.login("prof");
    let _ann = server.login("ann");
    prof.ask(json!({"type": "group_create", "name": "class", "members": ["ann"], "public": true}));
    let output = server.admin_output("/groups", |l| l.ends_with("groups"));
    let row = output
        .lines()
        .find(|l| l.starts_with("#class"))
        .unwrap_or_else(|| panic!("{output}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells, ["#class", "prof", "public", "2", "2"], "{output}");
}
