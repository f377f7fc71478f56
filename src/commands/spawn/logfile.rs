//! A detached workspace's log: `ID.log` in the state directory, the
//! supervisor's stdout and stderr (its own lines and opencode's output),
//! and `ID.log.1` once it was rotated (see [`crate::log`]: at most about
//! twice `--log-max` on disk).
//!
//! It lives as long as it is useful: removed (both files) when the
//! workspace ends cleanly; kept when it failed, and named in the error
//! (`its log is kept at PATH`); removed when a failed spawn left it empty,
//! since it would explain nothing.

use std::fs;
use std::path::{Path, PathBuf};

use crate::state::StateDir;

pub struct WorkspaceLog {
    pub path: PathBuf,
    rotated: PathBuf,
}

impl WorkspaceLog {
    pub fn new(state: &StateDir, id: &str) -> WorkspaceLog {
        WorkspaceLog {
            path: state.log_path(id),
            rotated: state.rotated_log_path(id),
        }
    }

    /// In the detached supervisor, once its stdout and stderr are the log:
    /// rotate it before it passes `max` bytes.
    pub fn cap(&self, max: u64) {
        crate::log::cap_stderr(self.path.clone(), self.rotated.clone(), max);
    }

    /// The workspace ended cleanly: nothing to keep.
    pub fn remove(&self) {
        crate::log::uncap_stderr();
        for f in [&self.path, &self.rotated] {
            let _ = fs::remove_file(f);
        }
    }

    /// The workspace failed: the log is kept if it holds anything, and its
    /// path returned for the error message; an empty one is removed.
    pub fn keep(&self) -> Option<&Path> {
        let has_bytes = |p: &Path| fs::metadata(p).is_ok_and(|m| m.len() > 0);
        if has_bytes(&self.path) || has_bytes(&self.rotated) {
            Some(&self.path)
        } else {
            self.remove();
            None
        }
    }

    /// `message`, and where the log is kept (if it is).
    pub fn failed(&self, message: &str) -> String {
        match self.keep() {
            Some(path) => format!("{message}; its log is kept at {}", path.display()),
            None => message.to_string(),
        }
    }
}
