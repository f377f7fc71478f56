//! ocwrap's exit status: one enum owns every mapping to numbers (CMD's exit,
//! a CMD that could not start, ocwrap's own failures), and the README and
//! `--help` print the same table.

use std::io;
use std::path::{Path, PathBuf};

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
    /// Why starting `program` failed with `e` (from fork or exec), as a
    /// shell would put it, with the status that goes with it:
    ///
    /// - the fork failed (EAGAIN: the user's process limit; ENOMEM): 125,
    ///   ocwrap could not do its job, CMD was never tried;
    /// - ENOENT although the file is there: its `#!` interpreter (or its
    ///   dynamic loader) is missing, 126 ("found but could not be
    ///   executed"); the file itself missing: 127, "command not found";
    /// - EACCES on a directory: "is a directory", 126; otherwise
    ///   "permission denied", 126.
    pub fn of_start(program: &str, e: &io::Error) -> SpawnError {
        let reason = io_reason(e);
        if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::ENOMEM)) {
            return SpawnError::Other(anyhow::anyhow!(
                "cannot start {program}: fork failed: {reason} (the limit on processes for this \
                 user, `ulimit -u`, or memory)"
            ));
        }
        let file = locate(program);
        match e.kind() {
            io::ErrorKind::NotFound => match file.filter(|f| f.is_file()) {
                Some(f) => SpawnError::CannotExecute(format!(
                    "{program}: cannot execute: {}",
                    missing_part(&f)
                )),
                None => SpawnError::NotFound(format!("{program}: command not found")),
            },
            io::ErrorKind::PermissionDenied if file.is_some_and(|f| f.is_dir()) => {
                SpawnError::CannotExecute(format!("{program}: is a directory"))
            }
            io::ErrorKind::PermissionDenied => {
                SpawnError::CannotExecute(format!("{program}: permission denied"))
            }
            _ => SpawnError::CannotExecute(format!("{program}: cannot execute: {reason}")),
        }
    }

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

/// What exec tried to run for `program`: the path itself when it has a
/// `/`, else the first entry of `PATH` (as execvp searches it) that exists.
fn locate(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return p.exists().then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.exists())
}

/// Why exec said ENOENT for a file that exists: what it needs is missing.
fn missing_part(file: &Path) -> String {
    match interpreter(file) {
        Some(i) if !Path::new(&i).exists() => format!("its interpreter {i} was not found"),
        Some(i) => format!("its interpreter {i} could not be started"),
        None => "a file it needs (its interpreter or dynamic loader) was not found".into(),
    }
}

/// The interpreter a `#!` line names (its first word).
fn interpreter(file: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(file).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next()?;
    let text = String::from_utf8_lossy(line);
    text.split_ascii_whitespace().next().map(str::to_string)
}

/// An I/O error as a shell says it: "permission denied", without
/// "(os error 13)".
pub fn io_reason(e: &io::Error) -> String {
    let text = match e.raw_os_error() {
        Some(code) => {
            let full = io::Error::from_raw_os_error(code).to_string();
            match full.rfind(" (os error ") {
                Some(at) => full[..at].to_string(),
                None => full,
            }
        }
        None => e.to_string(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
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

    fn err(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn start_failures_say_what_happened() {
        let dir = std::env::temp_dir().join(format!("ocwrap-exit-code-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("script");
        std::fs::write(&script, "#!/nope/python -u\nprint(1)\n").unwrap();
        let elf_like = dir.join("binary");
        std::fs::write(&elf_like, "\x7fELF").unwrap();
        let p = |path: &Path| path.display().to_string();

        let e = SpawnError::of_start(&p(&script), &err(libc::ENOENT));
        assert_eq!(e.code(), CannotExecute);
        assert_eq!(
            e.message(),
            format!(
                "{}: cannot execute: its interpreter /nope/python was not found",
                p(&script)
            )
        );
        let e = SpawnError::of_start(&p(&elf_like), &err(libc::ENOENT));
        assert_eq!(e.code(), CannotExecute);
        assert!(e.message().contains("dynamic loader"), "{}", e.message());
        let e = SpawnError::of_start("/nonexistent/cmd", &err(libc::ENOENT));
        assert_eq!(e.code(), NotFound);
        assert_eq!(e.message(), "/nonexistent/cmd: command not found");
        let e = SpawnError::of_start(&p(&dir), &err(libc::EACCES));
        assert_eq!(e.code(), CannotExecute);
        assert_eq!(e.message(), format!("{}: is a directory", p(&dir)));
        let e = SpawnError::of_start(&p(&script), &err(libc::EACCES));
        assert_eq!(e.message(), format!("{}: permission denied", p(&script)));
        for code in [libc::EAGAIN, libc::ENOMEM] {
            let e = SpawnError::of_start("x", &err(code));
            assert_eq!(e.code(), Error);
            assert!(
                e.message().starts_with("cannot start x: fork failed: "),
                "{}",
                e.message()
            );
        }
        let e = SpawnError::of_start(&p(&script), &err(libc::ENOEXEC));
        assert_eq!(e.code(), CannotExecute);
        assert_eq!(
            e.message(),
            format!("{}: cannot execute: exec format error", p(&script))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn io_errors_read_like_a_shell() {
        assert_eq!(io_reason(&err(libc::EACCES)), "permission denied");
        assert_eq!(io_reason(&err(libc::ENOENT)), "no such file or directory");
        assert_eq!(io_reason(&io::Error::other("Boom")), "boom");
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
