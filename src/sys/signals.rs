//! Signal sets, the signalfd, dispositions and `kill`.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{Pid, cvt, getpid};

/// A set of signals, as the kernel's `sigset_t`.
#[derive(Clone, Copy)]
pub struct SigSet(pub(super) libc::sigset_t);

impl SigSet {
    pub fn new(signals: &[i32]) -> SigSet {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the whole set it is given; sigaddset
        // only fails for invalid signal numbers, which we ignore on purpose.
        unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            for &s in signals {
                libc::sigaddset(set.as_mut_ptr(), s);
            }
            SigSet(set.assume_init())
        }
    }

    /// Blocks these signals for the calling thread (the only thread).
    pub fn block(&self) -> io::Result<()> {
        // SAFETY: the set is initialised; the old-set pointer may be null.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &self.0, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(())
    }
}

/// A signalfd: blocked signals become readable records, so the event loop
/// takes them synchronously together with its other fds (no handlers).
pub struct SignalFd(OwnedFd);

impl SignalFd {
    pub fn new(set: &SigSet) -> io::Result<SignalFd> {
        // SAFETY: -1 asks for a new fd; the mask is initialised.
        let fd =
            cvt(unsafe { libc::signalfd(-1, &set.0, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) })?;
        // SAFETY: signalfd returned a fresh fd that nobody else owns.
        Ok(SignalFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Next pending signal, or None when none is queued.
    pub fn read(&self) -> io::Result<Option<i32>> {
        let mut info = MaybeUninit::<libc::signalfd_siginfo>::uninit();
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        loop {
            // SAFETY: the buffer is exactly one signalfd_siginfo large.
            let n = unsafe { libc::read(self.0.as_raw_fd(), info.as_mut_ptr().cast(), size) };
            if n == -1 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(e),
                };
            }
            if n as usize != size {
                return Err(io::Error::other("short read from signalfd"));
            }
            // SAFETY: the kernel filled the whole struct (n == size).
            let info = unsafe { info.assume_init() };
            return Ok(Some(info.ssi_signo as i32));
        }
    }

    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// `kill(2)` by number, for a PID that cannot have been recycled: an
/// unreaped child of ours, a process group whose leader is one, or (when no
/// pidfd could be had) a process whose identity was checked a moment ago.
/// Refuses PID 1, ourselves, and every broadcast form (0, -1).
pub fn kill_pid(target: Pid, sig: i32) -> io::Result<()> {
    if target == 0 || target == 1 || target == -1 || target == getpid() || -target == getpid() {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    // SAFETY: kill has no memory-safety preconditions.
    cvt(unsafe { libc::kill(target, sig) })?;
    Ok(())
}

/// Ignores SIGPIPE: writes to a closed pipe fail with EPIPE instead.
pub fn ignore_sigpipe() {
    // SAFETY: setting a standard disposition has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Restores SIGPIPE's default action so that a closed stdout ends a listing
/// command quietly (`ocwrap ps | head`) instead of raising EPIPE errors.
pub fn default_sigpipe() {
    // SAFETY: setting a standard disposition has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
