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

/// Makes SIGINT harmless outside `readline`. [`interrupt_prompt`] cannot
/// know whether the main thread sits in `readline` or waits elsewhere (for
/// the login's answer, say); with SIGINT's default action the process would
/// then die of its own signal (exit 130) instead of reporting the end.
/// rustyline installs its own handler for each `readline` and restores the
/// previous disposition, this one, afterwards, so Ctrl-C and the wake-up
/// still work at the prompt. (Ctrl-C typed at the prompt is a key in raw
/// mode, not a signal, anyway.)
#[cfg(unix)]
pub fn ignore_interrupts() {
    // SAFETY: SIG_IGN is a valid disposition for SIGINT; no handler code runs.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
}

/// Elsewhere [`interrupt_prompt`] sends nothing, so there is nothing to
/// ignore.
#[cfg(not(unix))]
pub fn ignore_interrupts() {}
