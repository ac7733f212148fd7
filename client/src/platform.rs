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

/// The terminal's width in columns, if stdout is one.
#[cfg(unix)]
pub fn columns() -> Option<usize> {
    // SAFETY: winsize is plain data; TIOCGWINSZ fills it or fails.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: `size` is a valid winsize to write to.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0).then_some(usize::from(size.ws_col))
}

#[cfg(not(unix))]
pub fn columns() -> Option<usize> {
    None
}

/// Whether the terminal on stdin is in cooked (line) mode, as it is
/// outside `readline`; false if it is in raw mode or is no terminal.
#[cfg(unix)]
pub fn cooked() -> bool {
    // SAFETY: termios is plain data; tcgetattr fills it or fails.
    let mut mode: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `mode` is a valid termios to write to.
    let ok = unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut mode) } == 0;
    ok && mode.c_lflag & libc::ICANON != 0
}

#[cfg(not(unix))]
pub fn cooked() -> bool {
    true
}

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

/// Reads a password from the terminal on stdin without showing it, after
/// printing `prompt`: echo and line editing off, so that Backspace and
/// Ctrl-U are handled here; Ctrl-C and Ctrl-D (on an empty line) cancel
/// (`None`). The terminal's settings are restored before returning.
#[cfg(unix)]
pub fn read_hidden(prompt: &str) -> std::io::Result<Option<String>> {
    use std::io::Write;
    let fd = libc::STDIN_FILENO;
    // SAFETY: termios is plain data; tcgetattr fills it or fails.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `saved` is a valid termios to write to.
    if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut quiet = saved;
    // No echo, byte by byte (so Ctrl-C is a byte too, not a signal).
    quiet.c_lflag &= !(libc::ECHO | libc::ICANON | libc::ISIG);
    quiet.c_cc[libc::VMIN] = 1;
    quiet.c_cc[libc::VTIME] = 0;
    // Echo goes off before the prompt shows: whatever is typed once it can
    // be seen must not appear (a fast typist, or a script, answers at once).
    // SAFETY: `quiet` is a valid termios.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut stdout = std::io::stdout();
    let secret = write!(stdout, "{prompt}")
        .and_then(|()| stdout.flush())
        .and_then(|()| read_secret(fd));
    // SAFETY: restores the settings read above.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    // The Enter was not echoed either.
    writeln!(stdout)?;
    secret
}

/// The bytes typed up to Enter, with Backspace and Ctrl-U applied.
#[cfg(unix)]
fn read_secret(fd: libc::c_int) -> std::io::Result<Option<String>> {
    let mut typed: Vec<u8> = Vec::new();
    loop {
        let mut byte = 0u8;
        // SAFETY: reads at most one byte into `byte`.
        let n = unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        match (n, byte) {
            (0, _) | (_, 0x03) => return Ok(None),
            (_, 0x04) if typed.is_empty() => return Ok(None),
            (_, b'\r' | b'\n') => return Ok(Some(String::from_utf8_lossy(&typed).into_owned())),
            // Backspace removes a whole character, however many bytes.
            (_, 0x7f | 0x08) => {
                while let Some(b) = typed.pop() {
                    if b & 0xC0 != 0x80 {
                        break;
                    }
                }
            }
            (_, 0x15) => typed.clear(),
            (_, 0x04) => {}
            (_, byte) => typed.push(byte),
        }
    }
}

/// Elsewhere there is no hidden prompt yet: the password comes from
/// `--password-file` or `CHAT_PASSWORD`.
#[cfg(not(unix))]
pub fn read_hidden(_prompt: &str) -> std::io::Result<Option<String>> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "no hidden password prompt on this system",
    ))
}
