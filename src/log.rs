//! Logging on stderr: `ocwrap: message` lines, or JSON lines with a
//! timestamp, level, event name and fields (`--log-format json`).
//!
//! stdout is kept for results (URLs, tables, JSON documents); everything
//! ocwrap says about what it is doing goes here.

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

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
    // A closed stderr must not make ocwrap fail its real job.
    let _ = writeln!(std::io::stderr().lock(), "{line}");
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
