//! Every raw syscall and every `unsafe` block of ocwrap lives here.
//!
//! The rest of the crate sees small safe wrappers that return `io::Result`
//! and owned file descriptors. Each `unsafe` block says why it is sound
//! (`clippy::undocumented_unsafe_blocks` is denied). Nothing here knows
//! about supervisors, teardowns or workspaces.
//!
//! | file | what |
//! | --- | --- |
//! | `signals.rs` | signal sets, the signalfd, dispositions, `kill` |
//! | `pidfd.rs` | `pidfd_open`, `pidfd_send_signal`, waiting on a pidfd |
//! | `wait.rs` | `waitpid`: reaping children, decoding their status |
//! | `epoll.rs` | the event loop's epoll set |
//! | `child.rs` | CMD's set-up between fork and exec, the terminal, parent-death signals |
//! | `daemon.rs` | forking the detached supervisor, pipes, descriptor juggling |
//! | `procdir.rs` | the open `/proc` directory processes are read through |

mod child;
mod daemon;
mod epoll;
mod pidfd;
mod procdir;
mod signals;
mod wait;

use std::io;

pub use child::{
    ChildSetup, configure_child, set_child_subreaper, set_foreground, set_parent_death_signal,
    stderr_to_stdout, stdin_tty_foreground,
};
pub use daemon::{
    close_fds_from, dup_onto, file_size, fork_detached, pipe, redirect_output, set_nonblocking,
    setsid,
};
pub use epoll::Epoll;
pub use pidfd::{pidfd_open, pidfd_send_signal};
pub use procdir::ProcDir;
pub use signals::{
    Received, SigSet, SignalFd, default_sigpipe, ignore_sigpipe, inherited_ignored, kill_namespace,
    kill_pid, set_default, stop_self,
};
pub use wait::{ChildState, Exit, reap_all, reap_pid, wait_stopped};

pub type Pid = i32;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

pub fn getpid() -> Pid {
    // SAFETY: getpid cannot fail.
    unsafe { libc::getpid() }
}

/// Sets a variable in ocwrap's own environment, which CMD inherits.
pub fn set_own_env(name: &str, value: &str) {
    // SAFETY: called by the supervisor before CMD starts, while ocwrap has
    // one thread: nothing can read the environment concurrently.
    unsafe { std::env::set_var(name, value) }
}

pub fn getppid() -> Pid {
    // SAFETY: getppid cannot fail.
    unsafe { libc::getppid() }
}

pub fn getuid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

pub fn getpgrp() -> Pid {
    // SAFETY: getpgrp cannot fail.
    unsafe { libc::getpgrp() }
}

/// Raises the soft open-file limit to the hard one (teardown of thousands
/// of processes holds one pidfd each). Only done once the child has exec'd,
/// so the child keeps the limit it was started with.
pub fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid rlimit to fill and then pass back.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Clock ticks per second, the unit of `/proc/PID/stat` times.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// Page size, the unit of the RSS field of `/proc/PID/stat`.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if t > 0 { t as u64 } else { 4096 }
}

/// Random bytes from the kernel, for workspace ids.
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the pointer and length describe the unfilled tail of buf.
        let n = unsafe { libc::getrandom(buf[done..].as_mut_ptr().cast(), buf.len() - done, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        } else {
            done += n as usize;
        }
    }
    Ok(())
}

/// Whether we may list `dir` and make it our working directory (read and
/// search permission), as the real user: `spawn` checks its FOLDER before
/// anything starts.
pub fn can_read_and_enter(dir: &std::path::Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: path is a NUL-terminated string that outlives the call.
    cvt(unsafe { libc::access(path.as_ptr(), libc::R_OK | libc::X_OK) })?;
    Ok(())
}

/// Whether fd is a terminal (for colour).
pub fn isatty(fd: std::os::fd::RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}
