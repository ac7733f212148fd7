//! The client's layers, checked: dependencies inside the crate run one
//! way, from the user interfaces down to the vocabulary they share.
//!
//! ```text
//! repl, pipe ─▶ complete, digest, progress, refusal, status ─▶ render ─▶ net ─▶ session, tls
//!            ─▶ command, config_file, files, known_hosts, outbox, platform, roster, streams ─▶ chat_common
//! ```
//!
//! So the session, which has no I/O, cannot reach for the renderer or
//! the network thread, and a vocabulary shared by all (`command`) depends
//! on none of them.

use std::path::Path;

/// Lowest first. A module may name (`crate::x`) its own and lower layers'
/// modules only; the crate root's items (`Config`, `exit_code`, …) only
/// the top layer may.
const LAYERS: &[&[&str]] = &[
    &[
        "command",
        "config_file",
        "files",
        "known_hosts",
        "outbox",
        "platform",
        "roster",
        "streams",
    ],
    &["session", "tls"],
    &["net"],
    &["render"],
    &["complete", "digest", "progress", "refusal", "status"],
    &["pipe", "repl"],
];

/// What `lib.rs` itself defines, for the user interfaces.
const ROOT_ITEMS: &[&str] = &[
    "Config",
    "EXIT_LOGIN_REFUSED",
    "PIPE_RECONNECT_FOR",
    "Password",
    "Security",
    "exit_code",
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The first segments of the `crate::` paths in `source`, outside comments.
fn named(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in source.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (at, _) in line.match_indices("crate::") {
            let rest = &line[at + "crate::".len()..];
            let paths: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group
                    .split('}')
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .collect(),
                None => vec![rest],
            };
            for path in paths {
                let name: String = path
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    names.push(name);
                }
            }
        }
    }
    names
}

/// Every `.rs` file under `dir`, with the top-level module it belongs to.
fn files(dir: &Path, module: Option<&str>, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let owner = module.map_or(name.clone(), str::to_string);
        if path.is_dir() {
            files(&path, Some(&owner), out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((owner, std::fs::read_to_string(&path).unwrap()));
        }
    }
}

#[test]
fn dependencies_run_one_way() {
    let mut sources = Vec::new();
    files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        None,
        &mut sources,
    );
    let top = LAYERS.len() - 1;
    let mut wrong = Vec::new();
    for (module, source) in &sources {
        if ["lib", "main", "layers"].contains(&module.as_str()) {
            continue;
        }
        let Some(own) = layer(module) else {
            wrong.push(format!("{module} is in no layer: add it to LAYERS"));
            continue;
        };
        for name in named(source) {
            let allowed = match layer(&name) {
                Some(theirs) => theirs <= own && (theirs < own || name == *module),
                None => ROOT_ITEMS.contains(&name.as_str()) && own == top,
            };
            if !allowed {
                wrong.push(format!("{module} names crate::{name}"));
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "against the layers: {wrong:#?}");
}

#[test]
fn paths_are_read_in_groups_too() {
    let source = "use crate::session::{Ending, Notice};\n\
                  use crate::{exit_code, tls, Config};\n\
                  // crate::repl in a comment is no dependency\n";
    assert_eq!(named(source), ["session", "exit_code", "tls", "Config"]);
}
