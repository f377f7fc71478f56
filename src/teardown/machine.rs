//! The teardown state machine and its driver loop (see the module docs of
//! `crate::teardown` for the theory and the timeline).

use std::collections::{HashMap, HashSet};
use std::io;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{EndedBy, Plan, ProcessOutcome, Summary, Survivor, Trigger, deadline, fmt_ms};
use crate::log::{self, Level};
use crate::proc::ProcId;
use crate::signal;
use crate::sys::Pid;

/// How often the forced phase re-sweeps while the tree is not empty.
const FORCED_RESWEEP: Duration = Duration::from_millis(50);
/// How often a tree with a process that cannot be held (no pidfd, so no
/// exit event) is re-swept to see it go.
const UNWATCHED_RESWEEP: Duration = Duration::from_millis(20);

/// A live process of the tree, as one scan found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: ProcId,
    pub ppid: Pid,
    pub pgrp: Pid,
    pub command: String,
    /// Stopped (SIGSTOP, SIGTSTP): it cannot act on the stop signal until
    /// it is continued.
    pub stopped: bool,
}

impl Member {
    pub fn pid(&self) -> Pid {
        self.id.pid
    }
}

/// What became of a signal the machine asked a table to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Sent, and the process's exit will arrive as [`Event::Ended`].
    Watched,
    /// Sent, but no event will announce its exit (no pidfd could be had):
    /// the machine re-sweeps to see it go.
    Unwatched,
    /// The process is gone, or is no longer the one the scan saw: nothing
    /// was sent.
    Gone,
}

/// What a table's `wait` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// This process, held since it was signalled (or reaped as our child),
    /// has ended.
    Ended(Pid),
    /// A stop request arrived during the teardown: SIGKILL now.
    Escalate(i32),
}

/// The processes of a tree, as the machine sees them. The kernel's tables
/// are in `kernel.rs` and `crate::supervisor`; the unit tests use a fake.
pub trait ProcessTable {
    /// The current time (a fake clock in tests).
    fn now(&self) -> Instant;
    /// One scan: the tree's live members right now.
    fn scan(&mut self) -> Vec<Member>;
    /// Sends `sig` (0: none, only hold it) to exactly this process, after
    /// checking that it is still the one the scan saw and ours, and holds
    /// it so that its exit is reported. The machine never asks about a
    /// process after it was reported ended.
    fn signal(&mut self, m: &Member, sig: i32) -> Delivery;
    /// Waits until something happens or `deadline` passes (None: no
    /// deadline), and appends what happened to `events`.
    fn wait(&mut self, deadline: Option<Instant>, events: &mut Vec<Event>) -> io::Result<()>;
    /// Whether the tree is empty: `Some` when the table knows exactly (a
    /// subreaper without children has no descendants), `None` when only a
    /// sweep that finds nobody can tell. Exits it collects on the way (by
    /// reaping) are reported by the next `wait`.
    fn empty(&mut self) -> Option<bool>;
}

/// Processes that already got the stop request forwarded (CMD, or its
/// process group) and are not sent the stop signal again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exempt {
    Nobody,
    Process(Pid),
    Group(Pid),
}

