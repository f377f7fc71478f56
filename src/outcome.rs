//! The end of a teardown as people and files see it: the summary line, the
//! survivors line, the `--report` document, the counters, and ocwrap's exit
//! status after a supervised run.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;

use crate::exit_code::ExitCode;
use crate::state::StateDir;
use crate::supervisor::Finished;
use crate::teardown::{Summary, fmt_ms};

/// The one line that sums up a teardown.
pub fn line(s: &Summary) -> String {
    let survivors = if s.unseen && s.survivors.is_empty() {
        "survivors unknown (processes /proc does not show)".to_string()
    } else if s.survivors.is_empty() {
        "0 survivors".to_string()
    } else {
        format!("{} survivors ({})", s.survivors.len(), s.survivor_pids())
    };
    format!(
        "teardown ({}) done in {}: {} ended on the stop signal, {} killed, {survivors}",
        s.trigger,
        fmt_ms(s.duration_ms),
        s.ended_on_stop_signal,
        s.killed,
    )
}

/// What is left, for an error message: `survivors: 42 (sleep), 7 (x)`, or
/// why ocwrap cannot tell.
pub fn survivors(s: &Summary) -> String {
    let mut parts = Vec::new();
    if !s.survivors.is_empty() {
        let list: Vec<String> = s
            .survivors
            .iter()
            .map(|p| format!("{} ({})", p.pid, p.command))
            .collect();
        parts.push(format!("survivors: {}", list.join(", ")));
    }
    if s.unseen {
        parts.push(
            "ocwrap still has descendants that /proc does not show (hidden or not mounted), \
             so it cannot verify that they are gone"
                .to_string(),
        );
    }
    parts.join("; ")
}

/// Appends one JSON document (a line) describing the teardown to `path`,
/// in one write: formatting straight into the file would make a system
/// call of every token (tens of thousands for a big tree), and with
/// O_APPEND one write keeps the line whole when two teardowns report to
/// the same file.
pub fn write_report(
    path: &Path,
    s: &Summary,
    exit: ExitCode,
    workspace: Option<&str>,
) -> Result<()> {
    let line = report_line(s, exit, workspace)?;
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open report file {}", path.display()))?;
    f.write_all(&line)?;
    Ok(())
}

/// The report's line for a teardown: one JSON document and a newline.
fn report_line(s: &Summary, exit: ExitCode, workspace: Option<&str>) -> Result<Vec<u8>> {
    let trigger = s.trigger.to_string();
    let mut timeline = vec![json!({"t_ms": 0, "event": "teardown_started", "trigger": trigger})];
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
        "trigger": trigger,
        "duration_ms": s.duration_ms,
        "ended_on_stop_signal": s.ended_on_stop_signal,
        "killed": s.killed,
        "signalled": s.signalled,
        "sweeps": s.sweeps,
        "grace_timeout_hit": s.grace_timeout_hit,
        "escalated": s.escalated,
        "survivors": s.survivors,
        "unseen": s.unseen,
        "processes": s.processes,
        "timeline": timeline,
        "exit_code": exit.code(),
    });
    let mut line = serde_json::to_vec(&doc)?;
    line.push(b'\n');
    Ok(line)
}

/// Adds a teardown to the user's counters; a failure is only a warning (it
/// must never fail the teardown itself).
pub fn count(state_dir: Option<&Path>, s: &Summary, orphans: u64) {
    let res = StateDir::open(state_dir, true)
        .and_then(|d| d.context("no state directory"))
        .and_then(|d| d.add_to_counters(s, orphans));
    if let Err(e) = res {
        crate::log::warn(
            "stats.failed",
            &format!("cannot update the counters: {e:#}"),
            json!({}),
        );
    }
}

