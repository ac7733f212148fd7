//! Paths as people type them: `~` and `~/…` mean the home directory, as in
//! a shell, in every path typed (`!send`, `!accept`, the flags), so that
//! nothing ever makes a directory literally named `~`.

use std::path::{Path, PathBuf};

/// `typed` with a leading `~` or `~/` replaced by the home directory; an
/// error to show if it names another user's home (`~bob/`), which is not
/// looked up, or there is no home directory to put in.
pub fn expand(typed: &str) -> Result<PathBuf, String> {
    let home = directories::BaseDirs::new().map(|dirs| dirs.home_dir().to_path_buf());
    expand_with(typed, home.as_deref())
}

/// [`expand`] with `home` given (tests).
pub fn expand_with(typed: &str, home: Option<&Path>) -> Result<PathBuf, String> {
    let Some(after) = typed.strip_prefix('~') else {
        return Ok(PathBuf::from(typed));
    };
    let rest = match after.strip_prefix(std::path::is_separator) {
        Some(rest) => rest.trim_start_matches(std::path::is_separator),
        None if after.is_empty() => "",
        None => {
            return Err(format!(
                "{typed}: ~user is not expanded here; write the whole path"
            ))
        }
    };
    let home = home.ok_or_else(|| format!("{typed}: there is no home directory to put for ~"))?;
    Ok(if rest.is_empty() {
        home.to_path_buf()
    } else {
        home.join(rest)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leading_tilde_is_the_home_directory() {
        let home = Path::new("/home/bob");
        let ok = |typed: &str, want: &str| {
            assert_eq!(
                expand_with(typed, Some(home)),
                Ok(PathBuf::from(want)),
                "{typed:?}"
            )
        };
        ok("~", "/home/bob");
        ok("~/", "/home/bob");
        ok("~/incoming", "/home/bob/incoming");
        ok("~//notes.pdf", "/home/bob/notes.pdf");
        ok("~/my notes.pdf", "/home/bob/my notes.pdf");
        // Only a leading one.
        ok("notes~/x", "notes~/x");
        ok("/tmp/~", "/tmp/~");
        ok("relative/x", "relative/x");
        for typed in ["~alice/x", "~x"] {
            let err = expand_with(typed, Some(home)).unwrap_err();
            assert!(err.contains("~user is not expanded"), "{err}");
        }
        assert!(expand_with("~/x", None).is_err());
        assert_eq!(expand_with("/x", None), Ok(PathBuf::from("/x")));
    }
}
