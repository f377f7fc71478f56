//! ocwrap: a subreaper supervisor that makes sure no process outlives the
//! workspace that started it. `main.rs` only calls [`run`].
//!
//! Layers, from the bottom up (a module only uses modules of its own layer
//! or below):
//!
//! 1. `sys` — every raw syscall and every `unsafe` block;
//! 2. `proc` (reading `/proc`, the identity check), `signal`, `log`,
//!    `exit_code`, `opencode` (what ocwrap knows about opencode);
//! 3. `teardown` — the state machine that ends a tree, and the kernel's
//!    process tables;
//! 4. `state` — the state directory, the registry, the counters;
//! 5. `workspace` — a record checked against `/proc`;
//! 6. `supervisor` — the event loop around CMD, and our own tree's table;
//! 7. `outcome` — the summary, survivors, `--report`, the exit status;
//! 8. `cli` (the clap definition) and `manpage`;
//! 9. `commands` — one module per subcommand.

pub mod cli;
mod commands;
pub mod exit_code;
pub mod log;
pub mod manpage;
pub mod opencode;
mod outcome;
pub mod proc;
pub mod signal;
pub mod state;
mod supervisor;
mod sys;
mod teardown;
mod workspace;

use exit_code::ExitCode;

/// Parses the command line, runs the command, returns the exit status.
pub fn run() -> i32 {
    // A closed stderr or stdout must not kill the supervisor mid-teardown;
    // listing commands restore the default later (`ps | head`).
    sys::ignore_sigpipe();
    let cli = match cli::parse() {
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
