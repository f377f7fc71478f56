//! Harness for `tests/environments.rs`: ocwrap run outside the happy path.
//!
//! - [`seccomp`]: builds `tests/fixtures/seccomp-launch.c` against
//!   libseccomp and wraps a command so that chosen system calls fail.
//! - [`install`]: Debian packages and the ordinary user the suite needs,
//!   installed or created on the spot (as root, under a file lock), so that
//!   `cargo test --locked` works on a fresh machine.
//! - [`user`]: re-runs a test of this binary as the ordinary user.
//! - [`runc`]: OCI bundles with an empty root file system and containers
//!   that are always deleted.
//!
//! Everything that looks at processes reads the test's own `/proc` (the
//! host's, whatever ocwrap was shown) and holds processes by pidfd, through
//! `libc` directly: a process is opened while it is known to be the one
//! meant, and every later check or signal is exact.
#![allow(dead_code)]

pub mod install;
pub mod runc;
pub mod seccomp;
pub mod user;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use crate::common::Running;

pub use crate::common::{MARK_VAR, Scene, wait_until};

/// The ocwrap binary: `OCWRAP_ENV_BIN` when a test runs as the ordinary
/// user (a copy it can reach, see [`user`]), else Cargo's.
pub fn ocwrap_bin() -> PathBuf {
    match std::env::var_os(user::BIN_VAR) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_ocwrap")),
    }
}

/// `tests/fixtures` (or the ordinary user's copy of it).
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os(user::FIXTURES_VAR) {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
    }
}

/// A file of [`fixtures_dir`].
pub fn fixture(name: &str) -> PathBuf {
    fixtures_dir().join(name)
}

/// The system interpreter: every user can run it (a pyenv shim under /root
/// cannot be), and it needs nothing outside /usr (a container has only
/// that).
pub fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

pub fn env_py() -> String {
    fixture("env.py").display().to_string()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Fails the test, plainly, when it is not run as root: nothing in this
/// suite skips silently.
pub fn require_root(what: &str) {
    assert!(
        is_root(),
        "{what} needs root (unshare, mount, runc, apt-get); CI runs as root: \
         run `cargo test --test environments` as root"
    );
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `ocwrap ARGS` for a scene: its marker and state directory, and none of
/// the caller's OCWRAP_* settings.
pub fn ocwrap(s: &Scene, args: &[&str]) -> Command {
    let mut c = Command::new(ocwrap_bin());
    c.args(args);
    scene_env(s, &mut c);
    c
}

/// The scene's environment on any command (a launcher in front of ocwrap
/// passes it on).
pub fn scene_env(s: &Scene, c: &mut Command) {
    c.env(MARK_VAR, &s.mark)
        .env("OCWRAP_STATE_DIR", s.state_dir())
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env_remove("XDG_RUNTIME_DIR");
    // ocwrap's own settings from outside; the harness's (OCWRAP_ENV_*,
    // the marker) stay.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("OCWRAP_") && !k.starts_with("OCWRAP_ENV_") && k != MARK_VAR {
            c.env_remove(&k);
        }
    }
}

/// `python3 env.py ARGS`.
pub fn env_py_args(args: &[&str]) -> Vec<String> {
    let mut v = vec![python().to_string(), env_py()];
    v.extend(args.iter().map(|a| a.to_string()));
    v
}

/// Makes the command lead a session of its own: trees that `reap` or
/// `stop` end from outside must not share the test's session (every test
/// running in parallel shares it).
pub fn own_session(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

// ---------------------------------------------------------------------
// Processes, by pidfd
// ---------------------------------------------------------------------

/// A process held by a pidfd.
pub struct Proc {
    pub pid: i32,
    fd: OwnedFd,
}

impl Proc {
    /// Opens `pid`, and keeps it only if it still is the process meant:
    /// its command line starts with `argv0` (checked after the pidfd pins
    /// it, so a recycled PID is never mistaken for ours). None: it is gone.
    pub fn open_as(pid: i32, argv0: &str) -> Option<Proc> {
        let p = Proc::open(pid)?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let first = cmdline.split(|&b| b == 0).next().unwrap_or_default();
        (first == argv0.as_bytes() && p.alive()).then_some(p)
    }

    /// Opens `pid`, and keeps it only if it carries this environment entry
    /// (`MARK=VALUE`: the scene's marker), checked after the pidfd pins it.
    pub fn open_marked(pid: i32, entry: &str) -> Option<Proc> {
        let p = Proc::open(pid)?;
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let ours = env.split(|&b| b == 0).any(|kv| kv == entry.as_bytes());
        (ours && p.alive()).then_some(p)
    }

    /// Opens `pid` as whatever it is now. Only for a PID known to be
    /// ours at this moment (a child not yet reaped, a process that is
    /// waiting for the test).
    pub fn open(pid: i32) -> Option<Proc> {
        // SAFETY: pidfd_open takes a pid and flags; returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return None;
        }
        Some(Proc {
            pid,
            // SAFETY: the fd is new and ours alone.
            fd: unsafe { OwnedFd::from_raw_fd(fd as i32) },
        })
    }

    /// Waits until the process has exited (a zombie counts as exited).
    pub fn ends_within(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, ms) };
            if n == 1 {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
        }
    }

    pub fn alive(&self) -> bool {
        !self.ends_within(Duration::ZERO)
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }
}

/// A line of `/proc/PID/status` (the part after `Name:`), trimmed.
pub fn status_field(pid: i32, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

/// Field N (1-based, as in proc(5)) of `/proc/PID/stat`.
pub fn stat_field(pid: i32, n: usize) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    rest.split_whitespace().nth(n - 3).map(String::from)
}

