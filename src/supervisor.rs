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

use std::io;
use std::os::fd::RawFd;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;

use crate::exit_code::{SpawnError, describe};
use crate::proc::{Owner, Snapshot};
use crate::signal;
use crate::sys::{self, ChildSetup, Epoll, Exit, Pid, SigSet, SignalFd};
use crate::teardown::kernel::{self, Holder};
use crate::teardown::{
    Delivery, Event, Exempt, Member, Plan, ProcessTable, Summary, Teardown, Trigger,
};

const TOKEN_SIGNALS: u64 = 0;
const TOKEN_ATTACHMENT: u64 = 1;

/// Where forwarded signals go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ForwardTo {
    /// CMD alone
    Child,
    /// CMD's whole process group
    Group,
}

/// How a command is supervised.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub plan: Plan,
    pub forward_to: ForwardTo,
    /// What CMD gets if ocwrap dies.
    pub pdeath_signal: i32,
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

/// Signals blocked and read from the signalfd.
fn handled_signals() -> SigSet {
    let mut sigs: Vec<i32> = signal::FORWARDED.to_vec();
    // SIGTTOU/SIGTTIN: blocked so that handing the terminal to the child and
    // taking it back never stops ocwrap itself.
    sigs.extend([libc::SIGCHLD, libc::SIGTTOU, libc::SIGTTIN]);
    SigSet::new(&sigs)
}

pub struct Supervisor {
    config: Config,
    sigfd: SignalFd,
    epoll: Epoll,
    child: Pid,
    child_exit: Option<Exit>,
    /// What the last `waitpid` said: false once we have no child at all.
    has_children: bool,
    took_terminal: bool,
    orphans: u64,
    /// Signals read in the batch that started the teardown, after the one
    /// that did: the teardown sees them first.
    carried: Vec<i32>,
    /// CMD's stdout, when the command asked for a pipe (`spawn`).
    stdout: Option<std::fs::File>,
}

impl Supervisor {
    /// Blocks the handled signals, becomes a subreaper and starts `cmd` in a
    /// new process group. Must run before any other child exists.
    pub fn start(config: Config, cmd: &mut Command) -> Result<Supervisor, SpawnError> {
        let (sigfd, epoll) = Self::set_up().map_err(SpawnError::Other)?;
        let take_terminal = sys::stdin_tty_foreground();
        sys::configure_child(
            cmd,
            ChildSetup {
                pdeath_signal: Some(config.pdeath_signal),
                take_terminal,
                parent: sys::getpid(),
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
            took_terminal: take_terminal,
            orphans: 0,
            carried: Vec::new(),
            stdout,
        })
    }

