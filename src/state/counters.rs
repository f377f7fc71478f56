//! Cumulative teardown counters, kept per user in the state directory and
//! shown by `ocwrap stats`. Several ocwraps may end at once: updates happen
//! under a lock, and the file is replaced atomically.

use std::fs;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{COUNTERS_FILE, COUNTERS_LOCK, StateDir};
use crate::teardown::Summary;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Counters {
    pub teardowns: u64,
    pub clean: u64,
    pub failed: u64,
    pub total_ms: u64,
    pub max_ms: u64,
    pub grace_timeouts: u64,
    pub resweeps: u64,
    pub orphans_found: u64,
    pub processes_ended: u64,
    pub processes_killed: u64,
    /// When the last teardown ended (seconds since the epoch).
    pub last_teardown_at: Option<u64>,
}

impl Counters {
    pub fn average_ms(&self) -> u64 {
        self.total_ms.checked_div(self.teardowns).unwrap_or(0)
    }

    pub(crate) fn add(&mut self, s: &Summary, orphans: u64) {
        self.teardowns += 1;
        if s.clean() {
            self.clean += 1;
        } else {
            self.failed += 1;
        }
        self.total_ms += s.duration_ms;
        self.max_ms = self.max_ms.max(s.duration_ms);
        self.grace_timeouts += s.grace_timeout_hit as u64;
        self.resweeps += s.sweeps.saturating_sub(1) as u64;
        self.orphans_found += orphans;
        self.processes_ended += s.ended_on_stop_signal as u64;
        self.processes_killed += s.killed as u64;
        self.last_teardown_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs());
    }
}

impl StateDir {
    /// The counters as saved (zero when there are none yet).
    pub fn counters(&self) -> Counters {
        fs::read_to_string(self.dir.join(COUNTERS_FILE))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// Adds one teardown to the counters.
    pub(crate) fn add_to_counters(&self, s: &Summary, orphans: u64) -> Result<()> {
        let _lock = self
            .lock(COUNTERS_LOCK)
            .context("cannot lock the counters")?;
        let mut c = self.counters();
        c.add(s, orphans);
        self.write_atomic(COUNTERS_FILE, serde_json::to_string_pretty(&c)?.as_bytes())
    }
}
