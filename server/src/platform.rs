//! The server's OS-specific calls, each behind `cfg`, all in this one module.

use std::path::Path;

/// Makes `path` readable by its owner only (a private key). A no-op where
/// the OS has no such mode bits; there the data directory's ACL applies.
pub fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Whether standard input is an interactive terminal.
pub fn stdin_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}