/// Logs the end of a supervised run and picks ocwrap's exit status.
pub fn conclude(
    state_dir: Option<&Path>,
    report: Option<&Path>,
    remap: &[(u8, u8)],
    finished: &Finished,
    workspace: Option<&str>,
) -> ExitCode {
    let s = &finished.summary;
    // A teardown with nothing to end stays quiet (it would only add a line
    // to the program's own output); `-v` shows it anyway.
    let level = if s.signalled > 0 || !s.clean() {
        crate::log::Level::Info
    } else {
        crate::log::Level::Debug
    };
    // Built only when it is logged: a clean `ocwrap -- CMD` exits here.
    if crate::log::enabled(level) {
        crate::log::emit(
            level,
            "teardown.completed",
            &line(s),
            json!({
                "trigger": s.trigger.to_string(), "duration_ms": s.duration_ms,
                "ended_on_stop_signal": s.ended_on_stop_signal, "killed": s.killed,
                "signalled": s.signalled,
                "survivors": s.survivors, "unseen": s.unseen, "sweeps": s.sweeps,
                            "workspace": workspace,
            }),
        );
    }
    let exit = if s.clean() {
        ExitCode::of_child(finished.child_exit).remapped(remap)
    } else {
        let suffix = if s.survivors.is_empty() {
            ""
        } else {
            " (still running after the kill-timeout)"
        };
        crate::log::error(
            "teardown.survivors",
            &format!("{}{suffix}", survivors(s)),
            json!({"survivors": s.survivors, "unseen": s.unseen}),
        );
        ExitCode::Survivors
    };
    if let Some(path) = report
        && let Err(e) = write_report(path, s, exit, workspace)
    {
        crate::log::warn("report.failed", &format!("{e:#}"), json!({}));
    }
    // Counters only for teardowns that had something to end: a plain
    // `ocwrap -- true` should not even touch the disk.
    if s.sweeps > 0 || finished.orphans > 0 {
        count(state_dir, s, finished.orphans);
    }
    exit
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Exit;
    use crate::teardown::{Survivor, Trigger};

    fn summary(survivors: Vec<Survivor>, unseen: bool) -> Summary {
        Summary {
            trigger: Trigger::CmdExited(Exit::Code(0)),
            duration_ms: 1500,
            ended_on_stop_signal: 3,
            killed: 1,
            signalled: 4,
            survivors,
            unseen,
            sweeps: 2,
            grace_timeout_hit: true,
            escalated: false,
            processes: Vec::new(),
        }
    }

    #[test]
    fn summary_line_names_counts_and_survivors() {
        let clean = summary(Vec::new(), false);
        assert!(clean.clean());
        assert_eq!(
            line(&clean),
            "teardown (CMD exited with status 0) done in 1.5s: 3 ended on the stop signal, 1 killed, 0 survivors"
        );
        let dirty = summary(
            vec![
                Survivor {
                    pid: 42,
                    command: "x".into(),
                    signals: Vec::new(),
                },
                Survivor {
                    pid: 7,
                    command: "y".into(),
                    signals: Vec::new(),
                },
            ],
            false,
        );
        assert!(!dirty.clean());
        assert!(
            line(&dirty).ends_with("2 survivors (42, 7)"),
            "{}",
            line(&dirty)
        );
        assert_eq!(survivors(&dirty), "survivors: 42 (x), 7 (y)");
    }

    #[test]
    fn processes_it_cannot_see_are_a_failure() {
        let s = summary(Vec::new(), true);
        assert!(!s.clean());
        assert!(line(&s).ends_with("survivors unknown (processes /proc does not show)"));
        assert!(!line(&s).contains("0 survivors"));
        assert!(survivors(&s).contains("cannot verify"), "{}", survivors(&s));
    }

    #[test]
    fn a_report_is_one_line_with_every_process() {
        let mut s = summary(Vec::new(), false);
        s.processes = (0..1000)
            .map(|pid| crate::teardown::ProcessOutcome {
                pid,
                command: format!("sleep{pid}"),
                ended_by: crate::teardown::EndedBy::StopSignal,
                after_ms: 3,
                signals: vec![crate::teardown::SentSignal::new(libc::SIGTERM, 0)],
            })
            .collect();
        let line = report_line(&s, ExitCode::Error, Some("0b0b0b0b")).unwrap();
        // One newline, at the end: the whole document goes in one write.
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(line.last(), Some(&b'\n'));
        let doc: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(doc["processes"].as_array().unwrap().len(), 1000);
        assert_eq!(doc["processes"][999]["command"], "sleep999");
        assert_eq!(doc["workspace"], "0b0b0b0b");
        assert_eq!(doc["exit_code"], 125);
    }
}
