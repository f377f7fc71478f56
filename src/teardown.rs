//! Teardown: ending a whole process tree, graceful then forced, verified.
//!
//! # Theory of operation
//!
//! A teardown has three phases on one clock that starts when it is created:
//!
//! ```text
//! t0                      t0 + grace                 t0 + grace + kill_timeout
//! |-- Graceful ----------|-- Forced ----------------|
//!  stop signal to every    SIGKILL to every          whatever is still there
//!  descendant (+SIGCONT    descendant, re-sweeping   is a survivor: reported,
//!  if it is stopped)       until the tree is empty   exit status 125
//! ```
//!
//! It ends the moment the tree is empty, in any phase: nothing ever sleeps.
//! Every signalled process is held by a pidfd registered in the caller's
//! epoll, so its exit wakes the loop; the loop also wakes on SIGCHLD and on
//! the next deadline.
//!
//! A *sweep* is one scan of `/proc` ([`Snapshot::scan`]) that finds the tree's
//! current members and signals those it has not signalled in this phase. A
//! sweep runs when the teardown starts, whenever every tracked process has
//! ended (new processes may have been forked or re-parented meanwhile), and
//! when the forced phase starts, and then every 50 ms until the tree is
//! empty (a parent dying from its SIGKILL may still fork, and no event
//! announces the child). A process forked during the grace by a process that
//! ignores the stop signal is therefore signalled at the latest when the
//! forced phase starts.
//!
//! Two scopes:
//! - [`Scope::Descendants`]: our own tree. We are a child subreaper, so every
//!   descendant is reachable from us through parent links, and the tree is
//!   empty exactly when `waitpid` says we have no children left: the check
//!   costs one syscall, not a scan.
//! - [`Scope::Foreign`]: a tree that is not ours to reap (a workspace whose
//!   supervisor died, an orphan found by `reap`). Members are the roots, their
//!   descendants, and processes born during the teardown in a process group
//!   or session that a member leads (they may have been re-parented away
//!   before a sweep saw them; a group or session the tree merely sits in,
//!   such as a terminal's, does not count). Only processes of our own uid are
//!   ever signalled.
//!
//! Nothing is signalled by PID alone: a process found by a scan gets a pidfd
//! and is checked again (start time) before the signal goes through the
//! pidfd, unless it is an unreaped child of ours, whose PID cannot be
//! recycled before we reap it.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::procfs::{self, Snapshot, Stat};
use crate::signal;
use crate::sys::{self, Epoll, Pid};

/// How often the forced phase re-sweeps while the tree is not empty.
const FORCED_RESWEEP: Duration = Duration::from_millis(50);

/// Epoll tokens at or above this carry a PID in their low 32 bits.
pub const PID_TOKEN: u64 = 1 << 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Graceful,
    Forced,
    Done,
}

/// How a process of the tree ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndedBy {
    /// It ended after the stop signal (or the forwarded one).
    StopSignal,
    /// It had to be killed.
    Kill,
    /// It ended before it was signalled at all.
    Itself,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ProcessOutcome {
    pub pid: Pid,
    pub command: String,
    pub ended_by: EndedBy,
    /// Milliseconds from the teardown's start until the exit was seen.
    pub after_ms: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Survivor {
    pub pid: Pid,
    pub command: String,
}

/// What a finished teardown reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    pub trigger: String,
    pub duration_ms: u64,
    pub ended_on_stop_signal: usize,
    pub killed: usize,
    pub survivors: Vec<Survivor>,
    pub sweeps: u32,
    pub grace_timeout_hit: bool,
    pub escalated: bool,
    pub processes: Vec<ProcessOutcome>,
}

impl Summary {
    pub fn clean(&self) -> bool {
        self.survivors.is_empty()
    }

    /// The survivors' PIDs, comma-separated.
    pub fn survivor_pids(&self) -> String {
        let pids: Vec<String> = self.survivors.iter().map(|s| s.pid.to_string()).collect();
        pids.join(", ")
    }

