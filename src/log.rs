//! Logging on stderr: `ocwrap: message` lines, or JSON lines with a
//! timestamp, level, event name and fields (`--log-format json`).
//!
//! stdout is kept for results (URLs, tables, JSON documents); everything
//! ocwrap says about what it is doing goes here.
//!
//! [`write_line`] is the one place that writes a line to stderr: ocwrap's
//! own records and, for `spawn`, opencode's output. A detached workspace's
//! stderr (and stdout) is its log file, whose size is capped
//! ([`cap_stderr`]): before each line, the file's size is read with one
//! `fstat` of fd 2 (so whatever else wrote to it counts too) and, when the
//! line would take it past the cap, the file is renamed to its rotated
//! name (replacing an older one) and a new one is opened onto fds 1 and 2.
//! The files together never take much more than twice the cap. Only the
//! supervisor holds the log open (opencode's output reaches it through a
//! pipe), so after a rotation nothing writes to the old file any more.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use serde_json::{Map, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

struct Config {
    level: Level,
    format: Format,
}

static CONFIG: OnceLock<Config> = OnceLock::new();
/// Colour only on a terminal, never with NO_COLOR; re-checked when stderr
/// changes (a detached supervisor's stderr becomes its log file).
static COLOR: AtomicBool = AtomicBool::new(false);

pub fn init(level: Level, format: Format) {
    let _ = CONFIG.set(Config { level, format });
    stderr_changed();
}

pub fn stderr_changed() {
    let color = crate::sys::isatty(2) && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    COLOR.store(color, Ordering::Relaxed);
}

fn config() -> &'static Config {
    CONFIG.get_or_init(|| Config {
        level: Level::Info,
        format: Format::Text,
    })
}

/// Whether logs are JSON lines (machine readers want every lifecycle
/// event; a person at a terminal wants the summary line).
pub fn is_json() -> bool {
    config().format == Format::Json
}

pub fn enabled(level: Level) -> bool {
    level <= config().level
}

/// Emits one log record. `fields` must be a JSON object (or null).
pub fn emit(level: Level, event: &str, message: &str, fields: Value) {
    let cfg = config();
    if level > cfg.level {
        return;
    }
    let line = match cfg.format {
        Format::Json => {
            let mut obj = Map::new();
            obj.insert(
                "ts".into(),
                humantime::format_rfc3339_millis(std::time::SystemTime::now())
                    .to_string()
                    .into(),
            );
            obj.insert("level".into(), format!("{level:?}").to_lowercase().into());
            obj.insert("event".into(), event.into());
            obj.insert("msg".into(), message.into());
            obj.insert("pid".into(), crate::sys::getpid().into());
            if let Value::Object(f) = fields {
                obj.extend(f);
            }
            Value::Object(obj).to_string()
        }
        Format::Text => {
            let tag = match (level, COLOR.load(Ordering::Relaxed)) {
                (Level::Error, true) => "\x1b[1;31merror:\x1b[0m ",
                (Level::Error, false) => "error: ",
                (Level::Warn, true) => "\x1b[1;33mwarning:\x1b[0m ",
                (Level::Warn, false) => "warning: ",
                _ => "",
            };
            format!("ocwrap: {tag}{message}")
        }
    };
    write_line(&line);
}

/// stderr is a log file of at most `max` bytes (see the module docs).
struct Capped {
    path: PathBuf,
    rotated: PathBuf,
    max: u64,
}

static CAPPED: Mutex<Option<Capped>> = Mutex::new(None);

/// From now on stderr (which must be the file `path`, opened with
/// [`open_log`] onto fds 1 and 2) is rotated to `rotated` before a line
/// would take it past `max` bytes.
pub fn cap_stderr(path: PathBuf, rotated: PathBuf, max: u64) {
    *CAPPED.lock().unwrap_or_else(|e| e.into_inner()) = Some(Capped { path, rotated, max });
}

/// No more rotation (the log files are about to be removed).
pub fn uncap_stderr() {
    *CAPPED.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Opens (creates, 0600, never through a symlink) a log file for appending.
pub fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Writes `line` and a newline to stderr in one write, rotating the log
/// first when stderr is a capped log file that it would take past its cap.
/// A closed or failing stderr is ignored: it must never make ocwrap fail
/// its real job.
pub fn write_line(line: &str) {
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    rotate_before(buf.len() as u64);
    let _ = io::stderr().lock().write_all(&buf);
}

fn rotate_before(len: u64) {
    let mut capped = CAPPED.lock().unwrap_or_else(|e| e.into_inner());
    let Some(c) = capped.as_ref() else {
        return;
    };
    let size = match crate::sys::file_size(2) {
        Ok(Some(size)) => size,
        _ => return,
    };
    // An empty file takes the line whatever its length: one line longer
    // than the cap is written whole rather than rotated forever.
    if size == 0 || size.saturating_add(len) <= c.max {
        return;
    }
    if let Err(e) = rotate(c) {
        let what = format!(
            "cannot rotate the log {}: {}; it is no longer capped",
            c.path.display(),
            crate::exit_code::io_reason(&e)
        );
        *capped = None;
        drop(capped);
        warn("log.rotate_failed", &what, Value::Null);
    }
}

/// `path` becomes `rotated` (a gone `path`, removed by hand, only means
/// there is nothing to keep), and a new `path` is begun on fds 1 and 2.
fn rotate(c: &Capped) -> io::Result<()> {
    match std::fs::rename(&c.path, &c.rotated) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let fresh = open_log(&c.path)?;
    crate::sys::redirect_output(fresh.as_raw_fd())
}

pub fn error(event: &str, message: &str, fields: Value) {
    emit(Level::Error, event, message, fields)
}
pub fn warn(event: &str, message: &str, fields: Value) {
    emit(Level::Warn, event, message, fields)
}
pub fn info(event: &str, message: &str, fields: Value) {
    emit(Level::Info, event, message, fields)
}
pub fn debug(event: &str, message: &str, fields: Value) {
    emit(Level::Debug, event, message, fields)
}
