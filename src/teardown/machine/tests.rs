//! The state machine, driven by a fake process table on a fake clock: every
//! transition deterministically, without real processes or timing.

use std::collections::HashSet;

use super::*;
use crate::sys::Exit;

const MS: Duration = Duration::from_millis(1);

/// What a fake process does when it gets a signal.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reaction {
    /// Ends this long after the stop signal (SIGKILL ends it at once).
    DiesAfter(Duration),
    /// Ignores the stop signal; SIGKILL ends it.
    IgnoresTerm,
    /// Survives even SIGKILL (uninterruptible sleep).
    Unkillable,
    /// Ignores the stop signal; SIGKILL takes this long to end it (a
    /// process finishing a system call), and meanwhile it can still fork.
    KillTakes(Duration),
}

struct FakeProc {
    member: Member,
    in_tree: bool,
    alive: bool,
    reaction: Reaction,
    /// Whether a pidfd can be had for it.
    watchable: bool,
    dies_at: Option<Instant>,
    /// Dies the moment it is scanned (between scan and signal).
    vanishes_after_scan: bool,
    /// A child of ours: its exit is reported (by reaping) whether it is
    /// held or not.
    our_child: bool,
}

enum Action {
    Spawn(FakeProc),
    Escalate(i32),
    /// The table forwarded this signal to this CMD.
    Forward(i32, Pid),
}

/// A fake kernel: processes, a clock, and a log of every signal delivered.
struct Fake {
    now: Instant,
    procs: Vec<FakeProc>,
    scheduled: Vec<(Instant, Action)>,
    held: HashSet<ProcId>,
    delivered: Vec<(ProcId, i32, Duration)>,
    /// Identities the machine asked to signal that were no longer alive.
    stale: Vec<ProcId>,
    /// Own tree (the table knows when it is empty) or foreign.
    knows_empty: bool,
    /// Every "unseen" process counts for emptiness (processes /proc hides).
    hidden_count: bool,
    /// signal_unseen works (we are PID 1) and what it was asked.
    can_broadcast: bool,
    broadcasts: Vec<i32>,
    /// signal_group works, and what it was asked.
    groups_ok: bool,
    group_calls: Vec<(Pid, i32, usize)>,
    /// signal_children works (the table has children of its own).
    children_first: bool,
    /// What each scan returned.
    scans: Vec<Vec<Pid>>,
    cmd: Option<Pid>,
    start: Instant,
}

fn member(pid: Pid, start_time: u64) -> Member {
    Member {
        id: ProcId { pid, start_time },
        ppid: 1000,
        pgrp: pid,
        command: format!("p{pid}"),
        stopped: false,
    }
}

fn proc_(pid: Pid, reaction: Reaction) -> FakeProc {
    FakeProc {
        member: member(pid, pid as u64),
        in_tree: true,
        alive: true,
        reaction,
        watchable: true,
        dies_at: None,
        vanishes_after_scan: false,
        our_child: false,
    }
}

fn plan(grace_ms: u64, kill_ms: u64) -> Plan {
    Plan {
        stop_signal: libc::SIGTERM,
        grace: Duration::from_millis(grace_ms),
        kill_timeout: Duration::from_millis(kill_ms),
        linger: Duration::ZERO,
        names: true,
    }
}

fn first(cmd: Pid, group: bool) -> Option<First> {
    Some(First {
        cmd,
        group,
        forwarded: Some(libc::SIGTERM),
        continued: false,
        members: Vec::new(),
    })
}

impl Fake {
    fn new(procs: Vec<FakeProc>) -> Fake {
        let now = Instant::now();
        Fake {
            now,
            procs,
            scheduled: Vec::new(),
            held: HashSet::new(),
            delivered: Vec::new(),
            stale: Vec::new(),
            knows_empty: true,
            hidden_count: false,
            can_broadcast: false,
            broadcasts: Vec::new(),
            groups_ok: false,
            group_calls: Vec::new(),
            children_first: false,
            scans: Vec::new(),
            cmd: None,
            start: now,
        }
    }

    fn at(mut self, ms: u64, action: Action) -> Fake {
        self.scheduled
            .push((self.start + Duration::from_millis(ms), action));
        self
    }

    fn run(&mut self, plan: Plan, first: Option<First>) -> Summary {
        if let Some(f) = &first {
            for p in self.procs.iter_mut().filter(|p| p.member.pid() == f.cmd) {
                p.our_child = true;
            }
        }
        let trigger = match first {
            Some(_) => Trigger::Signal(libc::SIGTERM),
            None => Trigger::CmdExited(Exit::Code(0)),
        };
        self.run_for(plan, trigger, first)
    }

