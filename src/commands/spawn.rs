//! `ocwrap spawn FOLDER`: `opencode serve` for a folder, as a tracked
//! workspace under the same supervisor as `ocwrap -- CMD`.
//!
//! The supervisor reads opencode's stdout until the listening line, then
//! reports the URL (stdout, or the detached caller's pipe) and keeps
//! draining the output so opencode never blocks on a full pipe.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::cli::{GlobalArgs, SpawnArgs};
use crate::commands::run::spawn_error;
use crate::exit_code::ExitCode;
use crate::registry::{self, ProcId, Record, Registry};
use crate::supervisor::{Attachment, SpawnError, Supervisor};
use crate::sys;
use crate::workspace::{parse_listening, url_port};

/// Lines of opencode's output kept for the error when it never gets ready.
const KEEP_LINES: usize = 20;

/// Where the result of a spawn goes: our stdout, or the pipe back to the
/// process that ran `spawn --detach` and is waiting to print it.
enum Reporter {
    Stdout,
    Pipe(Option<File>),
}

impl Reporter {
    fn ready(&mut self, text: &str) {
        match self {
            Reporter::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{text}");
                let _ = out.flush();
            }
            Reporter::Pipe(p) => {
                if let Some(mut f) = p.take() {
                    let _ = writeln!(f, "{}", json!({"ok": true, "output": text}));
                }
            }
        }
    }

    fn failed(&mut self, message: &str, code: ExitCode) {
        match self {
            Reporter::Stdout => crate::log::error("workspace.failed", message, json!({})),
            Reporter::Pipe(p) => {
                if let Some(mut f) = p.take() {
                    let _ = writeln!(
                        f,
                        "{}",
                        json!({"ok": false, "error": message, "code": code.code()})
                    );
                } else {
                    crate::log::error("workspace.failed", message, json!({}));
                }
            }
        }
    }
}

/// Watches opencode's stdout: readiness first, then draining.
struct Readiness<'a> {
    out: Option<File>,
    buf: Vec<u8>,
    last: VecDeque<String>,
    deadline: Instant,
    timeout: Duration,
    url: Option<String>,
    on_ready: &'a mut dyn FnMut(&str),
}

impl Readiness<'_> {
    fn line(&mut self, line: &str) {
        // opencode's stdout goes on to our stderr: the terminal in the
        // foreground, the workspace's log file when detached. Written before
        // the URL is reported, so whoever gets the URL finds the line logged.
        let _ = writeln!(std::io::stderr().lock(), "{line}");
        if self.url.is_none() {
            if let Some(url) = parse_listening(line) {
                self.url = Some(url.to_string());
                let url = url.to_string();
                (self.on_ready)(&url);
            } else {
                if self.last.len() == KEEP_LINES {
                    self.last.pop_front();
                }
                self.last.push_back(line.to_string());
            }
        }
    }

    fn last_lines(&self) -> String {
        if self.last.is_empty() {
            "(opencode printed nothing)".into()
        } else {
            self.last.iter().cloned().collect::<Vec<_>>().join(" | ")
        }
    }
}

impl Attachment for Readiness<'_> {
    fn fd(&self) -> Option<RawFd> {
        self.out.as_ref().map(|f| f.as_raw_fd())
    }

    fn deadline(&self) -> Option<Instant> {
        self.url.is_none().then_some(self.deadline)
    }

    fn on_readable(&mut self) -> Option<String> {
        let mut chunk = [0u8; 8192];
        loop {
            let f = self.out.as_mut()?;
            match f.read(&mut chunk) {
                Ok(0) => {
                    // EOF: closing the fd also removes it from the epoll set.
                    self.out = None;
                    if !self.buf.is_empty() {
                        let rest =
                            String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
                        self.line(&rest);
                    }
                    return None;
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = self.buf.drain(..=pos).collect();
                        let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                        self.line(text.trim_end_matches('\r'));
                    }
                    // A line longer than 64 KiB is flushed as it is.
                    if self.buf.len() > 64 * 1024 {
                        let text =
                            String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
                        self.line(&text);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.out = None;
                    return None;
                }
            }
        }
    }

    fn on_deadline(&mut self) -> Option<String> {
        (self.url.is_none()).then(|| {
            format!(
                "opencode was not ready within {}",
                humantime::format_duration(self.timeout)
            )
        })
    }
}

