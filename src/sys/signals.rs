//! Signal sets, the signalfd, dispositions and `kill`.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

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

/// One signal taken from the signalfd, with who sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub signal: i32,
    /// The sender's PID in our namespace (0: the kernel, or a process
    /// outside our PID namespace).
    pub sender: Pid,
    /// Raised by the kernel itself (a terminal's Ctrl-C, a hangup).
    pub from_kernel: bool,
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
    pub fn read(&self) -> io::Result<Option<Received>> {
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
            return Ok(Some(Received {
                signal: info.ssi_signo as i32,
                sender: info.ssi_pid as Pid,
                from_kernel: info.ssi_code == libc::SI_KERNEL,
            }));
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

/// Whether SIGPIPE was ignored when ocwrap started (before
/// [`ignore_sigpipe`] ignored it for ocwrap itself).
static PIPE_WAS_IGNORED: AtomicBool = AtomicBool::new(false);

/// Ignores SIGPIPE: writes to a closed pipe fail with EPIPE instead.
/// Remembers whether it was ignored already.
pub fn ignore_sigpipe() {
    // SAFETY: setting a standard disposition has no preconditions; the
    // previous one is returned.
    let old = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    PIPE_WAS_IGNORED.store(old == libc::SIG_IGN, Ordering::Relaxed);
}

/// The signals ocwrap's own parent left ignored (`nohup`, a shell's `&`)
/// among `signals`: they stay ignored for CMD.
pub fn inherited_ignored(signals: &[i32]) -> Vec<i32> {
    let mut out: Vec<i32> = signals
        .iter()
        .copied()
        .filter(|&s| s != libc::SIGPIPE && is_ignored(s))
        .collect();
    if PIPE_WAS_IGNORED.load(Ordering::Relaxed) {
        out.push(libc::SIGPIPE);
    }
    out
}

fn is_ignored(sig: i32) -> bool {
    let mut old = MaybeUninit::<libc::sigaction>::uninit();
    // SAFETY: a null new action only reads the current one into `old`.
    let rc = unsafe { libc::sigaction(sig, std::ptr::null(), old.as_mut_ptr()) };
    // SAFETY: sigaction filled `old` when it returned 0.
    rc == 0 && unsafe { old.assume_init() }.sa_sigaction == libc::SIG_IGN
}

/// Restores the default action of `sig` for ocwrap itself (SIGCHLD must
/// not stay ignored: the kernel would reap our children for us).
pub fn set_default(sig: i32) {
    // SAFETY: setting a standard disposition has no preconditions.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
    }
}

/// Stops ocwrap itself, as a shell's job: when CMD was stopped from the
/// terminal, the shell must see its job (us) stopped too.
pub fn stop_self() {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGSTOP);
    }
}

/// As PID 1 of a PID namespace, sends `sig` to every other process in it
/// (`kill(-1)`): all of them are ocwrap's descendants. Refused otherwise.
pub fn kill_namespace(sig: i32) -> io::Result<()> {
    if getpid() != 1 {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    // SAFETY: kill has no memory-safety preconditions.
    cvt(unsafe { libc::kill(-1, sig) })?;
    Ok(())
}

/// Restores SIGPIPE's default action so that a closed stdout ends a listing
/// command quietly (`ocwrap ps | head`) instead of raising EPIPE errors.
pub fn default_sigpipe() {
    // SAFETY: setting a standard disposition has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
