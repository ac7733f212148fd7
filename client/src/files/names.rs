//! Where a download lands: its own name in the directory, or, if that is
//! taken, `name (1).ext`, `name (2).ext`, … — never over an existing file.

use std::io;
use std::path::{Path, PathBuf};

/// The first free path for `name` in `dir`.
pub fn free_name(dir: &Path, name: &str) -> io::Result<PathBuf> {
    let path = dir.join(name);
    if !path.exists() {
        return Ok(path);
    }
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    for n in 1..10_000 {
        let path = dir.join(format!("{stem} ({n}){ext}"));
        if !path.exists() {
            return Ok(path);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("too many files named {name}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            free_name(dir.path(), "a.txt").unwrap(),
            dir.path().join("a.txt")
        );
        std::fs::write(dir.path().join("a.txt"), "x").unwrap();
        assert_eq!(
            free_name(dir.path(), "a.txt").unwrap(),
            dir.path().join("a (1).txt")
        );
        std::fs::write(dir.path().join("a (1).txt"), "x").unwrap();
        assert_eq!(
            free_name(dir.path(), "a.txt").unwrap(),
            dir.path().join("a (2).txt")
        );
        std::fs::write(dir.path().join("README"), "x").unwrap();
        assert_eq!(
            free_name(dir.path(), "README").unwrap(),
            dir.path().join("README (1)")
        );
        std::fs::write(dir.path().join(".bashrc"), "x").unwrap();
        assert_eq!(
            free_name(dir.path(), ".bashrc").unwrap(),
            dir.path().join(".bashrc (1)")
        );
    }
}
