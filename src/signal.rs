//! Signal names and numbers, as users type them (`TERM`, `SIGTERM`, `15`).

const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// Signals ocwrap forwards to CMD.
pub const FORWARDED: &[i32] = &[
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCONT,
];

/// Forwarded signals that also start the teardown.
pub fn is_terminating(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGTERM | libc::SIGINT | libc::SIGQUIT | libc::SIGHUP
    )
}

/// `SIGTERM` for 15; `SIG15` for a number without a name.
pub fn name(sig: i32) -> String {
    match NAMES.iter().find(|(_, n)| *n == sig) {
        Some((name, _)) => format!("SIG{name}"),
        None => format!("SIG{sig}"),
    }
}

/// Parses `TERM`, `SIGTERM`, `sigterm` or `15`.
pub fn parse(text: &str) -> Result<i32, String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        return if (1..libc::SIGRTMIN()).contains(&n) {
            Ok(n)
        } else {
            Err(format!(
                "signal number {n} is out of range (1-{})",
                libc::SIGRTMIN() - 1
            ))
        };
    }
    let upper = t.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    NAMES
        .iter()
        .find(|(n, _)| *n == bare)
        .map(|(_, s)| *s)
        .ok_or_else(|| format!("unknown signal '{t}' (try TERM, INT, HUP, KILL or a number)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_numbers() {
        assert_eq!(parse("TERM"), Ok(libc::SIGTERM));
        assert_eq!(parse("sigint"), Ok(libc::SIGINT));
        assert_eq!(parse("SIGKILL"), Ok(libc::SIGKILL));
        assert_eq!(parse("9"), Ok(9));
        assert!(parse("0").is_err());
        assert!(parse("NOPE").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn names_round_trip() {
        for (_, n) in NAMES {
            assert_eq!(parse(&name(*n)), Ok(*n));
        }
        assert_eq!(name(15), "SIGTERM");
    }
}
