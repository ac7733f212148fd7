//! The client's OS-specific calls, each behind `cfg`, all in this one module.

/// Makes a blocking `readline` on the main thread return, as if the user had
/// pressed Ctrl-C: rustyline has no other way to be cancelled from another
/// thread, and turns SIGINT into `ReadlineError::Interrupted`, restoring the
/// terminal as it returns.
#[cfg(unix)]
pub fn interrupt_prompt() {
    // SAFETY: kill and getpid have no memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGINT);
    }
}

/// Elsewhere there is no signal to send: the prompt returns at the user's
/// next key press, and the client then exits as it would have.
#[cfg(not(unix))]
pub fn interrupt_prompt() {}