/// Whether `pid` is a live process (not a zombie) right now. Only for
/// reporting: checks that matter go through a [`Proc`].
pub fn pid_alive(pid: i32) -> bool {
    stat_field(pid, 3).is_some_and(|s| s != "Z" && s != "X")
}

/// (real, effective) uid and gid of a process.
pub fn ids(pid: i32) -> Option<((u32, u32), (u32, u32))> {
    let two = |f: String| {
        let mut it = f.split_whitespace().map(|x| x.parse::<u32>().unwrap());
        (it.next().unwrap(), it.next().unwrap())
    };
    Some((
        two(status_field(pid, "Uid")?),
        two(status_field(pid, "Gid")?),
    ))
}

/// Every PID on the machine (the test's /proc).
pub fn all_pids() -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Live processes whose environment has `VAR=VALUE`.
pub fn with_env(entry: &str) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&pid| {
            pid_alive(pid)
                && std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|e| e.split(|&b| b == 0).any(|kv| kv == entry.as_bytes()))
        })
        .collect()
}

/// SIGKILLs every live process whose environment has `VAR=VALUE`, through
/// a pidfd; returns what it found.
pub fn kill_env(entry: &str) -> Vec<i32> {
    let found = with_env(entry);
    for &pid in &found {
        if let Some(p) = Proc::open(pid) {
            p.signal(libc::SIGKILL);
        }
    }
    found
}

/// The members a fixture reported (`{"members": {name: pid}}`), each held
/// by a pidfd if it still runs as itself (its argv0 is `argv0`).
pub struct Members {
    pub pids: Vec<(String, i32)>,
    held: Vec<(String, Option<Proc>)>,
}

impl Members {
    pub fn open(doc: &Value, argv0: &str) -> Members {
        let map = doc["members"]
            .as_object()
            .unwrap_or_else(|| panic!("no members in {doc}"));
        let mut pids = Vec::new();
        let mut held = Vec::new();
        for (name, pid) in map {
            let pid = pid.as_i64().unwrap() as i32;
            pids.push((name.clone(), pid));
            held.push((name.clone(), Proc::open_as(pid, argv0)));
        }
        Members { pids, held }
    }

    pub fn len(&self) -> usize {
        self.pids.len()
    }

    /// The PID of member `name`.
    pub fn pid(&self, name: &str) -> i32 {
        self.pids.iter().find(|(n, _)| n == name).unwrap().1
    }

    /// Every member's PID.
    pub fn all(&self) -> std::collections::BTreeSet<i32> {
        self.pids.iter().map(|(_, p)| *p).collect()
    }

    /// Members that were already gone when they were opened.
    pub fn missing(&self) -> Vec<String> {
        self.held
            .iter()
            .filter(|(_, p)| p.is_none())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Members still alive now, as "name PID".
    pub fn alive(&self) -> Vec<String> {
        self.held
            .iter()
            .filter(|(_, p)| p.as_ref().is_some_and(Proc::alive))
            .map(|(n, p)| format!("{n} {}", p.as_ref().unwrap().pid))
            .collect()
    }

    /// Waits (up to `timeout`) until every member has ended; returns those
    /// left.
    pub fn left_after(&self, timeout: Duration) -> Vec<String> {
        let end = Instant::now() + timeout;
        for (_, p) in &self.held {
            if let Some(p) = p {
                p.ends_within(end.saturating_duration_since(Instant::now()));
            }
        }
        self.alive()
    }

    pub fn kill_all(&self) {
        for (_, p) in &self.held {
            if let Some(p) = p {
                p.signal(libc::SIGKILL);
            }
        }
    }
}

impl Drop for Members {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// A marked `sleep` outside every tree under test, in the test's session
/// and process group: it must outlive every case.
pub fn bystander(s: &mut Scene, name: &str) -> Proc {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new("sleep");
    c.arg0(name).arg("1000").env(MARK_VAR, &s.mark);
    let pid = s.spawn(c) as i32;
    // A child of ours that we have not reaped: its PID is still its own.
    Proc::open(pid).unwrap()
}

/// Reads a JSON file a fixture writes, waiting (up to `timeout`) for it.
/// None if it never appeared.
pub fn read_json(path: &Path, timeout: Duration) -> Option<Value> {
    if !wait_until(timeout, || path.exists()) {
        return None;
    }
    Some(serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap())
}

/// Waits for a fixture's report; fails with `r`'s output if it never came
/// (or `r` exited first).
pub fn report_of(r: &mut Running, path: &Path, timeout: Duration) -> Value {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = read_json(path, Duration::from_millis(50)) {
            return v;
        }
        if r.wait(Duration::ZERO).is_some() || Instant::now() >= end {
            let st = r.wait(Duration::ZERO);
            panic!(
                "no report {} from the fixture (exit: {st:?})\n{}",
                path.display(),
                r.output()
            );
        }
    }
}

/// Creates the file `path` (a "go" signal to a fixture).
pub fn touch(path: &Path) {
    std::fs::write(path, b"").unwrap();
}

/// The JSON log event `name` (the last one) in ocwrap's stderr
/// (`--log-format json`).
pub fn event(stderr: &str, name: &str) -> Option<Value> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .rfind(|v| v["event"] == name)
}

pub fn no_panic(text: &str) {
    assert!(!text.contains("panicked"), "ocwrap panicked:\n{text}");
}

/// Exit code, or 128+N for a death by signal N (as a shell reports it).
pub fn code(st: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
}
