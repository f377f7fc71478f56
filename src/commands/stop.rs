use anyhow::Result;

use crate::cli::{GlobalArgs, StopArgs};
use crate::exit_code::ExitCode;

pub fn stop(_global: &GlobalArgs, _args: StopArgs) -> Result<ExitCode> {
    anyhow::bail!("not yet")
}
