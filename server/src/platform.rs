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

/// Makes the console's blocking `readline` return, as Ctrl-C would: rustyline
/// turns SIGINT into `Interrupted` and restores the terminal as it returns.
/// Outside `readline` the signal reaches the ctrlc handler, which only asks
/// for a shutdown that is already under way.
#[cfg(unix)]
pub fn interrupt_prompt() {
    // SAFETY: kill and getpid have no memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGINT);
    }
}

/// Elsewhere the prompt ends with the process, as it always did.
#[cfg(not(unix))]
pub fn interrupt_prompt() {}

/// Whether standard input is an interactive terminal.
pub fn stdin_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}

/// Raises the soft limit on open files to the hard limit, since each
/// connection is a descriptor and the usual soft limit (1,024) is far below
/// `--max-connections`. Returns the limit in force, if known.
#[cfg(unix)]
pub fn raise_fd_limit() -> Option<u64> {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                lim = wanted;
            }
        }
        Some(lim.rlim_cur as u64)
    }
}

/// Elsewhere the OS decides.
#[cfg(not(unix))]
pub fn raise_fd_limit() -> Option<u64> {
    None
}

/// This machine's name, for the address printed for browsers when the
/// server listens on every interface (never looked up: printed as it is).
#[cfg(unix)]
pub fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0)?;
    ok.then(|| String::from_utf8_lossy(&buf[..end]).into_owned())
        .filter(|name| !name.is_empty())
}

/// On Windows the name is in the environment.
#[cfg(not(unix))]
pub fn hostname() -> Option<String> {
    std::env::var("COMPUTERNAME")
        .ok()
        .filter(|name| !name.is_empty())
}
