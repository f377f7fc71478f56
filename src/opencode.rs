//! Everything ocwrap knows about opencode: how `opencode serve` is started,
//! the line it prints when it listens, where it answers for health, the
//! environment marker that ties a workspace's processes to its record, and
//! how an untracked server is recognised by its arguments
//! ([`ServerCommand`], for `reap`).

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

/// The command `reap` looks for by default: an opencode server.
pub const SERVER_COMMAND: &str = "opencode serve";

/// A command that an untracked server is recognised by (`reap --match
/// WORDS`): a program's name, then its first arguments.
///
/// It is matched against a process's arguments (`/proc/PID/cmdline`), word
/// for word, never as a substring of the joined command line: a tmux server
/// started as `tmux new -d 'opencode serve'` keeps that command line, but
/// it *is* tmux (its program is `tmux`), and its pane's `opencode serve` is
/// the server. A process matches when, at the start of its arguments or
/// right after a leading interpreter ([`script_index`]: `node`, `bun`,
/// `deno run`, `python`, `sh`... and the interpreter's own options),
///
/// - the program word names the first pattern word: equal to it or ending
///   in `/WORD` (`/usr/lib/node_modules/opencode-ai/bin/opencode` names
///   `opencode`; a pattern word with a `/` in it, `bin/opencode`, is matched
///   as trailing path components);
/// - and the arguments after it begin with the remaining pattern words,
///   each equal (`opencode serve --port=0` is `opencode serve`; `opencode`
///   alone and `opencode run` are not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerCommand {
    words: Vec<String>,
}

impl ServerCommand {
    /// The words of `text`, split on whitespace; None when there are none.
    pub fn parse(text: &str) -> Option<ServerCommand> {
        let words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
        (!words.is_empty()).then_some(ServerCommand { words })
    }

    /// Whether a process with these arguments is such a server.
    pub fn matches<S: AsRef<str>>(&self, argv: &[S]) -> bool {
        let argv: Vec<&str> = argv.iter().map(AsRef::as_ref).collect();
        self.matches_at(&argv, 0)
            || script_index(&argv).is_some_and(|at| self.matches_at(&argv, at))
    }

    fn matches_at(&self, argv: &[&str], at: usize) -> bool {
        let Some(rest) = argv.get(at..) else {
            return false;
        };
        rest.len() >= self.words.len()
            && names_program(rest[0], &self.words[0])
            && rest[1..self.words.len()]
                .iter()
                .zip(&self.words[1..])
                .all(|(a, w)| a == w)
    }
}

impl std::fmt::Display for ServerCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.words.join(" "))
    }
}

/// `arg` (a program as it was started) names `word`: equal, or `word` is
/// its trailing path components.
fn names_program(arg: &str, word: &str) -> bool {
    arg == word
        || arg
            .strip_suffix(word)
            .is_some_and(|head| head.ends_with('/') && !word.starts_with('/'))
}

/// The interpreters whose script is the program that counts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Runtime {
    Node,
    Bun,
    Deno,
    Python,
    Shell,
}

fn runtime(program: &str) -> Option<Runtime> {
    let name = program.rsplit('/').next().unwrap_or(program);
    Some(match name {
        "node" | "nodejs" => Runtime::Node,
        "bun" => Runtime::Bun,
        "deno" => Runtime::Deno,
        "python" | "python2" | "python3" => Runtime::Python,
        "sh" | "bash" | "dash" => Runtime::Shell,
        n if n
            .strip_prefix("python3.")
            .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())) =>
        {
            Runtime::Python
        }
        _ => return None,
    })
}

/// What an interpreter's option means for finding its script.
enum Opt {
    /// Stands alone (`--smol`, `-u`, `--max-old-space-size=4096`).
    Alone,
    /// Takes the next word as its value (`-r dotenv/config`, `-X dev`).
    WithValue,
    /// The next word is the program itself (`python -m http.server`).
    Module,
    /// The interpreter runs code from the command line or stdin, not a
    /// script (`node -e`, `python -c`, `sh -c`): the program is not here.
    NoScript,
}

