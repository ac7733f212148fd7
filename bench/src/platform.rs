//! The OS-specific calls, behind `cfg`: the open-file limit, TCP_QUICKACK,
//! this thread's CPU time, and another process's RSS and CPU time from
//! `/proc`. Elsewhere they do nothing or report `None`.

use std::time::Duration;

/// Raises the soft open-file limit to the hard limit; returns the new limit.
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

#[cfg(not(unix))]
pub fn raise_fd_limit() -> Option<u64> {
    None
}

/// Asks Linux to acknowledge at once instead of delaying ACKs (the kernel
/// may switch back to delayed ACKs later; this is a hint, best effort).
#[cfg(target_os = "linux")]
pub fn quickack(socket: &impl std::os::fd::AsRawFd) {
    let one: libc::c_int = 1;
    // SAFETY: a valid fd and a c_int option value of the right size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
pub fn quickack<T>(_socket: &T) {}

/// CPU time (user + system) the calling thread has used so far.
#[cfg(target_os = "linux")]
pub fn thread_cpu() -> Option<Duration> {
    // SAFETY: getrusage only writes the struct we pass.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_THREAD, &mut ru) != 0 {
            return None;
        }
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Some(tv(ru.ru_utime) + tv(ru.ru_stime))
}

#[cfg(not(target_os = "linux"))]
pub fn thread_cpu() -> Option<Duration> {
    None
}

/// CPU time (user + system) of all threads of process `pid`, from
/// `/proc/<pid>/stat`.
#[cfg(target_os = "linux")]
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields are
    // counted from the last ')'. utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = if ticks > 0 { ticks as u64 } else { 100 };
    Some(Duration::from_nanos(
        (utime + stime) * 1_000_000_000 / ticks,
    ))
}

#[cfg(not(target_os = "linux"))]
pub fn process_cpu(_pid: u32) -> Option<Duration> {
    None
}

/// CPU time of process `pid` and of its children (a PostgreSQL postmaster
/// and its backends, one per connection), from `/proc`.
#[cfg(target_os = "linux")]
pub fn tree_cpu(pid: u32) -> Option<Duration> {
    let mut total = process_cpu(pid)?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // The parent's pid is the second field after the command name.
        let ppid = stat
            .rfind(')')
            .and_then(|at| stat[at + 1..].split_whitespace().nth(1))
            .and_then(|f| f.parse::<u32>().ok());
        if ppid == Some(pid) {
            total += process_cpu(child).unwrap_or_default();
        }
    }
    Some(total)
}

#[cfg(not(target_os = "linux"))]
pub fn tree_cpu(_pid: u32) -> Option<Duration> {
    None
}

/// Resident set size of process `pid` in bytes (`VmRSS` in `/proc/<pid>/status`).
#[cfg(target_os = "linux")]
pub fn process_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(not(target_os = "linux"))]
pub fn process_rss(_pid: u32) -> Option<u64> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_figures() {
        let me = std::process::id();
        assert!(process_rss(me).unwrap() > 0);
        assert!(process_cpu(me).is_some());
        assert!(thread_cpu().is_some());
    }
}
