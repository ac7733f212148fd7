//! The server's keepalive, with short times (`--ping-after 1
//! --idle-timeout 3`): a client that goes silent is pinged, then told and
//! cut, and everyone sees it leave; one that answers each ping stays.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Next, Options};

/// A silent user gets `{"type":"ping"}` about a second after its last
/// request, then, two seconds later, a `timeout` error and the end of the
/// connection; a watcher that answers every ping with `pong` stays online
/// throughout and sees the silent one leave with "keepalive timeout". A
/// silent guest (not logged in) is cut the same way, and so is a user who
/// trickles a line that never ends: bytes are not requests.
#[test]
fn the_silent_are_pinged_then_cut_and_those_who_answer_stay() {
    let server = Options::plain()
        .flag("--ping-after", 1)
        .flag("--idle-timeout", 3)
        .start();
    let mut watcher = server.login("watcher");
    let mut silent = server.login("silent");
    let mut trickler = server.login("trickler");
    let mut guest = server.connect("guest");
    guest.ping();
    // Times are measured from here, a little after each one's last request
    // (the true silence is a little longer): the ticks are a second apart.
    let quiet_since = Instant::now();
    let mut trickled = Instant::now();
    let endless = br#"{"type":"message","id":9,"text":"this line never ends"#;

    // All are watched together: the watcher must answer its pings in time
    // while the others are being cut.
    #[derive(Default, Debug)]
    struct Seen {
        pinged: Option<Duration>,
        error: Option<serde_json::Value>,
        ended: Option<Duration>,
    }
    let (mut seen_silent, mut seen_guest) = (Seen::default(), Seen::default());
    let mut seen_trickler = Seen::default();
    let mut pongs = 0;
    let mut gone: Vec<serde_json::Value> = Vec::new();
    let give_up = Instant::now() + Duration::from_secs(8);
    let mut fed = 0;
    while [&seen_silent, &seen_guest, &seen_trickler]
        .iter()
        .any(|s| s.ended.is_none())
        && Instant::now() < give_up
    {
        // Bytes that make no request are no sign of life.
        if trickled.elapsed() >= Duration::from_millis(400) && fed < endless.len() {
            let _ = trickler.try_send_raw(&endless[fed..fed + 1]);
            fed += 1;
            trickled = Instant::now();
        }
        let soon = || Instant::now() + Duration::from_millis(20);
        match watcher.next_until(soon()) {
            Next::Frame(f) if f["type"] == "ping" => {
                watcher.send(json!({"type": "pong"}));
                pongs += 1;
            }
            Next::Frame(f) if f["type"] == "presence" && f.get("left").is_some() => {
                gone.extend(f["left"].as_array().unwrap().iter().cloned())
            }
            Next::Frame(_) | Next::Timeout => {}
            other => watcher.fail(&format!("the watcher: {other:?}")),
        }
        for (client, seen) in [
            (&mut silent, &mut seen_silent),
            (&mut guest, &mut seen_guest),
            (&mut trickler, &mut seen_trickler),
        ] {
            if seen.ended.is_some() {
                continue;
            }
            match client.next_until(soon()) {
                Next::Frame(f) if f["type"] == "ping" && seen.pinged.is_none() => {
                    assert_eq!(f, json!({"type": "ping"}), "no id: answered by pong alone");
                    seen.pinged = Some(quiet_since.elapsed());
                }
                Next::Frame(f) if f["type"] == "error" => seen.error = Some(f),
                Next::Frame(f) if f["type"] == "presence" => {}
                Next::Eof => seen.ended = Some(quiet_since.elapsed()),
                Next::Timeout => {}
                other => client.fail(&format!("{other:?}")),
            }
        }
    }
    for (who, seen) in [
        ("silent", &seen_silent),
        ("guest", &seen_guest),
        ("trickler", &seen_trickler),
    ] {
        let pinged = seen
            .pinged
            .unwrap_or_else(|| panic!("{who} not pinged: {seen:?}"));
        let ended = seen
            .ended
            .unwrap_or_else(|| panic!("{who} not cut: {seen:?}"));
        let error = seen.error.as_ref().expect("told why");
        assert_eq!(error["code"], "timeout", "{who}: {error}");
        assert!(error.get("id").is_none(), "{error}");
        assert!(
            error["reason"].as_str().unwrap().contains("keepalive"),
            "{error}"
        );
        assert!(
            pinged >= Duration::from_millis(700) && pinged < Duration::from_secs(3),
            "{who} pinged after {pinged:?}"
        );
        assert!(
            ended >= Duration::from_millis(2700)
                && ended < Duration::from_secs(5)
                // Both are checked on the dispatcher's 1 s tick, so "within
                // a second" each: a late ping tick on a loaded machine (CI,
                // 1.43 s) leaves less than the nominal 2 s between them.
                && ended - pinged >= Duration::from_millis(800),
            "{who} cut after {ended:?}"
        );
    }
    eprintln!(
        "keepalive (ping after 1 s, cut at 3 s): pinged after {:?} / {:?} / {:?}, cut after {:?} / {:?} / {:?} (silent / guest / trickler); the watcher answered {pongs} pings",
        seen_silent.pinged.unwrap(),
        seen_guest.pinged.unwrap(),
        seen_trickler.pinged.unwrap(),
        seen_silent.ended.unwrap(),
        seen_guest.ended.unwrap(),
        seen_trickler.ended.unwrap(),
    );
    assert!(pongs >= 1, "the watcher was pinged too");
    while gone.len() < 2 {
        let f = watcher.expect("the departures", |f| f.get("left").is_some());
        gone.extend(f["left"].as_array().unwrap().iter().cloned());
    }
    gone.sort_by_key(|d| d["nick"].as_str().unwrap().to_string());
    assert_eq!(
        gone,
        [
            json!({"nick": "silent", "reason": "keepalive timeout"}),
            json!({"nick": "trickler", "reason": "keepalive timeout"}),
        ],
    );
    // Answering keeps it: two more seconds, answering pings, and it is
    // still online.
    let until = Instant::now() + Duration::from_secs(2);
    while let Next::Frame(frame) = watcher.next_until(until) {
        assert_eq!(frame["type"], "ping", "{frame}");
        watcher.send(json!({"type": "pong"}));
    }
    let id = watcher.id();
    watcher.send(json!({"type": "online", "id": id}));
    let online = watcher.expect_reply(id);
    assert_eq!(online["users"], json!(["watcher"]), "{online}");
}
