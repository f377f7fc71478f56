use anyhow::Result;

use crate::cli::{GlobalArgs, PsArgs};
use crate::exit_code::ExitCode;

pub fn ps(_global: &GlobalArgs, _args: PsArgs) -> Result<ExitCode> {
    anyhow::bail!("not yet")
}
