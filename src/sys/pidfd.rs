//! pidfds: a descriptor that names one process for as long as it lives, so
//! a signal sent through it can never reach a recycled PID.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{Pid, cvt_long};

/// Opens a pidfd for `pid`. The caller must still check that the pidfd
/// refers to the process it meant (see `proc::identity`) unless `pid` is an
/// unreaped child of ours.
pub fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags, returns a new fd or -1.
    let fd = cvt_long(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: the fd is new and ours; pidfds are always close-on-exec.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sends `sig` through a pidfd: it reaches exactly the process the pidfd
/// was opened for, or fails with ESRCH, never a recycled PID.
pub fn pidfd_send_signal(fd: &OwnedFd, sig: i32) -> io::Result<()> {
    // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })?;
    Ok(())
}
