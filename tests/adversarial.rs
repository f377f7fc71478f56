//! Adversarial cases: process trees that fight back, signal storms, a
//! supervisor that dies, forged identities and a hostile state directory.
//!
//! Every case asserts both outcomes: everything ours is gone, and
//! everything not ours is untouched. "Not ours" is made concrete in each
//! case: a bystander (a marked process outside the tree, in the test's own
//! session and process group), another user's process, PID 1 of a private
//! PID namespace, or a process born next to the tree. The fixtures are in
//! `tests/fixtures/adv.py`.
//!
//! Trees that `reap` or `stop` end from outside are started in sessions of
//! their own, so that nothing a foreign teardown may adopt (processes born
//! while it runs in a group or session the tree leads) can belong to
//! another test: the test's own session is shared by every test running in
//! parallel.

mod common;

use std::collections::BTreeSet;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use ocwrap::proc::{self as procfs, ProcId};
use ocwrap::state::StateDir as Registry;
use ocwrap::state::registry::Record;
use serde_json::Value;

/// Deadline for anything that should take a moment.
const T: Duration = Duration::from_secs(60);
/// Slack on top of grace + kill-timeout: scheduling on a loaded 2-core box.
const MARGIN: Duration = Duration::from_secs(5);
const NOBODY: u32 = 65534;
/// A uid with no account: a third user, for the nobody-runs-reap case.
const STRANGER: u32 = 12345;

fn python() -> &'static str {
    // The system interpreter: another user can run it (a pyenv shim under
    // /root cannot be), and it starts without a shell wrapper.
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn adv() -> String {
    fixture("adv.py").display().to_string()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `python3 adv.py ARGS`, as the arguments after `--`.
fn adv_args(args: &[&str]) -> Vec<String> {
    let mut v = vec![python().to_string(), adv()];
    v.extend(args.iter().map(|a| a.to_string()));
    v
}

/// `ocwrap FLAGS -- python3 adv.py ARGS`.
fn supervised(s: &Scene, flags: &[&str], args: &[&str]) -> Command {
    let mut all: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    all.push("--".into());
    all.extend(adv_args(args));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    s.ocwrap(&all)
}

/// Makes the command lead a session of its own (see the module docs).
fn own_session(cmd: &mut Command) {
    // SAFETY: setsid is async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `unshare --pid --fork --mount-proc python3 adv.py init OUT`, the rest of
/// the command line to follow: a private PID namespace whose PID 1 is
/// fixture `init`. The environment is the scene's, as for `Scene::ocwrap`
/// (marker, state directory, no OCWRAP_* settings from outside).
fn in_pid_namespace(s: &Scene, out: &Path) -> Command {
    let scene = s.ocwrap(&[]);
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--pid",
        "--fork",
        "--mount-proc",
        python(),
        &adv(),
        "init",
        p(out),
    ]);
    for (k, v) in scene.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd
}

/// A marked `sleep` outside every tree under test, in the test's session
/// and process group. It must outlive every case.
fn bystander(s: &mut Scene) -> i32 {
    let mut c = Command::new("sleep");
    c.arg0("adv-bystander").arg("1000").env(MARK_VAR, &s.mark);
    s.spawn(c) as i32
}

/// A marked `sleep` in a session of its own (a process a forged record can
/// point at without dragging the test's session into a teardown).
fn victim(s: &mut Scene, name: &str) -> i32 {
    let mut c = Command::new("sleep");
    c.arg0(name).arg("1000").env(MARK_VAR, &s.mark);
    own_session(&mut c);
    s.spawn(c) as i32
}

fn sorted(mut v: Vec<i32>) -> Vec<i32> {
    v.sort();
    v
}

/// A pidfd, opened while `pid` is known to be the process meant: every
/// later check through it is exact, whatever happens to the PID.
fn pidfd(pid: i32) -> OwnedFd {
    sys::pidfd_open(pid).unwrap_or_else(|e| panic!("pidfd_open({pid}): {e}"))
}

/// Whether the process behind `fd` ends within `timeout`.
fn ends_within(fd: &OwnedFd, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if sys::pidfd_wait(fd, end.saturating_duration_since(Instant::now())).unwrap() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
    }
}

fn still_running(fd: &OwnedFd) -> bool {
    !sys::pidfd_wait(fd, Duration::ZERO).unwrap()
}

fn ppid(pid: i32) -> Option<i32> {
    procfs::read_stat(pid).map(|s| s.ppid)
}

fn uid_of(pid: i32) -> Option<u32> {
    procfs::read_uids(pid).map(|(r, _)| r)
}

fn no_panic(text: &str) {
    assert!(!text.contains("panicked"), "ocwrap panicked:\n{text}");
}