fn option(rt: Runtime, a: &str) -> Opt {
    let long = a.starts_with("--");
    match rt {
        Runtime::Node | Runtime::Bun => match a {
            "-e" | "--eval" | "-p" | "--print" | "-pe" => Opt::NoScript,
            _ if a.starts_with("--eval=") || a.starts_with("--print=") => Opt::NoScript,
            "-r"
            | "--require"
            | "--import"
            | "--loader"
            | "--experimental-loader"
            | "-C"
            | "--conditions"
            | "--env-file"
            | "--title"
            | "--inspect-port"
            | "--preload"
            | "--cwd"
            | "--config"
            | "--tsconfig-override" => Opt::WithValue,
            _ => Opt::Alone,
        },
        Runtime::Deno => match a {
            "-c" | "--config" | "--import-map" | "--location" | "--lock" | "--cert" => {
                Opt::WithValue
            }
            _ => Opt::Alone,
        },
        Runtime::Python if long => match a {
            "--check-hash-based-pycs" => Opt::WithValue,
            _ => Opt::Alone,
        },
        Runtime::Python => {
            if a.starts_with("-X") || a.starts_with("-W") {
                if a.len() == 2 {
                    Opt::WithValue
                } else {
                    Opt::Alone
                }
            } else if a.contains('c') {
                Opt::NoScript
            } else if a.ends_with('m') {
                Opt::Module
            } else {
                Opt::Alone
            }
        }
        Runtime::Shell if long => match a {
            "--rcfile" | "--init-file" => Opt::WithValue,
            _ => Opt::Alone,
        },
        Runtime::Shell => {
            if a.contains('c') || a.contains('s') {
                Opt::NoScript
            } else if a.ends_with('o') || a.ends_with('O') {
                Opt::WithValue
            } else {
                Opt::Alone
            }
        }
    }
}

