//! The supervisor: one single-threaded event loop per supervised command.
//!
//! # Theory of operation
//!
//! Like tini, ocwrap blocks every signal it handles *before* the child
//! exists and takes them synchronously: here from a signalfd, which sits in
//! one epoll set with whatever else the loop waits for (the teardown's
//! pidfds, opencode's stdout for `spawn`). Nothing runs in a signal handler
//! and no thread exists, so there is no race between two mechanisms.
//!
//! Two states:
//! - **Running** (CMD is alive): forward signals, reap orphans as their
//!   SIGCHLD arrives, sleep in `epoll_wait` with no timeout — zero wake-ups
//!   while idle. It ends with a [`Trigger`]: CMD exited, a terminating
//!   signal arrived (forwarded to CMD first), or the attachment asked (a
//!   workspace that never got ready).
//! - **Tearing down**: the [`Teardown`] machine, run over [`OwnTree`], the
//!   process table of our own tree. As a child subreaper we are the parent
//!   of every orphan in the tree, so the tree is empty exactly when
//!   `waitpid` says we have no children left: one syscall, not a scan.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::RawFd;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;

use crate::exit_code::{SpawnError, describe};
use crate::proc::{self, Owner, Snapshot};
use crate::signal::{self, Role};
use crate::sys::{self, ChildSetup, ChildState, Epoll, Exit, Pid, Received, SigSet, SignalFd};
use crate::teardown::kernel::{self, Holder};
use crate::teardown::{
    Delivery, Event, First, Member, Plan, ProcessTable, Summary, Teardown, Trigger,
};

const TOKEN_SIGNALS: u64 = 0;
const TOKEN_ATTACHMENT: u64 = 1;

/// Set in CMD's environment: the PID of the ocwrap that supervises it. A
/// nested ocwrap (a workspace started by a supervised app) does not count
/// its enclosing ocwrap's stop signal as a second request.
pub const SUPERVISOR_VAR: &str = "OCWRAP_SUPERVISOR_PID";

/// Where forwarded signals go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ForwardTo {
    /// CMD alone
    Child,
    /// CMD's whole process group
    Group,
}

/// How a command is supervised.
#[derive(Clone, Debug)]
pub struct Config {
    pub plan: Plan,
    pub forward_to: ForwardTo,
    /// What CMD gets if ocwrap dies.
    pub pdeath_signal: i32,
    /// `--rewrite FROM:TO` (TO 0: dropped).
    pub rewrites: Vec<(i32, i32)>,
    /// ocwrap's own parent dying is a stop request (a foreground `spawn`,
    /// or the npm launcher): ocwrap arms SIGTERM as its parent-death signal
    /// once its signals are blocked, and if the parent is already gone,
    /// it stops at once.
    pub stop_with_parent: Option<Pid>,
}

/// Something else the loop watches while CMD runs (opencode's stdout).
pub trait Attachment {
    fn fd(&self) -> Option<RawFd>;
    /// Wake-up needed even if nothing happens (a readiness timeout).
    fn deadline(&self) -> Option<Instant>;
    /// The fd is readable. Returns a trigger to start the teardown.
    fn on_readable(&mut self) -> Option<Trigger>;
    /// The deadline passed. Returns a trigger to start the teardown.
    fn on_deadline(&mut self) -> Option<Trigger>;
}

/// The end of a supervised run.
pub struct Finished {
    /// How CMD ended, if it was reaped.
    pub child_exit: Option<Exit>,
    pub summary: Summary,
    /// Orphans that were re-parented to us and reaped.
    pub orphans: u64,
}

/// Who may send a stop request during the teardown without it counting as
/// a second one.
struct Orderly {
    /// The ocwrap that supervises ours, if any.
    enclosing: Option<Pid>,
    /// Our parent when we started: its parent-death signal is its last word.
    parent: Pid,
}