    fn run_for(&mut self, plan: Plan, trigger: Trigger, first: Option<First>) -> Summary {
        let mut td = Teardown::new(plan, trigger, first, self.now);
        if let Some(cmd) = self.cmd {
            td = td.with_cmd(cmd, format!("p{cmd}"));
        }
        td.run(self).expect("fake tables do not fail")
    }

    /// Names CMD to the machine, as the supervisor does.
    fn with_cmd(&mut self, pid: Pid) -> &mut Fake {
        self.cmd = Some(pid);
        self
    }

    fn signals_to(&self, pid: Pid) -> Vec<(i32, u64)> {
        self.delivered
            .iter()
            .filter(|(id, sig, _)| id.pid == pid && *sig != 0)
            .map(|(_, sig, t)| (*sig, t.as_millis() as u64))
            .collect()
    }

    fn get(&mut self, id: ProcId) -> Option<&mut FakeProc> {
        self.procs.iter_mut().find(|p| p.alive && p.member.id == id)
    }

    /// The earliest thing that will happen, if any.
    fn next_time(&self) -> Option<Instant> {
        let deaths = self
            .procs
            .iter()
            .filter(|p| p.alive)
            .filter_map(|p| p.dies_at);
        let actions = self.scheduled.iter().map(|(t, _)| *t);
        deaths.chain(actions).min()
    }

    /// Everything due at or before `self.now`.
    fn happen(&mut self, events: &mut Vec<Event>) {
        let now = self.now;
        for p in self.procs.iter_mut().filter(|p| p.alive) {
            if p.dies_at.is_some_and(|t| t <= now) {
                p.alive = false;
                if p.our_child || (self.held.contains(&p.member.id) && p.watchable) {
                    events.push(Event::Ended(p.member.pid()));
                }
            }
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.scheduled)
            .into_iter()
            .partition(|(t, _)| *t <= now);
        self.scheduled = later;
        for (_, action) in due {
            match action {
                Action::Spawn(p) => self.procs.push(p),
                Action::Escalate(sig) => events.push(Event::Escalate(sig)),
                Action::Forward(signal, cmd) => events.push(Event::Forwarded {
                    signal,
                    cmd,
                    group: false,
                }),
            }
        }
    }
}

impl ProcessTable for Fake {
    fn now(&self) -> Instant {
        self.now
    }

    fn scan(&mut self) -> Vec<Member> {
        let mut out = Vec::new();
        for p in self.procs.iter_mut().filter(|p| p.alive && p.in_tree) {
            out.push(p.member.clone());
            if p.vanishes_after_scan {
                p.alive = false;
            }
        }
        self.scans.push(out.iter().map(Member::pid).collect());
        out
    }

    fn signal_children(&mut self, sig: i32, skip: &HashSet<Pid>) -> Vec<Pid> {
        if !self.children_first {
            return Vec::new();
        }
        let kids: Vec<Member> = self
            .procs
            .iter()
            .filter(|p| p.alive && p.in_tree && p.our_child && !skip.contains(&p.member.pid()))
            .map(|p| p.member.clone())
            .collect();
        kids.iter()
            .filter(|m| self.signal(m, sig) != Delivery::Gone)
            .map(|m| m.pid())
            .collect()
    }

    fn signal_group(&mut self, pgrp: Pid, members: &[Member], sig: i32) -> Option<Vec<Delivery>> {
        if !self.groups_ok {
            return None;
        }
        self.group_calls.push((pgrp, sig, members.len()));
        Some(members.iter().map(|m| self.signal(m, sig)).collect())
    }

    fn signal_unseen(&mut self, sig: i32) -> bool {
        self.broadcasts.push(sig);
        if self.can_broadcast && sig == libc::SIGKILL {
            for p in self.procs.iter_mut().filter(|p| p.alive && !p.in_tree) {
                p.dies_at = Some(self.now + MS);
            }
        }
        self.can_broadcast
    }

