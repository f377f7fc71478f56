//! Signals: their names and numbers as users type them (`TERM`, `SIGTERM`,
//! `15`, `RTMIN+2`), and the role each plays in the supervisor.
//!
//! | role | signals | what ocwrap does |
//! | --- | --- | --- |
//! | stop request | TERM, PWR | forwards it to CMD, then starts the teardown |
//! | job control | TSTP, TTIN, TTOU | forwards it; once CMD is stopped, stops itself |
//! | forwarded | every other catchable signal (HUP, INT, QUIT, USR1, USR2, WINCH, ALRM, CONT, PIPE, real-time signals…) | forwards it to CMD and keeps running; a SIGPIPE ocwrap raised itself (a write to a closed stderr) is not forwarded |
//! | ocwrap's own | CHLD (reaping), KILL and STOP (cannot be caught) | never forwarded |
//!
//! During a teardown, TERM, INT, QUIT, HUP or PWR escalates to SIGKILL at
//! once. A signal that was ignored when ocwrap started (`nohup`) stays
//! ignored for CMD and is neither forwarded nor acted on.

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
    ("STKFLT", libc::SIGSTKFLT),
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

/// What a signal received by the supervisor means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Forward it to CMD, then start the teardown.
    Stop,
    /// Forward it; when CMD is stopped by it, stop too.
    JobControl,
    /// Forward it and keep running.
    Forward,
    /// ocwrap's own: never forwarded.
    Own,
}

pub fn role(sig: i32) -> Role {
    match sig {
        libc::SIGTERM | libc::SIGPWR => Role::Stop,
        libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => Role::JobControl,
        libc::SIGCHLD | libc::SIGKILL | libc::SIGSTOP => Role::Own,
        // glibc's own two (thread cancellation and setxid).
        32 | 33 => Role::Own,
        s if (1..=rtmax()).contains(&s) => Role::Forward,
        _ => Role::Own,
    }
}

/// During a teardown: go straight to SIGKILL (Ctrl-C twice).
pub fn escalates(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGTERM | libc::SIGINT | libc::SIGQUIT | libc::SIGHUP | libc::SIGPWR
    )
}

/// Every signal the supervisor takes (blocked, read from its signalfd):
/// all that can be caught, but glibc's own.
pub fn handled() -> Vec<i32> {
    (1..=rtmax())
        .filter(|&s| role(s) != Role::Own || s == libc::SIGCHLD)
        .collect()
}

fn rtmin() -> i32 {
    libc::SIGRTMIN()
}

fn rtmax() -> i32 {
    libc::SIGRTMAX()
}

/// `SIGTERM` for 15; `SIGRTMIN+2` for a real-time signal; `SIG99` for a
/// number without a name.
pub fn name(sig: i32) -> String {
    if let Some((name, _)) = NAMES.iter().find(|(_, n)| *n == sig) {
        return format!("SIG{name}");
    }
    if (rtmin()..=rtmax()).contains(&sig) {
        return match sig - rtmin() {
            0 => "SIGRTMIN".into(),
            n => format!("SIGRTMIN+{n}"),
        };
    }
    format!("SIG{sig}")
}

/// Parses `TERM`, `SIGTERM`, `sigterm`, `15`, `RTMIN+2` or `RTMAX-1`.
pub fn parse(text: &str) -> Result<i32, String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        return if (1..=rtmax()).contains(&n) {
            Ok(n)
        } else {
            Err(format!("signal number {n} is out of range (1-{})", rtmax()))
        };
    }
    let upper = t.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(sig) = NAMES.iter().find(|(n, _)| *n == bare).map(|(_, s)| *s) {
        return Ok(sig);
    }
    let realtime = |base: i32, rest: &str, sign: i32| -> Option<i32> {
        let n: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse().ok()?
        };
        let sig = base + sign * n;
        (rtmin()..=rtmax()).contains(&sig).then_some(sig)
    };
    let rt = if let Some(rest) = bare.strip_prefix("RTMIN") {
        realtime(rtmin(), rest.strip_prefix('+').unwrap_or(rest), 1)
    } else if let Some(rest) = bare.strip_prefix("RTMAX") {
        realtime(rtmax(), rest.strip_prefix('-').unwrap_or(rest), -1)
    } else {
        None
    };
    rt.ok_or_else(|| format!("unknown signal '{t}' (try TERM, INT, HUP, KILL or a number)"))
}

