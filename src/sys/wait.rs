//! `waitpid`: reaping children and decoding how they ended.

use std::io;

use super::Pid;

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

/// `waitpid(pid, WNOHANG | flags)`: the status of a child that changed, or
/// `None` when none did (or `pid` is not, or no longer, our child).
fn wait_nohang(pid: Pid, flags: libc::c_int) -> io::Result<Option<libc::c_int>> {
    let mut status: libc::c_int = 0;
    // SAFETY: status points to a valid int.
    match unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG | flags) } {
        0 => Ok(None),
        -1 => {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ECHILD) | Some(libc::EINTR) => Ok(None),
                _ => Err(e),
            }
        }
        _ => Ok(Some(status)),
    }
}

/// Reaps `pid` if it is an exited child of ours. `waitpid(-1)` walks the
/// whole list of children for each zombie it finds (quadratic for thousands
/// of children); waiting for one PID is a direct lookup.
pub fn reap_pid(pid: Pid) -> io::Result<Option<Exit>> {
    Ok(wait_nohang(pid, 0)?.map(decode_status))
}

/// What `waitpid(pid, WUNTRACED)` saw of one child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildState {
    Exited(Exit),
    /// Stopped by this signal (job control).
    Stopped(i32),
}

/// Reaps `pid` if it exited, or reports that it was stopped (each stop is
/// reported once); `None` when nothing changed.
pub fn wait_stopped(pid: Pid) -> io::Result<Option<ChildState>> {
    Ok(wait_nohang(pid, libc::WUNTRACED)?.map(|status| {
        if libc::WIFSTOPPED(status) {
            ChildState::Stopped(libc::WSTOPSIG(status))
        } else {
            ChildState::Exited(decode_status(status))
        }
    }))
}

fn decode_status(status: libc::c_int) -> Exit {
    if libc::WIFSIGNALED(status) {
        Exit::Signal(libc::WTERMSIG(status))
    } else {
        Exit::Code(libc::WEXITSTATUS(status))
    }
}
