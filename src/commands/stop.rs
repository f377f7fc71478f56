//! `ocwrap stop`: stop workspaces through their supervisor and verify that
//! supervisor and whole tree are gone.
//!
//! The supervisor gets SIGTERM and runs its own teardown with the grace it
//! was started with; `stop` waits for it that long (plus a second). A hung
//! supervisor is SIGKILLed and `stop` ends the tree it collected beforehand
//! with SIGKILL itself; an orphaned workspace (supervisor already dead) gets
//! the full graceful → forced teardown with stop's own --grace and
//! --kill-timeout. Whatever way it went, a last teardown verifies that
//! nothing of the workspace is left.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::json;

use crate::cli::{GlobalArgs, StopArgs};
use crate::exit_code::ExitCode;
use crate::proc::{Owner, Snapshot, Stat, identity};
use crate::state::StateDir;
use crate::state::registry::Record;
use crate::sys::Epoll;
use crate::teardown::kernel::{self, Holder};
use crate::teardown::{self, Delivery, Summary, Survivor, Trigger};
use crate::workspace::{self, Inspected, State};

/// One workspace's stop, as `stop --json` prints it.
#[derive(Serialize)]
struct Stopped {
    id: String,
    folder: PathBuf,
    clean: bool,
    duration_ms: u64,
    /// The workspace's processes when the stop began, supervisor included.
    processes: usize,
    ended_on_stop_signal: usize,
    killed: usize,
    survivors: Vec<Survivor>,
}

pub fn stop(global: &GlobalArgs, args: StopArgs) -> Result<ExitCode> {
    let mut done: Vec<Stopped> = Vec::new();
    if let Some(state) = StateDir::open(global.state_dir.as_deref(), false)? {
        let records = state.records();
        let chosen = select(&records, &args)?;
        let snap = Snapshot::scan();
        for rec in chosen {
            done.push(stop_and_log(
                global,
                &state,
                &args,
                workspace::inspect(rec, &snap),
            )?);
        }
    } else if !args.all {
        bail!("no workspace matches {}", args.targets.join(", "));
    }
    let clean = done.iter().all(|d| d.clean);
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&json!({"clean": clean, "workspaces": done}))?
        );
    }
    Ok(if clean {
        ExitCode::Success
    } else {
        ExitCode::Survivors
    })
}

/// Stops one workspace, logs how it went, counts it.
fn stop_and_log(
    global: &GlobalArgs,
    state: &StateDir,
    args: &StopArgs,
    w: Inspected,
) -> Result<Stopped> {
    let id = w.record.id.clone();
    let started = Instant::now();
    let summary = stop_one(&w, args)?;
    let ms = started.elapsed().as_millis() as u64;
    if summary.clean() {
        state.remove_record(&id);
        crate::log::info(
            "workspace.cleanup_completed",
            &format!(
                "workspace {id} stopped in {}: {} process(es) gone, none left",
                teardown::fmt_ms(ms),
                w.processes()
            ),
            json!({"workspace": id, "duration_ms": ms, "attempts": summary.sweeps,
                   "processes": w.processes()}),
        );
    } else {
        crate::log::error(
            "workspace.cleanup_failed",
            &format!("workspace {id}: {}", crate::outcome::survivors(&summary)),
            json!({"workspace": id, "survivors": summary.survivors}),
        );
    }
    crate::outcome::count(global.state_dir.as_deref(), &summary, 0);
    Ok(Stopped {
        id,
        folder: w.record.folder.clone(),
        clean: summary.clean(),
        duration_ms: ms,
        processes: w.processes(),
        ended_on_stop_signal: summary.ended_on_stop_signal,
        killed: summary.killed,
        survivors: summary.survivors,
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
    let end = |roots: &[Stat], grace: Duration| {
        teardown::end_foreign(
            roots,
            Trigger::Stop(id.clone()),
            grace,
            args.limits.kill_timeout,
        )
    };
    let Some(sup) = &w.supervisor else {
        if w.state == State::Orphaned {
            crate::log::info(
                "workspace.cleanup_started",
                &format!(
                    "workspace {id}: supervisor is gone, ending {} orphaned process(es)",
                    w.members.len()
                ),
                json!({"workspace": id, "processes": w.members.len()}),
            );
        }
        return Ok(end(&w.members, args.limits.grace)?);
    };
    crate::log::info(
        "workspace.cleanup_started",
        &format!("workspace {id}: asking supervisor {} to stop", sup.pid),
        json!({"workspace": id, "supervisor_pid": sup.pid}),
    );
    // The supervisor's own teardown is the graceful path.
    let budget = Duration::from_millis(w.record.grace_ms.saturating_add(w.record.kill_timeout_ms))
        + Duration::from_secs(1);
    if stop_supervisor(sup, budget)? {
        // Verify: anything the supervisor left is ended here.
        return Ok(end(&w.members, Duration::ZERO)?);
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
    Ok(end(&w.roots(), Duration::ZERO)?)
}

/// SIGTERM to a workspace's supervisor, then wait for it to exit within
/// `budget`. True when it is gone. The signal takes the teardown's one
/// signalling path; the wait is on the supervisor's pidfd where the kernel
/// allows one. Without, the supervisor is not our child and no event
/// announces its exit, so its identity is checked again on a short,
/// growing period.
fn stop_supervisor(sup: &Stat, budget: Duration) -> Result<bool> {
    let epoll = Epoll::new()?;
    let mut holder = Holder::new(Owner::me());
    let end = teardown::deadline(Instant::now(), budget);
    match holder.deliver(&epoll, &kernel::member(sup), libc::SIGTERM) {
        Delivery::Gone => return Ok(true),
        Delivery::Watched => {
            let mut tokens = Vec::new();
            while tokens.is_empty() && Instant::now() < end {
                epoll.wait(
                    Some(end.saturating_duration_since(Instant::now())),
                    &mut tokens,
                )?;
            }
            return Ok(!tokens.is_empty());
        }
        Delivery::Unwatched => {}
    }
    let mut pause = Duration::from_millis(5);
    while Instant::now() < end {
        if identity::check(sup.id(), Owner::me()).is_none() {
            return Ok(true);
        }
        std::thread::sleep(pause.min(end.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
    Ok(identity::check(sup.id(), Owner::me()).is_none())
}