impl Exempt {
    fn covers(self, m: &Member) -> bool {
        match self {
            Exempt::Nobody => false,
            Exempt::Process(pid) => m.pid() == pid,
            Exempt::Group(pgrp) => m.pgrp == pgrp,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Graceful,
    Forced,
    Done,
}

struct Tracked {
    member: Member,
    stop_signalled: bool,
    killed: bool,
    watched: bool,
}

pub struct Teardown {
    plan: Plan,
    trigger: Trigger,
    exempt: Exempt,
    started: Instant,
    grace_deadline: Instant,
    kill_deadline: Instant,
    phase: Phase,
    tracked: HashMap<Pid, Tracked>,
    outcomes: Vec<ProcessOutcome>,
    sweeps: u32,
    last_sweep: Instant,
    /// A held process ended since the last sweep.
    ended_since_sweep: bool,
    /// Some member cannot report its exit.
    unwatched: bool,
    escalated: bool,
    grace_timeout_hit: bool,
}

impl Teardown {
    /// A teardown whose clock starts at `now`.
    pub fn new(plan: Plan, trigger: Trigger, exempt: Exempt, now: Instant) -> Teardown {
        let grace_deadline = deadline(now, plan.grace);
        Teardown {
            plan,
            trigger,
            exempt,
            started: now,
            grace_deadline,
            kill_deadline: deadline(grace_deadline, plan.kill_timeout),
            phase: Phase::Graceful,
            tracked: HashMap::new(),
            outcomes: Vec::new(),
            sweeps: 0,
            last_sweep: now,
            ended_since_sweep: false,
            unwatched: false,
            escalated: false,
            grace_timeout_hit: false,
        }
    }

    /// The driver loop: runs the teardown to its end.
    pub fn run(mut self, table: &mut dyn ProcessTable) -> io::Result<Summary> {
        let mut events = Vec::new();
        if table.empty() == Some(true) {
            self.phase = Phase::Done;
        } else {
            let n = self.sweep(table);
            self.announce(n);
        }
        while self.phase != Phase::Done {
            if table.empty() == Some(true) {
                self.phase = Phase::Done;
                break;
            }
            if self.sweep_due(table.now()) {
                self.sweep(table);
                if self.phase == Phase::Done {
                    break;
                }
            }
            events.clear();
            table.wait(self.next_deadline(), &mut events)?;
            for &ev in &events {
                self.on_event(ev, table);
            }
            self.on_time(table);
        }
        Ok(self.finish(table))
    }

    /// When the loop must wake even if nothing happens.
    fn next_deadline(&self) -> Option<Instant> {
        let d = match self.phase {
            Phase::Graceful => self.grace_deadline,
            Phase::Forced => self.kill_deadline.min(self.last_sweep + FORCED_RESWEEP),
            Phase::Done => return None,
        };
        Some(if self.unwatched {
            d.min(self.last_sweep + UNWATCHED_RESWEEP)
        } else {
            d
        })
    }

    fn sweep_due(&self, now: Instant) -> bool {
        (self.tracked.is_empty() && self.ended_since_sweep)
            || (self.unwatched && now >= self.last_sweep + UNWATCHED_RESWEEP)
            || (self.phase == Phase::Forced && now >= self.last_sweep + FORCED_RESWEEP)
    }

    /// One scan: signals every member not yet signalled in this phase.
    /// Returns how many processes were newly signalled.
    fn sweep(&mut self, table: &mut dyn ProcessTable) -> usize {
        self.sweeps += 1;
        self.last_sweep = table.now();
        self.ended_since_sweep = false;
        self.unwatched = false;
        let forced = self.phase == Phase::Forced;
        let mut signalled = 0;
        let members = table.scan();
        self.forget_unwatched_gone(&members, table.now());
        for m in members {
            if let Some(t) = self.tracked.get_mut(&m.pid()) {
                if t.member.id == m.id {
                    if forced && !t.killed {
                        t.killed = true;
                        signalled += 1;
                        let delivery = table.signal(&m, libc::SIGKILL);
                        self.after_delivery(m.pid(), delivery, table.now());
                    } else if !t.watched {
                        self.unwatched = true;
                    }
                    continue;
                }
                // The PID was recycled inside the tree: the process we held
                // ended unseen, and this one is new.
                let old = self.tracked.remove(&m.pid()).expect("tracked");
                self.record(old, table.now());
            }
            signalled += self.take(m, table);
        }
        if table.empty().is_none() && self.tracked.is_empty() {
            // A foreign tree: a sweep that finds nobody is the proof.
            self.phase = Phase::Done;
        }
        signalled
    }

    /// A held process that no event can announce (no pidfd) and that the
    /// scan no longer finds has ended.
    fn forget_unwatched_gone(&mut self, members: &[Member], now: Instant) {
        let seen: HashSet<ProcId> = members.iter().map(|m| m.id).collect();
        let gone: Vec<Pid> = self
            .tracked
            .iter()
            .filter(|(_, t)| !t.watched && !seen.contains(&t.member.id))
            .map(|(pid, _)| *pid)
            .collect();
        for pid in gone {
            if let Some(t) = self.tracked.remove(&pid) {
                self.record(t, now);
            }
        }
    }

    /// Starts holding a member the sweep found; signals it as the phase
    /// says. Returns 1 if a signal was sent.
    fn take(&mut self, m: Member, table: &mut dyn ProcessTable) -> usize {
        let forced = self.phase == Phase::Forced;
        let (sig, cont) = if forced {
            (libc::SIGKILL, false)
        } else if self.exempt.covers(&m) {
            // It already got the forwarded signal; stopped, it could not act
            // on it until the SIGKILL.
            (0, m.stopped)
        } else {
            // A stopped process cannot act on the stop signal until it is
            // continued (systemd does the same).
            (
                self.plan.stop_signal,
                m.stopped && self.plan.stop_signal != libc::SIGKILL,
            )
        };
        let mut delivery = table.signal(&m, sig);
        if cont && delivery != Delivery::Gone {
            delivery = table.signal(&m, libc::SIGCONT);
        }
        let now = table.now();
        let t = Tracked {
            member: m,
            stop_signalled: !forced,
            killed: forced,
            watched: delivery == Delivery::Watched,
        };
        if delivery == Delivery::Gone {
            // It vanished between the scan and the signal.
            let pid = t.member.pid();
            self.outcomes.push(ProcessOutcome {
                pid,
                command: t.member.command,
                ended_by: EndedBy::Itself,
                after_ms: self.ms_since_start(now),
            });
            return 0;
        }
        if !t.watched {
            self.unwatched = true;
        }
        if log::enabled(Level::Debug) && sig != 0 {
            log::debug(
                "process.signalled",
                &format!(
                    "sent {} to {} ({})",
                    signal::name(sig),
                    t.member.pid(),
                    t.member.command
                ),
                json!({"target_pid": t.member.pid(), "command": t.member.command,
                       "phase": if forced { "forced" } else { "graceful" }}),
            );
        }
        self.tracked.insert(t.member.pid(), t);
        usize::from(sig != 0)
    }

    /// A held process got SIGKILL: note what the table said of it.
    fn after_delivery(&mut self, pid: Pid, delivery: Delivery, now: Instant) {
        match delivery {
            Delivery::Gone => {
                if let Some(mut t) = self.tracked.remove(&pid) {
                    // It was already gone: the kill did not end it.
                    t.killed = false;
                    self.record(t, now);
                }
            }
            Delivery::Unwatched => {
                if let Some(t) = self.tracked.get_mut(&pid) {
                    t.watched = false;
                }
                self.unwatched = true;
            }
            Delivery::Watched => {}
        }
    }

    fn on_event(&mut self, ev: Event, table: &mut dyn ProcessTable) {
        match ev {
            Event::Ended(pid) => self.ended(pid, table.now()),
            Event::Escalate(sig) => {
                if self.phase == Phase::Graceful {
                    log::info(
                        "teardown.escalated",
                        &format!(
                            "second {} during the grace: sending SIGKILL now",
                            signal::name(sig)
                        ),
                        json!({"signal": signal::name(sig)}),
                    );
                    self.escalated = true;
                    self.enter_forced(table);
                }
            }
        }
    }

    /// A process of the tree ended. Even one the machine did not hold
    /// (a parent it never saw, reaped as our child) means the tree changed:
    /// its children may have been re-parented where a sweep now finds them.
    fn ended(&mut self, pid: Pid, now: Instant) {
        self.ended_since_sweep = true;
        if let Some(t) = self.tracked.remove(&pid) {
            self.record(t, now);
        }
    }

    /// Advances the phase when its deadline passed.
    fn on_time(&mut self, table: &mut dyn ProcessTable) {
        let now = table.now();
        if self.phase == Phase::Graceful && now >= self.grace_deadline {
            self.grace_timeout_hit = true;
            let left = self.tracked.len();
            log::info(
                "teardown.grace_expired",
                &format!("grace expired with {left} process(es) left: sending SIGKILL"),
                json!({"left": left}),
            );
            self.enter_forced(table);
        } else if self.phase == Phase::Forced && now >= self.kill_deadline {
            self.phase = Phase::Done;
        }
    }

    fn enter_forced(&mut self, table: &mut dyn ProcessTable) {
        // Exits already queued ended on the stop signal: take them first, so
        // they are not counted as killed.
        // (A bounded number of batches: a storm of signals must not keep us
        // here.)
        let mut events = Vec::new();
        for _ in 0..64 {
            events.clear();
            if table.wait(Some(table.now()), &mut events).is_err() {
                break;
            }
            let mut ended = false;
            for &ev in &events {
                if let Event::Ended(pid) = ev {
                    ended = true;
                    self.ended(pid, table.now());
                }
            }
            if !ended {
                break;
            }
        }
        self.phase = Phase::Forced;
        self.kill_deadline = deadline(table.now(), self.plan.kill_timeout);
        let held: Vec<Member> = self
            .tracked
            .values()
            .filter(|t| !t.killed)
            .map(|t| t.member.clone())
            .collect();
        for m in held {
            if let Some(t) = self.tracked.get_mut(&m.pid()) {
                t.killed = true;
            }
            let delivery = table.signal(&m, libc::SIGKILL);
            self.after_delivery(m.pid(), delivery, table.now());
        }
        self.sweep(table);
    }

    fn ms_since_start(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.started).as_millis() as u64
    }

    /// A held process ended: its outcome.
    fn record(&mut self, t: Tracked, now: Instant) {
        let ended_by = if t.killed {
            EndedBy::Kill
        } else if t.stop_signalled {
            EndedBy::StopSignal
        } else {
            EndedBy::Itself
        };
        let after_ms = self.ms_since_start(now);
        // Thousands of processes end in a big teardown: build the event only
        // when someone reads it.
        if log::enabled(Level::Debug) {
            log::debug(
                "process.ended",
                &format!(
                    "{} ({}) ended after {}",
                    t.member.pid(),
                    t.member.command,
                    fmt_ms(after_ms)
                ),
                json!({"target_pid": t.member.pid(), "command": t.member.command,
                       "ended_by": ended_by, "after_ms": after_ms}),
            );
        }
        self.outcomes.push(ProcessOutcome {
            pid: t.member.pid(),
            command: t.member.command,
            ended_by,
            after_ms,
        });
    }

    /// The first sweep's line: what the trigger made ocwrap signal.
    fn announce(&self, signalled: usize) {
        if self.tracked.is_empty() && signalled == 0 {
            return;
        }
        log::info(
            "teardown.signalled",
            &format!(
                "{}: sent {} to {signalled} process(es)",
                self.trigger,
                signal::name(self.plan.stop_signal)
            ),
            json!({"trigger": self.trigger.to_string(),
                   "signal": signal::name(self.plan.stop_signal), "count": signalled}),
        );
    }

    /// Ends the teardown: survivors are whatever a last scan still finds.
    fn finish(mut self, table: &mut dyn ProcessTable) -> Summary {
        let now = table.now();
        let empty = table.empty();
        let survivors: Vec<Member> = if empty == Some(true)
            || (self.phase == Phase::Done && self.tracked.is_empty() && empty.is_none())
        {
            Vec::new()
        } else {
            table.scan()
        };
        let unseen = survivors.is_empty() && empty == Some(false);
        let held: Vec<Pid> = self.tracked.keys().copied().collect();
        for pid in held {
            let t = self.tracked.remove(&pid).expect("held");
            if !survivors.iter().any(|s| s.id == t.member.id) {
                self.record(t, now);
            }
        }
        let count = |e: EndedBy| self.outcomes.iter().filter(|o| o.ended_by == e).count();
        Summary {
            trigger: self.trigger.clone(),
            duration_ms: self.ms_since_start(now),
            ended_on_stop_signal: count(EndedBy::StopSignal),
            killed: count(EndedBy::Kill),
            survivors: survivors
                .into_iter()
                .map(|m| Survivor {
                    pid: m.pid(),
                    command: m.command,
                })
                .collect(),
            unseen,
            sweeps: self.sweeps,
            grace_timeout_hit: self.grace_timeout_hit,
            escalated: self.escalated,
            processes: std::mem::take(&mut self.outcomes),
        }
    }
}

#[cfg(test)]
mod tests;