    fn signal(&mut self, m: &Member, sig: i32) -> Delivery {
        let now = self.now;
        let since = now - self.start;
        let Some(p) = self.get(m.id) else {
            self.stale.push(m.id);
            return Delivery::Gone;
        };
        let watchable = p.watchable;
        match (sig, p.reaction) {
            (libc::SIGKILL, Reaction::Unkillable) => {}
            (libc::SIGKILL, Reaction::KillTakes(d)) => p.dies_at = Some(now + d),
            (libc::SIGKILL, _) => p.dies_at = Some(now + MS),
            (libc::SIGTERM, Reaction::DiesAfter(d)) => {
                p.dies_at = Some(p.dies_at.map_or(now + d, |t| t.min(now + d)))
            }
            (libc::SIGCONT, _) => p.member.stopped = false,
            _ => {}
        }
        self.delivered.push((m.id, sig, since));
        self.held.insert(m.id);
        if watchable {
            Delivery::Watched
        } else {
            Delivery::Unwatched
        }
    }

    fn wait(&mut self, deadline: Option<Instant>, events: &mut Vec<Event>) -> io::Result<()> {
        match (self.next_time(), deadline) {
            (Some(t), Some(d)) if t < d || (t <= d && d <= self.now) => self.now = self.now.max(t),
            (_, Some(d)) => {
                self.now = self.now.max(d);
                return Ok(());
            }
            (Some(t), None) => self.now = self.now.max(t),
            (None, None) => panic!("the machine would wait forever"),
        }
        self.happen(events);
        Ok(())
    }

    fn empty(&mut self) -> Option<bool> {
        let hidden = self.hidden_count;
        self.knows_empty
            .then(|| !self.procs.iter().any(|p| p.alive && (p.in_tree || hidden)))
    }
}

fn ms(s: &Summary) -> u64 {
    s.duration_ms
}

fn outcome(s: &Summary, pid: Pid) -> Vec<EndedBy> {
    s.processes
        .iter()
        .filter(|o| o.pid == pid)
        .map(|o| o.ended_by)
        .collect()
}

#[test]
fn returns_the_moment_the_tree_is_empty() {
    let mut fake = Fake::new(vec![
        proc_(10, Reaction::DiesAfter(5 * MS)),
        proc_(11, Reaction::DiesAfter(12 * MS)),
    ]);
    let s = fake.run(plan(10_000, 5_000), None);
    assert!(s.clean(), "{s:?}");
    assert_eq!(ms(&s), 12, "ends with the last exit, not with the grace");
    assert_eq!(s.ended_on_stop_signal, 2);
    assert_eq!(s.killed, 0);
    assert!(!s.grace_timeout_hit);
    assert_eq!(fake.signals_to(10), vec![(libc::SIGTERM, 0)]);
}

#[test]
fn an_empty_tree_ends_at_once_without_a_sweep() {
    let mut fake = Fake::new(vec![]);
    let s = fake.run(plan(10_000, 5_000), None);
    assert!(s.clean());
    assert_eq!((ms(&s), s.sweeps), (0, 0));
}

#[test]
fn grace_expiry_sends_sigkill_to_what_is_left() {
    let mut fake = Fake::new(vec![
        proc_(10, Reaction::DiesAfter(5 * MS)),
        proc_(11, Reaction::IgnoresTerm),
    ]);
    let s = fake.run(plan(2_000, 5_000), None);
    assert!(s.clean(), "{s:?}");
    assert!(s.grace_timeout_hit);
    assert_eq!(
        fake.signals_to(11),
        vec![(libc::SIGTERM, 0), (libc::SIGKILL, 2_000)]
    );
    assert_eq!(fake.signals_to(10), vec![(libc::SIGTERM, 0)]);
    assert_eq!(outcome(&s, 11), vec![EndedBy::Kill]);
    assert_eq!(outcome(&s, 10), vec![EndedBy::StopSignal]);
    assert_eq!(ms(&s), 2_001);
}

#[test]
fn a_second_stop_request_escalates_at_once() {
    let mut fake =
        Fake::new(vec![proc_(10, Reaction::IgnoresTerm)]).at(300, Action::Escalate(libc::SIGINT));
    let s = fake.run(plan(10_000, 5_000), None);
    assert!(s.escalated && !s.grace_timeout_hit, "{s:?}");
    assert_eq!(
        fake.signals_to(10),
        vec![(libc::SIGTERM, 0), (libc::SIGKILL, 300)]
    );
    assert_eq!(ms(&s), 301);
}

#[test]
fn a_resweep_finds_processes_born_during_the_teardown() {
    // 10 forks 20 before it dies; 20 was not there at the first scan.
    let mut fake = Fake::new(vec![proc_(10, Reaction::DiesAfter(50 * MS))])
        .at(10, Action::Spawn(proc_(20, Reaction::DiesAfter(5 * MS))));
    let s = fake.run(plan(10_000, 5_000), None);
    assert!(s.clean(), "{s:?}");
    assert_eq!(fake.signals_to(20), vec![(libc::SIGTERM, 50)]);
    assert_eq!(outcome(&s, 20), vec![EndedBy::StopSignal]);
    assert_eq!(ms(&s), 55);
    assert_eq!(s.sweeps, 2);
}

