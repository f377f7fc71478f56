//! The teardown state machine and its driver loop (see the module docs of
//! `crate::teardown` for the theory and the timeline).

use std::collections::{HashMap, HashSet};
use std::io;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{
    EndedBy, Plan, ProcessOutcome, SentSignal, Summary, Survivor, Trigger, deadline, fmt_ms,
};
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

    /// A child of ours that was signalled before any scan showed it: only
    /// its PID is known (an unreaped child's PID is still that child).
    fn unscanned(pid: Pid) -> Member {
        Member {
            id: ProcId { pid, start_time: 0 },
            ppid: 0,
            pgrp: 0,
            command: String::new(),
            stopped: false,
        }
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
    /// A stop request arrived during the teardown: SIGKILL now (or, while
    /// lingering, start the graceful phase now).
    Escalate(i32),
    /// The table forwarded `signal` to CMD (`cmd`), or to its process group.
    Forwarded { signal: i32, cmd: Pid, group: bool },
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
    /// Sends `sig` right away to every direct child of ours but those in
    /// `skip`, before any scan, and returns their PIDs: an unreaped child's
    /// PID cannot be reused, so it needs no identity check, and until the
    /// next `wait` (nothing is reaped before it) each of these PIDs is still
    /// that child: a scan before then shows it (as a zombie, if it already
    /// died), a `wait` that reaps it reports its exit. A table without
    /// children of its own returns nothing.
    fn signal_children(&mut self, sig: i32, skip: &HashSet<Pid>) -> Vec<Pid>;
    /// Sends `sig` to the whole process group `pgrp` in one call, if the
    /// table can prove that the group is ours: every process in it is one
    /// of the tree's, and its ID cannot have been recycled since the last
    /// scan. Then it holds each of `members` (their exits are reported) and
    /// says what became of each; None when it cannot prove it (the machine
    /// then signals them one by one).
    fn signal_group(&mut self, pgrp: Pid, members: &[Member], sig: i32) -> Option<Vec<Delivery>>;
    /// Sends `sig` to every process of the tree that scans cannot show,
    /// where the table has a way to reach exactly the tree (as PID 1 of a
    /// PID namespace, `kill(-1)` does). Returns false when it has none.
    fn signal_unseen(&mut self, sig: i32) -> bool;
    /// Waits until something happens or `deadline` passes (None: no
    /// deadline), and appends what happened to `events`.
    fn wait(&mut self, deadline: Option<Instant>, events: &mut Vec<Event>) -> io::Result<()>;
    /// Whether the tree is empty: `Some` when the table knows exactly (a
    /// subreaper without children has no descendants), `None` when only a
    /// sweep that finds nobody can tell. Exits it collects on the way (by
    /// reaping) are reported by the next `wait`.
    fn empty(&mut self) -> Option<bool>;
}

/// A stop request was forwarded to CMD (or CMD's process group) before the
/// teardown started: CMD goes first. The rest of the tree gets the stop
/// signal once CMD has exited (or SIGKILL at the end of the grace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct First {
    pub cmd: Pid,
    /// The request went to CMD's whole process group.
    pub group: bool,
    /// What CMD got (after `--rewrite`); None when the rewrite dropped it.
    pub forwarded: Option<i32>,
    /// CMD was stopped, so it also got SIGCONT to act on the request.
    pub continued: bool,
    /// The members of CMD's group as a scan saw them right before a group
    /// request, so that the report has them even if they end before the
    /// teardown's first sweep.
    pub members: Vec<Member>,
}

impl First {
    fn covers(&self, m: &Member) -> bool {
        m.pid() == self.cmd || (self.group && m.pgrp == self.cmd)
    }

