//! One module per subcommand; `dispatch` picks one. Commands are thin: they
//! turn options into calls of the layers below and print results.

mod docs;
mod ps;
mod reap;
mod run;
mod spawn;
mod stats;
mod stop;

use anyhow::Result;

use crate::cli::{Cli, Sub};
use crate::exit_code::ExitCode;

pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    let global = cli.global;
    if cli.sub.is_some() && !cli.command.is_empty() {
        anyhow::bail!(
            "`-- CMD` cannot be combined with a subcommand (use `ocwrap run CMD` or `ocwrap -- CMD`)"
        );
    }
    // Listing commands end quietly when their reader goes away (`ps | head`).
    // The supervisor keeps SIGPIPE ignored: a closed stderr must never kill
    // it in the middle of a teardown.
    if !matches!(
        cli.sub,
        None | Some(Sub::Run(_) | Sub::Spawn(_) | Sub::Stop(_))
    ) {
        crate::sys::default_sigpipe();
    }
    match cli.sub {
        None if cli.command.is_empty() => {
            anyhow::bail!("no command given: use `ocwrap [OPTIONS] -- CMD [ARGS...]` (see --help)")
        }
        None => run::run(&global, &cli.supervise, cli.command),
        Some(Sub::Run(a)) => run::run(&global, &a.supervise, a.command),
        Some(Sub::Spawn(a)) => spawn::spawn(&global, a),
        Some(Sub::Ps(a)) => ps::ps(&global, a),
        Some(Sub::Stop(a)) => stop::stop(&global, a),
        Some(Sub::Reap(a)) => reap::reap(&global, a),
        Some(Sub::Stats(a)) => stats::stats(&global, a),
        Some(Sub::Completions { shell }) => docs::completions(shell),
        Some(Sub::Man) => docs::man(),
    }
}
