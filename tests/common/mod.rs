//! Test harness: run the real ocwrap binary against real process trees.
//!
//! Every test gets a `Scene`: a private temp dir (also the state dir) and a
//! unique marker that ocwrap and every process below it inherit through the
//! environment (`OCWRAP_TEST_MARK`). `Scene::alive()` finds the scene's
//! processes by scanning `/proc/*/environ`; dropping the scene SIGKILLs any
//! that are left, by PID and through a pidfd, so no test leaks a process.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ocwrap::proc::{self as procfs, Snapshot};

pub const MARK_VAR: &str = "OCWRAP_TEST_MARK";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ocwrap")
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Polls `cond` until it holds or `timeout` passes (a deadline, not a sleep).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub struct Scene {
    pub mark: String,
    pub dir: PathBuf,
    children: Vec<Child>,
}

impl Scene {
    pub fn new(name: &str) -> Scene {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let mark = format!("{name}-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(format!("ocwrap-test-{mark}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        Scene {
            mark,
            dir,
            children: Vec::new(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// `ocwrap ARGS` with the scene's marker and state dir.
    pub fn ocwrap(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .env(MARK_VAR, &self.mark)
            .env("OCWRAP_STATE_DIR", self.state_dir())
            .env_remove("OCWRAP_GRACE")
            .env_remove("OCWRAP_KILL_TIMEOUT")
            .env_remove("OCWRAP_LOG_FORMAT")
            .env_remove("OCWRAP_LOG_LEVEL")
            .env_remove("NO_COLOR");
        c
    }

    /// Starts a command and keeps it for cleanup.
    pub fn spawn(&mut self, mut cmd: Command) -> u32 {
        let child = cmd.spawn().expect("spawn");
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Waits for the spawned child `pid` (by the std handle), with a deadline.
    pub fn wait(&mut self, pid: u32, timeout: Duration) -> Option<std::process::ExitStatus> {
        let i = self.children.iter().position(|c| c.id() == pid)?;
        let end = Instant::now() + timeout;
        loop {
            if let Some(st) = self.children[i].try_wait().unwrap() {
                return Some(st);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The piped stdout of a spawned child (which stays the scene's).
    pub fn take_stdout(&mut self, pid: u32) -> std::process::ChildStdout {
        let i = self.children.iter().position(|c| c.id() == pid).unwrap();
        self.children[i]
            .stdout
            .take()
            .expect("stdout was not piped")
    }

    pub fn take_child(&mut self, pid: u32) -> Child {
        let i = self.children.iter().position(|c| c.id() == pid).unwrap();
        self.children.remove(i)
    }

    /// Live (non-zombie) processes that carry this scene's marker.
    pub fn alive(&self) -> Vec<i32> {
        let entry = format!("{MARK_VAR}={}", self.mark);
        let snap = Snapshot::scan();
        let mut v: Vec<i32> = snap
            .procs
            .values()
            .filter(|s| !s.is_zombie() && procfs::environ_has(s.pid, &entry))
            .map(|s| s.pid)
            .collect();
        v.sort();
        v
    }

    /// Reads a JSON file a fixture writes, waiting for it to appear.
    pub fn read_json(&self, name: &str) -> serde_json::Value {
        let p = self.path(name);
        assert!(
            wait_until(Duration::from_secs(90), || p.exists()),
            "{} never appeared",
            p.display()
        );
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        for pid in self.alive() {
            kill_pid(pid, libc::SIGKILL);
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The few syscalls the tests make themselves (ocwrap's own `sys` module
/// is private to it).
pub mod sys {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::time::Duration;

    pub fn getuid() -> u32 {
        // SAFETY: getuid cannot fail.
        unsafe { libc::getuid() }
    }

    pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the fd is new and ours.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }

    pub fn pidfd_send_signal(fd: &OwnedFd, sig: i32) -> io::Result<()> {
        // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until the pidfd's process exits (true) or `timeout` passes.
    pub fn pidfd_wait(fd: &OwnedFd, timeout: Duration) -> io::Result<bool> {
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            };
        }
        Ok(n == 1)
    }
}

/// Signals `pid` through a pidfd (so a recycled PID is never hit).
pub fn kill_pid(pid: i32, sig: i32) {
    if let Ok(fd) = sys::pidfd_open(pid) {
        let _ = sys::pidfd_send_signal(&fd, sig);
    }
}

pub fn is_alive(pid: i32) -> bool {
    procfs::read_stat(pid).is_some_and(|s| !s.is_zombie())
}

/// Zombie children of `pid`.
pub fn zombies_of(pid: i32) -> usize {
    Snapshot::scan()
        .procs
        .values()
        .filter(|s| s.ppid == pid && s.is_zombie())
        .count()
}

pub fn run_output(mut cmd: Command, timeout: Duration) -> (Output, Duration) {
    let start = Instant::now();
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id() as i32;
    // A watchdog so a hung ocwrap fails the test instead of hanging it.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d2 = done.clone();
    let watchdog = std::thread::spawn(move || {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if d2.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !d2.load(Ordering::SeqCst) {
            kill_pid(pid, libc::SIGKILL);
        }
    });
    let out = child.wait_with_output().unwrap();
    done.store(true, Ordering::SeqCst);
    let _ = watchdog.join();
    (out, start.elapsed())
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn signal_of(name: &str) -> i32 {
    ocwrap::signal::parse(name).unwrap()
}

// ---------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------

/// A child's output pipe and the buffer a reader thread fills from it.
type Drain<'a> = (Box<dyn Read + Send>, &'a Arc<Mutex<Vec<u8>>>);

/// A process with its stdout and stderr read as they come, so a test can
/// look at them before it exits and a descendant holding the pipes never
/// hangs the test. Dropping it SIGKILLs the process if it is still there.
pub struct Running {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    pub status: Option<ExitStatus>,
    pub started: Instant,
}

impl Running {
    pub fn start(mut cmd: Command) -> Running {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let pipes: [Drain; 2] = [
            (Box::new(child.stdout.take().unwrap()), &out),
            (Box::new(child.stderr.take().unwrap()), &err),
        ];
        for (mut pipe, buf) in pipes {
            let buf = buf.clone();
            readers.push(std::thread::spawn(move || {
                let mut chunk = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    buf.lock().unwrap().extend_from_slice(&chunk[..n]);
                }
            }));
        }
        Running {
            child,
            out,
            err,
            readers,
            status: None,
            started,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }

    /// Waits (up to `timeout`) until its stderr contains `needle`.
    pub fn wait_for_stderr(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.stderr().contains(needle))
    }

    /// Waits for the exit (None if it did not come in time), then briefly
    /// for the output (a survivor may hold the pipes).
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.status.is_none() {
            let child = &mut self.child;
            let mut status = None;
            wait_until(timeout, || {
                status = child.try_wait().unwrap();
                status.is_some()
            });
            self.status = status;
        }
        if self.status.is_some() {
            wait_until(Duration::from_secs(3), || {
                self.readers.iter().all(|r| r.is_finished())
            });
        }
        self.status
    }

    /// SIGKILLs it (if still running) and reaps it.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// Waits up to `timeout`; if it did not exit, kills it and fails with
    /// `what` and everything it printed.
    pub fn finish(&mut self, timeout: Duration, what: &str) -> ExitStatus {
        match self.wait(timeout) {
            Some(st) => st,
            None => {
                self.kill();
                panic!(
                    "{what}: still running after {timeout:?}, killed\n--- stdout\n{}\n--- stderr\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
        }
    }

    /// Everything it printed, for a failure message.
    pub fn output(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout(), self.stderr())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}
