//! What a finished teardown reports: every process it ended and how, and
//! what survived. Formatting it for people and files is `crate::outcome`'s
//! job.

use serde::Serialize;

use super::Trigger;
use crate::sys::Pid;

/// How a process of the tree ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndedBy {
    /// It ended after the stop signal (or the forwarded one).
    StopSignal,
    /// It had to be killed.
    Kill,
    /// It ended before it was signalled at all.
    Itself,
}

/// A signal ocwrap sent a process of the tree, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SentSignal {
    /// `SIGTERM`, `SIGKILL`…
    pub signal: String,
    /// Milliseconds from the teardown's start.
    pub after_ms: u64,
}

impl SentSignal {
    pub fn new(sig: i32, after_ms: u64) -> SentSignal {
        SentSignal {
            signal: crate::signal::name(sig),
            after_ms,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ProcessOutcome {
    pub pid: Pid,
    pub command: String,
    pub ended_by: EndedBy,
    /// Milliseconds from the teardown's start until the exit was seen.
    pub after_ms: u64,
    /// Exactly the signals ocwrap sent it.
    pub signals: Vec<SentSignal>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Survivor {
    pub pid: Pid,
    pub command: String,
    pub signals: Vec<SentSignal>,
}

#[derive(Clone, Debug)]
pub struct Summary {
    pub trigger: Trigger,
    pub duration_ms: u64,
    pub ended_on_stop_signal: usize,
    pub killed: usize,
    /// How many processes ocwrap sent a signal to (the forwarded stop
    /// request included).
    pub signalled: usize,
    pub survivors: Vec<Survivor>,
    /// The table knew that processes of the tree were left but could not
    /// show them (e.g. `/proc` hidden): not a success.
    pub unseen: bool,
    pub sweeps: u32,
    pub grace_timeout_hit: bool,
    pub escalated: bool,
    pub processes: Vec<ProcessOutcome>,
}

impl Summary {
    /// Nothing survived, as far as ocwrap could verify.
    pub fn clean(&self) -> bool {
        self.survivors.is_empty() && !self.unseen
    }

    /// The survivors' PIDs, comma-separated.
    pub fn survivor_pids(&self) -> String {
        let pids: Vec<String> = self.survivors.iter().map(|s| s.pid.to_string()).collect();
        pids.join(", ")
    }
}
