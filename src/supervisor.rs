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
//! States: `Running` (CMD is alive: forward signals, reap orphans as their
//! SIGCHLD arrives, sleep in `epoll_wait` with no timeout — zero wake-ups
//! while idle) and `TearingDown` (see [`crate::teardown`]). The teardown
//! starts when CMD exits, when a terminating signal arrives (it is forwarded
//! to CMD first), or when an attachment asks for it (a workspace that never
//! got ready). A second terminating signal during the grace escalates to
//! SIGKILL at once.

use std::os::fd::RawFd;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;

use crate::cli::{ForwardTo, SuperviseArgs};
use crate::signal;
use crate::sys::{self, ChildSetup, Epoll, Exit, Pid, SigSet, SignalFd};
use crate::teardown::{Phase, Scope, Summary, Teardown};

const TOKEN_SIGNALS: u64 = 0;
const TOKEN_ATTACHMENT: u64 = 1;

/// Something else the loop watches while CMD runs (opencode's stdout).
pub trait Attachment {
    fn fd(&self) -> Option<RawFd>;
    /// Wake-up needed even if nothing happens (a readiness timeout).
    fn deadline(&self) -> Option<Instant>;
    /// The fd is readable. Returns `Some(reason)` to start the teardown.
    fn on_readable(&mut self) -> Option<String>;
    /// The deadline passed. Returns `Some(reason)` to start the teardown.
    fn on_deadline(&mut self) -> Option<String>;
}

/// Why CMD could not be started.
#[derive(Debug)]
pub enum SpawnError {
    NotFound(String),
    CannotExecute(String),
    Other(anyhow::Error),
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
    opts: SuperviseArgs,
    sigfd: SignalFd,
    pub epoll: Epoll,
    child: Pid,
    child_exit: Option<Exit>,
    took_terminal: bool,
    orphans: u64,
    /// CMD's stdout, when the command asked for a pipe (`spawn`).
    stdout: Option<std::fs::File>,
}

