//! The command-line interface: every option, its environment variable and
//! its help text. Completions and the man page are generated from this.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::log::{Format, Level};
use crate::opencode::ServerCommand;
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
    /// [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]
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
    /// Time the tree gets after the stop signal before SIGKILL (e.g. 10s, 500ms; at most 365d)
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

    /// Forward signal FROM to CMD as TO (TO 0: drop it); repeatable, or
    /// comma-separated (e.g. TERM:INT)
    #[arg(long, env = "OCWRAP_REWRITE", value_parser = crate::signal::parse_rewrite,
          value_delimiter = ',', value_name = "FROM:TO")]
    pub rewrite: Vec<(i32, i32)>,

    /// Report CMD's exit status FROM as TO; repeatable, or comma-separated
    /// (e.g. 143:0)
    #[arg(long, env = "OCWRAP_REMAP_EXIT", value_parser = parse_remap,
          value_delimiter = ',', value_name = "FROM:TO")]
    pub remap_exit: Vec<(u8, u8)>,

    /// When CMD exits by itself, let the rest of the tree end on its own for
    /// up to DURATION before the stop signal
    #[arg(long, env = "OCWRAP_LINGER", value_parser = parse_duration, default_value = "0s",
          value_name = "DURATION")]
    pub linger: Duration,
}

impl SuperviseArgs {
    /// How the supervisor runs, from these options. `stop_with_parent`:
    /// ocwrap's own parent dying is a stop request.
    pub fn config(&self, stop_with_parent: Option<i32>) -> Config {
        Config {
            plan: Plan {
                stop_signal: self.stop_signal,
                grace: self.limits.grace,
                kill_timeout: self.limits.kill_timeout,
                linger: self.linger,
                names: self.report.is_some() || crate::log::enabled(crate::log::Level::Debug),
            },
            forward_to: self.forward_to,
            pdeath_signal: self.pdeath_signal,
            rewrites: self.rewrite.clone(),
            stop_with_parent,
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

    /// With --detach: rotate the workspace's log (ID.log to ID.log.1) when it
    /// would pass SIZE, so it takes at most about twice SIZE (bytes, or
    /// K/KiB, M/MiB, G/GiB; at least 64KiB)
    #[arg(long, env = "OCWRAP_LOG_MAX", value_parser = parse_log_max,
          default_value = "8MiB", value_name = "SIZE")]
    pub log_max: u64,

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

    /// Print the result as one JSON object
    #[arg(long)]
    pub json: bool,

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

    /// What an untracked server is: its program's name, then its first
    /// arguments, compared word by word with each orphan's arguments (after
    /// a leading interpreter such as node or python3; `bin/x` matches
    /// `/usr/bin/x`), never as a substring [default: "opencode serve"]
    #[arg(long = "match", env = "OCWRAP_MATCH", value_name = "WORDS",
          value_parser = parse_server_command)]
    pub server: Option<ServerCommand>,

    #[command(flatten)]
    pub limits: Limits,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Print the counters as JSON
    #[arg(long)]
    pub json: bool,
}

/// `--remap-exit FROM:TO`, two exit statuses (0-255).
pub fn parse_remap(text: &str) -> Result<(u8, u8), String> {
    let bad = || format!("'{text}' is not FROM:TO with two exit statuses 0-255 (e.g. 143:0)");
    let (from, to) = text.split_once(':').ok_or_else(bad)?;
    Ok((
        from.trim().parse().map_err(|_| bad())?,
        to.trim().parse().map_err(|_| bad())?,
    ))
}

/// The longest duration any option takes: a year. Longer ones are refused
/// at parse time (no deadline ocwrap computes from one can overflow, and a
/// grace of `18446744073709551615` seconds is a typo, not a plan).
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses a humantime duration (`10s`, `1m 30s`, `500ms`); a bare number is
/// taken as seconds. At most [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration (try 10s or 500ms)".into());
    }
    let d = match t.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(t)
            .map_err(|e| format!("invalid duration '{t}': {e} (try 10s or 500ms)"))?,
    };
    if d > MAX_DURATION {
        return Err(format!("duration '{t}' is too long: at most 365 days"));
    }
    Ok(d)
}

/// The smallest `--log-max`: a log file smaller than this would rotate on
/// every few lines.
pub const MIN_LOG_MAX: u64 = 64 * 1024;

/// Parses a size in bytes: a plain number, or one with a unit `K`/`KiB`,
/// `M`/`MiB`, `G`/`GiB` (binary: K = KiB = 1024 bytes; case-insensitive;
/// `8MiB`, `512k`, `1 G`). At least [`MIN_LOG_MAX`].
pub fn parse_log_max(text: &str) -> Result<u64, String> {
    let bytes = parse_size(text)?;
    if bytes < MIN_LOG_MAX {
        return Err(format!("'{}' is too small: at least 64KiB", text.trim()));
    }
    Ok(bytes)
}

fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let invalid = || format!("invalid size '{t}' (try 8MiB, 512K or 1048576)");
    let n: u64 = digits.parse().map_err(|_| invalid())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => return Err(invalid()),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("size '{t}' is too large"))
}

/// `reap --match WORDS`.
pub fn parse_server_command(text: &str) -> Result<ServerCommand, String> {
    ServerCommand::parse(text)
        .ok_or_else(|| "needs at least one word: a program's name (e.g. \"opencode serve\")".into())
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
        assert_eq!(parse_duration("365d"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("31536000"), Ok(MAX_DURATION));
        for long in ["366d", "31536001", "18446744073709551615", "600000000000y"] {
            let e = parse_duration(long).unwrap_err();
            assert!(
                e.contains("at most 365 days") || e.contains("invalid"),
                "{long}: {e}"
            );
        }
        assert!(parse_duration("18446744073709551616").is_err());
    }

    #[test]
    fn log_sizes() {
        assert_eq!(parse_log_max("8MiB"), Ok(8 << 20));
        assert_eq!(parse_log_max("8mib"), Ok(8 << 20));
        assert_eq!(parse_log_max("8M"), Ok(8 << 20));
        assert_eq!(parse_log_max(" 512k "), Ok(512 << 10));
        assert_eq!(parse_log_max("64KiB"), Ok(MIN_LOG_MAX));
        assert_eq!(parse_log_max("65536"), Ok(65536));
        assert_eq!(parse_log_max("1 G"), Ok(1 << 30));
        assert_eq!(parse_log_max("2gib"), Ok(2 << 30));
        assert!(
            parse_log_max("65535")
                .unwrap_err()
                .contains("at least 64KiB")
        );
        assert!(parse_log_max("63k").unwrap_err().contains("at least 64KiB"));
        for bad in ["", "M", "8MB", "1.5M", "-1M", "8 Mi", "x"] {
            assert!(
                parse_log_max(bad).unwrap_err().contains("invalid size"),
                "{bad}"
            );
        }
        assert!(
            parse_log_max("18446744073709551615G")
                .unwrap_err()
                .contains("too large")
        );
    }
}