impl Orderly {
    /// The parent's last word: our parent-death signal names the dying
    /// parent as its sender, and it comes again each time the kernel moves
    /// us from one of the parent's exiting threads to the next, while
    /// `getppid` still names the parent. A signal from a parent that is not
    /// ending is its own (a second stop request, forwarded by a launcher).
    fn covers(&self, r: &Received) -> bool {
        r.sender > 0
            && (Some(r.sender) == self.enclosing
                || (r.sender == self.parent
                    && (sys::getppid() != self.parent || proc::is_ending(self.parent))))
    }
}

pub struct Supervisor {
    config: Config,
    sigfd: SignalFd,
    epoll: Epoll,
    child: Pid,
    child_exit: Option<Exit>,
    /// What the last `waitpid` said: false once we have no child at all.
    has_children: bool,
    /// CMD was given the terminal when it started (job control hands it
    /// back and forth from then on).
    owns_terminal: bool,
    /// The terminal is CMD's right now.
    took_terminal: bool,
    orphans: u64,
    orderly: Orderly,
    /// Signals to take before reading the signalfd again: the rest of the
    /// batch that started the teardown, or a stop request of our own.
    carried: Vec<Received>,
    /// CMD's stdout, when the command asked for a pipe (`spawn`).
    stdout: Option<std::fs::File>,
    /// CMD's name, as `/proc` shows a command (its file name, 15 bytes).
    program: String,
}

impl Supervisor {
    /// Blocks the handled signals, becomes a subreaper and starts `cmd` in a
    /// new process group. Must run before any other child exists.
    pub fn start(config: Config, cmd: &mut Command) -> Result<Supervisor, SpawnError> {
        let handled = signal::handled();
        let ignored = sys::inherited_ignored(&handled);
        let (sigfd, epoll) = Self::set_up(&handled, &ignored).map_err(SpawnError::Other)?;
        let mut carried = Vec::new();
        if let Some(parent) = config.stop_with_parent
            && !Self::arm_parent_death(parent).map_err(SpawnError::Other)?
        {
            carried.push(Received {
                signal: libc::SIGTERM,
                sender: 0,
                from_kernel: true,
            });
        }
        let orderly = Orderly {
            enclosing: std::env::var(SUPERVISOR_VAR)
                .ok()
                .and_then(|v| v.parse().ok()),
            parent: sys::getppid(),
        };
        let take_terminal = sys::stdin_tty_foreground();
        // Through our own environment, which CMD inherits: `Command::env`
        // would copy the whole environment into a map for every start.
        sys::set_own_env(SUPERVISOR_VAR, &sys::getpid().to_string());
        if std::env::var_os(LAUNCHER_VAR).is_some() {
            cmd.env_remove(LAUNCHER_VAR);
        }
        sys::configure_child(
            cmd,
            ChildSetup {
                pdeath_signal: Some(config.pdeath_signal),
                take_terminal,
                parent: sys::getpid(),
                ignored,
            },
        );
        let program = cmd.get_program().to_string_lossy().into_owned();
        let mut child = cmd.spawn().map_err(|e| spawn_error(&program, &e))?;
        let pid = child.id() as Pid;
        let stdout = child
            .stdout
            .take()
            .map(|o| std::fs::File::from(std::os::fd::OwnedFd::from(o)));
        // We reap with waitpid; the std handle is not needed (dropping it
        // neither waits nor kills).
        drop(child);
        if take_terminal {
            // The child did this too before exec; doing it here as well
            // closes the race in which either side runs first (as shells do).
            let _ = sys::set_foreground(pid);
        }
        crate::log::debug(
            "child.started",
            &format!("started {program} as {pid}"),
            json!({"child_pid": pid, "command": program}),
        );
        Ok(Supervisor {
            config,
            sigfd,
            epoll,
            child: pid,
            child_exit: None,
            has_children: true,
            owns_terminal: take_terminal,
            took_terminal: take_terminal,
            orphans: 0,
            orderly,
            carried,
            stdout,
            program: comm_of(&program),
        })
    }

