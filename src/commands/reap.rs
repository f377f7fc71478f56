//! `ocwrap reap`: after a crash, end what is left.
//!
//! Targets:
//! 1. workspaces whose supervisor is dead but whose processes live (from the
//!    registry, every PID identity-checked);
//! 2. untracked orphans: processes of ours whose command line contains the
//!    pattern (`opencode serve` by default) and that were orphaned — their
//!    parent is PID 1, or a known init/subreaper (systemd, tini, dumb-init,
//!    catatonit, docker-init) — together with their descendants.
//!
//! Never touched: PID 1, ourselves, another user's process (even as root),
//! a process whose parent is a live ocwrap, a live workspace's processes,
//! and a process whose start time changed since it was found.

use std::collections::HashSet;

use anyhow::Result;
use serde::Serialize;
use serde_json::json;

use crate::cli::{GlobalArgs, ReapArgs};
use crate::exit_code::ExitCode;
use crate::procfs::{self, Snapshot, Stat};
use crate::registry::Registry;
use crate::sys::{self, Pid};
use crate::teardown;
use crate::workspace::{self, State};

const DEFAULT_PATTERN: &str = "opencode serve";
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
struct Target {
    pid: Pid,
    command: String,
    reason: String,
    workspace: Option<String>,
    /// The whole tree: the target and its descendants.
    processes: Vec<Pid>,
}