/// `--rewrite FROM:TO`: a forwarded FROM reaches CMD as TO; TO `0` drops it.
pub fn parse_rewrite(text: &str) -> Result<(i32, i32), String> {
    let (from, to) = text
        .split_once(':')
        .ok_or_else(|| format!("'{text}' is not FROM:TO (e.g. TERM:INT, or USR1:0 to drop)"))?;
    let from = parse(from)?;
    if role(from) == Role::Own {
        return Err(format!(
            "{} is never forwarded, so it cannot be rewritten",
            name(from)
        ));
    }
    let to = if to.trim() == "0" { 0 } else { parse(to)? };
    Ok((from, to))
}

/// What CMD gets for a forwarded `sig` under `rewrites` (None: dropped).
pub fn rewritten(rewrites: &[(i32, i32)], sig: i32) -> Option<i32> {
    match rewrites.iter().rev().find(|(from, _)| *from == sig) {
        Some((_, 0)) => None,
        Some((_, to)) => Some(*to),
        None => Some(sig),
    }
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
        assert_eq!(parse("RTMIN"), Ok(libc::SIGRTMIN()));
        assert_eq!(parse("SIGRTMIN+2"), Ok(libc::SIGRTMIN() + 2));
        assert_eq!(parse("rtmax-1"), Ok(libc::SIGRTMAX() - 1));
        assert!(parse("RTMIN+99").is_err());
        assert!(parse("0").is_err());
        assert!(parse("65").is_err());
        assert!(parse("NOPE").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn names_round_trip() {
        for (_, n) in NAMES {
            assert_eq!(parse(&name(*n)), Ok(*n));
        }
        for n in libc::SIGRTMIN()..=libc::SIGRTMAX() {
            assert_eq!(parse(&name(n)), Ok(n), "{}", name(n));
        }
        assert_eq!(name(15), "SIGTERM");
    }

    #[test]
    fn roles() {
        assert_eq!(role(libc::SIGTERM), Role::Stop);
        assert_eq!(role(libc::SIGPWR), Role::Stop);
        assert_eq!(role(libc::SIGHUP), Role::Forward);
        assert_eq!(role(libc::SIGSEGV), Role::Forward);
        assert_eq!(role(libc::SIGRTMIN() + 1), Role::Forward);
        assert_eq!(role(libc::SIGTSTP), Role::JobControl);
        assert_eq!(role(libc::SIGPIPE), Role::Forward);
        for own in [libc::SIGCHLD, libc::SIGKILL, libc::SIGSTOP, 32, 33] {
            assert_eq!(role(own), Role::Own, "{own}");
        }
        let h = handled();
        assert!(h.contains(&libc::SIGCHLD) && h.contains(&libc::SIGALRM));
        assert!(h.contains(&libc::SIGPIPE) && !h.contains(&libc::SIGKILL));
        // Every catchable signal but glibc's two.
        assert_eq!(h.len() as i32, libc::SIGRTMAX() - 2 - 2);
        assert!(escalates(libc::SIGINT) && !escalates(libc::SIGUSR1));
    }

    #[test]
    fn rewrites() {
        assert_eq!(parse_rewrite("TERM:INT"), Ok((15, 2)));
        assert_eq!(parse_rewrite("USR1:0"), Ok((10, 0)));
        assert!(parse_rewrite("CHLD:TERM").is_err());
        assert!(parse_rewrite("TERM").is_err());
        let r = [(15, 2), (10, 0)];
        assert_eq!(rewritten(&r, 15), Some(2));
        assert_eq!(rewritten(&r, 10), None);
        assert_eq!(rewritten(&r, 1), Some(1));
    }
}
