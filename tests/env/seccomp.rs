//! The seccomp launcher: `tests/fixtures/seccomp-launch.c`, built once per
//! test binary with `cc ... -lseccomp` (libseccomp-dev from Debian's
//! packages, installed when missing) into Cargo's per-target temp dir.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use super::{fixture, install};

/// System calls refused with one errno: what an older kernel (ENOSYS) or a
/// container's seccomp profile (EPERM, or ENOSYS) does.
#[derive(Clone, Copy, Debug)]
pub struct Filter {
    pub errno: &'static str,
    pub deny: &'static [&'static str],
}

impl Filter {
    /// `seccomp-launch --errno E --deny A,B -- PROGRAM`: the rest of the
    /// command line (PROGRAM's arguments) to follow.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(launcher());
        c.args(["--errno", self.errno, "--deny", &self.deny.join(","), "--"])
            .arg(program);
        c
    }

    /// The launcher's arguments, for a fixture that starts ocwrap itself.
    pub fn argv(&self) -> Vec<String> {
        vec![
            launcher().display().to_string(),
            "--errno".into(),
            self.errno.into(),
            "--deny".into(),
            self.deny.join(","),
            "--".into(),
        ]
    }
}

/// The built launcher (built on first use; a failure fails every test that
/// needs it, with the compiler's message).
pub fn launcher() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(build)
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn build() -> Result<PathBuf, String> {
    install::packages(&["libseccomp-dev"]);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let out = dir.join("seccomp-launch");
    // A private name first, then rename: another test binary building at
    // the same time never runs a half-written file.
    let tmp = dir.join(format!("seccomp-launch.{}.tmp", std::process::id()));
    let src = fixture("seccomp-launch.c");
    let o = Command::new("cc")
        .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&tmp)
        .arg(&src)
        .arg("-lseccomp")
        .output()
        .map_err(|e| format!("cannot run cc to build {}: {e}", src.display()))?;
    if !o.status.success() {
        return Err(format!(
            "cc {} -lseccomp failed:\n{}",
            src.display(),
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    std::fs::rename(&tmp, &out).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out)
}
