//! After a teardown: the summary line, the survivors, the `--report` JSON
//! document and the cumulative counters (`ocwrap stats`).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::cli::GlobalArgs;
use crate::exit_code::ExitCode;
use crate::registry::{self, Registry};
use crate::supervisor::Finished;
use crate::teardown::Summary;

/// Cumulative counters, kept per user in the state directory.
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
}

impl Counters {
    pub fn average_ms(&self) -> u64 {
        self.total_ms.checked_div(self.teardowns).unwrap_or(0)
    }

    pub fn add(&mut self, s: &Summary, orphans: u64) {
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
    }
}

pub const STATS_FILE: &str = "stats.json";

pub fn load_counters(dir: &Path) -> Counters {
    fs::read_to_string(dir.join(STATS_FILE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Adds one teardown to the counters under a lock; atomic replace.
pub fn record_counters(global: &GlobalArgs, s: &Summary, orphans: u64) -> Result<()> {
    let reg = Registry::open(global.state_dir.as_deref(), true)?.context("no state directory")?;
    let _lock = registry::lock(&reg.dir, "stats.lock").context("cannot lock the counters")?;
    let mut c = load_counters(&reg.dir);
    c.add(s, orphans);
    let tmp = reg.dir.join(format!(".stats.{}.tmp", crate::sys::getpid()));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    f.write_all(serde_json::to_string_pretty(&c)?.as_bytes())?;
    drop(f);
    fs::rename(&tmp, reg.dir.join(STATS_FILE))?;
    Ok(())
}

/// Appends one JSON document (a line) describing the teardown to `path`.
pub fn write_report(
    path: &Path,
    s: &Summary,
    exit: ExitCode,
    workspace: Option<&str>,
) -> Result<()> {
    let mut timeline = vec![json!({"t_ms": 0, "event": "teardown_started", "trigger": s.trigger})];
    if s.escalated {
        timeline.push(json!({"event": "escalated_to_sigkill"}));
    }
    if s.grace_timeout_hit {
        timeline.push(json!({"event": "grace_expired"}));
    }
    timeline
        .push(json!({"t_ms": s.duration_ms, "event": "teardown_completed", "clean": s.clean()}));
    let doc = json!({
        "version": 1,
        "finished_at": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        "ocwrap_pid": crate::sys::getpid(),
        "workspace": workspace,
        "trigger": s.trigger,
        "duration_ms": s.duration_ms,
        "ended_on_stop_signal": s.ended_on_stop_signal,
        "killed": s.killed,
        "sweeps": s.sweeps,
        "grace_timeout_hit": s.grace_timeout_hit,
        "escalated": s.escalated,
        "survivors": s.survivors,
        "processes": s.processes,
        "timeline": timeline,
        "exit_code": exit.code(),
    });
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open report file {}", path.display()))?;
    writeln!(f, "{doc}")?;
    Ok(())
}

/// Logs the end of a supervised run and picks ocwrap's exit status.
pub fn conclude(
    global: &GlobalArgs,
    report: Option<&Path>,
    finished: &Finished,
    workspace: Option<&str>,
) -> ExitCode {
    let s = &finished.summary;
    let fields = json!({
        "trigger": s.trigger, "duration_ms": s.duration_ms,
        "ended_on_stop_signal": s.ended_on_stop_signal, "killed": s.killed,
        "survivors": s.survivors, "sweeps": s.sweeps, "workspace": workspace,
    });
    crate::log::info("teardown.completed", &s.line(), fields);
    let exit = if s.clean() {
        crate::commands::child_code(finished.child_exit)
    } else {
        let list: Vec<String> = s
            .survivors
            .iter()
            .map(|p| format!("{} ({})", p.pid, p.command))
            .collect();
        crate::log::error(
            "teardown.survivors",
            &format!(
                "survivors: {} (still running after the kill-timeout)",
                list.join(", ")
            ),
            json!({"survivors": s.survivors}),
        );
        ExitCode::Survivors
    };
    if let Some(path) = report
        && let Err(e) = write_report(path, s, exit, workspace)
    {
        crate::log::warn("report.failed", &format!("{e:#}"), serde_json::Value::Null);
    }
    // Counters only for teardowns that had something to end: a plain
    // `ocwrap -- true` should not even touch the disk.
    if (s.sweeps > 0 || finished.orphans > 0)
        && let Err(e) = record_counters(global, s, finished.orphans)
    {
        crate::log::warn(
            "stats.failed",
            &format!("cannot update the counters: {e:#}"),
            serde_json::Value::Null,
        );
    }
    exit
}