impl Supervisor {
    /// Blocks the handled signals, becomes a subreaper and starts `cmd` in a
    /// new process group. Must run before any other child exists.
    pub fn start(opts: SuperviseArgs, cmd: &mut Command) -> Result<Supervisor, SpawnError> {
        let setup = || -> Result<(SignalFd, Epoll)> {
            let set = handled_signals();
            set.block().context("cannot block signals")?;
            let sigfd = SignalFd::new(&set).context("cannot create a signalfd")?;
            sys::set_child_subreaper().context("cannot become a child subreaper")?;
            let epoll = Epoll::new().context("cannot create an epoll instance")?;
            epoll
                .add(sigfd.raw(), TOKEN_SIGNALS)
                .context("cannot watch the signalfd")?;
            Ok((sigfd, epoll))
        };
        let (sigfd, epoll) = setup().map_err(SpawnError::Other)?;
        let take_terminal = sys::stdin_tty_foreground();
        sys::configure_child(
            cmd,
            ChildSetup {
                pdeath_signal: Some(opts.pdeath_signal),
                take_terminal,
                parent: sys::getpid(),
            },
        );
        let program = cmd.get_program().to_string_lossy().into_owned();
        let child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                SpawnError::NotFound(format!("{program}: command not found"))
            }
            std::io::ErrorKind::PermissionDenied => {
                SpawnError::CannotExecute(format!("{program}: permission denied"))
            }
            _ if e.raw_os_error() == Some(libc::ENOEXEC)
                || e.raw_os_error() == Some(libc::EISDIR) =>
            {
                SpawnError::CannotExecute(format!("{program}: cannot execute: {e}"))
            }
            _ => SpawnError::CannotExecute(format!("{program}: cannot execute: {e}")),
        })?;
        let mut child = child;
        let pid = child.id() as Pid;
        let stdout = child
            .stdout
            .take()
            .map(|o| std::fs::File::from(std::os::fd::OwnedFd::from(o)));
        // We reap with waitpid(-1); the std handle is not needed (dropping it
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
            opts,
            sigfd,
            epoll,
            child: pid,
            child_exit: None,
            took_terminal: take_terminal,
            orphans: 0,
            stdout,
        })
    }

    pub fn child_pid(&self) -> Pid {
        self.child
    }

    pub fn take_stdout(&mut self) -> Option<std::fs::File> {
        self.stdout.take()
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
        let target = match self.opts.forward_to {
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
    /// PIDs and whether any child is left.
    fn reap(&mut self) -> Result<(Vec<Pid>, bool)> {
        let r = sys::reap_all().context("waitpid failed")?;
        let mut pids = Vec::with_capacity(r.exited.len());
        for (pid, how) in r.exited {
            self.note_exit(pid, how);
            pids.push(pid);
        }
        Ok((pids, r.has_children))
    }

    /// Records how a reaped child ended.
    fn note_exit(&mut self, pid: Pid, how: Exit) {
        {
            if pid == self.child {
                self.child_exit = Some(how);
                crate::log::debug(
                    "child.exited",
                    &format!("CMD ({pid}) {}", describe_exit(how)),
                    json!({"child_pid": pid, "exit": describe_exit(how)}),
                );
            } else {
                self.orphans += 1;
                crate::log::debug(
                    "orphan.adopted",
                    &format!("reaped {pid}, re-parented to us ({})", describe_exit(how)),
                    json!({"orphan_pid": pid}),
                );
            }
        }
    }

    /// Drains the signalfd.
    fn pending_signals(&self) -> Result<Vec<i32>> {
        let mut out = Vec::new();
        while let Some(sig) = self.sigfd.read().context("cannot read the signalfd")? {
            out.push(sig);
        }
        Ok(out)
    }

    /// Runs until CMD and its whole tree are gone (or the kill-timeout
    /// passed). The attachment, if any, is watched while CMD runs.
    pub fn run(&mut self, mut attachment: Option<&mut dyn Attachment>) -> Result<Finished> {
        let mut tokens = Vec::new();
        if let Some(fd) = attachment.as_ref().and_then(|a| a.fd()) {
            self.epoll
                .add(fd, TOKEN_ATTACHMENT)
                .context("cannot watch the child's output")?;
        }
        // Running: until something starts the teardown.
        let (trigger, exempt) = 'running: loop {
            let deadline = attachment.as_ref().and_then(|a| a.deadline());
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            self.epoll
                .wait(timeout, &mut tokens)
                .context("epoll_wait failed")?;
            for &token in &tokens {
                if token == TOKEN_ATTACHMENT
                    && let Some(a) = attachment.as_deref_mut()
                    && let Some(reason) = a.on_readable()
                {
                    break 'running (reason, Vec::new());
                }
            }
            // Signals are drained on every wake-up, whichever fd woke us.
            for sig in self.pending_signals()? {
                if sig == libc::SIGCHLD {
                    self.reap()?;
                    if let Some(how) = self.child_exit {
                        break 'running (format!("CMD {}", describe_exit(how)), Vec::new());
                    }
                } else if signal::FORWARDED.contains(&sig) {
                    self.forward(sig);
                    if signal::is_terminating(sig) {
                        let exempt = match self.opts.forward_to {
                            ForwardTo::Child => vec![self.child],
                            ForwardTo::Group => vec![-self.child],
                        };
                        break 'running (format!("received {}", signal::name(sig)), exempt);
                    }
                }
            }
            if let (Some(d), Some(a)) = (deadline, attachment.as_deref_mut())
                && Instant::now() >= d
                && let Some(reason) = a.on_deadline()
            {
                break 'running (reason, Vec::new());
            }
        };
        // The attachment's fd stays registered: a workspace's output keeps
        // being drained during the teardown so it never blocks on a pipe.
        self.teardown(trigger, exempt, attachment)
    }

    fn teardown(
        &mut self,
        trigger: String,
        exempt: Vec<Pid>,
        mut attachment: Option<&mut dyn Attachment>,
    ) -> Result<Finished> {
        self.give_back_terminal();
        let mut td = Teardown::new(
            Scope::Descendants,
            trigger,
            self.opts.stop_signal,
            self.opts.limits.grace,
            self.opts.limits.kill_timeout,
            exempt,
        );
        let level = if crate::log::is_json() {
            crate::log::Level::Info
        } else {
            crate::log::Level::Debug
        };
        crate::log::emit(
            level,
            "teardown.started",
            &format!("teardown started: {}", td.trigger()),
            json!({"trigger": td.trigger(), "grace_ms": self.opts.limits.grace.as_millis() as u64,
                   "kill_timeout_ms": self.opts.limits.kill_timeout.as_millis() as u64}),
        );
        let (pids, has_children) = self.reap()?;
        td.on_reaped(&pids);
        if has_children {
            let n = td.sweep(&self.epoll);
            crate::log::info(
                "teardown.signalled",
                &format!(
                    "{}: sent {} to {n} process(es)",
                    td.trigger(),
                    signal::name(self.opts.stop_signal)
                ),
                json!({"trigger": td.trigger(), "signal": signal::name(self.opts.stop_signal), "count": n}),
            );
        }
        td.check(has_children, &self.epoll);
        let mut tokens = Vec::new();
        while td.phase() != Phase::Done {
            let timeout = td
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
            self.epoll
                .wait(timeout, &mut tokens)
                .context("epoll_wait failed")?;
            let mut has_children = true;
            for &token in &tokens {
                if token == TOKEN_ATTACHMENT {
                    if let Some(a) = attachment.as_deref_mut() {
                        a.on_readable();
                    }
                } else if let Some(pid) = td.on_token(token) {
                    // If it was our child, reap exactly it (see reap_pid).
                    if let Some(how) = sys::reap_pid(pid).context("waitpid failed")? {
                        self.note_exit(pid, how);
                        td.on_reaped(&[pid]);
                    }
                }
            }
            for sig in self.pending_signals()? {
                if sig == libc::SIGCHLD {
                    let (pids, more) = self.reap()?;
                    td.on_reaped(&pids);
                    has_children = more;
                } else if signal::is_terminating(sig) && td.phase() == Phase::Graceful {
                    crate::log::info(
                        "teardown.escalated",
                        &format!(
                            "second {} during the grace: sending SIGKILL now",
                            signal::name(sig)
                        ),
                        json!({"signal": signal::name(sig)}),
                    );
                    td.escalate(&self.epoll);
                } else if signal::FORWARDED.contains(&sig) && !signal::is_terminating(sig) {
                    self.forward(sig);
                }
            }
            if has_children {
                // No SIGCHLD in this batch: ask the kernel directly, it is
                // one syscall and keeps the emptiness check exact.
                let (pids, more) = self.reap()?;
                td.on_reaped(&pids);
                has_children = more;
            }
            td.on_time(&self.epoll);
            td.check(has_children, &self.epoll);
        }
        // Last zombies (reaped children whose parent was us) are collected
        // here so none is left behind when we exit.
        let _ = self.reap();
        let summary = td.finish_all();
        Ok(Finished {
            child_exit: self.child_exit,
            summary,
            orphans: self.orphans,
        })
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.give_back_terminal();
    }
}

pub fn describe_exit(how: Exit) -> String {
    match how {
        Exit::Code(c) => format!("exited with status {c}"),
        Exit::Signal(s) => format!("was killed by {}", signal::name(s)),
    }
}
