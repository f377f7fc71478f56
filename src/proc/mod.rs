//! Reading processes from `/proc`.
//!
//! - this file: the fields of `/proc/PID/stat` and friends, parsed;
//! - [`snapshot`]: one pass over `/proc` (or over a few trees through the
//!   `children` files) and the descendant walk;
//! - [`identity`]: the one check every signal goes through ("still the
//!   process we saw, owned by us").
//!
//! Nothing read here is trusted for signalling on its own: a PID can be
//! recycled between the read and the signal. The start time (field 22 of
//! `stat`) never changes for a process, and two processes with the same PID
//! cannot share it, so a PID together with its start time names one process.

pub mod identity;
pub mod snapshot;

use std::fs;
use std::sync::OnceLock;

use crate::sys::{self, Pid};

pub use identity::{Owner, ProcId};
pub use snapshot::Snapshot;

/// The fields of `/proc/PID/stat` ocwrap uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    pub pid: Pid,
    pub comm: String,
    pub state: char,
    pub ppid: Pid,
    pub pgrp: Pid,
    pub session: Pid,
    /// The kernel's per-task flags (`PF_*`).
    pub flags: u64,
    /// Clock ticks after boot at which the process started.
    pub start_time: u64,
    /// Resident set size in pages.
    pub rss_pages: u64,
}

impl Stat {
    /// A zombie or dead entry: nothing to signal, but it still links its
    /// children to the tree until it is reaped.
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }

    /// A zombie, or a task that has begun to exit (`PF_EXITING`).
    pub fn is_ending(&self) -> bool {
        const PF_EXITING: u64 = 0x4;
        self.is_zombie() || self.flags & PF_EXITING != 0
    }

    pub fn is_stopped(&self) -> bool {
        matches!(self.state, 'T' | 't')
    }

    pub fn id(&self) -> ProcId {
        ProcId {
            pid: self.pid,
            start_time: self.start_time,
        }
    }
}

/// Parses one `/proc/PID/stat` line. The command name sits between the first
/// `(` and the *last* `)`, and may itself hold spaces, parentheses and
/// newlines, so everything after it is split from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    if close < open {
        return None;
    }
    let pid: Pid = text[..open].trim().parse().ok()?;
    let comm = text[open + 1..close].to_string();
    let mut rest = text[close + 1..].split_ascii_whitespace();
    // Fields from 3 (state) on; field n is at index n - 3.
    let state = rest.next()?.chars().next()?;
    let fields: Vec<&str> = rest.take(22).collect();
    let num = |n: usize| -> Option<u64> { fields.get(n - 4)?.parse().ok() };
    let signed = |n: usize| -> Option<Pid> { fields.get(n - 4)?.parse().ok() };
    Some(Stat {
        pid,
        comm,
        state,
        ppid: signed(4)?,
        pgrp: signed(5)?,
        session: signed(6)?,
        flags: num(9)?,
        start_time: num(22)?,
        rss_pages: num(24)?,
    })
}

/// The `/proc` directory, opened once per process, if it is the `/proc` of
/// our own PID namespace. One that is not mounted, or belongs to another
/// namespace (its PIDs are not the ones our syscalls mean), is treated as
/// showing nothing: ocwrap then never signals by what it says.
static DIR: OnceLock<Option<sys::ProcDir>> = OnceLock::new();

fn proc_dir() -> Option<&'static sys::ProcDir> {
    DIR.get_or_init(|| {
        let ours = fs::read_link("/proc/self")
            .ok()
            .and_then(|p| p.to_str()?.parse::<Pid>().ok())
            == Some(sys::getpid());
        if ours {
            sys::ProcDir::open().ok()
        } else {
            None
        }
    })
    .as_ref()
}

