//! ocwrap's exit status: one enum owns every mapping to numbers (CMD's exit,
//! a CMD that could not start, ocwrap's own failures), and the README and
//! `--help` print the same table.

use crate::sys::Exit;

/// How ocwrap ends, and the number the shell sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// Success of a command that runs no CMD (`ps`, `stop`, `reap`, …).
    Success,
    /// CMD exited with this code.
    Child(i32),
    /// CMD was killed by this signal: 128 + N, as shells report it.
    ChildSignal(i32),
    /// CMD was found but could not be executed (permission, format).
    CannotExecute,
    /// CMD (or opencode) was not found.
    NotFound,
    /// ocwrap's own failure: bad usage, a failed system call, a workspace
    /// that never got ready.
    Error,
    /// Processes survived the kill-timeout (they are listed on stderr), or
    /// `stop`/`reap` could not end every target.
    Survivors,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        match self {
            ExitCode::Success => 0,
            ExitCode::Child(c) => c & 0xff,
            ExitCode::ChildSignal(n) => 128 + n,
            ExitCode::CannotExecute => 126,
            ExitCode::NotFound => 127,
            ExitCode::Error => 125,
            ExitCode::Survivors => 125,
        }
    }

    /// CMD's exit as ocwrap's (an unreaped CMD is ocwrap's failure).
    pub(crate) fn of_child(exit: Option<Exit>) -> ExitCode {
        match exit {
            Some(Exit::Code(c)) => ExitCode::Child(c),
            Some(Exit::Signal(s)) => ExitCode::ChildSignal(s),
            None => ExitCode::Error,
        }
    }

    /// `--remap-exit FROM:TO`: CMD's status as reported. ocwrap's own
    /// failures (125, survivors) are never remapped.
    pub fn remapped(self, remap: &[(u8, u8)]) -> ExitCode {
        if !matches!(self, ExitCode::Child(_) | ExitCode::ChildSignal(_)) {
            return self;
        }
        let code = self.code();
        match remap
            .iter()
            .rev()
            .find(|(from, _)| i32::from(*from) == code)
        {
            Some((_, to)) => ExitCode::Child(i32::from(*to)),
            None => self,
        }
    }

    /// The status a detached supervisor reported back (126 and 127 keep
    /// their meaning; anything else is ocwrap's failure).
    pub fn of_reported(code: i64) -> ExitCode {
        match code {
            126 => ExitCode::CannotExecute,
            127 => ExitCode::NotFound,
            _ => ExitCode::Error,
        }
    }
}

/// Why CMD could not be started.
#[derive(Debug)]
pub enum SpawnError {
    NotFound(String),
    CannotExecute(String),
    Other(anyhow::Error),
}

impl SpawnError {
    pub fn code(&self) -> ExitCode {
        match self {
            SpawnError::NotFound(_) => ExitCode::NotFound,
            SpawnError::CannotExecute(_) => ExitCode::CannotExecute,
            SpawnError::Other(_) => ExitCode::Error,
        }
    }

    pub fn message(&self) -> String {
        match self {
            SpawnError::NotFound(m) | SpawnError::CannotExecute(m) => m.clone(),
            SpawnError::Other(e) => format!("{e:#}"),
        }
    }
}

/// "exited with status 3", "was killed by SIGTERM".
pub(crate) fn describe(how: Exit) -> String {
    match how {
        Exit::Code(c) => format!("exited with status {c}"),
        Exit::Signal(s) => format!("was killed by {}", crate::signal::name(s)),
    }
}

/// The exit-code table, as printed in `--help` (and copied in the README).
pub const TABLE: &str = "\
Exit status:
  N        CMD exited with status N (0-255)
  128+N    CMD was killed by signal N (143 = SIGTERM, 137 = SIGKILL)
  126      CMD was found but could not be executed
  127      CMD (or opencode) was not found
  125      ocwrap failed: bad usage, a system error, a workspace that never
           got ready, or processes that survived the kill-timeout
           (listed as \"ocwrap: survivors: ...\")";

#[cfg(test)]
mod tests {
    use super::ExitCode::*;
    use super::*;

    #[test]
    fn maps_every_variant() {
        assert_eq!(Success.code(), 0);
        assert_eq!(Child(0).code(), 0);
        assert_eq!(Child(42).code(), 42);
        assert_eq!(Child(255).code(), 255);
        assert_eq!(ChildSignal(15).code(), 143);
        assert_eq!(ChildSignal(9).code(), 137);
        assert_eq!(CannotExecute.code(), 126);
        assert_eq!(NotFound.code(), 127);
        assert_eq!(Error.code(), 125);
        assert_eq!(Survivors.code(), 125);
    }

    #[test]
    fn maps_how_cmd_ended() {
        assert_eq!(ExitCode::of_child(Some(Exit::Code(3))), Child(3));
        assert_eq!(ExitCode::of_child(Some(Exit::Signal(9))).code(), 137);
        assert_eq!(ExitCode::of_child(None), Error);
        assert_eq!(ExitCode::of_reported(127), NotFound);
        assert_eq!(ExitCode::of_reported(126), CannotExecute);
        assert_eq!(ExitCode::of_reported(3), Error);
        assert_eq!(SpawnError::NotFound("x".into()).code(), NotFound);
        assert_eq!(SpawnError::CannotExecute("x".into()).code(), CannotExecute);
        assert_eq!(describe(Exit::Code(3)), "exited with status 3");
        assert_eq!(describe(Exit::Signal(15)), "was killed by SIGTERM");
    }

    #[test]
    fn remaps_only_cmds_status() {
        let r = [(143, 0), (3, 4)];
        assert_eq!(ChildSignal(15).remapped(&r), Child(0));
        assert_eq!(Child(3).remapped(&r).code(), 4);
        assert_eq!(Child(5).remapped(&r), Child(5));
        assert_eq!(Survivors.remapped(&[(125, 0)]), Survivors);
        assert_eq!(Error.remapped(&[(125, 0)]), Error);
    }

    #[test]
    fn table_lists_every_number() {
        for n in ["128+N", "126", "127", "125"] {
            assert!(super::TABLE.contains(n), "{n} missing from the table");
        }
    }
}