/// `opencode` from --opencode / OCWRAP_OPENCODE, else from PATH.
fn find_opencode(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        // opencode runs in FOLDER: a relative path must not change meaning.
        return Some(if p.components().count() > 1 {
            std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
        } else {
            p.to_path_buf()
        });
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("opencode"))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

pub fn spawn(global: &GlobalArgs, args: SpawnArgs) -> Result<ExitCode> {
    let folder = match std::fs::metadata(&args.folder) {
        Ok(m) if m.is_dir() => std::fs::canonicalize(&args.folder)?,
        Ok(_) => bail!("{} is not a directory", args.folder.display()),
        Err(e) => bail!("folder {}: {e}", args.folder.display()),
    };
    let Some(opencode) = find_opencode(args.opencode.as_deref()) else {
        crate::log::error(
            "workspace.opencode_missing",
            "opencode not found on PATH: install it with `npm install -g opencode-ai`, or pass --opencode PATH",
            json!({}),
        );
        return Ok(ExitCode::NotFound);
    };
    let reg = Registry::open(global.state_dir.as_deref(), true)?.context("no state directory")?;
    // 32 random bits; a clash with a live record is retried, not overwritten.
    let mut id = registry::new_id()?;
    while reg.record_path(&id).exists() {
        id = registry::new_id()?;
    }
    let log_path = reg.log_path(&id);

    let mut reporter = Reporter::Stdout;
    if args.detach {
        let (r, w) = sys::pipe().context("cannot create a pipe")?;
        match sys::fork_detached().context("cannot fork the detached supervisor")? {
            Some(_child) => {
                drop(w);
                return Ok(wait_for_detached(r));
            }
            None => {
                drop(r);
                reporter = Reporter::Pipe(Some(File::from(w)));
                if let Err(e) = detach_stdio(&log_path, &reporter) {
                    reporter.failed(&format!("cannot detach: {e:#}"), ExitCode::Error);
                    return Ok(ExitCode::Error);
                }
            }
        }
    }
    if !args.detach {
        // A foreground workspace belongs to whoever started it: when that
        // process dies (even by SIGKILL), we get SIGTERM and tear down. The
        // signal is blocked by then and read like any other.
        if !sys::set_parent_death_signal(libc::SIGTERM).context("prctl(PR_SET_PDEATHSIG)")? {
            crate::log::warn(
                "workspace.parent_gone",
                "the process that started ocwrap spawn is already gone",
                json!({}),
            );
        }
    }
    let code = supervise(global, &args, &reg, &id, &folder, &opencode, &mut reporter);
    if let Err(e) = &code {
        reporter.failed(&format!("{e:#}"), ExitCode::Error);
        return Ok(ExitCode::Error);
    }
    code
}

/// The caller of `spawn --detach`: print what the supervisor reports.
fn wait_for_detached(r: OwnedFd) -> ExitCode {
    let mut text = String::new();
    let _ = File::from(r).read_to_string(&mut text);
    let msg: Option<serde_json::Value> = text
        .lines()
        .next()
        .and_then(|l| serde_json::from_str(l).ok());
    match msg {
        Some(m) if m["ok"] == true => {
            println!("{}", m["output"].as_str().unwrap_or_default());
            ExitCode::Success
        }
        Some(m) => {
            let err = m["error"]
                .as_str()
                .unwrap_or("the workspace failed")
                .to_string();
            crate::log::error("workspace.failed", &err, json!({}));
            match m["code"].as_i64() {
                Some(126) => ExitCode::CannotExecute,
                Some(127) => ExitCode::NotFound,
                _ => ExitCode::Error,
            }
        }
        None => {
            crate::log::error(
                "workspace.failed",
                "the detached supervisor ended before the workspace was ready",
                json!({}),
            );
            ExitCode::Error
        }
    }
}

