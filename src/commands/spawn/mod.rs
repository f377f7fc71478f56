//! `ocwrap spawn FOLDER`: `opencode serve` for a folder, as a tracked
//! workspace under the same supervisor as `ocwrap -- CMD`.
//!
//! - this file: checks, the workspace's record, and the supervised run;
//! - `readiness.rs`: opencode's stdout, until the listening line and after;
//! - `detach.rs`: `--detach` (the fork, and the typed message back to the
//!   caller) and where the result is reported;
//! - `logfile.rs`: a detached workspace's log, removed or kept at the end.

mod detach;
mod logfile;
mod readiness;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::json;

use crate::cli::{GlobalArgs, SpawnArgs};
use crate::exit_code::{ExitCode, SpawnError, io_reason};
use crate::opencode::{self, Serve};
use crate::proc::ProcId;
use crate::state::StateDir;
use crate::state::registry::{self, Record};
use crate::supervisor::{Finished, Supervisor};
use crate::sys::{self, Exit, Pid};
use crate::teardown::Trigger;
use detach::Reporter;
use logfile::WorkspaceLog;
use readiness::Readiness;

pub fn spawn(global: &GlobalArgs, args: SpawnArgs) -> Result<ExitCode> {
    let folder = usable_folder(&args.folder)?;
    let Some(opencode) = opencode::find(args.opencode.as_deref()) else {
        crate::log::error(
            "workspace.opencode_missing",
            &format!("opencode not found on PATH: {}", opencode::INSTALL_HINT),
            json!({}),
        );
        return Ok(ExitCode::NotFound);
    };
    let state = StateDir::open(global.state_dir.as_deref(), true)?.context("no state directory")?;
    // 32 random bits; a clash with a live record (or a kept log) is
    // retried, not overwritten.
    let mut id = registry::new_id()?;
    while state.record_path(&id).exists() || state.log_path(&id).exists() {
        id = registry::new_id()?;
    }
    let log = args.detach.then(|| WorkspaceLog::new(&state, &id));
    let mut reporter = if let Some(log) = &log {
        match detach::fork(log, args.log_max)? {
            Ok(reporter) => reporter,
            Err(caller_exit) => return Ok(caller_exit),
        }
    } else {
        Reporter::Stdout
    };
    let ws = Workspace {
        global,
        args: &args,
        state: &state,
        id: &id,
        folder: &folder,
        opencode: &opencode,
        log: log.as_ref(),
    };
    match ws.supervise(&mut reporter) {
        Ok(code) => Ok(code),
        Err(e) => {
            reporter.failed(&ws.failed(&format!("{e:#}")), ExitCode::Error);
            Ok(ExitCode::Error)
        }
    }
}

/// FOLDER, checked before anything starts (opencode runs in it, so it must
/// be a directory we can enter and list), made absolute.
fn usable_folder(folder: &Path) -> Result<PathBuf> {
    let fail = |why: String| anyhow::anyhow!("cannot use folder {}: {why}", folder.display());
    let meta = std::fs::metadata(folder).map_err(|e| fail(io_reason(&e)))?;
    if !meta.is_dir() {
        return Err(fail("not a directory".into()));
    }
    sys::can_read_and_enter(folder).map_err(|e| fail(io_reason(&e)))?;
    std::fs::canonicalize(folder).map_err(|e| fail(io_reason(&e)))
}

/// One workspace being started.
struct Workspace<'a> {
    global: &'a GlobalArgs,
    args: &'a SpawnArgs,
    state: &'a StateDir,
    id: &'a str,
    folder: &'a Path,
    opencode: &'a Path,
    /// The detached workspace's log (None in the foreground).
    log: Option<&'a WorkspaceLog>,
}

/// What `spawn --json` prints once the workspace is ready.
#[derive(Serialize)]
struct Ready<'a> {
    id: &'a str,
    folder: &'a Path,
    url: &'a str,
    port: Option<u16>,
    pids: Pids,
    started_at: String,
    log: Option<&'a Path>,
}

#[derive(Serialize)]
struct Pids {
    supervisor: Pid,
    opencode: Pid,
}