#[test]
fn the_forced_phase_resweeps_for_children_forked_by_a_dying_parent() {
    let mut fake = Fake::new(vec![proc_(10, Reaction::KillTakes(100 * MS))])
        .at(1_010, Action::Spawn(proc_(20, Reaction::IgnoresTerm)));
    let s = fake.run(plan(1_000, 5_000), None);
    assert!(s.clean(), "{s:?}");
    // 20 appeared after the forced phase's first sweep: the periodic sweep
    // 50 ms later kills it.
    assert_eq!(fake.signals_to(20), vec![(libc::SIGKILL, 1_050)]);
}

#[test]
fn survivors_of_the_kill_timeout_are_reported() {
    let mut fake = Fake::new(vec![
        proc_(10, Reaction::Unkillable),
        proc_(11, Reaction::DiesAfter(MS)),
    ]);
    let s = fake.run(plan(1_000, 2_000), None);
    assert!(!s.clean());
    assert_eq!(
        s.survivors,
        vec![Survivor {
            pid: 10,
            command: "p10".into(),
            signals: vec![SentSignal::new(15, 0), SentSignal::new(9, 1_000)],
        }]
    );
    assert_eq!(ms(&s), 3_000, "grace + kill-timeout, not a moment longer");
    assert!(outcome(&s, 10).is_empty(), "a survivor has no outcome");
}

#[test]
fn a_process_that_vanishes_between_scan_and_signal_is_not_signalled() {
    let mut p = proc_(10, Reaction::IgnoresTerm);
    p.vanishes_after_scan = true;
    let mut fake = Fake::new(vec![p, proc_(11, Reaction::DiesAfter(MS))]);
    let s = fake.run(plan(1_000, 1_000), None);
    assert!(s.clean(), "{s:?}");
    assert!(fake.signals_to(10).is_empty());
    assert_eq!(outcome(&s, 10), vec![EndedBy::Itself]);
    assert_eq!(ms(&s), 1);
}

#[test]
fn a_pid_recycled_inside_the_tree_is_a_new_process() {
    // 10 (start time 10) ends unseen (no pidfd); its PID comes back as a
    // new process of the tree (start time 99) that must get its own stop
    // signal, not be taken for the one already signalled.
    let mut old = proc_(10, Reaction::DiesAfter(5 * MS));
    old.watchable = false;
    let mut new = proc_(10, Reaction::DiesAfter(5 * MS));
    new.member.id.start_time = 99;
    let mut fake =
        Fake::new(vec![old, proc_(11, Reaction::DiesAfter(200 * MS))]).at(10, Action::Spawn(new));
    let s = fake.run(plan(10_000, 5_000), None);
    assert!(s.clean(), "{s:?}");
    let new_id = ProcId {
        pid: 10,
        start_time: 99,
    };
    let got: Vec<_> = fake
        .delivered
        .iter()
        .filter(|(id, _, _)| *id == new_id)
        .map(|(_, sig, _)| *sig)
        .collect();
    assert_eq!(got, vec![libc::SIGTERM]);
    assert_eq!(
        outcome(&s, 10),
        vec![EndedBy::StopSignal, EndedBy::StopSignal]
    );
}

#[test]
fn a_pid_recycled_outside_the_tree_is_never_signalled() {
    // 10 ends unseen (no pidfd) and its PID goes to a stranger outside the
    // tree; at the end of the grace only the stale identity is asked
    // about, and the stranger never gets anything.
    let mut old = proc_(10, Reaction::DiesAfter(5 * MS));
    old.watchable = false;
    let mut stranger = proc_(10, Reaction::DiesAfter(MS));
    stranger.in_tree = false;
    stranger.member.id.start_time = 99;
    let mut fake =
        Fake::new(vec![old, proc_(11, Reaction::IgnoresTerm)]).at(6, Action::Spawn(stranger));
    let s = fake.run(plan(1_000, 1_000), None);
    assert!(s.clean(), "{s:?}");
    assert!(
        !fake.delivered.iter().any(|(id, _, _)| id.start_time == 99),
        "the stranger was signalled: {:?}",
        fake.delivered
    );
    assert_eq!(outcome(&s, 10), vec![EndedBy::StopSignal]);
    assert_eq!(outcome(&s, 11), vec![EndedBy::Kill]);
}