/// Where the script of a leading interpreter is in `argv` (the word after
/// the interpreter's options: `node --x /usr/bin/opencode serve` gives 2),
/// or None when `argv` does not start with an interpreter running a script.
pub fn script_index(argv: &[&str]) -> Option<usize> {
    let rt = runtime(argv.first()?)?;
    let mut i = 1;
    if rt == Runtime::Deno {
        // `deno run [OPTIONS] SCRIPT`; `deno eval`, `deno task`... run no
        // script of their own.
        if argv.get(1) != Some(&"run") {
            return None;
        }
        i = 2;
    }
    let mut seen_run = false;
    loop {
        let a = *argv.get(i)?;
        if a == "--" {
            return (i + 1 < argv.len()).then_some(i + 1);
        }
        if rt == Runtime::Bun && a == "run" && !seen_run {
            seen_run = true;
            i += 1;
            continue;
        }
        let is_option =
            a.len() > 1 && (a.starts_with('-') || (rt == Runtime::Shell && a.starts_with('+')));
        if !is_option {
            return Some(i);
        }
        match option(rt, a) {
            Opt::Alone => i += 1,
            Opt::WithValue => i += 2,
            Opt::Module => return (i + 1 < argv.len()).then_some(i + 1),
            Opt::NoScript => return None,
        }
    }
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

    fn matches(pattern: &str, cmdline: &str) -> bool {
        let argv: Vec<&str> = cmdline.split(' ').collect();
        ServerCommand::parse(pattern).unwrap().matches(&argv)
    }

    #[test]
    fn a_server_is_its_program_then_serve() {
        for cmdline in [
            "opencode serve",
            "opencode serve --port=0 --print-logs",
            "/usr/lib/node_modules/opencode-ai/bin/opencode serve",
            // The real opencode-ai 1.18 started by ocwrap spawn.
            "/root/.cache/ocwrap-e2e/deps/node_modules/.bin/opencode serve --port=0 --print-logs",
            "node /usr/lib/node_modules/opencode-ai/bin/opencode serve",
            "/usr/bin/node --max-old-space-size=4096 -r dotenv/config /x/opencode serve",
            "nodejs -- /x/opencode serve",
            "bun run /x/opencode serve",
            "bun --smol /x/opencode serve --port=1",
            "deno run -A --config deno.json /x/opencode serve",
            "python3 /tmp/bin/opencode serve --port=0",
            "/usr/bin/python3.11 -u -X dev /tmp/bin/opencode serve",
            "sh /x/opencode serve",
        ] {
            assert!(matches(SERVER_COMMAND, cmdline), "{cmdline}");
        }
    }

    #[test]
    fn a_command_line_that_only_mentions_a_server_is_not_one() {
        for cmdline in [
            // The tmux server keeps its first client's arguments.
            "tmux new -d opencode serve",
            "tmux -S /tmp/x/sock new -d opencode serve --port=0",
            "tmux: server",
            "opencode",
            "opencode run serve",
            "opencode-serve",
            "xopencode serve",
            "/x/fake-opencode serve",
            "/x/opencode/serve",
            "sh -c opencode serve",
            "bash -ec opencode serve",
            "node -e opencode serve",
            "python3 -c opencode serve",
            "deno eval opencode serve",
            "vim opencode serve",
            "node",
            "",
        ] {
            assert!(!matches(SERVER_COMMAND, cmdline), "{cmdline}");
        }
        // One argument holding both words (what `sh -c 'opencode serve'`
        // and tmux keep).
        let one = ServerCommand::parse(SERVER_COMMAND).unwrap();
        assert!(!one.matches(&["sh", "-c", "opencode serve"]));
        assert!(!one.matches(&["opencode serve"]));
        assert!(!one.matches::<&str>(&[]));
    }

    #[test]
    fn other_patterns() {
        // Trailing path components.
        assert!(matches(
            "e2eab/opencode serve",
            "/tmp/d/e2eab/opencode serve --x"
        ));
        assert!(!matches(
            "e2eab/opencode serve",
            "/tmp/d/xe2eab/opencode serve"
        ));
        assert!(matches(
            "/usr/bin/opencode serve",
            "/usr/bin/opencode serve"
        ));
        assert!(!matches(
            "/usr/bin/opencode serve",
            "/x/usr/bin/opencode serve"
        ));
        // One word: the program alone.
        assert!(matches(
            "my-mcp-server",
            "node /srv/bin/my-mcp-server --stdio"
        ));
        assert!(matches(
            "my-mcp-server --stdio",
            "/srv/bin/my-mcp-server --stdio -v"
        ));
        assert!(!matches(
            "my-mcp-server --stdio",
            "/srv/bin/my-mcp-server -v --stdio"
        ));
        // A pattern that names the interpreter itself.
        assert!(matches(
            "python3 -m http.server",
            "/usr/bin/python3 -m http.server 8000"
        ));
        assert!(matches("http.server 8000", "python3 -m http.server 8000"));
        assert!(matches("node server.js", "node server.js --port 3000"));
        assert_eq!(ServerCommand::parse(" \t "), None);
        assert_eq!(
            ServerCommand::parse("  opencode   serve ")
                .unwrap()
                .to_string(),
            "opencode serve"
        );
    }

    #[test]
    fn finds_an_interpreters_script() {
        let at = |cmdline: &str| script_index(&cmdline.split(' ').collect::<Vec<_>>());
        assert_eq!(at("node /x/opencode serve"), Some(1));
        assert_eq!(at("node --inspect-port 9 --trace-warnings s.js"), Some(4));
        assert_eq!(at("bun run --bun s.ts"), Some(3));
        assert_eq!(at("python3 -W ignore -Wdefault -B s.py"), Some(5));
        assert_eq!(at("python -um pkg.main"), Some(2));
        assert_eq!(at("bash --rcfile r -o errexit +x s.sh"), Some(6));
        assert_eq!(at("node --"), None);
        assert_eq!(at("node --trace-warnings"), None);
        assert_eq!(at("sh -s"), None);
        assert_eq!(at("opencode serve"), None);
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