    /// Blocks every handled signal but the ones ocwrap's starter left
    /// ignored (they stay ignored, and are neither forwarded nor acted on),
    /// and reads them from a signalfd in one epoll set.
    fn set_up(handled: &[i32], ignored: &[i32]) -> Result<(SignalFd, Epoll)> {
        // SIGCHLD left ignored would make the kernel reap our children for
        // us: ocwrap takes it back (CMD keeps it ignored).
        sys::set_default(libc::SIGCHLD);
        let taken: Vec<i32> = handled
            .iter()
            .copied()
            .filter(|s| *s == libc::SIGCHLD || !ignored.contains(s))
            .collect();
        let set = SigSet::new(&taken);
        set.block().context("cannot block signals")?;
        // SIGPIPE, ignored so far, is now blocked instead: a write to a
        // closed pipe still fails with EPIPE, and one sent to us can be read
        // and forwarded (unless our starter ignored it).
        if !ignored.contains(&libc::SIGPIPE) {
            sys::set_default(libc::SIGPIPE);
        }
        let sigfd = SignalFd::new(&set).context("cannot create a signalfd")?;
        sys::set_child_subreaper().context("cannot become a child subreaper")?;
        let epoll = Epoll::new().context("cannot create an epoll instance")?;
        epoll
            .add(sigfd.raw(), TOKEN_SIGNALS)
            .context("cannot watch the signalfd")?;
        Ok((sigfd, epoll))
    }

    /// SIGTERM when `parent` dies; false if it is no longer our parent.
    fn arm_parent_death(parent: Pid) -> Result<bool> {
        let alive =
            sys::set_parent_death_signal(libc::SIGTERM).context("prctl(PR_SET_PDEATHSIG)")?;
        Ok(alive && sys::getppid() == parent)
    }

    pub fn child_pid(&self) -> Pid {
        self.child
    }

    pub fn take_stdout(&mut self) -> Option<std::fs::File> {
        self.stdout.take()
    }

    /// Runs until CMD and its whole tree are gone (or the kill-timeout
    /// passed). The attachment, if any, is watched throughout: a
    /// workspace's output keeps being drained during the teardown so it
    /// never blocks on a pipe.
    pub fn run(&mut self, mut attachment: Option<&mut dyn Attachment>) -> Result<Finished> {
        if let Some(fd) = attachment.as_ref().and_then(|a| a.fd()) {
            self.epoll
                .add(fd, TOKEN_ATTACHMENT)
                .context("cannot watch the child's output")?;
        }
        let (trigger, first) = self.until_trigger(&mut attachment)?;
        self.give_back_terminal();
        let level = if crate::log::is_json() {
            crate::log::Level::Info
        } else {
            crate::log::Level::Debug
        };
        if crate::log::enabled(level) {
            crate::log::emit(
                level,
                "teardown.started",
                &format!("teardown started: {trigger}"),
                json!({"trigger": trigger.to_string(),
                   "grace_ms": self.config.plan.grace.as_millis() as u64,
                                      "kill_timeout_ms": self.config.plan.kill_timeout.as_millis() as u64}),
            );
        }
        let teardown = Teardown::new(self.config.plan, trigger, first, Instant::now())
            .with_cmd(self.child, self.program.clone());
        let mut tree = OwnTree {
            sup: self,
            holder: Holder::new(Owner::Tree),
            attachment,
            pending: Vec::new(),
            exclusive: HashSet::new(),
        };
        let summary = teardown.run(&mut tree).context("the teardown failed")?;
        Ok(Finished {
            child_exit: self.child_exit,
            summary,
            orphans: self.orphans,
        })
    }

    /// Running: waits until something starts the teardown.
    fn until_trigger(
        &mut self,
        attachment: &mut Option<&mut dyn Attachment>,
    ) -> Result<(Trigger, Option<First>)> {
        let mut tokens = Vec::new();
        loop {
            let deadline = attachment.as_ref().and_then(|a| a.deadline());
            let timeout = if self.carried.is_empty() {
                deadline.map(|d| d.saturating_duration_since(Instant::now()))
            } else {
                Some(std::time::Duration::ZERO)
            };
            tokens.clear();
            self.epoll
                .wait(timeout, &mut tokens)
                .context("epoll_wait failed")?;
            if tokens.contains(&TOKEN_ATTACHMENT)
                && let Some(a) = attachment.as_deref_mut()
                && let Some(trigger) = a.on_readable()
            {
                return Ok((trigger, None));
            }
            // Signals are drained on every wake-up, whichever fd woke us.
            let mut signals = self.pending_signals()?.into_iter();
            while let Some(r) = signals.next() {
                if let Some(found) = self.on_running_signal(r)? {
                    self.carried.extend(signals);
                    return Ok(found);
                }
            }
            if let (Some(d), Some(a)) = (deadline, attachment.as_deref_mut())
                && Instant::now() >= d
                && let Some(trigger) = a.on_deadline()
            {
                return Ok((trigger, None));
            }
        }
    }