    /// The one line printed at the end of every teardown.
    pub fn line(&self) -> String {
        let survivors = if self.survivors.is_empty() {
            "0 survivors".to_string()
        } else {
            format!(
                "{} survivors ({})",
                self.survivors.len(),
                self.survivor_pids()
            )
        };
        format!(
            "teardown ({}) done in {}: {} ended on the stop signal, {} killed, {}",
            self.trigger,
            fmt_ms(self.duration_ms),
            self.ended_on_stop_signal,
            self.killed,
            survivors
        )
    }
}

pub fn fmt_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

/// Which processes the teardown ends.
pub enum Scope {
    /// Every descendant of this process (we are its subreaper).
    Descendants,
    /// A tree that is not ours: see the module docs.
    Foreign {
        /// Known members: pid -> start time.
        members: HashMap<Pid, u64>,
        /// Start time (ticks) before which a group/session member is not new.
        born_after: u64,
        uid: u32,
    },
}

impl Scope {
    /// A foreign scope with these roots (already identity-checked).
    pub fn foreign(roots: &[Stat]) -> Scope {
        Scope::Foreign {
            members: roots.iter().map(|s| (s.pid, s.start_time)).collect(),
            born_after: procfs::uptime_ticks().unwrap_or(u64::MAX),
            uid: sys::getuid(),
        }
    }
}

struct Tracked {
    fd: Option<OwnedFd>,
    start_time: u64,
    command: String,
    stop_signalled: bool,
    killed: bool,
}

pub struct Teardown {
    scope: Scope,
    stop_signal: i32,
    trigger: String,
    started: Instant,
    grace_deadline: Instant,
    kill_timeout: Duration,
    kill_deadline: Instant,
    phase: Phase,
    tracked: HashMap<Pid, Tracked>,
    /// Processes that already got a terminating signal (forwarded) and are
    /// not sent the stop signal again: (pid, or process group if negative).
    exempt: Vec<Pid>,
    outcomes: Vec<ProcessOutcome>,
    sweeps: u32,
    escalated: bool,
    grace_timeout_hit: bool,
    me: Pid,
    /// Set when a process could not be tracked (no pidfd): the loop must
    /// then re-sweep on a short timer, since no exit event will come.
    untracked: bool,
    last_sweep: Instant,
}

