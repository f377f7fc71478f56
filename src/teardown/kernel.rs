//! The kernel's side of a teardown: holding processes by pidfd, the one
//! signalling path, and the table for a tree that is not ours
//! ([`Foreign`], for `stop` and `reap`). The supervisor's own tree is in
//! `crate::supervisor`, on top of the same [`Holder`].
//!
//! # Signalling
//!
//! Every signal goes through [`Holder::deliver`]:
//! 1. A process already held is signalled through its pidfd: that reaches
//!    exactly it, or fails with ESRCH.
//! 2. Otherwise a pidfd is opened, and then the identity is checked again
//!    ([`identity::check`]): the pidfd pins the process, so the check
//!    cannot be fooled by a recycled PID afterwards.
//! 3. An unreaped child of ours needs neither pidfd nor check: its PID
//!    cannot be reused before we reap it, and its exit comes with SIGCHLD.
//!    As the subreaper, ocwrap is the parent of every orphan of the tree, so
//!    after CMD has exited most of a big tree is in this case.
//! 4. Where pidfds are refused (kernels before 5.3, seccomp profiles that
//!    answer ENOSYS or EPERM, the descriptor limit), the signal goes by
//!    `kill()`, the identity checked right before it, which leaves the
//!    smallest window the kernel allows.
//!
//! A whole process group goes in one `kill(-pgrp)` (supervisor tables
//! only) when the last scan proved it ours: every process in it is in our
//! tree, and one of them is an unreaped child of ours, so the group's ID
//! cannot be reused before we reap it.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use super::{Delivery, Event, Member, ProcessTable};
use crate::proc::{self, Owner, Snapshot, identity};
use crate::sys::{self, Epoll, Pid};

/// Epoll tokens at or above this carry a PID in their low 32 bits; the
/// ones below belong to the loop that owns the epoll set.
const PID_TOKEN: u64 = 1 << 40;

/// The PID an epoll token stands for, if it is a process token.
pub fn token_pid(token: u64) -> Option<Pid> {
    (token >= PID_TOKEN).then_some((token & 0xffff_ffff) as u32 as Pid)
}

fn pid_token(pid: Pid) -> u64 {
    PID_TOKEN | pid as u32 as u64
}

/// The processes a teardown holds, each by a pidfd registered in an epoll
/// set, so its exit wakes the loop.
pub struct Holder {
    owner: Owner,
    fds: HashMap<Pid, OwnedFd>,
    /// `pidfd_open` was refused: do not ask again for every process.
    no_pidfd: bool,
    me: Pid,
}

impl Holder {
    pub fn new(owner: Owner) -> Holder {
        // Thousands of processes mean thousands of pidfds.
        sys::raise_nofile_limit();
        Holder {
            owner,
            fds: HashMap::new(),
            no_pidfd: false,
            me: sys::getpid(),
        }
    }

    /// Sends `sig` (0: none) to exactly `m` and holds it. An unreaped child
    /// of ours counts as watched even without a pidfd: its exit comes with
    /// SIGCHLD.
    pub fn deliver(&mut self, epoll: &Epoll, m: &Member, sig: i32) -> Delivery {
        let our_child = self.owner == Owner::Tree && m.ppid == self.me;
        if our_child && !self.fds.contains_key(&m.pid()) {
            // Unreaped, so its PID cannot have been reused, and its exit
            // comes with SIGCHLD: no pidfd needed.
            return match sys::kill_pid(m.pid(), sig) {
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Delivery::Gone,
                _ => Delivery::Watched,
            };
        }
        if let Some(fd) = self.fds.get(&m.pid()) {
            return match sys::pidfd_send_signal(fd, sig) {
                Ok(()) => Delivery::Watched,
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Delivery::Gone,
                // Refused (seccomp, EPERM): the pidfd still reports the exit.
                Err(_) => match self.kill(m, sig, our_child) {
                    Delivery::Gone => Delivery::Gone,
                    _ => Delivery::Watched,
                },
            };
        }
        if !self.no_pidfd {
            match sys::pidfd_open(m.pid()) {
                Ok(fd) => return self.hold(epoll, m, sig, fd, our_child),
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Delivery::Gone,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                    self.no_pidfd = true;
                }
                // EMFILE and friends: this one goes without a pidfd.
                Err(_) => {}
            }
        }
        match self.kill(m, sig, our_child) {
            Delivery::Gone => Delivery::Gone,
            _ if our_child => Delivery::Watched,
            _ => Delivery::Unwatched,
        }
    }

    /// A fresh pidfd for `m`: check the identity it pins, then signal.
    fn hold(
        &mut self,
        epoll: &Epoll,
        m: &Member,
        sig: i32,
        fd: OwnedFd,
        our_child: bool,
    ) -> Delivery {
        if !our_child && identity::check(m.id, self.owner).is_none() {
            return Delivery::Gone;
        }
        match sys::pidfd_send_signal(&fd, sig) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Delivery::Gone,
            Err(_) => {
                if self.kill(m, sig, our_child) == Delivery::Gone {
                    return Delivery::Gone;
                }
            }
        }
        let watched = epoll.add(fd.as_raw_fd(), pid_token(m.pid())).is_ok();
        self.fds.insert(m.pid(), fd);
        if watched || our_child {
            Delivery::Watched
        } else {
            Delivery::Unwatched
        }
    }

    /// `kill()` by PID, after the identity check unless `m` is an unreaped
    /// child of ours.
    fn kill(&self, m: &Member, sig: i32, our_child: bool) -> Delivery {
        if !our_child && identity::check(m.id, self.owner).is_none() {
            return Delivery::Gone;
        }
        match sys::kill_pid(m.pid(), sig) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Delivery::Gone,
            // Sent, or refused by permission: the process is still there.
            _ => Delivery::Unwatched,
        }
    }

    /// The process behind a token ended: drop its pidfd (which also takes
    /// it out of the epoll set).
    pub fn release(&mut self, pid: Pid) {
        self.fds.remove(&pid);
    }
}