    /// One signal while CMD runs; a trigger when it starts the teardown.
    fn on_running_signal(&mut self, r: Received) -> Result<Option<(Trigger, Option<First>)>> {
        let sig = r.signal;
        if self_inflicted(&r) {
            return Ok(None);
        }
        match signal::role(sig) {
            Role::Own if sig == libc::SIGCHLD => {
                self.on_child_changed()?;
                Ok(self.child_exit.map(|how| (Trigger::CmdExited(how), None)))
            }
            Role::Own => Ok(None),
            Role::Stop => {
                let group = self.config.forward_to == ForwardTo::Group;
                // Who the group request reaches, seen before it does: a
                // member that ends at once still gets its line in the report.
                let members = if group {
                    self.group_members()
                } else {
                    Vec::new()
                };
                let forwarded = self.forward(sig, group);
                // A stopped CMD cannot act on the request until it is
                // continued (systemd does the same).
                let target = if group { -self.child } else { self.child };
                let continued = forwarded.is_some()
                    && proc::read_stat(self.child).is_some_and(|s| s.is_stopped())
                    && sys::kill_pid(target, libc::SIGCONT).is_ok();
                let first = First {
                    cmd: self.child,
                    group,
                    forwarded,
                    continued,
                    members,
                };
                Ok(Some((Trigger::Signal(sig), Some(first))))
            }
            Role::JobControl => {
                // Like the terminal's Ctrl-Z: to CMD's whole group.
                self.forward(sig, true);
                Ok(None)
            }
            Role::Forward => {
                if sig == libc::SIGCONT {
                    self.continue_cmd();
                } else {
                    self.forward(sig, self.config.forward_to == ForwardTo::Group);
                }
                Ok(None)
            }
        }
    }

    /// The live members of CMD's process group (all of them our
    /// descendants: a group lives in one session, ours).
    fn group_members(&self) -> Vec<Member> {
        Snapshot::scan()
            .live_descendants(&[sys::getpid()])
            .into_iter()
            .filter(|s| s.pgrp == self.child)
            .map(kernel::member)
            .collect()
    }

    /// SIGCHLD while CMD runs: CMD stopped (job control) or exited, and
    /// orphans to reap.
    fn on_child_changed(&mut self) -> Result<()> {
        match sys::wait_stopped(self.child).context("waitpid failed")? {
            Some(ChildState::Exited(how)) => self.note_exit(self.child, how),
            Some(ChildState::Stopped(sig))
                if matches!(sig, libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU) =>
            {
                self.stop_with_cmd(sig)
            }
            _ => {}
        }
        self.reap()?;
        Ok(())
    }

    /// CMD was stopped from the terminal (or by a job-control signal): take
    /// the terminal back and stop too, so that the shell sees its job
    /// stopped and gets its prompt back. As PID 1 there is no shell to see
    /// it: ocwrap keeps running.
    fn stop_with_cmd(&mut self, sig: i32) {
        if sys::getpid() == 1 {
            return;
        }
        // A terminal read or write stopped CMD while ocwrap itself is the
        // terminal's foreground again (`fg` of a job that was running in
        // the background sends no SIGCONT): CMD gets the terminal and goes
        // on, as it would without ocwrap.
        if matches!(sig, libc::SIGTTIN | libc::SIGTTOU)
            && self.owns_terminal
            && !self.took_terminal
            && sys::stdin_tty_foreground()
        {
            self.took_terminal = sys::set_foreground(self.child).is_ok();
            self.forward(libc::SIGCONT, true);
            return;
        }
        crate::log::debug(
            "child.stopped",
            &format!("CMD was stopped by {}: stopping too", signal::name(sig)),
            json!({"signal": signal::name(sig)}),
        );
        self.give_back_terminal();
        // Execution goes on here once we are continued; the SIGCONT that
        // continued us is then read from the signalfd (continue_cmd).
        sys::stop_self();
    }