/// Whether `/proc` hides other users' processes from us (mounted with
/// `hidepid`, and we are not root): then a scan cannot prove that a process
/// group holds only our processes.
pub fn hides_others() -> bool {
    static HIDES: OnceLock<bool> = OnceLock::new();
    *HIDES.get_or_init(|| {
        if sys::getuid() == 0 {
            return false;
        }
        let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else {
            return true;
        };
        text.lines()
            .filter(|l| l.split(' ').nth(4) == Some("/proc"))
            .any(|l| {
                l.split([' ', ',']).any(|o| {
                    o.strip_prefix("hidepid=")
                        .is_some_and(|v| !matches!(v, "0" | "off"))
                })
            })
    })
}

/// The descriptor of the open `/proc`, if it was opened already (a
/// detached supervisor that closes what it inherited must keep it).
pub fn dir_fd() -> Option<std::os::fd::RawFd> {
    DIR.get()?.as_ref().map(sys::ProcDir::raw)
}

/// Whether `/proc` can be read at all (mounted, and our namespace's).
pub fn available() -> bool {
    proc_dir().is_some()
}

/// Reads and parses `/proc/PID/stat`; None when the process is gone.
pub fn read_stat(pid: Pid) -> Option<Stat> {
    let mut buf = [0u8; 2048];
    let len = proc_dir()?.read(pid, "stat", &mut buf).ok()?;
    let bytes = &buf[..len];
    let s = match std::str::from_utf8(bytes) {
        Ok(text) => parse_stat(text)?,
        // A command name is any 16 bytes, not necessarily UTF-8.
        Err(_) => parse_stat(&String::from_utf8_lossy(bytes))?,
    };
    (s.pid == pid).then_some(s)
}

/// The real and effective uid of a process (from `/proc/PID/status`).
pub fn read_uids(pid: Pid) -> Option<(u32, u32)> {
    available().then_some(())?;
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_uids(&text)
}

pub fn parse_uids(status: &str) -> Option<(u32, u32)> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    let mut it = line[4..].split_ascii_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// The command line of a process, arguments joined by spaces ("" for a
/// kernel thread or a process that is gone).
pub fn read_cmdline(pid: Pid) -> String {
    read_argv(pid).join(" ")
}

/// The arguments of a process, from `/proc/PID/cmdline` (empty for a
/// kernel thread, a process that is gone, or a `/proc` that is not ours).
pub fn read_argv(pid: Pid) -> Vec<String> {
    if !available() {
        return Vec::new();
    }
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| split_argv(&bytes))
        .unwrap_or_default()
}

/// Splits the contents of a `cmdline` file on NUL (each argument ends with
/// one; a non-UTF-8 byte becomes U+FFFD).
pub fn split_argv(bytes: &[u8]) -> Vec<String> {
    let trimmed = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if trimmed.is_empty() {
        return Vec::new();
    }
    trimmed
        .split(|&b| b == 0)
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect()
}

/// Whether the environment of `pid` holds exactly `entry` (`NAME=value`).
pub fn environ_has(pid: Pid, entry: &str) -> bool {
    if !available() {
        return false;
    }
    match fs::read(format!("/proc/{pid}/environ")) {
        Ok(bytes) => bytes.split(|&b| b == 0).any(|e| e == entry.as_bytes()),
        Err(_) => false,
    }
}

/// Clock ticks since boot, now (from `/proc/uptime`).
pub fn uptime_ticks() -> Option<u64> {
    let text = fs::read_to_string("/proc/uptime").ok()?;
    let secs: f64 = text.split_ascii_whitespace().next()?.parse().ok()?;
    Some((secs * sys::clock_ticks() as f64) as u64)
}

/// Whether process `pid` is ending: gone, a zombie, or one of its threads
/// has begun to exit (`PF_EXITING`). A SIGKILLed process's threads exit
/// one by one, and each time a child is re-parented from one of them to
/// the next, the kernel sends that child its parent-death signal again.
/// False when `/proc` cannot tell.
pub fn is_ending(pid: Pid) -> bool {
    if !available() {
        return false;
    }
    let tasks = match fs::read_dir(format!("/proc/{pid}/task")) {
        Ok(tasks) => tasks,
        Err(e) => return e.kind() == std::io::ErrorKind::NotFound,
    };
    tasks.flatten().any(|t| {
        fs::read_to_string(t.path().join("stat"))
            .ok()
            .and_then(|text| parse_stat(&text))
            .is_some_and(|s| s.is_ending())
    })
}

