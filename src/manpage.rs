//! The man page: clap_mangen's sections for the command and every
//! subcommand, plus environment, exit status and examples.

use std::io::Write;

use clap_mangen::Man;
use clap_mangen::roff::{Roff, roman};

pub fn render(out: &mut dyn Write) -> std::io::Result<()> {
    let cmd = crate::cli::command();
    let man = Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    for sub in cmd.get_subcommands() {
        let name = format!("ocwrap {}", sub.get_name());
        let sub = sub
            .clone()
            .name(clap::builder::Str::from(name.clone().leak() as &'static str));
        let mut roff = Roff::new();
        roff.control("SH", [name.to_uppercase().as_str()]);
        roff.text([roman(
            sub.get_about().map(|a| a.to_string()).unwrap_or_default(),
        )]);
        roff.to_writer(out)?;
        // clap_mangen renders top-level sections (.SH); under a subcommand's
        // heading they become subsections.
        let m = Man::new(sub);
        let mut buf = Vec::new();
        m.render_synopsis_section(&mut buf)?;
        m.render_options_section(&mut buf)?;
        let text = String::from_utf8_lossy(&buf)
            .replace(".SH SYNOPSIS", ".SS Synopsis")
            .replace(".SH OPTIONS", ".SS Options");
        out.write_all(text.as_bytes())?;
    }
    let mut roff = Roff::new();
    roff.control("SH", ["ENVIRONMENT"]);
    for (var, what) in ENVIRONMENT {
        roff.control("TP", []);
        roff.text([clap_mangen::roff::bold(*var)]);
        roff.text([roman(*what)]);
    }
    roff.control("SH", ["EXIT STATUS"]);
    for line in crate::exit_code::TABLE.lines().skip(1) {
        roff.text([roman(line.trim())]);
        roff.control("br", []);
    }
    roff.control("SH", ["EXAMPLES"]);
    for line in crate::cli::EXAMPLES.lines().skip(1) {
        roff.text([roman(line.trim())]);
        roff.control("br", []);
    }
    roff.to_writer(out)?;
    man.render_version_section(out)?;
    Ok(())
}

/// Every environment variable ocwrap reads.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    ("OCWRAP_GRACE", "Default for --grace."),
    ("OCWRAP_KILL_TIMEOUT", "Default for --kill-timeout."),
    ("OCWRAP_STOP_SIGNAL", "Default for --stop-signal."),
    ("OCWRAP_FORWARD_TO", "Default for --forward-to."),
    ("OCWRAP_PDEATH_SIGNAL", "Default for --pdeath-signal."),
    ("OCWRAP_REPORT", "Default for --report."),
    (
        "OCWRAP_REWRITE",
        "Default for --rewrite (comma-separated FROM:TO).",
    ),
    (
        "OCWRAP_REMAP_EXIT",
        "Default for --remap-exit (comma-separated FROM:TO).",
    ),
    ("OCWRAP_LINGER", "Default for --linger."),
    ("OCWRAP_LOG_LEVEL", "Default for --log-level."),
    ("OCWRAP_LOG_FORMAT", "Default for --log-format."),
    ("OCWRAP_STATE_DIR", "Default for --state-dir."),
    ("OCWRAP_PORT", "Default for spawn --port."),
    ("OCWRAP_HOSTNAME", "Default for spawn --hostname."),
    ("OCWRAP_OPENCODE", "Default for spawn --opencode."),
    ("OCWRAP_READY_TIMEOUT", "Default for spawn --ready-timeout."),
    ("OCWRAP_DETACH", "Default for spawn --detach."),
    ("OCWRAP_LOG_MAX", "Default for spawn --log-max."),
    ("OCWRAP_MATCH", "Default for reap --match."),
    (
        "OCWRAP_SUPERVISOR_PID",
        "Set by ocwrap in CMD's environment: its PID. A nested ocwrap does not count its enclosing ocwrap's stop signal as a second stop request.",
    ),
    (
        "OCWRAP_LAUNCHER_PID",
        "Set by the npm package's launcher when it stays ocwrap's parent: the launcher's death is then a stop request. Removed from CMD's environment.",
    ),
    (
        "OCWRAP_WORKSPACE",
        "Set by ocwrap in the environment of every workspace process: the workspace id.",
    ),
    (
        "XDG_RUNTIME_DIR",
        "The state directory defaults to $XDG_RUNTIME_DIR/ocwrap when that directory exists.",
    ),
    (
        "TMPDIR",
        "Otherwise the state directory defaults to $TMPDIR/ocwrap-UID (/tmp without TMPDIR).",
    ),
    (
        "NO_COLOR",
        "When set and not empty, no colour is used on a terminal.",
    ),
];