#[test]
fn a_process_without_pidfd_is_watched_by_resweeping() {
    let mut p = proc_(10, Reaction::DiesAfter(30 * MS));
    p.watchable = false;
    let mut fake = Fake::new(vec![p]);
    let s = fake.run(plan(10_000, 5_000), None);
    assert!(s.clean(), "{s:?}");
    assert_eq!(ms(&s), 30, "the own tree knows when it is empty");
    let mut p = proc_(10, Reaction::DiesAfter(30 * MS));
    p.watchable = false;
    let mut foreign = Fake::new(vec![p]);
    foreign.knows_empty = false;
    let s = foreign.run(plan(10_000, 5_000), None);
    assert!(s.clean(), "{s:?}");
    assert_eq!(ms(&s), 40, "seen gone by the sweep 20 ms after the last");
}

#[test]
fn a_foreign_tree_ends_with_a_sweep_that_finds_nobody() {
    let mut fake = Fake::new(vec![proc_(10, Reaction::DiesAfter(7 * MS))]);
    fake.knows_empty = false;
    let s = fake.run(plan(10_000, 5_000), None);
    assert!(s.clean(), "{s:?}");
    assert_eq!((ms(&s), s.sweeps), (7, 2));
}

#[test]
fn cmd_goes_first_and_the_rest_gets_the_stop_signal_once_it_exited() {
    let mut stopped = proc_(11, Reaction::DiesAfter(5 * MS));
    stopped.member.stopped = true;
    let mut fake = Fake::new(vec![
        proc_(10, Reaction::DiesAfter(5 * MS)),
        stopped,
        proc_(12, Reaction::DiesAfter(5 * MS)),
    ]);
    // It got the forwarded stop request before the teardown started.
    fake.procs[0].dies_at = Some(fake.start + 100 * MS);
    let s = fake.with_cmd(10).run(plan(10_000, 5_000), first(10, false));
    assert!(s.clean(), "{s:?}");
    // CMD already has its stop request (the supervisor also continued it
    // if it was stopped): nothing more from the machine…
    assert!(fake.signals_to(10).is_empty(), "{:?}", fake.delivered);
    // …and the rest waits for it, not even scanned meanwhile.
    assert_eq!(
        fake.signals_to(11),
        vec![(libc::SIGTERM, 100), (libc::SIGCONT, 100)]
    );
    assert_eq!(fake.signals_to(12), vec![(libc::SIGTERM, 100)]);
    assert_eq!(ms(&s), 105);
    assert_eq!(s.sweeps, 1, "one scan, once CMD had exited");
    // The report says what CMD got, and when: the forwarded request at 0.
    let cmd = line(&s, 10);
    let got: Vec<_> = cmd
        .signals
        .iter()
        .map(|x| (x.signal.as_str(), x.after_ms))
        .collect();
    assert_eq!(got, [("SIGTERM", 0)]);
    assert_eq!((cmd.after_ms, cmd.ended_by), (100, EndedBy::StopSignal));
    assert_eq!(s.signalled, 3);
}

#[test]
fn a_cmd_that_takes_the_whole_grace_leaves_the_rest_to_sigkill() {
    let mut fake = Fake::new(vec![
        proc_(10, Reaction::IgnoresTerm),
        proc_(11, Reaction::DiesAfter(5 * MS)),
    ]);
    let s = fake.run(plan(1_000, 5_000), first(10, false));
    assert!(s.clean(), "{s:?}");
    assert_eq!(fake.signals_to(11), vec![(libc::SIGKILL, 1_000)]);
    assert_eq!(fake.signals_to(10), vec![(libc::SIGKILL, 1_000)]);
    assert_eq!(
        ms(&s),
        1_001,
        "bounded by grace + kill-timeout from the request"
    );
}