    /// SIGCONT: `fg` (we are the terminal's foreground again: CMD gets the
    /// terminal back) or `bg` (it does not); CMD's group is continued.
    fn continue_cmd(&mut self) {
        if self.child_exit.is_some() {
            return;
        }
        if self.owns_terminal && !self.took_terminal && sys::stdin_tty_foreground() {
            self.took_terminal = sys::set_foreground(self.child).is_ok();
        }
        self.forward(libc::SIGCONT, true);
    }

    /// Forwards `sig` (after `--rewrite`) to CMD, or to its process group.
    /// Only while CMD is unreaped, so its PID and group ID cannot belong to
    /// anyone else. Returns what was sent (None: dropped, or CMD is gone).
    fn forward(&self, sig: i32, group: bool) -> Option<i32> {
        if self.child_exit.is_some() {
            return None;
        }
        let sent = signal::rewritten(&self.config.rewrites, sig)?;
        let target = if group { -self.child } else { self.child };
        crate::log::debug(
            "signal.forwarded",
            &format!(
                "forwarding {} to {}{target}",
                signal::name(sent),
                if group { "group " } else { "" }
            ),
            json!({"signal": signal::name(sent), "received": signal::name(sig), "target": target}),
        );
        sys::kill_pid(target, sent).ok().map(|()| sent)
    }

    fn give_back_terminal(&mut self) {
        if self.took_terminal {
            let _ = sys::set_foreground(sys::getpgrp());
            self.took_terminal = false;
        }
    }

    /// Reaps every exited child; notes CMD's status. Returns the reaped
    /// PIDs.
    fn reap(&mut self) -> Result<Vec<Pid>> {
        let r = sys::reap_all().context("waitpid failed")?;
        self.has_children = r.has_children;
        let mut pids = Vec::with_capacity(r.exited.len());
        for (pid, how) in r.exited {
            self.note_exit(pid, how);
            pids.push(pid);
        }
        Ok(pids)
    }

    /// Records how a reaped child ended.
    fn note_exit(&mut self, pid: Pid, how: Exit) {
        if pid == self.child {
            self.child_exit = Some(how);
            crate::log::debug(
                "child.exited",
                &format!("CMD ({pid}) {}", describe(how)),
                json!({"child_pid": pid, "exit": describe(how)}),
            );
        } else {
            self.orphans += 1;
            if crate::log::enabled(crate::log::Level::Debug) {
                crate::log::debug(
                    "orphan.adopted",
                    &format!("reaped {pid}, re-parented to us ({})", describe(how)),
                    json!({"orphan_pid": pid}),
                );
            }
        }
    }

    /// Drains the signalfd (after what was carried over).
    fn pending_signals(&mut self) -> Result<Vec<Received>> {
        let mut out = std::mem::take(&mut self.carried);
        while let Some(r) = self.sigfd.read().context("cannot read the signalfd")? {
            out.push(r);
        }
        Ok(out)
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.give_back_terminal();
    }
}

/// Set by the npm package's launcher when it stays alive as ocwrap's
/// parent (Node without `process.execve`): its PID.
pub const LAUNCHER_VAR: &str = "OCWRAP_LAUNCHER_PID";

/// Our own tree, as the teardown sees it: every descendant of ours, found
/// by one scan of `/proc`; exits come from pidfds and from reaping; a stop
/// request during the teardown escalates it.
struct OwnTree<'s, 'a> {
    sup: &'s mut Supervisor,
    holder: Holder,
    attachment: Option<&'s mut (dyn Attachment + 'a)>,
    /// Exits collected outside `wait` (by `empty`), reported by the next one.
    pending: Vec<Event>,
    /// Process groups the last scan proved ours (every process in them is
    /// in our tree, and one is an unreaped child of ours, which pins the
    /// group's ID). Forgotten as soon as we reap anything.
    exclusive: HashSet<Pid>,
}

