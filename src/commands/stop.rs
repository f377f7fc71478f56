//! `ocwrap stop`: stop workspaces through their supervisor and verify that
//! supervisor and whole tree are gone.
//!
//! The supervisor gets SIGTERM and runs its own teardown with the grace it
//! was started with; `stop` waits for it that long (plus a second). A hung
//! supervisor is SIGKILLed and `stop` ends the tree it collected beforehand
//! with SIGKILL itself; an orphaned workspace (supervisor already dead) gets
//! the full graceful → forced teardown with stop's own --grace and
//! --kill-timeout.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::json;

use crate::cli::{GlobalArgs, StopArgs};
use crate::exit_code::ExitCode;
use crate::procfs::Snapshot;
use crate::registry::{Record, Registry};
use crate::sys;
use crate::teardown::{self, Summary};
use crate::workspace::{self, Inspected, State};

pub fn stop(global: &GlobalArgs, args: StopArgs) -> Result<ExitCode> {
    let Some(reg) = Registry::open(global.state_dir.as_deref(), false)? else {
        if args.all {
            return Ok(ExitCode::Success);
        }
        bail!("no workspace matches {}", args.targets.join(", "));
    };
    let records = reg.load_all();
    let chosen = select(&records, &args)?;
    let snap = Snapshot::scan();
    let mut all_gone = true;
    for rec in chosen {
        let id = rec.id.clone();
        let w = workspace::inspect(rec, &snap);
        let started = std::time::Instant::now();
        let summary = stop_one(&w, &args)?;
        let ms = started.elapsed().as_millis() as u64;
        if summary.clean() {
            reg.remove(&id);
            crate::log::info(
                "workspace.cleanup_completed",
                &format!(
                    "workspace {id} stopped in {}: {} process(es) gone, none left",
                    teardown::fmt_ms(ms),
                    w.members.len() + w.supervisor.is_some() as usize
                ),
                json!({"workspace": id, "duration_ms": ms, "attempts": summary.sweeps,
                       "processes": w.members.len() + w.supervisor.is_some() as usize}),
            );
        } else {
            all_gone = false;
            crate::log::error(
                "workspace.cleanup_failed",
                &format!("workspace {id}: survivors: {}", summary.survivor_pids()),
                json!({"workspace": id, "survivors": summary.survivors}),
            );
        }
        if let Err(e) = crate::report::record_counters(global, &summary, 0) {
            crate::log::warn(
                "stats.failed",
                &format!("cannot update the counters: {e:#}"),
                json!({}),
            );
        }
    }
    Ok(if all_gone {
        ExitCode::Success
    } else {
        ExitCode::Survivors
    })
}

fn select(records: &[Record], args: &StopArgs) -> Result<Vec<Record>> {
    if args.all {
        return Ok(records.to_vec());
    }
    let mut out: Vec<Record> = Vec::new();
    for t in &args.targets {
        let folder = std::fs::canonicalize(Path::new(t)).ok();
        let found: Vec<&Record> = records
            .iter()
            .filter(|r| r.id == *t || folder.as_deref() == Some(r.folder.as_path()))
            .collect();
        if found.is_empty() {
            bail!("no workspace matches '{t}' (see `ocwrap ps`)");
        }
        for r in found {
            if !out.iter().any(|o| o.id == r.id) {
                out.push(r.clone());
            }
        }
    }
    Ok(out)
}

fn stop_one(w: &Inspected, args: &StopArgs) -> Result<Summary> {
    let id = &w.record.id;
    let trigger = format!("stop {id}");
    if w.state == State::Dead {
        return Ok(teardown::run_foreign(
            &[],
            trigger,
            Duration::ZERO,
            Duration::ZERO,
        )?);
    }
    let Some(sup) = &w.supervisor else {
        crate::log::info(
            "workspace.cleanup_started",
            &format!(
                "workspace {id}: supervisor is gone, ending {} orphaned process(es)",
                w.members.len()
            ),
            json!({"workspace": id, "processes": w.members.len()}),
        );
        return Ok(teardown::run_foreign(
            &w.roots(),
            trigger,
            args.limits.grace,
            args.limits.kill_timeout,
        )?);
    };
    // The supervisor's own teardown is the graceful path.
    let pidfd = sys::pidfd_open(sup.pid)?;
    if !crate::procfs::verify(sup.pid, sup.start_time) {
        return Ok(teardown::run_foreign(
            &w.members,
            trigger,
            args.limits.grace,
            args.limits.kill_timeout,
        )?);
    }
    crate::log::info(
        "workspace.cleanup_started",
        &format!("workspace {id}: asking supervisor {} to stop", sup.pid),
        json!({"workspace": id, "supervisor_pid": sup.pid}),
    );
    sys::pidfd_send_signal(&pidfd, libc::SIGTERM)?;
    let budget = Duration::from_millis(w.record.grace_ms + w.record.kill_timeout_ms)
        + Duration::from_secs(1);
    if sys::pidfd_wait(&pidfd, budget)? {
        // Verify: anything the supervisor left is ended here.
        return Ok(teardown::run_foreign(
            &w.members,
            trigger,
            Duration::ZERO,
            args.limits.kill_timeout,
        )?);
    }
    crate::log::warn(
        "workspace.supervisor_hung",
        &format!(
            "workspace {id}: supervisor {} did not finish in {}; killing the tree",
            sup.pid,
            humantime::format_duration(budget)
        ),
        json!({"workspace": id, "supervisor_pid": sup.pid}),
    );
    Ok(teardown::run_foreign(
        &w.roots(),
        trigger,
        Duration::ZERO,
        args.limits.kill_timeout,
    )?)
}