#[test]
fn a_group_request_covers_every_member_of_cmds_group() {
    let mut a = proc_(10, Reaction::DiesAfter(MS));
    a.member.pgrp = 10;
    let mut b = proc_(11, Reaction::DiesAfter(MS));
    b.member.pgrp = 10;
    let mut fake = Fake::new(vec![a, b, proc_(12, Reaction::DiesAfter(MS))]);
    // The group got the forwarded stop request before the teardown started.
    for p in &mut fake.procs[..2] {
        p.dies_at = Some(fake.start + 3 * MS);
    }
    // The supervisor saw the group's members before it sent the request.
    let mut f = first(10, true).unwrap();
    f.members = vec![fake.procs[0].member.clone(), fake.procs[1].member.clone()];
    let s = fake.run(plan(10_000, 5_000), Some(f));
    assert!(fake.signals_to(10).is_empty() && fake.signals_to(11).is_empty());
    assert_eq!(fake.signals_to(12), vec![(libc::SIGTERM, 3)]);
    assert!(s.clean());
    assert_eq!(outcome(&s, 11), vec![EndedBy::StopSignal]);
}

#[test]
fn a_forwarded_signal_during_the_teardown_is_on_the_record() {
    let mut fake = Fake::new(vec![proc_(10, Reaction::IgnoresTerm)]);
    fake.procs[0].dies_at = Some(fake.start + 50 * MS);
    fake.scheduled
        .push((fake.start + 20 * MS, Action::Forward(libc::SIGUSR1, 10)));
    let s = fake.with_cmd(10).run(plan(10_000, 5_000), first(10, false));
    let got: Vec<_> = s.processes[0]
        .signals
        .iter()
        .map(|x| (x.signal.as_str(), x.after_ms))
        .collect();
    assert_eq!(got, [("SIGTERM", 0), ("SIGUSR1", 20)]);
}

#[test]
fn lingering_lets_the_rest_end_on_its_own() {
    let mut fake = Fake::new(vec![proc_(11, Reaction::IgnoresTerm)]);
    fake.procs[0].dies_at = Some(fake.start + 300 * MS);
    let mut p = plan(10_000, 5_000);
    p.linger = Duration::from_secs(30);
    let s = fake.run(p, None);
    assert!(s.clean(), "{s:?}");
    assert!(fake.signals_to(11).is_empty(), "{:?}", fake.delivered);
    assert_eq!(outcome(&s, 11), vec![EndedBy::Itself]);
    assert_eq!((ms(&s), s.signalled), (300, 0));
}

#[test]
fn after_the_linger_the_rest_gets_the_full_teardown() {
    let mut fake = Fake::new(vec![proc_(11, Reaction::IgnoresTerm)]);
    let mut p = plan(2_000, 5_000);
    p.linger = Duration::from_secs(1);
    let s = fake.run(p, None);
    assert!(s.clean(), "{s:?}");
    assert_eq!(
        fake.signals_to(11),
        vec![(libc::SIGTERM, 1_000), (libc::SIGKILL, 3_000)]
    );
}

#[test]
fn a_stop_request_during_the_linger_starts_the_graceful_phase_at_once() {
    let mut fake = Fake::new(vec![proc_(11, Reaction::DiesAfter(10 * MS))])
        .at(200, Action::Escalate(libc::SIGTERM));
    let mut p = plan(2_000, 5_000);
    p.linger = Duration::from_secs(30);
    let s = fake.run(p, None);
    assert!(s.clean() && !s.escalated, "{s:?}");
    assert_eq!(fake.signals_to(11), vec![(libc::SIGTERM, 200)]);
    assert_eq!(ms(&s), 210);
}

#[test]
fn a_stop_request_does_not_linger() {
    let mut fake = Fake::new(vec![
        proc_(10, Reaction::DiesAfter(MS)),
        proc_(11, Reaction::DiesAfter(MS)),
    ]);
    fake.procs[0].dies_at = Some(fake.start + 10 * MS);
    let mut p = plan(2_000, 5_000);
    p.linger = Duration::from_secs(30);
    let s = fake.run(p, first(10, false));
    assert_eq!(fake.signals_to(11), vec![(libc::SIGTERM, 10)]);
    assert_eq!(ms(&s), 11);
}

#[test]
fn as_pid_1_processes_proc_cannot_show_are_still_reached() {
    let mut hidden = proc_(10, Reaction::IgnoresTerm);
    hidden.in_tree = false;
    let mut fake = Fake::new(vec![hidden]);
    fake.hidden_count = true;
    fake.can_broadcast = true;
    let s = fake.run(plan(1_000, 1_000), None);
    assert_eq!(fake.broadcasts, vec![libc::SIGTERM, libc::SIGKILL]);
    assert!(s.clean(), "{s:?}");
    assert_eq!(ms(&s), 1_001);
}

