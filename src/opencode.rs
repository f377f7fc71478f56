//! Everything ocwrap knows about opencode: how `opencode serve` is started,
//! the line it prints when it listens, where it answers for health, and the
//! environment marker that ties a workspace's processes to its record.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// How to get opencode, for error messages.
pub const INSTALL_HINT: &str =
    "install it with `npm install -g opencode-ai`, or pass --opencode PATH";

/// The line opencode prints once it accepts connections, before the URL.
const LISTENING: &str = "opencode server listening on ";

/// The health endpoint of `opencode serve`.
pub const HEALTH_PATH: &str = "/global/health";

/// Environment variable that marks every process of a workspace: how `ps`,
/// `stop` and `reap` find a workspace's processes once its supervisor is
/// gone.
pub const WORKSPACE_VAR: &str = "OCWRAP_WORKSPACE";

/// The environment entry (`NAME=value`) of workspace `id`.
pub fn marker(id: &str) -> String {
    format!("{WORKSPACE_VAR}={id}")
}

/// How a workspace's `opencode serve` is started.
pub struct Serve<'a> {
    pub opencode: &'a Path,
    pub folder: &'a Path,
    pub port: u16,
    pub hostname: Option<&'a str>,
    pub extra: &'a [OsString],
    pub workspace: &'a str,
}

impl Serve<'_> {
    /// `opencode serve --port=N --print-logs [--hostname=H] EXTRA...` in
    /// FOLDER, marked with the workspace id.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(self.opencode);
        cmd.arg("serve")
            .arg(format!("--port={}", self.port))
            .arg("--print-logs");
        if let Some(h) = self.hostname {
            cmd.arg(format!("--hostname={h}"));
        }
        cmd.args(self.extra)
            .current_dir(self.folder)
            .env(WORKSPACE_VAR, self.workspace);
        cmd
    }
}

/// `opencode` from --opencode / OCWRAP_OPENCODE, else from PATH.
pub fn find(explicit: Option<&Path>) -> Option<PathBuf> {
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

/// `GET {url}/global/health`: true when the server answers 2xx before
/// `deadline`. Every step (connect, request, the status line) has only the
/// time that is left, so a server that accepts and then trickles or never
/// answers cannot hold the probe past the deadline. (Name lookup has no
/// timeout of its own; URLs ocwrap records carry an IP address.)
pub fn healthy(url: &str, deadline: Instant) -> bool {
    let left = || {
        let d = deadline.saturating_duration_since(Instant::now());
        (!d.is_zero()).then_some(d)
    };
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let Ok(mut addrs) = authority.to_socket_addrs() else {
        return false;
    };
    let (Some(addr), Some(t)) = (addrs.next(), left()) else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, t) else {
        return false;
    };
    let req =
        format!("GET {HEALTH_PATH} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    let Some(t) = left() else {
        return false;
    };
    if stream.set_write_timeout(Some(t)).is_err() || stream.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < 12 {
        let Some(t) = left() else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(t));
        match stream.read(&mut head[len..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n,
        }
    }
    let status = String::from_utf8_lossy(&head[..len]);
    status.starts_with("HTTP/1.") && status.get(9..10) == Some("2")
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

    #[test]
    fn serve_command_line() {
        let extra = vec![OsString::from("--x")];
        let s = Serve {
            opencode: Path::new("/bin/opencode"),
            folder: Path::new("/tmp"),
            port: 7,
            hostname: Some("127.0.0.1"),
            extra: &extra,
            workspace: "0123abcd",
        };
        let cmd = s.command();
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
        assert_eq!(
            args,
            [
                "serve",
                "--port=7",
                "--print-logs",
                "--hostname=127.0.0.1",
                "--x"
            ]
        );
        assert_eq!(marker("0123abcd"), "OCWRAP_WORKSPACE=0123abcd");
    }
}
