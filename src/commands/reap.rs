use anyhow::Result;

use crate::cli::{GlobalArgs, ReapArgs};
use crate::exit_code::ExitCode;

pub fn reap(_global: &GlobalArgs, _args: ReapArgs) -> Result<ExitCode> {
    anyhow::bail!("not yet")
}