/// The children of `pid`, from the `children` file of each of its threads
/// (a child is listed under the thread that forked it, or that adopted it).
pub fn children_of(pid: Pid) -> Vec<Pid> {
    try_children_of(pid).unwrap_or_default()
}

/// [`children_of`], or None when they cannot be read: the process is gone,
/// or hidden from us (`hidepid`, another user's process), so an empty list
/// would not mean "no children".
pub fn try_children_of(pid: Pid) -> Option<Vec<Pid>> {
    if !available() {
        return None;
    }
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut out = Vec::new();
    let mut read_any = false;
    for t in tasks.flatten() {
        if let Ok(text) = fs::read_to_string(t.path().join("children")) {
            read_any = true;
            out.extend(
                text.split_ascii_whitespace()
                    .filter_map(|x| x.parse::<Pid>().ok()),
            );
        }
    }
    read_any.then_some(out)
}

/// Whether this kernel lists children in `/proc/PID/task/TID/children`
/// (CONFIG_PROC_CHILDREN): then a tree can be read without scanning every
/// process on the machine.
pub fn children_files() -> bool {
    available()
        && std::path::Path::new(&format!("/proc/self/task/{}/children", sys::getpid())).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "1234 (my (weird) proc) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000000 250 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";

    #[test]
    fn parses_stat_with_parentheses_in_comm() {
        let s = parse_stat(LINE).unwrap();
        assert_eq!(s.pid, 1234);
        assert_eq!(s.comm, "my (weird) proc");
        assert_eq!(s.state, 'S');
        assert_eq!((s.ppid, s.pgrp, s.session), (1, 1234, 1234));
        assert_eq!(s.start_time, 98765);
        assert_eq!(s.rss_pages, 250);
    }

    #[test]
    fn parses_comm_with_newline_and_closing_paren() {
        let line = LINE.replace("my (weird) proc", "a) S 9 9\n(b");
        let s = parse_stat(&line).unwrap();
        assert_eq!(s.comm, "a) S 9 9\n(b");
        assert_eq!(s.ppid, 1);
        assert_eq!(s.start_time, 98765);
    }

    #[test]
    fn rejects_truncated_stat() {
        assert!(parse_stat("12 (x) S 1 2").is_none());
        assert!(parse_stat("").is_none());
        assert!(parse_stat("x (y) S").is_none());
    }

    #[test]
    fn splits_argv_on_nul() {
        assert_eq!(
            split_argv(b"tmux\0new\0-d\0opencode serve\0"),
            ["tmux", "new", "-d", "opencode serve"]
        );
        assert_eq!(split_argv(b"x\0\0y"), ["x", "", "y"]);
        assert!(split_argv(b"").is_empty());
        assert!(split_argv(b"\0").is_empty());
        assert_eq!(split_argv(b"a\xffb\0"), ["a\u{fffd}b"]);
    }

    #[test]
    fn parses_uid_line() {
        assert_eq!(
            parse_uids("Name:\tx\nUid:\t1000\t1001\t1000\t1000\n"),
            Some((1000, 1001))
        );
        assert_eq!(parse_uids("Name:\tx\n"), None);
    }

    #[test]
    fn a_task_is_ending_when_a_zombie_or_exiting() {
        let stat = |state: &str, flags: u64| {
            let line = format!(
                "42 (no de (x)) {state} 1 42 42 0 -1 {flags} 0 0 0 0 0 0 0 0 20 0 1 0 99 4096 7"
            );
            parse_stat(&line).unwrap()
        };
        assert_eq!(stat("S", 0x400044).flags, 0x400044);
        assert!(!stat("S", 0x400040).is_ending());
        assert!(stat("S", 0x400044).is_ending());
        assert!(stat("Z", 0).is_ending());
        // Our own process is running, not ending.
        assert!(!is_ending(crate::sys::getpid()));
    }
}
