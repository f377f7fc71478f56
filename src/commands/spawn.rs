use anyhow::Result;

use crate::cli::{GlobalArgs, SpawnArgs};
use crate::exit_code::ExitCode;

pub fn spawn(_global: &GlobalArgs, _args: SpawnArgs) -> Result<ExitCode> {
    anyhow::bail!("not yet")
}