#[test]
fn unseen_children_are_not_a_success() {
    // The table knows processes are left but the scan cannot show them,
    // and it has no way to reach them (not PID 1).
    let mut hidden = proc_(10, Reaction::IgnoresTerm);
    hidden.in_tree = false;
    let mut fake = Fake::new(vec![hidden]);
    fake.hidden_count = true;
    let s = fake.run_for(plan(100, 100), Trigger::Signal(libc::SIGTERM), None);
    assert!(s.unseen && !s.clean(), "{s:?}");
    assert!(s.survivors.is_empty());
    assert_eq!(fake.broadcasts, vec![libc::SIGTERM, libc::SIGKILL]);
}

#[test]
fn a_group_member_that_ends_before_the_first_sweep_is_on_the_record() {
    // Seen in CMD's group right before the group request; gone by the
    // teardown's first scan.
    let mut fake = Fake::new(vec![proc_(10, Reaction::DiesAfter(MS))]);
    fake.procs[0].dies_at = Some(fake.start + 20 * MS);
    let mut early = member(11, 11);
    early.pgrp = 10;
    let mut f = first(10, true).unwrap();
    f.members = vec![early];
    let s = fake.run(plan(10_000, 5_000), Some(f));
    assert!(s.clean(), "{s:?}");
    let got = s
        .processes
        .iter()
        .find(|o| o.pid == 11)
        .expect("on the record");
    assert_eq!(got.ended_by, EndedBy::StopSignal);
    assert_eq!(got.signals, vec![SentSignal::new(libc::SIGTERM, 0)]);
    assert_eq!(s.signalled, 2);
}

#[test]
fn a_group_of_the_tree_gets_one_signal_and_each_member_its_outcome() {
    let mut procs: Vec<FakeProc> = (10..15)
        .map(|p| proc_(p, Reaction::DiesAfter(MS)))
        .collect();
    for p in &mut procs {
        p.member.pgrp = 10;
    }
    procs.push(proc_(20, Reaction::DiesAfter(MS)));
    let mut fake = Fake::new(procs);
    fake.groups_ok = true;
    let s = fake.run(plan(10_000, 5_000), None);
    assert!(s.clean(), "{s:?}");
    assert_eq!(fake.group_calls, vec![(10, libc::SIGTERM, 5)]);
    assert_eq!(s.ended_on_stop_signal, 6);
    for pid in 10..15 {
        assert_eq!(outcome(&s, pid), vec![EndedBy::StopSignal], "{pid}");
    }
    // Where the table cannot prove the group ours: one by one.
    let mut procs: Vec<FakeProc> = (10..13)
        .map(|p| proc_(p, Reaction::DiesAfter(MS)))
        .collect();
    for p in &mut procs {
        p.member.pgrp = 10;
    }
    let mut fake = Fake::new(procs);
    let s = fake.run(plan(10_000, 5_000), None);
    assert!(s.clean() && fake.group_calls.is_empty());
    assert_eq!(fake.signals_to(11), vec![(libc::SIGTERM, 0)]);
}

#[test]
fn our_children_are_signalled_before_the_scan_and_accounted_from_it() {
    let mut kid = proc_(10, Reaction::DiesAfter(5 * MS));
    kid.our_child = true;
    let mut stopped = proc_(11, Reaction::DiesAfter(5 * MS));
    stopped.our_child = true;
    stopped.member.stopped = true;
    let grandchild = proc_(20, Reaction::DiesAfter(5 * MS));
    let mut fake = Fake::new(vec![kid, stopped, grandchild]);
    fake.children_first = true;
    let s = fake.run(plan(10_000, 5_000), None);
    assert!(s.clean(), "{s:?}");
    // Each got exactly one stop signal (the stopped child a SIGCONT too).
    assert_eq!(fake.signals_to(10), vec![(libc::SIGTERM, 0)]);
    assert_eq!(
        fake.signals_to(11),
        vec![(libc::SIGTERM, 0), (libc::SIGCONT, 0)]
    );
    assert_eq!(fake.signals_to(20), vec![(libc::SIGTERM, 0)]);
    assert_eq!(s.ended_on_stop_signal, 3);
    let o = line(&s, 11);
    let got: Vec<_> = o.signals.iter().map(|x| x.signal.as_str()).collect();
    assert_eq!(got, ["SIGTERM", "SIGCONT"]);
}

/// A plan without names (no `--report`, no debug log).
fn unnamed(grace_ms: u64, kill_ms: u64) -> Plan {
    Plan {
        names: false,
        ..plan(grace_ms, kill_ms)
    }
}

/// The report's line for `pid`.
fn line(s: &Summary, pid: Pid) -> &ProcessOutcome {
    s.processes
        .iter()
        .find(|o| o.pid == pid)
        .expect("a line for it")
}

