//! Running a test of this binary as the ordinary user.
//!
//! As root, [`as_ordinary_user`] re-runs one test function of this very
//! test binary (`--exact NAME --test-threads=1`) as user [`install::USER`]
//! through `setpriv --reuid --regid --init-groups`, with
//! [`INNER_VAR`] set so that the inner run executes the test's body instead
//! of recursing. The inner run must pass (exactly one test passed), and
//! every process it started is found afterwards by [`RUN_VAR`] in its
//! environment and killed: if the inner test passed, none may be left.
//!
//! The user can reach nothing under a private checkout (CI's clone may sit
//! below a 0700 home), so the inner run uses a *kit*: a 0755 folder in /tmp
//! with this test binary, the ocwrap binary and the fixtures (hard links,
//! or copies), removed when the test binary exits. Not root: the body runs
//! as the current (ordinary) user directly.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;

use super::{Running, install, is_root, kill_env};

/// Set in the inner run: run the body.
pub const INNER_VAR: &str = "OCWRAP_ENV_INNER";
/// The ocwrap binary the inner run uses.
pub const BIN_VAR: &str = "OCWRAP_ENV_BIN";
/// The fixtures folder the inner run uses.
pub const FIXTURES_VAR: &str = "OCWRAP_ENV_FIXTURES";
/// Set on the inner run and so inherited by all it starts: the leak sweep.
pub const RUN_VAR: &str = "OCWRAP_ENV_RUN";
/// A JSON document the outer (root) part prepared for the inner run.
pub const DATA_VAR: &str = "OCWRAP_ENV_DATA";

/// How long one inner test may take.
const INNER_TIMEOUT: Duration = Duration::from_secs(150);

pub struct Kit {
    pub dir: PathBuf,
    pub exe: PathBuf,
    pub ocwrap: PathBuf,
    pub fixtures: PathBuf,
    programs: Mutex<()>,
}

static KIT_DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_kit() {
    if let Some(dir) = KIT_DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Links `from` to `to`, or copies it (another file system).
fn place(from: &Path, to: &Path) {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to)
            .unwrap_or_else(|e| panic!("copy {} -> {}: {e}", from.display(), to.display()));
    }
}