/// In the detached supervisor: own session, stdin from /dev/null, stdout
/// and stderr to the workspace's log, and none of the caller's other fds.
fn detach_stdio(log_path: &Path, reporter: &Reporter) -> Result<()> {
    sys::setsid().context("setsid")?;
    let log = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let null = File::open("/dev/null")?;
    sys::dup_onto(null.as_raw_fd(), 0)?;
    sys::dup_onto(log.as_raw_fd(), 1)?;
    sys::dup_onto(log.as_raw_fd(), 2)?;
    drop(null);
    drop(log);
    crate::log::stderr_changed();
    if let Reporter::Pipe(Some(p)) = reporter {
        sys::close_fds_from(3, p.as_raw_fd());
    }
    Ok(())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn supervise(
    global: &GlobalArgs,
    args: &SpawnArgs,
    reg: &Registry,
    id: &str,
    folder: &Path,
    opencode: &Path,
    reporter: &mut Reporter,
) -> Result<ExitCode> {
    let mut cmd = Command::new(opencode);
    cmd.arg("serve")
        .arg(format!("--port={}", args.port))
        .arg("--print-logs");
    if let Some(h) = &args.hostname {
        cmd.arg(format!("--hostname={h}"));
    }
    cmd.args(&args.extra)
        .current_dir(folder)
        .env(registry::MARKER_VAR, id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let mut sup = match Supervisor::start(args.supervise.clone(), &mut cmd) {
        Ok(s) => s,
        Err(e) => {
            let (msg, code) = match &e {
                SpawnError::NotFound(m) => (
                    format!("{m} (install opencode with `npm install -g opencode-ai`)"),
                    ExitCode::NotFound,
                ),
                SpawnError::CannotExecute(m) => (m.clone(), ExitCode::CannotExecute),
                SpawnError::Other(e) => (format!("{e:#}"), ExitCode::Error),
            };
            if matches!(reporter, Reporter::Pipe(_)) {
                reporter.failed(&msg, code);
                return Ok(code);
            }
            return Ok(spawn_error(e));
        }
    };
    let out = sup
        .take_stdout()
        .context("opencode's stdout was not captured")?;
    sys::set_nonblocking(out.as_raw_fd())?;

    let opencode_pid = sup.child_pid();
    let started_at = now_secs();
    let mut record = Record {
        version: registry::FORMAT_VERSION,
        id: id.to_string(),
        folder: folder.to_path_buf(),
        url: None,
        port: None,
        uid: sys::getuid(),
        supervisor: ProcId::of(sys::getpid()).context("cannot read our own /proc entry")?,
        opencode: ProcId::of(opencode_pid),
        pgid: opencode_pid,
        log: args.detach.then(|| reg.log_path(id)),
        started_at,
        grace_ms: args.supervise.limits.grace.as_millis() as u64,
        kill_timeout_ms: args.supervise.limits.kill_timeout.as_millis() as u64,
    };
    reg.write(&record)?;
    crate::log::info(
        "workspace.started",
        &format!(
            "workspace {id}: opencode ({opencode_pid}) starting in {}",
            folder.display()
        ),
        json!({"workspace": id, "folder": folder, "opencode_pid": opencode_pid}),
    );

    let json_out = args.json;
    let mut ready_failed: Option<String> = None;
    let mut on_ready = |url: &str| {
        record.url = Some(url.to_string());
        record.port = url_port(url);
        if let Err(e) = reg.write(&record) {
            crate::log::warn("registry.write_failed", &format!("{e:#}"), json!({}));
        }
        let text = if json_out {
            json!({
                "id": record.id,
                "folder": record.folder,
                "url": url,
                "port": record.port,
                "pids": {"supervisor": record.supervisor.pid, "opencode": opencode_pid},
                "started_at": humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(started_at)).to_string(),
                "log": record.log,
            })
            .to_string()
        } else {
            url.to_string()
        };
        reporter.ready(&text);
        crate::log::info(
            "workspace.ready",
            &format!("workspace {} ready at {url}", record.id),
            json!({"workspace": record.id, "url": url}),
        );
    };
    let mut readiness = Readiness {
        out: Some(out),
        buf: Vec::new(),
        last: VecDeque::new(),
        deadline: Instant::now() + args.ready_timeout,
        timeout: args.ready_timeout,
        url: None,
        on_ready: &mut on_ready,
    };
    let finished = sup.run(Some(&mut readiness))?;
    if readiness.url.is_none() {
        ready_failed = Some(format!(
            "workspace {id} never got ready ({}); last output: {}",
            finished.summary.trigger,
            readiness.last_lines()
        ));
    }
    drop(readiness);
    let code = crate::report::conclude(
        global,
        args.supervise.report.as_deref(),
        &finished,
        Some(id),
    );
    if finished.summary.clean() {
        reg.remove(id);
    }
    if let Some(msg) = ready_failed {
        reporter.failed(&msg, ExitCode::Error);
        return Ok(ExitCode::Error);
    }
    Ok(code)
}
