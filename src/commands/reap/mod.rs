//! `ocwrap reap`: after a crash, end what is left.
//!
//! Targets (`targets.rs`):
//! 1. workspaces whose supervisor is dead but whose processes live (from the
//!    registry, every PID identity-checked);
//! 2. untracked orphans: processes of ours that are a server by their
//!    arguments (program `opencode`, then `serve`, by default; `--match
//!    WORDS`; see [`crate::opencode::ServerCommand`]) and that were
//!    orphaned — their parent is PID 1, or a known init/subreaper (systemd,
//!    tini, dumb-init, catatonit, docker-init) — with their descendants.
//!
//! Never touched: PID 1, ourselves, another user's process (even as root),
//! a process whose parent is a live ocwrap, a live workspace's processes,
//! and a process whose start time changed since it was found.

mod targets;

use anyhow::Result;
use serde_json::json;

use crate::cli::{GlobalArgs, ReapArgs};
use crate::exit_code::ExitCode;
use crate::opencode::{SERVER_COMMAND, ServerCommand};
use crate::state::StateDir;
use crate::teardown::{self, Summary, Trigger};
use targets::{Found, Target};

pub fn reap(global: &GlobalArgs, args: ReapArgs) -> Result<ExitCode> {
    let server = match &args.server {
        Some(s) => s.clone(),
        None => ServerCommand::parse(SERVER_COMMAND).expect("the default has words"),
    };
    // A hostile state directory only costs us the registry: orphan
    // discovery still runs.
    let state = match StateDir::open(global.state_dir.as_deref(), false) {
        Ok(s) => s,
        Err(e) => {
            crate::log::warn(
                "registry.refused",
                &format!("{e:#}; skipping the registry"),
                json!({}),
            );
            None
        }
    };
    let records = state.as_ref().map(|s| s.records()).unwrap_or_default();
    let (mut snap, partial) = targets::snapshot(&records);
    let mut found = Found::default();
    found.workspaces(records, &snap);
    found.orphans(&mut snap, &server, partial);
    if args.dry_run {
        print_targets(&found.targets, args.json, None)?;
        return Ok(ExitCode::Success);
    }
    let summary = teardown::end_foreign(
        &found.roots,
        Trigger::Reap,
        args.limits.grace,
        args.limits.kill_timeout,
    )?;
    if let Some(state) = &state
        && summary.clean()
    {
        for id in &found.finished_records {
            state.remove_record(id);
        }
    }
    print_targets(&found.targets, args.json, Some(&summary))?;
    if !found.targets.is_empty() {
        crate::log::info(
            "reap.completed",
            &crate::outcome::line(&summary),
            json!({"duration_ms": summary.duration_ms, "survivors": summary.survivors}),
        );
        let orphans = found.targets.len() as u64;
        crate::outcome::count(global.state_dir.as_deref(), &summary, orphans);
    }
    if summary.clean() {
        Ok(ExitCode::Success)
    } else {
        crate::log::error(
            "reap.survivors",
            &crate::outcome::survivors(&summary),
            json!({"survivors": summary.survivors}),
        );
        Ok(ExitCode::Survivors)
    }
}

fn print_targets(targets: &[Target], json_out: bool, summary: Option<&Summary>) -> Result<()> {
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