/// A tree that is not ours to reap (`stop`, `reap`): the roots, their
/// descendants, and processes born during the teardown in a process group or
/// session that a member leads (they may have been re-parented away before
/// a sweep saw them). A group or session the tree merely sits in, such as a
/// terminal's, does not count: the terminal may start new work meanwhile.
/// Only processes of our own uid are members, even when we are root.
pub struct Foreign {
    epoll: Epoll,
    holder: Holder,
    /// Known members: pid -> start time.
    members: HashMap<Pid, u64>,
    /// Start time (ticks) before which a group/session member is not new.
    born_after: u64,
    uid: u32,
    me: Pid,
}

impl Foreign {
    /// A foreign tree with these roots (already identity-checked).
    pub fn new(roots: &[proc::Stat]) -> io::Result<Foreign> {
        let uid = sys::getuid();
        Ok(Foreign {
            epoll: Epoll::new()?,
            holder: Holder::new(Owner::Uid(uid)),
            members: roots.iter().map(|s| (s.pid, s.start_time)).collect(),
            born_after: proc::uptime_ticks().unwrap_or(u64::MAX),
            uid,
            me: sys::getpid(),
        })
    }

    fn is_root(&self, s: &proc::Stat) -> bool {
        let known = self.members.get(&s.pid) == Some(&s.start_time);
        let led = |id: Pid| id > 1 && self.members.contains_key(&id);
        known || (s.start_time >= self.born_after && (led(s.pgrp) || led(s.session)))
    }
}

impl ProcessTable for Foreign {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn scan(&mut self) -> Vec<Member> {
        let snap = Snapshot::scan();
        let usable = |s: &proc::Stat| !s.is_zombie() && s.pid > 1 && s.pid != self.me;
        let roots: Vec<Pid> = snap
            .procs
            .values()
            .filter(|s| usable(s) && self.is_root(s))
            .map(|s| s.pid)
            .collect();
        let mut all = roots.clone();
        all.extend(snap.descendants(&roots));
        let mut out = Vec::new();
        for pid in all {
            let Some(s) = snap.get(pid).filter(|s| usable(s)) else {
                continue;
            };
            if !identity::matches(s.id(), s, Owner::Uid(self.uid)) {
                continue;
            }
            self.members.insert(s.pid, s.start_time);
            out.push(member(s));
        }
        out
    }

    fn signal(&mut self, m: &Member, sig: i32) -> Delivery {
        self.holder.deliver(&self.epoll, m, sig)
    }

    fn wait(&mut self, deadline: Option<Instant>, events: &mut Vec<Event>) -> io::Result<()> {
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let mut tokens = Vec::new();
        self.epoll.wait(timeout, &mut tokens)?;
        for pid in tokens.into_iter().filter_map(token_pid) {
            self.holder.release(pid);
            events.push(Event::Ended(pid));
        }
        Ok(())
    }

    /// A foreign tree has no children of ours.
    fn signal_children(&mut self, _: i32, _: &HashSet<Pid>) -> Vec<Pid> {
        Vec::new()
    }

    /// A foreign tree has no child of ours to pin a group's ID: one by one.
    fn signal_group(&mut self, _: Pid, _: &[Member], _: i32) -> Option<Vec<Delivery>> {
        None
    }

    fn signal_unseen(&mut self, _sig: i32) -> bool {
        false
    }

    fn empty(&mut self) -> Option<bool> {
        None
    }
}

/// A member of the tree, as a scan found it.
pub fn member(s: &proc::Stat) -> Member {
    Member {
        id: s.id(),
        ppid: s.ppid,
        pgrp: s.pgrp,
        command: s.comm.clone(),
        stopped: s.is_stopped(),
    }
}
