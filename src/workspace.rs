//! A workspace as it is now: its record checked against `/proc`.
//!
//! A record is only a claim. Its supervisor counts as alive only if the PID
//! still has the recorded start time and our uid; its processes are found
//! from the live supervisor's descendants or, once the supervisor is gone,
//! from the opencode process (identity-checked) and every process of ours
//! that carries the workspace's `OCWRAP_WORKSPACE` marker and started after
//! the workspace did.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde::Serialize;

use crate::procfs::{self, Snapshot, Stat};
use crate::registry::Record;
use crate::sys::{self, Pid};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Its supervisor is alive.
    Running,
    /// Its supervisor is gone but some of its processes live.
    Orphaned,
    /// Nothing of it is left.
    Dead,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Orphaned => "orphaned",
            State::Dead => "dead",
        }
    }
}

pub struct Inspected {
    pub record: Record,
    pub state: State,
    pub supervisor: Option<Stat>,
    /// Every live process of the workspace except the supervisor.
    pub members: Vec<Stat>,
}

impl Inspected {
    pub fn rss_bytes(&self) -> u64 {
        let pages: u64 = self
            .members
            .iter()
            .chain(self.supervisor.iter())
            .map(|s| s.rss_pages)
            .sum();
        pages * sys::page_size()
    }

    /// Roots for a foreign teardown of what is left (supervisor first).
    pub fn roots(&self) -> Vec<Stat> {
        self.supervisor
            .iter()
            .chain(self.members.iter())
            .cloned()
            .collect()
    }
}

/// Whether `s` (from a snapshot) is the recorded process and ours.
fn is(id: &crate::registry::ProcId, s: &Stat) -> bool {
    s.start_time == id.start_time && !s.is_zombie()
}

fn owned(pid: Pid, uid: u32) -> bool {
    procfs::read_uids(pid).is_some_and(|(r, e)| r == uid && e == uid)
}

pub fn inspect(record: Record, snap: &Snapshot) -> Inspected {
    let uid = sys::getuid();
    let me = sys::getpid();
    let supervisor = snap
        .get(record.supervisor.pid)
        .filter(|s| s.pid > 1 && s.pid != me && is(&record.supervisor, s) && owned(s.pid, uid))
        .cloned();
    let mut members: Vec<Stat> = Vec::new();
    if let Some(sup) = &supervisor {
        for pid in snap.descendants(&[sup.pid]) {
            if let Some(s) = snap.get(pid).filter(|s| !s.is_zombie()) {
                members.push(s.clone());
            }
        }
    } else {
        let mut roots: Vec<Pid> = Vec::new();
        // PID 1 is never a workspace's process: a record naming it must not
        // claim every process below it.
        if let Some(oc) = &record.opencode
            && oc.pid > 1
            && oc.pid != me
            && snap.get(oc.pid).is_some_and(|s| is(oc, s))
        {
            roots.push(oc.pid);
        }
        // Processes that escaped opencode's tree (their parent died) still
        // carry the marker; only those born after the workspace are checked.
        let marker = record.marker();
        for s in snap.procs.values() {
            if s.pid > 1
                && s.pid != me
                && !s.is_zombie()
                && s.start_time >= record.supervisor.start_time
                && !roots.contains(&s.pid)
                && procfs::environ_has(s.pid, &marker)
            {
                roots.push(s.pid);
            }
        }
        let mut all = roots.clone();
        all.extend(snap.descendants(&roots));
        let mut seen = HashSet::new();
        for pid in all {
            if pid <= 1 || pid == me || !seen.insert(pid) {
                continue;
            }
            if let Some(s) = snap.get(pid).filter(|s| !s.is_zombie())
                && owned(pid, uid)
            {
                members.push(s.clone());
            }
        }
    }
    let state = if supervisor.is_some() {
        State::Running
    } else if members.is_empty() {
        State::Dead
    } else {
        State::Orphaned
    };
    Inspected {
        record,
        state,
        supervisor,
        members,
    }
}

/// `GET {url}/global/health`: true when the server answers 2xx in time.
pub fn health(url: &str, timeout: Duration) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let Ok(mut addrs) = authority.to_socket_addrs() else {
        return false;
    };
    let Some(addr) = addrs.next() else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let req =
        format!("GET /global/health HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    if stream.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < 12 {
        match stream.read(&mut head[len..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n,
        }
    }
    let status = String::from_utf8_lossy(&head[..len]);
    status.starts_with("HTTP/1.") && status.get(9..10) == Some("2")
}

/// "3d 4h", "5m 2s", "12s".
pub fn fmt_uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

const LISTENING: &str = "opencode server listening on ";

/// Finds the URL in opencode's listening line.
pub fn parse_listening(line: &str) -> Option<&str> {
    let rest = &line[line.find(LISTENING)? + LISTENING.len()..];
    let url = rest.split_whitespace().next()?;
    (url.starts_with("http://") || url.starts_with("https://")).then_some(url)
}

/// The port of an `http://host:port/...` URL.
pub fn url_port(url: &str) -> Option<u16> {
    let after_scheme = url.split_once("://")?.1;
    let authority = after_scheme.split('/').next()?;
    authority.rsplit_once(':')?.1.parse().ok()
}

pub fn fmt_bytes(b: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if b >= 1024 * 1024 * 1024 {
        format!("{:.1}G", b as f64 / (MIB * 1024.0))
    } else {
        format!("{:.1}M", b as f64 / MIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_url() {
        assert_eq!(
            parse_listening("opencode server listening on http://127.0.0.1:4096"),
            Some("http://127.0.0.1:4096")
        );
        assert_eq!(
            parse_listening("INFO 2026 opencode server listening on http://127.0.0.1:1/ extra"),
            Some("http://127.0.0.1:1/")
        );
        assert_eq!(
            parse_listening("Warning: OPENCODE_SERVER_PASSWORD is not set"),
            None
        );
        assert_eq!(parse_listening("opencode server listening on "), None);
        assert_eq!(
            parse_listening("opencode server listening on ftp://x"),
            None
        );
    }

    #[test]
    fn port_of_url() {
        assert_eq!(url_port("http://127.0.0.1:4096"), Some(4096));
        assert_eq!(url_port("http://[::1]:80/x"), Some(80));
        assert_eq!(url_port("http://host"), None);
    }
}