    fn set_up() -> Result<(SignalFd, Epoll)> {
        let set = handled_signals();
        set.block().context("cannot block signals")?;
        let sigfd = SignalFd::new(&set).context("cannot create a signalfd")?;
        sys::set_child_subreaper().context("cannot become a child subreaper")?;
        let epoll = Epoll::new().context("cannot create an epoll instance")?;
        epoll
            .add(sigfd.raw(), TOKEN_SIGNALS)
            .context("cannot watch the signalfd")?;
        Ok((sigfd, epoll))
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
        let (trigger, exempt) = self.until_trigger(&mut attachment)?;
        self.give_back_terminal();
        crate::log::emit(
            if crate::log::is_json() {
                crate::log::Level::Info
            } else {
                crate::log::Level::Debug
            },
            "teardown.started",
            &format!("teardown started: {trigger}"),
            json!({"trigger": trigger.to_string(),
                   "grace_ms": self.config.plan.grace.as_millis() as u64,
                   "kill_timeout_ms": self.config.plan.kill_timeout.as_millis() as u64}),
        );
        let teardown = Teardown::new(self.config.plan, trigger, exempt, Instant::now());
        let mut tree = OwnTree {
            sup: self,
            holder: Holder::new(Owner::Tree),
            attachment,
            pending: Vec::new(),
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
    ) -> Result<(Trigger, Exempt)> {
        let mut tokens = Vec::new();
        loop {
            let deadline = attachment.as_ref().and_then(|a| a.deadline());
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            tokens.clear();
            self.epoll
                .wait(timeout, &mut tokens)
                .context("epoll_wait failed")?;
            if tokens.contains(&TOKEN_ATTACHMENT)
                && let Some(a) = attachment.as_deref_mut()
                && let Some(trigger) = a.on_readable()
            {
                return Ok((trigger, Exempt::Nobody));
            }
            // Signals are drained on every wake-up, whichever fd woke us.
            let mut signals = self.pending_signals()?.into_iter();
            while let Some(sig) = signals.next() {
                if let Some(found) = self.on_running_signal(sig)? {
                    self.carried.extend(signals);
                    return Ok(found);
                }
            }
            if let (Some(d), Some(a)) = (deadline, attachment.as_deref_mut())
                && Instant::now() >= d
                && let Some(trigger) = a.on_deadline()
            {
                return Ok((trigger, Exempt::Nobody));
            }
        }
    }

    /// One signal while CMD runs; a trigger when it starts the teardown.
    fn on_running_signal(&mut self, sig: i32) -> Result<Option<(Trigger, Exempt)>> {
        if sig == libc::SIGCHLD {
            self.reap()?;
            return Ok(self
                .child_exit
                .map(|how| (Trigger::CmdExited(how), Exempt::Nobody)));
        }
        if !signal::FORWARDED.contains(&sig) {
            return Ok(None);
        }
        self.forward(sig);
        if !signal::is_terminating(sig) {
            return Ok(None);
        }
        let exempt = match self.config.forward_to {
            ForwardTo::Child => Exempt::Process(self.child),
            ForwardTo::Group => Exempt::Group(self.child),
        };
        Ok(Some((Trigger::Signal(sig), exempt)))
    }

    fn child_alive(&self) -> bool {
        self.child_exit.is_none()
    }

    /// Forwards `sig` to CMD (or its group). Only while CMD is unreaped, so
    /// its PID and group ID cannot belong to anyone else.
    fn forward(&self, sig: i32) {
        if !self.child_alive() {
            return;
        }
        let target = match self.config.forward_to {
            ForwardTo::Child => self.child,
            ForwardTo::Group => -self.child,
        };
        crate::log::debug(
            "signal.forwarded",
            &format!("forwarding {} to {}", signal::name(sig), target),
            json!({"signal": signal::name(sig), "target": target}),
        );
        let _ = sys::kill_pid(target, sig);
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

    /// Drains the signalfd.
    fn pending_signals(&mut self) -> Result<Vec<i32>> {
        let mut out = std::mem::take(&mut self.carried);
        while let Some(sig) = self.sigfd.read().context("cannot read the signalfd")? {
            out.push(sig);
        }
        Ok(out)
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.give_back_terminal();
    }
}

/// Our own tree, as the teardown sees it: every descendant of ours, found
/// by one scan of `/proc`; exits come from pidfds and from reaping; a stop
/// request during the teardown escalates it.
struct OwnTree<'s, 'a> {
    sup: &'s mut Supervisor,
    holder: Holder,
    attachment: Option<&'s mut (dyn Attachment + 'a)>,
    /// Exits collected outside `wait` (by `empty`), reported by the next one.
    pending: Vec<Event>,
}

impl OwnTree<'_, '_> {
    fn reaped(&mut self, events: &mut Vec<Event>) -> io::Result<()> {
        let pids = self.sup.reap().map_err(io::Error::other)?;
        for pid in pids {
            self.holder.release(pid);
            events.push(Event::Ended(pid));
        }
        Ok(())
    }

    fn on_signals(&mut self, events: &mut Vec<Event>) -> io::Result<bool> {
        let mut reaped = false;
        for sig in self.sup.pending_signals().map_err(io::Error::other)? {
            if sig == libc::SIGCHLD {
                self.reaped(events)?;
                reaped = true;
            } else if signal::is_terminating(sig) {
                events.push(Event::Escalate(sig));
            } else if signal::FORWARDED.contains(&sig) {
                self.sup.forward(sig);
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
        if !self.sup.has_children {
            return Vec::new();
        }
        let snap = Snapshot::scan();
        snap.live_descendants(&[sys::getpid()])
            .into_iter()
            .map(kernel::member)
            .collect()
    }

    fn signal(&mut self, m: &Member, sig: i32) -> Delivery {
        self.holder.deliver(&self.sup.epoll, m, sig)
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

/// Why `cmd.spawn()` failed, as ocwrap reports it (see
/// [`SpawnError::of_start`]: a failed fork is ocwrap's failure, 125; a
/// directory, a missing interpreter and a refused permission are 126; a
/// missing command is 127).
fn spawn_error(program: &str, e: &io::Error) -> SpawnError {
    SpawnError::of_start(program, e)
}
