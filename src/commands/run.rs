//! `ocwrap [OPTIONS] -- CMD [ARGS...]` (also `ocwrap run`): supervise CMD.

use std::ffi::OsString;
use std::process::Command;

use anyhow::Result;

use crate::cli::{GlobalArgs, SuperviseArgs};
use crate::exit_code::ExitCode;
use crate::supervisor::{SpawnError, Supervisor};
use crate::sys::Exit;

pub fn run(global: &GlobalArgs, opts: SuperviseArgs, command: Vec<OsString>) -> Result<ExitCode> {
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]);
    let report = opts.report.clone();
    let mut sup = match Supervisor::start(opts, &mut cmd) {
        Ok(s) => s,
        Err(e) => return Ok(spawn_error(e)),
    };
    let finished = sup.run(None)?;
    Ok(crate::report::conclude(
        global,
        report.as_deref(),
        &finished,
        None,
    ))
}

/// Logs why CMD could not start and picks the exit status.
pub fn spawn_error(e: SpawnError) -> ExitCode {
    let (msg, code) = match e {
        SpawnError::NotFound(m) => (m, ExitCode::NotFound),
        SpawnError::CannotExecute(m) => (m, ExitCode::CannotExecute),
        SpawnError::Other(e) => (format!("{e:#}"), ExitCode::Error),
    };
    crate::log::error("child.spawn_failed", &msg, serde_json::Value::Null);
    code
}

/// CMD's exit status as ocwrap's.
pub fn child_code(exit: Option<Exit>) -> ExitCode {
    match exit {
        Some(Exit::Code(c)) => ExitCode::Child(c),
        Some(Exit::Signal(s)) => ExitCode::ChildSignal(s),
        None => ExitCode::Error,
    }
}
