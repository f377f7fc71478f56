//! `ocwrap completions SHELL` and `ocwrap man`: generated from the clap
//! definition, so they can never disagree with `--help`.

use anyhow::Result;

use crate::exit_code::ExitCode;

pub fn completions(shell: clap_complete::Shell) -> Result<ExitCode> {
    let mut cmd = crate::cli::command();
    clap_complete::generate(shell, &mut cmd, "ocwrap", &mut std::io::stdout());
    Ok(ExitCode::Success)
}

pub fn man() -> Result<ExitCode> {
    let mut out = Vec::new();
    crate::manpage::render(&mut out)?;
    std::io::Write::write_all(&mut std::io::stdout(), &out)?;
    Ok(ExitCode::Success)
}
