//! `ocwrap stats`: the cumulative teardown counters.

use anyhow::Result;

use crate::cli::{GlobalArgs, StatsArgs};
use crate::exit_code::ExitCode;
use crate::state::StateDir;
use crate::state::counters::Counters;
use crate::teardown::fmt_ms;
use crate::workspace::rfc3339;

pub fn stats(global: &GlobalArgs, args: StatsArgs) -> Result<ExitCode> {
    let c = match StateDir::open(global.state_dir.as_deref(), false)? {
        Some(state) => state.counters(),
        None => Counters::default(),
    };
    if args.json {
        let mut v = serde_json::to_value(&c)?;
        v["average_ms"] = c.average_ms().into();
        v["last_teardown_at"] = c.last_teardown_at.map(rfc3339).into();
        println!("{v}");
    } else {
        println!("teardowns        {}", c.teardowns);
        println!("  clean          {}", c.clean);
        println!("  failed         {}", c.failed);
        println!("average time     {}", fmt_ms(c.average_ms()));
        println!("max time         {}", fmt_ms(c.max_ms));
        println!("grace timeouts   {}", c.grace_timeouts);
        println!("re-sweeps        {}", c.resweeps);
        println!("orphans found    {}", c.orphans_found);
        println!("ended by signal  {}", c.processes_ended);
        println!("killed           {}", c.processes_killed);
        let last = c.last_teardown_at.map(rfc3339);
        println!("last teardown    {}", last.as_deref().unwrap_or("-"));
    }
    Ok(ExitCode::Success)
}
