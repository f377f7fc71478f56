//! ocwrap: a subreaper supervisor that makes sure no process outlives the
//! workspace that started it. `main.rs` only calls [`run`].

pub mod cli;
mod commands;
pub mod exit_code;
pub mod log;
pub mod manpage;
pub mod procfs;
pub mod registry;
mod report;
pub mod signal;
mod supervisor;
pub mod sys;
pub mod teardown;
pub mod workspace;

use clap::Parser;

use exit_code::ExitCode;

/// Parses the command line, runs the command, returns the exit status.
pub fn run() -> i32 {
    // A closed stderr or stdout must not kill the supervisor mid-teardown;
    // listing commands restore the default later (`ps | head`).
    sys::ignore_sigpipe();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => ExitCode::Error.code(),
            };
        }
    };
    log::init(cli.global.level(), cli.global.log_format);
    match commands::dispatch(cli) {
        Ok(code) => code.code(),
        Err(e) => {
            log::error("error", &format!("{e:#}"), serde_json::Value::Null);
            ExitCode::Error.code()
        }
    }
}
