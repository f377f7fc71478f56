//! `ocwrap ps`: list workspaces, their state, tree size and memory.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde_json::json;

use crate::cli::{GlobalArgs, PsArgs};
use crate::exit_code::ExitCode;
use crate::procfs::{self, Snapshot};
use crate::registry::Registry;
use crate::workspace::{self, State};

pub fn ps(global: &GlobalArgs, args: PsArgs) -> Result<ExitCode> {
    let Some(reg) = Registry::open(global.state_dir.as_deref(), false)? else {
        if args.json {
            println!("[]");
        } else {
            println!("no workspaces");
        }
        return Ok(ExitCode::Success);
    };
    let records = reg.load_all();
    // Live supervisors' trees are read through the children files; only a
    // dead supervisor's workspace needs the full scan (its processes are
    // found by their marker).
    let uid = crate::sys::getuid();
    let all_live = records.iter().all(|r| r.supervisor.live(uid).is_some());
    let snap = if all_live && procfs::children_files() {
        let sups: Vec<_> = records.iter().map(|r| r.supervisor.pid).collect();
        Snapshot::of_trees(&sups)
    } else {
        Snapshot::scan()
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut rows = Vec::new();
    for rec in records {
        let w = workspace::inspect(rec, &snap);
        let health = match (&w.record.url, args.check, w.state) {
            (Some(url), true, State::Running | State::Orphaned) => {
                Some(if workspace::health(url, Duration::from_secs(2)) {
                    "healthy"
                } else {
                    "unresponsive"
                })
            }
            (_, true, _) => Some("unresponsive"),
            _ => None,
        };
        let procs = w.members.len() + w.supervisor.is_some() as usize;
        rows.push(json!({
            "id": w.record.id,
            "folder": w.record.folder,
            "url": w.record.url,
            "port": w.record.port,
            "pid": w.record.supervisor.pid,
            "opencode_pid": w.record.opencode.map(|o| o.pid),
            "state": w.state.as_str(),
            "uptime_secs": now.saturating_sub(w.record.started_at),
            "processes": procs,
            "rss_bytes": w.rss_bytes(),
            "health": health,
            "log": w.record.log,
        }));
    }
    if args.json {
        println!("{}", serde_json::Value::Array(rows));
        return Ok(ExitCode::Success);
    }
    if rows.is_empty() {
        println!("no workspaces");
        return Ok(ExitCode::Success);
    }
    let mut lines = vec![format!(
        "{:<8}  {:<8}  {:>7}  {:>7}  {:>5}  {:>7}  {:<28}  {}{}",
        "ID",
        "STATE",
        "PID",
        "UPTIME",
        "PROCS",
        "RSS",
        "URL",
        "FOLDER",
        if args.check { "  HEALTH" } else { "" }
    )];
    for r in &rows {
        lines.push(format!(
            "{:<8}  {:<8}  {:>7}  {:>7}  {:>5}  {:>7}  {:<28}  {}{}",
            r["id"].as_str().unwrap_or(""),
            r["state"].as_str().unwrap_or(""),
            r["pid"],
            workspace::fmt_uptime(r["uptime_secs"].as_u64().unwrap_or(0)),
            r["processes"],
            workspace::fmt_bytes(r["rss_bytes"].as_u64().unwrap_or(0)),
            r["url"].as_str().unwrap_or("-"),
            r["folder"].as_str().unwrap_or(""),
            r["health"]
                .as_str()
                .map(|h| format!("  {h}"))
                .unwrap_or_default(),
        ));
    }
    println!("{}", lines.join("\n"));
    Ok(ExitCode::Success)
}
