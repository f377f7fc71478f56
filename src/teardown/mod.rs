//! The teardown: ending a whole process tree, graceful then forced, then
//! verified. One state machine ([`Teardown`]) and one driver loop
//! ([`Teardown::run`]), used by `ocwrap -- CMD`, `spawn`, `stop` and `reap`.
//!
//! # Theory of operation
//!
//! A teardown is a [`Plan`] (stop signal, grace, kill-timeout) applied to a
//! tree, for a [`Trigger`] (CMD exited, a stop request, a workspace that
//! never got ready, `ocwrap stop`, `ocwrap reap`). Everything runs on one
//! clock that starts with the teardown:
//!
//! ```text
//! t0                      t0 + grace                 t0 + grace + kill_timeout
//! |-- Graceful ----------|-- Forced ----------------|
//!  stop signal to every    SIGKILL to every          whatever is still there
//!  member (+SIGCONT if     member, re-sweeping       is a survivor: reported,
//!  it is stopped)          until the tree is empty   exit status 125
//! ```
//!
//! Before that clock, two things can change who is signalled first:
//! - a stop request (SIGTERM, SIGPWR) was forwarded to CMD before the
//!   teardown began ([`First`]): CMD goes first, so that it can shut its own
//!   children down in order. The rest of the tree is held but gets the stop
//!   signal only once CMD has exited; whatever is left at the end of the
//!   grace gets SIGKILL. The bound stays grace + kill-timeout from the
//!   request.
//! - CMD exited by itself and `--linger` is set: the rest of the tree may
//!   end on its own for that long (held, not signalled) before the graceful
//!   phase begins; a stop request meanwhile begins it at once.
//!
//! The machine never sleeps a fixed time: it waits on the kernel (a pidfd
//! per signalled process, SIGCHLD) with the next deadline as its timeout,
//! and it ends the moment the tree is empty, in any phase. A second stop
//! request during the grace goes straight to the forced phase.
//!
//! A *sweep* is one scan of the tree that signals the members it has not
//! signalled in the current phase. A sweep runs when the teardown starts,
//! whenever every process it holds has ended (new ones may have been forked
//! or re-parented meanwhile), when the forced phase starts, and then every
//! 50 ms of the forced phase (a parent dying from its SIGKILL can still
//! fork, and no event announces the child). A process that cannot be held
//! (no pidfd) is watched by re-sweeping every 20 ms instead.
//!
//! Within a sweep, a table with children of its own signals them first,
//! straight from the kernel's list (an unreaped child's PID cannot be
//! recycled). Unless every name is wanted ([`Plan::names`]), those that
//! died meanwhile are reaped before the scan, which then reads only the
//! living; their exits account for them. The scan finds the rest and fills
//! in the names of the children still there.
//!
//! The machine is written against [`ProcessTable`], a small trait: list the
//! members, signal one, wait for events until a deadline. The kernel's
//! tables are [`kernel::Foreign`] (a tree that is not ours: `stop`, `reap`)
//! and the supervisor's own tree (`crate::supervisor`); the unit tests drive
//! the machine with a fake table and a fake clock.
//!
//! Identity: the machine tracks every process by PID *and* start time, and a
//! table signals a process only after [`crate::proc::identity::check`] (or
//! through a pidfd opened before that check). A PID that was recycled is a
//! new process: the old one counts as ended, the new one is signalled only
//! if the scan found it in the tree.

pub mod kernel;
mod machine;
mod summary;

use std::fmt;
use std::time::{Duration, Instant};

pub use machine::{Delivery, Event, First, Member, ProcessTable, Teardown};
pub use summary::{EndedBy, ProcessOutcome, SentSignal, Summary, Survivor};

use crate::sys::Exit;

/// How a tree is ended: the stop signal, then SIGKILL after the grace,
/// then the kill-timeout to verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub stop_signal: i32,
    pub grace: Duration,
    pub kill_timeout: Duration,
    /// When CMD exits by itself: how long the rest may take to end on its
    /// own before the stop signal.
    pub linger: Duration,
    /// Every process's name is wanted (a report, debug logs). Our children
    /// that a sweep signals before its scan then stay unreaped until the
    /// scan has read their names; without it, those already dead are
    /// reaped first, and the scan has that many fewer entries to read.
    pub names: bool,
}

/// Why a teardown started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// CMD exited (or was killed) by itself.
    CmdExited(Exit),
    /// ocwrap received a stop request.
    Signal(i32),
    /// A workspace's opencode did not get ready in time.
    NotReady(Duration),
    /// `ocwrap stop ID`.
    Stop(String),
    /// `ocwrap reap`.
    Reap,
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::CmdExited(how) => write!(f, "CMD {}", crate::exit_code::describe(*how)),
            Trigger::Signal(sig) => write!(f, "received {}", crate::signal::name(*sig)),
            Trigger::NotReady(d) => write!(
                f,
                "opencode was not ready within {}",
                humantime::format_duration(*d)
            ),
            Trigger::Stop(id) => write!(f, "stop {id}"),
            Trigger::Reap => f.write_str("reap"),
        }
    }
}

/// Ends a tree that is not ours (`stop`, `reap`) from these roots (already
/// identity-checked): SIGTERM, then SIGKILL after `grace`, verified for
/// `kill_timeout`.
pub fn end_foreign(
    roots: &[crate::proc::Stat],
    trigger: Trigger,
    grace: Duration,
    kill_timeout: Duration,
) -> std::io::Result<Summary> {
    let plan = Plan {
        stop_signal: libc::SIGTERM,
        grace,
        kill_timeout,
        linger: Duration::ZERO,
        names: true,
    };
    let mut table = kernel::Foreign::new(roots)?;
    Teardown::new(plan, trigger, None, Instant::now()).run(&mut table)
}

/// `t + d`, or a point far enough in the future when that does not fit: a
/// huge duration must never make a deadline overflow.
pub fn deadline(t: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    t.checked_add(d).or_else(|| t.checked_add(FAR)).unwrap_or(t)
}

/// "850ms", "1.5s".
pub fn fmt_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_read_as_the_logs_say_them() {
        assert_eq!(
            Trigger::CmdExited(Exit::Code(0)).to_string(),
            "CMD exited with status 0"
        );
        assert_eq!(
            Trigger::CmdExited(Exit::Signal(15)).to_string(),
            "CMD was killed by SIGTERM"
        );
        assert_eq!(Trigger::Signal(2).to_string(), "received SIGINT");
        assert_eq!(
            Trigger::NotReady(Duration::from_secs(30)).to_string(),
            "opencode was not ready within 30s"
        );
        assert_eq!(
            Trigger::Stop("0123abcd".into()).to_string(),
            "stop 0123abcd"
        );
        assert_eq!(Trigger::Reap.to_string(), "reap");
    }

    #[test]
    fn a_huge_duration_never_overflows_a_deadline() {
        let now = Instant::now();
        assert!(deadline(now, Duration::MAX) > now);
        assert_eq!(
            deadline(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
    }
}