impl OwnTree<'_, '_> {
    fn reaped(&mut self, events: &mut Vec<Event>) -> io::Result<()> {
        let pids = self.sup.reap().map_err(io::Error::other)?;
        if !pids.is_empty() {
            self.exclusive.clear();
        }
        for pid in pids {
            self.holder.release(pid);
            events.push(Event::Ended(pid));
        }
        Ok(())
    }

    /// Signals during the teardown: SIGCHLD reaps; a stop request
    /// escalates (unless it is the orderly part of a bigger teardown: the
    /// enclosing ocwrap's, or our dead parent's last word); anything else
    /// forwardable still goes to CMD while it lives.
    fn on_signals(&mut self, events: &mut Vec<Event>) -> io::Result<bool> {
        let mut reaped = false;
        for r in self.sup.pending_signals().map_err(io::Error::other)? {
            let sig = r.signal;
            if self_inflicted(&r) {
                continue;
            }
            if sig == libc::SIGCHLD {
                self.reaped(events)?;
                reaped = true;
            } else if signal::escalates(sig) {
                let orderly = self.sup.orderly.covers(&r);
                let (event, what) = if orderly {
                    ("signal.orderly", "is part of its own teardown")
                } else {
                    ("signal.escalates", "is a new stop request")
                };
                crate::log::debug(
                    event,
                    &format!("{} from {} {what}", signal::name(sig), r.sender),
                    json!({"signal": signal::name(sig), "sender": r.sender}),
                );
                if !orderly {
                    events.push(Event::Escalate(sig));
                }
            } else if matches!(signal::role(sig), Role::Forward | Role::JobControl) {
                let group = self.sup.config.forward_to == ForwardTo::Group
                    || signal::role(sig) == Role::JobControl
                    || sig == libc::SIGCONT;
                if let Some(sent) = self.sup.forward(sig, group) {
                    events.push(Event::Forwarded {
                        signal: sent,
                        cmd: self.sup.child,
                        group,
                    });
                }
            }
        }
        Ok(reaped)
    }
}

impl ProcessTable for OwnTree<'_, '_> {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn scan(&mut self) -> Vec<Member> {
        self.exclusive.clear();
        if !self.sup.has_children {
            return Vec::new();
        }
        let snap = Snapshot::scan();
        let me = sys::getpid();
        if !proc::hides_others() {
            self.exclusive = exclusive_groups(&snap, me);
        }
        // A child of ours that already died is still a member: we reap it,
        // and its exit is the event that accounts for it.
        snap.descendants(&[me])
            .into_iter()
            .filter_map(|p| snap.get(p))
            .filter(|s| !s.is_zombie() || s.ppid == me)
            .map(kernel::member)
            .collect()
    }

    fn signal_children(&mut self, sig: i32, skip: &HashSet<Pid>) -> Vec<Pid> {
        if !self.sup.has_children {
            return Vec::new();
        }
        proc::children_of(sys::getpid())
            .into_iter()
            .filter(|p| !skip.contains(p) && sys::kill_pid(*p, sig).is_ok())
            .collect()
    }

    fn signal(&mut self, m: &Member, sig: i32) -> Delivery {
        self.holder.deliver(&self.sup.epoll, m, sig)
    }

    fn signal_group(&mut self, pgrp: Pid, members: &[Member], sig: i32) -> Option<Vec<Delivery>> {
        if !self.exclusive.contains(&pgrp) {
            return None;
        }
        // Hold first, so that an exit caused by the signal is seen as such:
        // our children's exits come with SIGCHLD, the others' through a
        // pidfd opened now (sig 0: nothing is sent yet).
        let me = sys::getpid();
        let held: Vec<Delivery> = members
            .iter()
            .map(|m| {
                if m.ppid == me {
                    Delivery::Watched
                } else {
                    self.holder.deliver(&self.sup.epoll, m, 0)
                }
            })
            .collect();
        sys::kill_pid(-pgrp, sig).ok()?;
        crate::log::debug(
            "group.signalled",
            &format!(
                "sent {} to process group {pgrp} ({} processes)",
                signal::name(sig),
                members.len()
            ),
            json!({"pgrp": pgrp, "signal": signal::name(sig), "count": members.len()}),
        );
        Some(held)
    }

