//! What the suite needs from the machine, installed or created on the spot.
//!
//! CI starts from a fresh Debian machine with the Rust toolchain, Python and
//! apt: the Debian packages this suite uses (libseccomp-dev, runc,
//! util-linux, mount) are installed here with `apt-get` when missing, and
//! the ordinary user is created with `useradd`, both as root and under a
//! file lock so that parallel tests (and parallel test binaries) never run
//! apt or useradd twice at once. Not root and something missing: the test
//! fails and says what to install. Nothing is skipped silently.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::Mutex;

use super::is_root;

/// The ordinary user the suite runs ocwrap as (`.ci/run` creates it too).
pub const USER: &str = "ocwrap-ci";

/// Serialises the threads of this process; the file lock serialises
/// processes.
static LOCAL: Mutex<()> = Mutex::new(());

/// Runs `f` holding an exclusive `flock` on a lock file in /tmp.
fn locked<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let _g = LOCAL.lock().unwrap_or_else(|e| e.into_inner());
    let path = format!("/tmp/ocwrap-tests-{name}.lock");
    let file = File::options()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open the lock file {path}: {e}"));
    // SAFETY: flock on a descriptor we own; it is released when `file`
    // is closed at the end of this function.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock {path}: {}", std::io::Error::last_os_error());
    let out = f();
    drop(file);
    out
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout) == "install ok installed")
}

fn apt(args: &[&str]) -> Result<(), String> {
    let out = Command::new("apt-get")
        .args(["-o", "DPkg::Lock::Timeout=300", "-q", "-y"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .map_err(|e| format!("cannot run apt-get: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let tail: Vec<&str> = text.lines().rev().take(15).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(format!(
        "apt-get {} failed ({}):\n{}",
        args.join(" "),
        out.status,
        tail.join("\n")
    ))
}

/// Makes sure these Debian packages are installed: installs the missing
/// ones (as root, locked; `apt-get update` first if the plain install
/// fails), or fails the test saying what to install.
pub fn packages(wanted: &[&str]) {
    let missing = |w: &[&str]| -> Vec<String> {
        w.iter()
            .filter(|p| !installed(p))
            .map(|p| p.to_string())
            .collect()
    };
    if missing(wanted).is_empty() {
        return;
    }
    assert!(
        is_root(),
        "this test needs the Debian packages {:?}: run `apt-get install {}` as root \
         (or run the tests as root, as CI does, and they are installed here)",
        missing(wanted),
        missing(wanted).join(" ")
    );
    locked("apt", || {
        let todo = missing(wanted);
        if todo.is_empty() {
            return;
        }
        let mut args = vec!["install", "--no-install-recommends"];
        args.extend(todo.iter().map(String::as_str));
        if apt(&args).is_err() {
            if let Err(e) = apt(&["update"]) {
                panic!("cannot install {todo:?}: {e}");
            }
            if let Err(e) = apt(&args) {
                panic!("cannot install {todo:?}: {e}");
            }
        }
        let still = missing(&todo.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(still.is_empty(), "apt-get did not install {still:?}");
    });
}

/// uid and gid of a user from /etc/passwd.
pub fn lookup(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() > 3 && f[0] == name {
            Some((f[2].parse().ok()?, f[3].parse().ok()?))
        } else {
            None
        }
    })
}

/// gid of a group from /etc/group.
pub fn group(name: &str) -> Option<u32> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() > 2 && f[0] == name {
            f[2].parse().ok()
        } else {
            None
        }
    })
}

/// The ordinary user (uid, gid): created if missing (as root, locked), as
/// `.ci/run` does.
pub fn ordinary_user() -> (u32, u32) {
    if let Some(ids) = lookup(USER) {
        return ids;
    }
    assert!(
        is_root(),
        "user {USER} does not exist: create it as root (`useradd --system --user-group \
         --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin {USER}`, as \
         .ci/run does) or run the tests as root"
    );
    locked("useradd", || {
        if lookup(USER).is_none() {
            let out = Command::new("useradd")
                .args([
                    "--system",
                    "--user-group",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    USER,
                ])
                .output()
                .expect("cannot run useradd");
            assert!(
                out.status.success(),
                "useradd {USER} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    });
    lookup(USER).unwrap_or_else(|| panic!("useradd did not create {USER}"))
}

/// util-linux (unshare, setpriv, nsenter) and mount (mount, umount): both
/// are in every Debian install, but a minimal image may lack one.
pub fn namespace_tools() {
    packages(&["util-linux", "mount"]);
}
