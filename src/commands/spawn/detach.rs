//! `spawn --detach`: the caller forks a supervisor into its own session and
//! waits on a pipe for one typed message (ready, with what to print, or
//! failed, with the error and exit status), then exits; the supervisor keeps
//! the workspace. Without `--detach`, the same [`Reporter`] prints to stdout.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::logfile::WorkspaceLog;
use crate::exit_code::ExitCode;
use crate::sys;

/// The one message the detached supervisor sends its caller.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Message {
    /// Ready: the caller prints `output` (the URL, or the JSON object).
    Ready { output: String },
    /// Failed before it got ready.
    Failed { error: String, code: i32 },
}

/// Where the result of a spawn goes: our stdout, or the pipe back to the
/// process that ran `spawn --detach` and is waiting to print it.
pub enum Reporter {
    Stdout,
    Pipe(Option<File>),
}

impl Reporter {
    pub fn is_detached(&self) -> bool {
        matches!(self, Reporter::Pipe(_))
    }

    pub fn ready(&mut self, text: &str) {
        match self {
            Reporter::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{text}");
                let _ = out.flush();
            }
            Reporter::Pipe(p) => {
                if let Some(f) = p.take() {
                    send(
                        f,
                        &Message::Ready {
                            output: text.to_string(),
                        },
                    );
                }
            }
        }
    }

    pub fn failed(&mut self, message: &str, code: ExitCode) {
        if let Reporter::Pipe(p) = self
            && let Some(f) = p.take()
        {
            send(
                f,
                &Message::Failed {
                    error: message.to_string(),
                    code: code.code(),
                },
            );
            return;
        }
        crate::log::error("workspace.failed", message, json!({}));
    }
}

fn send(mut f: File, msg: &Message) {
    if let Ok(line) = serde_json::to_string(msg) {
        let _ = writeln!(f, "{line}");
    }
}

/// Forks. In the caller (`Ok(Err(code))`) it waits for the supervisor's
/// message and returns the caller's exit status; in the supervisor
/// (`Ok(Ok(reporter))`) it has left the caller's session, stdio and
/// descriptors behind, and writes to `log`, capped at `log_max` bytes.
pub fn fork(log: &WorkspaceLog, log_max: u64) -> Result<std::result::Result<Reporter, ExitCode>> {
    let (r, w) = sys::pipe().context("cannot create a pipe")?;
    match sys::fork_detached().context("cannot fork the detached supervisor")? {
        Some(_child) => {
            drop(w);
            Ok(Err(wait_for_message(r)))
        }
        None => {
            drop(r);
            let mut reporter = Reporter::Pipe(Some(File::from(w)));
            if let Err(e) = detach_stdio(&log.path, &reporter) {
                let msg = log.failed(&format!("cannot detach: {e:#}"));
                reporter.failed(&msg, ExitCode::Error);
                return Ok(Err(ExitCode::Error));
            }
            log.cap(log_max);
            Ok(Ok(reporter))
        }
    }
}

/// The caller of `spawn --detach`: print what the supervisor reports.
fn wait_for_message(r: OwnedFd) -> ExitCode {
    let mut text = String::new();
    let _ = File::from(r).read_to_string(&mut text);
    let msg: Option<Message> = text
        .lines()
        .next()
        .and_then(|l| serde_json::from_str(l).ok());
    match msg {
        Some(Message::Ready { output }) => {
            println!("{output}");
            ExitCode::Success
        }
        Some(Message::Failed { error, code }) => {
            crate::log::error("workspace.failed", &error, json!({}));
            ExitCode::of_reported(code.into())
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
    let log = crate::log::open_log(log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let null = File::open("/dev/null")?;
    sys::dup_onto(null.as_raw_fd(), 0)?;
    sys::redirect_output(log.as_raw_fd())?;
    drop(null);
    drop(log);
    crate::log::stderr_changed();
    if let Reporter::Pipe(Some(p)) = reporter {
        // The open /proc (if anything read it already) stays: it is ours.
        let mut keep = vec![p.as_raw_fd()];
        keep.extend(crate::proc::dir_fd());
        sys::close_fds_from(3, &keep);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for m in [
            Message::Ready {
                output: "http://127.0.0.1:1".into(),
            },
            Message::Failed {
                error: "boom".into(),
                code: 127,
            },
        ] {
            let text = serde_json::to_string(&m).unwrap();
            assert_eq!(serde_json::from_str::<Message>(&text).unwrap(), m);
        }
    }
}
