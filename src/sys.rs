//! Every raw syscall and every `unsafe` block of ocwrap lives here.
//!
//! The rest of the crate sees small safe wrappers that return `io::Result`
//! and owned file descriptors. Each `unsafe` block says why it is sound.
//! Nothing here knows about supervisors or workspaces.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

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

/// A set of signals, as the kernel's `sigset_t`.
#[derive(Clone, Copy)]
pub struct SigSet(libc::sigset_t);

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
        // SAFETY: the buffer is exactly one signalfd_siginfo large.
        let n = unsafe { libc::read(self.0.as_raw_fd(), info.as_mut_ptr().cast(), size) };
        if n == -1 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(None),
                io::ErrorKind::Interrupted => self.read(),
                _ => Err(e),
            };
        }
        if n as usize != size {
            return Err(io::Error::other("short read from signalfd"));
        }
        // SAFETY: the kernel filled the whole struct (n == size).
        let info = unsafe { info.assume_init() };
        Ok(Some(info.ssi_signo as i32))
    }

    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// An open `/proc`: a process's files are opened relative to it, so a scan
/// of thousands of processes does not walk `/proc` from `/` each time.
pub struct ProcDir(OwnedFd);

impl ProcDir {
    pub fn open() -> io::Result<ProcDir> {
        // SAFETY: a NUL-terminated path literal and plain flags.
        let fd = cvt(unsafe {
            libc::open(
                c"/proc".as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: the fd is new and ours.
        Ok(ProcDir(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Reads `PID/NAME` with one `read`: procfs hands a small file over
    /// whole, so no second read is spent on finding the end.
    pub fn read(&self, pid: Pid, name: &str, buf: &mut [u8]) -> io::Result<usize> {
        let mut path = [0u8; 64];
        let mut digits = [0u8; 12];
        let mut n = pid.unsigned_abs();
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let d = &digits[i..];
        if d.len() + 1 + name.len() + 1 > path.len() {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        path[..d.len()].copy_from_slice(d);
        path[d.len()] = b'/';
        path[d.len() + 1..d.len() + 1 + name.len()].copy_from_slice(name.as_bytes());
        // path[end] is already 0: the string is NUL-terminated.
        // SAFETY: path is NUL-terminated inside its buffer; dirfd is open.
        let fd = cvt(unsafe {
            libc::openat(
                self.0.as_raw_fd(),
                path.as_ptr().cast(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: the fd is new and ours; it is closed when `file` drops.
        let file = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: buf is valid for writes of its length.
        let got = unsafe { libc::read(file.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(got as usize)
    }
}

/// Makes this process a child subreaper: orphans among its descendants are
/// re-parented to it instead of to PID 1, so the whole tree stays reachable.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes one integer argument.
    cvt(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) })?;
    Ok(())
}

pub fn getpid() -> Pid {
    // SAFETY: getpid cannot fail.
    unsafe { libc::getpid() }
}

pub fn getuid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

pub fn getpgrp() -> Pid {
    // SAFETY: getpgrp cannot fail.
    unsafe { libc::getpgrp() }
}

/// Opens a pidfd for `pid`. The caller must still check that the pidfd
/// refers to the process it meant (see `procfs::verify`) unless `pid` is an
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

/// `kill(2)` by number, for a PID that cannot have been recycled: an
/// unreaped child of ours, a process group whose leader is one, or (when no
/// pidfd could be had) a process whose start time was checked a moment ago.
/// Refuses PID 1, ourselves, and every broadcast form (0, -1).
pub fn kill_pid(target: Pid, sig: i32) -> io::Result<()> {
    if target == 0 || target == 1 || target == -1 || target == getpid() || -target == getpid() {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    // SAFETY: kill has no memory-safety preconditions.
    cvt(unsafe { libc::kill(target, sig) })?;
    Ok(())
}

/// How a reaped child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// Result of reaping every child that has exited.
pub struct Reaped {
    pub exited: Vec<(Pid, Exit)>,
    /// False when we have no children left at all (ECHILD). Because we are a
    /// subreaper, this means no descendant of ours is alive either.
    pub has_children: bool,
}

/// Reaps every exited child without blocking (`waitpid(-1, WNOHANG)` until
/// it says none is ready). SIGCHLD coalescing cannot lose an exit this way.
pub fn reap_all() -> io::Result<Reaped> {
    let mut exited = Vec::new();
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: status points to a valid int.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        match pid {
            0 => {
                return Ok(Reaped {
                    exited,
                    has_children: true,
                });
            }
            -1 => {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::ECHILD) => {
                        return Ok(Reaped {
                            exited,
                            has_children: false,
                        });
                    }
                    Some(libc::EINTR) => continue,
                    _ => return Err(e),
                }
            }
            pid => exited.push((pid, decode_status(status))),
        }
    }
}

/// Reaps `pid` if it is an exited child of ours. `waitpid(-1)` walks the
/// whole list of children for each zombie it finds (quadratic for thousands
/// of children); waiting for one PID is a direct lookup.
pub fn reap_pid(pid: Pid) -> io::Result<Option<Exit>> {
    let mut status: libc::c_int = 0;
    // SAFETY: status points to a valid int.
    match unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } {
        0 => Ok(None),
        -1 => {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ECHILD) | Some(libc::EINTR) => Ok(None),
                _ => Err(e),
            }
        }
        _ => Ok(Some(decode_status(status))),
    }
}

fn decode_status(status: libc::c_int) -> Exit {
    if libc::WIFSIGNALED(status) {
        Exit::Signal(libc::WTERMSIG(status))
    } else {
        Exit::Code(libc::WEXITSTATUS(status))
    }
}

/// An epoll instance; every fd it watches carries a u64 token.
pub struct Epoll(OwnedFd);

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 returns a new fd or -1.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: the fd is new and ours.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: ev is a valid epoll_event; fd is open.
        cvt(unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })?;
        Ok(())
    }

    /// Waits for events until `timeout` (None: forever). Returns the tokens.
    pub fn wait(&self, timeout: Option<Duration>, out: &mut Vec<u64>) -> io::Result<()> {
        out.clear();
        let ms: libc::c_int = match timeout {
            None => -1,
            // Round up so a deadline is never missed by a truncated millisecond.
            Some(d) => d.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int,
        };
        // A big teardown ends thousands of processes at once: take their
        // events in large batches.
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 512];
        // SAFETY: the buffer holds 512 events and we pass its length.
        let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), 512, ms) };
        if n == -1 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(e);
        }
        out.extend(events[..n as usize].iter().map(|e| e.u64));
        Ok(())
    }
}