fn count_lines(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

/// `VmHWM` (peak resident set) of a process, in kB.
fn vm_hwm_kb(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn read_json(path: &Path) -> Value {
    assert!(
        wait_until(T, || path.exists()),
        "{} never appeared",
        path.display()
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn pid_at(v: &Value, key: &str) -> i32 {
    v[key]
        .as_i64()
        .unwrap_or_else(|| panic!("no pid {key} in {v}")) as i32
}

/// A scene for processes of other users: its directory is world-writable
/// (sticky) so they can write their reports, and its marker (set in their
/// otherwise cleared environment) lets its drop SIGKILL them by PID.
fn foreign_scene(name: &str) -> Scene {
    let f = Scene::new(name);
    std::fs::set_permissions(&f.dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    f
}

/// `PROGRAM ARGS` as user `uid` (setpriv), with a cleared environment but
/// for PATH and the foreign scene's marker.
fn as_user(f: &Scene, uid: u32, program: &str, args: &[&str]) -> Command {
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .arg("--")
        .arg(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env(MARK_VAR, &f.mark)
        .current_dir("/");
    c
}

/// An orphaned signal recorder (fixture `orphan-recorder`) run as `uid`,
/// whose program name (its argv[0]) is `fake-opencode-serve-TAG`: an
/// untracked server to `reap --match`, which no `ocwrap reap` with the
/// default pattern (run by another test at the same time) can match.
/// Returns its pid.
fn orphan_recorder(f: &Scene, uid: u32, out: &Path, tag: &str) -> i32 {
    let args = [
        adv(),
        "orphan-recorder".into(),
        p(out).into(),
        format!("fake-opencode-serve-{tag}"),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (o, _) = run_output(as_user(f, uid, python(), &args), T);
    assert!(o.status.success(), "{}", stderr(&o));
    let pid = pid_at(&read_json(out), "pid");
    assert_eq!(uid_of(pid), Some(uid));
    pid
}

/// What a recording fixture logged (`SIGNAME PID`, a line per signal).
fn recorded(out: &Path) -> String {
    std::fs::read_to_string(format!("{}.log", out.display())).unwrap_or_default()
}

fn run(cmd: Command) -> (std::process::Output, Duration) {
    let (o, took) = run_output(cmd, T);
    no_panic(&stderr(&o));
    (o, took)
}

fn json_out(o: &std::process::Output) -> Value {
    serde_json::from_str(stdout(o).trim())
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(o), stderr(o)))
}

/// The PIDs `reap --json` lists as targets (whole trees).
fn reap_targets(v: &Value) -> BTreeSet<i32> {
    v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| {
            t["processes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_i64().unwrap() as i32)
        })
        .collect()
}

// ---------------------------------------------------------------------
// Trees that fight back
// ---------------------------------------------------------------------

#[test]
fn a_fork_storm_during_the_teardown_is_ended() {
    let mut s = Scene::new("adv-forkstorm");
    let by = bystander(&mut s);
    let out = s.path("storm.json");
    let (grace, kill_timeout) = (Duration::from_secs(1), Duration::from_secs(2));
    let mut r = Running::start(supervised(
        &s,
        &["--grace", "1s", "--kill-timeout", "2s"],
        &["fork-storm", p(&out), &s.mark],
    ));
    let _ = read_json(&out);
    let start = Instant::now();
    let status = r.wait(T).expect("ocwrap did not exit");
    let took = start.elapsed();
    let err = r.stderr();
    no_panic(&err);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(
        took <= grace + kill_timeout + MARGIN,
        "took {took:?}\n{err}"
    );
    assert!(err.contains(" killed, 0 survivors"), "{err}");
    let forks = std::fs::read_to_string(s.path("storm.json.forks"))
        .unwrap()
        .lines()
        .count();
    assert!(forks >= 20, "only {forks} forks");
    assert_eq!(s.alive(), vec![by], "{forks} forks; {err}");
}

#[test]
fn a_pid_hopper_is_caught() {
    // The hopper moves to a new PID and session as fast as it can fork. It
    // runs in a private PID namespace whose PID 1 (fixture `init`) reports
    // what ocwrap left behind before the namespace, and anything in it,
    // goes away: a hopper that got away cannot outlive the test.
    let mut s = Scene::new("adv-hopper");
    let by = bystander(&mut s);
    let out = s.path("init.json");
    let hopper = s.path("hopper.json");
    let mut cmd = in_pid_namespace(&s, &out);
    cmd.args([bin(), "--grace", "1s", "--kill-timeout", "2s", "--"])
        .args(adv_args(&["hopper", p(&hopper), &s.mark]));
    let mut r = Running::start(cmd);
    let _ = read_json(&hopper);
    let start = Instant::now();
    let init = read_json(&out);
    let took = start.elapsed();
    assert!(r.wait(T).is_some());
    let err = r.stderr();
    no_panic(&err);
    assert_eq!(
        init["left"],
        serde_json::json!([]),
        "ocwrap left these behind:\n{err}"
    );
    assert_eq!(
        init["status"].as_i64(),
        Some(0),
        "ocwrap's wait status; {err}"
    );
    assert!(
        took <= Duration::from_secs(3) + MARGIN,
        "took {took:?}\n{err}"
    );
    assert!(err.contains("0 survivors"), "{err}");
    assert_eq!(s.alive(), vec![by]);
}

#[test]
fn a_process_ignoring_every_signal_is_killed_after_the_grace() {
    let mut s = Scene::new("adv-stubborn");
    let by = bystander(&mut s);
    let out = s.path("stubborn.json");
    let mut r = Running::start(supervised(
        &s,
        &["--grace", "1s", "--kill-timeout", "2s"],
        &["stubborn", p(&out), &s.mark],
    ));
    let pids = read_json(&out);
    let start = Instant::now();
    kill_pid(r.pid(), libc::SIGTERM);
    let status = r.wait(T).expect("ocwrap did not exit");
    let took = start.elapsed();
    let err = r.stderr();
    no_panic(&err);
    // CMD ignored the forwarded SIGTERM too: it died of the SIGKILL.
    assert_eq!(status.code(), Some(128 + 9), "{err}");
    assert!(
        took >= Duration::from_secs(1),
        "ended after {took:?}, before the grace"
    );
    assert!(
        took <= Duration::from_secs(3) + MARGIN,
        "took {took:?}\n{err}"
    );
    assert!(
        err.contains("0 ended on the stop signal, 3 killed, 0 survivors"),
        "{pids}\n{err}"
    );
    assert_eq!(s.alive(), vec![by]);
}

#[test]
fn stopped_descendants_are_continued_and_end_on_the_stop_signal() {
    let mut s = Scene::new("adv-stopped");
    let by = bystander(&mut s);
    let out = s.path("stopped.json");
    // A grace far longer than the case may take: ending on the stop signal
    // (not the SIGKILL after the grace) needs the SIGCONT.
    let mut r = Running::start(supervised(
        &s,
        &["--grace", "20s", "--kill-timeout", "2s"],
        &["stopped", p(&out)],
    ));
    let stopped: Vec<i32> = read_json(&out)["stopped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_i64().unwrap() as i32)
        .collect();
    let start = Instant::now();
    let status = r.wait(T).expect("ocwrap did not exit");
    let took = start.elapsed();
    let err = r.stderr();
    no_panic(&err);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(
        took < Duration::from_secs(10),
        "took {took:?}: the stopped processes waited for the SIGKILL\n{err}"
    );
    assert!(
        err.contains("2 ended on the stop signal, 0 killed, 0 survivors"),
        "{err}"
    );
    let log = recorded(&out);
    for pid in stopped {
        assert!(
            log.contains(&format!("SIGTERM {pid}")),
            "{pid} never handled SIGTERM: {log}"
        );
    }
    assert_eq!(s.alive(), vec![by]);
}

#[test]
fn a_stopped_cmd_is_continued_after_the_forwarded_signal() {
    let mut s = Scene::new("adv-stoppedcmd");
    let by = bystander(&mut s);
    let out = s.path("cmd.json");
    let mut r = Running::start(supervised(
        &s,
        &["--grace", "20s", "--kill-timeout", "2s"],
        &["stoppable", p(&out)],
    ));
    let cmd = pid_at(&read_json(&out), "cmd");
    kill_pid(cmd, libc::SIGSTOP);
    assert!(wait_until(T, || procfs::read_stat(cmd).is_some_and(|s| s.is_stopped())));
    let start = Instant::now();
    kill_pid(r.pid(), libc::SIGTERM);
    let status = r.wait(T).expect("ocwrap did not exit");
    let took = start.elapsed();
    let err = r.stderr();
    no_panic(&err);
    assert!(
        took < Duration::from_secs(10),
        "took {took:?}: CMD waited for the SIGKILL\n{err}"
    );
    // CMD handles SIGTERM by exiting 0.
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(recorded(&out).contains(&format!("SIGTERM {cmd}")), "{err}");
    assert!(err.contains("0 killed, 0 survivors"), "{err}");
    assert_eq!(s.alive(), vec![by]);
}

#[test]
fn a_five_thousand_process_tree_is_ended() {
    let mut s = Scene::new("adv-big");
    let by = bystander(&mut s);
    let out = s.path("big.json");
    let (grace, kill_timeout) = (Duration::from_secs(5), Duration::from_secs(3));
    let mut r = Running::start(supervised(
        &s,
        &["--grace", "5s", "--kill-timeout", "3s"],
        &["big", p(&out), "5000", "50", &s.mark],
    ));
    assert!(
        wait_until(Duration::from_secs(120), || out.exists()),
        "the tree was never built"
    );
    let start = Instant::now();
    let status = r.wait(T).expect("ocwrap did not exit");
    let took = start.elapsed();
    let err = r.stderr();
    no_panic(&err);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(
        took <= grace + kill_timeout + MARGIN,
        "took {took:?}\n{err}"
    );
    // All 5000 end on SIGTERM when the machine keeps up; on a loaded one
    // some are still exiting when the grace runs out and get the SIGKILL.
    let summary = err
        .lines()
        .find(|l| l.contains("teardown ("))
        .unwrap_or_else(|| panic!("{err}"));
    let numbers: Vec<usize> = summary
        .rsplit(": ")
        .next()
        .unwrap()
        .split(", ")
        .take(3)
        .map(|part| part.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(numbers.len(), 3, "{err}");
    assert_eq!((numbers[0] + numbers[1], numbers[2]), (5000, 0), "{err}");
    assert_eq!(s.alive(), vec![by]);
}

// ---------------------------------------------------------------------
// Storms
// ---------------------------------------------------------------------

#[test]
fn a_storm_of_forwarded_signals_while_cmd_runs() {
    let mut s = Scene::new("adv-stormrun");
    let by = bystander(&mut s);
    let out = s.path("counts.json");
    let mut r = Running::start(supervised(&s, &[], &["counter", p(&out)]));
    let cmd = pid_at(&read_json(&s.path("counts.json.ready")), "cmd");
    let sigs = [libc::SIGUSR1, libc::SIGUSR2, libc::SIGWINCH, libc::SIGCONT];
    for i in 0..1000 {
        kill_pid(r.pid(), sigs[i % sigs.len()]);
    }
    // Signals coalesce on the way; at least one of each kind arrives.
    let counts = s.path("counts.json.counts");
    let every_kind = || {
        let v: Value = std::fs::read_to_string(&counts)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        ["SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGCONT"]
            .iter()
            .all(|k| v[k].as_u64().unwrap_or(0) >= 1)
    };
    assert!(
        wait_until(T, every_kind),
        "not every kind was forwarded: {:?}",
        std::fs::read_to_string(&counts)
    );
    assert!(
        is_alive(r.pid()) && is_alive(cmd),
        "the storm ended something\n{}",
        r.stderr()
    );
    kill_pid(r.pid(), libc::SIGTERM);
    let status = r.wait(T).expect("ocwrap did not exit");
    let err = r.stderr();
    no_panic(&err);
    assert_eq!(status.code(), Some(128 + 15), "{err}");
    let total: u64 = read_json(&out)
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(total <= 1000, "{total} signals from 1000");
    assert_eq!(count_lines(&err, "teardown ("), 1, "{err}");
    assert!(err.contains("teardown (received SIGTERM)"), "{err}");
    assert_eq!(s.alive(), vec![by]);
}

#[test]
fn a_sigterm_storm_during_the_teardown_means_one_teardown() {
    let mut s = Scene::new("adv-stormtd");
    let by = bystander(&mut s);
    let out = s.path("stubborn.json");
    let mut r = Running::start(supervised(
        &s,
        &["--grace", "60s", "--kill-timeout", "3s"],
        &["stubborn", p(&out), &s.mark],
    ));
    let _ = read_json(&out);
    kill_pid(r.pid(), libc::SIGTERM);
    assert!(
        r.wait_for_stderr("received SIGTERM: forwarded SIGTERM to CMD", T),
        "{}",
        r.stderr()
    );
    let start = Instant::now();
    let storm = [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGUSR1,
        libc::SIGQUIT,
        libc::SIGWINCH,
        libc::SIGTERM,
    ];
    for i in 0..1000 {
        kill_pid(r.pid(), storm[i % storm.len()]);
    }
    let status = r.wait(T).expect("ocwrap did not exit");
    let took = start.elapsed();
    let err = r.stderr();
    no_panic(&err);
    // The storm escalated to SIGKILL at once, not after the 60s grace.
    assert!(
        took <= Duration::from_secs(3) + MARGIN,
        "took {took:?}\n{err}"
    );
    assert_eq!(status.code(), Some(128 + 9), "{err}");
    assert_eq!(count_lines(&err, "teardown ("), 1, "{err}");
    assert_eq!(
        count_lines(&err, "during the grace: sending SIGKILL now"),
        1,
        "{err}"
    );
    assert!(err.contains("3 killed, 0 survivors"), "{err}");
    assert_eq!(s.alive(), vec![by]);
}

#[test]
fn ten_thousand_orphans_leave_no_zombie_and_bounded_memory() {
    let mut s = Scene::new("adv-orphans");
    let by = bystander(&mut s);
    let out = s.path("orphans.json");
    let fifo = s.path("go");
    let c = std::ffi::CString::new(p(&fifo)).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let mut r = Running::start(supervised(
        &s,
        &["-q"],
        &["orphans", p(&out), "10000", "2", p(&fifo)],
    ));
    let _ = read_json(&s.path("orphans.json.ready"));
    let before = vm_hwm_kb(r.pid());
    // The fixture waits on the FIFO: opening it for writing succeeds once
    // the reader is there (non-blocking, so a dead fixture cannot hang us).
    let mut go = None;
    assert!(wait_until(T, || {
        go = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .ok();
        go.is_some()
    }));
    std::io::Write::write_all(go.as_mut().unwrap(), b"go\n").unwrap();
    drop(go);
    assert!(
        wait_until(Duration::from_secs(120), || out.exists()),
        "the orphans were never all made"
    );
    let ocwrap = r.pid();
    assert!(
        wait_until(T, || zombies_of(ocwrap) == 0),
        "{} zombies left under ocwrap",
        zombies_of(ocwrap)
    );
    let after = vm_hwm_kb(ocwrap);
    assert!(
        after < 2 * before,
        "ocwrap's peak RSS grew from {before} kB to {after} kB"
    );
    kill_pid(ocwrap, libc::SIGTERM);
    let status = r.wait(T).expect("ocwrap did not exit");
    assert_eq!(status.code(), Some(128 + 15), "{}", r.stderr());
    let (o, _) = run(s.ocwrap(&["stats", "--json"]));
    assert_eq!(
        json_out(&o)["orphans_found"],
        10000,
        "before {before} kB, after {after} kB"
    );
    assert_eq!(s.alive(), vec![by]);
}

// ---------------------------------------------------------------------
// Supervisor death
// ---------------------------------------------------------------------

/// `ocwrap` (in a session of its own) over fixture `daemons`: CMD with a
/// plain child, one in its own group and a setsid daemon, all named
/// `adv-daemon-MARK`. Returns the runner and the fixture's pids.
fn daemons(s: &Scene, ignore: bool) -> (Running, Value) {
    let out = s.path("daemons.json");
    let mut cmd = supervised(
        s,
        &["--grace", "30s", "--kill-timeout", "2s"],
        &["daemons", p(&out), &s.mark, if ignore { "1" } else { "0" }],
    );
    own_session(&mut cmd);
    let r = Running::start(cmd);
    let pids = read_json(&out);
    (r, pids)
}

/// SIGKILLs ocwrap, checks that CMD got its parent-death signal, then
/// that `reap --match` ends exactly the rest and spares an orphan of ours
/// that does not match. Returns reap's JSON document.
fn kill_supervisor_then_reap(s: &mut Scene, by: i32, r: &mut Running, pids: &Value) -> Value {
    let ocwrap = pidfd(r.pid());
    let cmd = pidfd(pid_at(pids, "cmd"));
    let rest: Vec<i32> = ["plain", "group", "daemon"]
        .iter()
        .map(|k| pid_at(pids, k))
        .collect();
    let rest_fds: Vec<OwnedFd> = rest.iter().map(|&p| pidfd(p)).collect();
    kill_pid(r.pid(), libc::SIGKILL);
    assert!(ends_within(&ocwrap, T));
    assert!(ends_within(&cmd, T), "CMD outlived a SIGKILLed ocwrap");
    // The rest is orphaned now (and not signalled by anything yet).
    assert!(
        wait_until(T, || rest.iter().all(|&p| ppid(p) == Some(1))),
        "{rest:?} not re-parented to PID 1"
    );
    assert!(rest_fds.iter().all(still_running));
    // An orphan of ours that does not match: reap must leave it alone.
    let spare_out = s.path("spare.json");
    let (o, _) = run_output(
        {
            let mut c = Command::new(python());
            c.args([
                adv(),
                "orphan".into(),
                p(&spare_out).into(),
                format!("adv-spare-{}", s.mark),
            ])
            .env(MARK_VAR, &s.mark);
            own_session(&mut c);
            c
        },
        T,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let spare = pid_at(&read_json(&spare_out), "pid");
    let pattern = format!("adv-daemon-{}", s.mark);

    let (o, _) = run(s.ocwrap(&["reap", "--dry-run", "--json", "--match", &pattern]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        reap_targets(&json_out(&o)),
        rest.iter().copied().collect::<BTreeSet<i32>>(),
        "{}",
        stdout(&o)
    );
    assert!(
        rest_fds.iter().all(still_running),
        "--dry-run ended something"
    );

    let (o, _) = run(s.ocwrap(&[
        "reap",
        "--json",
        "--match",
        &pattern,
        "--grace",
        "1s",
        "--kill-timeout",
        "2s",
    ]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for (pid, fd) in rest.iter().zip(&rest_fds) {
        assert!(
            ends_within(fd, Duration::from_secs(5)),
            "{pid} survived the reap"
        );
    }
    assert_eq!(s.alive(), sorted(vec![by, spare]), "{}", stderr(&o));
    json_out(&o)
}

#[test]
fn supervisor_killed_while_cmd_runs_then_reap_ends_the_rest() {
    let mut s = Scene::new("adv-sigkill");
    let by = bystander(&mut s);
    let (mut r, pids) = daemons(&s, false);
    let doc = kill_supervisor_then_reap(&mut s, by, &mut r, &pids);
    assert_eq!(doc["ended_on_stop_signal"], 3, "{doc}");
    assert_eq!(doc["killed"], 0, "{doc}");
}

#[test]
fn supervisor_killed_during_the_teardown_then_reap_ends_the_rest() {
    let mut s = Scene::new("adv-sigkilltd");
    let by = bystander(&mut s);
    let (mut r, pids) = daemons(&s, true);
    kill_pid(r.pid(), libc::SIGTERM);
    assert!(
        r.wait_for_stderr("received SIGTERM: forwarded SIGTERM to CMD", T),
        "{}",
        r.stderr()
    );
    let doc = kill_supervisor_then_reap(&mut s, by, &mut r, &pids);
    // Everything left ignores SIGTERM: killed after reap's grace.
    assert_eq!(doc["killed"], 3, "{doc}");
}

#[test]
fn a_detached_workspace_whose_supervisor_is_killed_is_reaped_from_the_registry() {
    let mut s = Scene::new("adv-detached");
    let by = bystander(&mut s);
    let folder = s.path("ws");
    std::fs::create_dir(&folder).unwrap();
    let oc_pids = s.path("opencode.json");
    let fake = fixture("fake-opencode");
    let mut c = s.ocwrap(&[
        "spawn",
        "--detach",
        "--json",
        p(&folder),
        "--opencode",
        p(&fake),
        "--grace",
        "1s",
        "--kill-timeout",
        "2s",
    ]);
    c.env("FAKE_OPENCODE_PIDS", &oc_pids);
    let (o, _) = run(c);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ws = json_out(&o);
    let id = ws["id"].as_str().unwrap().to_string();
    let supervisor = pid_at(&ws["pids"], "supervisor");
    let opencode = pid_at(&ws["pids"], "opencode");
    let children: Vec<i32> = read_json(&oc_pids)["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_i64().unwrap() as i32)
        .collect();
    let child_fds: Vec<OwnedFd> = children.iter().map(|&p| pidfd(p)).collect();
    let (sup_fd, oc_fd) = (pidfd(supervisor), pidfd(opencode));

    let (o, _) = run(s.ocwrap(&["ps", "--json"]));
    let rows = json_out(&o);
    assert_eq!(rows[0]["state"], "running", "{rows}");
    assert_eq!(rows[0]["processes"], 4, "{rows}");

    kill_pid(supervisor, libc::SIGKILL);
    assert!(ends_within(&sup_fd, T));
    assert!(
        ends_within(&oc_fd, T),
        "opencode outlived its SIGKILLed supervisor"
    );
    let (o, _) = run(s.ocwrap(&["ps", "--json"]));
    let rows = json_out(&o);
    assert_eq!(rows[0]["state"], "orphaned", "{rows}");
    assert_eq!(rows[0]["processes"], 2, "{rows}");
    assert!(child_fds.iter().all(still_running));

    // A pattern that matches nothing: the registry alone finds the rest
    // (the default would also match other tests' fake opencode servers).
    let nothing = format!("adv-nothing-{}", s.mark);
    let (o, _) = run(s.ocwrap(&[
        "reap",
        "--json",
        "--match",
        &nothing,
        "--grace",
        "1s",
        "--kill-timeout",
        "2s",
    ]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc = json_out(&o);
    assert_eq!(doc["targets"][0]["workspace"], id.as_str(), "{doc}");
    assert_eq!(
        reap_targets(&doc),
        children.iter().copied().collect::<BTreeSet<i32>>(),
        "{doc}"
    );
    for (pid, fd) in children.iter().zip(&child_fds) {
        assert!(
            ends_within(fd, Duration::from_secs(5)),
            "{pid} survived the reap"
        );
    }
    assert!(
        !s.state_dir().join(format!("{id}.json")).exists(),
        "the record was left behind"
    );
    let (o, _) = run(s.ocwrap(&["ps", "--json"]));
    assert_eq!(json_out(&o), serde_json::json!([]));
    assert_eq!(s.alive(), vec![by]);
}

// ---------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------

fn registry(s: &Scene) -> Registry {
    Registry::open(Some(&s.state_dir()), true).unwrap().unwrap()
}

/// A record of ours (uid, format) that claims these processes.
fn record(id: &str, supervisor: ProcId, opencode: Option<ProcId>, pgid: i32) -> Record {
    Record {
        version: ocwrap::state::registry::FORMAT_VERSION,
        id: id.into(),
        folder: "/".into(),
        url: Some("http://127.0.0.1:9/".into()),
        port: Some(9),
        uid: sys::getuid(),
        supervisor,
        opencode,
        pgid,
        log: None,
        started_at: 0,
        grace_ms: 500,
        kill_timeout_ms: 500,
    }
}

/// A supervisor that cannot exist (beyond any pid_max in use here).
const GONE: ProcId = ProcId {
    pid: 4_000_000,
    start_time: 1,
};

fn proc_id(pid: i32) -> ProcId {
    ProcId::of(pid).unwrap()
}

/// Runs ps, reap (dry run and real) and stop (by id and --all) against
/// `records`, rewriting them before each command, and checks after every
/// command that none of `untouchable` was signalled (`check`).
fn every_command_spares(s: &Scene, records: &[Record], check: &dyn Fn(&str)) {
    let reg = registry(s);
    let nothing = format!("adv-nothing-{}", s.mark);
    let mut commands: Vec<Vec<String>> = vec![
        vec!["ps".into()],
        vec!["ps".into(), "--json".into()],
        vec![
            "reap".into(),
            "--dry-run".into(),
            "--json".into(),
            "--match".into(),
            nothing.clone(),
        ],
        vec![
            "reap".into(),
            "--json".into(),
            "--match".into(),
            nothing,
            "--grace".into(),
            "500ms".into(),
        ],
        vec![
            "stop".into(),
            "--all".into(),
            "--grace".into(),
            "500ms".into(),
        ],
    ];
    for r in records {
        commands.push(vec![
            "stop".into(),
            r.id.clone(),
            "--grace".into(),
            "500ms".into(),
        ]);
    }
    for args in commands {
        for r in records {
            reg.write_record(r).unwrap();
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (o, _) = run(s.ocwrap(&args));
        let what = format!("ocwrap {}: {}\n{}", args.join(" "), stdout(&o), stderr(&o));
        assert_eq!(o.status.code(), Some(0), "{what}");
        if args == ["ps", "--json"] {
            for row in json_out(&o).as_array().unwrap() {
                assert_eq!(row["state"], "dead", "{what}");
                assert_eq!(row["processes"], 0, "{what}");
            }
        }
        if args.starts_with(&["reap", "--dry-run"]) {
            assert_eq!(json_out(&o)["targets"], serde_json::json!([]), "{what}");
        }
        check(&what);
    }
}

#[test]
fn a_record_whose_pid_was_recycled_is_never_signalled() {
    let mut s = Scene::new("adv-recycled");
    let by = bystander(&mut s);
    let v = victim(&mut s, "adv-victim");
    let st = procfs::read_stat(v).unwrap();
    // Same PID, another start time: the recorded processes ended long ago
    // and the PID now belongs to an unrelated process.
    let older = ProcId {
        pid: v,
        start_time: st.start_time.saturating_sub(3),
    };
    let newer = ProcId {
        pid: v,
        start_time: st.start_time + 5,
    };
    let records = [
        record("0a0a0a01", older, Some(older), v),
        record("0a0a0a02", GONE, Some(newer), v),
        record("0a0a0a03", newer, None, st.pgrp),
    ];
    let fd = pidfd(v);
    every_command_spares(&s, &records, &|what| {
        assert!(still_running(&fd), "the victim was ended by {what}")
    });
    assert_eq!(s.alive(), sorted(vec![by, v]));
}

/// PID 1 of a private PID namespace (fixture `init`) records every signal
/// it gets; inside, fixture `forge-pid1` starts an orphaned bystander,
/// forges records that name PID 1 (with its true start time) in `role`
/// and runs ps, reap and stop against them. Neither PID 1 nor anything
/// below it may be signalled, and every record is dead: PID 1 is never a
/// workspace's process.
fn forged_pid_1(role: &str) {
    let mut s = Scene::new(&format!("adv-pid1-{role}"));
    let by = bystander(&mut s);
    let out = s.path("init.json");
    let forge = s.path("forge.json");
    let state = s.path("ns-state");
    let mut cmd = in_pid_namespace(&s, &out);
    cmd.args(adv_args(&[
        "forge-pid1",
        p(&forge),
        bin(),
        p(&state),
        &s.mark,
        role,
    ]));
    let mut r = Running::start(cmd);
    // Six ocwrap runs in a row: a generous deadline for a loaded machine.
    assert!(
        wait_until(5 * T, || out.exists()),
        "no report from init: {}",
        r.stderr()
    );
    let init = read_json(&out);
    assert!(r.wait(T).is_some());
    let doc: Value = std::fs::read_to_string(&forge)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or_default();
    let signals = std::fs::read_to_string(s.path("init.json.signals")).unwrap_or_default();
    assert_eq!(signals, "", "PID 1 was signalled; {doc:#}");
    let runs = doc["runs"]
        .as_array()
        .unwrap_or_else(|| panic!("no report from forge-pid1: {init}\n{}", r.stderr()));
    for run in runs {
        let what = format!(
            "ocwrap {}: {}\n{}",
            run["args"], run["stdout"], run["stderr"]
        );
        no_panic(&what);
        assert_eq!(
            run["bystander_alive"], true,
            "a descendant of PID 1 was ended by {what}"
        );
        assert_eq!(run["code"], 0, "{what}");
    }
    assert_eq!(
        init["status"],
        0,
        "fixture forge-pid1 did not finish: {init}; {doc:#}\n{}",
        r.stderr()
    );
    assert_eq!(runs.len(), 6, "{doc:#}");
    let ps: Value = serde_json::from_str(runs[0]["stdout"].as_str().unwrap()).unwrap();
    for row in ps.as_array().unwrap() {
        assert_eq!(row["state"], "dead", "{ps}");
        assert_eq!(row["processes"], 0, "{ps}");
    }
    let dry: Value = serde_json::from_str(runs[1]["stdout"].as_str().unwrap()).unwrap();
    assert_eq!(dry["targets"], serde_json::json!([]), "{dry}");
    // Only the bystander is left in the namespace when the fixture is done.
    let left = init["left"].as_array().unwrap();
    assert_eq!(left.len(), 1, "{init}");
    assert!(
        left[0].as_str().unwrap().contains("adv-bystander"),
        "{init}"
    );
    assert_eq!(s.alive(), vec![by]);
}

#[test]
fn records_naming_pid_1_as_supervisor_never_signal_it_or_its_descendants() {
    forged_pid_1("supervisor");
}

#[test]
fn records_naming_pid_1_as_opencode_never_signal_it_or_its_descendants() {
    forged_pid_1("opencode");
}

#[test]
fn records_forged_to_point_at_another_users_process_never_signal_it() {
    let mut s = Scene::new("adv-otheruser");
    let by = bystander(&mut s);
    let mut f = foreign_scene("adv-otheruser-foreign");
    let out = f.path("nobody.json");
    let args = [adv(), "recorder".into(), p(&out).into()];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let c = as_user(&f, NOBODY, python(), &args);
    f.spawn(c);
    let theirs = pid_at(&read_json(&out), "pid");
    assert_eq!(uid_of(theirs), Some(NOBODY));
    let id = proc_id(theirs);
    let records = [
        record("0b0b0b01", id, Some(id), theirs),
        record("0b0b0b02", GONE, Some(id), theirs),
    ];
    let fd = pidfd(theirs);
    every_command_spares(&s, &records, &|what| {
        assert!(
            still_running(&fd),
            "another user's process was ended by {what}"
        );
        assert_eq!(
            recorded(&out),
            "",
            "another user's process was signalled by {what}"
        );
    });
    assert_eq!(f.alive(), vec![theirs]);
    assert_eq!(s.alive(), vec![by]);
}

/// An orphaned `fake-opencode-serve-TAG` of ours (root's), in a session of
/// its own, recording the signals it gets to `out`.
fn our_orphan_recorder(s: &Scene, out: &Path, tag: &str) -> i32 {
    let mut c = Command::new(python());
    c.args([
        adv(),
        "orphan-recorder".into(),
        p(out).into(),
        format!("fake-opencode-serve-{tag}"),
    ])
    .env(MARK_VAR, &s.mark);
    own_session(&mut c);
    let (o, _) = run_output(c, T);
    assert!(o.status.success(), "{}", stderr(&o));
    pid_at(&read_json(out), "pid")
}

/// `reap --match PATTERN` as one user (`ocwrap` runs ocwrap as that user):
/// the dry run names only `target`, the real one ends it with one SIGTERM,
/// and every one of `spared` is alive and got nothing.
fn reap_ends_only(
    ocwrap: &dyn Fn(&[&str]) -> std::process::Output,
    pattern: &str,
    (target, target_fd, target_out): (i32, &OwnedFd, &Path),
    spared: &[(i32, &Path)],
) {
    let o = ocwrap(&["reap", "--dry-run", "--json", "--match", pattern]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        reap_targets(&json_out(&o)),
        BTreeSet::from([target]),
        "{}",
        stdout(&o)
    );
    let o = ocwrap(&[
        "reap",
        "--json",
        "--match",
        pattern,
        "--grace",
        "1s",
        "--kill-timeout",
        "2s",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        ends_within(target_fd, Duration::from_secs(5)),
        "{target}, the one to reap, survived: {}",
        stdout(&o)
    );
    assert_eq!(recorded(target_out), format!("SIGTERM {target}\n"));
    for &(pid, out) in spared {
        assert!(
            is_alive(pid) && recorded(out).is_empty(),
            "{pid} was signalled: {}",
            recorded(out)
        );
    }
}

#[test]
fn another_users_orphaned_server_is_never_reaped() {
    // Three orphans, all named `fake-opencode-serve-TAG` (their argv[0]):
    // one of nobody's, one of a third uid's, one of ours (root's). Reaping
    // as root ends only ours; reaping as nobody ends only nobody's.
    let mut s = Scene::new("adv-reapuser");
    let by = bystander(&mut s);
    let f = foreign_scene("adv-reapuser-foreign");
    let tag = s.mark.clone();
    let pattern = format!("fake-opencode-serve-{tag}");
    let (n_out, x_out) = (f.path("nobody.json"), f.path("stranger.json"));
    let nobodys = orphan_recorder(&f, NOBODY, &n_out, &tag);
    let strangers = orphan_recorder(&f, STRANGER, &x_out, &tag);
    let ours_out = s.path("ours.json");
    let ours = our_orphan_recorder(&s, &ours_out, &tag);
    for pid in [nobodys, strangers, ours] {
        assert!(
            wait_until(T, || ppid(pid) == Some(1)),
            "{pid} is not an orphan"
        );
    }
    let fds: Vec<OwnedFd> = [nobodys, strangers, ours]
        .iter()
        .map(|&p| pidfd(p))
        .collect();

    // As root.
    let as_root = |args: &[&str]| run(s.ocwrap(args)).0;
    reap_ends_only(
        &as_root,
        &pattern,
        (ours, &fds[2], &ours_out),
        &[(nobodys, &n_out), (strangers, &x_out)],
    );
    assert!(still_running(&fds[0]) && still_running(&fds[1]));

    // As nobody, with a state directory of nobody's; a new orphan of
    // root's is now the other user's.
    let roots_out = s.path("roots.json");
    let roots = our_orphan_recorder(&s, &roots_out, &tag);
    assert!(wait_until(T, || ppid(roots) == Some(1)));
    let roots_fd = pidfd(roots);
    let state = f.path("nobody-state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&state, Some(NOBODY), Some(NOBODY)).unwrap();
    let as_nobody = |args: &[&str]| {
        let mut c = as_user(&f, NOBODY, bin(), args);
        c.env("OCWRAP_STATE_DIR", &state);
        run(c).0
    };
    reap_ends_only(
        &as_nobody,
        &pattern,
        (nobodys, &fds[0], &n_out),
        &[(strangers, &x_out), (roots, &roots_out)],
    );
    assert!(still_running(&fds[1]) && still_running(&roots_fd));
    assert_eq!(f.alive(), vec![strangers]);
    assert_eq!(s.alive(), sorted(vec![by, roots]));
}

// ---------------------------------------------------------------------
// Hostile state
// ---------------------------------------------------------------------

fn entries(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_hostile_state_directory_is_refused() {
    let mut s = Scene::new("adv-hostiledir");
    let by = bystander(&mut s);
    // A real state directory with a record that, if used, would have
    // `stop --all` and `reap` end the victim.
    let v = victim(&mut s, "adv-victim");
    let fd = pidfd(v);
    let real = s.path("real-state");
    let reg = Registry::open(Some(&real), true).unwrap().unwrap();
    reg.write_record(&record("0c0c0c01", GONE, Some(proc_id(v)), v))
        .unwrap();
    let before = entries(&real);
    let folder = s.path("ws");
    std::fs::create_dir(&folder).unwrap();
    let fake = fixture("fake-opencode");
    let started = s.path("opencode-started.json");

    type Make = fn(&Path, &Path);
    let cases: [(&str, Make, &str); 5] = [
        (
            "symlink",
            |state, real| std::os::unix::fs::symlink(real, state).unwrap(),
            "is a symlink; refusing",
        ),
        (
            "world-writable",
            |state, _| {
                std::fs::create_dir(state).unwrap();
                std::fs::set_permissions(state, std::fs::Permissions::from_mode(0o777)).unwrap();
            },
            "is writable by others (mode",
        ),
        (
            "group-writable",
            |state, _| {
                std::fs::create_dir(state).unwrap();
                std::fs::set_permissions(state, std::fs::Permissions::from_mode(0o770)).unwrap();
            },
            "is writable by others (mode",
        ),
        (
            "another user's",
            |state, _| {
                std::fs::create_dir(state).unwrap();
                std::fs::set_permissions(state, std::fs::Permissions::from_mode(0o700)).unwrap();
                std::os::unix::fs::chown(state, Some(NOBODY), Some(NOBODY)).unwrap();
            },
            "is owned by uid 65534, not by you",
        ),
        (
            "a file",
            |state, _| std::fs::write(state, b"{}").unwrap(),
            "is not a directory",
        ),
    ];
    for (what, make, reason) in cases {
        let state = s.path(&format!(
            "state-{}",
            what.replace(' ', "-").replace('\'', "")
        ));
        make(&state, &real);
        let with_state = |args: &[&str]| {
            let mut c = s.ocwrap(args);
            c.env("OCWRAP_STATE_DIR", &state)
                .env("FAKE_OPENCODE_PIDS", &started);
            run(c).0
        };
        for args in [
            vec!["ps"],
            vec!["ps", "--json"],
            vec!["stop", "--all"],
            vec!["stop", "0c0c0c01"],
            vec!["spawn", p(&folder), "--opencode", p(&fake), "--json"],
        ] {
            let o = with_state(&args);
            let (out, err) = (stdout(&o), stderr(&o));
            let ctx = format!("{what}: ocwrap {}: {out}{err}", args.join(" "));
            assert_eq!(o.status.code(), Some(125), "{ctx}");
            assert_eq!(err.lines().count(), 1, "{ctx}");
            assert!(err.contains(p(&state)) && err.contains(reason), "{ctx}");
            assert_eq!(out, "", "{ctx}");
            assert!(!started.exists(), "{ctx}: opencode was started");
        }
        // reap only loses the registry: it warns and goes on.
        let o = with_state(&["reap", "--match", &format!("adv-nothing-{}", s.mark)]);
        assert_eq!(o.status.code(), Some(0), "{what}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("skipping the registry"),
            "{what}: {}",
            stderr(&o)
        );
        assert!(still_running(&fd), "{what}: the victim was ended");
    }
    assert_eq!(entries(&real), before, "the symlink's target was changed");
    assert_eq!(s.alive(), sorted(vec![by, v]));
}

#[test]
fn hostile_records_are_skipped_never_followed() {
    let mut s = Scene::new("adv-records");
    let by = bystander(&mut s);
    let reg = registry(&s);
    let dir = s.state_dir();
    // Every hostile record claims a live victim of its own: had it been
    // loaded, reap and stop would end it (as they end the control's).
    let valid_json = |id: &str, v: i32| {
        serde_json::to_string_pretty(&record(id, GONE, Some(proc_id(v)), v)).unwrap()
    };
    let mut victims = Vec::new();
    let mut hostile = |s: &mut Scene, id: &str, plant: &dyn Fn(&Path, String)| {
        let v = victim(s, &format!("adv-victim-{id}"));
        plant(&dir.join(format!("{id}.json")), valid_json(id, v));
        victims.push((id.to_string(), v, pidfd(v)));
    };
    let elsewhere = s.path("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    hostile(&mut s, "aaaaaaa1", &|path, json| {
        let target = elsewhere.join("aaaaaaa1.json");
        std::fs::write(&target, json).unwrap();
        std::os::unix::fs::symlink(&target, path).unwrap();
    });
    hostile(&mut s, "aaaaaaa2", &|path, json| {
        std::fs::write(path, format!("{json}{}", " ".repeat(70 * 1024))).unwrap();
    });
    hostile(&mut s, "aaaaaaa3", &|path, json| {
        std::fs::write(path, &json[..json.len() / 2]).unwrap()
    });
    hostile(&mut s, "aaaaaaa4", &|path, json| {
        std::fs::write(
            path,
            [b"\xff\xfe{{ not json \0".as_slice(), json.as_bytes()].concat(),
        )
        .unwrap()
    });
    hostile(&mut s, "aaaaaaa5", &|path, json| {
        std::fs::write(path, json.replacen("\"version\": 1", "\"version\": 2", 1)).unwrap()
    });
    hostile(&mut s, "aaaaaaa6", &|path, json| {
        std::fs::write(
            path,
            json.replacen("\"id\": \"aaaaaaa6\"", "\"id\": \"aaaaaaa7\"", 1),
        )
        .unwrap()
    });
    hostile(&mut s, "aaaaaaa7", &|path, json| {
        std::fs::write(path, json).unwrap();
        std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    });
    hostile(&mut s, "aaaaaaa8", &|path, json| {
        std::fs::write(
            path,
            json.replacen(&format!("\"uid\": {}", sys::getuid()), "\"uid\": 65534", 1),
        )
        .unwrap()
    });
    hostile(&mut s, "aaaaaaa9", &|path, json| {
        std::fs::write(path, json.replacen("\"version\": 1,", "", 1)).unwrap()
    });
    // A FIFO and a directory under a record's name.
    let fifo = std::ffi::CString::new(p(&dir.join("aaaaaaaa.json"))).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    std::fs::create_dir(dir.join("aaaaaaab.json")).unwrap();
    let skipped = [
        "aaaaaaa1", "aaaaaaa2", "aaaaaaa3", "aaaaaaa4", "aaaaaaa5", "aaaaaaa6", "aaaaaaa7",
        "aaaaaaa8", "aaaaaaa9", "aaaaaaaa", "aaaaaaab",
    ];
    // The control: a valid record, which reap does act on.
    let control = victim(&mut s, "adv-control");
    let control_fd = pidfd(control);
    reg.write_record(&record("0d0d0d01", GONE, Some(proc_id(control)), control))
        .unwrap();
    let untouched = |what: &str| {
        for (id, v, fd) in &victims {
            assert!(
                still_running(fd),
                "{what}: the victim of record {id} ({v}) was ended"
            );
        }
        assert!(
            std::fs::read_link(dir.join("aaaaaaa1.json")).is_ok(),
            "{what}: the symlink was removed"
        );
        assert!(
            elsewhere.join("aaaaaaa1.json").exists(),
            "{what}: the symlink's target was removed"
        );
    };
    let warned = |what: &str, err: &str| {
        no_panic(err);
        for id in skipped {
            assert_eq!(
                count_lines(err, &format!("skipping record {id}.json")),
                1,
                "{what}: {err}"
            );
        }
    };

    let (o, _) = run(s.ocwrap(&["ps", "--json"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    warned("ps", &stderr(&o));
    let rows = json_out(&o);
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["id"], "0d0d0d01");
    assert_eq!(rows[0]["state"], "orphaned");
    untouched("ps");

    for args in [vec!["stop", "aaaaaaa5"], vec!["stop", "aaaaaaa1"]] {
        let (o, _) = run(s.ocwrap(&args));
        assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("no workspace matches"),
            "{}",
            stderr(&o)
        );
        untouched(&args.join(" "));
    }

    let (o, _) = run(s.ocwrap(&[
        "reap",
        "--json",
        "--match",
        &format!("adv-nothing-{}", s.mark),
        "--grace",
        "1s",
    ]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    warned("reap", &stderr(&o));
    assert_eq!(
        reap_targets(&json_out(&o)),
        BTreeSet::from([control]),
        "{}",
        stdout(&o)
    );
    assert!(
        ends_within(&control_fd, Duration::from_secs(5)),
        "the control record's process survived"
    );
    untouched("reap");

    let (o, _) = run(s.ocwrap(&["stop", "--all"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    warned("stop --all", &stderr(&o));
    untouched("stop --all");

    let mut alive: Vec<i32> = victims.iter().map(|(_, v, _)| *v).collect();
    alive.push(by);
    assert_eq!(s.alive(), sorted(alive));
}

#[test]
fn reap_spares_a_process_born_next_to_the_orphan_during_its_grace() {
    // An orphan in the session (and process group) of a live, unrelated
    // leader, as a server left by a crashed `ocwrap -- CMD` sits in its
    // terminal's session. While reap's grace runs, the leader starts a new
    // process: it is no descendant of the orphan, not orphaned and matches
    // nothing, so reap must leave it alone.
    let mut s = Scene::new("adv-born");
    let by = bystander(&mut s);
    let out = s.path("session.json");
    let leader = {
        let mut c = Command::new(python());
        c.args([adv(), "session".into(), p(&out).into()])
            .env(MARK_VAR, &s.mark);
        own_session(&mut c);
        s.spawn(c) as i32
    };
    let orphan = pid_at(&read_json(&out), "orphan");
    assert!(wait_until(T, || ppid(orphan) == Some(1)));
    let orphan_fd = pidfd(orphan);
    // The orphan is a forked copy of the leader: `python3 adv.py session
    // OUT`, matched (after the interpreter) by its script and arguments.
    let pattern = format!("adv.py session {}", p(&out));
    let mut reap = Running::start(s.ocwrap(&[
        "reap",
        "--json",
        "--match",
        &pattern,
        "--grace",
        "2s",
        "--kill-timeout",
        "2s",
    ]));
    // The orphan handles SIGTERM and carries on: reap is in its grace.
    assert!(
        wait_until(T, || recorded(&out).contains("SIGTERM")),
        "{}",
        reap.stderr()
    );
    std::fs::write(format!("{}.go", out.display()), "").unwrap();
    let born = pid_at(&read_json(&s.path("session.json.bystander")), "bystander");
    let born_fd = pidfd(born);
    let status = reap.wait(T).expect("reap did not exit");
    assert_eq!(status.code(), Some(0), "{}", reap.stderr());
    no_panic(&reap.stderr());
    assert!(
        ends_within(&orphan_fd, Duration::from_secs(5)),
        "the orphan survived"
    );
    assert!(
        still_running(&born_fd),
        "reap ended {born}, born during its grace next to the orphan: {}",
        reap.stdout()
    );
    assert_eq!(s.alive(), sorted(vec![by, leader, born]));
}