pub fn reap(global: &GlobalArgs, args: ReapArgs) -> Result<ExitCode> {
    let pattern = args
        .pattern
        .clone()
        .unwrap_or_else(|| DEFAULT_PATTERN.to_string());
    if pattern.trim().is_empty() {
        anyhow::bail!("--match needs a non-empty pattern");
    }
    let uid = sys::getuid();
    let me = sys::getpid();
    let mut targets: Vec<Target> = Vec::new();
    let mut roots: Vec<Stat> = Vec::new();
    let mut claimed: HashSet<Pid> = HashSet::new();
    let mut live_workspace: HashSet<Pid> = HashSet::new();
    let mut finished_records = Vec::new();

    // 1. Workspaces from the registry. A hostile state directory only costs
    // us this part: orphan discovery below still runs.
    let reg = match Registry::open(global.state_dir.as_deref(), false) {
        Ok(r) => r,
        Err(e) => {
            crate::log::warn(
                "registry.refused",
                &format!("{e:#}; skipping the registry"),
                json!({}),
            );
            None
        }
    };
    let records = reg.as_ref().map(|r| r.load_all()).unwrap_or_default();
    // A full scan of /proc is needed only to find a dead supervisor's
    // processes by their marker. Otherwise (with children files) reap reads
    // the live supervisors' trees, PID 1's children and the children of a
    // reaper among those (`systemd --user`): orphans are found there.
    let any_dead = records.iter().any(|r| r.supervisor.live(uid).is_none());
    let full_scan = any_dead || !procfs::children_files();
    let mut snap = if full_scan {
        Snapshot::scan()
    } else {
        let supervisors: Vec<Pid> = records.iter().map(|r| r.supervisor.pid).collect();
        let mut part = Snapshot::of_trees(&supervisors);
        part.add_pids(&[1]);
        let top = procfs::children_of(1);
        part.add_pids(&top);
        for c in top {
            if part
                .get(c)
                .is_some_and(|s| REAPERS.contains(&s.comm.as_str()))
            {
                part.add_pids(&procfs::children_of(c));
            }
        }
        part
    };
    for rec in records {
        let w = workspace::inspect(rec, &snap);
        match w.state {
            State::Running => {
                live_workspace.extend(w.members.iter().map(|s| s.pid));
                if let Some(s) = &w.supervisor {
                    live_workspace.insert(s.pid);
                }
            }
            State::Dead => finished_records.push(w.record.id.clone()),
            State::Orphaned => {
                let pids: Vec<Pid> = w.members.iter().map(|s| s.pid).collect();
                claimed.extend(&pids);
                let first = &w.members[0];
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
                targets.push(Target {
                    pid: first.pid,
                    command: procfs::read_cmdline(first.pid),
                    reason: format!(
                        "workspace {} lost its supervisor ({})",
                        w.record.id, w.record.supervisor.pid
                    ),
                    workspace: Some(w.record.id.clone()),
                    processes: pids,
                });
                finished_records.push(w.record.id.clone());
                roots.extend(w.members);
            }
        }
    }

    // 2. Untracked orphans matching the pattern.
    let mut orphans: Vec<Stat> = snap
        .procs
        .values()
        .filter(|s| is_orphan(s, &snap, me))
        .cloned()
        .collect();
    orphans.sort_by_key(|s| s.pid);
    for s in orphans {
        if claimed.contains(&s.pid) || live_workspace.contains(&s.pid) {
            continue;
        }
        let cmdline = procfs::read_cmdline(s.pid);
        if !cmdline.contains(&pattern) {
            continue;
        }
        if procfs::read_uids(s.pid).is_none_or(|(r, e)| r != uid || e != uid) {
            continue;
        }
        if !full_scan {
            // The orphan's own tree, read through the children files.
            snap.add_trees(&procfs::children_of(s.pid));
        }
        let mut tree = vec![s.pid];
        for d in snap.descendants(&[s.pid]) {
            if snap.get(d).is_some_and(|x| !x.is_zombie()) && !live_workspace.contains(&d) {
                tree.push(d);
            }
        }
        claimed.extend(&tree);
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
        targets.push(Target {
            pid: s.pid,
            command: cmdline,
            reason: format!("orphaned (parent {}) and matches '{pattern}'", s.ppid),
            workspace: None,
            processes: tree.clone(),
        });
        roots.extend(tree.iter().filter_map(|p| snap.get(*p)).cloned());
    }

    if args.dry_run {
        print_targets(&targets, args.json, None)?;
        return Ok(ExitCode::Success);
    }
    let summary = teardown::run_foreign(
        &roots,
        "reap".into(),
        args.limits.grace,
        args.limits.kill_timeout,
    )?;
    if let Some(reg) = &reg
        && summary.clean()
    {
        for id in &finished_records {
            reg.remove(id);
        }
    }
    print_targets(&targets, args.json, Some(&summary))?;
    if !targets.is_empty() {
        crate::log::info(
            "reap.completed",
            &summary.line(),
            json!({"duration_ms": summary.duration_ms, "survivors": summary.survivors}),
        );
        let orphan_count = targets.len() as u64;
        if let Err(e) = crate::report::record_counters(global, &summary, orphan_count) {
            crate::log::warn(
                "stats.failed",
                &format!("cannot update the counters: {e:#}"),
                json!({}),
            );
        }
    }
    if summary.clean() {
        Ok(ExitCode::Success)
    } else {
        crate::log::error(
            "reap.survivors",
            &format!("survivors: {}", summary.survivor_pids()),
            json!({"survivors": summary.survivors}),
        );
        Ok(ExitCode::Survivors)
    }
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

fn print_targets(
    targets: &[Target],
    json_out: bool,
    summary: Option<&teardown::Summary>,
) -> Result<()> {
    if json_out {
        let doc = json!({
            "dry_run": summary.is_none(),
            "targets": targets,
            "survivors": summary.map(|s| s.survivors.clone()).unwrap_or_default(),
            "ended_on_stop_signal": summary.map(|s| s.ended_on_stop_signal),
            "killed": summary.map(|s| s.killed),
        });
        println!("{doc}");
        return Ok(());
    }
    if targets.is_empty() {
        println!("nothing to reap");
        return Ok(());
    }
    let verb = if summary.is_some() {
        "ended"
    } else {
        "would end"
    };
    for t in targets {
        println!(
            "{verb} {} ({} process{}): {} — {}",
            t.pid,
            t.processes.len(),
            if t.processes.len() == 1 { "" } else { "es" },
            t.command,
            t.reason
        );
    }
    Ok(())
}
