//! The server's layers, checked: dependencies run one way, binary edge →
//! `chat` → {`store`, `files`} → `framework` → `chat_common`. This reads
//! the source tree and fails on any path (`crate::…` or `super::…`, in
//! `use` or inline) that reaches a layer above its own, or across to a
//! peer (`store` and `files` know nothing of each other).

use std::path::{Path, PathBuf};

/// The layer of each top-level module; anything else at the root (main,
/// config, console, certs, logging, platform, lib) is the binary's edge.
fn layer(top: &str) -> u8 {
    match top {
        "framework" => 1,
        "store" | "files" => 2,
        "chat" => 3,
        _ => 4,
    }
}

/// The module path of a source file under `src/`: `chat/state/mod.rs` is
/// `[chat, state]`, `chat/state/login.rs` is `[chat, state, login]`.
fn module_of(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().expect("a file");
    let stem = file.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_string());
    }
    parts
}

/// Every `crate::` or `super::` path in `code` (comments removed), made
/// absolute from `module`; a brace group (`crate::{a, b}`) yields each name.
fn paths_in(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if !code.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let at_word = i == 0 || !is_ident(bytes[i - 1]);
        let rest = &code[i..];
        let (start, mut base) = if at_word && rest.starts_with("crate::") {
            (i + "crate::".len(), Vec::new())
        } else if at_word && rest.starts_with("super::") {
            let mut base = module.to_vec();
            let mut j = i;
            while code[j..].starts_with("super::") {
                base.pop();
                j += "super::".len();
            }
            (j, base)
        } else {
            i += 1;
            continue;
        };
        if code[start..].starts_with('{') {
            let end = code[start..].find('}').map_or(code.len(), |e| start + e);
            for name in code[start + 1..end].split(',') {
                let name: String = name
                    .trim()
                    .chars()
                    .take_while(|&c| is_ident(c as u8) || c == ':')
                    .collect();
                if !name.is_empty() {
                    let mut path = base.clone();
                    path.extend(name.split("::").map(str::to_string));
                    found.push(path);
                }
            }
            i = end;
        } else {
            let mut j = start;
            loop {
                let name: String = code[j..]
                    .chars()
                    .take_while(|&c| is_ident(c as u8))
                    .collect();
                if name.is_empty() {
                    break;
                }
                j += name.len();
                base.push(name);
                if !code[j..].starts_with("::") {
                    break;
                }
                j += 2;
            }
            found.push(base);
            i = j.max(start + 1);
        }
    }
    found
}

fn without_comments(source: &str) -> String {
    source
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every upward or sideways path in the tree under `src`, as
/// `file: path (layer → layer)`.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    sources(src, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    for file in files {
        let relative = file.strip_prefix(src).unwrap();
        let module = module_of(relative);
        let Some(own) = module.first().filter(|_| relative.components().count() > 1) else {
            continue; // a root file: the edge may use everything
        };
        let code = without_comments(&std::fs::read_to_string(&file).unwrap());
        for path in paths_in(&code, &module) {
            let Some(target) = path.first() else {
                wrong.push(format!("{}: a path to the crate root", relative.display()));
                continue;
            };
            if target != own && layer(target) >= layer(own) {
                wrong.push(format!(
                    "{}: uses {} (layer {} is not below {})",
                    relative.display(),
                    path.join("::"),
                    layer(target),
                    layer(own)
                ));
            }
        }
    }
    wrong
}

#[test]
fn dependencies_run_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let wrong = violations(&src);
    assert!(
        wrong.is_empty(),
        "upward or sideways dependencies:\n{}",
        wrong.join("\n")
    );
}

/// The check itself can fail: a tree with one wrong-way import of each
/// kind is caught, and a right-way one is not.
#[test]
fn the_check_catches_a_violation() {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("lib.rs", "pub mod chat; pub mod store; pub mod config;");
    write(
        "chat/mod.rs",
        "use crate::store::Op; // fine: chat is above the store",
    );
    write(
        "store/mod.rs",
        "use crate::chat::state::fold;\nfn f() { crate::files::x(); }",
    );
    write("store/sqlite/mod.rs", "use super::super::config::Config;");
    write(
        "framework/mod.rs",
        "use crate::{store::Op, framework::Conn};",
    );
    let wrong = violations(dir.path());
    assert_eq!(wrong.len(), 4, "{wrong:#?}");
    assert!(
        wrong[0].starts_with("framework/mod.rs: uses store::Op"),
        "{wrong:?}"
    );
    assert!(
        wrong[1].starts_with("store/mod.rs: uses chat::state::fold"),
        "{wrong:?}"
    );
    assert!(
        wrong[2].starts_with("store/mod.rs: uses files::x"),
        "{wrong:?}"
    );
    assert!(
        wrong[3].starts_with("store/sqlite/mod.rs: uses config::Config"),
        "{wrong:?}"
    );
}
