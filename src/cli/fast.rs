//! The supervisor form, `ocwrap [OPTIONS] -- CMD [ARGS...]`, recognised
//! without building clap's `Command`.
//!
//! # Theory of operation
//!
//! ocwrap starts in front of every start of a server, and building clap's
//! `Command` costs more than everything else ocwrap does before CMD runs:
//! about 250,000 instructions for the top-level options alone, 950,000 for
//! the whole tree (BENCHMARKS.md, callgrind). So the common form takes this
//! path, and clap stays the one definition of the command line:
//!
//! - [`parse`] accepts a strict subset of what clap accepts: the top-level
//!   options (each at most once, spelled `--long VALUE`, `--long=VALUE` or
//!   `-q`/`-v`), then `--`, then CMD. Anything else — a subcommand, an
//!   unknown or repeated option, `--help`, `--version`, combined short
//!   flags, a value that starts with `-`, an empty or invalid value (on the
//!   command line or in an `OCWRAP_*` variable), `-q` with `-v`, no `--` at
//!   all — returns `None`, and clap parses the whole command line: every
//!   error and every help text comes from clap.
//! - Values go through the parsers clap uses for them (`parse_duration`,
//!   `signal::parse`, `ValueEnum::from_str`), and an option that is not on
//!   the command line takes its environment variable, else its default,
//!   as in clap.
//! - When it returns `Some`, the result is the one clap would have given.
//!   The tests check this on generated command lines under several
//!   environments, and check [`OPTIONS`] against clap's definition of every
//!   top-level option: an option added to `GlobalArgs` or `SuperviseArgs`
//!   must be added here too (the struct literals in [`parse`] do not
//!   compile without it, and `table_matches_clap` names what is missing).
//!   One the fast path cannot take as it is (it repeats, takes several
//!   values, or values that start with `-`) can still be left to clap:
//!   [`parse`] returns `None` when it is given, on the command line or in
//!   the environment, and its field is otherwise clap's value for "absent".

use std::ffi::OsString;

use clap::ValueEnum;

use super::{Cli, GlobalArgs, Limits, SuperviseArgs, parse_duration};

/// One top-level option as clap defines it (`tests::table_matches_clap`
/// compares the two).
struct Opt {
    /// clap's id: the field name (for the tests that compare the two).
    #[cfg_attr(not(test), allow(dead_code))]
    id: &'static str,
    long: &'static str,
    short: Option<char>,
    env: Option<&'static str>,
    default: Option<&'static str>,
    /// A flag takes no value.
    flag: bool,
    /// Repeatable, with comma-separated values (clap's `Append` with
    /// `value_delimiter = ','`); the fast path takes it at most once.
    #[cfg_attr(not(test), allow(dead_code))]
    list: bool,
}

const fn flag(id: &'static str, long: &'static str, short: char) -> Opt {
    Opt {
        id,
        long,
        short: Some(short),
        env: None,
        default: None,
        flag: true,
        list: false,
    }
}

const fn value(
    id: &'static str,
    long: &'static str,
    env: &'static str,
    default: Option<&'static str>,
) -> Opt {
    Opt {
        id,
        long,
        short: None,
        env: Some(env),
        default,
        flag: false,
        list: false,
    }
}

const fn list(id: &'static str, long: &'static str, env: &'static str) -> Opt {
    Opt {
        list: true,
        ..value(id, long, env, None)
    }
}

/// Every top-level option; the index is the slot in [`Values`].
const OPTIONS: [Opt; 14] = [
    flag("quiet", "quiet", 'q'),
    flag("verbose", "verbose", 'v'),
    value("log_level", "log-level", "OCWRAP_LOG_LEVEL", Some("info")),
    value(
        "log_format",
        "log-format",
        "OCWRAP_LOG_FORMAT",
        Some("text"),
    ),
    value("state_dir", "state-dir", "OCWRAP_STATE_DIR", None),
    value("grace", "grace", "OCWRAP_GRACE", Some("10s")),
    value(
        "kill_timeout",
        "kill-timeout",
        "OCWRAP_KILL_TIMEOUT",
        Some("5s"),
    ),
    value(
        "stop_signal",
        "stop-signal",
        "OCWRAP_STOP_SIGNAL",
        Some("TERM"),
    ),
    value(
        "forward_to",
        "forward-to",
        "OCWRAP_FORWARD_TO",
        Some("child"),
    ),
    value(
        "pdeath_signal",
        "pdeath-signal",
        "OCWRAP_PDEATH_SIGNAL",
        Some("KILL"),
    ),
    value("report", "report", "OCWRAP_REPORT", None),
    list("rewrite", "rewrite", "OCWRAP_REWRITE"),
    list("remap_exit", "remap-exit", "OCWRAP_REMAP_EXIT"),
    value("linger", "linger", "OCWRAP_LINGER", Some("0s")),
];
const QUIET: usize = 0;
const VERBOSE: usize = 1;

