//! What `reap` would end, and why: orphaned workspaces from the registry
//! and untracked orphaned servers found in `/proc`.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::json;

use crate::opencode::ServerCommand;
use crate::proc::{self, Owner, Snapshot, Stat, identity};
use crate::state::registry::Record;
use crate::sys::{self, Pid};
use crate::workspace::{self, State};

/// Parents that adopt orphans: a process under one of these lost its own.
const REAPERS: &[&str] = &[
    "systemd",
    "init",
    "tini",
    "dumb-init",
    "catatonit",
    "docker-init",
];

#[derive(Serialize)]
pub struct Target {
    pub pid: Pid,
    pub command: String,
    pub reason: String,
    pub workspace: Option<String>,
    /// The whole tree: the target and its descendants.
    pub processes: Vec<Pid>,
}

/// Everything found: the targets, the processes to end (identity-checked
/// roots for the teardown), and the records that can go once it is clean.
#[derive(Default)]
pub struct Found {
    pub targets: Vec<Target>,
    pub roots: Vec<Stat>,
    pub finished_records: Vec<String>,
    claimed: HashSet<Pid>,
    live_workspace: HashSet<Pid>,
}

impl Found {
    /// Workspaces from the registry: orphaned ones are targets, running
    /// ones are protected, dead ones only leave a record to remove.
    pub fn workspaces(&mut self, records: Vec<Record>, snap: &Snapshot) {
        for rec in records {
            let w = workspace::inspect(rec, snap);
            match w.state {
                State::Running => {
                    self.live_workspace.extend(w.members.iter().map(|s| s.pid));
                    self.live_workspace
                        .extend(w.supervisor.iter().map(|s| s.pid));
                }
                State::Dead => self.finished_records.push(w.record.id.clone()),
                State::Orphaned => {
                    let pids: Vec<Pid> = w.members.iter().map(|s| s.pid).collect();
                    self.claimed.extend(&pids);
                    let first = w.members[0].pid;
                    crate::log::info(
                        "orphan.found",
                        &format!(
                            "workspace {}: supervisor {} is gone, {} process(es) left",
                            w.record.id,
                            w.record.supervisor.pid,
                            pids.len()
                        ),
                        json!({"workspace": w.record.id, "processes": pids}),
                    );
                    self.targets.push(Target {
                        pid: first,
                        command: proc::read_cmdline(first),
                        reason: format!(
                            "workspace {} lost its supervisor ({})",
                            w.record.id, w.record.supervisor.pid
                        ),
                        workspace: Some(w.record.id.clone()),
                        processes: pids,
                    });
                    self.finished_records.push(w.record.id.clone());
                    self.roots.extend(w.members);
                }
            }
        }
    }

    /// Untracked orphans that are `server` (by their arguments, see
    /// [`ServerCommand`]), with their trees. `partial`: the snapshot holds
    /// only some trees, so an orphan's own tree is read through the
    /// children files first.
    pub fn orphans(&mut self, snap: &mut Snapshot, server: &ServerCommand, partial: bool) {
        let me = sys::getpid();
        let mut orphans: Vec<Stat> = snap
            .procs
            .values()
            .filter(|s| is_orphan(s, snap, me))
            .cloned()
            .collect();
        orphans.sort_by_key(|s| s.pid);
        for s in orphans {
            if self.claimed.contains(&s.pid) || self.live_workspace.contains(&s.pid) {
                continue;
            }
            let argv = proc::read_argv(s.pid);
            if !server.matches(&argv) || !identity::matches(s.id(), &s, Owner::me()) {
                continue;
            }
            let cmdline = argv.join(" ");
            if partial {
                snap.add_trees(&proc::children_of(s.pid));
            }
            let mut tree = vec![s.pid];
            tree.extend(
                snap.live_descendants(&[s.pid])
                    .into_iter()
                    .map(|d| d.pid)
                    .filter(|d| !self.live_workspace.contains(d)),
            );
            self.claimed.extend(&tree);
            crate::log::info(
                "orphan.found",
                &format!(
                    "orphan {} ({}) with {} process(es)",
                    s.pid,
                    cmdline,
                    tree.len()
                ),
                json!({"orphan_pid": s.pid, "command": cmdline, "processes": tree}),
            );
            self.roots
                .extend(tree.iter().filter_map(|p| snap.get(*p)).cloned());
            self.targets.push(Target {
                pid: s.pid,
                command: cmdline,
                reason: format!("orphaned (parent {}) and matches '{server}'", s.ppid),
                workspace: None,
                processes: tree,
            });
        }
    }
}

/// The processes `reap` has to look at. A full scan of `/proc` is needed
/// to find a dead supervisor's processes by their marker, and whenever PID
/// 1 or its children cannot be read (`hidepid`, or a container whose PID 1
/// is another user's): then the orphans are the processes we can see whose
/// parent we cannot, or is PID 1. Otherwise (with children files) reap
/// reads the live supervisors' trees, PID 1's children and the children of
/// a reaper among those (`systemd --user`): orphans are found there.
/// Returns the snapshot and whether it is partial.
pub fn snapshot(records: &[Record]) -> (Snapshot, bool) {
    let any_dead = records
        .iter()
        .any(|r| identity::check(r.supervisor, Owner::me()).is_none());
    if any_dead || !proc::children_files() {
        return (Snapshot::scan(), false);
    }
    let (Some(_), Some(top)) = (proc::read_stat(1), proc::try_children_of(1)) else {
        return (Snapshot::scan(), false);
    };
    let supervisors: Vec<Pid> = records.iter().map(|r| r.supervisor.pid).collect();
    let mut part = Snapshot::of_trees(&supervisors);
    part.add_pids(&[1]);
    part.add_pids(&top);
    for c in top {
        if part
            .get(c)
            .is_some_and(|s| REAPERS.contains(&s.comm.as_str()))
        {
            part.add_pids(&proc::children_of(c));
        }
    }
    (part, true)
}

/// Re-parented to PID 1 or to a known reaper that is not ocwrap.
fn is_orphan(s: &Stat, snap: &Snapshot, me: Pid) -> bool {
    if s.pid <= 1 || s.pid == me || s.is_zombie() {
        return false;
    }
    let Some(parent) = snap.get(s.ppid) else {
        return s.ppid == 1;
    };
    if parent.comm == "ocwrap" {
        return false;
    }
    s.ppid == 1 || REAPERS.contains(&parent.comm.as_str())
}