    /// As PID 1 of a PID namespace every other process in it is ours:
    /// `kill(-1)` reaches exactly the tree, seen or not.
    fn signal_unseen(&mut self, sig: i32) -> bool {
        sys::kill_namespace(sig).is_ok()
    }

    fn wait(&mut self, deadline: Option<Instant>, events: &mut Vec<Event>) -> io::Result<()> {
        events.append(&mut self.pending);
        let timeout = if events.is_empty() && self.sup.carried.is_empty() {
            deadline.map(|d| d.saturating_duration_since(Instant::now()))
        } else {
            Some(std::time::Duration::ZERO)
        };
        let mut tokens = Vec::new();
        self.sup.epoll.wait(timeout, &mut tokens)?;
        for &token in &tokens {
            if token == TOKEN_ATTACHMENT {
                if let Some(a) = self.attachment.as_deref_mut() {
                    a.on_readable();
                }
            } else if let Some(pid) = kernel::token_pid(token) {
                self.holder.release(pid);
                // If it was our child, reap exactly it (see reap_pid).
                if let Some(how) = sys::reap_pid(pid)? {
                    self.sup.note_exit(pid, how);
                }
                events.push(Event::Ended(pid));
            }
        }
        let reaped = self.on_signals(events)?;
        if !reaped && self.sup.has_children {
            // No SIGCHLD in this batch: ask the kernel directly, it is one
            // syscall and keeps the emptiness check exact.
            self.reaped(events)?;
        }
        Ok(())
    }

    fn empty(&mut self) -> Option<bool> {
        if self.sup.has_children {
            let mut reaped = Vec::new();
            // An error here leaves the answer at "not empty", which is safe.
            let _ = self.reaped(&mut reaped);
            self.pending.extend(reaped);
        }
        Some(!self.sup.has_children)
    }
}

/// The process groups of our tree that hold only processes of our tree,
/// zombies included, and at least one child of ours (unreaped: it pins the
/// group's ID). Never our own group.
fn exclusive_groups(snap: &Snapshot, me: Pid) -> HashSet<Pid> {
    let mut in_tree: HashMap<Pid, usize> = HashMap::new();
    let mut pinned = HashSet::new();
    for pid in snap.descendants(&[me]) {
        if let Some(s) = snap.get(pid) {
            *in_tree.entry(s.pgrp).or_default() += 1;
            if s.ppid == me {
                pinned.insert(s.pgrp);
            }
        }
    }
    let mut everywhere: HashMap<Pid, usize> = HashMap::new();
    for s in snap.procs.values() {
        if in_tree.contains_key(&s.pgrp) {
            *everywhere.entry(s.pgrp).or_default() += 1;
        }
    }
    let own = sys::getpgrp();
    in_tree
        .into_iter()
        .filter(|(g, n)| *g > 1 && *g != own && pinned.contains(g) && everywhere.get(g) == Some(n))
        .map(|(g, _)| g)
        .collect()
}

/// A SIGPIPE the kernel raised for our own write to a closed pipe (it
/// names us as its sender): ours, not CMD's.
fn self_inflicted(r: &Received) -> bool {
    r.signal == libc::SIGPIPE && r.sender == sys::getpid()
}

/// A program's name as the kernel keeps it for `/proc/PID/stat`.
fn comm_of(program: &str) -> String {
    let name = program.rsplit('/').next().unwrap_or(program);
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// Why `cmd.spawn()` failed, as ocwrap reports it (see
/// [`SpawnError::of_start`]: a failed fork is ocwrap's failure, 125; a
/// directory, a missing interpreter and a refused permission are 126; a
/// missing command is 127).
fn spawn_error(program: &str, e: &io::Error) -> SpawnError {
    SpawnError::of_start(program, e)
}
