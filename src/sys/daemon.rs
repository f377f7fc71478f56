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

/// Makes `fd` our stdout and stderr (the detached supervisor's log file,
/// at the start and after each rotation of the log).
pub fn redirect_output(fd: RawFd) -> io::Result<()> {
    dup_onto(fd, 1)?;
    dup_onto(fd, 2)
}

/// The size of the regular file open on `fd` (None: not a regular file).
pub fn file_size(fd: RawFd) -> io::Result<Option<u64>> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: st is valid for fstat to fill.
    cvt(unsafe { libc::fstat(fd, st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so st is initialised.
    let st = unsafe { st.assume_init() };
    Ok((st.st_mode & libc::S_IFMT == libc::S_IFREG).then_some(st.st_size as u64))
}

/// Closes every descriptor from `first` up, except `keep`: a detached
/// supervisor must not hold its caller's pipes open (`$(ocwrap spawn ..)`
/// would never see EOF).
///
/// `close_range` (Linux 5.9) does it in two calls. Where it is refused
/// (ENOSYS on an older kernel, EPERM or ENOSYS from a seccomp profile), the
/// descriptors `/proc/self/fd` lists are closed one by one; without `/proc`,
/// every number up to the soft RLIMIT_NOFILE (at most [`MAX_FD_SWEEP`]).
pub fn close_fds_from(first: RawFd, keep: &[RawFd]) {
    let first = first.max(0);
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&k| k >= first).collect();
    keep.sort_unstable();
    keep.dedup();
    // The ranges between the kept descriptors.
    let mut ranges = Vec::new();
    let mut lo = first as u32;
    for &k in &keep {
        if (k as u32) > lo {
            ranges.push((lo, k as u32 - 1));
        }
        lo = k as u32 + 1;
    }
    ranges.push((lo, u32::MAX));
    if ranges.iter().all(|&(lo, hi)| close_range(lo, hi).is_ok()) {
        return;
    }
    let close = |fd: RawFd| {
        if fd >= first && !keep.contains(&fd) {
            // SAFETY: closing a descriptor number; one that is not open only
            // gives EBADF. Nothing in this (single-threaded) process uses
            // these descriptors any more.
            unsafe { libc::close(fd) };
        }
    };
    match open_fds() {
        Some(fds) => fds.into_iter().for_each(close),
        None => (first..nofile_soft_limit().min(MAX_FD_SWEEP)).for_each(close),
    }
}

/// The most descriptor numbers closed one by one when neither
/// `close_range` nor `/proc` is available: a hard limit of a million would
/// otherwise cost a million system calls.
pub const MAX_FD_SWEEP: RawFd = 65536;

fn close_range(lo: u32, hi: u32) -> io::Result<()> {
    // SAFETY: close_range only closes descriptors in [lo, hi]; the callers'
    // ranges leave out the one descriptor that is still used.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, lo, hi, 0u32) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The open descriptors, from `/proc/self/fd`: collected first, then the
/// directory (itself one of them) is closed, so the list is only closed
/// afterwards.
fn open_fds() -> Option<Vec<RawFd>> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    let fds: Vec<RawFd> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    // An empty listing means a /proc that is not ours to read.
    (!fds.is_empty()).then_some(fds)
}

/// The soft RLIMIT_NOFILE: no descriptor can have a number at or above it
/// (unless the limit was lowered after it was opened; those are rare
/// enough, and [`MAX_FD_SWEEP`] bounds the cost anyway).
fn nofile_soft_limit() -> RawFd {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return MAX_FD_SWEEP;
    }
    RawFd::try_from(lim.rlim_cur).unwrap_or(RawFd::MAX)
}
