//! Watching opencode's output (its stdout; when detached, its stderr too,
//! through the same pipe): readiness (the listening line) first, then
//! draining, so that opencode never blocks on a full pipe.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use crate::opencode::parse_listening;
use crate::supervisor::Attachment;
use crate::teardown::Trigger;

/// Lines of opencode's output kept for the error when it never gets ready.
const KEEP_LINES: usize = 20;
/// A line longer than this is passed on as it is.
const MAX_LINE: usize = 64 * 1024;

pub struct Readiness<'a> {
    out: Option<File>,
    buf: Vec<u8>,
    last: VecDeque<String>,
    deadline: Instant,
    timeout: Duration,
    url: Option<String>,
    on_ready: &'a mut dyn FnMut(&str),
}

impl<'a> Readiness<'a> {
    pub fn new(out: File, timeout: Duration, on_ready: &'a mut dyn FnMut(&str)) -> Readiness<'a> {
        Readiness {
            out: Some(out),
            buf: Vec::new(),
            last: VecDeque::new(),
            deadline: crate::teardown::deadline(Instant::now(), timeout),
            timeout,
            url: None,
            on_ready,
        }
    }

    pub fn ready(&self) -> bool {
        self.url.is_some()
    }

    fn line(&mut self, line: &str) {
        // opencode's output goes on to our stderr: the terminal in the
        // foreground, the workspace's (capped) log file when detached.
        // Written before the URL is reported, so whoever gets the URL finds
        // the line logged.
        crate::log::write_line(line);
        if self.url.is_some() {
            return;
        }
        if let Some(url) = parse_listening(line) {
            self.url = Some(url.to_string());
            (self.on_ready)(url);
        } else {
            if self.last.len() == KEEP_LINES {
                self.last.pop_front();
            }
            self.last.push_back(line.to_string());
        }
    }

    /// opencode's last lines before it failed, for the error message.
    pub fn last_lines(&self) -> String {
        if self.last.is_empty() {
            "(opencode printed nothing)".into()
        } else {
            self.last.iter().cloned().collect::<Vec<_>>().join(" | ")
        }
    }

    fn take_lines(&mut self) {
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            self.line(text.trim_end_matches('\r'));
        }
        if self.buf.len() > MAX_LINE {
            self.flush_partial();
        }
    }

    fn flush_partial(&mut self) {
        if !self.buf.is_empty() {
            let text = String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
            self.line(&text);
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

    fn on_readable(&mut self) -> Option<Trigger> {
        let mut chunk = [0u8; 8192];
        loop {
            let f = self.out.as_mut()?;
            match f.read(&mut chunk) {
                Ok(0) => {
                    // EOF: closing the fd also removes it from the epoll set.
                    self.out = None;
                    self.flush_partial();
                    return None;
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    self.take_lines();
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

    fn on_deadline(&mut self) -> Option<Trigger> {
        self.url
            .is_none()
            .then_some(Trigger::NotReady(self.timeout))
    }
}
