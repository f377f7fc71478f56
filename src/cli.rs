//! The command-line interface: every option, its environment variable and
//! its help text. Completions and the man page are generated from this.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::log::{Format, Level};
use crate::supervisor::{Config, ForwardTo};
use crate::teardown::Plan;

pub const EXAMPLES: &str = "\
Examples:
  ocwrap -- next start                 supervise a server; nothing outlives it
  ocwrap --grace 5s -- npm run dev     shorter graceful stop before SIGKILL
  url=$(ocwrap spawn --detach .)       start opencode serve for this folder
  ocwrap spawn --json ./repo           foreground workspace, JSON on stdout
  ocwrap ps --check                    list workspaces and ask them for health
  ocwrap stop --all                    stop every workspace, verify it is gone
  ocwrap reap --dry-run                show orphans a crash left behind";

fn after_help() -> String {
    format!("{EXAMPLES}\n\n{}", crate::exit_code::TABLE)
}

#[derive(Parser, Debug)]
#[command(
    name = "ocwrap",
    version,
    about = "Run a command as a subreaper and end its whole process tree when it stops",
    long_about = "\
ocwrap runs CMD in its own process group as a child subreaper, forwards
signals to it, reaps every zombie, and when CMD exits (or ocwrap is told to
stop) ends every remaining descendant (other process groups, setsid daemons,
double forks) with the stop signal, then SIGKILL after the grace, and verifies
that nothing is left.

`ocwrap spawn` starts `opencode serve` for a folder as a tracked workspace;
`ps`, `stop` and `reap` list, stop and clean up workspaces and the orphans a
crash left behind.",
    after_help = after_help()
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(flatten)]
    pub supervise: SuperviseArgs,

    /// The command to supervise, after `--`
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,

    #[command(subcommand)]
    pub sub: Option<Sub>,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Only print errors (same as --log-level error)
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Also print debug messages (same as --log-level debug)
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// How much to log on stderr
    #[arg(
        long,
        global = true,
        value_enum,
        env = "OCWRAP_LOG_LEVEL",
        default_value = "info"
    )]
    pub log_level: Level,

    /// Log lines as text (`ocwrap: ...`) or JSON objects
    #[arg(
        long,
        global = true,
        value_enum,
        env = "OCWRAP_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: Format,

    /// Per-user state directory (workspace records, logs, counters)
    /// [default: $XDG_RUNTIME_DIR/ocwrap, else /tmp/ocwrap-UID]
    #[arg(long, global = true, env = "OCWRAP_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

impl GlobalArgs {
    pub fn level(&self) -> Level {
        if self.quiet {
            Level::Error
        } else if self.verbose {
            Level::Debug
        } else {
            self.log_level
        }
    }
}

// The two clocks of a teardown (see `crate::teardown`): the grace after
// the stop signal, then the time to verify after SIGKILL. (Not a doc
// comment: clap would take it for the `about` of every command that
// flattens these, and with deferred subcommands it would win.)
#[derive(Args, Debug, Clone)]
pub struct Limits {
    /// Time the tree gets after the stop signal before SIGKILL (e.g. 10s, 500ms)
    #[arg(long, env = "OCWRAP_GRACE", value_parser = parse_duration, default_value = "10s",
          value_name = "DURATION")]
    pub grace: Duration,

    /// Time allowed after SIGKILL to verify that nothing is left
    #[arg(long, env = "OCWRAP_KILL_TIMEOUT", value_parser = parse_duration, default_value = "5s",
          value_name = "DURATION")]
    pub kill_timeout: Duration,
}

#[derive(Args, Debug, Clone)]
pub struct SuperviseArgs {
    #[command(flatten)]
    pub limits: Limits,

    /// Signal sent to every remaining descendant when the teardown starts
    #[arg(long, env = "OCWRAP_STOP_SIGNAL", value_parser = crate::signal::parse,
          default_value = "TERM", value_name = "SIGNAL")]
    pub stop_signal: i32,

    /// Send forwarded signals to CMD alone or to its whole process group
    #[arg(long, env = "OCWRAP_FORWARD_TO", value_enum, default_value = "child")]
    pub forward_to: ForwardTo,

    /// Signal CMD gets if ocwrap itself dies (e.g. is SIGKILLed)
    #[arg(long, env = "OCWRAP_PDEATH_SIGNAL", value_parser = crate::signal::parse,
          default_value = "KILL", value_name = "SIGNAL")]
    pub pdeath_signal: i32,

    /// Write a JSON report of every teardown to FILE
    #[arg(long, env = "OCWRAP_REPORT", value_name = "FILE")]
    pub report: Option<PathBuf>,
}

