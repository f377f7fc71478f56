//! `ocwrap ps`: list workspaces, their state, tree size and memory.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde::Serialize;

use crate::cli::{GlobalArgs, PsArgs};
use crate::exit_code::ExitCode;
use crate::opencode;
use crate::proc::{self, Snapshot};
use crate::state::StateDir;
use crate::state::registry::Record;
use crate::sys::{self, Pid};
use crate::workspace::{self, Inspected, State};

/// How long `ps --check` waits for health answers: one probe timeout,
/// however many workspaces there are (they are asked all at once).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One workspace, as `ps` shows it (and `ps --json` prints it).
#[derive(Serialize)]
struct Row {
    id: String,
    folder: PathBuf,
    url: Option<String>,
    port: Option<u16>,
    /// The supervisor's.
    pid: Pid,
    opencode_pid: Option<Pid>,
    state: State,
    uptime_secs: u64,
    /// RFC 3339.
    started_at: String,
    processes: usize,
    rss_bytes: u64,
    health: Option<&'static str>,
    log: Option<PathBuf>,
}

impl Row {
    fn new(w: &Inspected, now: u64, health: Option<&'static str>) -> Row {
        let r = &w.record;
        Row {
            id: r.id.clone(),
            folder: r.folder.clone(),
            url: r.url.clone(),
            port: r.port,
            pid: r.supervisor.pid,
            opencode_pid: r.opencode.map(|o| o.pid),
            state: w.state,
            uptime_secs: now.saturating_sub(r.started_at),
            started_at: workspace::rfc3339(r.started_at),
            processes: w.processes(),
            rss_bytes: w.rss_bytes(),
            health,
            log: r.log.clone(),
        }
    }
}

/// Asks every workspace that has a live server for its health, all at
/// once, one thread each (they wait on the network, not on the CPU), under
/// one shared deadline. A probe that has not answered by then, however it
/// is stuck (a server that accepts and never answers, a slow name lookup),
/// counts as unresponsive: the threads are not waited for.
fn check_health(workspaces: &[Inspected]) -> Vec<&'static str> {
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let mut health = vec!["unresponsive"; workspaces.len()];
    let (tx, rx) = mpsc::channel();
    let mut pending = 0;
    for (i, w) in workspaces.iter().enumerate() {
        let (Some(url), State::Running | State::Orphaned) = (&w.record.url, w.state) else {
            continue;
        };
        let probe = {
            let (tx, url) = (tx.clone(), url.clone());
            move || {
                let _ = tx.send((i, opencode::healthy(&url, deadline)));
            }
        };
        if std::thread::Builder::new().spawn(probe).is_err() {
            // No thread to spare: ask here, still under the deadline.
            let _ = tx.send((i, opencode::healthy(url, deadline)));
        }
        pending += 1;
    }
    while pending > 0 {
        // A moment past the deadline for a probe to report that it gave up.
        let left = deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(50);
        let Ok((i, ok)) = rx.recv_timeout(left) else {
            break;
        };
        pending -= 1;
        if ok {
            health[i] = "healthy";
        }
    }
    health
}

pub fn ps(global: &GlobalArgs, args: PsArgs) -> Result<ExitCode> {
    let records = match StateDir::open(global.state_dir.as_deref(), false)? {
        Some(state) => state.records(),
        None => Vec::new(),
    };
    let snap = snapshot_for(&records);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let workspaces: Vec<Inspected> = records
        .into_iter()
        .map(|rec| workspace::inspect(rec, &snap))
        .collect();
    let health = if args.check {
        check_health(&workspaces).into_iter().map(Some).collect()
    } else {
        vec![None; workspaces.len()]
    };
    let rows: Vec<Row> = workspaces
        .iter()
        .zip(health)
        .map(|(w, h)| Row::new(w, now, h))
        .collect();
    if args.json {
        println!("{}", serde_json::to_string(&rows)?);
    } else if rows.is_empty() {
        println!("no workspaces");
    } else {
        println!("{}", table(&rows, args.check));
    }
    Ok(ExitCode::Success)
}

/// Live supervisors' trees are read through the children files; only a
/// dead supervisor's workspace needs the full scan (its processes are found
/// by their marker).
fn snapshot_for(records: &[Record]) -> Snapshot {
    let uid = sys::getuid();
    let all_live = records
        .iter()
        .all(|r| proc::identity::check(r.supervisor, proc::Owner::Uid(uid)).is_some());
    if all_live && proc::children_files() {
        let sups: Vec<Pid> = records.iter().map(|r| r.supervisor.pid).collect();
        Snapshot::of_trees(&sups)
    } else {
        Snapshot::scan()
    }
}

fn table(rows: &[Row], check: bool) -> String {
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
        if check { "  HEALTH" } else { "" }
    )];
    for r in rows {
        lines.push(format!(
            "{:<8}  {:<8}  {:>7}  {:>7}  {:>5}  {:>7}  {:<28}  {}{}",
            r.id,
            r.state.as_str(),
            r.pid,
            fmt_uptime(r.uptime_secs),
            r.processes,
            fmt_bytes(r.rss_bytes),
            r.url.as_deref().unwrap_or("-"),
            r.folder.display(),
            r.health.map(|h| format!("  {h}")).unwrap_or_default(),
        ));
    }
    lines.join("\n")
}

/// "3d 4h", "5m 2s", "12s".
fn fmt_uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

fn fmt_bytes(b: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if b >= 1024 * 1024 * 1024 {
        format!("{:.1}G", b as f64 / (MIB * 1024.0))
    } else {
        format!("{:.1}M", b as f64 / MIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(fmt_uptime(12), "12s");
        assert_eq!(fmt_uptime(302), "5m 2s");
        assert_eq!(fmt_uptime(3 * 86400 + 4 * 3600), "3d 4h");
        assert_eq!(fmt_bytes(3 * 1024 * 1024 / 2), "1.5M");
    }
}