impl Workspace<'_> {
    fn supervise(&self, reporter: &mut Reporter) -> Result<ExitCode> {
        let mut cmd = Serve {
            opencode: self.opencode,
            folder: self.folder,
            port: self.args.port,
            hostname: self.args.hostname.as_deref(),
            extra: &self.args.extra,
            workspace: self.id,
        }
        .command();
        // opencode's stdout comes to us (the listening line), and so does
        // its stderr when detached: then everything it prints reaches the
        // log through us, and the log's size cap holds (with --print-logs
        // most of what opencode says is on stderr).
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        if self.log.is_some() {
            sys::stderr_to_stdout(&mut cmd);
        }
        // A foreground workspace belongs to whoever started it: when that
        // process dies (even by SIGKILL), we get SIGTERM and tear down.
        let parent = (!self.args.detach).then(sys::getppid);
        let mut sup = match Supervisor::start(self.args.supervise.config(parent), &mut cmd) {
            Ok(s) => s,
            Err(e) => return Ok(self.start_failed(e, reporter)),
        };
        let out = sup
            .take_stdout()
            .context("opencode's stdout was not captured")?;
        sys::set_nonblocking(std::os::fd::AsRawFd::as_raw_fd(&out))?;
        let mut record = self.record(sup.child_pid())?;
        self.state.write_record(&record)?;
        crate::log::info(
            "workspace.started",
            &format!(
                "workspace {}: opencode ({}) starting in {}",
                self.id,
                sup.child_pid(),
                self.folder.display()
            ),
            json!({"workspace": self.id, "folder": self.folder, "opencode_pid": sup.child_pid()}),
        );
        let mut on_ready = |url: &str| self.ready(&mut record, url, reporter);
        let mut readiness = Readiness::new(out, self.args.ready_timeout, &mut on_ready);
        let finished = sup.run(Some(&mut readiness))?;
        let never_ready = (!readiness.ready()).then(|| {
            format!(
                "workspace {} never got ready ({}); last output: {}",
                self.id,
                finished.summary.trigger,
                readiness.last_lines()
            )
        });
        drop(readiness);
        let code = self.conclude(&finished, never_ready.is_none());
        if self.args.json && !reporter.is_detached() {
            let status = if never_ready.is_some() {
                ExitCode::Error
            } else {
                code
            };
            self.print_stopped(&finished, status);
        }
        if let Some(msg) = never_ready {
            reporter.failed(&self.failed(&msg), ExitCode::Error);
            return Ok(ExitCode::Error);
        }
        Ok(code)
    }

    /// opencode could not be started at all.
    fn start_failed(&self, e: SpawnError, reporter: &mut Reporter) -> ExitCode {
        let msg = match &e {
            SpawnError::NotFound(m) => format!("{m} ({})", opencode::INSTALL_HINT),
            _ => e.message(),
        };
        if reporter.is_detached() {
            reporter.failed(&self.failed(&msg), e.code());
        } else {
            crate::log::error("child.spawn_failed", &msg, json!({}));
        }
        e.code()
    }

    /// The message of a failed workspace, with where its log is kept (an
    /// empty log is removed instead).
    fn failed(&self, message: &str) -> String {
        match self.log {
            Some(log) => log.failed(message),
            None => message.to_string(),
        }
    }

    fn record(&self, opencode_pid: Pid) -> Result<Record> {
        let limits = &self.args.supervise.limits;
        Ok(Record {
            version: registry::FORMAT_VERSION,
            id: self.id.to_string(),
            folder: self.folder.to_path_buf(),
            url: None,
            port: None,
            uid: sys::getuid(),
            supervisor: ProcId::of(sys::getpid()).context("cannot read our own /proc entry")?,
            opencode: ProcId::of(opencode_pid),
            pgid: opencode_pid,
            log: self.args.detach.then(|| self.state.log_path(self.id)),
            started_at: now_secs(),
            grace_ms: millis(limits.grace),
            kill_timeout_ms: millis(limits.kill_timeout),
        })
    }

    /// The listening line arrived: save the URL, report it.
    fn ready(&self, record: &mut Record, url: &str, reporter: &mut Reporter) {
        record.url = Some(url.to_string());
        record.port = opencode::url_port(url);
        if let Err(e) = self.state.write_record(record) {
            crate::log::warn("registry.write_failed", &format!("{e:#}"), json!({}));
        }
        let text = if self.args.json {
            let ready = Ready {
                id: &record.id,
                folder: &record.folder,
                url,
                port: record.port,
                pids: Pids {
                    supervisor: record.supervisor.pid,
                    opencode: record.pgid,
                },
                started_at: crate::workspace::rfc3339(record.started_at),
                log: record.log.as_deref(),
            };
            serde_json::to_string(&ready).unwrap_or_default()
        } else {
            url.to_string()
        };
        reporter.ready(&text);
        crate::log::info(
            "workspace.ready",
            &format!("workspace {} ready at {url}", record.id),
            json!({"workspace": record.id, "url": url}),
        );
    }

    /// `spawn --json` in the foreground: a second line once the workspace
    /// is gone, so that a caller reading stdout learns how it ended.
    fn print_stopped(&self, finished: &Finished, code: ExitCode) {
        let s = &finished.summary;
        let line = json!({
            "event": "stopped",
            "id": self.id,
            "trigger": s.trigger.to_string(),
            "clean": s.clean(),
            "duration_ms": s.duration_ms,
            "ended_on_stop_signal": s.ended_on_stop_signal,
            "killed": s.killed,
            "survivors": s.survivors,
            "exit_code": code.code(),
        });
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// The run is over: the summary, the exit status; the record goes once
    /// nothing of the workspace is left, and the log once the workspace
    /// also ended as asked (see [`ended_cleanly`]). A workspace that was
    /// never ready is reported by the caller, with its log.
    fn conclude(&self, finished: &Finished, was_ready: bool) -> ExitCode {
        let code = crate::outcome::conclude(
            self.global.state_dir.as_deref(),
            self.args.supervise.report.as_deref(),
            &self.args.supervise.remap_exit,
            finished,
            Some(self.id),
        );
        if finished.summary.clean() {
            self.state.remove_record(self.id);
        }
        if let Some(log) = self.log
            && was_ready
        {
            if ended_cleanly(finished) {
                log.remove();
            } else {
                let msg = log.failed(&format!(
                    "workspace {} ended badly ({})",
                    self.id, finished.summary.trigger
                ));
                crate::log::error("workspace.failed", &msg, json!({"workspace": self.id}));
            }
        }
        code
    }
}

/// A workspace ended cleanly when nothing of it is left and it ended as
/// asked: stopped by a signal (`ocwrap stop`, a terminating signal to the
/// supervisor) or opencode exiting with status 0. opencode exiting with
/// another status or killed by something else is a failure worth a log.
fn ended_cleanly(finished: &Finished) -> bool {
    let s = &finished.summary;
    s.clean()
        && match s.trigger {
            Trigger::Signal(_) | Trigger::Stop(_) => true,
            Trigger::CmdExited(how) => how == Exit::Code(0),
            Trigger::NotReady(_) | Trigger::Reap => false,
        }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A duration in whole milliseconds, saturating (u128 does not fit a
/// record's u64).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_never_panic() {
        assert_eq!(millis(Duration::from_millis(1500)), 1500);
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }
}