impl Limits {
    /// The teardown these limits describe, with `stop_signal`.
    pub fn plan(&self, stop_signal: i32) -> Plan {
        Plan {
            stop_signal,
            grace: self.grace,
            kill_timeout: self.kill_timeout,
        }
    }
}

impl SuperviseArgs {
    /// How the supervisor runs, from these options.
    pub fn config(&self) -> Config {
        Config {
            plan: self.limits.plan(self.stop_signal),
            forward_to: self.forward_to,
            pdeath_signal: self.pdeath_signal,
        }
    }
}

#[derive(Subcommand, Debug)]
// Each subcommand's options are built only when it runs (or for help,
// completions and the man page): a run of one command builds one.
#[command(defer = true)]
pub enum Sub {
    /// Supervise CMD (the same as `ocwrap [OPTIONS] -- CMD`)
    Run(RunArgs),
    /// Start `opencode serve` for a folder as a tracked workspace
    Spawn(SpawnArgs),
    /// List workspaces and their health
    Ps(PsArgs),
    /// Stop workspaces and verify their whole tree is gone
    Stop(StopArgs),
    /// End orphaned workspaces and untracked orphaned opencode servers
    Reap(ReapArgs),
    /// Show cumulative teardown counters
    Stats(StatsArgs),
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff)
    Man,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub supervise: SuperviseArgs,

    /// The command to supervise and its arguments
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<OsString>,
}

#[derive(Args, Debug)]
pub struct SpawnArgs {
    /// Folder to serve (opencode's working directory)
    pub folder: PathBuf,

    /// Port for opencode serve (0: any free port)
    #[arg(long, env = "OCWRAP_PORT", default_value_t = 0)]
    pub port: u16,

    /// Hostname opencode serve listens on
    #[arg(long, env = "OCWRAP_HOSTNAME")]
    pub hostname: Option<String>,

    /// The opencode executable [default: `opencode` on PATH]
    #[arg(long, env = "OCWRAP_OPENCODE", value_name = "PATH")]
    pub opencode: Option<PathBuf>,

    /// How long to wait for opencode's listening line
    #[arg(long, env = "OCWRAP_READY_TIMEOUT", value_parser = parse_duration,
          default_value = "30s", value_name = "DURATION")]
    pub ready_timeout: Duration,

    /// Return once ready; a supervisor in its own session keeps watching
    #[arg(long, env = "OCWRAP_DETACH")]
    pub detach: bool,

    /// Print one JSON object instead of the URL
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub supervise: SuperviseArgs,

    /// Extra arguments for opencode serve, after `--`
    #[arg(last = true, value_name = "EXTRA")]
    pub extra: Vec<OsString>,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Print a JSON array
    #[arg(long)]
    pub json: bool,

    /// Ask each server for health (GET /global/health)
    #[arg(long)]
    pub check: bool,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Workspace ids or folders
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub targets: Vec<String>,

    /// Stop every workspace
    #[arg(long)]
    pub all: bool,

    #[command(flatten)]
    pub limits: Limits,
}

#[derive(Args, Debug)]
pub struct ReapArgs {
    /// List what would be ended and why; touch nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Print the targets as JSON
    #[arg(long)]
    pub json: bool,

    /// Command-line text that marks an untracked server [default: "opencode serve"]
    #[arg(long = "match", env = "OCWRAP_MATCH", value_name = "PATTERN")]
    pub pattern: Option<String>,

    #[command(flatten)]
    pub limits: Limits,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Print the counters as JSON
    #[arg(long)]
    pub json: bool,
}

/// Parses a humantime duration (`10s`, `1m 30s`, `500ms`); a bare number is
/// taken as seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration (try 10s or 500ms)".into());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("invalid duration '{t}': {e} (try 10s or 500ms)"))
}

pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

mod fast;

/// Parses the process's command line: the supervisor form without
/// building clap's `Command` (see `cli/fast.rs`), everything else with clap.
pub fn parse() -> Result<Cli, clap::Error> {
    match fast::parse(std::env::args_os().skip(1), |name| std::env::var_os(name)) {
        Some(cli) => Ok(cli),
        None => <Cli as clap::Parser>::try_parse(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }

    /// With `defer`, a subcommand's options are added after its `about`
    /// is set; a flattened struct's doc comment would then replace it.
    #[test]
    fn deferred_subcommands_keep_their_help() {
        let texts = |cmd: &clap::Command| -> Vec<String> {
            cmd.get_subcommands()
                .filter(|s| s.get_name() != "help")
                .map(|s| {
                    format!(
                        "{} {:?} {:?}",
                        s.get_name(),
                        s.get_about(),
                        s.get_long_about()
                    )
                })
                .collect()
        };
        let unbuilt = command();
        let mut built = command();
        built.build();
        assert_eq!(texts(&unbuilt), texts(&built));
        assert!(texts(&built)[0].contains("Supervise CMD"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
