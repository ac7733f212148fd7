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

/// Lets a restarted server bind its port at once although connections of
/// the previous run linger in TIME_WAIT. Unix only: on Windows the same
/// option would let another program take the port over.
pub fn reuse_address(socket: &socket2::Socket) -> std::io::Result<()> {
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    #[cfg(not(unix))]
    let _ = socket;
    Ok(())
}

/// Whether standard input is an interactive terminal.
pub fn stdin_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}