    /// What the request sent, at the teardown's start.
    fn sent(&self) -> Vec<SentSignal> {
        let cont = self.continued.then_some(libc::SIGCONT);
        self.forwarded
            .into_iter()
            .chain(cont)
            .map(|s| SentSignal::new(s, 0))
            .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// CMD exited by itself: the rest may end on its own (`--linger`).
    Lingering,
    Graceful,
    Forced,
    Done,
}

struct Tracked {
    member: Member,
    /// A scan has shown it. False for a child of ours signalled before the
    /// scan (`Member::unscanned`): the next scan fills in the rest, unless
    /// it was reaped first.
    scanned: bool,
    stop_signalled: bool,
    killed: bool,
    /// The table holds it (a pidfd, or our child): a sweep need not.
    held: bool,
    watched: bool,
    signals: Vec<SentSignal>,
}

pub struct Teardown {
    plan: Plan,
    trigger: Trigger,
    first: Option<First>,
    /// CMD's PID and name, so that the report has its line even when it
    /// was gone before any scan (it exited by itself, or right after the
    /// stop request), and when it ended (ms since the start).
    cmd: Option<(Pid, String)>,
    cmd_ended_ms: Option<u64>,
    /// Signals forwarded to CMD while the machine did not hold it.
    cmd_signals: Vec<SentSignal>,
    /// CMD has not exited yet: the rest waits for it.
    waiting_for_cmd: bool,
    started: Instant,
    phase_deadline: Instant,
    phase: Phase,
    tracked: HashMap<Pid, Tracked>,
    outcomes: Vec<ProcessOutcome>,
    /// Processes ocwrap sent at least one signal to.
    signalled: HashSet<ProcId>,
    /// And those of them that ended before a scan could name them (their
    /// placeholder identities leave `signalled`: a PID can come again).
    signalled_unscanned: usize,
    sweeps: u32,
    last_sweep: Instant,
    /// A held process ended since the last sweep.
    ended_since_sweep: bool,
    /// Some member cannot report its exit.
    unwatched: bool,
    /// The unseen rest of the tree got the current phase's signal.
    unseen_signalled: Option<Phase>,
    escalated: bool,
    /// A stop request that arrived while a sweep took exits: handled by the
    /// loop once the sweep is over.
    deferred_escalation: Option<i32>,
    grace_timeout_hit: bool,
}

impl Teardown {
    /// A teardown whose clock starts at `now`. `first`: CMD already got the
    /// stop request and goes first.
    pub fn new(plan: Plan, trigger: Trigger, first: Option<First>, now: Instant) -> Teardown {
        let linger = matches!(trigger, Trigger::CmdExited(_)) && !plan.linger.is_zero();
        let (phase, until) = if linger {
            (Phase::Lingering, plan.linger)
        } else {
            (Phase::Graceful, plan.grace)
        };
        let waiting_for_cmd = first.is_some();
        let mut tracked = HashMap::new();
        let mut signalled = HashSet::new();
        for m in first.iter().flat_map(|f| f.members.iter()) {
            let forwarded = first.as_ref().and_then(|f| f.forwarded);
            if forwarded.is_some() {
                signalled.insert(m.id);
            }
            tracked.insert(
                m.pid(),
                Tracked {
                    member: m.clone(),
                    scanned: true,
                    stop_signalled: true,
                    killed: false,
                    held: false,
                    watched: false,
                    signals: first.as_ref().map(First::sent).unwrap_or_default(),
                },
            );
        }
        Teardown {
            plan,
            trigger,
            first,
            cmd: None,
            cmd_ended_ms: None,
            cmd_signals: Vec::new(),
            waiting_for_cmd,
            tracked,
            signalled,
            signalled_unscanned: 0,
            started: now,
            phase_deadline: deadline(now, until),
            phase,
            outcomes: Vec::new(),
            sweeps: 0,
            last_sweep: now,
            ended_since_sweep: false,
            unwatched: false,
            unseen_signalled: None,
            escalated: false,
            deferred_escalation: None,
            grace_timeout_hit: false,
        }
    }

    /// Names CMD, for its line in the report.
    pub fn with_cmd(mut self, pid: Pid, command: String) -> Teardown {
        self.cmd = Some((pid, command));
        if matches!(self.trigger, Trigger::CmdExited(_)) {
            self.cmd_ended_ms = Some(0);
        }
        self
    }

