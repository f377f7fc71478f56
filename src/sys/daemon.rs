//! Forking the detached supervisor (`spawn --detach`), pipes, and moving
//! descriptors around.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::{Pid, cvt};

/// A pipe with both ends close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds has room for the two descriptors.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both fds are new and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an open fd with integer arguments.
    unsafe {
        let flags = cvt(libc::fcntl(fd, libc::F_GETFL))?;
        cvt(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
    }
    Ok(())
}

/// Forks for `spawn --detach`. In the child (returns `None`) the caller
/// becomes the workspace's supervisor; the parent gets the child's PID.
/// Must be called while the process is single-threaded.
pub fn fork_detached() -> io::Result<Option<Pid>> {
    // SAFETY: ocwrap has one thread here, so the child's copy of the address
    // space is consistent (no lock can be held by a thread that vanished).
    let pid = cvt(unsafe { libc::fork() })?;
    Ok(if pid == 0 { None } else { Some(pid) })
}

/// Starts a new session: the detached supervisor leaves the caller's
/// terminal and process group, so a Ctrl-C there does not reach it.
pub fn setsid() -> io::Result<()> {
    // SAFETY: setsid has no memory-safety preconditions.
    cvt(unsafe { libc::setsid() })?;
    Ok(())
}

/// Puts `fd` in place of `target` (0, 1 or 2).
pub fn dup_onto(fd: RawFd, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 on open descriptors.
    cvt(unsafe { libc::dup2(fd, target) })?;
    Ok(())
}

/// Closes every descriptor from `first` up, except `keep`: a detached
/// supervisor must not hold its caller's pipes open (`$(ocwrap spawn ..)`
/// would never see EOF).
pub fn close_fds_from(first: RawFd, keep: RawFd) {
    // SAFETY: close_range only closes descriptors; the ranges exclude `keep`
    // and we own no other descriptor at this point that is still used.
    unsafe {
        if keep > first {
            libc::syscall(libc::SYS_close_range, first as u32, (keep - 1) as u32, 0u32);
        }
        libc::syscall(
            libc::SYS_close_range,
            (keep + 1).max(first) as u32,
            u32::MAX,
            0u32,
        );
    }
}
