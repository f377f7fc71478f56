//! The per-user state directory: its place, its layout, the permission
//! checks, and the one atomic write everything in it goes through.
//!
//! ```text
//! $OCWRAP_STATE_DIR | $XDG_RUNTIME_DIR/ocwrap | $TMPDIR/ocwrap-UID    (0700, ours)
//! ├── 1a2b3c4d.json      a workspace record (registry.rs)
//! ├── 1a2b3c4d.log       a detached workspace's output (the supervisor's
//! │                      stdout and stderr; removed when it ends cleanly)
//! ├── 1a2b3c4d.log.1     its older part, once it passed --log-max
//! ├── stats.json         the cumulative counters (counters.rs)
//! ├── stats.lock         taken while the counters are updated
//! └── .NAME.PID.tmp      a write in progress (renamed over NAME)
//! ```
//!
//! Nothing read from here is trusted: the directory must be ours, not a
//! symlink and not writable by others, and every file is opened without
//! following symlinks.

pub mod counters;
pub mod registry;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::sys;

const COUNTERS_FILE: &str = "stats.json";
const COUNTERS_LOCK: &str = "stats.lock";

/// The state directory, checked.
pub struct StateDir {
    pub dir: PathBuf,
}

/// `OCWRAP_STATE_DIR` (or `--state-dir`), else `$XDG_RUNTIME_DIR/ocwrap`,
/// else `ocwrap-UID` under the temp dir (`$TMPDIR`, else `/tmp`). An
/// `XDG_RUNTIME_DIR` that is not an existing directory (set by a login
/// that has ended, copied into a container, `su` without a session) is
/// ignored: the runtime dir is the session manager's to create, not ours.
pub fn default_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(x) if x.is_absolute() && x.is_dir() => x.join("ocwrap"),
        _ => std::env::temp_dir().join(format!("ocwrap-{}", sys::getuid())),
    }
}

impl StateDir {
    /// Opens (and with `create`, makes) the state directory. Refuses a
    /// symlink, a directory owned by someone else, or one others can write.
    /// Without `create`, a missing directory is fine: `Ok(None)`.
    pub fn open(explicit: Option<&Path>, create: bool) -> Result<Option<StateDir>> {
        let dir = default_dir(explicit);
        match fs::symlink_metadata(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !create {
                    return Ok(None);
                }
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&dir)
                    .with_context(|| format!("cannot create state directory {}", dir.display()))?;
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read state directory {}", dir.display()));
            }
            Ok(_) => {}
        }
        check_private(&dir)?;
        Ok(Some(StateDir { dir }))
    }

    /// `ID.json`: a workspace's record.
    pub fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// `ID.log`: a detached workspace's output.
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.log"))
    }

    /// `ID.log.1`: the older part of a detached workspace's output, once
    /// its log was rotated.
    pub fn rotated_log_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.log.1"))
    }

    /// The names (without `.json`) of every file that claims to be a
    /// record: the counters file and writes in progress are not.
    pub fn record_names(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.') && n != COUNTERS_FILE)
            .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
            .collect();
        names.sort();
        names
    }

    /// Writes `name` atomically: a private temp file (0600, created new,
    /// never through a symlink), synced, then renamed over `name`.
    pub fn write_atomic(&self, name: &str, body: &[u8]) -> Result<()> {
        let tmp = self.dir.join(format!(".{name}.{}.tmp", sys::getpid()));
        let _ = fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        let res = f.write_all(body).and_then(|_| f.sync_data());
        drop(f);
        if let Err(e) = res.and_then(|_| fs::rename(&tmp, self.dir.join(name))) {
            let _ = fs::remove_file(&tmp);
            return Err(e)
                .with_context(|| format!("cannot save {}", self.dir.join(name).display()));
        }
        Ok(())
    }

    /// Takes an exclusive lock on `name` (held until the file is dropped).
    fn lock(&self, name: &str) -> Result<File> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.dir.join(name))?;
        f.lock()?;
        Ok(f)
    }
}

/// Refuses a state directory that is a symlink, not a directory, someone
/// else's, or writable by others.
fn check_private(dir: &Path) -> Result<()> {
    let m = fs::symlink_metadata(dir)?;
    if m.file_type().is_symlink() {
        bail!(
            "state directory {} is a symlink; refusing to use it",
            dir.display()
        );
    }
    if !m.is_dir() {
        bail!("state directory {} is not a directory", dir.display());
    }
    if m.uid() != sys::getuid() {
        bail!(
            "state directory {} is owned by uid {}, not by you (uid {}); refusing to use it",
            dir.display(),
            m.uid(),
            sys::getuid()
        );
    }
    if m.mode() & 0o022 != 0 {
        bail!(
            "state directory {} is writable by others (mode {:o}); refusing to use it",
            dir.display(),
            m.mode() & 0o7777
        );
    }
    Ok(())
}
