//! A workspace as it is now: its record checked against `/proc`.
//!
//! A record is only a claim. Its supervisor counts as alive only if the PID
//! still has the recorded start time and our uid; its processes are found
//! from the live supervisor's descendants or, once the supervisor is gone,
//! from the opencode process (identity-checked) and every process of ours
//! that carries the workspace's marker (`OCWRAP_WORKSPACE`) and started
//! after the workspace did.

use std::collections::HashSet;

use serde::Serialize;

use crate::proc::{self, Owner, Snapshot, Stat, identity};
use crate::state::registry::Record;
use crate::sys::{self, Pid};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Its supervisor is alive.
    Running,
    /// Its supervisor is gone but some of its processes live.
    Orphaned,
    /// Nothing of it is left.
    Dead,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Orphaned => "orphaned",
            State::Dead => "dead",
        }
    }
}

pub struct Inspected {
    pub record: Record,
    pub state: State,
    pub supervisor: Option<Stat>,
    /// Every live process of the workspace except the supervisor.
    pub members: Vec<Stat>,
}

impl Inspected {
    pub fn rss_bytes(&self) -> u64 {
        let pages: u64 = self
            .members
            .iter()
            .chain(self.supervisor.iter())
            .map(|s| s.rss_pages)
            .sum();
        pages * sys::page_size()
    }

    /// How many processes the workspace has, supervisor included.
    pub fn processes(&self) -> usize {
        self.members.len() + usize::from(self.supervisor.is_some())
    }

    /// Roots for a foreign teardown of what is left (supervisor first).
    pub fn roots(&self) -> Vec<Stat> {
        self.supervisor
            .iter()
            .chain(self.members.iter())
            .cloned()
            .collect()
    }
}

/// The recorded process, if the snapshot still shows it, alive, as ours.
fn live(id: proc::ProcId, snap: &Snapshot) -> Option<&Stat> {
    snap.get(id.pid)
        .filter(|s| identity::matches(id, s, Owner::me()))
}

pub fn inspect(record: Record, snap: &Snapshot) -> Inspected {
    let supervisor = live(record.supervisor, snap).cloned();
    let members: Vec<Stat> = match &supervisor {
        Some(sup) => snap
            .live_descendants(&[sup.pid])
            .into_iter()
            .cloned()
            .collect(),
        None => orphaned_members(&record, snap),
    };
    let state = if supervisor.is_some() {
        State::Running
    } else if members.is_empty() {
        State::Dead
    } else {
        State::Orphaned
    };
    Inspected {
        record,
        state,
        supervisor,
        members,
    }
}

/// A dead supervisor's workspace: opencode (if it is still the recorded
/// process), every process of ours with the workspace's marker born since
/// the workspace started, and their descendants of our uid.
fn orphaned_members(record: &Record, snap: &Snapshot) -> Vec<Stat> {
    let me = sys::getpid();
    let mut roots: Vec<Pid> = Vec::new();
    // PID 1 is never a workspace's process (the identity check says so): a
    // record naming it must not claim every process below it.
    if let Some(oc) = record.opencode
        && live(oc, snap).is_some()
    {
        roots.push(oc.pid);
    }
    // Processes that escaped opencode's tree (their parent died) still
    // carry the marker; only those born after the workspace are checked.
    let marker = record.marker();
    for s in snap.procs.values() {
        if s.pid > 1
            && s.pid != me
            && !s.is_zombie()
            && s.start_time >= record.supervisor.start_time
            && !roots.contains(&s.pid)
            && proc::environ_has(s.pid, &marker)
        {
            roots.push(s.pid);
        }
    }
    let mut all = roots.clone();
    all.extend(snap.descendants(&roots));
    let mut seen = HashSet::new();
    let mut members = Vec::new();
    for pid in all {
        if !seen.insert(pid) {
            continue;
        }
        if let Some(s) = snap.get(pid)
            && identity::matches(s.id(), s, Owner::me())
        {
            members.push(s.clone());
        }
    }
    members
}

/// Seconds since the epoch as RFC 3339 (`2026-12-01T20:29:11Z`). The
/// seconds may come from a file (a record's `started_at`): humantime
/// formats years up to 9999 only (past that it fails, which `to_string`
/// turns into a panic), so later times are shown as the end of 9999.
pub fn rfc3339(secs: u64) -> String {
    const LAST: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.min(LAST));
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_time_from_a_record_can_be_shown() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_156_906), "2026-12-01T20:28:26Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
    }
}
