//! `ocwrap spawn FOLDER`: `opencode serve` for a folder, as a tracked
//! workspace under the same supervisor as `ocwrap -- CMD`.
//!
//! - this file: checks, the workspace's record, and the supervised run;
//! - `readiness.rs`: opencode's stdout, until the listening line and after;
//! - `detach.rs`: `--detach` (the fork, and the typed message back to the
//!   caller) and where the result is reported.

mod detach;
mod readiness;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::json;

use crate::cli::{GlobalArgs, SpawnArgs};
use crate::exit_code::{ExitCode, SpawnError};
use crate::opencode::{self, Serve};
use crate::proc::ProcId;
use crate::state::StateDir;
use crate::state::registry::{self, Record};
use crate::supervisor::{Finished, Supervisor};
use crate::sys::{self, Pid};
use detach::Reporter;
use readiness::Readiness;

pub fn spawn(global: &GlobalArgs, args: SpawnArgs) -> Result<ExitCode> {
    let folder = match std::fs::metadata(&args.folder) {
        Ok(m) if m.is_dir() => std::fs::canonicalize(&args.folder)?,
        Ok(_) => bail!("{} is not a directory", args.folder.display()),
        Err(e) => bail!("folder {}: {e}", args.folder.display()),
    };
    let Some(opencode) = opencode::find(args.opencode.as_deref()) else {
        crate::log::error(
            "workspace.opencode_missing",
            &format!("opencode not found on PATH: {}", opencode::INSTALL_HINT),
            json!({}),
        );
        return Ok(ExitCode::NotFound);
    };
    let state = StateDir::open(global.state_dir.as_deref(), true)?.context("no state directory")?;
    // 32 random bits; a clash with a live record is retried, not overwritten.
    let mut id = registry::new_id()?;
    while state.record_path(&id).exists() {
        id = registry::new_id()?;
    }
    let mut reporter = if args.detach {
        match detach::fork(&state.log_path(&id))? {
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
    };
    match ws.supervise(&mut reporter) {
        Ok(code) => Ok(code),
        Err(e) => {
            reporter.failed(&format!("{e:#}"), ExitCode::Error);
            Ok(ExitCode::Error)
        }
    }
}

/// One workspace being started.
struct Workspace<'a> {
    global: &'a GlobalArgs,
    args: &'a SpawnArgs,
    state: &'a StateDir,
    id: &'a str,
    folder: &'a Path,
    opencode: &'a Path,
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
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
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
        let code = self.conclude(&finished);
        if self.args.json && !reporter.is_detached() {
            let status = if never_ready.is_some() {
                ExitCode::Error
            } else {
                code
            };
            self.print_stopped(&finished, status);
        }
        if let Some(msg) = never_ready {
            reporter.failed(&msg, ExitCode::Error);
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
            reporter.failed(&msg, e.code());
        } else {
            crate::log::error("child.spawn_failed", &msg, json!({}));
        }
        e.code()
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
            grace_ms: limits.grace.as_millis() as u64,
            kill_timeout_ms: limits.kill_timeout.as_millis() as u64,
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

    /// The run is over: the summary, the exit status, and the record goes
    /// once nothing of the workspace is left.
    fn conclude(&self, finished: &Finished) -> ExitCode {
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
        code
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
