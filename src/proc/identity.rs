//! The one identity check every signal goes through.
//!
//! A PID read from `/proc` or from a record on disk is only a claim: by the
//! time ocwrap acts on it, the process may have died and the PID may belong
//! to someone else. Before anything is signalled, [`check`] asks three
//! questions of the live `/proc` entry:
//!
//! 1. Is it still the process we saw? Same PID, same start time, not a
//!    zombie. PID 1 and ocwrap itself never qualify.
//! 2. Is it ours? Either it was found in our own tree ([`Owner::Tree`]: we
//!    are its subreaper, and a process that was our descendant stays one for
//!    as long as it lives, whatever uid it switched to), or its real and
//!    effective uid are the given one ([`Owner::Uid`]: a tree that is not
//!    ours to reap, a record on disk). Another user's process is never ours,
//!    even when ocwrap runs as root.
//! 3. (The caller's part.) Is it in the tree being ended? The teardown only
//!    asks about processes its own scan found there.
//!
//! A pidfd opened *before* the check pins the process, so a signal sent
//! through it after a successful check reaches exactly that process.

use serde::{Deserialize, Serialize};

use super::{Stat, read_stat, read_uids};
use crate::sys::{self, Pid};

/// A process as seen: its PID and its start time, which together identify
/// it for as long as it lives.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct ProcId {
    pub pid: Pid,
    pub start_time: u64,
}

impl ProcId {
    /// The process `pid` is now, if it exists.
    pub fn of(pid: Pid) -> Option<ProcId> {
        read_stat(pid).map(|s| s.id())
    }
}

/// What makes a process ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// It was found among our own descendants.
    Tree,
    /// Its real and effective uid are this one.
    Uid(u32),
}

impl Owner {
    /// Our own uid, for processes found outside our tree.
    pub fn me() -> Owner {
        Owner::Uid(sys::getuid())
    }

    fn owns(self, pid: Pid) -> bool {
        match self {
            Owner::Tree => true,
            Owner::Uid(uid) => read_uids(pid).is_some_and(|(r, e)| r == uid && e == uid),
        }
    }
}

/// Whether `st` (already read) is still `id`, alive, and ours.
pub fn matches(id: ProcId, st: &Stat, owner: Owner) -> bool {
    id.pid > 1
        && id.pid != sys::getpid()
        && st.pid == id.pid
        && st.start_time == id.start_time
        && !st.is_zombie()
        && owner.owns(id.pid)
}

/// Reads `/proc` again: the live process behind `id`, if it is still the
/// process we saw and ours.
pub fn check(id: ProcId, owner: Owner) -> Option<Stat> {
    if id.pid <= 1 || id.pid == sys::getpid() {
        return None;
    }
    let st = read_stat(id.pid)?;
    matches(id, &st, owner).then_some(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_is_never_a_target() {
        let me = ProcId::of(sys::getpid()).unwrap();
        assert!(check(me, Owner::Tree).is_none());
        assert!(check(me, Owner::me()).is_none());
    }

    #[test]
    fn a_changed_start_time_or_another_uid_fails() {
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        let pid = child.id() as Pid;
        let id = ProcId::of(pid).unwrap();
        assert!(check(id, Owner::me()).is_some());
        assert!(check(id, Owner::Tree).is_some());
        let recycled = ProcId {
            pid,
            start_time: id.start_time + 1,
        };
        assert!(check(recycled, Owner::Tree).is_none());
        assert!(check(id, Owner::Uid(sys::getuid().wrapping_add(1))).is_none());
        let pid1 = ProcId::of(1).unwrap();
        assert!(check(pid1, Owner::Tree).is_none());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(check(id, Owner::Tree).is_none());
    }
}