/// Three of ours: 10 dies the moment it gets the stop signal, 11 ignores it,
/// and 20 is a grandchild.
fn children_dying_at_once() -> Fake {
    let mut quick = proc_(10, Reaction::DiesAfter(Duration::ZERO));
    quick.our_child = true;
    let mut stubborn = proc_(11, Reaction::IgnoresTerm);
    stubborn.our_child = true;
    let grandchild = proc_(20, Reaction::DiesAfter(5 * MS));
    let mut fake = Fake::new(vec![quick, stubborn, grandchild]);
    fake.children_first = true;
    fake
}

#[test]
fn without_names_children_already_dead_are_reaped_before_the_scan() {
    let mut fake = children_dying_at_once();
    let s = fake.run(unnamed(100, 5_000), None);
    assert!(s.clean(), "{s:?}");
    // The scan never saw 10: it was reaped first, and its exit accounts
    // for it. Nobody got a signal twice.
    assert_eq!(fake.scans[0], vec![11, 20]);
    assert_eq!(fake.signals_to(10), vec![(libc::SIGTERM, 0)]);
    assert_eq!(
        fake.signals_to(11),
        vec![(libc::SIGTERM, 0), (libc::SIGKILL, 100)]
    );
    assert_eq!(fake.signals_to(20), vec![(libc::SIGTERM, 0)]);
    let quick = line(&s, 10);
    assert_eq!(quick.ended_by, EndedBy::StopSignal);
    assert_eq!(quick.command, "");
    let got: Vec<_> = quick.signals.iter().map(|x| x.signal.as_str()).collect();
    assert_eq!(got, ["SIGTERM"]);
    // The others have their names, from the scan.
    let stubborn = line(&s, 11);
    assert_eq!(
        (stubborn.command.as_str(), stubborn.ended_by),
        ("p11", EndedBy::Kill)
    );
    assert_eq!((s.signalled, s.ended_on_stop_signal, s.killed), (3, 2, 1));
}

#[test]
fn with_names_the_scan_reads_every_child_before_it_is_reaped() {
    let mut fake = children_dying_at_once();
    let s = fake.run(plan(100, 5_000), None);
    assert!(s.clean(), "{s:?}");
    assert_eq!(fake.scans[0], vec![10, 11, 20]);
    let quick = line(&s, 10);
    assert_eq!(
        (quick.command.as_str(), quick.ended_by),
        ("p10", EndedBy::StopSignal)
    );
    assert_eq!((s.signalled, s.ended_on_stop_signal, s.killed), (3, 2, 1));
}

#[test]
fn a_stop_request_among_the_exits_a_sweep_takes_is_not_lost() {
    // The second stop request comes with the first exits, which the sweep
    // takes before its scan: it still escalates to SIGKILL at once.
    let mut fake = children_dying_at_once().at(0, Action::Escalate(libc::SIGTERM));
    let s = fake.run(unnamed(10_000, 5_000), None);
    assert!(s.clean() && s.escalated, "{s:?}");
    assert_eq!(
        fake.signals_to(11),
        vec![(libc::SIGTERM, 0), (libc::SIGKILL, 0)]
    );
    assert!(ms(&s) < 100, "{s:?}");
}

#[test]
fn a_cmd_killed_before_any_scan_keeps_the_stop_request_it_got_on_its_record() {
    // CMD ignores the forwarded SIGTERM; at the end of the grace SIGKILL
    // reaches it (our child) before the forced phase's scan, and it dies at
    // once: its line still shows both signals, and it counts once.
    let mut cmd = proc_(10, Reaction::KillTakes(Duration::ZERO));
    cmd.our_child = true;
    let mut fake = Fake::new(vec![cmd]);
    fake.children_first = true;
    let s = fake
        .with_cmd(10)
        .run(unnamed(1_000, 5_000), first(10, false));
    assert!(s.clean(), "{s:?}");
    assert!(
        fake.scans.iter().all(|scan| !scan.contains(&10)),
        "{:?}",
        fake.scans
    );
    let o = line(&s, 10);
    let got: Vec<_> = o
        .signals
        .iter()
        .map(|x| (x.signal.as_str(), x.after_ms))
        .collect();
    assert_eq!(got, [("SIGTERM", 0), ("SIGKILL", 1_000)]);
    assert_eq!((o.ended_by, s.signalled, s.killed), (EndedBy::Kill, 1, 1));
}