/// The kit (see the module docs), made on first use.
pub fn kit() -> &'static Kit {
    static KIT: OnceLock<Kit> = OnceLock::new();
    KIT.get_or_init(|| {
        // Kits of test binaries that are gone (killed before their exit).
        if let Ok(entries) = std::fs::read_dir("/tmp") {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("ocwrap-env-kit-")
                    && !Path::new(&format!("/proc/{pid}")).exists()
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = PathBuf::from(format!("/tmp/ocwrap-env-kit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let fixtures = dir.join("fixtures");
        std::fs::create_dir_all(&fixtures).unwrap();
        std::fs::create_dir_all(dir.join("programs")).unwrap();
        for d in [&dir, &fixtures, &dir.join("programs")] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        KIT_DIR.set(dir.clone()).unwrap();
        // SAFETY: registers a plain function to run at exit.
        unsafe { libc::atexit(remove_kit) };
        let exe = dir.join("environments");
        place(&std::env::current_exe().unwrap(), &exe);
        let ocwrap = dir.join("ocwrap");
        place(Path::new(env!("CARGO_BIN_EXE_ocwrap")), &ocwrap);
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        for e in std::fs::read_dir(&src).unwrap().flatten() {
            if e.file_type().unwrap().is_file() {
                let to = fixtures.join(e.file_name());
                std::fs::copy(e.path(), &to).unwrap();
                let exec = e.metadata().unwrap().permissions().mode() & 0o111 != 0;
                let mode = if exec { 0o755 } else { 0o644 };
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).unwrap();
            }
        }
        Kit {
            dir,
            exe,
            ocwrap,
            fixtures,
            programs: Mutex::new(()),
        }
    })
}

impl Kit {
    /// A copy of `sleep` owned by uid:gid with `mode` (e.g. 0o4755 for
    /// setuid, 0o2755 for setgid), in the kit: a process of another user,
    /// or with another group, that the ordinary user can start.
    pub fn sleep_copy(&self, name: &str, uid: u32, gid: u32, mode: u32) -> PathBuf {
        let _g = self.programs.lock().unwrap();
        let to = self.dir.join("programs").join(name);
        if !to.exists() {
            let tmp = to.with_extension("tmp");
            std::fs::copy("/usr/bin/sleep", &tmp).unwrap();
            std::os::unix::fs::chown(&tmp, Some(uid), Some(gid)).unwrap();
            // After chown, which clears the set-id bits.
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).unwrap();
            std::fs::rename(&tmp, &to).unwrap();
        }
        to
    }
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

/// Whether this process is the inner run (as the ordinary user).
pub fn inner() -> bool {
    std::env::var_os(INNER_VAR).is_some()
}

/// Runs `body` as the ordinary user: see the module docs. `test` is the
/// test's full name in this binary (`module::name`); `data` a JSON
/// document handed to the body (in the inner run, through a file).
pub fn as_ordinary_user(test: &str, data: Option<Value>, body: impl FnOnce(&Value)) {
    if inner() {
        assert!(!is_root(), "the inner run of {test} is root");
        let data = match std::env::var_os(DATA_VAR) {
            Some(f) => serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap(),
            None => Value::Null,
        };
        body(&data);
        return;
    }
    if !is_root() {
        // Already an ordinary user.
        body(&data.unwrap_or(Value::Null));
        return;
    }
    let (uid, gid) = install::ordinary_user();
    let kit = kit();
    let run = format!(
        "{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::SeqCst)
    );
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--init-groups")
        .arg("--")
        .arg(&kit.exe)
        .args(["--exact", test, "--test-threads=1", "--nocapture"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("TMPDIR", "/tmp")
        .env("RUST_BACKTRACE", "1")
        .env(INNER_VAR, "1")
        .env(BIN_VAR, &kit.ocwrap)
        .env(FIXTURES_VAR, &kit.fixtures)
        .env(RUN_VAR, &run)
        .current_dir("/");
    let data_file = data.map(|d| {
        let f = kit.dir.join(format!("data-{run}.json"));
        std::fs::write(&f, d.to_string()).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        f
    });
    if let Some(f) = &data_file {
        c.env(DATA_VAR, f);
    }
    let mut r = Running::start(c);
    let status = r.wait(INNER_TIMEOUT);
    r.kill();
    let leaked = kill_env(&format!("{RUN_VAR}={run}"));
    if let Some(f) = data_file {
        let _ = std::fs::remove_file(f);
    }
    let out = r.output();
    let passed = status.is_some_and(|s| s.success()) && r.stdout().contains("1 passed");
    assert!(
        passed,
        "{test} failed as the ordinary user {} (uid {uid}); exit {status:?}\n{out}",
        install::USER
    );
    assert!(
        leaked.is_empty(),
        "{test} as the ordinary user left processes running: {leaked:?}\n{out}"
    );
    let line = r
        .stdout()
        .lines()
        .find(|l| l.starts_with("test "))
        .unwrap_or_default()
        .to_string();
    eprintln!("as {} (uid {uid}): {line}", install::USER);
}

/// Declares a test that runs as the ordinary user: `user_test!(name, body)`
/// or `user_test!(name, prepare, body)` where `prepare()` (as root, outside)
/// returns the JSON document for the body and anything to keep alive (and
/// drop) until the inner run is over.
#[macro_export]
macro_rules! user_test {
    ($name:ident, $body:expr) => {
        #[test]
        fn $name() {
            let test = $crate::env::user::test_name(module_path!(), stringify!($name));
            $crate::env::user::as_ordinary_user(&test, None, $body);
        }
    };
    ($name:ident, $prepare:expr, $body:expr) => {
        #[test]
        fn $name() {
            let test = $crate::env::user::test_name(module_path!(), stringify!($name));
            if $crate::env::user::inner() {
                $crate::env::user::as_ordinary_user(&test, None, $body);
            } else {
                let (data, keep) = $prepare();
                $crate::env::user::as_ordinary_user(&test, Some(data), $body);
                drop(keep);
            }
        }
    };
}

/// `module::name` as libtest calls the test (without the crate's name).
pub fn test_name(module: &str, name: &str) -> String {
    match module.split_once("::") {
        Some((_, rest)) => format!("{rest}::{name}"),
        None => name.to_string(),
    }
}
