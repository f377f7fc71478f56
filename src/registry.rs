//! The workspace registry: one JSON record per workspace in a per-user
//! state directory.
//!
//! Nothing read from disk is trusted: the directory must be ours, not a
//! symlink and not writable by others; a record must be a small regular
//! file of ours (opened without following symlinks) in a format version we
//! know; and every PID in it is checked against `/proc` (start time, owner)
//! before anything is signalled.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::procfs::{self, Stat};
use crate::sys::{self, Pid};

pub const FORMAT_VERSION: u32 = 1;
/// Records are a few hundred bytes; anything much larger is not ours.
const MAX_RECORD: u64 = 64 * 1024;
/// Environment variable that marks every process of a workspace.
pub const MARKER_VAR: &str = "OCWRAP_WORKSPACE";

/// A process as recorded: its PID and its start time, which together
/// identify it for as long as it lives.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcId {
    pub pid: Pid,
    pub start_time: u64,
}

impl ProcId {
    pub fn of(pid: Pid) -> Option<ProcId> {
        procfs::read_stat(pid).map(|s| ProcId {
            pid,
            start_time: s.start_time,
        })
    }

    /// The live process this record points at, if it is still the same
    /// process and belongs to `uid`. PID 1 and ourselves never qualify.
    pub fn live(&self, uid: u32) -> Option<Stat> {
        if self.pid <= 1 || self.pid == sys::getpid() {
            return None;
        }
        let st = procfs::read_stat(self.pid)?;
        if st.start_time != self.start_time || st.is_zombie() {
            return None;
        }
        let (r, e) = procfs::read_uids(self.pid)?;
        (r == uid && e == uid).then_some(st)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub id: String,
    pub folder: PathBuf,
    pub url: Option<String>,
    pub port: Option<u16>,
    pub uid: u32,
    pub supervisor: ProcId,
    pub opencode: Option<ProcId>,
    pub pgid: Pid,
    pub log: Option<PathBuf>,
    /// Seconds since the epoch.
    pub started_at: u64,
    pub grace_ms: u64,
    pub kill_timeout_ms: u64,
}

impl Record {
    /// The environment entry every process of this workspace inherits.
    pub fn marker(&self) -> String {
        format!("{MARKER_VAR}={}", self.id)
    }
}

/// The state directory, checked.
pub struct Registry {
    pub dir: PathBuf,
}

/// `OCWRAP_STATE_DIR` (or `--state-dir`), else `$XDG_RUNTIME_DIR/ocwrap`,
/// else `ocwrap-UID` under the temp dir.
pub fn default_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(x) if x.is_absolute() => x.join("ocwrap"),
        _ => std::env::temp_dir().join(format!("ocwrap-{}", sys::getuid())),
    }
}

impl Registry {
    /// Opens (and with `create`, makes) the state directory. Refuses a
    /// symlink, a directory owned by someone else, or one others can write.
    /// Without `create`, a missing directory is fine: `Ok(None)`.
    pub fn open(explicit: Option<&Path>, create: bool) -> Result<Option<Registry>> {
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
        let m = fs::symlink_metadata(&dir)?;
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
        Ok(Some(Registry { dir }))
    }

    pub fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.log"))
    }

    /// Writes a record atomically: a private temp file, then rename.
    pub fn write(&self, rec: &Record) -> Result<()> {
        let tmp = self.dir.join(format!(".{}.{}.tmp", rec.id, sys::getpid()));
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        let body = serde_json::to_vec_pretty(rec)?;
        let res = f.write_all(&body).and_then(|_| f.sync_data());
        drop(f);
        if let Err(e) = res.and_then(|_| fs::rename(&tmp, self.record_path(&rec.id))) {
            let _ = fs::remove_file(&tmp);
            return Err(e).context("cannot save the workspace record");
        }
        Ok(())
    }

    pub fn remove(&self, id: &str) {
        let _ = fs::remove_file(self.record_path(id));
    }

    /// Every valid record; the others are skipped with a warning.
    pub fn load_all(&self) -> Vec<Record> {
        let mut out = Vec::new();
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return out;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        for name in names {
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            // Our own temp files, and the counters file that shares the dir.
            if name.starts_with('.') || name == crate::report::STATS_FILE {
                continue;
            }
            match self.load(id) {
                Ok(r) => out.push(r),
                Err(e) => crate::log::warn(
                    "registry.skipped",
                    &format!("skipping record {name}: {e:#}"),
                    json!({"record": name, "reason": format!("{e:#}")}),
                ),
            }
        }
        out
    }

    /// Reads one record, refusing anything that is not a small regular file
    /// of ours holding a record of the current format.
    pub fn load(&self, id: &str) -> Result<Record> {
        if !valid_id(id) {
            bail!("not a workspace id");
        }
        let path = self.record_path(id);
        let f = OpenOptions::new()
            .read(true)
            // O_NONBLOCK: a FIFO planted under a record's name must not hang us.
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::ELOOP) {
                    anyhow::anyhow!("it is a symlink")
                } else {
                    anyhow::Error::new(e)
                }
            })?;
        let m = f.metadata()?;
        if !m.is_file() {
            bail!("not a regular file");
        }
        if m.uid() != sys::getuid() {
            bail!("owned by uid {}, not by you", m.uid());
        }
        if m.len() > MAX_RECORD {
            bail!("too large ({} bytes)", m.len());
        }
        let mut text = String::new();
        f.take(MAX_RECORD)
            .read_to_string(&mut text)
            .context("unreadable")?;
        let v: serde_json::Value = serde_json::from_str(&text).context("invalid JSON")?;
        match v.get("version").and_then(|v| v.as_u64()) {
            Some(n) if n == FORMAT_VERSION as u64 => {}
            Some(n) => bail!("format version {n}, this ocwrap reads version {FORMAT_VERSION}"),
            None => bail!("no format version"),
        }
        let rec: Record = serde_json::from_value(v).context("not a workspace record")?;
        if rec.id != id {
            bail!("its id {:?} does not match its file name", rec.id);
        }
        if rec.uid != sys::getuid() {
            bail!("it names uid {}, not yours", rec.uid);
        }
        Ok(rec)
    }
}

/// Workspace ids are 8 lowercase hex digits.
pub fn valid_id(id: &str) -> bool {
    id.len() == 8
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn new_id() -> Result<String> {
    let mut b = [0u8; 4];
    sys::random_bytes(&mut b).context("getrandom failed")?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Takes an exclusive lock on `name` in the state directory (for the
/// counters file, which several ocwraps may update at once).
pub fn lock(dir: &Path, name: &str) -> Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join(name))?;
    f.lock()?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(valid_id("0123abcd"));
        assert!(!valid_id("0123abc"));
        assert!(!valid_id("../etc/x"));
        assert!(!valid_id("0123ABCD"));
        let id = new_id().unwrap();
        assert!(valid_id(&id), "{id}");
    }
}
