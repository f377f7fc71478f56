//! `ocwrap [OPTIONS] -- CMD [ARGS...]` (also `ocwrap run`): supervise CMD.

use std::ffi::OsString;
use std::process::Command;

use anyhow::Result;

use crate::cli::{GlobalArgs, SuperviseArgs};
use crate::exit_code::{ExitCode, SpawnError};
use crate::supervisor::{LAUNCHER_VAR, Supervisor};

pub fn run(global: &GlobalArgs, opts: &SuperviseArgs, command: Vec<OsString>) -> Result<ExitCode> {
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]);
    // Behind the npm package's launcher (which stays alive as our parent
    // where Node cannot exec us): its death is a stop request.
    let launcher = std::env::var(LAUNCHER_VAR)
        .ok()
        .and_then(|v| v.trim().parse().ok());
    let mut sup = match Supervisor::start(opts.config(launcher), &mut cmd) {
        Ok(s) => s,
        Err(e) => return Ok(spawn_failed(&e)),
    };
    let finished = sup.run(None)?;
    Ok(crate::outcome::conclude(
        global.state_dir.as_deref(),
        opts.report.as_deref(),
        &opts.remap_exit,
        &finished,
        None,
    ))
}

/// Logs why CMD could not start and picks the exit status.
pub fn spawn_failed(e: &SpawnError) -> ExitCode {
    crate::log::error("child.spawn_failed", &e.message(), serde_json::Value::Null);
    e.code()
}
