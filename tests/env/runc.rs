//! Containers run by a real OCI runtime (runc, from Debian's packages),
//! without an image.
//!
//! The bundle's root file system is an empty folder with `bin`, `lib`,
//! `lib64` and `sbin` as symlinks into `usr`; the config (`runc spec`,
//! edited) bind-mounts the host's `/usr` and `/etc`, the built ocwrap
//! binary (as `/ocwrap`) and the fixtures (`/fixtures`) read-only, and the
//! scene's `out` folder read-write (`/out`), where the container's
//! processes report. Each container gets its own runc state folder
//! (`runc --root`), and [`Container`]'s drop runs `runc delete --force`, so
//! no container outlives its test, pass or fail.
//!
//! `runc run` (not `-d`) runs in a child process of the test: its exit
//! status is the container's, its stdout and stderr are ocwrap's. The
//! container's processes are found from the host by their PID namespace
//! (`/proc/PID/ns/pid`, the same as the container's init from
//! `runc state`), and their PIDs inside it by the last field of `NSpid`.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::{Running, Scene, all_pids, fixtures_dir, install, ocwrap_bin, status_field};

static N: AtomicUsize = AtomicUsize::new(0);

pub struct Container {
    pub id: String,
    state_root: PathBuf,
    pub bundle: PathBuf,
    /// The host side of `/out`.
    pub out: PathBuf,
    pub run: Option<Running>,
}

fn runc(state_root: &Path) -> Command {
    let mut c = Command::new("runc");
    c.arg("--root").arg(state_root);
    c
}

impl Container {
    /// A bundle whose process is `args` (ocwrap is `/ocwrap`, the fixtures
    /// are under `/fixtures`), with the scene's marker in its environment.
    pub fn new(s: &Scene, name: &str, args: &[&str]) -> Container {
        install::packages(&["runc"]);
        let id = format!(
            "ocwrap-env-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let bundle = s.path(&format!("bundle-{name}"));
        let rootfs = bundle.join("rootfs");
        let out = s.path(&format!("out-{name}"));
        let state_root = s.path(&format!("runc-{name}"));
        for d in ["usr", "etc", "proc", "dev", "sys", "tmp", "out", "fixtures"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        for d in ["bin", "lib", "lib64", "sbin"] {
            symlink(format!("usr/{d}"), rootfs.join(d)).unwrap();
        }
        std::fs::write(rootfs.join("ocwrap"), b"").unwrap();
        std::fs::create_dir_all(&out).unwrap();
        std::fs::create_dir_all(&state_root).unwrap();
        let o = Command::new("runc")
            .arg("spec")
            .arg("--bundle")
            .arg(&bundle)
            .output()
            .expect("cannot run runc spec");
        assert!(
            o.status.success(),
            "runc spec: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let path = bundle.join("config.json");
        let mut config: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        config["process"]["env"] = json!([
            "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            format!("{}={}", super::MARK_VAR, s.mark),
            "OCWRAP_STATE_DIR=/tmp/ocwrap",
        ]);
        config["root"]["readonly"] = json!(true);
        config["hostname"] = json!("ocwrap-env");
        let bind = |src: &Path, dst: &str, mode: &str| {
            json!({"destination": dst, "type": "bind", "source": src,
                   "options": ["rbind", mode, "nosuid", "nodev"]})
        };
        let mounts = config["mounts"].as_array_mut().unwrap();
        mounts.push(bind(Path::new("/usr"), "/usr", "ro"));
        mounts.push(bind(Path::new("/etc"), "/etc", "ro"));
        mounts.push(bind(&ocwrap_bin(), "/ocwrap", "ro"));
        mounts.push(bind(&fixtures_dir(), "/fixtures", "ro"));
        mounts.push(bind(&out, "/out", "rw"));
        mounts.push(
            json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "nodev", "mode=1777"]}),
        );
        std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
        Container {
            id,
            state_root,
            bundle,
            out,
            run: None,
        }
    }

    /// `runc run` in a child process of the test.
    pub fn start(&mut self) {
        let mut c = runc(&self.state_root);
        c.arg("run").arg("--bundle").arg(&self.bundle).arg(&self.id);
        self.run = Some(Running::start(c));
    }

    pub fn running(&mut self) -> &mut Running {
        self.run.as_mut().expect("container not started")
    }

    /// `runc state` (None once the container is gone or before it exists).
    pub fn state(&self) -> Option<Value> {
        let o = runc(&self.state_root)
            .arg("state")
            .arg(&self.id)
            .output()
            .ok()?;
        if !o.status.success() {
            return None;
        }
        serde_json::from_slice(&o.stdout).ok()
    }

    /// The container's init (ocwrap) as a host PID, once it runs.
    pub fn init_pid(&self) -> Option<i32> {
        let st = self.state()?;
        (st["status"] == "running")
            .then(|| st["pid"].as_i64())
            .flatten()
            .map(|p| p as i32)
    }

    /// `runc kill ID SIGNAL`.
    pub fn kill(&self, signal: &str) {
        let o = runc(&self.state_root)
            .args(["kill", &self.id, signal])
            .output()
            .expect("cannot run runc kill");
        assert!(
            o.status.success(),
            "runc kill {} {signal}: {}",
            self.id,
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// A file the container wrote under /out.
    pub fn out(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = runc(&self.state_root)
            .args(["delete", "--force", &self.id])
            .output();
        if let Some(r) = self.run.as_mut()
            && r.wait(Duration::from_secs(10)).is_none()
        {
            r.kill();
        }
    }
}

/// The host PIDs of every process in the PID namespace of host PID `init`
/// (itself included), with their PID inside and their state letter.
pub fn namespace_processes(init: i32) -> Vec<(i32, i32, String)> {
    let Ok(ns) = std::fs::read_link(format!("/proc/{init}/ns/pid")) else {
        return Vec::new();
    };
    all_pids()
        .into_iter()
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|l| l == ns))
        .filter_map(|pid| {
            let inner = status_field(pid, "NSpid")?
                .split_whitespace()
                .last()?
                .parse()
                .ok()?;
            let state = status_field(pid, "State")?.chars().next()?.to_string();
            Some((pid, inner, state))
        })
        .collect()
}