impl Teardown {
    pub fn new(
        scope: Scope,
        trigger: String,
        stop_signal: i32,
        grace: Duration,
        kill_timeout: Duration,
        exempt: Vec<Pid>,
    ) -> Teardown {
        let started = Instant::now();
        // Thousands of processes mean thousands of pidfds.
        sys::raise_nofile_limit();
        Teardown {
            scope,
            stop_signal,
            trigger,
            started,
            grace_deadline: started + grace,
            kill_timeout,
            kill_deadline: started + grace + kill_timeout,
            phase: Phase::Graceful,
            tracked: HashMap::new(),
            exempt,
            outcomes: Vec::new(),
            sweeps: 0,
            escalated: false,
            grace_timeout_hit: false,
            me: sys::getpid(),
            untracked: false,
            last_sweep: started,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn trigger(&self) -> &str {
        &self.trigger
    }

    /// When the loop must wake even if nothing happens.
    pub fn next_deadline(&self) -> Option<Instant> {
        let d = match self.phase {
            Phase::Graceful => self.grace_deadline,
            // In the forced phase the tree is re-swept on a short period:
            // no kernel event announces a process forked after the last
            // scan by a parent that was dying from its SIGKILL, and this
            // phase is bounded by the kill-timeout anyway.
            Phase::Forced => self.kill_deadline.min(self.last_sweep + FORCED_RESWEEP),
            Phase::Done => return None,
        };
        if self.untracked {
            // Fallback only when pidfds ran out: nothing would wake us.
            return Some(d.min(Instant::now() + Duration::from_millis(20)));
        }
        Some(d)
    }

    fn is_exempt(&self, st: &Stat) -> bool {
        self.exempt
            .iter()
            .any(|&e| if e < 0 { st.pgrp == -e } else { st.pid == e })
    }

    /// One scan of /proc: the tree's live members right now.
    fn members(&mut self, snap: &Snapshot) -> Vec<Stat> {
        match &mut self.scope {
            Scope::Descendants => snap
                .descendants(&[self.me])
                .into_iter()
                .filter_map(|p| snap.get(p))
                .filter(|s| !s.is_zombie())
                .cloned()
                .collect(),
            Scope::Foreign {
                members,
                born_after,
                uid,
            } => {
                // Roots: members still alive as themselves, and processes born
                // during the teardown in a process group or session that a
                // member leads (a group or session the tree owns). A group
                // or session the tree merely sits in, such as a terminal's,
                // is not enough: the terminal may start new work meanwhile.
                let mut roots: Vec<Pid> = Vec::new();
                for s in snap.procs.values() {
                    if s.is_zombie() || s.pid <= 1 || s.pid == self.me {
                        continue;
                    }
                    let known = members.get(&s.pid) == Some(&s.start_time);
                    let led = |id: Pid| id > 1 && members.contains_key(&id);
                    let born_inside =
                        s.start_time >= *born_after && (led(s.pgrp) || led(s.session));
                    if known || born_inside {
                        roots.push(s.pid);
                    }
                }
                let mut all = roots.clone();
                all.extend(snap.descendants(&roots));
                let mut out = Vec::new();
                for pid in all {
                    let Some(s) = snap.get(pid) else { continue };
                    if s.is_zombie() || s.pid <= 1 || s.pid == self.me {
                        continue;
                    }
                    // Never another user's process, even when we are root.
                    if procfs::read_uids(pid).is_none_or(|(r, e)| r != *uid || e != *uid) {
                        continue;
                    }
                    members.insert(s.pid, s.start_time);
                    out.push(s.clone());
                }
                out
            }
        }
    }

    /// Finds the tree's members and signals those not yet signalled in the
    /// current phase. Returns how many processes were newly signalled.
    pub fn sweep(&mut self, epoll: &Epoll) -> usize {
        if self.phase == Phase::Done {
            return 0;
        }
        self.sweeps += 1;
        self.last_sweep = Instant::now();
        let snap = Snapshot::scan();
        let members = self.members(&snap);
        let forced = self.phase == Phase::Forced;
        let mut signalled = 0;
        self.untracked = false;
        for st in members {
            if let Some(t) = self.tracked.get_mut(&st.pid) {
                if t.start_time == st.start_time {
                    if forced && !t.killed {
                        send(t.fd.as_ref(), st.pid, libc::SIGKILL);
                        t.killed = true;
                        signalled += 1;
                    }
                    if t.fd.is_none() {
                        self.untracked = true;
                    }
                    continue;
                }
                // The PID was recycled inside our own tree: the old process
                // ended unseen.
                if let Some(old) = self.tracked.remove(&st.pid) {
                    self.finish(st.pid, old);
                }
            }
            let fd = match sys::pidfd_open(st.pid) {
                Ok(fd) => Some(fd),
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => continue,
                Err(_) => None,
            };
            // An unreaped child of ours cannot have been recycled; anything
            // else is checked again now that the pidfd pins it.
            let ours = matches!(self.scope, Scope::Descendants) && st.ppid == self.me;
            if !ours && !procfs::verify(st.pid, st.start_time) {
                continue;
            }
            let mut t = Tracked {
                fd,
                start_time: st.start_time,
                command: st.comm.clone(),
                stop_signalled: false,
                killed: false,
            };
            if forced {
                send(t.fd.as_ref(), st.pid, libc::SIGKILL);
                t.killed = true;
            } else if self.is_exempt(&st) {
                // It already got the forwarded signal; stopped, it could not
                // act on it until the SIGKILL.
                if st.is_stopped() {
                    send(t.fd.as_ref(), st.pid, libc::SIGCONT);
                }
                t.stop_signalled = true;
            } else {
                send(t.fd.as_ref(), st.pid, self.stop_signal);
                // A stopped process cannot act on the stop signal until it
                // is continued (systemd does the same).
                if st.is_stopped() && self.stop_signal != libc::SIGKILL {
                    send(t.fd.as_ref(), st.pid, libc::SIGCONT);
                }
                t.stop_signalled = true;
            }
            signalled += 1;
            if crate::log::enabled(crate::log::Level::Debug) {
                crate::log::debug(
                    "process.signalled",
                    &format!(
                        "sent {} to {} ({})",
                        signal::name(if forced {
                            libc::SIGKILL
                        } else {
                            self.stop_signal
                        }),
                        st.pid,
                        st.comm
                    ),
                    json!({"target_pid": st.pid, "command": st.comm, "phase": format!("{:?}", self.phase).to_lowercase()}),
                );
            }
            match &t.fd {
                Some(fd) => {
                    if epoll
                        .add(fd.as_raw_fd(), PID_TOKEN | st.pid as u32 as u64)
                        .is_err()
                    {
                        self.untracked = true;
                    }
                }
                None => self.untracked = true,
            }
            self.tracked.insert(st.pid, t);
        }
        signalled
    }

    fn finish(&mut self, pid: Pid, t: Tracked) {
        // Dropping `t` closes its pidfd, which also takes it out of the
        // epoll set: no EPOLL_CTL_DEL needed per process.
        let ended_by = if t.killed {
            EndedBy::Kill
        } else if t.stop_signalled {
            EndedBy::StopSignal
        } else {
            EndedBy::Itself
        };
        let after = self.started.elapsed();
        // Thousands of processes end in a big teardown: build the event only
        // when someone reads it.
        if crate::log::enabled(crate::log::Level::Debug) {
            crate::log::debug(
                "process.ended",
                &format!(
                    "{pid} ({}) ended after {}",
                    t.command,
                    fmt_ms(after.as_millis() as u64)
                ),
                json!({"target_pid": pid, "command": t.command, "ended_by": ended_by, "after_ms": after.as_millis() as u64}),
            );
        }
        self.outcomes.push(ProcessOutcome {
            pid,
            command: t.command,
            ended_by,
            after_ms: after.as_millis() as u64,
        });
    }

    /// A pidfd token fired: that process exited.
    /// Returns the PID the token stood for.
    pub fn on_token(&mut self, token: u64) -> Option<Pid> {
        if token < PID_TOKEN {
            return None;
        }
        let pid = (token & 0xffff_ffff) as u32 as Pid;
        if let Some(t) = self.tracked.remove(&pid) {
            self.finish(pid, t);
        }
        Some(pid)
    }

    /// Reaped children of ours: they are gone even if their pidfd event is
    /// still queued.
    pub fn on_reaped(&mut self, pids: &[Pid]) {
        for pid in pids {
            if let Some(t) = self.tracked.remove(pid) {
                self.finish(*pid, t);
            }
        }
    }

    /// Second terminating signal: go straight to SIGKILL.
    pub fn escalate(&mut self, epoll: &Epoll) {
        if self.phase == Phase::Graceful {
            self.escalated = true;
            self.enter_forced(epoll);
        }
    }

    fn enter_forced(&mut self, epoll: &Epoll) {
        let now = Instant::now();
        self.phase = Phase::Forced;
        self.kill_deadline = now + self.kill_timeout;
        // Processes whose exit is still queued in the epoll set ended on the
        // stop signal: count them as such, not as killed.
        let exited: Vec<Pid> = self
            .tracked
            .iter()
            .filter(|(_, t)| t.fd.as_ref().is_some_and(sys::pidfd_exited))
            .map(|(pid, _)| *pid)
            .collect();
        for pid in exited {
            if let Some(t) = self.tracked.remove(&pid) {
                self.finish(pid, t);
            }
        }
        for (pid, t) in self.tracked.iter_mut() {
            if !t.killed {
                send(t.fd.as_ref(), *pid, libc::SIGKILL);
                t.killed = true;
            }
        }
        self.sweep(epoll);
    }

    /// Advances the phase when its deadline passed.
    pub fn on_time(&mut self, epoll: &Epoll) {
        let now = Instant::now();
        if self.phase == Phase::Graceful && now >= self.grace_deadline {
            self.grace_timeout_hit = true;
            let left = self.tracked.len();
            crate::log::info(
                "teardown.grace_expired",
                &format!("grace expired with {left} process(es) left: sending SIGKILL"),
                json!({"left": left}),
            );
            self.enter_forced(epoll);
        } else if self.phase == Phase::Forced && now >= self.kill_deadline {
            self.phase = Phase::Done;
        } else if self.phase == Phase::Forced && now >= self.last_sweep + FORCED_RESWEEP {
            self.sweep(epoll);
        }
    }

    /// Decides whether the tree is empty, re-sweeping when every tracked
    /// process has ended. `has_children` is what the last reap said (only
    /// meaningful for our own tree).
    pub fn check(&mut self, has_children: bool, epoll: &Epoll) {
        if self.phase == Phase::Done {
            return;
        }
        if matches!(self.scope, Scope::Descendants) && !has_children {
            self.phase = Phase::Done;
            return;
        }
        if self.untracked || self.tracked.is_empty() {
            self.sweep(epoll);
            if self.tracked.is_empty() && matches!(self.scope, Scope::Foreign { .. }) {
                self.phase = Phase::Done;
            }
            // Our own tree with no live member but children left: only
            // zombies remain, and their SIGCHLD will wake us to reap them.
        }
    }

    /// Ends the teardown: survivors are whatever the last scan still finds.
    pub fn finish_all(mut self) -> Summary {
        let survivors: Vec<Survivor> = if self.phase == Phase::Done && self.tracked.is_empty() {
            Vec::new()
        } else {
            let snap = Snapshot::scan();
            self.members(&snap)
                .into_iter()
                .map(|s| Survivor {
                    pid: s.pid,
                    command: s.comm,
                })
                .collect()
        };
        let tracked: Vec<(Pid, Tracked)> = self.tracked.drain().collect();
        for (pid, t) in tracked {
            if !survivors.iter().any(|s| s.pid == pid) {
                self.finish(pid, t);
            }
        }
        let count = |e: EndedBy| self.outcomes.iter().filter(|o| o.ended_by == e).count();
        Summary {
            trigger: self.trigger.clone(),
            duration_ms: self.started.elapsed().as_millis() as u64,
            ended_on_stop_signal: count(EndedBy::StopSignal),
            killed: count(EndedBy::Kill),
            survivors,
            sweeps: self.sweeps,
            grace_timeout_hit: self.grace_timeout_hit,
            escalated: self.escalated,
            processes: std::mem::take(&mut self.outcomes),
        }
    }
}

/// Sends through the pidfd when there is one; without one (the fd limit
/// was reached) the PID was verified a moment ago, which is the best left.
fn send(fd: Option<&OwnedFd>, pid: Pid, sig: i32) {
    let _ = match fd {
        Some(fd) => sys::pidfd_send_signal(fd, sig),
        None => sys::kill_pid(pid, sig),
    };
}

/// Runs a foreign teardown to the end with its own epoll (for `stop` and
/// `reap`, which have no children of their own to wait for).
pub fn run_foreign(
    roots: &[Stat],
    trigger: String,
    grace: Duration,
    kill_timeout: Duration,
) -> std::io::Result<Summary> {
    let epoll = Epoll::new()?;
    let mut td = Teardown::new(
        Scope::foreign(roots),
        trigger,
        libc::SIGTERM,
        grace,
        kill_timeout,
        Vec::new(),
    );
    td.sweep(&epoll);
    let mut tokens = Vec::new();
    while td.phase() != Phase::Done {
        td.check(true, &epoll);
        if td.phase() == Phase::Done {
            break;
        }
        let timeout = td
            .next_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()));
        epoll.wait(timeout, &mut tokens)?;
        for &t in &tokens {
            let _ = td.on_token(t);
        }
        td.on_time(&epoll);
    }
    Ok(td.finish_all())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(survivors: Vec<Survivor>) -> Summary {
        Summary {
            trigger: "CMD exited with status 0".into(),
            duration_ms: 1500,
            ended_on_stop_signal: 3,
            killed: 1,
            survivors,
            sweeps: 2,
            grace_timeout_hit: true,
            escalated: false,
            processes: Vec::new(),
        }
    }

    #[test]
    fn summary_line_names_counts_and_survivors() {
        let clean = summary(Vec::new());
        assert!(clean.clean());
        assert_eq!(
            clean.line(),
            "teardown (CMD exited with status 0) done in 1.5s: 3 ended on the stop signal, 1 killed, 0 survivors"
        );
        let dirty = summary(vec![
            Survivor {
                pid: 42,
                command: "x".into(),
            },
            Survivor {
                pid: 7,
                command: "y".into(),
            },
        ]);
        assert!(!dirty.clean());
        assert!(
            dirty.line().ends_with("2 survivors (42, 7)"),
            "{}",
            dirty.line()
        );
    }
}