    /// The driver loop: runs the teardown to its end.
    pub fn run(mut self, table: &mut dyn ProcessTable) -> io::Result<Summary> {
        let mut events = Vec::new();
        if table.empty() == Some(true) {
            self.phase = Phase::Done;
        } else if self.waiting_for_cmd {
            // CMD goes first: the rest is found when it has exited (or when
            // the grace ends), not scanned for now.
            self.announce(0);
        } else {
            let n = self.sweep(table);
            self.announce(n);
        }
        while self.phase != Phase::Done {
            if table.empty() == Some(true) {
                self.phase = Phase::Done;
                break;
            }
            if let Some(sig) = self.deferred_escalation.take() {
                self.escalate(sig, table);
                continue;
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
            Phase::Lingering | Phase::Graceful => self.phase_deadline,
            Phase::Forced => self.phase_deadline.min(self.last_sweep + FORCED_RESWEEP),
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

    /// The signal the current phase sends a member (0: only hold it),
    /// and whether a stopped member also needs SIGCONT.
    fn phase_signal(&self, m: &Member) -> (i32, bool) {
        match self.phase {
            Phase::Forced => (libc::SIGKILL, false),
            Phase::Lingering => (0, false),
            _ if self.first.as_ref().is_some_and(|f| f.covers(m)) => (0, m.stopped),
            _ if self.waiting_for_cmd => (0, false),
            // A stopped process cannot act on the stop signal until it is
            // continued (systemd does the same).
            _ => (
                self.plan.stop_signal,
                m.stopped && self.plan.stop_signal != libc::SIGKILL,
            ),
        }
    }

    /// One scan: signals every member not yet signalled in this phase.
    /// Returns how many processes were newly signalled.
    fn sweep(&mut self, table: &mut dyn ProcessTable) -> usize {
        self.sweeps += 1;
        self.last_sweep = table.now();
        self.unwatched = false;
        let early = self.signal_children_first(table);
        if !early.1.is_empty() && !self.plan.names {
            // Those that died already are reaped before the scan, which
            // then has fewer entries to read (and the kernel fewer to drop
            // when they are reaped). Their exits account for them; only
            // their names are never read, and nobody asked for them.
            self.take_exits(table);
        }
        self.ended_since_sweep = false;
        let members = table.scan();
        let now = table.now();
        self.forget_unwatched_gone(&members, now);
        let seen_any = !members.is_empty();
        let mut found = Vec::with_capacity(members.len());
        for m in members {
            found.push(m.pid());
            self.track(m, now);
        }
        self.continue_early(&early, table);
        let signalled = early.1.len() + self.dispatch(&found, table);
        if !seen_any {
            self.signal_unseen(table);
        }
        if table.empty().is_none() && self.tracked.is_empty() {
            // A foreign tree: a sweep that finds nobody is the proof.
            self.phase = Phase::Done;
        }
        signalled
    }

    /// The signal a sweep may send our own children before its scan: the
    /// phase's, when nobody is exempt from it (CMD goes first and has
    /// exited; a group request would make CMD's group exempt). Children
    /// already signalled in this phase are skipped. Each child signalled
    /// goes on the record at once (one no scan has shown yet with only its
    /// PID). Returns the signal and the children it went to.
    fn signal_children_first(&mut self, table: &mut dyn ProcessTable) -> (i32, Vec<Pid>) {
        let sig = match self.phase {
            Phase::Forced => libc::SIGKILL,
            Phase::Graceful
                if !self.waiting_for_cmd && !self.first.as_ref().is_some_and(|f| f.group) =>
            {
                self.plan.stop_signal
            }
            _ => return (0, Vec::new()),
        };
        let skip: HashSet<Pid> = self
            .tracked
            .values()
            .filter(|t| {
                if sig == libc::SIGKILL {
                    t.killed
                } else {
                    t.stop_signalled
                }
            })
            .map(|t| t.member.pid())
            .collect();
        let pids = table.signal_children(sig, &skip);
        let after_ms = self.ms_since_start(table.now());
        for &pid in &pids {
            // CMD itself may be among them, with the stop request it got.
            let first = self.first.as_ref().filter(|f| f.cmd == pid);
            let t = self.tracked.entry(pid).or_insert_with(|| Tracked {
                member: Member::unscanned(pid),
                scanned: false,
                stop_signalled: first.is_some(),
                killed: false,
                held: false,
                watched: true,
                signals: first.map(First::sent).unwrap_or_default(),
            });
            t.signals.push(SentSignal::new(sig, after_ms));
            if sig == libc::SIGKILL {
                t.killed = true;
            } else {
                t.stop_signalled = true;
            }
            // Our child: its exit comes with its reaping.
            t.held = true;
            t.watched = true;
            self.signalled.insert(t.member.id);
        }
        (sig, pids)
    }

    /// The children signalled before the scan that the scan shows stopped
    /// get SIGCONT, to act on the stop signal.
    fn continue_early(&mut self, early: &(i32, Vec<Pid>), table: &mut dyn ProcessTable) {
        let (sig, pids) = early;
        if *sig == libc::SIGKILL {
            return;
        }
        for pid in pids {
            let Some(m) = self
                .tracked
                .get(pid)
                .filter(|t| t.scanned && t.member.stopped)
                .map(|t| t.member.clone())
            else {
                continue;
            };
            if table.signal(&m, libc::SIGCONT) != Delivery::Gone {
                let at = self.ms_since_start(table.now());
                if let Some(t) = self.tracked.get_mut(pid) {
                    t.signals.push(SentSignal::new(libc::SIGCONT, at));
                }
            }
        }
    }

    /// Takes the exits already queued, without waiting, in the middle of a
    /// sweep. A stop request among them is handled once the sweep is over.
    fn take_exits(&mut self, table: &mut dyn ProcessTable) {
        let mut events = Vec::new();
        if table.wait(Some(table.now()), &mut events).is_err() {
            return;
        }
        for ev in events {
            match ev {
                Event::Escalate(sig) => {
                    self.deferred_escalation.get_or_insert(sig);
                }
                // Not waiting for CMD (children are signalled first only
                // then): an exit cannot start another sweep from here.
                _ => self.on_event(ev, table),
            }
        }
    }

    /// Nobody is visible but the table knows the tree is not empty: reach
    /// the rest where the table can (PID 1).
    fn signal_unseen(&mut self, table: &mut dyn ProcessTable) {
        if table.empty() != Some(false) || self.unseen_signalled == Some(self.phase) {
            return;
        }
        let sig = match self.phase {
            Phase::Graceful if !self.waiting_for_cmd => self.plan.stop_signal,
            Phase::Forced => libc::SIGKILL,
            _ => return,
        };
        self.unseen_signalled = Some(self.phase);
        if table.signal_unseen(sig) {
            log::info(
                "teardown.signalled_unseen",
                &format!(
                    "/proc shows none of the processes left: sent {} to every process of the PID namespace",
                    signal::name(sig)
                ),
                json!({"signal": signal::name(sig)}),
            );
        }
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

    /// Notes a member a scan found: a new one is tracked (not yet held or
    /// signalled); a known one gets its state updated (a stopped process, a
    /// new parent after its own died).
    fn track(&mut self, m: Member, now: Instant) {
        if let Some(t) = self.tracked.get_mut(&m.pid()) {
            if !t.scanned {
                // A child of ours signalled before this scan: unreaped, so
                // this is that child; now it has a name. If it is in CMD's
                // group, it got the group's stop request before.
                if self.signalled.remove(&t.member.id) {
                    self.signalled.insert(m.id);
                }
                if let Some(f) = self
                    .first
                    .as_ref()
                    .filter(|f| f.covers(&m) && f.cmd != m.pid())
                {
                    let sent = f.sent();
                    if !sent.is_empty() {
                        self.signalled.insert(m.id);
                    }
                    t.stop_signalled = true;
                    t.signals.splice(0..0, sent);
                }
                t.member = m;
                t.scanned = true;
                return;
            }
            if t.member.id == m.id {
                t.member.stopped = m.stopped;
                t.member.ppid = m.ppid;
                if !t.watched {
                    self.unwatched = true;
                }
                return;
            }
            // The PID was recycled inside the tree: the process we held
            // ended unseen, and this one is new.
            let old = self.tracked.remove(&m.pid()).expect("tracked");
            self.record(old, now);
        }
        let mut t = Tracked {
            member: m,
            scanned: true,
            stop_signalled: false,
            killed: false,
            held: false,
            watched: true,
            signals: Vec::new(),
        };
        if let Some(f) = &self.first
            && f.covers(&t.member)
        {
            // It got the forwarded stop request before the teardown began.
            t.stop_signalled = true;
            t.signals = f.sent();
            if !t.signals.is_empty() {
                self.signalled.insert(t.member.id);
            }
        }
        self.tracked.insert(t.member.pid(), t);
    }

    /// What the current phase owes a tracked member: a signal (0: only to
    /// be held, so that its exit is reported), and SIGCONT after it.
    fn owed(&self, t: &Tracked) -> Option<(i32, bool)> {
        let (sig, cont) = self.phase_signal(&t.member);
        let sent = match sig {
            libc::SIGKILL => t.killed,
            0 => true,
            _ => t.stop_signalled,
        };
        match (sent, t.held) {
            (false, _) => Some((sig, cont)),
            (true, false) => Some((0, cont && self.phase != Phase::Forced)),
            (true, true) => None,
        }
    }

    /// Sends every member of `pids` what the phase owes it. Members of one
    /// process group that all owe the same signal go in one call when the
    /// table can prove the whole group is ours; the rest one by one.
    /// Returns how many processes were newly signalled.
    fn dispatch(&mut self, pids: &[Pid], table: &mut dyn ProcessTable) -> usize {
        let mut groups: HashMap<(i32, Pid), Vec<Member>> = HashMap::new();
        let mut single: Vec<(Member, i32, bool)> = Vec::new();
        for pid in pids {
            // A child no scan has shown is reached only through
            // `signal_children` (its identity is not known).
            let Some(t) = self.tracked.get(pid).filter(|t| t.scanned) else {
                continue;
            };
            match self.owed(t) {
                Some((sig, false)) if sig != 0 => groups
                    .entry((sig, t.member.pgrp))
                    .or_default()
                    .push(t.member.clone()),
                Some((sig, cont)) => single.push((t.member.clone(), sig, cont)),
                None => {}
            }
        }
        let mut signalled = 0;
        for ((sig, pgrp), members) in groups {
            let sent = if members.len() > 1 {
                table.signal_group(pgrp, &members, sig)
            } else {
                None
            };
            match sent {
                Some(deliveries) => {
                    for (m, d) in members.iter().zip(deliveries) {
                        signalled += self.note(m, sig, false, d, table.now());
                    }
                }
                None => single.extend(members.into_iter().map(|m| (m, sig, false))),
            }
        }
        for (m, sig, cont) in single {
            let mut d = table.signal(&m, sig);
            if cont && d != Delivery::Gone {
                d = table.signal(&m, libc::SIGCONT);
            }
            signalled += self.note(&m, sig, cont, d, table.now());
        }
        signalled
    }

    /// What the table said of a signal (and SIGCONT if `cont`) sent to a
    /// tracked member. A member that is gone is recorded as ended. Returns
    /// 1 if a real signal reached it.
    fn note(&mut self, m: &Member, sig: i32, cont: bool, d: Delivery, now: Instant) -> usize {
        let after_ms = self.ms_since_start(now);
        let Some(t) = self.tracked.get_mut(&m.pid()) else {
            return 0;
        };
        if d == Delivery::Gone {
            // It vanished between the scan and the signal: this signal did
            // not end it.
            let t = self.tracked.remove(&m.pid()).expect("tracked");
            self.record(t, now);
            return 0;
        }
        for s in [sig, if cont { libc::SIGCONT } else { 0 }] {
            if s != 0 {
                t.signals.push(SentSignal::new(s, after_ms));
                self.signalled.insert(m.id);
            }
        }
        match sig {
            libc::SIGKILL => t.killed = true,
            0 => {}
            _ => t.stop_signalled = true,
        }
        t.held = true;
        t.watched = d == Delivery::Watched;
        if !t.watched {
            self.unwatched = true;
        }
        if log::enabled(Level::Debug) && sig != 0 {
            log::debug(
                "process.signalled",
                &format!("sent {} to {} ({})", signal::name(sig), m.pid(), m.command),
                json!({"target_pid": m.pid(), "command": m.command, "signal": signal::name(sig),
                       "after_ms": after_ms}),
            );
        }
        usize::from(sig != 0)
    }

    /// Every tracked member gets what the phase owes it, seen by the last
    /// scan or not (a held process the scan cannot show is still reached
    /// through the table's hold on it).
    fn dispatch_all(&mut self, table: &mut dyn ProcessTable) -> usize {
        let pids: Vec<Pid> = self.tracked.keys().copied().collect();
        self.dispatch(&pids, table)
    }

    fn on_event(&mut self, ev: Event, table: &mut dyn ProcessTable) {
        match ev {
            Event::Ended(pid) => {
                if self.cmd.as_ref().is_some_and(|(c, _)| *c == pid) {
                    self.cmd_ended_ms = Some(self.ms_since_start(table.now()));
                }
                self.ended(pid, table.now());
                if self.waiting_for_cmd && self.first.as_ref().is_some_and(|f| f.cmd == pid) {
                    self.cmd_ended(table);
                }
            }
            Event::Escalate(sig) => self.escalate(sig, table),
            Event::Forwarded { signal, cmd, group } => {
                let after_ms = self.ms_since_start(table.now());
                for t in self.tracked.values_mut() {
                    if t.member.pid() == cmd || (group && t.member.pgrp == cmd) {
                        t.signals.push(SentSignal::new(signal, after_ms));
                        self.signalled.insert(t.member.id);
                    }
                }
                if !self.tracked.contains_key(&cmd) {
                    self.cmd_signals.push(SentSignal::new(signal, after_ms));
                }
            }
        }
    }

    /// CMD exited after the stop request: now the rest gets the stop
    /// signal, within what is left of the grace.
    fn cmd_ended(&mut self, table: &mut dyn ProcessTable) {
        self.waiting_for_cmd = false;
        if self.phase != Phase::Graceful {
            return;
        }
        let n = self.sweep(table) + self.dispatch_all(table);
        if n > 0 {
            log::info(
                "teardown.signalled",
                &format!(
                    "CMD exited: sent {} to {n} process(es)",
                    signal::name(self.plan.stop_signal)
                ),
                json!({"trigger": "cmd_exited", "signal": signal::name(self.plan.stop_signal),
                       "count": n}),
            );
        }
    }

    fn escalate(&mut self, sig: i32, table: &mut dyn ProcessTable) {
        match self.phase {
            Phase::Lingering => {
                log::info(
                    "teardown.stop_requested",
                    &format!(
                        "{} during the linger: ending the rest now",
                        signal::name(sig)
                    ),
                    json!({"signal": signal::name(sig)}),
                );
                self.enter_graceful(table);
            }
            Phase::Graceful => {
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
            _ => {}
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
        if table.now() < self.phase_deadline {
            return;
        }
        match self.phase {
            Phase::Lingering => self.enter_graceful(table),
            Phase::Graceful => {
                self.grace_timeout_hit = true;
                let left = self.tracked.len();
                log::info(
                    "teardown.grace_expired",
                    &format!("grace expired with {left} process(es) left: sending SIGKILL"),
                    json!({"left": left}),
                );
                self.enter_forced(table);
            }
            Phase::Forced => self.phase = Phase::Done,
            Phase::Done => {}
        }
    }

    fn enter_graceful(&mut self, table: &mut dyn ProcessTable) {
        self.phase = Phase::Graceful;
        self.phase_deadline = deadline(table.now(), self.plan.grace);
        let n = self.sweep(table) + self.dispatch_all(table);
        self.announce(n);
    }

    fn enter_forced(&mut self, table: &mut dyn ProcessTable) {
        // Exits already queued ended on the stop signal: take them first, so
        // they are not counted as killed.
        self.waiting_for_cmd = false;
        self.drain(table);
        self.phase = Phase::Forced;
        self.phase_deadline = deadline(table.now(), self.plan.kill_timeout);
        self.sweep(table);
        self.dispatch_all(table);
    }

    /// Takes the exits (and forwarded signals) already queued, without
    /// waiting: a bounded number of batches, so that a storm of signals
    /// cannot keep us here. Stop requests in them are dropped: the caller
    /// is moving on anyway.
    fn drain(&mut self, table: &mut dyn ProcessTable) {
        let mut events = Vec::new();
        for _ in 0..64 {
            events.clear();
            if table.wait(Some(table.now()), &mut events).is_err() {
                break;
            }
            let mut ended = false;
            for &ev in &events {
                match ev {
                    Event::Ended(_) => {
                        ended = true;
                        self.on_event(ev, table);
                    }
                    Event::Forwarded { .. } => self.on_event(ev, table),
                    Event::Escalate(_) => {}
                }
            }
            if !ended {
                break;
            }
        }
    }

    fn ms_since_start(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.started).as_millis() as u64
    }

    /// A held process ended: its outcome.
    fn record(&mut self, t: Tracked, now: Instant) {
        if !t.scanned && self.signalled.remove(&t.member.id) {
            self.signalled_unscanned += 1;
        }
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
            signals: t.signals,
        });
    }

    /// CMD's line in the report when no scan saw it: it ended by itself
    /// (or on the forwarded stop request) before the machine could hold it.
    fn record_unseen_cmd(&mut self, survivors: &[Survivor]) {
        let Some((pid, command)) = self.cmd.clone() else {
            return;
        };
        if self.outcomes.iter().any(|o| o.pid == pid) || survivors.iter().any(|s| s.pid == pid) {
            return;
        }
        let Some(after_ms) = self.cmd_ended_ms else {
            return;
        };
        let forwarded = self.first.as_ref().and_then(|f| f.forwarded);
        self.outcomes.push(ProcessOutcome {
            pid,
            command,
            ended_by: if forwarded.is_some() {
                EndedBy::StopSignal
            } else {
                EndedBy::Itself
            },
            after_ms,
            signals: self
                .first
                .as_ref()
                .map(First::sent)
                .unwrap_or_default()
                .into_iter()
                .chain(std::mem::take(&mut self.cmd_signals))
                .collect(),
        });
    }

    /// The line that says what the trigger made ocwrap signal.
    fn announce(&self, signalled: usize) {
        let waiting = self.waiting_for_cmd && self.first.is_some();
        if self.phase == Phase::Lingering || (!waiting && self.tracked.is_empty() && signalled == 0)
        {
            return;
        }
        let stop = signal::name(self.plan.stop_signal);
        let msg = match &self.first {
            Some(f) if self.waiting_for_cmd => format!(
                "{}: {} CMD ({}){}; the rest of the tree gets {stop} once CMD has exited",
                self.trigger,
                match f.forwarded {
                    Some(s) => format!("forwarded {} to", signal::name(s)),
                    None => "forwarded nothing to".into(),
                },
                f.cmd,
                if f.group { " and its group" } else { "" },
            ),
            _ => format!("{}: sent {stop} to {signalled} process(es)", self.trigger),
        };
        log::info(
            "teardown.signalled",
            &msg,
            json!({"trigger": self.trigger.to_string(), "signal": stop, "count": signalled}),
        );
    }

    /// Ends the teardown: survivors are whatever a last scan still finds.
    fn finish(mut self, table: &mut dyn ProcessTable) -> Summary {
        self.drain(table);
        let now = table.now();
        let empty = table.empty();
        let left: Vec<Member> = if empty == Some(true)
            || (self.phase == Phase::Done && self.tracked.is_empty() && empty.is_none())
        {
            Vec::new()
        } else {
            table.scan()
        };
        let unseen = left.is_empty() && empty == Some(false);
        let mut survivors = Vec::new();
        for m in left {
            let signals = self
                .tracked
                .remove(&m.pid())
                .map(|t| t.signals)
                .unwrap_or_default();
            survivors.push(Survivor {
                pid: m.pid(),
                command: m.command,
                signals,
            });
        }
        let held: Vec<Pid> = self.tracked.keys().copied().collect();
        for pid in held {
            let t = self.tracked.remove(&pid).expect("held");
            self.record(t, now);
        }
        // CMD got the forwarded stop request even if it was gone before a
        // scan could see it (and before `signal_children` reached it).
        let cmd_unseen = self.first.as_ref().is_some_and(|f| {
            f.forwarded.is_some()
                && !self.signalled.iter().any(|id| id.pid == f.cmd)
                && !self.outcomes.iter().any(|o| o.pid == f.cmd)
        });
        self.record_unseen_cmd(&survivors);
        let count = |e: EndedBy| self.outcomes.iter().filter(|o| o.ended_by == e).count();
        Summary {
            trigger: self.trigger.clone(),
            duration_ms: self.ms_since_start(now),
            ended_on_stop_signal: count(EndedBy::StopSignal),
            killed: count(EndedBy::Kill),
            signalled: self.signalled.len() + self.signalled_unscanned + usize::from(cmd_unseen),
            survivors,
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
