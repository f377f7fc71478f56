//! CMD's set-up between fork and exec, the terminal, and parent-death
//! signals.

use std::io;
use std::mem::MaybeUninit;
use std::os::unix::process::CommandExt;
use std::process::Command;

use super::{Pid, cvt};

/// Makes this process a child subreaper: orphans among its descendants are
/// re-parented to it instead of to PID 1, so the whole tree stays reachable.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes one integer argument.
    cvt(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) })?;
    Ok(())
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

/// What the child does between fork and exec.
pub struct ChildSetup {
    /// Signal the child gets when ocwrap dies (PR_SET_PDEATHSIG).
    pub pdeath_signal: Option<i32>,
    /// Take the terminal's foreground for the child's new process group.
    pub take_terminal: bool,
    /// Our PID: if the child's parent is no longer this by the time the
    /// death signal is armed, we already died and the child must not run.
    pub parent: Pid,
    /// Signals that stay ignored for the child (they were ignored when
    /// ocwrap started); every other one gets its default action.
    pub ignored: Vec<i32>,
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
/// clean signal mask, default dispositions (but for the ones its starter
/// ignored) and a parent-death signal.
pub fn configure_child(cmd: &mut Command, setup: ChildSetup) {
    cmd.process_group(0);
    let ChildSetup {
        pdeath_signal,
        take_terminal,
        parent,
        ignored,
    } = setup;
    // A plain bit set: the closure below must not allocate.
    let ignored: u64 = ignored
        .iter()
        .filter(|&&s| (1..=64).contains(&s))
        .fold(0, |m, &s| m | 1 << (s - 1));
    // SAFETY: the closure runs in the forked child before exec and only
    // calls async-signal-safe functions (sigprocmask, rt_sigaction, prctl,
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
            let action = |handler| KernelSigaction {
                handler,
                flags: 0,
                restorer: 0,
                mask: 0,
            };
            let (dfl, ign) = (action(libc::SIG_DFL), action(libc::SIG_IGN));
            for sig in 1..=64 {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    let act = if ignored & (1 << (sig - 1)) != 0 {
                        &ign
                    } else {
                        &dfl
                    };
                    libc::syscall(
                        libc::SYS_rt_sigaction,
                        sig,
                        act,
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

/// Makes the command's stderr a copy of its stdout (`2>&1`), between fork
/// and exec: after std has set up the command's stdio, so it is the same
/// pipe (a detached workspace's output reaches its log only through the
/// supervisor, see `crate::log`).
pub fn stderr_to_stdout(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only
    // calls dup2, which is async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::dup2(1, 2) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