/// The raw value of each option, from wherever it came.
type Values = [Option<OsString>; OPTIONS.len()];

/// The supervisor form of `args` (without the program name), or `None`
/// when clap must parse it. `env` looks up an environment variable.
pub fn parse<I>(args: I, env: impl Fn(&str) -> Option<OsString>) -> Option<Cli>
where
    I: IntoIterator<Item = OsString>,
{
    let mut args = args.into_iter();
    let mut given: Values = Default::default();
    let mut command = None;
    while let Some(arg) = args.next() {
        let text = arg.to_str()?;
        if text == "--" {
            command = Some(args.by_ref().collect::<Vec<_>>());
            break;
        }
        let (i, inline) = if let Some(long) = text.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, v)) => (name, Some(v)),
                None => (long, None),
            };
            (OPTIONS.iter().position(|o| o.long == name)?, inline)
        } else {
            let mut chars = text.chars();
            let (Some('-'), Some(c), None) = (chars.next(), chars.next(), chars.next()) else {
                return None;
            };
            (OPTIONS.iter().position(|o| o.short == Some(c))?, None)
        };
        if given[i].is_some() {
            return None;
        }
        given[i] = Some(match (OPTIONS[i].flag, inline) {
            (true, None) => OsString::new(),
            (true, Some(_)) => return None,
            (false, Some(v)) => OsString::from(v),
            // clap takes a following `-...` for another option, not a value.
            (false, None) => args
                .next()
                .filter(|v| !v.as_encoded_bytes().starts_with(b"-"))?,
        });
        if !OPTIONS[i].flag && given[i].as_ref().is_some_and(|v| v.is_empty()) {
            return None;
        }
    }
    let command = command?;
    let quiet = given[QUIET].is_some();
    let verbose = given[VERBOSE].is_some();
    if quiet && verbose {
        return None;
    }
    let mut values: Values = Default::default();
    for (i, o) in OPTIONS.iter().enumerate() {
        // As in clap: the command line, else the environment (an empty
        // variable counts as given, and clap rejects the empty value),
        // else the default.
        values[i] = match given[i].take() {
            Some(v) => Some(v),
            None => match o.env.and_then(&env) {
                Some(v) if v.is_empty() => return None,
                Some(v) => Some(v),
                None => o.default.map(OsString::from),
            },
        };
    }
    let [
        _,
        _,
        log_level,
        log_format,
        state_dir,
        grace,
        kill_timeout,
        stop_signal,
        forward_to,
        pdeath_signal,
        report,
        rewrite,
        remap_exit,
        linger,
    ] = values;
    Some(Cli {
        global: GlobalArgs {
            quiet,
            verbose,
            log_level: value_enum(log_level?)?,
            log_format: value_enum(log_format?)?,
            state_dir: state_dir.map(Into::into),
        },
        supervise: SuperviseArgs {
            limits: Limits {
                grace: parse_duration(grace?.to_str()?).ok()?,
                kill_timeout: parse_duration(kill_timeout?.to_str()?).ok()?,
            },
            stop_signal: crate::signal::parse(stop_signal?.to_str()?).ok()?,
            forward_to: value_enum(forward_to?)?,
            pdeath_signal: crate::signal::parse(pdeath_signal?.to_str()?).ok()?,
            report: report.map(Into::into),
            rewrite: items(rewrite, crate::signal::parse_rewrite)?,
            remap_exit: items(remap_exit, super::parse_remap)?,
            linger: parse_duration(linger?.to_str()?).ok()?,
        },
        command,
        sub: None,
    })
}

/// A comma-separated list (clap's `value_delimiter = ','`), each item
/// through `parse`; an absent option is the empty list. Given once only:
/// a repeated option never reaches here (the fast path leaves it to clap).
fn items<T, E>(v: Option<OsString>, parse: impl Fn(&str) -> Result<T, E>) -> Option<Vec<T>> {
    match v {
        None => Some(Vec::new()),
        Some(v) => v.to_str()?.split(',').map(|x| parse(x).ok()).collect(),
    }
}

/// A `clap::ValueEnum` value, matched as clap's parser for it matches
/// (names and aliases, case-sensitive).
fn value_enum<T: ValueEnum>(v: OsString) -> Option<T> {
    T::from_str(v.to_str()?, false).ok()
}

#[cfg(test)]
mod tests;
