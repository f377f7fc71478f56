//! The workspace registry: one JSON record per workspace in the state
//! directory.
//!
//! A record is only a claim: it must be a small regular file of ours
//! (opened without following symlinks, never a FIFO) holding a record of the
//! current format version, for our uid, whose id matches its file name; and
//! every PID in it is checked against `/proc` ([`crate::proc::identity`])
//! before anything is signalled.

use std::fs::{self, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::StateDir;
use crate::proc::ProcId;
use crate::sys::{self, Pid};

pub const FORMAT_VERSION: u32 = 1;
/// Records are a few hundred bytes; anything much larger is not ours.
const MAX_RECORD: u64 = 64 * 1024;

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
        crate::opencode::marker(&self.id)
    }
}

impl StateDir {
    /// Writes a record atomically.
    pub fn write_record(&self, rec: &Record) -> Result<()> {
        let body = serde_json::to_vec_pretty(rec)?;
        self.write_atomic(&format!("{}.json", rec.id), &body)
            .context("cannot save the workspace record")
    }

    pub fn remove_record(&self, id: &str) {
        let _ = fs::remove_file(self.record_path(id));
    }

    /// Every valid record; the others are skipped with a warning.
    pub fn records(&self) -> Vec<Record> {
        let mut out = Vec::new();
        for id in self.record_names() {
            match self.record(&id) {
                Ok(r) => out.push(r),
                Err(e) => crate::log::warn(
                    "registry.skipped",
                    &format!("skipping record {id}.json: {e:#}"),
                    json!({"record": format!("{id}.json"), "reason": format!("{e:#}")}),
                ),
            }
        }
        out
    }

    /// Reads one record, refusing anything that is not a small regular file
    /// of ours holding a record of the current format.
    pub fn record(&self, id: &str) -> Result<Record> {
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
        parse(id, &text)
    }
}

/// A record's text, checked: format version, shape, id, uid.
fn parse(id: &str, text: &str) -> Result<Record> {
    let v: serde_json::Value = serde_json::from_str(text).context("invalid JSON")?;
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
