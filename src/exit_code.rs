//! ocwrap's exit status: one enum owns the mapping to numbers, and the
//! README and `--help` print the same table.

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
    fn table_lists_every_number() {
        for n in ["128+N", "126", "127", "125"] {
            assert!(super::TABLE.contains(n), "{n} missing from the table");
        }
    }
}