/// Whether fd 0 is a terminal whose foreground process group is ours: only
/// then do we hand the terminal to the child (like a shell does for a job).
pub fn stdin_tty_foreground() -> bool {
    // SAFETY: isatty and tcgetpgrp only inspect fd 0.
    unsafe { libc::isatty(0) == 1 && libc::tcgetpgrp(0) == libc::getpgrp() }
}

/// Makes `pgrp` the foreground group of the terminal on fd 0. Our SIGTTOU is
/// blocked, so the kernel lets a background group do this.
pub fn set_foreground(pgrp: Pid) -> io::Result<()> {
    // SAFETY: tcsetpgrp only changes terminal state.
    cvt(unsafe { libc::tcsetpgrp(0, pgrp) })?;
    Ok(())
}

/// What the child does between fork and exec.
pub struct ChildSetup {
    /// Signal the child gets when ocwrap dies (PR_SET_PDEATHSIG).
    pub pdeath_signal: Option<i32>,
    /// Take the terminal's foreground for the child's new process group.
    pub take_terminal: bool,
    /// Our PID: if the child's parent is no longer this by the time the
    /// death signal is armed, we already died and the child must not run.
    pub parent: Pid,
}

/// `struct sigaction` as the kernel's rt_sigaction takes it (x86-64/arm64).
#[repr(C)]
struct KernelSigaction {
    handler: libc::sighandler_t,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// Arranges for the command's child to start in a new process group, with a
/// clean signal mask, default dispositions and a parent-death signal.
pub fn configure_child(cmd: &mut Command, setup: ChildSetup) {
    cmd.process_group(0);
    let ChildSetup {
        pdeath_signal,
        take_terminal,
        parent,
    } = setup;
    // SAFETY: the closure runs in the forked child before exec and only
    // calls async-signal-safe functions (sigprocmask, signal, prctl,
    // getppid, tcsetpgrp, getpid, _exit); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let mut empty = MaybeUninit::<libc::sigset_t>::uninit();
            libc::sigemptyset(empty.as_mut_ptr());
            let empty = empty.assume_init();
            if take_terminal {
                // We are a background group until tcsetpgrp succeeds: block
                // SIGTTOU so the kernel does not stop us for asking.
                let mut ttou = empty;
                libc::sigaddset(&mut ttou, libc::SIGTTOU);
                libc::sigprocmask(libc::SIG_BLOCK, &ttou, std::ptr::null_mut());
                libc::tcsetpgrp(0, libc::getpid());
            }
            // Default dispositions for everything ocwrap or its own parent
            // may have ignored (nohup, a shell's SIGINT for background jobs).
            // The raw syscall, because glibc refuses signals 32 and 33 (its
            // own), which a parent may still have left ignored.
            let dfl = KernelSigaction {
                handler: libc::SIG_DFL,
                flags: 0,
                restorer: 0,
                mask: 0,
            };
            for sig in 1..=64 {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::syscall(
                        libc::SYS_rt_sigaction,
                        sig,
                        &dfl,
                        std::ptr::null_mut::<KernelSigaction>(),
                        8usize,
                    );
                }
            }
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            if let Some(sig) = pdeath_signal {
                libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0);
                // If ocwrap died before the line above, the death signal
                // will never come: do not run the command unsupervised.
                if libc::getppid() != parent {
                    libc::_exit(125);
                }
            }
            Ok(())
        });
    }
}

/// Asks the kernel to send us `sig` when our parent dies, and returns false
/// if the parent already died before we asked (so the caller can act now).
pub fn set_parent_death_signal(sig: i32) -> io::Result<bool> {
    // SAFETY: getppid cannot fail; prctl takes an integer signal number.
    unsafe {
        let parent = libc::getppid();
        cvt(libc::prctl(
            libc::PR_SET_PDEATHSIG,
            sig as libc::c_ulong,
            0,
            0,
            0,
        ))?;
        Ok(libc::getppid() == parent)
    }
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

/// Waits until a pidfd says its process exited, or `timeout` passes.
/// Returns true when it exited.
pub fn pidfd_wait(fd: &OwnedFd, timeout: Duration) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    if n == -1 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(n == 1)
}

/// Ignores SIGPIPE: writes to a closed pipe fail with EPIPE instead.
pub fn ignore_sigpipe() {
    // SAFETY: setting a standard disposition has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Whether the process behind a pidfd has exited (without waiting).
pub fn pidfd_exited(fd: &OwnedFd) -> bool {
    pidfd_wait(fd, Duration::ZERO).unwrap_or(false)
}

/// Restores SIGPIPE's default action so that a closed stdout ends a listing
/// command quietly (`ocwrap ps | head`) instead of raising EPIPE errors.
pub fn default_sigpipe() {
    // SAFETY: setting a standard disposition has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Whether fd is a terminal (for colour).
pub fn isatty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}
